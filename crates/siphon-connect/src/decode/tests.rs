//! End-to-end tests of [`RecordDecoder`]: bodies in, exact batches and dead letters out.

use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, Date32Array, Decimal128Array, Int16Array, Int32Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};

use super::*;
use crate::decode::test_support::{col, floats, reasons};
use crate::schema::{Column, ColumnType};

fn decoder(columns: Vec<Column>, format: Format) -> RecordDecoder {
    RecordDecoder::new(Arc::new(RecordSchema::new(columns)), format).unwrap()
}

fn json(path: Option<&str>) -> Format {
    Format::Json {
        json_path: path.map(str::to_string),
    }
}

fn not_null(name: &str, ty: ColumnType) -> Column {
    Column::new(name, ty, false)
}

fn strings(page: &DecodedPage, i: usize) -> Vec<Option<String>> {
    let array = page
        .batch
        .column(i)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    array.iter().map(|v| v.map(str::to_string)).collect()
}

fn ints64(page: &DecodedPage, i: usize) -> Vec<Option<i64>> {
    let array = page
        .batch
        .column(i)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    array.iter().collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn decoder_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RecordDecoder>();
}

#[test]
fn every_column_type_from_one_record() {
    let d = decoder(
        vec![
            col("t", ColumnType::Text),
            col("si", ColumnType::SmallInt),
            col("i", ColumnType::Int),
            col("bi", ColumnType::BigInt),
            col("d", ColumnType::Double),
            col(
                "dec",
                ColumnType::Decimal {
                    precision: 12,
                    scale: 3,
                },
            ),
            col("b", ColumnType::Boolean),
            col("ts", ColumnType::Timestamp),
            col("dt", ColumnType::Date),
            col("j", ColumnType::Json),
        ],
        json(None),
    );
    let body = r#"{"t": "hi", "si": 7, "i": "42", "bi": 9007199254740993, "d": 1.25,
        "dec": "123456789.1234", "b": "TRUE", "ts": "2024-03-15T14:34:56.5+02:00",
        "dt": "2024-03-15", "j": {"a": [1, 2], "b": null}}"#;
    let page = d.decode(body.as_bytes()).unwrap();
    assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
    assert_eq!(page.batch.num_rows(), 1);
    assert_eq!(page.batch.schema(), d.schema().arrow_schema());
    let b = &page.batch;
    let get = |i: usize| b.column(i).as_any();
    assert_eq!(strings(&page, 0), [s("hi")]);
    assert_eq!(get(1).downcast_ref::<Int16Array>().unwrap().value(0), 7);
    assert_eq!(get(2).downcast_ref::<Int32Array>().unwrap().value(0), 42);
    assert_eq!(ints64(&page, 3), [Some(9_007_199_254_740_993)]);
    assert_eq!(floats(&page, 4), [Some(1.25)]);
    let dec = get(5).downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(dec.value(0), 123_456_789_123);
    assert_eq!(dec.value_as_string(0), "123456789.123");
    assert!(get(6).downcast_ref::<BooleanArray>().unwrap().value(0));
    let ts = get(7).downcast_ref::<TimestampMicrosecondArray>().unwrap();
    assert_eq!(ts.value(0), 1_710_506_096_500_000);
    assert_eq!(ts.timezone(), Some("UTC"));
    assert_eq!(
        get(8).downcast_ref::<Date32Array>().unwrap().value(0),
        19_797
    );
    assert_eq!(strings(&page, 9), [s(r#"{"a":[1,2],"b":null}"#)]);
}

#[test]
fn missing_extra_and_null_fields() {
    let d = decoder(
        vec![col("a", ColumnType::BigInt), col("b", ColumnType::Text)],
        json(None),
    );
    let body = r#"[{"a": 1, "zzz": {"deep": [1]}}, {"b": null, "a": null}, {}, {"b": "x"}]"#;
    let page = d.decode(body.as_bytes()).unwrap();
    assert!(page.dead_letters.is_empty());
    assert_eq!(ints64(&page, 0), [Some(1), None, None, None]);
    assert_eq!(strings(&page, 1), [None, None, None, s("x")]);
}

#[test]
fn null_or_missing_in_not_null_column_is_a_dead_letter() {
    let d = decoder(
        vec![
            not_null("id", ColumnType::BigInt),
            not_null("doc", ColumnType::Json),
        ],
        json(Some("$.rows[*]")),
    );
    let body = r#"{"rows": [{"id": 1, "doc": 2}, {"id": null, "doc": 1}, {"doc": 1},
        {"id": 4, "doc": null}, {"ID": 5, "Doc": [true]}]}"#;
    let page = d.decode(body.as_bytes()).unwrap();
    assert_eq!(ints64(&page, 0), [Some(1), Some(5)]);
    assert_eq!(strings(&page, 1), [s("2"), s("[true]")]);
    assert_eq!(
        reasons(&page),
        [
            r#"record 1: field "id": null for NOT NULL BIGINT column"#,
            r#"record 2: field "id": missing for NOT NULL BIGINT column"#,
            r#"record 3: field "doc": null for NOT NULL JSON column"#,
        ]
    );
    assert_eq!(page.dead_letters[1].raw, r#"{"doc": 1}"#);
}

#[test]
fn case_insensitive_match_only_without_an_exact_key() {
    let d = decoder(
        vec![
            col("userId", ColumnType::BigInt),
            col("name", ColumnType::Text),
        ],
        json(None),
    );
    let body =
        r#"[{"USERID": 1, "Name": "a"}, {"userid": 2, "userId": 3, "NAME": "b", "name": "c"}]"#;
    let page = d.decode(body.as_bytes()).unwrap();
    assert_eq!(ints64(&page, 0), [Some(1), Some(3)]);
    assert_eq!(strings(&page, 1), [s("a"), s("c")]);
}

#[test]
fn conversion_failure_drops_the_whole_record_and_keeps_the_others() {
    let d = decoder(
        vec![
            col("id", ColumnType::BigInt),
            col("value", ColumnType::Double),
        ],
        json(Some("$.data[*]")),
    );
    let body = r#"{"data": [{"id": 1, "value": 1.5}, {"id": 2, "value": 2},
        {"id": 3, "value": "2.5"}, {"id": 4, "value": "abc"}, {"id": 5, "value": -1e-2}]}"#;
    let page = d.decode(body.as_bytes()).unwrap();
    assert_eq!(ints64(&page, 0), [Some(1), Some(2), Some(3), Some(5)]);
    assert_eq!(
        floats(&page, 1),
        [Some(1.5), Some(2.0), Some(2.5), Some(-0.01)]
    );
    assert_eq!(
        page.dead_letters,
        [DeadLetter {
            reason: r#"record 3: field "value": cannot convert string "abc" to DOUBLE"#.into(),
            raw: r#"{"id": 4, "value": "abc"}"#.into(),
            record: 3,
        }]
    );
}

#[test]
fn dead_letter_value_and_raw_are_truncated() {
    let d = decoder(vec![col("n", ColumnType::Int)], json(None));
    let long = "x".repeat(200);
    let filler = "y".repeat(70_000);
    let body = format!(r#"{{"n": "{long}", "pad": "{filler}"}}"#);
    let page = d.decode(body.as_bytes()).unwrap();
    let letter = &page.dead_letters[0];
    assert_eq!(
        letter.reason,
        format!(
            r#"record 0: field "n": cannot convert string "{}"… to INT"#,
            "x".repeat(100)
        )
    );
    assert_eq!(letter.raw.len(), MAX_DEAD_LETTER_RAW);
    assert!(body.starts_with(&letter.raw));
}

#[test]
fn non_object_records_are_dead_letters() {
    let d = decoder(vec![col("a", ColumnType::Int)], json(None));
    let page = d
        .decode(br#"[{"a": 1}, [1, 2], "s", 3, null, {"a": 2}]"#)
        .unwrap();
    assert_eq!(page.batch.num_rows(), 2);
    assert_eq!(
        reasons(&page),
        [
            "record 1: expected a JSON object, got array",
            "record 2: expected a JSON object, got string",
            "record 3: expected a JSON object, got number",
            "record 4: expected a JSON object, got null",
        ]
    );
    assert_eq!(page.dead_letters[0].raw, "[1, 2]");
    let scalar = d.decode(b"42").unwrap();
    assert_eq!(
        reasons(&scalar),
        ["record 0: expected a JSON object, got number"]
    );
}

#[test]
fn json_path_selection() {
    let d = decoder(vec![col("id", ColumnType::BigInt)], json(Some("$.a.b[*]")));
    let page = d
        .decode(br#"{"a": {"b": [{"id": 1}, {"id": 2}], "c": [{"id": 9}]}}"#)
        .unwrap();
    assert_eq!(ints64(&page, 0), [Some(1), Some(2)]);

    // An empty list: zero rows, no error. No list at all: the path is missing (issue 9).
    let page = d.decode(br#"{"a": {"b": []}}"#).unwrap();
    assert_eq!(page.batch.num_rows(), 0);
    assert!(page.dead_letters.is_empty());
    assert!(matches!(
        d.decode(br#"{"x": [{"id": 1}]}"#),
        Err(DecodeError::NothingAtPath { .. })
    ));

    // A selected array is one record (not flattened), so not an object.
    let d = decoder(vec![col("id", ColumnType::BigInt)], json(Some("$.a.b")));
    let page = d.decode(br#"{"a": {"b": [{"id": 1}]}}"#).unwrap();
    assert_eq!(
        reasons(&page),
        ["record 0: expected a JSON object, got array"]
    );

    // `$` on an object is the object itself.
    let d = decoder(vec![col("id", ColumnType::BigInt)], json(Some("$")));
    assert_eq!(ints64(&d.decode(br#"{"id": 3}"#).unwrap(), 0), [Some(3)]);
}

#[test]
fn filter_expression_goes_through_the_general_path() {
    let d = decoder(
        vec![
            col("id", ColumnType::BigInt),
            col("price", ColumnType::Text),
        ],
        json(Some("$.items[?@.price > 2]")),
    );
    let body = br#"{"items": [{"id": 1, "price": 1.5}, {"id": 2, "price": 2.50}, {"id": 3, "price": 30}]}"#;
    let page = d.decode(body).unwrap();
    assert_eq!(ints64(&page, 0), [Some(2), Some(3)]);
    // The literal text, not an f64 round trip.
    assert_eq!(strings(&page, 1), [s("2.50"), s("30")]);

    let recursive = decoder(
        vec![col("id", ColumnType::BigInt)],
        json(Some("$..[?@.id]")),
    );
    let page = recursive
        .decode(br#"{"a": {"id": 1, "b": [{"id": 2}]}, "c": {"id": 3}}"#)
        .unwrap();
    let mut ids = ints64(&page, 0);
    ids.sort();
    assert_eq!(ids, [Some(1), Some(2), Some(3)]);
}

#[test]
fn fast_path_and_general_path_decode_identically() {
    let columns = vec![
        col("id", ColumnType::Text),
        col("ts", ColumnType::Timestamp),
        col("v", ColumnType::Double),
        col(
            "amount",
            ColumnType::Decimal {
                precision: 30,
                scale: 8,
            },
        ),
        col("meta", ColumnType::Json),
        col("n", ColumnType::BigInt),
        col("ok", ColumnType::Boolean),
        not_null("label", ColumnType::Text),
    ];
    let body = r#"{"page": 1, "data": [
        {"id": "a", "ts": "2024-01-01T00:00:00Z", "v": 1.10, "amount": 12345678901234567890.12345678,
         "meta": { "z": 1, "a": [ 1 , 2 ] }, "n": 1, "ok": true, "label": "x"},
        {"id": "b", "ts": 1700000000123, "v": "nope", "label": "y"},
        {"ID": "c", "Ts": "2024-01-01 10:00:00", "V": 3, "meta": "str", "ok": "false", "label": "z"},
        {"id": "d", "label": null},
        [1],
        {"id": "e\u00e9", "amount": "1e3", "n": 2.0, "label": "w", "meta": null}
    ]}"#;
    let fast = decoder(columns.clone(), json(Some("$.data[*]")));
    let general = decoder(columns, json(Some("$.data[0:]")));
    let a = fast.decode(body.as_bytes()).unwrap();
    let b = general.decode(body.as_bytes()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.batch.num_rows(), 3);
    assert_eq!(strings(&a, 0), [s("a"), s("c"), s("eé")]);
    assert_eq!(
        strings(&a, 4),
        [s(r#"{"z":1,"a":[1,2]}"#), s(r#""str""#), None]
    );
    let amount = a
        .batch
        .column(3)
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!(amount.value_as_string(0), "12345678901234567890.12345678");
    assert_eq!(amount.value_as_string(2), "1000.00000000");
    assert_eq!(
        reasons(&a),
        [
            r#"record 1: field "v": cannot convert string "nope" to DOUBLE"#,
            r#"record 3: field "label": null for NOT NULL TEXT column"#,
            "record 4: expected a JSON object, got array",
        ]
    );
}

#[test]
fn ndjson_bad_line_in_the_middle() {
    let d = decoder(
        vec![col("id", ColumnType::BigInt), col("v", ColumnType::Text)],
        Format::Ndjson,
    );
    let body = b"{\"id\": 1, \"v\": \"a\"}\r\n\n{\"id\": 2, \"v\": \n[1, 2]\n{\"id\": \"x\"}\n  \n{\"id\": 3}\n\xff\n{\"id\": 4}";
    let page = d.decode(body).unwrap();
    assert_eq!(ints64(&page, 0), [Some(1), Some(3), Some(4)]);
    assert_eq!(strings(&page, 1), [s("a"), None, None]);
    assert_eq!(
        reasons(&page),
        [
            "line 3: not valid JSON: EOF while parsing a value at column 14",
            "line 4: expected a JSON object, got array",
            r#"line 5: field "id": cannot convert string "x" to BIGINT"#,
            "line 8: not valid UTF-8",
        ]
    );
    assert_eq!(page.dead_letters[0].raw, "{\"id\": 2, \"v\":");
    assert_eq!(page.dead_letters[3].raw, "\u{fffd}");
}

/// Issue 9, point 7: an empty or whitespace-only body is zero records in every format (it
/// used to be a decode error for JSON); it is a listing only where an empty body is how
/// the format writes zero records.
#[test]
fn empty_body_is_zero_records_in_every_format() {
    let one = || vec![col("a", ColumnType::Text)];
    let cases = [
        (json(None), false),
        (json(Some("$[*]")), false),
        (json(Some("$.data[*]")), false),
        (Format::Ndjson, true),
        (
            Format::Csv {
                header: true,
                delimiter: b',',
            },
            false,
        ),
        (
            Format::Csv {
                header: false,
                delimiter: b',',
            },
            true,
        ),
        (
            Format::Xml {
                root_path: "/r/item".into(),
            },
            false,
        ),
        (Format::Raw, false),
    ];
    for (format, listing) in cases {
        let d = decoder(one(), format.clone());
        for body in [&b""[..], b" \n\t\r\n", b"\xEF\xBB\xBF \n"] {
            let page = d
                .decode(body)
                .unwrap_or_else(|e| panic!("{format:?} {body:?}: {e}"));
            assert_eq!(page.records(), 0, "{format:?} {body:?}");
            assert_eq!(page.listing, listing, "{format:?} {body:?}");
        }
    }
}

/// Issue 9, point 1: a `json_path` that matches nothing (an error body) is not zero
/// records; one that finds its list empty is.
#[test]
fn json_path_missing_is_an_error_and_an_empty_list_is_zero_records() {
    let cols = || vec![col("id", ColumnType::BigInt)];
    let missing = |path: &str, body: &str| {
        let err = decoder(cols(), json(Some(path)))
            .decode(body.as_bytes())
            .unwrap_err();
        match &err {
            DecodeError::NothingAtPath { option, path: p } => {
                assert_eq!((*option, p.as_str()), ("json_path", path));
            }
            other => panic!("{path} over {body}: {other:?}"),
        }
        err.to_string()
    };
    let empty = |path: &str, body: &str| {
        let page = decoder(cols(), json(Some(path)))
            .decode(body.as_bytes())
            .unwrap_or_else(|e| panic!("{path} over {body}: {e}"));
        assert_eq!(page.records(), 0, "{path} over {body}");
        assert!(page.listing);
    };
    let message = missing("$.data[*]", r#"{"error": "rate limited"}"#);
    assert!(
        message.contains("json_path `$.data[*]` matches nothing")
            && message.contains("json_path_missing = 'empty'"),
        "{message}"
    );
    for (path, body) in [
        ("$.data[*]", r#"{"data": null}"#),
        ("$.data[*]", r#"{"data": 5}"#),
        ("$.data.items[*]", r#"{"data": {}}"#),
        ("$.data", r#"{"error": "x"}"#),
        ("$..id", r#"{"error": "x"}"#),
        ("$.data[?@.id > 1]", r#"{"error": "x"}"#),
        ("$['data'][*]", r#"{"error": "x"}"#),
        ("$.data[*]", r#"[]"#),
    ] {
        missing(path, body);
    }
    for (path, body) in [
        ("$.data[*]", r#"{"data": []}"#),
        ("$.data.*", r#"{"data": {}}"#),
        ("$.data[*]", r#"{"data": {}}"#),
        ("$['data'][*]", r#"{"data": []}"#),
        ("$.data[?@.id > 1]", r#"{"data": [{"id": 1}]}"#),
        ("$.data[0]", r#"{"data": []}"#),
        ("$.data[1:]", r#"{"data": [{"id": 1}]}"#),
        ("$.a.b[*]", r#"{"a": {"b": []}}"#),
        ("$..items[*]", r#"{"x": {"items": []}}"#),
        ("$[*]", "[]"),
        ("$.*", "{}"),
    ] {
        empty(path, body);
    }
    // No json_path: the body is the list.
    let whole = decoder(cols(), json(None));
    assert_eq!(whole.decode(b"[]").unwrap().records(), 0);
    // A record that is no object is a dead letter, not a missing path.
    let page = decoder(cols(), json(Some("$.data")))
        .decode(br#"{"data": 7}"#)
        .unwrap();
    assert_eq!(page.dead_letters.len(), 1);
}

#[test]
fn xml_root_path_missing_is_an_error_and_an_empty_container_zero_records() {
    let d = |path: &str| {
        decoder(
            vec![col("id", ColumnType::BigInt)],
            Format::Xml {
                root_path: path.into(),
            },
        )
    };
    for (path, body) in [
        ("/response/items/item", "<response><items/></response>"),
        (
            "/response/items/item",
            "<response><items>\n</items></response>",
        ),
        ("/feed//entry", "<feed><x/></feed>"),
        ("/r/*/item", "<r><a></a></r>"),
    ] {
        let page = d(path)
            .decode(body.as_bytes())
            .unwrap_or_else(|e| panic!("{path} over {body}: {e}"));
        assert_eq!(page.records(), 0);
    }
    for (path, body) in [
        ("/response/items/item", "<error>rate limited</error>"),
        ("/response/items/item", "<response><other/></response>"),
        ("//item", "<response><items/></response>"),
        (
            "/response/items/item",
            "<?xml version=\"1.0\"?><!-- nothing -->",
        ),
    ] {
        let err = d(path).decode(body.as_bytes()).unwrap_err();
        assert!(
            matches!(
                &err,
                DecodeError::NothingAtPath {
                    option: "xml_root_path",
                    ..
                }
            ),
            "{path} over {body}: {err:?}"
        );
    }
}

#[test]
fn invalid_json_page_is_an_error() {
    let d = decoder(vec![col("a", ColumnType::Int)], json(Some("$.data[*]")));
    let err = d
        .decode(b"{\"data\": [{\"a\": 1},\n {\"a\": }]}")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "body is not valid JSON: expected value at line 2 column 8"
    );
    let d = decoder(vec![col("a", ColumnType::Int)], json(None));
    assert!(matches!(
        d.decode(b"<html>").unwrap_err(),
        DecodeError::InvalidJson(m) if m == "expected value at line 1 column 1"
    ));
}

#[test]
fn utf8_bom_is_skipped() {
    let d = decoder(vec![col("a", ColumnType::Int)], json(None));
    let page = d.decode(b"\xEF\xBB\xBF{\"a\": 1}").unwrap();
    assert_eq!(page.batch.num_rows(), 1);
}

#[test]
fn raw_format() {
    let text = decoder(vec![col("body", ColumnType::Text)], Format::Raw);
    let page = text.decode(b"hello \xff world").unwrap();
    assert_eq!(strings(&page, 0), [s("hello \u{fffd} world")]);
    // An empty body is zero records, not one empty text (issue 9, point 7).
    assert_eq!(text.decode(b"").unwrap().records(), 0);

    let doc = decoder(vec![col("doc", ColumnType::Json)], Format::Raw);
    let page = doc.decode(b" { \"a\" : [1, 2] }\n").unwrap();
    assert_eq!(strings(&page, 0), [s(r#"{"a":[1,2]}"#)]);
    let page = doc.decode(b"not json").unwrap();
    assert_eq!(page.batch.num_rows(), 0);
    assert_eq!(
        page.dead_letters,
        [DeadLetter {
            reason: r#"record 0: column "doc": body is not valid JSON: expected ident at line 1 column 2"#
                .into(),
            raw: "not json".into(),
 record: 0,
}]
    );
}

#[test]
fn config_errors() {
    let schema = |columns| Arc::new(RecordSchema::new(columns));
    let err = RecordDecoder::new(
        schema(vec![col("a", ColumnType::Int)]),
        json(Some("$.data[?")),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid json_path '$.data[?': "),
        "{err}"
    );
    let err = RecordDecoder::new(schema(vec![col("a", ColumnType::Int)]), Format::Raw).unwrap_err();
    assert_eq!(
        err.to_string(),
        "format 'raw' needs exactly one column of type TEXT or JSON, the table has one column of type INT"
    );
    let err = RecordDecoder::new(
        schema(vec![col("a", ColumnType::Text), col("b", ColumnType::Text)]),
        Format::Raw,
    )
    .unwrap_err();
    assert_eq!(
        err,
        DecoderConfigError::RawNeedsOneTextColumn {
            found: "2 columns".into()
        }
    );
    let err = RecordDecoder::new(
        schema(vec![col(
            "d",
            ColumnType::Decimal {
                precision: 40,
                scale: 2,
            },
        )]),
        Format::Ndjson,
    )
    .unwrap_err();
    assert!(matches!(err, DecoderConfigError::InvalidDecimal { .. }));
    let err = RecordDecoder::new(
        schema(vec![col("a", ColumnType::Int), col("a", ColumnType::Text)]),
        Format::Ndjson,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "column \"a\" is declared twice");
}

#[test]
fn decimal_precision_and_overflow() {
    let d = decoder(
        vec![col(
            "p",
            ColumnType::Decimal {
                precision: 5,
                scale: 2,
            },
        )],
        Format::Ndjson,
    );
    let body = "{\"p\": 999.99}\n{\"p\": \"-1.5\"}\n{\"p\": 1000}\n{\"p\": 0.001}\n{\"p\": true}";
    let page = d.decode(body.as_bytes()).unwrap();
    let values = page
        .batch
        .column(0)
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!(
        values.iter().collect::<Vec<_>>(),
        [Some(99_999), Some(-150), Some(0)]
    );
    assert_eq!(
        reasons(&page),
        [
            r#"line 3: field "p": cannot convert number 1000 to DECIMAL(5,2) (out of range)"#,
            r#"line 5: field "p": cannot convert boolean true to DECIMAL(5,2)"#,
        ]
    );
}

#[test]
fn timestamps_normalised_to_utc_and_epoch_units_guessed() {
    let d = decoder(vec![col("ts", ColumnType::Timestamp)], json(None));
    let body = r#"[{"ts": "2024-03-15T12:34:56Z"}, {"ts": "2024-03-15T08:34:56-04:00"},
        {"ts": "2024-03-15 12:34:56"}, {"ts": 1710506096}, {"ts": 1710506096000},
        {"ts": 1710506096000000}, {"ts": 1710506096000000000}, {"ts": 1710506096.25},
        {"ts": "2024-03-15"}, {"ts": "15 March"}]"#;
    let page = d.decode(body.as_bytes()).unwrap();
    let t = 1_710_506_096_000_000;
    let values = page
        .batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(
        values.iter().collect::<Vec<_>>(),
        [
            Some(t),
            Some(t),
            Some(t),
            Some(t),
            Some(t),
            Some(t),
            Some(t),
            Some(t + 250_000),
            Some(1_710_460_800_000_000)
        ]
    );
    assert_eq!(
        reasons(&page),
        [r#"record 9: field "ts": cannot convert string "15 March" to TIMESTAMP"#]
    );
}

#[test]
fn json_column_is_canonical_text() {
    let d = decoder(vec![col("j", ColumnType::Json)], Format::Ndjson);
    let body = "{\"j\": \"abc\"}\n{\"j\": 1.50}\n{\"j\": [ 1, { \"k\" : \"a b\" } ]}\n{\"j\": false}\n{\"j\": null}";
    let page = d.decode(body.as_bytes()).unwrap();
    assert_eq!(
        strings(&page, 0),
        [
            s("\"abc\""),
            s("1.50"),
            s(r#"[1,{"k":"a b"}]"#),
            s("false"),
            None
        ]
    );
    let field = page.batch.schema().field(0).clone();
    assert_eq!(
        field.metadata().get("siphon.type").map(String::as_str),
        Some("json")
    );
}

#[test]
fn zero_rows_page_has_the_schema() {
    let d = decoder(
        vec![col("a", ColumnType::Int), col("b", ColumnType::Date)],
        json(Some("$.data[*]")),
    );
    let page = d.decode(br#"{"data": []}"#).unwrap();
    assert_eq!(page.batch.num_rows(), 0);
    assert_eq!(page.batch.schema(), d.schema().arrow_schema());
    assert_eq!(page.batch.column(1).len(), 0);
}

#[test]
fn invalid_utf8_json_page_is_an_error_with_position() {
    let d = decoder(vec![col("a", ColumnType::Text)], json(None));
    let err = d.decode(b"{\"a\": \"\xff\"}").unwrap_err();
    assert_eq!(
        err,
        DecodeError::InvalidJson("invalid UTF-8 at line 1 column 8".into())
    );
    let err = d.decode(b"[\n{\"a\": 1},\n \xff]").unwrap_err();
    assert_eq!(
        err,
        DecodeError::InvalidJson("expected value at line 3 column 2".into())
    );
}

#[test]
fn repeated_selected_key_keeps_the_last_value() {
    let d = decoder(vec![col("id", ColumnType::BigInt)], json(Some("$.data[*]")));
    let page = d
        .decode(br#"{"data": [{"id": 1}], "data": [{"id": 2}, {"id": "x"}]}"#)
        .unwrap();
    assert_eq!(ints64(&page, 0), [Some(2)]);
    assert_eq!(
        page.dead_letters,
        [DeadLetter {
            reason: r#"record 1: field "id": cannot convert string "x" to BIGINT"#.into(),
            raw: r#"{"id": "x"}"#.into(),
            record: 1,
        }]
    );
}

#[test]
fn wildcard_over_an_object_selects_its_members() {
    let d = decoder(vec![col("id", ColumnType::BigInt)], json(Some("$.data[*]")));
    let page = d
        .decode(br#"{"data": {"x": {"id": 1}, "y": {"id": 2}}}"#)
        .unwrap();
    let mut ids = ints64(&page, 0);
    ids.sort();
    assert_eq!(ids, [Some(1), Some(2)]);
}

#[test]
fn decoder_is_reused_across_pages() {
    let d = decoder(vec![not_null("id", ColumnType::BigInt)], json(Some("$[*]")));
    let first = d.decode(br#"[{"id": 1}, {"id": null}]"#).unwrap();
    let second = d.decode(br#"[{"id": 2}]"#).unwrap();
    assert_eq!(ints64(&first, 0), [Some(1)]);
    assert_eq!(first.dead_letters.len(), 1);
    assert_eq!(ints64(&second, 0), [Some(2)]);
    assert!(second.dead_letters.is_empty());
}

fn with_paths(columns: Vec<Column>, format: Format, paths: &[(&str, &str)]) -> RecordDecoder {
    decoder(columns, format)
        .with_options(&ColumnOptions {
            field_paths: paths
                .iter()
                .map(|(c, p)| (c.to_string(), p.to_string()))
                .collect(),
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn field_paths_fill_columns_from_nested_values() {
    let paths = [
        ("author_name", "$.author.name"),
        ("author_id", "$.author.id"),
        ("first_tag", "$.tags[0]"),
        ("tags", "$.tags[*]"),
        ("city", "$['customer']['address']['city']"),
    ];
    let columns = || {
        vec![
            not_null("id", ColumnType::BigInt),
            col("author_name", ColumnType::Text),
            col("author_id", ColumnType::BigInt),
            col("first_tag", ColumnType::Text),
            col("tags", ColumnType::Json),
            col("city", ColumnType::Text),
            // A column named like a path's first member still reads that member whole.
            col("author", ColumnType::Json),
        ]
    };
    let body = r#"[
        {"id": 1, "author": {"name": "a1", "id": 10}, "tags": ["x", "y"],
         "customer": {"address": {"city": "Oslo"}}},
        {"id": 2, "author": {"name": "a2"}, "tags": []},
        {"id": 3},
        {"id": 4, "author": {"name": "a4", "id": "not a number"}},
        {"id": 5, "author": "just text", "tags": "nope"}
    ]"#;
    for format in [json(None), Format::Ndjson] {
        let text = match format {
            // The same records, one per line (their text kept as written).
            Format::Ndjson => {
                let records: Vec<&serde_json::value::RawValue> =
                    serde_json::from_str(body).unwrap();
                records
                    .iter()
                    .map(|r| r.get().replace('\n', " ") + "\n")
                    .collect::<String>()
            }
            _ => body.to_string(),
        };
        let d = with_paths(columns(), format, &paths);
        let page = d.decode(text.as_bytes()).unwrap();
        assert_eq!(ints64(&page, 0), [Some(1), Some(2), Some(3), Some(5)]);
        assert_eq!(strings(&page, 1), [s("a1"), s("a2"), None, None]);
        assert_eq!(ints64(&page, 2), [Some(10), None, None, None]);
        assert_eq!(strings(&page, 3), [s("x"), None, None, None]);
        assert_eq!(strings(&page, 4), [s(r#"["x","y"]"#), None, None, None]);
        assert_eq!(strings(&page, 5), [s("Oslo"), None, None, None]);
        assert_eq!(
            strings(&page, 6),
            [
                s(r#"{"name":"a1","id":10}"#),
                s(r#"{"name":"a2"}"#),
                None,
                s(r#""just text""#)
            ]
        );
        assert_eq!(page.dead_letters.len(), 1, "{:?}", page.dead_letters);
        assert!(
            page.dead_letters[0]
                .reason
                .contains(r#"field "$.author.id": cannot convert string "not a number" to BIGINT"#),
            "{}",
            page.dead_letters[0].reason
        );
    }
}

#[test]
fn field_paths_not_null_and_record_fields_of_the_mapped_name() {
    let d = with_paths(
        vec![
            not_null("login", ColumnType::Text),
            col("name", ColumnType::Text),
        ],
        json(None),
        &[("login", "$.user.login")],
    );
    // A record field named like the mapped column is not read: the path decides.
    let page = d
        .decode(br#"[{"user": {"login": "u1"}, "name": "n1"}, {"login": "top", "name": "n2"}]"#)
        .unwrap();
    assert_eq!(strings(&page, 0), [s("u1")]);
    assert_eq!(
        reasons(&page),
        [r#"record 1: field "$.user.login": missing for NOT NULL TEXT column"#]
    );
}

#[test]
fn field_paths_options_are_checked() {
    let build = |columns: Vec<Column>, format: Format, paths: &[(&str, &str)]| {
        decoder(columns, format)
            .with_options(&ColumnOptions {
                field_paths: paths
                    .iter()
                    .map(|(c, p)| (c.to_string(), p.to_string()))
                    .collect(),
                ..Default::default()
            })
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = build(
        vec![col("a", ColumnType::Text)],
        json(None),
        &[("a", "$.x[*]")],
    );
    assert!(e.contains("column `a`") && e.contains("JSON column"), "{e}");
    let e = build(
        vec![col("a", ColumnType::Text)],
        Format::Csv {
            header: true,
            delimiter: b',',
        },
        &[("a", "$.x")],
    );
    assert!(e.contains("json, ndjson and xml"), "{e}");
}

#[test]
fn timestamp_format_and_feed_dates() {
    let d = decoder(
        vec![
            col("a", ColumnType::Timestamp),
            col("b", ColumnType::Timestamp),
            col("d", ColumnType::Date),
        ],
        json(None),
    )
    .with_options(&ColumnOptions {
        timestamp_format: Some(TimestampFormat::parse("%d/%m/%Y %H:%M").unwrap()),
        column_timestamp_formats: vec![(
            "d".to_string(),
            TimestampFormat::parse("%d.%m.%Y").unwrap(),
        )],
        ..Default::default()
    })
    .unwrap();
    let page = d
        .decode(
            br#"[{"a": "12/01/2024 00:00", "b": "Fri, 12 Jan 2024 00:00:00 +0000", "d": "12.01.2024"},
                 {"a": "2024-01-12T00:00:00Z", "b": "Fri, 12 Jan 2024 00:00:00 GMT", "d": "2024-01-12"},
                 {"a": "12/13/2024 00:00"}]"#,
        )
        .unwrap();
    let micros = |i: usize| -> Vec<Option<i64>> {
        page.batch
            .column(i)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap()
            .iter()
            .collect()
    };
    let jan12 = Some(1_705_017_600_000_000);
    assert_eq!(micros(0), [jan12, jan12]);
    assert_eq!(micros(1), [jan12, jan12]);
    let days: Vec<_> = page
        .batch
        .column(2)
        .as_any()
        .downcast_ref::<Date32Array>()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(days, [Some(19_734), Some(19_734)]);
    assert_eq!(page.dead_letters.len(), 1);
    let e = decoder(vec![col("t", ColumnType::Text)], json(None))
        .with_options(&ColumnOptions {
            column_timestamp_formats: vec![("t".into(), TimestampFormat::parse("%Y").unwrap())],
            ..Default::default()
        })
        .map(|_| ())
        .unwrap_err();
    assert!(
        e.to_string().contains("not a TIMESTAMP or DATE column"),
        "{e}"
    );
}
