//! Secrets and their redaction.
//!
//! A secret (a password, token, API key, client secret, or the value of a header such as
//! `Authorization`) must never reach a log line, an error message, a system table or a
//! status page. Two mechanisms keep it out: [`Secret`] prints as `***` in `Debug` and
//! `Display`, and a [`Redactor`] built from every secret a source holds scrubs any text
//! (an error from the HTTP client quoting a URL, say) before it leaves the source.

use std::fmt;

/// What a redacted value prints as.
pub const REDACTED: &str = "***";

/// Option names whose values are secrets wherever they appear.
pub const SECRET_OPTIONS: &[&str] = &["password", "token", "api_key", "client_secret"];

/// A string that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Whether an option of this name holds a secret.
pub fn is_secret_option(key: &str) -> bool {
    SECRET_OPTIONS.contains(&key.to_ascii_lowercase().as_str())
}

/// Whether a header of this name carries a credential: `Authorization`,
/// `Proxy-Authorization`, `Cookie`, and any `*-Key`, `*-Token`, `*-Secret`.
pub fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "authorization"
        || lower == "proxy-authorization"
        || lower == "cookie"
        || lower.ends_with("-key")
        || lower.ends_with("-token")
        || lower.ends_with("-secret")
        || lower.ends_with("_key")
        || lower.ends_with("_token")
}

/// Scrubs known secret values out of arbitrary text.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Vec<Secret>,
}

impl Redactor {
    /// Adds a value to scrub. Very short values (under 4 bytes) are skipped: scrubbing them
    /// would mangle ordinary text while protecting nothing a brute force would not find.
    pub fn add(&mut self, value: &str) {
        if value.len() >= 4 && !self.secrets.iter().any(|s| s.expose() == value) {
            self.secrets.push(Secret::new(value));
            // Longest first, so a secret that contains another is scrubbed whole.
            self.secrets
                .sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        }
    }

    /// Returns `text` with every known secret (and its URL-encoded form) replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            let raw = secret.expose();
            if out.contains(raw) {
                out = out.replace(raw, REDACTED);
            }
            let encoded: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
            if encoded != raw && out.contains(&encoded) {
                out = out.replace(&encoded, REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter22");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter22");
    }

    #[test]
    fn redactor_scrubs_plain_and_url_encoded_forms() {
        let mut r = Redactor::default();
        r.add("s3cr3t/+=");
        r.add("ab");
        let text = "GET http://x/?k=s3cr3t%2F%2B%3D failed; token s3cr3t/+= ab";
        assert_eq!(r.redact(text), "GET http://x/?k=*** failed; token *** ab");
    }

    #[test]
    fn secret_headers_are_recognised() {
        for h in [
            "Authorization",
            "X-API-Key",
            "x-auth-token",
            "Cookie",
            "X-Client-Secret",
        ] {
            assert!(is_secret_header(h), "{h}");
        }
        for h in ["Accept", "Content-Type", "X-Keyboard"] {
            assert!(!is_secret_header(h), "{h}");
        }
    }
}
