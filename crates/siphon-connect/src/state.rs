//! Incremental state values: reading the maximum of `state_field` out of a poll's records,
//! comparing it with the saved state, and printing it for the next request.
//!
//! State is kept as text in [`crate::source::SourceState`] (timestamps as RFC 3339 UTC with
//! microseconds, checkpoints as the number's text) so it survives restarts unchanged and
//! reads well in status output. Timestamps compare as instants, checkpoints as numbers:
//! `"9"` < `"10"`, and `2024-01-01T01:00:00+01:00` equals `2024-01-01T00:00:00Z`.

use std::cmp::Ordering;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DecimalType, Float64Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::config::StateKind;
use crate::template::TimeFormat;

/// Parses an instant: RFC 3339, `YYYY-MM-DD[ T]HH:MM:SS[.frac]` (UTC) or a date (midnight UTC).
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for pattern in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, pattern) {
            return Some(naive.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

/// The canonical text of an instant in state: RFC 3339 UTC with microseconds.
pub fn instant_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A checkpoint number, compared exactly when both sides are integers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer.
    Int(i128),
    /// Anything else numeric.
    Float(f64),
}

/// Parses a checkpoint.
pub fn parse_number(text: &str) -> Option<Number> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i128>() {
        return Some(Number::Int(i));
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Number::Float)
}

fn compare(a: Number, b: Number) -> Ordering {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => x.cmp(&y),
        (x, y) => to_f64(x).partial_cmp(&to_f64(y)).unwrap_or(Ordering::Equal),
    }
}

fn to_f64(n: Number) -> f64 {
    match n {
        Number::Int(i) => i as f64,
        Number::Float(f) => f,
    }
}

/// Why the state could not be read from a poll's records.
#[derive(Debug, thiserror::Error)]
#[error("state_field `{field}`: {message}")]
pub struct StateError {
    /// The field.
    pub field: String,
    /// What went wrong.
    pub message: String,
}

/// The greater of the saved state and the maximum of column `field` over `batch`.
/// NULLs and values that do not parse are skipped.
pub fn advance(
    kind: StateKind,
    batch: &RecordBatch,
    field: &str,
    previous: Option<&str>,
) -> Result<Option<String>, StateError> {
    let err = |message: String| StateError {
        field: field.to_string(),
        message,
    };
    let Some((index, _)) = batch.schema().column_with_name(field) else {
        return Err(err("is not a column of the table".into()));
    };
    let column = batch.column(index);
    let found = match kind {
        StateKind::None => return Ok(previous.map(str::to_string)),
        StateKind::Timestamp => max_instant(column.as_ref()).map_err(err)?.map(instant_text),
        StateKind::Checkpoint => max_number(column.as_ref()).map_err(err)?,
    };
    Ok(match (previous, found) {
        (prev, None) => prev.map(str::to_string),
        (None, Some(new)) => Some(new),
        (Some(prev), Some(new)) => {
            let newer = match kind {
                StateKind::Timestamp => parse_instant(&new) > parse_instant(prev),
                _ => match (parse_number(&new), parse_number(prev)) {
                    (Some(n), Some(p)) => compare(n, p) == Ordering::Greater,
                    (Some(_), None) => true,
                    _ => false,
                },
            };
            Some(if newer { new } else { prev.to_string() })
        }
    })
}

fn max_instant(column: &dyn Array) -> Result<Option<DateTime<Utc>>, String> {
    Ok(match column.data_type() {
        DataType::Timestamp(_, _) => column
            .as_primitive_opt::<TimestampMicrosecondType>()
            .and_then(arrow::compute::max)
            .and_then(DateTime::from_timestamp_micros),
        DataType::Date32 => arrow::compute::max(column.as_primitive::<Date32Type>())
            .and_then(|days| DateTime::from_timestamp(i64::from(days) * 86_400, 0)),
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .flatten()
            .filter_map(parse_instant)
            .max(),
        DataType::Int64 => arrow::compute::max(column.as_primitive::<Int64Type>())
            .and_then(|s| DateTime::from_timestamp(s, 0)),
        other => {
            return Err(format!(
                "a timestamp state needs a TIMESTAMP, DATE or TEXT column, not {other}"
            ));
        }
    })
}

fn max_number(column: &dyn Array) -> Result<Option<String>, String> {
    Ok(match column.data_type() {
        DataType::Int16 => {
            arrow::compute::max(column.as_primitive::<Int16Type>()).map(|v| v.to_string())
        }
        DataType::Int32 => {
            arrow::compute::max(column.as_primitive::<Int32Type>()).map(|v| v.to_string())
        }
        DataType::Int64 => {
            arrow::compute::max(column.as_primitive::<Int64Type>()).map(|v| v.to_string())
        }
        DataType::Float64 => {
            arrow::compute::max(column.as_primitive::<Float64Type>()).map(|v| v.to_string())
        }
        DataType::Decimal128(_, scale) => {
            let scale = *scale;
            arrow::compute::max(column.as_primitive::<Decimal128Type>())
                .map(|v| Decimal128Type::format_decimal(v, 38, scale))
        }
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .flatten()
            .filter_map(|t| parse_number(t).map(|n| (n, t.trim().to_string())))
            .max_by(|a, b| compare(a.0, b.0))
            .map(|(_, text)| text),
        other => {
            return Err(format!(
                "a checkpoint state needs a numeric or TEXT column, not {other}"
            ));
        }
    })
}

/// The state as a request sends it: timestamps in `time_format`, checkpoints as they are.
pub fn render(kind: StateKind, value: &str, format: &TimeFormat) -> String {
    match kind {
        StateKind::Timestamp => parse_instant(value)
            .map(|at| format.render_precise(at))
            .unwrap_or_else(|| value.to_string()),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(column: Arc<dyn Array>) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("f", column.data_type().clone(), true)]);
        RecordBatch::try_new(Arc::new(schema), vec![column]).unwrap()
    }

    #[test]
    fn timestamps_compare_as_instants() {
        let b = batch(Arc::new(StringArray::from(vec![
            Some("2024-01-01T05:00:00+05:00"),
            None,
            Some("2023-12-31T23:59:59Z"),
            Some("junk"),
        ])));
        // 05:00+05:00 is midnight UTC, after 23:59:59 the day before.
        assert_eq!(
            advance(StateKind::Timestamp, &b, "f", None)
                .unwrap()
                .unwrap(),
            "2024-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            advance(
                StateKind::Timestamp,
                &b,
                "f",
                Some("2024-06-01T00:00:00.000000Z")
            )
            .unwrap()
            .unwrap(),
            "2024-06-01T00:00:00.000000Z",
            "a poll never moves the state back"
        );
        let t = batch(Arc::new(
            TimestampMicrosecondArray::from(vec![1_000_000, 3_000_000]).with_timezone("UTC"),
        ));
        assert_eq!(
            advance(StateKind::Timestamp, &t, "f", None)
                .unwrap()
                .unwrap(),
            "1970-01-01T00:00:03.000000Z"
        );
    }

    #[test]
    fn checkpoints_compare_as_numbers() {
        let b = batch(Arc::new(StringArray::from(vec!["9", "10", "x"])));
        assert_eq!(
            advance(StateKind::Checkpoint, &b, "f", Some("2"))
                .unwrap()
                .unwrap(),
            "10"
        );
        let n = batch(Arc::new(Int64Array::from(vec![5, 7])));
        assert_eq!(
            advance(StateKind::Checkpoint, &n, "f", Some("100"))
                .unwrap()
                .unwrap(),
            "100"
        );
        assert_eq!(
            advance(StateKind::Checkpoint, &n, "f", None)
                .unwrap()
                .unwrap(),
            "7"
        );
        let empty = batch(Arc::new(Int64Array::from(Vec::<i64>::new())));
        assert_eq!(
            advance(StateKind::Checkpoint, &empty, "f", Some("3"))
                .unwrap()
                .unwrap(),
            "3"
        );
        assert!(advance(StateKind::Checkpoint, &n, "nope", None).is_err());
    }

    #[test]
    fn renders_in_the_time_format() {
        let v = "2024-01-02T03:04:05.000000Z";
        assert_eq!(
            render(StateKind::Timestamp, v, &TimeFormat::Unix),
            "1704164645"
        );
        assert_eq!(
            render(StateKind::Timestamp, v, &TimeFormat::Iso8601),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(render(StateKind::Checkpoint, "42", &TimeFormat::Unix), "42");
        assert_eq!(parse_instant("2024-01-02").unwrap().timestamp(), 1704153600);
    }
}
