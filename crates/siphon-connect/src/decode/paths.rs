//! `field_paths`: columns filled from a JSONPath relative to the record
//! (`{"author_name": "$.author.name", "first_tag": "$.tags[0]"}`) instead of from the
//! record's field of the column's name. Exists because every real API nests, and a user
//! should not need a JSON column and SQL to reach `user.login`.
//!
//! Paths are compiled once, when the decoder is built, never per record: the first step
//! (a member name) joins the record's field matching ([`super::record::FieldIndex`]), so
//! the streaming reader captures that member's raw text like any column's, and the rest
//! of the path walks only that raw text with a small serde visitor per step: no
//! `serde_json::Value` is built for a path of names and indices. A path that may match
//! several values (wildcards, slices, filters, `..`) is allowed only for a JSON column;
//! its rest is evaluated with serde_json_path on the member's value and the matches are
//! stored as a JSON array.
//!
//! Rules: no match is NULL (a dead letter for a NOT NULL column); a path must start with a
//! member name (`$.a`, `$['a']`); names match exactly (no case folding, unlike the
//! matching of columns by name). XML records are read through their JSON form (child
//! elements by name, attributes as `@name`, text as `#text`).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::raw::KeySeed;
use crate::schema::{ColumnType, RecordSchema};

/// One step of the singular part of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A member of an object.
    Key(Box<str>),
    /// An element of an array; negative counts from the end.
    Index(i64),
}

/// A column's compiled path.
#[derive(Debug)]
pub(crate) struct MappedPath {
    /// The path as written, for messages.
    pub(crate) text: Box<str>,
    /// The record's member the path starts at.
    pub(crate) first: Box<str>,
    /// The slot holding that member's value (set by [`FieldPaths::new`]).
    pub(crate) source: usize,
    /// The singular steps after the first.
    steps: Vec<Step>,
    /// The rest of a path that may match several values (JSON columns only).
    many: Option<serde_json_path::JsonPath>,
}

/// What a path found in one record.
#[derive(Debug, PartialEq)]
pub(crate) enum Found<'a> {
    /// Nothing: the column is NULL.
    Missing,
    /// One value, as its raw JSON text.
    One(&'a str),
    /// The matches of a path that may match several, as a JSON array.
    Many(String),
}

impl MappedPath {
    /// Walks the rest of the path from `raw`, the raw JSON text of the first member.
    pub(crate) fn resolve<'a>(&self, raw: &'a str) -> Result<Found<'a>, String> {
        let mut at = raw;
        for step in &self.steps {
            let mut de = serde_json::Deserializer::from_str(at);
            match (StepSeed { step })
                .deserialize(&mut de)
                .map_err(|e| e.to_string())?
            {
                Some(next) => at = next,
                None => return Ok(Found::Missing),
            }
        }
        match &self.many {
            None => Ok(Found::One(at)),
            Some(path) => {
                let value: serde_json::Value =
                    serde_json::from_str(at).map_err(|e| e.to_string())?;
                let matches = path.query(&value).all();
                if matches.is_empty() {
                    return Ok(Found::Missing);
                }
                serde_json::to_string(&matches)
                    .map(Found::Many)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Whether the path is only its first member (a renamed field).
    pub(crate) fn is_member(&self) -> bool {
        self.steps.is_empty() && self.many.is_none()
    }
}

/// Every mapped column of a decoder.
#[derive(Debug, Default)]
pub(crate) struct FieldPaths {
    /// Per column, its path, or `None` for a column read by its name.
    columns: Vec<Option<MappedPath>>,
}

/// Why a `field_paths` entry is refused; the caller names the option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError {
    pub(crate) column: String,
    pub(crate) message: String,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column `{}`: {}", self.column, self.message)
    }
}

impl FieldPaths {
    /// Compiles `paths` (column, JSONPath) for `schema`.
    pub(crate) fn new(
        schema: &RecordSchema,
        paths: &[(String, String)],
    ) -> Result<Self, PathError> {
        let mut columns: Vec<Option<MappedPath>> = schema.columns().iter().map(|_| None).collect();
        for (column, path) in paths {
            let err = |message: String| PathError {
                column: column.clone(),
                message,
            };
            let Some(i) = schema.columns().iter().position(|c| c.name == *column) else {
                let names: Vec<&str> = schema.columns().iter().map(|c| c.name.as_str()).collect();
                return Err(err(format!(
                    "not a column of the table (columns: {})",
                    names.join(", ")
                )));
            };
            let ty = &schema.columns()[i].ty;
            let mapped = compile(path).map_err(err)?;
            if mapped.many.is_some() && *ty != ColumnType::Json {
                return Err(err(format!(
                    "`{path}` may match several values, so it needs a JSON column (this one is {}); \
                     or name one value, like `$.tags[0]`",
                    ty.sql_name()
                )));
            }
            columns[i] = Some(mapped);
        }
        Ok(FieldPaths { columns })
    }

    /// Whether any column is mapped.
    pub(crate) fn is_empty(&self) -> bool {
        self.columns.iter().all(Option::is_none)
    }

    /// Column `i`'s path, if it has one.
    pub(crate) fn get(&self, i: usize) -> Option<&MappedPath> {
        self.columns.get(i).and_then(Option::as_ref)
    }

    /// The mapped columns, to wire their sources.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut MappedPath> {
        self.columns.iter_mut().flatten()
    }
}

/// Compiles one path: validated as RFC 9535 as a whole, then split into its first member,
/// the singular steps after it, and what remains.
fn compile(path: &str) -> Result<MappedPath, String> {
    serde_json_path::JsonPath::parse(path)
        .map_err(|e| format!("`{path}` is not a valid JSONPath: {e}"))?;
    let rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| format!("`{path}` must start with `$` (the record)"))?;
    let mut steps = Vec::new();
    let mut at = rest;
    while let Some((step, after)) = simple_step(at) {
        steps.push(step);
        at = after;
    }
    let first = match steps.first() {
        Some(Step::Key(name)) => name.clone(),
        _ => {
            return Err(format!(
                "`{path}` must start with a member name of the record, like `$.author.name` or `$['author']`"
            ));
        }
    };
    steps.remove(0);
    let many = if at.trim().is_empty() {
        None
    } else {
        Some(
            serde_json_path::JsonPath::parse(&format!("${at}"))
                .map_err(|e| format!("`{path}` is not a valid JSONPath: {e}"))?,
        )
    };
    Ok(MappedPath {
        text: path.into(),
        first,
        source: usize::MAX,
        steps,
        many,
    })
}

/// One name or index step at the start of `s` (`.name`, `['name']`, `["name"]`, `[3]`,
/// `[-1]`) and what follows it; `None` for anything else (the end, `..`, `*`, slices,
/// unions, filters).
fn simple_step(s: &str) -> Option<(Step, &str)> {
    let s = s.trim_start();
    if let Some(after) = s.strip_prefix('.') {
        if after.starts_with(['.', '*']) {
            return None;
        }
        let end = after.find(['.', '[', ' ']).unwrap_or(after.len());
        if end == 0 {
            return None;
        }
        return Some((Step::Key(after[..end].into()), &after[end..]));
    }
    let inner = s.strip_prefix('[')?.trim_start();
    if let Some(quote) = inner.chars().next().filter(|c| *c == '\'' || *c == '"') {
        let mut name = String::new();
        let mut chars = inner[1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next()?.1 {
                    'b' => name.push('\u{8}'),
                    'f' => name.push('\u{c}'),
                    'n' => name.push('\n'),
                    'r' => name.push('\r'),
                    't' => name.push('\t'),
                    'u' => return None,
                    other => name.push(other),
                },
                c if c == quote => {
                    let after = inner[1 + i + 1..].trim_start().strip_prefix(']')?;
                    return Some((Step::Key(name.into()), after));
                }
                c => name.push(c),
            }
        }
        return None;
    }
    let close = inner.find(']')?;
    let index: i64 = inner[..close].trim().parse().ok()?;
    Some((Step::Index(index), &inner[close + 1..]))
}

/// Reads one step out of a JSON value: the member's or element's raw text, `None` when
/// the value has no such member or element (or is not an object or array).
struct StepSeed<'s> {
    step: &'s Step,
}

impl<'a> DeserializeSeed<'a> for StepSeed<'_> {
    type Value = Option<&'a str>;

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> Visitor<'a> for StepSeed<'_> {
    type Value = Option<&'a str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match self.step {
                // A repeated key keeps its last value, as for columns.
                Step::Key(name) if **name == *key => {
                    let raw: &'a RawValue = map.next_value()?;
                    found = Some(raw.get());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Step::Index(index) = *self.step else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        if index >= 0 {
            let mut found = None;
            let mut i = 0;
            while let Some(raw) = seq.next_element::<&'a RawValue>()? {
                if i == index {
                    found = Some(raw.get());
                }
                i += 1;
            }
            Ok(found)
        } else {
            let mut all = Vec::new();
            while let Some(raw) = seq.next_element::<&'a RawValue>()? {
                all.push(raw.get());
            }
            let from_end = usize::try_from(index.unsigned_abs()).unwrap_or(usize::MAX);
            Ok(all.len().checked_sub(from_end).map(|i| all[i]))
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;

    fn one(path: &str, json: &str) -> Option<String> {
        match compile(path).unwrap().resolve_record(json) {
            Found::Missing => None,
            Found::One(raw) => Some(raw.to_string()),
            Found::Many(all) => Some(all),
        }
    }

    impl MappedPath {
        /// Resolves against a whole record (tests only; the decoder reads the first
        /// member while matching fields).
        fn resolve_record<'a>(&self, record: &'a str) -> Found<'a> {
            let mut de = serde_json::Deserializer::from_str(record);
            let step = Step::Key(self.first.clone());
            match (StepSeed { step: &step }).deserialize(&mut de).unwrap() {
                Some(raw) => self.resolve(raw).unwrap(),
                None => Found::Missing,
            }
        }
    }

    #[test]
    fn names_and_indices() {
        let r = r#"{"author": {"name": "a1", "x": {"y": [1, {"z": true}]}}, "tags": ["t1", "t2"]}"#;
        assert_eq!(one("$.author.name", r).as_deref(), Some("\"a1\""));
        assert_eq!(one("$['author']['name']", r).as_deref(), Some("\"a1\""));
        assert_eq!(one("$.author.x.y[1].z", r).as_deref(), Some("true"));
        assert_eq!(one("$.tags[0]", r).as_deref(), Some("\"t1\""));
        assert_eq!(one("$.tags[-1]", r).as_deref(), Some("\"t2\""));
        assert_eq!(one("$.tags[5]", r), None);
        assert_eq!(one("$.author.missing", r), None);
        assert_eq!(one("$.tags.name", r), None);
        assert_eq!(one("$.author.name.deeper", r), None);
        assert_eq!(one("$.nothing.here", r), None);
        assert_eq!(
            one("$.author", r).as_deref(),
            Some(r#"{"name": "a1", "x": {"y": [1, {"z": true}]}}"#)
        );
    }

    #[test]
    fn several_matches_become_an_array() {
        let r = r#"{"items": [{"id": 1}, {"id": 2}, {"x": 3}]}"#;
        assert_eq!(one("$.items[*].id", r).as_deref(), Some("[1,2]"));
        assert_eq!(one("$.items[?@.id > 1].id", r).as_deref(), Some("[2]"));
        assert_eq!(one("$.items[*].nope", r), None);
    }

    #[test]
    fn quoted_names_and_odd_keys() {
        let r = r#"{"a.b": {"c d": 1, "it's": 2}}"#;
        assert_eq!(one("$['a.b']['c d']", r).as_deref(), Some("1"));
        assert_eq!(one(r#"$["a.b"]['it\'s']"#, r).as_deref(), Some("2"));
    }

    #[test]
    fn load_time_errors() {
        let schema = RecordSchema::new(vec![
            Column::new("name", ColumnType::Text, true),
            Column::new("tags", ColumnType::Json, true),
        ]);
        let paths = |p: &[(&str, &str)]| {
            FieldPaths::new(
                &schema,
                &p.iter()
                    .map(|(c, p)| (c.to_string(), p.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(paths(&[("name", "$.a.b"), ("tags", "$.t[*]")]).is_ok());
        let e = paths(&[("name", "$.t[*]")]).unwrap_err();
        assert!(e.message.contains("needs a JSON column"), "{e}");
        let e = paths(&[("nope", "$.a")]).unwrap_err();
        assert!(e.message.contains("not a column"), "{e}");
        let e = paths(&[("name", "$.a[")]).unwrap_err();
        assert!(e.message.contains("not a valid JSONPath"), "{e}");
        let e = paths(&[("name", "$..a")]).unwrap_err();
        assert!(e.message.contains("must start with a member name"), "{e}");
        let e = paths(&[("tags", "$[0]")]).unwrap_err();
        assert!(e.message.contains("must start with a member name"), "{e}");
    }
}
