//! Many polling sources on one node: schedule lateness, commits and memory, measured from
//! the outside against the release binary.
//!
//! `cargo build --release && cargo run --release --example bench_many_sources -- [SOURCES] [INTERVAL_MS] [SECONDS] [SIPHON_BIN]`
//! (defaults: 1000 sources, every 1000 ms, for 30 s)
//!
//! Serves `/s/{n}` from an in-process HTTP server on 127.0.0.1 (10 small records per
//! response, new ids each time, so every poll appends), writes a pipeline of SOURCES
//! append-only tables polling their own path every INTERVAL_MS, starts `siphon run` on a
//! fresh data directory and records when each request arrives. It prints: the time from
//! spawn to `/readyz`; polls answered and committed; the schedule lateness of each source
//! (the gap between two of its requests minus the interval) as p50, p99 and max over the
//! steady part of the run (after the first 2 intervals); the store's commit transactions
//! against the polls they held (group commit); and siphon's RSS and peak RSS.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::get;

#[path = "support/mod.rs"]
mod support;
use support::{Process, free_port, proc_kb};

type Arrivals = Arc<Mutex<HashMap<u32, Vec<Instant>>>>;

async fn page(State(arrivals): State<Arrivals>, Path(n): Path<u32>) -> String {
    let now = Instant::now();
    let count = {
        let mut map = arrivals.lock().unwrap();
        let list = map.entry(n).or_default();
        list.push(now);
        list.len()
    };
    let base = count * 10;
    let rows: Vec<String> = (base..base + 10)
        .map(|i| format!("{{\"id\":{i},\"v\":\"source {n} row {i}\"}}"))
        .collect();
    format!("[{}]", rows.join(","))
}

fn metric_sum(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sources: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let interval_ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(30);
    let bin = args
        .get(4)
        .cloned()
        .unwrap_or_else(|| "target/release/siphon".into());

    let arrivals: Arrivals = Arc::default();
    let app = axum::Router::new()
        .route("/s/{n}", get(page))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = String::new();
    for n in 0..sources {
        pipeline.push_str(&format!(
            "CREATE TABLE s{n} (id BIGINT, v TEXT) WITH (connector = 'polling_http_source', endpoint = 'http://{api}/s/{n}', interval_ms = {interval_ms});\n"
        ));
    }
    let file = dir.path().join("many.sql");
    std::fs::write(&file, pipeline).unwrap();
    let port = free_port();
    let spawned = Instant::now();
    let child = Process(
        Command::new(&bin)
            .arg("run")
            .arg(&file)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the siphon binary runs"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(
            spawned.elapsed() < Duration::from_secs(300),
            "siphon did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = spawned.elapsed();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pid = child.0.id();
    let (rss, peak) = (proc_kb(pid, "VmRSS:"), proc_kb(pid, "VmHWM:"));

    let interval = Duration::from_millis(interval_ms);
    let steady = started + interval * 2;
    let mut lateness: Vec<f64> = Vec::new();
    let mut requests = 0usize;
    for times in arrivals.lock().unwrap().values() {
        requests += times.len();
        for pair in times.windows(2) {
            if pair[0] >= steady {
                let gap = pair[1].duration_since(pair[0]).as_secs_f64() * 1000.0;
                lateness.push(gap - interval_ms as f64);
            }
        }
    }
    lateness.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let polls_ok = metric_sum(&metrics, "siphon_polls_total", "status=\"ok\"");
    let polls_err = metric_sum(&metrics, "siphon_polls_total", "status=\"error\"");
    let transactions = metric_sum(&metrics, "siphon_store_commit_transactions_total", "");
    let run = started.elapsed().as_secs_f64() + ready.as_secs_f64();
    println!(
        "{sources} sources every {interval_ms} ms for {seconds} s: ready in {:.2} s; {requests} requests, {polls_ok} polls committed, {polls_err} failed ({:.0} polls/s over the run)",
        ready.as_secs_f64(),
        polls_ok / run
    );
    println!(
        "schedule lateness over {} gaps: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lateness.len(),
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "store commit transactions: {transactions} for {polls_ok} polls ({:.1} polls per transaction); siphon RSS {:.1} MB, peak {:.1} MB",
        polls_ok / transactions.max(1.0),
        rss / 1024.0,
        peak / 1024.0
    );
}
