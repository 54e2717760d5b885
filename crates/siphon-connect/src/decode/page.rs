//! One page's worth of decoding state: turns each record (a JSON value met while walking
//! the page, an NDJSON line, a CSV row, an XML element, or a raw body) into a row, or into
//! a dead letter that says which record, which field, which type and which value. A record
//! that fails any column is dropped whole; the others of the page are kept.
//!
//! The text formats (CSV, XML) hand each column a [`TextValue`]; the rules that turn it
//! into a cell are here, next to the JSON ones, so both families name failures the same
//! way.
//!
//! A record is read straight from whatever serde_json deserializer holds it, so the
//! streaming walker needs no copy of the record's text. That text is only needed for a
//! dead letter; when the walker could not supply it, the letter is marked pending and
//! filled by [`PageSink::fill_pending_raw`] from a second, capturing walk of the page
//! (paid only by pages that have dead letters).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::cell::{Cell, ConvertError, Scalar, convert, truncate_at_char};
use super::columns::ColumnBuilders;
use super::compact::compact_json;
use super::paths::Found;
use super::raw::scalar_of;
use super::record::{FieldIndex, Slot, read_fields};
use super::select::Emit;
use super::temporal::TimestampFormat;
use super::{ColumnRules, DeadLetter, DecodeError, DecodedPage};
use crate::schema::{Column, ColumnType, RecordSchema};

/// Largest record text a dead letter keeps.
pub const MAX_DEAD_LETTER_RAW: usize = 64 * 1024;

/// Longest field name a message quotes.
const MAX_QUOTED_FIELD: usize = 100;

/// Where a record came from, as dead-letter reasons name it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// 0-based index among the records the page selected.
    Record(usize),
    /// 1-based line number of an NDJSON line or of the first line of a CSV row.
    Line(usize),
    /// An XML record: its 0-based index among the page's records and the 1-based line
    /// of its start tag.
    Element {
        /// 0-based index among the records of the page.
        index: usize,
        /// 1-based line of the start tag.
        line: usize,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Record(i) => write!(f, "record {i}"),
            Origin::Line(n) => write!(f, "line {n}"),
            Origin::Element { index, line } => write!(f, "record {index} (line {line})"),
        }
    }
}

/// One value of a text format (CSV, XML) for one column, before conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextValue<'v> {
    /// No value: an empty unquoted CSV field, an XML element marked `xsi:nil="true"`.
    Null,
    /// A value that is present but empty (a quoted `""` CSV field, an empty XML element or
    /// attribute): the empty string in a TEXT column, NULL in every other type.
    Empty,
    /// Text, converted like a JSON string; a JSON column keeps text that is itself JSON.
    Text(&'v str),
    /// A structured value the decoder built (an XML element with attributes or children,
    /// a repeated element), as valid JSON text.
    Json(&'v str),
    /// An XML element with attributes and text but no child elements: its text in a
    /// scalar column, the JSON object (`{"@attr": ..., "#text": ...}`) in a JSON column.
    Attributed {
        /// The element's own text.
        text: &'v str,
        /// The element as a JSON object.
        json: &'v str,
    },
    /// A value a `field_paths` path picked out of a structured value: raw JSON text,
    /// converted like a JSON member.
    Raw(&'v str),
}

/// What reading the current record produced, before it is committed.
#[derive(Debug)]
enum Staged {
    Nothing,
    /// `PageSink::row` holds the converted cells.
    Row,
    /// The record goes to the dead letters for this reason.
    Dead(String),
}

/// Accumulates the rows and dead letters of one page.
pub(crate) struct PageSink<'d, 'a> {
    schema: &'d RecordSchema,
    index: &'d FieldIndex,
    rules: &'d ColumnRules,
    builders: ColumnBuilders,
    slots: Vec<Option<Slot<'a>>>,
    row: Vec<Cell<'a>>,
    /// The row buffer of the text formats, whose cells borrow from a record that lives
    /// shorter than the page; kept empty between records (see [`recycle`]).
    text_row: Vec<Cell<'static>>,
    dead_letters: Vec<DeadLetter>,
    /// Dead letters whose raw text is still to come: (letter index, record index).
    pending_raw: Vec<(usize, usize)>,
    next_record: usize,
    origin: Origin,
    staged: Staged,
}

impl<'d, 'a> PageSink<'d, 'a> {
    /// An empty page, with builders sized for about `rows_hint` rows.
    pub(crate) fn new(
        schema: &'d RecordSchema,
        index: &'d FieldIndex,
        rules: &'d ColumnRules,
        rows_hint: usize,
    ) -> Result<Self, DecodeError> {
        let builders = ColumnBuilders::new(schema, rows_hint)
            .map_err(|e| DecodeError::Arrow(e.to_string()))?;
        Ok(PageSink {
            schema,
            index,
            rules,
            builders,
            slots: (0..index.len()).map(|_| None).collect(),
            row: Vec::with_capacity(index.len()),
            text_row: Vec::with_capacity(index.len()),
            dead_letters: Vec::new(),
            pending_raw: Vec::new(),
            next_record: 0,
            origin: Origin::Record(0),
            staged: Staged::Nothing,
        })
    }

    /// A record selected from a JSON page, given as its (valid JSON) text.
    pub(crate) fn json_record(&mut self, json: &'a str) {
        self.begin(Origin::Record(self.next_record));
        let mut de = serde_json::Deserializer::from_str(json);
        if let Err(e) = (RecordSeed { sink: self }).deserialize(&mut de) {
            self.staged = Staged::Dead(format!("{}: {}", self.origin, describe_error(&e)));
        }
        self.end(Some(json));
    }

    /// One non-blank line of an NDJSON body (1-based `line_number`), not yet validated.
    pub(crate) fn ndjson_line(&mut self, line_number: usize, line: &'a str) {
        self.begin(Origin::Line(line_number));
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
        let mut de = serde_json::Deserializer::from_str(line);
        let read = (RecordSeed { sink: self })
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if let Err(e) = read {
            self.staged = Staged::Dead(format!("{}: {}", self.origin, describe_error(&e)));
        }
        self.end(Some(line));
    }

    /// A line that is not UTF-8 text, so not JSON.
    pub(crate) fn ndjson_invalid_utf8(&mut self, line_number: usize, line: &[u8]) {
        self.begin(Origin::Line(line_number));
        self.staged = Staged::Dead(format!("{}: not valid UTF-8", self.origin));
        self.end(Some(&String::from_utf8_lossy(line)));
    }

    /// The whole body as the single column of a `raw` table.
    pub(crate) fn raw_body(&mut self, body: &'a [u8]) {
        self.begin(Origin::Record(self.next_record));
        let Some(column) = self.schema.columns().first() else {
            return;
        };
        let cell = match column.ty {
            ColumnType::Json => match serde_json::from_slice::<&RawValue>(body) {
                Ok(raw) => json_cell(raw.get()),
                Err(e) => {
                    self.staged = Staged::Dead(format!(
                        "{}: column {}: body is not valid JSON: {e}",
                        self.origin,
                        quote_field(&column.name)
                    ));
                    self.end(Some(&String::from_utf8_lossy(body)));
                    return;
                }
            },
            _ => Cell::Text(String::from_utf8_lossy(body)),
        };
        self.staged = if matches!(cell, Cell::Null) && !column.nullable {
            Staged::Dead(null_reason(self.origin, &column.name, column, "null"))
        } else {
            self.row.clear();
            self.row.push(cell);
            Staged::Row
        };
        self.end(Some(&String::from_utf8_lossy(body)));
    }

    /// The number of columns.
    pub(crate) fn columns(&self) -> usize {
        self.schema.columns().len()
    }

    /// A record of a text format. `value_of(i)` is column `i`'s value and the field name
    /// the record spells it with, `None` when the record has no such field; `raw` gives
    /// the record's text, asked for only when the record becomes a dead letter.
    pub(crate) fn text_record<'v>(
        &mut self,
        origin: Origin,
        value_of: impl Fn(usize) -> Option<(&'v str, TextValue<'v>)>,
        raw: impl FnOnce() -> String,
    ) {
        self.begin(origin);
        let mut row: Vec<Cell<'v>> = recycle(std::mem::take(&mut self.text_row));
        let mut failure = None;
        for (i, column) in self.schema.columns().iter().enumerate() {
            let format = self.rules.timestamp_format(i);
            let (key, what, cell) = match value_of(i) {
                None => (column.name.as_str(), "missing", Ok(Cell::Null)),
                Some((key, TextValue::Empty)) => {
                    (key, "empty", text_cell(column, format, TextValue::Empty))
                }
                Some((key, value)) => (key, "null", text_cell(column, format, value)),
            };
            match cell {
                Ok(Cell::Null) if !column.nullable => {
                    failure = Some(null_reason(origin, key, column, what));
                    break;
                }
                Ok(cell) => row.push(cell),
                Err(detail) => {
                    failure = Some(format!("{origin}: field {}: {detail}", quote_field(key)));
                    break;
                }
            }
        }
        match failure {
            None => self.builders.append_row(&row),
            Some(reason) => self.staged = Staged::Dead(reason),
        }
        self.text_row = recycle(row);
        if matches!(self.staged, Staged::Dead(_)) {
            self.end(Some(&raw()));
        }
    }

    /// A record of a text format that is wrong as a whole (too many fields, not UTF-8):
    /// a dead letter `"{origin}: {problem}"`.
    pub(crate) fn text_dead(&mut self, origin: Origin, problem: &str, raw: &str) {
        self.begin(origin);
        self.staged = Staged::Dead(format!("{origin}: {problem}"));
        self.end(Some(raw));
    }

    /// Whether some dead letter still lacks its record text.
    pub(crate) fn has_pending_raw(&self) -> bool {
        !self.pending_raw.is_empty()
    }

    /// Fills the text of pending dead letters from `records`, the page's records in
    /// selection order.
    pub(crate) fn fill_pending_raw<S: AsRef<str>>(&mut self, records: &[S]) {
        for (letter, record) in self.pending_raw.drain(..) {
            if let (Some(letter), Some(text)) =
                (self.dead_letters.get_mut(letter), records.get(record))
            {
                letter.raw = truncate_at_char(text.as_ref(), MAX_DEAD_LETTER_RAW).to_string();
            }
        }
    }

    /// The page's batch and dead letters.
    pub(crate) fn finish(self) -> Result<DecodedPage, DecodeError> {
        let batch = self
            .builders
            .finish()
            .map_err(|e| DecodeError::Arrow(e.to_string()))?;
        Ok(DecodedPage {
            batch,
            dead_letters: self.dead_letters,
            listing: true,
        })
    }

    fn begin(&mut self, origin: Origin) {
        self.origin = origin;
        self.next_record += 1;
        self.staged = Staged::Nothing;
    }

    /// Commits the staged record: its row to the builders, or a dead letter with `raw`
    /// (pending when `None`).
    fn end(&mut self, raw: Option<&str>) {
        match std::mem::replace(&mut self.staged, Staged::Nothing) {
            Staged::Nothing => {}
            Staged::Row => self.builders.append_row(&self.row),
            Staged::Dead(reason) => {
                let raw = match raw {
                    Some(raw) => truncate_at_char(raw, MAX_DEAD_LETTER_RAW).to_string(),
                    None => {
                        let record = self.next_record - 1;
                        self.pending_raw.push((self.dead_letters.len(), record));
                        String::new()
                    }
                };
                let record = self.next_record - 1;
                self.dead_letters.push(DeadLetter {
                    reason,
                    raw,
                    record,
                });
            }
        }
    }

    fn not_an_object(&mut self, kind: &str) {
        self.staged = Staged::Dead(format!(
            "{}: expected a JSON object, got {kind}",
            self.origin
        ));
    }

    /// Converts the slots just read into `row`.
    fn convert_row(&mut self) -> Staged {
        self.row.clear();
        let origin = self.origin;
        let rules = self.rules;
        for (i, column) in self.schema.columns().iter().enumerate() {
            // The column's raw value and the name a message gives it: its field, or the
            // path that mapped it.
            let (found, key): (Found<'a>, &str) = match rules.paths.get(i) {
                None => match self.slots.get(i).and_then(Option::as_ref) {
                    Some(slot) => (Found::One(slot.raw), &slot.key),
                    None => (Found::Missing, &column.name),
                },
                Some(path) => {
                    let source = self.slots.get(path.source).and_then(Option::as_ref);
                    match source.map(|slot| path.resolve(slot.raw)) {
                        None => (Found::Missing, &path.text),
                        Some(Ok(found)) => (found, &path.text),
                        Some(Err(e)) => {
                            return Staged::Dead(format!(
                                "{origin}: field {}: {e}",
                                quote_field(&path.text)
                            ));
                        }
                    }
                }
            };
            let cell = match found {
                Found::Missing => {
                    if !column.nullable {
                        return Staged::Dead(null_reason(origin, key, column, "missing"));
                    }
                    Cell::Null
                }
                Found::Many(all) => Cell::Text(Cow::Owned(all)),
                Found::One(raw) => {
                    let cell = if column.ty == ColumnType::Json {
                        json_cell(raw)
                    } else {
                        match convert_with(column, rules.timestamp_format(i), scalar_of(raw)) {
                            Ok(cell) => cell,
                            Err(e) => return Staged::Dead(convert_reason(origin, key, &e)),
                        }
                    };
                    if matches!(cell, Cell::Null) && !column.nullable {
                        return Staged::Dead(null_reason(origin, key, column, "null"));
                    }
                    cell
                }
            };
            self.row.push(cell);
        }
        Staged::Row
    }
}

/// Records met by the streaming walker go straight into the page.
impl<'a> Emit<'a> for PageSink<'_, 'a> {
    fn emit<D: Deserializer<'a>>(&mut self, deserializer: D) -> Result<(), D::Error> {
        self.begin(Origin::Record(self.next_record));
        (RecordSeed { sink: self }).deserialize(deserializer)?;
        self.end(None);
        Ok(())
    }
}

/// Reads one record (any JSON value; only objects make rows) into the sink's staging.
struct RecordSeed<'s, 'd, 'a> {
    sink: &'s mut PageSink<'d, 'a>,
}

impl<'a> DeserializeSeed<'a> for RecordSeed<'_, '_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> Visitor<'a> for RecordSeed<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'a>>(self, map: A) -> Result<(), A::Error> {
        read_fields(map, self.sink.index, &mut self.sink.slots)?;
        self.sink.staged = self.sink.convert_row();
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.sink.not_an_object("array");
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.sink.not_an_object("boolean");
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.sink.not_an_object("number");
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.sink.not_an_object("number");
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.sink.not_an_object("number");
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.sink.not_an_object("string");
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.sink.not_an_object("null");
        Ok(())
    }
}

/// Empties a row buffer and hands its allocation over with another lifetime, so the text
/// formats reuse one buffer although each row borrows from a different record. The vector
/// is empty, so the closure never runs; `collect` reuses the allocation in place.
fn recycle<'x, 'y>(mut row: Vec<Cell<'x>>) -> Vec<Cell<'y>> {
    row.clear();
    row.into_iter().map(|_| Cell::Null).collect()
}

/// A column's cell from a text format's value, or why it does not fit.
fn text_cell<'v>(
    column: &Column,
    format: Option<&TimestampFormat>,
    value: TextValue<'v>,
) -> Result<Cell<'v>, String> {
    match value {
        TextValue::Null => Ok(Cell::Null),
        TextValue::Empty if column.ty == ColumnType::Text => Ok(Cell::Text(Cow::Borrowed(""))),
        TextValue::Empty => Ok(Cell::Null),
        TextValue::Text(text) if column.ty == ColumnType::Json => json_text_cell(text),
        TextValue::Text(text) | TextValue::Attributed { text, .. }
            if column.ty != ColumnType::Json =>
        {
            convert_with(column, format, Scalar::String(Cow::Borrowed(text)))
                .map_err(|e| e.to_string())
        }
        TextValue::Json(json) | TextValue::Attributed { json, .. } | TextValue::Text(json) => {
            convert(&column.ty, Scalar::Nested(json)).map_err(|e| e.to_string())
        }
        TextValue::Raw(raw) if column.ty == ColumnType::Json => Ok(json_cell(raw)),
        TextValue::Raw(raw) => {
            convert_with(column, format, scalar_of(raw)).map_err(|e| e.to_string())
        }
    }
}

/// [`convert`], reading a string in a TIMESTAMP or DATE column with the column's
/// `timestamp_format` first.
fn convert_with<'x>(
    column: &Column,
    format: Option<&TimestampFormat>,
    scalar: Scalar<'x>,
) -> Result<Cell<'x>, ConvertError> {
    if let (Some(format), Scalar::String(text)) = (format, &scalar)
        && let Some(micros) = format.micros(text.trim())
    {
        match column.ty {
            ColumnType::Timestamp => return Ok(Cell::TimestampMicros(micros)),
            ColumnType::Date => {
                if let Ok(days) = i32::try_from(micros.div_euclid(86_400_000_000)) {
                    return Ok(Cell::Date(days));
                }
            }
            _ => {}
        }
    }
    convert(&column.ty, scalar)
}

/// A JSON column's cell from text: text that is a JSON document is kept as that JSON
/// (compacted; `null` is NULL), text that starts like an object or array but is not valid
/// JSON is an error, and any other text becomes a JSON string.
fn json_text_cell(text: &str) -> Result<Cell<'_>, String> {
    let trimmed = text.trim();
    match serde_json::from_str::<&RawValue>(trimmed) {
        Ok(raw) => Ok(json_cell(raw.get())),
        Err(e) if trimmed.starts_with(['{', '[']) => Err(describe_error(&e)),
        Err(_) => convert(&ColumnType::Json, Scalar::String(Cow::Borrowed(text)))
            .map_err(|e| e.to_string()),
    }
}

/// A JSON column's cell from a value's raw JSON text: compact text, or NULL for `null`.
fn json_cell(raw: &str) -> Cell<'_> {
    if raw == "null" {
        Cell::Null
    } else {
        Cell::Text(compact_json(raw))
    }
}

pub(crate) fn quote_field(name: &str) -> String {
    let shown = truncate_at_char(name, MAX_QUOTED_FIELD);
    let mut quoted = serde_json::to_string(shown).unwrap_or_default();
    if shown.len() < name.len() {
        quoted.push('…');
    }
    quoted
}

fn convert_reason(origin: Origin, field: &str, error: &ConvertError) -> String {
    format!("{origin}: field {}: {error}", quote_field(field))
}

fn null_reason(origin: Origin, field: &str, column: &Column, what: &str) -> String {
    format!(
        "{origin}: field {}: {what} for NOT NULL {} column",
        quote_field(field),
        column.ty.sql_name()
    )
}

/// serde_json's message for a record that is not valid JSON, phrased for one record: the
/// line is always 1 within an NDJSON line, so only the column is kept.
fn describe_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let bare = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message.as_str(),
    };
    if error.column() > 0 {
        format!("not valid JSON: {bare} at column {}", error.column())
    } else {
        format!("not valid JSON: {bare}")
    }
}
