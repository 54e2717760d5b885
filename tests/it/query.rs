//! The query API is read-only, isolated and bounded (SPEC §3): statements other than
//! queries are refused, settings never leak between queries, web pages of other origins
//! are refused, memory and time limits give clear errors while the server and its sources
//! keep going, results stream, and JSON columns and DECIMALs come back as stored.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, int, write_file};

/// A server with table `t`, polled every 100 ms from a local API, started with `args`.
async fn polled_server(args: &[&str]) -> (Server, MockServer, tempfile::TempDir) {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"a": 1}])))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE t (a INT) WITH (connector = 'polling_http_source', endpoint = '{}/t', interval_ms = 100);",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::spawn_with_args(&dir.path().join("data"), &[&file], &[], args);
    server.wait_ready().await;
    server
        .wait_for("SELECT * FROM t", Duration::from_secs(20), |r| {
            !r.is_empty()
        })
        .await;
    (server, api, dir)
}

/// Requests the source has made so far.
async fn requests(server: &Server) -> i64 {
    int(&server
        .scalar("SELECT requests FROM system.connector_status WHERE table_name = 't'")
        .await)
}

/// After a query hit a limit: the server answers and the source still polls.
async fn still_going(server: &Server) {
    assert_eq!(int(&server.scalar("SELECT 1 + 1").await), 2);
    let before = requests(server).await;
    server
        .wait_for(
            "SELECT requests FROM system.connector_status WHERE table_name = 't'",
            Duration::from_secs(20),
            |r| int(&r[0]["requests"]) > before + 1,
        )
        .await;
}

fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string()
}

#[tokio::test]
async fn only_queries_run_and_settings_stay_in_their_query() {
    let (server, _api, _dir) = polled_server(&[]).await;
    for sql in [
        "SET datafusion.execution.batch_size = 1",
        "PREPARE p(INT) AS SELECT $1",
        "BEGIN TRANSACTION",
        "CREATE TABLE x (a INT)",
        "CREATE VIEW v AS SELECT 1",
        "INSERT INTO t VALUES (2)",
        "COPY t TO '/tmp/siphon-copy-test.csv'",
        // The query API cannot reach the file system.
        "CREATE EXTERNAL TABLE e (a TEXT) STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        let (status, body) = server.query_raw(sql, "json").await;
        assert_eq!(status, 400, "{sql} must be refused: {body}");
        assert!(!error_of(&body).is_empty());
    }
    // The refused SET changed nothing, for this client or any other.
    let rows = server.query("SHOW datafusion.execution.batch_size").await;
    assert_eq!(rows[0]["value"], json!("8192"), "{rows:?}");
    // Queries still run, EXPLAIN included.
    assert!(!server.query("EXPLAIN SELECT a FROM t").await.is_empty());
}

#[tokio::test]
async fn web_pages_of_other_origins_cannot_use_the_query_api() {
    let (server, _api, _dir) = polled_server(&[]).await;
    let url = format!(
        "{}/v1/query?sql=SELECT%20count(*)%20AS%20n%20FROM%20t",
        server.base
    );
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let client = reqwest::Client::new();
    let get = |headers: Vec<(&'static str, String)>| {
        let mut request = client.get(&url);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    for refused in [
        vec![("origin", "http://evil.example".to_string())],
        vec![("origin", "null".to_string())],
        vec![("sec-fetch-site", "cross-site".to_string())],
        // DNS rebinding: the page's own name resolved to 127.0.0.1.
        vec![
            ("host", format!("evil.example:{port}")),
            ("origin", format!("http://evil.example:{port}")),
        ],
    ] {
        let (status, body) = get(refused.clone()).await;
        assert_eq!(status, 403, "{refused:?}: {body}");
        assert!(error_of(&body).contains("cross-origin"), "{body}");
    }
    // POST too (a form can post text/plain without a preflight).
    let r = client
        .post(format!("{}/v1/query", server.base))
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain")
        .body(r#"{"sql": "SELECT 1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Its own origin, a typed-in URL, and non-browser clients are served.
    for allowed in [
        vec![],
        vec![("origin", server.base.clone())],
        vec![("sec-fetch-site", "same-origin".to_string())],
        vec![("sec-fetch-site", "none".to_string())],
        vec![("host", format!("localhost:{port}"))],
    ] {
        let (status, body) = get(allowed.clone()).await;
        assert_eq!(status, 200, "{allowed:?}: {body}");
    }
}

#[tokio::test]
async fn a_query_past_the_memory_limit_fails_clearly_and_nothing_else_does() {
    let (server, _api, _dir) = polled_server(&["--query-memory", "1MiB"]).await;
    let (status, body) = server
        .query_raw(
            "SELECT count(DISTINCT value) AS n FROM range(3000000)",
            "json",
        )
        .await;
    assert_eq!(status, 507, "{body}");
    let error = error_of(&body);
    assert!(
        error.contains("memory") && error.contains("--query-memory"),
        "{error}"
    );
    still_going(&server).await;
}

#[tokio::test]
async fn a_query_past_the_timeout_is_cancelled_and_nothing_else_is() {
    let (server, _api, _dir) = polled_server(&["--query-timeout", "1s"]).await;
    // 10^15 rows: slow by construction, and the filter keeps the count from being
    // answered from statistics.
    let sql = "SELECT count(*) AS n FROM range(1000000000000000) WHERE value % 7 = 3";
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap()
        .post(format!("{}/v1/query", server.base))
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .expect("the server must answer before the client gives up");
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(error_of(&body).contains("--query-timeout"), "{body}");
    still_going(&server).await;
}

#[tokio::test]
async fn json_columns_and_decimals_come_back_as_stored() {
    let api = MockServer::start().await;
    // Raw text: key order and digits exactly as an API would send them.
    let record = r#"{"id": 1, "meta": {"b": 1, "a": [2.50, {"z": null, "y": "é"}]}, "big": "12345678901234567890.1234567890"}"#;
    Mock::given(path("/items"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(format!("[{record}]"), "application/json"),
        )
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE items (id BIGINT, meta JSON, big DECIMAL(38,10))
         WITH (connector = 'polling_http', endpoint = '{}/items', interval_ms = 600000);",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    server
        .wait_for("SELECT id FROM items", Duration::from_secs(20), |r| {
            r.len() == 1
        })
        .await;
    let row = r#"{"id":1,"meta":{"b":1,"a":[2.50,{"z":null,"y":"é"}]},"big":12345678901234567890.1234567890}"#;
    let (status, body) = server.query_raw("SELECT * FROM items", "json").await;
    assert_eq!((status, body.as_str()), (200, format!("[{row}]").as_str()));
    let (status, body) = server.query_raw("SELECT * FROM items", "ndjson").await;
    assert_eq!((status, body.as_str()), (200, format!("{row}\n").as_str()));
    // A projection keeps the column's JSON nature.
    let (_, body) = server.query_raw("SELECT meta FROM items", "json").await;
    assert_eq!(body, r#"[{"meta":{"b":1,"a":[2.50,{"z":null,"y":"é"}]}}]"#);
}

#[tokio::test]
async fn a_result_larger_than_query_memory_streams_in_chunks() {
    let api = MockServer::start().await;
    let filler = "x".repeat(200);
    let records: Vec<serde_json::Value> = (0..20_000)
        .map(|i| json!({"id": i, "pad": filler}))
        .collect();
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_json(records))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE big (id BIGINT, pad TEXT)
         WITH (connector = 'polling_http', endpoint = '{}/big', interval_ms = 600000);",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::spawn_with_args(
        &dir.path().join("data"),
        &[&file],
        &[],
        &["--query-memory", "1MiB"],
    );
    server.wait_ready().await;
    server
        .wait_for(
            "SELECT count(*) AS n FROM big",
            Duration::from_secs(30),
            |r| r[0]["n"] == json!(20_000),
        )
        .await;
    // About 4.5 MB of rows through a 1 MiB query memory: streamed, not collected.
    let mut r = reqwest::Client::new()
        .post(format!("{}/v1/query?format=ndjson", server.base))
        .json(&json!({ "sql": "SELECT * FROM big" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers().get("content-length").is_none(),
        "{:?}",
        r.headers()
    );
    assert_eq!(
        r.headers()
            .get("transfer-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("chunked")
    );
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = r.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    assert_eq!(lines, 20_000);
    assert!(bytes > 4_000_000, "{bytes}");
    // A query that must hold it all (a sort without spilling) is refused instead.
    let (status, body) = server
        .query_raw("SELECT * FROM big ORDER BY pad, id DESC", "ndjson")
        .await;
    assert_eq!(status, 507, "{body}");
}
