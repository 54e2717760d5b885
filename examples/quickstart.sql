-- siphon quickstart: poll the demo API that scripts/quickstart.sh serves on 127.0.0.1:8099.

-- What every table of this API shares.
CREATE CONNECTION demo_api FROM polling_http_source
WITH (
    endpoint = 'http://127.0.0.1:8099/v1/weather',
    interval_ms = 2000,
    headers = '{"Accept": "application/json"}',
    format = 'json'
);

-- Current readings, one row per location per poll.
CREATE TABLE weather (
    location TEXT,
    timestamp TIMESTAMP,
    temperature FLOAT,
    humidity FLOAT,
    conditions TEXT
) WITH (
    connector = 'polling_http_source',
    connection = 'demo_api',
    json_path = '$.data[*]',
    query_params = '{"units": "metric", "locations": "NYC,LA,CHI"}'
);

-- A list that rarely changes: stored again only when the response changes.
CREATE TABLE stations (
    id TEXT,
    name TEXT,
    elevation_m INT
) WITH (
    connector = 'polling_http_source',
    connection = 'demo_api',
    endpoint = 'http://127.0.0.1:8099/v1/stations',
    interval_ms = 5000,
    emit_behavior = 'changed'
);
