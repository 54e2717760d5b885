//! The catalog and the data persist: `siphon run` on the same data directory resumes, a
//! changed table definition is a clear error, and SIGTERM stops cleanly with exit 0.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, int, siphon, write_file};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn resumes_from_the_data_dir_and_refuses_a_changed_definition() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7, "name": "x"})))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = format!(
        "CREATE TABLE items (id BIGINT, name TEXT) WITH (connector = 'polling_http', endpoint = '{}/i', poll_interval_ms = 50);",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    let mut server = Server::start(&data, &[&file], &[]).await;
    server
        .wait_for("SELECT count(*) AS n FROM items", WAIT, |r| {
            int(&r[0]["n"]) >= 3
        })
        .await;
    let status = server.terminate();
    assert!(status.success(), "SIGTERM must exit 0, got {status:?}");

    // No file: the data directory's catalog is enough, and polling goes on.
    let server = Server::start(&data, &[], &[]).await;
    let n0 = int(&server.scalar("SELECT count(*) FROM items").await);
    assert!(n0 >= 3);
    server
        .wait_for("SELECT count(*) AS n FROM items", WAIT, |r| {
            int(&r[0]["n"]) > n0
        })
        .await;
    let commits = server.query("SELECT sequence_number, first_record, records FROM system.commits WHERE table_name = 'items' ORDER BY sequence_number").await;
    let mut expected_first = 0;
    for (i, c) in commits.iter().enumerate() {
        assert_eq!(int(&c["sequence_number"]), i as i64 + 1, "{commits:?}");
        assert_eq!(int(&c["first_record"]), expected_first, "{commits:?}");
        expected_first += int(&c["records"]);
    }
    drop(server);

    // The same definition again is fine; a changed one is refused with a way forward.
    let server = Server::start(&data, &[&file], &[]).await;
    drop(server);
    let changed = write_file(
        dir.path(),
        "changed.sql",
        &sql.replace("name TEXT", "name TEXT, extra INT"),
    );
    let out = siphon(
        &[
            "run",
            changed.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("table items already exists") && err.contains("CREATE OR REPLACE TABLE items"),
        "{err}"
    );

    // CREATE OR REPLACE starts the table afresh.
    let replace = write_file(
        dir.path(),
        "replace.sql",
        &sql.replace("CREATE TABLE", "CREATE OR REPLACE TABLE")
            .replace("name TEXT", "name TEXT, extra INT"),
    );
    let server = Server::start(&data, &[&replace], &[]).await;
    let rows = server.query("SELECT * FROM items").await;
    assert!(rows.iter().all(|r| r.get("extra").is_some()), "{rows:?}");
}
