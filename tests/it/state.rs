//! What a table and its source's state mean over time: keys are never NULL, a saved state
//! is only resumed by the source it came from, and dead letters stay within their bounds.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{Server, int, write_file};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_record_without_its_primary_key_is_a_dead_letter_not_a_null_key_row() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": 1, "name": "a"},
            {"name": "no key"},
            {"id": null, "name": "null key"},
            {"name": "no key either"},
            {"id": 2, "name": "b"}
        ]})))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE k (id BIGINT, name TEXT, PRIMARY KEY (id)) WITH (connector = 'polling_http_source', \
             endpoint = '{}/k', json_path = '$.data[*]', interval_ms = 100);",
            api.uri()
        ),
    );
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let letters = server
        .wait_for(
            "SELECT reason, raw FROM system.dead_letters WHERE table_name = 'k'",
            WAIT,
            |r| r.len() >= 3,
        )
        .await;
    for letter in &letters {
        assert!(
            letter["reason"].as_str().unwrap().contains("id"),
            "the reason names the key column: {letter}"
        );
    }
    let rows = server.query("SELECT id, name FROM k ORDER BY id").await;
    assert_eq!(
        rows,
        vec![json!({"id": 1, "name": "a"}), json!({"id": 2, "name": "b"})]
    );
}

#[tokio::test]
async fn a_state_saved_for_other_options_is_discarded_with_a_log_line() {
    let api = MockServer::start().await;
    // The old endpoint's records reach id 30; the new endpoint's ids are small.
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 10}, {"id": 30}])))
        .mount(&api)
        .await;
    Mock::given(path("/new"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 1}, {"id": 2}])))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = |endpoint: &str| {
        format!(
            "CREATE TABLE items (id BIGINT) WITH (connector = 'polling_http_source', endpoint = '{}{endpoint}', \
             interval_ms = 60000, state_type = 'checkpoint', state_field = 'id', state_param = 'since');",
            api.uri()
        )
    };
    let old = write_file(dir.path(), "old.sql", &sql("/old"));
    let mut server = Server::start(&data, &[&old], &[]).await;
    server
        .wait_for("SELECT count(*) AS n FROM items", WAIT, |r| {
            int(&r[0]["n"]) == 2
        })
        .await;
    assert!(server.terminate().success());

    let new = write_file(dir.path(), "new.sql", &sql("/new"));
    let server = Server::start(&data, &[&new], &[]).await;
    server
        .wait_for("SELECT count(*) AS n FROM items", WAIT, |r| {
            int(&r[0]["n"]) == 4
        })
        .await;
    let to_new: Vec<String> = api
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/new")
        .map(|r| r.url.to_string())
        .collect();
    assert!(
        to_new.iter().all(|u| !u.contains("since=30")),
        "the old endpoint's state was sent to the new one: {to_new:?}"
    );
    let logs = server
        .query("SELECT message FROM system.connector_logs WHERE table_name = 'items' AND message LIKE '%changed since the state was saved%'")
        .await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0]["message"].as_str().unwrap().contains("(endpoint)"),
        "{logs:?}"
    );
}

#[tokio::test]
async fn dead_letters_are_bounded_per_table() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1}, {"id": "not a number"}, {"id": "nor this"}
        ])))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write_file(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE bad (id BIGINT) WITH (connector = 'polling_http_source', endpoint = '{}/b', interval_ms = 20);",
            api.uri()
        ),
    );
    let server = Server::spawn_with_args(&data, &[&file], &[], &["--dead-letter-max-rows", "3"]);
    server.wait_ready().await;
    // Enough polls that an unbounded store would hold many more than 3.
    server
        .wait_for("SELECT count(*) AS n FROM bad", WAIT, |r| {
            int(&r[0]["n"]) >= 6
        })
        .await;
    let kept = int(&server
        .scalar("SELECT count(*) FROM system.dead_letters WHERE table_name = 'bad'")
        .await);
    assert_eq!(
        kept, 3,
        "dead letters past --dead-letter-max-rows were kept"
    );
}

#[tokio::test]
async fn a_snapshot_lacking_most_rows_withholds_its_deletes_and_says_so() {
    let api = MockServer::start().await;
    let full: Vec<_> = (1..=20).map(|i| json!({"id": i, "name": "x"})).collect();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": full })))
        .up_to_n_times(1)
        .mount(&api)
        .await;
    // Afterwards the list holds 3 of the 20 rows, one of them renamed.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": 1, "name": "renamed"}, {"id": 2, "name": "x"}, {"id": 3, "name": "x"}
        ]})))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE k (id BIGINT, name TEXT, PRIMARY KEY (id)) WITH (connector = 'polling_http_source', \
             endpoint = '{}/k', json_path = '$.data[*]', interval_ms = 50);",
            api.uri()
        ),
    );
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    server
        .wait_for("SELECT name FROM k WHERE id = 1", WAIT, |r| {
            r.first().is_some_and(|r| r["name"] == "renamed")
        })
        .await;
    let logs = server
        .wait_for(
            "SELECT message FROM system.connector_logs WHERE table_name = 'k' AND message LIKE '%max_delete_ratio%'",
            WAIT,
            |r| !r.is_empty(),
        )
        .await;
    assert!(
        logs[0]["message"]
            .as_str()
            .unwrap()
            .contains("lacks 17 of the table's 20 rows"),
        "{logs:?}"
    );
    assert_eq!(int(&server.scalar("SELECT count(*) FROM k").await), 20);
}
