//! jq transform steps: arbitrary step specs compile or fail, and a compiled transform
//! applied to an arbitrary record returns records or an error, never a panic or a hang
//! the fuzzer's timeout would catch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use siphon_connect::transform::{Transform, parse_steps};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // First line: the steps as the `transforms` option writes them; the rest: a record.
    let (steps, record) = text.split_once('\n').unwrap_or((&text, "{}"));
    let Ok(specs) = parse_steps(steps) else {
        return;
    };
    let Ok(transform) = Transform::compile(&specs) else {
        return;
    };
    let _ = transform.apply(record.as_bytes());
});
