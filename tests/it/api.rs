//! The HTTP API and `siphon sql`: health, readiness, query formats, errors.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, siphon, siphon_bin, write_file};

async fn server_with_rows() -> (Server, MockServer, tempfile::TempDir) {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1, "name": "a,b", "meta": {"x": [1]}, "at": "2024-01-02T03:04:05.5Z", "price": "12.30"},
            {"id": 2, "name": null, "meta": null, "at": null, "price": 7}
        ])))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE items (id BIGINT, name TEXT, meta JSON, at TIMESTAMP, price DECIMAL(10,2))
         WITH (connector = 'polling_http', endpoint = '{}/items', poll_interval_ms = 600000);",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    server
        .wait_for("SELECT * FROM items", Duration::from_secs(20), |r| {
            r.len() == 2
        })
        .await;
    (server, api, dir)
}

#[tokio::test]
async fn query_formats_and_errors() {
    let (server, _api, _dir) = server_with_rows().await;
    let rows = server.query("SELECT * FROM items ORDER BY id").await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "name": "a,b", "meta": {"x": [1]}, "at": "2024-01-02T03:04:05.500Z", "price": 12.3}),
            json!({"id": 2, "name": null, "meta": null, "at": null, "price": 7.0}),
        ]
    );
    let (status, nd) = server
        .query_raw("SELECT id FROM items ORDER BY id", "ndjson")
        .await;
    assert_eq!((status, nd.as_str()), (200, "{\"id\":1}\n{\"id\":2}\n"));
    let (status, csv) = server
        .query_raw("SELECT id, name FROM items ORDER BY id", "csv")
        .await;
    assert_eq!((status, csv.as_str()), (200, "id,name\n1,\"a,b\"\n2,\n"));
    let (status, csv) = server
        .query_raw("SELECT id FROM items WHERE id > 5", "csv")
        .await;
    assert_eq!((status, csv.as_str()), (200, "id\n"));

    // GET form.
    let got: serde_json::Value = reqwest::get(format!(
        "{}/v1/query?sql=SELECT%20count(*)%20AS%20n%20FROM%20items",
        server.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(got, json!([{"n": 2}]));

    // Bad SQL and unknown tables are 400 with a JSON error; DDL is refused.
    for sql in ["SELEKT 1", "SELECT * FROM nope", "DROP TABLE items"] {
        let (status, body) = server.query_raw(sql, "json").await;
        assert_eq!(status, 400, "{sql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
    let (status, _) = server.query_raw("SELECT 1", "yaml").await;
    assert_eq!(status, 400);

    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn sql_command_prints_table_json_and_csv_and_runs_a_prompt() {
    let (server, _api, _dir) = server_with_rows().await;
    let base = server.base.clone();
    let out = siphon(
        &[
            "sql",
            "--server",
            &base,
            "SELECT id, name FROM items ORDER BY id",
        ],
        &[],
    );
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| id | name |")
            && table.contains("| 1  | a,b  |")
            && table.contains("(2 rows)"),
        "{table}"
    );

    let out = siphon(
        &[
            "sql",
            "--server",
            &base,
            "--format",
            "csv",
            "SELECT id FROM items ORDER BY id",
        ],
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "id\n1\n2\n");
    let out = siphon(
        &[
            "sql",
            "--server",
            &base,
            "--format",
            "json",
            "SELECT id FROM items ORDER BY id",
        ],
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[{\"id\":1},{\"id\":2}]"
    );

    let out = siphon(&["sql", "--server", &base, "SELECT * FROM nope"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = siphon(&["sql", "--server", "http://127.0.0.1:9", "SELECT 1"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach siphon"));

    // Piped statements, several per line and across lines.
    let mut child = Command::new(siphon_bin())
        .args(["sql", "--server", &base, "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS n\n FROM items;\nSELECT 'x' AS y;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n2\ny\nx\n");
}
