//! `siphon check`: every seed example is accepted, and mistakes are named with file, line, statement,
//! option and a suggestion.

use crate::harness::{siphon, sql_blocks, write_file};

const SEED_000: &str = include_str!("../../../shared/seeds/000_fb54a79568d4ac55.txt");
const SEED_001: &str = include_str!("../../../shared/seeds/001_3f87dde936a84d49.txt");

const ENV: &[(&str, &str)] = &[
    ("API_TOKEN", "t0ken-value"),
    ("API_PASSWORD", "pw-value"),
    ("BEARER_TOKEN", "bearer-value"),
    ("API_KEY", "key-value"),
    ("CLIENT_ID", "id"),
    ("CLIENT_SECRET", "secret-value"),
];

#[test]
fn seed_000_examples_all_load() {
    let blocks = sql_blocks(SEED_000);
    assert!(blocks.len() >= 20, "found {} blocks", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    // The first block declares `http_api`, which later blocks use. The use-case tables name
    // connections the document never declares; the test declares them (only hosts change).
    let prelude = format!(
        "{}\nCREATE CONNECTION weather_api FROM polling_http_source WITH (endpoint = 'https://api.weather.com/', interval_ms = 300000);
         CREATE CONNECTION stock_api FROM polling_http_source WITH (endpoint = 'https://api.stocks.com/', interval_ms = 60000);
         CREATE CONNECTION github_api FROM polling_http_source WITH (endpoint = 'https://api.github.com/', interval_ms = 3600000);\n",
        blocks[0]
    );
    let mut accepted = 0;
    for (i, block) in blocks.iter().enumerate() {
        let text = if i == 0 {
            block.clone()
        } else {
            format!("{prelude}\n{block}")
        };
        let file = write_file(dir.path(), &format!("block{i}.sql"), &text);
        let out = siphon(&["check", file.to_str().unwrap()], ENV);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "block {i} was rejected:\n{block}\n{stderr}"
        );
        accepted += 1;
    }
    assert!(accepted >= 22, "only {accepted} blocks accepted");
}

#[test]
fn seed_001_arroyo_table_loads() {
    let dir = tempfile::tempdir().unwrap();
    let start = SEED_001.find("CREATE TABLE").unwrap();
    let file = write_file(dir.path(), "arroyo.sql", &SEED_001[start..]);
    let out = siphon(&["check", file.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 table(s) (1 polling"));
}

#[test]
fn a_typo_is_rejected_with_place_and_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "typo.sql",
        "-- line 1\nCREATE TABLE ok (a INT);\n\nCREATE TABLE t (a INT) WITH (\n  connector = 'polling_http',\n  endpiont = 'http://127.0.0.1:1/',\n  intervl_ms = 10\n);\n",
    );
    let out = siphon(&["check", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let path = file.to_str().unwrap();
    assert!(
        err.contains(&format!("{path}:6:3: statement 2 (CREATE TABLE t): option `endpiont`: unknown option `endpiont`; did you mean `endpoint`?")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{path}:7:3:")) && err.contains("did you mean `interval_ms`?"),
        "{err}"
    );
}

#[test]
fn bad_values_and_syntax_errors_name_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "CREATE TABLE t (a INT) WITH (connector = 'polling_http', endpoint = 'http://h/', method = 'FETCH');",
            "option `method`",
        ),
        (
            "CREATE TABLE t (a INT) WITH (connector = 'polling_http', endpoint = 'http://h/', interval_ms = 'soon');",
            "option `interval_ms`",
        ),
        (
            "CREATE TABLE t (a INT) WITH (connector = 'polling_http', endpoint = 'http://h/', json_path = '$[');",
            "option `json_path`",
        ),
        (
            "CREATE TABLE t (a INT) WITH (connector = 'pollin_http', endpoint = 'http://h/');",
            "did you mean `polling_http`?",
        ),
        ("CREATE TABLE t (a WIBBLE);", "WIBBLE"),
        (
            "CREATE TABLE t (a INT) WITH (connector = 'polling_http', connection = 'nope');",
            "unknown connection `nope`",
        ),
        (
            "CRATE TABLE t (a INT);",
            "bad6.sql:1:1: unknown statement `CRATE`: expected CREATE, DROP, SELECT or WITH, did you mean `CREATE`?",
        ),
        (
            "CREATE TABLE t (a INT) WITH (connector = 'polling_http', endpoint = 'http://h/', format = 'raw');\nCREATE TABLE u (a INT, b INT) WITH (connector = 'polling_http', endpoint = 'http://h/', format = 'raw');",
            "option `format`",
        ),
    ];
    for (i, (sql, expected)) in cases.iter().enumerate() {
        let file = write_file(dir.path(), &format!("bad{i}.sql"), sql);
        let out = siphon(&["check", file.to_str().unwrap()], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i} accepted: {sql}");
        assert!(
            err.contains(expected),
            "case {i}: expected `{expected}` in:\n{err}"
        );
        assert!(
            err.contains(file.to_str().unwrap()),
            "case {i} does not name the file: {err}"
        );
    }
    let out = siphon(&["check", "/nonexistent/p.sql"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
