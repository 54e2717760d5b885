//! XML bodies (`format = 'xml'`): one streaming pass of quick-xml over the body picks
//! the elements `xml_root_path` names, and each becomes a record whose fields go through
//! the same column matching, conversion and dead-letter rules as JSON members. No DOM is
//! built: only the element being read as a record is held, as a small tree.
//!
//! * `xml_root_path` is an absolute path of element names, `/response/items/item`; every
//!   element at exactly that path is a record. `//name` matches at any depth
//!   (`//item`, `/feed//entry`) and `*` matches any one name. Names match on their local
//!   part: prefixes in the document and in the path are ignored, so `<ns:item>` and a
//!   default namespace both match `item`. Elements inside a record are never records
//!   themselves; they are its fields.
//! * A record's fields are its attributes and its child elements, by local name. An
//!   element holding only text gives that text (CDATA included, entities resolved,
//!   surrounding whitespace trimmed); an element with attributes or children of its own
//!   gives a JSON object (attributes as `@name`, children by name, its own text as
//!   `#text`), which a JSON or TEXT column stores as JSON text; an element repeated gives
//!   a JSON array of those values. An element and an attribute of the same name: the
//!   element wins. The record's own text is the field `#text`.
//! * An empty element (or attribute) is the empty string in a TEXT column and NULL
//!   elsewhere; inside a JSON object it is `null`. `xsi:nil="true"` makes a value NULL.
//!   Namespace declarations and other `xsi:` attributes are not fields.
//! * A table of a single column takes the record itself when the record has no field of
//!   that column's name: its text when it holds only text (`<item>42</item>`), else the
//!   record as a JSON object (the form above), converted like any other value (so a
//!   structured record into a lone INT column is a dead letter). This makes the seed's
//!   `(data JSON)` table hold each whole record. It applies to XML only: a JSON record
//!   is already one value a `json_path` can pick, and a missing JSON field stays NULL as
//!   it always has.
//! * A text value in a JSON column follows the CSV rule: text that is JSON is kept as JSON.
//! * An element with attributes and text but no child elements
//!   (`<guid isPermaLink="false">http://x</guid>`) gives its text to a TEXT or other
//!   scalar column, and the JSON object (`{"@isPermaLink":"false","#text":"http://x"}`)
//!   to a JSON column; `field_paths` reach either (`$.guid['@isPermaLink']`).
//! * `field_paths` read the record through that JSON form: `$.author.name` is the text of
//!   `<author><name>`, `$.link['@href']` an attribute, `$.category[1]` the second of a
//!   repeated element.
//!
//! The body must be UTF-8 (a BOM is skipped); the XML declaration, comments, processing
//! instructions and the DOCTYPE are skipped. Entities declared in a DTD are never
//! expanded (no billion laughs, no external fetches): only the five predefined entities
//! and character references are, and a reference to any other entity makes the page
//! invalid. A body that is not well-formed (mismatched or unclosed tags, a bad entity or
//! attribute) is a page error naming the byte offset and line; a whitespace-only body is
//! zero rows. A document with no element at the path is zero rows when the element the
//! records sit in is there (`<items/>` for `/response/items/item`, `<feed>` for
//! `/feed//entry`), an empty list; otherwise (another root such as `<error>`, or a path
//! of one step like `//item` that matched nothing) the path is missing from the body,
//! [`DecodeError::NothingAtPath`]. Kept lenient on purpose: several
//! top-level elements, or text after the root, are read rather than refused. Records
//! nested deeper than [`MAX_RECORD_DEPTH`] levels are dead letters.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::page::{Origin, PageSink, TextValue};
use super::paths::{FieldPaths, Found};
use super::record::FieldIndex;
use super::{DecodeError, UTF8_BOM};
use crate::schema::RecordSchema;

/// Most steps an `xml_root_path` may have (the matcher keeps one bit per step).
const MAX_PATH_STEPS: usize = 64;

/// Deepest element nesting read inside a record; deeper records are dead letters. Keeps
/// the per-record tree (and the recursion over it) small whatever the body holds.
pub(crate) const MAX_RECORD_DEPTH: usize = 64;

/// Most emptied elements kept for reuse, so reading a record allocates little.
const MAX_SPARE_NODES: usize = 1024;

/// Above this many children, grouping them by name uses a hash map.
const LINEAR_GROUPING_MAX: usize = 16;

/// The field holding an element's own text.
const TEXT_FIELD: &str = "#text";

/// A parsed `xml_root_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RootPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    /// `//name`: any depth below the previous step (or the document root).
    descendant: bool,
    /// The local name, `None` for `*`.
    name: Option<Box<str>>,
}

impl Step {
    fn accepts(&self, name: &str) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
    }
}

/// Match state of one open element: bit `k` of `at` is set when steps `0..=k` match the
/// path down to this element with step `k` on it; `within` ORs `at` over the element and
/// its ancestors (what a `//` step below needs).
#[derive(Debug, Clone, Copy, Default)]
struct PathState {
    at: u64,
    within: u64,
}

impl RootPath {
    /// Parses `/a/b/c`, `//c`, `/a//c`, `/a/*/c`; prefixes (`ns:item`) are dropped.
    pub(crate) fn parse(path: &str) -> Result<Self, String> {
        let Some(rest) = path.trim().strip_prefix('/') else {
            return Err(
                "must be an absolute path of element names, e.g. /response/items/item".into(),
            );
        };
        let mut steps = Vec::new();
        let mut descendant = false;
        for segment in rest.split('/') {
            if segment.is_empty() {
                if descendant {
                    return Err("has an empty step ('///')".into());
                }
                descendant = true;
                continue;
            }
            let local = segment.rsplit(':').next().unwrap_or(segment);
            let name = match local {
                "*" => None,
                _ if is_name(local) => Some(local.into()),
                _ => {
                    return Err(format!(
                        "step `{segment}` is not an element name (only names, `*` and `//` are supported)"
                    ));
                }
            };
            steps.push(Step { descendant, name });
            descendant = false;
        }
        if descendant {
            return Err("must end with an element name".into());
        }
        if steps.len() > MAX_PATH_STEPS {
            return Err(format!("has more than {MAX_PATH_STEPS} steps"));
        }
        Ok(RootPath { steps })
    }

    /// The state of an element named `name` under `parent` (`None`: the document root).
    fn enter(&self, parent: Option<PathState>, name: &str) -> PathState {
        let mut at = 0u64;
        for (k, step) in self.steps.iter().enumerate() {
            if !step.accepts(name) {
                continue;
            }
            let reached = match (k.checked_sub(1), parent) {
                (None, _) => step.descendant || parent.is_none(),
                (Some(_), None) => false,
                (Some(previous), Some(p)) => {
                    let mask = if step.descendant { p.within } else { p.at };
                    mask >> previous & 1 == 1
                }
            };
            if reached {
                at |= 1 << k;
            }
        }
        PathState {
            at,
            within: at | parent.map_or(0, |p| p.within),
        }
    }

    /// Whether an element in `state` is where records are looked for: it matches the
    /// path without its last step (`/response/items` for `/response/items/item`). A path
    /// of one step has no such element.
    fn is_container(&self, state: PathState) -> bool {
        self.steps
            .len()
            .checked_sub(2)
            .is_some_and(|parent| state.at >> parent & 1 == 1)
    }

    fn is_record(&self, state: PathState) -> bool {
        self.steps
            .len()
            .checked_sub(1)
            .is_some_and(|last| state.at >> last & 1 == 1)
    }
}

impl fmt::Display for RootPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            f.write_str(if step.descendant { "//" } else { "/" })?;
            f.write_str(step.name.as_deref().unwrap_or("*"))?;
        }
        Ok(())
    }
}

/// An XML name as far as a path step needs: no whitespace, no path or predicate syntax.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| {
            c.is_whitespace()
                || matches!(
                    c,
                    '[' | ']'
                        | '('
                        | ')'
                        | '@'
                        | '='
                        | '*'
                        | '\''
                        | '"'
                        | '<'
                        | '>'
                        | '&'
                        | '|'
                        | ','
                        | '!'
                        | '?'
                        | '$'
                )
        })
}

/// One element of the record being read.
#[derive(Debug, Default)]
struct Node {
    /// Local name.
    name: String,
    /// Attributes by local name, without namespace declarations and `xsi:` ones.
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    /// Its own text, concatenated (leading whitespace-only pieces dropped).
    text: String,
    /// `xsi:nil="true"`.
    nil: bool,
}

impl Node {
    /// The element a start tag opens, reusing an emptied node from `spare`. `at` is the
    /// tag's offset, for errors.
    fn open(
        start: &BytesStart<'_>,
        body: &[u8],
        at: usize,
        spare: &mut Vec<Node>,
    ) -> Result<Node, DecodeError> {
        let mut node = spare.pop().unwrap_or_default();
        node.name.push_str(start.local_name().into_inner());
        let mut prefixed = false;
        for attr in start.attributes() {
            let attr = attr.map_err(|e| attribute_error(body, at, &e))?;
            let key = attr.key.into_inner();
            let (prefix, local) = match key.rsplit_once(':') {
                Some((prefix, local)) => (Some(prefix), local),
                None => (None, key),
            };
            if key == "xmlns" || prefix == Some("xmlns") {
                continue;
            }
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| invalid(body, at, e))?;
            if prefix == Some("xsi") {
                node.nil |= local == "nil" && value.trim() == "true";
                continue;
            }
            prefixed |= prefix.is_some();
            node.attrs.push((local.to_string(), value.into_owned()));
        }
        if prefixed {
            dedupe_attributes(&mut node.attrs);
        }
        Ok(node)
    }

    /// Empties this element and its descendants into `spare` for reuse.
    fn recycle(mut self, spare: &mut Vec<Node>) {
        for child in self.children.drain(..) {
            child.recycle(spare);
        }
        self.name.clear();
        self.text.clear();
        self.attrs.clear();
        self.nil = false;
        if spare.len() < MAX_SPARE_NODES {
            spare.push(self);
        }
    }

    fn push_text(&mut self, text: &str) {
        if self.text.is_empty() && text.bytes().all(is_xml_space) {
            return;
        }
        self.text.push_str(text);
    }

    fn own_text(&self) -> &str {
        self.text
            .trim_matches(|c: char| c.is_ascii() && is_xml_space(c as u8))
    }

    fn is_leaf(&self) -> bool {
        self.attrs.is_empty() && self.children.is_empty()
    }
}

/// Attributes whose local names collide once prefixes are dropped (`a:id`, `b:id`): the
/// last value is kept, at the first one's place. Linear, whatever the count.
fn dedupe_attributes(attrs: &mut Vec<(String, String)>) {
    let mut first_at: HashMap<String, usize> = HashMap::with_capacity(attrs.len());
    let mut kept: Vec<(String, String)> = Vec::with_capacity(attrs.len());
    for (name, value) in attrs.drain(..) {
        match first_at.get(&name).and_then(|&i| kept.get_mut(i)) {
            Some(existing) => existing.1 = value,
            None => {
                first_at.insert(name.clone(), kept.len());
                kept.push((name, value));
            }
        }
    }
    *attrs = kept;
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A field's value, borrowing from the record's tree where it can.
#[derive(Debug)]
enum Value<'n> {
    Null,
    Empty,
    Text(&'n str),
    Json(String),
    /// Attributes and text, no child elements.
    Attributed(&'n str, String),
}

impl Value<'_> {
    fn as_text(&self) -> TextValue<'_> {
        match self {
            Value::Null => TextValue::Null,
            Value::Empty => TextValue::Empty,
            Value::Text(text) => TextValue::Text(text),
            Value::Json(json) => TextValue::Json(json),
            Value::Attributed(text, json) => TextValue::Attributed { text, json },
        }
    }

    /// The value's JSON form, for a path to walk: `None` for text (no members).
    fn json(&self) -> Option<&str> {
        match self {
            Value::Json(json) | Value::Attributed(_, json) => Some(json),
            Value::Null | Value::Empty | Value::Text(_) => None,
        }
    }
}

/// An element as a field value: its text when it holds only text, else a JSON object
/// (with its text alongside when it has attributes, text and no children).
fn value_of(node: &Node) -> Value<'_> {
    if node.is_leaf() {
        match node.own_text() {
            "" if node.nil => Value::Null,
            "" => Value::Empty,
            text => Value::Text(text),
        }
    } else {
        let mut json = String::new();
        write_object(node, &mut json);
        match node.own_text() {
            text if node.children.is_empty() && !text.is_empty() && !node.nil => {
                Value::Attributed(text, json)
            }
            _ => Value::Json(json),
        }
    }
}

/// What a mapped column's path found in a record's field.
enum Picked<'v> {
    Missing,
    Value(TextValue<'v>),
    Many(String),
}

/// Resolves `path` on `value`, the record's field the path starts at.
fn pick<'v>(path: &super::paths::MappedPath, value: &'v Value<'_>) -> Result<Picked<'v>, String> {
    if path.is_member() {
        return Ok(Picked::Value(value.as_text()));
    }
    let Some(json) = value.json() else {
        return Ok(Picked::Missing);
    };
    Ok(match path.resolve(json)? {
        Found::Missing => Picked::Missing,
        Found::One(raw) => Picked::Value(TextValue::Raw(raw)),
        Found::Many(all) => Picked::Many(all),
    })
}

/// The children of one name: most names appear once, which needs no allocation.
enum Members<'n> {
    One(&'n Node),
    Many(Vec<&'n Node>),
}

impl<'n> Members<'n> {
    fn push(&mut self, node: &'n Node) {
        match self {
            Members::One(first) => *self = Members::Many(vec![*first, node]),
            Members::Many(all) => all.push(node),
        }
    }

    fn as_slice(&self) -> &[&'n Node] {
        match self {
            Members::One(one) => std::slice::from_ref(one),
            Members::Many(all) => all,
        }
    }
}

/// Children grouped by name, in the order each name first appears.
fn groups(children: &[Node]) -> Vec<(&str, Members<'_>)> {
    let mut groups: Vec<(&str, Members<'_>)> = Vec::with_capacity(children.len());
    let mut by_name: Option<HashMap<&str, usize>> =
        (children.len() > LINEAR_GROUPING_MAX).then(HashMap::new);
    for child in children {
        let name = child.name.as_str();
        let found = match &by_name {
            Some(map) => map.get(name).copied(),
            None => groups.iter().position(|(n, _)| *n == name),
        };
        match found.and_then(|i| groups.get_mut(i)) {
            Some((_, members)) => members.push(child),
            None => {
                if let Some(map) = &mut by_name {
                    map.insert(name, groups.len());
                }
                groups.push((name, Members::One(child)));
            }
        }
    }
    groups
}

/// The fields of a record element, in document order: attributes (unless an element has
/// the same name), child elements, then `#text`.
fn record_fields(root: &Node) -> Vec<(&str, Value<'_>)> {
    let groups = groups(&root.children);
    let elements: Option<HashSet<&str>> = (groups.len() > LINEAR_GROUPING_MAX)
        .then(|| groups.iter().map(|(name, _)| *name).collect());
    let is_element = |name: &str| match &elements {
        Some(set) => set.contains(name),
        None => groups.iter().any(|(n, _)| *n == name),
    };
    let mut fields = Vec::with_capacity(root.attrs.len() + groups.len() + 1);
    for (name, value) in &root.attrs {
        if !is_element(name) {
            let value = if value.is_empty() {
                Value::Empty
            } else {
                Value::Text(value)
            };
            fields.push((name.as_str(), value));
        }
    }
    for (name, members) in &groups {
        let value = match members.as_slice() {
            [one] => value_of(one),
            many => {
                let mut json = String::from("[");
                for (i, member) in many.iter().enumerate() {
                    if i > 0 {
                        json.push(',');
                    }
                    write_value(member, &mut json);
                }
                json.push(']');
                Value::Json(json)
            }
        };
        fields.push((*name, value));
    }
    match root.own_text() {
        "" => {}
        text => fields.push((TEXT_FIELD, Value::Text(text))),
    }
    fields
}

/// An element as JSON: a string for text only, `null` when empty, else an object.
fn write_value(node: &Node, out: &mut String) {
    if node.is_leaf() {
        match node.own_text() {
            "" => out.push_str("null"),
            text => write_json_string(text, out),
        }
    } else {
        write_object(node, out);
    }
}

fn write_object(node: &Node, out: &mut String) {
    out.push('{');
    let mut first = true;
    let mut key = |out: &mut String, prefix: &str, name: &str| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        out.push('"');
        out.push_str(prefix);
        escape_json_into(name, out);
        out.push_str("\":");
    };
    for (name, value) in &node.attrs {
        key(out, "@", name);
        write_json_string(value, out);
    }
    for (name, members) in groups(&node.children) {
        key(out, "", name);
        match members.as_slice() {
            [one] => write_value(one, out),
            many => {
                out.push('[');
                for (i, member) in many.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_value(member, out);
                }
                out.push(']');
            }
        }
    }
    match node.own_text() {
        "" => {}
        text => {
            key(out, "", TEXT_FIELD);
            write_json_string(text, out);
        }
    }
    out.push('}');
}

fn write_json_string(text: &str, out: &mut String) {
    out.push('"');
    escape_json_into(text, out);
    out.push('"');
}

fn escape_json_into(text: &str, out: &mut String) {
    let mut plain_from = 0;
    for (i, b) in text.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        // `i` is an ASCII byte, so both slices end on char boundaries.
        out.push_str(text.get(plain_from..i).unwrap_or_default());
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        plain_from = i + 1;
    }
    out.push_str(text.get(plain_from..).unwrap_or_default());
}

/// The record element being read: the open elements from the record down.
struct OpenRecord {
    nodes: Vec<Node>,
    /// Offset of the record's start tag.
    start: usize,
    /// Open elements below [`MAX_RECORD_DEPTH`] being skipped.
    skipping: usize,
    too_deep: bool,
}

impl OpenRecord {
    fn top(&mut self) -> Option<&mut Node> {
        if self.skipping > 0 {
            None
        } else {
            self.nodes.last_mut()
        }
    }

    fn attach(&mut self, node: Node) {
        if let Some(parent) = self.nodes.last_mut() {
            parent.children.push(node);
        }
    }
}

/// What one decode needs besides the reader.
struct Page<'p, 's, 'd, 'a> {
    body: &'p [u8],
    index: &'p FieldIndex,
    paths: &'p FieldPaths,
    single_column: bool,
    sink: &'s mut PageSink<'d, 'a>,
    records: usize,
    lines: LineCounter,
    slots: Vec<Option<usize>>,
}

impl Page<'_, '_, '_, '_> {
    /// Turns a finished record element (`start..end` in the body) into a row or a dead
    /// letter.
    fn emit(&mut self, root: &Node, too_deep: bool, start: usize, end: usize) {
        let origin = Origin::Element {
            index: self.records,
            line: self.lines.line_at(self.body, start),
        };
        self.records += 1;
        let body = self.body;
        let raw = || String::from_utf8_lossy(body.get(start..end).unwrap_or_default()).into_owned();
        if too_deep {
            let problem = format!("elements nested deeper than {MAX_RECORD_DEPTH} levels");
            self.sink.text_dead(origin, &problem, &raw());
            return;
        }
        let fields = record_fields(root);
        self.slots.iter_mut().for_each(|slot| *slot = None);
        let mut hint = 0;
        for (i, (name, _)) in fields.iter().enumerate() {
            self.index.assign(name, i, &mut hint, &mut self.slots);
        }
        let whole =
            (self.single_column && self.paths.is_empty() && self.slots.first() == Some(&None))
                .then(|| value_of(root));
        let slots = &self.slots;
        // The mapped columns' values, resolved before the row is converted.
        let mut picked: Vec<Option<Picked<'_>>> = Vec::new();
        if !self.paths.is_empty() {
            for column in 0..self.sink.columns() {
                let Some(path) = self.paths.get(column) else {
                    picked.push(None);
                    continue;
                };
                let source = slots.get(path.source).copied().flatten();
                let found = match source.and_then(|field| fields.get(field)) {
                    None => Ok(Picked::Missing),
                    Some((_, value)) => pick(path, value),
                };
                match found {
                    Ok(found) => picked.push(Some(found)),
                    Err(e) => {
                        let problem = format!("field {:?}: {e}", &*path.text);
                        self.sink.text_dead(origin, &problem, &raw());
                        return;
                    }
                }
            }
        }
        let paths = self.paths;
        self.sink.text_record(
            origin,
            |column| {
                if let Some(Some(found)) = picked.get(column) {
                    let key = paths.get(column).map_or("", |p| &*p.text);
                    return match found {
                        Picked::Missing => None,
                        Picked::Value(value) => Some((key, *value)),
                        Picked::Many(all) => Some((key, TextValue::Raw(all))),
                    };
                }
                match slots.get(column).copied().flatten() {
                    Some(field) => fields
                        .get(field)
                        .map(|(name, value)| (*name, value.as_text())),
                    None => whole
                        .as_ref()
                        .filter(|_| column == 0)
                        .map(|value| (root.name.as_str(), value.as_text())),
                }
            },
            raw,
        );
    }
}

/// Decodes an XML body into `sink`.
pub(crate) fn decode(
    body: &[u8],
    path: &RootPath,
    schema: &RecordSchema,
    index: &FieldIndex,
    paths: &FieldPaths,
    sink: &mut PageSink<'_, '_>,
) -> Result<(), DecodeError> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    let text =
        std::str::from_utf8(body).map_err(|e| invalid(body, e.valid_up_to(), "not valid UTF-8"))?;
    if text.bytes().all(is_xml_space) {
        return Ok(());
    }
    let mut container_seen = false;
    let mut page = Page {
        body,
        index,
        paths,
        single_column: schema.columns().len() == 1,
        sink,
        records: 0,
        lines: LineCounter::default(),
        slots: vec![None; index.len()],
    };
    let mut reader = Reader::from_str(text);
    // Match state of each open element outside records.
    let mut open: Vec<PathState> = Vec::new();
    let mut record: Option<OpenRecord> = None;
    let mut spare: Vec<Node> = Vec::new();
    loop {
        let before = offset(reader.buffer_position(), body.len());
        let event = reader
            .read_event()
            .map_err(|e| invalid(body, offset(reader.error_position(), body.len()), e))?;
        if let Some(current) = &mut record {
            match event {
                Event::Start(start) => {
                    if current.skipping > 0 || current.nodes.len() >= MAX_RECORD_DEPTH {
                        current.skipping += 1;
                        current.too_deep = true;
                    } else {
                        current
                            .nodes
                            .push(Node::open(&start, body, before, &mut spare)?);
                    }
                }
                Event::Empty(start) => {
                    if current.skipping > 0 || current.nodes.len() >= MAX_RECORD_DEPTH {
                        current.too_deep = true;
                    } else {
                        let node = Node::open(&start, body, before, &mut spare)?;
                        current.attach(node);
                    }
                }
                Event::End(_) if current.skipping > 0 => current.skipping -= 1,
                Event::End(_) => {
                    if let Some(node) = current.nodes.pop() {
                        if current.nodes.is_empty() {
                            let end = offset(reader.buffer_position(), body.len());
                            page.emit(&node, current.too_deep, current.start, end);
                            node.recycle(&mut spare);
                            record = None;
                            open.pop();
                        } else {
                            current.attach(node);
                        }
                    }
                }
                Event::Text(t) => {
                    if let Some(node) = current.top() {
                        node.push_text(&t.xml10_content());
                    }
                }
                Event::CData(c) => {
                    if let Some(node) = current.top() {
                        node.push_text(&c.xml10_content());
                    }
                }
                Event::GeneralRef(r) => {
                    let resolved = reference(&r).map_err(|m| invalid(body, before, m))?;
                    if let Some(node) = current.top() {
                        resolved.push_to(&mut node.text);
                    }
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
            continue;
        }
        match event {
            Event::Start(start) => {
                let state = path.enter(open.last().copied(), start.local_name().into_inner());
                container_seen |= path.is_container(state);
                open.push(state);
                if path.is_record(state) {
                    record = Some(OpenRecord {
                        nodes: vec![Node::open(&start, body, before, &mut spare)?],
                        start: before,
                        skipping: 0,
                        too_deep: false,
                    });
                }
            }
            Event::Empty(start) => {
                let state = path.enter(open.last().copied(), start.local_name().into_inner());
                container_seen |= path.is_container(state);
                if path.is_record(state) {
                    let node = Node::open(&start, body, before, &mut spare)?;
                    let end = offset(reader.buffer_position(), body.len());
                    page.emit(&node, false, before, end);
                    node.recycle(&mut spare);
                }
            }
            Event::End(_) => {
                open.pop();
            }
            Event::GeneralRef(r) => {
                reference(&r).map_err(|m| invalid(body, before, m))?;
            }
            Event::Eof => break,
            Event::Text(_)
            | Event::CData(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_)
            | Event::DocType(_) => {}
        }
    }
    if !open.is_empty() {
        let unclosed = open.len();
        return Err(invalid(
            body,
            body.len(),
            format!("the body ends with {unclosed} element(s) not closed"),
        ));
    }
    if page.records == 0 && !container_seen {
        return Err(DecodeError::NothingAtPath {
            option: "xml_root_path",
            path: path.to_string(),
        });
    }
    Ok(())
}

/// What an entity or character reference stands for.
enum Resolved {
    Char(char),
    Text(&'static str),
}

impl Resolved {
    fn push_to(&self, out: &mut String) {
        match self {
            Resolved::Char(c) => out.push(*c),
            Resolved::Text(t) => out.push_str(t),
        }
    }
}

/// Resolves a character reference or one of the five predefined entities. Anything else
/// is refused: entities a DTD declares are never expanded.
fn reference(r: &BytesRef<'_>) -> Result<Resolved, String> {
    let name: &str = r;
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) => Ok(Resolved::Char(c)),
            _ => Err(format!("invalid character reference `&{name};`")),
        };
    }
    match resolve_predefined_entity(name) {
        Some(text) => Ok(Resolved::Text(text)),
        None => Err(format!(
            "unknown entity `&{name};` (entities declared in a DTD are not expanded)"
        )),
    }
}

/// The page error for a body that is not well-formed XML at byte `at`.
fn invalid(body: &[u8], at: usize, message: impl fmt::Display) -> DecodeError {
    let line = body
        .get(..at)
        .unwrap_or(body)
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    DecodeError::InvalidXml(format!("{message} at byte {at} (line {line})"))
}

/// The page error for a malformed attribute in the tag at `tag`: quick-xml counts
/// positions from the tag's name, the message counts them from the body's start.
fn attribute_error(body: &[u8], tag: usize, error: &AttrError) -> DecodeError {
    let absolute = |position: usize| tag.saturating_add(1).saturating_add(position);
    let (message, position) = match *error {
        AttrError::ExpectedEq(p) => ("attribute name must be followed by `=`".to_string(), p),
        AttrError::ExpectedValue(p) => ("`=` must be followed by an attribute value".into(), p),
        AttrError::UnquotedValue(p) => ("attribute value must be quoted".into(), p),
        AttrError::ExpectedQuote(p, _) => ("attribute value is not closed".into(), p),
        AttrError::Duplicated(p, first) => (
            format!("duplicated attribute (first at byte {})", absolute(first)),
            p,
        ),
    };
    invalid(body, absolute(position).min(body.len()), message)
}

/// A reader offset as an index into `body` (never past its end).
fn offset(position: u64, len: usize) -> usize {
    usize::try_from(position).map_or(len, |p| p.min(len))
}

/// 1-based line numbers of byte offsets met in increasing order, counted incrementally.
#[derive(Default)]
struct LineCounter {
    counted_to: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_at(&mut self, body: &[u8], offset: usize) -> usize {
        if offset > self.counted_to {
            self.newlines += body
                .get(self.counted_to..offset)
                .map_or(0, |s| s.iter().filter(|&&b| b == b'\n').count());
            self.counted_to = offset;
        }
        self.newlines + 1
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array};

    use super::RootPath;
    use crate::decode::test_support::{col, column, ints, reasons, strings};
    use crate::decode::{DeadLetter, DecodeError, Format, RecordDecoder};
    use crate::schema::{Column, ColumnType, RecordSchema};

    fn decoder(columns: Vec<Column>, root_path: &str) -> RecordDecoder {
        RecordDecoder::new(
            Arc::new(RecordSchema::new(columns)),
            Format::Xml {
                root_path: root_path.into(),
            },
        )
        .unwrap()
    }

    const SEED_BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- exported by the example API -->
<response status="ok">
  <meta><count>2</count></meta>
  <items>
    <item id="1" kind="a">
      <name>alpha</name>
      <value>1.5</value>
      <tags><tag>x</tag><tag>y</tag></tags>
    </item>
    <item id="2">
      <name>beta</name>
      <value>2</value>
      <price currency="EUR">9.99</price>
    </item>
  </items>
</response>
"#;

    #[test]
    fn seed_table_gets_each_whole_record_as_json() {
        let d = decoder(vec![col("data", ColumnType::Json)], "/response/items/item");
        let page = d.decode(SEED_BODY.as_bytes()).unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(
            strings(&page, 0),
            [
                Some(
                    r#"{"@id":"1","@kind":"a","name":"alpha","value":"1.5","tags":{"tag":["x","y"]}}"#
                ),
                Some(
                    r##"{"@id":"2","name":"beta","value":"2","price":{"@currency":"EUR","#text":"9.99"}}"##
                ),
            ]
        );
    }

    #[test]
    fn attributes_and_children_fill_typed_columns() {
        let d = decoder(
            vec![
                col("id", ColumnType::BigInt),
                col("Name", ColumnType::Text),
                col("value", ColumnType::Double),
                col("kind", ColumnType::Text),
                col("tags", ColumnType::Json),
                col("price", ColumnType::Text),
                col("missing", ColumnType::Int),
            ],
            "/response/items/item",
        );
        let page = d.decode(SEED_BODY.as_bytes()).unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        let ids: Vec<_> = column::<Int64Array>(&page, 0).iter().collect();
        assert_eq!(ids, [Some(1), Some(2)]);
        assert_eq!(strings(&page, 1), [Some("alpha"), Some("beta")]);
        let values: Vec<_> = column::<Float64Array>(&page, 2).iter().collect();
        assert_eq!(values, [Some(1.5), Some(2.0)]);
        assert_eq!(strings(&page, 3), [Some("a"), None]);
        assert_eq!(strings(&page, 4), [Some(r#"{"tag":["x","y"]}"#), None]);
        // An element with attributes and text gives its text to a TEXT column.
        assert_eq!(strings(&page, 5), [None, Some("9.99")]);
        assert_eq!(ints(&page, 6), [None, None]);
    }

    #[test]
    fn attributed_text_in_scalar_columns_and_json_form_in_json_columns() {
        let body = r#"<rss><channel><item>
            <guid isPermaLink="false">http://x/1</guid>
            <price currency="EUR">9.5</price>
            <link href="http://x/a"/>
        </item></channel></rss>"#;
        let schema = || {
            vec![
                col("guid", ColumnType::Text),
                col("price", ColumnType::Double),
                col("link", ColumnType::Text),
                col("raw_guid", ColumnType::Json),
                col("permalink", ColumnType::Boolean),
                col("href", ColumnType::Text),
            ]
        };
        let d = RecordDecoder::new(
            Arc::new(RecordSchema::new(schema())),
            Format::Xml {
                root_path: "/rss/channel/item".into(),
            },
        )
        .unwrap()
        .with_options(&crate::decode::ColumnOptions {
            field_paths: vec![
                ("raw_guid".into(), "$.guid".into()),
                ("permalink".into(), "$.guid['@isPermaLink']".into()),
                ("href".into(), "$.link['@href']".into()),
            ],
            ..Default::default()
        })
        .unwrap();
        let page = d.decode(body.as_bytes()).unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(strings(&page, 0), [Some("http://x/1")]);
        let prices: Vec<_> = column::<Float64Array>(&page, 1).iter().collect();
        assert_eq!(prices, [Some(9.5)]);
        // No text: the attributes stay a JSON object.
        assert_eq!(strings(&page, 2), [Some(r#"{"@href":"http://x/a"}"#)]);
        assert_eq!(
            strings(&page, 3),
            [Some(r##"{"@isPermaLink":"false","#text":"http://x/1"}"##)]
        );
        let permalink: Vec<_> = column::<arrow::array::BooleanArray>(&page, 4)
            .iter()
            .collect();
        assert_eq!(permalink, [Some(false)]);
        assert_eq!(strings(&page, 5), [Some("http://x/a")]);
    }

    #[test]
    fn field_paths_name_child_elements() {
        let body = r#"<feed><entry><author><name>a1</name><id>7</id></author>
            <category>c1</category><category>c2</category></entry>
            <entry><author><name>a2</name></author></entry></feed>"#;
        let d = RecordDecoder::new(
            Arc::new(RecordSchema::new(vec![
                col("author_name", ColumnType::Text),
                col("author_id", ColumnType::BigInt),
                col("second", ColumnType::Text),
                col("all", ColumnType::Json),
            ])),
            Format::Xml {
                root_path: "/feed/entry".into(),
            },
        )
        .unwrap()
        .with_options(&crate::decode::ColumnOptions {
            field_paths: vec![
                ("author_name".into(), "$.author.name".into()),
                ("author_id".into(), "$.author.id".into()),
                ("second".into(), "$.category[1]".into()),
                ("all".into(), "$.category[*]".into()),
            ],
            ..Default::default()
        })
        .unwrap();
        let page = d.decode(body.as_bytes()).unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(strings(&page, 0), [Some("a1"), Some("a2")]);
        let ids: Vec<_> = column::<Int64Array>(&page, 1).iter().collect();
        assert_eq!(ids, [Some(7), None]);
        assert_eq!(strings(&page, 2), [Some("c2"), None]);
        assert_eq!(strings(&page, 3), [Some(r#"["c1","c2"]"#), None]);
    }

    #[test]
    fn namespaces_prefixes_and_default_namespace() {
        let body = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <m:list xmlns:m="urn:example" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
      <m:item m:id="7"><m:name>seven</m:name><m:note xsi:nil="true"/></m:item>
      <item xmlns="urn:other" id="8"><name>eight</name><note></note></item>
    </m:list>
  </soap:Body>
</soap:Envelope>"#;
        let columns = || {
            vec![
                col("id", ColumnType::Int),
                col("name", ColumnType::Text),
                col("note", ColumnType::Text),
            ]
        };
        for path in [
            "/Envelope/Body/list/item",
            "/soap:Envelope/soap:Body/m:list/m:item",
        ] {
            let page = decoder(columns(), path).decode(body.as_bytes()).unwrap();
            assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
            assert_eq!(ints(&page, 0), [Some(7), Some(8)], "{path}");
            assert_eq!(strings(&page, 1), [Some("seven"), Some("eight")]);
            assert_eq!(strings(&page, 2), [None, Some("")]);
        }
    }

    #[test]
    fn prefixed_attributes_colliding_keep_the_last_value() {
        let d = decoder(vec![col("data", ColumnType::Json)], "/r/item");
        let page = d
            .decode(
                br#"<r xmlns:a="urn:a" xmlns:b="urn:b"><item a:id="1" k="v" b:id="2" id="3"/></r>"#,
            )
            .unwrap();
        assert_eq!(strings(&page, 0), [Some(r#"{"@id":"3","@k":"v"}"#)]);
    }

    #[test]
    fn cdata_entities_and_whitespace() {
        let body = "<r><item>\n  <a>  <![CDATA[<b>bold</b> & co]]>  </a>\n  <b>fish &amp; chips &lt;3 &#x263A; &#65;</b>\n  <c attr=\"x &quot;y&quot; &amp; z\"/>\n</item></r>";
        let d = decoder(
            vec![
                col("a", ColumnType::Text),
                col("b", ColumnType::Text),
                col("c", ColumnType::Text),
            ],
            "/r/item",
        );
        let page = d.decode(body.as_bytes()).unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(strings(&page, 0), [Some("<b>bold</b> & co")]);
        assert_eq!(strings(&page, 1), [Some("fish & chips <3 \u{263A} A")]);
        assert_eq!(strings(&page, 2), [Some(r#"{"@attr":"x \"y\" & z"}"#)]);
    }

    #[test]
    fn nested_elements_into_a_json_column_and_repeated_children() {
        let body = r#"<feed>
  <entry id="1">
    <author><name>Ann</name><email type="work">ann@example.com</email></author>
    <tag>a</tag><tag>b</tag><tag>c</tag>
    <link href="/x"/><link href="/y"/>
    <mixed>before <b>bold</b> after</mixed>
    <empty/>
  </entry>
</feed>"#;
        let d = decoder(
            vec![
                col("author", ColumnType::Json),
                col("tag", ColumnType::Json),
                col("link", ColumnType::Text),
                col("mixed", ColumnType::Json),
                col("empty", ColumnType::Json),
                col("id", ColumnType::Json),
            ],
            "/feed/entry",
        );
        let page = d.decode(body.as_bytes()).unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(
            strings(&page, 0),
            [Some(
                r##"{"name":"Ann","email":{"@type":"work","#text":"ann@example.com"}}"##
            )]
        );
        assert_eq!(strings(&page, 1), [Some(r#"["a","b","c"]"#)]);
        assert_eq!(
            strings(&page, 2),
            [Some(r#"[{"@href":"/x"},{"@href":"/y"}]"#)]
        );
        assert_eq!(
            strings(&page, 3),
            [Some(r##"{"b":"bold","#text":"before  after"}"##)]
        );
        assert_eq!(strings(&page, 4), [None]);
        // Text that is JSON stays JSON in a JSON column, as in CSV.
        assert_eq!(strings(&page, 5), [Some("1")]);
    }

    #[test]
    fn element_wins_over_attribute_and_text_record() {
        let d = decoder(
            vec![col("id", ColumnType::Int), col("#text", ColumnType::Text)],
            "/r/item",
        );
        let page = d
            .decode(br#"<r><item id="1"><id>2</id></item><item id="3">three</item></r>"#)
            .unwrap();
        assert_eq!(ints(&page, 0), [Some(2), Some(3)]);
        assert_eq!(strings(&page, 1), [None, Some("three")]);
    }

    #[test]
    fn single_column_takes_a_text_only_record() {
        let d = decoder(vec![col("n", ColumnType::Int)], "/list/n");
        let page = d
            .decode(b"<list><n>1</n><n> 2 </n><n/><n>x</n></list>")
            .unwrap();
        assert_eq!(ints(&page, 0), [Some(1), Some(2), None]);
        assert_eq!(
            reasons(&page),
            [r#"record 3 (line 1): field "n": cannot convert string "x" to INT"#]
        );
        assert_eq!(page.dead_letters[0].raw, "<n>x</n>");
        let page = d.decode(b"<list><n><x>1</x></n></list>").unwrap();
        assert_eq!(
            reasons(&page),
            [r#"record 0 (line 1): field "n": cannot convert object {"x":"1"} to INT"#]
        );
        // A field of the column's name wins over the whole record.
        let d = decoder(vec![col("data", ColumnType::Text)], "/list/n");
        let page = d
            .decode(b"<list><n data=\"a\"><x>1</x></n><n>plain</n></list>")
            .unwrap();
        assert_eq!(strings(&page, 0), [Some("a"), Some("plain")]);
    }

    #[test]
    fn bad_value_is_a_dead_letter_and_the_others_are_kept() {
        let d = decoder(
            vec![col("id", ColumnType::Int), col("value", ColumnType::Double)],
            "/response/items/item",
        );
        let body = "<response><items>\n<item><id>1</id><value>1.5</value></item>\n<item>\n  <id>2</id><value>abc</value>\n</item>\n<item id=\"3\"><value>3</value></item>\n</items></response>";
        let page = d.decode(body.as_bytes()).unwrap();
        assert_eq!(ints(&page, 0), [Some(1), Some(3)]);
        assert_eq!(
            page.dead_letters,
            [DeadLetter {
                reason:
                    r#"record 1 (line 3): field "value": cannot convert string "abc" to DOUBLE"#
                        .into(),
                raw: "<item>\n  <id>2</id><value>abc</value>\n</item>".into(),
                record: 1,
            }]
        );
    }

    #[test]
    fn empty_containers_and_empty_bodies_are_zero_rows_and_a_missing_path_an_error() {
        let d = decoder(vec![col("id", ColumnType::Int)], "/response/items/item");
        for body in [&b""[..], b"  \n", b"<response><items/></response>"] {
            let page = d.decode(body).unwrap();
            assert_eq!(page.batch.num_rows(), 0, "{body:?}");
            assert!(page.dead_letters.is_empty());
        }
        // No `/response/items` at all: the path is missing (issue 9), not zero rows.
        for body in [
            &b"<response><other><item><id>1</id></item></other></response>"[..],
            b"<items><item><id>1</id></item></items>",
        ] {
            assert!(
                matches!(d.decode(body), Err(DecodeError::NothingAtPath { .. })),
                "{body:?}"
            );
        }
    }

    #[test]
    fn malformed_xml_is_a_page_error_with_position() {
        let d = decoder(vec![col("id", ColumnType::Int)], "/r/item");
        let cases: [(&[u8], &str); 5] = [
            (
                b"<r>\n<item><id>1</b></item></r>",
                "ill-formed document: expected `</id>`, but `</b>` was found at byte 15 (line 2)",
            ),
            (
                b"<r><item>&bogus;</item></r>",
                "unknown entity `&bogus;` (entities declared in a DTD are not expanded) at byte 9 (line 1)",
            ),
            (
                b"<r><item><id>1</id></item>",
                "the body ends with 1 element(s) not closed at byte 26 (line 1)",
            ),
            (
                b"<r><item a=\"1\" a=\"2\"/></r>",
                "duplicated attribute (first at byte 9) at byte 15 (line 1)",
            ),
            (b"<r>\n\xff</r>", "not valid UTF-8 at byte 4 (line 2)"),
        ];
        for (body, message) in cases {
            match d.decode(body) {
                Err(DecodeError::InvalidXml(m)) => assert_eq!(m, message),
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn doctype_entities_are_never_expanded() {
        let d = decoder(vec![col("v", ColumnType::Text)], "/lolz/item");
        let mut body =
            String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
        for i in 1..10 {
            let previous = if i == 1 {
                "lol".to_string()
            } else {
                format!("lol{}", i - 1)
            };
            body.push_str(&format!(
                " <!ENTITY lol{i} \"{}\">\n",
                format!("&{previous};").repeat(10)
            ));
        }
        body.push_str("]>\n<lolz><item><v>safe</v></item><item><v>&lol9;</v></item></lolz>");
        let err = d.decode(body.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("body is not valid XML: unknown entity `&lol9;` (entities declared in a DTD are not expanded) at byte"),
            "{err}"
        );
        // A DOCTYPE whose entities are not referenced is simply skipped.
        let body = "<!DOCTYPE r [<!ENTITY e \"boom\">]><r><item><v>fine</v></item></r>";
        let d = decoder(vec![col("v", ColumnType::Text)], "/r/item");
        let page = d.decode(body.as_bytes()).unwrap();
        assert_eq!(strings(&page, 0), [Some("fine")]);
    }

    #[test]
    fn bom_declaration_comments_and_processing_instructions_are_skipped() {
        let body = "\u{feff}<?xml version=\"1.0\"?><?style x?><!-- c --><r><!-- c --><item><?pi?><id>4</id><!-- <id>5</id> --></item></r>";
        let d = decoder(vec![col("id", ColumnType::Int)], "/r/item");
        let page = d.decode(body.as_bytes()).unwrap();
        assert_eq!(ints(&page, 0), [Some(4)]);
    }

    #[test]
    fn descendant_and_wildcard_paths() {
        let body = b"<a><b><item><id>1</id></item></b><c><d><item><id>2</id><item><id>9</id></item></item></d></c><item><id>3</id></item></a>";
        let cols = || vec![col("id", ColumnType::Int)];
        let any = decoder(cols(), "//item").decode(body).unwrap();
        assert_eq!(ints(&any, 0), [Some(1), Some(2), Some(3)]);
        let below_c = decoder(cols(), "/a/c//item").decode(body).unwrap();
        assert_eq!(ints(&below_c, 0), [Some(2)]);
        let star = decoder(cols(), "/a/*/item").decode(body).unwrap();
        assert_eq!(ints(&star, 0), [Some(1)]);
    }

    #[test]
    fn too_deep_record_is_a_dead_letter() {
        let d = decoder(vec![col("id", ColumnType::Int)], "/r/item");
        let deep = format!(
            "<r><item><id>1</id>{}{}</item><item><id>2</id></item></r>",
            "<x>".repeat(100),
            "</x>".repeat(100)
        );
        let page = d.decode(deep.as_bytes()).unwrap();
        assert_eq!(ints(&page, 0), [Some(2)]);
        assert_eq!(
            reasons(&page),
            ["record 0 (line 1): elements nested deeper than 64 levels"]
        );
    }

    #[test]
    fn hostile_bodies_never_panic() {
        const PIECES: &[&str] = &[
            "<r>",
            "</r>",
            "<item>",
            "</item>",
            "<item id='1' a:id=\"2\">",
            "<id>",
            "</id>",
            "<b/>",
            "<x:item>",
            "</x:item>",
            "&amp;",
            "&",
            ";",
            "&e;",
            "&#0;",
            "&#x110000;",
            "&#65;",
            "<![CDATA[",
            "]]>",
            "<!--",
            "-->",
            "<?pi",
            "?>",
            "<?xml version='1.0'?>",
            "<!DOCTYPE r [<!ENTITY e 'x'>]>",
            "\u{feff}",
            "x",
            "42",
            " ",
            "\n",
            "\"",
            "=",
            "<",
            ">",
            "/",
            "<item/>",
            "<a b=>",
            "é",
        ];
        let decoders = [
            decoder(vec![col("data", ColumnType::Json)], "/r/item"),
            decoder(
                vec![col("id", ColumnType::Int), col("#text", ColumnType::Text)],
                "//item",
            ),
            decoder(vec![col("n", ColumnType::Double)], "/*"),
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut body: Vec<u8> = Vec::new();
            for _ in 0..(next() % 40) {
                let piece = PIECES[(next() % PIECES.len() as u64) as usize];
                body.extend_from_slice(piece.as_bytes());
            }
            if next() % 4 == 0 && !body.is_empty() {
                let at = (next() % body.len() as u64) as usize;
                body[at] = next() as u8;
            }
            for d in &decoders {
                let _ = d.decode(&body);
            }
        }
        let seed_body = SEED_BODY.as_bytes();
        for cut in 0..seed_body.len() {
            for d in &decoders {
                let _ = d.decode(&seed_body[..cut]);
            }
        }
    }

    #[test]
    fn json_strings_escape_like_serde_json() {
        for text in [
            "plain",
            "q\"b\\s",
            "tab\tnl\ncr\r",
            "\u{1}x\u{1f}é☺\u{7f}",
            "",
        ] {
            let mut out = String::new();
            super::write_json_string(text, &mut out);
            assert_eq!(out, serde_json::to_string(text).unwrap());
        }
    }

    #[test]
    fn root_path_parsing() {
        let shown = |p: &str| RootPath::parse(p).map(|r| r.to_string());
        assert_eq!(
            shown("/response/items/item"),
            Ok("/response/items/item".into())
        );
        assert_eq!(shown(" /ns:a//b:c/* "), Ok("/a//c/*".into()));
        assert_eq!(shown("//item"), Ok("//item".into()));
        for bad in [
            "", "item", "/", "//", "/a/", "/a///b", "/a[1]", "/a/@id", "/a b",
        ] {
            assert!(RootPath::parse(bad).is_err(), "{bad:?}");
        }
    }
}
