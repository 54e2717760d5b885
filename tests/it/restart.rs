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

    let last_old_sequence = commits
        .iter()
        .map(|c| int(&c["sequence_number"]))
        .max()
        .unwrap();

    // CREATE OR REPLACE starts the table afresh, once, and says so.
    let replace = write_file(
        dir.path(),
        "replace.sql",
        &sql.replace("CREATE TABLE", "CREATE OR REPLACE TABLE")
            .replace("name TEXT", "name TEXT, extra INT"),
    );
    let mut server = Server::start(&data, &[&replace], &[]).await;
    let rows = server
        .wait_for("SELECT * FROM items", WAIT, |r| r.len() >= 2)
        .await;
    assert!(rows.iter().all(|r| r.get("extra").is_some()), "{rows:?}");
    assert!(
        server
            .log_text()
            .contains("is replaced (CREATE OR REPLACE)"),
        "{}",
        server.log_text()
    );
    // Sequence numbers of the new incarnation come after the old one's: a reader
    // resuming from an old number can never be handed other data under it.
    let first_new = int(&server
        .scalar("SELECT min(sequence_number) FROM system.commits WHERE table_name = 'items'")
        .await);
    assert!(
        first_new > last_old_sequence,
        "sequence {first_new} of the new table was already used by the old one (up to at least {last_old_sequence})"
    );
    let kept = int(&server.scalar("SELECT count(*) FROM items").await);
    assert!(kept >= 2);
    assert!(server.terminate().success());

    // The same CREATE OR REPLACE file at the next start is not a change: the rows stay.
    let server = Server::start(&data, &[&replace], &[]).await;
    let after = int(&server.scalar("SELECT count(*) FROM items").await);
    assert!(
        after >= kept,
        "CREATE OR REPLACE with an unchanged definition dropped rows: {kept} -> {after}"
    );
    assert!(
        !server.log_text().contains("is replaced"),
        "{}",
        server.log_text()
    );
}

/// A restart does not poll every source at once: a source that polled recently waits out
/// the rest of its interval, counted from its last poll before the restart.
#[tokio::test]
async fn a_restart_keeps_each_sources_schedule() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 1}])))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write_file(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE slow (id BIGINT) WITH (connector = 'polling_http', endpoint = '{}/s', interval_ms = 4000);",
            api.uri()
        ),
    );
    let mut server = Server::start(&data, &[&file], &[]).await;
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) == 1
        })
        .await;
    let first_poll = std::time::Instant::now();
    server.terminate();
    let server = Server::start(&data, &[&file], &[]).await;
    // Well inside the interval: the restarted source has not polled again.
    tokio::time::sleep(Duration::from_millis(1000).saturating_sub(first_poll.elapsed())).await;
    let requests = api.received_requests().await.unwrap().len();
    assert_eq!(
        requests, 1,
        "a restart 1 s into a 4 s interval polled at once"
    );
    // ... and it polls when the interval since its last poll is over.
    server
        .wait_for("SELECT requests FROM system.connector_status", WAIT, |r| {
            int(&r[0]["requests"]) == 1
        })
        .await;
    assert!(
        first_poll.elapsed() >= Duration::from_millis(3000),
        "polled again after {:?}",
        first_poll.elapsed()
    );
}
