//! SQL over stored tables and `system.*` tables, with DataFusion.
//!
//! An append-only table is a [`TableProvider`] that streams its records from one read
//! snapshot of the store's log, an entry at a time: a query sees a consistent prefix of
//! the log, never blocks a commit, and memory does not grow with the table. A keyed table
//! is scanned from its in-memory current rows.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use crate::store::Store;
use crate::tables::TableRef;

/// The schema that holds the system tables.
pub const SYSTEM_SCHEMA: &str = "system";

/// A query failed: bad SQL, an unknown table, or an execution error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// A stored table as DataFusion sees it.
pub struct StoredTable {
    table: TableRef,
    store: Arc<Store>,
}

/// An append-only table's records, streamed from one snapshot of the store's log.
struct LogScan {
    table: String,
    schema: SchemaRef,
    store: Arc<Store>,
}

impl fmt::Debug for LogScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogScan({})", self.table)
    }
}

impl PartitionStream for LogScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        // A small channel: the reader decodes at most a few entries ahead of the query.
        let (tx, rx) = tokio::sync::mpsc::channel::<DfResult<RecordBatch>>(2);
        let (store, table) = (self.store.clone(), self.table.clone());
        tokio::task::spawn_blocking(move || {
            let result = store.scan_log(&table, &mut |batch| tx.blocking_send(Ok(batch)).is_ok());
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(DataFusionError::Execution(e.to_string())));
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

impl fmt::Debug for StoredTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredTable({})", self.table.def.name)
    }
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match self.table.keyed_rows() {
            Some(rows) => {
                let rows = rows.map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
                let snapshot = MemTable::try_new(self.schema(), vec![vec![rows]])?;
                snapshot.scan(state, projection, filters, limit).await
            }
            None => {
                let scan = LogScan {
                    table: self.table.def.name.clone(),
                    schema: self.schema(),
                    store: self.store.clone(),
                };
                StreamingTable::try_new(self.schema(), vec![Arc::new(scan)])?
                    .scan(state, projection, filters, limit)
                    .await
            }
        }
    }
}

/// Produces a system table's rows when it is scanned.
pub type SnapshotFn = Arc<dyn Fn() -> Result<RecordBatch, String> + Send + Sync>;

/// A system table computed from the runtime's state at scan time.
pub struct SystemTable {
    name: &'static str,
    schema: SchemaRef,
    rows: SnapshotFn,
}

impl SystemTable {
    /// A system table with a fixed schema and a row producer.
    pub fn new(name: &'static str, schema: SchemaRef, rows: SnapshotFn) -> Self {
        SystemTable { name, schema, rows }
    }
}

impl fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SystemTable({})", self.name)
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = (self.rows)().map_err(datafusion::error::DataFusionError::Execution)?;
        let snapshot = MemTable::try_new(self.schema(), vec![vec![batch]])?;
        snapshot.scan(state, projection, filters, limit).await
    }
}

/// The query engine: one DataFusion context with the user's tables in the default schema
/// and the system tables in `system`.
pub struct QueryEngine {
    ctx: SessionContext,
}

impl QueryEngine {
    /// An empty query engine with the `system` schema in place.
    pub fn new() -> Self {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let catalog = ctx
            .catalog("datafusion")
            .expect("the default catalog exists");
        catalog
            .register_schema(SYSTEM_SCHEMA, Arc::new(MemorySchemaProvider::new()))
            .expect("registering a schema in the default catalog");
        QueryEngine { ctx }
    }

    /// Makes a stored table queryable under its name.
    pub fn register_table(&self, table: TableRef, store: Arc<Store>) -> Result<(), QueryError> {
        let name = datafusion::common::TableReference::bare(table.def.name.clone());
        self.ctx
            .register_table(name, Arc::new(StoredTable { table, store }))
            .map(|_| ())
            .map_err(|e| QueryError(e.to_string()))
    }

    /// Removes a table.
    pub fn deregister_table(&self, name: &str) {
        let _ = self
            .ctx
            .deregister_table(datafusion::common::TableReference::bare(name.to_string()));
    }

    /// Registers `system.<name>`.
    pub fn register_system(&self, table: SystemTable) -> Result<(), QueryError> {
        let name = datafusion::common::TableReference::partial(SYSTEM_SCHEMA, table.name);
        self.ctx
            .register_table(name, Arc::new(table))
            .map(|_| ())
            .map_err(|e| QueryError(e.to_string()))
    }

    /// Runs one read-only query to completion.
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
        let frame = self
            .ctx
            .sql_with_options(
                sql,
                datafusion::execution::context::SQLOptions::new()
                    .with_allow_ddl(false)
                    .with_allow_dml(false),
            )
            .await
            .map_err(|e| QueryError(clean_error(&e.to_string())))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame
            .collect()
            .await
            .map_err(|e| QueryError(clean_error(&e.to_string())))?;
        Ok((schema, batches))
    }
}

impl Default for QueryEngine {
    fn default() -> Self {
        Self::new()
    }
}

/// DataFusion prefixes errors with its layer ("Error during planning: ..."); keep the
/// message, drop the noise a user cannot act on.
fn clean_error(message: &str) -> String {
    message.trim().to_string()
}
