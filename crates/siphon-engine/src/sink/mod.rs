//! Sinks: `CREATE SINK name FROM table_or_view WITH (connector = 'nats_jetstream', ...)`
//! publishes every committed change of its input to an external system.
//!
//! A sink is a reader of its input's change log (the same [`crate::egress::ChangeReader`]
//! that `/v1/egress` uses) that keeps its own position in the store: the last sequence
//! number its target has acknowledged. Publishing is at-least-once from that position, and
//! the target makes it exactly-once: every message carries the id
//! `<input>:<sequence_number>` (see [`nats`]), which JetStream's duplicate window drops
//! when it sees it again, and on start the sink reads the last message on its subject to
//! skip what was published after its position was last saved, even beyond the window.
//!
//! The task here owns the life cycle shared by every sink kind: status, metrics, and
//! starting again after a failure with a growing delay, from the acknowledged position.
//!
//! Invariants: the stored position never passes a change the target has not
//! acknowledged; changes are published in sequence order; a sink never slows or blocks
//! its input (it reads the durable log at its own pace).

pub mod config;
pub mod nats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::Engine;
use crate::catalog::SinkDef;
use crate::egress::EgressError;
use crate::observe::SourceId;
use crate::status::{RunState, SourceStatus};
use crate::store::StoreError;
use config::NatsSinkConfig;

/// The first delay before a failed sink starts again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest delay between two starts of a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a sink stopped publishing (it starts again after a delay).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target could not be reached or refused the connection.
    #[error("connecting to {servers}: {message}")]
    Connect {
        /// The servers tried.
        servers: String,
        /// Why.
        message: String,
    },
    /// The target's stream is missing or does not fit.
    #[error("{0}")]
    Stream(String),
    /// A publish or its acknowledgement failed.
    #[error("publishing change {sequence}: {message}")]
    Publish {
        /// The change.
        sequence: u64,
        /// Why.
        message: String,
    },
    /// One row of a change is larger than the target takes in one message.
    #[error(
        "change {sequence} holds a row of {bytes} bytes encoded, more than the server's \
         max_payload ({limit} bytes, less room for headers): raise max_payload on the \
         NATS server"
    )]
    RowTooLarge {
        /// The change.
        sequence: u64,
        /// The row's encoded size.
        bytes: usize,
        /// What fits in one message.
        limit: usize,
    },
    /// Reading the input's log failed.
    #[error("reading the input: {0}")]
    Read(#[from] EgressError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A sink's live figures, shared with [`Engine::statuses`].
#[derive(Debug)]
pub struct SinkHandle {
    /// The sink's status row.
    pub status: Arc<Mutex<SourceStatus>>,
    /// Its input.
    pub from: String,
    /// The last sequence number of the input acknowledged whole by the target.
    pub position: Arc<AtomicU64>,
}

impl SinkHandle {
    /// A handle for `def`, in state running with nothing published yet.
    pub fn new(def: &SinkDef) -> Self {
        SinkHandle {
            status: Arc::new(Mutex::new(SourceStatus {
                reads_from: Some(def.from.clone()),
                ..SourceStatus::new(def.connector.name(), &def.name)
            })),
            from: def.from.clone(),
            position: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Its status with the lag behind `head` (the input's last sequence number).
    pub fn status_at(&self, head: u64) -> SourceStatus {
        let mut status = self.status.lock().expect("sink status lock").clone();
        status.lag = Some(head.saturating_sub(self.position.load(Ordering::Acquire)));
        status
    }
}

/// One running sink.
pub struct SinkTask {
    /// The engine whose log it reads.
    pub engine: Arc<Engine>,
    /// Its definition.
    pub def: SinkDef,
    /// Its bound options.
    pub config: Arc<NatsSinkConfig>,
    /// Its status and position.
    pub handle: Arc<SinkHandle>,
    /// Fires when the engine shuts down.
    pub shutdown: watch::Receiver<bool>,
}

impl SinkTask {
    /// Publishes until the engine shuts down, starting again after each failure.
    pub async fn run(mut self) {
        let id = SourceId::new(self.def.connector.name(), &self.def.name, None);
        let mut failures: u32 = 0;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let outcome = nats::publish(&self, &id, &mut self.shutdown.clone()).await;
            let error = match outcome {
                Ok(()) => return,
                Err(e) => e,
            };
            if *self.shutdown.borrow() {
                return;
            }
            // A sink that published since its last failure starts its delays afresh.
            if self.status().consecutive_failures == 0 {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let delay = backoff(failures);
            let message = siphon_connect::error_chain(&error);
            {
                let mut status = self.status();
                status.state = match error {
                    SinkError::RowTooLarge { .. } => RunState::Failed,
                    _ => RunState::Backoff,
                };
                status.last_error = Some(message.clone());
                status.last_error_at = Some(Utc::now());
                status.consecutive_failures += 1;
                status.next_poll_at =
                    Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default());
            }
            self.engine.observer.sink_failed(&id, &message, delay);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.changed() => return,
            }
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, SourceStatus> {
        self.handle.status.lock().expect("sink status lock")
    }
}

/// The delay before start number `failures + 1`: doubling from [`FIRST_BACKOFF`] up to
/// [`MAX_BACKOFF`], with up to a quarter of jitter so many sinks do not retry in step.
fn backoff(failures: u32) -> Duration {
    let base = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let base = base.min(MAX_BACKOFF);
    let nanos = Utc::now().timestamp_subsec_nanos() as u64;
    let jitter = base.as_millis() as u64 / 4 * (nanos % 1000) / 1000;
    base + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let at = |n| backoff(n).as_millis();
        assert!((500..=625).contains(&at(1)), "{}", at(1));
        assert!((1000..=1250).contains(&at(2)), "{}", at(2));
        assert!((30_000..=37_500).contains(&at(12)), "{}", at(12));
        assert!((30_000..=37_500).contains(&at(u32::MAX)));
    }
}
