//! `siphon test-connection`: one poll per selected source that stores nothing, reported for
//! a reader. It loads the files like `siphon check`, builds each source exactly as the
//! engine does, polls it once from an empty state and prints what happened: the requests
//! (status, latency, bytes, attempt, page), pages walked, the auth outcome, the records and
//! dead letters, and the first rows as they would be stored; a failure is classified (DNS,
//! refused, TLS, timeout, HTTP status, decode, pagination, auth) and explained.
//!
//! Nothing here opens a store or touches a data directory: a poll is a pure step from a
//! state to records (see `siphon_connect::source`), and this command drops its output.
//! Exit codes: 0 every selected source polled, 1 any poll failed, 2 invalid input.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use siphon_connect::config::{Auth, PollingConfig};
use siphon_connect::decode::DeadLetter;
use siphon_connect::source::{
    PollError, PollOutput, PollingSource, RequestRecord, SharedResources, SourceState,
    TransportKind, http_client,
};
use siphon_engine::catalog::{Catalog, ConnectorKind, TableDef};
use siphon_engine::pipeline;

use crate::{EXIT_INVALID, EXIT_RUNTIME};

/// How many dead letters are shown per table.
const DEAD_LETTERS_SHOWN: usize = 5;
/// How many characters of a dead letter's raw record are shown.
const RAW_EXCERPT: usize = 200;

/// Loads `paths`, polls each selected table once, and prints a report to stdout.
pub async fn run(paths: &[PathBuf], selected: &[String], rows: usize) -> ExitCode {
    let files = match crate::read_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let loaded = match pipeline::load(&files, &Default::default(), &crate::env_lookup) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s); nothing was tested", errors.len());
            return ExitCode::from(EXIT_INVALID);
        }
    };
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    let polling: Vec<&str> = loaded
        .catalog
        .tables
        .values()
        .filter(|t| t.connector == ConnectorKind::PollingHttp)
        .map(|t| t.name.as_str())
        .collect();
    if polling.is_empty() {
        eprintln!("error: these files define no polling table (connector = 'polling_http_source')");
        return ExitCode::from(EXIT_INVALID);
    }
    let mut tables: Vec<&str> = Vec::new();
    for name in selected {
        match polling.iter().find(|p| **p == name.as_str()) {
            Some(p) if !tables.contains(p) => tables.push(p),
            Some(_) => {}
            None => {
                eprintln!(
                    "error: `{name}` is not a polling table of these files; polling tables: {}",
                    polling.join(", ")
                );
                return ExitCode::from(EXIT_INVALID);
            }
        }
    }
    if tables.is_empty() {
        tables = polling;
    }

    let client = http_client();
    let mut outcomes: Vec<(&str, Outcome)> = Vec::new();
    for (index, name) in tables.iter().enumerate() {
        if index > 0 {
            println!();
        }
        let def = &loaded.catalog.tables[*name];
        let Some(config) = loaded.sources.get(*name) else {
            println!("table {name}: no bound configuration (this is a bug in siphon)");
            outcomes.push((name, Outcome::Failed));
            continue;
        };
        let outcome = test_table(def, &loaded.catalog, config, &client, rows).await;
        outcomes.push((name, outcome));
    }

    if outcomes.len() > 1 {
        println!();
        println!("summary:");
        for (name, outcome) in &outcomes {
            println!("  {name:<24} {}", outcome.label());
        }
    }
    if outcomes.iter().any(|(_, o)| *o == Outcome::Invalid) {
        ExitCode::from(EXIT_INVALID)
    } else if outcomes.iter().any(|(_, o)| *o == Outcome::Failed) {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    }
}

/// How one table's test ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// The poll succeeded but some records became dead letters.
    OkWithDeadLetters,
    Failed,
    /// The source could not be built from its definition.
    Invalid,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::OkWithDeadLetters => "ok, WITH DEAD LETTERS",
            Outcome::Failed => "FAILED",
            Outcome::Invalid => "INVALID DEFINITION",
        }
    }
}

async fn test_table(
    def: &TableDef,
    catalog: &Catalog,
    config: &Arc<PollingConfig>,
    client: &reqwest::Client,
    rows: usize,
) -> Outcome {
    let redact = |text: &str| config.redactor.redact(text);
    match &def.connection {
        Some(c) => println!("table {} (connection {c})", def.name),
        None => println!("table {}", def.name),
    }
    if let Some(endpoint) = endpoint_as_written(def, catalog) {
        println!("  endpoint:     {}", redact(endpoint));
    }
    // The token URL may hold a secret (a `${NAME}` value, a credential parameter).
    println!("  auth:         {}", redact(&auth_kind(&config.auth)));
    let _ = std::io::stdout().flush();

    let shared = SharedResources::for_config(config, client);
    let source = match PollingSource::new(
        config.clone(),
        Arc::new(def.schema()),
        client.clone(),
        shared,
    ) {
        Ok(s) => s,
        Err(e) => {
            println!("  INVALID: option `{}`: {}", e.option, redact(&e.message));
            return Outcome::Invalid;
        }
    };
    let clock = Instant::now();
    let result = source.poll(&SourceState::default()).await;
    let elapsed = clock.elapsed();
    match result {
        Ok(output) => report_success(def, config, &output, elapsed.as_millis(), rows),
        Err(error) => {
            report_failure(config, &error, elapsed.as_millis());
            Outcome::Failed
        }
    }
}

/// The endpoint as the files wrote it (before `${NAME}` substitution, so no secret from the
/// environment is in it), from the table or else its connection.
fn endpoint_as_written<'a>(def: &'a TableDef, catalog: &'a Catalog) -> Option<&'a str> {
    def.options
        .get("endpoint")
        .or_else(|| {
            def.connection
                .as_ref()
                .and_then(|c| catalog.connections.get(c))
                .and_then(|c| c.options.get("endpoint"))
        })
        .map(String::as_str)
}

fn report_success(
    def: &TableDef,
    config: &PollingConfig,
    output: &PollOutput,
    elapsed_ms: u128,
    rows: usize,
) -> Outcome {
    print_requests(&output.requests);
    let bytes: u64 = output.requests.iter().map(|r| r.bytes).sum();
    println!(
        "  pages walked: {} ({} bytes in {elapsed_ms} ms)",
        output.pages, bytes
    );
    println!("  auth outcome: {}", auth_accepted(&config.auth));
    for note in &output.notes {
        println!("  note:         {note}");
    }
    let Some(page) = &output.page else {
        if output.not_modified {
            println!(
                "  result:       ok: 304 Not Modified, nothing changed since the last poll; no rows"
            );
        } else {
            println!(
                "  result:       ok: the body is unchanged (emit_behavior = 'changed'); no rows"
            );
        }
        return Outcome::Ok;
    };
    let decoded = page.batch.num_rows();
    let dead = page.dead_letters.len();
    println!(
        "  records:      {decoded} decoded, {dead} dead letter{}",
        plural(dead)
    );
    if dead > 0 {
        print_dead_letters(&page.dead_letters, decoded + dead);
    }
    if decoded == 0 {
        println!("  rows:         none");
    } else {
        let shown = decoded.min(rows);
        println!(
            "  rows:         first {shown} of {decoded}, as they would be stored in `{}`:",
            def.name
        );
        if shown > 0 {
            match arrow::util::pretty::pretty_format_batches(&[page.batch.slice(0, shown)]) {
                Ok(table) => {
                    for line in table.to_string().lines() {
                        println!("    {line}");
                    }
                }
                Err(e) => println!("    (cannot format the rows: {e})"),
            }
        }
    }
    if dead > 0 {
        println!(
            "  result:       ok, BUT {dead} of {} record{} would go to system.dead_letters, not to the table",
            decoded + dead,
            plural(decoded + dead)
        );
        Outcome::OkWithDeadLetters
    } else {
        println!("  result:       ok");
        Outcome::Ok
    }
}

fn print_dead_letters(dead_letters: &[DeadLetter], records: usize) {
    println!(
        "  WARNING: {} of {records} record{} did not fit the table's columns:",
        dead_letters.len(),
        plural(records)
    );
    for letter in dead_letters.iter().take(DEAD_LETTERS_SHOWN) {
        println!("    - {}", letter.reason);
        println!("      raw: {}", one_line(&letter.raw, RAW_EXCERPT));
    }
    if dead_letters.len() > DEAD_LETTERS_SHOWN {
        println!(
            "    ... and {} more",
            dead_letters.len() - DEAD_LETTERS_SHOWN
        );
    }
}

fn report_failure(config: &PollingConfig, error: &PollError, elapsed_ms: u128) {
    print_requests(error.requests());
    let (headline, hint) = explain(error, config);
    println!("  auth outcome: {}", auth_on_failure(&config.auth, error));
    println!("  FAILED:       {headline}");
    println!("  detail:       {error}");
    if let Some(hint) = hint {
        println!("  hint:         {hint}");
    }
    println!("  result:       failed after {elapsed_ms} ms; nothing would be stored");
}

fn print_requests(requests: &[RequestRecord]) {
    if requests.is_empty() {
        println!("  requests:     none made");
        return;
    }
    println!("  requests:");
    for r in requests {
        let status = match r.status {
            Some(code) => match reqwest::StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
            {
                Some(reason) => format!("{code} {reason}"),
                None => code.to_string(),
            },
            None => "no response".to_string(),
        };
        println!(
            "    {} {} -> {status}, {} ms, {} bytes, attempt {}, page {}",
            r.method,
            r.url,
            r.elapsed.as_millis(),
            r.bytes,
            r.attempt,
            r.page
        );
    }
}

/// A headline classifying the failure for a reader, and what to check.
fn explain(error: &PollError, config: &PollingConfig) -> (String, Option<String>) {
    match error {
        PollError::Transport { url, kind, .. } => explain_transport(url, *kind),
        PollError::Timeout { timeout_ms, .. } => (
            format!("timeout: no complete response within {timeout_ms} ms"),
            Some("the API is slow or unreachable; check it, or raise timeout_ms".into()),
        ),
        PollError::Status { status, .. } => {
            let reason = reqwest::StatusCode::from_u16(*status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let hint = match status {
                401 | 403 if matches!(config.auth, Auth::None) => {
                    "the API wants credentials: set auth_type and its options".to_string()
                }
                401 | 403 => "the credentials were refused: check them and auth_type".into(),
                404 => "check the endpoint's path and query".into(),
                429 => "rate limited: lower the request rate (rate_limit_requests)".into(),
                500..=599 => {
                    "the API failed on its side; retries (max_retries) would try again".into()
                }
                _ => "check the request (method, headers, body, query)".into(),
            };
            (
                format!("HTTP status {status} {reason} (the body's start is quoted below)"),
                Some(hint),
            )
        }
        PollError::TooLarge { limit, .. } => (
            format!("the response is larger than max_response_bytes ({limit} bytes)"),
            Some("raise max_response_bytes or ask the API for less (pagination)".into()),
        ),
        PollError::Decode { source, .. } => (
            format!(
                "decode error: the response does not decode as format '{}' ({})",
                siphon_connect::source::format_name(&config.format),
                match source {
                    siphon_connect::decode::DecodeError::InvalidJson(_) => "not valid JSON",
                    _ => "see below",
                }
            ),
            Some("check `format` (and `json_path`) against what the API returns".into()),
        ),
        PollError::Pagination { .. } => (
            "pagination: the walk cannot go on (a loop, or a next page it cannot follow)".into(),
            Some("check the pagination options against the API's responses".into()),
        ),
        PollError::Auth { .. } => (
            "auth: the OAuth2 token could not be obtained from the token endpoint".into(),
            Some("check token_url, client_id, client_secret and scope".into()),
        ),
        PollError::State(_) => (
            "incremental state: the records do not give a usable state".into(),
            Some("check state_field and state_type against the records".into()),
        ),
        PollError::CircuitOpen { remaining_ms } => (
            format!("the circuit breaker is open for another {remaining_ms} ms"),
            None,
        ),
    }
}

/// Explains a failure with no response by its kind (classified where it happened, in
/// `siphon_connect::source`), naming the host or address it was for.
fn explain_transport(url: &str, kind: TransportKind) -> (String, Option<String>) {
    let parsed = reqwest::Url::parse(url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str())
        .unwrap_or("the host")
        .to_string();
    let address = parsed
        .as_ref()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| host.clone());
    let (headline, hint) = match kind {
        TransportKind::Dns => (
            format!("DNS: could not resolve host `{host}`"),
            "check the host name in the endpoint, and this machine's network and DNS",
        ),
        TransportKind::ConnectionRefused => (
            format!("connection refused: nothing is listening at {address}"),
            "check the host and port, and that the API is running",
        ),
        TransportKind::Tls => (
            format!("TLS/certificate: the secure connection to {host} failed"),
            "the certificate may be expired, self-signed or for another host name, \
             or the port may not speak TLS (http vs https)",
        ),
        TransportKind::ConnectTimeout => (
            format!("connect timeout: {address} did not accept a connection in time"),
            "check the host and port, and this machine's network, proxy and firewall",
        ),
        TransportKind::Reset => (
            format!("the connection to {address} was closed before a complete response"),
            "the server or a proxy dropped the connection; check it",
        ),
        TransportKind::BrokenBody => (
            format!("the response body from {address} broke off or could not be decompressed"),
            "the server or a proxy cut the response, or its Content-Encoding is wrong",
        ),
        TransportKind::RedirectLoop => (
            "redirect loop: the server keeps redirecting".into(),
            "poll the final URL directly",
        ),
        TransportKind::Other if parsed.is_none() => (
            "the endpoint is not a valid URL".into(),
            "check the endpoint and the request variables in it",
        ),
        TransportKind::Other => return ("the request failed with no response".into(), None),
    };
    (headline, Some(hint.into()))
}

/// The kind of credentials a source sends, without the secrets.
fn auth_kind(auth: &Auth) -> String {
    match auth {
        Auth::None => "none".into(),
        Auth::Basic { username, .. } => format!("basic (user {username})"),
        Auth::Bearer { .. } => "bearer".into(),
        Auth::ApiKey { header, .. } => format!("api_key (header {header})"),
        Auth::OAuth2(c) => format!("oauth2 (token from {})", c.token_url),
    }
}

/// The auth outcome of a poll that got a successful response.
fn auth_accepted(auth: &Auth) -> &'static str {
    match auth {
        Auth::None => "none (no credentials sent)",
        Auth::Basic { .. } => "basic: accepted",
        Auth::Bearer { .. } => "bearer: accepted",
        Auth::ApiKey { .. } => "api_key: accepted",
        Auth::OAuth2(_) => "oauth2: token obtained, accepted",
    }
}

/// The auth outcome of a failed poll, as far as the responses tell.
fn auth_on_failure(auth: &Auth, error: &PollError) -> String {
    let kind = match auth {
        Auth::None => "none",
        Auth::Basic { .. } => "basic",
        Auth::Bearer { .. } => "bearer",
        Auth::ApiKey { .. } => "api_key",
        Auth::OAuth2(_) => "oauth2",
    };
    if matches!(error, PollError::Auth { .. }) {
        return format!("{kind}: no token obtained");
    }
    let last_status = error.requests().iter().rev().find_map(|r| r.status);
    match (auth, last_status) {
        (Auth::None, Some(s @ (401 | 403))) => {
            format!("none, and the API answered {s}: it wants credentials")
        }
        (Auth::None, _) => "none (no credentials sent)".into(),
        (_, Some(s @ (401 | 403))) => format!("{kind}: rejected (HTTP {s})"),
        (_, Some(s)) if (200..400).contains(&s) => auth_accepted(auth).into(),
        (_, Some(s)) => format!("{kind}: not rejected (HTTP {s} is not 401/403)"),
        (_, None) => format!("{kind}: not known (no response)"),
    }
}

/// `text` on one line (whitespace collapsed), cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
