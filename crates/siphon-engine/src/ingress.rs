//! Pushed records (`POST /v1/tables/{table}/ingress`, `siphon push`): a request body in,
//! the table's rows out, as ordered runs of inserts and deletes.
//!
//! A push is all or nothing: the first record that cannot be read or does not fit the
//! table's columns rejects the whole request, naming the record's 0-based index in the
//! request and the reason. Unlike a poll, a push gets no dead letters: the sender is there
//! to hear the error and send again.
//!
//! Decoding reuses the polling source's decoders (`siphon_connect::decode`), so a pushed
//! value converts exactly as a polled one would. With `update_format=insert_delete` each
//! record is `{"insert": row}` or `{"delete": row}`; consecutive records of one kind are
//! decoded together as one run, and the runs keep the request's order (a delete after an
//! insert of the same key removes it; an insert after a delete brings it back).

use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use serde::Deserialize;
use serde_json::value::RawValue;
use siphon_connect::decode::{DecodedPage, Format, RecordDecoder};
use siphon_connect::schema::{Column, RecordSchema};

use crate::catalog::TableDef;

/// How the body is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushFormat {
    /// `format=json`: NDJSON, or with `array=true` one JSON array of records.
    Json {
        /// One JSON array per request instead of one record per line.
        array: bool,
    },
    /// `format=csv`: RFC 4180 rows, fields in column order unless a header names them.
    Csv {
        /// Whether the first line names the fields.
        header: CsvHeader,
    },
}

/// `csv_header=true|false|auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsvHeader {
    /// The first line is a header.
    Present,
    /// Every line is a record.
    Absent,
    /// The first line is a header when every field of it names a column of the table
    /// (ignoring case, quotes and spaces), each at most once.
    Auto,
}

/// `update_format=raw|insert_delete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateFormat {
    /// Every record is an insert (an upsert in a keyed table).
    Raw,
    /// `{"insert": row}` or `{"delete": row}` per record.
    InsertDelete,
}

/// What a run of records does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// Insert (upsert by key in a keyed table).
    Insert,
    /// Delete (by key in a keyed table; one equal row in a table without a key).
    Delete,
}

/// Consecutive records of one kind, decoded.
#[derive(Debug)]
pub struct Run {
    /// What they do.
    pub kind: RunKind,
    /// Their rows, with the table's columns. The rows of a delete from a keyed table
    /// need only their key columns; the others may be NULL whatever the table says.
    pub batch: RecordBatch,
    /// The request index of its first record (a run's records are consecutive).
    pub first: usize,
}

/// A decoded push.
#[derive(Debug)]
pub struct Parsed {
    /// The runs in request order.
    pub runs: Vec<Run>,
    /// Records in the request.
    pub records: usize,
    /// For CSV: whether the first line was taken as a header.
    pub csv_header: Option<bool>,
}

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The request names no table.
    #[error("unknown table `{0}`")]
    UnknownTable(String),
    /// A record cannot be read or does not fit; nothing of the request is stored.
    #[error("record {record}: {reason}")]
    Record {
        /// 0-based index of the record in the request.
        record: usize,
        /// Why.
        reason: String,
    },
    /// The request as a whole is unusable (bad parameters, a body that is not JSON).
    #[error("{0}")]
    Request(String),
    /// The engine is shutting down; nothing was stored.
    #[error("siphon is shutting down; nothing of this push was stored")]
    ShuttingDown,
    /// The store failed; nothing was stored.
    #[error("{0}")]
    Internal(String),
}

/// The decoders pushes to one table use, built on first use.
#[derive(Default)]
pub struct PushDecoders {
    ndjson: OnceLock<Arc<RecordDecoder>>,
    json: OnceLock<Arc<RecordDecoder>>,
    key_json: OnceLock<Arc<RecordDecoder>>,
    csv_header: OnceLock<Arc<RecordDecoder>>,
    csv_plain: OnceLock<Arc<RecordDecoder>>,
}

impl std::fmt::Debug for PushDecoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushDecoders")
    }
}

fn decoder(
    cell: &OnceLock<Arc<RecordDecoder>>,
    schema: impl FnOnce() -> RecordSchema,
    format: Format,
) -> Result<Arc<RecordDecoder>, PushError> {
    if let Some(d) = cell.get() {
        return Ok(d.clone());
    }
    let built = RecordDecoder::new(Arc::new(schema()), format)
        .map_err(|e| PushError::Internal(format!("building the push decoder: {e}")))?;
    Ok(cell.get_or_init(|| Arc::new(built)).clone())
}

/// `{"insert": ...}` / `{"delete": ...}`.
#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow, default)]
    insert: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delete: Option<&'a RawValue>,
    #[serde(borrow, default)]
    update: Option<&'a RawValue>,
}

/// Decodes a push to `table`.
pub fn parse(
    table: &TableDef,
    decoders: &PushDecoders,
    body: &[u8],
    format: PushFormat,
    update_format: UpdateFormat,
) -> Result<Parsed, PushError> {
    let schema = || table.schema();
    match (format, update_format) {
        (PushFormat::Json { array }, UpdateFormat::Raw) => {
            let page = if array {
                decoder(&decoders.json, schema, Format::Json { json_path: None })?.decode(body)
            } else {
                decoder(&decoders.ndjson, schema, Format::Ndjson)?.decode(body)
            }
            .map_err(unreadable)?;
            inserts(page, None)
        }
        (PushFormat::Json { array }, UpdateFormat::InsertDelete) => {
            parse_changes(table, decoders, body, array)
        }
        (PushFormat::Csv { header }, UpdateFormat::Raw) => {
            let header = match header {
                CsvHeader::Present => true,
                CsvHeader::Absent => false,
                CsvHeader::Auto => looks_like_header(table, body),
            };
            let cell = if header {
                &decoders.csv_header
            } else {
                &decoders.csv_plain
            };
            let page = decoder(
                cell,
                schema,
                Format::Csv {
                    header,
                    delimiter: b',',
                },
            )?
            .decode(body)
            .map_err(unreadable)?;
            inserts(page, Some(header))
        }
        (PushFormat::Csv { .. }, UpdateFormat::InsertDelete) => Err(PushError::Request(
            "update_format=insert_delete needs format=json: a CSV row cannot say whether it is an insert or a delete".into(),
        )),
    }
}

fn unreadable(e: siphon_connect::decode::DecodeError) -> PushError {
    PushError::Request(format!("the body cannot be read: {e}"))
}

/// A raw push: every record of the page an insert, in one run.
fn inserts(page: DecodedPage, csv_header: Option<bool>) -> Result<Parsed, PushError> {
    let records = page.records();
    let batch = accept(page, &|i| i)?;
    Ok(Parsed {
        runs: vec![Run {
            kind: RunKind::Insert,
            batch,
            first: 0,
        }],
        records,
        csv_header,
    })
}

/// The page's rows, or the error of its first rejected record (`index` maps the page's
/// record index to the request's).
fn accept(page: DecodedPage, index: &dyn Fn(usize) -> usize) -> Result<RecordBatch, PushError> {
    match page.dead_letters.into_iter().next() {
        None => Ok(page.batch),
        Some(letter) => Err(PushError::Record {
            record: index(letter.record),
            reason: letter.reason,
        }),
    }
}

/// The records of a JSON body as raw values: one per non-blank line, or the elements of
/// one array.
fn json_records(body: &[u8], array: bool) -> Result<Vec<&RawValue>, PushError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body)
        .map_err(|e| PushError::Request(format!("the body is not UTF-8: {e}")))?;
    if array {
        return serde_json::from_str::<Vec<&RawValue>>(text).map_err(|e| {
            PushError::Request(format!(
                "with array=true the body must be one JSON array: {e}"
            ))
        });
    }
    let mut records = Vec::new();
    for (line_number, line) in text.split('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record =
            serde_json::from_str::<&RawValue>(line.trim()).map_err(|e| PushError::Record {
                record: records.len(),
                reason: format!("line {}: not JSON: {e}", line_number + 1),
            })?;
        records.push(record);
    }
    Ok(records)
}

fn parse_changes(
    table: &TableDef,
    decoders: &PushDecoders,
    body: &[u8],
    array: bool,
) -> Result<Parsed, PushError> {
    let records = json_records(body, array)?;
    // Split into runs of one kind: (kind, request index of each record, its row text).
    let mut runs: Vec<(RunKind, Vec<usize>, Vec<&str>)> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let change: Change = serde_json::from_str(record.get()).map_err(|e| PushError::Record {
            record: i,
            reason: format!(
                "with update_format=insert_delete a record is {{\"insert\": {{...}}}} or {{\"delete\": {{...}}}}: {e}"
            ),
        })?;
        let (kind, row) = match (change.insert, change.delete, change.update) {
            (Some(row), None, None) => (RunKind::Insert, row),
            (None, Some(row), None) => (RunKind::Delete, row),
            (_, _, Some(_)) => {
                return Err(PushError::Record {
                    record: i,
                    reason: "\"update\" is not supported: send {\"insert\": row}, which replaces the row with the same key".into(),
                });
            }
            _ => {
                return Err(PushError::Record {
                    record: i,
                    reason: "a record needs exactly one of \"insert\" or \"delete\"".into(),
                });
            }
        };
        match runs.last_mut() {
            Some((k, indices, rows)) if *k == kind => {
                indices.push(i);
                rows.push(row.get());
            }
            _ => runs.push((kind, vec![i], vec![row.get()])),
        }
    }
    let keyed = !table.primary_key.is_empty();
    let mut out = Vec::with_capacity(runs.len());
    for (kind, indices, rows) in runs {
        // A keyed delete needs only the key: the other columns may be absent.
        let decoder = if kind == RunKind::Delete && keyed {
            decoder(
                &decoders.key_json,
                || key_only_schema(table),
                Format::Json { json_path: None },
            )?
        } else {
            decoder(
                &decoders.json,
                || table.schema(),
                Format::Json { json_path: None },
            )?
        };
        let text = format!("[{}]", rows.join(","));
        let page = decoder
            .decode(text.as_bytes())
            .map_err(|e| PushError::Internal(format!("decoding a run of records: {e}")))?;
        let batch = accept(page, &|k| indices[k])?;
        out.push(Run {
            kind,
            batch,
            first: indices[0],
        });
    }
    Ok(Parsed {
        runs: out,
        records: records.len(),
        csv_header: None,
    })
}

/// The table's schema with every column but the key nullable, for deletes by key. Its
/// Arrow schema differs from the table's only in nullability.
fn key_only_schema(table: &TableDef) -> RecordSchema {
    let columns = table
        .schema()
        .columns()
        .iter()
        .map(|c| Column {
            nullable: c.nullable || !table.primary_key.contains(&c.name),
            ..c.clone()
        })
        .collect();
    RecordSchema::new(columns)
}

/// Whether the first line of a CSV body names the table's columns.
fn looks_like_header(table: &TableDef, body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let first = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(first) = std::str::from_utf8(first) else {
        return false;
    };
    let mut seen = Vec::new();
    for field in first.trim_end_matches('\r').split(',') {
        let name = field.trim().trim_matches('"').trim();
        let Some(column) = table
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
        else {
            return false;
        };
        if seen.contains(&column) {
            return false;
        }
        seen.push(column);
    }
    !seen.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ConnectorKind;
    use siphon_connect::schema::ColumnType;

    fn table(key: &[&str]) -> TableDef {
        TableDef {
            name: "t".into(),
            columns: vec![
                Column::new("id", ColumnType::BigInt, true),
                Column::new("name", ColumnType::Text, false),
            ],
            primary_key: key.iter().map(|k| k.to_string()).collect(),
            connector: ConnectorKind::HttpInput,
            connection: None,
            options: Default::default(),
        }
    }

    fn kinds(parsed: &Parsed) -> Vec<(RunKind, usize)> {
        parsed
            .runs
            .iter()
            .map(|r| (r.kind, r.batch.num_rows()))
            .collect()
    }

    #[test]
    fn ndjson_array_and_csv_decode_to_one_insert_run() {
        let t = table(&[]);
        let d = PushDecoders::default();
        let json = PushFormat::Json { array: false };
        let p = parse(
            &t,
            &d,
            b"{\"id\":1,\"name\":\"a\"}\n\n{\"id\":2,\"name\":\"b\"}\n",
            json,
            UpdateFormat::Raw,
        )
        .unwrap();
        assert_eq!((kinds(&p), p.records), (vec![(RunKind::Insert, 2)], 2));
        let array = PushFormat::Json { array: true };
        let p = parse(
            &t,
            &d,
            b"[{\"id\":1,\"name\":\"a\"}]",
            array,
            UpdateFormat::Raw,
        )
        .unwrap();
        assert_eq!(kinds(&p), vec![(RunKind::Insert, 1)]);
        let auto = PushFormat::Csv {
            header: CsvHeader::Auto,
        };
        let p = parse(&t, &d, b"\"name\",id\nx,1\ny,2\n", auto, UpdateFormat::Raw).unwrap();
        assert_eq!(
            (kinds(&p), p.csv_header),
            (vec![(RunKind::Insert, 2)], Some(true))
        );
        let p = parse(&t, &d, b"1,x\n2,y\n", auto, UpdateFormat::Raw).unwrap();
        assert_eq!(
            (kinds(&p), p.csv_header),
            (vec![(RunKind::Insert, 2)], Some(false))
        );
    }

    #[test]
    fn the_first_bad_record_rejects_the_request_with_its_index() {
        let t = table(&[]);
        let d = PushDecoders::default();
        let json = PushFormat::Json { array: false };
        let body = b"{\"id\":1,\"name\":\"a\"}\n\n{\"id\":\"x\",\"name\":\"b\"}\n{\"id\":3}\n";
        match parse(&t, &d, body, json, UpdateFormat::Raw) {
            Err(PushError::Record { record: 1, reason }) => {
                assert!(reason.contains("\"id\""), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // A NOT NULL column missing.
        match parse(&t, &d, b"{\"id\":3}", json, UpdateFormat::Raw) {
            Err(PushError::Record { record: 0, reason }) => {
                assert!(reason.contains("name"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let changes = b"{\"insert\":{\"id\":1,\"name\":\"a\"}}\n{\"delete\":{\"id\":1,\"name\":\"a\"}}\n{\"insert\":{\"id\":true,\"name\":\"a\"}}";
        match parse(&t, &d, changes, json, UpdateFormat::InsertDelete) {
            Err(PushError::Record { record: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        match parse(&t, &d, b"{\"upsert\":{}}", json, UpdateFormat::InsertDelete) {
            Err(PushError::Record { record: 0, reason }) => {
                assert!(reason.contains("exactly one"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        match parse(
            &t,
            &d,
            b"{\"id\":1,\"name\":\"a\"}\nnot json",
            json,
            UpdateFormat::Raw,
        ) {
            Err(PushError::Record { record: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn changes_keep_their_order_in_runs_and_keyed_deletes_need_only_the_key() {
        let t = table(&["id"]);
        let d = PushDecoders::default();
        let json = PushFormat::Json { array: true };
        let body = br#"[{"insert":{"id":1,"name":"a"}},{"insert":{"id":2,"name":"b"}},{"delete":{"id":1}},{"insert":{"id":1,"name":"c"}}]"#;
        let p = parse(&t, &d, body, json, UpdateFormat::InsertDelete).unwrap();
        assert_eq!(
            kinds(&p),
            vec![
                (RunKind::Insert, 2),
                (RunKind::Delete, 1),
                (RunKind::Insert, 1)
            ]
        );
        // Without a key, a delete names the whole row.
        let bag = table(&[]);
        match parse(
            &bag,
            &PushDecoders::default(),
            br#"[{"delete":{"id":1}}]"#,
            json,
            UpdateFormat::InsertDelete,
        ) {
            Err(PushError::Record { record: 0, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
