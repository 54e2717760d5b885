//! `GET /v1/egress/{table}`: change streams from the real binary, fed by polled tables on a
//! local wiremock server: order, resume with `from=N` (also across a SIGKILL restart),
//! keyed updates, CSV, `follow=false`, keepalives, parameter errors, drops without
//! backpressure, and SIGTERM with a stream open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::harness::{Server, write_file};

const WAIT: Duration = Duration::from_secs(20);

/// Answers each poll with `count` rows `{"n": <poll number>, "i": 0..count, "pad": ...}`,
/// so every poll is a new log entry and `n` grows with the sequence number.
struct Counter {
    polls: Arc<AtomicU64>,
    count: usize,
    pad: usize,
}

impl Respond for Counter {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        let rows: Vec<_> = (0..self.count)
            .map(|i| json!({"n": n, "i": i, "pad": "x".repeat(self.pad)}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!(rows))
    }
}

async fn api(count: usize, pad: usize) -> MockServer {
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Counter {
            polls: Arc::new(AtomicU64::new(0)),
            count,
            pad,
        })
        .mount(&api)
        .await;
    api
}

/// A change stream read line by line.
struct Stream {
    response: reqwest::Response,
    pending: Vec<u8>,
}

impl Stream {
    async fn open(server: &Server, table: &str, query: &str) -> Stream {
        let response = reqwest::get(format!("{}/v1/egress/{table}?{query}", server.base))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/x-ndjson",
            "{:?}",
            response.headers()
        );
        Stream {
            response,
            pending: Vec::new(),
        }
    }

    /// The next line (checked to end in CRLF) as JSON; `None` when the body ended.
    async fn line(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(at) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.pending.drain(..at + 2).collect();
                let text = std::str::from_utf8(&line[..at]).unwrap();
                assert!(!text.contains('\n'), "a line break inside a line: {text}");
                return Some(serde_json::from_str(text).unwrap());
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("no line in time")
                .unwrap();
            match chunk {
                Some(bytes) => self.pending.extend_from_slice(&bytes),
                None => {
                    assert!(self.pending.is_empty(), "a cut line: {:?}", self.pending);
                    return None;
                }
            }
        }
    }

    /// The next data line (keepalives skipped).
    async fn data(&mut self) -> Value {
        loop {
            let line = self.line(WAIT).await.expect("the stream ended");
            if line != json!({}) {
                return line;
            }
        }
    }
}

fn seq(line: &Value) -> u64 {
    line["sequence_number"].as_u64().unwrap()
}

fn pipeline(
    dir: &std::path::Path,
    api: &MockServer,
    table: &str,
    extra: &str,
) -> std::path::PathBuf {
    let sql = format!(
        "CREATE TABLE {table} (n BIGINT, i INT, pad TEXT{extra}) WITH (connector = 'polling_http', \
         endpoint = '{}/e', poll_interval_ms = 30);\nCREATE TABLE idle (x TEXT);",
        api.uri()
    );
    write_file(dir, "p.sql", &sql)
}

#[tokio::test]
async fn every_change_in_order_and_resume_without_gap_across_a_restart() {
    let api = api(2, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = pipeline(dir.path(), &api, "items", "");
    let mut server = Server::start(&data, &[&file], &[]).await;

    let mut stream = Stream::open(&server, "items", "from=beginning").await;
    assert_eq!(stream.line(Duration::from_secs(2)).await, Some(json!({})));
    let mut seen = Vec::new();
    let mut last_n = 0;
    while seen.len() < 5 {
        let line = stream.data().await;
        let rows = line["json_data"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{line}");
        let n = rows[0]["insert"]["n"].as_i64().unwrap();
        assert!(n > last_n, "{line}");
        assert_eq!(rows[1]["insert"]["i"], 1, "{line}");
        last_n = n;
        seen.push(seq(&line));
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    drop(stream);

    // Reconnect after the last number seen: the next one, nothing repeated.
    let mut stream = Stream::open(&server, "items", "from=5").await;
    let mut last = 5;
    for _ in 0..3 {
        let s = seq(&stream.data().await);
        assert_eq!(s, last + 1);
        last = s;
    }
    drop(stream);

    // Across a SIGKILL and a restart on the same data directory.
    server.kill();
    let server = Server::start(&data, &[&file], &[]).await;
    let mut stream = Stream::open(&server, "items", &format!("from={last}")).await;
    for _ in 0..3 {
        let s = seq(&stream.data().await);
        assert_eq!(s, last + 1);
        last = s;
    }
}

/// Answers `{"id": 1, "v": <poll number>}`: each poll updates the one key.
struct Updates(AtomicU64);

impl Respond for Updates {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let v = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(json!([{"id": 1, "v": v}]))
    }
}

#[tokio::test]
async fn keyed_updates_csv_follow_false_and_parameter_errors() {
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Updates(AtomicU64::new(0)))
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE k (id BIGINT, v BIGINT, PRIMARY KEY (id)) WITH (connector = 'polling_http', \
         endpoint = '{}/k', poll_interval_ms = 30);",
        api.uri()
    );
    let file = write_file(dir.path(), "k.sql", &sql);
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;

    let mut json_stream = Stream::open(&server, "k", "from=beginning&format=json").await;
    let first = json_stream.data().await;
    assert_eq!(seq(&first), 1);
    let v1 = first["json_data"][0]["insert"]["v"].clone();
    assert_eq!(first["json_data"], json!([{"insert": {"id": 1, "v": v1}}]));
    let second = json_stream.data().await;
    assert_eq!(seq(&second), 2);
    let v2 = second["json_data"][1]["insert"]["v"].clone();
    assert_eq!(
        second["json_data"],
        json!([{"delete": {"id": 1, "v": v1}}, {"insert": {"id": 1, "v": v2}}]),
        "an update is a delete and an insert in one chunk"
    );

    let mut csv = Stream::open(&server, "k", "from=beginning&format=csv").await;
    let line = csv.data().await;
    assert_eq!(seq(&line), 1);
    assert_eq!(line["text_data"], format!("1,{v1},1\n"));
    let line = csv.data().await;
    assert_eq!(line["text_data"], format!("1,{v1},-1\n1,{v2},1\n"));
    assert!(line.get("json_data").is_none());

    // follow=false ends after what was committed when the request arrived.
    let mut once = Stream::open(&server, "k", "from=beginning&follow=false").await;
    let mut last = 0;
    while let Some(line) = once.line(WAIT).await {
        if line != json!({}) {
            assert_eq!(seq(&line), last + 1);
            last = seq(&line);
        }
    }
    assert!(last >= 2);

    let client = reqwest::Client::new();
    for (query, parameter) in [
        ("format=xml", "format"),
        ("backpressure=maybe", "backpressure"),
        ("from=yesterday", "from"),
        ("follow=sometimes", "follow"),
    ] {
        let r = client
            .get(format!("{}/v1/egress/k?{query}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains(&format!("`{parameter}`")),
            "{body}"
        );
    }
    let r = client
        .get(format!("{}/v1/egress/nope", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn keepalives_at_once_and_after_three_idle_seconds_and_sigterm_ends_streams() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "idle.sql", "CREATE TABLE idle (x TEXT);");
    let mut server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let opened = Instant::now();
    let mut stream = Stream::open(&server, "idle", "").await;
    assert_eq!(stream.line(Duration::from_secs(1)).await, Some(json!({})));
    assert!(opened.elapsed() < Duration::from_secs(1));
    assert_eq!(stream.line(Duration::from_secs(6)).await, Some(json!({})));
    let idle = opened.elapsed();
    assert!(
        idle >= Duration::from_millis(2900) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
    // A stream never hung up by its reader does not hold up a graceful shutdown.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(stream.line(Duration::from_secs(5)).await, None);
}

#[tokio::test]
async fn a_slow_reader_without_backpressure_gets_counted_drops_while_another_loses_nothing() {
    // Big entries (~40 rows × 4 KiB) so the socket buffers cannot hold 100 of them.
    let api = api(40, 4096).await;
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline(dir.path(), &api, "big", "");
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let mut slow = Stream::open(&server, "big", "backpressure=false").await;
    let mut careful = Stream::open(&server, "big", "").await;
    assert_eq!(slow.line(WAIT).await, Some(json!({})));
    // The careful reader keeps up while the slow one reads nothing.
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while last < 260 {
        let s = seq(&careful.data().await);
        assert!(last == 0 || s == last + 1, "gap after {last}: {s}");
        last = s;
        assert!(Instant::now() < deadline, "too few commits: {last}");
    }
    let mut dropped = 0;
    let mut previous = 0;
    while previous < last {
        let line = slow.data().await;
        let s = seq(&line);
        let k = line.get("dropped").and_then(Value::as_u64).unwrap_or(0);
        if previous > 0 {
            assert_eq!(s, previous + 1 + k, "a gap not counted as dropped");
        }
        dropped += k;
        previous = s;
    }
    assert!(dropped > 0, "the slow reader never fell 100 chunks behind");
    let metrics = server.get_text("/metrics").await;
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("siphon_egress_dropped_chunks_total{table=\"big\"} "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    assert_eq!(counted, dropped);
}

#[tokio::test]
async fn the_stream_says_where_it_starts_so_a_now_reader_can_resume_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.sql", "CREATE TABLE t (id INT);");
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let client = reqwest::Client::new();
    let push = |id: i32| {
        let client = client.clone();
        let url = format!("{}/v1/tables/t/ingress", server.base);
        async move {
            let r = client
                .post(url)
                .body(format!("{{\"id\":{id}}}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    push(1).await;
    push(2).await;
    let start_after = |from: &str| {
        let client = client.clone();
        let url = format!("{}/v1/egress/t?from={from}&follow=false", server.base);
        async move {
            let r = client.get(url).send().await.unwrap();
            r.headers()["x-siphon-start-after"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    assert_eq!(start_after("now").await, 2);
    assert_eq!(start_after("beginning").await, 0);
    assert_eq!(start_after("1").await, 1);
    // A commit after a `now` stream opened is after its start: resuming from the header
    // loses nothing.
    let after = start_after("now").await;
    push(3).await;
    let chunks = server.changes("t", &after.to_string()).await;
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    assert_eq!(chunks[0]["json_data"], json!([{"insert": {"id": 3}}]));
}
