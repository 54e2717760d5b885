//! The decoder's two failure kinds: a configuration it cannot work with (found once, when
//! a table is set up) and a page it cannot read at all (found per response). A single bad
//! record is neither: it becomes a dead letter and the page goes on.

use thiserror::Error;

/// Why a [`RecordDecoder`](super::RecordDecoder) could not be built from a schema and a
/// format. These are user configuration errors: fix the table definition, do not retry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecoderConfigError {
    /// `json_path` is not valid RFC 9535 JSONPath.
    #[error("invalid json_path '{path}': {message}")]
    InvalidJsonPath {
        /// The path as written.
        path: String,
        /// The JSONPath parser's explanation, with the position.
        message: String,
    },
    /// A `field_paths` entry is refused.
    #[error("column `{column}`: {message}")]
    FieldPath {
        /// The column it maps.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// `field_paths` with a format whose records have no structure.
    #[error("field_paths applies to format json, ndjson and xml only")]
    FieldPathsNeedStructure,
    /// A per-column `timestamp_format` names no TIMESTAMP or DATE column.
    #[error("`{column}` is not a TIMESTAMP or DATE column of the table")]
    TimestampFormatColumn {
        /// The name given.
        column: String,
    },
    /// `csv_delimiter` is not a single ASCII character other than a quote or line break.
    #[error(
        "invalid csv_delimiter {delimiter:?}: use one ASCII character other than '\"', CR or LF"
    )]
    InvalidCsvDelimiter {
        /// The delimiter given.
        delimiter: char,
    },
    /// `xml_root_path` is not an absolute path of element names.
    #[error("invalid xml_root_path '{path}': {message}")]
    InvalidXmlRootPath {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// `format = 'raw'` needs exactly one column, of type TEXT or JSON.
    #[error("format 'raw' needs exactly one column of type TEXT or JSON, the table has {found}")]
    RawNeedsOneTextColumn {
        /// What the table has instead, e.g. `2 columns` or `one column of type INT`.
        found: String,
    },
    /// A DECIMAL column whose precision/scale Arrow cannot store.
    #[error(
        "column \"{column}\": DECIMAL({precision},{scale}) is invalid: precision must be 1..=38 and scale 0..=precision"
    )]
    InvalidDecimal {
        /// The column name.
        column: String,
        /// Declared precision.
        precision: u8,
        /// Declared scale.
        scale: i8,
    },
    /// A transform (`transforms`) was given for a format whose records are not JSON.
    #[error("transforms (filter, map, arraymap) apply to format json, ndjson and raw only")]
    TransformNeedsJson,
    /// Two columns with the same name: records could not be matched unambiguously.
    #[error("column \"{column}\" is declared twice")]
    DuplicateColumn {
        /// The repeated name.
        column: String,
    },
}

/// Why a whole page could not be decoded. No record of the page is kept. Not retryable by
/// itself: the same body decodes the same way, so the source's error policy decides.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The path that locates the records (`json_path`, `xml_root_path`) matched nothing in
    /// a non-empty body, not even an empty list: typically an error body such as
    /// `{"error": "rate limited"}` sent with a 200. Not zero records: such a body says
    /// nothing about which records exist.
    #[error(
        "{option} `{path}` matches nothing in the body (not even an empty list); if the API leaves it out when there are no records, set {option}_missing = 'empty'"
    )]
    NothingAtPath {
        /// `json_path` or `xml_root_path`.
        option: &'static str,
        /// The path as written (`xml_root_path` normalised: prefixes dropped).
        path: String,
    },
    /// The body is not valid JSON; the message carries serde_json's line and column.
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The CSV reader failed on the body (not expected for in-memory input: rows of any
    /// length and any bytes are read).
    #[error("body is not readable CSV: {0}")]
    InvalidCsv(String),
    /// The body is not well-formed XML (or not UTF-8); the message carries the byte
    /// offset and line.
    #[error("body is not valid XML: {0}")]
    InvalidXml(String),
    /// Assembling the Arrow batch failed (an internal inconsistency, reported rather than
    /// panicking).
    #[error("cannot build the record batch: {0}")]
    Arrow(String),
}
