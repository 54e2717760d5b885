//! Push ingress over real HTTP: `POST /v1/tables/{table}/ingress`, pause/resume, and
//! backpressure, against the real binary.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, int, write_file};

const PIPELINE: &str = "
CREATE TABLE users (id BIGINT, name TEXT NOT NULL, age INT);
CREATE TABLE kv (k TEXT, v INT, PRIMARY KEY (k)) WITH (connector = 'http_input');
";

/// POSTs `body` to the ingress of `table` with `params`; status and JSON answer.
async fn push(server: &Server, table: &str, params: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/tables/{table}/ingress?{params}",
            server.base
        ))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

async fn start(dir: &std::path::Path, pipeline: &str, args: &[&str]) -> Server {
    let file = write_file(dir, "p.sql", pipeline);
    let server = Server::spawn_with_args(&dir.join("data"), &[&file], &[], args);
    server.wait_ready().await;
    server
}

#[tokio::test]
async fn every_format_and_update_format_stores_what_was_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), PIPELINE, &[]).await;

    let (status, answer) = push(
        &server,
        "users",
        "format=json",
        "{\"id\":1,\"name\":\"Alice\",\"age\":30}\n\n{\"id\":2,\"name\":\"Bob\",\"age\":25}\n",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            &answer["records"],
            &answer["inserted"],
            &answer["sequence_number"]
        ),
        (&json!(2), &json!(2), &json!(1))
    );
    let (status, answer) = push(
        &server,
        "users",
        "format=json&array=true",
        r#"[{"id":3,"name":"Carol"},{"id":4,"name":"Dan","age":40}]"#,
    )
    .await;
    assert_eq!((status, &answer["sequence_number"]), (200, &json!(2)));
    // CSV with a header in another column order, then without one.
    let (status, answer) = push(&server, "users", "format=csv", "name,id\nEve,5\n").await;
    assert_eq!(
        (status, &answer["csv_header"]),
        (200, &json!(true)),
        "{answer}"
    );
    let (status, answer) = push(
        &server,
        "users",
        "format=csv&csv_header=false",
        "6,Frank,60\n7,\"Grace, Jr.\",70\n",
    )
    .await;
    assert_eq!(
        (status, &answer["csv_header"]),
        (200, &json!(false)),
        "{answer}"
    );
    // insert_delete: an insert and a delete of an equal row.
    let (status, answer) = push(
        &server,
        "users",
        "update_format=insert_delete",
        "{\"insert\":{\"id\":8,\"name\":\"Heidi\"}}\n{\"delete\":{\"id\":1,\"name\":\"Alice\",\"age\":30}}\n",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["inserted"], &answer["deleted"]),
        (&json!(1), &json!(1))
    );

    let rows = server
        .query("SELECT id, name, age FROM users ORDER BY id")
        .await;
    let got: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (int(&r["id"]), r["name"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(i64, String)> = [
        (2, "Bob"),
        (3, "Carol"),
        (4, "Dan"),
        (5, "Eve"),
        (6, "Frank"),
        (7, "Grace, Jr."),
        (8, "Heidi"),
    ]
    .iter()
    .map(|(i, n)| (*i, n.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(server.scalar("SELECT count(*) FROM users").await, json!(7));
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("siphon_pushes_total{table=\"users\",connection=\"\",status=\"ok\"} 5"),
        "{metrics}"
    );
    // Every inserted row counts as ingested (the delete does not).
    assert!(
        metrics.contains("siphon_records_ingested_total{table=\"users\",connection=\"\"} 8"),
        "{metrics}"
    );
    assert_eq!(
        server
            .scalar("SELECT count(*) FROM users WHERE age IS NULL")
            .await,
        json!(3)
    );
}

#[tokio::test]
async fn a_bad_record_rejects_the_whole_request_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), PIPELINE, &[]).await;
    // The third record does not fit: nothing of the request is stored.
    let (status, answer) = push(
        &server,
        "users",
        "",
        "{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":\"b\"}\n{\"id\":\"three\",\"name\":\"c\"}\n",
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["detail"]["record"], json!(2), "{answer}");
    let reason = answer["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("\"id\"") && reason.contains("BIGINT"),
        "{reason}"
    );
    assert!(
        answer["error"].as_str().unwrap().contains("nothing"),
        "{answer}"
    );
    // A missing NOT NULL column, malformed JSON, a CSV row that does not convert.
    let (status, answer) = push(&server, "users", "", "{\"id\":1}").await;
    assert_eq!(
        (status, &answer["detail"]["record"]),
        (400, &json!(0)),
        "{answer}"
    );
    let (status, answer) = push(&server, "users", "", "{\"id\":1,\"name\":\"a\"}\n{oops").await;
    assert_eq!(
        (status, &answer["detail"]["record"]),
        (400, &json!(1)),
        "{answer}"
    );
    let (status, answer) = push(&server, "users", "format=csv", "id,name\n1,a\nx,b\n").await;
    assert_eq!(
        (status, &answer["detail"]["record"]),
        (400, &json!(1)),
        "{answer}"
    );
    let (status, answer) = push(&server, "users", "array=true", "{\"id\":1,\"name\":\"a\"").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(server.scalar("SELECT count(*) FROM users").await, json!(0));
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics
            .contains("siphon_pushes_total{table=\"users\",connection=\"\",status=\"rejected\"} 5"),
        "{metrics}"
    );
    assert!(!metrics.contains("status=\"ok\""), "{metrics}");

    // Bad parameters name themselves; an unknown table is a 404.
    let (status, answer) = push(&server, "users", "format=xml", "").await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("format"),
        "{answer}"
    );
    let (status, answer) = push(&server, "users", "update_format=upsert", "").await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("update_format"),
        "{answer}"
    );
    let (status, answer) = push(&server, "nope", "", "{}").await;
    assert_eq!(status, 404, "{answer}");
}

#[tokio::test]
async fn keyed_tables_upsert_and_delete_by_key_and_tables_without_a_key_delete_one_equal_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), PIPELINE, &[]).await;
    let (status, _) = push(
        &server,
        "kv",
        "",
        "{\"k\":\"a\",\"v\":1}\n{\"k\":\"b\",\"v\":2}\n{\"k\":\"c\",\"v\":3}",
    )
    .await;
    assert_eq!(status, 200);
    // An upsert, a delete by key only, a delete of a key that is not there (nothing).
    let (status, answer) = push(
        &server,
        "kv",
        "update_format=insert_delete",
        "{\"insert\":{\"k\":\"a\",\"v\":10}}\n{\"delete\":{\"k\":\"b\"}}\n{\"delete\":{\"k\":\"zz\"}}",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // The update is a delete of the old row and an insert of the new.
    assert_eq!(
        (&answer["inserted"], &answer["deleted"]),
        (&json!(1), &json!(2))
    );
    // Raw pushes upsert too; an unchanged row changes nothing.
    let (status, answer) = push(&server, "kv", "", "{\"k\":\"c\",\"v\":3}").await;
    assert_eq!(
        (status, &answer["sequence_number"]),
        (200, &Value::Null),
        "{answer}"
    );
    // A delete then an insert of one key in one request: the insert wins.
    let (status, _) = push(
        &server,
        "kv",
        "update_format=insert_delete",
        "{\"delete\":{\"k\":\"c\"}}\n{\"insert\":{\"k\":\"c\",\"v\":30}}",
    )
    .await;
    assert_eq!(status, 200);

    // Without a key: two equal rows, one delete removes one of them.
    let two = "{\"id\":1,\"name\":\"same\"}\n{\"id\":1,\"name\":\"same\"}";
    assert_eq!(push(&server, "users", "", two).await.0, 200);
    let delete = "{\"delete\":{\"id\":1,\"name\":\"same\"}}";
    let (status, answer) = push(&server, "users", "update_format=insert_delete", delete).await;
    assert_eq!((status, &answer["deleted"]), (200, &json!(1)), "{answer}");
    // A delete of a row that is not there is refused, and refuses its whole request.
    let (status, answer) = push(
        &server,
        "users",
        "update_format=insert_delete",
        "{\"insert\":{\"id\":9,\"name\":\"new\"}}\n{\"delete\":{\"id\":2,\"name\":\"never\"}}",
    )
    .await;
    assert_eq!(
        (status, &answer["detail"]["record"]),
        (400, &json!(1)),
        "{answer}"
    );

    check_after_deletes(&server).await;
    // The same after a restart: deletes are durable and replayed.
    server.terminate();
    let server = start(dir.path(), PIPELINE, &[]).await;
    check_after_deletes(&server).await;
    // And a second delete now removes the last copy.
    let (status, _) = push(&server, "users", "update_format=insert_delete", delete).await;
    assert_eq!(status, 200);
    assert_eq!(server.scalar("SELECT count(*) FROM users").await, json!(0));
}

/// Spawns a push that reports its answer on the returned handle.
fn push_in_background(
    server: &Server,
    table: &'static str,
    params: &'static str,
    body: String,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let base = server.base.clone();
    tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(format!("{base}/v1/tables/{table}/ingress?{params}"))
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    })
}

async fn post(server: &Server, path: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn while_paused_pushes_wait_for_resume_and_forced_ones_go_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), PIPELINE, &["--paused"]).await;
    let status: Value = reqwest::get(format!("{}/v1/status", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["paused"], json!(true));

    let waiting = push_in_background(&server, "users", "", "{\"id\":1,\"name\":\"a\"}".into());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a push to a paused server answered");
    assert_eq!(server.scalar("SELECT count(*) FROM users").await, json!(0));

    let (status, _) = push(&server, "users", "force=true", "{\"id\":2,\"name\":\"b\"}").await;
    assert_eq!(status, 200);
    assert_eq!(server.scalar("SELECT count(*) FROM users").await, json!(1));

    assert_eq!(post(&server, "/v1/resume").await, json!({"paused": false}));
    let (status, _) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting push answers after resume")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(server.scalar("SELECT count(*) FROM users").await, json!(2));

    // Pause again: pushes wait again.
    assert_eq!(post(&server, "/v1/pause").await, json!({"paused": true}));
    let waiting = push_in_background(&server, "users", "", "{\"id\":3,\"name\":\"c\"}".into());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    post(&server, "/v1/resume").await;
    assert_eq!(waiting.await.unwrap().0, 200);
}

#[tokio::test]
async fn past_max_buffered_records_a_push_waits_for_room_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline =
        "CREATE TABLE small (id INT) WITH (connector = 'http_input', max_buffered_records = 2);";
    let server = start(dir.path(), pipeline, &["--paused"]).await;
    // Two waiting records fill the budget while paused...
    let first = push_in_background(&server, "small", "", "{\"id\":1}\n{\"id\":2}".into());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so even a forced push waits for room.
    let second = push_in_background(&server, "small", "force=true", "{\"id\":3}".into());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!first.is_finished() && !second.is_finished());
    assert_eq!(server.scalar("SELECT count(*) FROM small").await, json!(0));
    post(&server, "/v1/resume").await;
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.0, second.0), (200, 200));
    assert!(int(&first.1["sequence_number"]) < int(&second.1["sequence_number"]));
    assert_eq!(server.scalar("SELECT count(*) FROM small").await, json!(3));

    // A bad value of the option is a load error naming it.
    let bad = write_file(
        dir.path(),
        "bad.sql",
        "CREATE TABLE t (id INT) WITH (max_buffered_records = 'lots');",
    );
    let out = crate::harness::siphon(&["check", bad.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_buffered_records"), "{stderr}");
}

#[tokio::test]
async fn concurrent_pushes_each_get_their_own_sequence_and_upserts_apply_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), PIPELINE, &[]).await;
    let mut tasks = Vec::new();
    for pusher in 0..16 {
        let base = server.base.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut answers = Vec::new();
            for i in 0..25 {
                let body = format!(
                    "{{\"id\":{},\"name\":\"p{pusher}\"}}\n{{\"insert\":{{\"k\":\"shared\",\"v\":{}}}}}",
                    pusher * 100 + i,
                    pusher * 100 + i
                );
                let (users, kv) = body.split_once('\n').unwrap();
                let r = client
                    .post(format!("{base}/v1/tables/users/ingress"))
                    .body(users.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let r = client
                    .post(format!("{base}/v1/tables/kv/ingress?update_format=insert_delete"))
                    .body(kv.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let answer: Value = r.json().await.unwrap();
                answers.push((int(&answer["sequence_number"]), pusher * 100 + i));
            }
            answers
        }));
    }
    let mut by_sequence = BTreeMap::new();
    for task in tasks {
        for (sequence, v) in task.await.unwrap() {
            assert!(
                by_sequence.insert(sequence, v).is_none(),
                "sequence {sequence} twice"
            );
        }
    }
    assert_eq!(by_sequence.len(), 400);
    assert_eq!(
        server.scalar("SELECT count(*) FROM users").await,
        json!(400)
    );
    // The row of the shared key is the one of the last commit.
    let (_, last) = by_sequence.iter().next_back().unwrap();
    assert_eq!(
        server.scalar("SELECT v FROM kv WHERE k = 'shared'").await,
        json!(last)
    );
    // The change stream is consistent, however the pushes were grouped: each delete
    // removes exactly the row the key holds then, each insert lands on a key that holds
    // none, and replaying it gives the table.
    let mut replayed: BTreeMap<String, Value> = BTreeMap::new();
    for chunk in server.changes("kv", "beginning").await {
        for change in chunk["json_data"].as_array().unwrap() {
            if let Some(row) = change.get("delete") {
                let held = replayed.remove(row["k"].as_str().unwrap());
                assert_eq!(
                    held.as_ref(),
                    Some(row),
                    "a delete of a row the key did not hold"
                );
            } else {
                let row = &change["insert"];
                let k = row["k"].as_str().unwrap().to_string();
                assert!(
                    replayed.insert(k, row.clone()).is_none(),
                    "an insert over a held key"
                );
            }
        }
    }
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed["shared"]["v"], json!(last));
}

/// What the keyed/unkeyed delete test leaves behind.
async fn check_after_deletes(server: &Server) {
    let kv = server.query("SELECT k, v FROM kv ORDER BY k").await;
    assert_eq!(
        kv,
        vec![json!({"k": "a", "v": 10}), json!({"k": "c", "v": 30})]
    );
    let users = server.query("SELECT id, name FROM users").await;
    assert_eq!(users, vec![json!({"id": 1, "name": "same"})]);
    assert_eq!(
        server.scalar("SELECT count(name) FROM users").await,
        json!(1)
    );
}
