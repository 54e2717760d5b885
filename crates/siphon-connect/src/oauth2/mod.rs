//! OAuth 2.0 client-credentials tokens (RFC 6749 §4.4) for `auth_type = 'oauth2'`.
//!
//! One [`TokenProvider`] serves a connection and every table that polls through it, so it
//! owns what those tables must share: the cached access token, the single in-flight token
//! request (N tables asking at once cause one request, not N), the client-authentication
//! method the token endpoint accepted, and a [`Redactor`] that knows the client secret and
//! the tokens issued, so that no error message can leak them even when a token endpoint
//! echoes what it was sent. Every table of the connection learns each issued token too
//! ([`TokenProvider::share_tokens_with`]), so its own messages are scrubbed of it.
//!
//! The token request follows redirects through [`crate::redirect::send`]: a hop to another
//! origin loses the Basic client credentials, and is refused when the form body carries
//! the client secret.
//!
//! Chosen behaviours, where RFC 6749 leaves room:
//! * Client authentication starts with HTTP Basic (§2.3.1, the method servers must
//!   support). A 401, or a 400 with `error = invalid_client`, to a Basic attempt is retried
//!   once with `client_id`/`client_secret` in the form body; when that works the provider
//!   keeps using the body for later fetches.
//! * A response without `expires_in` is taken to live [`DEFAULT_LIFETIME`] (one hour, the
//!   most common real lifetime); a 401 from the API still invalidates it earlier.
//!   Lifetimes are capped at [`MAX_LIFETIME`].
//! * A token is refreshed ahead of expiry by [`refresh_margin`]: 10 % of its lifetime,
//!   at least 1 s and at most 60 s, and never more than half the lifetime.
//! * A failed refresh is not cached: the next call tries again. While the previous token
//!   has not actually expired yet (it is only inside the refresh margin), a failed refresh
//!   hands out that previous token rather than failing a poll that would still succeed.

use crate::error_chain;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use tokio::time::Instant;

use crate::secret::{LearntSecrets, Redactor, Secret};

mod response;
#[cfg(test)]
mod tests;

/// How long one token request may take, connect to the end of the body.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The lifetime assumed when the token response has no `expires_in`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The longest lifetime believed: a larger `expires_in` is capped to this.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The most bytes of a token response that are read.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How many characters of an error response's body an error message quotes.
const BODY_EXCERPT: usize = 300;

/// How many of the latest issued tokens the redactor keeps scrubbing.
const REMEMBERED_TOKENS: usize = 4;

/// Where the client-credentials grant gets its tokens.
#[derive(Clone, Debug)]
pub struct OAuth2Config {
    /// The token endpoint (`token_url`).
    pub token_url: String,
    /// The client identifier (`client_id`).
    pub client_id: String,
    /// The client secret (`client_secret`).
    pub client_secret: Secret,
    /// The requested scope (`scope`), sent only when set and not blank.
    pub scope: Option<String>,
}

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-urlencoded `client_id:client_secret`.
    Basic,
    /// `client_id` and `client_secret` as fields of the form body.
    Body,
}

/// Why no access token could be obtained. Messages never carry the client secret or a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OAuth2Error {
    /// `token_url` is not a usable URL.
    #[error("invalid OAuth2 token_url {url:?}: {message}")]
    InvalidUrl {
        /// The redacted URL as configured.
        url: String,
        /// Why it was rejected.
        message: String,
    },
    /// No response: connection refused, DNS, TLS, reset, or a broken body.
    #[error("token request to {url} failed: {message}")]
    Transport {
        /// The redacted token URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The token request took longer than its timeout.
    #[error("token request to {url} timed out after {timeout_ms} ms")]
    Timeout {
        /// The redacted token URL.
        url: String,
        /// The timeout.
        timeout_ms: u128,
    },
    /// The token endpoint answered with a status that is not a success.
    #[error("token endpoint {url} answered HTTP {status}: {detail}")]
    Status {
        /// The redacted token URL.
        url: String,
        /// The status code.
        status: u16,
        /// The RFC 6749 §5.2 `error` code, when the body has one.
        error: Option<String>,
        /// The `error` code with its `error_description`, or else an excerpt of the body.
        detail: String,
    },
    /// A success status, but not a usable token response.
    #[error("unexpected response from token endpoint {url}: {message}")]
    BadResponse {
        /// The redacted token URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The endpoint issued a token of a type other than bearer.
    #[error(
        "token endpoint {url} issued a token of type {token_type:?}; only bearer tokens are supported"
    )]
    UnsupportedTokenType {
        /// The redacted token URL.
        url: String,
        /// The `token_type` it sent (shortened).
        token_type: String,
    },
}

impl OAuth2Error {
    /// Whether the endpoint refused the client's credentials (a reason to retry with the
    /// credentials in the body instead of HTTP Basic).
    fn rejects_client(&self) -> bool {
        match self {
            OAuth2Error::Status { status: 401, .. } => true,
            OAuth2Error::Status {
                status: 400,
                error: Some(error),
                ..
            } => error == "invalid_client",
            _ => false,
        }
    }
}

/// The refresh margin for a token of this lifetime: 10 % of it, at least 1 s and at most
/// 60 s, and never more than half the lifetime (so a 2 s token is used for 1 s).
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10)
        .clamp(Duration::from_secs(1), Duration::from_secs(60))
        .min(lifetime / 2)
}

/// A token as cached.
struct Cached {
    token: Secret,
    /// From here on a new token is fetched.
    refresh_at: Instant,
    /// From here on the token is not handed out at all.
    expires_at: Instant,
}

/// The provider's mutable state. Guarded by a plain mutex never held across an await.
struct Inner {
    cached: Option<Cached>,
    client_auth: ClientAuth,
    /// Completed fetches, successful or not: tells a caller that waited for the in-flight
    /// fetch whether that fetch finished while it waited.
    generation: u64,
    /// The error of the latest completed fetch, if it failed.
    last_error: Option<OAuth2Error>,
    /// The latest issued tokens, scrubbed from messages.
    recent_tokens: VecDeque<Secret>,
    redactor: Redactor,
    /// The redactors of the tables polling with these tokens.
    learners: Vec<LearntSecrets>,
}

impl Inner {
    fn fresh(&self, now: Instant) -> Option<Secret> {
        self.cached
            .as_ref()
            .filter(|c| now < c.refresh_at)
            .map(|c| c.token.clone())
    }

    fn unexpired(&self, now: Instant) -> Option<Secret> {
        self.cached
            .as_ref()
            .filter(|c| now < c.expires_at)
            .map(|c| c.token.clone())
    }
}

/// What a successful token request gave.
struct Fetched {
    token: Secret,
    lifetime: Duration,
    /// When the request was sent: the lifetime counts from there (conservatively).
    requested_at: Instant,
}

/// Access tokens for one connection: cached, refreshed ahead of expiry, fetched by one
/// request at a time. `Send + Sync`; share it as `Arc<TokenProvider>`.
pub struct TokenProvider {
    config: OAuth2Config,
    client: reqwest::Client,
    timeout: Duration,
    /// The base64 Basic credential, scrubbed from messages like the secret itself.
    basic_credentials: Secret,
    inner: Mutex<Inner>,
    /// Held by the one caller that fetches; the others wait on it.
    flight: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl TokenProvider {
    /// A provider that fetches with `client` (normally the shared
    /// [`http_client`](crate::source::http_client)). Nothing is requested until
    /// [`token`](Self::token) is called.
    pub fn new(config: OAuth2Config, client: reqwest::Client) -> Self {
        let basic_credentials =
            Secret::new(basic_credentials(&config.client_id, &config.client_secret));
        let provider = TokenProvider {
            config,
            client,
            timeout: REQUEST_TIMEOUT,
            basic_credentials,
            inner: Mutex::new(Inner {
                cached: None,
                client_auth: ClientAuth::Basic,
                generation: 0,
                last_error: None,
                recent_tokens: VecDeque::new(),
                redactor: Redactor::default(),
                learners: Vec::new(),
            }),
            flight: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        };
        let redactor = provider.build_redactor(&VecDeque::new());
        provider.lock().redactor = redactor;
        provider
    }

    /// Replaces the per-request timeout ([`REQUEST_TIMEOUT`] by default).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &OAuth2Config {
        &self.config
    }

    /// The client-authentication method the next token request will use.
    pub fn client_auth(&self) -> ClientAuth {
        self.lock().client_auth
    }

    /// A valid access token: from the cache, or fetched. Concurrent callers while a fetch is
    /// in flight wait for that one fetch and share its outcome (single flight: N tables
    /// never cause N token requests). A failed fetch is not cached: the next call tries again.
    pub async fn token(&self) -> Result<Secret, OAuth2Error> {
        let seen = {
            let inner = self.lock();
            if let Some(token) = inner.fresh(Instant::now()) {
                return Ok(token);
            }
            inner.generation
        };
        let _flight = self.flight.lock().await;
        {
            let inner = self.lock();
            if let Some(token) = inner.fresh(Instant::now()) {
                return Ok(token);
            }
            if inner.generation != seen {
                // A fetch finished while this caller waited: its outcome is ours too.
                match &inner.last_error {
                    Some(error) => {
                        return inner.unexpired(Instant::now()).ok_or_else(|| error.clone());
                    }
                    None => {
                        if let Some(cached) = &inner.cached {
                            return Ok(cached.token.clone());
                        }
                        // Invalidated meanwhile: fetch anew.
                    }
                }
            }
        }

        let outcome = self.fetch().await;
        let mut inner = self.lock();
        inner.generation += 1;
        match outcome {
            Ok(fetched) => {
                let margin = refresh_margin(fetched.lifetime);
                inner.cached = Some(Cached {
                    token: fetched.token.clone(),
                    refresh_at: fetched.requested_at + (fetched.lifetime - margin),
                    expires_at: fetched.requested_at + fetched.lifetime,
                });
                inner.last_error = None;
                inner.recent_tokens.push_front(fetched.token.clone());
                inner.recent_tokens.truncate(REMEMBERED_TOKENS);
                inner.redactor = self.build_redactor(&inner.recent_tokens);
                let tokens: Vec<Secret> = inner.recent_tokens.iter().cloned().collect();
                inner.learners.retain(|learner| learner.set(&tokens));
                Ok(fetched.token)
            }
            Err(error) => {
                inner.last_error = Some(error.clone());
                match inner.unexpired(Instant::now()) {
                    Some(previous) => {
                        tracing::warn!(
                            token_url = %inner.redactor.redact(&self.config.token_url),
                            error = %error,
                            "OAuth2 token refresh failed; using the current token until it expires"
                        );
                        Ok(previous)
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// Called after a 401 from the API with the token it `rejected`: drops it from the cache
    /// if it is still the cached one, so the next [`token`](Self::token) fetches anew. A
    /// token another caller already replaced is not dropped.
    pub fn invalidate(&self, rejected: &Secret) {
        let mut inner = self.lock();
        if inner.cached.as_ref().is_some_and(|c| c.token == *rejected) {
            tracing::debug!(
                token_url = %inner.redactor.redact(&self.config.token_url),
                "OAuth2 access token rejected; the next request fetches a new one"
            );
            inner.cached = None;
        }
    }

    /// Makes every token this provider issues (the latest few, as here) a secret of the
    /// redactor behind `learner`: a table's messages are scrubbed of the connection's
    /// tokens, whichever table's poll fetched them. Learners whose redactor is gone are
    /// dropped at the next fetch.
    pub fn share_tokens_with(&self, learner: LearntSecrets) {
        let mut inner = self.lock();
        let tokens: Vec<Secret> = inner.recent_tokens.iter().cloned().collect();
        if learner.set(&tokens) {
            inner.learners.push(learner);
        }
    }

    /// How many token requests were made (each HTTP request counts, so a fetch that fell back
    /// from Basic to body credentials counts two).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn redact(&self, text: &str) -> String {
        self.lock().redactor.redact(text)
    }

    fn build_redactor(&self, tokens: &VecDeque<Secret>) -> Redactor {
        let mut redactor = Redactor::default();
        redactor.add(self.config.client_secret.expose());
        redactor.add(self.basic_credentials.expose());
        for token in tokens {
            redactor.add(token.expose());
        }
        redactor
    }

    /// One fetch: a token request, and once more with body credentials if the endpoint
    /// refused HTTP Basic.
    async fn fetch(&self) -> Result<Fetched, OAuth2Error> {
        let url = reqwest::Url::parse(self.config.token_url.trim()).map_err(|e| {
            OAuth2Error::InvalidUrl {
                url: self.redact(&self.config.token_url),
                message: e.to_string(),
            }
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OAuth2Error::InvalidUrl {
                url: self.redact(&self.config.token_url),
                message: format!("scheme {:?} is not http or https", url.scheme()),
            });
        }
        let method = self.client_auth();
        match self.request(&url, method).await {
            Err(error) if method == ClientAuth::Basic && error.rejects_client() => {
                tracing::debug!(
                    token_url = %self.redact(url.as_str()),
                    error = %error,
                    "token endpoint refused HTTP Basic client authentication; retrying with credentials in the body"
                );
                let fetched = self.request(&url, ClientAuth::Body).await?;
                self.lock().client_auth = ClientAuth::Body;
                Ok(fetched)
            }
            other => other,
        }
    }

    /// The form body of a token request. (A separate function because the form serializer
    /// is not `Send` and must not live across an await.)
    fn form_body(&self, method: ClientAuth) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = self
            .config
            .scope
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            form.append_pair("scope", scope);
        }
        if method == ClientAuth::Body {
            form.append_pair("client_id", &self.config.client_id);
            form.append_pair("client_secret", self.config.client_secret.expose());
        }
        form.finish()
    }

    /// One token request.
    async fn request(
        &self,
        url: &reqwest::Url,
        method: ClientAuth,
    ) -> Result<Fetched, OAuth2Error> {
        let url_text = self.redact(url.as_str());
        let mut builder = self
            .client
            .post(url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(self.form_body(method));
        if method == ClientAuth::Basic {
            // Base64 output is always a valid header value.
            if let Ok(mut value) =
                HeaderValue::from_str(&format!("Basic {}", self.basic_credentials.expose()))
            {
                value.set_sensitive(true);
                builder = builder.header(AUTHORIZATION, value);
            }
        }

        tracing::debug!(token_url = %url_text, client_auth = ?method, "requesting an OAuth2 access token");
        let requested_at = Instant::now();
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                OAuth2Error::Timeout {
                    url: url_text.clone(),
                    timeout_ms: self.timeout.as_millis(),
                }
            } else {
                OAuth2Error::Transport {
                    url: url_text.clone(),
                    message: self.redact(&error_chain(&e)),
                }
            }
        };
        let request = builder.build().map_err(transport)?;
        let redactor = self.lock().redactor.clone();
        let secrets = crate::redirect::Secrets {
            redactor: &redactor,
            headers: &[],
        };
        let mut response = match crate::redirect::send(&self.client, request, secrets).await {
            Ok(response) => response,
            Err(crate::redirect::SendError::Transport(e)) => return Err(transport(e)),
            Err(crate::redirect::SendError::Redirect(e)) => {
                return Err(OAuth2Error::Transport {
                    url: url_text,
                    message: self.redact(&e.to_string()),
                });
            }
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(OAuth2Error::BadResponse {
                    url: url_text,
                    message: format!("HTTP {status} response exceeds {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }

        if !(200..300).contains(&status) {
            let (error, detail) = match response::error_fields(&body) {
                Some(fields) => {
                    let detail = match &fields.description {
                        Some(description) => format!("{}: {description}", fields.error),
                        None => fields.error.clone(),
                    };
                    (
                        Some(self.redact(&fields.error)),
                        shorten(&self.redact(&detail), BODY_EXCERPT),
                    )
                }
                None => (None, excerpt(&self.redact(&String::from_utf8_lossy(&body)))),
            };
            return Err(OAuth2Error::Status {
                url: url_text,
                status,
                error,
                detail,
            });
        }

        match response::parse_token(&body, content_type.as_deref()) {
            Ok(parsed) => {
                let lifetime = parsed
                    .expires_in
                    .unwrap_or(DEFAULT_LIFETIME)
                    .min(MAX_LIFETIME);
                tracing::debug!(
                    token_url = %url_text,
                    expires_in_s = lifetime.as_secs_f64(),
                    expires_in_sent = parsed.expires_in.is_some(),
                    "received an OAuth2 access token"
                );
                Ok(Fetched {
                    token: Secret::new(parsed.access_token),
                    lifetime,
                    requested_at,
                })
            }
            Err(response::Problem::UnsupportedType(token_type)) => {
                Err(OAuth2Error::UnsupportedTokenType {
                    url: url_text,
                    token_type: shorten(&self.redact(&token_type), 40),
                })
            }
            Err(response::Problem::Bad(message)) => Err(OAuth2Error::BadResponse {
                url: url_text,
                message: self.redact(&message),
            }),
        }
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("TokenProvider")
            .field("token_url", &inner.redactor.redact(&self.config.token_url))
            .field("client_id", &self.config.client_id)
            .field("client_secret", &self.config.client_secret)
            .field("scope", &self.config.scope)
            .field("client_auth", &inner.client_auth)
            .field("has_token", &inner.cached.is_some())
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

/// `base64(urlencode(client_id) ":" urlencode(client_secret))`, RFC 6749 §2.3.1.
fn basic_credentials(client_id: &str, client_secret: &Secret) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        encode(client_id),
        encode(client_secret.expose())
    ))
}

/// The start of an (already redacted) body, whitespace collapsed.
fn excerpt(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        "(empty body)".into()
    } else {
        shorten(&collapsed, BODY_EXCERPT)
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
