//! The `siphon` command: parses arguments and calls the engine and the server. It holds no
//! logic a test would want beyond wiring; exit codes follow SPEC §2 (0 success, 1 runtime
//! failure, 2 invalid input).

mod client;
mod consume_cmd;
mod progress;
mod push_cmd;
mod sql_client;
mod status_cmd;
mod test_connection;
mod wait;
mod wait_cmd;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use siphon_engine::catalog::ConnectorKind;
use siphon_engine::pipeline::{self, SourceFile};
use siphon_engine::{Engine, EngineError};

/// Exit code for a runtime failure.
const EXIT_RUNTIME: u8 = 1;
/// Exit code for invalid input (bad files, bad arguments, bad SQL).
const EXIT_INVALID: u8 = 2;

#[derive(Parser)]
#[command(
    name = "siphon",
    version,
    about = "Poll HTTP APIs into durable SQL tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load pipelines and run them: poll, store, serve the HTTP API.
    Run {
        /// Pipeline files (.sql, or Fluvio connector .yml/.yaml). With none, runs what the data directory already holds.
        files: Vec<PathBuf>,
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8080", env = "SIPHON_LISTEN")]
        listen: SocketAddr,
        /// Where tables, state and the catalog are kept.
        #[arg(long, default_value = "./siphon-data", env = "SIPHON_DATA_DIR")]
        data_dir: PathBuf,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Rows kept per source in system.connector_logs and system.http_metrics.
        #[arg(long, default_value_t = siphon_engine::observe::DEFAULT_HISTORY_PER_SOURCE)]
        history_per_source: usize,
        /// Dead letters kept per table in system.dead_letters; the oldest go first.
        #[arg(long, default_value_t = 10_000)]
        dead_letter_max_rows: u64,
        /// Dead letters older than this are dropped (e.g. 7d, 12h, 30m).
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        dead_letter_max_age: std::time::Duration,
        /// Memory all running queries may use together, e.g. 512MB, 2GiB (KB/MB/GB are
        /// powers of 1000, KiB/MiB/GiB of 1024). A query past it fails; nothing spills.
        #[arg(long, default_value = "512MiB", value_parser = parse_bytes, env = "SIPHON_QUERY_MEMORY")]
        query_memory: usize,
        /// How long one query may run, streaming its result included, e.g. 30s, 500ms,
        /// 5m; 0 for no limit.
        #[arg(long, default_value = "300s", value_parser = parse_duration, env = "SIPHON_QUERY_TIMEOUT")]
        query_timeout: std::time::Duration,
        /// Start with inputs paused: no source polls and pushes wait until
        /// `POST /v1/resume` (so listeners can attach before any change).
        #[arg(long)]
        paused: bool,
        /// Require an API key on every endpoint but /healthz and /readyz: a file with one
        /// key per line (blank lines and # comments ignored). Keys in the environment
        /// variable SIPHON_API_KEYS (comma-separated) are accepted as well.
        #[arg(long, value_name = "FILE")]
        api_key_file: Option<PathBuf>,
    },
    /// Validate pipeline files without running them.
    Check {
        /// Pipeline files (.sql, or Fluvio connector .yml/.yaml).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Query a running server; with no QUERY, an interactive prompt.
    Sql {
        /// The SQL to run.
        query: Option<String>,
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "SIPHON_SERVER")]
        server: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = sql_client::OutputFormat::Table)]
        format: sql_client::OutputFormat,
        /// API key sent as `Authorization: Bearer <key>` (when the server requires one).
        #[arg(long, env = "SIPHON_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Poll each selected source once, storing nothing, and report what came back.
    TestConnection {
        /// Pipeline files (.sql).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A table to test (repeatable); by default every polling table.
        #[arg(long = "table", value_name = "TABLE")]
        tables: Vec<String>,
        /// How many decoded rows to show per table.
        #[arg(long, default_value_t = 10)]
        rows: usize,
    },
    /// Show the sources of a running server: state, last success, last error, next poll.
    Status {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "SIPHON_SERVER")]
        server: String,
        /// Print the status JSON as the server returns it.
        #[arg(long)]
        json: bool,
        /// API key sent as `Authorization: Bearer <key>` (when the server requires one).
        #[arg(long, env = "SIPHON_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Send NDJSON or CSV records from a file or stdin to a table of a running server.
    Push(push_cmd::PushArgs),
    /// Poll one URL until conditions hold (or run a steps file with -f), then print the
    /// saved values as JSON.
    Wait(wait_cmd::WaitArgs),
    /// Print the committed changes of a table as NDJSON, one line per row change.
    Consume {
        /// The table or view.
        table: String,
        /// Start with the first change the server holds.
        #[arg(short = 'B', long, conflicts_with = "from")]
        from_beginning: bool,
        /// Start with the changes after sequence number N (by default: from now).
        #[arg(long, value_name = "N")]
        from: Option<u64>,
        /// Stop after the changes committed now instead of following new ones.
        #[arg(short = 'd', long)]
        no_follow: bool,
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "SIPHON_SERVER")]
        server: String,
        /// API key sent as `Authorization: Bearer <key>` (when the server requires one).
        #[arg(long, env = "SIPHON_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Read straight from this data directory instead of a server (no other process
        /// may hold it): prints what is stored, then exits.
        #[arg(long, conflicts_with_all = ["server", "api_key"])]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match cli.command {
        Command::Run {
            files,
            listen,
            data_dir,
            log_format,
            history_per_source,
            dead_letter_max_rows,
            dead_letter_max_age,
            query_memory,
            query_timeout,
            paused,
            api_key_file,
        } => {
            init_logging(log_format);
            let options = siphon_engine::EngineOptions {
                history_per_source,
                retention: siphon_engine::store::Retention {
                    dead_letters_per_table: dead_letter_max_rows.max(1),
                    dead_letter_max_age,
                },
                query_limits: siphon_engine::query::QueryLimits {
                    memory: query_memory,
                    timeout: (!query_timeout.is_zero()).then_some(query_timeout),
                },
                start_paused: paused,
            };
            let keys = match api_keys(api_key_file.as_deref()) {
                Ok(keys) => keys,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_INVALID);
                }
            };
            runtime.block_on(run(files, listen, data_dir, options, keys))
        }
        Command::Check { files } => check(&files),
        Command::Sql {
            query,
            server,
            format,
            api_key,
        } => runtime.block_on(sql_client::run(&server, api_key.as_deref(), query, format)),
        Command::TestConnection {
            files,
            tables,
            rows,
        } => runtime.block_on(test_connection::run(&files, &tables, rows)),
        Command::Status {
            server,
            json,
            api_key,
        } => runtime.block_on(status_cmd::run(&server, api_key.as_deref(), json)),
        Command::Push(args) => runtime.block_on(push_cmd::run(args)),
        Command::Wait(args) => runtime.block_on(wait_cmd::run(args)),
        Command::Consume {
            table,
            from_beginning,
            from,
            no_follow,
            server,
            api_key,
            data_dir,
        } => {
            let start = match (from_beginning, from) {
                (true, _) => consume_cmd::Start::Beginning,
                (false, Some(n)) => consume_cmd::Start::After(n),
                (false, None) => consume_cmd::Start::Now,
            };
            runtime.block_on(consume_cmd::run(consume_cmd::ConsumeArgs {
                data_dir,
                server,
                api_key,
                table,
                start,
                follow: !no_follow,
            }))
        }
    }
}

/// `512MB`, `2GiB`, `1048576`: a size in bytes.
fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: use e.g. 512MB, 2GiB or 1048576"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}`: use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let bytes = number * scale;
    if !(1.0..=usize::MAX as f64).contains(&bytes) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes as usize)
}

/// `30s`, `500ms`, `5m`, `1h`, `0`: a duration.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: use e.g. 30s, 500ms or 5m"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        "" if number == 0.0 => 0.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}`: use ms, s, m, h or d (e.g. 30s)"
            ));
        }
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// The API keys of `--api-key-file` and `SIPHON_API_KEYS`, together. A key file that
/// cannot be read or holds no key, or a `SIPHON_API_KEYS` that is set but holds no key, is
/// an error: starting with an open API would be the unsafe reading of either mistake.
fn api_keys(file: Option<&Path>) -> Result<Vec<String>, String> {
    let mut keys = match file {
        Some(path) => siphon_server::auth::read_key_file(path)?,
        None => Vec::new(),
    };
    if let Some(list) = std::env::var_os("SIPHON_API_KEYS") {
        let list = list
            .into_string()
            .map_err(|_| "SIPHON_API_KEYS is not valid UTF-8".to_string())?;
        let from_env = siphon_server::auth::parse_key_list(&list);
        if from_env.is_empty() {
            return Err(
                "SIPHON_API_KEYS is set but holds no key (comma-separated keys; unset it to run without keys)"
                    .to_string(),
            );
        }
        keys.extend(from_env);
    }
    Ok(keys)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Reads pipeline files (SQL, or Fluvio connector YAML); a file that cannot be read is invalid input.
fn read_files(paths: &[PathBuf]) -> Result<Vec<SourceFile>, String> {
    paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|text| SourceFile {
                    path: p.display().to_string(),
                    text,
                })
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))
        })
        .collect()
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let files = match read_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    match pipeline::load(&files, &Default::default(), &env_lookup) {
        Ok(loaded) => {
            for note in &loaded.notes {
                eprintln!("note: {note}");
            }
            let polling = loaded
                .catalog
                .tables
                .values()
                .filter(|t| t.connector == ConnectorKind::PollingHttp)
                .count();
            println!(
                "ok: {} connection(s), {} table(s) ({} polling, {} push)",
                loaded.catalog.connections.len(),
                loaded.catalog.tables.len(),
                polling,
                loaded.catalog.tables.len() - polling
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s); nothing was loaded", errors.len());
            ExitCode::from(EXIT_INVALID)
        }
    }
}

async fn run(
    paths: Vec<PathBuf>,
    listen: SocketAddr,
    data_dir: PathBuf,
    options: siphon_engine::EngineOptions,
    api_keys: Vec<String>,
) -> ExitCode {
    let files = match read_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    // The address actually bound (`--listen 127.0.0.1:0` picks a port).
    let bound = listener.local_addr().unwrap_or(listen);
    let state = siphon_server::AppState::new()
        .listening_on(listen)
        .with_api_keys(api_keys);
    if state.api_keys().is_empty() {
        if !listen.ip().is_loopback() {
            tracing::warn!(
                listen = %listen,
                "no API key is configured and siphon listens on a non-loopback address: anyone who can reach {listen} can read and write every table; set keys with --api-key-file FILE or SIPHON_API_KEYS=key1,key2"
            );
        }
    } else {
        // How many, never which.
        tracing::info!(
            keys = state.api_keys().len(),
            "API keys required on every endpoint but /healthz and /readyz"
        );
    }
    let server = tokio::spawn({
        let app = siphon_server::app(state.clone());
        let state = state.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    shutdown_signal().await;
                    state.close_streams();
                })
                .await
        }
    });

    let options_for_pipelines = options.clone();
    let engine = match Engine::open(&data_dir, files, env_lookup, options).await {
        Ok(engine) => engine,
        Err(e) => {
            report_engine_error(&e, &data_dir);
            return ExitCode::from(if e.is_invalid_input() {
                EXIT_INVALID
            } else {
                EXIT_RUNTIME
            });
        }
    };
    for note in engine.notes() {
        tracing::info!("{note}");
    }
    // Feldera pipelines (`/v0`), each with its own engine under the data directory;
    // loaded before the server reports ready.
    match siphon_server::feldera::pipelines::Pipelines::open(
        siphon_server::feldera::pipelines::root_of(&data_dir),
        siphon_engine::EngineOptions {
            start_paused: false,
            ..options_for_pipelines
        },
    )
    .await
    {
        Ok(pipelines) => state.set_pipelines(pipelines),
        Err(e) => tracing::error!(error = %e, "the pipelines of /v0 cannot be loaded"),
    }
    state.set_engine(engine.clone());
    engine.start().await;
    progress::spawn(engine.clone());
    tracing::info!(
        listen = %listen,
        data_dir = %data_dir.display(),
        tables = %engine.table_names().join(", "),
        "siphon is running; query with `siphon sql` or POST /v1/query"
    );
    let console = siphon_server::console::url(bound);
    tracing::info!(url = %console, "web console: {console}");

    let served = server.await;
    if let Some(pipelines) = state.pipelines() {
        pipelines.shutdown_all().await;
    }
    engine.shutdown().await;
    tracing::info!("stopped");
    match served {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: the HTTP server failed: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(e) => {
            eprintln!("error: the HTTP server task failed: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Opens the engine on a data directory no server holds, for `siphon push` and `siphon
/// consume --data-dir`: its tables, nothing started. Errors are printed; the exit code
/// comes back.
async fn open_data_dir(data_dir: &Path) -> Result<std::sync::Arc<Engine>, ExitCode> {
    if !data_dir.join(siphon_engine::store::STORE_FILE).is_file() {
        eprintln!(
            "error: {} is not a siphon data directory (it has no {})",
            data_dir.display(),
            siphon_engine::store::STORE_FILE
        );
        return Err(ExitCode::from(EXIT_INVALID));
    }
    Engine::open(
        data_dir,
        Vec::new(),
        env_lookup,
        siphon_engine::EngineOptions::default(),
    )
    .await
    .map_err(|e| {
        report_engine_error(&e, data_dir);
        ExitCode::from(EXIT_RUNTIME)
    })
}

fn report_engine_error(error: &EngineError, data_dir: &Path) {
    match error {
        EngineError::Load(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s); nothing was loaded", errors.len());
        }
        EngineError::Store(e) => eprintln!(
            "error: cannot use the data directory {}: {e}",
            data_dir.display()
        ),
        other => eprintln!("error: {other}"),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_duration};
    use std::time::Duration;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_bytes("512MB"), Ok(512_000_000));
        assert_eq!(parse_bytes("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1.5 GiB"), Ok(1024 * 1024 * 1536));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("0").is_err());
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
