//! `GET /v1/egress/{table}`: a table's changes as a chunked stream of lines, as Feldera's
//! HTTP output writes them (SPEC §3).
//!
//! Each line is one JSON object, CRLF-terminated, sent as its own body chunk:
//! * `{}`: a keepalive, at once when the stream opens and after [`KEEPALIVE`] without a
//!   change;
//! * `{"sequence_number": N, "json_data": [{"insert": {...}}, {"delete": {...}}]}`, or with
//!   `format=csv` `{"sequence_number": N, "text_data": "csv lines with a weight column"}`:
//!   one log entry of the table; `N` is the store's commit sequence, so a reader resumes
//!   with `from=N`. A line after skipped chunks (`backpressure=false`) also carries
//!   `"dropped": K`.
//!
//! Parameters: `format=json|csv` (json), `backpressure=true|false` (true),
//! `from=beginning|now|N` (now), `follow=true|false` (true; false ends the stream after the
//! entries committed when the request arrived). The reading itself is
//! [`siphon_engine::egress`]; entries are encoded once per format and shared by readers.
//! Streams end cleanly when the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde::Deserialize;
use siphon_engine::egress::{EgressError, Encode, EncodedChange, Event, ReaderOptions, Start};

use crate::{ApiError, AppState, encode};

/// How long a stream stays silent before a keepalive line.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(3);

const KEEPALIVE_LINE: &[u8] = b"{}\r\n";

/// The egress route.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/egress/{table}", get(egress))
}

#[derive(Deserialize)]
struct EgressParams {
    format: Option<String>,
    backpressure: Option<String>,
    from: Option<String>,
    follow: Option<String>,
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Csv,
}

impl Format {
    fn key(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Format::Json => "json_data",
            Format::Csv => "text_data",
        }
    }
}

fn bad(parameter: &str, value: &str, accepted: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("invalid `{parameter}` value `{value}`: use {accepted}"),
    )
}

fn flag(parameter: &str, value: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(bad(parameter, value.unwrap_or(""), "true or false")),
    }
}

/// The request's reader options and format, or a 400 naming the bad parameter.
fn parse(params: &EgressParams) -> Result<(Format, ReaderOptions), ApiError> {
    let format = match params
        .format
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(_) => {
            return Err(bad(
                "format",
                params.format.as_deref().unwrap_or(""),
                "json or csv",
            ));
        }
    };
    let start = match params.from.as_deref() {
        None => Start::Now,
        Some(text) => Start::parse(text).ok_or_else(|| {
            bad(
                "from",
                text,
                "beginning, now, or a sequence number N (entries after N)",
            )
        })?,
    };
    Ok((
        format,
        ReaderOptions {
            start,
            backpressure: flag("backpressure", params.backpressure.as_deref(), true)?,
            follow: flag("follow", params.follow.as_deref(), true)?,
            idle: Some(KEEPALIVE),
        },
    ))
}

/// The JSON data line of one change, exactly as the stream sends it, for a reader that
/// follows the engine in this process (`siphon consume --data-dir`).
pub fn json_line(change: &siphon_engine::egress::Change) -> Result<Bytes, String> {
    let bytes = encode::change_json(&change.batch).map_err(|e| e.to_string())?;
    Ok(data_line(
        Format::Json,
        &EncodedChange {
            sequence: change.sequence,
            dropped: change.dropped,
            bytes: Arc::from(bytes),
        },
    ))
}

/// One data line: `{"sequence_number":N[,"dropped":K],"<field>":<shared bytes>}\r\n`.
fn data_line(format: Format, change: &EncodedChange) -> Bytes {
    change_line(format.field(), change, None)
}

/// A data line with `field` holding the change's encoded bytes, and (for `/v0`) the
/// stream's `processed_steps`.
pub(crate) fn change_line(
    field: &str,
    change: &EncodedChange,
    processed_steps: Option<u64>,
) -> Bytes {
    let mut line = Vec::with_capacity(change.bytes.len() + 96);
    line.extend_from_slice(format!("{{\"sequence_number\":{}", change.sequence).as_bytes());
    if change.dropped > 0 {
        line.extend_from_slice(format!(",\"dropped\":{}", change.dropped).as_bytes());
    }
    line.extend_from_slice(format!(",\"{field}\":").as_bytes());
    line.extend_from_slice(&change.bytes);
    if let Some(steps) = processed_steps {
        line.extend_from_slice(format!(",\"processed_steps\":{steps}").as_bytes());
    }
    line.extend_from_slice(b"}\r\n");
    Bytes::from(line)
}

/// The response header that says after which sequence number the stream starts (its
/// chunks have greater ones): `from=beginning` and `from=now` resolved.
pub const START_AFTER_HEADER: &str = "x-siphon-start-after";

async fn egress(
    State(state): State<AppState>,
    Path(table): Path<String>,
    Query(params): Query<EgressParams>,
) -> Result<Response, ApiError> {
    let (format, options) = parse(&params)?;
    let engine = state.engine()?;
    let reader = engine.egress(&table, options).await.map_err(|e| match e {
        EgressError::UnknownTable(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    let encode: Arc<Encode> = match format {
        Format::Json => Arc::new(|b| encode::change_json(b).map_err(|e| e.to_string())),
        Format::Csv => Arc::new(|b| encode::change_csv(b).map_err(|e| e.to_string())),
    };
    // Where the stream starts, so a client that asked for `now` and loses the connection
    // before the first change can resume without a gap.
    let start_after = reader.position().saturating_sub(1);
    let opening = futures_util::stream::once(async { Ok(Bytes::from_static(KEEPALIVE_LINE)) });
    let lines = futures_util::stream::unfold(Some(reader), move |reader| {
        let encode = encode.clone();
        async move {
            let mut reader = reader?;
            match reader.next_encoded(format.key(), &*encode).await {
                Ok(Some(Event::Chunk(change))) => {
                    Some((Ok(data_line(format, &change)), Some(reader)))
                }
                Ok(Some(Event::Idle)) => {
                    Some((Ok(Bytes::from_static(KEEPALIVE_LINE)), Some(reader)))
                }
                Ok(None) => None,
                Err(e) => {
                    // Aborts the body: a reader never takes a broken stream for a whole one.
                    tracing::warn!(table = ?reader, error = %e, "an egress stream failed");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    let body = opening.chain(lines).take_until(state.closing());
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
        .headers_mut()
        .insert(START_AFTER_HEADER, HeaderValue::from(start_after));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(
        format: Option<&str>,
        bp: Option<&str>,
        from: Option<&str>,
        follow: Option<&str>,
    ) -> EgressParams {
        EgressParams {
            format: format.map(String::from),
            backpressure: bp.map(String::from),
            from: from.map(String::from),
            follow: follow.map(String::from),
        }
    }

    #[test]
    fn parameters_have_defaults_and_bad_values_name_the_parameter() {
        let (format, options) = parse(&params(None, None, None, None)).ok().unwrap();
        assert_eq!(format.key(), "json");
        assert_eq!(options.start, Start::Now);
        assert!(options.backpressure && options.follow);
        let (format, options) = parse(&params(
            Some("CSV"),
            Some("false"),
            Some("17"),
            Some("false"),
        ))
        .ok()
        .unwrap();
        assert_eq!(format.key(), "csv");
        assert_eq!(options.start, Start::After(17));
        assert!(!options.backpressure && !options.follow);
        for (p, name) in [
            (params(Some("xml"), None, None, None), "format"),
            (params(None, Some("yes"), None, None), "backpressure"),
            (params(None, None, Some("-3"), None), "from"),
            (params(None, None, None, Some("1")), "follow"),
        ] {
            let e = parse(&p).err().unwrap();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(&format!("`{name}`")), "{}", e.message);
        }
    }
}
