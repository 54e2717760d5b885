//! Throughput of the typed-record decoder on realistic pages: a ~1 MB JSON page selected
//! with `$.data[*]` (the streaming path), the same records as NDJSON, as a ~1 MB CSV page
//! (header, quoted JSON field) and as a ~1 MB XML page (attributes, child elements, a
//! nested element into the JSON column), the JSON page again with `field_paths` taking
//! three columns out of the nested object, and for reference the general JSONPath path and
//! serde_json merely validating the page. Plain `fn main` so it runs with
//! `cargo bench -p siphon-connect --bench decode` and no extra dependencies.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use siphon_connect::decode::{ColumnOptions, Format, RecordDecoder};
use siphon_connect::schema::{Column, ColumnType, RecordSchema};

const PAGE_BYTES: usize = 1 << 20;
const RUN_FOR: Duration = Duration::from_secs(3);

fn schema() -> Arc<RecordSchema> {
    Arc::new(RecordSchema::new(vec![
        Column::new("id", ColumnType::Text, false),
        Column::new("ts", ColumnType::Timestamp, false),
        Column::new("value", ColumnType::Double, true),
        Column::new("metadata", ColumnType::Json, true),
        Column::new("count", ColumnType::BigInt, true),
        Column::new("active", ColumnType::Boolean, true),
        Column::new("note", ColumnType::Text, true),
    ]))
}

/// One record of about 200 bytes; fields vary so no value is trivially repeated.
fn record(i: usize) -> String {
    let seconds = i % 60;
    let millis = (i * 7) % 1000;
    format!(
        concat!(
            r#"{{"id":"evt-{:08}","ts":"2024-03-15T12:{:02}:{:02}.{:03}Z","value":{}.{:03},"#,
            r#""metadata":{{"source":"sensor-{}","tags":["alpha","beta"],"level":{}}},"#,
            r#""count":{},"active":{},"note":"reading {} from the north field"}}"#
        ),
        i,
        (i / 60) % 60,
        seconds,
        millis,
        i % 10_000,
        (i * 13) % 1000,
        i % 97,
        i % 5,
        1_700_000_000_000u64 + i as u64 * 977,
        !i.is_multiple_of(3),
        i,
    )
}

fn records_for_page() -> Vec<String> {
    let mut records = Vec::new();
    let mut bytes = 0;
    while bytes < PAGE_BYTES {
        let r = record(records.len());
        bytes += r.len() + 1;
        records.push(r);
    }
    records
}

/// The same kind of record as one CSV row (the JSON column's value quoted, its quotes
/// doubled).
fn csv_row(i: usize) -> String {
    format!(
        "evt-{:08},2024-03-15T12:{:02}:{:02}.{:03}Z,{}.{:03},\"{{\"\"source\"\":\"\"sensor-{}\"\",\"\"tags\"\":[\"\"alpha\"\",\"\"beta\"\"],\"\"level\"\":{}}}\",{},{},\"reading {}, from the north field\"",
        i,
        (i / 60) % 60,
        i % 60,
        (i * 7) % 1000,
        i % 10_000,
        (i * 13) % 1000,
        i % 97,
        i % 5,
        1_700_000_000_000u64 + i as u64 * 977,
        !i.is_multiple_of(3),
        i,
    )
}

/// The same kind of record as one XML element: the id an attribute, the JSON column a
/// nested element.
fn xml_item(i: usize) -> String {
    format!(
        concat!(
            r#"<item id="evt-{:08}"><ts>2024-03-15T12:{:02}:{:02}.{:03}Z</ts><value>{}.{:03}</value>"#,
            r#"<metadata><source>sensor-{}</source><tags><tag>alpha</tag><tag>beta</tag></tags><level>{}</level></metadata>"#,
            r#"<count>{}</count><active>{}</active><note>reading {} from the north field &amp; beyond</note></item>"#
        ),
        i,
        (i / 60) % 60,
        i % 60,
        (i * 7) % 1000,
        i % 10_000,
        (i * 13) % 1000,
        i % 97,
        i % 5,
        1_700_000_000_000u64 + i as u64 * 977,
        !i.is_multiple_of(3),
        i,
    )
}

/// A page of about [`PAGE_BYTES`]: the rows `row(0..)` after `head`, then `tail`.
fn text_page(head: &str, tail: &str, separator: &str, row: fn(usize) -> String) -> (String, usize) {
    let mut page = String::from(head);
    let mut n = 0;
    while page.len() < PAGE_BYTES {
        if n > 0 {
            page.push_str(separator);
        }
        page.push_str(&row(n));
        n += 1;
    }
    page.push_str(tail);
    (page, n)
}

fn measure(label: &str, body: &[u8], records: usize, mut run: impl FnMut(&[u8]) -> usize) {
    // `cargo bench -p siphon-connect --bench decode -- ndjson` runs only matching cases.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !label.contains(f.as_str())) {
        return;
    }
    // Warm up, and check the run decodes every record.
    let decoded = run(body);
    assert!(
        decoded == records || decoded == 0,
        "{label}: decoded {decoded} of {records} records"
    );
    let start = Instant::now();
    let mut iterations = 0u64;
    while start.elapsed() < RUN_FOR {
        black_box(run(black_box(body)));
        iterations += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mb = (body.len() as f64 * iterations as f64) / 1e6 / seconds;
    let per_second = records as f64 * iterations as f64 / seconds;
    println!(
        "{label:<44} {:>7.1} MB/s {:>10.0} records/s  ({iterations} pages of {} bytes, {records} records)",
        mb,
        per_second,
        body.len()
    );
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let records = records_for_page();
    let n = records.len();
    let json_page = format!("{{\"data\": [{}]}}", records.join(","));
    let ndjson_page = records.join("\n");
    println!(
        "page: {n} records, avg {} bytes/record; json {} bytes, ndjson {} bytes",
        ndjson_page.len() / n,
        json_page.len(),
        ndjson_page.len()
    );

    let fast = RecordDecoder::new(
        schema(),
        Format::Json {
            json_path: Some("$.data[*]".into()),
        },
    )
    .expect("decoder");
    measure(
        "json, json_path = '$.data[*]'",
        json_page.as_bytes(),
        n,
        |b| {
            let page = fast.decode(b).expect("decode");
            assert!(
                page.dead_letters.is_empty(),
                "{:?}",
                page.dead_letters.first()
            );
            page.batch.num_rows()
        },
    );

    // The same page, with three more columns mapped into the nested object: the paths are
    // compiled once, and only the `metadata` member's text is walked per record.
    let mut columns = schema().columns().to_vec();
    columns.push(Column::new("source", ColumnType::Text, true));
    columns.push(Column::new("level", ColumnType::BigInt, true));
    columns.push(Column::new("first_tag", ColumnType::Text, true));
    let mapped = RecordDecoder::new(
        Arc::new(RecordSchema::new(columns)),
        Format::Json {
            json_path: Some("$.data[*]".into()),
        },
    )
    .expect("decoder")
    .with_options(&ColumnOptions {
        field_paths: vec![
            ("source".into(), "$.metadata.source".into()),
            ("level".into(), "$.metadata.level".into()),
            ("first_tag".into(), "$.metadata.tags[0]".into()),
        ],
        ..Default::default()
    })
    .expect("field_paths");
    measure(
        "json, json_path = '$.data[*]', field_paths",
        json_page.as_bytes(),
        n,
        |b| {
            let page = mapped.decode(b).expect("decode");
            assert!(
                page.dead_letters.is_empty(),
                "{:?}",
                page.dead_letters.first()
            );
            assert_eq!(page.batch.column(8).null_count(), 0);
            page.batch.num_rows()
        },
    );

    let ndjson = RecordDecoder::new(schema(), Format::Ndjson).expect("decoder");
    measure("ndjson", ndjson_page.as_bytes(), n, |b| {
        let page = ndjson.decode(b).expect("decode");
        page.batch.num_rows()
    });

    let (csv_page, csv_rows) = text_page(
        "id,ts,value,metadata,count,active,note\r\n",
        "\r\n",
        "\r\n",
        csv_row,
    );
    let csv = RecordDecoder::new(
        schema(),
        Format::Csv {
            header: true,
            delimiter: b',',
        },
    )
    .expect("decoder");
    measure("csv, header", csv_page.as_bytes(), csv_rows, |b| {
        let page = csv.decode(b).expect("decode");
        assert!(
            page.dead_letters.is_empty(),
            "{:?}",
            page.dead_letters.first()
        );
        page.batch.num_rows()
    });

    let (xml_page, xml_rows) = text_page(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response><items>\n",
        "\n</items></response>\n",
        "\n",
        xml_item,
    );
    let xml = RecordDecoder::new(
        schema(),
        Format::Xml {
            root_path: "/response/items/item".into(),
        },
    )
    .expect("decoder");
    measure(
        "xml, xml_root_path = '/response/items/item'",
        xml_page.as_bytes(),
        xml_rows,
        |b| {
            let page = xml.decode(b).expect("decode");
            assert!(
                page.dead_letters.is_empty(),
                "{:?}",
                page.dead_letters.first()
            );
            page.batch.num_rows()
        },
    );

    let general = RecordDecoder::new(
        schema(),
        Format::Json {
            json_path: Some("$.data[0:]".into()),
        },
    )
    .expect("decoder");
    measure(
        "json, json_path = '$.data[0:]' (general)",
        json_page.as_bytes(),
        n,
        |b| general.decode(b).expect("decode").batch.num_rows(),
    );

    measure(
        "reference: serde_json validate only",
        json_page.as_bytes(),
        n,
        |b| {
            serde_json::from_slice::<serde::de::IgnoredAny>(b).expect("valid");
            0
        },
    );

    println!("peak RSS (VmHWM): {}", peak_rss());
}
