//! Group commit of pushes: many concurrent pushes share one durable transaction.
//!
//! Every push goes through one committer thread. It takes the pushes waiting in its queue
//! (up to [`MAX_GROUP_RECORDS`]), holds the commit locks of their tables (in name order, so
//! it never deadlocks with a poll, which holds one), turns each push into its change batch
//! in queue order — a later push sees the earlier ones' changes through a [`Stage`], never
//! through the tables' visible rows — and writes them all with one
//! [`Store::commit_group`]: one fsync for the whole group. Only after that returns are
//! the changes applied in memory and the pushes answered, so a push that got its answer is
//! durable, and a push that did not is either wholly there or not at all.
//!
//! A push that cannot apply (a delete of a row a table without a key does not hold) is
//! refused on its own; the others of its group go on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc;

use arrow::array::{Array, ArrayRef, Int8Array, RecordBatch};
use arrow::row::{OwnedRow, RowConverter};
use tokio::sync::oneshot;

use crate::ingress::{PushError, Run, RunKind};
use crate::keyed::{self, Staged};
use crate::store::{Commit, Store};
use crate::tables::TableRef;
use crate::view;

/// A group stops growing past this many records (it still takes at least one push).
pub const MAX_GROUP_RECORDS: usize = 1_000_000;

/// What a push stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushOutcome {
    /// Rows inserted (for a keyed table: new or changed rows).
    pub inserted: usize,
    /// Rows deleted (for a keyed table, also the old rows of changed keys).
    pub deleted: usize,
    /// The commit's sequence number; `None` when the push changed nothing.
    pub sequence_number: Option<u64>,
}

/// One push waiting to commit.
pub(crate) struct Job {
    pub table: TableRef,
    pub runs: Vec<Run>,
    pub reply: oneshot::Sender<Result<PushOutcome, PushError>>,
}

/// The handle pushes are queued through; the thread ends when it is dropped.
pub(crate) struct Committer {
    queue: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the committer thread over `store`.
    pub(crate) fn start(store: Arc<Store>) -> std::io::Result<Committer> {
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("siphon-commit".into())
            .spawn(move || {
                while let Ok(first) = jobs.recv() {
                    let mut records: usize = first.runs.iter().map(|r| r.batch.num_rows()).sum();
                    let mut group = vec![first];
                    while records < MAX_GROUP_RECORDS {
                        match jobs.try_recv() {
                            Ok(job) => {
                                records +=
                                    job.runs.iter().map(|r| r.batch.num_rows()).sum::<usize>();
                                group.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    // A panic (a bug) must not stop every later push: the pushes of the
                    // group get no answer (their callers see an error), views are rebuilt.
                    let tables: BTreeMap<String, TableRef> = group
                        .iter()
                        .map(|job| (job.table.def.name.clone(), job.table.clone()))
                        .collect();
                    let run = std::panic::AssertUnwindSafe(|| commit_group(&store, group));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("committing a group of pushes panicked; none of them was answered as stored");
                        rebuild_views_of(&store, &tables);
                    }
                }
            })?;
        Ok(Committer { queue })
    }

    /// Queues a push; the answer comes on its reply channel.
    pub(crate) fn submit(&self, job: Job) -> Result<(), PushError> {
        self.queue.send(job).map_err(|_| PushError::ShuttingDown)
    }
}

/// Changes of a group's earlier pushes to one table, not durable yet.
enum Stage {
    Keyed(Staged),
    Unkeyed(UnkeyedStage),
}

fn commit_group(store: &Store, group: Vec<Job>) {
    let mut tables: BTreeMap<String, TableRef> = BTreeMap::new();
    for job in &group {
        tables
            .entry(job.table.def.name.clone())
            .or_insert_with(|| job.table.clone());
    }
    // In name order: a poll holds one lock at a time, so no cycle can form.
    let _guards: Vec<_> = tables
        .values()
        .map(|t| t.commit_lock.blocking_lock())
        .collect();

    let mut stages: HashMap<String, Stage> = HashMap::new();
    // (job, its change batch and unkeyed deletes) for the pushes that apply.
    let mut ready: Vec<(Job, Option<(RecordBatch, u64)>)> = Vec::with_capacity(group.len());
    for job in group {
        let name = job.table.def.name.clone();
        let stage = stages.entry(name).or_insert_with(|| {
            if job.table.is_keyed() {
                Stage::Keyed(Staged::default())
            } else {
                Stage::Unkeyed(UnkeyedStage::default())
            }
        });
        match changes_of(&job.table, &job.runs, stage, store) {
            Ok(changes) => ready.push((job, changes)),
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }

    // The views of the pushed tables take each push's change in order. A push that a view
    // cannot take (a division by zero in its query) is refused; the group is then built
    // again without it, from the views' stored state, since later pushes were staged on it.
    let mut view_changes: Vec<Vec<view::ViewChange>> = Vec::with_capacity(ready.len());
    let mut failed = None;
    for (index, (job, changes)) in ready.iter().enumerate() {
        let views = job.table.views();
        match changes {
            Some((batch, _)) if !views.is_empty() => {
                match view::changes_of(&job.table, &views, batch) {
                    Ok(c) => view_changes.push(c),
                    Err(e) => {
                        failed = Some((index, e));
                        break;
                    }
                }
            }
            _ => view_changes.push(Vec::new()),
        }
    }
    if let Some((index, error)) = failed {
        rebuild_views_of(store, &tables);
        let (job, _) = ready.remove(index);
        let _ = job.reply.send(Err(PushError::Request(format!(
            "nothing of this push was stored: {error}"
        ))));
        let rest: Vec<Job> = ready.into_iter().map(|(job, _)| job).collect();
        drop(_guards);
        if !rest.is_empty() {
            commit_group(store, rest);
        }
        return;
    }

    let mut commits: Vec<Commit<'_>> = Vec::new();
    for ((job, changes), views) in ready.iter().zip(&view_changes) {
        let Some((batch, unkeyed_deletes)) = changes.as_ref() else {
            continue;
        };
        commits.push(Commit {
            table: &job.table.def.name,
            batch: Some(batch),
            state: None,
            dead_letters: &[],
            unkeyed_deletes: *unkeyed_deletes,
        });
        commits.extend(view::commits(views));
    }
    let infos = match store.commit_group(&commits) {
        Ok(infos) => infos,
        Err(e) => {
            tracing::error!(error = %e, pushes = ready.len(), "committing pushes failed; none of them was stored");
            rebuild_views_of(store, &tables);
            for (job, _) in ready {
                let _ = job.reply.send(Err(PushError::Internal(format!(
                    "the store failed; nothing of this push was stored: {e}"
                ))));
            }
            return;
        }
    };
    drop(commits);
    let mut infos = infos.into_iter();
    for ((job, changes), views) in ready.into_iter().zip(view_changes) {
        let outcome = match changes {
            None => PushOutcome {
                inserted: 0,
                deleted: 0,
                sequence_number: None,
            },
            Some((batch, _)) => {
                let info = infos.next().flatten();
                let view_infos: Vec<_> = infos.by_ref().take(views.len()).collect();
                crate::apply_view_changes(store, views, view_infos.into_iter());
                if let Some(info) = info
                    && let Err(e) = job.table.push(info, &batch)
                {
                    tracing::error!(table = %job.table.def.name, error = %e, "applying a committed push in memory failed; reloading the table from the store");
                    if let Err(e) = crate::reload_from_store(store, &job.table) {
                        tracing::error!(table = %job.table.def.name, error = %e, "reloading the table from the store failed");
                    }
                }
                let (inserted, deleted) = keyed::change_counts(&batch);
                PushOutcome {
                    inserted,
                    deleted,
                    sequence_number: info.map(|i| i.sequence),
                }
            }
        };
        let _ = job.reply.send(Ok(outcome));
    }
}

/// Rebuilds the views of the group's tables from the store, after their state took
/// changes that were not stored.
fn rebuild_views_of(store: &Store, tables: &BTreeMap<String, TableRef>) {
    for table in tables.values() {
        if !table.views().is_empty()
            && let Err(e) = crate::rebuild_views(store, table)
        {
            tracing::error!(table = %table.def.name, error = %e, "rebuilding the state of views failed");
        }
    }
}

/// The change batch one push makes (and the number of deletes it holds, for a table
/// without a key), staged for the group's later pushes; `None` when it changes nothing.
fn changes_of(
    table: &TableRef,
    runs: &[Run],
    stage: &mut Stage,
    store: &Store,
) -> Result<Option<(RecordBatch, u64)>, PushError> {
    let internal = |e: arrow::error::ArrowError| {
        PushError::Internal(format!("building the changes of {}: {e}", table.def.name))
    };
    match stage {
        Stage::Keyed(staged) => {
            let mut parts = Vec::new();
            for run in runs {
                let part = table
                    .with_keyed(|rows| match run.kind {
                        RunKind::Insert => rows.upsert(&run.batch, staged),
                        RunKind::Delete => rows.delete_keys(&run.batch, staged),
                    })
                    .ok_or_else(|| PushError::Internal("a keyed table lost its rows".into()))?
                    .map_err(internal)?;
                parts.extend(part);
            }
            if parts.is_empty() {
                return Ok(None);
            }
            let batch =
                arrow::compute::concat_batches(&parts[0].schema(), &parts).map_err(internal)?;
            Ok(Some((batch, 0)))
        }
        Stage::Unkeyed(stage) => stage.changes(table, runs, store).map_err(|e| match e {
            UnkeyedError::Arrow(e) => internal(e),
            UnkeyedError::Push(e) => e,
        }),
    }
}

enum UnkeyedError {
    Arrow(arrow::error::ArrowError),
    Push(PushError),
}

impl From<arrow::error::ArrowError> for UnkeyedError {
    fn from(e: arrow::error::ArrowError) -> Self {
        UnkeyedError::Arrow(e)
    }
}

/// For a table without a key: how many copies of each row that a push of the group
/// deletes the table holds, counting the group's earlier pushes.
#[derive(Default)]
struct UnkeyedStage {
    converter: Option<RowConverter>,
    /// Rows whose count is known: stored copies plus staged inserts minus staged deletes.
    counts: HashMap<OwnedRow, i64>,
    /// The change batches of the group's earlier pushes (to count rows first needed later).
    pending: Vec<RecordBatch>,
}

impl UnkeyedStage {
    fn changes(
        &mut self,
        table: &TableRef,
        runs: &[Run],
        store: &Store,
    ) -> Result<Option<(RecordBatch, u64)>, UnkeyedError> {
        let width = table.schema.fields().len();
        let has_deletes = runs.iter().any(|r| r.kind == RunKind::Delete);
        if self.converter.is_none() {
            self.converter = Some(keyed::row_converter(&table.schema)?);
        }
        let converter = self.converter.as_ref().expect("set above");
        if has_deletes {
            // Rows deleted whose count is not known yet: count them in the store and in
            // the group's earlier pushes.
            let mut wanted: HashMap<OwnedRow, i64> = HashMap::new();
            for run in runs.iter().filter(|r| r.kind == RunKind::Delete) {
                let rows = converter.convert_columns(&run.batch.columns()[..width])?;
                for row in rows.iter() {
                    if !self.counts.contains_key(&row.owned()) {
                        wanted.insert(row.owned(), 0);
                    }
                }
            }
            if !wanted.is_empty() {
                let mut failure = None;
                let snapshot = store
                    .snapshot()
                    .map_err(|e| UnkeyedError::Push(PushError::Internal(e.to_string())))?;
                snapshot
                    .scan_log(&table.def.name, None, &mut |_, batch| {
                        if let Err(e) = count_rows(converter, &batch, width, &mut wanted) {
                            failure = Some(e);
                            return false;
                        }
                        true
                    })
                    .map_err(|e| UnkeyedError::Push(PushError::Internal(e.to_string())))?;
                if let Some(e) = failure {
                    return Err(e.into());
                }
                for batch in &self.pending {
                    count_rows(converter, batch, width, &mut wanted)?;
                }
                self.counts.extend(wanted);
            }
        }
        // Walk the runs in order on a copy of the counts this push touches.
        let mut local: HashMap<OwnedRow, i64> = HashMap::new();
        let mut parts: Vec<RecordBatch> = Vec::new();
        let mut deletes = 0u64;
        for run in runs {
            let rows = converter.convert_columns(&run.batch.columns()[..width])?;
            for (k, row) in rows.iter().enumerate() {
                let key = row.owned();
                let known = match local.get(&key) {
                    Some(n) => Some(*n),
                    None => self.counts.get(&key).copied(),
                };
                match (run.kind, known) {
                    (RunKind::Insert, Some(n)) => {
                        local.insert(key, n + 1);
                    }
                    (RunKind::Insert, None) => {}
                    (RunKind::Delete, Some(n)) if n > 0 => {
                        local.insert(key, n - 1);
                    }
                    (RunKind::Delete, _) => {
                        return Err(UnkeyedError::Push(PushError::Record {
                            record: run.first + k,
                            reason: format!(
                                "delete of a row that is not in table {} (a table without a PRIMARY KEY deletes one row equal in every column)",
                                table.def.name
                            ),
                        }));
                    }
                }
            }
            if run.kind == RunKind::Delete {
                deletes += run.batch.num_rows() as u64;
            }
            parts.push(run.batch.clone());
        }
        let total: usize = parts.iter().map(|p| p.num_rows()).sum();
        if total == 0 {
            return Ok(None);
        }
        self.counts.extend(local);
        let batch = if deletes == 0 {
            let parts: Vec<RecordBatch> = parts
                .into_iter()
                .map(|p| p.with_schema(table.schema.clone()))
                .collect::<Result<_, _>>()?;
            arrow::compute::concat_batches(&table.schema, &parts)?
        } else {
            let log_schema = keyed::log_schema(&table.schema);
            let mut with_ops = Vec::with_capacity(parts.len());
            for (run, part) in runs.iter().zip(&parts) {
                let mut columns: Vec<ArrayRef> = part.columns()[..width].to_vec();
                let op = if run.kind == RunKind::Delete { -1i8 } else { 1 };
                columns.push(Arc::new(Int8Array::from(vec![op; part.num_rows()])));
                with_ops.push(RecordBatch::try_new(log_schema.clone(), columns)?);
            }
            arrow::compute::concat_batches(&log_schema, &with_ops)?
        };
        self.pending.push(batch.clone());
        Ok(Some((batch, deletes)))
    }
}

/// Adds each row of `batch` that is in `wanted` to its count (+1 insert, -1 delete).
fn count_rows(
    converter: &RowConverter,
    batch: &RecordBatch,
    width: usize,
    wanted: &mut HashMap<OwnedRow, i64>,
) -> Result<(), arrow::error::ArrowError> {
    let rows = converter.convert_columns(&batch.columns()[..width])?;
    let ops = keyed::ops(batch);
    for (i, row) in rows.iter().enumerate() {
        if let Some(count) = wanted.get_mut(&row.owned()) {
            let op = ops
                .as_ref()
                .map_or(1, |o| if o.is_valid(i) { o.value(i) } else { 1 });
            *count += i64::from(op.signum());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ConnectorKind, TableDef};
    use crate::ingress::{PushDecoders, PushFormat, UpdateFormat, parse};
    use crate::tables::TableData;
    use siphon_connect::schema::{Column, ColumnType};

    fn table(key: &[&str]) -> TableRef {
        let def = TableDef {
            name: "t".into(),
            columns: vec![
                Column::new("id", ColumnType::BigInt, false),
                Column::new("name", ColumnType::Text, true),
            ],
            primary_key: key.iter().map(|k| k.to_string()).collect(),
            connector: ConnectorKind::HttpInput,
            connection: None,
            options: Default::default(),
        };
        Arc::new(TableData::new(def, Vec::new(), &[]).unwrap())
    }

    /// A queued push of `body` (insert_delete NDJSON) and the receiver of its answer.
    fn job(
        table: &TableRef,
        body: &str,
    ) -> (Job, oneshot::Receiver<Result<PushOutcome, PushError>>) {
        let parsed = parse(
            &table.def,
            &PushDecoders::default(),
            body.as_bytes(),
            PushFormat::Json { array: false },
            UpdateFormat::InsertDelete,
        )
        .unwrap();
        let (reply, answer) = oneshot::channel();
        (
            Job {
                table: table.clone(),
                runs: parsed.runs,
                reply,
            },
            answer,
        )
    }

    fn answers(
        receivers: Vec<oneshot::Receiver<Result<PushOutcome, PushError>>>,
    ) -> Vec<Result<PushOutcome, PushError>> {
        receivers
            .into_iter()
            .map(|mut r| r.try_recv().unwrap())
            .collect()
    }

    #[test]
    fn a_later_push_of_one_group_sees_the_earlier_ones_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = table(&[]);
        let (a, ra) = job(&t, r#"{"insert": {"id": 1, "name": "x"}}"#);
        let (b, rb) = job(&t, r#"{"delete": {"id": 1, "name": "x"}}"#);
        let (c, rc) = job(&t, r#"{"delete": {"id": 1, "name": "x"}}"#);
        commit_group(&store, vec![a, b, c]);
        let got = answers(vec![ra, rb, rc]);
        assert_eq!(got[0].as_ref().unwrap().sequence_number, Some(1));
        assert_eq!(got[1].as_ref().unwrap().deleted, 1, "{got:?}");
        // The row was there once: the second delete of the group finds none.
        assert!(
            matches!(got[2], Err(PushError::Record { record: 0, .. })),
            "{got:?}"
        );
        assert_eq!(store.log_meta("t").unwrap().len(), 2);
    }

    #[test]
    fn a_later_push_of_one_group_sees_the_earlier_ones_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = table(&["id"]);
        let (a, ra) = job(&t, r#"{"insert": {"id": 1, "name": "x"}}"#);
        let (b, rb) = job(&t, r#"{"insert": {"id": 1, "name": "y"}}"#);
        let (c, rc) = job(&t, r#"{"delete": {"id": 1}}"#);
        commit_group(&store, vec![a, b, c]);
        let got: Vec<PushOutcome> = answers(vec![ra, rb, rc])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // b updates a's row (delete x, insert y); c deletes y.
        assert_eq!(
            got.iter()
                .map(|o| (o.inserted, o.deleted, o.sequence_number))
                .collect::<Vec<_>>(),
            vec![(1, 0, Some(1)), (1, 1, Some(2)), (0, 1, Some(3))]
        );
        assert_eq!(t.keyed_len(), 0);
    }
}
