//! CSV bodies (`format = 'csv'`): the `csv` crate splits the body into rows (RFC 4180
//! quoting: quoted delimiters, doubled quotes, line breaks inside quotes; CRLF or LF line
//! ends; a final line end or none), and every field goes to its column as text, through
//! the same conversion and dead-letter rules as JSON. The rules this module adds:
//!
//! * `csv_header = true`: the first row names the fields (names trimmed; a UTF-8 BOM
//!   before it is dropped) and fields match columns by name as JSON members do (exact
//!   name, else ignoring case; a repeated name keeps its last field). `csv_header =
//!   false`: the fields are the table's columns in order.
//! * An empty unquoted field is NULL. An empty quoted field (`""`) is the empty string in
//!   a TEXT column and NULL in every other type (a number cannot be empty).
//! * A JSON column keeps a field that is JSON text as that JSON (`{"a":1}`, `[1]`, `42`,
//!   `true`), makes any other text a JSON string, and dead-letters a field that starts
//!   with `{` or `[` but is not valid JSON.
//! * A row with fewer fields than the header (or the table, headerless) has NULL in the
//!   missing ones; a row with more is a dead letter (`line 4: 5 fields, header has 3`),
//!   since its values can no longer be trusted to sit in the right columns.
//! * A row that is not valid UTF-8 is a dead letter; the other rows are kept. Lines that
//!   are empty or hold only whitespace are skipped; an empty body is zero rows.
//!
//! Dead letters name the 1-based line the row starts on and carry the row's text.

use ::csv::{ByteRecord, ReaderBuilder};

use super::page::{Origin, PageSink, TextValue, quote_field};
use super::record::FieldIndex;
use super::{DecodeError, UTF8_BOM};
use crate::schema::{ColumnType, RecordSchema};

/// Where each column's field sits in a row.
struct Layout {
    /// Column `i`'s field position, if the header (or the table) has one.
    positions: Vec<Option<usize>>,
    /// Column `i`'s field name as the header spells it (headerless: the column's name).
    keys: Vec<String>,
    /// Every field name, by position, for messages about fields no column takes.
    names: Vec<String>,
    /// The most fields a row may have.
    width: usize,
    /// Whether `width` comes from a header (for the message of a too-long row).
    from_header: bool,
}

impl Layout {
    /// Fields by position: the table's columns in order.
    fn positional(schema: &RecordSchema) -> Self {
        let names: Vec<String> = schema.columns().iter().map(|c| c.name.clone()).collect();
        Layout {
            positions: (0..names.len()).map(Some).collect(),
            keys: names.clone(),
            width: names.len(),
            names,
            from_header: false,
        }
    }

    /// Fields by the names of a header row.
    fn from_header(header: &ByteRecord, index: &FieldIndex) -> Self {
        let names: Vec<String> = header
            .iter()
            .map(|name| String::from_utf8_lossy(name).trim().to_string())
            .collect();
        let mut positions = vec![None; index.len()];
        let mut hint = 0;
        for (position, name) in names.iter().enumerate() {
            index.assign(name, position, &mut hint, &mut positions);
        }
        let keys = positions
            .iter()
            .map(|p| p.and_then(|p| names.get(p)).cloned().unwrap_or_default())
            .collect();
        Layout {
            positions,
            keys,
            width: names.len(),
            names,
            from_header: true,
        }
    }
}

/// Decodes a CSV body into `sink`. Only a failure of the CSV reader itself (which does
/// not happen on in-memory input with flexible rows) is a page error.
pub(crate) fn decode(
    body: &[u8],
    header: bool,
    delimiter: u8,
    schema: &RecordSchema,
    index: &FieldIndex,
    sink: &mut PageSink<'_, '_>,
) -> Result<(), DecodeError> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(body);
    let text_columns: Vec<bool> = schema
        .columns()
        .iter()
        .map(|c| c.ty == ColumnType::Text)
        .collect();
    let mut layout = (!header).then(|| Layout::positional(schema));
    let mut record = ByteRecord::new();
    let mut lines = LineCounter::default();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(DecodeError::InvalidCsv(e.to_string())),
        }
        if is_blank(&record) {
            continue;
        }
        // The reader's own line numbers miss blank lines and lone CRs, so count here.
        let start = record
            .position()
            .map_or(0, |p| offset(p.byte(), body.len()));
        let start = start
            + body.get(start..).map_or(0, |rest| {
                rest.iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count()
            });
        let end = offset(reader.position().byte(), body.len()).max(start);
        let whole = body.get(start..end).unwrap_or_default();
        let row = whole.strip_suffix(b"\n").unwrap_or(whole);
        let row = row.strip_suffix(b"\r").unwrap_or(row);
        let origin = Origin::Line(lines.line_at(body, start));
        let Some(layout) = &layout else {
            layout = Some(Layout::from_header(&record, index));
            continue;
        };
        let raw = || String::from_utf8_lossy(row).into_owned();
        if record.len() > layout.width {
            let problem = if layout.from_header {
                format!("{} fields, header has {}", record.len(), layout.width)
            } else {
                format!(
                    "{} fields, the table has {} columns",
                    record.len(),
                    layout.width
                )
            };
            sink.text_dead(origin, &problem, &raw());
            continue;
        }
        if let Some(bad) = record.iter().position(|f| std::str::from_utf8(f).is_err()) {
            let problem = match layout.names.get(bad) {
                Some(name) => format!("field {}: not valid UTF-8", quote_field(name)),
                None => "not valid UTF-8".to_string(),
            };
            sink.text_dead(origin, &problem, &raw());
            continue;
        }
        let record = &record;
        sink.text_record(
            origin,
            |i| {
                let position = (*layout.positions.get(i)?)?;
                let field = std::str::from_utf8(record.get(position)?).ok()?;
                let key = layout.keys.get(i).map_or("", String::as_str);
                let value = if !field.is_empty() {
                    TextValue::Text(field)
                } else if text_columns.get(i) == Some(&true)
                    && field_is_quoted(row, delimiter, position)
                {
                    TextValue::Empty
                } else {
                    TextValue::Null
                };
                Some((key, value))
            },
            raw,
        );
    }
    Ok(())
}

/// A byte offset of the reader as an index into `body` (never past its end).
fn offset(byte: u64, len: usize) -> usize {
    usize::try_from(byte).map_or(len, |b| b.min(len))
}

/// A row that is an empty or whitespace-only line.
fn is_blank(record: &ByteRecord) -> bool {
    record.len() == 1
        && record
            .get(0)
            .is_some_and(|f| f.iter().all(u8::is_ascii_whitespace))
}

/// Whether field `field` of `row` (one row's text) starts with a quote, i.e. whether an
/// empty field was written `""`. Follows the reader's quoting: inside a field that starts
/// quoted, every quote toggles quoting (a doubled quote toggles twice).
fn field_is_quoted(row: &[u8], delimiter: u8, field: usize) -> bool {
    let mut current = 0;
    let mut at_start = true;
    let mut quoted = false;
    let mut in_quotes = false;
    for &b in row {
        if at_start {
            if current == field {
                return b == b'"';
            }
            at_start = false;
            quoted = b == b'"';
            in_quotes = quoted;
            if quoted {
                continue;
            }
        }
        if b == b'"' && quoted {
            in_quotes = !in_quotes;
        } else if b == delimiter && !in_quotes {
            current += 1;
            at_start = true;
            quoted = false;
        }
    }
    false
}

/// 1-based line numbers of byte offsets met in increasing order, counted incrementally.
#[derive(Default)]
struct LineCounter {
    counted_to: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_at(&mut self, body: &[u8], offset: usize) -> usize {
        if offset > self.counted_to {
            self.newlines += body
                .get(self.counted_to..offset)
                .map_or(0, |s| s.iter().filter(|&&b| b == b'\n').count());
            self.counted_to = offset;
        }
        self.newlines + 1
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Array, BooleanArray, Date32Array, Decimal128Array, Int64Array, TimestampMicrosecondArray,
    };

    use crate::decode::test_support::{col, column, floats, ints, reasons, strings};
    use crate::decode::{DeadLetter, Format, RecordDecoder};
    use crate::schema::{Column, ColumnType, RecordSchema};

    fn decoder(columns: Vec<Column>, header: bool, delimiter: u8) -> RecordDecoder {
        RecordDecoder::new(
            Arc::new(RecordSchema::new(columns)),
            Format::Csv { header, delimiter },
        )
        .unwrap()
    }

    fn seed() -> RecordDecoder {
        decoder(
            vec![
                col("id", ColumnType::Int),
                col("name", ColumnType::Text),
                col("value", ColumnType::Double),
            ],
            true,
            b',',
        )
    }

    #[test]
    fn seed_table_with_header() {
        let page = seed()
            .decode(b"id,name,value\n1,alpha,1.5\n2,beta,2\n3,gamma,-0.25\n")
            .unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(ints(&page, 0), [Some(1), Some(2), Some(3)]);
        assert_eq!(
            strings(&page, 1),
            [Some("alpha"), Some("beta"), Some("gamma")]
        );
        assert_eq!(floats(&page, 2), [Some(1.5), Some(2.0), Some(-0.25)]);
    }

    #[test]
    fn header_order_case_whitespace_and_extra_columns() {
        let page = seed()
            .decode(b" Value , extra ,NAME, id \n1.5,x,a,7\n")
            .unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(ints(&page, 0), [Some(7)]);
        assert_eq!(strings(&page, 1), [Some("a")]);
        assert_eq!(floats(&page, 2), [Some(1.5)]);
    }

    #[test]
    fn headerless_maps_by_position() {
        let d = decoder(
            vec![
                col("id", ColumnType::Int),
                col("name", ColumnType::Text),
                col("value", ColumnType::Double),
            ],
            false,
            b',',
        );
        let page = d.decode(b"1,a,0.5\n2,b\n3,c,1.5,9\n").unwrap();
        assert_eq!(ints(&page, 0), [Some(1), Some(2)]);
        assert_eq!(strings(&page, 1), [Some("a"), Some("b")]);
        assert_eq!(floats(&page, 2), [Some(0.5), None]);
        assert_eq!(
            reasons(&page),
            ["line 3: 4 fields, the table has 3 columns"]
        );
        assert_eq!(page.dead_letters[0].raw, "3,c,1.5,9");
    }

    #[test]
    fn rfc4180_quoting_crlf_and_no_final_line_end() {
        let body = b"id,name,value\r\n1,\"a, b\",1\r\n2,\"say \"\"hi\"\"\",2\r\n3,\"two\r\nlines\",3\r\n4,x,4";
        let page = seed().decode(body).unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(ints(&page, 0), [Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(
            strings(&page, 1),
            [
                Some("a, b"),
                Some("say \"hi\""),
                Some("two\r\nlines"),
                Some("x")
            ]
        );
    }

    #[test]
    fn bom_before_the_header_is_not_part_of_its_name() {
        let page = seed().decode(b"\xEF\xBB\xBFid,name\n5,z\n").unwrap();
        assert_eq!(ints(&page, 0), [Some(5)]);
        assert_eq!(strings(&page, 1), [Some("z")]);
        let quoted = seed().decode(b"\xEF\xBB\xBF\"id\",name\n6,y\n").unwrap();
        assert_eq!(ints(&quoted, 0), [Some(6)]);
    }

    #[test]
    fn semicolon_and_tab_delimiters() {
        let columns = || vec![col("id", ColumnType::Int), col("price", ColumnType::Text)];
        let semi = decoder(columns(), true, b';')
            .decode(b"id;price\n1;\"3,50\"\n2;4,75\n")
            .unwrap();
        assert_eq!(ints(&semi, 0), [Some(1), Some(2)]);
        assert_eq!(strings(&semi, 1), [Some("3,50"), Some("4,75")]);
        let tab = decoder(columns(), true, b'\t')
            .decode(b"id\tprice\n1\ta b\n2\t,\n")
            .unwrap();
        assert_eq!(ints(&tab, 0), [Some(1), Some(2)]);
        assert_eq!(strings(&tab, 1), [Some("a b"), Some(",")]);
    }

    #[test]
    fn every_type_from_text() {
        let d = decoder(
            vec![
                col("i", ColumnType::Int),
                col("bi", ColumnType::BigInt),
                col("d", ColumnType::Double),
                col(
                    "dec",
                    ColumnType::Decimal {
                        precision: 10,
                        scale: 2,
                    },
                ),
                col("b", ColumnType::Boolean),
                col("ts", ColumnType::Timestamp),
                col("dt", ColumnType::Date),
                col("j", ColumnType::Json),
            ],
            true,
            b',',
        );
        let body = concat!(
            "i,bi,d,dec,b,ts,dt,j\n",
            "42,9007199254740993,1.25,123.45,TRUE,2024-03-15T14:34:56+02:00,2024-03-15,\"{\"\"a\"\": [1, 2]}\"\n",
            " -7 ,1e3,NaN,-0.5,false,2024-03-15 12:34:56,2024-03-15T23:30:00-02:00,plain text\n",
            ",,,,,,,\n",
            "1,2,3,4,true,2024-01-01,2024-01-01,42\n",
        );
        let page = d.decode(body.as_bytes()).unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(ints(&page, 0), [Some(42), Some(-7), None, Some(1)]);
        let bi: Vec<_> = column::<Int64Array>(&page, 1).iter().collect();
        assert_eq!(bi, [Some(9_007_199_254_740_993), Some(1000), None, Some(2)]);
        let d64 = floats(&page, 2);
        assert_eq!(d64[0], Some(1.25));
        assert!(d64[1].is_some_and(f64::is_nan));
        assert_eq!(d64[2], None);
        let dec = column::<Decimal128Array>(&page, 3);
        assert_eq!(dec.value_as_string(0), "123.45");
        assert_eq!(dec.value_as_string(1), "-0.50");
        assert!(dec.is_null(2));
        let b: Vec<_> = column::<BooleanArray>(&page, 4).iter().collect();
        assert_eq!(b, [Some(true), Some(false), None, Some(true)]);
        let ts: Vec<_> = column::<TimestampMicrosecondArray>(&page, 5)
            .iter()
            .collect();
        assert_eq!(
            ts,
            [
                Some(1_710_506_096_000_000),
                Some(1_710_506_096_000_000),
                None,
                Some(1_704_067_200_000_000)
            ]
        );
        let dt: Vec<_> = column::<Date32Array>(&page, 6).iter().collect();
        assert_eq!(dt, [Some(19_797), Some(19_798), None, Some(19_723)]);
        assert_eq!(
            strings(&page, 7),
            [
                Some(r#"{"a":[1,2]}"#),
                Some(r#""plain text""#),
                None,
                Some("42")
            ]
        );
    }

    #[test]
    fn empty_unquoted_is_null_and_empty_quoted_is_empty_text() {
        let d = decoder(
            vec![
                col("a", ColumnType::Text),
                col("b", ColumnType::Int),
                col("c", ColumnType::Text),
                col("j", ColumnType::Json),
            ],
            true,
            b',',
        );
        let page = d
            .decode(b"a,b,c,j\n,,\"\",\"\"\n\"\",\"\",,\n\"x,\"\"\",,\"\",\n")
            .unwrap();
        assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
        assert_eq!(strings(&page, 0), [None, Some(""), Some("x,\"")]);
        assert_eq!(ints(&page, 1), [None, None, None]);
        assert_eq!(strings(&page, 2), [Some(""), None, Some("")]);
        assert_eq!(strings(&page, 3), [None, None, None]);
    }

    #[test]
    fn bad_value_is_a_dead_letter_with_its_line_and_the_others_are_kept() {
        let body = b"id,name,value\n1,a,1.5\n\n2,\"b\nb\",oops\n3,c,3\n";
        let page = seed().decode(body).unwrap();
        assert_eq!(ints(&page, 0), [Some(1), Some(3)]);
        assert_eq!(
            page.dead_letters,
            [DeadLetter {
                reason: r#"line 4: field "value": cannot convert string "oops" to DOUBLE"#.into(),
                raw: "2,\"b\nb\",oops".into(),
                record: 1,
            }]
        );
        // The row after the multi-line one is on line 6.
        let page = seed()
            .decode(b"id,value\r\n1,\"x\r\ny\"\r\nz,2\r\n")
            .unwrap();
        assert_eq!(
            reasons(&page),
            [
                r#"line 2: field "value": cannot convert string "x\r\ny" to DOUBLE"#,
                r#"line 4: field "id": cannot convert string "z" to INT"#
            ]
        );
        assert_eq!(page.dead_letters[1].raw, "z,2");
    }

    #[test]
    fn too_many_fields_is_a_dead_letter_and_too_few_are_null() {
        let page = seed()
            .decode(b"id,name,value\n1,a\n2,b,2,x,y\n3\n")
            .unwrap();
        assert_eq!(ints(&page, 0), [Some(1), Some(3)]);
        assert_eq!(strings(&page, 1), [Some("a"), None]);
        assert_eq!(floats(&page, 2), [None, None]);
        assert_eq!(
            page.dead_letters,
            [DeadLetter {
                reason: "line 3: 5 fields, header has 3".into(),
                raw: "2,b,2,x,y".into(),
                record: 1,
            }]
        );
    }

    #[test]
    fn invalid_utf8_row_is_a_dead_letter() {
        let page = seed()
            .decode(b"id,name\n1,ok\n2,\xff\xfe\n3,\xc3\xa9\n")
            .unwrap();
        assert_eq!(ints(&page, 0), [Some(1), Some(3)]);
        assert_eq!(strings(&page, 1), [Some("ok"), Some("é")]);
        assert_eq!(
            page.dead_letters,
            [DeadLetter {
                reason: r#"line 3: field "name": not valid UTF-8"#.into(),
                raw: "2,\u{fffd}\u{fffd}".into(),
                record: 1,
            }]
        );
    }

    #[test]
    fn empty_bodies_and_header_only_are_zero_rows() {
        for body in [
            &b""[..],
            b"\n",
            b"id,name,value\n",
            b"id,name,value",
            b"\r\n  \r\n",
        ] {
            let page = seed().decode(body).unwrap();
            assert_eq!(page.batch.num_rows(), 0, "{body:?}");
            assert!(page.dead_letters.is_empty());
        }
    }

    #[test]
    fn not_null_columns() {
        let d = decoder(
            vec![
                Column::new("id", ColumnType::Int, false),
                Column::new("name", ColumnType::Text, false),
            ],
            true,
            b',',
        );
        let page = d.decode(b"id,name\n1,\"\"\n,x\n3\n\"\",y\n").unwrap();
        assert_eq!(ints(&page, 0), [Some(1)]);
        assert_eq!(
            reasons(&page),
            [
                r#"line 3: field "id": null for NOT NULL INT column"#,
                r#"line 4: field "name": missing for NOT NULL TEXT column"#,
                r#"line 5: field "id": null for NOT NULL INT column"#,
            ]
        );
    }

    #[test]
    fn invalid_json_in_a_json_column_is_a_dead_letter() {
        let d = decoder(
            vec![col("id", ColumnType::Int), col("j", ColumnType::Json)],
            true,
            b',',
        );
        let page = d
            .decode(b"id,j\n1,\"{\"\"a\"\": }\"\n2,[1 2]\n3,null\n")
            .unwrap();
        assert_eq!(ints(&page, 0), [Some(3)]);
        assert_eq!(strings(&page, 1), [None]);
        assert_eq!(
            reasons(&page),
            [
                r#"line 2: field "j": not valid JSON: expected value at column 7"#,
                r#"line 3: field "j": not valid JSON: expected `,` or `]` at column 4"#,
            ]
        );
    }

    #[test]
    fn hostile_bodies_never_panic() {
        const PIECES: &[&[u8]] = &[
            b",",
            b";",
            b"\t",
            b"\"",
            b"\"\"",
            b"\r",
            b"\n",
            b"\r\n",
            b"a",
            b"1",
            b"1.5",
            b"\xff",
            b"\xc3",
            b"\xEF\xBB\xBF",
            b" ",
            b"{",
            b"}",
            b"[1",
            b"]",
            b"true",
            b"2024-01-01",
            b"id",
            b"name",
            b"value",
            b"null",
            b"\xe2\x82",
        ];
        let decoders = [
            seed(),
            decoder(
                vec![
                    Column::new("id", ColumnType::Int, false),
                    col("j", ColumnType::Json),
                    col("t", ColumnType::Text),
                ],
                false,
                b';',
            ),
        ];
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut body = Vec::new();
            for _ in 0..(next() % 60) {
                body.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            for d in &decoders {
                let _ = d.decode(&body);
            }
        }
    }

    #[test]
    fn quoted_field_detection() {
        use super::field_is_quoted;
        let row = br#"a,"",b"",""""x,"#;
        assert!(!field_is_quoted(row, b',', 0));
        assert!(field_is_quoted(row, b',', 1));
        assert!(!field_is_quoted(row, b',', 2));
        assert!(field_is_quoted(row, b',', 3));
        assert!(!field_is_quoted(row, b',', 4));
        assert!(!field_is_quoted(row, b',', 9));
        assert!(field_is_quoted(br#""a,b","#, b',', 0));
        assert!(!field_is_quoted(br#""a,b","#, b',', 1));
    }
}
