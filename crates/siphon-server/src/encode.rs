//! Query results on the wire, batch by batch: JSON array, NDJSON, CSV with a header, or
//! Arrow IPC. [`ResultEncoder`] turns each batch into the bytes of one response chunk, so
//! a result is never held whole.
//!
//! JSON columns (fields marked `siphon.type = json`) are written as the JSON text they
//! hold, byte for byte, not re-parsed: key order and number precision stay as stored. A
//! value that is not valid JSON (which the decoder never stores) is written as a string.
//! Every other column is written by Arrow's JSON writer; DECIMALs come out as JSON numbers
//! with all their digits.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, FieldRef, SchemaRef};
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
        let json = || {
            arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .with_encoder_factory(Arc::new(RawJsonColumns))
        };
        Ok(match format {
            ResultFormat::Json => ResultEncoder::Json(json().build(Vec::new())),
            ResultFormat::Ndjson => ResultEncoder::Ndjson(json().build(Vec::new())),
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

/// Writes the text of JSON columns as raw JSON.
#[derive(Debug)]
struct RawJsonColumns;

impl EncoderFactory for RawJsonColumns {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let is_json = field.metadata().get("siphon.type").map(String::as_str) == Some("json");
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Utf8 if is_json => Box::new(RawJson(array.as_string::<i32>())),
            DataType::LargeUtf8 if is_json => Box::new(RawJson(array.as_string::<i64>())),
            DataType::Utf8View if is_json => Box::new(RawJson(array.as_string_view())),
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, array.nulls().cloned())))
    }
}

/// One JSON column: each value's text as it is, when it is valid JSON.
struct RawJson<A>(A);

impl<'a, A> Encoder for RawJson<A>
where
    A: arrow::array::ArrayAccessor<Item = &'a str>,
{
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let text = self.0.value(idx);
        // Validation only: nothing is rebuilt, so key order and digits are kept.
        if serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok() {
            out.extend_from_slice(text.trim().as_bytes());
        } else {
            serde_json::to_writer(out, text).expect("writing a string to memory");
        }
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
