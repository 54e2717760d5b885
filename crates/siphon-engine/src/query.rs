//! SQL over stored tables and `system.*` tables, with DataFusion.
//!
//! Every table is a [`TableProvider`] that snapshots its committed batches when a query
//! scans it, so a query sees a consistent prefix of each table's log and never blocks a
//! commit for longer than a vector clone.

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
        let snapshot = MemTable::try_new(self.schema(), vec![self.table.batches()])?;
        snapshot.scan(state, projection, filters, limit).await
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
    pub fn register_table(&self, table: TableRef) -> Result<(), QueryError> {
        let name = datafusion::common::TableReference::bare(table.def.name.clone());
        self.ctx
            .register_table(name, Arc::new(StoredTable { table }))
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
