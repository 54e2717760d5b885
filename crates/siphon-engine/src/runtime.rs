//! The runtime: one task per polling source, on its own schedule.
//!
//! A source task sleeps until its next tick, polls, and commits the poll's records with its
//! new state. Polls of one source never overlap; a poll that overruns its interval is
//! followed by the next one at once, and missed ticks are not replayed (tokio's
//! `MissedTickBehavior::Delay`). A failed poll commits nothing and is recorded in the
//! source's status; the next poll runs on schedule from the saved state.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use siphon_connect::resilience::CircuitState;
use siphon_connect::source::{PollError, PollOutput, PollingSource, SourceState};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::observe::SourceId;
use crate::status::{RunState, SourceStatus};
use crate::store::DeadLetterRow;
use crate::tables::TableRef;
use crate::{Engine, EngineError};

/// Everything one source task needs.
pub(crate) struct SourceTask {
    pub engine: Arc<Engine>,
    pub table: TableRef,
    pub source: PollingSource,
    pub status: Arc<Mutex<SourceStatus>>,
    pub shutdown: watch::Receiver<bool>,
    pub id: SourceId,
}

impl SourceTask {
    pub(crate) async fn run(mut self) {
        let interval = self.source.config().interval;
        let mut state = match self.load_state().await {
            Ok(s) => s,
            Err(e) => {
                self.fail(format!("cannot read the source's saved state: {e}"));
                return;
            }
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.shutdown.changed() => return,
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
                Ok(output) => self.commit(output, &mut state, next_poll_at).await,
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
        let state_bytes = serde_json::to_vec(&output.state).expect("source state serializes");
        match self
            .engine
            .commit(&self.table, batch, output.complete, Some(state_bytes), dead)
            .await
        {
            Ok(info) => {
                *state = output.state;
                let records = info.map_or(0, |i| i.records);
                let note = if output.not_modified {
                    Some("304 Not Modified".to_string())
                } else {
                    output.notes.first().cloned()
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
                s.next_poll_at = Some(next_poll_at);
            }
            Err(e) => {
                // The store failed: nothing of this poll is durable, the state stays where
                // it was, and the next poll retries from there.
                self.record_failure(format!("commit failed: {e}"), requests, next_poll_at, false);
            }
        }
    }

    async fn load_state(&self) -> Result<SourceState, EngineError> {
        let store = self.engine.store.clone();
        let table = self.table.def.name.clone();
        let bytes = tokio::task::spawn_blocking(move || store.state(&table))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
        match bytes {
            None => Ok(SourceState::default()),
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| EngineError::Internal(format!("saved state: {e}"))),
        }
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
