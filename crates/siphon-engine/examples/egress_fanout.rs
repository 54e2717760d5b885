//! Egress fan-out harness: commits ENTRIES entries of ROWS rows to one table, then L readers
//! (10 and 100) read them all from the beginning through the shared chunk cache, encoding
//! as NDJSON with Arrow's writer. Prints chunks/s and rows/s delivered in total.
//!
//! `cargo run --release -p siphon-engine --example egress_fanout [ENTRIES] [ROWS]`

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use siphon_engine::egress::{Encode, Event, ReaderOptions, Start};
use siphon_engine::pipeline::SourceFile;
use siphon_engine::{Engine, EngineOptions};

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let entries = args.next().unwrap_or(500);
    let rows = args.next().unwrap_or(100) as i64;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        vec![SourceFile {
            path: "bench.sql".into(),
            text: "CREATE TABLE t (id BIGINT, name TEXT);".into(),
        }],
        |_| None,
        EngineOptions::default(),
    )
    .await
    .unwrap();
    let table = engine.table("t").unwrap();
    for e in 0..entries as i64 {
        let ids: Vec<i64> = (0..rows).map(|r| e * rows + r).collect();
        let batch = RecordBatch::try_new(
            table.schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from(
                    ids.iter().map(|i| format!("name {i}")).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        engine
            .commit(&table, Some(batch), None, None, Vec::new())
            .await
            .unwrap();
    }
    let encode: Arc<Encode> = Arc::new(|batch: &RecordBatch| {
        let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
        writer.write(batch).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
        Ok(writer.into_inner())
    });
    for listeners in [10, 100] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..listeners {
            let options = ReaderOptions {
                start: Start::Beginning,
                follow: false,
                ..ReaderOptions::default()
            };
            let mut reader = engine.egress("t", options).await.unwrap();
            let encode = encode.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(event) = reader.next_encoded("ndjson", &*encode).await.unwrap() {
                    if let Event::Chunk(c) = event {
                        n += u64::from(!c.bytes.is_empty());
                    }
                }
                n
            }));
        }
        let mut chunks = 0;
        for task in tasks {
            chunks += task.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{listeners:>3} listeners: {chunks} chunks in {secs:.3} s: {:.0} chunks/s, {:.0} changes/s in total",
            chunks as f64 / secs,
            (chunks * rows as u64) as f64 / secs
        );
    }
}
