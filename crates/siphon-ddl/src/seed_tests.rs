//! Tests that the SQL of the seed documents parses as expected.
//!
//! The product must run the seed documents' examples unchanged (SPEC.md), so every SQL
//! block of `seeds/000_*` (concatenated, in order, into `testdata/seed_000.sql`) and the
//! `CREATE TABLE` of `seeds/001_*` (`testdata/seed_001.sql`) are parsed here and checked
//! statement by statement.

use crate::{OptionValue, Pos, Statement, StatementKind, parse_script};

const SEED_000: &str = include_str!("testdata/seed_000.sql");
const SEED_001: &str = include_str!("testdata/seed_001.sql");

fn s(v: &str) -> OptionValue {
    OptionValue::String(v.to_string())
}

fn n(v: &str) -> OptionValue {
    OptionValue::Number(v.to_string())
}

fn b(v: bool) -> OptionValue {
    OptionValue::Bool(v)
}

fn options(st: &Statement) -> Vec<(&str, OptionValue)> {
    let opts = match &st.kind {
        StatementKind::CreateConnection { options, .. }
        | StatementKind::CreateTable { options, .. } => options,
        other => panic!("no options in {other:?}"),
    };
    opts.iter()
        .map(|o| (o.key.as_str(), o.value.clone()))
        .collect()
}

/// (column name, type name, type params) of a table.
fn columns(st: &Statement) -> Vec<(&str, &str, Vec<u32>)> {
    let StatementKind::CreateTable { columns, .. } = &st.kind else {
        panic!("not a table: {:?}", st.kind)
    };
    columns
        .iter()
        .map(|c| {
            (
                c.name.value.as_str(),
                c.type_name.name.as_str(),
                c.type_name.params.clone(),
            )
        })
        .collect()
}

#[test]
fn seed_000_statements_lines_and_names() {
    let stmts = parse_script(SEED_000).unwrap();
    let got: Vec<(u32, String)> = stmts
        .iter()
        .map(|s| (s.pos.line, s.kind.summary()))
        .collect();
    let want: Vec<(u32, String)> = [
        (1, "CREATE CONNECTION http_api"),
        (10, "CREATE TABLE api_data"),
        (22, "CREATE CONNECTION basic_auth_api"),
        (31, "CREATE CONNECTION bearer_api"),
        (39, "CREATE CONNECTION api_key_auth"),
        (48, "CREATE CONNECTION oauth_api"),
        (59, "CREATE TABLE json_api"),
        (67, "CREATE TABLE csv_api"),
        (79, "CREATE TABLE xml_api"),
        (88, "CREATE CONNECTION paginated_api"),
        (98, "CREATE CONNECTION page_api"),
        (108, "CREATE CONNECTION cursor_api"),
        (117, "CREATE CONNECTION link_header_api"),
        (125, "CREATE CONNECTION post_api"),
        (134, "CREATE CONNECTION dynamic_api"),
        (142, "CREATE CONNECTION rate_limited_api"),
        (152, "CREATE TABLE incremental_data"),
        (165, "CREATE TABLE checkpoint_data"),
        (177, "CREATE CONNECTION resilient_api"),
        (187, "CREATE CONNECTION circuit_breaker_api"),
        (196, "SELECT"),
        (200, "SELECT"),
        (207, "SELECT"),
        (215, "CREATE TABLE weather_data"),
        (229, "CREATE TABLE stock_prices"),
        (242, "CREATE TABLE github_stats"),
    ]
    .into_iter()
    .map(|(l, s)| (l, s.to_string()))
    .collect();
    assert_eq!(got, want);
    for st in &stmts {
        if let StatementKind::CreateConnection { connector, .. } = &st.kind {
            assert_eq!(connector.value, "polling_http_source");
        }
    }
}

#[test]
fn seed_000_first_connection_and_table() {
    let stmts = parse_script(SEED_000).unwrap();
    assert_eq!(
        options(&stmts[0]),
        [
            ("endpoint", s("https://api.example.com/data")),
            ("interval_ms", n("60000")),
            ("auth_type", s("bearer")),
            ("token", s("${API_TOKEN}")),
            ("headers", s(r#"{"Accept": "application/json"}"#)),
        ]
    );
    let StatementKind::CreateConnection { options: o, .. } = &stmts[0].kind else {
        panic!()
    };
    assert_eq!(o[3].key_pos, Pos::new(6, 5));
    assert_eq!(o[3].value_pos, Pos::new(6, 13));

    assert_eq!(
        columns(&stmts[1]),
        [
            ("id", "TEXT", vec![]),
            ("timestamp", "TIMESTAMP", vec![]),
            ("value", "FLOAT", vec![]),
            ("metadata", "JSON", vec![]),
        ]
    );
    assert_eq!(
        options(&stmts[1]),
        [
            ("connector", s("polling_http_source")),
            ("connection", s("http_api")),
            ("format", s("json")),
            ("json_path", s("$.data[*]")),
        ]
    );
}

#[test]
fn seed_000_option_values() {
    let stmts = parse_script(SEED_000).unwrap();
    let by_name = |name: &str| {
        stmts
            .iter()
            .find(|s| s.kind.summary().ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(
        options(by_name("oauth_api")),
        [
            ("endpoint", s("https://api.example.com/data")),
            ("interval_ms", n("30000")),
            ("auth_type", s("oauth2")),
            ("client_id", s("${CLIENT_ID}")),
            ("client_secret", s("${CLIENT_SECRET}")),
            ("token_url", s("https://auth.example.com/token")),
            ("scope", s("read:data")),
        ]
    );
    assert_eq!(
        options(by_name("csv_api")),
        [
            ("connector", s("polling_http_source")),
            ("connection", s("http_api")),
            ("format", s("csv")),
            ("csv_header", b(true)),
            ("csv_delimiter", s(",")),
        ]
    );
    assert_eq!(
        options(by_name("post_api"))[3],
        (
            "body",
            s(r#"{"query": "SELECT * FROM data WHERE timestamp > ${last_poll_time}"}"#)
        )
    );
    assert_eq!(
        options(by_name("rate_limited_api")),
        [
            ("endpoint", s("https://api.example.com/data")),
            ("interval_ms", n("1000")),
            ("rate_limit_requests", n("100")),
            ("rate_limit_window_ms", n("60000")),
            ("retry_on_rate_limit", b(true)),
            ("rate_limit_backoff_ms", n("5000")),
        ]
    );
    assert_eq!(
        options(by_name("resilient_api"))[2..],
        [
            ("max_retries", n("3")),
            ("retry_backoff_ms", n("1000")),
            ("retry_multiplier", n("2.0")),
            ("retry_on_status", s("[429, 500, 502, 503, 504]")),
        ]
    );
    assert_eq!(
        options(by_name("circuit_breaker_api"))[2..],
        [
            ("circuit_breaker_enabled", b(true)),
            ("circuit_breaker_threshold", n("5")),
            ("circuit_breaker_timeout_ms", n("60000")),
        ]
    );
    assert_eq!(
        options(by_name("incremental_data"))[2..],
        [
            ("state_type", s("timestamp")),
            ("state_field", s("updated_at")),
            ("state_param", s("since")),
            ("initial_state", s("2024-01-01T00:00:00Z")),
        ]
    );
    assert_eq!(
        columns(by_name("checkpoint_data")),
        [
            ("id", "TEXT", vec![]),
            ("sequence", "BIGINT", vec![]),
            ("data", "JSON", vec![]),
        ]
    );
    assert_eq!(
        columns(by_name("stock_prices")),
        [
            ("symbol", "TEXT", vec![]),
            ("timestamp", "TIMESTAMP", vec![]),
            ("price", "DECIMAL", vec![]),
            ("volume", "BIGINT", vec![]),
        ]
    );
    assert_eq!(
        columns(by_name("github_stats")),
        [
            ("repo", "TEXT", vec![]),
            ("stars", "INTEGER", vec![]),
            ("forks", "INTEGER", vec![]),
            ("issues", "INTEGER", vec![]),
            ("updated_at", "TIMESTAMP", vec![]),
        ]
    );
    assert_eq!(
        options(by_name("weather_data"))[4],
        (
            "query_params",
            s(r#"{"units": "metric", "locations": "NYC,LA,CHI"}"#)
        )
    );
}

#[test]
fn seed_000_queries_keep_their_text() {
    let stmts = parse_script(SEED_000).unwrap();
    let queries: Vec<&str> = stmts
        .iter()
        .filter_map(|s| match &s.kind {
            StatementKind::Query { sql } => Some(sql.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        queries,
        [
            "SELECT * FROM system.connector_status\nWHERE connector_name = 'polling_http_source'",
            "SELECT * FROM system.connector_logs\nWHERE connector = 'polling_http_source'\nAND message LIKE '%HTTP%'\nORDER BY timestamp DESC\nLIMIT 10",
            "SELECT \n    status_code,\n    COUNT(*) as count,\n    AVG(response_time_ms) as avg_time\nFROM system.http_metrics\nWHERE connector = 'polling_http_source'\nGROUP BY status_code",
        ]
    );
}

#[test]
fn seed_001_arroyo_table() {
    let stmts = parse_script(SEED_001).unwrap();
    assert_eq!(stmts.len(), 1);
    assert_eq!(stmts[0].kind.summary(), "CREATE TABLE http_source");
    assert_eq!(columns(&stmts[0]), [("value", "TEXT", vec![])]);
    assert_eq!(
        options(&stmts[0]),
        [
            ("connector", s("polling_http")),
            ("endpoint", s("https://api.example.com/data")),
            ("method", s("GET")),
            ("poll_interval_ms", s("5000")),
            ("emit_behavior", s("changed")),
            ("format", s("json")),
        ]
    );
    let StatementKind::CreateTable { options: o, .. } = &stmts[0].kind else {
        panic!()
    };
    assert_eq!(o[3].key_pos, Pos::new(7, 1));
    assert_eq!(o[3].value_pos, Pos::new(7, 20));
}
