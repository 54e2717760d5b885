//! The pipeline DDL parser and `${NAME}` substitution on arbitrary text: they return
//! errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = siphon_ddl::parse_script(text);
    let _ = siphon_ddl::substitute_env(
        text,
        &|name: &str| (name.len() % 2 == 0).then(|| name.to_string()),
        &["state", "page"],
    );
});
