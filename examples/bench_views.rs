//! The cost of keeping a GROUP BY view up to date, against the size of its table.
//!
//! `cargo run --release --example bench_views`
//!
//! For tables of 10,000, 100,000 and 1,000,000 rows (`id`, `g = id % 1000`, `x`), with a
//! view `SELECT g, COUNT(*), SUM(x), MIN(x), MAX(x), AVG(x) FROM t GROUP BY g` (1,000
//! groups), it times durable commits of 1 and of 1,000 new rows, each with the view's
//! change in the same transaction, and the same commits into a table without views. The
//! figures must not grow with the table: a commit costs in proportion to its change.
//! Each size runs in a fresh data directory under the system's temp dir.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use siphon_engine::pipeline::SourceFile;
use siphon_engine::{Engine, EngineOptions};

const SIZES: &[usize] = &[10_000, 100_000, 1_000_000];
const LOAD_CHUNK: usize = 100_000;
const COMMITS: usize = 50;

fn batch(table: &siphon_engine::tables::TableData, from: usize, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (from..from + rows).map(|i| i as i64).collect();
    RecordBatch::try_new(
        table.schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(Int64Array::from(
                ids.iter().map(|i| i % 1000).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                ids.iter().map(|i| (i * 7919) % 100_003).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// Median and 90th percentile of `COMMITS` commits of `rows` rows each.
async fn time_commits(
    engine: &Engine,
    table: &Arc<siphon_engine::tables::TableData>,
    next: &mut usize,
    rows: usize,
) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(COMMITS);
    for _ in 0..COMMITS {
        let b = batch(table, *next, rows);
        *next += rows;
        let start = Instant::now();
        engine
            .commit(table, Some(b), None, None, Vec::new())
            .await
            .unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    (times[COMMITS / 2], times[COMMITS * 9 / 10])
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    println!("| table rows | view | 1 row: median ms | p90 ms | 1,000 rows: median ms | p90 ms |");
    println!("|---:|---|---:|---:|---:|---:|");
    for &size in SIZES {
        for with_view in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut sql = String::from("CREATE TABLE t (id BIGINT, g BIGINT, x BIGINT);\n");
            if with_view {
                sql.push_str(
                    "CREATE VIEW v AS SELECT g, COUNT(*) AS n, SUM(x) AS s, MIN(x) AS lo, \
                     MAX(x) AS hi, AVG(x) AS av FROM t GROUP BY g;\n",
                );
            }
            let engine = Engine::open(
                dir.path(),
                vec![SourceFile {
                    path: "bench.sql".into(),
                    text: sql,
                }],
                |_| None,
                EngineOptions::default(),
            )
            .await
            .unwrap();
            let table = engine.table("t").unwrap();
            let mut next = 0;
            while next < size {
                let rows = LOAD_CHUNK.min(size - next);
                let b = batch(&table, next, rows);
                next += rows;
                engine
                    .commit(&table, Some(b), None, None, Vec::new())
                    .await
                    .unwrap();
            }
            let (one, one_p90) = time_commits(&engine, &table, &mut next, 1).await;
            let (thousand, thousand_p90) = time_commits(&engine, &table, &mut next, 1000).await;
            if with_view {
                let rows = engine
                    .query("SELECT COUNT(*) AS groups FROM v")
                    .await
                    .unwrap()
                    .collect()
                    .await
                    .unwrap();
                assert_eq!(rows[0].num_rows(), 1);
            }
            println!(
                "| {size} | {} | {} | {} | {} | {} |",
                if with_view {
                    "GROUP BY, 1,000 groups"
                } else {
                    "none"
                },
                ms(one),
                ms(one_p90),
                ms(thousand),
                ms(thousand_p90)
            );
            engine.shutdown().await;
        }
    }
}
