//! `siphon push TABLE [FILE]`: sends NDJSON or CSV records from a file or stdin to
//! `POST /v1/tables/{table}/ingress`, in batches of whole records, one request at a time and
//! in input order.
//!
//! The input is streamed: a reader thread splits it into batches ([`Splitter`]) and hands
//! them over a channel of two, so at most a few batches are in memory whatever the size of
//! the input. NDJSON is split by lines (blank lines skipped); CSV by records with the `csv`
//! crate, whose byte positions slice the raw input, so the bytes sent are the user's (a
//! quoted field may hold newlines). A CSV's first batch goes with `csv_header=auto`; when
//! the server took its first line as a header, that line is sent again in front of every
//! later batch with `csv_header=true`, else later batches go with `csv_header=false`.
//!
//! A batch the server refuses stops the push: what earlier batches stored is durable and
//! is reported. Exit codes: 0; 1 runtime failure; 2 a 400 (bad input), a 401, or an input
//! that cannot be opened.

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde::Deserialize;

use crate::{EXIT_INVALID, EXIT_RUNTIME, client};

/// The input's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// Newline-delimited JSON: one record per line.
    Json,
    /// CSV, with or without a header line.
    Csv,
}

/// What a record means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UpdateFormat {
    /// Each record is a row to insert.
    Raw,
    /// Each record is `{"insert": {...}}` or `{"delete": {...}}`.
    #[value(name = "insert_delete")]
    InsertDelete,
}

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The table.
    pub table: String,
    /// The input; `-` or none: stdin.
    pub file: Option<PathBuf>,
    /// Input format; by default from the file's extension (.csv: csv, else json).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// raw: each record is a row to insert; insert_delete: each record is
    /// {"insert": {...}} or {"delete": {...}}.
    #[arg(long, value_enum, default_value_t = UpdateFormat::Raw)]
    pub update_format: UpdateFormat,
    /// Records per request.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Push even while the server's inputs are paused.
    #[arg(long)]
    pub force: bool,
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "SIPHON_SERVER")]
    pub server: String,
    /// API key sent as `Authorization: Bearer <key>` (when the server requires one).
    #[arg(long, env = "SIPHON_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Store straight into this data directory instead of going through a server; no
    /// other process may hold it (a running `siphon run` does).
    #[arg(long, conflicts_with_all = ["server", "api_key"])]
    pub data_dir: Option<PathBuf>,
}

/// Where batches go: a server's ingress endpoint, or an engine on a data directory.
enum Target {
    Server {
        http: reqwest::Client,
        url: String,
        api_key: Option<String>,
    },
    Local(std::sync::Arc<siphon_engine::Engine>),
}

/// Why a batch got no answer; either way it may or may not have been stored.
enum SendFailure {
    /// The request could not be sent.
    Sending(String),
    /// The answer could not be read.
    Reading(String),
}

/// One batch and the ingress parameters it goes with.
struct Request<'a> {
    table: &'a str,
    body: Vec<u8>,
    format: InputFormat,
    update_format: UpdateFormat,
    force: bool,
    csv_header: Option<&'static str>,
}

impl Target {
    /// Sends one batch: the status and the answer's text, the ingress endpoint's JSON
    /// (an engine on a data directory answers exactly as the endpoint would).
    async fn send(
        &self,
        request: Request<'_>,
    ) -> Result<(reqwest::StatusCode, String), SendFailure> {
        match self {
            Target::Server { http, url, api_key } => {
                let mut query: Vec<(&str, &str)> = vec![
                    (
                        "format",
                        match request.format {
                            InputFormat::Json => "json",
                            InputFormat::Csv => "csv",
                        },
                    ),
                    (
                        "update_format",
                        match request.update_format {
                            UpdateFormat::Raw => "raw",
                            UpdateFormat::InsertDelete => "insert_delete",
                        },
                    ),
                    ("force", if request.force { "true" } else { "false" }),
                ];
                if let Some(h) = request.csv_header {
                    query.push(("csv_header", h));
                }
                let content_type = match request.format {
                    InputFormat::Json => "application/x-ndjson",
                    InputFormat::Csv => "text/csv",
                };
                let http_request = http
                    .post(url)
                    .query(&query)
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(request.body);
                let response = client::authorized(http_request, api_key.as_deref())
                    .send()
                    .await
                    .map_err(|e| SendFailure::Sending(e.to_string()))?;
                let status = response.status();
                let text = response
                    .text()
                    .await
                    .map_err(|e| SendFailure::Reading(e.to_string()))?;
                Ok((status, text))
            }
            Target::Local(engine) => {
                use siphon_engine::ingress::{self, CsvHeader, PushFormat};
                let format = match (request.format, request.csv_header) {
                    (InputFormat::Json, _) => PushFormat::Json { array: false },
                    (InputFormat::Csv, Some("true")) => PushFormat::Csv {
                        header: CsvHeader::Present,
                    },
                    (InputFormat::Csv, Some("false")) => PushFormat::Csv {
                        header: CsvHeader::Absent,
                    },
                    (InputFormat::Csv, _) => PushFormat::Csv {
                        header: CsvHeader::Auto,
                    },
                };
                let update_format = match request.update_format {
                    UpdateFormat::Raw => ingress::UpdateFormat::Raw,
                    UpdateFormat::InsertDelete => ingress::UpdateFormat::InsertDelete,
                };
                let result = engine
                    .push(
                        request.table,
                        request.body.into(),
                        format,
                        update_format,
                        request.force,
                    )
                    .await;
                Ok(match result {
                    Ok(pushed) => (
                        reqwest::StatusCode::OK,
                        siphon_server::ingress::pushed_body(request.table, &pushed).to_string(),
                    ),
                    Err(e) => {
                        let e = siphon_server::ingress::push_error(e);
                        (e.status(), e.body().to_string())
                    }
                })
            }
        }
    }
}

/// One record of a batch: where it is in the input and in the request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAt {
    /// 1-based line of the input where the record starts.
    pub input_line: u64,
    /// 1-based line of the batch body where the record starts (before any header line the
    /// sender puts in front).
    pub body_line: u64,
}

/// Whole records, ready to send.
#[derive(Debug, Default)]
pub struct Batch {
    pub body: Vec<u8>,
    pub records: Vec<RecordAt>,
}

impl Batch {
    fn push(&mut self, raw: &[u8], input_line: u64) {
        let body_line = 1 + self.body.iter().filter(|&&b| b == b'\n').count() as u64;
        self.records.push(RecordAt {
            input_line,
            body_line,
        });
        self.body.extend_from_slice(raw);
        if !raw.ends_with(b"\n") {
            // Only the input's last record can lack its line end.
            self.body.push(b'\n');
        }
    }

    /// The raw bytes of the first record (a CSV's candidate header line).
    fn first_record(&self) -> &[u8] {
        let end = match self.records.get(1) {
            Some(second) => nth_line_start(&self.body, second.body_line),
            None => self.body.len(),
        };
        &self.body[..end]
    }
}

/// The byte offset where 1-based line `line` of `body` starts.
fn nth_line_start(body: &[u8], line: u64) -> usize {
    if line <= 1 {
        return 0;
    }
    body.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth((line - 2) as usize)
        .map(|(i, _)| i + 1)
        .unwrap_or(body.len())
}

/// Splits an input into batches of at most `batch_size` whole records.
pub struct Splitter {
    kind: SplitKind,
    batch_size: usize,
}

enum SplitKind {
    Ndjson {
        reader: Box<dyn BufRead>,
        line: u64,
    },
    Csv {
        reader: csv::Reader<Tee>,
        seen: Rc<RefCell<Vec<u8>>>,
        /// The input offset of `seen[0]`.
        base: Rc<Cell<u64>>,
        /// Line ends before `seen[0]`.
        newlines: u64,
        record: csv::ByteRecord,
    },
}

/// A reader that keeps what it read, so CSV records can be cut out of the raw input.
struct Tee {
    inner: Box<dyn Read>,
    seen: Rc<RefCell<Vec<u8>>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.borrow_mut().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Splitter {
    pub fn new(input: Box<dyn Read>, format: InputFormat, batch_size: usize) -> Splitter {
        let batch_size = batch_size.max(1);
        let kind = match format {
            InputFormat::Json => SplitKind::Ndjson {
                reader: Box::new(BufReader::with_capacity(256 * 1024, input)),
                line: 0,
            },
            InputFormat::Csv => {
                let seen = Rc::new(RefCell::new(Vec::new()));
                let tee = Tee {
                    inner: input,
                    seen: seen.clone(),
                };
                let reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .buffer_capacity(256 * 1024)
                    .from_reader(tee);
                SplitKind::Csv {
                    reader,
                    seen,
                    base: Rc::new(Cell::new(0)),
                    newlines: 0,
                    record: csv::ByteRecord::new(),
                }
            }
        };
        Splitter { kind, batch_size }
    }

    /// The next batch, or `None` at the end of the input.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, String> {
        let mut batch = Batch::default();
        match &mut self.kind {
            SplitKind::Ndjson { reader, line } => {
                let mut buf = Vec::new();
                while batch.records.len() < self.batch_size {
                    buf.clear();
                    let n = reader
                        .read_until(b'\n', &mut buf)
                        .map_err(|e| format!("reading the input after line {line}: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    *line += 1;
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    batch.push(&buf, *line);
                }
            }
            SplitKind::Csv {
                reader,
                seen,
                base,
                newlines,
                record,
            } => {
                while batch.records.len() < self.batch_size {
                    let more = reader
                        .read_byte_record(record)
                        .map_err(|e| format!("reading the CSV input: {e}"))?;
                    if !more {
                        break;
                    }
                    let start = record
                        .position()
                        .map(csv::Position::byte)
                        .unwrap_or(base.get());
                    let end = reader.position().byte();
                    let mut seen = seen.borrow_mut();
                    let offset = base.get();
                    let from = (start - offset) as usize;
                    let to = (end - offset) as usize;
                    // A record ended by CRLF ends at its CR: the LF (and any blank line)
                    // comes at the start of the next one. Records never start with a line
                    // end, so those are cut off here; `Batch::push` ends a record that
                    // lacks its LF with one, which puts a CRLF back as it was.
                    let skip = seen[from..to]
                        .iter()
                        .take_while(|b| matches!(b, b'\r' | b'\n'))
                        .count();
                    let raw = &seen[from + skip..to];
                    let line = 1 + *newlines + count_lf(&seen[..from + skip]);
                    *newlines += count_lf(&seen[..to]);
                    batch.push(raw, line);
                    // Forget what is behind this record.
                    seen.drain(..(end - offset) as usize);
                    base.set(end);
                }
            }
        }
        Ok((!batch.records.is_empty()).then_some(batch))
    }
}

fn count_lf(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The format of `file` when not given: `.csv` is CSV, anything else (stdin too) NDJSON.
pub fn format_for(file: Option<&std::path::Path>) -> InputFormat {
    match file.and_then(|f| f.extension()).and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("csv") => InputFormat::Csv,
        _ => InputFormat::Json,
    }
}

/// The answer to a successful ingress request.
#[derive(Debug, Deserialize)]
struct IngressAnswer {
    records: Option<u64>,
    csv_header: Option<bool>,
}

/// What a CSV's header turned out to be, once the first batch is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Header {
    /// JSON, or a CSV's first batch not sent yet.
    Unknown,
    /// The server took the first line as a header: these bytes go in front of every later
    /// batch.
    Line(Vec<u8>),
    /// No header.
    None,
}

/// The body and `csv_header` parameter of a batch, given what is known of the header.
fn csv_request(batch: &Batch, header: &Header) -> (Vec<u8>, &'static str) {
    match header {
        Header::Unknown => (batch.body.clone(), "auto"),
        Header::None => (batch.body.clone(), "false"),
        Header::Line(line) => {
            let mut body = Vec::with_capacity(line.len() + batch.body.len());
            body.extend_from_slice(line);
            body.extend_from_slice(&batch.body);
            (body, "true")
        }
    }
}

/// The record of `batch` the server's error detail points at, if it names one: `line` (a
/// line of the request body, 1-based) or `record` / `index` (0-based position in the
/// request). `header_lines` is how many header lines were put in front of the body.
fn record_named(
    batch: &Batch,
    detail: &serde_json::Value,
    header_lines: u64,
) -> Option<(usize, RecordAt)> {
    let number = |key: &str| detail.get(key).and_then(serde_json::Value::as_u64);
    if let Some(line) = number("line") {
        let line = line.checked_sub(header_lines)?;
        let i = batch.records.iter().rposition(|r| r.body_line <= line)?;
        return Some((i, batch.records[i]));
    }
    let i = number("record").or_else(|| number("index"))? as usize;
    batch.records.get(i).map(|r| (i, *r))
}

/// Runs the push.
pub async fn run(args: PushArgs) -> ExitCode {
    let format = args
        .format
        .unwrap_or_else(|| format_for(args.file.as_deref().filter(|f| f.as_os_str() != "-")));
    let (input, input_name): (Box<dyn Read + Send>, String) = match &args.file {
        Some(path) if path.as_os_str() != "-" => match std::fs::File::open(path) {
            Ok(f) => (Box::new(f), path.display().to_string()),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(EXIT_INVALID);
            }
        },
        _ => (Box::new(std::io::stdin()), "stdin".to_string()),
    };

    // The reader thread: split, hand over, at most two batches ahead.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Batch, String>>(2);
    let batch_size = args.batch_size.min(usize::MAX as u64) as usize;
    std::thread::spawn(move || {
        let mut splitter = Splitter::new(input, format, batch_size);
        loop {
            match splitter.next_batch() {
                Ok(Some(batch)) => {
                    if tx.blocking_send(Ok(batch)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });

    let base = match &args.data_dir {
        Some(dir) => dir.display().to_string(),
        None => args.server.trim_end_matches('/').to_string(),
    };
    let target = match &args.data_dir {
        Some(dir) => match crate::open_data_dir(dir).await {
            Ok(engine) => Target::Local(engine),
            Err(code) => return code,
        },
        None => Target::Server {
            http: reqwest::Client::new(),
            url: format!("{base}/v1/tables/{}/ingress", args.table),
            api_key: args.api_key.clone(),
        },
    };
    let progress = Progress::new();
    let mut header = Header::Unknown;
    let mut stored: u64 = 0;
    let mut requests: u64 = 0;
    let started = Instant::now();

    while let Some(next) = rx.recv().await {
        let batch = match next {
            Ok(batch) => batch,
            Err(e) => {
                progress.clear();
                eprintln!("error: {input_name}: {e}");
                report_stored(stored, &args.table, requests);
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        let (body, csv_header) = match format {
            InputFormat::Json => (batch.body.clone(), None),
            InputFormat::Csv => {
                let (body, h) = csv_request(&batch, &header);
                (body, Some(h))
            }
        };
        let header_lines = match &header {
            Header::Line(line) => line.iter().filter(|&&b| b == b'\n').count() as u64,
            _ => 0,
        };
        let first_line = batch.records.first().map(|r| r.input_line).unwrap_or(0);
        let last_line = batch.records.last().map(|r| r.input_line).unwrap_or(0);
        let sent = target
            .send(Request {
                table: &args.table,
                body,
                format,
                update_format: args.update_format,
                force: args.force,
                csv_header,
            })
            .await;
        let (status, text) = match sent {
            Ok(answer) => answer,
            Err(SendFailure::Sending(e)) => {
                progress.clear();
                eprintln!(
                    "error: sending the records of lines {first_line}-{last_line} of {input_name} to {base}: {e} (is `siphon run` running?); that batch may or may not have been stored"
                );
                report_stored(stored, &args.table, requests);
                return ExitCode::from(EXIT_RUNTIME);
            }
            Err(SendFailure::Reading(e)) => {
                progress.clear();
                eprintln!(
                    "error: reading the answer to the records of lines {first_line}-{last_line} of {input_name}: {e}; that batch may or may not have been stored"
                );
                report_stored(stored, &args.table, requests);
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        requests += 1;
        if !status.is_success() {
            progress.clear();
            if client::is_unauthorized(status) {
                eprintln!(
                    "error: {}",
                    client::unauthorized_message(&base, args.api_key.as_deref(), &text)
                );
                return ExitCode::from(client::EXIT_UNAUTHORIZED);
            }
            eprintln!(
                "error: {base} refused the records of lines {first_line}-{last_line} of {input_name} ({status}): {}",
                client::describe_error(status, &text)
            );
            if let Some((_, Some(detail))) = client::server_error(&text)
                && let Some((i, at)) = record_named(&batch, &detail, header_lines)
            {
                let raw = record_text(&batch, i);
                eprintln!(
                    "the record at line {} of {input_name}: {raw}",
                    at.input_line
                );
            }
            eprintln!("nothing of this batch was stored");
            report_stored(stored, &args.table, requests - 1);
            return ExitCode::from(
                if status == reqwest::StatusCode::BAD_REQUEST
                    || status == reqwest::StatusCode::NOT_FOUND
                {
                    EXIT_INVALID
                } else {
                    EXIT_RUNTIME
                },
            );
        }
        let answer: Option<IngressAnswer> = serde_json::from_str(&text).ok();
        let mut counted = batch.records.len() as u64;
        if format == InputFormat::Csv && header == Header::Unknown {
            if answer.as_ref().and_then(|a| a.csv_header) == Some(true) {
                header = Header::Line(batch.first_record().to_vec());
                counted -= 1;
            } else {
                header = Header::None;
            }
        }
        stored += answer.and_then(|a| a.records).unwrap_or(counted);
        progress.set(stored);
    }
    progress.clear();
    eprintln!(
        "pushed {stored} records to {} in {requests} requests ({:.1}s)",
        args.table,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// What was stored before a failure: durable, whatever happens next.
fn report_stored(stored: u64, table: &str, requests: u64) {
    if stored == 0 && requests == 0 {
        eprintln!("no record was stored in {table}");
    } else {
        eprintln!(
            "{stored} records of the {requests} earlier request(s) were stored in {table} and are durable: push only the records after them again"
        );
    }
}

/// A record's text for a message, shortened.
fn record_text(batch: &Batch, i: usize) -> String {
    let start = nth_line_start(&batch.body, batch.records[i].body_line);
    let end = batch
        .records
        .get(i + 1)
        .map(|r| nth_line_start(&batch.body, r.body_line))
        .unwrap_or(batch.body.len());
    let text = String::from_utf8_lossy(&batch.body[start..end]);
    let text = text.trim_end();
    if text.chars().count() > 200 {
        format!("{}...", text.chars().take(200).collect::<String>())
    } else {
        text.to_string()
    }
}

/// The terminal line: records sent and the rate; hidden when stderr is not a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(4),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {human_pos} records sent ({per_sec}) {elapsed}",
            )
            .expect("static template"),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress { bar: Some(bar) }
    }

    fn set(&self, records: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(records);
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &str, format: InputFormat, size: usize) -> Vec<Batch> {
        let mut s = Splitter::new(
            Box::new(std::io::Cursor::new(input.to_string())),
            format,
            size,
        );
        let mut out = Vec::new();
        while let Some(b) = s.next_batch().unwrap() {
            out.push(b);
        }
        out
    }

    fn bodies(batches: &[Batch]) -> Vec<String> {
        batches
            .iter()
            .map(|b| String::from_utf8(b.body.clone()).unwrap())
            .collect()
    }

    #[test]
    fn ndjson_splits_by_lines_and_skips_blank_ones() {
        let input = "{\"a\":1}\n\n  \n{\"a\":2}\r\n{\"a\":3}\n{\"a\":4}";
        let batches = split(input, InputFormat::Json, 2);
        assert_eq!(
            bodies(&batches),
            vec!["{\"a\":1}\n{\"a\":2}\r\n", "{\"a\":3}\n{\"a\":4}\n"]
        );
        let lines: Vec<u64> = batches
            .iter()
            .flat_map(|b| b.records.iter().map(|r| r.input_line))
            .collect();
        assert_eq!(lines, vec![1, 4, 5, 6]);
        assert_eq!(batches[1].records[1].body_line, 2);
        assert!(split("\n\n", InputFormat::Json, 5).is_empty());
    }

    #[test]
    fn csv_splits_on_records_and_keeps_quoted_newlines_byte_for_byte() {
        let input = "id,name\n1,\"two\nlines\"\n2,\"a \"\"q\"\", b\"\r\n3,plain\n";
        let batches = split(input, InputFormat::Csv, 2);
        assert_eq!(
            bodies(&batches),
            vec![
                "id,name\n1,\"two\nlines\"\n",
                "2,\"a \"\"q\"\", b\"\r\n3,plain\n"
            ]
        );
        assert_eq!(bodies(&batches).concat(), input);
        let at: Vec<(u64, u64)> = batches
            .iter()
            .flat_map(|b| b.records.iter().map(|r| (r.input_line, r.body_line)))
            .collect();
        assert_eq!(at, vec![(1, 1), (2, 2), (4, 1), (5, 2)]);
        assert_eq!(batches[0].first_record(), b"id,name\n");
        // Blank lines between records are left out; line numbers count them.
        let batches = split("a,b\r\n\r\n\nc,d\ne,f", InputFormat::Csv, 10);
        assert_eq!(bodies(&batches), vec!["a,b\r\nc,d\ne,f\n"]);
        let lines: Vec<u64> = batches[0].records.iter().map(|r| r.input_line).collect();
        assert_eq!(lines, vec![1, 4, 5]);
        // One record per batch, a record far larger than any buffer.
        let big = format!("x,\"{}\"\ny,1", "z\n".repeat(300_000));
        let batches = split(&big, InputFormat::Csv, 1);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].body.len(), big.len() - 3);
        assert_eq!(bodies(&batches[1..]), vec!["y,1\n"]);
    }

    #[test]
    fn csv_header_goes_in_front_of_later_batches_only_when_the_server_took_it() {
        let batches = split("id,name\n1,a\n2,b\n3,c\n", InputFormat::Csv, 2);
        assert_eq!(csv_request(&batches[0], &Header::Unknown).1, "auto");
        let header = Header::Line(batches[0].first_record().to_vec());
        let (body, flag) = csv_request(&batches[1], &header);
        assert_eq!(
            (String::from_utf8(body).unwrap().as_str(), flag),
            ("id,name\n2,b\n3,c\n", "true")
        );
        let (body, flag) = csv_request(&batches[1], &Header::None);
        assert_eq!(
            (String::from_utf8(body).unwrap().as_str(), flag),
            ("2,b\n3,c\n", "false")
        );
    }

    #[test]
    fn a_refused_record_is_found_by_body_line_or_index() {
        let batches = split("id,n\n1,\"a\nb\"\n2,c\n", InputFormat::Csv, 10);
        let b = &batches[0];
        let detail = serde_json::json!({"line": 4});
        assert_eq!(record_named(b, &detail, 0).map(|(i, _)| i), Some(2));
        assert_eq!(record_text(b, 2), "2,c");
        assert_eq!(
            record_named(b, &serde_json::json!({"line": 3}), 0).map(|(i, _)| i),
            Some(1)
        );
        // With a header line in front, body line 2 is the batch's first record.
        assert_eq!(
            record_named(b, &serde_json::json!({"line": 2}), 1).map(|(i, _)| i),
            Some(0)
        );
        assert_eq!(
            record_named(b, &serde_json::json!({"record": 1}), 0).map(|(_, r)| r.input_line),
            Some(2)
        );
        assert_eq!(record_named(b, &serde_json::json!({"other": 1}), 0), None);
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(format_for(Some("a/b.CSV".as_ref())), InputFormat::Csv);
        assert_eq!(format_for(Some("b.ndjson".as_ref())), InputFormat::Json);
        assert_eq!(format_for(None), InputFormat::Json);
    }
}
