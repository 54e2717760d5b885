//! What a poll tells the outside world: Prometheus metrics, log lines, and the bounded
//! `system.connector_logs` and `system.http_metrics` tables.
//!
//! Every observation goes through one function per event ([`Observer::request`],
//! [`Observer::poll_succeeded`], [`Observer::poll_failed`]) that both counts and logs, so
//! metrics, `tracing` lines and the system tables cannot drift apart. The per-source
//! histories keep the newest N rows of each source (N = `history_per_source`).
//! Nothing here sees a secret: URLs and messages come already redacted from the source.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use siphon_connect::source::RequestRecord;

/// Default rows kept per source in `system.connector_logs` and `system.http_metrics`.
pub const DEFAULT_HISTORY_PER_SOURCE: usize = 1000;

/// Labels of every per-source metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The table the source feeds.
    pub table: String,
    /// Its connection, or empty.
    pub connection: String,
}

/// Labels of the per-table egress metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

/// Labels of the per-sink metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    table: String,
    connection: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    table: String,
    connection: String,
    status: String,
}

fn duration_histogram() -> Histogram {
    // 5 ms .. ~82 s: API latencies from a local cache to a slow report endpoint.
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ])
}

fn pages_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0])
}

/// One row of `system.connector_logs`.
#[derive(Clone, Debug)]
pub struct LogRow {
    /// When.
    pub timestamp: DateTime<Utc>,
    /// The connector kind.
    pub connector: String,
    /// The table.
    pub table_name: String,
    /// DEBUG, INFO, WARN or ERROR.
    pub level: &'static str,
    /// The message (redacted).
    pub message: String,
}

/// One row of `system.http_metrics`.
#[derive(Clone, Debug)]
pub struct HttpRow {
    /// When the request was sent.
    pub timestamp: DateTime<Utc>,
    /// The connector kind.
    pub connector: String,
    /// The table.
    pub table_name: String,
    /// HTTP method.
    pub method: String,
    /// URL, secrets redacted.
    pub url: String,
    /// Status, if a response arrived.
    pub status_code: Option<u16>,
    /// Time to the end of the body, in milliseconds.
    pub response_time_ms: f64,
    /// Body bytes.
    pub bytes: u64,
    /// The page of the poll.
    pub pages: u32,
    /// 1 for a first try, 2 for the first retry, ...
    pub attempt: u32,
}

/// Metrics, logs and request history of every source.
pub struct Observer {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    duration: Family<SourceLabels, Histogram, fn() -> Histogram>,
    response_status: Family<CodeLabels, Counter>,
    bytes: Family<SourceLabels, Counter>,
    pages: Family<SourceLabels, Histogram, fn() -> Histogram>,
    records: Family<SourceLabels, Counter>,
    decode_errors: Family<SourceLabels, Counter>,
    retries: Family<SourceLabels, Counter>,
    rate_limited: Family<SourceLabels, Counter>,
    circuit: Family<SourceLabels, Gauge>,
    polls: Family<StatusLabels, Counter>,
    egress_dropped: Family<TableLabels, Counter>,
    egress_readers: Family<TableLabels, Gauge>,
    pushes: Family<StatusLabels, Counter>,
    sink_messages: Family<SinkLabels, Counter>,
    sink_records: Family<SinkLabels, Counter>,
    sink_duplicates: Family<SinkLabels, Counter>,
    sink_errors: Family<SinkLabels, Counter>,
    sink_position: Family<SinkLabels, Gauge>,
    sink_lag: Family<SinkLabels, Gauge>,
    store_transactions: Counter,
    /// What `store_transactions` was last brought up to (renders may run concurrently).
    store_transactions_seen: Mutex<u64>,
    history_per_source: usize,
    logs: Mutex<BTreeMap<String, VecDeque<LogRow>>>,
    http: Mutex<BTreeMap<String, VecDeque<HttpRow>>>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observer")
    }
}

/// Who an observation is about.
#[derive(Clone, Debug)]
pub struct SourceId {
    /// The connector kind (`polling_http_source`).
    pub connector: String,
    /// The metric labels.
    pub labels: SourceLabels,
}

impl SourceId {
    /// The source feeding `table` through `connection`.
    pub fn new(connector: &str, table: &str, connection: Option<&str>) -> Self {
        SourceId {
            connector: connector.to_string(),
            labels: SourceLabels {
                table: table.to_string(),
                connection: connection.unwrap_or("").to_string(),
            },
        }
    }

    fn with_code(&self, code: String) -> CodeLabels {
        CodeLabels {
            table: self.labels.table.clone(),
            connection: self.labels.connection.clone(),
            code,
        }
    }

    fn with_status(&self, status: &str) -> StatusLabels {
        StatusLabels {
            table: self.labels.table.clone(),
            connection: self.labels.connection.clone(),
            status: status.to_string(),
        }
    }
}

impl Observer {
    /// An observer keeping `history_per_source` rows of logs and requests per source.
    pub fn new(history_per_source: usize) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<StatusLabels, Counter>::default();
        let duration = Family::<SourceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let response_status = Family::<CodeLabels, Counter>::default();
        let bytes = Family::<SourceLabels, Counter>::default();
        let pages = Family::<SourceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            pages_histogram as fn() -> Histogram,
        );
        let records = Family::<SourceLabels, Counter>::default();
        let decode_errors = Family::<SourceLabels, Counter>::default();
        let retries = Family::<SourceLabels, Counter>::default();
        let rate_limited = Family::<SourceLabels, Counter>::default();
        let circuit = Family::<SourceLabels, Gauge>::default();
        let polls = Family::<StatusLabels, Counter>::default();
        let egress_dropped = Family::<TableLabels, Counter>::default();
        let egress_readers = Family::<TableLabels, Gauge>::default();
        let pushes = Family::<StatusLabels, Counter>::default();
        let sink_messages = Family::<SinkLabels, Counter>::default();
        let sink_records = Family::<SinkLabels, Counter>::default();
        let sink_duplicates = Family::<SinkLabels, Counter>::default();
        let sink_errors = Family::<SinkLabels, Counter>::default();
        let sink_position = Family::<SinkLabels, Gauge>::default();
        let sink_lag = Family::<SinkLabels, Gauge>::default();
        let store_transactions = Counter::default();
        registry.register(
            "siphon_store_commit_transactions",
            "Durable write transactions (each one fsync) that committed polls, pushes and \
             view changes; group commit makes it smaller than the commits they hold",
            store_transactions.clone(),
        );
        registry.register(
            "siphon_http_requests",
            "HTTP requests made by polling sources (status: HTTP code, or error/timeout)",
            requests.clone(),
        );
        registry.register(
            "siphon_http_request_duration_seconds",
            "Duration of each HTTP request including its body",
            duration.clone(),
        );
        registry.register(
            "siphon_http_response_status",
            "HTTP responses by status code",
            response_status.clone(),
        );
        registry.register(
            "siphon_http_bytes_received",
            "Response body bytes received",
            bytes.clone(),
        );
        registry.register(
            "siphon_http_pagination_pages",
            "Pages walked per poll",
            pages.clone(),
        );
        registry.register("siphon_records_ingested", "Records stored", records.clone());
        registry.register(
            "siphon_decode_errors",
            "Records that did not fit their columns, and pages that could not be decoded",
            decode_errors.clone(),
        );
        registry.register("siphon_retries", "Requests retried", retries.clone());
        registry.register(
            "siphon_rate_limited",
            "Responses that said the client is rate limited (429)",
            rate_limited.clone(),
        );
        registry.register(
            "siphon_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            circuit.clone(),
        );
        registry.register(
            "siphon_polls",
            "Polls by outcome (ok, error)",
            polls.clone(),
        );
        registry.register(
            "siphon_egress_dropped_chunks",
            "Change chunks skipped for egress readers with backpressure=false that fell more \
             than 100 chunks behind",
            egress_dropped.clone(),
        );
        registry.register(
            "siphon_egress_readers",
            "Open egress change streams",
            egress_readers.clone(),
        );
        registry.register(
            "siphon_pushes",
            "Push requests by outcome (ok; rejected: bad input, nothing stored; error: the \
             server's fault, nothing stored); pushed records count in siphon_records_ingested",
            pushes.clone(),
        );
        registry.register(
            "siphon_sink_messages",
            "Messages a sink published and its target acknowledged",
            sink_messages.clone(),
        );
        registry.register(
            "siphon_sink_records",
            "Change rows in the messages a sink published and its target acknowledged",
            sink_records.clone(),
        );
        registry.register(
            "siphon_sink_duplicates",
            "Messages the target acknowledged as duplicates of ones it already held (a \
             re-publish after a restart or a reconnect, dropped by the duplicate window)",
            sink_duplicates.clone(),
        );
        registry.register(
            "siphon_sink_errors",
            "Times a sink failed (connect, publish, acknowledgement) and started again",
            sink_errors.clone(),
        );
        registry.register(
            "siphon_sink_position",
            "The last sequence number of its input a sink has published whole",
            sink_position.clone(),
        );
        registry.register(
            "siphon_sink_lag",
            "Committed changes of its input a sink has not published yet",
            sink_lag.clone(),
        );
        Observer {
            registry,
            requests,
            duration,
            response_status,
            bytes,
            pages,
            records,
            decode_errors,
            retries,
            rate_limited,
            circuit,
            polls,
            egress_dropped,
            egress_readers,
            pushes,
            sink_messages,
            sink_records,
            sink_duplicates,
            sink_errors,
            sink_position,
            sink_lag,
            store_transactions,
            store_transactions_seen: Mutex::new(0),
            history_per_source: history_per_source.max(1),
            logs: Mutex::new(BTreeMap::new()),
            http: Mutex::new(BTreeMap::new()),
        }
    }

    /// An egress reader of `table` skipped `chunks` chunks (backpressure=false).
    pub fn egress_dropped(&self, table: &str, chunks: u64) {
        self.egress_dropped
            .get_or_create(&TableLabels {
                table: table.to_string(),
            })
            .inc_by(chunks);
        tracing::debug!(table = %table, chunks, "egress reader fell behind; chunks skipped");
    }

    /// A push to `table` was answered: `Ok(records stored)`, or `Err(status)` (`rejected`,
    /// `error`).
    pub fn push_answered(&self, table: &str, outcome: Result<u64, &str>) {
        let status = match outcome {
            Ok(records) => {
                self.records
                    .get_or_create(&SourceLabels {
                        table: table.to_string(),
                        connection: String::new(),
                    })
                    .inc_by(records);
                "ok"
            }
            Err(status) => status,
        };
        self.pushes
            .get_or_create(&StatusLabels {
                table: table.to_string(),
                connection: String::new(),
                status: status.to_string(),
            })
            .inc();
    }

    /// An egress reader of `table` opened (+1) or closed (-1).
    pub fn egress_readers(&self, table: &str, delta: i64) {
        self.egress_readers
            .get_or_create(&TableLabels {
                table: table.to_string(),
            })
            .inc_by(delta);
    }

    /// A sink's target acknowledged `messages` messages holding `records` change rows, of
    /// which `duplicates` it already held.
    pub fn sink_acked(&self, sink: &str, messages: u64, records: u64, duplicates: u64) {
        let labels = SinkLabels {
            sink: sink.to_string(),
        };
        self.sink_messages.get_or_create(&labels).inc_by(messages);
        self.sink_records.get_or_create(&labels).inc_by(records);
        if duplicates > 0 {
            self.sink_duplicates
                .get_or_create(&labels)
                .inc_by(duplicates);
        }
    }

    /// Where a sink stands: its published position and its lag behind its input.
    pub fn sink_progress(&self, sink: &str, position: u64, lag: u64) {
        let labels = SinkLabels {
            sink: sink.to_string(),
        };
        self.sink_position
            .get_or_create(&labels)
            .set(i64::try_from(position).unwrap_or(i64::MAX));
        self.sink_lag
            .get_or_create(&labels)
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// A sink connected to its target and resumes after `position`.
    pub fn sink_started(&self, sink: &SourceId, position: u64, how: &str) {
        let message =
            format!("connected; publishing the changes after sequence {position} ({how})");
        tracing::info!(sink = %sink.labels.table, "{message}");
        self.log(sink, Utc::now(), "INFO", message);
    }

    /// A sink failed; it starts again after `retry_in`.
    pub fn sink_failed(&self, sink: &SourceId, error: &str, retry_in: Duration) {
        self.sink_errors
            .get_or_create(&SinkLabels {
                sink: sink.labels.table.clone(),
            })
            .inc();
        let message = format!(
            "sink failed: {error}; starting again in {} ms from its last acknowledged change",
            retry_in.as_millis()
        );
        tracing::warn!(sink = %sink.labels.table, "{message}");
        self.log(sink, Utc::now(), "WARN", message);
    }

    /// The store's commit transactions so far (a running total).
    pub fn store_transactions(&self, total: u64) {
        let mut seen = self.store_transactions_seen.lock().expect("metrics lock");
        if total > *seen {
            self.store_transactions.inc_by(total - *seen);
            *seen = total;
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// One HTTP exchange of a poll (called for every request, retries included).
    pub fn request(&self, source: &SourceId, r: &RequestRecord) {
        let status = match r.status {
            Some(code) => code.to_string(),
            None => "error".to_string(),
        };
        self.requests
            .get_or_create(&source.with_status(&status))
            .inc();
        self.duration
            .get_or_create(&source.labels)
            .observe(r.elapsed.as_secs_f64());
        if let Some(code) = r.status {
            self.response_status
                .get_or_create(&source.with_code(code.to_string()))
                .inc();
            if code == 429 {
                self.rate_limited.get_or_create(&source.labels).inc();
            }
        }
        self.bytes.get_or_create(&source.labels).inc_by(r.bytes);
        if r.attempt > 1 {
            self.retries.get_or_create(&source.labels).inc();
        }
        let ms = r.elapsed.as_secs_f64() * 1000.0;
        let message = match r.status {
            Some(code) => format!(
                "HTTP {} {} -> {} in {:.0} ms, {} bytes (page {}, attempt {})",
                r.method, r.url, code, ms, r.bytes, r.page, r.attempt
            ),
            None => format!(
                "HTTP {} {} -> no response after {:.0} ms (page {}, attempt {})",
                r.method, r.url, ms, r.page, r.attempt
            ),
        };
        tracing::debug!(table = %source.labels.table, "{message}");
        self.log(source, r.started_at, "DEBUG", message);
        push_bounded(
            &self.http,
            &source.labels.table,
            self.history_per_source,
            HttpRow {
                timestamp: r.started_at,
                connector: source.connector.clone(),
                table_name: source.labels.table.clone(),
                method: r.method.clone(),
                url: r.url.clone(),
                status_code: r.status,
                response_time_ms: ms,
                bytes: r.bytes,
                pages: r.page,
                attempt: r.attempt,
            },
        );
    }

    /// A poll that committed `records` records (changes, for a keyed table) from `pages`
    /// pages with `dead_letters` rejected records.
    pub fn poll_succeeded(
        &self,
        source: &SourceId,
        pages: u32,
        records: u64,
        dead_letters: u64,
        note: Option<&str>,
    ) {
        self.polls.get_or_create(&source.with_status("ok")).inc();
        self.pages
            .get_or_create(&source.labels)
            .observe(f64::from(pages));
        self.records.get_or_create(&source.labels).inc_by(records);
        self.decode_errors
            .get_or_create(&source.labels)
            .inc_by(dead_letters);
        let mut message = format!("poll committed {records} records from {pages} page(s)");
        if dead_letters > 0 {
            message.push_str(&format!(
                "; {dead_letters} record(s) sent to system.dead_letters"
            ));
        }
        if let Some(note) = note {
            message.push_str(&format!("; {note}"));
        }
        let level = if dead_letters > 0 || note.is_some() {
            "WARN"
        } else {
            "INFO"
        };
        if level == "WARN" {
            tracing::warn!(table = %source.labels.table, "{message}");
        } else {
            tracing::debug!(table = %source.labels.table, "{message}");
        }
        self.log(source, Utc::now(), level, message);
    }

    /// A poll that failed (nothing of it was committed).
    pub fn poll_failed(&self, source: &SourceId, error: &str, decode_error: bool) {
        self.polls.get_or_create(&source.with_status("error")).inc();
        if decode_error {
            self.decode_errors.get_or_create(&source.labels).inc();
        }
        tracing::warn!(table = %source.labels.table, error = %error, "poll failed");
        self.log(source, Utc::now(), "WARN", format!("poll failed: {error}"));
    }

    /// The saved state belongs to a source with other options: it starts afresh.
    pub fn state_reset(&self, source: &SourceId, changed: &[String]) {
        let message = format!(
            "the options that define what is polled changed since the state was saved ({}): \
             the saved state (cursor, since value, ETag, body hash) is discarded and the \
             source starts again from initial_state",
            changed.join(", ")
        );
        tracing::warn!(table = %source.labels.table, "{message}");
        self.log(source, Utc::now(), "WARN", message);
    }

    /// A complete snapshot lacked more of a keyed table's rows than `max_delete_ratio`
    /// allows: its upserts were stored, its deletes withheld.
    pub fn deletes_withheld(&self, source: &SourceId, withheld: usize, rows: usize, ratio: f64) {
        let message = format!(
            "the poll's list lacks {withheld} of the table's {rows} rows, more than \
             max_delete_ratio ({ratio}) allows: they are kept, not deleted (a list that \
             suddenly lacks most rows is usually a broken response). If the API really \
             dropped them, raise max_delete_ratio (1 lets a snapshot delete every row)"
        );
        tracing::warn!(table = %source.labels.table, "{message}");
        self.log(source, Utc::now(), "WARN", message);
    }

    /// The source's task panicked; it is restarted from the saved state.
    pub fn task_panicked(&self, source: &SourceId, message: &str, restart_in: Duration) {
        let message = format!(
            "source task panicked: {message}; restarting from the saved state in {} ms",
            restart_in.as_millis()
        );
        tracing::error!(table = %source.labels.table, "{message}");
        self.log(source, Utc::now(), "ERROR", message);
    }

    /// A poll skipped because the circuit breaker is open.
    pub fn circuit_open(&self, source: &SourceId, remaining_ms: u128) {
        let message = format!("circuit breaker open; next trial poll in {remaining_ms} ms");
        tracing::debug!(table = %source.labels.table, "{message}");
        self.log(source, Utc::now(), "INFO", message);
    }

    /// The circuit breaker's state (0 closed, 1 half-open, 2 open).
    pub fn circuit_state(&self, source: &SourceId, value: u8) {
        self.circuit
            .get_or_create(&source.labels)
            .set(i64::from(value));
    }

    fn log(
        &self,
        source: &SourceId,
        timestamp: DateTime<Utc>,
        level: &'static str,
        message: String,
    ) {
        push_bounded(
            &self.logs,
            &source.labels.table,
            self.history_per_source,
            LogRow {
                timestamp,
                connector: source.connector.clone(),
                table_name: source.labels.table.clone(),
                level,
                message,
            },
        );
    }

    /// Every source's kept log rows, oldest first per source.
    pub fn logs(&self) -> Vec<LogRow> {
        self.logs
            .lock()
            .expect("logs lock")
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    /// Every source's kept request rows.
    pub fn http_rows(&self) -> Vec<HttpRow> {
        self.http
            .lock()
            .expect("http lock")
            .values()
            .flatten()
            .cloned()
            .collect()
    }
}

fn push_bounded<T>(map: &Mutex<BTreeMap<String, VecDeque<T>>>, table: &str, limit: usize, row: T) {
    let mut map = map.lock().expect("history lock");
    let rows = map.entry(table.to_string()).or_default();
    if rows.len() >= limit {
        rows.pop_front();
    }
    rows.push_back(row);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(status: Option<u16>, attempt: u32) -> RequestRecord {
        RequestRecord {
            started_at: Utc::now(),
            method: "GET".into(),
            url: "http://h/x?k=***".into(),
            status,
            elapsed: Duration::from_millis(30),
            bytes: 100,
            attempt,
            page: 1,
        }
    }

    #[test]
    fn counts_and_histories_agree_and_are_bounded() {
        let o = Observer::new(3);
        let s = SourceId::new("polling_http_source", "t", Some("c"));
        o.request(&s, &request(Some(503), 1));
        o.request(&s, &request(Some(429), 2));
        o.request(&s, &request(None, 3));
        o.request(&s, &request(Some(200), 4));
        o.poll_succeeded(&s, 1, 5, 1, None);
        let text = o.render();
        for line in [
            "siphon_http_requests_total{table=\"t\",connection=\"c\",status=\"503\"} 1",
            "siphon_http_requests_total{table=\"t\",connection=\"c\",status=\"error\"} 1",
            "siphon_http_response_status_total{table=\"t\",connection=\"c\",code=\"429\"} 1",
            "siphon_retries_total{table=\"t\",connection=\"c\"} 3",
            "siphon_rate_limited_total{table=\"t\",connection=\"c\"} 1",
            "siphon_http_bytes_received_total{table=\"t\",connection=\"c\"} 400",
            "siphon_records_ingested_total{table=\"t\",connection=\"c\"} 5",
            "siphon_decode_errors_total{table=\"t\",connection=\"c\"} 1",
            "siphon_http_request_duration_seconds_count{table=\"t\",connection=\"c\"} 4",
            "siphon_http_pagination_pages_count{table=\"t\",connection=\"c\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert_eq!(o.http_rows().len(), 3, "bounded to the newest 3");
        assert_eq!(o.http_rows()[0].attempt, 2);
        let logs = o.logs();
        assert_eq!(logs.len(), 3);
        assert!(logs[2].message.contains("poll committed 5 records") && logs[2].level == "WARN");
    }
}
