//! Optional API keys (SPEC §3): when keys are configured, every endpoint but `/healthz` and
//! `/readyz` needs `Authorization: Bearer <key>`; anything else is 401 with
//! `WWW-Authenticate: Bearer` and the usual JSON error.
//!
//! The middleware wraps the whole router (see [`crate::app`]), so routes added later are
//! covered without doing anything. Keys are kept only as SHA-256 digests and a presented
//! key is compared with every one of them in constant time (no early exit, equal-length
//! digests), so timing tells nothing about a key. Keys never reach a log line: the binary
//! logs how many are configured, never which.
//!
//! The web console's page and assets (`/` and `/console/...`, see [`crate::console`]) are
//! open too: a browser cannot send a bearer key when it loads a page, and they are
//! constants compiled into the binary that hold no data. The console asks for a key and
//! sends it on every API request it makes.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// Paths that answer without a key: orchestrators probe them.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Whether `path` answers without a key: the health paths and the console's embedded
/// page and assets (never data).
fn is_open(path: &str) -> bool {
    OPEN_PATHS.contains(&path) || crate::console::is_asset_path(path)
}

/// The configured keys, as digests. Empty: the API is open.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} configured)", self.digests.len())
    }
}

impl ApiKeys {
    /// Keys as given; surrounding whitespace is trimmed and empty keys are ignored.
    pub fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut digests: Vec<[u8; 32]> = keys
            .into_iter()
            .map(|k| k.as_ref().trim().to_string())
            .filter(|k| !k.is_empty())
            .map(|k| digest(&k))
            .collect();
        digests.sort_unstable();
        digests.dedup();
        ApiKeys { digests }
    }

    /// How many distinct keys are configured.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// True when no key is configured (the API is open).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys. Every configured key is compared, each in
    /// constant time, whatever matched.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        let mut matched = subtle::Choice::from(0u8);
        for key in &self.digests {
            matched |= key.ct_eq(&presented);
        }
        bool::from(matched)
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The keys of a key file: one per line, blank lines and `#` comments ignored. `path`
/// names the file in every error; a file with no key is an error (an empty key file is
/// almost certainly a mistake, and starting open would be the unsafe reading of it).
pub fn read_key_file(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?;
    let keys = parse_key_lines(&text);
    if keys.is_empty() {
        return Err(format!(
            "the API key file {} holds no key (one key per line; blank lines and # comments are ignored)",
            path.display()
        ));
    }
    Ok(keys)
}

/// The keys of a key file's text.
pub fn parse_key_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The keys of `SIPHON_API_KEYS`: comma-separated, blanks ignored.
pub fn parse_key_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// The bearer token of an `Authorization` header value, if it is one.
fn bearer(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether the request may use the API: no key is configured, or it presents one of
/// them. For the console's session probe, which must not answer 401 itself.
pub(crate) fn authorized(keys: &ApiKeys, headers: &axum::http::HeaderMap) -> bool {
    keys.is_empty()
        || headers
            .get(header::AUTHORIZATION)
            .and_then(bearer)
            .is_some_and(|token| keys.accepts(token))
}

/// The middleware: passes a request with a configured key (or any request when no key is
/// configured, or one for `/healthz`, `/readyz` or the console's assets), answers 401
/// otherwise.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let keys = &state.api_keys;
    if keys.is_empty() || is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request.headers().get(header::AUTHORIZATION).map(bearer);
    let message = match presented {
        Some(Some(token)) if keys.accepts(token) => return next.run(request).await,
        Some(Some(_)) => "the API key is not valid",
        Some(None) => "the Authorization header must be `Bearer <key>`",
        None => "this server needs an API key: send `Authorization: Bearer <key>`",
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"siphon\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_exactly() {
        let keys = ApiKeys::new(["alpha", " beta ", ""]);
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts("alpha"));
        assert!(keys.accepts("beta"));
        assert!(!keys.accepts("alph"));
        assert!(!keys.accepts("alphaa"));
        assert!(!keys.accepts(""));
        assert!(ApiKeys::new(Vec::<String>::new()).is_empty());
        assert_eq!(format!("{keys:?}"), "ApiKeys(2 configured)");
    }

    #[test]
    fn key_files_and_lists_parse() {
        assert_eq!(
            parse_key_lines("# ops\n\n  k1  \r\n#k2\nk3\n"),
            vec!["k1".to_string(), "k3".to_string()]
        );
        assert_eq!(parse_key_list(" a, ,b,"), vec!["a".to_string(), "b".into()]);
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("keys.txt");
        std::fs::write(&empty, "# nothing\n\n").unwrap();
        let e = read_key_file(&empty).unwrap_err();
        assert!(e.contains("keys.txt") && e.contains("no key"), "{e}");
        let e = read_key_file(&dir.path().join("missing.txt")).unwrap_err();
        assert!(e.contains("missing.txt"), "{e}");
    }

    #[test]
    fn bearer_headers_parse() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&h("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&h("Basic abc")), None);
        assert_eq!(bearer(&h("Bearer")), None);
    }
}
