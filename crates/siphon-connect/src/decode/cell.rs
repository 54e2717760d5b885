//! Cell conversion: one source value into the typed value of one column. Every format
//! feeds it: JSON hands over typed scalars, CSV and XML will hand over strings, so a
//! `"42"` means the same thing whichever format it came from. Rules, per column type:
//!
//! * TEXT: strings as they are; numbers and booleans as their JSON text; objects and
//!   arrays as compact JSON text.
//! * JSON: any value as compact JSON text (a string becomes a JSON string literal).
//! * SMALLINT/INT/BIGINT: integer numbers, numbers with a zero fraction (`3.0`, `1e3`),
//!   and strings holding such a number; fractional or out-of-range values are rejected.
//! * DOUBLE: numbers, and strings in Rust's float syntax, which includes `NaN`, `inf` and
//!   `infinity` (any case, optional sign); a finite literal too large for an f64 is
//!   rejected rather than stored as infinity.
//! * DECIMAL(p,s): numbers or numeric strings, parsed from their literal text (never via
//!   f64) by Arrow's `parse_decimal`, which truncates digits beyond the scale; more
//!   significant digits than the precision allows are rejected.
//! * BOOLEAN: `true`/`false`, and the strings `"true"`/`"false"` in any case.
//! * TIMESTAMP: strings in the forms of [`temporal`](super::temporal); integer numbers as
//!   Unix epoch with the unit guessed from the magnitude; other numbers as epoch seconds.
//! * DATE: `YYYY-MM-DD` strings, or any accepted timestamp string (its UTC date).
//!
//! Strings are trimmed of surrounding whitespace before numeric, boolean and temporal
//! parsing. NULL converts to NULL for every type; nullability is the caller's concern.

use std::borrow::Cow;
use std::fmt;

use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::Decimal128Type;

use super::compact::compact_json;
use super::temporal;
use crate::schema::ColumnType;

/// One source value, before conversion. JSON produces every variant; CSV and XML produce
/// only `Null` and `String`.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// An explicit null (JSON `null`).
    Null,
    /// A JSON boolean.
    Bool(bool),
    /// A JSON number, as its literal text (so decimals never go through f64).
    Number(&'a str),
    /// A string, already unescaped.
    String(Cow<'a, str>),
    /// An object or array, as its raw (valid) JSON text.
    Nested(&'a str),
}

/// A converted value, in the representation its column's Arrow builder takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// NULL, for any column type.
    Null,
    /// TEXT and JSON columns.
    Text(Cow<'a, str>),
    /// SMALLINT.
    Int16(i16),
    /// INT.
    Int32(i32),
    /// BIGINT.
    Int64(i64),
    /// DOUBLE.
    Float64(f64),
    /// DECIMAL, as the unscaled integer at the column's scale.
    Decimal(i128),
    /// BOOLEAN.
    Boolean(bool),
    /// TIMESTAMP, microseconds since the Unix epoch, UTC.
    TimestampMicros(i64),
    /// DATE, days since 1970-01-01.
    Date(i32),
}

/// How much of an offending value a message quotes.
const MAX_QUOTED_VALUE: usize = 100;

/// A value that does not fit its column: `cannot convert string "abc" to DOUBLE`, with an
/// optional explanation such as `(out of range)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    kind: &'static str,
    value: String,
    column_type: String,
    detail: Option<&'static str>,
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot convert {} {} to {}",
            self.kind, self.value, self.column_type
        )?;
        if let Some(detail) = self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConvertError {}

impl ConvertError {
    fn new(ty: &ColumnType, scalar: &Scalar<'_>, detail: Option<&'static str>) -> Self {
        let (kind, value) = match scalar {
            Scalar::Null => ("null", "null".to_string()),
            Scalar::Bool(b) => ("boolean", b.to_string()),
            Scalar::Number(n) => ("number", quote_limited(n)),
            Scalar::String(s) => {
                let shown = truncate_at_char(s, MAX_QUOTED_VALUE);
                let mut quoted = serde_json::to_string(shown).unwrap_or_default();
                if shown.len() < s.len() {
                    quoted.push('…');
                }
                ("string", quoted)
            }
            Scalar::Nested(raw) => {
                let kind = if raw.starts_with('[') {
                    "array"
                } else {
                    "object"
                };
                (kind, quote_limited(&compact_json(raw)))
            }
        };
        ConvertError {
            kind,
            value,
            column_type: ty.sql_name(),
            detail,
        }
    }
}

fn quote_limited(text: &str) -> String {
    let shown = truncate_at_char(text, MAX_QUOTED_VALUE);
    if shown.len() < text.len() {
        format!("{shown}…")
    } else {
        shown.to_string()
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Converts `scalar` to the representation of a column of type `ty`.
pub fn convert<'a>(ty: &ColumnType, scalar: Scalar<'a>) -> Result<Cell<'a>, ConvertError> {
    if let Scalar::Null = scalar {
        return Ok(Cell::Null);
    }
    let fail = |scalar: &Scalar<'_>, detail| Err(ConvertError::new(ty, scalar, detail));
    match *ty {
        ColumnType::Text => Ok(Cell::Text(match scalar {
            Scalar::String(s) => s,
            Scalar::Number(n) => Cow::Borrowed(n),
            Scalar::Bool(b) => Cow::Borrowed(bool_text(b)),
            Scalar::Nested(raw) => compact_json(raw),
            Scalar::Null => return Ok(Cell::Null),
        })),
        ColumnType::Json => Ok(Cell::Text(match scalar {
            Scalar::String(s) => Cow::Owned(serde_json::to_string(&*s).unwrap_or_default()),
            Scalar::Number(n) => Cow::Borrowed(n),
            Scalar::Bool(b) => Cow::Borrowed(bool_text(b)),
            Scalar::Nested(raw) => compact_json(raw),
            Scalar::Null => return Ok(Cell::Null),
        })),
        ColumnType::SmallInt | ColumnType::Int | ColumnType::BigInt => {
            let text = match &scalar {
                Scalar::Number(n) => *n,
                Scalar::String(s) => s.trim(),
                _ => return fail(&scalar, None),
            };
            let value = match parse_integer(text) {
                Ok(value) => value,
                Err(detail) => return fail(&scalar, detail),
            };
            let cell = match *ty {
                ColumnType::SmallInt => i16::try_from(value).ok().map(Cell::Int16),
                ColumnType::Int => i32::try_from(value).ok().map(Cell::Int32),
                _ => Some(Cell::Int64(value)),
            };
            match cell {
                Some(cell) => Ok(cell),
                None => fail(&scalar, Some("out of range")),
            }
        }
        ColumnType::Double => match &scalar {
            Scalar::Number(n) => match n.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Cell::Float64(v)),
                Ok(_) => fail(&scalar, Some("out of range")),
                Err(_) => fail(&scalar, None),
            },
            Scalar::String(s) => {
                let text = s.trim();
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() || v.is_nan() || spells_infinity(text) => {
                        Ok(Cell::Float64(v))
                    }
                    Ok(_) => fail(&scalar, Some("out of range")),
                    Err(_) => fail(&scalar, None),
                }
            }
            _ => fail(&scalar, None),
        },
        ColumnType::Decimal { precision, scale } => {
            let text = match &scalar {
                Scalar::Number(n) => *n,
                Scalar::String(s) => s.trim(),
                _ => return fail(&scalar, None),
            };
            if !is_decimal_literal(text) {
                return fail(&scalar, None);
            }
            match parse_decimal::<Decimal128Type>(text, precision, scale) {
                Ok(v) => Ok(Cell::Decimal(v)),
                Err(_) => fail(&scalar, Some("out of range")),
            }
        }
        ColumnType::Boolean => match &scalar {
            Scalar::Bool(b) => Ok(Cell::Boolean(*b)),
            Scalar::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Cell::Boolean(true)),
            Scalar::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Cell::Boolean(false)),
            _ => fail(&scalar, None),
        },
        ColumnType::Timestamp => {
            let micros = match &scalar {
                Scalar::String(s) => temporal::parse_timestamp_micros(s.trim()),
                Scalar::Number(n) if is_integer_literal(n) => match n.parse::<i64>() {
                    Ok(v) => temporal::epoch_integer_to_micros(v),
                    Err(_) => return fail(&scalar, Some("out of range")),
                },
                Scalar::Number(n) => match n.parse::<f64>() {
                    Ok(v) => match temporal::epoch_seconds_to_micros(v) {
                        Some(micros) => Some(micros),
                        None => return fail(&scalar, Some("out of range")),
                    },
                    Err(_) => None,
                },
                _ => None,
            };
            match micros {
                Some(micros) => Ok(Cell::TimestampMicros(micros)),
                None => fail(&scalar, None),
            }
        }
        ColumnType::Date => match &scalar {
            Scalar::String(s) => match temporal::parse_date_days(s.trim()) {
                Some(days) => Ok(Cell::Date(days)),
                None => fail(&scalar, None),
            },
            _ => fail(&scalar, None),
        },
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn spells_infinity(text: &str) -> bool {
    let digits = text.trim_start_matches(['+', '-']);
    digits.eq_ignore_ascii_case("inf") || digits.eq_ignore_ascii_case("infinity")
}

fn is_integer_literal(n: &str) -> bool {
    !n.contains(['.', 'e', 'E'])
}

/// An integer from a number's text: plain integers exactly, `123.000` exactly, and
/// exponent forms through f64 when their value is integral. `Err(detail)` says why not.
fn parse_integer(text: &str) -> Result<i64, Option<&'static str>> {
    if let Ok(v) = text.parse::<i64>() {
        return Ok(v);
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Some("out of range"));
    }
    if !text.contains(['e', 'E'])
        && let Some((whole, fraction)) = text.split_once('.')
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b.is_ascii_digit())
    {
        if fraction.bytes().any(|b| b != b'0') {
            return Err(Some("has a fractional part"));
        }
        return match whole.parse::<i64>() {
            Ok(v) => Ok(v),
            Err(_) if whole.strip_prefix(['+', '-']).unwrap_or(whole).is_empty() => Err(None),
            Err(_) => Err(Some("out of range")),
        };
    }
    if !is_decimal_literal(text) {
        return Err(None);
    }
    let v = text.parse::<f64>().map_err(|_| None)?;
    if !v.is_finite() {
        return Err(Some("out of range"));
    }
    if v.fract() != 0.0 {
        return Err(Some("has a fractional part"));
    }
    // -2^63 is exact in f64; 2^63 is the first value past i64::MAX.
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v) {
        return Err(Some("out of range"));
    }
    Ok(v as i64)
}

/// Longest numeric text handed to Arrow's decimal parser: its digit counters are `u8`
/// and its exponent an `i16`, so unbounded input could overflow them.
const MAX_DECIMAL_TEXT: usize = 200;
const MAX_EXPONENT_DIGITS: usize = 4;

/// `[+-]digits[.digits][(e|E)[+-]digits]` with at least one mantissa digit, bounded in
/// length (see [`MAX_DECIMAL_TEXT`]).
fn is_decimal_literal(text: &str) -> bool {
    if text.len() > MAX_DECIMAL_TEXT {
        return false;
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return false;
    }
    match exponent {
        None => true,
        Some(exp) => {
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !digits.is_empty() && digits.len() <= MAX_EXPONENT_DIGITS && all_digits(digits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: &str) -> Scalar<'_> {
        Scalar::Number(n)
    }
    fn s(text: &str) -> Scalar<'_> {
        Scalar::String(Cow::Borrowed(text))
    }
    fn ok<'a>(ty: ColumnType, scalar: Scalar<'a>) -> Cell<'a> {
        convert(&ty, scalar).unwrap()
    }
    fn err(ty: ColumnType, scalar: Scalar<'_>) -> String {
        convert(&ty, scalar).unwrap_err().to_string()
    }
    fn text(t: &str) -> Cell<'_> {
        Cell::Text(Cow::Borrowed(t))
    }
    const DEC: ColumnType = ColumnType::Decimal {
        precision: 10,
        scale: 2,
    };

    #[test]
    fn null_is_null_for_every_type() {
        for ty in [
            ColumnType::Text,
            ColumnType::Json,
            ColumnType::Int,
            ColumnType::Double,
            DEC,
            ColumnType::Boolean,
            ColumnType::Timestamp,
            ColumnType::Date,
        ] {
            assert_eq!(ok(ty, Scalar::Null), Cell::Null);
        }
    }

    #[test]
    fn text_column() {
        assert_eq!(ok(ColumnType::Text, s("héllo")), text("héllo"));
        assert_eq!(ok(ColumnType::Text, num("1.50")), text("1.50"));
        assert_eq!(ok(ColumnType::Text, Scalar::Bool(false)), text("false"));
        assert_eq!(
            ok(ColumnType::Text, Scalar::Nested("{ \"a\": [1, 2] }")),
            text(r#"{"a":[1,2]}"#)
        );
    }

    #[test]
    fn json_column() {
        assert_eq!(ok(ColumnType::Json, s("abc")), text("\"abc\""));
        assert_eq!(ok(ColumnType::Json, s("a\"b")), text(r#""a\"b""#));
        assert_eq!(ok(ColumnType::Json, num("-1e3")), text("-1e3"));
        assert_eq!(ok(ColumnType::Json, Scalar::Bool(true)), text("true"));
        assert_eq!(
            ok(ColumnType::Json, Scalar::Nested("[ 1, {\"b\" : null} ]")),
            text(r#"[1,{"b":null}]"#)
        );
    }

    #[test]
    fn integer_columns_accept() {
        assert_eq!(ok(ColumnType::BigInt, num("42")), Cell::Int64(42));
        assert_eq!(
            ok(ColumnType::BigInt, num("-9223372036854775808")),
            Cell::Int64(i64::MIN)
        );
        assert_eq!(ok(ColumnType::BigInt, num("3.0")), Cell::Int64(3));
        assert_eq!(ok(ColumnType::BigInt, num("-7.000")), Cell::Int64(-7));
        assert_eq!(ok(ColumnType::BigInt, num("1e3")), Cell::Int64(1000));
        assert_eq!(ok(ColumnType::BigInt, num("2.5E1")), Cell::Int64(25));
        assert_eq!(ok(ColumnType::Int, s("42")), Cell::Int32(42));
        assert_eq!(ok(ColumnType::Int, s(" -42 ")), Cell::Int32(-42));
        assert_eq!(ok(ColumnType::Int, s("12.0")), Cell::Int32(12));
        assert_eq!(
            ok(ColumnType::SmallInt, num("-32768")),
            Cell::Int16(i16::MIN)
        );
        assert_eq!(
            ok(ColumnType::SmallInt, num("32767")),
            Cell::Int16(i16::MAX)
        );
    }

    #[test]
    fn integer_columns_reject() {
        assert_eq!(
            err(ColumnType::SmallInt, num("32768")),
            "cannot convert number 32768 to SMALLINT (out of range)"
        );
        assert_eq!(
            err(ColumnType::Int, num("2147483648")),
            "cannot convert number 2147483648 to INT (out of range)"
        );
        assert_eq!(
            err(ColumnType::BigInt, num("9223372036854775808")),
            "cannot convert number 9223372036854775808 to BIGINT (out of range)"
        );
        assert_eq!(
            err(ColumnType::BigInt, num("1e19")),
            "cannot convert number 1e19 to BIGINT (out of range)"
        );
        assert_eq!(
            err(ColumnType::Int, num("3.5")),
            "cannot convert number 3.5 to INT (has a fractional part)"
        );
        assert_eq!(
            err(ColumnType::Int, num("1.5e0")),
            "cannot convert number 1.5e0 to INT (has a fractional part)"
        );
        assert_eq!(
            err(ColumnType::Int, s("abc")),
            r#"cannot convert string "abc" to INT"#
        );
        assert_eq!(
            err(ColumnType::Int, s("")),
            r#"cannot convert string "" to INT"#
        );
        assert_eq!(
            err(ColumnType::Int, s("inf")),
            r#"cannot convert string "inf" to INT"#
        );
        assert_eq!(
            err(ColumnType::Int, s(".0")),
            r#"cannot convert string ".0" to INT"#
        );
        assert_eq!(
            err(ColumnType::Int, Scalar::Bool(true)),
            "cannot convert boolean true to INT"
        );
        assert_eq!(
            err(ColumnType::BigInt, Scalar::Nested("[1]")),
            "cannot convert array [1] to BIGINT"
        );
    }

    #[test]
    fn double_column() {
        assert_eq!(ok(ColumnType::Double, num("1.5")), Cell::Float64(1.5));
        assert_eq!(ok(ColumnType::Double, num("-2e-3")), Cell::Float64(-0.002));
        assert_eq!(ok(ColumnType::Double, num("7")), Cell::Float64(7.0));
        assert_eq!(ok(ColumnType::Double, s(" 3.25 ")), Cell::Float64(3.25));
        assert_eq!(
            ok(ColumnType::Double, s("-Infinity")),
            Cell::Float64(f64::NEG_INFINITY)
        );
        assert_eq!(
            ok(ColumnType::Double, s("inf")),
            Cell::Float64(f64::INFINITY)
        );
        assert!(matches!(ok(ColumnType::Double, s("NaN")), Cell::Float64(v) if v.is_nan()));
        assert_eq!(
            err(ColumnType::Double, s("abc")),
            r#"cannot convert string "abc" to DOUBLE"#
        );
        assert_eq!(
            err(ColumnType::Double, num("1e400")),
            "cannot convert number 1e400 to DOUBLE (out of range)"
        );
        assert_eq!(
            err(ColumnType::Double, Scalar::Bool(false)),
            "cannot convert boolean false to DOUBLE"
        );
        assert_eq!(
            err(ColumnType::Double, Scalar::Nested(r#"{"a":1}"#)),
            r#"cannot convert object {"a":1} to DOUBLE"#
        );
    }

    #[test]
    fn decimal_column_uses_literal_text() {
        assert_eq!(ok(DEC, num("123.45")), Cell::Decimal(12_345));
        assert_eq!(ok(DEC, num("0.1")), Cell::Decimal(10));
        assert_eq!(ok(DEC, num("-7")), Cell::Decimal(-700));
        assert_eq!(ok(DEC, s("99999999.99")), Cell::Decimal(9_999_999_999));
        assert_eq!(ok(DEC, num("1.5e2")), Cell::Decimal(15_000));
        // Digits past the scale are truncated, as Arrow's parser does.
        assert_eq!(ok(DEC, num("1.239")), Cell::Decimal(123));
        // Full 38-digit precision, which an f64 round trip would lose.
        let wide = ColumnType::Decimal {
            precision: 38,
            scale: 0,
        };
        assert_eq!(
            ok(wide, num("12345678901234567890123456789012345678")),
            Cell::Decimal(12_345_678_901_234_567_890_123_456_789_012_345_678)
        );
        let ten_digits = ColumnType::Decimal {
            precision: 20,
            scale: 10,
        };
        assert_eq!(
            ok(ten_digits, num("0.1234567891")),
            Cell::Decimal(1_234_567_891)
        );
    }

    #[test]
    fn decimal_column_rejects() {
        assert_eq!(
            err(DEC, num("123456789.5")),
            "cannot convert number 123456789.5 to DECIMAL(10,2) (out of range)"
        );
        assert_eq!(
            err(DEC, num("1e9")),
            "cannot convert number 1e9 to DECIMAL(10,2) (out of range)"
        );
        assert_eq!(
            err(DEC, s("12,5")),
            r#"cannot convert string "12,5" to DECIMAL(10,2)"#
        );
        assert_eq!(
            err(DEC, s("NaN")),
            r#"cannot convert string "NaN" to DECIMAL(10,2)"#
        );
        assert_eq!(
            err(DEC, s("1e99999")),
            r#"cannot convert string "1e99999" to DECIMAL(10,2)"#
        );
        let long = "9".repeat(300);
        assert!(err(DEC, num(&long)).ends_with("… to DECIMAL(10,2)"));
        assert_eq!(
            err(DEC, Scalar::Bool(true)),
            "cannot convert boolean true to DECIMAL(10,2)"
        );
    }

    #[test]
    fn boolean_column() {
        assert_eq!(
            ok(ColumnType::Boolean, Scalar::Bool(true)),
            Cell::Boolean(true)
        );
        assert_eq!(ok(ColumnType::Boolean, s("TRUE")), Cell::Boolean(true));
        assert_eq!(ok(ColumnType::Boolean, s("False")), Cell::Boolean(false));
        assert_eq!(
            err(ColumnType::Boolean, s("yes")),
            r#"cannot convert string "yes" to BOOLEAN"#
        );
        assert_eq!(
            err(ColumnType::Boolean, num("1")),
            "cannot convert number 1 to BOOLEAN"
        );
    }

    #[test]
    fn timestamp_column() {
        let t = 1_710_506_096_000_000;
        let ts = ColumnType::Timestamp;
        assert_eq!(
            ok(ts, s("2024-03-15T14:34:56+02:00")),
            Cell::TimestampMicros(t)
        );
        assert_eq!(ok(ts, s("2024-03-15 12:34:56")), Cell::TimestampMicros(t));
        assert_eq!(ok(ts, num("1710506096")), Cell::TimestampMicros(t));
        assert_eq!(ok(ts, num("1710506096000")), Cell::TimestampMicros(t));
        assert_eq!(ok(ts, num("1710506096000000")), Cell::TimestampMicros(t));
        assert_eq!(ok(ts, num("1710506096000000000")), Cell::TimestampMicros(t));
        assert_eq!(
            ok(ts, num("1710506096.5")),
            Cell::TimestampMicros(t + 500_000)
        );
        assert_eq!(
            err(ts, s("15/03/2024")),
            r#"cannot convert string "15/03/2024" to TIMESTAMP"#
        );
        assert_eq!(
            err(ts, num("99999999999999999999")),
            "cannot convert number 99999999999999999999 to TIMESTAMP (out of range)"
        );
        assert_eq!(
            err(ts, Scalar::Bool(true)),
            "cannot convert boolean true to TIMESTAMP"
        );
    }

    #[test]
    fn date_column() {
        assert_eq!(ok(ColumnType::Date, s("2024-03-15")), Cell::Date(19_797));
        assert_eq!(
            ok(ColumnType::Date, s("2024-03-15T23:30:00-02:00")),
            Cell::Date(19_798)
        );
        assert_eq!(
            err(ColumnType::Date, s("2024-02-30")),
            r#"cannot convert string "2024-02-30" to DATE"#
        );
        assert_eq!(
            err(ColumnType::Date, num("19797")),
            "cannot convert number 19797 to DATE"
        );
    }

    #[test]
    fn long_values_are_truncated_in_messages() {
        let long = "é".repeat(80);
        let message = err(ColumnType::Int, s(&long));
        assert_eq!(
            message,
            format!("cannot convert string \"{}\"… to INT", "é".repeat(50))
        );
    }
}
