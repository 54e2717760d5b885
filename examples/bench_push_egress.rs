//! Push ingress and egress fan-out, measured over real HTTP against a real `siphon run`.
//!
//! `cargo build --release && cargo run --release --example bench_push_egress [SIPHON_BIN]`
//!
//! Starts the release binary on 127.0.0.1 with a fresh data directory, then:
//! * push: NDJSON batches of 1, 100 and 10,000 records (~190 bytes each: id, uuid, name,
//!   email, created_at, amount, status) with 1 and 16 concurrent pushers, each push durable
//!   when answered; records/s and MB/s over the whole run of each case;
//! * egress: a table of 200 commits of 1,000 rows read by 10 and 100 concurrent readers
//!   (`from=beginning&follow=false`), changes/s delivered in total.
//!
//! It prints the server's peak RSS (VmHWM) at the end. The client runs on the same machine
//! and shares its cores, so the figures are for the pair.

use std::process::{Child, Command, Stdio};

#[path = "support/mod.rs"]
mod support;
use std::time::{Duration, Instant};
use support::{peak_rss_mb, record};

const PIPELINE: &str = "CREATE TABLE bench (id BIGINT, uuid TEXT, name TEXT, email TEXT, created_at TIMESTAMP, amount DOUBLE, status TEXT);
CREATE TABLE fan (id BIGINT, uuid TEXT, name TEXT, email TEXT, created_at TIMESTAMP, amount DOUBLE, status TEXT);";

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(bin: &str, dir: &std::path::Path) -> Server {
    let file = dir.join("bench.sql");
    std::fs::write(&file, PIPELINE).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "siphon did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

/// Pushes `requests` batches of `batch` records from each of `pushers` tasks.
async fn push_case(server: &Server, next_id: &mut u64, batch: u64, pushers: u64, requests: u64) {
    let mut bodies = Vec::new();
    let mut bytes = 0usize;
    for _ in 0..pushers {
        let mut mine = Vec::new();
        for _ in 0..requests {
            let body: String = (0..batch).map(|k| record(*next_id + k)).collect();
            *next_id += batch;
            bytes += body.len();
            mine.push(body);
        }
        bodies.push(mine);
    }
    let started = Instant::now();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|mine| {
            let url = format!("{}/v1/tables/bench/ingress", server.base);
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for body in mine {
                    let r = client.post(&url).body(body).send().await.unwrap();
                    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let records = (batch * pushers * requests) as f64;
    println!(
        "push  batch {batch:>6}  pushers {pushers:>2}  {:>9.0} records/s  {:>6.1} MB/s  ({} records, {} requests, {secs:.2} s)",
        records / secs,
        bytes as f64 / secs / 1e6,
        records,
        pushers * requests
    );
}

/// Reads the whole change stream of `fan` with `readers` concurrent readers.
async fn egress_case(server: &Server, readers: usize, commits: u64, rows: u64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..readers)
        .map(|_| {
            let url = format!("{}/v1/egress/fan?from=beginning&follow=false", server.base);
            tokio::spawn(async move {
                let mut response = reqwest::get(&url).await.unwrap();
                assert_eq!(response.status(), 200);
                let (mut chunks, mut bytes) = (0u64, 0u64);
                while let Some(part) = response.chunk().await.unwrap() {
                    bytes += part.len() as u64;
                    // One data line per commit; keepalives are `{}`.
                    chunks += part
                        .windows(18)
                        .filter(|w| w == b"{\"sequence_number\"")
                        .count() as u64;
                }
                (chunks, bytes)
            })
        })
        .collect();
    let mut bytes = 0;
    for t in tasks {
        let (chunks, b) = t.await.unwrap();
        assert_eq!(chunks, commits, "a reader missed commits");
        bytes += b;
    }
    let secs = started.elapsed().as_secs_f64();
    let changes = (readers as u64 * commits * rows) as f64;
    println!(
        "egress readers {readers:>3}  {:>10.0} changes/s delivered in total  {:>7.1} MB/s  ({changes} changes, {secs:.2} s)",
        changes / secs,
        bytes as f64 / secs / 1e6
    );
}

#[tokio::main]
async fn main() {
    let bin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/siphon".into());
    let dir = tempfile::tempdir().unwrap();
    let server = start(&bin, dir.path()).await;
    let mut next_id = 0;
    for (batch, pushers, requests) in [
        (1, 1, 2_000),
        (1, 16, 250),
        (100, 1, 500),
        (100, 16, 60),
        (10_000, 1, 60),
        (10_000, 16, 6),
    ] {
        push_case(&server, &mut next_id, batch, pushers, requests).await;
    }

    println!(
        "server peak RSS after the pushes (VmHWM): {:.1} MB",
        peak_rss_mb(server.child.id())
    );

    let (commits, rows) = (200u64, 1_000u64);
    let client = reqwest::Client::new();
    for c in 0..commits {
        let body: String = (0..rows).map(|k| record(c * rows + k)).collect();
        let r = client
            .post(format!("{}/v1/tables/fan/ingress", server.base))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for readers in [1, 10, 100] {
        egress_case(&server, readers, commits, rows).await;
        println!(
            "server peak RSS (VmHWM) after {readers} reader(s): {:.1} MB",
            peak_rss_mb(server.child.id())
        );
    }
}
