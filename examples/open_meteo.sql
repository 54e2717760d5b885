-- Poll a real public API (needs internet): current weather in Berlin from Open-Meteo, no key.
CREATE TABLE berlin_weather (
    time TEXT,
    temperature_2m DOUBLE,
    wind_speed_10m DOUBLE
) WITH (
    connector = 'polling_http_source',
    endpoint = 'https://api.open-meteo.com/v1/forecast',
    query_params = '{"latitude": 52.52, "longitude": 13.41, "current": "temperature_2m,wind_speed_10m"}',
    interval_ms = 60000,
    json_path = '$.current',
    emit_behavior = 'changed'
);
