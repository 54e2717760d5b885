//! Poll one URL until conditions hold: the engine of `siphon wait` (SPEC §4) and of each
//! step of a Rocketship-style steps file (`steps`).
//!
//! The schedule: attempt 1 at once; after attempt n, wait `interval × coefficient^(n−1)`,
//! but never past the deadline (`timeout` after the start), so the last attempt is made at
//! the deadline at the latest. Each request may take at most what is left until the
//! deadline (at least [`LAST_REQUEST_FLOOR`], so an attempt made at the deadline can still
//! be answered). Network errors and HTTP errors count as attempts whose conditions did not
//! hold, and are retried the same way. The run fails when the deadline has passed or
//! `max_attempts` attempts were made, whichever comes first, naming the attempts, the last
//! status, an excerpt of the last body and the condition that did not hold.

pub mod path;
pub mod steps;

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use siphon_connect::error_chain;
use siphon_connect::redirect::{self, Secrets};
use siphon_connect::secret::{Redactor, is_secret_header};
use tokio::time::Instant;

use path::{JsonPath, json_equal};

/// The least time a request is given, even when the deadline is nearer.
pub const LAST_REQUEST_FLOOR: Duration = Duration::from_millis(250);

/// How much of the last body a failure message quotes.
const BODY_EXCERPT_CHARS: usize = 500;

/// One request, as built from the command line or a step.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// GET, POST, ...
    pub method: Method,
    /// The URL.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<String>,
}

/// When to try again and when to give up.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Wait after the first attempt.
    pub interval: Duration,
    /// Give up once this much time has passed since the start.
    pub timeout: Duration,
    /// Give up after this many attempts.
    pub max_attempts: Option<u32>,
    /// Each wait is the previous one times this (1.0: a fixed interval).
    pub backoff_coefficient: f64,
}

impl Schedule {
    /// One attempt, for a step without `polling`.
    pub fn once(timeout: Duration) -> Self {
        Schedule {
            interval: Duration::ZERO,
            timeout,
            max_attempts: Some(1),
            backoff_coefficient: 1.0,
        }
    }

    /// The wait after attempt `attempt` (1-based): `interval × coefficient^(attempt−1)`.
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let factor = self
            .backoff_coefficient
            .powi(attempt.saturating_sub(1).min(i32::MAX as u32) as i32);
        Duration::try_from_secs_f64(self.interval.as_secs_f64() * factor).unwrap_or(Duration::MAX)
    }
}

/// A condition on a response.
#[derive(Clone, Debug)]
pub enum Condition {
    /// The status code equals this.
    Status(u16),
    /// The value at the path equals this JSON value.
    JsonEquals(JsonPath, Value),
    /// The path is present (true) or absent (false).
    JsonExists(JsonPath, bool),
    /// The header (name case-insensitive) has exactly this value.
    Header(String, String),
}

impl Condition {
    /// `None` when the condition holds; else what was found instead.
    fn unmet(&self, response: &Fetched) -> Option<String> {
        match self {
            Condition::Status(expected) => (response.status != *expected)
                .then(|| format!("status is {}, expected {expected}", response.status)),
            Condition::JsonEquals(path, expected) => match response.json.as_ref() {
                None => Some(format!("{path}: the body is not JSON")),
                Some(doc) => match path.get(doc) {
                    Some(found) if json_equal(found, expected) => None,
                    Some(found) => Some(format!("{path} is {found}, expected {expected}")),
                    None => Some(format!("{path} is absent, expected {expected}")),
                },
            },
            Condition::JsonExists(path, should) => {
                let present = response
                    .json
                    .as_ref()
                    .and_then(|doc| path.get(doc))
                    .is_some();
                match (present, should, response.json.is_some()) {
                    (true, true, _) | (false, false, true) => None,
                    (false, true, _) => Some(format!("{path} is absent, expected it present")),
                    (true, false, _) => Some(format!("{path} is present, expected it absent")),
                    (false, false, false) => Some(format!("{path}: the body is not JSON")),
                }
            }
            Condition::Header(name, expected) => match response.header(name) {
                Some(v) if &v == expected => None,
                Some(v) => Some(format!("header {name} is {v:?}, expected {expected:?}")),
                None => Some(format!("header {name} is absent, expected {expected:?}")),
            },
        }
    }
}

/// Where a saved value is read from.
#[derive(Clone, Debug)]
pub enum SaveFrom {
    /// A path into the JSON body.
    Json(JsonPath),
    /// A response header (its text).
    Header(String),
}

impl std::fmt::Display for SaveFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveFrom::Json(path) => write!(f, "{path}"),
            SaveFrom::Header(name) => write!(f, "header {name}"),
        }
    }
}

/// A value to keep from the final response: `from` → `name`.
#[derive(Clone, Debug)]
pub struct Save {
    /// Where the value is.
    pub from: SaveFrom,
    /// The name it is saved as.
    pub name: String,
}

/// Everything one wait needs.
#[derive(Clone, Debug)]
pub struct WaitSpec {
    /// The request sent at every attempt.
    pub request: RequestSpec,
    /// When to retry and give up.
    pub schedule: Schedule,
    /// All must hold. With no status condition, the status must be 2xx.
    pub conditions: Vec<Condition>,
    /// Values to keep from the response that met the conditions.
    pub save: Vec<Save>,
}

/// A response as the conditions see it.
struct Fetched {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
    json: Option<Value>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// Why a wait did not succeed.
#[derive(Debug)]
pub struct WaitFailure {
    /// The whole message, ready to print.
    pub message: String,
}

/// What the attempts saw last, for the failure message.
#[derive(Default)]
struct Last {
    status: Option<u16>,
    body: Option<String>,
    error: Option<String>,
    unmet: Option<String>,
}

/// Runs one wait: attempts until every condition holds, then reads the saved values.
pub async fn run(
    client: &reqwest::Client,
    spec: &WaitSpec,
    mut on_attempt: impl FnMut(u32, &str),
) -> Result<serde_json::Map<String, Value>, WaitFailure> {
    let start = Instant::now();
    let deadline = start + spec.schedule.timeout;
    let redactor = redactor_for(&spec.request);
    let mut last = Last::default();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        match fetch(
            client,
            &spec.request,
            left.max(LAST_REQUEST_FLOOR),
            &redactor,
        )
        .await
        {
            Ok(response) => {
                last.status = Some(response.status);
                last.error = None;
                last.body = Some(response.body.clone());
                last.unmet = first_unmet(&spec.conditions, &response);
                match &last.unmet {
                    None => {
                        on_attempt(attempt, "conditions hold");
                        return saved_values(&spec.save, &response).map_err(|message| {
                            WaitFailure {
                                message: redactor.redact(&message),
                            }
                        });
                    }
                    Some(why) => on_attempt(attempt, why),
                }
            }
            Err(error) => {
                on_attempt(attempt, &error);
                last.error = Some(error);
            }
        }
        if spec.schedule.max_attempts.is_some_and(|max| attempt >= max) {
            return Err(failure(
                &format!("gave up after {attempt} attempt(s) (max_attempts {attempt})"),
                start,
                &last,
                &redactor,
            ));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(failure(
                &format!(
                    "timed out after {} ({attempt} attempt(s), timeout {})",
                    human(now - start),
                    human(spec.schedule.timeout)
                ),
                start,
                &last,
                &redactor,
            ));
        }
        let wait = spec.schedule.wait_after(attempt);
        tokio::time::sleep_until(deadline.min(now + wait)).await;
    }
}

fn first_unmet(conditions: &[Condition], response: &Fetched) -> Option<String> {
    if !conditions.iter().any(|c| matches!(c, Condition::Status(_)))
        && !(200..300).contains(&response.status)
    {
        return Some(format!(
            "status is {}, expected 2xx (add a status condition to accept another)",
            response.status
        ));
    }
    conditions.iter().find_map(|c| c.unmet(response))
}

fn saved_values(
    saves: &[Save],
    response: &Fetched,
) -> Result<serde_json::Map<String, Value>, String> {
    let mut out = serde_json::Map::new();
    for save in saves {
        let found = match &save.from {
            SaveFrom::Json(path) => response
                .json
                .as_ref()
                .and_then(|doc| path.get(doc))
                .cloned(),
            SaveFrom::Header(name) => response.header(name).map(Value::String),
        };
        match found {
            Some(v) => {
                out.insert(save.name.clone(), v);
            }
            None => {
                return Err(format!(
                    "the conditions hold, but there is nothing at {} to save as {} (status {}, body: {})",
                    save.from,
                    save.name,
                    response.status,
                    excerpt(&response.body)
                ));
            }
        }
    }
    Ok(out)
}

fn failure(head: &str, _start: Instant, last: &Last, redactor: &Redactor) -> WaitFailure {
    let mut message = head.to_string();
    match (&last.error, last.status) {
        (Some(error), Some(status)) => {
            let _ = write!(message, "; last error: {error}; last status: {status}");
        }
        (Some(error), None) => {
            let _ = write!(message, "; last error: {error}; no response was received");
        }
        (None, Some(status)) => {
            let _ = write!(message, "; last status: {status}");
        }
        (None, None) => {}
    }
    if let Some(body) = &last.body {
        let _ = write!(message, "; last body: {}", excerpt(body));
    }
    if let Some(unmet) = &last.unmet {
        let _ = write!(message, "; not met: {unmet}");
    }
    WaitFailure {
        message: redactor.redact(&message),
    }
}

/// The first [`BODY_EXCERPT_CHARS`] characters of a body, on one line.
fn excerpt(body: &str) -> String {
    let flat: String = body
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out: String = flat.chars().take(BODY_EXCERPT_CHARS).collect();
    if flat.chars().count() > BODY_EXCERPT_CHARS {
        out.push('…');
    }
    if out.is_empty() {
        "(empty)".into()
    } else {
        out
    }
}

/// `1.5s`, `250ms`, `2m3s`.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Knows the secret header values and URL credentials of the request, so messages never
/// show them.
fn redactor_for(request: &RequestSpec) -> Redactor {
    let mut redactor = Redactor::default();
    for (name, value) in &request.headers {
        if is_secret_header(name) {
            redactor.add_credential(value);
        }
    }
    for secret in siphon_connect::secret::url_secrets(&request.url) {
        redactor.add(&secret);
    }
    redactor
}

async fn fetch(
    client: &reqwest::Client,
    spec: &RequestSpec,
    budget: Duration,
    redactor: &Redactor,
) -> Result<Fetched, String> {
    let attempt = async {
        let mut builder = client.request(spec.method.clone(), &spec.url);
        for (name, value) in &spec.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &spec.body {
            builder = builder.body(body.clone());
        }
        let request = builder.build().map_err(|e| error_chain(&e))?;
        let secrets = Secrets {
            redactor,
            headers: &[],
        };
        let response = redirect::send(client, request, secrets)
            .await
            .map_err(|e| match e {
                redirect::SendError::Transport(e) => error_chain(&e),
                redirect::SendError::Redirect(e) => e.to_string(),
            })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| error_chain(&e))?;
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).ok();
        Ok::<_, String>(Fetched {
            status,
            headers,
            body,
            json,
        })
    };
    match tokio::time::timeout(budget, attempt).await {
        Ok(result) => result.map_err(|e| redactor.redact(&e)),
        Err(_) => Err(format!("no response within {}", human(budget))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_the_coefficient() {
        let s = Schedule {
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(10),
            max_attempts: None,
            backoff_coefficient: 2.0,
        };
        assert_eq!(s.wait_after(1), Duration::from_millis(100));
        assert_eq!(s.wait_after(2), Duration::from_millis(200));
        assert_eq!(s.wait_after(4), Duration::from_millis(800));
        let flat = Schedule {
            backoff_coefficient: 1.0,
            ..s
        };
        assert_eq!(flat.wait_after(7), Duration::from_millis(100));
    }

    fn fetched(status: u16, body: &str, headers: &[(&str, &str)]) -> Fetched {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Fetched {
            status,
            headers: map,
            body: body.into(),
            json: serde_json::from_str(body).ok(),
        }
    }

    fn path(p: &str) -> JsonPath {
        JsonPath::parse(p).unwrap()
    }

    #[test]
    fn conditions_compare_json_values() {
        let r = fetched(
            200,
            r#"{"status": "completed", "done": true, "n": null, "count": 3.0}"#,
            &[("X-Job-Status", "finished")],
        );
        let holds = |c: Condition| c.unmet(&r).is_none();
        assert!(holds(Condition::Status(200)));
        assert!(!holds(Condition::Status(201)));
        assert!(holds(Condition::JsonEquals(
            path(".status"),
            "completed".into()
        )));
        assert!(holds(Condition::JsonEquals(path("$.done"), true.into())));
        assert!(!holds(Condition::JsonEquals(path(".done"), "true".into())));
        assert!(holds(Condition::JsonEquals(path(".count"), 3.into())));
        assert!(holds(Condition::JsonExists(path(".n"), true)));
        assert!(holds(Condition::JsonExists(path(".errors"), false)));
        assert!(!holds(Condition::JsonExists(path(".n"), false)));
        assert!(holds(Condition::Header(
            "x-job-status".into(),
            "finished".into()
        )));
        assert!(!holds(Condition::Header(
            "X-Job-Status".into(),
            "Finished".into()
        )));
        assert_eq!(
            Condition::JsonEquals(path(".status"), "running".into()).unmet(&r),
            Some(r#".status is "completed", expected "running""#.into())
        );
    }

    #[test]
    fn without_a_status_condition_only_2xx_can_succeed() {
        let r = fetched(503, r#"{"status": "completed"}"#, &[]);
        let conditions = [Condition::JsonEquals(path(".status"), "completed".into())];
        assert!(
            first_unmet(&conditions, &r)
                .unwrap()
                .contains("status is 503")
        );
        let with_status = [Condition::Status(503)];
        assert!(first_unmet(&with_status, &r).is_none());
    }

    #[test]
    fn excerpts_are_bounded_and_on_one_line() {
        assert_eq!(excerpt("{\n\"a\": 1}\n"), "{ \"a\": 1}");
        assert_eq!(excerpt(""), "(empty)");
        let long = "x".repeat(2000);
        assert_eq!(excerpt(&long).chars().count(), BODY_EXCERPT_CHARS + 1);
    }
}
