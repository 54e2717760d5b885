//! The Feldera-compatible `/v0` API (`../shared/FELDERA_API.md`), so Feldera's own Python
//! client drives siphon: a pipeline is a named SQL program run by its own engine
//! ([`pipelines`]), its tables take pushes, its views and tables stream changes, and it
//! answers ad hoc queries, all through the same engine code as `/v1`.
//!
//! Errors have Feldera's shape, `{"message", "error_code", "details"}`; a 404 on a
//! pipeline means "no such pipeline", and no permanent refusal is a 503 (the client
//! retries those).

pub mod pipelines;
pub mod schema;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use siphon_engine::egress::{EgressError, Encode, Event, ReaderOptions, Start};
use siphon_engine::ingress::{CsvHeader, PushError, PushFormat, UpdateFormat};

use crate::feldera::pipelines::{Pipelines, Refusal};
use crate::{AppState, encode};

/// The version the client is told (it only warns on a mismatch).
pub const VERSION: &str = "0.369.0";

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            axum::Json(json!({
                "message": self.message,
                "error_code": self.code,
                "details": self.details,
            })),
        )
            .into_response()
    }
}

fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        details: json!({}),
    }
}

/// The `/v0` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v0/config", get(config))
        .route("/v0/cluster_healthz", get(cluster_healthz))
        .route("/v0/pipelines", get(list).post(create))
        .route("/v0/pipelines/{name}", get(object).put(put).delete(delete))
        .route("/v0/pipelines/{name}/start", post(start))
        .route("/v0/pipelines/{name}/pause", post(pause))
        .route("/v0/pipelines/{name}/resume", post(resume))
        .route("/v0/pipelines/{name}/stop", post(stop))
        .route("/v0/pipelines/{name}/clear", post(clear))
        .route("/v0/pipelines/{name}/dismiss_error", post(dismiss_error))
        .route("/v0/pipelines/{name}/ingress/{table}", post(ingress))
        .route(
            "/v0/pipelines/{name}/completion_status",
            get(completion_status),
        )
        .route(
            "/v0/pipelines/{name}/egress/{view}",
            get(egress).post(egress),
        )
        .route("/v0/pipelines/{name}/query", get(query))
}

fn manager(state: &AppState) -> Result<Arc<Pipelines>, Refusal> {
    state.pipelines().ok_or_else(|| {
        refuse(
            400,
            "PipelinesUnavailable",
            "this server has no pipeline storage (it is still starting)",
        )
    })
}

async fn config() -> axum::Json<Value> {
    axum::Json(json!({
        "version": VERSION,
        "edition": "Open source",
        "revision": "",
        "runtime_revision": "",
        "telemetry": "",
        "changelog_url": "",
        "update_info": null,
        "license_validity": null,
        "build_info": {"source": "siphon"},
        "unstable_features": null,
    }))
}

async fn cluster_healthz() -> axum::Json<Value> {
    axum::Json(json!({"all_healthy": true}))
}

#[derive(Deserialize)]
struct Selector {
    selector: Option<String>,
}

fn wants_all(selector: &Selector) -> bool {
    !matches!(selector.selector.as_deref(), Some("status"))
}

async fn list(
    State(state): State<AppState>,
    Query(selector): Query<Selector>,
) -> Result<axum::Json<Value>, Refusal> {
    let all = wants_all(&selector);
    Ok(axum::Json(Value::Array(
        manager(&state)?
            .list()
            .iter()
            .map(|p| p.object(all))
            .collect(),
    )))
}

async fn object(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(selector): Query<Selector>,
) -> Result<axum::Json<Value>, Refusal> {
    Ok(axum::Json(
        manager(&state)?.get(&name)?.object(wants_all(&selector)),
    ))
}

fn body_json(body: &Bytes) -> Result<Value, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        refuse(
            400,
            "InvalidRequestBody",
            format!("the request body is not JSON: {e}"),
        )
    })
}

async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let body = body_json(&body)?;
    let pipelines = manager(&state)?;
    let created = pipelines.put(&name, &body, false)?;
    let object = pipelines.get(&name)?.object(true);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(object)).into_response())
}

async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, Refusal> {
    let body = body_json(&body)?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse(400, "InvalidRequestBody", "the body needs a `name`"))?
        .to_string();
    let pipelines = manager(&state)?;
    pipelines.put(&name, &body, true)?;
    let object = pipelines.get(&name)?.object(true);
    Ok((StatusCode::CREATED, axum::Json(object)).into_response())
}

async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Refusal> {
    manager(&state)?.delete(&name)?;
    Ok(accepted())
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response()
}

#[derive(Deserialize)]
struct StartParams {
    initial: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<StartParams>,
) -> Result<Response, Refusal> {
    let pipelines = manager(&state)?;
    let pipeline = pipelines.get(&name)?;
    let paused = match params
        .initial
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("running") => false,
        Some("paused") => true,
        Some(other) => {
            return Err(refuse(
                400,
                "InvalidParameter",
                format!("`initial={other}`: use running or paused"),
            ));
        }
    };
    pipelines.start(&pipeline, paused).await?;
    Ok(accepted())
}

async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Refusal> {
    set_paused(&state, &name, true)
}

async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Refusal> {
    set_paused(&state, &name, false)
}

fn set_paused(state: &AppState, name: &str, paused: bool) -> Result<Response, Refusal> {
    let pipelines = manager(state)?;
    let pipeline = pipelines.get(name)?;
    pipelines.set_paused(&pipeline, paused)?;
    Ok(accepted())
}

async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Refusal> {
    let pipelines = manager(&state)?;
    pipelines.stop(&pipelines.get(&name)?).await?;
    Ok(accepted())
}

async fn clear(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Refusal> {
    let pipelines = manager(&state)?;
    let pipeline = pipelines.get(&name)?;
    pipelines.clear(&pipeline).await?;
    Ok(accepted())
}

async fn dismiss_error(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Refusal> {
    manager(&state)?.get(&name)?.dismiss_error();
    Ok(accepted())
}

/// A table or view name from a path: `"Name"` is case-sensitive, anything else is
/// lower-cased as SQL folds unquoted identifiers.
fn relation(name: &str) -> String {
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.to_string(),
        None => name.to_ascii_lowercase(),
    }
}

fn flag(name: &str, value: Option<&str>, default: bool) -> Result<bool, Refusal> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(refuse(
            400,
            "InvalidParameter",
            format!("`{name}={other}`: use true or false"),
        )),
    }
}

#[derive(Deserialize)]
struct IngressParams {
    format: Option<String>,
    update_format: Option<String>,
    array: Option<String>,
    force: Option<String>,
}

async fn ingress(
    State(state): State<AppState>,
    Path((name, table)): Path<(String, String)>,
    Query(params): Query<IngressParams>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let pipeline = manager(&state)?.get(&name)?;
    let (engine, _) = pipeline.engine()?;
    let array = flag("array", params.array.as_deref(), false)?;
    let format = match params.format.as_deref().unwrap_or("json") {
        "json" => PushFormat::Json { array },
        "csv" => PushFormat::Csv {
            header: CsvHeader::Auto,
        },
        other => {
            return Err(refuse(
                400,
                "InvalidParameter",
                format!("`format={other}`: use json or csv"),
            ));
        }
    };
    let update_format = match params.update_format.as_deref().unwrap_or("raw") {
        "raw" => UpdateFormat::Raw,
        "insert_delete" => UpdateFormat::InsertDelete,
        other => {
            return Err(refuse(
                400,
                "InvalidParameter",
                format!("`update_format={other}`: use raw or insert_delete"),
            ));
        }
    };
    let force = flag("force", params.force.as_deref(), false)?;
    let table = relation(&table);
    // Feldera refuses a record with a column the table does not have (siphon's own
    // ingress ignores it, as its polling decoders do).
    if let (PushFormat::Json { .. }, Some(data)) = (format, engine.table(&table)) {
        let columns: Vec<String> = data
            .def
            .columns
            .iter()
            .map(|c| c.name.to_ascii_lowercase())
            .collect();
        if let Some((record, key)) =
            unknown_column(&body, update_format == UpdateFormat::InsertDelete, &columns)
        {
            return Err(Refusal {
                status: 400,
                code: "ParseErrors",
                message: format!(
                    "record {record}: table '{table}' has no column '{key}'; nothing of the request was stored"
                ),
                details: json!({"record": record, "reason": format!("unknown column '{key}'")}),
            });
        }
    }
    match engine
        .push(&table, body, format, update_format, force)
        .await
    {
        Ok(_) => {
            let step = pipeline.complete_step(&engine);
            Ok(axum::Json(json!({"token": step.to_string()})).into_response())
        }
        Err(PushError::UnknownTable(t)) => Err(refuse(
            404,
            "UnknownInputTable",
            format!("pipeline '{name}' has no table '{t}'"),
        )),
        Err(PushError::Record { record, reason }) => Err(Refusal {
            status: 400,
            code: "ParseErrors",
            message: format!("record {record}: {reason}; nothing of the request was stored"),
            details: json!({"record": record, "reason": reason}),
        }),
        Err(PushError::Request(message)) => Err(refuse(400, "InvalidRequest", message)),
        Err(PushError::ShuttingDown) => Err(refuse(
            400,
            "PipelineNotRunningOrPaused",
            format!("pipeline '{name}' is stopping"),
        )),
        Err(e) => Err(refuse(500, "InternalError", e.to_string())),
    }
}

/// The first record (index in the request) with a key that names no column, for JSON
/// bodies: one object, an array of objects, or NDJSON; `{"insert"|"delete": row}` with
/// `insert_delete`. Bodies that do not parse are left to the decoder's message.
fn unknown_column(body: &[u8], wrapped: bool, columns: &[String]) -> Option<(usize, String)> {
    let mut records: Vec<Value> = Vec::new();
    for value in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        match value {
            Ok(Value::Array(items)) => records.extend(items),
            Ok(v) => records.push(v),
            Err(_) => return None,
        }
    }
    for (index, record) in records.iter().enumerate() {
        let row = if wrapped {
            record
                .get("insert")
                .or_else(|| record.get("delete"))
                .unwrap_or(record)
        } else {
            record
        };
        if let Value::Object(fields) = row {
            for key in fields.keys() {
                if !columns.contains(&key.to_ascii_lowercase()) {
                    return Some((index, key.clone()));
                }
            }
        }
    }
    None
}

#[derive(Deserialize)]
struct TokenParams {
    token: Option<String>,
}

async fn completion_status(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<TokenParams>,
) -> Result<Response, Refusal> {
    let pipeline = manager(&state)?.get(&name)?;
    let token = params.token.unwrap_or_default();
    match token.parse::<u64>() {
        // A push is answered after its commit: its step is complete when it has a token.
        Ok(step) if step <= pipeline.step() => {
            Ok(axum::Json(json!({"status": "complete", "step": step})).into_response())
        }
        _ => Err(refuse(
            400,
            "InvalidToken",
            format!("unknown completion token '{token}'"),
        )),
    }
}

#[derive(Deserialize)]
struct EgressParams {
    format: Option<String>,
    backpressure: Option<String>,
    send_snapshot: Option<String>,
}

/// How long a stream stays silent before a keepalive line.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(3);

async fn egress(
    State(state): State<AppState>,
    Path((name, view)): Path<(String, String)>,
    Query(params): Query<EgressParams>,
) -> Result<Response, Refusal> {
    let pipeline = manager(&state)?.get(&name)?;
    let (engine, mut closing) = pipeline.engine()?;
    let view = relation(&view);
    let csv = match params.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => {
            return Err(refuse(
                400,
                "InvalidParameter",
                format!("`format={other}`: use json or csv"),
            ));
        }
    };
    let options = ReaderOptions {
        start: if flag("send_snapshot", params.send_snapshot.as_deref(), false)? {
            Start::Beginning
        } else {
            Start::Now
        },
        backpressure: flag("backpressure", params.backpressure.as_deref(), true)?,
        follow: true,
        idle: Some(KEEPALIVE),
    };
    let reader = engine.egress(&view, options).await.map_err(|e| match e {
        EgressError::UnknownTable(_) => refuse(
            404,
            "UnknownOutputTable",
            format!("pipeline '{name}' has no view or table '{view}'"),
        ),
        e => refuse(500, "InternalError", e.to_string()),
    })?;
    let (key, field, encoder): (&'static str, &'static str, Arc<Encode>) = if csv {
        (
            "feldera-csv",
            "text_data",
            Arc::new(|b| encode::change_csv(&feldera_rows(b)?).map_err(|e| e.to_string())),
        )
    } else {
        (
            "feldera-json",
            "json_data",
            Arc::new(|b| encode::change_json(&feldera_rows(b)?).map_err(|e| e.to_string())),
        )
    };
    let opening = futures_util::stream::once(async { Ok(Bytes::from_static(b"{}\r\n")) });
    let pipeline_for_lines = pipeline.clone();
    let lines = futures_util::stream::unfold(Some(reader), move |reader| {
        let encoder = encoder.clone();
        let pipeline = pipeline_for_lines.clone();
        let view = view.clone();
        async move {
            let mut reader = reader?;
            match reader.next_encoded(key, &*encoder).await {
                Ok(Some(Event::Chunk(change))) => {
                    let processed = pipeline.processed_steps(&view, change.sequence);
                    let line = crate::egress::change_line(field, &change, Some(processed));
                    Some((Ok(line), Some(reader)))
                }
                Ok(Some(Event::Idle)) => {
                    let seen = reader.position().saturating_sub(1);
                    let processed = pipeline.processed_steps(&view, seen);
                    let line = format!("{{\"processed_steps\":{processed}}}\r\n");
                    Some((Ok(Bytes::from(line)), Some(reader)))
                }
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let stopped = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    let body = opening
        .chain(lines)
        .take_until(stopped)
        .take_until(state.closing());
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Rows as Feldera writes them: TIMESTAMP as `YYYY-MM-DD HH:MM:SS[.ffffff]` without a
/// zone (the client's DataFrame conversion rejects a `Z`).
fn feldera_rows(batch: &RecordBatch) -> Result<RecordBatch, String> {
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if matches!(field.data_type(), DataType::Timestamp(_, _)) {
            let micros =
                arrow::compute::cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                    .map_err(|e| e.to_string())?;
            let micros = micros.as_primitive::<TimestampMicrosecondType>();
            let text: StringArray = (0..micros.len())
                .map(|i| {
                    micros.is_valid(i).then(|| {
                        chrono::DateTime::from_timestamp_micros(micros.value(i))
                            .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string())
                            .unwrap_or_default()
                    })
                })
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct QueryParams {
    sql: Option<String>,
    format: Option<String>,
}

async fn query(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<QueryParams>,
) -> Result<Response, Refusal> {
    let pipeline = manager(&state)?.get(&name)?;
    let (engine, _) = pipeline.engine()?;
    let sql = params
        .sql
        .ok_or_else(|| refuse(400, "InvalidParameter", "the query needs `sql`"))?;
    let format = params.format.unwrap_or_else(|| "text".into());
    let result = engine
        .query(&sql)
        .await
        .map_err(|e| refuse(400, "SqlError", e.to_string()))?;
    let batches = result
        .collect()
        .await
        .map_err(|e| refuse(400, "SqlError", e.to_string()))?;
    let bytes = match format.as_str() {
        "json" => {
            let mut out = Vec::new();
            let mut encoder =
                encode::ResultEncoder::new(encode::ResultFormat::Ndjson, &empty_schema(&batches))
                    .map_err(|e| refuse(500, "InternalError", e.to_string()))?;
            for batch in &batches {
                out.extend(
                    encoder
                        .batch(batch)
                        .map_err(|e| refuse(500, "InternalError", e.to_string()))?,
                );
            }
            out.extend(
                encoder
                    .finish()
                    .map_err(|e| refuse(500, "InternalError", e.to_string()))?,
            );
            out
        }
        "text" => {
            let table = arrow::util::pretty::pretty_format_batches(&batches)
                .map_err(|e| refuse(500, "InternalError", e.to_string()))?;
            format!("{table}\n").into_bytes()
        }
        "arrow_ipc" => {
            let schema = match batches.first() {
                Some(b) => b.schema(),
                None => empty_schema(&batches),
            };
            let mut encoder = encode::ResultEncoder::new(encode::ResultFormat::Arrow, &schema)
                .map_err(|e| refuse(500, "InternalError", e.to_string()))?;
            let mut out = Vec::new();
            for batch in &batches {
                out.extend(
                    encoder
                        .batch(batch)
                        .map_err(|e| refuse(500, "InternalError", e.to_string()))?,
                );
            }
            out.extend(
                encoder
                    .finish()
                    .map_err(|e| refuse(500, "InternalError", e.to_string()))?,
            );
            out
        }
        other => {
            return Err(refuse(
                400,
                "InvalidParameter",
                format!("`format={other}`: use json, text or arrow_ipc"),
            ));
        }
    };
    let content_type = match format.as_str() {
        "arrow_ipc" => "application/octet-stream",
        "text" => "text/plain",
        _ => "application/x-ndjson",
    };
    let mut response = Body::from(bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

fn empty_schema(batches: &[RecordBatch]) -> arrow::datatypes::SchemaRef {
    batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(Schema::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_columns_are_found_in_every_body_shape() {
        let columns = vec!["id".to_string(), "name".to_string()];
        assert_eq!(
            unknown_column(br#"{"ID": 1, "Name": "x"}"#, false, &columns),
            None
        );
        assert_eq!(
            unknown_column(br#"[{"id": 1}, {"id": 2, "zzz": 3}]"#, false, &columns),
            Some((1, "zzz".into()))
        );
        assert_eq!(
            unknown_column(b"{\"id\": 1}\n{\"nope\": 2}\n", false, &columns),
            Some((1, "nope".into()))
        );
        assert_eq!(
            unknown_column(br#"{"insert": {"id": 1, "age": 3}}"#, true, &columns),
            Some((0, "age".into()))
        );
        assert_eq!(
            unknown_column(br#"{"delete": {"id": 1}}"#, true, &columns),
            None
        );
        assert_eq!(unknown_column(b"not json", false, &columns), None);
    }

    #[test]
    fn relation_names_fold_unless_quoted() {
        assert_eq!(relation("Users"), "users");
        assert_eq!(relation("\"Users\""), "Users");
    }
}
