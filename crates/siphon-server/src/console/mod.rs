//! The web console: `GET /` and its assets under `/console/`, served by `siphon run`
//! itself, so seeing every source, its data and its health needs no other process.
//!
//! Why it is built this way:
//! * The assets (plain HTML, CSS and JavaScript modules, no framework and no build step)
//!   are compiled into the binary with `include_str!`: the console works without network
//!   access and always matches the server it came with.
//! * The console is only a client of the public HTTP API (`/v1/status`, `/v1/tables`,
//!   `/v1/query`, `/v1/egress`, `/v1/pause`, `/v1/resume`); nothing under `/console/`
//!   reads engine data, which is why these paths answer without an API key (a browser
//!   cannot attach one when it loads a page, see [`crate::auth`]). The API calls carry the
//!   key the user typed (kept in `sessionStorage`) as `Authorization: Bearer`.
//!   `GET /console/session` says whether a key is needed and whether the one presented is
//!   good, so the console asks for a key without provoking a 401.
//! * Every document goes out with a strict `Content-Security-Policy` (scripts, styles and
//!   connections from this origin only, no inline script, no framing), on top of the
//!   JavaScript's own rule: text from tables and the API is only ever inserted as text
//!   nodes or attribute values, never parsed as HTML.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::{ApiError, AppState, auth};

/// The page's security policy: everything from this origin, nothing inline, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The embedded assets: path under `/console/`, content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    ("app.js", JS, include_str!("assets/app.js")),
    ("api.js", JS, include_str!("assets/api.js")),
    ("dom.js", JS, include_str!("assets/dom.js")),
    ("sources.js", JS, include_str!("assets/sources.js")),
    ("table.js", JS, include_str!("assets/table.js")),
    ("tail.js", JS, include_str!("assets/tail.js")),
    ("chart.js", JS, include_str!("assets/chart.js")),
    ("sql.js", JS, include_str!("assets/sql.js")),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
];

const JS: &str = "text/javascript; charset=utf-8";

const INDEX: &str = include_str!("assets/index.html");

/// The console's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/console/session", get(session))
        .route("/console/{file}", get(asset))
}

/// Whether `path` is one of the console's (open) paths: the page and anything under
/// `/console/`, which holds only embedded assets and the session probe.
pub(crate) fn is_asset_path(path: &str) -> bool {
    path == "/" || path.starts_with("/console/")
}

/// The console's address for a server listening on `listen`: an unspecified address
/// (`0.0.0.0`, `::`) is shown as the loopback one, which reaches it from this machine.
pub fn url(listen: std::net::SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}/")
}

/// Headers every console response carries.
fn with_headers(mut response: Response, content_type: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn index() -> Response {
    let mut response = with_headers(INDEX.into_response(), "text/html; charset=utf-8");
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("the console has no asset `{file}`"),
            )
        })?;
    let mut response = with_headers(body.into_response(), content_type);
    if file.ends_with(".svg") {
        // An SVG opened on its own is a document: no script in it may run.
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    Ok(response)
}

/// `GET /console/session`: whether the API needs a key, and whether the request's
/// `Authorization` holds a valid one. Always 200.
async fn session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let required = !state.api_keys().is_empty();
    let body = serde_json::json!({
        "auth_required": required,
        "authorized": auth::authorized(state.api_keys(), &headers),
    });
    let mut response = with_headers(axum::Json(body).into_response(), "application/json");
    // A verdict on a key is never cached.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_urls_name_a_reachable_address() {
        assert_eq!(
            url("127.0.0.1:8080".parse().unwrap()),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            url("0.0.0.0:9000".parse().unwrap()),
            "http://127.0.0.1:9000/"
        );
        assert_eq!(url("[::]:9000".parse().unwrap()), "http://[::1]:9000/");
        assert_eq!(url("[::1]:80".parse().unwrap()), "http://[::1]:80/");
    }

    #[test]
    fn assets_are_open_paths_and_the_api_is_not() {
        assert!(is_asset_path("/"));
        assert!(is_asset_path("/console/app.js"));
        assert!(!is_asset_path("/v1/status"));
        assert!(!is_asset_path("/consolex"));
        assert!(!is_asset_path("/v1/query"));
    }

    #[test]
    fn assets_never_parse_data_as_html() {
        // The JavaScript inserts text only; these sinks would parse it as HTML.
        for (name, _, body) in ASSETS {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!body.contains(sink), "{name} uses {sink}");
            }
        }
        assert!(!INDEX.contains("<script>"), "no inline script (CSP)");
    }
}
