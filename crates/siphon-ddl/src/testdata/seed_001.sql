CREATE TABLE http_source (
value TEXT
) WITH (
connector = 'polling_http',
endpoint = 'https://api.example.com/data',
method = 'GET',
poll_interval_ms = '5000',
emit_behavior = 'changed',
format = 'json'
);
