//! Picking the records out of a JSON page.
//!
//! Without a `json_path` the body is one record, or one per element when it is an array.
//! With one, every node the RFC 9535 path selects is a record (a selected array is not
//! flattened). Simple paths, `$` followed by `.name`, `['name']`, `[*]` or `.*` steps, are
//! walked in one streaming serde_json pass over the body: each selected value is handed
//! to an [`Emit`] while the parser stands on it, so the page decoder reads the record's
//! fields in that same pass, and no tree or copy is built. Every other path (filters,
//! recursive descent, slices, ...) is evaluated by serde_json_path on a `Value` tree, and
//! each selected node's location is then looked up in the body, so records are the very
//! same raw text either way and both paths decode identically. A wildcard that meets an
//! object sends the page to the general path too, so that member order is
//! serde_json_path's, and so does a selected key repeated in its object (a parsed map
//! keeps the last one). One known difference: a number beyond f64 range (`1e400`) fails
//! the general path's `Value` parse, so such a page is an error there, while the
//! streaming walker hands the number's text to the column conversion.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json_path::{JsonPath, NormalizedPath, PathElement};

use super::raw::{KeySeed, array_elements, object_entries};
use super::{DecodeError, DecoderConfigError};

/// How a decoder finds the records of a JSON page; parsed once per decoder.
#[derive(Debug)]
pub(crate) enum Selection {
    /// No `json_path`: the body, or the elements of a body that is an array.
    WholeBody,
    /// A path the streaming walker handles (the parsed path is kept for fallback).
    Simple {
        /// The steps after `$`.
        steps: Vec<Step>,
        /// The same path, for pages the walker hands over.
        path: JsonPath,
    },
    /// Any other path.
    General(JsonPath),
}

/// One step of a simple path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// `.name` or `['name']`: the member of that name of an object.
    Key(String),
    /// `[*]` or `.*`: every element of an array (an object goes to the general path).
    Wildcard,
}

/// Whether the streaming walk finished the page or hands it to the general path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    Done,
    NeedsGeneral,
}

/// Receives the values a walk selects, each as the deserializer positioned on it.
pub(crate) trait Emit<'a> {
    /// Consumes exactly one JSON value from `deserializer`.
    fn emit<D: Deserializer<'a>>(&mut self, deserializer: D) -> Result<(), D::Error>;
}

/// Collecting the raw text of each selected value.
impl<'a> Emit<'a> for Vec<&'a str> {
    fn emit<D: Deserializer<'a>>(&mut self, deserializer: D) -> Result<(), D::Error> {
        let raw: &'a RawValue = serde::Deserialize::deserialize(deserializer)?;
        self.push(raw.get());
        Ok(())
    }
}

impl Selection {
    /// Parses `json_path` (RFC 9535); `None` selects the whole body.
    pub(crate) fn new(json_path: Option<&str>) -> Result<Self, DecoderConfigError> {
        let Some(text) = json_path else {
            return Ok(Selection::WholeBody);
        };
        let path = JsonPath::parse(text).map_err(|e| DecoderConfigError::InvalidJsonPath {
            path: text.to_string(),
            message: e.to_string(),
        })?;
        Ok(match simple_steps(text) {
            Some(steps) => Selection::Simple { steps, path },
            None => Selection::General(path),
        })
    }

    /// Streams the records of `body` into `emit`, in order. `Ok(false)` means this page
    /// needs the general path ([`Selection::records`]) and whatever was emitted must be
    /// discarded. Fails when `body` is not valid JSON. The body is text already (UTF-8
    /// checked once for the page, not per string).
    pub(crate) fn stream<'a, E: Emit<'a>>(
        &self,
        body: &'a str,
        emit: &mut E,
    ) -> Result<bool, DecodeError> {
        let steps: &[Step] = match self {
            Selection::WholeBody => {
                if body.trim_start().starts_with('[') {
                    &[Step::Wildcard]
                } else {
                    &[]
                }
            }
            Selection::Simple { steps, .. } => steps,
            Selection::General(_) => return Ok(false),
        };
        let mut de = serde_json::Deserializer::from_str(body);
        let walk = Select { steps, emit }
            .deserialize(&mut de)
            .and_then(|walk| de.end().map(|()| walk))
            .map_err(invalid_json)?;
        Ok(walk == Walk::Done)
    }

    /// The raw JSON text of every record of `body`, in order: the same records
    /// [`Selection::stream`] emits, or the general path's when it declines the page.
    pub(crate) fn records<'a>(&self, body: &'a str) -> Result<Vec<Cow<'a, str>>, DecodeError> {
        let mut out: Vec<&'a str> = Vec::new();
        match self {
            Selection::WholeBody | Selection::Simple { .. } if self.stream(body, &mut out)? => {
                Ok(out.into_iter().map(Cow::Borrowed).collect())
            }
            Selection::Simple { path, .. } | Selection::General(path) => general(path, body),
            Selection::WholeBody => Err(DecodeError::InvalidJson(
                "the page could not be walked".into(),
            )),
        }
    }

    /// Whether records are found by the streaming walker (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn is_simple(&self) -> bool {
        matches!(self, Selection::Simple { .. })
    }

    /// The same selection evaluated by the general path, for tests that compare the two.
    #[cfg(test)]
    pub(crate) fn general_records<'a>(
        &self,
        body: &'a str,
    ) -> Result<Vec<Cow<'a, str>>, DecodeError> {
        match self {
            Selection::Simple { path, .. } | Selection::General(path) => general(path, body),
            Selection::WholeBody => self.records(body),
        }
    }
}

/// Whether a page of zero records holds an empty list or lacks `json_path` altogether.
///
/// The rule: zero records are an empty list when the path's last step is one that looks
/// into a list (a wildcard `[*]` / `.*`, an index, a slice or a filter) and the path
/// before that step selects at least one array or object in the body (`$.data` for
/// `$.data[*]`: `{"data": []}` is an empty list). Anything else that selects nothing is
/// missing: a last step that is a name (`$.data` on `{"error": "rate limited"}`), a
/// descendant step (`$..id`), or a container that is absent, `null` or a scalar. Without a
/// `json_path` the body itself is the list, so nothing is ever missing.
#[derive(Debug)]
pub(crate) enum Presence {
    /// No `json_path`.
    Always,
    /// Zero records always mean the path is missing.
    Selected {
        /// The path as written.
        path: String,
    },
    /// Zero records are an empty list when `container` selects an array or object.
    InContainer {
        /// The path as written.
        path: String,
        /// The path without its last step.
        container: Box<Selection>,
    },
}

impl Presence {
    /// The check for `json_path` (assumed valid: [`Selection::new`] reports a bad one).
    pub(crate) fn new(json_path: Option<&str>) -> Result<Self, DecoderConfigError> {
        let Some(path) = json_path else {
            return Ok(Presence::Always);
        };
        Ok(match split_last_step(path) {
            Some((container, last)) if looks_into_a_list(last) => Presence::InContainer {
                path: path.to_string(),
                container: Box::new(Selection::new(Some(container))?),
            },
            _ => Presence::Selected {
                path: path.to_string(),
            },
        })
    }

    /// For a page where the path selected nothing: the path when it is missing from
    /// `body`, `None` when the page holds an empty list.
    pub(crate) fn missing(&self, body: &str) -> Result<Option<&str>, DecodeError> {
        match self {
            Presence::Always => Ok(None),
            Presence::Selected { path } => Ok(Some(path)),
            Presence::InContainer { path, container } => {
                let found = container
                    .records(body)?
                    .iter()
                    .any(|node| matches!(node.trim_start().as_bytes().first(), Some(b'[' | b'{')));
                Ok((!found).then_some(path.as_str()))
            }
        }
    }
}

/// Splits a valid JSONPath into the path before its last step and that step (`$.a[*]` →
/// `$.a`, `[*]`; `$..b` → `$`, `..b`), or `None` for `$` alone (or a path whose steps
/// cannot be told apart by text, which then counts as having no container). The split is
/// the last `.` or `[` where both halves parse on their own, so brackets and dots inside
/// names or filters are never split on.
fn split_last_step(path: &str) -> Option<(&str, &str)> {
    let bytes = path.as_bytes();
    (1..bytes.len()).rev().find_map(|i| {
        let at_step = match bytes[i] {
            b'[' => true,
            // The second dot of `..` belongs to the step starting at the first.
            b'.' => bytes[i - 1] != b'.',
            _ => false,
        };
        if !at_step {
            return None;
        }
        // `.` and `[` are ASCII, so `i` is a character boundary here (and only here: a
        // path may hold any UTF-8, like `$.données[*]`).
        let (before, last) = path.split_at(i);
        (JsonPath::parse(before).is_ok() && JsonPath::parse(&format!("${last}")).is_ok())
            .then_some((before, last))
    })
}

/// Whether a last step looks into a list: a wildcard, an index, a slice or a filter,
/// rather than a name or a descendant step.
fn looks_into_a_list(step: &str) -> bool {
    if step.starts_with("..") {
        return false;
    }
    if let Some(rest) = step.strip_prefix('.') {
        return rest.trim_start().starts_with('*');
    }
    match step.strip_prefix('[') {
        Some(inside) => !matches!(inside.trim_start().as_bytes().first(), Some(b'\'' | b'"')),
        None => false,
    }
}

fn invalid_json(e: serde_json::Error) -> DecodeError {
    DecodeError::InvalidJson(e.to_string())
}

/// The steps of `path` if it is a simple path, else `None`.
fn simple_steps(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("[*]").or_else(|| rest.strip_prefix(".*")) {
            steps.push(Step::Wildcard);
            rest = r;
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(|c: char| !is_name_char(c)).unwrap_or(r.len());
            let name = &r[..end];
            if !name.chars().next().is_some_and(is_name_first) {
                return None;
            }
            steps.push(Step::Key(name.to_string()));
            rest = &r[end..];
        } else if let Some(quote @ ('\'' | '"')) =
            rest.strip_prefix('[').and_then(|r| r.chars().next())
        {
            let r = &rest[2..];
            let end = r.find(quote)?;
            let name = &r[..end];
            if name.contains('\\') || name.chars().any(char::is_control) {
                return None;
            }
            rest = r[end + 1..].strip_prefix(']')?;
            steps.push(Step::Key(name.to_string()));
        } else {
            return None;
        }
    }
    Some(steps)
}

fn is_name_first(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_name_char(c: char) -> bool {
    is_name_first(c) || c.is_ascii_digit()
}

/// Walks `steps` over the value a deserializer yields, emitting each selected value.
struct Select<'s, E> {
    steps: &'s [Step],
    emit: &'s mut E,
}

impl<'a, E: Emit<'a>> DeserializeSeed<'a> for Select<'_, E> {
    type Value = Walk;

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<Walk, D::Error> {
        match self.steps.split_first() {
            None => {
                self.emit.emit(deserializer)?;
                Ok(Walk::Done)
            }
            Some((step, rest)) => deserializer.deserialize_any(StepVisitor {
                step,
                rest,
                emit: self.emit,
            }),
        }
    }
}

struct StepVisitor<'s, E> {
    step: &'s Step,
    rest: &'s [Step],
    emit: &'s mut E,
}

impl<'a, E: Emit<'a>> Visitor<'a> for StepVisitor<'_, E> {
    type Value = Walk;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Walk, A::Error> {
        let Step::Key(name) = self.step else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Walk::NeedsGeneral);
        };
        let mut walk = Walk::Done;
        let mut seen = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key != name.as_str() || walk == Walk::NeedsGeneral {
                map.next_value::<IgnoredAny>()?;
            } else if seen {
                // A repeated key: a parsed map keeps the last value, and what the first
                // one emitted cannot be taken back here.
                map.next_value::<IgnoredAny>()?;
                walk = Walk::NeedsGeneral;
            } else {
                seen = true;
                walk = map.next_value_seed(Select {
                    steps: self.rest,
                    emit: &mut *self.emit,
                })?;
            }
        }
        Ok(walk)
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<Walk, A::Error> {
        if let Step::Key(_) = self.step {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Walk::Done);
        }
        loop {
            let select = Select {
                steps: self.rest,
                emit: &mut *self.emit,
            };
            match seq.next_element_seed(select)? {
                None => return Ok(Walk::Done),
                Some(Walk::Done) => {}
                Some(Walk::NeedsGeneral) => {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(Walk::NeedsGeneral);
                }
            }
        }
    }

    fn visit_bool<Er>(self, _: bool) -> Result<Walk, Er> {
        Ok(Walk::Done)
    }

    fn visit_i64<Er>(self, _: i64) -> Result<Walk, Er> {
        Ok(Walk::Done)
    }

    fn visit_u64<Er>(self, _: u64) -> Result<Walk, Er> {
        Ok(Walk::Done)
    }

    fn visit_f64<Er>(self, _: f64) -> Result<Walk, Er> {
        Ok(Walk::Done)
    }

    fn visit_str<Er>(self, _: &str) -> Result<Walk, Er> {
        Ok(Walk::Done)
    }

    fn visit_unit<Er>(self) -> Result<Walk, Er> {
        Ok(Walk::Done)
    }
}

/// Evaluates `path` with serde_json_path and returns each selected node's text from the
/// body itself.
fn general<'a>(path: &JsonPath, body: &'a str) -> Result<Vec<Cow<'a, str>>, DecodeError> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(invalid_json)?;
    let root: &'a RawValue = serde_json::from_str(body).map_err(invalid_json)?;
    let tree = RawNode::new(root);
    let nodes = path.query_located(&value);
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes.iter() {
        match tree.find(node.location()) {
            Some(text) => out.push(Cow::Borrowed(text)),
            // Unreachable for a body both parsers accepted; the serialized node is the
            // best remaining answer.
            None => out.push(Cow::Owned(node.node().to_string())),
        }
    }
    Ok(out)
}

/// A JSON value of the body whose children are split out on first visit, so locating
/// many nodes costs one pass over the containers they sit in.
struct RawNode<'a> {
    raw: &'a RawValue,
    children: OnceCell<Children<'a>>,
}

enum Children<'a> {
    Object(HashMap<Cow<'a, str>, RawNode<'a>>),
    Array(Vec<RawNode<'a>>),
    Leaf,
}

impl<'a> RawNode<'a> {
    fn new(raw: &'a RawValue) -> Self {
        RawNode {
            raw,
            children: OnceCell::new(),
        }
    }

    fn children(&self) -> &Children<'a> {
        self.children.get_or_init(|| {
            let text = self.raw.get();
            if text.starts_with('{') {
                match object_entries(text) {
                    // Inserting in document order keeps the last of repeated keys.
                    Ok(entries) => Children::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k, RawNode::new(v)))
                            .collect(),
                    ),
                    Err(_) => Children::Leaf,
                }
            } else if text.starts_with('[') {
                match array_elements(text) {
                    Ok(elements) => {
                        Children::Array(elements.into_iter().map(RawNode::new).collect())
                    }
                    Err(_) => Children::Leaf,
                }
            } else {
                Children::Leaf
            }
        })
    }

    fn find(&self, location: &NormalizedPath<'_>) -> Option<&'a str> {
        let mut node = self;
        for element in location.iter() {
            node = match (element, node.children()) {
                (PathElement::Name(name), Children::Object(members)) => members.get(*name)?,
                (PathElement::Index(i), Children::Array(elements)) => elements.get(*i)?,
                _ => return None,
            };
        }
        Some(node.raw.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(path: &str) -> Option<Vec<Step>> {
        simple_steps(path)
    }
    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    /// Found by `fuzz/fuzz_targets/decode.rs`: a path with a multi-byte character was
    /// split inside it, a panic when the pipeline loaded.
    #[test]
    fn paths_with_non_ascii_names_split_on_character_boundaries() {
        assert_eq!(split_last_step("$.données[*]"), Some(("$.données", "[*]")));
        assert_eq!(split_last_step("$.é.ü"), Some(("$.é", ".ü")));
        let schema = std::sync::Arc::new(crate::schema::RecordSchema::new(vec![
            crate::schema::Column::new("a", crate::schema::ColumnType::Text, true),
        ]));
        // The fuzzer's input, and names of several non-ASCII characters.
        for path in ["$.données[*]", "$\u{fffd}2\n....2", "$.ü[0].ß"] {
            let _ = crate::decode::RecordDecoder::new(
                schema.clone(),
                crate::decode::Format::Json {
                    json_path: Some(path.into()),
                },
            );
        }
    }

    #[test]
    fn simple_path_grammar() {
        assert_eq!(steps("$"), Some(vec![]));
        assert_eq!(steps("$[*]"), Some(vec![Step::Wildcard]));
        assert_eq!(steps("$.data[*]"), Some(vec![key("data"), Step::Wildcard]));
        assert_eq!(
            steps("$.a.b_2[*].c"),
            Some(vec![key("a"), key("b_2"), Step::Wildcard, key("c")])
        );
        assert_eq!(steps("$.a.*"), Some(vec![key("a"), Step::Wildcard]));
        assert_eq!(steps("$['a b'][\"c\"]"), Some(vec![key("a b"), key("c")]));
        assert_eq!(steps("$.résumé"), Some(vec![key("résumé")]));
        for general in [
            "$..a",
            "$.a[0]",
            "$.a[?@.x > 1]",
            "$.a[1:]",
            "$['a\\'b']",
            "$.1a",
            "$.a[*, 0]",
            "$[ * ]",
        ] {
            assert_eq!(steps(general), None, "{general}");
        }
    }

    fn texts(records: Vec<Cow<'_, str>>) -> Vec<String> {
        records.into_iter().map(Cow::into_owned).collect()
    }

    fn both(path: &str, body: &str) -> Vec<String> {
        let selection = Selection::new(Some(path)).unwrap();
        let fast = texts(selection.records(body).unwrap());
        let general = texts(selection.general_records(body).unwrap());
        assert_eq!(fast, general, "{path} over {body}");
        fast
    }

    #[test]
    fn streaming_walk_matches_serde_json_path() {
        let body = r#"{"meta": {"n": 2}, "data": [{"a": 1}, 7, {"b": [1, 2]}], "x": "y"}"#;
        assert!(Selection::new(Some("$.data[*]")).unwrap().is_simple());
        assert_eq!(
            both("$.data[*]", body),
            [r#"{"a": 1}"#, "7", r#"{"b": [1, 2]}"#]
        );
        assert_eq!(both("$.data", body), [r#"[{"a": 1}, 7, {"b": [1, 2]}]"#]);
        assert_eq!(both("$.data[*].b[*]", body), ["1", "2"]);
        assert_eq!(both("$.meta", body), [r#"{"n": 2}"#]);
        assert_eq!(both("$", body), [body]);
        assert_eq!(both("$.missing[*]", body), Vec::<String>::new());
        assert_eq!(both("$.x.y", body), Vec::<String>::new());
        assert_eq!(both("$.data.a", body), Vec::<String>::new());
        assert_eq!(
            both("$[*]", r#"[{"a": 1}, {"a": 2}]"#),
            [r#"{"a": 1}"#, r#"{"a": 2}"#]
        );
        // Repeated keys: the last one wins in both.
        assert_eq!(both("$.d[*]", r#"{"d": [1], "d": [2, 3]}"#), ["2", "3"]);
    }

    #[test]
    fn wildcard_over_object_falls_back_to_the_general_path() {
        let body = r#"{"data": {"z": {"id": 1}, "a": {"id": 2}}}"#;
        let selection = Selection::new(Some("$.data[*]")).unwrap();
        let records = texts(selection.records(body).unwrap());
        let general = texts(selection.general_records(body).unwrap());
        assert_eq!(records, general);
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn general_path_keeps_the_body_text() {
        let body = r#"{"items": [{"p": 1.10, "n": "a"}, {"p": 5, "n": "b"}, {"p": 30, "n": "c"}]}"#;
        let selection = Selection::new(Some("$.items[?@.p > 2]")).unwrap();
        assert!(!selection.is_simple());
        assert_eq!(
            texts(selection.records(body).unwrap()),
            [r#"{"p": 5, "n": "b"}"#, r#"{"p": 30, "n": "c"}"#]
        );
        let recursive = Selection::new(Some("$..p")).unwrap();
        assert_eq!(texts(recursive.records(body).unwrap()), ["1.10", "5", "30"]);
    }

    #[test]
    fn whole_body_is_one_record_or_the_elements() {
        let selection = Selection::new(None).unwrap();
        assert_eq!(
            texts(selection.records(" {\"a\": 1} ").unwrap()),
            [r#"{"a": 1}"#]
        );
        assert_eq!(
            texts(selection.records("[{\"a\": 1}, 2]").unwrap()),
            [r#"{"a": 1}"#, "2"]
        );
    }

    #[test]
    fn invalid_json_is_a_page_error_with_position() {
        for path in [None, Some("$.data[*]"), Some("$..a")] {
            let selection = Selection::new(path).unwrap();
            let err = selection.records("{\"data\": [1,\n 2,]}").unwrap_err();
            assert!(
                matches!(&err, DecodeError::InvalidJson(m) if m.contains("line 2 column")),
                "{path:?}: {err}"
            );
        }
        // Invalid JSON outside the selected part still fails the page.
        let selection = Selection::new(Some("$.data[*]")).unwrap();
        assert!(selection.records("{\"data\": [], \"x\": tru}").is_err());
        assert!(selection.records("{\"data\": []} trailing").is_err());
    }

    #[test]
    fn bad_path_is_a_config_error() {
        let err = Selection::new(Some("$.data[")).unwrap_err();
        match err {
            DecoderConfigError::InvalidJsonPath { path, message } => {
                assert_eq!(path, "$.data[");
                assert!(!message.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
}
