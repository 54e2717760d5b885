//! Every decoder (JSON with and without a JSONPath, NDJSON, CSV, XML, raw) over a schema
//! of every column type, on arbitrary bodies: records or dead letters, never a panic, and
//! a batch whose row count matches its columns.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use siphon_connect::decode::{Format, RecordDecoder};
use siphon_connect::schema::{Column, ColumnType, RecordSchema};

fn schema() -> Arc<RecordSchema> {
    Arc::new(RecordSchema::new(vec![
        Column::new("id", ColumnType::BigInt, false),
        Column::new("name", ColumnType::Text, true),
        Column::new("small", ColumnType::SmallInt, true),
        Column::new("n", ColumnType::Int, true),
        Column::new("x", ColumnType::Double, true),
        Column::new(
            "amount",
            ColumnType::Decimal {
                precision: 12,
                scale: 3,
            },
            true,
        ),
        Column::new("ok", ColumnType::Boolean, true),
        Column::new("at", ColumnType::Timestamp, true),
        Column::new("day", ColumnType::Date, true),
        Column::new("doc", ColumnType::Json, true),
    ]))
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks the format; for JSON with a path, the first line is the path.
    let (selector, body) = (data[0], &data[1..]);
    let format = match selector % 7 {
        0 => Format::Json { json_path: None },
        1 => {
            let split = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
            let path = String::from_utf8_lossy(&body[..split]).into_owned();
            Format::Json {
                json_path: Some(path),
            }
        }
        2 => Format::Ndjson,
        3 => Format::Csv {
            header: true,
            delimiter: b',',
        },
        4 => Format::Csv {
            header: false,
            delimiter: b';',
        },
        5 => Format::Xml {
            root_path: "//item".into(),
        },
        _ => Format::Raw,
    };
    let body = if selector % 7 == 1 {
        let split = body.iter().position(|b| *b == b'\n').map_or(body.len(), |p| p + 1);
        &body[split..]
    } else {
        body
    };
    let schema = if matches!(format, Format::Raw) {
        Arc::new(RecordSchema::new(vec![Column::new("doc", ColumnType::Json, true)]))
    } else {
        schema()
    };
    let Ok(decoder) = RecordDecoder::new(schema, format) else {
        return;
    };
    if let Ok(page) = decoder.decode(body) {
        let batch = &page.batch;
        for column in batch.columns() {
            assert_eq!(column.len(), batch.num_rows());
        }
    }
});
