//! `siphon wait` (SPEC §4): the command-line face of the `wait` module. Reads the flags (or
//! a steps file with `-f`), runs the wait, prints the saved values as one JSON object on
//! stdout and exits 0; exits 1 with the failure on stderr when the conditions never held,
//! and 2 for invalid input (a bad flag, path, duration or steps file).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::wait::path::JsonPath;
use crate::wait::steps::{self, check_url, parse_method};
use crate::wait::{self, Condition, RequestSpec, Save, SaveFrom, Schedule, WaitSpec};
use crate::{EXIT_INVALID, EXIT_RUNTIME};

/// `siphon wait` arguments.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Run the steps of a Rocketship-style YAML file (plugin http, config, polling, save)
    /// instead of one wait given by flags.
    #[arg(short = 'f', long = "file", value_name = "STEPS_YAML", conflicts_with_all = [
        "url", "method", "headers", "body", "interval", "timeout", "max_attempts",
        "backoff_coefficient", "expect_status", "expect_json", "expect_json_exists",
        "expect_json_absent", "expect_header", "save"])]
    file: Option<PathBuf>,
    /// A value for `{{ NAME }}` in the steps file (repeatable): NAME=VALUE.
    #[arg(long = "var", value_name = "NAME=VALUE", requires = "file")]
    vars: Vec<String>,
    /// The URL to poll.
    #[arg(long, required_unless_present = "file")]
    url: Option<String>,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// A request header 'Name: value' (repeatable).
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    headers: Vec<String>,
    /// Request body.
    #[arg(long)]
    body: Option<String>,
    /// Wait after the first attempt, e.g. 2s, 500ms, 1m.
    #[arg(long, required_unless_present = "file")]
    interval: Option<String>,
    /// Give up this long after the start, e.g. 5m, 1h.
    #[arg(long, required_unless_present = "file")]
    timeout: Option<String>,
    /// Give up after this many attempts.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,
    /// Each wait is the previous one times this (>= 1.0).
    #[arg(long, default_value_t = 1.0)]
    backoff_coefficient: f64,
    /// The status the response must have (without it: any 2xx).
    #[arg(long, value_parser = clap::value_parser!(u16).range(100..=999))]
    expect_status: Option<u16>,
    /// PATH=VALUE: the JSON value at PATH equals VALUE (read as JSON when it is JSON, e.g.
    /// true, 3, "3"; else as a string). Repeatable.
    #[arg(long, value_name = "PATH=VALUE")]
    expect_json: Vec<String>,
    /// PATH is present (even with a null, false or 0 value). Repeatable.
    #[arg(long, value_name = "PATH")]
    expect_json_exists: Vec<String>,
    /// PATH is absent. Repeatable.
    #[arg(long, value_name = "PATH")]
    expect_json_absent: Vec<String>,
    /// NAME=VALUE: the response header NAME has exactly VALUE. Repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    expect_header: Vec<String>,
    /// PATH=NAME: print the value at PATH as NAME when the conditions hold. Repeatable.
    #[arg(long, value_name = "PATH=NAME")]
    save: Vec<String>,
}

/// Runs `siphon wait`.
pub async fn run(args: WaitArgs) -> ExitCode {
    let client = siphon_connect::source::http_client();
    let progress = std::io::stderr().is_terminal();
    if let Some(file) = &args.file {
        return run_file(&client, file, &args.vars, progress).await;
    }
    let spec = match spec_from_flags(&args) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    match wait::run(&client, &spec, |n, what| report(progress, None, n, what)).await {
        Ok(saved) => {
            println!("{}", Value::Object(saved));
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("error: wait failed: {}", failure.message);
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn report(progress: bool, step: Option<&str>, attempt: u32, what: &str) {
    if progress {
        match step {
            Some(step) => eprintln!("{step}: attempt {attempt}: {what}"),
            None => eprintln!("attempt {attempt}: {what}"),
        }
    }
}

async fn run_file(
    client: &reqwest::Client,
    path: &std::path::Path,
    vars: &[String],
    progress: bool,
) -> ExitCode {
    let invalid = |message: String| {
        eprintln!("error: {}: {message}", path.display());
        ExitCode::from(EXIT_INVALID)
    };
    let mut cli_vars = Vec::new();
    for var in vars {
        match var.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                cli_vars.push((k.trim().to_string(), v.to_string()))
            }
            _ => return invalid(format!("--var `{var}` is not NAME=VALUE")),
        }
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return invalid(format!("cannot read: {e}")),
    };
    let file = match steps::parse(&text, &cli_vars) {
        Ok(f) => f,
        Err(e) => return invalid(e),
    };
    let mut values: BTreeMap<String, String> = file.vars.clone();
    let mut saved = serde_json::Map::new();
    let total = file.steps.len();
    for (i, step) in file.steps.iter().enumerate() {
        let label = format!("step {} of {total} ({:?})", i + 1, step.name);
        let spec = match step.spec(&values) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {label} failed: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        match wait::run(client, &spec, |n, what| {
            report(progress, Some(&label), n, what)
        })
        .await
        {
            Ok(step_saved) => {
                for (name, value) in step_saved {
                    values.insert(name.clone(), steps::value_text(&value));
                    saved.insert(name, value);
                }
            }
            Err(failure) => {
                eprintln!("error: {label} failed: {}", failure.message);
                return ExitCode::from(EXIT_RUNTIME);
            }
        }
    }
    println!("{}", Value::Object(saved));
    ExitCode::SUCCESS
}

fn spec_from_flags(args: &WaitArgs) -> Result<WaitSpec, String> {
    let url = args.url.clone().ok_or("--url is required")?;
    check_url(&url).map_err(|e| format!("--url: {e}"))?;
    let method = parse_method(&args.method).map_err(|e| format!("--method: {e}"))?;
    let mut headers = Vec::new();
    for h in &args.headers {
        match h.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => {
                headers.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => return Err(format!("--header `{h}` is not 'Name: value'")),
        }
    }
    let duration = |flag: &str, text: &Option<String>| {
        let text = text.as_deref().ok_or(format!("--{flag} is required"))?;
        siphon_connect::duration::parse(text).map_err(|e| format!("--{flag}: {e}"))
    };
    let interval = duration("interval", &args.interval)?;
    let timeout = duration("timeout", &args.timeout)?;
    if !(args.backoff_coefficient.is_finite() && args.backoff_coefficient >= 1.0) {
        return Err(format!(
            "--backoff-coefficient {} must be a number >= 1.0",
            args.backoff_coefficient
        ));
    }
    let mut conditions = Vec::new();
    if let Some(status) = args.expect_status {
        conditions.push(Condition::Status(status));
    }
    for e in &args.expect_json {
        let (path, value) =
            split_path_assignment(e).ok_or(format!("--expect-json `{e}` is not PATH=VALUE"))?;
        let path = JsonPath::parse(path).map_err(|m| format!("--expect-json: {m}"))?;
        conditions.push(Condition::JsonEquals(path, expected_value(value)));
    }
    for (flag, list, present) in [
        ("expect-json-exists", &args.expect_json_exists, true),
        ("expect-json-absent", &args.expect_json_absent, false),
    ] {
        for p in list {
            let path = JsonPath::parse(p).map_err(|m| format!("--{flag}: {m}"))?;
            conditions.push(Condition::JsonExists(path, present));
        }
    }
    for h in &args.expect_header {
        let (name, value) = h
            .split_once('=')
            .or_else(|| h.split_once(':'))
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or(format!("--expect-header `{h}` is not NAME=VALUE"))?;
        conditions.push(Condition::Header(
            name.trim().to_string(),
            value.trim().to_string(),
        ));
    }
    let mut save = Vec::new();
    for s in &args.save {
        let (path, name) = s
            .rsplit_once('=')
            .filter(|(p, n)| !p.trim().is_empty() && !n.trim().is_empty())
            .ok_or(format!("--save `{s}` is not PATH=NAME"))?;
        let path = JsonPath::parse(path).map_err(|m| format!("--save: {m}"))?;
        save.push(Save {
            from: SaveFrom::Json(path),
            name: name.trim().to_string(),
        });
    }
    Ok(WaitSpec {
        request: RequestSpec {
            method,
            url,
            headers,
            body: args.body.clone(),
        },
        schedule: Schedule {
            interval,
            timeout,
            max_attempts: args.max_attempts,
            backoff_coefficient: args.backoff_coefficient,
        },
        conditions,
        save,
    })
}

/// Splits `PATH=VALUE` at the first `=` outside brackets and quotes.
fn split_path_assignment(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            (None, '=') if depth == 0 => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// The expected value of `--expect-json`: JSON when the text is JSON, else the text.
fn expected_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expected_values_keep_their_json_type() {
        assert_eq!(expected_value("completed"), json!("completed"));
        assert_eq!(expected_value("true"), json!(true));
        assert_eq!(expected_value("\"true\""), json!("true"));
        assert_eq!(expected_value("200"), json!(200));
        assert_eq!(expected_value("null"), json!(null));
        assert_eq!(expected_value(""), json!(""));
    }

    #[test]
    fn assignments_split_outside_brackets() {
        assert_eq!(
            split_path_assignment(".status=completed"),
            Some((".status", "completed"))
        );
        assert_eq!(
            split_path_assignment(".[\"a=b\"]=x=y"),
            Some((".[\"a=b\"]", "x=y"))
        );
        assert_eq!(split_path_assignment(".status"), None);
    }
}
