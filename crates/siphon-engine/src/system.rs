//! The `system.*` tables: the runtime's state, queryable with SQL like any table.
//!
//! * `system.connector_status`: one row per source (SPEC §5 columns).
//! * `system.dead_letters`: records that did not fit their table, with the reason.
//! * `system.connector_logs`, `system.http_metrics`: the newest N log lines and requests of
//!   each source (SPEC §5 columns), from the [`crate::observe::Observer`].
//! * `system.commits`: one row per committed batch of every table: its sequence number, the
//!   offset of its first record and its record count, so gaps and duplicates are visible.

use std::sync::{Arc, Weak};

use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt16Array,
    UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::Engine;
use crate::query::{QueryError, SystemTable};

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn ts(values: impl IntoIterator<Item = Option<DateTime<Utc>>>) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from(
            values
                .into_iter()
                .map(|v| v.map(|t| t.timestamp_micros()))
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC"),
    )
}

fn text<S: AsRef<str>>(values: impl IntoIterator<Item = Option<S>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn num(values: impl IntoIterator<Item = u64>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<UInt64Array>())
}

fn engine_of(weak: &Weak<Engine>) -> Result<Arc<Engine>, String> {
    weak.upgrade()
        .ok_or_else(|| "the engine is shutting down".to_string())
}

/// Registers every system table with the engine's query engine.
pub(crate) fn register(engine: &Arc<Engine>) -> Result<(), QueryError> {
    let weak = Arc::downgrade(engine);

    let status_schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("connector_name", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("connection_name", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, false),
        Field::new("last_success_at", ts_type(), true),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("last_error_at", ts_type(), true),
        Field::new("consecutive_failures", DataType::UInt64, false),
        Field::new("requests", DataType::UInt64, false),
        Field::new("records", DataType::UInt64, false),
        Field::new("next_poll_at", ts_type(), true),
    ]));
    let schema = status_schema.clone();
    let w = weak.clone();
    engine.query.register_system(SystemTable::new(
        "connector_status",
        status_schema,
        Arc::new(move || {
            let rows = engine_of(&w)?.statuses();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    text(rows.iter().map(|r| Some(&r.connector_name))),
                    text(rows.iter().map(|r| Some(&r.table_name))),
                    text(rows.iter().map(|r| r.connection_name.as_ref())),
                    text(rows.iter().map(|r| Some(r.state.name()))),
                    ts(rows.iter().map(|r| r.last_success_at)),
                    text(rows.iter().map(|r| r.last_error.as_ref())),
                    ts(rows.iter().map(|r| r.last_error_at)),
                    num(rows.iter().map(|r| r.consecutive_failures)),
                    num(rows.iter().map(|r| r.requests)),
                    num(rows.iter().map(|r| r.records)),
                    ts(rows.iter().map(|r| r.next_poll_at)),
                ],
            )
            .map_err(|e| e.to_string())
        }),
    ))?;

    let dead_schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("timestamp", ts_type(), false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
    ]));
    let schema = dead_schema.clone();
    let w = weak.clone();
    engine.query.register_system(SystemTable::new(
        "dead_letters",
        dead_schema,
        Arc::new(move || {
            let rows = engine_of(&w)?
                .store
                .dead_letters()
                .map_err(|e| e.to_string())?;
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    ts(rows.iter().map(|r| Some(r.timestamp))),
                    text(rows.iter().map(|r| Some(&r.table_name))),
                    text(rows.iter().map(|r| Some(&r.reason))),
                    text(rows.iter().map(|r| Some(&r.raw))),
                ],
            )
            .map_err(|e| e.to_string())
        }),
    ))?;

    let logs_schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("timestamp", ts_type(), false),
        Field::new("connector", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("level", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ]));
    let schema = logs_schema.clone();
    let w = weak.clone();
    engine.query.register_system(SystemTable::new(
        "connector_logs",
        logs_schema,
        Arc::new(move || {
            let rows = engine_of(&w)?.observer.logs();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    ts(rows.iter().map(|r| Some(r.timestamp))),
                    text(rows.iter().map(|r| Some(&r.connector))),
                    text(rows.iter().map(|r| Some(&r.table_name))),
                    text(rows.iter().map(|r| Some(r.level))),
                    text(rows.iter().map(|r| Some(&r.message))),
                ],
            )
            .map_err(|e| e.to_string())
        }),
    ))?;

    let http_schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("timestamp", ts_type(), false),
        Field::new("connector", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("method", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("status_code", DataType::UInt16, true),
        Field::new("response_time_ms", DataType::Float64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("pages", DataType::UInt32, false),
        Field::new("attempt", DataType::UInt32, false),
    ]));
    let schema = http_schema.clone();
    let w = weak.clone();
    engine.query.register_system(SystemTable::new(
        "http_metrics",
        http_schema,
        Arc::new(move || {
            let rows = engine_of(&w)?.observer.http_rows();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    ts(rows.iter().map(|r| Some(r.timestamp))),
                    text(rows.iter().map(|r| Some(&r.connector))),
                    text(rows.iter().map(|r| Some(&r.table_name))),
                    text(rows.iter().map(|r| Some(&r.method))),
                    text(rows.iter().map(|r| Some(&r.url))),
                    Arc::new(rows.iter().map(|r| r.status_code).collect::<UInt16Array>()),
                    Arc::new(
                        rows.iter()
                            .map(|r| Some(r.response_time_ms))
                            .collect::<Float64Array>(),
                    ),
                    num(rows.iter().map(|r| r.bytes)),
                    Arc::new(rows.iter().map(|r| Some(r.pages)).collect::<UInt32Array>()),
                    Arc::new(
                        rows.iter()
                            .map(|r| Some(r.attempt))
                            .collect::<UInt32Array>(),
                    ),
                ],
            )
            .map_err(|e| e.to_string())
        }),
    ))?;

    let commits_schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("sequence_number", DataType::UInt64, false),
        Field::new("first_record", DataType::UInt64, false),
        Field::new("records", DataType::UInt64, false),
        Field::new("committed_at", ts_type(), false),
    ]));
    let schema = commits_schema.clone();
    let w = weak;
    engine.query.register_system(SystemTable::new(
        "commits",
        commits_schema,
        Arc::new(move || {
            let engine = engine_of(&w)?;
            let tables: Vec<_> = engine
                .tables
                .read()
                .expect("tables lock")
                .values()
                .cloned()
                .collect();
            let mut rows = Vec::new();
            for table in tables {
                for (seq, first, count, at) in table.commits() {
                    rows.push((table.def.name.clone(), seq, first, count, at));
                }
            }
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    text(rows.iter().map(|r| Some(&r.0))),
                    num(rows.iter().map(|r| r.1)),
                    num(rows.iter().map(|r| r.2)),
                    num(rows.iter().map(|r| r.3)),
                    ts(rows.iter().map(|r| Some(r.4))),
                ],
            )
            .map_err(|e| e.to_string())
        }),
    ))?;
    Ok(())
}
