//! Engine-level tests of what cannot be provoked from outside the process: a failure of
//! the in-memory update after a durable commit, and a source task that panics.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::Int64Type;

use crate::pipeline::SourceFile;
use crate::status::RunState;
use crate::{Engine, EngineOptions};

async fn open(dir: &std::path::Path, sql: &str) -> Arc<Engine> {
    Engine::open(
        dir,
        vec![SourceFile {
            path: "test.sql".into(),
            text: sql.into(),
        }],
        |_| None,
        EngineOptions::default(),
    )
    .await
    .unwrap()
}

fn rows(engine: &Engine, ids: &[i64]) -> RecordBatch {
    let table = engine.tables.read().unwrap()["k"].clone();
    RecordBatch::try_new(
        table.schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("n{i}")).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

async fn count(engine: &Engine, sql: &str) -> i64 {
    let batches = engine.query(sql).await.unwrap().collect().await.unwrap();
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test]
async fn a_failed_in_memory_update_after_a_durable_commit_reloads_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(
        dir.path(),
        "CREATE TABLE k (id BIGINT, name TEXT, PRIMARY KEY (id));",
    )
    .await;
    let table = engine.tables.read().unwrap()["k"].clone();
    engine
        .commit(
            &table,
            Some(rows(&engine, &[1, 2])),
            None,
            Some(b"s1".to_vec()),
            Vec::new(),
        )
        .await
        .unwrap();
    crate::tables::FAIL_NEXT_PUSH.store(true, Ordering::SeqCst);
    let info = engine
        .commit(
            &table,
            Some(rows(&engine, &[3])),
            None,
            Some(b"s2".to_vec()),
            Vec::new(),
        )
        .await
        .expect("the commit is durable, so it is reported as done")
        .info;
    assert_eq!(info.map(|i| i.sequence), Some(2));
    assert!(!crate::tables::FAIL_NEXT_PUSH.load(Ordering::SeqCst));
    // The table shows what the store holds, not what the failed update left.
    assert_eq!(count(&engine, "SELECT count(*) FROM k").await, 3);
    assert_eq!(table.commits().len(), 2);
    assert_eq!(engine.store.state("k").unwrap().unwrap(), b"s2");
}

#[tokio::test]
async fn a_panicking_source_task_shows_failed_and_is_restarted() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let engine = open(
        dir.path(),
        &format!(
            "CREATE TABLE p (v TEXT) WITH (connector = 'polling_http_source', \
             endpoint = 'http://127.0.0.1:{port}/', interval_ms = 50, max_retries = 0);"
        ),
    )
    .await;
    crate::runtime::PANIC_IN_NEXT_POLL.store(true, Ordering::SeqCst);
    engine.start().await;
    let status = |engine: &Engine| engine.statuses().pop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(&engine);
        if s.state == RunState::Failed {
            let error = s.last_error.unwrap_or_default();
            assert!(error.contains("panicked: injected by a test"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline, "never shown as failed: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Restarted: it polls again (and fails, the port is closed), so it is in backoff.
    loop {
        let s = status(&engine);
        if s.state == RunState::Backoff {
            assert!(s.consecutive_failures >= 1);
            break;
        }
        assert!(Instant::now() < deadline, "never restarted: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown().await;
}
