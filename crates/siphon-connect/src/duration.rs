//! Human durations as Rocketship (Go's `time.ParseDuration`) and Fluvio write them: `2s`,
//! `5m`, `1h`, `500ms`, `1.5s`, `1h30m`. Used by `siphon wait` and by Fluvio connector
//! files, so both read the same text the same way.

use std::time::Duration;

/// A text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration: {reason} (write e.g. 500ms, 2s, 5m, 1h or 1h30m)")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a sequence of `<number><unit>` parts (units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`,
/// `d`), summed. A bare `0` is zero; any other bare number is refused, since it would be
/// ambiguous between seconds and milliseconds.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let error = |reason: &str| DurationError {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(error("it is empty"));
    }
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    if trimmed.starts_with('-') {
        return Err(error("it is negative"));
    }
    let mut rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() {
            return Err(error("a number must come before each unit"));
        }
        let number: f64 = number
            .parse()
            .map_err(|_| error(&format!("`{number}` is not a number")))?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let seconds_per_unit = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(error("a unit is missing")),
            other => return Err(error(&format!("unknown unit `{other}`"))),
        };
        total += number * seconds_per_unit;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|e| error(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_compounds() {
        assert_eq!(parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse(" 10s ").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("250us").unwrap(), Duration::from_micros(250));
    }

    #[test]
    fn refusals_say_why() {
        assert!(parse("10").unwrap_err().reason.contains("unit is missing"));
        assert!(parse("5x").unwrap_err().reason.contains("unknown unit `x`"));
        assert!(parse("").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("s").is_err());
        assert_eq!(
            parse("soon").unwrap_err().to_string(),
            "`soon` is not a duration: a number must come before each unit (write e.g. 500ms, 2s, 5m, 1h or 1h30m)"
        );
    }
}
