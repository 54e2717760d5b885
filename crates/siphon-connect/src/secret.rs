//! Secrets and their redaction.
//!
//! A secret must never reach a log line, an error message, a system table or a status
//! page, and is sent only to the endpoint's origin. What counts as a secret:
//! * the values of the options `password`, `token`, `api_key` and `client_secret`;
//! * the value of a header that carries a credential ([`is_secret_header`]:
//!   `Authorization`, `Proxy-Authorization`, `Cookie`, and any name whose last word ends
//!   in key, token, secret, signature or password, e.g. `X-API-Key`, `X-Auth-Token`), and
//!   also the credential after an auth scheme on its own (`abc` of `Token abc`; for
//!   `Basic`, the decoded `user:password` and the password);
//! * the value of a query parameter named like a credential ([`is_secret_param`]: key,
//!   token, secret, signature, password, appid, ...), in `query_params` or in a URL;
//! * the password of a URL's user info;
//! * every value substituted from `${NAME}` or `{{ NAME }}`;
//! * OAuth2 access tokens, learnt while running (see [`LearntSecrets`]).
//!
//! Two mechanisms keep them out of text: [`Secret`] prints as `***` in `Debug` and
//! `Display`, and a [`Redactor`] built from every secret a source holds scrubs any text
//! (an error from the HTTP client quoting a URL, say) before it leaves the source.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, Weak};

use base64::Engine as _;

/// What a redacted value prints as.
pub const REDACTED: &str = "***";

/// Option names whose values are secrets wherever they appear.
pub const SECRET_OPTIONS: &[&str] = &["password", "token", "api_key", "client_secret"];

/// Endings of a name's last word that make a header or query parameter a credential.
const SECRET_WORD_ENDINGS: &[&str] = &["key", "token", "secret", "signature", "password"];

/// Whole words that make a query parameter a credential.
const SECRET_PARAM_WORDS: &[&str] = &["appid", "sig", "passwd", "pwd", "auth"];

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

/// The words of a name: split at anything not alphanumeric and at lower-to-upper case
/// changes (`X-Api-Key` → x, api, key; `accessToken` → access, token).
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn names_a_credential(name: &str, whole_words: &[&str]) -> bool {
    words(name).iter().any(|w| {
        SECRET_WORD_ENDINGS.iter().any(|e| w.ends_with(e)) || whole_words.contains(&w.as_str())
    })
}

/// Whether a header of this name carries a credential: `Authorization`,
/// `Proxy-Authorization`, `Cookie`, and any name with a word ending in key, token, secret,
/// signature or password (`X-API-Key`, `X-Auth-Token`, `apikey`, `X-Client-Secret`).
pub fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "authorization"
        || lower == "proxy-authorization"
        || lower == "cookie"
        || names_a_credential(name, &[])
}

/// Whether a query parameter of this name carries a credential: a word ending in key,
/// token, secret, signature or password (`api_key`, `apiKey`, `access_token`,
/// `X-Amz-Signature`), or one of appid, sig, passwd, pwd, auth.
pub fn is_secret_param(name: &str) -> bool {
    names_a_credential(name, SECRET_PARAM_WORDS)
}

/// The secrets in a URL: its user-info password and the values of its query parameters
/// named like credentials.
pub fn url_secrets(url: &str) -> Vec<String> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(password) = parsed.password() {
        out.push(password.to_string());
        // The URL keeps it percent-encoded; messages may quote it decoded.
        let decoded: String = url::form_urlencoded::parse(format!("p={password}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
            .unwrap_or_default();
        if decoded != password {
            out.push(decoded);
        }
    }
    out.extend(
        parsed
            .query_pairs()
            .filter(|(k, _)| is_secret_param(k))
            .map(|(_, v)| v.into_owned()),
    );
    out
}

/// The scrubbed values of a credential header's value: the value, and when it is
/// `<scheme> <credential>`, the credential alone (and for `Basic`, the decoded
/// `user:password` and the password).
pub fn credential_parts(value: &str) -> Vec<String> {
    let value = value.trim();
    let mut out = vec![value.to_string()];
    if let Some((scheme, credential)) = value.split_once(char::is_whitespace) {
        let credential = credential.trim();
        let is_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if is_scheme && !credential.is_empty() {
            out.push(credential.to_string());
            if scheme.eq_ignore_ascii_case("basic")
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(credential)
                && let Ok(decoded) = String::from_utf8(bytes)
            {
                if let Some((_, password)) = decoded.split_once(':') {
                    out.push(password.to_string());
                }
                out.push(decoded);
            }
        }
    }
    out
}

type Learnt = RwLock<Vec<Secret>>;

/// Scrubs known secret values out of arbitrary text.
///
/// Besides the secrets added to it, a redactor knows the secrets learnt while running
/// (OAuth2 access tokens) through its [`LearntSecrets`] handle; its clones share them.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Vec<Secret>,
    learnt: Arc<Learnt>,
}

/// A handle that sets the run-time secrets of a [`Redactor`] (and of all its clones)
/// without keeping the redactor alive: an OAuth2 token provider holds one per table of
/// its connection, so a token fetched for one table is scrubbed from every table's text.
#[derive(Clone, Debug)]
pub struct LearntSecrets(Weak<Learnt>);

impl LearntSecrets {
    /// Replaces the learnt secrets. Returns false when the redactor is gone.
    pub fn set(&self, values: &[Secret]) -> bool {
        match self.0.upgrade() {
            Some(learnt) => {
                *learnt.write().unwrap_or_else(PoisonError::into_inner) = values
                    .iter()
                    .filter(|s| s.expose().len() >= MIN_LEN)
                    .cloned()
                    .collect();
                true
            }
            None => false,
        }
    }
}

/// Values shorter than this are not scrubbed (see [`Redactor::add`]).
const MIN_LEN: usize = 4;

impl Redactor {
    /// Adds a value to scrub. Very short values (under 4 bytes) are skipped: scrubbing them
    /// would mangle ordinary text while protecting nothing a brute force would not find.
    pub fn add(&mut self, value: &str) {
        if value.len() >= MIN_LEN && !self.secrets.iter().any(|s| s.expose() == value) {
            self.secrets.push(Secret::new(value));
            // Longest first, so a secret that contains another is scrubbed whole.
            self.secrets
                .sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        }
    }

    /// Adds the value of a credential header: the whole value and the credential after
    /// its scheme (see [`credential_parts`]).
    pub fn add_credential(&mut self, value: &str) {
        for part in credential_parts(value) {
            self.add(&part);
        }
    }

    /// Adds every value of `other`, and nothing of its learnt secrets.
    pub fn extend(&mut self, other: &Redactor) {
        for s in &other.secrets {
            self.add(s.expose());
        }
    }

    /// The handle through which run-time secrets reach this redactor and its clones.
    pub fn learner(&self) -> LearntSecrets {
        LearntSecrets(Arc::downgrade(&self.learnt))
    }

    fn with_all<T>(&self, f: impl FnOnce(&[&Secret]) -> T) -> T {
        let learnt = self.learnt.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<&Secret> = self.secrets.iter().chain(learnt.iter()).collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        f(&all)
    }

    /// Returns `text` with every known secret (and its URL-encoded form) replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.with_all(|all| {
            let mut out = text.to_string();
            for secret in all {
                let raw = secret.expose();
                if out.contains(raw) {
                    out = out.replace(raw, REDACTED);
                }
                let encoded = url_encoded(raw);
                if encoded != raw && out.contains(&encoded) {
                    out = out.replace(&encoded, REDACTED);
                }
            }
            out
        })
    }

    /// Whether `text` holds a known secret (plain or URL-encoded).
    pub fn reveals(&self, text: &str) -> bool {
        self.with_all(|all| {
            all.iter()
                .any(|s| text.contains(s.expose()) || text.contains(&url_encoded(s.expose())))
        })
    }
}

fn url_encoded(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
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
        assert!(r.reveals(text));
        assert!(!r.reveals("nothing here; ab"));
    }

    #[test]
    fn secret_headers_are_recognised() {
        for h in [
            "Authorization",
            "X-API-Key",
            "x-auth-token",
            "Cookie",
            "X-Client-Secret",
            "apikey",
            "X-Amz-Signature",
            "X-Api_Key",
        ] {
            assert!(is_secret_header(h), "{h}");
        }
        for h in [
            "Accept",
            "Content-Type",
            "X-Keyboard",
            "X-Tokens-Left",
            "X-Tenant",
        ] {
            assert!(!is_secret_header(h), "{h}");
        }
    }

    #[test]
    fn secret_params_are_recognised() {
        for p in [
            "key",
            "api_key",
            "apiKey",
            "apikey",
            "access_token",
            "client_secret",
            "X-Amz-Signature",
            "sig",
            "appid",
            "password",
        ] {
            assert!(is_secret_param(p), "{p}");
        }
        for p in ["keyword", "limit", "page", "q", "sort", "tokens_left"] {
            assert!(!is_secret_param(p), "{p}");
        }
    }

    #[test]
    fn the_credential_after_a_scheme_is_a_secret_on_its_own() {
        let mut r = Redactor::default();
        r.add_credential("Token abc-123");
        assert_eq!(r.redact("rejected abc-123"), "rejected ***");
        let mut r = Redactor::default();
        // base64("user:pw-9x")
        r.add_credential("Basic dXNlcjpwdy05eA==");
        assert_eq!(
            r.redact("user:pw-9x / pw-9x / dXNlcjpwdy05eA=="),
            "*** / *** / ***"
        );
        // A value with no scheme is one secret.
        assert_eq!(credential_parts("abcdef"), ["abcdef"]);
    }

    #[test]
    fn url_secrets_are_the_password_and_credential_parameters() {
        assert_eq!(
            url_secrets("https://me:p%40ss-1@h/x?appid=a-1&limit=5&access_token=t-2"),
            ["p%40ss-1", "p@ss-1", "a-1", "t-2"]
        );
        assert!(url_secrets("not a url").is_empty());
    }

    #[test]
    fn learnt_secrets_reach_every_clone_until_the_redactor_is_gone() {
        let r = Redactor::default();
        let clone = r.clone();
        let learner = r.learner();
        assert!(learner.set(&[Secret::new("tok-1234"), Secret::new("ab")]));
        assert_eq!(clone.redact("tok-1234 ab"), "*** ab");
        assert!(r.reveals("x tok-1234"));
        assert!(learner.set(&[Secret::new("tok-5678")]));
        assert_eq!(r.redact("tok-1234 tok-5678"), "tok-1234 ***");
        drop(r);
        drop(clone);
        assert!(!learner.set(&[Secret::new("tok-9999")]));
    }
}
