//! Crash safety of pushes: many concurrent pushers while the server is killed with SIGKILL
//! several times. Every push that got a 200 is there after the restart exactly once; a push
//! that got no answer is there wholly or not at all; a change-stream reader that resumes
//! with `from=N` after each restart sees every stored push exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::harness::{Server, int, write_file};

const RECORDS_PER_PUSH: usize = 7;
const PUSHERS: u64 = 12;

/// Pushes distinct batches until `stop`; returns the ids of the pushes that got a 200.
async fn pusher(base: String, next: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> Vec<u64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut acked = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let id = next.fetch_add(1, Ordering::SeqCst);
        let body: String = (0..RECORDS_PER_PUSH)
            .map(|i| {
                format!(
                    "{{\"push\":{id},\"i\":{i},\"pad\":\"{}\"}}\n",
                    "x".repeat(100)
                )
            })
            .collect();
        match client
            .post(format!("{base}/v1/tables/events/ingress"))
            .body(body)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => acked.push(id),
            Ok(r) => panic!(
                "push {id}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            // The server died under it: no answer, so no promise.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    acked
}

#[tokio::test]
async fn sigkill_during_concurrent_pushes_keeps_every_acknowledged_push_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "p.sql",
        "CREATE TABLE events (push BIGINT NOT NULL, i INT NOT NULL, pad TEXT);",
    );
    let data = dir.path().join("data");
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut seen_by_reader: BTreeMap<u64, u64> = BTreeMap::new();
    let mut last_sequence = 0u64;
    let next = Arc::new(AtomicU64::new(0));
    for round in 0..4u64 {
        let mut server = Server::start(&data, &[&file], &[]).await;
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..PUSHERS)
            .map(|_| tokio::spawn(pusher(server.base.clone(), next.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for task in tasks {
            acked.extend(task.await.unwrap());
        }

        // After a restart: whole pushes only, each once, every acknowledged one there.
        let server = Server::start(&data, &[&file], &[]).await;
        let rows = server
            .query("SELECT push, count(*) AS n, count(DISTINCT i) AS d FROM events GROUP BY push")
            .await;
        let stored: BTreeMap<u64, (i64, i64)> = rows
            .iter()
            .map(|r| (int(&r["push"]) as u64, (int(&r["n"]), int(&r["d"]))))
            .collect();
        for (push, (n, distinct)) in &stored {
            assert_eq!(
                (*n, *distinct),
                (RECORDS_PER_PUSH as i64, RECORDS_PER_PUSH as i64),
                "push {push} is stored in part or twice"
            );
        }
        let missing: Vec<_> = acked.iter().filter(|id| !stored.contains_key(id)).collect();
        assert!(missing.is_empty(), "acknowledged pushes lost: {missing:?}");

        // A reader that resumes after the last sequence it saw gets exactly the new pushes.
        for chunk in server.changes("events", &last_sequence.to_string()).await {
            let sequence = chunk["sequence_number"].as_u64().unwrap();
            assert!(sequence > last_sequence, "sequence {sequence} again");
            last_sequence = sequence;
            for change in chunk["json_data"].as_array().unwrap() {
                *seen_by_reader
                    .entry(change["insert"]["push"].as_u64().unwrap())
                    .or_default() += 1;
            }
        }
        let stored_ids: BTreeSet<u64> = stored.keys().copied().collect();
        let read_ids: BTreeSet<u64> = seen_by_reader.keys().copied().collect();
        assert_eq!(
            stored_ids, read_ids,
            "round {round}: the reader and the table disagree"
        );
        assert!(
            seen_by_reader
                .values()
                .all(|n| *n == RECORDS_PER_PUSH as u64),
            "a reader saw a push twice or in part"
        );
        drop(server);
    }
    assert!(
        acked.len() > 20,
        "too few pushes were acknowledged: {}",
        acked.len()
    );
}
