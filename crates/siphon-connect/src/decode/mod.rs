//! Typed-record decoding: a response body in, one Arrow batch of the table's rows plus the
//! records that could not be converted (dead letters) out. This module is the façade:
//! the format switch and the public types. Picking records, matching fields, converting
//! cells and building Arrow arrays each live in their own submodule; CSV (`csv`) and XML
//! (`xml`) split their bodies into records of text fields that join the same path.
//!
//! The hot path never builds a `serde_json::Value` per record: one streaming serde_json
//! pass walks the page to the records, reads each record's fields as borrowed raw values,
//! and converts cells straight from that text into a reused row buffer, then appends them
//! to Arrow builders. Other JSONPath expressions go through serde_json_path and then the
//! same record reader, so both give identical results.

mod cell;
mod columns;
mod compact;
mod csv;
mod error;
mod page;
mod paths;
mod raw;
mod record;
mod select;
pub(crate) mod temporal;
mod xml;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::RecordBatch;

pub use error::{DecodeError, DecoderConfigError};
pub use page::MAX_DEAD_LETTER_RAW;
pub use temporal::TimestampFormat;

use page::PageSink;
use record::FieldIndex;
use select::{Presence, Selection};

use crate::schema::{ColumnType, RecordSchema};
use crate::transform::Transform;

/// How a response body is laid out. Every format feeds the same field matching, cell
/// conversion and dead-letter rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// A JSON document. Without `json_path` the body is one record (an object) or one
    /// record per element (an array); with it, every node the RFC 9535 path selects is a
    /// record.
    Json {
        /// The JSONPath selecting the records, e.g. `$.data[*]`.
        json_path: Option<String>,
    },
    /// Newline-delimited JSON: one object per non-blank line.
    Ndjson,
    /// Comma-separated values (RFC 4180 quoting), one record per row; see the `csv`
    /// submodule for the rules.
    Csv {
        /// The first row names the fields (`csv_header`, default true); without it the
        /// fields are the table's columns in order.
        header: bool,
        /// The field separator (`csv_delimiter`, default `,`): one ASCII byte, not a
        /// quote or a line break.
        delimiter: u8,
    },
    /// XML: every element at `root_path` is a record of its attributes and child
    /// elements; see the `xml` submodule for the rules.
    Xml {
        /// `xml_root_path`, e.g. `/response/items/item` (`//item`: at any depth).
        root_path: String,
    },
    /// The whole body is one record in the table's single TEXT or JSON column.
    Raw,
}

/// The result of decoding one page.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedPage {
    /// The records that converted, with the schema's Arrow schema (possibly 0 rows).
    pub batch: RecordBatch,
    /// The records that did not, in page order.
    pub dead_letters: Vec<DeadLetter>,
    /// Whether the body was a listing of records (possibly an empty one). True for every
    /// body that decoded; false for an empty body (a 204, or nothing but whitespace) in a
    /// format where that is not how zero records are written (json, csv with a header,
    /// xml, raw), and for a body whose records path matched nothing when the source takes
    /// that as zero records (`json_path_missing = 'empty'`). Such a page is zero records
    /// that say nothing about which records exist, so a poll holding one is never a
    /// complete snapshot.
    pub listing: bool,
}

impl DecodedPage {
    /// A page of no records for `schema`; `listing` as documented on the field.
    pub fn empty(schema: &RecordSchema, listing: bool) -> Self {
        DecodedPage {
            batch: RecordBatch::new_empty(schema.arrow_schema()),
            dead_letters: Vec::new(),
            listing,
        }
    }

    /// Records the body held: rows plus dead letters.
    pub fn records(&self) -> usize {
        self.batch.num_rows() + self.dead_letters.len()
    }
}

/// A record dropped because it could not be converted: it goes to `system.dead_letters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Which record, field, type and value failed, e.g.
    /// `record 3: field "value": cannot convert string "abc" to DOUBLE`.
    pub reason: String,
    /// The record's text exactly as received (an NDJSON line, the selected JSON value with
    /// its original whitespace, a CSV row without its line end, an XML element from its
    /// start tag to its end tag), truncated to [`MAX_DEAD_LETTER_RAW`] bytes.
    pub raw: String,
    /// The record's 0-based index among the records of the body (blank NDJSON lines and a
    /// CSV header are not records).
    pub record: usize,
}

/// How columns are read beyond matching fields by name: the table options
/// `field_paths` and `timestamp_format`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnOptions {
    /// `field_paths`: (column, JSONPath relative to the record), e.g.
    /// `("author_name", "$.author.name")`.
    pub field_paths: Vec<(String, String)>,
    /// `timestamp_format` for every TIMESTAMP and DATE column without its own.
    pub timestamp_format: Option<TimestampFormat>,
    /// `timestamp_format` given per column (the JSON object form).
    pub column_timestamp_formats: Vec<(String, TimestampFormat)>,
}

impl ColumnOptions {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.field_paths.is_empty()
            && self.timestamp_format.is_none()
            && self.column_timestamp_formats.is_empty()
    }
}

/// [`ColumnOptions`] compiled for one schema, per column.
#[derive(Debug, Default)]
pub(crate) struct ColumnRules {
    paths: paths::FieldPaths,
    timestamp_formats: Vec<Option<TimestampFormat>>,
}

impl ColumnRules {
    /// Column `i`'s `timestamp_format`, if any.
    fn timestamp_format(&self, i: usize) -> Option<&TimestampFormat> {
        self.timestamp_formats.get(i).and_then(Option::as_ref)
    }
}

/// Decodes the pages of one table: built once from the table's schema and format, then
/// reused for every page (it holds no per-page state, so it is `Send + Sync`).
#[derive(Debug)]
pub struct RecordDecoder {
    schema: Arc<RecordSchema>,
    index: FieldIndex,
    rules: ColumnRules,
    kind: Kind,
    /// jq steps run on each selected record before it meets the columns (`transforms`).
    transform: Option<Transform>,
}

#[derive(Debug)]
enum Kind {
    Json(Selection, Presence),
    Ndjson,
    Csv { header: bool, delimiter: u8 },
    Xml(xml::RootPath),
    Raw,
}

/// A UTF-8 byte-order mark, which some servers put before a body (JSON, CSV, XML).
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Rough size of one record, to size the builders of a page from its body length.
const TYPICAL_RECORD_BYTES: usize = 128;
const MAX_ROWS_HINT: usize = 16 * 1024;

impl RecordDecoder {
    /// A decoder for `schema` and `format`. Fails for a `json_path` that is not valid
    /// RFC 9535 (quoting the path and the parser's message), for a CSV delimiter that is
    /// a quote, a line break or not ASCII, for an `xml_root_path` that is not a path of
    /// element names, for `Raw` unless the schema is exactly one TEXT or JSON column, for
    /// a DECIMAL Arrow cannot store, and for a column name declared twice.
    pub fn new(schema: Arc<RecordSchema>, format: Format) -> Result<Self, DecoderConfigError> {
        validate_columns(&schema)?;
        let kind = match format {
            Format::Json { json_path } => Kind::Json(
                Selection::new(json_path.as_deref())?,
                Presence::new(json_path.as_deref())?,
            ),
            Format::Ndjson => Kind::Ndjson,
            Format::Csv { header, delimiter } => {
                check_csv_delimiter(delimiter)?;
                Kind::Csv { header, delimiter }
            }
            Format::Xml { root_path } => Kind::Xml(parse_xml_root_path(&root_path)?),
            Format::Raw => {
                check_raw_columns(&schema)?;
                Kind::Raw
            }
        };
        Ok(RecordDecoder {
            index: FieldIndex::new(&schema),
            rules: ColumnRules::default(),
            schema,
            kind,
            transform: None,
        })
    }

    /// The same decoder reading columns as `options` say: `field_paths` (json, ndjson
    /// and xml only; each path compiled here, once) and `timestamp_format`.
    pub fn with_options(mut self, options: &ColumnOptions) -> Result<Self, DecoderConfigError> {
        let mut paths =
            paths::FieldPaths::new(&self.schema, &options.field_paths).map_err(|e| {
                DecoderConfigError::FieldPath {
                    column: e.column,
                    message: e.message,
                }
            })?;
        if !paths.is_empty() && matches!(self.kind, Kind::Csv { .. } | Kind::Raw) {
            return Err(DecoderConfigError::FieldPathsNeedStructure);
        }
        let mut timestamp_formats = Vec::with_capacity(self.schema.columns().len());
        for column in self.schema.columns() {
            let own = options
                .column_timestamp_formats
                .iter()
                .find(|(name, _)| *name == column.name)
                .map(|(_, f)| f.clone());
            let temporal = matches!(column.ty, ColumnType::Timestamp | ColumnType::Date);
            timestamp_formats
                .push(own.or_else(|| options.timestamp_format.clone().filter(|_| temporal)));
        }
        for (name, _) in &options.column_timestamp_formats {
            let column = self.schema.columns().iter().find(|c| c.name == *name);
            if !column.is_some_and(|c| matches!(c.ty, ColumnType::Timestamp | ColumnType::Date)) {
                return Err(DecoderConfigError::TimestampFormatColumn {
                    column: name.clone(),
                });
            }
        }
        self.index = FieldIndex::with_paths(&self.schema, &mut paths);
        self.rules = ColumnRules {
            paths,
            timestamp_formats,
        };
        Ok(self)
    }

    /// The same decoder, running `transform` on each record (a JSON value selected by
    /// `json_path`, an NDJSON line, the raw body) before it is converted; the records it
    /// yields are converted as if the body had held them. A record the transform fails on
    /// is a dead letter. CSV and XML records are not JSON values, so they take none.
    pub fn with_transform(mut self, transform: Transform) -> Result<Self, DecoderConfigError> {
        if matches!(self.kind, Kind::Csv { .. } | Kind::Xml(_)) {
            return Err(DecoderConfigError::TransformNeedsJson);
        }
        self.transform = (!transform.is_empty()).then_some(transform);
        Ok(self)
    }

    /// The schema batches are decoded into.
    pub fn schema(&self) -> &Arc<RecordSchema> {
        &self.schema
    }

    /// Decodes one response body. Records that cannot be converted become dead letters.
    /// An empty body (nothing but whitespace, after a BOM) is zero records in every
    /// format (see [`DecodedPage::listing`]). Only a body that cannot be read at all
    /// (invalid JSON, XML that is not well-formed) is an error, and so is a non-empty body
    /// where `json_path` or `xml_root_path` matches nothing ([`DecodeError::NothingAtPath`];
    /// see the `select` and `xml` modules for what
    /// counts as an empty list instead).
    pub fn decode(&self, body: &[u8]) -> Result<DecodedPage, DecodeError> {
        let unmarked = body.strip_prefix(UTF8_BOM).unwrap_or(body);
        if unmarked.iter().all(u8::is_ascii_whitespace) {
            // An empty NDJSON body, or headerless CSV, is how those formats write zero
            // records; in the others an empty body is no document at all.
            let listing = matches!(self.kind, Kind::Ndjson | Kind::Csv { header: false, .. });
            return Ok(DecodedPage::empty(&self.schema, listing));
        }
        if let Some(transform) = &self.transform {
            return self.decode_transformed(transform, unmarked);
        }
        let rows_hint = (body.len() / TYPICAL_RECORD_BYTES).clamp(1, MAX_ROWS_HINT);
        match &self.kind {
            Kind::Json(selection, presence) => {
                let body = json_text(unmarked)?;
                let mut sink = self.sink(rows_hint)?;
                let page = if selection.stream(body, &mut sink)? {
                    if sink.has_pending_raw() {
                        sink.fill_pending_raw(&selection.records(body)?);
                    }
                    sink.finish()?
                } else {
                    let records = selection.records(body)?;
                    let mut sink = self.sink(records.len())?;
                    for record in &records {
                        sink.json_record(record);
                    }
                    sink.finish()?
                };
                if page.records() == 0
                    && let Some(path) = presence.missing(body)?
                {
                    return Err(DecodeError::NothingAtPath {
                        option: "json_path",
                        path: path.to_string(),
                    });
                }
                Ok(page)
            }
            Kind::Ndjson => {
                let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
                let mut sink = self.sink(rows_hint)?;
                match std::str::from_utf8(body) {
                    // The common case: validate UTF-8 once, then split with a fast search.
                    Ok(text) => {
                        for (i, line) in text.split('\n').enumerate() {
                            if !line.bytes().all(|b| b.is_ascii_whitespace()) {
                                sink.ndjson_line(i + 1, line);
                            }
                        }
                    }
                    Err(_) => {
                        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                            if line.iter().all(u8::is_ascii_whitespace) {
                                continue;
                            }
                            match std::str::from_utf8(line) {
                                Ok(text) => sink.ndjson_line(i + 1, text),
                                Err(_) => sink.ndjson_invalid_utf8(i + 1, line),
                            }
                        }
                    }
                }
                sink.finish()
            }
            Kind::Csv { header, delimiter } => {
                let mut sink = self.sink(rows_hint)?;
                csv::decode(
                    body,
                    *header,
                    *delimiter,
                    &self.schema,
                    &self.index,
                    &mut sink,
                )?;
                sink.finish()
            }
            Kind::Xml(root_path) => {
                let mut sink = self.sink(rows_hint)?;
                xml::decode(
                    body,
                    root_path,
                    &self.schema,
                    &self.index,
                    &self.rules.paths,
                    &mut sink,
                )?;
                sink.finish()
            }
            Kind::Raw => {
                let mut sink = self.sink(1)?;
                sink.raw_body(body);
                sink.finish()
            }
        }
    }

    /// [`RecordDecoder::decode`] with a transform: the records are picked as usual, each
    /// goes through the transform, and what comes out is converted.
    fn decode_transformed(
        &self,
        transform: &Transform,
        body: &[u8],
    ) -> Result<DecodedPage, DecodeError> {
        let records: Vec<Cow<'_, str>> = match &self.kind {
            Kind::Json(selection, presence) => {
                let text = json_text(body)?;
                let records = selection.records(text)?;
                if records.is_empty()
                    && let Some(path) = presence.missing(text)?
                {
                    return Err(DecodeError::NothingAtPath {
                        option: "json_path",
                        path: path.to_string(),
                    });
                }
                records
            }
            Kind::Ndjson => String::from_utf8_lossy(body)
                .split('\n')
                .filter(|line| !line.trim().is_empty())
                .map(|line| Cow::Owned(line.to_string()))
                .collect(),
            Kind::Raw => vec![String::from_utf8_lossy(body)],
            Kind::Csv { .. } | Kind::Xml(_) => {
                unreachable!("with_transform refuses csv and xml")
            }
        };
        // Each record's outputs, or why the transform failed on it.
        let outcomes: Vec<Result<Vec<String>, String>> = records
            .iter()
            .map(|r| {
                transform
                    .apply(r.as_bytes())
                    .map_err(|e| format!("transform: {e}"))
            })
            .collect();
        let outputs: usize = outcomes
            .iter()
            .map(|o| o.as_ref().map_or(0, Vec::len))
            .sum();
        let mut sink = self.sink(outputs.max(1))?;
        for (index, (record, outcome)) in records.iter().zip(&outcomes).enumerate() {
            match outcome {
                Ok(values) => {
                    for value in values {
                        match self.kind {
                            Kind::Raw => sink.raw_body(value.as_bytes()),
                            _ => sink.json_record(value),
                        }
                    }
                }
                Err(reason) => sink.text_dead(page::Origin::Record(index), reason, record),
            }
        }
        sink.finish()
    }

    fn sink<'a>(&self, rows_hint: usize) -> Result<PageSink<'_, 'a>, DecodeError> {
        PageSink::new(&self.schema, &self.index, &self.rules, rows_hint)
    }
}

/// The body as text, or the page error for it: serde_json's when it finds a syntax
/// error, else where the first invalid UTF-8 byte is (both with line and column).
fn json_text(body: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(body).map_err(|utf8| {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            return DecodeError::InvalidJson(e.to_string());
        }
        let before = &body[..utf8.valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = utf8.valid_up_to() - line_start + 1;
        DecodeError::InvalidJson(format!("invalid UTF-8 at line {line} column {column}"))
    })
}

/// Checks an `xml_root_path` the way [`RecordDecoder::new`] will, so configuration can
/// report it against its option.
pub fn check_xml_root_path(path: &str) -> Result<(), DecoderConfigError> {
    parse_xml_root_path(path).map(|_| ())
}

/// Checks a `csv_delimiter` byte the way [`RecordDecoder::new`] will.
pub fn check_csv_delimiter(delimiter: u8) -> Result<(), DecoderConfigError> {
    if delimiter.is_ascii() && !matches!(delimiter, b'"' | b'\n' | b'\r') {
        Ok(())
    } else {
        Err(DecoderConfigError::InvalidCsvDelimiter {
            delimiter: char::from(delimiter),
        })
    }
}

fn parse_xml_root_path(path: &str) -> Result<xml::RootPath, DecoderConfigError> {
    xml::RootPath::parse(path).map_err(|message| DecoderConfigError::InvalidXmlRootPath {
        path: path.to_string(),
        message,
    })
}

fn validate_columns(schema: &RecordSchema) -> Result<(), DecoderConfigError> {
    let mut seen = std::collections::HashSet::new();
    for column in schema.columns() {
        if !seen.insert(column.name.as_str()) {
            return Err(DecoderConfigError::DuplicateColumn {
                column: column.name.clone(),
            });
        }
        if let ColumnType::Decimal { precision, scale } = column.ty
            && (!(1..=38).contains(&precision) || scale < 0 || scale.unsigned_abs() > precision)
        {
            return Err(DecoderConfigError::InvalidDecimal {
                column: column.name.clone(),
                precision,
                scale,
            });
        }
    }
    Ok(())
}

fn check_raw_columns(schema: &RecordSchema) -> Result<(), DecoderConfigError> {
    match schema.columns() {
        [column] if matches!(column.ty, ColumnType::Text | ColumnType::Json) => Ok(()),
        [column] => Err(DecoderConfigError::RawNeedsOneTextColumn {
            found: format!("one column of type {}", column.ty.sql_name()),
        }),
        columns => Err(DecoderConfigError::RawNeedsOneTextColumn {
            found: format!("{} columns", columns.len()),
        }),
    }
}
