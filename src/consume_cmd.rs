//! `siphon consume TABLE`: prints a table's committed changes as NDJSON, one line per row
//! change (`{"sequence_number":N,"insert":{...}}` or `..."delete":{...}}`), in sequence
//! order, from `GET /v1/egress/{table}?format=json&from=...&follow=...`.
//!
//! The body is read chunk by chunk and split on line ends (the server ends lines with
//! CRLF); `{}` lines are keepalives. A row's JSON is printed as the server sent it. When a
//! connection drops (while following, or before a `--no-follow` read ended), the command
//! reconnects with `from=<last sequence printed>` after a short backoff, so nothing is
//! missed or printed twice; a sequence already printed is skipped should it come again.
//! The attempts are bounded ([`MAX_ATTEMPTS`] in a row without a change received or a
//! connection that stayed up for a while). A
//! closed stdout (`| head`) ends the command quietly with 0.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{EXIT_INVALID, EXIT_RUNTIME, client};

/// Reconnection attempts in a row (without a successful connection in between).
pub const MAX_ATTEMPTS: u32 = 8;

/// A connection that stays up this long resets the count of attempts.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(10);

/// Where to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Beginning,
    Now,
    /// The changes after this sequence number.
    After(u64),
}

/// The command's arguments.
pub struct ConsumeArgs {
    /// Read this data directory instead of a server.
    pub data_dir: Option<std::path::PathBuf>,
    pub server: String,
    pub api_key: Option<String>,
    pub table: String,
    pub start: Start,
    pub follow: bool,
}

/// Where the reader is: the start asked for and the last sequence printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    start: Start,
    last: Option<u64>,
}

impl Position {
    pub fn new(start: Start) -> Position {
        let last = match start {
            Start::After(n) => Some(n),
            _ => None,
        };
        Position { start, last }
    }

    /// Records where the server started the stream (its `x-siphon-start-after` header)
    /// when nothing was printed yet, so that reconnecting resumes from there: a `from=now`
    /// reader that loses its connection before the first change misses nothing.
    pub fn started_after(&mut self, sequence: u64) {
        if self.last.is_none() {
            self.last = Some(sequence);
        }
    }

    /// The `from` parameter of the next request: after the last sequence printed (or where
    /// the first stream started), or the start asked for before any stream opened.
    pub fn resume_from(&self) -> String {
        match (self.last, self.start) {
            (Some(n), _) => n.to_string(),
            (None, Start::Beginning) => "beginning".to_string(),
            (None, _) => "now".to_string(),
        }
    }

    /// Whether a data line of sequence `seq` is new (and then records it as printed).
    pub fn accept(&mut self, seq: u64) -> bool {
        if self.last.is_some_and(|last| seq <= last) {
            return false;
        }
        self.last = Some(seq);
        true
    }
}

/// One line of the egress body.
#[derive(Debug, PartialEq)]
pub enum Line {
    Keepalive,
    Data {
        sequence_number: u64,
        /// `(op, row JSON)` with op `insert` or `delete`, in order.
        changes: Vec<(String, String)>,
        dropped: Option<u64>,
    },
}

#[derive(Deserialize)]
struct DataLine<'a> {
    sequence_number: Option<u64>,
    #[serde(borrow, default)]
    json_data: Vec<std::collections::BTreeMap<String, &'a RawValue>>,
    dropped: Option<u64>,
}

/// Parses one line (without its line end).
pub fn parse_line(line: &str) -> Result<Line, String> {
    let line = line.trim();
    let excerpt = || line.chars().take(200).collect::<String>();
    let data: DataLine<'_> = serde_json::from_str(line).map_err(|e| {
        format!(
            "the server sent a line that is not a change: {e}: {}",
            excerpt()
        )
    })?;
    let Some(sequence_number) = data.sequence_number else {
        if data.json_data.is_empty() {
            return Ok(Line::Keepalive);
        }
        return Err(format!(
            "a change line without sequence_number: {}",
            excerpt()
        ));
    };
    let mut changes = Vec::with_capacity(data.json_data.len());
    for change in data.json_data {
        for (op, row) in change {
            if op != "insert" && op != "delete" {
                return Err(format!(
                    "a change that is neither insert nor delete (`{op}`)"
                ));
            }
            changes.push((op, row.get().to_string()));
        }
    }
    Ok(Line::Data {
        sequence_number,
        changes,
        dropped: data.dropped,
    })
}

/// The output lines of one change line.
pub fn render(sequence_number: u64, changes: &[(String, String)]) -> String {
    let mut out = String::new();
    for (op, row) in changes {
        out.push_str(&format!(
            "{{\"sequence_number\":{sequence_number},\"{op}\":{row}}}\n"
        ));
    }
    out
}

/// Splits a byte stream into lines; a line may span chunks.
#[derive(Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// The complete lines of `chunk` (and what came before it), without line ends.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.pending[start..start + i];
            if line.ends_with(b"\r") {
                line = &line[..line.len() - 1];
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(String::from_utf8_lossy(line).into_owned());
            }
            start += i + 1;
        }
        self.pending.drain(..start);
        lines
    }
}

/// Why one connection ended.
enum Ended {
    /// The body ended cleanly.
    Done,
    /// The connection failed after it was open (or could not open): retry.
    Dropped(String),
    /// Stdout is closed.
    StdoutClosed,
    /// Give up with this exit code.
    Fatal(u8),
}

/// The backoff before reconnection attempt `attempt` (1-based).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((250u64 << attempt.saturating_sub(1).min(5)).min(5_000))
}

/// Runs the command.
pub async fn run(args: ConsumeArgs) -> ExitCode {
    if let Some(dir) = &args.data_dir {
        return run_local(&args, dir).await;
    }
    let base = args.server.trim_end_matches('/').to_string();
    let url = format!("{base}/v1/egress/{}", args.table);
    let http = reqwest::Client::new();
    let mut position = Position::new(args.start);
    let mut attempt = 0u32;
    let mut connected_once = false;
    loop {
        let before = position;
        let opened = std::time::Instant::now();
        let (ended, answered) = connect_once(
            &http,
            &url,
            &base,
            &args,
            &mut position,
            &mut connected_once,
        )
        .await;
        // A connection that brought something new, or stayed up a while, was a success:
        // the attempts count again from zero. One that is answered and ends at once is not,
        // so a server that keeps doing that is not retried forever.
        if answered && (position != before || opened.elapsed() >= HEALTHY_CONNECTION) {
            attempt = 0;
        }
        match ended {
            Ended::Done if !args.follow => return ExitCode::SUCCESS,
            Ended::StdoutClosed => return ExitCode::SUCCESS,
            Ended::Fatal(code) => return ExitCode::from(code),
            Ended::Done | Ended::Dropped(_) => {
                let why = match &ended {
                    Ended::Dropped(why) => why.clone(),
                    _ => "the server ended the stream".to_string(),
                };
                if !connected_once {
                    eprintln!(
                        "error: cannot reach siphon at {base}: {why} (is `siphon run` running?)"
                    );
                    return ExitCode::from(EXIT_RUNTIME);
                }
                attempt += 1;
                if attempt > MAX_ATTEMPTS {
                    eprintln!(
                        "error: the connection to {base} was lost ({why}); gave up after {MAX_ATTEMPTS} attempts. Resume with --from {}",
                        position.resume_from()
                    );
                    return ExitCode::from(EXIT_RUNTIME);
                }
                let wait = backoff(attempt);
                eprintln!(
                    "siphon consume: connection lost ({why}); reconnecting from {} in {:.1}s (attempt {attempt} of {MAX_ATTEMPTS})",
                    position.resume_from(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One request: prints what it brings. Returns why it ended and whether it was answered
/// with 200.
async fn connect_once(
    http: &reqwest::Client,
    url: &str,
    base: &str,
    args: &ConsumeArgs,
    position: &mut Position,
    connected_once: &mut bool,
) -> (Ended, bool) {
    let query = [
        ("format", "json".to_string()),
        ("from", position.resume_from()),
        ("follow", args.follow.to_string()),
    ];
    let request = client::authorized(http.get(url).query(&query), args.api_key.as_deref());
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => return (Ended::Dropped(e.to_string()), false),
    };
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        if client::is_unauthorized(status) {
            eprintln!(
                "error: {}",
                client::unauthorized_message(base, args.api_key.as_deref(), &text)
            );
            return (Ended::Fatal(client::EXIT_UNAUTHORIZED), false);
        }
        if status.is_server_error() && *connected_once {
            return (
                Ended::Dropped(format!(
                    "HTTP {status}: {}",
                    client::describe_error(status, &text)
                )),
                false,
            );
        }
        eprintln!(
            "error: {url} answered {status}: {}",
            client::describe_error(status, &text)
        );
        let code = if status.is_client_error() {
            EXIT_INVALID
        } else {
            EXIT_RUNTIME
        };
        return (Ended::Fatal(code), false);
    }
    *connected_once = true;
    if let Some(after) = response
        .headers()
        .get("x-siphon-start-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
    {
        position.started_after(after);
    }
    let mut lines = LineBuffer::default();
    let mut stdout = std::io::stdout();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return (Ended::Done, true),
            Err(e) => return (Ended::Dropped(e.to_string()), true),
        };
        if let Some(ended) = print_lines(lines.push(&chunk), position, &mut stdout) {
            return (ended, true);
        }
    }
}

/// Prints the changes of `lines` (egress lines without their line ends) that `position`
/// has not printed yet; `Some` when the command must end (a bad line, a closed stdout).
fn print_lines(
    lines: Vec<String>,
    position: &mut Position,
    stdout: &mut std::io::Stdout,
) -> Option<Ended> {
    let mut out = String::new();
    let mut failure = None;
    for line in lines {
        match parse_line(&line) {
            Ok(Line::Keepalive) => {}
            Ok(Line::Data {
                sequence_number,
                changes,
                dropped,
            }) => {
                if let Some(k) = dropped.filter(|k| *k > 0) {
                    eprintln!(
                        "warning: the server dropped {k} change batch(es) for this reader before sequence {sequence_number} (it read too slowly)"
                    );
                }
                if position.accept(sequence_number) {
                    out.push_str(&render(sequence_number, &changes));
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if !out.is_empty() {
        let written = stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush());
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Some(Ended::StdoutClosed);
            }
            eprintln!("error: writing to stdout: {e}");
            return Some(Ended::Fatal(EXIT_RUNTIME));
        }
    }
    failure.map(|e| {
        eprintln!("error: {e}");
        Ended::Fatal(EXIT_RUNTIME)
    })
}

/// `siphon consume --data-dir`: reads the table's log straight from a data directory no
/// server holds, up to what is stored (nothing else can write to it meanwhile), through
/// the same line format as the HTTP stream.
async fn run_local(args: &ConsumeArgs, data_dir: &std::path::Path) -> ExitCode {
    let engine = match crate::open_data_dir(data_dir).await {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let start = match args.start {
        Start::Beginning => siphon_engine::egress::Start::Beginning,
        Start::Now => siphon_engine::egress::Start::Now,
        Start::After(n) => siphon_engine::egress::Start::After(n),
    };
    let options = siphon_engine::egress::ReaderOptions {
        start,
        backpressure: true,
        follow: false,
        idle: None,
    };
    let mut reader = match engine.egress(&args.table, options).await {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("error: {}: {e}", data_dir.display());
            return ExitCode::from(match e {
                siphon_engine::egress::EgressError::UnknownTable(_) => EXIT_INVALID,
                _ => EXIT_RUNTIME,
            });
        }
    };
    let mut position = Position::new(args.start);
    let mut stdout = std::io::stdout();
    loop {
        let change = match reader.next().await {
            Ok(Some(siphon_engine::egress::Event::Chunk(change))) => change,
            Ok(Some(siphon_engine::egress::Event::Idle)) => continue,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!(
                    "error: reading {} from {}: {e}",
                    args.table,
                    data_dir.display()
                );
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        let line = match siphon_server::egress::json_line(&change) {
            Ok(line) => String::from_utf8_lossy(&line).trim_end().to_string(),
            Err(e) => {
                eprintln!("error: encoding sequence {}: {e}", change.sequence);
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        match print_lines(vec![line], &mut position, &mut stdout) {
            None => {}
            Some(Ended::StdoutClosed) => return ExitCode::SUCCESS,
            Some(Ended::Fatal(code)) => return ExitCode::from(code),
            Some(_) => return ExitCode::from(EXIT_RUNTIME),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_render() {
        assert_eq!(parse_line("{}"), Ok(Line::Keepalive));
        let line = r#"{"sequence_number": 7, "json_data": [{"insert": {"id": 1, "name": "a"}}, {"delete": {"id": 2}}], "dropped": 3}"#;
        let Ok(Line::Data {
            sequence_number,
            changes,
            dropped,
        }) = parse_line(line)
        else {
            panic!("not data")
        };
        assert_eq!((sequence_number, dropped), (7, Some(3)));
        assert_eq!(
            render(sequence_number, &changes),
            "{\"sequence_number\":7,\"insert\":{\"id\": 1, \"name\": \"a\"}}\n{\"sequence_number\":7,\"delete\":{\"id\": 2}}\n"
        );
        assert!(parse_line("not json").is_err());
        assert!(parse_line(r#"{"sequence_number": 1, "json_data": [{"upsert": {}}]}"#).is_err());
    }

    #[test]
    fn lines_are_split_across_chunks_on_crlf() {
        let mut b = LineBuffer::default();
        assert_eq!(b.push(b"{}\r\n{\"seq"), vec!["{}".to_string()]);
        assert_eq!(b.push(b"uence_number\":1}\r"), Vec::<String>::new());
        assert_eq!(
            b.push(b"\n\r\n{}\n"),
            vec!["{\"sequence_number\":1}".to_string(), "{}".to_string()]
        );
    }

    #[test]
    fn reconnects_resume_after_the_last_sequence_printed() {
        let mut p = Position::new(Start::Beginning);
        assert_eq!(p.resume_from(), "beginning");
        assert!(p.accept(1));
        assert!(p.accept(2));
        assert_eq!(p.resume_from(), "2");
        // A replay after reconnecting is skipped.
        assert!(!p.accept(2));
        assert!(!p.accept(1));
        assert!(p.accept(5));
        assert_eq!(p.resume_from(), "5");

        let mut p = Position::new(Start::Now);
        assert_eq!(p.resume_from(), "now");
        assert!(p.accept(9));
        assert_eq!(p.resume_from(), "9");

        // A `now` stream that started after 7 and dropped before any change resumes
        // after 7, not at the new `now`; a later stream's start does not move it back.
        let mut p = Position::new(Start::Now);
        p.started_after(7);
        assert_eq!(p.resume_from(), "7");
        assert!(p.accept(8));
        p.started_after(3);
        assert_eq!(p.resume_from(), "8");

        let mut p = Position::new(Start::After(4));
        assert_eq!(p.resume_from(), "4");
        assert!(!p.accept(4));
        assert!(p.accept(6));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(20), Duration::from_millis(5_000));
    }
}
