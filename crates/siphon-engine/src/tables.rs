//! The rows of each table as queries see them: the committed log entries, decoded once and
//! kept in memory, appended to after every commit.
//!
//! Invariant: a table's cache holds exactly the store's log entries, in sequence order.
//! It is appended to only after the store's commit returned, under the table's commit lock,
//! so a query never sees a record that is not durable.

use std::sync::{Arc, Mutex, RwLock};

use arrow::error::ArrowError;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};

use crate::catalog::TableDef;
use crate::keyed::KeyedRows;

/// One committed batch.
#[derive(Clone, Debug)]
pub struct CommittedBatch {
    /// The store's sequence number of the commit.
    pub sequence: u64,
    /// Offset of its first record in the table.
    pub first_record: u64,
    /// When it committed.
    pub committed_at: DateTime<Utc>,
    /// The records.
    pub batch: RecordBatch,
}

/// A table: definition, schema and committed batches.
#[derive(Debug)]
pub struct TableData {
    /// The definition.
    pub def: TableDef,
    /// Arrow schema of its rows.
    pub schema: SchemaRef,
    entries: RwLock<Vec<CommittedBatch>>,
    /// For a PRIMARY KEY table: the latest row per key (the log replayed).
    keyed: Option<Mutex<KeyedRows>>,
    /// Held while committing, so cache order equals sequence order.
    pub commit_lock: tokio::sync::Mutex<()>,
}

impl TableData {
    /// A table with the given committed batches (change batches for a keyed table, which
    /// are replayed into its current rows).
    pub fn new(def: TableDef, entries: Vec<CommittedBatch>) -> Result<Self, ArrowError> {
        let schema = def.schema().arrow_schema();
        let keyed = if def.primary_key.is_empty() {
            None
        } else {
            let mut rows = KeyedRows::new(schema.clone(), &def.primary_key)?;
            for entry in &entries {
                rows.apply(&entry.batch)?;
            }
            Some(Mutex::new(rows))
        };
        Ok(TableData {
            def,
            schema,
            entries: RwLock::new(entries),
            keyed,
            commit_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// For a keyed table, the change batch that `incoming` makes (see [`KeyedRows::diff`]);
    /// for an append-only table, `incoming` itself. Call under the commit lock.
    pub fn changes_for(
        &self,
        incoming: RecordBatch,
        complete: bool,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        match &self.keyed {
            None => Ok((incoming.num_rows() > 0).then_some(incoming)),
            Some(rows) => rows
                .lock()
                .expect("keyed rows lock")
                .diff(&incoming, complete),
        }
    }

    /// Appends a batch that was just committed (and applies it to a keyed table's rows).
    pub fn push(&self, entry: CommittedBatch) -> Result<(), ArrowError> {
        if let Some(rows) = &self.keyed {
            rows.lock().expect("keyed rows lock").apply(&entry.batch)?;
        }
        self.entries.write().expect("table cache lock").push(entry);
        Ok(())
    }

    /// The rows, for a query: the committed batches, or a keyed table's current rows.
    pub fn batches(&self) -> Vec<RecordBatch> {
        if let Some(rows) = &self.keyed {
            let mut rows = rows.lock().expect("keyed rows lock");
            return match rows.batch() {
                Ok(batch) => vec![batch],
                Err(e) => {
                    tracing::error!(table = %self.def.name, error = %e, "cannot materialise keyed rows");
                    Vec::new()
                }
            };
        }
        self.entries
            .read()
            .expect("table cache lock")
            .iter()
            .map(|e| e.batch.clone())
            .collect()
    }

    /// Commit metadata `(sequence, first_record, records, committed_at)` of every entry.
    pub fn commits(&self) -> Vec<(u64, u64, u64, DateTime<Utc>)> {
        self.entries
            .read()
            .expect("table cache lock")
            .iter()
            .map(|e| {
                (
                    e.sequence,
                    e.first_record,
                    e.batch.num_rows() as u64,
                    e.committed_at,
                )
            })
            .collect()
    }
}

/// Shared handle.
pub type TableRef = Arc<TableData>;
