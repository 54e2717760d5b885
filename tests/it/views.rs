//! Continuous views through the real binary: kept up to date by pushes, equal to their
//! query after SIGKILL and restart, change streams without gap or duplicate, refused
//! queries named at load time, DROP VIEW, replaced views and inputs whose columns change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Server, int, siphon, write_file};

const PIPELINE: &str = "
CREATE TABLE scores (id BIGINT, team TEXT, score BIGINT, PRIMARY KEY (id));
CREATE MATERIALIZED VIEW team_stats AS
  SELECT team, COUNT(*) AS members, SUM(score) AS total, MIN(score) AS worst, MAX(score) AS best
  FROM scores GROUP BY team;
CREATE VIEW high AS SELECT id, team, score * 2 AS double_score FROM scores WHERE score > 50;
CREATE VIEW big_teams AS SELECT team, total FROM team_stats WHERE members >= 3;
";

/// (view, its query) for the ad hoc comparison.
const QUERIES: &[(&str, &str)] = &[
    (
        "team_stats",
        "SELECT team, COUNT(*) AS members, SUM(score) AS total, MIN(score) AS worst, MAX(score) AS best FROM scores GROUP BY team",
    ),
    (
        "high",
        "SELECT id, team, score * 2 AS double_score FROM scores WHERE score > 50",
    ),
    (
        "big_teams",
        "SELECT team, SUM(score) AS total FROM scores GROUP BY team HAVING COUNT(*) >= 3",
    ),
];

fn sorted(rows: Vec<Value>) -> Vec<String> {
    let mut out: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    out.sort();
    out
}

/// The view's change stream from the beginning, replayed; asserts its sequence numbers
/// run 1, 2, 3, ... without gap or repeat, and returns the rows and the last number.
async fn replay(server: &Server, view: &str) -> (Vec<String>, u64) {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut expected = 1;
    for chunk in server.changes(view, "beginning").await {
        let sequence = chunk["sequence_number"].as_u64().unwrap();
        assert_eq!(sequence, expected, "view {view}: a gap or a repeat");
        expected += 1;
        for change in chunk["json_data"].as_array().unwrap() {
            if let Some(row) = change.get("insert") {
                *counts.entry(row.to_string()).or_default() += 1;
            } else {
                let row = change["delete"].to_string();
                *counts.entry(row.clone()).or_default() -= 1;
                assert!(
                    counts[&row] >= 0,
                    "view {view}: {row} deleted before inserted"
                );
            }
        }
    }
    let mut rows = Vec::new();
    for (row, n) in counts {
        for _ in 0..n {
            rows.push(row.clone());
        }
    }
    rows.sort();
    (rows, expected - 1)
}

async fn check(server: &Server) -> BTreeMap<&'static str, u64> {
    let mut last = BTreeMap::new();
    for (view, query) in QUERIES {
        let stored = sorted(server.query(&format!("SELECT * FROM {view}")).await);
        let expected = sorted(server.query(query).await);
        assert_eq!(stored, expected, "view {view} against its query");
        let (replayed, n) = replay(server, view).await;
        assert_eq!(replayed, stored, "view {view}: its change stream replayed");
        last.insert(*view, n);
    }
    last
}

async fn pusher(base: String, seed: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    while !stop.load(Ordering::SeqCst) {
        let n = seed.fetch_add(1, Ordering::SeqCst);
        let body: String = (0..5u64)
            .map(|i| {
                let x = n.wrapping_mul(2654435761).wrapping_add(i * 40503) % 1000;
                let id = x % 60;
                if x.is_multiple_of(7) {
                    format!("{{\"delete\": {{\"id\": {id}}}}}\n")
                } else {
                    let team = ["red", "blue", "green", "gold"][(x % 4) as usize];
                    format!(
                        "{{\"insert\": {{\"id\": {id}, \"team\": \"{team}\", \"score\": {}}}}}\n",
                        x % 100
                    )
                }
            })
            .collect();
        match client
            .post(format!(
                "{base}/v1/tables/scores/ingress?update_format=insert_delete"
            ))
            .body(body)
            .send()
            .await
        {
            Ok(r) => assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test]
async fn views_equal_their_query_after_sigkill_and_their_streams_have_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", PIPELINE);
    let data = dir.path().join("data");
    let seed = Arc::new(AtomicU64::new(1));
    let mut last_seen: BTreeMap<&str, u64> = BTreeMap::new();
    for round in 0..3u64 {
        let mut server = Server::start(&data, &[&file], &[]).await;
        let after_restart = check(&server).await;
        for (view, n) in &last_seen {
            assert!(after_restart[view] >= *n, "view {view} lost entries");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..4)
            .map(|_| tokio::spawn(pusher(server.base.clone(), seed.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(500 + 200 * round)).await;
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for task in tasks {
            task.await.unwrap();
        }
        let server = Server::start(&data, &[&file], &[]).await;
        last_seen = check(&server).await;
        assert!(
            int(&server.scalar("SELECT COUNT(*) FROM scores").await) > 0,
            "the pushes stored something"
        );
        // A reader that resumes after what it saw gets only later entries.
        let n = last_seen["team_stats"];
        assert!(
            server
                .changes("team_stats", &n.to_string())
                .await
                .is_empty()
        );
    }
}

#[test]
fn queries_a_view_cannot_maintain_are_refused_naming_the_part() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "bad.sql",
        "CREATE TABLE t (id BIGINT, g TEXT, x BIGINT);\n\
         CREATE TABLE u (id BIGINT, y TEXT);\n\
         CREATE VIEW j AS SELECT t.id, u.y FROM t JOIN u ON t.id = u.id;\n\
         CREATE VIEW o AS SELECT id FROM t ORDER BY id LIMIT 3;\n\
         CREATE VIEW n AS SELECT id FROM t WHERE x > extract(epoch from now());\n\
         CREATE VIEW d AS SELECT g, COUNT(DISTINCT x) FROM t GROUP BY g;\n\
         CREATE VIEW w AS SELECT id, row_number() OVER (ORDER BY id) FROM t;\n\
         CREATE VIEW s AS SELECT * FROM system.connector_status;\n",
    );
    let out = siphon(&["check", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for (line, part) in [
        (3, "a JOIN cannot be maintained incrementally"),
        (4, "cannot be maintained incrementally"),
        (5, "now() gives another value each time"),
        (6, "COUNT(DISTINCT ...) cannot be maintained"),
        (7, "a window function (OVER ...)"),
        (8, "not a system table"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("bad.sql:{line}:")) && l.contains(part)),
            "line {line} should say `{part}`:\n{err}"
        );
    }
    assert!(
        err.contains("COUNT(*), COUNT(col), SUM, MIN, MAX, AVG"),
        "{err}"
    );
}

#[tokio::test]
async fn replacing_dropping_and_changing_inputs_of_views() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let v1 = write_file(
        dir.path(),
        "v1.sql",
        "CREATE TABLE t (id BIGINT, g TEXT, x BIGINT, PRIMARY KEY (id));\n\
         CREATE VIEW v AS SELECT g, SUM(x) AS s FROM t GROUP BY g;\n",
    );
    let mut server = Server::start(&data, &[&v1], &[]).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/tables/t/ingress", server.base))
        .body("{\"id\":1,\"g\":\"a\",\"x\":1}\n{\"id\":2,\"g\":\"a\",\"x\":2}\n{\"id\":3,\"g\":\"b\",\"x\":5}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        sorted(server.query("SELECT * FROM v").await),
        vec![r#"{"g":"a","s":3}"#, r#"{"g":"b","s":5}"#]
    );
    server.terminate();

    // Another query without OR REPLACE: refused with the way forward.
    let v2 = write_file(
        dir.path(),
        "v2.sql",
        "CREATE TABLE t (id BIGINT, g TEXT, x BIGINT, PRIMARY KEY (id));\n\
         CREATE VIEW v AS SELECT g, MAX(x) AS s FROM t GROUP BY g;\n",
    );
    let out = siphon(
        &[
            "run",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            v2.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CREATE OR REPLACE VIEW v"), "{err}");

    // OR REPLACE with the same columns: the difference streams out as one change.
    let v3 = write_file(
        dir.path(),
        "v3.sql",
        "CREATE TABLE t (id BIGINT, g TEXT, x BIGINT, PRIMARY KEY (id));\n\
         CREATE OR REPLACE VIEW v AS SELECT g, MAX(x) AS s FROM t GROUP BY g;\n",
    );
    let mut server = Server::start(&data, &[&v3], &[]).await;
    assert_eq!(
        sorted(server.query("SELECT * FROM v").await),
        vec![r#"{"g":"a","s":2}"#, r#"{"g":"b","s":5}"#]
    );
    let (replayed, n) = replay(&server, "v").await;
    assert_eq!(replayed, sorted(server.query("SELECT * FROM v").await));
    assert_eq!(n, 2, "the replacement is one more entry of the same stream");
    let last = server.changes("v", "1").await;
    assert_eq!(
        last[0]["json_data"].as_array().unwrap().len(),
        2,
        "group a changes (delete, insert); group b does not: {last:?}"
    );
    server.terminate();

    // The table's columns change: the view that reads them is refused with the way out.
    let v4 = write_file(
        dir.path(),
        "v4.sql",
        "CREATE OR REPLACE TABLE t (id BIGINT, g TEXT, y DOUBLE, PRIMARY KEY (id));\n",
    );
    let out = siphon(&["check", v4.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "check alone has no stored view");
    let out = siphon(
        &[
            "run",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            v4.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("view v") && err.contains("DROP VIEW v"),
        "{err}"
    );

    // DROP TABLE while a view reads it is refused; DROP VIEW then DROP TABLE works.
    let v5 = write_file(dir.path(), "v5.sql", "DROP TABLE t;\n");
    let out = siphon(
        &[
            "run",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            v5.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v6 = write_file(dir.path(), "v6.sql", "DROP VIEW v;\nDROP TABLE t;\n");
    let mut server = Server::start(&data, &[&v6], &[]).await;
    let (status, _) = server.query_raw("SELECT * FROM v", "json").await;
    assert_eq!(status, 400, "the view is gone");
    server.terminate();
}

#[tokio::test]
async fn a_row_that_makes_a_view_fail_is_refused_alone_and_nothing_of_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        "CREATE TABLE t (a BIGINT, b BIGINT);\n\
         CREATE VIEW q AS SELECT a / b AS ratio FROM t;\n\
         CREATE VIEW s AS SELECT COUNT(*) AS n, SUM(a) AS total FROM t;\n",
    );
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let client = reqwest::Client::new();
    // Concurrent pushes, one of which divides by zero: it alone is refused, with the view
    // named; the others are stored, and both views agree with the table.
    let pushes: Vec<_> = (0..12i64)
        .map(|i| {
            let client = client.clone();
            let url = format!("{}/v1/tables/t/ingress", server.base);
            tokio::spawn(async move {
                let b = if i == 5 { 0 } else { 2 };
                let r = client
                    .post(url)
                    .body(format!("{{\"a\": {}, \"b\": {b}}}\n", i * 10))
                    .send()
                    .await
                    .unwrap();
                (i, r.status().as_u16(), r.text().await.unwrap())
            })
        })
        .collect();
    for push in pushes {
        let (i, status, body) = push.await.unwrap();
        if i == 5 {
            assert_eq!(status, 400, "{body}");
            assert!(
                body.contains("view q") && body.contains("ivide by zero"),
                "{body}"
            );
        } else {
            assert_eq!(status, 200, "push {i}: {body}");
        }
    }
    assert_eq!(int(&server.scalar("SELECT COUNT(*) FROM t").await), 11);
    assert_eq!(int(&server.scalar("SELECT n FROM s").await), 11);
    assert_eq!(
        int(&server.scalar("SELECT total FROM s").await),
        (0..12).filter(|i| *i != 5).map(|i| i * 10).sum::<i64>()
    );
    assert_eq!(int(&server.scalar("SELECT COUNT(*) FROM q").await), 11);
    let (replayed, _) = replay(&server, "s").await;
    assert_eq!(replayed, sorted(server.query("SELECT * FROM s").await));
}
