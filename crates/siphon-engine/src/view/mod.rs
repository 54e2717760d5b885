//! Continuous views: `CREATE VIEW v AS SELECT ...` kept up to date on every commit.
//!
//! A view reads one table or view (its *input*); every view belongs to the table at the
//! root of its chain. A commit to that table computes the change of each of its views
//! from the table's change alone ([`plan`] compiles the query, [`delta`] runs the stateless
//! steps, [`aggregate`] keeps `GROUP BY` state), and the views' changes are written in
//! the SAME store transaction as the table's change. So a view's stored rows always equal
//! its query over the stored table, after a crash at any instant too.
//!
//! A view is stored like a table without a key: its log holds its changes (inserts, and
//! deletes marked with [`crate::keyed::OP_COLUMN`]), numbered by its own sequence, so
//! queries, `/v1/egress/{view}` and `siphon consume` read it as they read a table.
//!
//! What is not stored is a `GROUP BY`'s state (per-group counts, sums, and the values
//! MIN/MAX need): it is rebuilt from the input's stored rows at start-up, which costs a
//! read of the input; the per-commit cost stays proportional to the change.
//!
//! At start-up each view is also *reconciled* when its definition changed (or an input
//! it reads was reconciled): its rows are computed afresh and the difference to its
//! stored rows is committed as one ordinary change, so readers of its change stream stay
//! correct. The saved state of a view (its [`Position`]) says which query its rows
//! reflect.

pub mod aggregate;
pub mod delta;
pub mod plan;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use serde::{Deserialize, Serialize};

use crate::catalog::ViewDef;
use crate::store::{Commit, Store, StoreError};
use crate::tables::TableRef;
use aggregate::AggregateState;
use delta::Weighted;
use plan::ViewPlan;

/// Why maintaining a view failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Evaluating the view's query on a change failed (a division by zero, a failing cast).
    #[error("view {view}: {message}")]
    Eval {
        /// The view.
        view: String,
        /// What failed.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a view's saved state says about its stored rows.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Position {
    /// The query its rows reflect; `None`: stale (an input was reconciled while this view
    /// was not yet), so the next start recomputes it.
    pub query: Option<String>,
}

/// A running view.
pub struct View {
    /// Its definition.
    pub def: ViewDef,
    /// Its compiled query.
    pub plan: Arc<ViewPlan>,
    /// Its stored rows, as a table (queries and egress read this).
    pub table: TableRef,
    state: Mutex<Option<AggregateState>>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "View({})", self.def.name)
    }
}

impl View {
    /// A view over nothing yet (its `GROUP BY` state empty).
    pub fn new(def: ViewDef, plan: Arc<ViewPlan>, table: TableRef) -> Result<Self, ArrowError> {
        let state = plan
            .aggregate
            .as_ref()
            .map(AggregateState::new)
            .transpose()?;
        Ok(View {
            def,
            plan,
            table,
            state: Mutex::new(state),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The table or view it reads.
    pub fn input(&self) -> &str {
        &self.plan.input
    }

    /// The change of the view's rows that `input` (a change of its input's rows) makes,
    /// with the view's stored schema. Updates the `GROUP BY` state.
    pub fn apply(&self, input: Weighted) -> Result<Weighted, ViewError> {
        self.apply_inner(input).map_err(|e| ViewError::Eval {
            view: self.def.name.clone(),
            message: e.to_string(),
        })
    }

    fn apply_inner(&self, input: Weighted) -> Result<Weighted, ArrowError> {
        let rows = delta::run_steps(&self.plan.before, input)?;
        let out = match &self.plan.aggregate {
            None => rows,
            Some(step) => {
                if rows.is_empty() {
                    return self.empty();
                }
                let mut state = self.state.lock().expect("view state lock");
                let state = state.as_mut().expect("a GROUP BY view has state");
                let changed = state.apply(step, &rows)?;
                delta::run_steps(&self.plan.after, changed)?.consolidate()?
            }
        };
        self.normalize(out)
    }

    /// Every row of the view as its state holds it (a `GROUP BY` view only).
    fn current(&self) -> Result<Option<Weighted>, ArrowError> {
        let Some(step) = &self.plan.aggregate else {
            return Ok(None);
        };
        let state = self.state.lock().expect("view state lock");
        let rows = state.as_ref().expect("state").current(step)?;
        let rows = delta::run_steps(&self.plan.after, rows)?;
        self.normalize(rows).map(Some)
    }

    /// A `GROUP BY` view's current rows from its state (`None` for other views). They
    /// equal its stored rows when read under its root table's commit lock.
    pub fn current_rows(&self) -> Result<Option<RecordBatch>, ArrowError> {
        Ok(self.current()?.map(|rows| rows.batch))
    }

    /// Forgets the `GROUP BY` state (before it is rebuilt).
    fn reset(&self) -> Result<(), ArrowError> {
        let fresh = self
            .plan
            .aggregate
            .as_ref()
            .map(AggregateState::new)
            .transpose()?;
        *self.state.lock().expect("view state lock") = fresh;
        Ok(())
    }

    fn empty(&self) -> Result<Weighted, ArrowError> {
        Ok(Weighted::inserts(RecordBatch::new_empty(
            self.table.schema.clone(),
        )))
    }

    /// Casts the query's output to the view's stored column types.
    fn normalize(&self, rows: Weighted) -> Result<Weighted, ArrowError> {
        // The steps stop at the first empty change, whose batch may still have an earlier
        // step's columns (a WHERE that left no row, before the projection).
        if rows.is_empty() {
            return self.empty();
        }
        let schema = &self.table.schema;
        let columns = schema
            .fields()
            .iter()
            .zip(rows.batch.columns())
            .map(|(field, column)| {
                if column.data_type() == field.data_type() {
                    Ok(column.clone())
                } else {
                    arrow::compute::cast(column, field.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.batch.num_rows()));
        Ok(Weighted {
            batch: RecordBatch::try_new_with_options(schema.clone(), columns, &options)?,
            weights: rows.weights,
        })
    }
}

/// A view's change, ready to store.
pub struct ViewChange {
    /// The view.
    pub view: Arc<View>,
    /// Its change batch.
    pub batch: RecordBatch,
    /// How many of its rows are deletes.
    pub deletes: u64,
}

/// The changes a commit of `changes` to table `root` makes to its views (dependency
/// order), each view fed the change of its input. Updates their `GROUP BY` state.
pub fn changes_of(
    root: &TableRef,
    views: &[Arc<View>],
    changes: &RecordBatch,
) -> Result<Vec<ViewChange>, ViewError> {
    let mut by_name: BTreeMap<&str, Weighted> = BTreeMap::new();
    let root_change = Weighted::from_log(changes, &root.schema).map_err(|e| ViewError::Eval {
        view: root.def.name.clone(),
        message: e.to_string(),
    })?;
    by_name.insert(&root.def.name, root_change);
    let mut out = Vec::new();
    for view in views {
        let Some(input) = by_name.get(view.input()) else {
            continue;
        };
        if input.is_empty() {
            continue;
        }
        let change = view.apply(input.clone())?;
        if change.is_empty() {
            continue;
        }
        let (batch, deletes) = change
            .to_log(&view.table.schema)
            .map_err(|e| ViewError::Eval {
                view: view.def.name.clone(),
                message: e.to_string(),
            })?;
        by_name.insert(view.name(), change);
        out.push(ViewChange {
            view: view.clone(),
            batch,
            deletes,
        });
    }
    Ok(out)
}

/// The store commits of view changes (no state: a view's state changes only when it is
/// reconciled).
pub fn commits(changes: &[ViewChange]) -> Vec<Commit<'_>> {
    changes
        .iter()
        .map(|c| Commit {
            table: c.view.name(),
            batch: Some(&c.batch),
            state: None,
            dead_letters: &[],
            unkeyed_deletes: c.deletes,
        })
        .collect()
}

/// Replays a table's or view's stored rows into `each` as inserts (a keyed table's
/// current rows; otherwise its log in order, deletes included).
fn replay_input(
    store: &Store,
    input: &TableRef,
    each: &mut dyn FnMut(Weighted) -> Result<(), ViewError>,
) -> Result<(), ViewError> {
    if let Some(rows) = input.keyed_rows() {
        let rows = rows.map_err(|e| ViewError::Eval {
            view: input.def.name.clone(),
            message: e.to_string(),
        })?;
        return each(Weighted::inserts(rows));
    }
    let snapshot = store.snapshot()?;
    let mut failure = None;
    snapshot.scan_log(&input.def.name, None, &mut |_, batch| {
        let step = Weighted::from_log(&batch, &input.schema)
            .map_err(|e| ViewError::Eval {
                view: input.def.name.clone(),
                message: e.to_string(),
            })
            .and_then(&mut *each);
        match step {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Rebuilds the `GROUP BY` state of `views` (dependency order) from their inputs' stored
/// rows. Call with the root table's commit lock held.
pub fn rebuild_states(
    store: &Store,
    tables: &dyn Fn(&str) -> Option<TableRef>,
    views: &[Arc<View>],
) -> Result<(), ViewError> {
    for view in views {
        rebuild_state(store, tables, view)?;
    }
    Ok(())
}

fn rebuild_state(
    store: &Store,
    tables: &dyn Fn(&str) -> Option<TableRef>,
    view: &Arc<View>,
) -> Result<(), ViewError> {
    let eval = |e: ArrowError| ViewError::Eval {
        view: view.def.name.clone(),
        message: e.to_string(),
    };
    view.reset().map_err(eval)?;
    if view.plan.aggregate.is_none() {
        return Ok(());
    }
    let input = tables(view.input()).ok_or_else(|| ViewError::Eval {
        view: view.def.name.clone(),
        message: format!("its input {} is not loaded", view.input()),
    })?;
    replay_input(store, &input, &mut |rows| view.apply(rows).map(|_| ()))
}

/// Brings every view up to date at start-up (dependency order): rebuilds its state, and
/// when its definition changed or an input was reconciled, commits the difference between
/// its rows computed afresh and its stored rows. Returns the names of reconciled views.
pub fn reconcile_all(
    store: &Store,
    tables: &dyn Fn(&str) -> Option<TableRef>,
    views: &[Arc<View>],
) -> Result<Vec<String>, ViewError> {
    let mut reconciled: BTreeSet<String> = BTreeSet::new();
    for (index, view) in views.iter().enumerate() {
        rebuild_state(store, tables, view)?;
        let saved: Option<Position> = store
            .state(view.name())?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let current = saved
            .as_ref()
            .is_some_and(|p| p.query.as_deref() == Some(view.def.query.as_str()));
        if current && !reconciled.contains(view.input()) {
            continue;
        }
        let eval = |e: ArrowError| ViewError::Eval {
            view: view.def.name.clone(),
            message: e.to_string(),
        };
        // Its rows afresh, less its stored rows.
        let mut parts: Vec<Weighted> = Vec::new();
        match view.current().map_err(eval)? {
            Some(rows) => parts.push(rows),
            None => {
                let input = tables(view.input()).ok_or_else(|| ViewError::Eval {
                    view: view.def.name.clone(),
                    message: format!("its input {} is not loaded", view.input()),
                })?;
                replay_input(store, &input, &mut |rows| {
                    let out = view.apply(rows)?;
                    if !out.is_empty() {
                        parts.push(out);
                    }
                    Ok(())
                })?;
            }
        }
        replay_input(store, &view.table, &mut |mut rows| {
            for w in &mut rows.weights {
                *w = -*w;
            }
            parts.push(rows);
            Ok(())
        })?;
        let difference = concat(&view.table.schema, parts)
            .and_then(Weighted::consolidate)
            .map_err(eval)?;
        let (batch, deletes) = difference.to_log(&view.table.schema).map_err(eval)?;
        let position = serde_json::to_vec(&Position {
            query: Some(view.def.query.clone()),
        })
        .expect("positions serialize");
        // Views that read this one are marked stale in the same transaction, so a crash
        // before they are reconciled too is caught at the next start.
        let stale = serde_json::to_vec(&Position { query: None }).expect("positions serialize");
        let mut readers: BTreeSet<&str> = BTreeSet::from([view.name()]);
        let mut commits = vec![Commit {
            table: view.name(),
            batch: Some(&batch),
            state: Some(&position),
            dead_letters: &[],
            unkeyed_deletes: deletes,
        }];
        for later in &views[index + 1..] {
            if readers.contains(later.input()) {
                readers.insert(later.name());
                commits.push(Commit {
                    table: later.name(),
                    batch: None,
                    state: Some(&stale),
                    dead_letters: &[],
                    unkeyed_deletes: 0,
                });
            }
        }
        let infos = store.commit_group(&commits)?;
        if let Some(Some(info)) = infos.first() {
            view.table.push(*info, &batch).map_err(eval)?;
        }
        reconciled.insert(view.name().to_string());
    }
    Ok(reconciled.into_iter().collect())
}

fn concat(
    schema: &arrow::datatypes::SchemaRef,
    parts: Vec<Weighted>,
) -> Result<Weighted, ArrowError> {
    let batches: Vec<&RecordBatch> = parts.iter().map(|p| &p.batch).collect();
    let batch = arrow::compute::concat_batches(schema, batches)?;
    let weights = parts.into_iter().flat_map(|p| p.weights).collect();
    Ok(Weighted { batch, weights })
}
