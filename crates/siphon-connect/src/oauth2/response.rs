//! Reading token endpoint bodies: the success response of RFC 6749 §5.1 and the error
//! response of §5.2.
//!
//! Kept apart from the HTTP exchange so the lenient parts (numeric strings for
//! `expires_in`, a missing or lower-case `token_type`) can be tested without a server. A
//! success body is never quoted in a message: it may hold a token under a name this
//! parser does not know.

use std::time::Duration;

use serde_json::{Map, Value};

use super::MAX_LIFETIME;

/// The parts of a success response siphon uses.
#[derive(Debug, PartialEq)]
pub(super) struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// The lifetime the server stated, if it stated one.
    pub expires_in: Option<Duration>,
}

/// Why a success response is not usable.
#[derive(Debug, PartialEq)]
pub(super) enum Problem {
    /// A `token_type` other than bearer.
    UnsupportedType(String),
    /// Anything else, described (without quoting values that may be secret).
    Bad(String),
}

/// The RFC 6749 §5.2 fields of an error body.
#[derive(Debug, PartialEq)]
pub(super) struct ErrorFields {
    /// The `error` code.
    pub error: String,
    /// The `error_description`, if any.
    pub description: Option<String>,
}

/// Reads a success response body.
pub(super) fn parse_token(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<TokenResponse, Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let kind = content_type
            .map(|c| format!(", content-type {c:?}"))
            .unwrap_or_default();
        Problem::Bad(format!(
            "the body is not JSON ({e}; {} bytes{kind})",
            body.len()
        ))
    })?;
    let Value::Object(object) = value else {
        return Err(Problem::Bad(format!(
            "the body is a JSON {}, not an object",
            kind(&value)
        )));
    };

    let access_token = match object.get("access_token") {
        Some(Value::String(token)) if !token.trim().is_empty() => token.trim().to_string(),
        Some(Value::String(_)) => return Err(Problem::Bad("access_token is empty".into())),
        Some(other) => {
            return Err(Problem::Bad(format!(
                "access_token is a JSON {}, not a string",
                kind(other)
            )));
        }
        None => return Err(Problem::Bad(missing_token(&object))),
    };
    if !access_token.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(Problem::Bad(
            "access_token holds characters that cannot be sent in an HTTP header".into(),
        ));
    }

    match object.get("token_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.trim().eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(t)) => return Err(Problem::UnsupportedType(t.clone())),
        Some(other) => return Err(Problem::UnsupportedType(other.to_string())),
    }

    let expires_in = expires_in(object.get("expires_in"))?;
    Ok(TokenResponse {
        access_token,
        expires_in,
    })
}

/// `expires_in` as a duration: a number of seconds, or a string holding one. Missing,
/// `null` or an empty string mean "not stated".
fn expires_in(value: Option<&Value>) -> Result<Option<Duration>, Problem> {
    let seconds = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(
            s.min(MAX_LIFETIME.as_secs_f64()),
        ))),
        _ => {
            let shown: String = value
                .map(Value::to_string)
                .unwrap_or_default()
                .chars()
                .take(40)
                .collect();
            Err(Problem::Bad(format!(
                "expires_in {shown} is not a number of seconds"
            )))
        }
    }
}

/// The message for a success body without `access_token`: the §5.2 error if the server put
/// one there, else the names of the fields it did send.
fn missing_token(object: &Map<String, Value>) -> String {
    if let Some(fields) = error_fields_of(object) {
        return match fields.description {
            Some(d) => format!(
                "no access_token in the response; error {}: {d}",
                fields.error
            ),
            None => format!("no access_token in the response; error {}", fields.error),
        };
    }
    let names: Vec<&str> = object.keys().map(String::as_str).take(10).collect();
    if names.is_empty() {
        "no access_token in the response (an empty object)".into()
    } else {
        format!(
            "no access_token in the response (fields: {})",
            names.join(", ")
        )
    }
}

/// The RFC 6749 §5.2 `error` and `error_description` of an error body, if it has them.
pub(super) fn error_fields(body: &[u8]) -> Option<ErrorFields> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => error_fields_of(&object),
        _ => None,
    }
}

fn error_fields_of(object: &Map<String, Value>) -> Option<ErrorFields> {
    let error = object.get("error")?.as_str()?.trim();
    if error.is_empty() {
        return None;
    }
    let description = object
        .get("error_description")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    Some(ErrorFields {
        error: error.to_string(),
        description,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<TokenResponse, Problem> {
        parse_token(json.as_bytes(), Some("application/json"))
    }

    #[test]
    fn expires_in_as_number_string_or_missing() {
        let secs = |json: &str| parse(json).map(|t| t.expires_in);
        assert_eq!(
            secs(r#"{"access_token":"abc","expires_in":3600}"#),
            Ok(Some(Duration::from_secs(3600)))
        );
        assert_eq!(
            secs(r#"{"access_token":"abc","expires_in":"3600"}"#),
            Ok(Some(Duration::from_secs(3600)))
        );
        assert_eq!(
            secs(r#"{"access_token":"abc","expires_in":" 90 "}"#),
            Ok(Some(Duration::from_secs(90)))
        );
        assert_eq!(
            secs(r#"{"access_token":"abc","expires_in":1.5}"#),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert_eq!(secs(r#"{"access_token":"abc"}"#), Ok(None));
        assert_eq!(
            secs(r#"{"access_token":"abc","expires_in":null}"#),
            Ok(None)
        );
        assert_eq!(
            secs(r#"{"access_token":"abc","expires_in":1e300}"#),
            Ok(Some(MAX_LIFETIME))
        );
        for bad in [r#""soon""#, "-5", "true", "[1]"] {
            let json = format!(r#"{{"access_token":"abc","expires_in":{bad}}}"#);
            match parse(&json) {
                Err(Problem::Bad(m)) => assert!(m.contains("expires_in"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn token_type_bearer_in_any_case_or_missing() {
        for json in [
            r#"{"access_token":"abc","token_type":"Bearer"}"#,
            r#"{"access_token":"abc","token_type":"bearer"}"#,
            r#"{"access_token":"abc","token_type":"BEARER"}"#,
            r#"{"access_token":"abc"}"#,
        ] {
            assert_eq!(
                parse(json).map(|t| t.access_token),
                Ok("abc".to_string()),
                "{json}"
            );
        }
        assert_eq!(
            parse(r#"{"access_token":"abc","token_type":"mac"}"#),
            Err(Problem::UnsupportedType("mac".into()))
        );
    }

    #[test]
    fn unusable_bodies_are_described_without_quoting_them() {
        let bad = |body: &str| match parse_token(body.as_bytes(), Some("text/html")) {
            Err(Problem::Bad(m)) => m,
            other => panic!("{body}: {other:?}"),
        };
        let m = bad("<html>secret-ish</html>");
        assert!(
            m.contains("not JSON") && m.contains("text/html") && !m.contains("secret-ish"),
            "{m}"
        );
        assert!(bad("[1,2]").contains("array"));
        let m = bad(r#"{"token":"hidden-value","expires_in":3600}"#);
        assert!(
            m.contains("no access_token") && m.contains("expires_in, token"),
            "{m}"
        );
        assert!(!m.contains("hidden-value"), "{m}");
        let m = bad(r#"{"error":"invalid_scope","error_description":"scope x unknown"}"#);
        assert!(m.contains("invalid_scope: scope x unknown"), "{m}");
        assert!(bad(r#"{"access_token":""}"#).contains("empty"));
        assert!(bad(r#"{"access_token":42}"#).contains("number"));
        assert!(bad(r#"{"access_token":"a\nb"}"#).contains("HTTP header"));
    }

    #[test]
    fn error_fields_are_read_when_present() {
        assert_eq!(
            error_fields(br#"{"error":"invalid_client","error_description":"bad"}"#),
            Some(ErrorFields {
                error: "invalid_client".into(),
                description: Some("bad".into())
            })
        );
        assert_eq!(
            error_fields(br#"{"error":"invalid_client"}"#),
            Some(ErrorFields {
                error: "invalid_client".into(),
                description: None
            })
        );
        assert_eq!(error_fields(b"Internal Server Error"), None);
        assert_eq!(error_fields(br#"{"error":{"code":1}}"#), None);
    }
}
