//! Observability: `/metrics` agrees with what the server saw, the SPEC §5 seed queries run
//! verbatim, histories are bounded, and no secret reaches any output.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::harness::{Server, int, write_file};

const WAIT: Duration = Duration::from_secs(20);

async fn start(sql: &str, envs: &[(&str, &str)], extra: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", sql);
    let mut files = vec![file.to_str().unwrap().to_string()];
    files.extend(extra.iter().map(|s| s.to_string()));
    let paths: Vec<std::path::PathBuf> = files.iter().map(std::path::PathBuf::from).collect();
    let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    let server = Server::start(&dir.path().join("data"), &refs, envs).await;
    (server, dir)
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no metric line starting {line_start} in\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_match_the_requests_the_server_saw() {
    let api = MockServer::start().await;
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let body = json!({"data": [{"id": 1}, {"id": 2}, {"id": "x"}]}).to_string();
    let b = body.clone();
    Mock::given(path("/m"))
        .respond_with(move |_: &Request| match c.fetch_add(1, Ordering::SeqCst) {
            0 => ResponseTemplate::new(503).set_body_string("busy"),
            _ => ResponseTemplate::new(200).set_body_string(b.clone()),
        })
        .mount(&api)
        .await;
    let sql = format!(
        "CREATE CONNECTION c FROM polling_http_source WITH (endpoint = '{}/m', interval_ms = 600000, retry_backoff_ms = 10);
         CREATE TABLE t (id INT) WITH (connector = 'polling_http_source', connection = 'c', json_path = '$.data[*]');",
        api.uri()
    );
    let (server, _dir) = start(&sql, &[], &[]).await;
    server
        .wait_for("SELECT * FROM t", WAIT, |r| r.len() == 2)
        .await;
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let seen = api.received_requests().await.unwrap().len() as f64;
    assert_eq!(seen, 2.0);
    let l = "{table=\"t\",connection=\"c\"";
    assert_eq!(
        metric(
            &text,
            &format!("siphon_http_requests_total{l},status=\"503\"}}")
        ) + metric(
            &text,
            &format!("siphon_http_requests_total{l},status=\"200\"}}")
        ),
        seen
    );
    assert_eq!(
        metric(
            &text,
            &format!("siphon_http_response_status_total{l},code=\"503\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("siphon_http_request_duration_seconds_count{l}}}")
        ),
        seen
    );
    assert_eq!(metric(&text, &format!("siphon_retries_total{l}}}")), 1.0);
    assert_eq!(
        metric(&text, &format!("siphon_http_bytes_received_total{l}}}")),
        (body.len() + 4) as f64
    );
    assert_eq!(
        metric(&text, &format!("siphon_records_ingested_total{l}}}")),
        2.0
    );
    assert_eq!(
        metric(&text, &format!("siphon_decode_errors_total{l}}}")),
        1.0
    );
    assert_eq!(
        metric(&text, &format!("siphon_http_pagination_pages_count{l}}}")),
        1.0
    );
    assert!(
        text.contains("# TYPE siphon_http_requests_total counter") && !text.contains("# EOF"),
        "classic format:\n{text}"
    );
    let om = reqwest::Client::new()
        .get(format!("{}/metrics", server.base))
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        om.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));
    assert!(
        text.contains("siphon_http_request_duration_seconds_bucket{le=\"0.005\""),
        "histogram buckets:\n{text}"
    );
}

#[tokio::test]
async fn spec_seed_queries_run_verbatim() {
    let api = MockServer::start().await;
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    Mock::given(path("/d"))
        .respond_with(move |_: &Request| {
            if c.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
                ResponseTemplate::new(500)
            } else {
                ResponseTemplate::new(200).set_body_json(json!([{"a": 1}]))
            }
        })
        .mount(&api)
        .await;
    let sql = format!(
        "CREATE TABLE t (a INT) WITH (connector = 'polling_http_source', endpoint = '{}/d', interval_ms = 50, max_retries = 0);",
        api.uri()
    );
    let (server, _dir) = start(&sql, &[], &[]).await;
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) >= 12
        })
        .await;

    let status = server
        .query(
            "SELECT * FROM system.connector_status WHERE connector_name = 'polling_http_source';",
        )
        .await;
    assert_eq!(status.len(), 1);
    for column in [
        "connector_name",
        "table_name",
        "connection_name",
        "state",
        "last_success_at",
        "last_error",
        "last_error_at",
        "consecutive_failures",
        "requests",
        "records",
        "next_poll_at",
    ] {
        assert!(
            status[0].get(column).is_some(),
            "missing column {column}: {status:?}"
        );
    }
    assert_eq!(status[0]["table_name"], "t");

    let logs = server
        .query(
            "SELECT * FROM system.connector_logs WHERE connector = 'polling_http_source'
  AND message LIKE '%HTTP%' ORDER BY timestamp DESC LIMIT 10;",
        )
        .await;
    assert_eq!(logs.len(), 10);
    assert!(
        logs.iter()
            .all(|l| l["message"].as_str().unwrap().contains("HTTP")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l["message"].as_str().unwrap().contains("HTTP GET")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .starts_with("poll failed: HTTP 500")),
        "{logs:?}"
    );
    assert!(logs[0]["timestamp"].as_str().unwrap() >= logs[9]["timestamp"].as_str().unwrap());

    let by_status = server
        .query(
            "SELECT status_code, COUNT(*) AS count, AVG(response_time_ms) AS avg_time
  FROM system.http_metrics WHERE connector = 'polling_http_source' GROUP BY status_code;",
        )
        .await;
    let codes: Vec<i64> = by_status.iter().map(|r| int(&r["status_code"])).collect();
    assert!(
        codes.contains(&200) && codes.contains(&500),
        "{by_status:?}"
    );
    let total: i64 = by_status.iter().map(|r| int(&r["count"])).sum();
    assert!(total >= 12);
    assert!(
        by_status
            .iter()
            .all(|r| r["avg_time"].as_f64().unwrap() >= 0.0)
    );
}

#[tokio::test]
async fn histories_are_bounded_per_source() {
    let api = MockServer::start().await;
    Mock::given(path("/d"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE t (a INT) WITH (connector = 'polling_http_source', endpoint = '{}/d', interval_ms = 20);",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let mut server = Server::spawn_with_args(
        &dir.path().join("data"),
        &[&file],
        &[],
        &["--history-per-source", "5"],
    );
    server.wait_ready().await;
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) >= 12
        })
        .await;
    assert_eq!(
        int(&server
            .scalar("SELECT count(*) FROM system.http_metrics")
            .await),
        5
    );
    assert_eq!(
        int(&server
            .scalar("SELECT count(*) FROM system.connector_logs")
            .await),
        5
    );
    server.kill();
}

#[tokio::test]
async fn no_secret_reaches_logs_errors_tables_status_or_metrics() {
    const MARKER: &str = "S3CR3T-MARKER-42";
    let api = MockServer::start().await;
    // Every API response echoes the request's headers and URL back, as a careless server might.
    Mock::given(path("/token"))
        .respond_with(|req: &Request| {
            ResponseTemplate::new(401).set_body_string(format!(
                "bad client: {}",
                String::from_utf8_lossy(&req.body)
            ))
        })
        .mount(&api)
        .await;
    Mock::given(path("/echo"))
        .respond_with(|req: &Request| {
            let headers: Vec<String> = req
                .headers
                .iter()
                .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("")))
                .collect();
            ResponseTemplate::new(500).set_body_string(format!(
                "echo {} {}",
                req.url,
                headers.join(" ")
            ))
        })
        .mount(&api)
        .await;
    let sql = "
        CREATE TABLE t_token (a INT) WITH (connector = 'polling_http_source', endpoint = '{uri}/echo', interval_ms = 100, max_retries = 0,
            auth_type = 'bearer', token = '${SECRET}');
        CREATE TABLE t_password (a INT) WITH (connector = 'polling_http_source', endpoint = '{uri}/echo', interval_ms = 100, max_retries = 0,
            auth_type = 'basic', username = 'me', password = '${SECRET}');
        CREATE TABLE t_key (a INT) WITH (connector = 'polling_http_source', endpoint = '{uri}/echo?k=${SECRET}', interval_ms = 100, max_retries = 0,
            auth_type = 'api_key', api_key = '${SECRET}');
        CREATE TABLE t_oauth (a INT) WITH (connector = 'polling_http_source', endpoint = '{uri}/echo', interval_ms = 100, max_retries = 0,
            auth_type = 'oauth2', client_id = 'id', client_secret = '${SECRET}', token_url = '{uri}/token');
        CREATE TABLE t_header (a INT) WITH (connector = 'polling_http_source', endpoint = '{uri}/echo', interval_ms = 100, max_retries = 0,
            headers = 'Authorization: Token ${SECRET}, X-Api-Token: ${SECRET}');"
        .replace("{uri}", &api.uri());
    let (server, dir) = start(&sql, &[("SECRET", MARKER), ("RUST_LOG", "trace")], &[]).await;
    for table in ["t_token", "t_password", "t_key", "t_oauth", "t_header"] {
        server
            .wait_for(
                &format!("SELECT consecutive_failures FROM system.connector_status WHERE table_name = '{table}'"),
                WAIT,
                |r| int(&r[0]["consecutive_failures"]) >= 2,
            )
            .await;
    }
    let mut outputs = Vec::new();
    for table in [
        "system.connector_status",
        "system.connector_logs",
        "system.http_metrics",
        "system.dead_letters",
        "system.commits",
    ] {
        outputs.push((
            table.to_string(),
            server
                .query_raw(&format!("SELECT * FROM {table}"), "csv")
                .await
                .1,
        ));
    }
    outputs.push((
        "status".into(),
        reqwest::get(format!("{}/v1/status", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    ));
    outputs.push((
        "metrics".into(),
        reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    ));
    outputs.push(("log".into(), server.log_text()));
    let status_cmd = crate::harness::siphon(&["status", "--server", &server.base], &[]);
    outputs.push((
        "siphon status".into(),
        String::from_utf8_lossy(&status_cmd.stdout).to_string(),
    ));
    let stored = std::fs::read(dir.path().join("data").join("siphon.redb")).unwrap();
    outputs.push(("store".into(), String::from_utf8_lossy(&stored).to_string()));
    for (name, text) in &outputs {
        assert!(!text.contains(MARKER), "{name} leaked the secret:\n{text}");
    }
    // The errors are still useful: they say what happened.
    let errors = &outputs[0].1;
    assert!(
        errors.contains("HTTP 500") && errors.contains("***"),
        "{errors}"
    );
    assert!(errors.contains("authentication failed"), "{errors}");
}
