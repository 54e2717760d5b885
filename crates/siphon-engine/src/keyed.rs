//! Tables with a PRIMARY KEY: the latest row per key, and the diff that turns a poll's
//! records into inserts, updates and deletes.
//!
//! A keyed table's change log holds change batches: the table's columns plus
//! [`OP_COLUMN`] (+1 insert, -1 delete; an update is a delete of the old row and an insert
//! of the new one, as Feldera streams it). The current rows are not stored separately:
//! they are the log replayed, kept in memory as Arrow row-format bytes keyed by the
//! primary key's row format. The row format is never persisted (it is not stable across
//! Arrow versions), only rebuilt from the log.
//!
//! When a poll returned the API's whole list ([`siphon_connect::source::PollOutput::complete`]),
//! keys missing from it are deleted: that is the snapshot diff that turns a "list
//! everything" API into a change stream. An incremental poll only upserts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int8Array, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Int8Type, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::{OwnedRow, RowConverter, SortField};

/// The change-kind column of a keyed table's log entries.
pub const OP_COLUMN: &str = "__siphon_op";

/// Tables smaller than this are never guarded: a short list may well lose most of its
/// rows at once.
pub const GUARDED_TABLE_ROWS: usize = 10;

/// A poll's records are the API's whole list: keys missing from them are deleted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// The largest share of the table's rows one snapshot may delete (`max_delete_ratio`).
    pub max_delete_ratio: f64,
}

/// What a poll changes in a keyed table.
#[derive(Debug)]
pub struct Diff {
    /// The change batch (deletes, then inserts); `None` when nothing changes.
    pub changes: Option<RecordBatch>,
    /// Deletes the snapshot implied but the guard withheld (0 when none).
    pub withheld_deletes: usize,
}

/// Changes of a group commit's earlier pushes, not durable yet: key → its row (`None`:
/// deleted). They are diffed against but never visible to queries; the committed change
/// batches are applied with [`KeyedRows::apply`] once durable.
#[derive(Default)]
pub struct Staged {
    rows: HashMap<OwnedRow, Option<OwnedRow>>,
}

/// The latest row per key of one table.
pub struct KeyedRows {
    schema: SchemaRef,
    log_schema: SchemaRef,
    key_indices: Vec<usize>,
    keys: RowConverter,
    rows: RowConverter,
    current: BTreeMap<OwnedRow, OwnedRow>,
    /// The current rows as a batch, rebuilt lazily after a change.
    materialized: Option<RecordBatch>,
}

impl std::fmt::Debug for KeyedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyedRows({} rows)", self.current.len())
    }
}

/// The schema of a keyed table's change batches.
pub fn log_schema(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(OP_COLUMN, DataType::Int8, false)));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

impl KeyedRows {
    /// An empty table with `schema`, keyed by the columns named in `key`.
    pub fn new(schema: SchemaRef, key: &[String]) -> Result<Self, ArrowError> {
        let key_indices = key
            .iter()
            .map(|k| schema.index_of(k))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = RowConverter::new(
            key_indices
                .iter()
                .map(|i| SortField::new(schema.field(*i).data_type().clone()))
                .collect(),
        )?;
        let rows = row_converter(&schema)?;
        Ok(KeyedRows {
            log_schema: log_schema(&schema),
            schema,
            key_indices,
            keys,
            rows,
            current: BTreeMap::new(),
            materialized: None,
        })
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// Applies a committed change batch (from the log).
    pub fn apply(&mut self, changes: &RecordBatch) -> Result<(), ArrowError> {
        let mut current = std::mem::take(&mut self.current);
        let walked = self.walk(changes, |key, row| match row {
            Some(row) => {
                current.insert(key, row);
            }
            None => {
                current.remove(&key);
            }
        });
        self.current = current;
        self.materialized = None;
        walked
    }

    /// Hands `each` the key and, for an insert, the row of every change of a change batch,
    /// in order (`None`: a delete). Rows with a NULL key are passed over: logs written
    /// before key columns were NOT NULL may hold one; it was never a valid upsert, and a
    /// table cannot show it under a NOT NULL key.
    fn walk(
        &self,
        changes: &RecordBatch,
        mut each: impl FnMut(OwnedRow, Option<OwnedRow>),
    ) -> Result<(), ArrowError> {
        let ops = ops(changes).ok_or_else(|| {
            ArrowError::SchemaError(format!("a keyed change batch lacks {OP_COLUMN}"))
        })?;
        let data: Vec<ArrayRef> = changes.columns()[..self.schema.fields().len()].to_vec();
        let key_columns = self.key_columns(&data);
        let keys = self.keys.convert_columns(&key_columns)?;
        let rows = self.rows.convert_columns(&data)?;
        for i in 0..changes.num_rows() {
            if key_columns.iter().any(|c| c.is_null(i)) {
                continue;
            }
            let row = (ops.value(i) >= 0).then(|| rows.row(i).owned());
            each(keys.row(i).owned(), row);
        }
        Ok(())
    }

    /// The changes that bring the table from its current rows to `incoming` (the records of
    /// one poll). Within `incoming`, the last record of a key wins. With a `snapshot`
    /// (`incoming` is the API's whole list), keys absent from `incoming` are deleted, unless
    /// they are more than [`Snapshot::max_delete_ratio`] of a table of at least
    /// [`GUARDED_TABLE_ROWS`] rows: then no key is deleted and [`Diff::withheld_deletes`]
    /// says how many would have been.
    pub fn diff(
        &self,
        incoming: &RecordBatch,
        snapshot: Option<Snapshot>,
    ) -> Result<Diff, ArrowError> {
        self.diff_over(incoming, snapshot, None)
    }

    /// The changes that upserting `incoming` makes on top of the current rows and the
    /// `staged` changes of earlier pushes in the same group commit; stages them too.
    pub fn upsert(
        &self,
        incoming: &RecordBatch,
        staged: &mut Staged,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        let changes = self.diff_over(incoming, None, Some(staged))?.changes;
        if let Some(changes) = &changes {
            self.stage(changes, staged)?;
        }
        Ok(changes)
    }

    /// The deletes that removing the rows with the keys in `keys` makes (a batch with the
    /// table's columns, where only the key columns matter), on top of the current and
    /// `staged` rows; stages them too. A key that is not there deletes nothing.
    pub fn delete_keys(
        &self,
        keys: &RecordBatch,
        staged: &mut Staged,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        let data: Vec<ArrayRef> = keys.columns().to_vec();
        let converted = self.keys.convert_columns(&self.key_columns(&data))?;
        let mut deleted: Vec<OwnedRow> = Vec::new();
        for i in 0..keys.num_rows() {
            let key = converted.row(i).owned();
            if let Some(old) = self.lookup(&key, Some(staged)) {
                deleted.push(old.clone());
                staged.rows.insert(key, None);
            }
        }
        if deleted.is_empty() {
            return Ok(None);
        }
        let mut columns = self.rows.convert_rows(deleted.iter().map(|r| r.row()))?;
        columns.push(Arc::new(Int8Array::from(vec![-1i8; deleted.len()])));
        Ok(Some(RecordBatch::try_new(
            self.log_schema.clone(),
            columns,
        )?))
    }

    /// Records a change batch in `staged` (not in the current rows: it is not durable yet).
    fn stage(&self, changes: &RecordBatch, staged: &mut Staged) -> Result<(), ArrowError> {
        self.walk(changes, |key, row| {
            staged.rows.insert(key, row);
        })
    }

    /// The row of `key`: staged first, then current.
    fn lookup<'a>(&'a self, key: &OwnedRow, staged: Option<&'a Staged>) -> Option<&'a OwnedRow> {
        match staged.and_then(|s| s.rows.get(key)) {
            Some(row) => row.as_ref(),
            None => self.current.get(key),
        }
    }

    fn diff_over(
        &self,
        incoming: &RecordBatch,
        snapshot: Option<Snapshot>,
        staged: Option<&Staged>,
    ) -> Result<Diff, ArrowError> {
        let data: Vec<ArrayRef> = incoming.columns().to_vec();
        let keys = self.keys.convert_columns(&self.key_columns(&data))?;
        let rows = self.rows.convert_columns(&data)?;
        let mut last_of_key: HashMap<OwnedRow, usize> = HashMap::with_capacity(incoming.num_rows());
        for i in 0..incoming.num_rows() {
            last_of_key.insert(keys.row(i).owned(), i);
        }
        let mut inserts: Vec<u32> = Vec::new();
        let mut deletes: Vec<OwnedRow> = Vec::new();
        for i in 0..incoming.num_rows() {
            let key = keys.row(i).owned();
            if last_of_key.get(&key) != Some(&i) {
                continue;
            }
            match self.lookup(&key, staged) {
                None => inserts.push(i as u32),
                Some(old) if old.row() != rows.row(i) => {
                    deletes.push(old.clone());
                    inserts.push(i as u32);
                }
                Some(_) => {}
            }
        }
        let mut withheld_deletes = 0;
        if let Some(snapshot) = snapshot {
            let missing: Vec<&OwnedRow> = self
                .current
                .iter()
                .filter(|(key, _)| !last_of_key.contains_key(*key))
                .map(|(_, old)| old)
                .collect();
            let table = self.current.len();
            if table >= GUARDED_TABLE_ROWS
                && missing.len() as f64 > snapshot.max_delete_ratio * table as f64
            {
                withheld_deletes = missing.len();
            } else {
                deletes.extend(missing.into_iter().cloned());
            }
        }
        if inserts.is_empty() && deletes.is_empty() {
            return Ok(Diff {
                changes: None,
                withheld_deletes,
            });
        }
        let deleted = self.rows.convert_rows(deletes.iter().map(|r| r.row()))?;
        let indices = UInt32Array::from(inserts);
        let mut columns = Vec::with_capacity(data.len() + 1);
        for (old, new) in deleted.iter().zip(&data) {
            let taken = arrow::compute::take(new.as_ref(), &indices, None)?;
            columns.push(arrow::compute::concat(&[old.as_ref(), taken.as_ref()])?);
        }
        let ops: Int8Array = std::iter::repeat_n(-1i8, deletes.len())
            .chain(std::iter::repeat_n(1i8, indices.len()))
            .collect();
        columns.push(Arc::new(ops));
        Ok(Diff {
            changes: Some(RecordBatch::try_new(self.log_schema.clone(), columns)?),
            withheld_deletes,
        })
    }

    /// The current rows, one per key, in key order.
    pub fn batch(&mut self) -> Result<RecordBatch, ArrowError> {
        if let Some(b) = &self.materialized {
            return Ok(b.clone());
        }
        let batch = if self.current.is_empty() {
            RecordBatch::new_empty(self.schema.clone())
        } else {
            let columns = self
                .rows
                .convert_rows(self.current.values().map(|r| r.row()))?;
            RecordBatch::try_new(self.schema.clone(), columns)?
        };
        self.materialized = Some(batch.clone());
        Ok(batch)
    }

    fn key_columns(&self, data: &[ArrayRef]) -> Vec<ArrayRef> {
        self.key_indices.iter().map(|i| data[*i].clone()).collect()
    }
}

/// The change kinds of a batch ([`OP_COLUMN`]: +1 insert, -1 delete); `None` when it has
/// none (every row an insert).
pub fn ops(batch: &RecordBatch) -> Option<Int8Array> {
    batch
        .column_by_name(OP_COLUMN)
        .map(|c| c.as_primitive::<Int8Type>().clone())
}

/// A converter of whole rows of `schema` (every column) to Arrow's row format, in which
/// equal rows are equal bytes.
pub fn row_converter(schema: &Schema) -> Result<RowConverter, ArrowError> {
    RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )
}

/// Counts of a change batch: `(inserted, deleted)`.
pub fn change_counts(changes: &RecordBatch) -> (usize, usize) {
    match ops(changes) {
        Some(ops) => {
            let deleted = ops.values().iter().filter(|v| **v < 0).count();
            (ops.len() - ops.null_count() - deleted, deleted)
        }
        None => (changes.num_rows(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn batch(rows: &[(i64, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn changes(c: &RecordBatch) -> Vec<(i8, i64, String)> {
        let ops = c.column(2).as_primitive::<Int8Type>();
        let ids = c.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        let names = c.column(1).as_string::<i32>();
        (0..c.num_rows())
            .map(|i| (ops.value(i), ids.value(i), names.value(i).to_string()))
            .collect()
    }

    /// A snapshot that may delete every row.
    const ALL: Option<Snapshot> = Some(Snapshot {
        max_delete_ratio: 1.0,
    });

    #[test]
    fn a_snapshot_that_would_delete_most_of_a_table_withholds_its_deletes() {
        let mut t = KeyedRows::new(schema(), &["id".to_string()]).unwrap();
        let all: Vec<(i64, &str)> = (1..=20).map(|i| (i, "x")).collect();
        t.apply(&t.diff(&batch(&all), ALL).unwrap().changes.unwrap())
            .unwrap();
        let half = Some(Snapshot {
            max_delete_ratio: 0.5,
        });
        // 11 of 20 gone, one renamed: the rename is stored, the deletes are withheld.
        let mut rest: Vec<(i64, &str)> = (12..=20).map(|i| (i, "x")).collect();
        rest[0].1 = "renamed";
        let d = t.diff(&batch(&rest), half).unwrap();
        assert_eq!(d.withheld_deletes, 11);
        assert_eq!(
            changes(&d.changes.unwrap()),
            vec![(-1, 12, "x".into()), (1, 12, "renamed".into())]
        );
        // 10 of 20 is within the ratio: deleted.
        let d = t
            .diff(
                &batch(&(11..=20).map(|i| (i, "x")).collect::<Vec<_>>()),
                half,
            )
            .unwrap();
        assert_eq!(d.withheld_deletes, 0);
        assert_eq!(change_counts(&d.changes.unwrap()).1, 10);
        // A small table is not guarded.
        let mut small = KeyedRows::new(schema(), &["id".to_string()]).unwrap();
        small
            .apply(
                &small
                    .diff(&batch(&[(1, "a"), (2, "b")]), ALL)
                    .unwrap()
                    .changes
                    .unwrap(),
            )
            .unwrap();
        let d = small.diff(&batch(&[(1, "a")]), half).unwrap();
        assert_eq!(
            (d.withheld_deletes, change_counts(&d.changes.unwrap())),
            (0, (0, 1))
        );
    }

    #[test]
    fn three_snapshots_give_exactly_the_inserts_updates_and_deletes() {
        let mut t = KeyedRows::new(schema(), &["id".to_string()]).unwrap();
        let c1 = t
            .diff(&batch(&[(1, "a"), (2, "b"), (3, "c")]), ALL)
            .unwrap()
            .changes
            .unwrap();
        assert_eq!(
            changes(&c1),
            vec![(1, 1, "a".into()), (1, 2, "b".into()), (1, 3, "c".into())]
        );
        t.apply(&c1).unwrap();
        // 2 renamed, 3 gone, 4 new, 1 unchanged.
        let c2 = t
            .diff(&batch(&[(1, "a"), (2, "B"), (4, "d")]), ALL)
            .unwrap()
            .changes
            .unwrap();
        assert_eq!(
            changes(&c2),
            vec![
                (-1, 2, "b".into()),
                (-1, 3, "c".into()),
                (1, 2, "B".into()),
                (1, 4, "d".into())
            ]
        );
        assert_eq!(change_counts(&c2), (2, 2));
        t.apply(&c2).unwrap();
        assert!(
            t.diff(&batch(&[(4, "d"), (1, "a"), (2, "B")]), ALL)
                .unwrap()
                .changes
                .is_none(),
            "same set, other order"
        );
        let now = t.batch().unwrap();
        assert_eq!(now, batch(&[(1, "a"), (2, "B"), (4, "d")]));
    }

    #[test]
    fn incremental_polls_upsert_without_deleting_and_last_record_wins() {
        let mut t = KeyedRows::new(schema(), &["id".to_string()]).unwrap();
        t.apply(
            &t.diff(&batch(&[(1, "a"), (2, "b")]), None)
                .unwrap()
                .changes
                .unwrap(),
        )
        .unwrap();
        let c = t
            .diff(&batch(&[(2, "x"), (2, "y")]), None)
            .unwrap()
            .changes
            .unwrap();
        assert_eq!(changes(&c), vec![(-1, 2, "b".into()), (1, 2, "y".into())]);
        t.apply(&c).unwrap();
        assert_eq!(t.len(), 2);
    }
}
