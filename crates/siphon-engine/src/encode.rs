//! Query results and change entries on the wire. Query results go batch by batch: JSON array, NDJSON, CSV with a header, or
//! Arrow IPC. [`ResultEncoder`] turns each batch into the bytes of one response chunk, so
//! a result is never held whole.
//!
//! JSON columns (fields marked `siphon.type = json`) are written as the JSON text they
//! hold, byte for byte, not re-parsed: key order and number precision stay as stored. A
//! value that is not valid JSON (which the decoder never stores) is written as a string.
//! Every other column is written by Arrow's JSON writer; DECIMALs come out as JSON numbers
//! with all their digits.

use std::sync::Arc;

use crate::keyed::OP_COLUMN;
use arrow::array::{Array, AsArray, Int8Array, RecordBatch};
use arrow::datatypes::{DataType, Field, FieldRef, Int8Type, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::writer::{
    Encoder, EncoderFactory, EncoderOptions, JsonArray, LineDelimited, NullableEncoder,
};

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

/// Encodes one result, a batch at a time: [`ResultEncoder::batch`] for each batch, then
/// [`ResultEncoder::finish`]; each returns the bytes to send next.
pub enum ResultEncoder {
    /// A JSON array; bytes are taken out of the writer after each batch.
    Json(arrow::json::Writer<Vec<u8>, JsonArray>),
    /// NDJSON.
    Ndjson(arrow::json::Writer<Vec<u8>, LineDelimited>),
    /// CSV: the header goes with the first batch (or the end, for an empty result).
    Csv {
        /// The result's schema.
        schema: SchemaRef,
        /// Whether the header line was written.
        header_written: bool,
    },
    /// Arrow IPC stream.
    Arrow(arrow::ipc::writer::StreamWriter<Vec<u8>>),
}

impl ResultEncoder {
    /// An encoder for a result with `schema`.
    pub fn new(format: ResultFormat, schema: &SchemaRef) -> Result<Self, ArrowError> {
        Ok(match format {
            ResultFormat::Json => ResultEncoder::Json(json_writer(false).build(Vec::new())),
            ResultFormat::Ndjson => ResultEncoder::Ndjson(json_writer(true).build(Vec::new())),
            ResultFormat::Csv => ResultEncoder::Csv {
                schema: schema.clone(),
                header_written: false,
            },
            ResultFormat::Arrow => ResultEncoder::Arrow(arrow::ipc::writer::StreamWriter::try_new(
                Vec::new(),
                schema,
            )?),
        })
    }

    /// The bytes for one more batch.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        match self {
            ResultEncoder::Json(writer) => {
                writer.write(batch)?;
                Ok(std::mem::take(writer.get_mut()))
            }
            ResultEncoder::Ndjson(writer) => {
                writer.write(batch)?;
                Ok(std::mem::take(writer.get_mut()))
            }
            ResultEncoder::Csv {
                header_written,
                schema: _,
            } => {
                let mut out = Vec::new();
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(!*header_written)
                    .build(&mut out);
                writer.write(batch)?;
                drop(writer);
                *header_written = true;
                Ok(out)
            }
            ResultEncoder::Arrow(writer) => {
                writer.write(batch)?;
                Ok(std::mem::take(writer.get_mut()))
            }
        }
    }

    /// The bytes that end the result.
    pub fn finish(&mut self) -> Result<Vec<u8>, ArrowError> {
        match self {
            ResultEncoder::Json(writer) => {
                writer.finish()?;
                let out = std::mem::take(writer.get_mut());
                // Arrow writes nothing at all for a result without rows.
                Ok(if out.is_empty() { b"[]".to_vec() } else { out })
            }
            ResultEncoder::Ndjson(writer) => {
                writer.finish()?;
                Ok(std::mem::take(writer.get_mut()))
            }
            ResultEncoder::Csv {
                schema,
                header_written,
            } => {
                if *header_written {
                    return Ok(Vec::new());
                }
                // A header line even for an empty result.
                let mut out = Vec::new();
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
                drop(writer);
                *header_written = true;
                Ok(out)
            }
            ResultEncoder::Arrow(writer) => {
                writer.finish()?;
                Ok(std::mem::take(writer.get_mut()))
            }
        }
    }
}

/// Arrow's JSON writer with explicit nulls and JSON columns as raw JSON; `one_line`: the
/// JSON columns' line breaks (outside strings) are left out, so each row is one line.
fn json_writer(one_line: bool) -> arrow::json::WriterBuilder {
    arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(RawJsonColumns { one_line }))
}

/// The `json_data` of one change entry: `[{"insert": {row}}, {"delete": {row}}, ...]`,
/// rows as objects of the table's columns (never the op column), in the entry's order. A
/// batch without [`OP_COLUMN`] is all inserts.
pub fn change_json(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let (rows, ops) = split_ops(batch)?;
    let mut writer = json_writer(true).build::<_, LineDelimited>(Vec::new());
    writer.write(&rows)?;
    writer.finish()?;
    let lines = writer.into_inner();
    let mut out = Vec::with_capacity(lines.len() + 16 * rows.num_rows() + 2);
    out.push(b'[');
    // Each row is one line: strings escape their line breaks, JSON columns are one-lined.
    for (i, line) in lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        let delete = ops.as_ref().is_some_and(|ops| ops.value(i) < 0);
        out.extend_from_slice(if delete {
            b"{\"delete\":"
        } else {
            b"{\"insert\":"
        });
        out.extend_from_slice(line);
        out.push(b'}');
    }
    out.push(b']');
    Ok(out)
}

/// The `text_data` of one change entry, as a JSON string: CSV lines (no header) of the
/// table's columns plus a last weight column (1 insert, -1 delete), as Feldera writes it.
pub fn change_csv(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let (rows, ops) = split_ops(batch)?;
    let weights: arrow::array::ArrayRef = match ops {
        Some(ops) => Arc::new(ops),
        None => Arc::new(Int8Array::from(vec![1i8; rows.num_rows()])),
    };
    let mut fields: Vec<FieldRef> = rows.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("weight", DataType::Int8, false)));
    let mut columns = rows.columns().to_vec();
    columns.push(weights);
    let weighted = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let mut text = Vec::new();
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(false)
        .build(&mut text);
    writer.write(&weighted)?;
    drop(writer);
    let text = String::from_utf8(text).map_err(|e| ArrowError::CsvError(e.to_string()))?;
    serde_json::to_vec(&text).map_err(|e| ArrowError::JsonError(e.to_string()))
}

/// A change batch without its op column, and the ops (`None`: every row an insert).
fn split_ops(batch: &RecordBatch) -> Result<(RecordBatch, Option<Int8Array>), ArrowError> {
    let schema = batch.schema();
    let last = schema.fields().len().checked_sub(1);
    match last.filter(|&i| schema.field(i).name() == OP_COLUMN) {
        Some(i) => {
            let ops = batch
                .column(i)
                .as_primitive_opt::<Int8Type>()
                .ok_or_else(|| {
                    ArrowError::SchemaError(format!("{OP_COLUMN} is not an Int8 column"))
                })?
                .clone();
            let rows = batch.project(&(0..i).collect::<Vec<_>>())?;
            Ok((rows, Some(ops)))
        }
        None => Ok((batch.clone(), None)),
    }
}

/// Writes the text of JSON columns as raw JSON.
#[derive(Debug)]
struct RawJsonColumns {
    one_line: bool,
}

impl EncoderFactory for RawJsonColumns {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let is_json = field.metadata().get("siphon.type").map(String::as_str) == Some("json");
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Utf8 if is_json => Box::new(RawJson(array.as_string::<i32>(), self.one_line)),
            DataType::LargeUtf8 if is_json => {
                Box::new(RawJson(array.as_string::<i64>(), self.one_line))
            }
            DataType::Utf8View if is_json => {
                Box::new(RawJson(array.as_string_view(), self.one_line))
            }
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, array.nulls().cloned())))
    }
}

/// One JSON column: each value's text as it is, when it is valid JSON (one-lined when the
/// flag is set).
struct RawJson<A>(A, bool);

impl<'a, A> Encoder for RawJson<A>
where
    A: arrow::array::ArrayAccessor<Item = &'a str>,
{
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let text = self.0.value(idx);
        // Validation only: nothing is rebuilt, so key order and digits are kept.
        if serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok() {
            let text = text.trim();
            if self.1 && text.contains(['\n', '\r']) {
                one_line(text, out);
            } else {
                out.extend_from_slice(text.as_bytes());
            }
        } else {
            serde_json::to_writer(out, text).expect("writing a string to memory");
        }
    }
}

/// Valid JSON text without its line breaks: outside strings they are insignificant
/// whitespace, inside strings they cannot occur (they are escaped), so the value, its key
/// order and its digits stay as they are.
fn one_line(text: &str, out: &mut Vec<u8>) {
    let (mut in_string, mut escaped) = (false, false);
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'\n' || b == b'\r' {
            continue;
        }
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::collections::HashMap;

    fn encode_all(format: ResultFormat, batch: &RecordBatch) -> String {
        let mut encoder = ResultEncoder::new(format, &batch.schema()).unwrap();
        let mut out = encoder.batch(batch).unwrap();
        out.extend(encoder.batch(batch).unwrap());
        out.extend(encoder.finish().unwrap());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_columns_and_decimals_are_written_as_stored() {
        let json = Field::new("j", DataType::Utf8, true).with_metadata(HashMap::from([(
            "siphon.type".to_string(),
            "json".to_string(),
        )]));
        let schema = Arc::new(Schema::new(vec![
            json,
            Field::new("d", DataType::Decimal128(38, 10), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some(r#"{"b":1,"a":2.50}"#), None])),
                Arc::new(
                    Decimal128Array::from(vec![
                        Some(123_456_789_012_345_678_901_234_567_890),
                        None,
                    ])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
                ),
            ],
        )
        .unwrap();
        let row = r#"{"j":{"b":1,"a":2.50},"d":12345678901234567890.1234567890}"#;
        let null = r#"{"j":null,"d":null}"#;
        assert_eq!(
            encode_all(ResultFormat::Json, &batch),
            format!("[{row},{null},{row},{null}]")
        );
        assert_eq!(
            encode_all(ResultFormat::Ndjson, &batch),
            format!("{row}\n{null}\n{row}\n{null}\n")
        );
    }

    #[test]
    fn change_entries_are_written_as_inserts_and_deletes_in_json_and_csv() {
        let json = Field::new("j", DataType::Utf8, true).with_metadata(HashMap::from([(
            "siphon.type".to_string(),
            "json".to_string(),
        )]));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            json,
            Field::new(OP_COLUMN, DataType::Int8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::Int64Array::from(vec![1, 1])),
                Arc::new(StringArray::from(vec![
                    Some("{\n  \"a\": \"x\\\"\\n\",\r\n  \"b\": 1.50\n}"),
                    None,
                ])),
                Arc::new(Int8Array::from(vec![-1, 1])),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(change_json(&batch).unwrap()).unwrap(),
            r#"[{"delete":{"id":1,"j":{  "a": "x\"\n",  "b": 1.50}}},{"insert":{"id":1,"j":null}}]"#
        );
        let csv: String = serde_json::from_slice(&change_csv(&batch).unwrap()).unwrap();
        assert_eq!(
            csv,
            "1,\"{\n  \"\"a\"\": \"\"x\\\"\"\\n\"\",\r\n  \"\"b\"\": 1.50\n}\",-1\n1,,1\n"
        );
        // Without an op column every row is an insert.
        let plain = batch.project(&[0]).unwrap();
        assert_eq!(
            String::from_utf8(change_json(&plain).unwrap()).unwrap(),
            r#"[{"insert":{"id":1}},{"insert":{"id":1}}]"#
        );
        let csv: String = serde_json::from_slice(&change_csv(&plain).unwrap()).unwrap();
        assert_eq!(csv, "1,1\n1,1\n");
    }

    #[test]
    fn empty_results_still_have_their_frame() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
        for (format, expected) in [
            (ResultFormat::Json, "[]"),
            (ResultFormat::Ndjson, ""),
            (ResultFormat::Csv, "a\n"),
        ] {
            let mut encoder = ResultEncoder::new(format, &schema).unwrap();
            let out = encoder.finish().unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn csv_writes_one_header_across_batches() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["x,y"]))]).unwrap();
        assert_eq!(
            encode_all(ResultFormat::Csv, &batch),
            "a\n\"x,y\"\n\"x,y\"\n"
        );
    }
}
