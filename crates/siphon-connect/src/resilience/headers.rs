//! Parsing the headers with which servers say "wait": `Retry-After` (RFC 9110 §10.2.3) and
//! the rate-limit headers of the many conventions in use, turned into a `Duration` to wait.
//!
//! Kept apart from the policies so that they stay free of header syntax, and so that the
//! syntax, with its legacy date forms and competing drafts, is tested in one place. Every
//! function takes "now" as a `SystemTime` argument (the headers speak wall-clock time), so
//! tests need no real clock. Nothing here caps a wait: the caller caps it (as
//! [`super::RetryPolicy::max_retry_after`] caps `Retry-After`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime};
use reqwest::header::HeaderMap;

/// Reset values at or above this are epoch seconds, below it delta seconds (1e9 s after the
/// epoch is 2001; no rate-limit window lasts 31 years).
const EPOCH_SECONDS_THRESHOLD: f64 = 1e9;
/// Reset values at or above this are epoch milliseconds.
const EPOCH_MILLIS_THRESHOLD: f64 = 1e12;

/// The pairs of "remaining" and "reset" headers, in the legacy `X-` conventions and the
/// IETF draft's separate fields (draft-ietf-httpapi-ratelimit-headers up to -06).
const REMAINING_RESET_PAIRS: [(&str, &[&str]); 3] = [
    (
        "x-ratelimit-remaining",
        &["x-ratelimit-reset-after", "x-ratelimit-reset"],
    ),
    ("x-rate-limit-remaining", &["x-rate-limit-reset"]),
    ("ratelimit-remaining", &["ratelimit-reset"]),
];

/// Parses a `Retry-After` value: delta-seconds (`120`; a fraction such as `1.5` is accepted
/// too) or an HTTP-date (IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, or the obsolete
/// RFC 850 and asctime forms). A date in the past gives `Duration::ZERO`. `None` when the
/// value is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Some(secs) = parse_non_negative_number(value) {
        return Duration::try_from_secs_f64(secs)
            .ok()
            .or(Some(Duration::MAX));
    }
    parse_http_date(value).map(|date| until(date, now))
}

/// The `Retry-After` of a response, parsed with [`parse_retry_after`]; `None` when absent
/// or unparsable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, RFC 850 (`Sunday, 06-Nov-94 08:49:37
/// GMT`; a two-digit year 00–69 is 20xx, 70–99 is 19xx) or asctime (`Sun Nov  6 08:49:37
/// 1994`). The weekday is not checked against the date. Numeric offsets (`+0000`) are
/// accepted as a courtesy to servers that send them.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    // IMF-fixdate and RFC 850 start with "weekday,": drop it, the date says enough.
    if let Some((_, rest)) = value.split_once(',') {
        let rest = rest.trim();
        for format in ["%d %b %Y %H:%M:%S GMT", "%d-%b-%y %H:%M:%S GMT"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(rest, format) {
                return Some(naive_utc_to_system_time(naive));
            }
        }
        if let Ok(date) = DateTime::parse_from_rfc2822(value) {
            return date_to_system_time(date.timestamp(), date.timestamp_subsec_nanos());
        }
        return None;
    }
    // asctime: "Sun Nov  6 08:49:37 1994"; skip the weekday.
    let (_, rest) = value.split_once(' ')?;
    let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    NaiveDateTime::parse_from_str(&rest, "%b %d %H:%M:%S %Y")
        .ok()
        .map(naive_utc_to_system_time)
}

/// How long the rate-limit headers of a response say to wait before the next request, when
/// they say the quota is exhausted (remaining is 0); `None` when they do not, or give no time.
///
/// Understood, all names case-insensitive:
/// * `X-RateLimit-Remaining` with `X-RateLimit-Reset-After` (delta seconds) or
///   `X-RateLimit-Reset`; `X-Rate-Limit-Remaining` with `X-Rate-Limit-Reset`; the IETF
///   draft's `RateLimit-Remaining` with `RateLimit-Reset`. A reset of at least 1e12 is epoch
///   milliseconds, of at least 1e9 epoch seconds, else delta seconds; an HTTP-date works
///   too. A reset in the past gives `Duration::ZERO`.
/// * The structured field of the later drafts, `RateLimit: "default";r=0;t=30` (one member
///   per policy; `t` is delta seconds; a member with `r=0` and no `t` falls back to the `w`
///   window of the same policy in `RateLimit-Policy: "default";q=100;w=60`), and the
///   dictionary form of draft -07, `RateLimit: limit=100, remaining=0, reset=30`.
///
/// When several say to wait, the longest wait wins.
pub fn rate_limit_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let mut wait: Option<Duration> = None;
    let mut consider = |candidate: Duration| {
        wait = Some(wait.map_or(candidate, |w| w.max(candidate)));
    };
    for (remaining_name, reset_names) in REMAINING_RESET_PAIRS {
        let Some(remaining) = header_str(headers, remaining_name).and_then(first_number) else {
            continue;
        };
        if remaining > 0.0 {
            continue;
        }
        let reset = reset_names
            .iter()
            .find_map(|name| header_str(headers, name).and_then(|v| parse_reset(v, now)));
        if let Some(reset) = reset {
            consider(reset);
        }
    }
    let policies: Vec<Member> = headers
        .get_all("ratelimit-policy")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_members)
        .collect();
    for value in headers
        .get_all("ratelimit")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        if let Some(reset) = structured_wait(value, &policies) {
            consider(reset);
        }
    }
    wait
}

/// One member of a structured-field list: its item (a policy name, or for the dictionary
/// form `key=value`) and its parameters.
struct Member {
    item: String,
    params: Vec<(String, String)>,
}

impl Member {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// The wait a `RateLimit` field value asks for, in either the list form (`"p";r=0;t=30`) or
/// the dictionary form of draft -07 (`limit=100, remaining=0, reset=30`).
fn structured_wait(value: &str, policies: &[Member]) -> Option<Duration> {
    let members = parse_members(value);
    let mut wait: Option<Duration> = None;
    // Dictionary form: bare `key=value` members.
    let dict = |key: &str| {
        members.iter().find_map(|m| {
            let (k, v) = m.item.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    };
    if let Some(remaining) = dict("remaining").and_then(first_number)
        && remaining <= 0.0
    {
        wait = dict("reset").and_then(parse_delta);
    }
    // List form: one member per policy, `r` remaining, `t` reset.
    for member in &members {
        let Some(remaining) = member.param("r").and_then(first_number) else {
            continue;
        };
        if remaining > 0.0 {
            continue;
        }
        let reset = member.param("t").and_then(parse_delta).or_else(|| {
            policies
                .iter()
                .find(|p| p.item == member.item)
                .and_then(|p| p.param("w"))
                .and_then(parse_delta)
        });
        if let Some(reset) = reset {
            wait = Some(wait.map_or(reset, |w| w.max(reset)));
        }
    }
    wait
}

/// Splits a structured-field list into members and parameters, honouring quoted strings.
/// Lenient: anything it does not understand ends up as an item no caller asks for.
fn parse_members(value: &str) -> Vec<Member> {
    split_unquoted(value, ',')
        .into_iter()
        .filter(|m| !m.trim().is_empty())
        .map(|member| {
            let mut parts = split_unquoted(member, ';').into_iter();
            let item = unquote(parts.next().unwrap_or_default().trim());
            let params = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.trim().to_owned(), unquote(v.trim())))
                })
                .collect();
            Member { item, params }
        })
        .collect()
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(value: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                parts.push(&value[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// Removes the quotes (and backslash escapes) of a structured-field string; other values are
/// returned as they are.
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

/// A header's value as text, when present and visible ASCII.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// The number at the start of a value such as `0`, `0, 10;w=60` or `42;w=60`.
fn first_number(value: &str) -> Option<f64> {
    let first = value.split([',', ';']).next()?.trim();
    let negative = first.starts_with('-');
    let magnitude = parse_non_negative_number(first.trim_start_matches('-'))?;
    Some(if negative { -magnitude } else { magnitude })
}

/// A reset value of the `X-` or draft header conventions: epoch milliseconds, epoch seconds
/// or delta seconds by magnitude, or an HTTP-date.
fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let Some(number) = first_number(value) else {
        return parse_http_date(value).map(|date| until(date, now));
    };
    if number < 0.0 {
        return None;
    }
    let epoch_secs = if number >= EPOCH_MILLIS_THRESHOLD {
        number / 1000.0
    } else if number >= EPOCH_SECONDS_THRESHOLD {
        number
    } else {
        return Duration::try_from_secs_f64(number).ok();
    };
    let reset = UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(epoch_secs).ok()?)?;
    Some(until(reset, now))
}

/// Delta seconds, never negative.
fn parse_delta(value: &str) -> Option<Duration> {
    let secs = first_number(value)?;
    if secs < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// Digits with at most one decimal point, nothing else (no sign, no exponent, no `inf`).
fn parse_non_negative_number(value: &str) -> Option<f64> {
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    let points = value.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || points > 1 || digits + points != value.len() {
        return None;
    }
    value.parse().ok()
}

/// Time from `now` until `then`, zero when `then` has passed.
fn until(then: SystemTime, now: SystemTime) -> Duration {
    then.duration_since(now).unwrap_or(Duration::ZERO)
}

fn naive_utc_to_system_time(naive: NaiveDateTime) -> SystemTime {
    let utc = naive.and_utc();
    date_to_system_time(utc.timestamp(), utc.timestamp_subsec_nanos()).unwrap_or(UNIX_EPOCH)
}

fn date_to_system_time(secs: i64, nanos: u32) -> Option<SystemTime> {
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH.checked_add(Duration::new(secs, nanos)),
        // Before 1970: certainly in the past, which is all that matters here.
        Err(_) => Some(UNIX_EPOCH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    /// 1994-11-06T08:49:37Z, the date of the RFC examples.
    fn rfc_example() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        for bad in ["", "-1", "+5", "abc", "1e3", "inf", "NaN", "1.2.3", "12 s"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
        // Absurdly large still means "a long time", and is left to the caller to cap.
        assert!(
            parse_retry_after("99999999999999999999999", now).unwrap()
                > Duration::from_secs(1 << 40)
        );
    }

    #[test]
    fn http_date_forms() {
        let expected = Some(rfc_example());
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(parse_http_date("Sun Nov 06 08:49:37 1994"), expected);
        // A wrong weekday does not discard the date.
        assert_eq!(parse_http_date("Mon, 06 Nov 1994 08:49:37 GMT"), expected);
        // Numeric offset, leniently.
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 09:49:37 +0100"), expected);
        for bad in [
            "",
            "tomorrow",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_http_date_future_and_past() {
        let now = rfc_example() - Duration::from_secs(90);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(90))
        );
        let later = rfc_example() + Duration::from_secs(3600);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_from_header_map() {
        let now = SystemTime::now();
        assert_eq!(
            retry_after(&map(&[("Retry-After", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(&map(&[]), now), None);
        assert_eq!(retry_after(&map(&[("retry-after", "soon")]), now), None);
    }

    #[test]
    fn x_ratelimit_delta_and_epoch_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // Delta seconds.
        assert_eq!(
            rate_limit_wait(
                &map(&[("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "30")]),
                now
            ),
            Some(Duration::from_secs(30))
        );
        // Epoch seconds (GitHub style).
        assert_eq!(
            rate_limit_wait(
                &map(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000045")
                ]),
                now
            ),
            Some(Duration::from_secs(45))
        );
        // Epoch milliseconds.
        assert_eq!(
            rate_limit_wait(
                &map(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000002500")
                ]),
                now
            ),
            Some(Duration::from_millis(2500))
        );
        // Epoch in the past: no wait.
        assert_eq!(
            rate_limit_wait(
                &map(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1600000000")
                ]),
                now
            ),
            Some(Duration::ZERO)
        );
        // Discord-style reset-after wins over the epoch reset.
        assert_eq!(
            rate_limit_wait(
                &map(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000045"),
                    ("x-ratelimit-reset-after", "1.25")
                ]),
                now
            ),
            Some(Duration::from_millis(1250))
        );
        // Twitter-style hyphenated names.
        assert_eq!(
            rate_limit_wait(
                &map(&[
                    ("X-Rate-Limit-Remaining", "0"),
                    ("X-Rate-Limit-Reset", "1700000010")
                ]),
                now
            ),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn only_an_exhausted_quota_waits() {
        let now = SystemTime::now();
        for pairs in [
            &[("x-ratelimit-remaining", "1"), ("x-ratelimit-reset", "30")][..],
            &[
                ("x-rate-limit-remaining", "99"),
                ("x-rate-limit-reset", "30"),
            ],
            &[("ratelimit-remaining", "5"), ("ratelimit-reset", "30")],
            &[("ratelimit", "\"default\";r=3;t=30")],
            &[("ratelimit", "limit=100, remaining=50, reset=30")],
            // Exhausted but no reset time: nothing to say.
            &[("x-ratelimit-remaining", "0")],
            &[("x-ratelimit-reset", "30")],
            &[],
        ] {
            assert_eq!(rate_limit_wait(&map(pairs), now), None, "{pairs:?}");
        }
    }

    #[test]
    fn ietf_draft_separate_fields() {
        let now = SystemTime::now();
        assert_eq!(
            rate_limit_wait(
                &map(&[
                    ("RateLimit-Limit", "100"),
                    ("RateLimit-Remaining", "0"),
                    ("RateLimit-Reset", "12")
                ]),
                now
            ),
            Some(Duration::from_secs(12))
        );
        // Older drafts allowed parameters after the number.
        assert_eq!(
            rate_limit_wait(
                &map(&[("ratelimit-remaining", "0;w=60"), ("ratelimit-reset", "12")]),
                now
            ),
            Some(Duration::from_secs(12))
        );
    }

    #[test]
    fn ietf_structured_field() {
        let now = SystemTime::now();
        assert_eq!(
            rate_limit_wait(&map(&[("RateLimit", "\"default\";r=0;t=30")]), now),
            Some(Duration::from_secs(30))
        );
        // Several policies: only exhausted ones count, the longest wait wins.
        assert_eq!(
            rate_limit_wait(
                &map(&[(
                    "ratelimit",
                    "\"day\";r=100;t=80000, \"min\";r=0;t=20, \"burst\";r=0;t=5"
                )]),
                now
            ),
            Some(Duration::from_secs(20))
        );
        // No `t`: fall back to the window of the same policy.
        assert_eq!(
            rate_limit_wait(
                &map(&[
                    ("ratelimit", "\"min\";r=0"),
                    (
                        "ratelimit-policy",
                        "\"hour\";q=1000;w=3600, \"min\";q=10;w=60"
                    )
                ]),
                now
            ),
            Some(Duration::from_secs(60))
        );
        // A quoted name with separators inside it.
        assert_eq!(
            rate_limit_wait(&map(&[("ratelimit", "\"a,b;c\";r=0;t=7")]), now),
            Some(Duration::from_secs(7))
        );
        // Draft -07 dictionary form.
        assert_eq!(
            rate_limit_wait(
                &map(&[("RateLimit", "limit=100, remaining=0, reset=30")]),
                now
            ),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn the_longest_of_several_conventions_wins() {
        let now = SystemTime::now();
        assert_eq!(
            rate_limit_wait(
                &map(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "10"),
                    ("ratelimit", "\"default\";r=0;t=40"),
                ]),
                now
            ),
            Some(Duration::from_secs(40))
        );
    }
}
