//! `siphon test-connection` and `siphon status`: a working source is polled once and
//! reported (requests, rows, dead letters) without storing anything; failing sources are
//! explained (refused, HTTP status with body, decode with line/column, DNS) with exit 1; a
//! running server's status prints as a table and as JSON.

use std::process::{Command, Output};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, free_port, siphon, siphon_bin, write_file};

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `siphon test-connection FILE ARGS` with `cwd` as the working directory.
fn test_connection(cwd: &std::path::Path, file: &std::path::Path, args: &[&str]) -> Output {
    Command::new(siphon_bin())
        .arg("test-connection")
        .arg(file)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[tokio::test]
async fn test_connection_polls_once_reports_rows_and_dead_letters_and_stores_nothing() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/data"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": 1, "name": "alpha", "value": 1.5},
            {"id": 2, "name": "beta", "value": 2.5},
            {"id": 3, "name": "gamma", "value": "not-a-number"},
            {"id": 4, "name": "delta", "value": 4.5}
        ]})))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE readings (id INT, name TEXT, value DOUBLE) WITH (
                connector = 'polling_http_source', endpoint = '{}/data',
                format = 'json', json_path = '$.data[*]', interval_ms = 100);",
            api.uri()
        ),
    );
    let cwd = tempfile::tempdir().unwrap();
    let out = test_connection(cwd.path(), &file, &["--rows", "2"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("table readings"), "{stdout}");
    assert!(stdout.contains("200 OK"), "{stdout}");
    assert!(stdout.contains("pages walked: 1"), "{stdout}");
    assert!(stdout.contains("3 decoded, 1 dead letter"), "{stdout}");
    assert!(
        stdout.contains("alpha") && stdout.contains("beta"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("delta"),
        "--rows 2 shows two rows: {stdout}"
    );
    assert!(stdout.contains("cannot convert"), "{stdout}");
    assert!(stdout.contains("not-a-number"), "the raw record: {stdout}");
    assert!(stdout.contains("WARNING"), "{stdout}");

    // One poll, and nothing stored: the working directory is as empty as before.
    assert_eq!(api.received_requests().await.unwrap().len(), 1);
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "test-connection wrote {left:?}");
    assert!(!dir.path().join("siphon-data").exists());
}

#[tokio::test]
async fn test_connection_explains_each_kind_of_failure() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/boom"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/garbage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("{\"data\": [1, 2,\n  oops]}", "application/json"),
        )
        .mount(&api)
        .await;
    let closed = free_port();
    let quick = "max_retries = 0, timeout_ms = 3000, interval_ms = 1000";
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE refused (x INT) WITH (connector = 'polling_http_source',
                endpoint = 'http://127.0.0.1:{closed}/data', {quick});
            CREATE TABLE boom (x INT) WITH (connector = 'polling_http_source',
                endpoint = '{uri}/boom', {quick});
            CREATE TABLE garbage (x INT) WITH (connector = 'polling_http_source',
                endpoint = '{uri}/garbage', {quick});
            CREATE TABLE nodns (x INT) WITH (connector = 'polling_http_source',
                endpoint = 'http://nonexistent.invalid/data', {quick});",
            uri = api.uri()
        ),
    );
    let cwd = tempfile::tempdir().unwrap();
    let refused_at = format!("127.0.0.1:{closed}");
    let expect = [
        ("refused", vec!["connection refused", refused_at.as_str()]),
        ("boom", vec!["HTTP status 500", "upstream exploded"]),
        ("garbage", vec!["decode error", "line 2 column"]),
        (
            "nodns",
            vec!["DNS", "could not resolve host `nonexistent.invalid`"],
        ),
    ];
    for (table, needles) in &expect {
        let out = test_connection(cwd.path(), &file, &["--table", table]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{table}: {stdout}\n{stderr}");
        assert!(stdout.contains(&format!("table {table}")), "{stdout}");
        assert!(stdout.contains("FAILED"), "{table}: {stdout}");
        for needle in needles {
            assert!(
                stdout.contains(needle),
                "{table}: no `{needle}` in:\n{stdout}"
            );
        }
        for (other, _) in &expect {
            if other != table {
                assert!(
                    !stdout.contains(&format!("table {other}")),
                    "--table {table} tested {other} too:\n{stdout}"
                );
            }
        }
    }

    // No --table: every polling table, and a summary; still exit 1.
    let out = test_connection(cwd.path(), &file, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("summary:"), "{stdout}");
    for (table, _) in &expect {
        assert!(stdout.contains(&format!("table {table}")), "{stdout}");
    }
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

#[test]
fn test_connection_refuses_an_unknown_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        "CREATE TABLE a (x INT) WITH (connector = 'polling_http_source',
            endpoint = 'http://127.0.0.1:9/a');
         CREATE TABLE b (x INT) WITH (connector = 'polling_http_source',
            endpoint = 'http://127.0.0.1:9/b');",
    );
    let out = siphon(
        &["test-connection", file.to_str().unwrap(), "--table", "nope"],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("`nope`") && stderr.contains("a, b"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "nothing was polled: {stdout}");
}

#[tokio::test]
async fn status_prints_sources_as_a_table_and_as_json() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/data"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"x": 1}])))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE watched (x INT) WITH (connector = 'polling_http_source',
                endpoint = '{}/data', interval_ms = 200);",
            api.uri()
        ),
    );
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;

    let out = siphon(&["status", "--server", &server.base], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("watched"), "{stdout}");
    assert!(stdout.contains("next poll"), "{stdout}");
    assert!(
        ["running", "backoff", "paused"]
            .iter()
            .any(|s| stdout.contains(s)),
        "{stdout}"
    );

    // --json, with the server from the environment.
    let out = siphon(&["status", "--json"], &[("SIPHON_SERVER", &server.base)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap();
    let sources = value["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "{value}");
    assert_eq!(sources[0]["table_name"], "watched");
}

#[test]
fn status_of_an_unreachable_server_exits_1() {
    let base = format!("http://127.0.0.1:{}", free_port());
    let out = siphon(&["status", "--server", &base], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach siphon at {base}")),
        "{stderr}"
    );
    assert!(stderr.contains("siphon run"), "{stderr}");
}
