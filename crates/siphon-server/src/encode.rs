//! Query results on the wire: JSON array, NDJSON, CSV with a header, or Arrow IPC.
//!
//! JSON columns (fields marked `siphon.type = json`) are emitted as JSON values, not as
//! strings holding JSON, so `{"metadata": {"a": 1}}` comes back as it went in.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

/// An output format of `/v1/query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultFormat {
    /// One JSON array of row objects.
    Json,
    /// One row object per line.
    Ndjson,
    /// CSV with a header line.
    Csv,
    /// Arrow IPC stream.
    Arrow,
}

impl ResultFormat {
    /// Parses `format=`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(ResultFormat::Json),
            "ndjson" | "jsonl" => Some(ResultFormat::Ndjson),
            "csv" => Some(ResultFormat::Csv),
            "arrow" | "arrow_ipc" => Some(ResultFormat::Arrow),
            _ => None,
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Json => "application/json",
            ResultFormat::Ndjson => "application/x-ndjson",
            ResultFormat::Csv => "text/csv; charset=utf-8",
            ResultFormat::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Encodes a query result.
pub fn encode(
    format: ResultFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::new();
    match format {
        ResultFormat::Json => {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            drop(writer);
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out = embed_json_columns(schema, &out, true)?;
        }
        ResultFormat::Ndjson => {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            drop(writer);
            out = embed_json_columns(schema, &out, false)?;
        }
        ResultFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            if batches.is_empty() {
                // A header line even for an empty result.
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
            drop(writer);
        }
        ResultFormat::Arrow => {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
    }
    Ok(out)
}

/// Replaces the string value of each JSON column with the JSON it holds.
fn embed_json_columns(
    schema: &SchemaRef,
    encoded: &[u8],
    array: bool,
) -> Result<Vec<u8>, ArrowError> {
    let json_columns: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| f.metadata().get("siphon.type").map(String::as_str) == Some("json"))
        .map(|f| f.name().as_str())
        .collect();
    if json_columns.is_empty() {
        return Ok(encoded.to_vec());
    }
    let fix_row = |row: &mut serde_json::Value| {
        if let Some(obj) = row.as_object_mut() {
            for name in &json_columns {
                if let Some(serde_json::Value::String(text)) = obj.get(*name)
                    && let Ok(parsed) = serde_json::from_str::<serde_json::Value>(text)
                {
                    obj.insert((*name).to_string(), parsed);
                }
            }
        }
    };
    let err = |e: serde_json::Error| ArrowError::JsonError(e.to_string());
    if array {
        let mut rows: Vec<serde_json::Value> = serde_json::from_slice(encoded).map_err(err)?;
        rows.iter_mut().for_each(fix_row);
        serde_json::to_vec(&rows).map_err(err)
    } else {
        let mut out = Vec::with_capacity(encoded.len());
        for line in encoded.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut row: serde_json::Value = serde_json::from_slice(line).map_err(err)?;
            fix_row(&mut row);
            serde_json::to_writer(&mut out, &row).map_err(err)?;
            out.push(b'\n');
        }
        Ok(out)
    }
}
