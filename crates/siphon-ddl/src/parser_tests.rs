//! Unit tests of the parser: every statement form, positions, and error messages.
//!
//! Kept in their own file (a child module of `parser`) because they outweigh the parser.

use super::parse_script;
use crate::ast::{ColumnDef, Ident, ObjectKind, OptionValue, Pos, SqlOption, StatementKind};

fn one(src: &str) -> StatementKind {
    let mut stmts = parse_script(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    assert_eq!(stmts.len(), 1, "{src}");
    stmts.remove(0).kind
}

/// (line, column, message) of the error.
fn err(src: &str) -> (u32, u32, String) {
    match parse_script(src) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => (e.pos.line, e.pos.column, e.message),
    }
}

fn id(value: &str, line: u32, column: u32) -> Ident {
    Ident {
        value: value.to_string(),
        pos: Pos::new(line, column),
        quoted: false,
    }
}

fn opts(kind: &StatementKind) -> &[SqlOption] {
    match kind {
        StatementKind::CreateConnection { options, .. }
        | StatementKind::CreateTable { options, .. } => options,
        other => panic!("no options in {other:?}"),
    }
}

fn cols(kind: &StatementKind) -> &[ColumnDef] {
    match kind {
        StatementKind::CreateTable { columns, .. } => columns,
        other => panic!("not a table: {other:?}"),
    }
}

fn pk(kind: &StatementKind) -> Vec<&str> {
    match kind {
        StatementKind::CreateTable { primary_key, .. } => {
            primary_key.iter().map(|i| i.value.as_str()).collect()
        }
        other => panic!("not a table: {other:?}"),
    }
}

/// (key, value) pairs.
fn kv(kind: &StatementKind) -> Vec<(&str, OptionValue)> {
    opts(kind)
        .iter()
        .map(|o| (o.key.as_str(), o.value.clone()))
        .collect()
}

fn s(v: &str) -> OptionValue {
    OptionValue::String(v.to_string())
}

fn n(v: &str) -> OptionValue {
    OptionValue::Number(v.to_string())
}

// ---- CREATE CONNECTION ----------------------------------------------------------------

#[test]
fn create_connection() {
    let k = one(
        "create connection Http_Api from POLLING_HTTP_SOURCE with (\n  Endpoint = 'https://x/${A}',\n  interval_ms = 60000,\n  retry_multiplier = 2.0,\n  offset = -1,\n  up = +5,\n  csv_header = TRUE,\n  enabled = false,\n)",
    );
    let StatementKind::CreateConnection {
        name,
        connector,
        or_replace,
        if_not_exists,
        ..
    } = &k
    else {
        panic!("{k:?}")
    };
    assert_eq!(name, &id("http_api", 1, 19));
    assert_eq!(connector, &id("polling_http_source", 1, 33));
    assert!(!or_replace && !if_not_exists);
    assert_eq!(
        kv(&k),
        [
            ("endpoint", s("https://x/${A}")),
            ("interval_ms", n("60000")),
            ("retry_multiplier", n("2.0")),
            ("offset", n("-1")),
            ("up", n("+5")),
            ("csv_header", OptionValue::Bool(true)),
            ("enabled", OptionValue::Bool(false)),
        ]
    );
    let o = &opts(&k)[3];
    assert_eq!((o.key_pos, o.value_pos), (Pos::new(5, 3), Pos::new(5, 12)));
}

#[test]
fn create_connection_or_replace_and_if_not_exists() {
    let k = one("CREATE OR REPLACE CONNECTION c FROM polling_http WITH (endpoint = 'u')");
    assert!(matches!(
        k,
        StatementKind::CreateConnection {
            or_replace: true,
            if_not_exists: false,
            ..
        }
    ));
    let k = one("CREATE CONNECTION IF NOT EXISTS c FROM 'polling_http' WITH ()");
    let StatementKind::CreateConnection {
        if_not_exists,
        connector,
        options,
        ..
    } = &k
    else {
        panic!()
    };
    assert!(*if_not_exists);
    assert_eq!(connector.value, "polling_http");
    assert!(connector.quoted);
    assert!(options.is_empty());
}

#[test]
fn option_keys_may_be_quoted_strings_or_dotted() {
    let k = one(
        r#"CREATE TABLE t (a TEXT) WITH ("Format" = 'json', 'json_path' = '$.data[*]', json.Unstructured = true)"#,
    );
    assert_eq!(
        kv(&k),
        [
            ("format", s("json")),
            ("json_path", s("$.data[*]")),
            ("json.unstructured", OptionValue::Bool(true)),
        ]
    );
}

#[test]
fn option_string_escapes_and_json() {
    let k = one(
        r#"CREATE TABLE t (a TEXT) WITH (body = '{"q": "it''s"}', headers = 'A: b, C: d', empty = '')"#,
    );
    assert_eq!(
        kv(&k),
        [
            ("body", s(r#"{"q": "it's"}"#)),
            ("headers", s("A: b, C: d")),
            ("empty", s("")),
        ]
    );
}

// ---- CREATE TABLE ---------------------------------------------------------------------

#[test]
fn create_table_columns_and_types() {
    let k = one(
        "CREATE TABLE Prices (\n  Symbol varchar(16) NOT NULL,\n  \"MixedCase\" text NULL,\n  price decimal(10, 2),\n  ratio double precision,\n  label character varying(255),\n  ts timestamp with time zone,\n  n int unsigned,\n  doc JSON\n)",
    );
    let c = cols(&k);
    let summary: Vec<(&str, bool, &str, Vec<u32>, bool)> = c
        .iter()
        .map(|c| {
            (
                c.name.value.as_str(),
                c.name.quoted,
                c.type_name.name.as_str(),
                c.type_name.params.clone(),
                c.not_null,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("symbol", false, "VARCHAR", vec![16], true),
            ("MixedCase", true, "TEXT", vec![], false),
            ("price", false, "DECIMAL", vec![10, 2], false),
            ("ratio", false, "DOUBLE PRECISION", vec![], false),
            ("label", false, "CHARACTER VARYING", vec![255], false),
            ("ts", false, "TIMESTAMP WITH TIME ZONE", vec![], false),
            ("n", false, "INT UNSIGNED", vec![], false),
            ("doc", false, "JSON", vec![], false),
        ]
    );
    assert_eq!(c[2].type_name.pos, Pos::new(4, 9));
    assert_eq!(c[2].name.pos, Pos::new(4, 3));
    let StatementKind::CreateTable { name, options, .. } = &k else {
        panic!()
    };
    assert_eq!(name, &id("prices", 1, 14));
    assert!(options.is_empty(), "no WITH clause: push-only table");
    assert!(pk(&k).is_empty());
}

#[test]
fn create_table_inline_primary_key() {
    let k = one("CREATE TABLE t (id TEXT PRIMARY KEY, v INT)");
    assert_eq!(pk(&k), ["id"]);
    let c = cols(&k);
    assert!(c[0].primary_key && c[0].not_null);
    assert!(!c[1].primary_key && !c[1].not_null);
    let StatementKind::CreateTable { primary_key, .. } = &k else {
        panic!()
    };
    assert_eq!(primary_key[0].pos, Pos::new(1, 17));
}

#[test]
fn create_table_table_level_primary_key() {
    let k = one(
        "CREATE TABLE t (a TEXT, b INT, c INT, PRIMARY KEY (b, A)) WITH (connector = 'http_input')",
    );
    assert_eq!(pk(&k), ["b", "a"]);
    let c = cols(&k);
    assert_eq!(
        c.iter().map(|c| c.not_null).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert!(c.iter().all(|c| !c.primary_key));
    assert_eq!(kv(&k), [("connector", s("http_input"))]);

    let k = one("CREATE TABLE t (a TEXT, CONSTRAINT pk_t PRIMARY KEY (a),)");
    assert_eq!(pk(&k), ["a"]);
}

#[test]
fn create_table_keyword_like_column_names() {
    let k = one("CREATE TABLE t (timestamp TIMESTAMP, value FLOAT, data JSON, key TEXT)");
    let names: Vec<&str> = cols(&k).iter().map(|c| c.name.value.as_str()).collect();
    assert_eq!(names, ["timestamp", "value", "data", "key"]);
}

#[test]
fn create_table_dotted_and_quoted_names() {
    let k = one(r#"CREATE TABLE IF NOT EXISTS Sch."T" (a INT)"#);
    let StatementKind::CreateTable {
        name,
        if_not_exists,
        ..
    } = &k
    else {
        panic!()
    };
    assert_eq!(name.value, "sch.T");
    assert!(name.quoted);
    assert!(*if_not_exists);
}

// ---- CREATE VIEW ----------------------------------------------------------------------

#[test]
fn create_view_keeps_query_text() {
    let src = "CREATE OR REPLACE VIEW hot AS\n  SELECT a || 'x;y' AS s, b::text -- ; not the end\n  FROM t WHERE c >= 1 /* ; */ ;";
    let stmts = parse_script(src).unwrap();
    let StatementKind::CreateView {
        name,
        query,
        query_pos,
        or_replace,
        if_not_exists,
    } = &stmts[0].kind
    else {
        panic!()
    };
    assert_eq!(name, &id("hot", 1, 24));
    assert_eq!(
        query,
        "SELECT a || 'x;y' AS s, b::text -- ; not the end\n  FROM t WHERE c >= 1"
    );
    assert_eq!(*query_pos, Pos::new(2, 3));
    assert!(*or_replace && !*if_not_exists);
    assert_eq!(
        stmts[0].text,
        "CREATE OR REPLACE VIEW hot AS\n  SELECT a || 'x;y' AS s, b::text -- ; not the end\n  FROM t WHERE c >= 1"
    );
}

#[test]
fn create_view_with_cte() {
    let k = one("create view v as with x as (select 1) select * from x");
    let StatementKind::CreateView { query, .. } = k else {
        panic!()
    };
    assert_eq!(query, "with x as (select 1) select * from x");
}

#[test]
fn create_materialized_view_is_a_view() {
    let k = one("CREATE MATERIALIZED VIEW v AS SELECT a FROM t");
    let StatementKind::CreateView { name, query, .. } = k else {
        panic!()
    };
    assert_eq!(
        (name.value.as_str(), query.as_str()),
        ("v", "SELECT a FROM t")
    );
    let (_, _, message) = err("CREATE MATERIALIZED TABLE t (a INT)");
    assert!(
        message.contains("`VIEW` after `CREATE MATERIALIZED`"),
        "{message}"
    );
}

// ---- DROP -----------------------------------------------------------------------------

#[test]
fn drop_statements() {
    let k = one("DROP TABLE IF EXISTS a, \"B\", system.c");
    let StatementKind::Drop {
        object,
        names,
        if_exists,
    } = &k
    else {
        panic!()
    };
    assert_eq!(*object, ObjectKind::Table);
    assert!(*if_exists);
    assert_eq!(
        names.iter().map(|n| n.value.as_str()).collect::<Vec<_>>(),
        ["a", "B", "system.c"]
    );
    assert_eq!(names[1].pos, Pos::new(1, 25));
    assert!(names[1].quoted);

    assert!(matches!(
        one("drop view v"),
        StatementKind::Drop {
            object: ObjectKind::View,
            if_exists: false,
            ..
        }
    ));
    assert!(matches!(
        one("Drop Connection c;"),
        StatementKind::Drop {
            object: ObjectKind::Connection,
            ..
        }
    ));
}

// ---- queries --------------------------------------------------------------------------

#[test]
fn queries_are_kept_as_text() {
    let stmts = parse_script(
        "select * from system.tables where name = 'a;b';\nWITH x AS (SELECT 1) SELECT * FROM x",
    )
    .unwrap();
    assert_eq!(stmts.len(), 2);
    assert_eq!(
        stmts[0].kind,
        StatementKind::Query {
            sql: "select * from system.tables where name = 'a;b'".into()
        }
    );
    assert_eq!(
        stmts[1].kind,
        StatementKind::Query {
            sql: "WITH x AS (SELECT 1) SELECT * FROM x".into()
        }
    );
    assert_eq!(stmts[1].pos, Pos::new(2, 1));
}

// ---- script structure and positions ---------------------------------------------------

#[test]
fn empty_scripts_and_statements() {
    assert!(parse_script("").unwrap().is_empty());
    assert!(
        parse_script("  \n-- only a comment\n/* and\n another */\n")
            .unwrap()
            .is_empty()
    );
    assert!(parse_script(";;\n;").unwrap().is_empty());
    assert_eq!(parse_script(";;DROP VIEW v;;").unwrap().len(), 1);
}

#[test]
fn positions_on_a_multiline_script() {
    let src = "\u{feff}/* header\n   comment */\nCREATE CONNECTION c FROM polling_http_source\r\nWITH (\r\n  endpoint = 'https://x',\r\n  /* skip */ interval_ms = 5000\r\n);\r\n\r\n-- the table\r\n  CREATE TABLE t (\r\n\tid TEXT\r\n) WITH (connection = 'c');\r\nSELECT 1";
    let stmts = parse_script(src).unwrap();
    assert_eq!(
        stmts.iter().map(|s| s.pos).collect::<Vec<_>>(),
        [Pos::new(3, 1), Pos::new(10, 3), Pos::new(13, 1)]
    );
    let o = opts(&stmts[0].kind);
    assert_eq!(
        o.iter()
            .map(|o| (o.key_pos, o.value_pos))
            .collect::<Vec<_>>(),
        [
            (Pos::new(5, 3), Pos::new(5, 14)),
            (Pos::new(6, 14), Pos::new(6, 28))
        ]
    );
    assert_eq!(cols(&stmts[1].kind)[0].name.pos, Pos::new(11, 2));
    assert_eq!(opts(&stmts[1].kind)[0].key_pos, Pos::new(12, 9));
    assert_eq!(
        stmts[1].text,
        "CREATE TABLE t (\r\n\tid TEXT\r\n) WITH (connection = 'c')"
    );
    assert_eq!(stmts[2].text, "SELECT 1");
    assert_eq!(stmts[0].kind.summary(), "CREATE CONNECTION c");
}

// ---- errors ---------------------------------------------------------------------------

#[test]
fn error_unknown_statement_suggests() {
    assert_eq!(
        err("CREATE TABLE t (a INT);\n  CRATE TABLE u (a INT);"),
        (
            2,
            3,
            "unknown statement `CRATE`: expected CREATE, DROP, SELECT or WITH, did you mean `CREATE`?"
                .into()
        )
    );
    assert_eq!(
        err("FROBNICATE"),
        (
            1,
            1,
            "unknown statement `FROBNICATE`: expected CREATE, DROP, SELECT or WITH".into()
        )
    );
    assert_eq!(
        err("(SELECT 1)"),
        (
            1,
            1,
            "expected a statement (CREATE, DROP, SELECT or WITH), found `(`".into()
        )
    );
}

#[test]
fn error_create_object_kind() {
    assert_eq!(
        err("CREATE TABEL t (a INT)"),
        (
            1,
            8,
            "expected TABLE, VIEW, CONNECTION or SINK after `CREATE`, found `TABEL`, did you mean `TABLE`?"
                .into()
        )
    );
    assert_eq!(
        err("CREATE"),
        (
            1,
            7,
            "expected TABLE, VIEW, CONNECTION or SINK after `CREATE`, found end of input".into()
        )
    );
    assert_eq!(
        err("CREATE OR TABLE t (a INT)"),
        (
            1,
            11,
            "expected `REPLACE` after `CREATE OR`, found `TABLE`".into()
        )
    );
    assert_eq!(
        err("CREATE OR REPLACE TABLE IF NOT EXISTS t (a INT)"),
        (
            1,
            25,
            "`OR REPLACE` and `IF NOT EXISTS` cannot be used together".into()
        )
    );
}

#[test]
fn error_connection_syntax() {
    assert_eq!(
        err("CREATE CONNECTION c FROM polling_http_source (endpoint = 'x');"),
        (
            1,
            46,
            "expected `WITH` after connector name, found `(`".into()
        )
    );
    assert_eq!(
        err("CREATE CONNECTION c WITH (endpoint = 'x');"),
        (
            1,
            21,
            "expected `FROM` and a connector after connection name `c`, found `WITH`".into()
        )
    );
    assert_eq!(
        err("CREATE CONNECTION c FROM polling_http_source;"),
        (
            1,
            45,
            "expected `WITH` after connector name, found `;`".into()
        )
    );
    assert_eq!(
        err("CREATE CONNECTION c FROM x WITH (a = 'b') extra"),
        (
            1,
            43,
            "expected `;` after the WITH options, found `extra`".into()
        )
    );
}

#[test]
fn error_missing_semicolon_between_statements() {
    assert_eq!(
        err("CREATE TABLE a (x INT) WITH (format = 'json')\nCREATE TABLE b (y INT);"),
        (
            2,
            1,
            "expected `;` after the WITH options, found `CREATE`".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE a (x INT)\nCREATE TABLE b (y INT);"),
        (
            2,
            1,
            "expected `;` or `WITH (...)` after the column list, found `CREATE`".into()
        )
    );
}

#[test]
fn error_column_definitions() {
    assert_eq!(
        err("CREATE TABLE t (\n  id TEXT,\n  price\n);"),
        (
            4,
            1,
            "expected a column type after `price`, found `)`".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (price NOT NULL)"),
        (
            1,
            23,
            "expected a column type after `price`, found `NOT`".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT b INT)"),
        (
            1,
            23,
            "expected `,` or `)` after column `a`, found `b`".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t ()"),
        (1, 16, "table `t` needs at least one column".into())
    );
    assert_eq!(
        err("CREATE TABLE t WITH (a = 'b')"),
        (
            1,
            16,
            "expected `(` and a column list after table name `t`, found `WITH`".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT,\n  A TEXT)"),
        (
            2,
            3,
            "duplicate column `a` (first declared on line 1)".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a DECIMAL(10, x))"),
        (
            1,
            31,
            "expected a number in the parameters of DECIMAL, found `x`".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a DECIMAL(1.5))"),
        (
            1,
            27,
            "type parameter of DECIMAL must be a whole number, found `1.5`".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT DEFAULT 0)"),
        (
            1,
            23,
            "column constraint `DEFAULT` is not supported (supported: NOT NULL, NULL, PRIMARY KEY)"
                .into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT NOT NULL NULL)"),
        (
            1,
            32,
            "column `a` cannot be both NULL and NOT NULL/PRIMARY KEY".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT"),
        (
            1,
            22,
            "expected `,` or `)` after column `a`, found end of input".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t AS SELECT 1"),
        (
            1,
            16,
            "CREATE TABLE ... AS SELECT is not supported: use CREATE VIEW name AS SELECT ..."
                .into()
        )
    );
}

#[test]
fn error_primary_keys() {
    assert_eq!(
        err("CREATE TABLE t (\n  id TEXT PRIMARY KEY,\n  v INT,\n  PRIMARY KEY (id)\n)"),
        (
            4,
            3,
            "PRIMARY KEY declared twice: column `id` (line 2) is already declared PRIMARY KEY"
                .into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT PRIMARY KEY, b INT PRIMARY KEY)"),
        (
            1,
            36,
            "columns `a` and `b` are both declared PRIMARY KEY; for a composite key write PRIMARY KEY (a, b) after the columns"
                .into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (user_id INT, PRIMARY KEY (usr_id))"),
        (
            1,
            43,
            "PRIMARY KEY column `usr_id` is not a column of table `t`, did you mean `user_id`?"
                .into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT, PRIMARY KEY (a, a))"),
        (1, 40, "column `a` appears twice in PRIMARY KEY".into())
    );
    assert_eq!(
        err("CREATE TABLE t (a INT, PRIMARY KEY (a), PRIMARY KEY (a))"),
        (1, 41, "PRIMARY KEY declared twice (first on line 1)".into())
    );
    assert_eq!(
        err("CREATE TABLE t (a INT, UNIQUE KEY (a))"),
        (
            1,
            24,
            "only PRIMARY KEY table constraints are supported".into()
        )
    );
}

#[test]
fn error_options() {
    assert_eq!(
        err(
            "CREATE TABLE t (a INT) WITH (\n  endpoint = 'a',\n  format = 'json',\n  ENDPOINT = 'b'\n)"
        ),
        (
            4,
            3,
            "option `endpoint` is given twice (lines 2 and 4)".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT) WITH (format = json)"),
        (
            1,
            39,
            "expected a value for option `format` (a '...' string, a number, TRUE or FALSE), found `json`; quote it as a string: 'json'"
                .into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT) WITH (format 'json')"),
        (
            1,
            37,
            "expected `=` after option `format`, found `'json'`".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT) WITH (a = 'x' b = 'y')"),
        (
            1,
            38,
            "expected `,` or `)` after the value of option `a`, found `b`".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT) WITH (a = )"),
        (
            1,
            34,
            "expected a value for option `a` (a '...' string, a number, TRUE or FALSE), found `)`"
                .into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT) WITH (a = -'x')"),
        (1, 35, "expected a number after `-`, found `'x'`".into())
    );
    assert_eq!(
        err("CREATE TABLE t (a INT) WITH (= 'x')"),
        (1, 30, "expected an option name, found `=`".into())
    );
    assert_eq!(
        err("CREATE TABLE t (a INT) WITH (a = 'x'"),
        (
            1,
            37,
            "expected `,` or `)` after the value of option `a`, found end of input".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE t (a INT) WITH a = 'x'"),
        (1, 29, "expected `(` after `WITH`, found `a`".into())
    );
}

#[test]
fn error_views_and_drops() {
    assert_eq!(
        err("CREATE VIEW v SELECT 1"),
        (
            1,
            15,
            "expected `AS` after view name `v`, found `SELECT`".into()
        )
    );
    assert_eq!(
        err("CREATE VIEW v AS;"),
        (1, 17, "expected a query after `AS`, found `;`".into())
    );
    assert_eq!(
        err("CREATE VIEW v AS SELEC 1"),
        (
            1,
            18,
            "expected a query (SELECT ...) after `AS`, found `SELEC`, did you mean `SELECT`?"
                .into()
        )
    );
    assert_eq!(
        err("DROP TABLES t"),
        (
            1,
            6,
            "expected TABLE, VIEW, CONNECTION or SINK after `DROP`, found `TABLES`, did you mean `TABLE`?"
                .into()
        )
    );
    assert_eq!(
        err("DROP VIEW IF v"),
        (1, 14, "expected `EXISTS` after `IF`, found `v`".into())
    );
    assert_eq!(
        err("DROP TABLE a b"),
        (1, 14, "expected `,` or `;` after `a`, found `b`".into())
    );
    assert_eq!(
        err("DROP TABLE ;"),
        (1, 12, "expected a table name, found `;`".into())
    );
}

#[test]
fn lexer_errors_surface_with_positions() {
    assert_eq!(
        err("CREATE TABLE t (a INT) WITH (\n  endpoint = 'https://x\n);\n"),
        (
            2,
            14,
            "unterminated string starting here (missing closing ')".into()
        )
    );
    assert_eq!(
        err("SELECT 1;\n/* open"),
        (
            2,
            1,
            "unterminated block comment starting here (missing `*/`)".into()
        )
    );
    assert_eq!(
        err("CREATE TABLE \"t (a INT)"),
        (
            1,
            14,
            "unterminated quoted identifier starting here (missing closing \")".into()
        )
    );
}

#[test]
fn parse_error_display() {
    let e = parse_script("DROP TABLE a b").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1, column 14: expected `,` or `;` after `a`, found `b`"
    );
}

#[test]
fn create_sink_names_its_input_and_options() {
    let k = one(
        "CREATE OR REPLACE SINK out_events FROM events WITH (connector = 'nats_jetstream', subject = 'siphon.events')",
    );
    let StatementKind::CreateSink {
        name,
        from,
        options,
        or_replace,
        if_not_exists,
    } = &k
    else {
        panic!("{k:?}")
    };
    assert_eq!(name, &id("out_events", 1, 24));
    assert_eq!(from, &id("events", 1, 40));
    assert!(*or_replace && !*if_not_exists);
    assert_eq!(
        options.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["connector", "subject"]
    );
    assert_eq!(k.summary(), "CREATE SINK out_events");
    assert!(matches!(
        one("drop sink if exists s"),
        StatementKind::Drop {
            object: ObjectKind::Sink,
            if_exists: true,
            ..
        }
    ));
}

#[test]
fn error_sink_syntax() {
    assert_eq!(
        err("CREATE SINK s WITH (connector = 'nats_jetstream')"),
        (
            1,
            15,
            "expected `FROM` and the table or view it publishes after sink name `s`, found `WITH`"
                .into()
        )
    );
    assert_eq!(
        err("CREATE SINK s FROM t (connector = 'x')"),
        (1, 22, "expected `WITH` after `FROM t`, found `(`".into())
    );
    assert_eq!(
        err("CREATE SINKS s FROM t WITH ()").2,
        "expected TABLE, VIEW, CONNECTION or SINK after `CREATE`, found `SINKS`, did you mean `SINK`?"
    );
}
