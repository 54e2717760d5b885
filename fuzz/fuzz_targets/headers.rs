//! Link headers (RFC 8288), Retry-After, HTTP dates and rate-limit headers from arbitrary
//! text: parsed or ignored, never a panic.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use siphon_connect::pagination::parse_links;
use siphon_connect::resilience::headers::{
    parse_http_date, parse_retry_after, rate_limit_wait, retry_after,
};

const NAMES: &[&str] = &[
    "retry-after",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-limit",
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-remaining",
    "ratelimit-reset",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_links(&text);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let _ = parse_retry_after(&text, now);
    let _ = parse_http_date(&text);
    let mut headers = HeaderMap::new();
    for (i, line) in text.lines().enumerate() {
        if let Ok(value) = HeaderValue::from_str(line) {
            headers.append(HeaderName::from_static(NAMES[i % NAMES.len()]), value);
        }
    }
    let _ = retry_after(&headers, now);
    let _ = rate_limit_wait(&headers, now);
});
