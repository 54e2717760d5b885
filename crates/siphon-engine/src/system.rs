//! The `system.*` tables: the runtime's state, queryable with SQL like any table.
//!
//! * `system.connector_status`: one row per source (SPEC §5 columns).
//! * `system.dead_letters`: records that did not fit their table, with the reason.
//! * `system.connector_logs`, `system.http_metrics`: the newest N log lines and requests of
//!   each source (SPEC §5 columns), from the [`crate::observe::Observer`].
//! * `system.commits`: one row per committed batch of every table: its sequence number, the
//!   offset of its first record and its record count, so gaps and duplicates are visible.
//!
//! Each table is a schema, a function that reads its rows from the engine, and a function
//! that turns those rows into columns; [`register_table`] does the rest.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt16Array,
    UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};

use crate::Engine;
use crate::observe::{HttpRow, LogRow};
use crate::query::{QueryError, SystemTable};
use crate::status::SourceStatus;
use crate::store::DeadLetterRow;

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

/// Registers `system.<name>`: at each scan, `rows` reads the engine and `columns` builds
/// the Arrow columns in the order of `fields`.
fn register_table<R: 'static>(
    engine: &Arc<Engine>,
    name: &'static str,
    fields: Vec<Field>,
    rows: fn(&Engine) -> Result<Vec<R>, String>,
    columns: fn(&[R]) -> Vec<ArrayRef>,
) -> Result<(), QueryError> {
    let schema = Arc::new(Schema::new(fields));
    let weak = Arc::downgrade(engine);
    let table_schema = schema.clone();
    engine.query.register_system(SystemTable::new(
        name,
        schema,
        Arc::new(move || {
            let engine = weak
                .upgrade()
                .ok_or_else(|| "the engine is shutting down".to_string())?;
            let rows = rows(&engine)?;
            RecordBatch::try_new(table_schema.clone(), columns(&rows)).map_err(|e| e.to_string())
        }),
    ))
}

/// Registers every system table with the engine's query engine.
pub(crate) fn register(engine: &Arc<Engine>) -> Result<(), QueryError> {
    register_table::<SourceStatus>(
        engine,
        "connector_status",
        vec![
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
            Field::new("boundary_records", DataType::UInt64, false),
            Field::new("reads_from", DataType::Utf8, true),
            Field::new("lag", DataType::UInt64, true),
        ],
        |engine| Ok(engine.statuses()),
        |rows| {
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
                num(rows.iter().map(|r| r.boundary_records)),
                text(rows.iter().map(|r| r.reads_from.as_ref())),
                Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.lag))),
            ]
        },
    )?;

    register_table::<DeadLetterRow>(
        engine,
        "dead_letters",
        vec![
            Field::new("timestamp", ts_type(), false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("raw", DataType::Utf8, false),
        ],
        |engine| engine.store.dead_letters().map_err(|e| e.to_string()),
        |rows| {
            vec![
                ts(rows.iter().map(|r| Some(r.timestamp))),
                text(rows.iter().map(|r| Some(&r.table_name))),
                text(rows.iter().map(|r| Some(&r.reason))),
                text(rows.iter().map(|r| Some(&r.raw))),
            ]
        },
    )?;

    register_table::<LogRow>(
        engine,
        "connector_logs",
        vec![
            Field::new("timestamp", ts_type(), false),
            Field::new("connector", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("level", DataType::Utf8, false),
            Field::new("message", DataType::Utf8, false),
        ],
        |engine| Ok(engine.observer.logs()),
        |rows| {
            vec![
                ts(rows.iter().map(|r| Some(r.timestamp))),
                text(rows.iter().map(|r| Some(&r.connector))),
                text(rows.iter().map(|r| Some(&r.table_name))),
                text(rows.iter().map(|r| Some(r.level))),
                text(rows.iter().map(|r| Some(&r.message))),
            ]
        },
    )?;

    register_table::<HttpRow>(
        engine,
        "http_metrics",
        vec![
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
        ],
        |engine| Ok(engine.observer.http_rows()),
        |rows| {
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
            ]
        },
    )?;

    register_table::<(String, u64, u64, u64, DateTime<Utc>)>(
        engine,
        "commits",
        vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("sequence_number", DataType::UInt64, false),
            Field::new("first_record", DataType::UInt64, false),
            Field::new("records", DataType::UInt64, false),
            Field::new("committed_at", ts_type(), false),
        ],
        |engine| {
            let tables: Vec<_> = engine
                .tables
                .read()
                .expect("tables lock")
                .values()
                .cloned()
                .collect();
            Ok(tables
                .iter()
                .flat_map(|t| {
                    t.commits().into_iter().map(|c| {
                        (
                            t.def.name.clone(),
                            c.sequence,
                            c.first_record,
                            c.records,
                            c.committed_at,
                        )
                    })
                })
                .collect())
        },
        |rows| {
            vec![
                text(rows.iter().map(|r| Some(&r.0))),
                num(rows.iter().map(|r| r.1)),
                num(rows.iter().map(|r| r.2)),
                num(rows.iter().map(|r| r.3)),
                ts(rows.iter().map(|r| Some(r.4))),
            ]
        },
    )
}
