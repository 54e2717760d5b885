//! The options of `polling_http_source`, bound from text into one typed configuration.
//!
//! The engine merges a table's options over its connection's, resolves environment
//! variables, and hands the result here as `name → text`. [`bind`] is the one place that
//! knows every option's type, default and constraints; it reports every problem at once,
//! each naming its option, so a user fixes a file in one round.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::decode::Format;
use crate::oauth2::OAuth2Config;
use crate::pagination::{CompiledPagination, DEFAULT_MAX_PAGES, Pagination};
use crate::resilience::RetryPolicy;
use crate::secret::{
    Redactor, SECRET_OPTIONS, Secret, is_secret_header, is_secret_param, url_secrets,
};
use crate::template::{RequestVar, Template, TimeFormat};

/// Every option a `polling_http_source` connection or table may carry (besides the
/// table-only `connector` and `connection`).
/// The default `max_delete_ratio`.
pub const DEFAULT_MAX_DELETE_RATIO: f64 = 0.5;

pub const OPTION_NAMES: &[&str] = &[
    "endpoint",
    "method",
    "headers",
    "query_params",
    "body",
    "interval_ms",
    "poll_interval_ms",
    "timeout_ms",
    "time_format",
    "auth_type",
    "username",
    "password",
    "token",
    "api_key",
    "api_key_header",
    "client_id",
    "client_secret",
    "token_url",
    "scope",
    "format",
    "json_path",
    "csv_header",
    "csv_delimiter",
    "xml_root_path",
    "json_path_missing",
    "xml_root_path_missing",
    "emit_behavior",
    "pagination_type",
    "page_size",
    "offset_param",
    "limit_param",
    "page_param",
    "size_param",
    "start_page",
    "cursor_param",
    "cursor_path",
    "link_rel",
    "next_url_path",
    "max_pages",
    "max_delete_ratio",
    "state_type",
    "state_field",
    "state_param",
    "initial_state",
    "boundary_dedup",
    "lookback_ms",
    "client_side_filter",
    "rate_limit_requests",
    "rate_limit_window_ms",
    "retry_on_rate_limit",
    "rate_limit_backoff_ms",
    "max_retries",
    "retry_backoff_ms",
    "retry_multiplier",
    "retry_on_status",
    "retry_non_idempotent",
    "circuit_breaker_enabled",
    "circuit_breaker_threshold",
    "circuit_breaker_timeout_ms",
    "max_response_bytes",
    "transforms",
    "field_paths",
    "timestamp_format",
];

/// Options this build recognises but does not implement yet. Setting one to anything but
/// its neutral value is a load-time error, never a silent no-op.
const NOT_YET: &[(&str, &str)] = &[];

/// A problem with one option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// The option's name.
    pub option: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

/// How a source authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No credentials.
    None,
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// A key sent in a header.
    ApiKey {
        /// The key.
        key: Secret,
        /// The header that carries it (default `X-API-Key`).
        header: String,
    },
    /// OAuth2 client credentials: a token fetched from `token_url`, cached and refreshed.
    OAuth2(OAuth2Config),
}

/// `state_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    /// No incremental state.
    None,
    /// The maximum of a timestamp field, compared as instants.
    Timestamp,
    /// The maximum of a numeric field.
    Checkpoint,
}

/// Incremental state: which field advances it and how it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    /// `state_type`.
    pub kind: StateKind,
    /// `state_field`: the column whose maximum over a poll's records becomes the state.
    pub field: String,
    /// `state_param`: the query parameter that sends the state.
    pub param: Option<String>,
    /// `initial_state`, normalised (timestamps as RFC 3339 UTC).
    pub initial: Option<String>,
    /// `boundary_dedup`, `lookback_ms`, `client_side_filter`.
    pub boundary: crate::boundary::BoundaryConfig,
}

/// `rate_limit_requests` per `rate_limit_window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

/// The circuit breaker's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Consecutive failed polls that open it.
    pub threshold: u32,
    /// How long it stays open before one trial poll.
    pub open_timeout: Duration,
}

/// Default `max_response_bytes`: 64 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// `emit_behavior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitBehavior {
    /// Every response's records are stored.
    All,
    /// A response whose body equals the previous poll's stores nothing.
    Changed,
}

/// `json_path_missing` / `xml_root_path_missing`: what a non-empty body is whose records
/// path matches nothing at all (not even an empty list), e.g. `{"error": "rate limited"}`
/// sent with a 200.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PathMissing {
    /// A failed poll (like a body that is not valid JSON), counted by the circuit breaker.
    #[default]
    Error,
    /// Zero records and a successful poll, though never a complete snapshot: a keyed
    /// table keeps its rows.
    Empty,
}

/// HTTP methods a source may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// The method for the HTTP client.
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// A bound `polling_http_source` configuration.
#[derive(Clone, Debug)]
pub struct PollingConfig {
    /// URL to poll; may hold request variables.
    pub endpoint: Template,
    /// HTTP method.
    pub method: Method,
    /// Request headers in the order given.
    pub headers: Vec<(String, Template)>,
    /// Query parameters appended to the endpoint.
    pub query_params: Vec<(String, Template)>,
    /// Request body.
    pub body: Option<Template>,
    /// Time between the starts of two polls.
    pub interval: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// How time variables print.
    pub time_format: TimeFormat,
    /// Credentials.
    pub auth: Auth,
    /// Response format.
    pub format: Format,
    /// What a body is whose `json_path` / `xml_root_path` matches nothing.
    pub path_missing: PathMissing,
    /// Whether unchanged responses are stored.
    pub emit_behavior: EmitBehavior,
    /// How a poll walks pages.
    pub pagination: CompiledPagination,
    /// The most pages one poll walks.
    pub max_pages: u32,
    /// `max_delete_ratio`: the largest share of a keyed table's rows that one complete
    /// snapshot may delete; past it the deletes are withheld (and logged), since a list
    /// that suddenly lacks most of its rows is more likely a broken API than a purge.
    pub max_delete_ratio: f64,
    /// Incremental state, if any.
    pub state: Option<StateConfig>,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
    /// Client-side rate limit shared by the connection.
    pub rate_limit: Option<RateLimit>,
    /// Circuit breaker, when enabled.
    pub circuit_breaker: Option<CircuitConfig>,
    /// The most bytes a response body may have (after decompression).
    pub max_response_bytes: u64,
    /// Every secret of this source, for scrubbing text that leaves it.
    pub redactor: Redactor,
    /// `transforms`: jq steps (filter, map, arraymap) run on each record before it is
    /// converted (Fluvio's Smart Connector options); `None` without the option.
    pub transform: Option<crate::transform::Transform>,
    /// `field_paths` and `timestamp_format`: how columns are read beyond their names.
    pub columns: crate::decode::ColumnOptions,
}

/// Binds merged option text to a configuration, or lists everything wrong with it.
/// Unknown option names are the caller's to report (it knows the table-only options).
/// Same as [`bind_with_env`] with no value substituted from the environment.
pub fn bind(options: &BTreeMap<String, String>) -> Result<PollingConfig, Vec<OptionError>> {
    bind_with_env(options, &[])
}

/// Binds merged option text in which `substituted` are the values that came from
/// `${NAME}` / `{{ NAME }}`: those are secrets like any credential (see
/// [`option_secrets`]). Error messages are redacted: they may quote option text.
pub fn bind_with_env(
    options: &BTreeMap<String, String>,
    substituted: &[String],
) -> Result<PollingConfig, Vec<OptionError>> {
    let redactor = option_secrets(options, substituted);
    bind_options(options, redactor.clone()).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| OptionError {
                option: e.option,
                message: redactor.redact(&e.message),
            })
            .collect()
    })
}

/// Every secret in a source's options (after substitution), for scrubbing text and for
/// stripping requests to another origin: the values of `password`, `token`, `api_key`
/// and `client_secret` (and the Basic credential they make); the value of every
/// credential header in `headers`, and the credential after its scheme on its own; the
/// values of query parameters named like credentials, in `query_params`, `endpoint` or
/// `token_url`, and the password of a URL's user info; and every value in `substituted`
/// (what `${NAME}` / `{{ NAME }}` brought in).
pub fn option_secrets(options: &BTreeMap<String, String>, substituted: &[String]) -> Redactor {
    use base64::Engine as _;
    let mut redactor = Redactor::default();
    for value in substituted {
        redactor.add(value);
    }
    for key in SECRET_OPTIONS {
        if let Some(value) = options.get(*key) {
            redactor.add(value);
        }
    }
    if let (Some(user), Some(password)) = (options.get("username"), options.get("password")) {
        let pair = format!("{user}:{password}");
        redactor.add(&base64::engine::general_purpose::STANDARD.encode(&pair));
        redactor.add(&pair);
    }
    if let Some(Ok(pairs)) = options.get("headers").map(|h| parse_headers(h)) {
        for (name, value) in pairs {
            if is_secret_header(&name) {
                redactor.add_credential(&value);
            }
        }
    }
    if let Some(Ok(pairs)) = options
        .get("query_params")
        .map(|q| parse_json_object("query_params", q))
    {
        for (name, value) in pairs {
            // A request variable is filled per request: its text is no secret.
            if is_secret_param(&name) && !value.contains("${") {
                redactor.add(&value);
            }
        }
    }
    for key in ["endpoint", "token_url"] {
        for value in options.get(key).map(|u| url_secrets(u)).unwrap_or_default() {
            if !value.contains("${") {
                redactor.add(&value);
            }
        }
    }
    redactor
}

fn bind_options(
    options: &BTreeMap<String, String>,
    redactor: Redactor,
) -> Result<PollingConfig, Vec<OptionError>> {
    let mut b = Binder {
        options,
        errors: Vec::new(),
    };

    for (key, feature) in NOT_YET {
        if options.contains_key(*key) {
            b.error(key, format!("{feature} is not supported by this build yet"));
        }
    }

    let endpoint = match options.get("endpoint") {
        Some(text) => {
            let t = b.template("endpoint", text);
            if let Err(e) = url::Url::parse(text.split("${").next().unwrap_or(text)) {
                if !text.starts_with("${") {
                    b.error("endpoint", format!("`{text}` is not a valid URL: {e}"));
                }
            } else if !(text.starts_with("http://") || text.starts_with("https://")) {
                b.error(
                    "endpoint",
                    format!("`{text}` must be an http:// or https:// URL"),
                );
            }
            t
        }
        None => {
            b.error(
                "endpoint",
                "missing: a polling source needs an endpoint URL".into(),
            );
            None
        }
    };

    let method = match b.text("method").map(|m| m.to_ascii_uppercase()) {
        None => Method::Get,
        Some(m) => match m.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => {
                b.error(
                    "method",
                    format!("`{m}` is not one of GET, POST, PUT, PATCH, DELETE"),
                );
                Method::Get
            }
        },
    };

    let headers = match b.text("headers") {
        None => Vec::new(),
        Some(text) => match parse_headers(text) {
            Ok(pairs) => pairs
                .into_iter()
                .filter_map(|(k, v)| b.template("headers", &v).map(|t| (k, t)))
                .collect(),
            Err(e) => {
                b.error("headers", e);
                Vec::new()
            }
        },
    };

    let query_params = match b.text("query_params") {
        None => Vec::new(),
        Some(text) => match parse_json_object("query_params", text) {
            Ok(pairs) => pairs
                .into_iter()
                .filter_map(|(k, v)| b.template("query_params", &v).map(|t| (k, t)))
                .collect(),
            Err(e) => {
                b.error("query_params", e);
                Vec::new()
            }
        },
    };

    let body = b.text("body").and_then(|text| b.template("body", text));

    let interval_key = match (
        options.contains_key("interval_ms"),
        options.contains_key("poll_interval_ms"),
    ) {
        (true, true) => {
            b.error(
                "poll_interval_ms",
                "set either interval_ms or its alias poll_interval_ms, not both".into(),
            );
            "interval_ms"
        }
        (false, true) => "poll_interval_ms",
        _ => "interval_ms",
    };
    let interval = Duration::from_millis(b.millis(interval_key, 1000, 1));
    let timeout = Duration::from_millis(b.millis("timeout_ms", 30_000, 1));

    let time_format = match b.text("time_format") {
        None => TimeFormat::Iso8601,
        Some(text) => TimeFormat::parse(text).unwrap_or_else(|e| {
            b.error("time_format", e);
            TimeFormat::Iso8601
        }),
    };

    let auth = bind_auth(&mut b);

    let format = match b.text("format").map(|f| f.to_ascii_lowercase()) {
        None => Format::Json {
            json_path: b.text("json_path").map(str::to_string),
        },
        Some(f) => match f.as_str() {
            "json" => Format::Json {
                json_path: b.text("json_path").map(str::to_string),
            },
            "ndjson" | "jsonl" | "json_lines" => Format::Ndjson,
            "raw" | "raw_string" => Format::Raw,
            "csv" => Format::Csv {
                header: b.flag("csv_header", true),
                delimiter: bind_csv_delimiter(&mut b),
            },
            "xml" => Format::Xml {
                root_path: bind_xml_root_path(&mut b),
            },
            _ => {
                b.error(
                    "format",
                    format!("`{f}` is not one of json, ndjson, csv, xml, raw"),
                );
                Format::Raw
            }
        },
    };
    if options.contains_key("json_path") && !matches!(format, Format::Json { .. }) {
        b.error("json_path", "only applies to format = 'json'".into());
    }
    if !matches!(format, Format::Csv { .. }) {
        for key in ["csv_header", "csv_delimiter"] {
            if options.contains_key(key) {
                b.error(key, "only applies to format = 'csv'".into());
            }
        }
    }
    if options.contains_key("xml_root_path") && !matches!(format, Format::Xml { .. }) {
        b.error("xml_root_path", "only applies to format = 'xml'".into());
    }
    let path_missing = bind_path_missing(&mut b, &format);
    let transform = b.text("transforms").and_then(|text| {
        let compiled = crate::transform::parse_steps(text)
            .and_then(|steps| crate::transform::Transform::compile(&steps));
        match compiled {
            Ok(_) if matches!(format, Format::Csv { .. } | Format::Xml { .. }) => {
                b.error(
                    "transforms",
                    "apply to format json, ndjson and raw only (CSV and XML records are not JSON values)".into(),
                );
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                b.error("transforms", e.to_string());
                None
            }
        }
    });

    let columns = bind_column_options(&mut b, &format);

    let emit_behavior = match b.text("emit_behavior").map(|e| e.to_ascii_lowercase()) {
        None => EmitBehavior::All,
        Some(e) => match e.as_str() {
            "all" => EmitBehavior::All,
            "changed" => EmitBehavior::Changed,
            _ => {
                b.error("emit_behavior", format!("`{e}` is not one of all, changed"));
                EmitBehavior::All
            }
        },
    };

    let pagination = bind_pagination(&mut b);
    let max_pages = b.number("max_pages", DEFAULT_MAX_PAGES, 1, u32::MAX);
    let mut max_delete_ratio = DEFAULT_MAX_DELETE_RATIO;
    if let Some(text) = b.text("max_delete_ratio") {
        match text.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => max_delete_ratio = r,
            _ => b.error(
                "max_delete_ratio",
                format!(
                    "`{text}` is not a number from 0 to 1 (1 lets a snapshot delete every row)"
                ),
            ),
        }
    }
    let state = bind_state(&mut b);
    let retry = bind_retry(&mut b, method);
    let rate_limit = match options.get("rate_limit_requests") {
        Some(_) => Some(RateLimit {
            requests: b.number("rate_limit_requests", 1, 1, u32::MAX),
            window: Duration::from_millis(b.millis("rate_limit_window_ms", 1000, 1)),
        }),
        None => {
            if options.contains_key("rate_limit_window_ms") {
                b.error("rate_limit_window_ms", "needs rate_limit_requests".into());
            }
            None
        }
    };
    let circuit_breaker = if b.flag("circuit_breaker_enabled", false) {
        Some(CircuitConfig {
            threshold: b.number("circuit_breaker_threshold", 5, 1, u32::MAX),
            open_timeout: Duration::from_millis(b.millis("circuit_breaker_timeout_ms", 60_000, 1)),
        })
    } else {
        for key in ["circuit_breaker_threshold", "circuit_breaker_timeout_ms"] {
            if options.contains_key(key) {
                b.error(
                    key,
                    "has no effect unless circuit_breaker_enabled = true".into(),
                );
            }
        }
        None
    };
    let max_response_bytes = b.number(
        "max_response_bytes",
        DEFAULT_MAX_RESPONSE_BYTES,
        1,
        u64::MAX,
    );

    // Request variables must have something to fill them.
    let mut templates: Vec<(&str, &Template)> = Vec::new();
    if let Some(e) = &endpoint {
        templates.push(("endpoint", e));
    }
    templates.extend(headers.iter().map(|(_, t)| ("headers", t)));
    templates.extend(query_params.iter().map(|(_, t)| ("query_params", t)));
    if let Some(t) = &body {
        templates.push(("body", t));
    }
    let kind = pagination
        .as_ref()
        .map(|p| p.pagination().kind())
        .unwrap_or("none");
    for (option, t) in templates {
        if t.uses(RequestVar::State) && state.is_none() {
            b.error(
                option,
                "`${state}` needs state_type = 'timestamp' or 'checkpoint'".into(),
            );
        }
        if t.uses(RequestVar::Cursor) && kind != "cursor" {
            b.error(
                option,
                "`${cursor}` needs pagination_type = 'cursor'".into(),
            );
        }
    }

    match (b.errors.is_empty(), endpoint, pagination) {
        (true, Some(endpoint), Some(pagination)) => Ok(PollingConfig {
            endpoint,
            method,
            headers,
            query_params,
            body,
            interval,
            timeout,
            time_format,
            auth,
            format,
            path_missing,
            emit_behavior,
            pagination,
            max_pages,
            max_delete_ratio,
            state,
            retry,
            rate_limit,
            circuit_breaker,
            max_response_bytes,
            redactor,
            transform,
            columns,
        }),
        _ => Err(b.errors),
    }
}

fn bind_auth(b: &mut Binder<'_>) -> Auth {
    let kind = b.text("auth_type").unwrap_or("none").to_ascii_lowercase();
    let secret = |b: &mut Binder<'_>, key: &str, needed_by: &str| -> Secret {
        match b.text(key) {
            Some(v) if !v.is_empty() => Secret::new(v),
            _ => {
                b.error(key, format!("missing: auth_type = '{needed_by}' needs it"));
                Secret::new("")
            }
        }
    };
    let auth = match kind.as_str() {
        "none" => Auth::None,
        "basic" => {
            let username = b.text("username").unwrap_or_default().to_string();
            if username.is_empty() {
                b.error("username", "missing: auth_type = 'basic' needs it".into());
            }
            Auth::Basic {
                username,
                password: secret(b, "password", "basic"),
            }
        }
        "bearer" => Auth::Bearer {
            token: secret(b, "token", "bearer"),
        },
        "api_key" | "apikey" => {
            let header = b.text("api_key_header").unwrap_or("X-API-Key").to_string();
            if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                b.error(
                    "api_key_header",
                    format!("`{header}` is not a valid header name"),
                );
            }
            Auth::ApiKey {
                key: secret(b, "api_key", "api_key"),
                header,
            }
        }
        "oauth2" | "oauth2_client_credentials" => {
            let token_url = b.text("token_url").unwrap_or_default().to_string();
            if token_url.is_empty() {
                b.error("token_url", "missing: auth_type = 'oauth2' needs it".into());
            } else if url::Url::parse(&token_url).is_err() {
                b.error("token_url", format!("`{token_url}` is not a valid URL"));
            }
            let client_id = b.text("client_id").unwrap_or_default().to_string();
            if client_id.is_empty() {
                b.error("client_id", "missing: auth_type = 'oauth2' needs it".into());
            }
            let client_secret = secret(b, "client_secret", "oauth2");
            let scope = b
                .text("scope")
                .map(str::to_string)
                .filter(|s| !s.trim().is_empty());
            Auth::OAuth2(OAuth2Config {
                token_url,
                client_id,
                client_secret,
                scope,
            })
        }
        other => {
            b.error(
                "auth_type",
                format!("`{other}` is not one of none, basic, bearer, api_key, oauth2"),
            );
            Auth::None
        }
    };
    // Credentials given for a different auth kind are almost always a mistake.
    let used: &[&str] = match auth {
        Auth::None => &[],
        Auth::Basic { .. } => &["username", "password"],
        Auth::Bearer { .. } => &["token"],
        Auth::ApiKey { .. } => &["api_key", "api_key_header"],
        Auth::OAuth2(_) => &["client_id", "client_secret", "token_url", "scope"],
    };
    for key in [
        "username",
        "password",
        "token",
        "api_key",
        "api_key_header",
        "client_id",
        "client_secret",
        "token_url",
        "scope",
    ] {
        if b.options.contains_key(key)
            && !used.contains(&key)
            && b.errors.iter().all(|e| e.option != "auth_type")
        {
            b.error(key, format!("does not apply to auth_type = '{kind}'"));
        }
    }
    auth
}

fn bind_pagination(b: &mut Binder<'_>) -> Option<CompiledPagination> {
    use crate::pagination as p;
    let kind = b
        .text("pagination_type")
        .unwrap_or("none")
        .to_ascii_lowercase();
    let text =
        |b: &Binder<'_>, key: &str, default: &str| b.text(key).unwrap_or(default).to_string();
    let needs_size = |b: &mut Binder<'_>| -> u64 {
        if b.text("page_size").is_none() {
            b.error(
                "page_size",
                format!("missing: pagination_type = '{kind}' needs it"),
            );
            return 1;
        }
        b.number("page_size", 100, 1, u64::MAX)
    };
    let pagination = match kind.as_str() {
        "none" => Pagination::None,
        "offset" => Pagination::Offset {
            page_size: needs_size(b),
            offset_param: text(b, "offset_param", p::DEFAULT_OFFSET_PARAM),
            limit_param: text(b, "limit_param", p::DEFAULT_LIMIT_PARAM),
        },
        "page" => Pagination::Page {
            page_size: needs_size(b),
            page_param: text(b, "page_param", p::DEFAULT_PAGE_PARAM),
            size_param: b.text("size_param").map(str::to_string),
            start_page: b.number("start_page", p::DEFAULT_START_PAGE, 0, u64::MAX),
        },
        "cursor" => {
            let Some(path) = b.text("cursor_path") else {
                b.error(
                    "cursor_path",
                    "missing: pagination_type = 'cursor' needs the JSONPath of the next cursor"
                        .into(),
                );
                return None;
            };
            Pagination::Cursor {
                cursor_param: text(b, "cursor_param", p::DEFAULT_CURSOR_PARAM),
                cursor_path: path.to_string(),
            }
        }
        "link_header" | "link" => Pagination::LinkHeader {
            rel: text(b, "link_rel", p::DEFAULT_LINK_REL),
        },
        "next_url" => {
            let Some(path) = b.text("next_url_path") else {
                b.error(
                    "next_url_path",
                    "missing: pagination_type = 'next_url' needs the JSONPath of the next URL"
                        .into(),
                );
                return None;
            };
            Pagination::NextUrl {
                next_url_path: path.to_string(),
            }
        }
        other => {
            b.error(
                "pagination_type",
                format!(
                    "`{other}` is not one of none, offset, page, cursor, link_header, next_url"
                ),
            );
            return None;
        }
    };
    // Options of another pagination kind are almost always a mistake.
    let applies: &[&str] = match &pagination {
        Pagination::None => &[],
        Pagination::Offset { .. } => &["page_size", "offset_param", "limit_param", "max_pages"],
        Pagination::Page { .. } => &[
            "page_size",
            "page_param",
            "size_param",
            "start_page",
            "max_pages",
        ],
        Pagination::Cursor { .. } => &["cursor_param", "cursor_path", "max_pages"],
        Pagination::LinkHeader { .. } => &["link_rel", "max_pages"],
        Pagination::NextUrl { .. } => &["next_url_path", "max_pages"],
    };
    for key in [
        "page_size",
        "offset_param",
        "limit_param",
        "page_param",
        "size_param",
        "start_page",
        "cursor_param",
        "cursor_path",
        "link_rel",
        "next_url_path",
        "max_pages",
    ] {
        if b.options.contains_key(key) && !applies.contains(&key) {
            b.error(key, format!("does not apply to pagination_type = '{kind}'"));
        }
    }
    match pagination.compile() {
        Ok(c) => Some(c),
        Err((option, message)) => {
            b.error(option, message);
            None
        }
    }
}

fn bind_state(b: &mut Binder<'_>) -> Option<StateConfig> {
    let kind = match b.text("state_type").map(|t| t.to_ascii_lowercase()) {
        None => StateKind::None,
        Some(t) => match t.as_str() {
            "none" => StateKind::None,
            "timestamp" => StateKind::Timestamp,
            "checkpoint" => StateKind::Checkpoint,
            other => {
                b.error(
                    "state_type",
                    format!("`{other}` is not one of none, timestamp, checkpoint"),
                );
                return None;
            }
        },
    };
    if kind == StateKind::None {
        for key in [
            "state_field",
            "state_param",
            "initial_state",
            "boundary_dedup",
            "lookback_ms",
            "client_side_filter",
        ] {
            if b.options.contains_key(key) {
                b.error(key, "needs state_type = 'timestamp' or 'checkpoint'".into());
            }
        }
        return None;
    }
    let Some(field) = b.text("state_field").map(str::to_string) else {
        b.error(
            "state_field",
            "missing: incremental state needs the field whose maximum becomes the state".into(),
        );
        return None;
    };
    let initial = match b.text("initial_state") {
        None => None,
        Some(text) => {
            match kind {
                StateKind::Timestamp => match crate::state::parse_instant(text) {
                    Some(at) => Some(crate::state::instant_text(at)),
                    None => {
                        b.error("initial_state", format!("`{text}` is not a timestamp (use RFC 3339, e.g. 2024-01-01T00:00:00Z)"));
                        None
                    }
                },
                _ => match crate::state::parse_number(text) {
                    Some(_) => Some(text.trim().to_string()),
                    None => {
                        b.error("initial_state", format!("`{text}` is not a number"));
                        None
                    }
                },
            }
        }
    };
    let defaults = crate::boundary::BoundaryConfig::default();
    let lookback_ms = b.millis("lookback_ms", 0, 0);
    if lookback_ms > 0 && kind != StateKind::Timestamp {
        b.error(
            "lookback_ms",
            "needs state_type = 'timestamp' (a window of time before the saved maximum)".into(),
        );
    }
    let boundary = crate::boundary::BoundaryConfig {
        dedup: b.flag("boundary_dedup", defaults.dedup),
        lookback: chrono::TimeDelta::milliseconds(lookback_ms.min(i64::MAX as u64) as i64),
        client_side_filter: b.flag("client_side_filter", defaults.client_side_filter),
    };
    Some(StateConfig {
        kind,
        field,
        param: b.text("state_param").map(str::to_string),
        initial,
        boundary,
    })
}

fn bind_retry(b: &mut Binder<'_>, method: Method) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    // A timeout or a broken exchange may have reached the server: repeating a request
    // with side effects is the user's call.
    policy.retry_uncertain = b.flag("retry_non_idempotent", false) || method == Method::Get;
    policy.max_retries = b.number("max_retries", policy.max_retries, 0, 100);
    policy.backoff =
        Duration::from_millis(b.millis("retry_backoff_ms", policy.backoff.as_millis() as u64, 0));
    if let Some(text) = b.text("retry_multiplier") {
        match text.trim().parse::<f64>() {
            Ok(m) if m.is_finite() && m >= 1.0 => policy.multiplier = m,
            _ => b.error(
                "retry_multiplier",
                format!("`{text}` is not a number >= 1.0"),
            ),
        }
    }
    if let Some(text) = b.text("retry_on_status") {
        match serde_json::from_str::<Vec<u16>>(text) {
            Ok(codes) if codes.iter().all(|c| (100..=599).contains(c)) => policy.retry_on_status = codes,
            _ => b.error("retry_on_status", format!("`{text}` is not a JSON array of HTTP status codes such as '[429, 500, 502, 503, 504]'")),
        }
    }
    policy.retry_on_rate_limit = b.flag("retry_on_rate_limit", policy.retry_on_rate_limit);
    policy.rate_limit_backoff = Duration::from_millis(b.millis(
        "rate_limit_backoff_ms",
        policy.rate_limit_backoff.as_millis() as u64,
        0,
    ));
    policy
}

/// `csv_delimiter`: one ASCII character (default `,`); a tab may be written `\t` (the two
/// characters) or `tab`, since SQL strings have no escapes.
fn bind_csv_delimiter(b: &mut Binder<'_>) -> u8 {
    let Some(text) = b.text("csv_delimiter") else {
        return b',';
    };
    let delimiter = match text.as_bytes() {
        b"\\t" => Some(b'\t'),
        _ if text.eq_ignore_ascii_case("tab") => Some(b'\t'),
        [one] => Some(*one),
        _ => None,
    };
    match delimiter {
        Some(d) if crate::decode::check_csv_delimiter(d).is_ok() => d,
        Some(_) => {
            b.error(
                "csv_delimiter",
                format!(
                    "`{text}` cannot separate fields: use a character other than '\"', CR or LF"
                ),
            );
            b','
        }
        None => {
            b.error(
                "csv_delimiter",
                format!(
                    "`{text}` is not one ASCII character (e.g. ',', ';', '|', or '\\t' for a tab)"
                ),
            );
            b','
        }
    }
}

/// `json_path_missing` (format json with a `json_path`) or `xml_root_path_missing`
/// (format xml): `error` (default) or `empty`.
/// `field_paths` (a JSON object: column → JSONPath) and `timestamp_format` (a strftime
/// pattern for every TIMESTAMP/DATE column, or a JSON object: column → pattern). Whether
/// the columns exist and the paths fit them is checked against the table
/// (`source::check_source`).
fn bind_column_options(b: &mut Binder<'_>, format: &Format) -> crate::decode::ColumnOptions {
    use crate::decode::{ColumnOptions, TimestampFormat};
    let mut options = ColumnOptions::default();
    let object = |text: &str| -> Result<Vec<(String, String)>, String> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| format!("expected a JSON object of column names to strings: {e}"))?;
        map.into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                other => Err(format!("the value for `{k}` is {other}, not a string")),
            })
            .collect()
    };
    if let Some(text) = b.text("field_paths") {
        match object(text) {
            Ok(_) if matches!(format, Format::Csv { .. } | Format::Raw) => b.error(
                "field_paths",
                "applies to format json, ndjson and xml only".into(),
            ),
            Ok(paths) => options.field_paths = paths,
            Err(e) => b.error(
                "field_paths",
                format!("{e} (like '{{\"author_name\": \"$.author.name\"}}')"),
            ),
        }
    }
    if let Some(text) = b.text("timestamp_format") {
        if text.trim_start().starts_with('{') {
            match object(text) {
                Ok(pairs) => {
                    for (column, pattern) in pairs {
                        match TimestampFormat::parse(&pattern) {
                            Ok(f) => options.column_timestamp_formats.push((column, f)),
                            Err(e) => {
                                b.error("timestamp_format", format!("column `{column}`: {e}"))
                            }
                        }
                    }
                }
                Err(e) => b.error("timestamp_format", e),
            }
        } else {
            match TimestampFormat::parse(text) {
                Ok(f) => options.timestamp_format = Some(f),
                Err(e) => b.error("timestamp_format", e),
            }
        }
    }
    options
}

fn bind_path_missing(b: &mut Binder<'_>, format: &Format) -> PathMissing {
    let applies = match format {
        Format::Json { json_path: Some(_) } => "json_path_missing",
        Format::Xml { .. } => "xml_root_path_missing",
        _ => "",
    };
    let mut chosen = PathMissing::Error;
    for (key, needs) in [
        ("json_path_missing", "format = 'json' with a json_path"),
        ("xml_root_path_missing", "format = 'xml'"),
    ] {
        let Some(text) = b.text(key).map(|t| t.trim().to_ascii_lowercase()) else {
            continue;
        };
        if key != applies {
            b.error(key, format!("only applies to {needs}"));
            continue;
        }
        chosen = match text.as_str() {
            "error" => PathMissing::Error,
            "empty" => PathMissing::Empty,
            _ => {
                b.error(key, format!("`{text}` is not one of error, empty"));
                PathMissing::Error
            }
        };
    }
    chosen
}

/// `xml_root_path`: required with `format = 'xml'`, an absolute path of element names.
fn bind_xml_root_path(b: &mut Binder<'_>) -> String {
    let Some(path) = b.text("xml_root_path") else {
        b.error(
            "xml_root_path",
            "missing: format = 'xml' needs it, e.g. '/response/items/item'".into(),
        );
        return String::new();
    };
    match crate::decode::check_xml_root_path(path) {
        Ok(()) => path.to_string(),
        Err(crate::decode::DecoderConfigError::InvalidXmlRootPath { message, .. }) => {
            b.error("xml_root_path", format!("`{path}` {message}"));
            String::new()
        }
        Err(other) => {
            b.error("xml_root_path", other.to_string());
            String::new()
        }
    }
}

struct Binder<'a> {
    options: &'a BTreeMap<String, String>,
    errors: Vec<OptionError>,
}

impl<'a> Binder<'a> {
    fn error(&mut self, option: &str, message: String) {
        self.errors.push(OptionError {
            option: option.to_string(),
            message,
        });
    }

    fn text(&self, key: &str) -> Option<&'a str> {
        self.options.get(key).map(String::as_str)
    }

    fn template(&mut self, key: &str, text: &str) -> Option<Template> {
        Template::parse(text).map_err(|e| self.error(key, e)).ok()
    }

    fn flag(&mut self, key: &str, default: bool) -> bool {
        match self.text(key).map(|t| t.trim().to_ascii_lowercase()) {
            None => default,
            Some(t) => match t.as_str() {
                "true" | "yes" | "on" | "1" => true,
                "false" | "no" | "off" | "0" => false,
                _ => {
                    self.error(key, format!("`{t}` is not true or false"));
                    default
                }
            },
        }
    }

    fn number<T>(&mut self, key: &str, default: T, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display,
    {
        match self.text(key) {
            None => default,
            Some(text) => match text.trim().parse::<T>() {
                Ok(v) if v >= min && v <= max => v,
                Ok(v) => {
                    self.error(key, format!("{v} is out of range ({min}..={max})"));
                    default
                }
                Err(_) => {
                    self.error(key, format!("`{text}` is not a whole number"));
                    default
                }
            },
        }
    }

    fn millis(&mut self, key: &str, default: u64, min: u64) -> u64 {
        match self.text(key) {
            None => default,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(v) if v >= min => v,
                Ok(v) => {
                    self.error(key, format!("{v} is too small: the least is {min}"));
                    default
                }
                Err(_) => {
                    self.error(
                        key,
                        format!("`{text}` is not a whole number of milliseconds"),
                    );
                    default
                }
            },
        }
    }
}

/// Parses `headers`: a JSON object `{"K": "V"}` or Arroyo's `K: V, K2: V2`.
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let trimmed = text.trim();
    let pairs = if trimmed.starts_with('{') {
        parse_json_object("headers", trimmed)?
    } else {
        let mut pairs = Vec::new();
        for item in trimmed.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = item.split_once(':') else {
                return Err(format!(
                    "`{item}` is not `Name: value` (headers are a JSON object or 'K: V, K2: V2')"
                ));
            };
            pairs.push((k.trim().to_string(), v.trim().to_string()));
        }
        pairs
    };
    for (name, value) in &pairs {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("`{name}` is not a valid header name"));
        }
        if value.contains(['\r', '\n']) {
            return Err(format!("the value of header `{name}` holds a line break"));
        }
    }
    Ok(pairs)
}

/// Parses a JSON object of scalars into `(key, text)` pairs, in order.
fn parse_json_object(option: &str, text: &str) -> Result<Vec<(String, String)>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("is not a JSON object: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(format!(
            "{option} must be a JSON object such as '{{\"key\": \"value\"}}'"
        ));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(format!(
                "the value of `{k}` must be a string, number or boolean, not {other}"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn binds_defaults() {
        let c = bind(&opts(&[("endpoint", "http://127.0.0.1:1/x")])).unwrap();
        assert_eq!(c.method, Method::Get);
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert!(matches!(c.auth, Auth::None));
        assert_eq!(c.emit_behavior, EmitBehavior::All);
        assert!(matches!(c.format, Format::Json { json_path: None }));
    }

    #[test]
    fn path_missing_options_bind_and_validate() {
        let base = [("endpoint", "http://127.0.0.1:1/x")];
        let with = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            bind(&opts(&all))
        };
        assert_eq!(
            with(&[("json_path", "$.data[*]")]).unwrap().path_missing,
            PathMissing::Error
        );
        assert_eq!(
            with(&[("json_path", "$.data[*]"), ("json_path_missing", "EMPTY")])
                .unwrap()
                .path_missing,
            PathMissing::Empty
        );
        assert_eq!(
            with(&[
                ("format", "xml"),
                ("xml_root_path", "/r/item"),
                ("xml_root_path_missing", "empty")
            ])
            .unwrap()
            .path_missing,
            PathMissing::Empty
        );
        let named = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
            with(extra)
                .unwrap_err()
                .into_iter()
                .map(|e| (e.option, e.message))
                .collect()
        };
        assert_eq!(
            named(&[("json_path", "$.data[*]"), ("json_path_missing", "ignore")]),
            [(
                "json_path_missing".to_string(),
                "`ignore` is not one of error, empty".to_string()
            )]
        );
        assert_eq!(
            named(&[("json_path_missing", "empty")]),
            [(
                "json_path_missing".to_string(),
                "only applies to format = 'json' with a json_path".to_string()
            )]
        );
        assert_eq!(
            named(&[("json_path", "$[*]"), ("xml_root_path_missing", "empty")]),
            [(
                "xml_root_path_missing".to_string(),
                "only applies to format = 'xml'".to_string()
            )]
        );
    }

    #[test]
    fn both_header_forms() {
        assert_eq!(
            parse_headers(r#"{"Accept": "application/json", "X-N": 5}"#).unwrap(),
            vec![
                ("Accept".into(), "application/json".into()),
                ("X-N".into(), "5".into())
            ]
        );
        assert_eq!(
            parse_headers("Accept: text/plain, X-Api-Token: abc:def").unwrap(),
            vec![
                ("Accept".into(), "text/plain".into()),
                ("X-Api-Token".into(), "abc:def".into())
            ]
        );
        assert!(
            parse_headers("NoColon")
                .unwrap_err()
                .contains("Name: value")
        );
        assert!(
            parse_headers(r#"{"Bad Name": "x"}"#)
                .unwrap_err()
                .contains("valid header")
        );
    }

    #[test]
    fn reports_every_error_at_once() {
        let errs = bind(&opts(&[
            ("method", "FETCH"),
            ("interval_ms", "soon"),
            ("auth_type", "bearer"),
            ("emit_behavior", "sometimes"),
            ("max_retries", "lots"),
        ]))
        .unwrap_err();
        let named: Vec<&str> = errs.iter().map(|e| e.option.as_str()).collect();
        for key in [
            "endpoint",
            "method",
            "interval_ms",
            "token",
            "emit_behavior",
            "max_retries",
        ] {
            assert!(named.contains(&key), "{key} missing from {errs:?}");
        }
    }

    #[test]
    fn alias_and_secrets() {
        let c = bind(&opts(&[
            ("endpoint", "https://example.com/a"),
            ("poll_interval_ms", "5000"),
            ("auth_type", "api_key"),
            ("api_key", "k-123456"),
            ("headers", "Authorization: Basic Zm9vOmJhcg=="),
        ]))
        .unwrap();
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.redactor.redact("k-123456 Basic Zm9vOmJhcg=="), "*** ***");
        let errs = bind(&opts(&[
            ("endpoint", "https://example.com/a"),
            ("interval_ms", "1"),
            ("poll_interval_ms", "2"),
        ]))
        .unwrap_err();
        assert_eq!(errs[0].option, "poll_interval_ms");
    }

    #[test]
    fn csv_and_xml_formats_bind_their_options() {
        let endpoint = ("endpoint", "http://h/");
        let c = bind(&opts(&[endpoint, ("format", "csv")])).unwrap();
        assert_eq!(
            c.format,
            Format::Csv {
                header: true,
                delimiter: b','
            }
        );
        let c = bind(&opts(&[
            endpoint,
            ("format", "CSV"),
            ("csv_header", "false"),
            ("csv_delimiter", ";"),
        ]))
        .unwrap();
        assert_eq!(
            c.format,
            Format::Csv {
                header: false,
                delimiter: b';'
            }
        );
        for tab in ["\\t", "tab", "TAB", "\t"] {
            let c = bind(&opts(&[
                endpoint,
                ("format", "csv"),
                ("csv_delimiter", tab),
                ("csv_header", "true"),
            ]))
            .unwrap();
            assert_eq!(
                c.format,
                Format::Csv {
                    header: true,
                    delimiter: b'\t'
                },
                "{tab:?}"
            );
        }
        let c = bind(&opts(&[
            endpoint,
            ("format", "xml"),
            ("xml_root_path", "/response/items/item"),
        ]))
        .unwrap();
        assert_eq!(
            c.format,
            Format::Xml {
                root_path: "/response/items/item".into()
            }
        );
        assert_eq!(crate::source::format_name(&c.format), "xml");
    }

    #[test]
    fn field_paths_and_timestamp_format_bind_and_name_their_option() {
        let c = bind(&opts(&[
            ("endpoint", "http://h/"),
            ("field_paths", r#"{"author_name": "$.author.name"}"#),
            ("timestamp_format", "%d/%m/%Y %H:%M"),
        ]))
        .unwrap();
        assert_eq!(
            c.columns.field_paths,
            [("author_name".to_string(), "$.author.name".to_string())]
        );
        assert_eq!(
            c.columns.timestamp_format.as_ref().map(|f| f.pattern()),
            Some("%d/%m/%Y %H:%M")
        );
        let c = bind(&opts(&[
            ("endpoint", "http://h/"),
            ("timestamp_format", r#"{"published": "%d.%m.%Y"}"#),
        ]))
        .unwrap();
        assert_eq!(c.columns.column_timestamp_formats.len(), 1);
        let options = |pairs: &[(&str, &str)]| -> Vec<String> {
            let mut all = vec![("endpoint", "http://h/")];
            all.extend_from_slice(pairs);
            bind(&opts(&all))
                .unwrap_err()
                .into_iter()
                .map(|e| e.option)
                .collect()
        };
        assert_eq!(options(&[("field_paths", "$.a")]), ["field_paths"]);
        assert_eq!(options(&[("field_paths", r#"{"a": 1}"#)]), ["field_paths"]);
        assert_eq!(
            options(&[("format", "csv"), ("field_paths", r#"{"a": "$.a"}"#)]),
            ["field_paths"]
        );
        assert_eq!(options(&[("timestamp_format", "%Q")]), ["timestamp_format"]);
        assert_eq!(
            options(&[("timestamp_format", r#"{"a": "%H"}"#)]),
            ["timestamp_format"]
        );
    }

    #[test]
    fn csv_and_xml_option_errors_name_the_option() {
        let endpoint = ("endpoint", "http://h/");
        let errors = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            let mut all = vec![endpoint];
            all.extend_from_slice(pairs);
            bind(&opts(&all))
                .unwrap_err()
                .into_iter()
                .map(|e| (e.option, e.message))
                .collect()
        };
        let pair = |o: &str, m: &str| (o.to_string(), m.to_string());
        assert_eq!(
            errors(&[
                ("format", "csv"),
                ("csv_delimiter", ";;"),
                ("csv_header", "maybe")
            ]),
            [
                pair("csv_header", "`maybe` is not true or false"),
                pair(
                    "csv_delimiter",
                    "`;;` is not one ASCII character (e.g. ',', ';', '|', or '\\t' for a tab)"
                ),
            ]
        );
        assert_eq!(
            errors(&[("format", "csv"), ("csv_delimiter", "\"")]),
            [pair(
                "csv_delimiter",
                "`\"` cannot separate fields: use a character other than '\"', CR or LF"
            )]
        );
        assert_eq!(
            errors(&[("format", "csv"), ("csv_delimiter", "§")]),
            [pair(
                "csv_delimiter",
                "`§` is not one ASCII character (e.g. ',', ';', '|', or '\\t' for a tab)"
            )]
        );
        assert_eq!(
            errors(&[("format", "xml")]),
            [pair(
                "xml_root_path",
                "missing: format = 'xml' needs it, e.g. '/response/items/item'"
            )]
        );
        assert_eq!(
            errors(&[("format", "xml"), ("xml_root_path", "items/item")]),
            [pair(
                "xml_root_path",
                "`items/item` must be an absolute path of element names, e.g. /response/items/item"
            )]
        );
        assert_eq!(
            errors(&[("format", "xml"), ("xml_root_path", "/a/item[1]")]),
            [pair(
                "xml_root_path",
                "`/a/item[1]` step `item[1]` is not an element name (only names, `*` and `//` are supported)"
            )]
        );
        assert_eq!(
            errors(&[
                ("format", "json"),
                ("csv_header", "true"),
                ("csv_delimiter", ","),
                ("xml_root_path", "/a")
            ]),
            [
                pair("csv_header", "only applies to format = 'csv'"),
                pair("csv_delimiter", "only applies to format = 'csv'"),
                pair("xml_root_path", "only applies to format = 'xml'"),
            ]
        );
        assert_eq!(
            errors(&[
                ("format", "xml"),
                ("xml_root_path", "/a"),
                ("csv_delimiter", ";")
            ]),
            [pair("csv_delimiter", "only applies to format = 'csv'")]
        );
        assert_eq!(
            errors(&[("format", "csv"), ("xml_root_path", "/a")]),
            [pair("xml_root_path", "only applies to format = 'xml'")]
        );
    }

    #[test]
    fn credentials_for_another_auth_kind_are_rejected() {
        let errs = bind(&opts(&[("endpoint", "http://h/"), ("token", "abcdef")])).unwrap_err();
        assert_eq!(errs[0].option, "token");
        assert!(errs[0].message.contains("auth_type = 'none'"));
    }

    #[test]
    fn non_idempotent_methods_retry_uncertain_failures_only_when_opted_in() {
        let retry = |pairs: &[(&str, &str)]| {
            let mut all = vec![("endpoint", "http://h/")];
            all.extend_from_slice(pairs);
            bind(&opts(&all)).unwrap().retry.retry_uncertain
        };
        assert!(retry(&[]), "GET");
        for verb in ["POST", "put", "PATCH", "DELETE"] {
            assert!(!retry(&[("method", verb)]), "{verb}");
            assert!(
                retry(&[("method", verb), ("retry_non_idempotent", "true")]),
                "{verb}"
            );
        }
        let errs = bind(&opts(&[
            ("endpoint", "http://h/"),
            ("retry_non_idempotent", "maybe"),
        ]))
        .unwrap_err();
        assert_eq!(errs[0].option, "retry_non_idempotent");
    }

    #[test]
    fn every_kind_of_secret_is_known_to_the_redactor() {
        let c = bind_with_env(
            &opts(&[
                ("endpoint", "https://me:url-pass@example.com/a?signature=sig-1234&page=2"),
                (
                    "headers",
                    r#"{"Authorization": "Token scheme-cred-1", "X-Tenant": "from-env-1", "Accept": "text/csv"}"#,
                ),
                ("query_params", r#"{"appid": "app-1234", "limit": "5000", "token": "${page}"}"#),
                ("auth_type", "basic"),
                ("username", "user"),
                ("password", "pw-1234"),
            ]),
            &["from-env-1".to_string()],
        )
        .unwrap();
        let text = "scheme-cred-1 from-env-1 app-1234 sig-1234 url-pass pw-1234 dXNlcjpwdy0xMjM0 text/csv 5000 ${page}";
        assert_eq!(
            c.redactor.redact(text),
            "*** *** *** *** *** *** *** text/csv 5000 ${page}"
        );
    }

    #[test]
    fn option_errors_never_quote_a_secret() {
        let errs = bind_with_env(
            &opts(&[
                ("endpoint", "ftp://h/x?api_key=lit-key-1234"),
                ("interval_ms", "env-value-1234"),
            ]),
            &["env-value-1234".to_string()],
        )
        .unwrap_err();
        let text = format!("{errs:?}");
        assert!(
            !text.contains("lit-key-1234") && !text.contains("env-value-1234"),
            "{text}"
        );
        assert!(text.contains("endpoint") && text.contains("interval_ms") && text.contains("***"));
    }
}
