//! Request variables: `${last_poll_time}`, `${current_time}` and friends, filled per request.
//!
//! Environment variables are resolved once when a pipeline loads; what is left of the form
//! `${name}` in an endpoint, a query parameter, a header or a body is a request variable,
//! parsed here once into a [`Template`] and rendered for every request. How a value is
//! escaped depends on where it lands ([`Escape`]): percent-encoded in a URL, JSON-escaped in
//! a JSON body, as is elsewhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A variable that is filled per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestVar {
    /// Start of the last successful poll (the Unix epoch before the first one).
    LastPollTime,
    /// Start of this poll.
    CurrentTime,
    /// The saved incremental state (`state_type`).
    State,
    /// The page number (`pagination_type = 'page'`).
    Page,
    /// The record offset (`pagination_type = 'offset'`).
    Offset,
    /// The cursor of the next page (`pagination_type = 'cursor'`), empty on the first.
    Cursor,
}

impl RequestVar {
    /// The names a request variable may have, as written inside `${...}`.
    pub const NAMES: &'static [&'static str] = &[
        "last_poll_time",
        "current_time",
        "state",
        "page",
        "offset",
        "cursor",
    ];

    fn from_name(name: &str) -> Result<Self, String> {
        match name {
            "last_poll_time" => Ok(RequestVar::LastPollTime),
            "current_time" => Ok(RequestVar::CurrentTime),
            "state" => Ok(RequestVar::State),
            "page" => Ok(RequestVar::Page),
            "offset" => Ok(RequestVar::Offset),
            "cursor" => Ok(RequestVar::Cursor),
            other => Err(format!(
                "`${{{other}}}` is neither a set environment variable nor a request variable ({})",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// How request times print: `time_format`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeFormat {
    /// RFC 3339 / ISO 8601 in UTC with a `Z`, to the second: `2024-01-01T00:00:00Z`.
    Iso8601,
    /// Seconds since the Unix epoch.
    Unix,
    /// Milliseconds since the Unix epoch.
    UnixMs,
    /// A strftime pattern, rendered in UTC.
    Strftime(String),
}

impl TimeFormat {
    /// Parses the option value; a strftime pattern is checked for invalid specifiers.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "iso8601" | "iso_8601" | "rfc3339" => Ok(TimeFormat::Iso8601),
            "unix" | "unix_s" | "epoch" => Ok(TimeFormat::Unix),
            "unix_ms" | "epoch_ms" => Ok(TimeFormat::UnixMs),
            _ if value.contains('%') => {
                let items = chrono::format::StrftimeItems::new(value);
                if items
                    .clone()
                    .any(|item| matches!(item, chrono::format::Item::Error))
                {
                    return Err(format!("`{value}` is not a valid strftime pattern"));
                }
                Ok(TimeFormat::Strftime(value.to_string()))
            }
            _ => Err(format!(
                "`{value}` is not a time format: use ISO8601, unix, unix_ms or a strftime pattern such as '%Y-%m-%d'"
            )),
        }
    }

    /// Renders an instant keeping sub-second digits in ISO 8601 when it has them, so a state
    /// sent back to an API does not fall before the record it came from.
    pub fn render_precise(&self, at: DateTime<Utc>) -> String {
        match self {
            TimeFormat::Iso8601 => at.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
            other => other.render(at),
        }
    }

    /// Renders an instant in this format.
    pub fn render(&self, at: DateTime<Utc>) -> String {
        match self {
            TimeFormat::Iso8601 => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            TimeFormat::Unix => at.timestamp().to_string(),
            TimeFormat::UnixMs => at.timestamp_millis().to_string(),
            TimeFormat::Strftime(pattern) => at.format(pattern).to_string(),
        }
    }
}

/// Where a rendered value lands, which decides how it is escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Inserted as is (headers, query parameter values that the HTTP client encodes).
    None,
    /// Percent-encoded: the endpoint URL.
    Url,
    /// JSON string escaping: a JSON request body.
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(RequestVar),
}

/// A string with request variables in it, parsed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values of the request variables for one request.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// Start of the last successful poll, if any.
    pub last_poll_time: Option<DateTime<Utc>>,
    /// Start of this poll.
    pub current_time: DateTime<Utc>,
    /// The incremental state as it is sent (already formatted), if any.
    pub state: Option<String>,
    /// The page number of this request.
    pub page: u64,
    /// The record offset of this request.
    pub offset: u64,
    /// The cursor of this request, if any.
    pub cursor: Option<String>,
}

impl RequestContext {
    /// A context for the first page of a poll with no state.
    pub fn new(last_poll_time: Option<DateTime<Utc>>, current_time: DateTime<Utc>) -> Self {
        RequestContext {
            last_poll_time,
            current_time,
            state: None,
            page: 0,
            offset: 0,
            cursor: None,
        }
    }
}

impl Template {
    /// Parses `text`; `$${x}` is a literal `${x}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if rest[..start].ends_with('$') {
                literal.push_str(&rest[..start - 1]);
                literal.push_str("${");
                rest = &rest[start + 2..];
                continue;
            }
            literal.push_str(&rest[..start]);
            let Some(len) = rest[start + 2..].find('}') else {
                return Err(format!("unterminated `${{` in `{text}`"));
            };
            let name = rest[start + 2..start + 2 + len].trim();
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var(RequestVar::from_name(name)?));
            rest = &rest[start + 2 + len + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// Whether the template holds any request variable.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Whether the template uses `var`.
    pub fn uses(&self, var: RequestVar) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// Renders the template for one request.
    pub fn render(&self, ctx: &RequestContext, format: &TimeFormat, escape: Escape) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(var) => {
                    let value = match var {
                        RequestVar::LastPollTime => {
                            format.render(ctx.last_poll_time.unwrap_or(DateTime::UNIX_EPOCH))
                        }
                        RequestVar::CurrentTime => format.render(ctx.current_time),
                        RequestVar::State => ctx.state.clone().unwrap_or_default(),
                        RequestVar::Page => ctx.page.to_string(),
                        RequestVar::Offset => ctx.offset.to_string(),
                        RequestVar::Cursor => ctx.cursor.clone().unwrap_or_default(),
                    };
                    match escape {
                        Escape::None => out.push_str(&value),
                        Escape::Url => {
                            out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()))
                        }
                        Escape::Json => {
                            let quoted = serde_json::to_string(&value).unwrap_or_default();
                            out.push_str(&quoted[1..quoted.len() - 1]);
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx() -> RequestContext {
        RequestContext::new(
            Some(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()),
            Utc.with_ymd_and_hms(2024, 1, 2, 3, 5, 0).unwrap(),
        )
    }

    #[test]
    fn renders_each_time_format() {
        let t = Template::parse("from=${last_poll_time}&to=${ current_time }").unwrap();
        assert!(!t.is_static());
        let c = ctx();
        assert_eq!(
            t.render(&c, &TimeFormat::Iso8601, Escape::None),
            "from=2024-01-02T03:04:05Z&to=2024-01-02T03:05:00Z"
        );
        assert_eq!(
            t.render(&c, &TimeFormat::Unix, Escape::None),
            "from=1704164645&to=1704164700"
        );
        assert_eq!(
            t.render(&c, &TimeFormat::UnixMs, Escape::None),
            "from=1704164645000&to=1704164700000"
        );
        let f = TimeFormat::parse("%Y/%m/%d %H").unwrap();
        assert_eq!(
            t.render(&c, &f, Escape::Url),
            "from=2024%2F01%2F02+03&to=2024%2F01%2F02+03"
        );
    }

    #[test]
    fn first_poll_uses_the_epoch_and_json_escapes() {
        let t = Template::parse(r#"{"q": "t > ${last_poll_time}"}"#).unwrap();
        let c = RequestContext {
            last_poll_time: None,
            ..ctx()
        };
        let f = TimeFormat::Strftime("\"%Y\"".into());
        assert_eq!(t.render(&c, &f, Escape::Json), r#"{"q": "t > \"1970\""}"#);
    }

    #[test]
    fn rejects_unknown_and_unsupported_variables() {
        assert!(Template::parse("${nope}").unwrap_err().contains("neither"));
        let c = RequestContext {
            cursor: Some("a b&c".into()),
            page: 3,
            offset: 40,
            state: Some("9".into()),
            ..ctx()
        };
        let t = Template::parse("/x?c=${cursor}&p=${page}&o=${offset}&s=${state}").unwrap();
        assert!(t.uses(RequestVar::Cursor) && !t.uses(RequestVar::LastPollTime));
        assert_eq!(
            t.render(&c, &TimeFormat::Unix, Escape::Url),
            "/x?c=a+b%26c&p=3&o=40&s=9"
        );
        assert!(
            Template::parse("${last_poll_time")
                .unwrap_err()
                .contains("unterminated")
        );
        let lit = Template::parse("cost $${x} $5").unwrap();
        assert!(lit.is_static());
        assert_eq!(
            lit.render(&ctx(), &TimeFormat::Unix, Escape::None),
            "cost ${x} $5"
        );
    }

    #[test]
    fn time_format_validation() {
        assert_eq!(TimeFormat::parse("ISO8601").unwrap(), TimeFormat::Iso8601);
        assert!(TimeFormat::parse("%Q").is_err());
        assert!(TimeFormat::parse("yyyy").is_err());
    }
}
