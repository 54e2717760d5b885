//! SQL over stored tables and `system.*` tables, with DataFusion.
//!
//! The query API is read-only and bounded (SPEC §3):
//! * only queries run: DDL, DML (`INSERT`, `COPY`) and statements (`SET`, `PREPARE`,
//!   transactions) are refused by DataFusion's [`SQLOptions`];
//! * each query plans in its own [`SessionState`], cloned from a template, so no query can
//!   change another's settings; the tables are shared through the catalog;
//! * all queries share one memory pool of `--query-memory` bytes (no spilling: a query
//!   that needs more fails with [`QueryErrorKind::Memory`]) and each has a wall-clock
//!   deadline of `--query-timeout`, streaming of its result included;
//! * queries plan and execute on their own tokio runtime, never on the workers that poll;
//! * results are streamed batch by batch ([`QueryStream`]), never collected;
//! * each query reads one [`Snapshot`] of the store: every scan of an append-only table in
//!   it reads the same redb read transaction, and a keyed table's current rows are taken
//!   at that same point, so a self-join or a join of two tables sees one consistent state.
//!
//! An append-only table is a [`TableProvider`] that streams its records from the query's
//! snapshot, one log entry at a time, decoding only the projected columns. A keyed table
//! is scanned from its in-memory current rows.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, Session, TableProvider};
use datafusion::common::Column;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionState;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::expr::FieldMetadata;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::store::{Snapshot, Store, StoreError};
use crate::tables::{TableData, TableRef};

/// The schema that holds the system tables.
pub const SYSTEM_SCHEMA: &str = "system";

/// Default of `--query-memory`: bytes all running queries may hold together.
pub const DEFAULT_QUERY_MEMORY: usize = 512 * 1024 * 1024;
/// Default of `--query-timeout`.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(300);

/// What bounds the queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Bytes of memory all running queries may reserve together.
    pub memory: usize,
    /// How long one query may run, streaming its result included; `None`: no limit.
    pub timeout: Option<Duration>,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            memory: DEFAULT_QUERY_MEMORY,
            timeout: Some(DEFAULT_QUERY_TIMEOUT),
        }
    }
}

/// Why a query failed, for the HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// Bad SQL, an unknown table, a refused statement, an error in the query's own terms.
    Invalid,
    /// The query needed more memory than `--query-memory`.
    Memory,
    /// The query ran past `--query-timeout` and was cancelled.
    Timeout,
    /// The server's own fault (the store, a bug).
    Internal,
}

/// A query failed: bad SQL, an unknown table, a limit, or an execution error.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    /// What kind of failure.
    pub kind: QueryErrorKind,
    /// The message for the user.
    pub message: String,
}

impl QueryError {
    fn new(kind: QueryErrorKind, message: impl Into<String>) -> Self {
        QueryError {
            kind,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        QueryError::new(QueryErrorKind::Internal, message)
    }
}

/// What one query reads: one store snapshot and, for each keyed table it scans, the
/// current rows as of that snapshot. Travels with the query's session config.
struct QuerySnapshot {
    store: Snapshot,
    keyed: tokio::sync::Mutex<HashMap<String, RecordBatch>>,
}

impl QuerySnapshot {
    fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(QuerySnapshot {
            store: store.snapshot()?,
            keyed: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// A keyed table's current rows as of the store snapshot, the same batch for every
    /// scan of the table in this query.
    async fn keyed_rows(&self, table: &TableData) -> DfResult<RecordBatch> {
        let mut cache = self.keyed.lock().await;
        if let Some(rows) = cache.get(&table.def.name) {
            return Ok(rows.clone());
        }
        // Under the commit lock the in-memory rows are the log replayed up to the table's
        // last commit, which is at or past the snapshot's (a commit reaches the store
        // before memory). If a commit landed after the snapshot, replay the snapshot.
        let rows = {
            let _guard = table.commit_lock.lock().await;
            let in_memory = table.commits().last().map_or(0, |c| c.sequence);
            let in_snapshot = self
                .store
                .last_sequence(&table.def.name)
                .map_err(store_error)?;
            if in_memory == in_snapshot {
                table.keyed_rows().map(|r| r.map_err(arrow_error))
            } else {
                None
            }
        };
        let rows = match rows {
            Some(rows) => rows?,
            None => {
                let mut changes = Vec::new();
                self.store
                    .scan_log(&table.def.name, None, &mut |_, batch| {
                        changes.push(batch);
                        true
                    })
                    .map_err(store_error)?;
                let replayed =
                    TableData::new(table.def.clone(), Vec::new(), &changes).map_err(arrow_error)?;
                replayed
                    .keyed_rows()
                    .ok_or_else(|| DataFusionError::Internal("a keyed table lost its key".into()))?
                    .map_err(arrow_error)?
            }
        };
        cache.insert(table.def.name.clone(), rows.clone());
        Ok(rows)
    }
}

impl QuerySnapshot {
    /// A `GROUP BY` view's rows as of the store snapshot, from its in-memory state (its
    /// log holds its whole history; the state holds one row per group). `None` when the
    /// view keeps no such state or a commit landed after the snapshot: then its log is
    /// read.
    async fn view_rows(&self, table: &TableData) -> DfResult<Option<RecordBatch>> {
        let Some((view, root)) = table.view_source() else {
            return Ok(None);
        };
        if view.plan.aggregate.is_none() {
            return Ok(None);
        }
        let mut cache = self.keyed.lock().await;
        if let Some(rows) = cache.get(&table.def.name) {
            return Ok(Some(rows.clone()));
        }
        // Under the root's commit lock the state is exactly the view's durable commits.
        let rows = {
            let _guard = root.commit_lock.lock().await;
            let in_memory = table.commits().last().map_or(0, |c| c.sequence);
            let in_snapshot = self
                .store
                .last_sequence(&table.def.name)
                .map_err(store_error)?;
            if in_memory != in_snapshot {
                return Ok(None);
            }
            view.current_rows().map_err(arrow_error)?
        };
        if let Some(rows) = &rows {
            cache.insert(table.def.name.clone(), rows.clone());
        }
        Ok(rows)
    }
}

fn store_error(e: StoreError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn arrow_error(e: arrow::error::ArrowError) -> DataFusionError {
    DataFusionError::ArrowError(Box::new(e), None)
}

/// A stored table as DataFusion sees it.
pub struct StoredTable {
    table: TableRef,
    store: Arc<Store>,
}

/// The rows of a table without a key whose log holds pushed deletes: the deleted rows are
/// read first (from the few entries `unkeyed_deletes` lists), then every entry is streamed
/// with one equal inserted row skipped per delete, and the projection applied.
fn scan_with_deletes(
    snapshot: &Snapshot,
    table: &str,
    full_schema: &SchemaRef,
    projection: Option<&[usize]>,
    deletes: &[(u64, u64)],
    emit: &mut dyn FnMut(RecordBatch) -> bool,
) -> DfResult<()> {
    use arrow::array::{Array, BooleanArray};
    let width = full_schema.fields().len();
    let converter = crate::keyed::row_converter(full_schema).map_err(arrow_error)?;
    let mut gone: HashMap<arrow::row::OwnedRow, u64> = HashMap::new();
    for (sequence, _) in deletes {
        let Some(batch) = snapshot.entry(table, *sequence).map_err(store_error)? else {
            continue;
        };
        let rows = converter
            .convert_columns(&batch.columns()[..width])
            .map_err(arrow_error)?;
        if let Some(ops) = crate::keyed::ops(&batch) {
            for (i, row) in rows.iter().enumerate() {
                if ops.is_valid(i) && ops.value(i) < 0 {
                    *gone.entry(row.owned()).or_default() += 1;
                }
            }
        }
    }
    let mut failure = None;
    snapshot
        .scan_log(table, None, &mut |_, batch| {
            let mut step = || -> DfResult<RecordBatch> {
                let rows = converter
                    .convert_columns(&batch.columns()[..width])
                    .map_err(arrow_error)?;
                let ops = crate::keyed::ops(&batch);
                let keep: BooleanArray = rows
                    .iter()
                    .enumerate()
                    .map(|(i, row)| {
                        if ops
                            .as_ref()
                            .is_some_and(|o| o.is_valid(i) && o.value(i) < 0)
                        {
                            return Some(false);
                        }
                        if let Some(n) = gone.get_mut(&row.owned())
                            && *n > 0
                        {
                            *n -= 1;
                            return Some(false);
                        }
                        Some(true)
                    })
                    .collect();
                let data = batch
                    .project(&(0..width).collect::<Vec<_>>())
                    .map_err(arrow_error)?;
                let kept =
                    arrow::compute::filter_record_batch(&data, &keep).map_err(arrow_error)?;
                let kept = kept.with_schema(full_schema.clone()).map_err(arrow_error)?;
                match projection {
                    Some(p) => kept.project(p).map_err(arrow_error),
                    None => Ok(kept),
                }
            };
            match step() {
                Ok(batch) => emit(batch),
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })
        .map_err(store_error)?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// An append-only table's records (the projected columns), streamed from a snapshot of
/// the store's log.
struct LogScan {
    table: String,
    /// The table's whole schema (the scan may need every column to match deletes).
    full_schema: SchemaRef,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    snapshot: Snapshot,
}

impl fmt::Debug for LogScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogScan({}, {:?})", self.table, self.projection)
    }
}

impl PartitionStream for LogScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        // A small channel: the reader decodes at most a few entries ahead of the query.
        let (tx, rx) = tokio::sync::mpsc::channel::<DfResult<RecordBatch>>(2);
        let (snapshot, table, projection) = (
            self.snapshot.clone(),
            self.table.clone(),
            self.projection.clone(),
        );
        let full_schema = self.full_schema.clone();
        tokio::task::spawn_blocking(move || {
            let deletes = match snapshot.unkeyed_delete_entries(&table) {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.blocking_send(Err(store_error(e)));
                    return;
                }
            };
            let result = if deletes.is_empty() {
                snapshot
                    .scan_log(&table, projection.as_deref(), &mut |_, batch| {
                        tx.blocking_send(Ok(batch)).is_ok()
                    })
                    .map_err(store_error)
            } else {
                scan_with_deletes(
                    &snapshot,
                    &table,
                    &full_schema,
                    projection.as_deref(),
                    &deletes,
                    &mut |batch| tx.blocking_send(Ok(batch)).is_ok(),
                )
            };
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
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
        // The query's snapshot; a scan outside [`QueryEngine::query`] takes its own.
        let snapshot = match state.config().get_extension::<QuerySnapshot>() {
            Some(snapshot) => snapshot,
            None => Arc::new(QuerySnapshot::new(&self.store).map_err(store_error)?),
        };
        if self.table.is_keyed() {
            let rows = snapshot.keyed_rows(&self.table).await?;
            let table = MemTable::try_new(self.schema(), vec![vec![rows]])?;
            return table.scan(state, projection, filters, limit).await;
        }
        if let Some(rows) = snapshot.view_rows(&self.table).await? {
            let table = MemTable::try_new(self.schema(), vec![vec![rows]])?;
            return table.scan(state, projection, filters, limit).await;
        }
        // The projection goes into the log scan: only those columns are decoded.
        let schema = match projection {
            Some(p) => Arc::new(self.table.schema.project(p)?),
            None => self.schema(),
        };
        let scan = LogScan {
            full_schema: self.table.schema.clone(),
            table: self.table.def.name.clone(),
            schema: schema.clone(),
            projection: projection.cloned(),
            snapshot: snapshot.store.clone(),
        };
        StreamingTable::try_new(schema, vec![Arc::new(scan)])?
            .scan(state, None, filters, limit)
            .await
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
        // Some producers read the store (`system.dead_letters`): never on an async worker.
        let rows = self.rows.clone();
        let batch = tokio::task::spawn_blocking(move || rows())
            .await
            .map_err(|e| DataFusionError::Execution(format!("reading {}: {e}", self.name)))?
            .map_err(DataFusionError::Execution)?;
        let snapshot = MemTable::try_new(self.schema(), vec![vec![batch]])?;
        snapshot.scan(state, projection, filters, limit).await
    }
}

/// The query engine: the tables (user tables in the default schema, system tables in
/// `system`), a template session, a memory pool and a runtime shared by all queries.
pub struct QueryEngine {
    ctx: SessionContext,
    store: Arc<Store>,
    limits: QueryLimits,
    runtime: QueryRuntime,
}

/// The queries' own tokio runtime; dropped without blocking (it may be dropped from
/// inside another runtime).
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the query runtime lives as long as the engine")
            .handle()
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What may run: queries only.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl QueryEngine {
    /// A query engine over `store` with the `system` schema in place.
    pub fn new(store: Arc<Store>, limits: QueryLimits) -> Result<Self, QueryError> {
        // One pool for all queries; no disk manager, so nothing spills and a query past
        // the pool fails with "Resources exhausted" naming its largest consumers.
        let pool = TrackConsumersPool::new(
            GreedyMemoryPool::new(limits.memory),
            NonZeroUsize::new(3).expect("3 > 0"),
        );
        let runtime_env = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| QueryError::internal(e.to_string()))?;
        let config = json_dialect(SessionConfig::new().with_information_schema(true));
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime_env)
            .with_default_features()
            .build();
        register_json_functions(&mut state).map_err(|e| QueryError::internal(e.to_string()))?;
        let ctx = SessionContext::new_with_state(state);
        let catalog = ctx
            .catalog("datafusion")
            .expect("the default catalog exists");
        catalog
            .register_schema(SYSTEM_SCHEMA, Arc::new(MemorySchemaProvider::new()))
            .expect("registering a schema in the default catalog");
        let threads = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("siphon-query")
            .enable_all()
            .build()
            .map_err(|e| QueryError::internal(format!("starting the query runtime: {e}")))?;
        Ok(QueryEngine {
            ctx,
            store,
            limits,
            runtime: QueryRuntime(Some(runtime)),
        })
    }

    /// Makes a stored table queryable under its name.
    pub fn register_table(&self, table: TableRef) -> Result<(), QueryError> {
        let name = datafusion::common::TableReference::bare(table.def.name.clone());
        let store = self.store.clone();
        self.ctx
            .register_table(name, Arc::new(StoredTable { table, store }))
            .map(|_| ())
            .map_err(|e| QueryError::internal(e.to_string()))
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
            .map_err(|e| QueryError::internal(e.to_string()))
    }

    /// The limits queries run under.
    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// A fresh session for one query: the template's functions, tables and runtime (so
    /// the shared memory pool), its own copy of the settings, and a new store snapshot.
    fn session(&self) -> Result<SessionState, QueryError> {
        let snapshot =
            QuerySnapshot::new(&self.store).map_err(|e| QueryError::internal(e.to_string()))?;
        let mut state = self.ctx.state();
        state.config_mut().set_extension(Arc::new(snapshot));
        Ok(state)
    }

    /// Plans one read-only query and starts it on the query runtime. Errors before the
    /// result's schema is known (bad SQL, refused statements, a limit hit while planning)
    /// come back here; later ones from [`QueryStream::next`].
    pub async fn query(&self, sql: &str) -> Result<QueryStream, QueryError> {
        let state = self.session()?;
        let limits = self.limits;
        let deadline = limits.timeout.map(|t| Instant::now() + t);
        let sql = sql.to_string();
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel::<RecordBatch>(2);
        let failure: Arc<Mutex<Option<QueryError>>> = Arc::default();
        let fail = failure.clone();
        self.runtime.handle().spawn(async move {
            let planned = within(deadline, limits, plan(state, &sql)).await;
            let mut stream = match planned {
                Ok(stream) => {
                    let _ = schema_tx.send(Ok(stream.schema()));
                    stream
                }
                Err(e) => {
                    let _ = schema_tx.send(Err(e));
                    return;
                }
            };
            loop {
                let step = async {
                    match stream.next().await {
                        None => Ok(None),
                        Some(Ok(batch)) => {
                            // Waiting for a slow reader counts against the deadline too.
                            Ok(tx.send(batch).await.is_ok().then_some(()))
                        }
                        Some(Err(e)) => Err(classify(&e, limits)),
                    }
                };
                tokio::select! {
                    // The reader went away: dropping the stream cancels the query.
                    _ = tx.closed() => return,
                    result = within(deadline, limits, step) => match result {
                        Ok(Some(())) => {}
                        Ok(None) => return,
                        Err(e) => {
                            *fail.lock().expect("failure lock") = Some(e);
                            return;
                        }
                    },
                }
            }
        });
        let schema = schema_rx
            .await
            .map_err(|_| QueryError::internal("the query task stopped before planning"))??;
        Ok(QueryStream {
            schema,
            rx,
            failure,
            finished: false,
        })
    }
}

/// Parses, checks and plans `sql`, and starts executing it.
async fn plan(
    state: SessionState,
    sql: &str,
) -> Result<SendableRecordBatchStream, DataFusionError> {
    let ctx = SessionContext::new_with_state(state);
    let frame = ctx.sql_with_options(sql, read_only()).await?;
    let frame = match json_unions_as_text(frame.logical_plan())? {
        Some(plan) => DataFrame::new(ctx.state(), plan),
        None => frame,
    };
    frame.execute_stream().await
}

/// The SQL dialect of ad hoc queries and views: PostgreSQL's, in which `?` is the JSON
/// key-exists operator (in DataFusion's generic dialect it is a placeholder).
pub(crate) fn json_dialect(config: SessionConfig) -> SessionConfig {
    config.set_str("datafusion.sql_parser.dialect", "postgres")
}

/// Registers the JSON functions and operators (`->`, `->>`, `?`, `json_get`, ...) of
/// `datafusion-functions-json` in a session: ad hoc queries and views both use this.
pub(crate) fn register_json_functions(state: &mut SessionState) -> Result<(), DataFusionError> {
    datafusion_functions_json::register_all(state)
}

/// `plan` with every output column of the JSON union type (what `->` and `json_get`
/// return) turned into its JSON text, marked as a JSON column: neither the result
/// encoders nor a view's storage can hold an Arrow union. `None` when there is none.
pub(crate) fn json_unions_as_text(
    plan: &LogicalPlan,
) -> Result<Option<LogicalPlan>, DataFusionError> {
    let schema = plan.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| f.data_type() == &*datafusion_functions_json::JSON_UNION_DATA_TYPE)
    {
        return Ok(None);
    }
    let to_text = datafusion_functions_json::udfs::json_union_to_text_udf();
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            if field.data_type() == &*datafusion_functions_json::JSON_UNION_DATA_TYPE {
                let metadata = FieldMetadata::from(std::collections::BTreeMap::from([(
                    siphon_connect::schema::SIPHON_TYPE_METADATA_KEY.to_string(),
                    "json".to_string(),
                )]));
                to_text
                    .call(vec![column])
                    .alias_with_metadata(field.name(), Some(metadata))
            } else {
                column
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan.clone())
        .project(exprs)?
        .build()
        .map(Some)
}

/// Runs `work` until `deadline`; a DataFusion error becomes a [`QueryError`].
async fn within<T>(
    deadline: Option<Instant>,
    limits: QueryLimits,
    work: impl Future<Output = Result<T, impl Into<ErrorSource>>>,
) -> Result<T, QueryError> {
    let result = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => return Err(timeout_error(limits)),
        },
        None => work.await,
    };
    result.map_err(|e| match e.into() {
        ErrorSource::DataFusion(e) => classify(&e, limits),
        ErrorSource::Query(e) => e,
    })
}

/// An error from DataFusion, or one already classified.
enum ErrorSource {
    DataFusion(DataFusionError),
    Query(QueryError),
}

impl From<DataFusionError> for ErrorSource {
    fn from(e: DataFusionError) -> Self {
        ErrorSource::DataFusion(e)
    }
}

impl From<QueryError> for ErrorSource {
    fn from(e: QueryError) -> Self {
        ErrorSource::Query(e)
    }
}

fn timeout_error(limits: QueryLimits) -> QueryError {
    let limit = limits.timeout.unwrap_or_default();
    QueryError::new(
        QueryErrorKind::Timeout,
        format!(
            "the query ran longer than the query timeout ({}, `siphon run --query-timeout`) and was cancelled",
            human_duration(limit)
        ),
    )
}

fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Sorts a DataFusion error into what the user can do about it.
fn classify(error: &DataFusionError, limits: QueryLimits) -> QueryError {
    let message = clean_error(&error.to_string());
    match error.find_root() {
        DataFusionError::ResourcesExhausted(_) => QueryError::new(
            QueryErrorKind::Memory,
            format!(
                "the query needs more memory than the query memory limit ({} bytes, `siphon run --query-memory`): {message}",
                limits.memory
            ),
        ),
        DataFusionError::Internal(_) | DataFusionError::IoError(_) => QueryError::internal(message),
        DataFusionError::External(e) if e.is::<StoreError>() => QueryError::internal(message),
        _ => QueryError::new(QueryErrorKind::Invalid, message),
    }
}

/// A running query's result: its schema, then its batches as they are produced.
pub struct QueryStream {
    schema: SchemaRef,
    rx: tokio::sync::mpsc::Receiver<RecordBatch>,
    failure: Arc<Mutex<Option<QueryError>>>,
    finished: bool,
}

impl fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryStream({:?})", self.schema)
    }
}

impl QueryStream {
    /// The result's schema (JSON columns keep their `siphon.type` metadata).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The next batch; `None` at the end. After an error the stream ends.
    pub async fn next(&mut self) -> Option<Result<RecordBatch, QueryError>> {
        if self.finished {
            return None;
        }
        match self.rx.recv().await {
            Some(batch) => Some(Ok(batch)),
            None => {
                self.finished = true;
                self.failure.lock().expect("failure lock").take().map(Err)
            }
        }
    }

    /// Reads the whole result (for tests and small results).
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>, QueryError> {
        let mut batches = Vec::new();
        while let Some(batch) = self.next().await {
            batches.push(batch?);
        }
        Ok(batches)
    }

    /// The batches as a `futures` stream.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<RecordBatch, QueryError>> + Send + 'static {
        futures_util::stream::unfold(self, |mut stream| async move {
            stream.next().await.map(|item| (item, stream))
        })
    }
}

/// DataFusion prefixes errors with its layer ("Error during planning: ..."); keep the
/// message, drop the noise a user cannot act on.
fn clean_error(message: &str) -> String {
    message.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ConnectorKind, TableDef};
    use crate::store::Commit;
    use arrow::array::{Int64Array, StringArray};
    use siphon_connect::schema::{Column, ColumnType};

    fn def(name: &str, key: &[&str]) -> TableDef {
        TableDef {
            name: name.into(),
            columns: vec![
                Column::new("id", ColumnType::BigInt, true),
                Column::new("name", ColumnType::Text, true),
            ],
            primary_key: key.iter().map(|k| k.to_string()).collect(),
            connector: ConnectorKind::HttpInput,
            connection: None,
            options: Default::default(),
        }
    }

    fn rows(table: &TableData, ids: &[i64]) -> RecordBatch {
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        RecordBatch::try_new(
            table.schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    /// What `Engine::commit` does: diff (keyed), store, then memory.
    fn commit(store: &Store, table: &TableData, ids: &[i64]) {
        let batch = table
            .changes_for(rows(table, ids), None)
            .unwrap()
            .changes
            .unwrap();
        let info = store
            .commit(&Commit {
                table: &table.def.name,
                batch: Some(&batch),
                state: None,
                dead_letters: &[],
                unkeyed_deletes: 0,
            })
            .unwrap()
            .unwrap();
        table.push(info, &batch).unwrap();
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<Store>,
        engine: QueryEngine,
        log: TableRef,
        keyed: TableRef,
    }

    fn fixture(limits: QueryLimits) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let engine = QueryEngine::new(store.clone(), limits).unwrap();
        let log: TableRef = Arc::new(TableData::new(def("log", &[]), vec![], &[]).unwrap());
        let keyed: TableRef = Arc::new(TableData::new(def("keyed", &["id"]), vec![], &[]).unwrap());
        engine.register_table(log.clone()).unwrap();
        engine.register_table(keyed.clone()).unwrap();
        Fixture {
            _dir: dir,
            store,
            engine,
            log,
            keyed,
        }
    }

    async fn ints(engine: &QueryEngine, sql: &str) -> Vec<i64> {
        let batches = engine.query(sql).await.unwrap().collect().await.unwrap();
        batches
            .iter()
            .flat_map(|b| {
                let col =
                    arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int64).unwrap();
                col.as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    async fn error(engine: &QueryEngine, sql: &str) -> QueryError {
        match engine.query(sql).await {
            Err(e) => e,
            Ok(stream) => stream.collect().await.expect_err(sql),
        }
    }

    #[tokio::test]
    async fn json_functions_and_operators_are_registered() {
        let f = fixture(QueryLimits::default());
        let sql = r#"SELECT j->>'name' AS op_text, j->'tags' AS op_json, j ? 'name' AS op_has,
            json_get_str(j, 'name') AS s, json_get_int(j, 'n') AS i,
            json_get_float(j, 'f') AS fl, json_get_bool(j, 'b') AS bo,
            json_contains(j, 'tags') AS c, json_length(j, 'tags') AS len,
            json_as_text(j, 'n') AS t, json_get(j, 'tags', 0) AS g
            FROM (SELECT '{"name": "a1", "n": 7, "f": 1.5, "b": true, "tags": ["x", "y"]}' AS j)"#;
        let batches = f.engine.query(sql).await.unwrap().collect().await.unwrap();
        let batch = &batches[0];
        let text = |name: &str| {
            let column = batch.column_by_name(name).unwrap();
            let cast = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).unwrap();
            cast.as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0)
                .to_string()
        };
        assert_eq!(text("op_text"), "a1");
        assert_eq!(text("op_json"), r#"["x", "y"]"#);
        assert_eq!(text("op_has"), "true");
        assert_eq!(text("s"), "a1");
        assert_eq!(text("i"), "7");
        assert_eq!(text("fl"), "1.5");
        assert_eq!(text("bo"), "true");
        assert_eq!(text("c"), "true");
        assert_eq!(text("len"), "2");
        assert_eq!(text("t"), "7");
        assert_eq!(text("g"), r#""x""#);
        // A JSON union output is stored JSON text, marked as a JSON column.
        let field = batch.schema().field_with_name("op_json").unwrap().clone();
        assert_eq!(
            field
                .metadata()
                .get(siphon_connect::schema::SIPHON_TYPE_METADATA_KEY)
                .map(String::as_str),
            Some("json")
        );
    }

    #[tokio::test]
    async fn query_only_statements_and_settings_stay_in_their_query() {
        let f = fixture(QueryLimits::default());
        for sql in [
            "SET datafusion.execution.batch_size = 1",
            "PREPARE p AS SELECT 1",
            "BEGIN TRANSACTION",
            "CREATE TABLE x (a INT)",
            "CREATE VIEW v AS SELECT 1",
            "INSERT INTO log VALUES (1, 'a')",
            "COPY log TO '/tmp/siphon-copy.csv'",
        ] {
            let e = error(&f.engine, sql).await;
            assert_eq!(e.kind, QueryErrorKind::Invalid, "{sql}: {e}");
        }
        let batches = f
            .engine
            .query("SHOW datafusion.execution.batch_size")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("8192"), "{text}");
    }

    #[tokio::test]
    async fn projection_reaches_the_log_scan() {
        let f = fixture(QueryLimits::default());
        commit(&f.store, &f.log, &[1, 2]);
        commit(&f.store, &f.log, &[3]);
        assert_eq!(
            ints(&f.engine, "SELECT id FROM log ORDER BY id").await,
            vec![1, 2, 3]
        );
        assert_eq!(ints(&f.engine, "SELECT count(*) FROM log").await, vec![3]);
        // The log scan itself decodes only `name`: the stream it produces has that one
        // column, and no projection is left for the plan to apply.
        let state = f.engine.session().unwrap();
        let provider = StoredTable {
            table: f.log.clone(),
            store: f.store.clone(),
        };
        let plan = provider
            .scan(&state, Some(&vec![1]), &[], None)
            .await
            .unwrap();
        let exec = plan
            .downcast_ref::<datafusion::physical_plan::streaming::StreamingTableExec>()
            .unwrap();
        assert!(exec.projection().is_none());
        let fields: Vec<_> = exec.partitions()[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(fields, vec!["name".to_string()]);
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx())
            .await
            .unwrap();
        assert_eq!(batches.iter().map(|b| b.num_columns()).max(), Some(1));
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    }

    #[tokio::test]
    async fn every_scan_of_a_query_reads_one_snapshot() {
        let f = fixture(QueryLimits::default());
        commit(&f.store, &f.log, &[1, 2]);
        commit(&f.store, &f.keyed, &[1, 2]);
        // The query's session takes its snapshot; commits land before its scans run.
        let state = f.engine.session().unwrap();
        commit(&f.store, &f.log, &[3]);
        commit(&f.store, &f.keyed, &[3, 4]);
        let sql = "SELECT (SELECT count(*) FROM log a, log b) AS self_join, \
                   (SELECT count(*) FROM keyed) AS keyed, \
                   (SELECT count(*) FROM keyed k JOIN log l ON k.id = l.id) AS joined";
        let mut stream = plan(state, sql).await.unwrap();
        let batch = stream.next().await.unwrap().unwrap();
        let row: Vec<i64> = (0..3)
            .map(|i| {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0)
            })
            .collect();
        assert_eq!(row, vec![4, 2, 2]);
        // A new query sees everything.
        assert_eq!(ints(&f.engine, "SELECT count(*) FROM keyed").await, vec![4]);
        assert_eq!(ints(&f.engine, "SELECT count(*) FROM log").await, vec![3]);
    }

    #[tokio::test]
    async fn limits_give_their_own_errors_and_later_queries_run() {
        let f = fixture(QueryLimits {
            memory: 1 << 20,
            timeout: None,
        });
        let e = error(
            &f.engine,
            "SELECT count(DISTINCT value) FROM range(2000000)",
        )
        .await;
        assert_eq!(e.kind, QueryErrorKind::Memory, "{e}");
        assert!(e.message.contains("--query-memory"), "{e}");
        assert_eq!(ints(&f.engine, "SELECT 1").await, vec![1]);

        let f = fixture(QueryLimits {
            memory: DEFAULT_QUERY_MEMORY,
            timeout: Some(Duration::from_millis(300)),
        });
        // Slow by construction (10^15 rows; the filter keeps statistics from answering).
        let slow = error(
            &f.engine,
            "SELECT count(*) FROM range(1000000000000000) WHERE value % 7 = 3",
        );
        let e = tokio::time::timeout(Duration::from_secs(60), slow)
            .await
            .expect("the query timeout must cancel the query");
        assert_eq!(e.kind, QueryErrorKind::Timeout, "{e}");
        assert!(e.message.contains("--query-timeout"), "{e}");
        assert_eq!(ints(&f.engine, "SELECT 1").await, vec![1]);
    }
}
