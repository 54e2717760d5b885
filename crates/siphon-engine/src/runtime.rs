//! The runtime: one task per polling source, on its own schedule.
//!
//! A source task sleeps until its next tick, polls, and commits the poll's records with its
//! new state. Polls of one source never overlap; a poll that overruns its interval is
//! followed by the next one at once, and missed ticks are not replayed (tokio's
//! `MissedTickBehavior::Delay`). A failed poll commits nothing and is recorded in the
//! source's status; the next poll runs on schedule from the saved state.
//!
//! A task that panics is not left for dead behind a `running` status: its supervisor
//! shows it as `failed` with the panic message, reloads the table from the store (the
//! panic may have struck between the durable commit and the in-memory update) and
//! restarts it from the saved state after a pause.
//!
//! The saved state carries the identity of the source that produced it
//! ([`crate::identity`]); a source whose defining options changed starts afresh.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;

use chrono::Utc;
use siphon_connect::resilience::CircuitState;
use siphon_connect::source::{PollError, PollOutput, PollingSource, SourceState};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::identity::{PollIdentity, SavedState};
use crate::keyed::Snapshot;
use crate::observe::SourceId;
use crate::status::{RunState, SourceStatus};
use crate::store::DeadLetterRow;
use crate::tables::TableRef;
use crate::{Committed, Engine, EngineError};

/// Everything one source task needs.
pub(crate) struct SourceTask {
    pub engine: Arc<Engine>,
    pub table: TableRef,
    pub source: PollingSource,
    pub status: Arc<Mutex<SourceStatus>>,
    pub shutdown: watch::Receiver<bool>,
    pub id: SourceId,
    /// The identity the saved state must belong to.
    pub identity: PollIdentity,
    /// A source that never polled starts within this much of the engine's start (its
    /// share of a spread, so thousands of sources do not all poll in the same instant).
    pub first_tick_spread: Duration,
}

/// Where in `spread` a source that never polled takes its first tick: a stable position
/// from its name, so the sources of a large pipeline start spread out evenly.
fn first_tick_offset(table: &str, spread: Duration) -> Duration {
    if spread.is_zero() {
        return Duration::ZERO;
    }
    // FNV-1a: stable across runs and platforms (std's hasher is seeded per process).
    let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Duration::from_nanos(hash % spread.as_nanos().max(1) as u64)
}

/// How long a source waits before its first poll: the rest of its interval after its last
/// saved poll (so a restart does not poll everything at once), or its place in the spread.
fn first_tick_delay(
    polled_at: Option<chrono::DateTime<Utc>>,
    interval: Duration,
    offset: Duration,
    now: chrono::DateTime<Utc>,
) -> Duration {
    match polled_at {
        Some(at) => {
            let due = at + chrono::Duration::from_std(interval).unwrap_or_default();
            (due - now).to_std().unwrap_or(Duration::ZERO).min(interval)
        }
        None => offset.min(interval),
    }
}

/// The pause before a panicked task restarts: its interval, within [1 s, 60 s].
fn restart_delay(interval: Duration) -> Duration {
    interval.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_string())
}

#[cfg(test)]
pub(crate) static PANIC_IN_NEXT_POLL: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

impl SourceTask {
    /// Runs the source until shutdown, restarting it after a panic.
    pub(crate) async fn run(mut self) {
        loop {
            let outcome = AssertUnwindSafe(self.run_until_shutdown())
                .catch_unwind()
                .await;
            let Err(payload) = outcome else { return };
            let message = panic_message(payload.as_ref());
            let restart_in = restart_delay(self.source.config().interval);
            self.engine
                .observer
                .task_panicked(&self.id, &message, restart_in);
            self.fail(format!("source task panicked: {message}"));
            if let Err(e) = self.engine.reload_table(&self.table).await {
                tracing::error!(table = %self.table.def.name, error = %e, "reloading the table after a panic failed");
            }
            self.status.lock().expect("status lock").next_poll_at =
                Some(Utc::now() + chrono::Duration::from_std(restart_in).unwrap_or_default());
            tokio::select! {
                _ = tokio::time::sleep(restart_in) => {}
                _ = self.shutdown.changed() => return,
            }
        }
    }

    /// Waits while inputs are paused, showing the source as paused; false on shutdown.
    async fn wait_while_paused(&mut self) -> bool {
        let previous = {
            let mut s = self.status.lock().expect("status lock");
            s.next_poll_at = None;
            std::mem::replace(&mut s.state, RunState::Paused)
        };
        let mut paused = self.engine.watch_paused();
        let resumed = tokio::select! {
            r = paused.wait_for(|p| !*p) => r.is_ok(),
            _ = self.shutdown.changed() => false,
        };
        let mut s = self.status.lock().expect("status lock");
        if s.state == RunState::Paused {
            s.state = previous;
        }
        s.next_poll_at = Some(Utc::now());
        resumed
    }

    async fn run_until_shutdown(&mut self) {
        let interval = self.source.config().interval;
        let (mut state, polled_at) = match self.load_state().await {
            Ok(s) => s,
            Err(e) => {
                self.fail(format!("cannot read the source's saved state: {e}"));
                return;
            }
        };
        let first = first_tick_delay(
            polled_at,
            interval,
            first_tick_offset(&self.table.def.name, self.first_tick_spread),
            Utc::now(),
        );
        self.status.lock().expect("status lock").next_poll_at =
            Some(Utc::now() + chrono::Duration::from_std(first).unwrap_or_default());
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.shutdown.changed() => return,
            }
            let poll_started = Utc::now();
            if self.engine.is_paused() && !self.wait_while_paused().await {
                return;
            }
            #[cfg(test)]
            if PANIC_IN_NEXT_POLL.swap(false, std::sync::atomic::Ordering::SeqCst) {
                panic!("injected by a test");
            }
            let result = tokio::select! {
                r = self.source.poll(&state) => r,
                // A poll in flight at shutdown is abandoned: nothing of it was committed.
                _ = self.shutdown.changed() => return,
            };
            let next_poll_at =
                Utc::now() + chrono::Duration::from_std(interval).unwrap_or_default();
            let requests = match &result {
                Ok(output) => output.requests.as_slice(),
                Err(error) => error.requests(),
            };
            for request in requests {
                self.engine.observer.request(&self.id, request);
            }
            match result {
                Ok(output) => {
                    self.commit(output, &mut state, next_poll_at, poll_started)
                        .await
                }
                Err(PollError::CircuitOpen { remaining_ms }) => {
                    self.engine.observer.circuit_open(&self.id, remaining_ms);
                    let mut s = self.status.lock().expect("status lock");
                    s.state = RunState::CircuitOpen;
                    s.next_poll_at = Some(
                        Utc::now()
                            + chrono::Duration::milliseconds(
                                remaining_ms.min(i64::MAX as u128) as i64
                            )
                            .max(chrono::Duration::from_std(interval).unwrap_or_default()),
                    );
                }
                Err(error) => {
                    let requests = error.requests().len() as u64;
                    let decode = matches!(error, PollError::Decode { .. });
                    self.record_failure(error.to_string(), requests, next_poll_at, decode);
                    if self.source.circuit_state() == Some(CircuitState::Open) {
                        self.status.lock().expect("status lock").state = RunState::CircuitOpen;
                    }
                }
            }
            if let Some(circuit) = self.source.circuit_state() {
                self.engine
                    .observer
                    .circuit_state(&self.id, circuit.metric_value());
            }
        }
    }

    /// Commits a successful poll's records with its state, and records the outcome.
    async fn commit(
        &self,
        output: PollOutput,
        state: &mut SourceState,
        next_poll_at: chrono::DateTime<Utc>,
        poll_started: chrono::DateTime<Utc>,
    ) {
        let requests = output.requests.len() as u64;
        let table = &self.table.def.name;
        let (batch, dead) = match output.page {
            Some(page) => {
                let now = Utc::now();
                let dead: Vec<DeadLetterRow> = page
                    .dead_letters
                    .into_iter()
                    .map(|d| DeadLetterRow {
                        timestamp: now,
                        table_name: table.clone(),
                        reason: d.reason,
                        raw: d.raw,
                    })
                    .collect();
                (Some(page.batch), dead)
            }
            None => (None, Vec::new()),
        };
        let dead_count = dead.len() as u64;
        let saved = SavedState {
            source: output.state,
            identity: self.identity.clone(),
            polled_at: Some(poll_started),
        };
        let state_bytes = serde_json::to_vec(&saved).expect("source state serializes");
        match self
            .engine
            .commit(
                &self.table,
                batch,
                output.complete.then_some(Snapshot {
                    max_delete_ratio: self.source.config().max_delete_ratio,
                }),
                Some(state_bytes),
                dead,
            )
            .await
        {
            Ok(Committed {
                info,
                withheld_deletes,
            }) => {
                if withheld_deletes > 0 {
                    self.engine.observer.deletes_withheld(
                        &self.id,
                        withheld_deletes,
                        self.table.keyed_len(),
                        self.source.config().max_delete_ratio,
                    );
                }
                *state = saved.source;
                let records = info.map_or(0, |i| i.records);
                let note = if output.not_modified {
                    Some("304 Not Modified".to_string())
                } else {
                    (!output.notes.is_empty()).then(|| output.notes.join("; "))
                };
                self.engine.observer.poll_succeeded(
                    &self.id,
                    output.pages,
                    records,
                    dead_count,
                    note.as_deref().filter(|n| !n.starts_with("304")),
                );
                let mut s = self.status.lock().expect("status lock");
                s.state = RunState::Running;
                s.last_success_at = Some(Utc::now());
                s.consecutive_failures = 0;
                s.requests += requests;
                s.records += records;
                s.boundary_records = state.boundary.len() as u64;
                s.next_poll_at = Some(next_poll_at);
            }
            Err(e) => {
                // The store failed (the engine returns an error only when the store's
                // commit did not happen): nothing of this poll is durable, the state stays
                // where it was, and the next poll retries from there.
                self.record_failure(format!("commit failed: {e}"), requests, next_poll_at, false);
            }
        }
    }

    /// The saved state, or a fresh one when it belongs to a source with other options.
    /// The state to resume from, and when the poll that saved it started (only for a state
    /// this same source saved).
    async fn load_state(
        &self,
    ) -> Result<(SourceState, Option<chrono::DateTime<Utc>>), EngineError> {
        let store = self.engine.store.clone();
        let table = self.table.def.name.clone();
        let bytes = tokio::task::spawn_blocking(move || store.state(&table))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
        let saved: SavedState = match bytes {
            None => return Ok((SourceState::default(), None)),
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| EngineError::Internal(format!("saved state: {e}")))?,
        };
        let polled_at = saved.polled_at;
        let (state, changed) = saved.resume(&self.identity);
        if !changed.is_empty() {
            self.engine.observer.state_reset(&self.id, &changed);
            return Ok((state, None));
        }
        Ok((state, polled_at))
    }

    fn record_failure(
        &self,
        message: String,
        requests: u64,
        next_poll_at: chrono::DateTime<Utc>,
        decode: bool,
    ) {
        self.engine.observer.poll_failed(&self.id, &message, decode);
        let mut s = self.status.lock().expect("status lock");
        s.state = RunState::Backoff;
        s.last_error = Some(message);
        s.last_error_at = Some(Utc::now());
        s.consecutive_failures += 1;
        s.requests += requests;
        s.next_poll_at = Some(next_poll_at);
    }

    fn fail(&self, message: String) {
        tracing::error!(table = %self.table.def.name, error = %message, "source stopped");
        let mut s = self.status.lock().expect("status lock");
        s.state = RunState::Failed;
        s.last_error = Some(message);
        s.last_error_at = Some(Utc::now());
        s.next_poll_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_waits_out_the_rest_of_the_interval_and_new_sources_spread() {
        let now = Utc::now();
        let minute = Duration::from_secs(60);
        let secs = |s: i64| chrono::Duration::seconds(s);
        // Polled 20 s ago: the next poll is 40 s away, not now.
        assert_eq!(
            first_tick_delay(Some(now - secs(20)), minute, Duration::ZERO, now),
            Duration::from_secs(40)
        );
        // Overdue, or saved by a clock that ran ahead: at once, or at most one interval.
        assert_eq!(
            first_tick_delay(Some(now - secs(600)), minute, Duration::ZERO, now),
            Duration::ZERO
        );
        assert_eq!(
            first_tick_delay(Some(now + secs(600)), minute, Duration::ZERO, now),
            minute
        );
        // Never polled: its place in the spread, within its interval.
        let spread = Duration::from_secs(10);
        let offsets: Vec<Duration> = (0..1000)
            .map(|i| first_tick_offset(&format!("source_{i}"), spread))
            .collect();
        assert!(offsets.iter().all(|o| *o < spread));
        let early = offsets.iter().filter(|o| **o < spread / 2).count();
        assert!(
            (400..600).contains(&early),
            "{early} of 1000 in the first half"
        );
        assert_eq!(
            first_tick_offset("a", spread),
            first_tick_offset("a", spread)
        );
        assert_eq!(first_tick_offset("a", Duration::ZERO), Duration::ZERO);
        assert_eq!(
            first_tick_delay(None, Duration::from_secs(1), spread, now),
            Duration::from_secs(1)
        );
    }
}
