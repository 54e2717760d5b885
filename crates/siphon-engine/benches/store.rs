//! Throughput of the embedded store: durable commits of poll-sized batches (one redb
//! transaction with fsync each, as a poll commits) and a full scan of the log as a query
//! reads it. Run with `cargo bench -p siphon-engine --bench store`; prints records/s and
//! MB/s and the process's peak RSS.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use siphon_engine::store::{Commit, Store};

const BATCHES: usize = 200;
const ROWS: usize = 5000;

fn batch(n: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
    ]));
    let ids: Vec<i64> = (0..ROWS as i64).map(|i| (n * ROWS) as i64 + i).collect();
    let names: Vec<String> = ids
        .iter()
        .map(|i| format!("record-{i:08}-with-some-text"))
        .collect();
    let values: Vec<f64> = ids.iter().map(|i| *i as f64 * 0.5).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(values)),
        ],
    )
    .unwrap()
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        })
        .unwrap_or(0)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let batches: Vec<RecordBatch> = (0..BATCHES).map(batch).collect();
    let bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let start = Instant::now();
    for (i, b) in batches.iter().enumerate() {
        let state = format!("{{\"polls\":{i}}}");
        store
            .commit(&Commit {
                table: "t",
                batch: Some(b),
                state: Some(state.as_bytes()),
                dead_letters: &[],
                unkeyed_deletes: 0,
            })
            .unwrap();
    }
    let commit = start.elapsed().as_secs_f64();
    let records = (BATCHES * ROWS) as f64;
    println!(
        "commit: {BATCHES} durable commits of {ROWS} rows in {commit:.2}s: {:.0} commits/s, {:.2}M records/s, {:.0} MB/s (Arrow memory size)",
        BATCHES as f64 / commit,
        records / commit / 1e6,
        bytes as f64 / commit / 1e6
    );
    drop(batches);
    let start = Instant::now();
    let mut seen = 0usize;
    store
        .scan_log("t", &mut |b| {
            seen += b.num_rows();
            true
        })
        .unwrap();
    let scan = start.elapsed().as_secs_f64();
    assert_eq!(seen, BATCHES * ROWS);
    println!(
        "scan: {seen} records in {scan:.3}s: {:.2}M records/s, {:.0} MB/s",
        seen as f64 / scan / 1e6,
        bytes as f64 / scan / 1e6
    );
    println!("peak RSS: {} kB", peak_rss_kb());
}
