//! Throughput of the typed-record decoder on realistic pages: a ~1 MB JSON page selected
//! with `$.data[*]` (the streaming path), the same records as NDJSON, and for reference the
//! general JSONPath path and serde_json merely validating the page. Plain `fn main` so it
//! runs with `cargo bench -p siphon-connect --bench decode` and no extra dependencies.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use siphon_connect::decode::{Format, RecordDecoder};
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

    let ndjson = RecordDecoder::new(schema(), Format::Ndjson).expect("decoder");
    measure("ndjson", ndjson_page.as_bytes(), n, |b| {
        let page = ndjson.decode(b).expect("decode");
        page.batch.num_rows()
    });

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
