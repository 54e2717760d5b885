//! siphon-server: the HTTP API of a running siphon (SPEC §3).
//!
//! [`app`] builds the router over an [`AppState`]; the binary binds it to a listener before
//! the engine has finished opening, so `GET /healthz` answers at once and `GET /readyz`
//! turns 200 only when the store is open and the pipelines are loaded. Tests drive the
//! same router on a real listener on port 0.

pub mod auth;
pub mod console;
pub mod egress;
/// The wire encodings, owned by the engine (sinks write the same change format).
use siphon_engine::encode;
pub mod feldera;
pub mod ingress;
mod origin;
mod tables;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde::Deserialize;
use siphon_engine::Engine;
use siphon_engine::query::{QueryError, QueryErrorKind};

pub use auth::ApiKeys;
pub use siphon_engine::encode::{ResultEncoder, ResultFormat};

/// What the handlers share: the engine, once it is open, and the API keys.
#[derive(Clone, Default)]
pub struct AppState {
    engine: Arc<OnceLock<Arc<Engine>>>,
    listen: Option<SocketAddr>,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    api_keys: Arc<ApiKeys>,
    pipelines: Arc<OnceLock<Arc<feldera::pipelines::Pipelines>>>,
}

impl AppState {
    /// A state whose engine is not open yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves the Feldera pipelines of `/v0` from `pipelines`.
    pub fn set_pipelines(&self, pipelines: Arc<feldera::pipelines::Pipelines>) {
        let _ = self.pipelines.set(pipelines);
    }

    /// The Feldera pipelines, once they are loaded.
    pub fn pipelines(&self) -> Option<Arc<feldera::pipelines::Pipelines>> {
        self.pipelines.get().cloned()
    }

    /// The address the server listens on: on a loopback address, `/v1/query` answers
    /// only requests addressed to a loopback host (see [`origin`]).
    pub fn listening_on(mut self, listen: SocketAddr) -> Self {
        self.listen = Some(listen);
        self
    }

    /// Requires one of `keys` on every endpoint but `/healthz` and `/readyz` (see
    /// [`auth`]); no key (the default) leaves the API open.
    pub fn with_api_keys(mut self, keys: Vec<String>) -> Self {
        self.api_keys = Arc::new(ApiKeys::new(keys));
        self
    }

    /// The configured API keys (digests only).
    pub fn api_keys(&self) -> &ApiKeys {
        &self.api_keys
    }

    /// Marks the server ready with its engine.
    pub fn set_engine(&self, engine: Arc<Engine>) {
        let _ = self.engine.set(engine);
    }

    /// Ends every open change stream (cleanly), so a graceful shutdown does not wait on
    /// readers that never hang up. Call when the shutdown begins.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`AppState::close_streams`] was called.
    fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|c| *c).await;
        }
    }

    fn engine(&self) -> Result<&Arc<Engine>, ApiError> {
        self.engine.get().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "siphon is starting: the store is not open yet",
            )
        })
    }
}

/// The router. Add routes to `routes`: the API-key layer is applied to the whole router
/// after them, so every route is covered (the health paths are exempted inside it).
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/query", get(query_get).post(query_post))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .merge(ingress::routes())
        .merge(egress::routes())
        .merge(tables::routes())
        .merge(console::routes())
        .merge(feldera::routes());
    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .with_state(state)
}

/// An error response: `{"error": "...", "detail": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    detail: serde_json::Value,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }

    /// The same error with a machine-readable `detail`.
    fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body: `{"error": "...", "detail": ...}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.message, "detail": self.detail })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        (self.status, Json(body)).into_response()
    }
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let engine = state.engine()?;
    Ok(Json(
        serde_json::json!({ "status": "ready", "tables": engine.table_names() }),
    ))
}

/// `GET /metrics`: OpenMetrics when the scraper asks for it (Prometheus does), else the
/// classic Prometheus text format 0.0.4 that curl, Telegraf and Vector read.
async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let engine = state.engine()?;
    let openmetrics = engine.render_metrics();
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if wants_openmetrics {
        (
            openmetrics,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            prometheus_text(&openmetrics),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// OpenMetrics → Prometheus 0.0.4 text: a counter's HELP/TYPE lines name the `_total`
/// series, and there is no `# EOF`.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let name = rest.split(' ').next()?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total{}", &rest[name.len()..]))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::prometheus_text;

    #[test]
    fn openmetrics_counters_become_total_series_in_the_classic_format() {
        let om = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{t=\"x\"} 2\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{t=\"x\"} 2\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }
}

async fn status(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let engine = state.engine()?;
    Ok(Json(
        serde_json::json!({ "sources": engine.statuses(), "paused": engine.is_paused() }),
    ))
}

#[derive(Deserialize)]
struct QueryParams {
    sql: Option<String>,
    format: Option<String>,
}

#[derive(Deserialize)]
struct QueryBody {
    sql: String,
    format: Option<String>,
}

async fn query_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
) -> Result<Response, ApiError> {
    origin::check(&headers, state.listen)?;
    let sql = params
        .sql
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "missing query parameter `sql`"))?;
    run_query(&state, &sql, params.format.as_deref()).await
}

async fn query_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    origin::check(&headers, state.listen)?;
    let body: QueryBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON {{\"sql\": \"...\"}}: {e}"),
        )
    })?;
    let format = body.format.as_deref().or(params.format.as_deref());
    run_query(&state, &body.sql, format).await
}

/// The HTTP status of a failed query.
fn query_error(e: QueryError) -> ApiError {
    let status = match e.kind {
        QueryErrorKind::Invalid => StatusCode::BAD_REQUEST,
        QueryErrorKind::Memory => StatusCode::INSUFFICIENT_STORAGE,
        QueryErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        QueryErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.message)
}

/// Runs a query and streams its result. Errors until the first batch (which covers
/// planning, and the building phase of sorts, aggregates and joins) get their own status;
/// a later error aborts the response, so a reader never takes a cut result for a whole
/// one (the chunked body ends without its last chunk).
async fn run_query(
    state: &AppState,
    sql: &str,
    format: Option<&str>,
) -> Result<Response, ApiError> {
    let format = match format {
        None => ResultFormat::Json,
        Some(f) => ResultFormat::parse(f).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown format `{f}`: use json, ndjson, csv or arrow"),
            )
        })?,
    };
    let engine = state.engine()?;
    let mut result = engine.query(sql).await.map_err(query_error)?;
    let first = result.next().await.transpose().map_err(query_error)?;
    let encoding_error = |e: arrow::error::ArrowError| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the result: {e}"),
        )
    };
    let mut encoder = ResultEncoder::new(format, &result.schema()).map_err(encoding_error)?;
    let head = match &first {
        Some(batch) => encoder.batch(batch).map_err(encoding_error)?,
        None => Vec::new(),
    };
    let rest = result.into_stream();
    // The chunks: the first batch, then one per batch, then the closing bytes.
    let chunks = futures_util::stream::once(async move { Ok(head) })
        .chain(futures_util::stream::unfold(
            Some((rest.boxed(), encoder)),
            |state| async move {
                let (mut rest, mut encoder) = state?;
                let (chunk, more) = match rest.next().await {
                    Some(Ok(batch)) => (encoder.batch(&batch).map_err(|e| e.to_string()), true),
                    Some(Err(e)) => (Err(e.to_string()), false),
                    None => (encoder.finish().map_err(|e| e.to_string()), false),
                };
                Some((chunk, more.then_some((rest, encoder))))
            },
        ))
        .filter_map(|chunk: Result<Vec<u8>, String>| async move {
            match chunk {
                Ok(bytes) if bytes.is_empty() => None,
                Ok(bytes) => Some(Ok(Bytes::from(bytes))),
                Err(message) => {
                    tracing::warn!("a query failed while its result was being sent: {message}");
                    Some(Err(std::io::Error::other(message)))
                }
            }
        });
    let mut response = Body::from_stream(chunks).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}
