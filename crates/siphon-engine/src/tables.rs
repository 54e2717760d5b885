//! The rows of each table as queries see them: the committed log entries, decoded once and
//! kept in memory, appended to after every commit.
//!
//! Invariant: a table's cache holds exactly the store's log entries, in sequence order.
//! It is appended to only after the store's commit returned, under the table's commit lock,
//! so a query never sees a record that is not durable.

use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};

use crate::catalog::TableDef;

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
    /// Held while committing, so cache order equals sequence order.
    pub commit_lock: tokio::sync::Mutex<()>,
}

impl TableData {
    /// A table with the given committed batches.
    pub fn new(def: TableDef, entries: Vec<CommittedBatch>) -> Self {
        let schema = def.schema().arrow_schema();
        TableData {
            def,
            schema,
            entries: RwLock::new(entries),
            commit_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Appends a batch that was just committed.
    pub fn push(&self, entry: CommittedBatch) {
        self.entries.write().expect("table cache lock").push(entry);
    }

    /// The batches, for a query.
    pub fn batches(&self) -> Vec<RecordBatch> {
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
