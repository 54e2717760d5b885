//! Crash safety: `kill -9` at random moments while polling a source whose every response is
//! distinct. After each restart the table holds whole responses only, each exactly once,
//! and the commit sequence numbers have no gaps.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::harness::{Server, int, write_file};

const RECORDS_PER_RESPONSE: i64 = 5;

struct Distinct(Arc<AtomicU64>);

impl Respond for Distinct {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let data: Vec<_> = (0..RECORDS_PER_RESPONSE)
            .map(|i| json!({"n": n, "i": i, "pad": "x".repeat(200)}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
    }
}

#[tokio::test]
async fn sigkill_loses_and_duplicates_nothing() {
    let sent = Arc::new(AtomicU64::new(0));
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Distinct(sent.clone()))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = format!(
        "CREATE TABLE events (n BIGINT, i INT, pad TEXT) WITH (connector = 'polling_http', endpoint = '{}/e', poll_interval_ms = 5, json_path = '$.data[*]');",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);

    // Kill at varied moments: early (during startup and first polls) and later.
    let delays_ms = [0u64, 7, 30, 55, 90, 140, 210, 333, 15, 480];
    for delay in delays_ms {
        let mut server = Server::spawn(&data, &[&file], &[]);
        if delay > 0 {
            server.wait_ready().await;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
    }

    let server = Server::start(&data, &[&file], &[]).await;
    // Stop the source from producing more while we look: read a consistent snapshot.
    let rows = server
        .query("SELECT n, count(*) AS c, count(DISTINCT i) AS d FROM events GROUP BY n ORDER BY n")
        .await;
    let commits = server
        .query("SELECT sequence_number, first_record, records FROM system.commits WHERE table_name = 'events' ORDER BY sequence_number")
        .await;
    drop(server);

    let responses_sent = sent.load(Ordering::SeqCst) as i64;
    assert!(
        responses_sent > 10,
        "the source barely polled ({responses_sent} responses)"
    );
    // Every stored response is whole and stored once.
    let mut seen = HashMap::new();
    for row in &rows {
        let n = int(&row["n"]);
        assert_eq!(
            int(&row["c"]),
            RECORDS_PER_RESPONSE,
            "response {n} stored partly or twice: {row}"
        );
        assert_eq!(int(&row["d"]), RECORDS_PER_RESPONSE, "response {n}: {row}");
        assert!(n >= 1 && n <= responses_sent, "response {n} was never sent");
        assert!(seen.insert(n, ()).is_none());
    }
    // One commit per stored response, numbered 1..=N without gaps, records contiguous.
    let stored_in_snapshot: i64 = commits.iter().map(|c| int(&c["records"])).sum();
    assert!(
        commits.len() >= rows.len(),
        "commits {} < responses {}",
        commits.len(),
        rows.len()
    );
    let mut expected_first = 0;
    for (i, c) in commits.iter().enumerate() {
        assert_eq!(
            int(&c["sequence_number"]),
            i as i64 + 1,
            "gap in sequence numbers: {commits:?}"
        );
        assert_eq!(
            int(&c["first_record"]),
            expected_first,
            "gap in record offsets"
        );
        assert_eq!(int(&c["records"]), RECORDS_PER_RESPONSE);
        expected_first += RECORDS_PER_RESPONSE;
    }
    assert!(stored_in_snapshot >= rows.len() as i64 * RECORDS_PER_RESPONSE);
    println!(
        "crash test: {} responses sent, {} stored, {} kills",
        responses_sent,
        rows.len(),
        delays_ms.len()
    );
}

/// Every poll walks 3 pages of 4 records; the first page's request starts a new poll
/// number, so each poll's records are distinct.
struct PagedPolls(Arc<AtomicU64>);

impl Respond for PagedPolls {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let offset: u64 = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "offset")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let poll = if offset == 0 {
            self.0.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.0.load(Ordering::SeqCst)
        };
        let data: Vec<_> = if offset >= 12 {
            Vec::new()
        } else {
            (0..4)
                .map(|i| json!({"poll": poll, "rec": offset + i}))
                .collect()
        };
        ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
    }
}

#[tokio::test]
async fn sigkill_during_paginated_polls_keeps_whole_polls_only() {
    let polls = Arc::new(AtomicU64::new(0));
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(PagedPolls(polls.clone()))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = format!(
        "CREATE TABLE paged (poll BIGINT, rec BIGINT) WITH (connector = 'polling_http', endpoint = '{}/p', poll_interval_ms = 5,
         json_path = '$.data[*]', pagination_type = 'offset', page_size = 4);",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    for delay in [3u64, 20, 45, 80, 120, 170, 260, 9, 400] {
        let mut server = Server::spawn(&data, &[&file], &[]);
        server.wait_ready().await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
    }
    let server = Server::start(&data, &[&file], &[]).await;
    let rows = server
        .query("SELECT poll, count(*) AS c, count(DISTINCT rec) AS d, min(rec) AS lo, max(rec) AS hi FROM paged GROUP BY poll")
        .await;
    drop(server);
    assert!(rows.len() > 3, "too few polls committed: {rows:?}");
    for row in &rows {
        assert_eq!(
            (
                int(&row["c"]),
                int(&row["d"]),
                int(&row["lo"]),
                int(&row["hi"])
            ),
            (12, 12, 0, 11),
            "a partial or repeated poll: {row}"
        );
    }
    println!(
        "paginated crash test: {} polls started, {} committed whole",
        polls.load(Ordering::SeqCst),
        rows.len()
    );
}

/// An API with a growing list and an exclusive `since` filter on `id`: each request makes
/// three more records visible and returns those past `since`. The state (the highest `id`
/// stored) must commit with the records, or a restart re-stores or skips some.
struct Growing {
    visible: Arc<AtomicU64>,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    sinces: Arc<std::sync::Mutex<Vec<Option<u64>>>>,
}

impl Respond for Growing {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let since: Option<u64> = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "since")
            .map(|(_, v)| v.parse().unwrap());
        self.sinces.lock().unwrap().push(since);
        let visible = if self.frozen.load(Ordering::SeqCst) {
            self.visible.load(Ordering::SeqCst)
        } else {
            self.visible.fetch_add(3, Ordering::SeqCst) + 3
        };
        let data: Vec<_> = (since.unwrap_or(0) + 1..=visible)
            .map(|id| json!({"id": id, "pad": "x".repeat(100)}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
    }
}

#[tokio::test]
async fn sigkill_with_incremental_state_stores_each_record_once_and_commits_the_state_with_them() {
    let visible = Arc::new(AtomicU64::new(0));
    let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sinces = Arc::new(std::sync::Mutex::new(Vec::new()));
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Growing {
            visible: visible.clone(),
            frozen: frozen.clone(),
            sinces: sinces.clone(),
        })
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = format!(
        "CREATE TABLE grow (id BIGINT, pad TEXT) WITH (connector = 'polling_http', endpoint = '{}/g', poll_interval_ms = 5,
         json_path = '$.data[*]', state_type = 'checkpoint', state_field = 'id', state_param = 'since');",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    for delay in [0u64, 11, 37, 64, 5, 150, 95, 230, 18, 310, 47] {
        let mut server = Server::spawn(&data, &[&file], &[]);
        if delay > 0 {
            server.wait_ready().await;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
    }
    frozen.store(true, Ordering::SeqCst);
    let total = visible.load(Ordering::SeqCst) as i64;
    assert!(total > 30, "the source barely polled ({total} records)");

    let server = Server::start(&data, &[&file], &[]).await;
    let rows = server
        .wait_for(
            "SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM grow",
            Duration::from_secs(20),
            |r| int(&r[0]["d"]) == total,
        )
        .await;
    assert_eq!(
        (int(&rows[0]["n"]), int(&rows[0]["lo"]), int(&rows[0]["hi"])),
        (total, 1, total),
        "records lost or stored twice: {rows:?}"
    );
    // The state that commits with the last poll is its maximum: later requests ask for
    // what comes after it, and nothing after it was stored.
    let seen_before = sinces.lock().unwrap().len();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sinces.lock().unwrap().len() < seen_before + 2 {
        assert!(std::time::Instant::now() < deadline, "no more polls");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = *sinces.lock().unwrap().last().unwrap();
    assert_eq!(
        last,
        Some(total as u64),
        "the saved state is not the last poll's"
    );
    assert_eq!(
        int(&server.scalar("SELECT count(*) FROM grow").await),
        total
    );
}

/// The whole list of a keyed table, changing with every request until frozen: keys come
/// and go and names change, so a snapshot diff has inserts, updates and deletes.
struct Shifting {
    version: Arc<AtomicU64>,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

fn snapshot(version: u64) -> Vec<serde_json::Value> {
    (1..=24u64)
        .filter(|k| !(k + version).is_multiple_of(5))
        .map(|k| json!({"id": k, "name": format!("k{k}-{}", version / k)}))
        .collect()
}

impl Respond for Shifting {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.down.load(Ordering::SeqCst) {
            return ResponseTemplate::new(503);
        }
        let version = if self.frozen.load(Ordering::SeqCst) {
            self.version.load(Ordering::SeqCst)
        } else {
            self.version.fetch_add(1, Ordering::SeqCst) + 1
        };
        ResponseTemplate::new(200).set_body_json(json!({ "data": snapshot(version) }))
    }
}

#[tokio::test]
async fn sigkill_on_a_keyed_table_leaves_exactly_the_last_snapshot() {
    let version = Arc::new(AtomicU64::new(0));
    let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Shifting {
            version: version.clone(),
            frozen: frozen.clone(),
            down: down.clone(),
        })
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = format!(
        "CREATE TABLE keyed (id BIGINT, name TEXT, PRIMARY KEY (id)) WITH (connector = 'polling_http', endpoint = '{}/k',
         poll_interval_ms = 5, json_path = '$.data[*]');",
        api.uri()
    );
    let file = write_file(dir.path(), "p.sql", &sql);
    for delay in [0u64, 23, 8, 71, 140, 33, 260, 12, 190] {
        let mut server = Server::spawn(&data, &[&file], &[]);
        if delay > 0 {
            server.wait_ready().await;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
    }
    frozen.store(true, Ordering::SeqCst);
    let last = version.load(Ordering::SeqCst);
    assert!(last > 10, "the source barely polled ({last} snapshots)");
    let expected: Vec<serde_json::Value> = snapshot(last);

    // With the API down, the restarted table is its log replayed: exactly one of the
    // snapshots served, whole (no lost delete, no half-applied diff).
    down.store(true, Ordering::SeqCst);
    let server = Server::start(&data, &[&file], &[]).await;
    let replayed = server.query("SELECT id, name FROM keyed ORDER BY id").await;
    assert!(
        (1..=last).any(|v| snapshot(v) == replayed),
        "the replayed table is no snapshot the API served: {replayed:?}"
    );
    // Back up: the next poll brings it to the last snapshot.
    down.store(false, Ordering::SeqCst);
    let rows = server
        .wait_for(
            "SELECT id, name FROM keyed ORDER BY id",
            Duration::from_secs(20),
            |r| r == expected.as_slice(),
        )
        .await;
    assert_eq!(rows, expected);
    let commits = server
        .query("SELECT sequence_number FROM system.commits WHERE table_name = 'keyed' ORDER BY sequence_number")
        .await;
    for (i, c) in commits.iter().enumerate() {
        assert_eq!(int(&c["sequence_number"]), i as i64 + 1, "{commits:?}");
    }
}
