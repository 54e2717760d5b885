//! What the command-line clients (`siphon sql`, `status`, `push`, `consume`) share: the
//! API key on every request, the message for a 401, and reading the server's JSON error
//! `{"error": "...", "detail": ...}`.

use reqwest::StatusCode;
use serde_json::Value;

/// Exit code for a request the server refused for want of a valid API key: the invocation
/// is missing something, as with any other invalid input (SPEC §2).
pub const EXIT_UNAUTHORIZED: u8 = crate::EXIT_INVALID;

/// Adds `Authorization: Bearer <key>` when a key is given.
pub fn authorized(
    request: reqwest::RequestBuilder,
    api_key: Option<&str>,
) -> reqwest::RequestBuilder {
    match api_key {
        Some(key) if !key.is_empty() => request.bearer_auth(key),
        _ => request,
    }
}

/// The explanation printed for a 401.
pub fn unauthorized_message(server: &str, api_key: Option<&str>, body: &str) -> String {
    let said = server_error(body)
        .map(|(e, _)| format!(" ({e})"))
        .unwrap_or_default();
    match api_key {
        Some(_) => format!(
            "{server} refused the API key{said}: check the key passed with --api-key or SIPHON_API_KEY"
        ),
        None => {
            format!("{server} needs an API key{said}: pass --api-key KEY or set SIPHON_API_KEY")
        }
    }
}

/// Whether a response status is 401.
pub fn is_unauthorized(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED
}

/// The `error` text and `detail` of a JSON error body.
pub fn server_error(body: &str) -> Option<(String, Option<Value>)> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?.as_str()?.to_string();
    let detail = value.get("detail").filter(|d| !d.is_null()).cloned();
    Some((error, detail))
}

/// The error of a non-success body for a message: the server's `error` (and `detail`), or
/// the start of the body when it is not the JSON error shape.
pub fn describe_error(status: StatusCode, body: &str) -> String {
    match server_error(body) {
        Some((error, None)) => error,
        Some((error, Some(detail))) => format!("{error} (detail: {detail})"),
        None => {
            let text: String = body.chars().take(300).collect();
            if text.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {}", text.trim())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_described() {
        let body = r#"{"error": "bad record", "detail": {"line": 2}}"#;
        assert_eq!(
            describe_error(StatusCode::BAD_REQUEST, body),
            r#"bad record (detail: {"line":2})"#
        );
        assert_eq!(
            describe_error(
                StatusCode::NOT_FOUND,
                r#"{"error":"no table","detail":null}"#
            ),
            "no table"
        );
        assert_eq!(
            describe_error(StatusCode::BAD_GATEWAY, "oops"),
            "HTTP 502 Bad Gateway: oops"
        );
        let m = unauthorized_message("http://x", None, r#"{"error":"needs a key"}"#);
        assert!(
            m.contains("--api-key") && m.contains("SIPHON_API_KEY"),
            "{m}"
        );
        let m = unauthorized_message("http://x", Some("k"), "");
        assert!(m.contains("refused the API key"), "{m}");
    }
}
