//! Whole pipelines through the binary: both DDL forms, several statements per file,
//! comments, DROP, dead letters, `emit_behavior`, environment substitution.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, int, write_file};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn laminardb_form_connection_and_table_with_overrides() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/current"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {"location": "NYC", "timestamp": "2024-05-01T12:00:00Z", "temperature": 21.5, "humidity": 40, "conditions": "sunny"},
                {"location": "LA", "timestamp": "2024-05-01T09:00:00-03:00", "temperature": "30", "humidity": null, "extra": true}
            ]
        })))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        r#"
        -- The connection holds what every table shares; the table overrides the rest.
        CREATE CONNECTION weather_api FROM polling_http_source
        WITH (
            endpoint = '{uri}/not-this-one',
            interval_ms = 60000,
            format = 'json'
        );
        /* LaminarDB's weather example: endpoint, interval and
           query_params on the table */
        CREATE TABLE weather_data (
            location TEXT,
            timestamp TIMESTAMP,
            temperature FLOAT,
            humidity FLOAT,
            conditions TEXT
        ) WITH (
            connector = 'polling_http_source',
            connection = 'weather_api',
            endpoint = '{uri}/current',
            interval_ms = 100,
            json_path = '$.data[*]',
            query_params = '{{"units": "metric", "locations": "NYC,LA,CHI"}}'
        );
        "#,
        uri = api.uri()
    );
    let file = write_file(dir.path(), "weather.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let rows = server
        .wait_for(
            // Every poll stores the three locations again: DISTINCT keeps this
            // independent of how many polls landed before the query.
            "SELECT DISTINCT * FROM weather_data ORDER BY location DESC LIMIT 2",
            WAIT,
            |r| r.len() == 2,
        )
        .await;
    assert_eq!(
        rows[0],
        json!({"location": "NYC", "timestamp": "2024-05-01T12:00:00Z", "temperature": 21.5, "humidity": 40.0, "conditions": "sunny"})
    );
    assert_eq!(
        rows[1],
        json!({"location": "LA", "timestamp": "2024-05-01T12:00:00Z", "temperature": 30.0, "humidity": null, "conditions": null})
    );
    // The query parameters from the table's options were sent.
    let received = api.received_requests().await.unwrap();
    assert!(received.iter().all(|r| r.url.path() == "/current"));
    let query: Vec<(String, String)> = received[0].url.query_pairs().into_owned().collect();
    assert!(
        query.contains(&("units".into(), "metric".into())),
        "{query:?}"
    );
    assert!(
        query.contains(&("locations".into(), "NYC,LA,CHI".into())),
        "{query:?}"
    );
}

#[tokio::test]
async fn arroyo_form_everything_inline_with_emit_changed() {
    let api = MockServer::start().await;
    // The body never changes: with emit_behavior = 'changed' only the first poll stores.
    Mock::given(method("GET"))
        .and(path("/data"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": 42})))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE http_source (
            value TEXT
        ) WITH (
            connector = 'polling_http',
            endpoint = '{}/data',
            method = 'GET',
            poll_interval_ms = '50',
            emit_behavior = 'changed',
            headers = 'Accept: application/json, X-Trace: t1',
            format = 'json'
        );",
        api.uri()
    );
    let file = write_file(dir.path(), "arroyo.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    // Wait for several polls, then check that only one row was stored.
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) >= 5
        })
        .await;
    let rows = server.query("SELECT value FROM http_source").await;
    // A JSON number bound to a TEXT column is stored as its JSON text.
    assert_eq!(rows, vec![json!({"value": "42"})]);
    let req = &api.received_requests().await.unwrap()[0];
    assert_eq!(req.headers.get("x-trace").unwrap(), "t1");
    assert_eq!(req.headers.get("accept").unwrap(), "application/json");
}

#[tokio::test]
async fn emit_all_stores_every_poll() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"v": 1}, {"v": 2}])))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE t (v INT) WITH (connector = 'polling_http', endpoint = '{}/x', poll_interval_ms = 50, emit_behavior = 'all');",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let rows = server
        .wait_for("SELECT count(*) AS n FROM t", WAIT, |r| {
            int(&r[0]["n"]) >= 6
        })
        .await;
    assert_eq!(int(&rows[0]["n"]) % 2, 0, "whole pages only");
}

#[tokio::test]
async fn records_that_do_not_fit_go_to_dead_letters_and_the_rest_is_kept() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": "a", "value": 1.5, "metadata": {"k": [1, 2]}},
            {"id": "b", "value": "not a number"},
            {"id": "c", "value": 3, "metadata": null, "ignored": "extra"}
        ]})))
        .expect(1..)
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE api_data (id TEXT, value FLOAT, metadata JSON)
         WITH (connector = 'polling_http_source', endpoint = '{}/d', interval_ms = 60000, format = 'json', json_path = '$.data[*]');",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let rows = server
        .wait_for("SELECT * FROM api_data ORDER BY id", WAIT, |r| r.len() == 2)
        .await;
    assert_eq!(
        rows[0],
        json!({"id": "a", "value": 1.5, "metadata": {"k": [1, 2]}})
    );
    assert_eq!(rows[1], json!({"id": "c", "value": 3.0, "metadata": null}));
    let dead = server
        .query("SELECT table_name, reason, raw FROM system.dead_letters")
        .await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["table_name"], "api_data");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("value") && reason.contains("not a number"),
        "{reason}"
    );
    assert!(dead[0]["raw"].as_str().unwrap().contains("\"b\""));
}

#[tokio::test]
async fn environment_variables_are_substituted_and_secrets_stay_hidden() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer tok-SECRET-123",
        ))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream echoed tok-SECRET-123"))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = "CREATE CONNECTION http_api FROM polling_http_source
        WITH (endpoint = '${API_BASE}/data', interval_ms = 100, auth_type = 'bearer', token = '${API_TOKEN}');
        CREATE TABLE t (id TEXT) WITH (connector = 'polling_http_source', connection = 'http_api');";
    let file = write_file(dir.path(), "p.sql", sql);
    let base = api.uri();
    let server = Server::start(
        &dir.path().join("data"),
        &[&file],
        &[("API_BASE", base.as_str()), ("API_TOKEN", "tok-SECRET-123")],
    )
    .await;
    let rows = server
        .wait_for(
            "SELECT last_error, state FROM system.connector_status",
            WAIT,
            |r| !r[0]["last_error"].is_null(),
        )
        .await;
    let error = rows[0]["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 500"), "{error}");
    assert!(
        error.contains("***") && !error.contains("SECRET"),
        "secret leaked: {error}"
    );
    assert_eq!(rows[0]["state"], "backoff");
    let (_, status) = server.query_raw("SELECT 1", "json").await;
    assert!(!status.contains("SECRET"));
    let status = reqwest::get(format!("{}/v1/status", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!status.contains("SECRET"), "{status}");
    assert!(
        !server.log_text().contains("SECRET"),
        "log leaked the secret"
    );
    // The catalog on disk keeps `${API_TOKEN}`, not the token.
    let stored = std::fs::read(dir.path().join("data").join("siphon.redb")).unwrap();
    assert!(
        !stored.windows(6).any(|w| w == b"SECRET"),
        "the secret reached the disk"
    );

    // A variable that is not set is a load-time error naming it.
    let out = crate::harness::siphon(
        &["check", file.to_str().unwrap()],
        &[("API_BASE", "http://x")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("API_TOKEN") && err.contains("token"), "{err}");
}

#[tokio::test]
async fn drop_and_many_statements_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"a": 1})))
        .mount(&api)
        .await;
    let sql = format!(
        "CREATE TABLE a (a INT) WITH (connector = 'polling_http', endpoint = '{u}/', poll_interval_ms = 60000);
         CREATE TABLE b (a INT) WITH (connector = 'polling_http', endpoint = '{u}/', poll_interval_ms = 60000);
         CREATE TABLE pushed (x TEXT);
         DROP TABLE b; DROP TABLE IF EXISTS never_existed;
         -- a trailing comment",
        u = api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    server
        .wait_for("SELECT * FROM a", WAIT, |r| r.len() == 1)
        .await;
    let tables = server
        .query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")
        .await;
    assert_eq!(
        tables,
        vec![json!({"table_name": "a"}), json!({"table_name": "pushed"})]
    );
    let (status, body) = server.query_raw("SELECT * FROM b", "json").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"error\""));
}
