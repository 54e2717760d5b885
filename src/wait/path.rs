//! Paths into a JSON response for `siphon wait` (SPEC §4), in the two forms users write:
//! jq-like `.a.b[0]` (Rocketship) and JSONPath `$.a.b[0]`, plus bracketed keys
//! (`.["a b"]`, `$['a b']`) and negative indexes counted from the end (`[-1]`). A path
//! names one value; `.` and `$` name the whole body.
//!
//! Also here: the JSON value comparison `expected` uses, where numbers compare by value
//! (`200` matches `200.0`) and nothing else converts (`true` is not `"true"`).

use std::fmt;

use serde_json::Value;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(i64),
}

/// A parsed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonPath {
    /// Parses `.a.b[0]`, `$.a.b[0]`, `.`, `$`, `.["k"]`, `$['k']`, `a.b` (a leading `.` is
    /// optional).
    pub fn parse(text: &str) -> Result<Self, String> {
        let original = text;
        let text = text.trim();
        let fail = |why: &str| {
            Err(format!(
                "path `{original}`: {why} (write e.g. .status, .data.items[0].id or $.data.items[0].id)"
            ))
        };
        if text.is_empty() {
            return fail("it is empty");
        }
        let mut rest = text.strip_prefix('$').unwrap_or(text);
        let mut steps = Vec::new();
        // A jq path without its leading dot (`status`) is accepted as a first key.
        let mut first = true;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                if after.is_empty() {
                    if steps.is_empty() {
                        break;
                    }
                    return fail("it ends with `.`");
                }
                if after.starts_with('[') {
                    rest = after;
                    continue;
                }
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let key = &after[..end];
                if key.is_empty() {
                    return fail("a key is empty");
                }
                steps.push(Step::Key(unquote_key(key)));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let Some(close) = find_close(after) else {
                    return fail("a `[` is not closed");
                };
                let inner = after[..close].trim();
                rest = &after[close + 1..];
                if let Some(quoted) = quoted_string(inner) {
                    steps.push(Step::Key(quoted));
                } else if let Ok(i) = inner.parse::<i64>() {
                    steps.push(Step::Index(i));
                } else if inner == "*" {
                    return fail("wildcards select many values; a condition needs one");
                } else {
                    return fail(&format!("`[{inner}]` is neither an index nor a quoted key"));
                }
            } else if first && !text.starts_with('$') {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                steps.push(Step::Key(unquote_key(&rest[..end])));
                rest = &rest[end..];
            } else {
                return fail(&format!("unexpected `{rest}`"));
            }
            first = false;
        }
        Ok(JsonPath {
            text: original.to_string(),
            steps,
        })
    }

    /// The value at the path, if every step exists (a present `null` is `Some(Null)`).
    pub fn get<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        let mut value = root;
        for step in &self.steps {
            value = match (step, value) {
                (Step::Key(k), Value::Object(map)) => map.get(k)?,
                (Step::Index(i), Value::Array(items)) => {
                    let index = if *i < 0 {
                        items.len().checked_sub(i.unsigned_abs() as usize)?
                    } else {
                        *i as usize
                    };
                    items.get(index)?
                }
                _ => return None,
            };
        }
        Some(value)
    }
}

fn unquote_key(key: &str) -> String {
    quoted_string(key).unwrap_or_else(|| key.to_string())
}

/// The contents of `"..."` or `'...'` (JSON escapes in double quotes).
fn quoted_string(text: &str) -> Option<String> {
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        return serde_json::from_str(text).ok();
    }
    if text.len() >= 2 && text.starts_with('\'') && text.ends_with('\'') {
        return Some(text[1..text.len() - 1].replace("\\'", "'"));
    }
    None
}

/// The index of the `]` closing a bracket whose content starts `text`, skipping quotes.
fn find_close(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ']' => return Some(i),
            None => {}
        }
    }
    None
}

/// JSON equality where numbers compare by value (`200` equals `200.0`), recursively; no
/// other conversion (`true` is not `"true"`, `1` is not `"1"`).
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(path: &str, doc: &Value) -> Option<Value> {
        JsonPath::parse(path).unwrap().get(doc).cloned()
    }

    #[test]
    fn both_forms_reach_the_same_values() {
        let doc = json!({"a": {"b": [10, {"c": "x"}]}, "job_id": "j1", "odd key": 1});
        for path in [
            ".a.b[0]",
            "$.a.b[0]",
            "a.b[0]",
            "$['a']['b'][0]",
            ".[\"a\"].b[0]",
        ] {
            assert_eq!(at(path, &doc), Some(json!(10)), "{path}");
        }
        assert_eq!(at(".a.b[1].c", &doc), Some(json!("x")));
        assert_eq!(at("$.a.b[-1].c", &doc), Some(json!("x")));
        assert_eq!(at(".job_id", &doc), Some(json!("j1")));
        assert_eq!(at("$[\"odd key\"]", &doc), Some(json!(1)));
        assert_eq!(at(".", &doc), Some(doc.clone()));
        assert_eq!(at("$", &doc), Some(doc.clone()));
        assert_eq!(at(".a.b[2]", &doc), None);
        assert_eq!(at(".a.b[-3]", &doc), None);
        assert_eq!(at(".a.x", &doc), None);
        assert_eq!(at(".job_id.deeper", &doc), None);
    }

    #[test]
    fn present_null_false_and_zero_are_present() {
        let doc = json!({"n": null, "f": false, "z": 0});
        assert_eq!(at(".n", &doc), Some(Value::Null));
        assert_eq!(at(".f", &doc), Some(json!(false)));
        assert_eq!(at(".z", &doc), Some(json!(0)));
        assert_eq!(at(".missing", &doc), None);
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in ["", ".a.", ".a[", ".a[x]", "$.a[*]", "$a", ".a..b"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comparisons_are_by_json_value() {
        assert!(json_equal(&json!(200), &json!(200.0)));
        assert!(json_equal(&json!([1, {"a": 2.0}]), &json!([1.0, {"a": 2}])));
        assert!(!json_equal(&json!(true), &json!("true")));
        assert!(!json_equal(&json!(1), &json!("1")));
        assert!(!json_equal(&json!(null), &json!(false)));
        assert!(json_equal(&json!("completed"), &json!("completed")));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(json_equal(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_equal(&json!(u64::MAX), &json!(u64::MAX - 1)));
    }
}
