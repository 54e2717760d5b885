//! Environment-variable substitution in option values.
//!
//! This module owns the `${NAME}` (and Arroyo's `{{ NAME }}`) syntax: replacing each
//! reference with the variable's value when a pipeline loads, leaving the per-request
//! variables (`${page}`, `${cursor}`, ...) for the source to fill on each request, and
//! listing the names a value refers to. It is separate from parsing because option
//! values are substituted only after they are parsed and validated.
//!
//! Rules:
//! * `${NAME}`, `${ NAME }`, `{{NAME}}` and `{{ NAME }}` refer to `NAME`, where a name is
//!   `[A-Za-z_][A-Za-z0-9_.]*`. Text that does not have this shape (`${}`, `${a b}`, an
//!   unclosed `${x`) is left as it is.
//! * Names matched by `keep` are not looked up: they are written back as `${name}`
//!   (so `{{ page }}` becomes `${page}`), for the per-request layer to fill. A `keep`
//!   entry ending in `*` matches by prefix (`parent.*` keeps `${parent.id}`).
//! * `$${NAME}` is an escape for a literal `${NAME}`. When `NAME` is kept, the escape is
//!   left as `$${NAME}` so that the per-request layer, which sees `${...}` again, can
//!   apply the same escape.
//! * Every value substituted from the environment counts as a secret:
//!   [`substitute_env_with_values`] returns them for the caller's redactor.

/// An error substituting variables into a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A referenced variable is not set.
    #[error("environment variable `{name}` is not set")]
    Missing {
        /// The variable's name.
        name: String,
    },
}

/// A piece of a value: plain text, a variable reference, or an escaped reference.
#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    /// Literal text.
    Text(&'a str),
    /// `${name}` or `{{ name }}`.
    Var(&'a str),
    /// `$${name}`: `raw` is the text after the escaping `$` (`${name}`).
    Escaped { name: &'a str, raw: &'a str },
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c == '.' || c.is_ascii_alphanumeric()
}

/// If `s` starts with `open`, optional spaces, a name, optional spaces and `close`,
/// returns the name and the byte length of the whole reference.
fn reference<'a>(s: &'a str, open: &str, close: &str) -> Option<(&'a str, usize)> {
    let body = s.strip_prefix(open)?;
    let lead = body.len() - body.trim_start_matches(' ').len();
    let rest = &body[lead..];
    if !rest.starts_with(is_name_start) {
        return None;
    }
    let name_len = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
    let name = &rest[..name_len];
    let after = &rest[name_len..];
    let trail = after.len() - after.trim_start_matches(' ').len();
    if !after[trail..].starts_with(close) {
        return None;
    }
    Some((name, open.len() + lead + name_len + trail + close.len()))
}

fn segments(value: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < value.len() {
        let rest = &value[i..];
        let found = if rest.starts_with("$${") {
            reference(&rest[1..], "${", "}").map(|(name, len)| {
                (
                    Segment::Escaped {
                        name,
                        raw: &rest[1..1 + len],
                    },
                    len + 1,
                )
            })
        } else if rest.starts_with("${") {
            reference(rest, "${", "}").map(|(name, len)| (Segment::Var(name), len))
        } else if rest.starts_with("{{") {
            reference(rest, "{{", "}}").map(|(name, len)| (Segment::Var(name), len))
        } else {
            None
        };
        match found {
            Some((seg, len)) => {
                if text_start < i {
                    out.push(Segment::Text(&value[text_start..i]));
                }
                out.push(seg);
                i += len;
                text_start = i;
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    if text_start < value.len() {
        out.push(Segment::Text(&value[text_start..]));
    }
    out
}

fn is_kept(name: &str, keep: &[&str]) -> bool {
    keep.iter().any(|k| match k.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => *k == name,
    })
}

/// Replaces every `${NAME}` / `{{ NAME }}` in `value` with `lookup(NAME)`, except names
/// matched by `keep`, which are written back as `${NAME}`. See the module docs for the
/// exact rules, including the `$${NAME}` escape.
///
/// ```
/// use siphon_ddl::substitute_env;
/// let env = |n: &str| (n == "TOKEN").then(|| "s3cret".to_string());
/// let out = substitute_env("Bearer ${TOKEN} since {{ last_poll_time }}", &env, &["last_poll_time"]);
/// assert_eq!(out.unwrap(), "Bearer s3cret since ${last_poll_time}");
/// ```
///
/// # Errors
/// [`EnvError::Missing`] for the first referenced variable that `lookup` does not know.
pub fn substitute_env(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    keep: &[&str],
) -> Result<String, EnvError> {
    substitute_env_with_values(value, lookup, keep).map(|(text, _)| text)
}

/// Like [`substitute_env`], and also returns every value substituted from the
/// environment (each once, in order of first use): the caller treats them as secrets.
///
/// ```
/// use siphon_ddl::env::substitute_env_with_values;
/// let env = |n: &str| (n == "TOKEN").then(|| "s3cret".to_string());
/// let (text, values) =
///     substitute_env_with_values("Bearer {{ TOKEN }} ${page}", &env, &["page"]).unwrap();
/// assert_eq!(text, "Bearer s3cret ${page}");
/// assert_eq!(values, ["s3cret"]);
/// ```
///
/// # Errors
/// [`EnvError::Missing`] for the first referenced variable that `lookup` does not know.
pub fn substitute_env_with_values(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    keep: &[&str],
) -> Result<(String, Vec<String>), EnvError> {
    let mut values: Vec<String> = Vec::new();
    let mut out = String::with_capacity(value.len());
    for seg in segments(value) {
        match seg {
            Segment::Text(t) => out.push_str(t),
            Segment::Var(name) if is_kept(name, keep) => {
                out.push_str("${");
                out.push_str(name);
                out.push('}');
            }
            Segment::Var(name) => match lookup(name) {
                Some(v) => {
                    out.push_str(&v);
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
                None => {
                    return Err(EnvError::Missing {
                        name: name.to_string(),
                    });
                }
            },
            Segment::Escaped { name, raw } => {
                if is_kept(name, keep) {
                    out.push('$');
                }
                out.push_str(raw);
            }
        }
    }
    Ok((out, values))
}

/// The names `value` refers to with `${NAME}` or `{{ NAME }}`, each once, in order of
/// first appearance. Escaped `$${NAME}` references are not listed.
pub fn referenced_vars(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for seg in segments(value) {
        if let Segment::Var(name) = seg
            && !out.iter().any(|n| n == name)
        {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: &[&str] = &[
        "last_poll_time",
        "current_time",
        "state",
        "page",
        "offset",
        "cursor",
        "parent.*",
    ];

    fn env(name: &str) -> Option<String> {
        match name {
            "API_TOKEN" => Some("tok-123".into()),
            "HOST" => Some("api.example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn sub(v: &str) -> Result<String, EnvError> {
        substitute_env(v, &env, KEEP)
    }

    #[test]
    fn present_variables_are_replaced() {
        assert_eq!(sub("${API_TOKEN}").unwrap(), "tok-123");
        assert_eq!(
            sub("https://${HOST}/v1?t=${API_TOKEN}&e=${EMPTY}.").unwrap(),
            "https://api.example.com/v1?t=tok-123&e=."
        );
        assert_eq!(sub("${ HOST }").unwrap(), "api.example.com");
    }

    #[test]
    fn arroyo_braces_form() {
        assert_eq!(sub("{{ API_TOKEN }}").unwrap(), "tok-123");
        assert_eq!(sub("Bearer {{API_TOKEN}}").unwrap(), "Bearer tok-123");
        assert_eq!(sub("{{  HOST}}/x").unwrap(), "api.example.com/x");
    }

    #[test]
    fn missing_variable_is_named() {
        let e = sub("Bearer ${API_TOKN}").unwrap_err();
        assert_eq!(
            e,
            EnvError::Missing {
                name: "API_TOKN".into()
            }
        );
        assert_eq!(e.to_string(), "environment variable `API_TOKN` is not set");
        assert_eq!(
            sub("{{ NOPE }}").unwrap_err().to_string(),
            "environment variable `NOPE` is not set"
        );
    }

    #[test]
    fn kept_variables_stay_for_the_request_layer() {
        let v = r#"{"from": "${last_poll_time}", "to": "${current_time}", "t": "${API_TOKEN}"}"#;
        assert_eq!(
            sub(v).unwrap(),
            r#"{"from": "${last_poll_time}", "to": "${current_time}", "t": "tok-123"}"#
        );
        assert_eq!(
            sub("p={{ page }}&o=${ offset }").unwrap(),
            "p=${page}&o=${offset}"
        );
        assert_eq!(sub("id=${parent.id}").unwrap(), "id=${parent.id}");
        // Not kept without the keep list: then it is an (unset) environment variable.
        assert_eq!(
            substitute_env("${cursor}", &env, &[]).unwrap_err(),
            EnvError::Missing {
                name: "cursor".into()
            }
        );
    }

    #[test]
    fn dollar_dollar_escapes() {
        assert_eq!(sub("$${API_TOKEN}").unwrap(), "${API_TOKEN}");
        assert_eq!(sub("a $${NOT_SET} b").unwrap(), "a ${NOT_SET} b");
        assert_eq!(sub("$${page}").unwrap(), "$${page}");
        // Only the `$` right before `${` escapes; an earlier `$` is text.
        assert_eq!(sub("$$${HOST}").unwrap(), "$${HOST}");
    }

    #[test]
    fn malformed_references_are_left_alone() {
        for v in [
            "$.data[*]",
            "${",
            "${}",
            "${a b}",
            "${HOST",
            "{{ }}",
            "{\"a\": {\"b\": 1}}",
            "cost: $5",
            "{{1abc}}",
        ] {
            assert_eq!(sub(v).unwrap(), v, "{v}");
        }
    }

    #[test]
    fn unicode_text_is_preserved() {
        assert_eq!(sub("é ${HOST} ü").unwrap(), "é api.example.com ü");
    }

    #[test]
    fn substituted_values_are_listed_for_redaction() {
        let (text, values) = substitute_env_with_values(
            "${API_TOKEN}@{{ HOST }}/${page}?t=${API_TOKEN}&e=${EMPTY}&x=$${HOST}",
            &env,
            KEEP,
        )
        .unwrap();
        assert_eq!(
            text,
            "tok-123@api.example.com/${page}?t=tok-123&e=&x=${HOST}"
        );
        assert_eq!(values, ["tok-123", "api.example.com", ""]);
        assert_eq!(
            substitute_env_with_values("plain", &env, KEEP).unwrap(),
            ("plain".to_string(), Vec::new())
        );
    }

    #[test]
    fn referenced_vars_lists_each_name_once() {
        assert_eq!(
            referenced_vars("${A} {{ B }} ${A} $${C} ${state} ${parent.id}"),
            ["A", "B", "state", "parent.id"]
        );
        assert!(referenced_vars("no vars here $.x").is_empty());
    }
}
