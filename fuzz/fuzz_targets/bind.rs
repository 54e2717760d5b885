//! Binding `polling_http_source` options: arbitrary `key=value` lines (every option name is
//! reachable through a small index) never panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use siphon_connect::config::{OPTION_NAMES, bind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut options = BTreeMap::new();
    options.insert("endpoint".to_string(), "http://127.0.0.1:1/x".to_string());
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        // `#N=value` picks the N-th option name, so the fuzzer need not spell them.
        let key = match key.strip_prefix('#').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => OPTION_NAMES[n % OPTION_NAMES.len()].to_string(),
            None => key.to_string(),
        };
        options.insert(key, value.to_string());
    }
    let _ = bind(&options);
});
