//! Incremental loads against an inclusive API (`updated_since=T` returns `updatedAt >= T`,
//! as most APIs do): the records at the saved maximum come back on every poll and must not
//! be stored again, while records that arrive later at that same instant must be stored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::harness::{Server, int, write_file};

/// The API's records, `(id, updated_at)`, shared with the test that adds to them.
type Records = Arc<Mutex<Vec<(u64, DateTime<Utc>)>>>;

/// Answers with the records at or after `since` (inclusive).
struct Inclusive {
    records: Records,
    requests: Arc<AtomicU64>,
    /// Each request first makes one more record of `grow` visible (for the crash test).
    grow: Option<Arc<AtomicU64>>,
}

/// Record `id` of the growing feed: two records share each instant.
fn growing_record(id: u64) -> (u64, DateTime<Utc>) {
    (
        id,
        Utc.timestamp_opt(1_700_000_000 + (id / 2) as i64, 0)
            .unwrap(),
    )
}

impl Respond for Inclusive {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(grow) = &self.grow {
            let id = grow.fetch_add(1, Ordering::SeqCst) + 1;
            self.records.lock().unwrap().push(growing_record(id));
        }
        let since: Option<DateTime<Utc>> = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "since")
            .map(|(_, v)| DateTime::parse_from_rfc3339(&v).unwrap().to_utc());
        let data: Vec<_> = self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, at)| since.is_none_or(|s| *at >= s))
            .map(|(id, at)| json!({"id": id, "updated_at": at.to_rfc3339()}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
    }
}

/// An inclusive API serving `initial` (and, with `grow`, one more record per request):
/// the server, its records and its request count.
async fn inclusive_api(
    initial: Vec<(u64, DateTime<Utc>)>,
    grow: Option<Arc<AtomicU64>>,
) -> (MockServer, Records, Arc<AtomicU64>) {
    let records = Arc::new(Mutex::new(initial));
    let requests = Arc::new(AtomicU64::new(0));
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Inclusive {
            records: records.clone(),
            requests: requests.clone(),
            grow,
        })
        .mount(&api)
        .await;
    (api, records, requests)
}

fn pipeline(dir: &std::path::Path, api: &MockServer, extra: &str) -> std::path::PathBuf {
    write_file(
        dir,
        "p.sql",
        &format!(
            "CREATE TABLE feed (id BIGINT, updated_at TIMESTAMP) WITH (connector = 'polling_http_source',
             endpoint = '{}/feed', interval_ms = 20, json_path = '$.data[*]', state_type = 'timestamp',
             state_field = 'updated_at', state_param = 'since'{extra});",
            api.uri()
        ),
    )
}

async fn wait_requests(requests: &AtomicU64, more: u64) {
    let target = requests.load(Ordering::SeqCst) + more;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while requests.load(Ordering::SeqCst) < target {
        assert!(
            std::time::Instant::now() < deadline,
            "the source stopped polling"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn at(second: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + second, 0).unwrap()
}

#[tokio::test]
async fn an_inclusive_cursor_stores_each_record_once_and_loses_none_at_the_boundary() {
    let (api, records, requests) = inclusive_api(vec![(1, at(1)), (2, at(2))], None).await;
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), &api, "");
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    server
        .wait_for(
            "SELECT count(*) AS n FROM feed",
            Duration::from_secs(20),
            |r| int(&r[0]["n"]) == 2,
        )
        .await;
    wait_requests(&requests, 5).await;
    // A record that arrives later at the boundary instant, then a newer one.
    records.lock().unwrap().push((3, at(2)));
    wait_requests(&requests, 5).await;
    records.lock().unwrap().push((4, at(3)));
    records.lock().unwrap().push((5, at(3)));
    wait_requests(&requests, 10).await;
    let rows = server.query("SELECT id FROM feed ORDER BY id").await;
    let ids: Vec<i64> = rows.iter().map(|r| int(&r["id"])).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5], "each record once, none lost");
}

#[tokio::test]
async fn without_boundary_dedup_an_inclusive_cursor_stores_the_boundary_again() {
    // The control: shows the test above would see the duplicates.
    let (api, _, requests) = inclusive_api(vec![(1, at(1)), (2, at(2))], None).await;
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), &api, ", boundary_dedup = false");
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    wait_requests(&requests, 6).await;
    let twos = int(&server
        .scalar("SELECT count(*) FROM feed WHERE id = 2")
        .await);
    assert!(twos > 1, "record 2 stored {twos} time(s)");
}

#[tokio::test]
async fn a_lookback_window_catches_a_record_that_appears_late_with_an_older_timestamp() {
    let (api, records, requests) =
        inclusive_api(vec![(1, at(0)), (2, at(50)), (3, at(60))], None).await;
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), &api, ", lookback_ms = 20000");
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    server
        .wait_for(
            "SELECT count(*) AS n FROM feed",
            Duration::from_secs(20),
            |r| int(&r[0]["n"]) == 3,
        )
        .await;
    wait_requests(&requests, 3).await;
    // Record 4 becomes visible now, stamped 15 s before the saved maximum.
    records.lock().unwrap().push((4, at(45)));
    wait_requests(&requests, 6).await;
    let ids: Vec<i64> = server
        .query("SELECT id FROM feed ORDER BY id")
        .await
        .iter()
        .map(|r| int(&r["id"]))
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    // The memory holds the window's records only (2, 3 and 4 lie within 20 s of the
    // maximum), and its size shows in the status.
    assert_eq!(
        int(&server
            .scalar(
                "SELECT boundary_records FROM system.connector_status WHERE table_name = 'feed'"
            )
            .await),
        3
    );
    let sent: Vec<String> = api
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "since")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert!(
        sent.last()
            .is_some_and(|s| s.starts_with("2023-11-14T22:14:00")),
        "the state sent is the maximum minus the window: {sent:?}"
    );
}

#[tokio::test]
async fn sigkill_at_random_moments_neither_duplicates_nor_loses_at_an_inclusive_boundary() {
    let grown = Arc::new(AtomicU64::new(0));
    let (api, _, requests) = inclusive_api(Vec::new(), Some(grown.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = pipeline(dir.path(), &api, "");
    for delay in [0u64, 13, 41, 7, 90, 150, 26, 220, 60] {
        let mut server = Server::spawn(&data, &[&file], &[]);
        if delay > 0 {
            server.wait_ready().await;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
    }
    let server = Server::start(&data, &[&file], &[]).await;
    // Let it catch up, then compare with everything the API made visible.
    wait_requests(&requests, 5).await;
    let visible = grown.load(Ordering::SeqCst) as i64;
    let rows = server
        .wait_for(
            "SELECT count(*) AS n, count(DISTINCT id) AS d, max(id) AS hi FROM feed",
            Duration::from_secs(20),
            |r| int(&r[0]["d"]) >= visible,
        )
        .await;
    let n = int(&rows[0]["n"]);
    let d = int(&rows[0]["d"]);
    assert_eq!(n, d, "records stored twice: {rows:?}");
    assert_eq!(d, int(&rows[0]["hi"]), "records lost: {rows:?}");
    assert!(visible > 20, "the source barely polled ({visible} records)");
}
