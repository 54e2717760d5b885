//! `siphon status`: asks a running server for `GET /v1/status` and prints every source's
//! state, last success, last error and next poll as a table (or the JSON as returned with
//! `--json`). Presentation only: the server owns the status (`siphon_engine::status`).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use comfy_table::{Table, presets};
use serde_json::Value;

use crate::EXIT_RUNTIME;

/// How many characters of a source's last error the table shows.
const ERROR_WIDTH: usize = 60;

/// Fetches the status from `server` and prints it.
pub async fn run(server: &str, api_key: Option<&str>, json: bool) -> ExitCode {
    let base = server.trim_end_matches('/');
    let url = format!("{base}/v1/status");
    let request = crate::client::authorized(reqwest::Client::new().get(&url), api_key);
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach siphon at {base} (is `siphon run` running?): {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let status = response.status();
    let body = match response.text().await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: reading the status from {url}: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    if crate::client::is_unauthorized(status) {
        eprintln!(
            "error: {}",
            crate::client::unauthorized_message(base, api_key, &body)
        );
        return ExitCode::from(crate::client::EXIT_UNAUTHORIZED);
    }
    let value: Option<Value> = serde_json::from_str(&body).ok();
    if !status.is_success() {
        let detail = value
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or(body);
        eprintln!("error: {url} answered {status}: {detail}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    let Some(value) = value else {
        eprintln!("error: {url} did not answer JSON: {}", excerpt(&body, 200));
        return ExitCode::from(EXIT_RUNTIME);
    };
    if json {
        match serde_json::to_string_pretty(&value) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot print the status: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        }
        return ExitCode::SUCCESS;
    }
    let Some(sources) = value.get("sources").and_then(Value::as_array) else {
        eprintln!("error: {url} answered without a `sources` list");
        return ExitCode::from(EXIT_RUNTIME);
    };
    if sources.is_empty() {
        println!("no sources");
        return ExitCode::SUCCESS;
    }
    println!("{}", table(sources, now_ms()));
    ExitCode::SUCCESS
}

/// The sources as a table; times are shown relative to `now_ms`.
fn table(sources: &[Value], now_ms: i64) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_FULL_CONDENSED);
    table.set_header([
        "table",
        "connection",
        "state",
        "last success",
        "last error",
        "failures",
        "requests",
        "records",
        "next poll",
        "lag",
    ]);
    for s in sources {
        let text = |key: &str| {
            s.get(key)
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string()
        };
        let number = |key: &str| {
            s.get(key)
                .and_then(Value::as_u64)
                .map_or_else(|| "-".to_string(), |n| n.to_string())
        };
        let when = |key: &str| {
            s.get(key)
                .and_then(Value::as_str)
                .map_or_else(|| "-".to_string(), |t| relative(t, now_ms))
        };
        let last_error = s
            .get("last_error")
            .and_then(Value::as_str)
            .map_or_else(|| "-".to_string(), |e| excerpt(e, ERROR_WIDTH));
        // A sink's row names what it publishes; its lag is the changes not yet published.
        let name = match s.get("reads_from").and_then(Value::as_str) {
            Some(from) => format!("{} (sink of {from})", text("table_name")),
            None => text("table_name"),
        };
        table.add_row([
            name,
            text("connection_name"),
            text("state"),
            when("last_success_at"),
            last_error,
            number("consecutive_failures"),
            number("requests"),
            number("records"),
            when("next_poll_at"),
            number("lag"),
        ]);
    }
    table
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An RFC 3339 instant relative to now: "in 4s", "5s ago", "in <1s"; the text itself when
/// it does not parse.
fn relative(instant: &str, now_ms: i64) -> String {
    let Ok(nanos) = arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(instant) else {
        return instant.to_string();
    };
    let delta_ms = nanos / 1_000_000 - now_ms;
    if delta_ms.abs() < 1000 {
        return if delta_ms > 0 { "in <1s" } else { "<1s ago" }.into();
    }
    let span = span(delta_ms.unsigned_abs() / 1000);
    if delta_ms > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A duration in seconds, in its two largest units: "4s", "2m 5s", "3h 10m", "2d 4h".
fn span(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `text` on one line, cut to `max` characters.
fn excerpt(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}
