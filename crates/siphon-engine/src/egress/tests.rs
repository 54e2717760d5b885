//! Reader tests over a real engine and store in a temporary directory, with real commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};

use super::*;
use crate::pipeline::SourceFile;
use crate::{Engine, EngineOptions};

async fn open(dir: &std::path::Path) -> Arc<Engine> {
    Engine::open(
        dir,
        vec![SourceFile {
            path: "test.sql".into(),
            text: "CREATE TABLE t (id BIGINT, name TEXT);".into(),
        }],
        |_| None,
        EngineOptions::default(),
    )
    .await
    .unwrap()
}

async fn commit(engine: &Engine, ids: &[i64]) -> u64 {
    let table = engine.table("t").unwrap();
    let batch = RecordBatch::try_new(
        table.schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("n{i}")).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let done = engine
        .commit(&table, Some(batch), None, None, Vec::new())
        .await
        .unwrap();
    done.info.unwrap().sequence
}

fn options(start: Start) -> ReaderOptions {
    ReaderOptions {
        start,
        idle: Some(Duration::from_millis(100)),
        ..ReaderOptions::default()
    }
}

/// The sequence numbers (and drop counts) handed out until the reader is idle or ends.
async fn drain(reader: &mut ChangeReader) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    while let Some(Event::Chunk(c)) = reader.next().await.unwrap() {
        out.push((c.sequence, c.dropped));
    }
    out
}

fn seqs(chunks: &[(u64, u64)]) -> Vec<u64> {
    chunks.iter().map(|c| c.0).collect()
}

#[tokio::test]
async fn readers_get_entries_in_order_from_beginning_after_n_and_now() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    for i in 0..3 {
        commit(&engine, &[i, i + 10]).await;
    }
    let mut all = engine.egress("t", options(Start::Beginning)).await.unwrap();
    let mut after = engine.egress("t", options(Start::After(1))).await.unwrap();
    let mut now = engine.egress("t", options(Start::Now)).await.unwrap();
    match all.next().await.unwrap() {
        Some(Event::Chunk(c)) => {
            assert_eq!(c.sequence, 1);
            assert_eq!(c.batch.num_rows(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seqs(&drain(&mut all).await), vec![2, 3]);
    assert_eq!(
        seqs(&drain(&mut after).await),
        vec![2, 3],
        "from=N is exclusive"
    );
    assert_eq!(drain(&mut now).await, vec![]);
    commit(&engine, &[99]).await;
    for reader in [&mut all, &mut after, &mut now] {
        assert_eq!(drain(reader).await, vec![(4, 0)]);
    }
    assert!(
        engine
            .observer()
            .render()
            .contains("siphon_egress_readers{table=\"t\"} 3"),
        "{}",
        engine.observer().render()
    );
    drop((all, after, now));
    assert!(
        engine
            .observer()
            .render()
            .contains("siphon_egress_readers{table=\"t\"} 0")
    );
    assert!(matches!(
        engine.egress("nope", options(Start::Now)).await,
        Err(EgressError::UnknownTable(_))
    ));
}

#[tokio::test]
async fn a_reader_waits_for_a_commit_and_wakes_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let mut reader = engine
        .egress(
            "t",
            ReaderOptions {
                start: Start::Now,
                ..ReaderOptions::default()
            },
        )
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        match reader.next().await.unwrap() {
            Some(Event::Chunk(c)) => c.sequence,
            other => panic!("{other:?}"),
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    commit(&engine, &[1]).await;
    let seq = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seq, 1);
}

#[tokio::test]
async fn a_position_beyond_the_head_waits_for_the_next_number_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    commit(&engine, &[1]).await;
    let mut reader = engine.egress("t", options(Start::After(3))).await.unwrap();
    assert_eq!(drain(&mut reader).await, vec![]);
    for i in 0..4 {
        commit(&engine, &[i]).await; // sequences 2..=5
    }
    assert_eq!(seqs(&drain(&mut reader).await), vec![4, 5]);
}

#[tokio::test]
async fn follow_false_ends_after_the_entries_committed_when_it_opened() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    commit(&engine, &[1]).await;
    commit(&engine, &[2]).await;
    let mut reader = engine
        .egress(
            "t",
            ReaderOptions {
                start: Start::Beginning,
                follow: false,
                ..ReaderOptions::default()
            },
        )
        .await
        .unwrap();
    commit(&engine, &[3]).await;
    let mut got = Vec::new();
    while let Some(event) = reader.next().await.unwrap() {
        match event {
            Event::Chunk(c) => got.push(c.sequence),
            Event::Idle => panic!("no idle without an idle timeout"),
        }
    }
    assert_eq!(got, vec![1, 2]);
    // `now` without follow: nothing, at once.
    let mut empty = engine
        .egress(
            "t",
            ReaderOptions {
                follow: false,
                ..ReaderOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(empty.next().await.unwrap().is_none());
}

#[tokio::test]
async fn without_backpressure_a_reader_stays_within_the_window_and_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let lossless = options(Start::Now);
    let lossy = ReaderOptions {
        backpressure: false,
        ..options(Start::Now)
    };
    let mut slow = engine.egress("t", lossy).await.unwrap();
    let mut careful = engine.egress("t", lossless).await.unwrap();
    let total = DROP_WINDOW + 30;
    for i in 0..total {
        commit(&engine, &[i as i64]).await;
    }
    let got = drain(&mut slow).await;
    assert_eq!(got.len() as u64, DROP_WINDOW);
    assert_eq!(
        got[0],
        (31, 30),
        "the first chunk after the gap carries the drop count"
    );
    assert!(got[1..].iter().all(|c| c.1 == 0));
    assert_eq!(seqs(&got), (31..=total).collect::<Vec<_>>());
    assert_eq!(
        seqs(&drain(&mut careful).await),
        (1..=total).collect::<Vec<_>>()
    );
    assert!(
        engine
            .observer()
            .render()
            .contains("siphon_egress_dropped_chunks_total{table=\"t\"} 30"),
        "{}",
        engine.observer().render()
    );
    // Within the window: nothing more is dropped.
    for i in 0..5 {
        commit(&engine, &[i]).await;
    }
    assert_eq!(
        drain(&mut slow).await,
        (total + 1..=total + 5).map(|s| (s, 0)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn readers_share_one_encoding_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    for i in 0..5 {
        commit(&engine, &[i]).await;
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let encode: Arc<Encode> = {
        let calls = calls.clone();
        Arc::new(move |batch: &RecordBatch| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(format!("{} rows", batch.num_rows()).into_bytes())
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let mut reader = engine.egress("t", options(Start::Beginning)).await.unwrap();
        let encode = encode.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(Event::Chunk(c)) = reader.next_encoded("test", &*encode).await.unwrap() {
                got.push((c.sequence, String::from_utf8(c.bytes.to_vec()).unwrap()));
            }
            got
        }));
    }
    for task in tasks {
        let got = task.await.unwrap();
        assert_eq!(
            got,
            (1..=5)
                .map(|s| (s, "1 rows".to_string()))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(engine.egress_cache().usage(), (5, 5 * 6));
}

#[test]
fn the_cache_evicts_the_oldest_beyond_its_byte_bound() {
    let cache = ChunkCache::new(10);
    let key = |s: u64| (Arc::<str>::from("t"), s, "f");
    for s in 1..=4 {
        let cell = cache.cell(&key(s));
        cell.set(Arc::from(vec![0u8; 4])).unwrap();
        cache.account(&key(s), 4);
    }
    // 4 × 4 bytes > 10: only the newest two stay.
    assert_eq!(cache.usage(), (2, 8));
    assert!(cache.cell(&key(4)).get().is_some());
    assert!(cache.cell(&key(1)).get().is_none());
}

#[tokio::test]
async fn an_engine_shutdown_ends_readers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let mut reader = engine.egress("t", ReaderOptions::default()).await.unwrap();
    let waiting = tokio::spawn(async move { reader.next().await.unwrap().is_none() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    engine.shutdown().await;
    assert!(
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap()
    );
}

#[test]
fn start_positions_parse() {
    assert_eq!(Start::parse("beginning"), Some(Start::Beginning));
    assert_eq!(Start::parse("NOW"), Some(Start::Now));
    assert_eq!(Start::parse("42"), Some(Start::After(42)));
    assert_eq!(Start::parse("-1"), None);
    assert_eq!(Start::parse("soon"), None);
}
