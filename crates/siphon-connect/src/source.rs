//! One polling source: walk the pages of one poll, decode them, and work out the next state.
//!
//! A poll is a step from the saved [`SourceState`] to a [`PollOutput`] (records plus the
//! new state). It stores nothing: the engine commits the records and the new state in one
//! transaction, which is what makes a restart after a crash exactly-once. A failed poll
//! (retries spent on any page, a pagination loop, an undecodable page) returns an error and
//! no state, so nothing of it commits and the next poll starts again from the saved state.
//!
//! Around every request: the connection's rate limiter, the OAuth2 token (fetched once
//! more on a 401), retries with backoff and `Retry-After`, and the rate-limit headers the
//! server sends. Around every poll: the circuit breaker.
//!
//! Conditional requests (`If-None-Match` / `If-Modified-Since`, from the last response's
//! `ETag` / `Last-Modified`) are sent only by sources without pagination, where a 304 means
//! "the one page is unchanged". A paginated source neither sends nor keeps validators: one
//! page's validators say nothing about the pages after it, and a 304 on page 1 used to end
//! the poll there, so later pages were never fetched again. A 304 to a paginated request
//! (which sent no validators) is a failed poll.
//!
//! An empty body (a 204, or whitespace) is a successful page of zero records. When a poll
//! is the API's whole list, and so may delete rows of a keyed table, is spelled out on
//! [`PollOutput::complete`].

use crate::error_chain;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arrow::array::RecordBatch;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Auth, EmitBehavior, PathMissing, PollingConfig};
use crate::decode::{
    DeadLetter, DecodeError, DecodedPage, DecoderConfigError, Format, RecordDecoder,
};
use crate::oauth2::TokenProvider;
use crate::pagination::{PageRequest, PageWalk, PaginationError, Step};
use crate::resilience::{CircuitBreaker, CircuitState, Decision, Outcome, RateLimiter, headers};
use crate::schema::RecordSchema;
use crate::secret::is_secret_header;
use crate::state::{self, StateError};
use crate::template::{Escape, RequestContext};

/// How many bytes of an error response's body an error message quotes.
const BODY_EXCERPT: usize = 300;

/// What a source remembers between polls. It is committed with the records a poll
/// produced, so it always describes exactly what the table holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceState {
    /// Start of the last successful poll.
    pub last_poll_time: Option<DateTime<Utc>>,
    /// SHA-256 of the last response bodies, for `emit_behavior = 'changed'`.
    pub last_body_sha256: Option<String>,
    /// Successful polls so far.
    pub polls: u64,
    /// Incremental state: the maximum of `state_field` so far.
    pub value: Option<String>,
    /// `ETag` of the last response, kept only by sources without pagination (the only
    /// ones that send conditional requests).
    pub etag: Option<String>,
    /// `Last-Modified` of the last response, kept like `etag`.
    pub last_modified: Option<String>,
    /// The records stored inside the boundary window of `value` (see [`crate::boundary`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub boundary: Vec<crate::boundary::Seen>,
}

/// One HTTP exchange, for status, metrics and logs.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// When the request was sent.
    pub started_at: DateTime<Utc>,
    /// HTTP method.
    pub method: String,
    /// The URL with secrets redacted.
    pub url: String,
    /// The status, if a response arrived.
    pub status: Option<u16>,
    /// Time to the end of the body (or the failure).
    pub elapsed: Duration,
    /// Body bytes received.
    pub bytes: u64,
    /// 1 for the first try of a page's request, 2 for its first retry, ...
    pub attempt: u32,
    /// The page of the poll (1-based).
    pub page: u32,
}

/// What a successful poll produced.
#[derive(Debug)]
pub struct PollOutput {
    /// Decoded records of every page, or `None` when nothing is to be emitted (an
    /// unchanged body, a 304).
    pub page: Option<DecodedPage>,
    /// The state to commit with the records.
    pub state: SourceState,
    /// The requests the poll made.
    pub requests: Vec<RequestRecord>,
    /// Pages walked.
    pub pages: u32,
    /// Whether the records are the API's whole list, so that a keyed table may take rows
    /// missing from them as deleted. True exactly when all of these hold:
    /// * the source keeps no incremental state (`state_type` none);
    /// * the walk ended on its own (the last page was empty, short, or had no next
    ///   cursor/link/URL), not at `max_pages`;
    /// * no record of any page became a dead letter;
    /// * every page was a listing ([`DecodedPage::listing`]): not an empty body (a 204 or
    ///   whitespace) in json, xml, raw or csv with a header, and not a body whose
    ///   `json_path` / `xml_root_path` matched nothing (taken as zero records under
    ///   `json_path_missing = 'empty'`);
    /// * records are emitted (`page` is `Some`): an unchanged body or a 304 is never
    ///   complete.
    pub complete: bool,
    /// The server answered 304 Not Modified.
    pub not_modified: bool,
    /// Things worth reporting that are not failures (e.g. `max_pages` reached).
    pub notes: Vec<String>,
}

/// Why a poll failed. Messages never carry secrets.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// No response: connection refused, DNS, TLS, reset, a broken body, a redirect loop.
    #[error("request to {url} failed: {message}")]
    Transport {
        /// The redacted URL.
        url: String,
        /// What kind of failure it was, for callers that act on it or explain it.
        kind: TransportKind,
        /// What went wrong.
        message: String,
        /// The requests made, for metrics.
        requests: Vec<RequestRecord>,
    },
    /// The request or the body took longer than `timeout_ms`.
    #[error("request to {url} timed out after {timeout_ms} ms")]
    Timeout {
        /// The redacted URL.
        url: String,
        /// The configured timeout.
        timeout_ms: u128,
        /// The requests made, for metrics.
        requests: Vec<RequestRecord>,
    },
    /// The server answered with a status that is not a success.
    #[error("HTTP {status} from {url}: {excerpt}")]
    Status {
        /// The redacted URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        excerpt: String,
        /// The requests made, for metrics.
        requests: Vec<RequestRecord>,
    },
    /// The body was larger than allowed.
    #[error("response from {url} exceeds max_response_bytes ({limit} bytes)")]
    TooLarge {
        /// The redacted URL.
        url: String,
        /// The limit.
        limit: u64,
        /// The requests made, for metrics.
        requests: Vec<RequestRecord>,
    },
    /// The body could not be read as the configured format at all.
    #[error("cannot decode the response from {url}: {source}; near: {near}")]
    Decode {
        /// The redacted URL.
        url: String,
        /// The decoder's error.
        source: DecodeError,
        /// The body around the position the decoder named (or its start), redacted.
        near: String,
        /// The requests made, for metrics.
        requests: Vec<RequestRecord>,
    },
    /// A page sent the walk somewhere it cannot follow (a loop, a bad cursor).
    #[error("pagination stopped at {url}: {source}")]
    Pagination {
        /// The redacted URL.
        url: String,
        /// What the walk found.
        source: PaginationError,
        /// The requests made, for metrics.
        requests: Vec<RequestRecord>,
    },
    /// The OAuth2 token could not be had.
    #[error("authentication failed: {message}")]
    Auth {
        /// What the token endpoint said (redacted).
        message: String,
        /// The requests made, for metrics.
        requests: Vec<RequestRecord>,
    },
    /// The state could not be read from the records.
    #[error("{0}")]
    State(#[from] StateError),
    /// The circuit breaker is open: no request was made.
    #[error("circuit breaker open: next trial poll in {remaining_ms} ms")]
    CircuitOpen {
        /// Time until the breaker lets a trial poll through.
        remaining_ms: u128,
    },
}

impl PollError {
    /// The requests made before the failure.
    pub fn requests(&self) -> &[RequestRecord] {
        match self {
            PollError::Transport { requests, .. }
            | PollError::Timeout { requests, .. }
            | PollError::Status { requests, .. }
            | PollError::TooLarge { requests, .. }
            | PollError::Decode { requests, .. }
            | PollError::Pagination { requests, .. }
            | PollError::Auth { requests, .. } => requests,
            PollError::State(_) | PollError::CircuitOpen { .. } => &[],
        }
    }
}

/// Why a request got no (whole) response: the structured cause of [`PollError::Transport`],
/// so callers need not read the message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// The host name did not resolve.
    Dns,
    /// Nothing accepted the connection at the address: the peer refused it.
    ConnectionRefused,
    /// The TLS handshake failed: an untrusted or mismatched certificate, or a peer that
    /// does not speak TLS.
    Tls,
    /// The connection was not established within the connect timeout.
    ConnectTimeout,
    /// The peer reset or closed the connection before a complete response.
    Reset,
    /// The response started but its body broke off or could not be decompressed.
    BrokenBody,
    /// Too many redirects: a loop, or a longer chain than the client follows.
    RedirectLoop,
    /// Anything else: an invalid URL, a request that cannot be built, an unknown cause.
    Other,
}

/// Texts of a resolver failure (hyper-util's wrapper, then the OS resolvers' own words).
const DNS_MARKERS: &[&str] = &[
    "dns error",
    "failed to lookup address",
    "name or service not known",
    "no such host",
    "nodename nor servname",
    "temporary failure in name resolution",
];

/// Texts of a TLS failure (rustls's errors, and generic TLS words).
const TLS_MARKERS: &[&str] = &[
    "certificate",
    "tls",
    "ssl",
    "handshake",
    "received corrupt message",
    "fatal alert",
    "peer is incompatible",
    "peer misbehaved",
];

/// hyper's text for a connection closed before the response head was complete.
const CLOSED_MARKER: &str = "connection closed before message completed";

impl TransportKind {
    /// A short phrase for a reader, e.g. "DNS lookup failed".
    pub fn describe(self) -> &'static str {
        match self {
            TransportKind::Dns => "DNS lookup failed",
            TransportKind::ConnectionRefused => "connection refused",
            TransportKind::Tls => "TLS handshake or certificate error",
            TransportKind::ConnectTimeout => "connection attempt timed out",
            TransportKind::Reset => "connection reset or closed by the peer",
            TransportKind::BrokenBody => "response body broken off or undecodable",
            TransportKind::RedirectLoop => "too many redirects (a redirect loop)",
            TransportKind::Other => "request failed with no response",
        }
    }

    /// Classifies a failed request: by reqwest's own flags first, then by the causes in
    /// its source chain (an I/O error's kind; hyper's and rustls's texts where there is no
    /// type to go by). The top error's own text is not read: it carries the URL, whose
    /// host or path could contain any of the words looked for.
    pub fn of(error: &reqwest::Error) -> Self {
        use std::error::Error as _;
        use std::io::ErrorKind;

        if is_redirect_failure(error) {
            return TransportKind::RedirectLoop;
        }
        if error.is_body() || error.is_decode() {
            return TransportKind::BrokenBody;
        }
        if error.is_timeout() && error.is_connect() {
            return TransportKind::ConnectTimeout;
        }
        let mut texts = Vec::new();
        let mut io = None;
        let mut cause = error.source();
        while let Some(e) = cause {
            let text = e.to_string().to_ascii_lowercase();
            if io.is_none()
                && let Some(io_error) = e.downcast_ref::<std::io::Error>()
            {
                io = Some((io_error.kind(), text.clone()));
            }
            texts.push(text);
            cause = e.source();
        }
        let mentions =
            |markers: &[&str]| texts.iter().any(|t| markers.iter().any(|m| t.contains(m)));
        if mentions(DNS_MARKERS) {
            return TransportKind::Dns;
        }
        if let Some((kind, text)) = io {
            match kind {
                ErrorKind::ConnectionRefused => return TransportKind::ConnectionRefused,
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe => return TransportKind::Reset,
                // tokio-rustls: the peer closed the connection during the handshake.
                ErrorKind::UnexpectedEof if text.contains("handshake") => {
                    return TransportKind::Tls;
                }
                // Includes rustls's "peer closed connection without sending TLS close_notify".
                ErrorKind::UnexpectedEof => return TransportKind::Reset,
                ErrorKind::TimedOut => return TransportKind::ConnectTimeout,
                _ => {}
            }
        }
        if mentions(TLS_MARKERS) {
            return TransportKind::Tls;
        }
        if mentions(&[CLOSED_MARKER]) {
            return TransportKind::Reset;
        }
        TransportKind::Other
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why a source could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceBuildError {
    /// The option at fault.
    pub option: &'static str,
    /// What is wrong.
    pub message: String,
}

impl From<DecoderConfigError> for SourceBuildError {
    fn from(e: DecoderConfigError) -> Self {
        SourceBuildError {
            option: "format",
            message: e.to_string(),
        }
    }
}

/// Checks that a configuration fits a table (format, state field) and returns the decoder.
pub fn check_source(
    config: &PollingConfig,
    schema: Arc<RecordSchema>,
) -> Result<RecordDecoder, SourceBuildError> {
    if let Some(s) = &config.state {
        let Some(column) = schema.columns().iter().find(|c| c.name == s.field) else {
            let names: Vec<&str> = schema.columns().iter().map(|c| c.name.as_str()).collect();
            return Err(SourceBuildError {
                option: "state_field",
                message: format!(
                    "`{}` is not a column of the table (columns: {})",
                    s.field,
                    names.join(", ")
                ),
            });
        };
        use crate::schema::ColumnType as T;
        let fits = match s.kind {
            crate::config::StateKind::Timestamp => {
                matches!(column.ty, T::Timestamp | T::Date | T::Text | T::BigInt)
            }
            crate::config::StateKind::Checkpoint => {
                matches!(
                    column.ty,
                    T::SmallInt | T::Int | T::BigInt | T::Double | T::Decimal { .. } | T::Text
                )
            }
            crate::config::StateKind::None => true,
        };
        if !fits {
            return Err(SourceBuildError {
                option: "state_field",
                message: format!(
                    "column `{}` is {}, which cannot hold this kind of state",
                    s.field,
                    column.ty.sql_name()
                ),
            });
        }
    }
    let mut decoder = RecordDecoder::new(schema, config.format.clone())?;
    if !config.columns.is_empty() {
        decoder = decoder.with_options(&config.columns).map_err(|e| {
            let option = match e {
                DecoderConfigError::TimestampFormatColumn { .. } => "timestamp_format",
                _ => "field_paths",
            };
            SourceBuildError {
                option,
                message: e.to_string(),
            }
        })?;
    }
    match &config.transform {
        Some(transform) => {
            decoder
                .with_transform(transform.clone())
                .map_err(|e| SourceBuildError {
                    option: "transforms",
                    message: e.to_string(),
                })
        }
        None => Ok(decoder),
    }
}

/// The shared HTTP client: one connection pool for every source of a process. It follows
/// no redirect itself: its users follow them with [`crate::redirect::send`], which strips
/// every secret from a hop to another origin (reqwest would strip only `Authorization` and
/// `Cookie`).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("siphon/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .expect("the HTTP client's fixed settings are valid")
}

/// What several tables of one connection share: the OAuth2 token and the rate limit.
#[derive(Clone, Default)]
pub struct SharedResources {
    /// The connection's token provider (auth_type = 'oauth2').
    pub tokens: Option<Arc<TokenProvider>>,
    /// The connection's rate limiter.
    pub limiter: Option<Arc<RateLimiter>>,
}

impl SharedResources {
    /// Fresh shared resources for a configuration (the engine keeps one per connection).
    pub fn for_config(config: &PollingConfig, client: &reqwest::Client) -> Self {
        SharedResources {
            tokens: match &config.auth {
                Auth::OAuth2(c) => Some(Arc::new(TokenProvider::new(c.clone(), client.clone()))),
                _ => None,
            },
            limiter: config
                .rate_limit
                .map(|r| Arc::new(RateLimiter::new(r.requests, r.window))),
        }
    }
}

/// A configured polling source, ready to poll.
pub struct PollingSource {
    config: Arc<PollingConfig>,
    decoder: RecordDecoder,
    client: reqwest::Client,
    tokens: Option<Arc<TokenProvider>>,
    limiter: Arc<RateLimiter>,
    breaker: Option<Mutex<CircuitBreaker>>,
    progress: Arc<PollProgress>,
}

/// Live progress of the poll in flight, for a terminal display: written by the poll,
/// read by anyone holding the `Arc`.
#[derive(Debug, Default)]
pub struct PollProgress {
    in_flight: AtomicBool,
    pages: AtomicU32,
    records: AtomicU64,
}

impl PollProgress {
    /// `(pages, records)` of the poll in flight, or `None` between polls.
    pub fn current(&self) -> Option<(u32, u64)> {
        self.in_flight.load(Ordering::Relaxed).then(|| {
            (
                self.pages.load(Ordering::Relaxed),
                self.records.load(Ordering::Relaxed),
            )
        })
    }

    fn start(&self) {
        self.pages.store(0, Ordering::Relaxed);
        self.records.store(0, Ordering::Relaxed);
        self.in_flight.store(true, Ordering::Relaxed);
    }

    fn page(&self, records: usize) {
        self.pages.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
    }

    fn finish(&self) {
        self.in_flight.store(false, Ordering::Relaxed);
    }
}

/// A response that arrived whole.
struct Fetched {
    status: u16,
    headers: HeaderMap,
    url: reqwest::Url,
    body: Vec<u8>,
}

enum FetchError {
    Transport(reqwest::Error),
    Redirect(crate::redirect::RedirectError),
    TooLarge,
}

impl PollingSource {
    /// Builds a source; fails when the format or the state field does not fit the schema.
    pub fn new(
        config: Arc<PollingConfig>,
        schema: Arc<RecordSchema>,
        client: reqwest::Client,
        shared: SharedResources,
    ) -> Result<Self, SourceBuildError> {
        let decoder = check_source(&config, schema)?;
        if let Some(tokens) = &shared.tokens {
            // The connection's tokens are secrets of every table that polls through it.
            tokens.share_tokens_with(config.redactor.learner());
        }
        Ok(PollingSource {
            breaker: config
                .circuit_breaker
                .map(|c| Mutex::new(CircuitBreaker::new(c.threshold, c.open_timeout))),
            limiter: shared
                .limiter
                .unwrap_or_else(|| Arc::new(RateLimiter::unlimited())),
            tokens: shared.tokens,
            config,
            decoder,
            client,
            progress: Arc::new(PollProgress::default()),
        })
    }

    /// The live progress of this source's polls.
    pub fn progress(&self) -> Arc<PollProgress> {
        self.progress.clone()
    }

    /// The bound configuration.
    pub fn config(&self) -> &PollingConfig {
        &self.config
    }

    /// The circuit breaker's state, when one is configured.
    pub fn circuit_state(&self) -> Option<CircuitState> {
        self.breaker
            .as_ref()
            .map(|b| b.lock().expect("breaker lock").state())
    }

    /// Polls once from `state`. Nothing is stored; the caller commits the output.
    pub async fn poll(&self, state: &SourceState) -> Result<PollOutput, PollError> {
        if let Some(breaker) = &self.breaker {
            breaker
                .lock()
                .expect("breaker lock")
                .try_acquire()
                .map_err(|remaining| PollError::CircuitOpen {
                    remaining_ms: remaining.as_millis(),
                })?;
        }
        self.progress.start();
        let result = self.walk(state).await;
        self.progress.finish();
        if let Some(breaker) = &self.breaker {
            let mut b = breaker.lock().expect("breaker lock");
            if result.is_ok() {
                b.on_success()
            } else {
                b.on_failure()
            }
        }
        result
    }

    async fn walk(&self, state: &SourceState) -> Result<PollOutput, PollError> {
        let c = &*self.config;
        let started_at = Utc::now();
        let mut requests = Vec::new();
        let mut notes = Vec::new();
        let initial = c.state.as_ref().and_then(|s| s.initial.clone());
        let mut saved = state.value.clone().or_else(|| initial.clone());
        if let (Some(s), Some(value)) = (&c.state, &state.value)
            && s.kind == crate::config::StateKind::Timestamp
            && state::too_far_ahead(value, started_at)
        {
            // Asking for records newer than the far future would receive nothing, every
            // poll, silently: start again from initial_state instead, and say so.
            notes.push(format!(
                "the saved state {value} lies more than a day ahead of the clock; polling from {} instead",
                initial.as_deref().unwrap_or("no state (initial_state is not set)")
            ));
            saved = initial;
        }
        // The boundary memory belongs to the saved maximum only.
        let memory: &[crate::boundary::Seen] = if saved == state.value {
            &state.boundary
        } else {
            &[]
        };
        let state_sent = match (&c.state, &saved) {
            (Some(s), Some(v)) => Some(state::render(
                s.kind,
                &crate::boundary::value_to_send(s.kind, v, &s.boundary),
                &c.time_format,
            )),
            _ => None,
        };
        let mut walk = PageWalk::new(&c.pagination, c.max_pages);
        let mut next = walk.first();
        let mut pages: Vec<DecodedPage> = Vec::new();
        let mut hasher = Sha256::new();
        let mut validators = (None, None);
        let mut complete = true;
        let single_page = matches!(
            c.pagination.pagination(),
            crate::pagination::Pagination::None
        );
        loop {
            let ctx = RequestContext {
                last_poll_time: state.last_poll_time,
                current_time: started_at,
                state: state_sent.clone(),
                page: next.page,
                offset: next.offset,
                cursor: next.cursor.clone(),
            };
            let first = pages.is_empty();
            // Conditional requests only without pagination: a 304 then means "the one
            // page is unchanged". With pages, validators of one page say nothing of the
            // others, so none are sent and none kept.
            let conditional = (first && single_page).then_some(state);
            let (request, same_origin) = self.build_request(&ctx, &next, conditional, &requests)?;
            let page_no = pages.len() as u32 + 1;
            let fetched = self
                .send(request, same_origin, page_no, &mut requests)
                .await?;
            let url_text = self.config.redactor.redact(fetched.url.as_str());
            if fetched.status == 304 && !single_page {
                // No validators were sent, so the server cannot mean "unchanged since".
                return Err(PollError::Status {
                    url: url_text,
                    status: 304,
                    excerpt: "Not Modified, to a request that sent no validators (a paginated source never sends If-None-Match or If-Modified-Since)".into(),
                    requests,
                });
            }
            if single_page {
                if fetched.status == 304 {
                    return Ok(PollOutput {
                        page: None,
                        state: SourceState {
                            last_poll_time: Some(started_at),
                            polls: state.polls + 1,
                            ..state.clone()
                        },
                        requests,
                        pages: 1,
                        complete: false,
                        not_modified: true,
                        notes,
                    });
                }
                validators = (
                    header_text(&fetched.headers, "etag"),
                    header_text(&fetched.headers, "last-modified"),
                );
            }
            // Only `emit_behavior = 'changed'` compares bodies: no hashing otherwise.
            if c.emit_behavior == EmitBehavior::Changed {
                hasher.update((fetched.body.len() as u64).to_le_bytes());
                hasher.update(&fetched.body);
            }
            if single_page && c.emit_behavior == EmitBehavior::Changed {
                // One page: the hash is known before decoding, so an unchanged body costs no decode.
                let digest = hex(&hasher.clone().finalize());
                if state.last_body_sha256.as_deref() == Some(digest.as_str()) {
                    return Ok(self.unchanged(state, started_at, requests, validators, saved));
                }
            }
            let page = match self.decoder.decode(&fetched.body) {
                Ok(page) => page,
                Err(DecodeError::NothingAtPath { .. }) if c.path_missing == PathMissing::Empty => {
                    DecodedPage::empty(self.decoder.schema(), false)
                }
                Err(source) => {
                    // A path that matched nothing is explained by the body's start.
                    let position = match &source {
                        DecodeError::NothingAtPath { .. } => String::new(),
                        other => other.to_string(),
                    };
                    return Err(PollError::Decode {
                        near: self
                            .config
                            .redactor
                            .redact(&excerpt_near(&fetched.body, &position)),
                        url: url_text.clone(),
                        source,
                        requests: requests.clone(),
                    });
                }
            };
            // Dead letters and pages that are no listing leave the poll's list partial.
            complete &= page.listing && page.dead_letters.is_empty();
            let records = page.records();
            self.progress.page(records);
            pages.push(page);
            match walk.next(&fetched.url, &fetched.headers, &fetched.body, records) {
                Ok(Step::Next(request)) => next = request,
                Ok(Step::Done) => break,
                Ok(Step::MaxPages) => {
                    notes.push(format!(
                        "max_pages ({}) reached; the poll stopped there",
                        c.max_pages
                    ));
                    complete = false;
                    break;
                }
                Err(source) => {
                    return Err(PollError::Pagination {
                        url: url_text,
                        source,
                        requests,
                    });
                }
            }
        }

        let digest = (c.emit_behavior == EmitBehavior::Changed).then(|| hex(&hasher.finalize()));
        if digest.is_some() && state.last_body_sha256 == digest {
            return Ok(self.unchanged(state, started_at, requests, validators, saved));
        }
        let page_count = pages.len() as u32;
        let mut page = merge(self.decoder.schema().arrow_schema(), pages);
        let (value, boundary) = match &c.state {
            Some(s) => {
                // Records already stored at (or, with lookback, inside the window below)
                // the saved maximum come again from an inclusive API: drop exactly those.
                let batch = std::mem::replace(
                    &mut page.batch,
                    RecordBatch::new_empty(self.decoder.schema().arrow_schema()),
                );
                page.batch = crate::boundary::filter(
                    s.kind,
                    batch,
                    &s.field,
                    saved.as_deref(),
                    memory,
                    &s.boundary,
                )?
                .batch;
                let advanced =
                    state::advance(s.kind, &page.batch, &s.field, saved.as_deref(), started_at)?;
                notes.extend(advanced.notes);
                let boundary = crate::boundary::remember(
                    s.kind,
                    &page.batch,
                    &s.field,
                    advanced.value.as_deref(),
                    memory,
                    &s.boundary,
                )?;
                (advanced.value, boundary)
            }
            None => (None, Vec::new()),
        };
        Ok(PollOutput {
            page: Some(page),
            state: SourceState {
                last_poll_time: Some(started_at),
                last_body_sha256: digest,
                polls: state.polls + 1,
                value,
                etag: validators.0,
                last_modified: validators.1,
                boundary,
            },
            requests,
            pages: page_count,
            complete: complete && c.state.is_none(),
            not_modified: false,
            notes,
        })
    }

    fn unchanged(
        &self,
        state: &SourceState,
        started_at: DateTime<Utc>,
        requests: Vec<RequestRecord>,
        validators: (Option<String>, Option<String>),
        saved: Option<String>,
    ) -> PollOutput {
        PollOutput {
            page: None,
            state: SourceState {
                last_poll_time: Some(started_at),
                polls: state.polls + 1,
                boundary: if saved == state.value {
                    state.boundary.clone()
                } else {
                    Vec::new()
                },
                value: saved,
                etag: validators.0,
                last_modified: validators.1,
                ..state.clone()
            },
            pages: requests.iter().map(|r| r.page).max().unwrap_or(1),
            requests,
            complete: false,
            not_modified: false,
            notes: Vec::new(),
        }
    }

    fn build_request(
        &self,
        ctx: &RequestContext,
        page: &PageRequest,
        conditional: Option<&SourceState>,
        requests: &[RequestRecord],
    ) -> Result<(reqwest::Request, bool), PollError> {
        let c = &*self.config;
        let tf = &c.time_format;
        let endpoint = c.endpoint.render(ctx, tf, Escape::Url);
        let mut url = match &page.url {
            Some(next) => next.clone(),
            None => reqwest::Url::parse(&endpoint).map_err(|e| PollError::Transport {
                url: self.config.redactor.redact(&endpoint),
                kind: TransportKind::Other,
                message: format!(
                    "the endpoint is not a valid URL after filling its variables: {e}"
                ),
                requests: requests.to_vec(),
            })?,
        };
        if page.url.is_none() {
            let mut params: Vec<(String, String)> = c
                .query_params
                .iter()
                .map(|(k, v)| (k.clone(), v.render(ctx, tf, Escape::None)))
                .collect();
            if let (Some(s), Some(value)) = (&c.state, &ctx.state)
                && let Some(param) = &s.param
            {
                params.retain(|(k, _)| k != param);
                params.push((param.clone(), value.clone()));
            }
            for (k, v) in &page.query {
                params.retain(|(existing, _)| existing != k);
                params.push((k.clone(), v.clone()));
            }
            if !params.is_empty() {
                url.query_pairs_mut().extend_pairs(params);
            }
        }
        // Credentials go only to the endpoint's own origin, never to a host a server's
        // next link names: no auth, no credential header, no header holding a secret.
        let same_origin = reqwest::Url::parse(&endpoint).is_ok_and(|e| e.origin() == url.origin());
        let url_text = c.redactor.redact(url.as_str());
        let mut builder = self.client.request(c.method.as_reqwest(), url);
        for (name, value) in &c.headers {
            let value = value.render(ctx, tf, Escape::None);
            if !same_origin && (is_secret_header(name) || c.redactor.reveals(&value)) {
                continue;
            }
            builder = builder.header(name, value);
        }
        if same_origin {
            match &c.auth {
                Auth::None | Auth::OAuth2(_) => {}
                Auth::Basic { username, password } => {
                    let encoded = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{}", password.expose()));
                    builder =
                        builder.header(reqwest::header::AUTHORIZATION, format!("Basic {encoded}"));
                }
                Auth::Bearer { token } => {
                    builder = builder.header(
                        reqwest::header::AUTHORIZATION,
                        format!("Bearer {}", token.expose()),
                    );
                }
                Auth::ApiKey { key, header } => {
                    builder = builder.header(header.as_str(), key.expose());
                }
            }
        }
        if let Some(state) = conditional {
            if let Some(etag) = &state.etag {
                builder = builder.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &state.last_modified {
                builder = builder.header(reqwest::header::IF_MODIFIED_SINCE, modified);
            }
        }
        if let Some(body) = &c.body {
            let plain = body.render(ctx, tf, Escape::None);
            let looks_json = matches!(plain.trim_start().chars().next(), Some('{' | '['));
            builder = builder.body(if looks_json {
                body.render(ctx, tf, Escape::Json)
            } else {
                plain
            });
            let has_content_type = c
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
            if looks_json && !has_content_type {
                builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json");
            }
        }
        let request = builder.build().map_err(|e| PollError::Transport {
            url: self.config.redactor.redact(&endpoint),
            kind: TransportKind::of(&e),
            message: self.config.redactor.redact(&e.to_string()),
            requests: requests.to_vec(),
        })?;
        if !same_origin
            && let Some(body) = request.body().and_then(|b| b.as_bytes())
            && c.redactor.reveals(&String::from_utf8_lossy(body))
        {
            return Err(PollError::Transport {
                url: url_text,
                kind: TransportKind::Other,
                message: "not sending the request body to another origin (a next link's): it holds a secret, and secrets are sent only to the endpoint's origin".into(),
                requests: requests.to_vec(),
            });
        }
        Ok((request, same_origin))
    }

    /// Sends one page's request with rate limiting, OAuth2, and retries.
    async fn send(
        &self,
        request: reqwest::Request,
        same_origin: bool,
        page: u32,
        requests: &mut Vec<RequestRecord>,
    ) -> Result<Fetched, PollError> {
        let c = &*self.config;
        let url = c.redactor.redact(request.url().as_str());
        // The OAuth2 token, like every credential, goes only to the endpoint's own origin.
        let same_origin_token = self.tokens.as_ref().filter(|_| same_origin);
        let mut attempt = 0u32;
        let mut tries = 0u32;
        let mut token_refreshed = false;
        loop {
            attempt += 1;
            tries += 1;
            self.limiter.acquire().await;
            let mut req = request
                .try_clone()
                .expect("request bodies are in memory and clone");
            let mut token_used = None;
            if let Some(tokens) = same_origin_token {
                match tokens.token().await {
                    Ok(token) => {
                        let value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| PollError::Auth {
                            message: "the token endpoint returned a token that is not a valid header value".into(),
                            requests: requests.clone(),
                        })?;
                        req.headers_mut()
                            .insert(reqwest::header::AUTHORIZATION, value);
                        token_used = Some(token);
                    }
                    Err(e) => {
                        return Err(PollError::Auth {
                            message: c.redactor.redact(&e.to_string()),
                            requests: requests.clone(),
                        });
                    }
                }
            }
            let started_at = Utc::now();
            let clock = Instant::now();
            let mut record = RequestRecord {
                started_at,
                method: req.method().to_string(),
                url: url.clone(),
                status: None,
                elapsed: Duration::ZERO,
                bytes: 0,
                attempt: tries,
                page,
            };
            let result = tokio::time::timeout(c.timeout, self.fetch(req, &mut record)).await;
            record.elapsed = clock.elapsed();
            requests.push(record);

            let (outcome, headers) = match &result {
                Err(_) => (Outcome::Timeout, None),
                // No connection was made: the request never reached the server.
                Ok(Err(FetchError::Transport(e))) if e.is_connect() => (Outcome::Unsent, None),
                Ok(Err(FetchError::Transport(e))) if e.is_timeout() => (Outcome::Timeout, None),
                Ok(Err(FetchError::Redirect(e))) => {
                    return Err(PollError::Transport {
                        url,
                        kind: if e.is_loop() {
                            TransportKind::RedirectLoop
                        } else {
                            TransportKind::Other
                        },
                        message: c.redactor.redact(&e.to_string()),
                        requests: requests.clone(),
                    });
                }
                Ok(Err(FetchError::Transport(e))) if is_redirect_failure(e) => {
                    return Err(PollError::Transport {
                        url,
                        kind: TransportKind::RedirectLoop,
                        message: c.redactor.redact(&error_chain(e)),
                        requests: requests.clone(),
                    });
                }
                Ok(Err(FetchError::Transport(_))) => (Outcome::Transport, None),
                Ok(Err(FetchError::TooLarge)) => {
                    return Err(PollError::TooLarge {
                        url,
                        limit: c.max_response_bytes,
                        requests: requests.clone(),
                    });
                }
                Ok(Ok(f)) => (Outcome::from_status(f.status), Some(&f.headers)),
            };
            if let (Some(tokens), Some(token), Outcome::Status(401)) =
                (same_origin_token, &token_used, &outcome)
                && !token_refreshed
            {
                // A revoked or expired token: fetch once more and retry once, not counted as a retry.
                tokens.invalidate(token);
                token_refreshed = true;
                attempt -= 1;
                continue;
            }
            let retry_after = headers.and_then(|h| headers::retry_after(h, SystemTime::now()));
            if let Some(wait) = headers.and_then(|h| headers::rate_limit_wait(h, SystemTime::now()))
            {
                self.limiter.pause_for(wait.min(c.retry.max_retry_after));
            }
            if outcome == Outcome::Success {
                return match result {
                    Ok(Ok(fetched)) => Ok(fetched),
                    _ => unreachable!("a success outcome comes from a fetched response"),
                };
            }
            let decision = {
                let mut rng = rand::rng();
                c.retry.decide(attempt, &outcome, retry_after, &mut rng)
            };
            match decision {
                Decision::Retry(delay) => {
                    tracing::debug!(url = %url, attempt, delay_ms = delay.as_millis() as u64, "retrying");
                    if outcome == Outcome::Status(429) {
                        self.limiter.pause_for(delay);
                    }
                    tokio::time::sleep(delay).await;
                }
                Decision::GiveUp => {
                    return Err(match result {
                        Err(_) => PollError::Timeout {
                            url,
                            timeout_ms: c.timeout.as_millis(),
                            requests: requests.clone(),
                        },
                        Ok(Err(FetchError::Transport(e))) if e.is_timeout() => PollError::Timeout {
                            url,
                            timeout_ms: c.timeout.as_millis(),
                            requests: requests.clone(),
                        },
                        Ok(Err(FetchError::Transport(e))) => PollError::Transport {
                            url,
                            kind: TransportKind::of(&e),
                            message: c.redactor.redact(&error_chain(&e)),
                            requests: requests.clone(),
                        },
                        Ok(Err(FetchError::TooLarge | FetchError::Redirect(_))) => {
                            unreachable!("returned above")
                        }
                        Ok(Ok(f)) => PollError::Status {
                            url,
                            status: f.status,
                            excerpt: c.redactor.redact(&excerpt(&f.body)),
                            requests: requests.clone(),
                        },
                    });
                }
            }
        }
    }

    async fn fetch(
        &self,
        request: reqwest::Request,
        record: &mut RequestRecord,
    ) -> Result<Fetched, FetchError> {
        let limit = self.config.max_response_bytes;
        let api_key_header = match &self.config.auth {
            Auth::ApiKey { header, .. } => Some(header.as_str()),
            _ => None,
        };
        let secrets = crate::redirect::Secrets {
            redactor: &self.config.redactor,
            headers: api_key_header.as_slice(),
        };
        let mut response = crate::redirect::send(&self.client, request, secrets)
            .await
            .map_err(|e| match e {
                crate::redirect::SendError::Transport(e) => FetchError::Transport(e),
                crate::redirect::SendError::Redirect(e) => FetchError::Redirect(e),
            })?;
        let status = response.status().as_u16();
        record.status = Some(status);
        // A declared length over the limit is refused before reading. Compressed bodies
        // are counted as they inflate, below.
        if response.content_length().is_some_and(|len| len > limit)
            && response.headers().get("content-encoding").is_none()
        {
            return Err(FetchError::TooLarge);
        }
        let headers = response.headers().clone();
        let url = response.url().clone();
        let mut body =
            Vec::with_capacity(response.content_length().unwrap_or(0).min(1 << 20) as usize);
        while let Some(chunk) = response.chunk().await.map_err(FetchError::Transport)? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
            record.bytes = body.len() as u64;
        }
        Ok(Fetched {
            status,
            headers,
            url,
            body,
        })
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Joins the pages of a poll into one page.
fn merge(schema: arrow::datatypes::SchemaRef, mut pages: Vec<DecodedPage>) -> DecodedPage {
    if pages.len() == 1 {
        return pages.pop().expect("one page");
    }
    let dead_letters: Vec<DeadLetter> = pages
        .iter_mut()
        .flat_map(|p| std::mem::take(&mut p.dead_letters))
        .collect();
    let listing = pages.iter().all(|p| p.listing);
    let batches: Vec<RecordBatch> = pages.into_iter().map(|p| p.batch).collect();
    let batch =
        arrow::compute::concat_batches(&schema, &batches).expect("pages share the table's schema");
    DecodedPage {
        batch,
        dead_letters,
        listing,
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT)]);
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.len() > BODY_EXCERPT {
        out.push('…');
    }
    if out.is_empty() {
        "(empty body)".into()
    } else {
        out
    }
}

/// The part of `body` around the `line L column C` (or `line L`) that `message` names, or
/// the body's start: what a person needs to see to understand a decode error.
fn excerpt_near(body: &[u8], message: &str) -> String {
    let number_after = |word: &str| -> Option<usize> {
        let at = message.find(word)? + word.len();
        let digits: String = message[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let offset = match (number_after("line "), number_after("column ")) {
        (Some(line), column) => {
            let line_start = body
                .split_inclusive(|b| *b == b'\n')
                .take(line.saturating_sub(1))
                .map(<[u8]>::len)
                .sum::<usize>();
            line_start + column.unwrap_or(1).saturating_sub(1)
        }
        _ => 0,
    };
    let start = offset.saturating_sub(60).min(body.len());
    let end = (offset + 60).min(body.len());
    let mut text = String::from_utf8_lossy(&body[start..end]).replace(['\n', '\r'], " ");
    if start > 0 {
        text.insert(0, '…');
    }
    if end < body.len() {
        text.push('…');
    }
    if text.trim().is_empty() {
        "(empty body)".into()
    } else {
        format!("`{text}`")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `format` option value that names this format.
pub fn format_name(format: &Format) -> &'static str {
    match format {
        Format::Json { .. } => "json",
        Format::Ndjson => "ndjson",
        Format::Csv { .. } => "csv",
        Format::Xml { .. } => "xml",
        Format::Raw => "raw",
    }
}

/// A redirect loop (or too many redirects) is deterministic: retrying cannot help.
fn is_redirect_failure(error: &reqwest::Error) -> bool {
    error.is_redirect() || error_chain(error).contains("too many redirects")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_quote_the_body_where_it_broke() {
        let body = b"{\"a\": 1,\n \"b\": tru }";
        assert_eq!(
            excerpt_near(body, "expected value at line 2 column 7"),
            "`{\"a\": 1,  \"b\": tru }`"
        );
        let long = format!("{}BROKEN{}", "x".repeat(100), "y".repeat(100));
        let near = excerpt_near(long.as_bytes(), "at line 1 column 101");
        assert!(
            near.starts_with("`…") && near.contains("BROKEN") && near.ends_with("…`"),
            "{near}"
        );
        assert_eq!(excerpt_near(b"", "empty body"), "(empty body)");
    }

    /// A client like the engine's, but blind to the environment's proxies so the errors
    /// are this machine's own.
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::limited(3))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// The error of a GET of `url`, from sending it or else from reading its body chunk by
    /// chunk as `fetch` does.
    async fn failure(client: &reqwest::Client, url: &str) -> reqwest::Error {
        match client.get(url).send().await {
            Err(e) => e,
            Ok(mut response) => loop {
                match response.chunk().await {
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("{url}: the response arrived whole"),
                    Err(e) => break e,
                }
            },
        }
    }

    async fn kind_of(url: &str) -> TransportKind {
        let error = failure(&client(), url).await;
        let kind = TransportKind::of(&error);
        eprintln!("{url}: {kind:?} <- {}", error_chain(&error));
        kind
    }

    /// A server on 127.0.0.1 that reads each connection's first bytes, writes `reply`,
    /// and closes (with a reset instead of a clean close when `reset`).
    async fn raw_server(reply: &'static [u8], reset: bool) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(reply).await;
                if reset {
                    stream.set_zero_linger().unwrap();
                } else {
                    let _ = stream.shutdown().await;
                }
                drop(stream);
            }
        });
        addr
    }

    #[tokio::test]
    async fn transport_kind_of_a_closed_port_is_connection_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            kind_of(&format!("http://127.0.0.1:{port}/")).await,
            TransportKind::ConnectionRefused
        );
    }

    #[tokio::test]
    async fn transport_kind_of_an_unresolvable_host_is_dns() {
        assert_eq!(
            kind_of("http://nonexistent.invalid/").await,
            TransportKind::Dns
        );
    }

    #[tokio::test]
    async fn transport_kind_of_a_dropped_connection_is_reset() {
        let closed = raw_server(b"", false).await;
        assert_eq!(
            kind_of(&format!("http://{closed}/")).await,
            TransportKind::Reset
        );
        let reset = raw_server(b"", true).await;
        assert_eq!(
            kind_of(&format!("http://{reset}/")).await,
            TransportKind::Reset
        );
    }

    #[tokio::test]
    async fn transport_kind_of_a_cut_or_undecodable_body_is_broken_body() {
        let cut = raw_server(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort",
            false,
        )
        .await;
        assert_eq!(
            kind_of(&format!("http://{cut}/")).await,
            TransportKind::BrokenBody
        );
        let not_gzip = raw_server(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 9\r\n\r\nnot gzip!",
            false,
        )
        .await;
        assert_eq!(
            kind_of(&format!("http://{not_gzip}/")).await,
            TransportKind::BrokenBody
        );
    }

    #[tokio::test]
    async fn transport_kind_of_https_to_a_plain_server_is_tls() {
        let plain = raw_server(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            false,
        )
        .await;
        assert_eq!(
            kind_of(&format!("https://{plain}/")).await,
            TransportKind::Tls
        );
        let hangs_up = raw_server(b"", false).await;
        assert_eq!(
            kind_of(&format!("https://{hangs_up}/")).await,
            TransportKind::Tls
        );
    }

    #[tokio::test]
    async fn transport_kind_of_a_redirect_loop_is_redirect_loop() {
        use wiremock::matchers::path;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let api = MockServer::start().await;
        Mock::given(path("/loop"))
            .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
            .mount(&api)
            .await;
        assert_eq!(
            kind_of(&format!("{}/loop", api.uri())).await,
            TransportKind::RedirectLoop
        );
    }

    #[tokio::test]
    async fn transport_kind_of_a_connect_timeout_is_connect_timeout() {
        // A listener whose accept queue is full drops new SYNs, so a connect hangs.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for _ in 0..16 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => held.push(stream),
                Err(_) => break,
            }
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let error = failure(&client, &format!("http://{addr}/")).await;
        assert_eq!(
            TransportKind::of(&error),
            TransportKind::ConnectTimeout,
            "{}",
            error_chain(&error)
        );
        drop(listener);
    }

    #[test]
    fn every_transport_kind_is_described() {
        let kinds = [
            TransportKind::Dns,
            TransportKind::ConnectionRefused,
            TransportKind::Tls,
            TransportKind::ConnectTimeout,
            TransportKind::Reset,
            TransportKind::BrokenBody,
            TransportKind::RedirectLoop,
            TransportKind::Other,
        ];
        let described: std::collections::HashSet<_> = kinds.iter().map(|k| k.describe()).collect();
        assert_eq!(described.len(), kinds.len());
        assert_eq!(TransportKind::Dns.to_string(), "DNS lookup failed");
    }
}
