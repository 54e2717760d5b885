//! `siphon sql`: sends queries to a running server's `/v1/query` and prints the results as
//! a table (from Arrow IPC), JSON or CSV; with no query, an interactive prompt that runs
//! each `;`-terminated statement. JSON and CSV are printed as they stream in; a result the
//! server cut off (a limit hit after the first rows) is an error, never a short result.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::ValueEnum;

/// How `siphon sql` prints results.
#[derive(Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    /// An aligned table.
    Table,
    /// One JSON array of row objects.
    Json,
    /// CSV with a header line.
    Csv,
}

enum Failure {
    /// The server wants an API key, or another one.
    Unauthorized(String),
    /// The query was rejected (bad SQL, unknown table).
    Invalid(String),
    /// The server could not be reached or failed.
    Runtime(String),
}

/// Runs one query, or the prompt.
pub async fn run(
    server: &str,
    api_key: Option<&str>,
    query: Option<String>,
    format: OutputFormat,
) -> ExitCode {
    let client = Client {
        http: reqwest::Client::new(),
        url: format!("{}/v1/query", server.trim_end_matches('/')),
        server: server.trim_end_matches('/').to_string(),
        api_key: api_key.map(str::to_string),
    };
    if let Some(sql) = query {
        return match execute(&client, &sql, format).await {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(Failure::Invalid(m)) => {
                eprintln!("error: {m}");
                ExitCode::from(2)
            }
            Err(Failure::Unauthorized(m)) => {
                eprintln!("error: {m}");
                ExitCode::from(crate::client::EXIT_UNAUTHORIZED)
            }
            Err(Failure::Runtime(m)) => {
                eprintln!("error: {m}");
                ExitCode::from(1)
            }
        };
    }

    let interactive = std::io::stdin().is_terminal();
    let mut buffer = String::new();
    let mut failed = false;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            print!(
                "{}",
                if buffer.is_empty() {
                    "siphon> "
                } else {
                    "   ...> "
                }
            );
            let _ = std::io::stdout().flush();
        }
        let Some(Ok(line)) = lines.next() else { break };
        let trimmed = line.trim();
        if buffer.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
            break;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut buffer);
        failed |= run_one(&client, sql.trim().trim_end_matches(';'), format).await;
    }
    if !buffer.trim().is_empty() {
        failed |= run_one(&client, buffer.trim(), format).await;
    }
    if failed && !interactive {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Where and how to send queries.
struct Client {
    http: reqwest::Client,
    url: String,
    server: String,
    api_key: Option<String>,
}

async fn run_one(client: &Client, sql: &str, format: OutputFormat) -> bool {
    if sql.trim().is_empty() {
        return false;
    }
    match execute(client, sql, format).await {
        Ok(text) => {
            print!("{text}");
            false
        }
        Err(Failure::Invalid(m) | Failure::Runtime(m) | Failure::Unauthorized(m)) => {
            eprintln!("error: {m}");
            true
        }
    }
}

async fn execute(client: &Client, sql: &str, format: OutputFormat) -> Result<String, Failure> {
    let url = &client.url;
    let wire = match format {
        OutputFormat::Table => "arrow",
        OutputFormat::Json => "json",
        OutputFormat::Csv => "csv",
    };
    let request = client
        .http
        .post(url)
        .json(&serde_json::json!({ "sql": sql, "format": wire }));
    let response = crate::client::authorized(request, client.api_key.as_deref())
        .send()
        .await
        .map_err(|e| {
            Failure::Runtime(format!(
                "cannot reach siphon at {url}: {e} (is `siphon run` running?)"
            ))
        })?;
    let status = response.status();
    if status.is_success() && !matches!(format, OutputFormat::Table) {
        return stream_out(response, format).await;
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| Failure::Runtime(format!("reading the response: {e}")))?;
    if crate::client::is_unauthorized(status) {
        return Err(Failure::Unauthorized(crate::client::unauthorized_message(
            &client.server,
            client.api_key.as_deref(),
            &String::from_utf8_lossy(&body),
        )));
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(if status.is_client_error() {
            Failure::Invalid(message)
        } else {
            Failure::Runtime(message)
        });
    }
    match format {
        OutputFormat::Json | OutputFormat::Csv => Ok(String::from_utf8_lossy(&body).into_owned()),
        OutputFormat::Table => {
            let reader =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
                    .map_err(|e| Failure::Runtime(format!("decoding the result: {e}")))?;
            let mut batches = Vec::new();
            for batch in reader {
                batches.push(
                    batch.map_err(|e| Failure::Runtime(format!("decoding the result: {e}")))?,
                );
            }
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let table = arrow::util::pretty::pretty_format_batches(&batches)
                .map_err(|e| Failure::Runtime(format!("formatting the result: {e}")))?;
            Ok(format!(
                "{table}\n({rows} row{})\n",
                if rows == 1 { "" } else { "s" }
            ))
        }
    }
}

/// Prints a JSON or CSV result chunk by chunk as it arrives; returns what is left to print.
async fn stream_out(
    mut response: reqwest::Response,
    format: OutputFormat,
) -> Result<String, Failure> {
    let mut stdout = std::io::stdout();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                stdout
                    .write_all(&chunk)
                    .map_err(|e| Failure::Runtime(format!("writing the result: {e}")))?;
            }
            Ok(None) => break,
            Err(e) => {
                let _ = stdout.flush();
                return Err(Failure::Runtime(format!(
                    "the result was cut off (the query failed while streaming, see the server log): {e}"
                )));
            }
        }
    }
    let _ = stdout.flush();
    Ok(match format {
        OutputFormat::Json => "\n".to_string(),
        _ => String::new(),
    })
}
