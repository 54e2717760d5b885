//! What the engine keeps in memory about each table: its definition, the metadata of its
//! committed log entries, and, for a PRIMARY KEY table, its current rows.
//!
//! An append-only table's records are not kept in memory: queries stream them from the
//! store's log (see [`crate::query`]), so memory does not grow with the table. A keyed
//! table's current rows are kept (they are bounded by the number of keys, and the log alone
//! cannot answer "the latest row per key" without a replay).
//!
//! Invariant: a table's commit metadata lists exactly the store's log entries, in sequence
//! order. It is appended to only after the store's commit returned, under the table's
//! commit lock, so nothing here describes a record that is not durable.

use std::sync::{Arc, Mutex, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

use crate::catalog::TableDef;
use crate::ingress::PushDecoders;
use crate::keyed::{Diff, KeyedRows, Snapshot};
use crate::store::CommitInfo;

/// The table option that bounds the records of waiting pushes.
pub const MAX_BUFFERED_RECORDS: &str = "max_buffered_records";

/// A table: definition, schema, commit metadata and (keyed) current rows.
#[derive(Debug)]
pub struct TableData {
    /// The definition.
    pub def: TableDef,
    /// Arrow schema of its rows.
    pub schema: SchemaRef,
    commits: RwLock<Vec<CommitInfo>>,
    /// For a PRIMARY KEY table: the latest row per key (the log replayed).
    keyed: Option<Mutex<KeyedRows>>,
    /// Held while committing, so metadata order equals sequence order.
    pub commit_lock: tokio::sync::Mutex<()>,
    /// The sequence number of the table's last durable commit (0: none yet), for readers
    /// that follow its changes.
    last_sequence: tokio::sync::watch::Sender<u64>,
    /// The decoders of pushes to this table.
    pub(crate) push_decoders: PushDecoders,
    /// Records of pushes that wait (paused, or queued to commit): a push takes a permit per
    /// record before it waits, so past `max_buffered_records` the next push waits too.
    pub(crate) push_budget: tokio::sync::Semaphore,
    /// The table's `max_buffered_records`.
    pub(crate) max_buffered_records: usize,
    /// The views maintained from this table's commits (every view whose chain of inputs
    /// starts here), inputs before readers. Changed only under the commit lock.
    views: RwLock<Arc<[Arc<crate::view::View>]>>,
    /// For a view's rows: the view and the table at the root of its chain (whose commit
    /// lock guards the view's state).
    view_source: std::sync::OnceLock<(
        std::sync::Weak<crate::view::View>,
        std::sync::Weak<TableData>,
    )>,
}

/// The default of `max_buffered_records`, as Feldera's HTTP input.
pub const DEFAULT_MAX_BUFFERED_RECORDS: usize = 100_000;

impl TableData {
    /// A table with the given commits. A keyed table replays `changes` (its whole log, in
    /// order) into its current rows; an append-only table ignores them.
    pub fn new(
        def: TableDef,
        commits: Vec<CommitInfo>,
        changes: &[RecordBatch],
    ) -> Result<Self, ArrowError> {
        let schema = def.schema().arrow_schema();
        let keyed = if def.primary_key.is_empty() {
            None
        } else {
            Some(Mutex::new(replay(&schema, &def.primary_key, changes)?))
        };
        let last = commits.last().map_or(0, |c| c.sequence);
        let max_buffered_records = def
            .options
            .get(MAX_BUFFERED_RECORDS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_BUFFERED_RECORDS);
        Ok(TableData {
            last_sequence: tokio::sync::watch::Sender::new(last),
            push_decoders: PushDecoders::default(),
            push_budget: tokio::sync::Semaphore::new(max_buffered_records),
            max_buffered_records,
            def,
            schema,
            commits: RwLock::new(commits),
            keyed,
            commit_lock: tokio::sync::Mutex::new(()),
            views: RwLock::new(Arc::from(Vec::new())),
            view_source: std::sync::OnceLock::new(),
        })
    }

    /// The views maintained from this table's commits, inputs before readers.
    pub fn views(&self) -> Arc<[Arc<crate::view::View>]> {
        self.views.read().expect("views lock").clone()
    }

    /// Sets the views maintained from this table's commits.
    pub(crate) fn set_views(&self, views: Vec<Arc<crate::view::View>>) {
        *self.views.write().expect("views lock") = Arc::from(views);
    }

    /// Marks this as the rows of `view`, maintained under `root`'s commit lock.
    pub(crate) fn set_view_source(&self, view: &Arc<crate::view::View>, root: &TableRef) {
        let _ = self
            .view_source
            .set((Arc::downgrade(view), Arc::downgrade(root)));
    }

    /// For a view's rows: the view and its root table.
    pub(crate) fn view_source(&self) -> Option<(Arc<crate::view::View>, TableRef)> {
        let (view, root) = self.view_source.get()?;
        Some((view.upgrade()?, root.upgrade()?))
    }

    /// Whether this is a view's rows (read-only: maintained from its input's commits).
    pub fn is_view(&self) -> bool {
        self.def.connector == crate::catalog::ConnectorKind::View
    }

    /// Whether the table keeps the latest row per key.
    pub fn is_keyed(&self) -> bool {
        self.keyed.is_some()
    }

    /// For a keyed table, the change batch that `incoming` makes (see [`KeyedRows::diff`]);
    /// for an append-only table, `incoming` itself. Call under the commit lock.
    pub fn changes_for(
        &self,
        incoming: RecordBatch,
        snapshot: Option<Snapshot>,
    ) -> Result<Diff, ArrowError> {
        match &self.keyed {
            None => Ok(Diff {
                changes: (incoming.num_rows() > 0).then_some(incoming),
                withheld_deletes: 0,
            }),
            Some(rows) => rows
                .lock()
                .expect("keyed rows lock")
                .diff(&incoming, snapshot),
        }
    }

    /// Records a batch that was just committed (and applies it to a keyed table's rows).
    pub fn push(&self, meta: CommitInfo, batch: &RecordBatch) -> Result<(), ArrowError> {
        #[cfg(test)]
        if FAIL_NEXT_PUSH.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(ArrowError::ComputeError("injected by a test".into()));
        }
        if let Some(rows) = &self.keyed {
            rows.lock().expect("keyed rows lock").apply(batch)?;
        }
        self.commits.write().expect("commits lock").push(meta);
        self.last_sequence.send_replace(meta.sequence);
        Ok(())
    }

    /// Replaces the in-memory part with the store's: `commits` (every entry's metadata)
    /// and, for a keyed table, `changes` (its whole log, in order). Call under the commit
    /// lock.
    pub fn reload(
        &self,
        commits: Vec<CommitInfo>,
        changes: &[RecordBatch],
    ) -> Result<(), ArrowError> {
        if let Some(rows) = &self.keyed {
            let fresh = replay(&self.schema, &self.def.primary_key, changes)?;
            *rows.lock().expect("keyed rows lock") = fresh;
        }
        let last = commits.last().map_or(0, |c| c.sequence);
        *self.commits.write().expect("commits lock") = commits;
        self.last_sequence.send_if_modified(|current| {
            let changed = *current != last;
            *current = last;
            changed
        });
        Ok(())
    }

    /// Follows the sequence number of the table's last durable commit (0: none yet). It
    /// changes only after a commit is durable and visible to queries.
    pub fn watch_sequence(&self) -> tokio::sync::watch::Receiver<u64> {
        self.last_sequence.subscribe()
    }

    /// Runs `f` on a keyed table's current rows (`None` for a table without a key). Call
    /// under the commit lock.
    pub(crate) fn with_keyed<R>(&self, f: impl FnOnce(&KeyedRows) -> R) -> Option<R> {
        self.keyed
            .as_ref()
            .map(|rows| f(&rows.lock().expect("keyed rows lock")))
    }

    /// How many keys a keyed table holds (0 for an append-only table).
    pub fn keyed_len(&self) -> usize {
        self.keyed
            .as_ref()
            .map_or(0, |rows| rows.lock().expect("keyed rows lock").len())
    }

    /// A keyed table's current rows; `None` for an append-only table (its rows are read
    /// from the store).
    pub fn keyed_rows(&self) -> Option<Result<RecordBatch, ArrowError>> {
        self.keyed
            .as_ref()
            .map(|rows| rows.lock().expect("keyed rows lock").batch())
    }

    /// Metadata of every committed entry, in sequence order.
    pub fn commits(&self) -> Vec<CommitInfo> {
        self.commits.read().expect("commits lock").clone()
    }
}

/// A keyed table's current rows: its change log replayed in order.
fn replay(
    schema: &SchemaRef,
    key: &[String],
    changes: &[RecordBatch],
) -> Result<KeyedRows, ArrowError> {
    let mut rows = KeyedRows::new(schema.clone(), key)?;
    for batch in changes {
        rows.apply(batch)?;
    }
    Ok(rows)
}

/// Makes the next [`TableData::push`] fail, as a bug in the in-memory update would.
#[cfg(test)]
pub(crate) static FAIL_NEXT_PUSH: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Shared handle.
pub type TableRef = Arc<TableData>;
