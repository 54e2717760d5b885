//! Reading instants and dates out of what APIs send: RFC 3339 strings and their common
//! offset-less variants, and Unix epoch numbers in an unknown unit. Hand-written rather
//! than chrono's format parsers because it runs for every timestamp cell of every page and
//! must accept exactly the documented forms.
//!
//! Timestamp strings: `YYYY-MM-DD`, then optionally `T`/`t`/space, `HH:MM:SS`, an optional
//! fraction of 1 or more digits (digits past the microsecond are truncated), and an
//! optional offset `Z`/`z`, `±HH:MM`, `±HHMM` or `±HH`. No offset means UTC; a bare date
//! is midnight UTC. A leap second `:60` rolls into the next minute.
//!
//! Feeds and HTTP write dates otherwise: when a string is not of that form, RFC 2822
//! (`Fri, 12 Jan 2024 00:00:00 +0000`: RSS `pubDate`, email; the day name is optional,
//! obsolete zones such as `GMT`, `UT`, `EST` are read) and the HTTP date forms (IMF-fixdate
//! is RFC 2822; RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and asctime
//! `Sun Nov  6 08:49:37 1994`) are tried, through chrono. A table's `timestamp_format`
//! (a strftime pattern, [`TimestampFormat`]) is tried before all of these.
//!
//! Epoch integers: the unit is guessed from the magnitude, |n| < 1e11 → seconds
//! (through year 5138), < 1e14 → milliseconds, < 1e17 → microseconds, otherwise
//! nanoseconds. Epoch floats are always seconds with a fraction.

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Microseconds since the Unix epoch (UTC) for a timestamp string, or `None` if it is not
/// one of the accepted forms.
pub(crate) fn parse_timestamp_micros(s: &str) -> Option<i64> {
    parse_iso_micros(s).or_else(|| parse_mail_date_micros(s))
}

/// The RFC 3339 family (see the module docs); the fast path.
fn parse_iso_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let days = parse_date_prefix(b)?;
    if b.len() == 10 {
        return days.checked_mul(MICROS_PER_DAY);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = two_digits(b, 11)?;
    let minute = two_digits(b, 14)?;
    let second = two_digits(b, 17)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut pos = 19;
    let mut micros = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while let Some(d) = b.get(pos).filter(|d| d.is_ascii_digit()) {
            if pos - start < 6 {
                micros = micros * 10 + i64::from(d - b'0');
            }
            pos += 1;
        }
        let digits = pos - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let offset_seconds = parse_offset(&b[pos..])?;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_seconds;
    seconds.checked_mul(MICROS_PER_SECOND)?.checked_add(micros)
}

/// RFC 2822 and the obsolete HTTP date forms (see the module docs).
fn parse_mail_date_micros(s: &str) -> Option<i64> {
    // Every such date holds a letter; the ISO forms that failed above hold none, so
    // numbers and broken ISO strings skip chrono.
    if !s.bytes().any(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc2822(s) {
        return Some(at.timestamp_micros());
    }
    for pattern in ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"] {
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(s, pattern) {
            return Some(at.and_utc().timestamp_micros());
        }
    }
    None
}

/// A `timestamp_format`: a strftime pattern (chrono's `%` codes) read before the
/// built-in forms. With an offset (`%z`, `%:z`) it is honoured; without, the time is UTC;
/// a pattern with no time of day (`%d/%m/%Y`) gives midnight UTC; `%s` is epoch seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampFormat {
    pattern: Box<str>,
    has_offset: bool,
    has_time: bool,
}

impl TimestampFormat {
    /// Checks `pattern` (every `%` code known to chrono, and at least a date or `%s`).
    pub fn parse(pattern: &str) -> Result<Self, String> {
        use chrono::format::{Fixed, Item, Numeric, StrftimeItems};
        let mut has_offset = false;
        let mut has_time = false;
        let mut has_date = false;
        for item in StrftimeItems::new(pattern) {
            match item {
                Item::Error => {
                    return Err(format!("`{pattern}` is not a valid strftime pattern"));
                }
                Item::Fixed(
                    Fixed::TimezoneOffset
                    | Fixed::TimezoneOffsetColon
                    | Fixed::TimezoneOffsetZ
                    | Fixed::TimezoneOffsetColonZ
                    | Fixed::TimezoneOffsetDoubleColon
                    | Fixed::TimezoneOffsetTripleColon
                    | Fixed::RFC2822
                    | Fixed::RFC3339,
                ) => has_offset = true,
                Item::Numeric(Numeric::Timestamp, _) => {
                    has_offset = true;
                    has_time = true;
                    has_date = true;
                }
                Item::Numeric(Numeric::Hour | Numeric::Hour12 | Numeric::Minute, _) => {
                    has_time = true;
                }
                Item::Numeric(
                    Numeric::Year | Numeric::Day | Numeric::Ordinal | Numeric::Month,
                    _,
                )
                | Item::Fixed(Fixed::ShortMonthName | Fixed::LongMonthName) => has_date = true,
                _ => {}
            }
        }
        if !has_date {
            return Err(format!(
                "`{pattern}` has no date in it (a year, month and day, or %s)"
            ));
        }
        Ok(TimestampFormat {
            pattern: pattern.into(),
            has_offset,
            has_time,
        })
    }

    /// Microseconds since the epoch for `s` read with the pattern, or `None`.
    pub(crate) fn micros(&self, s: &str) -> Option<i64> {
        if self.has_offset {
            chrono::DateTime::parse_from_str(s, &self.pattern)
                .ok()
                .map(|at| at.timestamp_micros())
        } else if self.has_time {
            chrono::NaiveDateTime::parse_from_str(s, &self.pattern)
                .ok()
                .map(|at| at.and_utc().timestamp_micros())
        } else {
            chrono::NaiveDate::parse_from_str(s, &self.pattern)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|at| at.and_utc().timestamp_micros())
        }
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// Days since 1970-01-01 for a date string `YYYY-MM-DD`, or for any timestamp string
/// [`parse_timestamp_micros`] accepts (its UTC date).
pub(crate) fn parse_date_days(s: &str) -> Option<i32> {
    let days = if s.len() == 10 {
        parse_date_prefix(s.as_bytes())?
    } else {
        parse_timestamp_micros(s)?.div_euclid(MICROS_PER_DAY)
    };
    i32::try_from(days).ok()
}

/// Microseconds for an integer Unix epoch whose unit is guessed from its magnitude (see
/// the module docs).
pub(crate) fn epoch_integer_to_micros(n: i64) -> Option<i64> {
    let magnitude = n.unsigned_abs();
    if magnitude < 100_000_000_000 {
        n.checked_mul(MICROS_PER_SECOND)
    } else if magnitude < 100_000_000_000_000 {
        n.checked_mul(1_000)
    } else if magnitude < 100_000_000_000_000_000 {
        Some(n)
    } else {
        Some(n.div_euclid(1_000))
    }
}

/// Microseconds for an instant written as text, by the same rules as a cell: a timestamp
/// string as [`parse_timestamp_micros`] reads it, or a number's text (what a TEXT column
/// keeps of a JSON number) as an epoch, integers by magnitude
/// ([`epoch_integer_to_micros`]) and fractions in seconds. Surrounding whitespace is
/// ignored. The one reading of instants that incremental state shares with the decoder.
pub(crate) fn parse_instant_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(micros) = parse_timestamp_micros(text) {
        return Some(micros);
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    // Only number syntax: no `inf`, `NaN` or other words f64 parsing would take.
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    match text.parse::<i64>() {
        Ok(n) => epoch_integer_to_micros(n),
        Err(_) => epoch_seconds_to_micros(text.parse::<f64>().ok()?),
    }
}

/// Microseconds for a fractional Unix epoch in seconds, rounded to the nearest
/// microsecond; `None` when not finite or out of the representable range.
pub(crate) fn epoch_seconds_to_micros(seconds: f64) -> Option<i64> {
    let micros = (seconds * 1e6).round();
    // i64::MAX is not exactly representable; stay strictly inside the range.
    if micros.is_finite() && micros > -9.223_372_036_854_775e18 && micros < 9.223_372_036_854_775e18
    {
        Some(micros as i64)
    } else {
        None
    }
}

/// Days since the epoch for the `YYYY-MM-DD` at the start of `b` (validating the day of
/// the month, leap years included).
fn parse_date_prefix(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = two_digits(b, 0)? * 100 + two_digits(b, 2)?;
    let month = two_digits(b, 5)?;
    let day = two_digits(b, 8)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn parse_offset(b: &[u8]) -> Option<i64> {
    let sign = match b.first() {
        None => return Some(0),
        Some(b'Z' | b'z') if b.len() == 1 => return Some(0),
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return None,
    };
    let hours = two_digits(b, 1)?;
    let minutes = match b.len() {
        3 => 0,
        5 => two_digits(b, 3)?,
        6 if b[3] == b':' => two_digits(b, 4)?,
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3_600 + minutes * 60))
}

fn two_digits(b: &[u8], at: usize) -> Option<i64> {
    match (b.get(at), b.get(at + 1)) {
        (Some(h), Some(l)) if h.is_ascii_digit() && l.is_ascii_digit() => {
            Some(i64::from(h - b'0') * 10 + i64::from(l - b'0'))
        }
        _ => None,
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-03-15T12:34:56Z
    const T: i64 = 1_710_506_096_000_000;

    #[test]
    fn rfc2822_and_http_dates() {
        // 2024-01-12T00:00:00Z
        let jan12 = 1_705_017_600_000_000;
        assert_eq!(
            parse_timestamp_micros("Fri, 12 Jan 2024 00:00:00 +0000"),
            Some(jan12)
        );
        assert_eq!(
            parse_timestamp_micros("12 Jan 2024 01:00:00 +0100"),
            Some(jan12)
        );
        assert_eq!(
            parse_timestamp_micros("Fri, 12 Jan 2024 00:00:00 GMT"),
            Some(jan12)
        );
        assert_eq!(
            parse_timestamp_micros("Thu, 11 Jan 2024 19:00:00 EST"),
            Some(jan12)
        );
        assert_eq!(
            parse_timestamp_micros("Friday, 12-Jan-24 00:00:00 GMT"),
            Some(jan12)
        );
        assert_eq!(
            parse_timestamp_micros("Fri Jan 12 00:00:00 2024"),
            Some(jan12)
        );
        assert_eq!(
            parse_timestamp_micros("Fri, 32 Jan 2024 00:00:00 +0000"),
            None
        );
        assert_eq!(parse_timestamp_micros("yesterday"), None);
        assert_eq!(
            parse_date_days("Fri, 12 Jan 2024 23:00:00 +0000"),
            Some(19_734)
        );
        assert_eq!(
            parse_instant_micros(" Fri, 12 Jan 2024 00:00:00 +0000 "),
            Some(jan12)
        );
    }

    #[test]
    fn timestamp_format_patterns() {
        let jan12 = 1_705_017_600_000_000;
        let f = TimestampFormat::parse("%d/%m/%Y %H:%M").unwrap();
        assert_eq!(f.micros("12/01/2024 00:00"), Some(jan12));
        assert_eq!(f.micros("2024-01-12"), None);
        let f = TimestampFormat::parse("%d.%m.%Y").unwrap();
        assert_eq!(f.micros("12.01.2024"), Some(jan12));
        let f = TimestampFormat::parse("%Y%m%d %H%M%S %z").unwrap();
        assert_eq!(f.micros("20240112 010000 +0100"), Some(jan12));
        let f = TimestampFormat::parse("%s").unwrap();
        assert_eq!(f.micros("1705017600"), Some(jan12));
        assert!(TimestampFormat::parse("%H:%M").is_err());
        assert!(TimestampFormat::parse("%Y-%m-%d %Q").is_err());
    }

    #[test]
    fn rfc3339_with_offsets_normalised_to_utc() {
        assert_eq!(parse_timestamp_micros("2024-03-15T12:34:56Z"), Some(T));
        assert_eq!(parse_timestamp_micros("2024-03-15t12:34:56z"), Some(T));
        assert_eq!(parse_timestamp_micros("2024-03-15T14:34:56+02:00"), Some(T));
        assert_eq!(parse_timestamp_micros("2024-03-15T07:04:56-05:30"), Some(T));
        assert_eq!(parse_timestamp_micros("2024-03-15T14:34:56+0200"), Some(T));
        assert_eq!(parse_timestamp_micros("2024-03-15T14:34:56+02"), Some(T));
        assert_eq!(parse_timestamp_micros("2024-03-16T00:04:56+11:30"), Some(T));
    }

    #[test]
    fn fractions_and_offsetless_forms() {
        assert_eq!(
            parse_timestamp_micros("2024-03-15T12:34:56.5Z"),
            Some(T + 500_000)
        );
        assert_eq!(
            parse_timestamp_micros("2024-03-15T12:34:56.123456Z"),
            Some(T + 123_456)
        );
        assert_eq!(
            parse_timestamp_micros("2024-03-15T12:34:56.123456789+00:00"),
            Some(T + 123_456)
        );
        assert_eq!(parse_timestamp_micros("2024-03-15 12:34:56"), Some(T));
        assert_eq!(
            parse_timestamp_micros("2024-03-15T12:34:56.25"),
            Some(T + 250_000)
        );
        assert_eq!(
            parse_timestamp_micros("2024-03-15"),
            Some(1_710_460_800_000_000)
        );
        assert_eq!(
            parse_timestamp_micros("1969-12-31T23:59:59.5Z"),
            Some(-500_000)
        );
        assert_eq!(parse_timestamp_micros("1970-01-01T00:00:00Z"), Some(0));
        // A leap second rolls over.
        assert_eq!(
            parse_timestamp_micros("2016-12-31T23:59:60Z"),
            parse_timestamp_micros("2017-01-01T00:00:00Z")
        );
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            "",
            "2024-3-15",
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "2024-03-15T25:00:00Z",
            "2024-03-15T12:34Z",
            "2024-03-15T12:34:56.",
            "2024-03-15T12:34:56+2",
            "2024-03-15T12:34:56 +02:00",
            "2024-03-15T12:34:56Zjunk",
            "2024-03-15X12:34:56",
            "yesterday",
            "１２３４-03-15",
        ] {
            assert_eq!(parse_timestamp_micros(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_timestamp_micros("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000_000)
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date_days("1970-01-01"), Some(0));
        assert_eq!(parse_date_days("2024-03-15"), Some(19_797));
        assert_eq!(parse_date_days("1969-12-31"), Some(-1));
        assert_eq!(parse_date_days("0001-01-01"), Some(-719_162));
        // The UTC date of an instant, not its local date.
        assert_eq!(parse_date_days("2024-03-16T01:00:00+02:00"), Some(19_797));
        assert_eq!(parse_date_days("1969-12-31T23:00:00-02:00"), Some(0));
        assert_eq!(parse_date_days("2024-03-32"), None);
        assert_eq!(parse_date_days("20240315"), None);
    }

    #[test]
    fn instants_as_text_follow_the_cell_rules() {
        assert_eq!(parse_instant_micros(" 2024-03-15T12:34:56Z "), Some(T));
        assert_eq!(parse_instant_micros("1710506096"), Some(T));
        assert_eq!(parse_instant_micros("1710506096000"), Some(T));
        assert_eq!(parse_instant_micros("1710506096.5"), Some(T + 500_000));
        assert_eq!(parse_instant_micros("1e9"), Some(1_000_000_000_000_000));
        for bad in [
            "",
            "-",
            "1.2.3",
            "inf",
            "-NaN",
            "yesterday",
            "2024-03-15T12:34Z",
        ] {
            assert_eq!(parse_instant_micros(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn epoch_unit_guessed_from_magnitude() {
        assert_eq!(epoch_integer_to_micros(1_710_506_096), Some(T));
        assert_eq!(epoch_integer_to_micros(1_710_506_096_000), Some(T));
        assert_eq!(epoch_integer_to_micros(1_710_506_096_000_000), Some(T));
        assert_eq!(epoch_integer_to_micros(1_710_506_096_000_000_000), Some(T));
        assert_eq!(epoch_integer_to_micros(-86_400), Some(-MICROS_PER_DAY));
        assert_eq!(epoch_integer_to_micros(0), Some(0));
        // The boundaries: 99_999_999_999 is still seconds, 1e11 is milliseconds.
        assert_eq!(
            epoch_integer_to_micros(99_999_999_999),
            Some(99_999_999_999_000_000)
        );
        assert_eq!(
            epoch_integer_to_micros(100_000_000_000),
            Some(100_000_000_000_000)
        );
        assert_eq!(
            epoch_integer_to_micros(i64::MIN),
            Some(i64::MIN.div_euclid(1000))
        );
        assert_eq!(epoch_seconds_to_micros(1_710_506_096.25), Some(T + 250_000));
        assert_eq!(epoch_seconds_to_micros(f64::NAN), None);
        assert_eq!(epoch_seconds_to_micros(1e300), None);
    }
}
