//! Incremental state values: reading the maximum of `state_field` out of a poll's records,
//! comparing it with the saved state, and printing it for the next request.
//!
//! State is kept as text in [`crate::source::SourceState`] (timestamps as RFC 3339 UTC with
//! microseconds, checkpoints as the number's text) so it survives restarts unchanged and
//! reads well in status output. Timestamps compare as instants, checkpoints as numbers:
//! `"9"` < `"10"`, and `2024-01-01T01:00:00+01:00` equals `2024-01-01T00:00:00Z`.
//!
//! Instants are read by the decoder's one rule (`decode::temporal`): timestamp strings as a
//! TIMESTAMP cell reads them, epoch numbers (a BIGINT column, or a number's text) with the
//! unit guessed from the magnitude, so epoch milliseconds are milliseconds here too.
//!
//! A timestamp more than [`MAX_AHEAD`] past the poll's clock is never taken as state: a
//! sentinel such as `9999-12-31` or a misread unit would make every later request ask for
//! the future and receive nothing, silently. Such values are skipped (the records are still
//! stored) and the poll says so in a note.

use std::cmp::Ordering;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DecimalType, Float64Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType,
};
use chrono::{DateTime, TimeDelta, Utc};

use crate::config::StateKind;
use crate::decode::temporal;
use crate::template::TimeFormat;

/// How far past the poll's start a timestamp may lie and still become state.
pub const MAX_AHEAD: TimeDelta = TimeDelta::days(1);

/// Parses an instant by the decoder's rule: a timestamp string (RFC 3339 and its
/// offset-less forms, a bare date = midnight UTC) or an epoch number's text, its unit
/// guessed from its magnitude.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    temporal::parse_instant_micros(text).and_then(DateTime::from_timestamp_micros)
}

/// Whether a timestamp state `value` lies more than [`MAX_AHEAD`] past `now`.
pub fn too_far_ahead(value: &str, now: DateTime<Utc>) -> bool {
    parse_instant(value).is_some_and(|at| at > now + MAX_AHEAD)
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

/// Orders two numbers: exactly when both are integers.
pub fn compare(a: Number, b: Number) -> Ordering {
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

/// A poll's new state value and what is worth saying about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Advanced {
    /// The state to commit.
    pub value: Option<String>,
    /// Values that were not taken (see the module docs), for the poll's notes.
    pub notes: Vec<String>,
}

/// The greater of the saved state and the maximum of column `field` over `batch`.
/// NULLs and values that do not parse are skipped, and so are timestamps more than
/// [`MAX_AHEAD`] past `now` (the poll's start), with a note.
pub fn advance(
    kind: StateKind,
    batch: &RecordBatch,
    field: &str,
    previous: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Advanced, StateError> {
    let err = |message: String| StateError {
        field: field.to_string(),
        message,
    };
    let Some((index, _)) = batch.schema().column_with_name(field) else {
        return Err(err("is not a column of the table".into()));
    };
    let column = batch.column(index);
    let mut notes = Vec::new();
    let found = match kind {
        StateKind::None => {
            return Ok(Advanced {
                value: previous.map(str::to_string),
                notes,
            });
        }
        StateKind::Timestamp => {
            let limit = now + MAX_AHEAD;
            let (max, ahead) = max_instant(column.as_ref(), limit).map_err(err)?;
            if let Some((count, latest)) = ahead {
                notes.push(format!(
                    "state_field `{field}`: {count} value(s) more than a day ahead of the clock (latest {}) not taken as state",
                    instant_text(latest)
                ));
            }
            max.map(instant_text)
        }
        StateKind::Checkpoint => max_number(column.as_ref()).map_err(err)?,
    };
    let value = match (previous, found) {
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
    };
    Ok(Advanced { value, notes })
}

/// The latest instant of a column no later than `limit`, and how many values lay beyond
/// it with the latest of those.
#[allow(clippy::type_complexity)]
fn max_instant(
    column: &dyn Array,
    limit: DateTime<Utc>,
) -> Result<(Option<DateTime<Utc>>, Option<(usize, DateTime<Utc>)>), String> {
    let micros = instants_micros(column)?;
    let mut max = None;
    let mut ahead: Option<(usize, DateTime<Utc>)> = None;
    for at in micros
        .into_iter()
        .flatten()
        .filter_map(DateTime::from_timestamp_micros)
    {
        if at > limit {
            let (count, latest) = ahead.get_or_insert((0, at));
            *count += 1;
            *latest = (*latest).max(at);
        } else {
            max = max.max(Some(at));
        }
    }
    Ok((max, ahead))
}

/// Each value of a timestamp state column as microseconds since the epoch.
fn instants_micros(column: &dyn Array) -> Result<Vec<Option<i64>>, String> {
    Ok(match column.data_type() {
        DataType::Timestamp(_, _) => match column.as_primitive_opt::<TimestampMicrosecondType>() {
            Some(values) => values.iter().collect(),
            None => Vec::new(),
        },
        DataType::Date32 => column
            .as_primitive::<Date32Type>()
            .iter()
            .map(|days| days.and_then(|d| i64::from(d).checked_mul(86_400_000_000)))
            .collect(),
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|text| text.and_then(temporal::parse_instant_micros))
            .collect(),
        DataType::Int64 => column
            .as_primitive::<Int64Type>()
            .iter()
            .map(|n| n.and_then(temporal::epoch_integer_to_micros))
            .collect(),
        other => {
            return Err(format!(
                "a timestamp state needs a TIMESTAMP, DATE, BIGINT or TEXT column, not {other}"
            ));
        }
    })
}

/// A state value as a comparable number: a timestamp as its microseconds since the
/// epoch, a checkpoint as itself.
pub fn ordinal(kind: StateKind, text: &str) -> Option<Number> {
    match kind {
        StateKind::Timestamp => {
            parse_instant(text).map(|at| Number::Int(i128::from(at.timestamp_micros())))
        }
        _ => parse_number(text),
    }
}

/// The text of an ordinal, as the boundary memory keeps it.
pub fn canonical(value: Number) -> String {
    match value {
        Number::Int(i) => i.to_string(),
        Number::Float(f) => format!("{f:?}"),
    }
}

/// Each record's state value as a comparable number (see [`ordinal`]); `None` for NULLs
/// and values that do not parse.
pub fn ordinals(
    kind: StateKind,
    batch: &RecordBatch,
    field: &str,
) -> Result<Vec<Option<Number>>, StateError> {
    let err = |message: String| StateError {
        field: field.to_string(),
        message,
    };
    let column = batch
        .column_by_name(field)
        .ok_or_else(|| err("is not a column of the table".into()))?;
    match kind {
        StateKind::Timestamp => Ok(instants_micros(column.as_ref())
            .map_err(err)?
            .into_iter()
            .map(|m| m.map(|m| Number::Int(i128::from(m))))
            .collect()),
        _ => Ok(match column.data_type() {
            DataType::Int16 => column
                .as_primitive::<Int16Type>()
                .iter()
                .map(|v| v.map(|v| Number::Int(i128::from(v))))
                .collect(),
            DataType::Int32 => column
                .as_primitive::<Int32Type>()
                .iter()
                .map(|v| v.map(|v| Number::Int(i128::from(v))))
                .collect(),
            DataType::Int64 => column
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|v| Number::Int(i128::from(v))))
                .collect(),
            DataType::Float64 => column
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.filter(|f| f.is_finite()).map(Number::Float))
                .collect(),
            DataType::Decimal128(_, scale) => {
                let scale = *scale;
                column
                    .as_primitive::<Decimal128Type>()
                    .iter()
                    .map(|v| {
                        v.and_then(|v| parse_number(&Decimal128Type::format_decimal(v, 38, scale)))
                    })
                    .collect()
            }
            DataType::Utf8 => column
                .as_string::<i32>()
                .iter()
                .map(|t| t.and_then(parse_number))
                .collect(),
            other => {
                return Err(err(format!(
                    "a checkpoint state needs a numeric or TEXT column, not {other}"
                )));
            }
        }),
    }
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

    /// The poll's clock in these tests: 2026-01-01T00:00:00Z.
    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    /// `super::advance` at [`now`], without its notes.
    fn advance(
        kind: StateKind,
        batch: &RecordBatch,
        field: &str,
        previous: Option<&str>,
    ) -> Result<Option<String>, StateError> {
        super::advance(kind, batch, field, previous, now()).map(|a| a.value)
    }

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

    /// Issue 9, point 6: a BIGINT of epoch milliseconds is read by the decoder's rule (unit
    /// from the magnitude), not as seconds (which made it the year 55,000).
    #[test]
    fn bigint_and_text_epochs_follow_the_decoder_rule() {
        // 2024-03-15T12:34:56Z in seconds, milliseconds and microseconds.
        for n in [1_710_506_096, 1_710_506_096_000, 1_710_506_096_000_000] {
            let b = batch(Arc::new(Int64Array::from(vec![Some(n), None, Some(0)])));
            assert_eq!(
                advance(StateKind::Timestamp, &b, "f", None)
                    .unwrap()
                    .unwrap(),
                "2024-03-15T12:34:56.000000Z",
                "{n}"
            );
        }
        let t = batch(Arc::new(StringArray::from(vec![
            "1710506096000",
            "2024-03-15T12:00:00Z",
        ])));
        assert_eq!(
            advance(StateKind::Timestamp, &t, "f", None)
                .unwrap()
                .unwrap(),
            "2024-03-15T12:34:56.000000Z"
        );
        assert_eq!(
            parse_instant("1710506096000").unwrap(),
            parse_instant("2024-03-15T12:34:56Z").unwrap()
        );
    }

    /// Issue 9, point 6: a value far in the future (a sentinel date, a misread unit) never
    /// becomes the state, which would make every later request ask for the future.
    #[test]
    fn timestamps_far_ahead_of_the_clock_are_not_taken_and_say_so() {
        let b = batch(Arc::new(StringArray::from(vec![
            "9999-12-31T00:00:00Z",
            "2025-12-31T00:00:00Z",
            "2026-01-01T12:00:00Z",
        ])));
        let out = super::advance(StateKind::Timestamp, &b, "f", None, now()).unwrap();
        assert_eq!(out.value.as_deref(), Some("2026-01-01T12:00:00.000000Z"));
        assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
        assert!(
            out.notes[0].contains("1 value(s)") && out.notes[0].contains("9999-12-31"),
            "{:?}",
            out.notes
        );
        let only_future = batch(Arc::new(Int64Array::from(vec![i64::MAX / 1000])));
        let out = super::advance(
            StateKind::Timestamp,
            &only_future,
            "f",
            Some("2025-06-01T00:00:00.000000Z"),
            now(),
        )
        .unwrap();
        assert_eq!(out.value.as_deref(), Some("2025-06-01T00:00:00.000000Z"));
        assert_eq!(out.notes.len(), 1);
        assert!(too_far_ahead("2026-01-03T00:00:00Z", now()));
        assert!(!too_far_ahead("2026-01-01T23:00:00Z", now()));
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
