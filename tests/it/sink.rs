//! The NATS JetStream sink against a real `nats-server -js` on 127.0.0.1: every change
//! of the input is in the stream exactly once, in order, across SIGKILLs of siphon, a
//! stopped NATS server, and a restart after the duplicate window has passed; and the
//! load-time checks of `CREATE SINK`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Server, free_port, int, siphon, write_file};

/// A `nats-server -js` on 127.0.0.1 with its store in a directory of the test's.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    fn binary() -> &'static str {
        [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect(
            "nats-server is missing: run scripts/install-test-deps.sh (Debian package nats-server)",
        )
    }

    async fn start(store: &Path) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store: store.to_path_buf(),
        };
        server.restart().await;
        server
    }

    /// Starts it (again) on its port and store; waits until it takes connections.
    async fn restart(&mut self) {
        let child = Command::new(Self::binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while async_nats::connect(self.url()).await.is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message of `stream`: (Nats-Msg-Id, body), in stream order.
    async fn messages(&self, stream: &str) -> Vec<(String, Value)> {
        let client = async_nats::connect(self.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(stream).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return out;
        }
        for seq in state.first_sequence..=state.last_sequence {
            let message = stream.get_raw_message(seq).await.unwrap();
            let id = message
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            out.push((id, serde_json::from_slice(&message.payload).unwrap()));
        }
        out
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Pushes batches of 5 records until `stop`; a failed push (the server died) is dropped.
async fn pusher(base: String, next: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    while !stop.load(Ordering::SeqCst) {
        let id = next.fetch_add(1, Ordering::SeqCst);
        let body: String = (0..5)
            .map(|i| {
                format!(
                    "{{\"push\":{id},\"i\":{i},\"pad\":\"{}\"}}\n",
                    "x".repeat(60)
                )
            })
            .collect();
        let sent = client
            .post(format!("{base}/v1/tables/events/ingress"))
            .body(body)
            .send()
            .await;
        if sent.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn push_for(server: &Server, next: &Arc<AtomicU64>, how_long: Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(pusher(server.base.clone(), next.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(how_long).await;
    stop.store(true, Ordering::SeqCst);
    for p in pushers {
        p.await.unwrap();
    }
}

fn pipeline(dir: &Path, nats: &NatsServer, stream: &str, extra: &str) -> PathBuf {
    write_file(
        dir,
        "sink.sql",
        &format!(
            "CREATE TABLE events (push BIGINT NOT NULL, i INT NOT NULL, pad TEXT);\n\
             CREATE SINK events_out FROM events WITH (\n\
               connector = 'nats_jetstream',\n\
               servers = '{}',\n\
               subject = 'siphon.events',\n\
               stream = '{stream}',\n\
               max_in_flight = 16{extra}\n\
             );",
            nats.url()
        ),
    )
}

/// Waits until the sink has published every committed change.
async fn wait_caught_up(server: &Server) {
    server
        .wait_for(
            "SELECT state, lag FROM system.connector_status WHERE table_name = 'events_out'",
            Duration::from_secs(90),
            |rows| rows.len() == 1 && rows[0]["lag"] == 0 && rows[0]["state"] == "running",
        )
        .await;
}

/// The stream holds every change of `events` exactly once, in order, each as the body
/// `/v1/egress` sends for it, under the id `events:<sequence_number>`.
async fn assert_stream_is_the_log(server: &Server, nats: &NatsServer, stream: &str) -> usize {
    let log = server.changes("events", "beginning").await;
    let messages = nats.messages(stream).await;
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for (id, body) in &messages {
        let seq = int(&body["sequence_number"]);
        assert_eq!(id, &format!("events:{seq}"), "{body}");
        *seen.entry(seq).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "changes published twice: {repeated:?}");
    assert_eq!(
        messages.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
        log,
        "the stream differs from the change log"
    );
    log.len()
}

#[tokio::test]
async fn every_change_reaches_the_stream_exactly_once_across_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats")).await;
    let file = pipeline(dir.path(), &nats, "EVENTS", "");
    let data = dir.path().join("data");
    let next = Arc::new(AtomicU64::new(0));
    for round in 0..3u64 {
        let mut server = Server::start(&data, &[&file], &[]).await;
        push_for(&server, &next, Duration::from_millis(400 + 250 * round)).await;
        server.kill();
    }
    let server = Server::start(&data, &[&file], &[]).await;
    push_for(&server, &next, Duration::from_millis(200)).await;
    wait_caught_up(&server).await;
    let changes = assert_stream_is_the_log(&server, &nats, "EVENTS").await;
    assert!(changes > 10, "only {changes} changes were pushed");
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("siphon_sink_lag{sink=\"events_out\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "siphon_sink_position{{sink=\"events_out\"}} {changes}"
        )),
        "{metrics}"
    );
    let status = siphon(&["status", "--server", &server.base], &[]);
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("events_out (sink of events)"), "{stdout}");
}

#[tokio::test]
async fn a_stopped_nats_server_delays_changes_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(&dir.path().join("nats")).await;
    let file = pipeline(dir.path(), &nats, "EVENTS", ", publish_timeout_ms = 1000");
    let server = Server::start(&dir.path().join("data"), &[&file], &[]).await;
    let next = Arc::new(AtomicU64::new(0));
    push_for(&server, &next, Duration::from_millis(300)).await;
    wait_caught_up(&server).await;

    nats.kill();
    let stopped = Instant::now();
    push_for(&server, &next, Duration::from_millis(500)).await;
    let rows = server
        .wait_for(
            "SELECT state, last_error, lag FROM system.connector_status WHERE table_name = 'events_out'",
            Duration::from_secs(30),
            |rows| rows[0]["state"] == "backoff" && int(&rows[0]["lag"]) > 0,
        )
        .await;
    assert!(
        rows[0]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{rows:?}"
    );
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed())).await;
    nats.restart().await;
    push_for(&server, &next, Duration::from_millis(200)).await;
    wait_caught_up(&server).await;
    assert_stream_is_the_log(&server, &nats, "EVENTS").await;
}

#[tokio::test]
async fn a_sink_that_lost_its_position_resumes_from_the_stream_after_the_duplicate_window() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats")).await;
    let data = dir.path().join("data");
    // The stream drops repeated ids for one second only.
    let file = pipeline(dir.path(), &nats, "SHORT", ", duplicate_window_ms = 1000");
    let next = Arc::new(AtomicU64::new(0));
    let mut server = Server::start(&data, &[&file], &[]).await;
    push_for(&server, &next, Duration::from_millis(300)).await;
    wait_caught_up(&server).await;
    server.terminate();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Dropping the sink drops its saved position; declared again, it would publish from
    // the beginning, and the stream no longer remembers those ids.
    let text = std::fs::read_to_string(&file).unwrap();
    let again = write_file(
        dir.path(),
        "again.sql",
        &text.replace("CREATE SINK", "DROP SINK events_out;\nCREATE SINK"),
    );
    let server = Server::start(&data, &[&again], &[]).await;
    push_for(&server, &next, Duration::from_millis(200)).await;
    wait_caught_up(&server).await;
    assert_stream_is_the_log(&server, &nats, "SHORT").await;
    assert!(
        server
            .log_text()
            .contains("the stream's last message on the subject is events:"),
        "{}",
        server.log_text()
    );
}

#[test]
fn sink_declarations_are_checked_at_load_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "bad.sql",
        "CREATE TABLE events (id BIGINT);\n\
         CREATE SINK s1 FROM evnts WITH (connector = 'nats_jetstream', servers = 'nats://127.0.0.1:4222', subject = 'a');\n\
         CREATE SINK s2 FROM events WITH (connector = 'nats_jetstream',\n  servers = 'nats://127.0.0.1:4222',\n  subject = 'a.>');\n\
         CREATE SINK s3 FROM events WITH (connector = 'kafka', servers = 'x', subject = 'a');\n\
         CREATE SINK events FROM events WITH (connector = 'nats_jetstream', servers = 'nats://h', subject = 'a', password = '${NATS_PASSWORD}');\n",
    );
    let out = siphon(&["check", file.to_str().unwrap()], &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    for expected in [
        "bad.sql:2",
        "unknown table or view `evnts`; did you mean `events`?",
        "bad.sql:5",
        "subject `a.>` contains the wildcard `>`",
        "bad.sql:6",
        "unknown sink connector `kafka`",
        "bad.sql:7",
        "events is a table or view; a sink cannot have its name",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
