//! The JetStream sink's publish rate, measured against a real `nats-server -js`.
//!
//! `cargo build --release && cargo run --release --example bench_sink [SIPHON_BIN]`
//!
//! For each case it starts a private `nats-server -js` (Debian's package) and the release
//! `siphon run` on 127.0.0.1 with fresh directories, pushes the records into a table
//! without a sink (so the backlog is in the log), then restarts siphon with a sink on the
//! table and measures the time from its start until `system.connector_status` shows the
//! sink's lag at 0 and the stream holds every change: changes/s, records/s and MB/s of
//! message bodies, and siphon's peak RSS. Records are ~190 bytes of NDJSON (id, uuid, name,
//! email, created_at, amount, status). Everything shares the machine's cores.

use std::path::Path;
use std::process::{Command, Stdio};

#[path = "support/mod.rs"]
mod support;
use std::time::{Duration, Instant};
use support::{Process, free_port, peak_rss_mb, record};

const TABLE: &str = "CREATE TABLE bench (id BIGINT, uuid TEXT, name TEXT, email TEXT, created_at TIMESTAMP, amount DOUBLE, status TEXT);";

async fn siphon(bin: &str, dir: &Path, pipeline: &str) -> (Process, String) {
    let file = dir.join("bench.sql");
    std::fs::write(&file, pipeline).unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .arg("run")
        .arg(&file)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the siphon binary runs");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "siphon did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (Process(child), base)
}

async fn lag(base: &str) -> Option<i64> {
    let rows: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/query"))
        .json(&serde_json::json!({"sql": "SELECT lag, state, last_error FROM system.connector_status WHERE table_name = 'out'"}))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    rows[0]["lag"].as_i64()
}

async fn case(bin: &str, nats_bin: &str, changes: u64, per_change: u64) {
    let dir = tempfile::tempdir().unwrap();
    let nats_port = free_port();
    let _nats = Process(
        Command::new(nats_bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &nats_port.to_string(),
                "-sd",
            ])
            .arg(dir.path().join("nats"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs"),
    );
    // The backlog: pushed before the sink exists.
    {
        let (_server, base) = siphon(bin, dir.path(), TABLE).await;
        let client = reqwest::Client::new();
        let mut id = 0;
        for _ in 0..changes {
            let body: String = (id..id + per_change).map(record).collect();
            id += per_change;
            let r = client
                .post(format!("{base}/v1/tables/bench/ingress"))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let bytes: u64 = (0..changes * per_change)
        .map(|i| record(i).len() as u64)
        .sum();
    let pipeline = format!(
        "{TABLE}\nCREATE SINK out FROM bench WITH (connector = 'nats_jetstream', servers = 'nats://127.0.0.1:{nats_port}', subject = 'bench.out', stream = 'BENCH');"
    );
    let started = Instant::now();
    let (server, base) = siphon(bin, dir.path(), &pipeline).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if lag(&base).await == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "the sink did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let records = changes * per_change;
    println!(
        "{changes} changes of {per_change} records: {secs:.2} s (start-up included): {:.0} changes/s, {:.0} records/s, {:.1} MB/s of records; siphon peak RSS {:.1} MB",
        changes as f64 / secs,
        records as f64 / secs,
        bytes as f64 / secs / 1e6,
        peak_rss_mb(server.0.id()),
    );
}

#[tokio::main]
async fn main() {
    let bin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/siphon".to_string());
    let nats_bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nats-server (Debian package nats-server) is needed");
    case(&bin, nats_bin, 1_000, 1_000).await;
    case(&bin, nats_bin, 20_000, 10).await;
    case(&bin, nats_bin, 20_000, 1).await;
}
