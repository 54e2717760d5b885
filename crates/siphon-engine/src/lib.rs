//! siphon-engine: pipelines, catalog, store, runtime and SQL.
//!
//! [`Engine`] is the running system: it opens the store, applies pipeline files to the
//! persisted catalog, runs one task per polling source, commits each poll atomically, and
//! answers SQL over the committed data. The HTTP server and the CLI are thin layers over it.

pub mod catalog;
pub mod cluster;
mod committer;
pub mod egress;
pub mod encode;
pub mod fluvio;
mod group_commit;
pub mod identity;
pub mod ingress;
pub mod keyed;
pub mod observe;
pub mod pipeline;
pub mod query;
mod runtime;
pub mod sink;
pub mod status;
pub mod store;
mod system;
pub mod tables;
pub mod view;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::RecordBatch;
use chrono::Utc;
use siphon_connect::source::{PollProgress, PollingSource, SharedResources, http_client};

/// Options that decide what a connection's tables share (token, rate limit): a table that
/// sets one of these itself gets its own.
const SHARED_OPTION_PREFIXES: &[&str] =
    &["auth_type", "client_", "token_url", "scope", "rate_limit"];
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::catalog::{Catalog, ConnectorKind};
pub use crate::committer::PushOutcome;
use crate::committer::{Committer, Job};
use crate::ingress::{PushError, PushFormat, UpdateFormat};
use crate::observe::Observer;
use crate::pipeline::{LoadError, SourceFile};
use crate::query::{QueryEngine, QueryError, QueryLimits, QueryStream};
use crate::status::SourceStatus;
use crate::store::{CommitInfo, DeadLetterRow, Store, StoreError};
use crate::tables::{TableData, TableRef};

/// Why the engine could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The pipeline files (or the stored catalog) have errors; nothing was applied.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Load(Vec<LoadError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A view could not take a change, or could not be brought up to date.
    #[error(transparent)]
    View(#[from] view::ViewError),
    /// Something that should not happen (a panicked task, a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// Whether the fault is in the user's input (exit code 2) rather than at run time.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            EngineError::Load(_) | EngineError::View(view::ViewError::Eval { .. })
        )
    }
}

/// What the engine keeps in memory of a stored table: its commits' metadata and, for a
/// keyed table, its whole log (to replay into the current rows). An append-only table's
/// records stay in the store until a query streams them.
fn stored_parts(
    store: &Store,
    table: &str,
    keyed: bool,
) -> Result<(Vec<CommitInfo>, Vec<RecordBatch>), StoreError> {
    let commits = store.log_meta(table)?;
    let changes = if keyed {
        store
            .read_log(table, 0)?
            .into_iter()
            .map(|e| e.batch)
            .collect()
    } else {
        Vec::new()
    };
    Ok((commits, changes))
}

/// What [`Engine::commit`] did.
#[derive(Clone, Copy, Debug)]
pub struct Committed {
    /// Where the records landed; `None` when nothing changed (state only).
    pub info: Option<CommitInfo>,
    /// Deletes a snapshot implied that the `max_delete_ratio` guard withheld.
    pub withheld_deletes: usize,
}

/// The running system.
pub struct Engine {
    store: Arc<Store>,
    catalog: RwLock<Catalog>,
    tables: RwLock<BTreeMap<String, TableRef>>,
    statuses: RwLock<BTreeMap<String, Arc<Mutex<SourceStatus>>>>,
    sources: Mutex<Vec<(TableRef, PollingSource)>>,
    query: QueryEngine,
    shutdown: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
    notes: Vec<String>,
    observer: Arc<Observer>,
    progress: BTreeMap<String, Arc<PollProgress>>,
    committer: Committer,
    /// Group commit of polls (many sources, one fsync).
    poll_committer: group_commit::GroupCommitter,
    /// Whether inputs are paused: sources do not poll, pushes wait (unless forced).
    paused: watch::Sender<bool>,
    egress_cache: Arc<egress::ChunkCache>,
    /// Every sink: its definition, options and live figures (started by [`Engine::start`]).
    sinks: Vec<(
        catalog::SinkDef,
        Arc<sink::config::NatsSinkConfig>,
        Arc<sink::SinkHandle>,
    )>,
}

/// What a push stored, with what the request held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// Records in the request.
    pub records: usize,
    /// What the commit did.
    pub outcome: PushOutcome,
    /// For CSV: whether the first line was taken as a header.
    pub csv_header: Option<bool>,
}

/// Settings of a running engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Rows kept per source in `system.connector_logs` and `system.http_metrics`.
    pub history_per_source: usize,
    /// How many dead letters the store keeps.
    pub retention: store::Retention,
    /// Memory and time limits of queries (`--query-memory`, `--query-timeout`).
    pub query_limits: QueryLimits,
    /// Open with inputs paused (`siphon run --paused`).
    pub start_paused: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            history_per_source: observe::DEFAULT_HISTORY_PER_SOURCE,
            retention: store::Retention::default(),
            query_limits: QueryLimits::default(),
            start_paused: false,
        }
    }
}

impl Engine {
    /// Opens the store in `data_dir`, applies `files` to its catalog (all or nothing) and
    /// prepares every source. Sources start with [`Engine::start`].
    pub async fn open(
        data_dir: &Path,
        files: Vec<SourceFile>,
        env: impl Fn(&str) -> Option<String> + Send + 'static,
        options: EngineOptions,
    ) -> Result<Arc<Engine>, EngineError> {
        let dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || Engine::open_blocking(&dir, files, &env, options))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    fn open_blocking(
        data_dir: &Path,
        files: Vec<SourceFile>,
        env: &dyn Fn(&str) -> Option<String>,
        options: EngineOptions,
    ) -> Result<Arc<Engine>, EngineError> {
        let store = Arc::new(Store::open_with(data_dir, options.retention)?);
        let base = Catalog::from_entries(&store.catalog()?).map_err(EngineError::Internal)?;
        let loaded = pipeline::load(&files, &base, env).map_err(EngineError::Load)?;
        if !loaded.store_changes.is_empty() {
            store.apply_catalog(&loaded.store_changes)?;
        }

        let client = http_client();
        // One token cache and one rate limiter per connection, shared by its tables unless
        // a table overrides the options they depend on.
        let mut shared_by_connection: BTreeMap<String, SharedResources> = BTreeMap::new();
        let query = QueryEngine::new(store.clone(), options.query_limits)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut tables = BTreeMap::new();
        let mut statuses = BTreeMap::new();
        let mut sources = Vec::new();
        let mut progress = BTreeMap::new();
        for def in loaded.catalog.tables.values() {
            let (commits, changes) = stored_parts(&store, &def.name, !def.primary_key.is_empty())?;
            let table: TableRef =
                Arc::new(TableData::new(def.clone(), commits, &changes).map_err(|e| {
                    EngineError::Internal(format!("loading table {}: {e}", def.name))
                })?);
            query
                .register_table(table.clone())
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            if def.connector == ConnectorKind::PollingHttp {
                let config = loaded.sources.get(&def.name).cloned().ok_or_else(|| {
                    EngineError::Internal(format!("table {} has no bound source", def.name))
                })?;
                let overrides_shared = def
                    .options
                    .keys()
                    .any(|k| SHARED_OPTION_PREFIXES.iter().any(|p| k.starts_with(p)));
                let shared = match &def.connection {
                    Some(conn) if !overrides_shared => shared_by_connection
                        .entry(conn.clone())
                        .or_insert_with(|| SharedResources::for_config(&config, &client))
                        .clone(),
                    _ => SharedResources::for_config(&config, &client),
                };
                let source =
                    PollingSource::new(config, Arc::new(def.schema()), client.clone(), shared)
                        .map_err(|e| EngineError::Internal(e.to_string()))?;
                statuses.insert(
                    def.name.clone(),
                    Arc::new(Mutex::new(SourceStatus {
                        connection_name: def.connection.clone(),
                        next_poll_at: Some(Utc::now()),
                        ..SourceStatus::new(def.connector.name(), &def.name)
                    })),
                );
                progress.insert(def.name.clone(), source.progress());
                sources.push((table.clone(), source));
            }
            tables.insert(def.name.clone(), table);
        }

        // Views: stored like tables, maintained from the table at the root of their chain.
        let mut views_by_root: BTreeMap<String, Vec<Arc<view::View>>> = BTreeMap::new();
        let mut root_of: BTreeMap<String, String> = BTreeMap::new();
        let mut all_views = Vec::new();
        for (def, plan) in &loaded.views {
            let commits = store.log_meta(&def.name)?;
            let table: TableRef =
                Arc::new(TableData::new(def.table_def(), commits, &[]).map_err(|e| {
                    EngineError::Internal(format!("loading view {}: {e}", def.name))
                })?);
            query
                .register_table(table.clone())
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            let view = Arc::new(
                view::View::new(def.clone(), plan.clone(), table.clone()).map_err(|e| {
                    EngineError::Internal(format!("loading view {}: {e}", def.name))
                })?,
            );
            let root = root_of
                .get(&plan.input)
                .cloned()
                .unwrap_or_else(|| plan.input.clone());
            root_of.insert(def.name.clone(), root.clone());
            views_by_root.entry(root).or_default().push(view.clone());
            all_views.push(view);
            tables.insert(def.name.clone(), table);
        }
        for (root, views) in views_by_root {
            if let Some(table) = tables.get(&root) {
                for view in &views {
                    view.table.set_view_source(view, table);
                }
                table.set_views(views);
            }
        }
        let reconciled =
            view::reconcile_all(&store, &|name| tables.get(name).cloned(), &all_views)?;
        let mut notes = loaded.notes;
        if !reconciled.is_empty() {
            notes.push(format!(
                "views computed afresh from their inputs: {}",
                reconciled.join(", ")
            ));
        }

        let sinks = loaded
            .catalog
            .sinks
            .values()
            .filter_map(|def| {
                let config = loaded.sinks.get(&def.name)?.clone();
                Some((def.clone(), config, Arc::new(sink::SinkHandle::new(def))))
            })
            .collect();

        let (shutdown, _) = watch::channel(false);
        let committer = Committer::start(store.clone())
            .map_err(|e| EngineError::Internal(format!("starting the committer thread: {e}")))?;
        let poll_committer = group_commit::GroupCommitter::start(store.clone())
            .map_err(|e| EngineError::Internal(format!("starting the poll commit thread: {e}")))?;
        let engine = Arc::new(Engine {
            committer,
            poll_committer,
            paused: watch::Sender::new(options.start_paused),
            store,
            catalog: RwLock::new(loaded.catalog),
            tables: RwLock::new(tables),
            statuses: RwLock::new(statuses),
            sources: Mutex::new(sources),
            query,
            shutdown,
            tasks: tokio::sync::Mutex::new(JoinSet::new()),
            notes,
            progress,
            observer: Arc::new(Observer::new(options.history_per_source)),
            egress_cache: Arc::new(egress::ChunkCache::new(egress::DEFAULT_CACHE_BYTES)),
            sinks,
        });
        system::register(&engine).map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(engine)
    }

    /// Starts every polling source.
    pub async fn start(self: &Arc<Self>) {
        let sources = std::mem::take(&mut *self.sources.lock().expect("sources lock"));
        // Sources that never polled start spread over 1 ms per source (at most their
        // interval): a few start at once, ten thousand over ten seconds, not all in one go.
        let first_tick_spread = std::time::Duration::from_millis(sources.len() as u64);
        let mut tasks = self.tasks.lock().await;
        for (table, source) in sources {
            let status = self.statuses.read().expect("status lock")[&table.def.name].clone();
            let id = observe::SourceId::new(
                table.def.connector.name(),
                &table.def.name,
                table.def.connection.as_deref(),
            );
            let identity = {
                let catalog = self.catalog.read().expect("catalog lock");
                let connection = table
                    .def
                    .connection
                    .as_ref()
                    .and_then(|c| catalog.connections.get(c));
                identity::poll_identity(&table.def, connection)
            };
            let task = runtime::SourceTask {
                engine: self.clone(),
                table,
                source,
                status,
                shutdown: self.shutdown.subscribe(),
                id,
                identity,
                first_tick_spread,
            };
            tasks.spawn(task.run());
        }
        for (def, config, handle) in &self.sinks {
            let task = sink::SinkTask {
                engine: self.clone(),
                def: def.clone(),
                config: config.clone(),
                handle: handle.clone(),
                shutdown: self.shutdown.subscribe(),
            };
            tasks.spawn(task.run());
        }
    }

    /// Stops every source (a poll in flight is abandoned; a commit in flight completes)
    /// and waits for them.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let mut tasks = self.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }

    /// Metrics, logs and request history.
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// Notes from loading the pipeline files (not errors).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Names of the tables, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.tables
            .read()
            .expect("tables lock")
            .keys()
            .cloned()
            .collect()
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Option<TableRef> {
        self.tables.read().expect("tables lock").get(name).cloned()
    }

    /// The catalog as it stands.
    pub fn catalog(&self) -> Catalog {
        self.catalog.read().expect("catalog lock").clone()
    }

    /// A snapshot of every source's status, by table name, then every sink's, by name.
    pub fn statuses(&self) -> Vec<SourceStatus> {
        let mut statuses: Vec<SourceStatus> = self
            .statuses
            .read()
            .expect("status lock")
            .values()
            .map(|s| {
                let mut status = s.lock().expect("status lock").clone();
                if let Some((pages, records)) = self
                    .progress
                    .get(&status.table_name)
                    .and_then(|p| p.current())
                {
                    status.in_flight_pages = Some(pages);
                    status.in_flight_records = Some(records);
                }
                status
            })
            .collect();
        statuses.extend(
            self.sinks
                .iter()
                .map(|(_, _, handle)| handle.status_at(self.head_of(&handle.from))),
        );
        statuses
    }

    /// The last sequence number of a table or view (0 when it has none).
    fn head_of(&self, table: &str) -> u64 {
        self.table(table)
            .map(|t| *t.watch_sequence().borrow())
            .unwrap_or(0)
    }

    /// Every metric in OpenMetrics text, the sinks' lag brought up to date first.
    pub fn render_metrics(&self) -> String {
        for (def, _, handle) in &self.sinks {
            let position = handle.position.load(std::sync::atomic::Ordering::Acquire);
            let lag = self.head_of(&handle.from).saturating_sub(position);
            self.observer.sink_progress(&def.name, position, lag);
        }
        self.observer
            .store_transactions(self.store.commit_transactions());
        self.observer.render()
    }

    /// Starts a read-only SQL query; its result streams from the returned [`QueryStream`].
    pub async fn query(&self, sql: &str) -> Result<QueryStream, QueryError> {
        self.query.query(sql).await
    }

    /// The limits queries run under.
    pub fn query_limits(&self) -> QueryLimits {
        self.query.limits()
    }

    /// Commits records, source state and dead letters for one table atomically, then makes
    /// the records visible to queries.
    ///
    /// For a PRIMARY KEY table the records are diffed against its current rows first, and
    /// only the changes are stored; a `snapshot` says the records are the API's whole list,
    /// so keys missing from them are deleted (within its guard).
    pub async fn commit(
        &self,
        table: &TableRef,
        records: Option<RecordBatch>,
        snapshot: Option<keyed::Snapshot>,
        state: Option<Vec<u8>>,
        dead_letters: Vec<DeadLetterRow>,
    ) -> Result<Committed, EngineError> {
        let _guard = table.commit_lock.lock().await;
        let (batch, withheld_deletes) = match records {
            Some(records) => {
                let diff = table.changes_for(records, snapshot).map_err(|e| {
                    EngineError::Internal(format!("diffing {}: {e}", table.def.name))
                })?;
                (diff.changes, diff.withheld_deletes)
            }
            None => (None, 0),
        };
        let views = table.views();
        let view_changes = match &batch {
            Some(batch) if !views.is_empty() => match view::changes_of(table, &views, batch) {
                Ok(changes) => changes,
                Err(e) => {
                    self.rebuild_view_states(table).await;
                    return Err(e.into());
                }
            },
            _ => Vec::new(),
        };
        // Written with whatever other polls are waiting: one fsync for all of them.
        let committed = self
            .poll_committer
            .write(group_commit::PollWrite {
                table: table.def.name.clone(),
                batch: batch.clone(),
                state,
                dead_letters,
                view_changes,
            })
            .await
            .map_err(EngineError::from);
        let (infos, view_changes) = match committed {
            Ok(done) => done,
            Err(e) => {
                if !views.is_empty() {
                    self.rebuild_view_states(table).await;
                }
                return Err(e);
            }
        };
        let mut infos = infos.into_iter();
        let info = infos.next().flatten();
        apply_view_changes(&self.store, view_changes, infos);
        // From here on the poll is durable: an error must not make the caller keep its old
        // state (the next poll would store the same records again). If the in-memory
        // update fails, the table is rebuilt from the store instead.
        if let (Some(info), Some(batch)) = (&info, batch)
            && let Err(e) = table.push(*info, &batch)
        {
            tracing::error!(table = %table.def.name, error = %e, "applying a committed batch in memory failed; reloading the table from the store");
            if let Err(e) = self.reload_locked(table).await {
                tracing::error!(table = %table.def.name, error = %e, "reloading the table from the store failed");
            }
        }
        Ok(Committed {
            info,
            withheld_deletes,
        })
    }

    /// Stores records pushed to `table` (all of the request or none of it), durably when
    /// it returns `Ok`. While inputs are paused it waits for resume, unless `force`. It
    /// takes one permit of the table's `max_buffered_records` budget per record before it
    /// waits, so past that many waiting records the next push waits for room
    /// (backpressure) instead of failing.
    pub async fn push(
        &self,
        table: &str,
        body: bytes::Bytes,
        format: PushFormat,
        update_format: UpdateFormat,
        force: bool,
    ) -> Result<Pushed, PushError> {
        let table = self
            .table(table)
            .ok_or_else(|| PushError::UnknownTable(table.to_string()))?;
        if table.is_view() {
            return Err(PushError::Request(format!(
                "{} is a view: its rows are computed from its input, push to that table instead",
                table.def.name
            )));
        }
        let result = self
            .push_to(&table, body, format, update_format, force)
            .await;
        let outcome = match &result {
            Ok(pushed) => Ok(pushed.outcome.inserted as u64),
            Err(PushError::Record { .. } | PushError::Request(_)) => Err("rejected"),
            Err(_) => Err("error"),
        };
        self.observer.push_answered(&table.def.name, outcome);
        result
    }

    async fn push_to(
        &self,
        table: &TableRef,
        body: bytes::Bytes,
        format: PushFormat,
        update_format: UpdateFormat,
        force: bool,
    ) -> Result<Pushed, PushError> {
        let parsed = {
            let table = table.clone();
            tokio::task::spawn_blocking(move || {
                ingress::parse(
                    &table.def,
                    &table.push_decoders,
                    &body,
                    format,
                    update_format,
                )
            })
            .await
            .map_err(|e| PushError::Internal(e.to_string()))??
        };
        let permits = parsed.records.clamp(1, table.max_buffered_records) as u32;
        let mut shutdown = self.shutdown.subscribe();
        let _budget = tokio::select! {
            permit = table.push_budget.acquire_many(permits) => permit.map_err(|_| PushError::ShuttingDown)?,
            _ = shutdown.wait_for(|stop| *stop) => return Err(PushError::ShuttingDown),
        };
        if !force {
            let mut paused = self.paused.subscribe();
            tokio::select! {
                resumed = paused.wait_for(|p| !*p) => { resumed.map_err(|_| PushError::ShuttingDown)?; }
                _ = shutdown.wait_for(|stop| *stop) => return Err(PushError::ShuttingDown),
            }
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.committer.submit(Job {
            table: table.clone(),
            runs: parsed.runs,
            reply,
        })?;
        let outcome = answer
            .await
            .map_err(|_| PushError::Internal("the committer stopped before answering".into()))??;
        Ok(Pushed {
            records: parsed.records,
            outcome,
            csv_header: parsed.csv_header,
        })
    }

    /// Pauses inputs: sources stop polling after the poll in flight, pushes wait.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Resumes inputs.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Whether inputs are paused.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Follows whether inputs are paused.
    pub(crate) fn watch_paused(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }

    /// Rebuilds a table's in-memory part (commit metadata, a keyed table's current rows)
    /// from the store, so it describes exactly what is durable.
    pub async fn reload_table(&self, table: &TableRef) -> Result<(), EngineError> {
        let _guard = table.commit_lock.lock().await;
        self.reload_locked(table).await?;
        if !table.views().is_empty() {
            self.rebuild_view_states(table).await;
        }
        Ok(())
    }

    /// [`Engine::reload_table`] with the table's commit lock already held.
    async fn reload_locked(&self, table: &TableRef) -> Result<(), EngineError> {
        let (store, table) = (self.store.clone(), table.clone());
        tokio::task::spawn_blocking(move || reload_from_store(&store, &table))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    /// Rebuilds the `GROUP BY` state of a table's views from the store (after a commit
    /// that failed once their state had taken its change). Call under the commit lock.
    async fn rebuild_view_states(&self, table: &TableRef) {
        let (store, table) = (self.store.clone(), table.clone());
        let done = tokio::task::spawn_blocking(move || rebuild_views(&store, &table)).await;
        if let Ok(Err(e)) | Err(e) = done.map_err(|e| EngineError::Internal(e.to_string())) {
            tracing::error!(error = %e, "rebuilding the state of views failed");
        }
    }
}

/// Rebuilds the `GROUP BY` state of `root`'s views from the store; call under its commit
/// lock.
pub(crate) fn rebuild_views(store: &Store, root: &TableRef) -> Result<(), EngineError> {
    let views = root.views();
    let mut inputs: BTreeMap<String, TableRef> = BTreeMap::new();
    inputs.insert(root.def.name.clone(), root.clone());
    for v in views.iter() {
        inputs.insert(v.name().to_string(), v.table.clone());
    }
    view::rebuild_states(store, &|name| inputs.get(name).cloned(), &views)?;
    Ok(())
}

/// Makes committed view changes visible (`infos`: where each landed, in order).
pub(crate) fn apply_view_changes(
    store: &Store,
    changes: Vec<view::ViewChange>,
    infos: impl Iterator<Item = Option<CommitInfo>>,
) {
    for (change, info) in changes.into_iter().zip(infos) {
        if let Some(info) = info
            && let Err(e) = change.view.table.push(info, &change.batch)
        {
            tracing::error!(view = %change.view.name(), error = %e, "applying a committed view change in memory failed; reloading it from the store");
            if let Err(e) = reload_from_store(store, &change.view.table) {
                tracing::error!(view = %change.view.name(), error = %e, "reloading the view from the store failed");
            }
        }
    }
}

/// Rebuilds a table's in-memory part from the store; call under its commit lock.
pub(crate) fn reload_from_store(store: &Store, table: &TableRef) -> Result<(), EngineError> {
    let (commits, changes) = stored_parts(store, &table.def.name, table.is_keyed())?;
    table
        .reload(commits, &changes)
        .map_err(|e| EngineError::Internal(format!("reloading {}: {e}", table.def.name)))
}

#[cfg(test)]
mod engine_tests;
