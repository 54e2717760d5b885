//! The `nats_jetstream` sink: one connection, one stream, one subject.
//!
//! Each change of the input becomes one message on the sink's subject (several when it
//! is larger than the server's `max_payload`), with headers
//!
//! * `Nats-Msg-Id: <input>:<sequence_number>` (`<input>:<sequence_number>:<part>/<parts>`
//!   for a change split into parts): JetStream drops a message whose id it saw within the
//!   stream's duplicate window, so re-publishing after a crash stores nothing twice;
//! * `Siphon-Table`, `Siphon-Sequence` (and `Siphon-Part` for a split change),
//!
//! and the body `/v1/egress` would send for it, without the line break:
//! `{"sequence_number": N, "json_data": [{"insert": {...}}, {"delete": {...}}]}`
//! (`text_data` with `format = 'csv'`; a part adds `"part"` and `"parts"`).
//!
//! Publishes are pipelined: up to `max_in_flight` await their acknowledgement while the
//! next changes are sent. Acknowledgements are taken in publish order by a second task,
//! which advances the position only over changes whose every part is acknowledged and
//! saves it in the store at most every [`SAVE_EVERY`] (and whenever it has caught up).
//!
//! Where a (re)started sink resumes: after the larger of its saved position and what the
//! stream's last message on the subject says was published (read from that message's
//! `Nats-Msg-Id`, when it is this input's). The second covers a crash between an
//! acknowledgement and the save, and an outage longer than the duplicate window. It
//! assumes the subject is this sink's own; another input's messages on it are ignored.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use bytes::Bytes;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};

use super::config::{NatsAuth, NatsSinkConfig, SinkFormat, StartFrom, subject_matches};
use super::{SinkError, SinkTask};
use crate::egress::{Event, ReaderOptions, Start};
use crate::observe::SourceId;
use crate::status::RunState;
use crate::store::SinkPosition;

/// The acknowledged position is saved at most this often while changes keep coming.
const SAVE_EVERY: Duration = Duration::from_millis(200);
/// Room left in a message for its headers.
const HEADER_ROOM: usize = 1024;
/// How long connecting may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One message awaiting its acknowledgement.
struct Pending {
    sequence: u64,
    /// Whether it is the last part of its change.
    completes: bool,
    /// Change rows it holds.
    rows: u64,
    ack: PublishAckFuture,
}

/// Publishes until `shutdown` fires (`Ok`) or something fails (`Err`).
pub(super) async fn publish(
    task: &SinkTask,
    id: &SourceId,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), SinkError> {
    let config = &task.config;
    let client = tokio::select! {
        client = connect(config, task.handle.clone()) => client?,
        _ = shutdown.changed() => return Ok(()),
    };
    let context = jetstream::ContextBuilder::new()
        .timeout(config.publish_timeout)
        .max_ack_inflight(config.max_in_flight)
        .build(client.clone());
    let stream = tokio::select! {
        stream = ensure_stream(&context, config) => stream?,
        _ = shutdown.changed() => return Ok(()),
    };
    let (after, partial, how) = resume_point(task, &stream).await?;
    task.handle.position.store(after, Ordering::Release);
    task.engine.observer.sink_started(id, after, &how);
    {
        let mut status = task.handle.status.lock().expect("sink status lock");
        status.state = RunState::Running;
        status.next_poll_at = None;
    }

    let limit = client.server_info().max_payload.saturating_sub(HEADER_ROOM);
    let mut reader = task
        .engine
        .egress(
            &task.def.from,
            ReaderOptions {
                start: Start::After(after),
                backpressure: true,
                follow: true,
                idle: Some(Duration::from_secs(1)),
            },
        )
        .await?;
    let (pending_tx, pending_rx) = mpsc::channel::<Pending>(config.max_in_flight);
    let (failed_tx, mut failed_rx) = oneshot::channel::<SinkError>();
    let acker = tokio::spawn(take_acks(
        TakeAcks {
            task_name: task.def.name.clone(),
            target: config.target(&task.def.from),
            engine: task.engine.clone(),
            handle: task.handle.clone(),
            position: after,
        },
        pending_rx,
        failed_tx,
    ));
    let mut partial = partial;
    let outcome: Result<(), SinkError> = loop {
        let change = tokio::select! {
            biased;
            _ = shutdown.changed() => break Ok(()),
            failed = &mut failed_rx => break Err(failed.unwrap_or_else(|_| SinkError::Publish {
                sequence: 0,
                message: "the acknowledgement task stopped".into(),
            })),
            change = reader.next() => change,
        };
        let change = match change {
            Ok(Some(Event::Chunk(change))) => change,
            Ok(Some(Event::Idle)) => continue,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.into()),
        };
        let messages = match encode(
            &task.def.from,
            config.format,
            change.sequence,
            &change.batch,
            limit,
        ) {
            Ok(m) => m,
            Err(e) => break Err(e),
        };
        // A change cut short by a crash: its parts the stream holds are not sent again.
        let skip = match partial.take() {
            Some((sequence, parts, done))
                if sequence == change.sequence && parts == messages.len() =>
            {
                done
            }
            _ => 0,
        };
        let count = messages.len();
        let send = async {
            for (i, message) in messages.into_iter().enumerate().skip(skip) {
                let ack = context
                    .send_publish(config.subject.clone(), message.publish)
                    .await
                    .map_err(|e| SinkError::Publish {
                        sequence: change.sequence,
                        message: siphon_connect::error_chain(&e),
                    })?;
                let pending = Pending {
                    sequence: change.sequence,
                    completes: i + 1 == count,
                    rows: message.rows,
                    ack,
                };
                if pending_tx.send(pending).await.is_err() {
                    return Err(SinkError::Publish {
                        sequence: change.sequence,
                        message: "the acknowledgement task stopped".into(),
                    });
                }
            }
            Ok(())
        };
        tokio::select! {
            biased;
            _ = shutdown.changed() => break Ok(()),
            sent = send => if let Err(e) = sent { break Err(e) },
        }
    };
    drop(pending_tx);
    // The acknowledgements of what was sent are still taken (within the publish timeout),
    // so a clean shutdown saves the position of everything the stream holds.
    let _ = acker.await;
    if let Ok(error) = failed_rx.try_recv()
        && outcome.is_ok()
        && !*shutdown.borrow()
    {
        return Err(error);
    }
    outcome
}

/// What the status says while the client has lost its server.
const DISCONNECTED: &str = "disconnected from the NATS server; reconnecting";

/// Connects with the sink's credentials. While the connection is down the status says so
/// (the client reconnects on its own; publishes meanwhile fail at their timeout).
async fn connect(
    config: &NatsSinkConfig,
    handle: std::sync::Arc<super::SinkHandle>,
) -> Result<async_nats::Client, SinkError> {
    let servers = config.servers.join(", ");
    let failed = |message: String| SinkError::Connect {
        servers: servers.clone(),
        message,
    };
    let mut options = async_nats::ConnectOptions::new()
        .name("siphon sink")
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(config.publish_timeout))
        .event_callback(move |event| {
            let handle = handle.clone();
            async move {
                let mut status = handle.status.lock().expect("sink status lock");
                match event {
                    async_nats::Event::Disconnected => {
                        status.state = RunState::Backoff;
                        status.last_error = Some(DISCONNECTED.to_string());
                        status.last_error_at = Some(Utc::now());
                    }
                    async_nats::Event::Connected
                        if status.last_error.as_deref() == Some(DISCONNECTED) =>
                    {
                        status.state = RunState::Running;
                    }
                    _ => {}
                }
            }
        });
    options = match &config.auth {
        NatsAuth::None => options,
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Token(token) => options.token(token.clone()),
        NatsAuth::NkeySeed(seed) => options.nkey(seed.clone()),
        NatsAuth::CredentialsFile(path) => options
            .credentials_file(path)
            .await
            .map_err(|e| failed(format!("reading credentials_file {path}: {e}")))?,
    };
    if let Some(ca) = &config.tls_ca_file {
        options = options.add_root_certificates(ca.into());
    }
    let addrs: Vec<async_nats::ServerAddr> = config
        .servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e: std::io::Error| failed(e.to_string()))?;
    tokio::time::timeout(CONNECT_TIMEOUT * 2, options.connect(addrs))
        .await
        .map_err(|_| {
            failed(format!(
                "no answer within {} s",
                CONNECT_TIMEOUT.as_secs() * 2
            ))
        })?
        .map_err(|e| failed(siphon_connect::error_chain(&e)))
}

/// The stream the sink publishes into: the named one (created when missing), or the one
/// that captures the subject.
async fn ensure_stream(
    context: &jetstream::Context,
    config: &NatsSinkConfig,
) -> Result<jetstream::stream::Stream, SinkError> {
    let subject = &config.subject;
    let Some(name) = &config.stream else {
        let name = context
            .stream_by_subject(subject.clone())
            .await
            .map_err(|e| {
                SinkError::Stream(format!(
                    "no JetStream stream captures subject `{subject}` ({}): create one, or set \
                 `stream` on the sink to have siphon create it",
                    siphon_connect::error_chain(&e)
                ))
            })?;
        return context.get_stream(&name).await.map_err(|e| {
            SinkError::Stream(format!(
                "reading stream {name}: {}",
                siphon_connect::error_chain(&e)
            ))
        });
    };
    match context.get_stream(name).await {
        Ok(stream) => {
            let info = stream.cached_info();
            if !info
                .config
                .subjects
                .iter()
                .any(|p| subject_matches(p, subject))
            {
                return Err(SinkError::Stream(format!(
                    "stream {name} does not capture subject `{subject}` (its subjects: {}): \
                     add the subject to the stream, or name another stream",
                    info.config.subjects.join(", ")
                )));
            }
            Ok(stream)
        }
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref js)
                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            context
                .create_stream(jetstream::stream::Config {
                    name: name.clone(),
                    subjects: vec![subject.clone()],
                    duplicate_window: config.duplicate_window,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    SinkError::Stream(format!(
                        "creating stream {name} for subject `{subject}`: {}",
                        siphon_connect::error_chain(&e)
                    ))
                })
        }
        Err(e) => Err(SinkError::Stream(format!(
            "reading stream {name}: {}",
            siphon_connect::error_chain(&e)
        ))),
    }
}

/// Where publishing resumes: after which sequence number, a change of which the stream
/// holds only the first parts `(sequence, parts, parts held)`, and a note on why.
async fn resume_point(
    task: &SinkTask,
    stream: &jetstream::stream::Stream,
) -> Result<(u64, Option<(u64, usize, usize)>, String), SinkError> {
    let store = task.engine.store.clone();
    let name = task.def.name.clone();
    let saved = tokio::task::spawn_blocking(move || store.sink_position(&name))
        .await
        .map_err(|e| SinkError::Stream(format!("reading the sink position: {e}")))??;
    let target = task.config.target(&task.def.from);
    let (mut after, mut how) = match saved.filter(|p| p.target == target) {
        Some(p) => (p.sequence, "its saved position".to_string()),
        None => match task.config.start_from {
            StartFrom::Beginning => (0, "a new sink starts at the beginning".to_string()),
            StartFrom::Now => {
                let head = task
                    .engine
                    .table(&task.def.from)
                    .map(|t| *t.watch_sequence().borrow())
                    .unwrap_or(0);
                (head, "a new sink with start_from = 'now'".to_string())
            }
        },
    };
    let mut partial = None;
    let last = match stream
        .get_last_raw_message_by_subject(&task.config.subject)
        .await
    {
        Ok(message) => Some(message),
        Err(e)
            if matches!(
                e.kind(),
                jetstream::stream::LastRawMessageErrorKind::NoMessageFound
            ) =>
        {
            None
        }
        Err(e) => {
            return Err(SinkError::Stream(format!(
                "reading the last message on `{}`: {}",
                task.config.subject,
                siphon_connect::error_chain(&e)
            )));
        }
    };
    if let Some(id) = last.as_ref().and_then(|m| message_id(&m.headers))
        && let Some((sequence, part)) = parse_message_id(&id, &task.def.from)
    {
        let (through, cut) = match part {
            Some((done, parts)) if done < parts => (sequence - 1, Some((sequence, parts, done))),
            _ => (sequence, None),
        };
        if through >= after {
            if through > after || cut.is_some() {
                how = format!("the stream's last message on the subject is {id}");
            }
            after = through;
            partial = cut;
        }
    }
    // The stream is the truth: a position behind it is brought up to it at once.
    let store = task.engine.store.clone();
    let name = task.def.name.clone();
    let position = SinkPosition {
        target,
        sequence: after,
    };
    tokio::task::spawn_blocking(move || store.set_sink_position(&name, &position))
        .await
        .map_err(|e| SinkError::Stream(format!("saving the sink position: {e}")))??;
    Ok((after, partial, how))
}

fn message_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(async_nats::header::NATS_MESSAGE_ID)
        .map(|v| v.as_str().to_string())
}

/// `<input>:<sequence>` → `(sequence, None)`; `<input>:<sequence>:<part>/<parts>` →
/// `(sequence, Some((part, parts)))`; `None` for another input's id.
fn parse_message_id(id: &str, input: &str) -> Option<(u64, Option<(usize, usize)>)> {
    let rest = id.strip_prefix(input)?.strip_prefix(':')?;
    match rest.split_once(':') {
        None => Some((rest.parse().ok().filter(|&s| s > 0)?, None)),
        Some((sequence, part)) => {
            let (part, parts) = part.split_once('/')?;
            let (part, parts): (usize, usize) = (part.parse().ok()?, parts.parse().ok()?);
            let sequence: u64 = sequence.parse().ok().filter(|&s| s > 0)?;
            (part >= 1 && part <= parts).then_some((sequence, Some((part, parts))))
        }
    }
}

/// One encoded message of a change.
struct Encoded {
    publish: PublishMessage,
    rows: u64,
}

/// The messages of one change: one, or as many parts as needed to fit `limit` bytes.
fn encode(
    input: &str,
    format: SinkFormat,
    sequence: u64,
    batch: &RecordBatch,
    limit: usize,
) -> Result<Vec<Encoded>, SinkError> {
    let rows = |batch: &RecordBatch| -> Result<Vec<u8>, SinkError> {
        let encoded = match format {
            SinkFormat::Json => crate::encode::change_json(batch),
            SinkFormat::Csv => crate::encode::change_csv(batch),
        };
        encoded.map_err(|e| SinkError::Publish {
            sequence,
            message: format!("encoding the change: {e}"),
        })
    };
    let whole = rows(batch)?;
    let body = |data: &[u8], part: Option<(usize, usize)>| {
        let mut out = Vec::with_capacity(data.len() + 64);
        out.extend_from_slice(format!("{{\"sequence_number\":{sequence}").as_bytes());
        if let Some((part, parts)) = part {
            out.extend_from_slice(format!(",\"part\":{part},\"parts\":{parts}").as_bytes());
        }
        out.extend_from_slice(format!(",\"{}\":", format.field()).as_bytes());
        out.extend_from_slice(data);
        out.push(b'}');
        out
    };
    let message = |data: &[u8], part: Option<(usize, usize)>, rows: usize| {
        let id = match part {
            None => format!("{input}:{sequence}"),
            Some((part, parts)) => format!("{input}:{sequence}:{part}/{parts}"),
        };
        let mut publish = PublishMessage::build()
            .payload(Bytes::from(body(data, part)))
            .message_id(id)
            .header("Siphon-Table", input)
            .header("Siphon-Sequence", sequence.to_string().as_str());
        if let Some((part, parts)) = part {
            publish = publish.header("Siphon-Part", format!("{part}/{parts}").as_str());
        }
        Encoded {
            publish,
            rows: rows as u64,
        }
    };
    if whole.len() + 96 <= limit {
        return Ok(vec![message(&whole, None, batch.num_rows())]);
    }
    // Split into equal runs of rows, more of them until every part fits.
    let total = batch.num_rows();
    let mut parts = whole.len().div_ceil(limit.max(1)).max(2);
    loop {
        let per = total.div_ceil(parts);
        let mut encoded = Vec::with_capacity(parts);
        let mut fits = true;
        for start in (0..total).step_by(per.max(1)) {
            let slice = batch.slice(start, per.min(total - start));
            let data = rows(&slice)?;
            if data.len() + 128 > limit {
                if slice.num_rows() == 1 {
                    return Err(SinkError::RowTooLarge {
                        sequence,
                        bytes: data.len(),
                        limit,
                    });
                }
                fits = false;
                break;
            }
            encoded.push((data, slice.num_rows()));
        }
        if fits {
            let count = encoded.len();
            return Ok(encoded
                .iter()
                .enumerate()
                .map(|(i, (data, n))| message(data, Some((i + 1, count)), *n))
                .collect());
        }
        parts = (parts * 2).min(total);
    }
}

/// What the acknowledgement task needs.
struct TakeAcks {
    task_name: String,
    target: String,
    engine: std::sync::Arc<crate::Engine>,
    handle: std::sync::Arc<super::SinkHandle>,
    /// The position it starts from.
    position: u64,
}

/// Takes acknowledgements in publish order, advancing and saving the position; reports
/// the first failure on `failed` and stops.
async fn take_acks(
    cx: TakeAcks,
    mut pending: mpsc::Receiver<Pending>,
    failed: oneshot::Sender<SinkError>,
) {
    let mut position = cx.position;
    let mut saved = position;
    let mut last_save = Instant::now();
    let (mut messages, mut rows, mut duplicates) = (0u64, 0u64, 0u64);
    let mut failure = None;
    while let Some(p) = pending.recv().await {
        match p.ack.await {
            Ok(ack) => {
                messages += 1;
                rows += p.rows;
                duplicates += u64::from(ack.duplicate);
                if p.completes {
                    position = p.sequence;
                }
            }
            Err(e) => {
                failure = Some(SinkError::Publish {
                    sequence: p.sequence,
                    message: format!("no acknowledgement: {}", siphon_connect::error_chain(&e)),
                });
                break;
            }
        }
        let caught_up = pending.is_empty();
        if caught_up || last_save.elapsed() >= SAVE_EVERY {
            if position != saved {
                if let Err(e) = save(&cx, position).await {
                    failure = Some(e);
                    break;
                }
                saved = position;
            }
            last_save = Instant::now();
            report(&cx, position, &mut messages, &mut rows, &mut duplicates);
        }
    }
    if position != saved
        && let Err(e) = save(&cx, position).await
    {
        failure.get_or_insert(e);
    }
    report(&cx, position, &mut messages, &mut rows, &mut duplicates);
    if let Some(e) = failure {
        let _ = failed.send(e);
    }
}

async fn save(cx: &TakeAcks, sequence: u64) -> Result<(), SinkError> {
    let store = cx.engine.store.clone();
    let name = cx.task_name.clone();
    let position = SinkPosition {
        target: cx.target.clone(),
        sequence,
    };
    tokio::task::spawn_blocking(move || store.set_sink_position(&name, &position))
        .await
        .map_err(|e| SinkError::Stream(format!("saving the sink position: {e}")))??;
    Ok(())
}

/// Publishes the figures since the last report to the status and the metrics.
fn report(cx: &TakeAcks, position: u64, messages: &mut u64, rows: &mut u64, duplicates: &mut u64) {
    cx.handle.position.store(position, Ordering::Release);
    if *messages > 0 {
        cx.engine
            .observer
            .sink_acked(&cx.task_name, *messages, *rows, *duplicates);
        let mut status = cx.handle.status.lock().expect("sink status lock");
        status.requests += *messages;
        status.records += *rows;
        status.last_success_at = Some(Utc::now());
        status.consecutive_failures = 0;
        status.state = RunState::Running;
        (*messages, *rows, *duplicates) = (0, 0, 0);
    }
    let head = cx
        .engine
        .table(&cx.handle.from)
        .map(|t| *t.watch_sequence().borrow())
        .unwrap_or(position);
    cx.engine
        .observer
        .sink_progress(&cx.task_name, position, head.saturating_sub(position));
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn message_ids_name_the_input_the_change_and_the_part() {
        assert_eq!(parse_message_id("orders:17", "orders"), Some((17, None)));
        assert_eq!(
            parse_message_id("orders:17:2/3", "orders"),
            Some((17, Some((2, 3))))
        );
        assert_eq!(parse_message_id("order:17", "orders"), None);
        assert_eq!(parse_message_id("orders_v2:17", "orders"), None);
        assert_eq!(parse_message_id("orders:x", "orders"), None);
        assert_eq!(parse_message_id("orders:0", "orders"), None);
        assert_eq!(parse_message_id("orders:5:4/3", "orders"), None);
        // A name holding a colon still parses from the right.
        assert_eq!(parse_message_id("a:b:9", "a:b"), Some((9, None)));
    }

    fn batch(rows: usize, width: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|_| "x".repeat(width)),
                )),
            ],
        )
        .unwrap()
    }

    fn payload(e: &Encoded) -> serde_json::Value {
        serde_json::from_slice(&e.publish.clone().outbound_message("s").payload).unwrap()
    }

    #[test]
    fn a_change_is_one_message_or_parts_that_fit_and_keep_every_row_in_order() {
        let small = encode("t", SinkFormat::Json, 7, &batch(3, 10), 10_000).unwrap();
        assert_eq!(small.len(), 1);
        let body = payload(&small[0]);
        assert_eq!(body["sequence_number"], 7);
        assert_eq!(body["json_data"].as_array().unwrap().len(), 3);
        assert_eq!(body["json_data"][2]["insert"]["id"], 2);

        let big = encode("t", SinkFormat::Json, 8, &batch(100, 100), 2_000).unwrap();
        assert!(big.len() > 1, "{}", big.len());
        let mut ids = Vec::new();
        for (i, part) in big.iter().enumerate() {
            let body = payload(part);
            assert_eq!(body["part"], i + 1);
            assert_eq!(body["parts"], big.len());
            for row in body["json_data"].as_array().unwrap() {
                ids.push(row["insert"]["id"].as_i64().unwrap());
            }
            assert_eq!(
                part.rows as usize,
                body["json_data"].as_array().unwrap().len()
            );
        }
        assert_eq!(ids, (0..100).collect::<Vec<_>>());

        let Err(SinkError::RowTooLarge { sequence, .. }) =
            encode("t", SinkFormat::Json, 9, &batch(2, 5_000), 2_000)
        else {
            panic!("a row larger than a message must be refused");
        };
        assert_eq!(sequence, 9);
    }
}
