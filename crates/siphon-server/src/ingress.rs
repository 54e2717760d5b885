//! Pushing records in (`POST /v1/tables/{table}/ingress`) and pausing inputs
//! (`POST /v1/pause`, `POST /v1/resume`).
//!
//! The handler only reads parameters and maps answers: decoding, the all-or-nothing rule,
//! waiting while paused, backpressure and the durable group commit are the engine's
//! ([`siphon_engine::Engine::push`]). A 200 is sent only once the push is durable.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use siphon_engine::Pushed;
use siphon_engine::ingress::{CsvHeader, PushError, PushFormat, UpdateFormat};

use crate::{ApiError, AppState};

/// The largest push body accepted.
pub const MAX_PUSH_BYTES: usize = 256 * 1024 * 1024;

/// The routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tables/{table}/ingress",
            post(ingress).layer(DefaultBodyLimit::max(MAX_PUSH_BYTES)),
        )
        .route("/v1/pause", post(pause))
        .route("/v1/resume", post(resume))
}

#[derive(Deserialize)]
struct IngressParams {
    format: Option<String>,
    array: Option<String>,
    update_format: Option<String>,
    force: Option<String>,
    csv_header: Option<String>,
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(bad(format!(
            "parameter `{name}`: `{other}` is not true or false"
        ))),
    }
}

impl IngressParams {
    fn format(&self) -> Result<PushFormat, ApiError> {
        let header = match self.csv_header.as_deref() {
            None | Some("auto") => CsvHeader::Auto,
            Some("true") | Some("1") => CsvHeader::Present,
            Some("false") | Some("0") => CsvHeader::Absent,
            Some(other) => {
                return Err(bad(format!(
                    "parameter `csv_header`: `{other}` is not true, false or auto"
                )));
            }
        };
        let array = flag("array", self.array.as_deref())?;
        match self.format.as_deref() {
            None | Some("json") => Ok(PushFormat::Json { array }),
            Some("csv") if array => {
                Err(bad("parameter `array` applies to format=json only".into()))
            }
            Some("csv") => Ok(PushFormat::Csv { header }),
            Some(other) => Err(bad(format!(
                "parameter `format`: `{other}` is not json or csv"
            ))),
        }
    }

    fn update_format(&self) -> Result<UpdateFormat, ApiError> {
        match self.update_format.as_deref() {
            None | Some("raw") => Ok(UpdateFormat::Raw),
            Some("insert_delete") => Ok(UpdateFormat::InsertDelete),
            Some(other) => Err(bad(format!(
                "parameter `update_format`: `{other}` is not raw or insert_delete"
            ))),
        }
    }
}

/// The HTTP answer to a refused push.
pub fn push_error(e: PushError) -> ApiError {
    match &e {
        PushError::UnknownTable(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        PushError::Record { record, reason } => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{e}; nothing of this request was stored"),
        )
        .with_detail(serde_json::json!({ "record": record, "reason": reason })),
        PushError::Request(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        PushError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        PushError::Internal(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn ingress(
    State(state): State<AppState>,
    Path(table): Path<String>,
    Query(params): Query<IngressParams>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let format = params.format()?;
    let update_format = params.update_format()?;
    let force = flag("force", params.force.as_deref())?;
    let engine = state.engine()?;
    let pushed = engine
        .push(&table, body, format, update_format, force)
        .await
        .map_err(push_error)?;
    Ok(Json(pushed_body(&table, &pushed)))
}

/// The 200 answer to a push: what the request held and what its commit did.
pub fn pushed_body(table: &str, pushed: &Pushed) -> serde_json::Value {
    let mut answer = serde_json::json!({
        "table": table,
        "records": pushed.records,
        "inserted": pushed.outcome.inserted,
        "deleted": pushed.outcome.deleted,
        "sequence_number": pushed.outcome.sequence_number,
    });
    if let Some(header) = pushed.csv_header {
        answer["csv_header"] = header.into();
    }
    answer
}

async fn pause(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let engine = state.engine()?;
    engine.pause();
    Ok(Json(serde_json::json!({ "paused": true })))
}

async fn resume(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let engine = state.engine()?;
    engine.resume();
    Ok(Json(serde_json::json!({ "paused": false })))
}
