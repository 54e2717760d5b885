//! What every source and sink is doing, as `system.connector_status` and `GET /v1/status` show it.
//!
//! The runtime owns the writes (one source task per entry); readers take a snapshot.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The life state of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Polling on schedule.
    Running,
    /// The last poll failed; the next one runs on schedule.
    Backoff,
    /// The circuit breaker is open: no requests until its timeout passes.
    CircuitOpen,
    /// Polling is paused.
    Paused,
    /// The source cannot run (for example its decoder could not be built).
    Failed,
}

impl RunState {
    /// The name shown in status output.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Backoff => "backoff",
            RunState::CircuitOpen => "circuit_open",
            RunState::Paused => "paused",
            RunState::Failed => "failed",
        }
    }
}

/// One source's status.
#[derive(Clone, Debug, Serialize)]
pub struct SourceStatus {
    /// The connector kind (`polling_http_source`).
    pub connector_name: String,
    /// The table the source feeds.
    pub table_name: String,
    /// The connection it inherits options from.
    pub connection_name: Option<String>,
    /// Life state.
    pub state: RunState,
    /// End of the last successful poll.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failure, secrets redacted.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failed polls since the last success.
    pub consecutive_failures: u64,
    /// HTTP requests made since start.
    pub requests: u64,
    /// Records stored since start.
    pub records: u64,
    /// When the next poll is due.
    pub next_poll_at: Option<DateTime<Utc>>,
    /// Pages walked so far by the poll in flight, if one is.
    pub in_flight_pages: Option<u32>,
    /// Records decoded so far by the poll in flight, if one is.
    pub in_flight_records: Option<u64>,
    /// Records remembered at the incremental boundary (the `lookback_ms` window, or the
    /// saved maximum), to drop them when an inclusive API sends them again.
    pub boundary_records: u64,
    /// For a sink: the table or view whose changes it publishes.
    pub reads_from: Option<String>,
    /// For a sink: committed changes of its input not published yet.
    pub lag: Option<u64>,
}

impl SourceStatus {
    /// A running source (or sink) `name` of kind `connector` that has done nothing yet.
    pub fn new(connector: &str, name: &str) -> Self {
        SourceStatus {
            connector_name: connector.to_string(),
            table_name: name.to_string(),
            connection_name: None,
            state: RunState::Running,
            last_success_at: None,
            last_error: None,
            last_error_at: None,
            consecutive_failures: 0,
            requests: 0,
            records: 0,
            next_poll_at: None,
            in_flight_pages: None,
            in_flight_records: None,
            boundary_records: 0,
            reads_from: None,
            lag: None,
        }
    }
}
