//! Changes as a view sees them: rows with a weight (+1 inserted, -1 deleted), and the
//! stateless steps (filters, projections) applied to them.
//!
//! A filter or a projection of a change is the change of the filter or projection, so the
//! stateless steps run on the changed rows only, whatever the size of the table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int8Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

use crate::keyed;
use crate::view::plan::Step;

/// Rows and their weights (+1 insert, -1 delete), in order.
#[derive(Clone, Debug)]
pub struct Weighted {
    /// The rows (data columns only).
    pub batch: RecordBatch,
    /// One weight per row.
    pub weights: Vec<i64>,
}

impl Weighted {
    /// Every row of `batch` inserted.
    pub fn inserts(batch: RecordBatch) -> Self {
        let weights = vec![1; batch.num_rows()];
        Weighted { batch, weights }
    }

    /// A stored change batch of a table or view with `width` data columns: its
    /// [`keyed::OP_COLUMN`] gives the weights (all inserts when it has none).
    pub fn from_log(batch: &RecordBatch, schema: &SchemaRef) -> Result<Self, ArrowError> {
        let width = schema.fields().len();
        let weights = match keyed::ops(batch) {
            Some(ops) => ops
                .iter()
                .map(|o| i64::from(o.unwrap_or(1).signum()))
                .collect(),
            None => vec![1; batch.num_rows()],
        };
        let data = RecordBatch::try_new_with_options(
            schema.clone(),
            batch.columns()[..width].to_vec(),
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?;
        Ok(Weighted {
            batch: data,
            weights,
        })
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// The batch to store: the rows with `schema`, plus [`keyed::OP_COLUMN`] when any is a
    /// delete; a weight of n (±) is n copies of its row. Also returns how many deletes.
    pub fn to_log(&self, schema: &SchemaRef) -> Result<(RecordBatch, u64), ArrowError> {
        let mut indices: Vec<u32> = Vec::with_capacity(self.len());
        let mut ops: Vec<i8> = Vec::with_capacity(self.len());
        for (i, w) in self.weights.iter().enumerate() {
            for _ in 0..w.unsigned_abs() {
                indices.push(i as u32);
                ops.push(if *w < 0 { -1 } else { 1 });
            }
        }
        let deletes = ops.iter().filter(|o| **o < 0).count() as u64;
        let take = arrow::array::UInt32Array::from(indices);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len() + 1);
        for (field, column) in schema.fields().iter().zip(self.batch.columns()) {
            let taken = arrow::compute::take(column.as_ref(), &take, None)?;
            columns.push(if taken.data_type() == field.data_type() {
                taken
            } else {
                arrow::compute::cast(&taken, field.data_type())?
            });
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(take.len()));
        if deletes == 0 {
            return Ok((
                RecordBatch::try_new_with_options(schema.clone(), columns, &options)?,
                0,
            ));
        }
        columns.push(Arc::new(Int8Array::from(ops)));
        Ok((
            RecordBatch::try_new_with_options(keyed::log_schema(schema), columns, &options)?,
            deletes,
        ))
    }

    /// The rows where `mask` is true, with their weights.
    fn take(&self, mask: &BooleanArray) -> Result<Self, ArrowError> {
        let batch = arrow::compute::filter_record_batch(&self.batch, mask)?;
        let weights = self
            .weights
            .iter()
            .zip(mask.values().iter())
            .filter_map(|(w, keep)| keep.then_some(*w))
            .collect();
        Ok(Weighted { batch, weights })
    }

    /// Drops rows whose inserts and deletes cancel out (an equal row deleted and inserted
    /// again), keeping the first occurrence's place; deletes stay before inserts.
    pub fn consolidate(self) -> Result<Self, ArrowError> {
        if self.is_empty() {
            return Ok(self);
        }
        let converter = keyed::row_converter(&self.batch.schema())?;
        let rows = converter.convert_columns(self.batch.columns())?;
        let mut net: HashMap<&[u8], (usize, i64)> = HashMap::new();
        let mut order: Vec<&[u8]> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let key = row.data();
            let entry = net.entry(key).or_insert_with(|| {
                order.push(key);
                (i, 0)
            });
            entry.1 += self.weights[i];
        }
        let mut deletes: Vec<(u32, i64)> = Vec::new();
        let mut inserts: Vec<(u32, i64)> = Vec::new();
        for key in order {
            let (first, w) = net[key];
            match w {
                0 => {}
                w if w < 0 => deletes.push((first as u32, w)),
                w => inserts.push((first as u32, w)),
            }
        }
        deletes.extend(inserts);
        let take =
            arrow::array::UInt32Array::from(deletes.iter().map(|(i, _)| *i).collect::<Vec<_>>());
        let columns = self
            .batch
            .columns()
            .iter()
            .map(|c| arrow::compute::take(c.as_ref(), &take, None))
            .collect::<Result<Vec<_>, _>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(take.len()));
        Ok(Weighted {
            batch: RecordBatch::try_new_with_options(self.batch.schema(), columns, &options)?,
            weights: deletes.iter().map(|(_, w)| *w).collect(),
        })
    }
}

/// A filter mask where NULL counts as false.
pub fn not_null(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() > 0 {
        arrow::compute::prep_null_mask_filter(mask)
    } else {
        mask.clone()
    }
}

/// Runs stateless steps over changes.
pub fn run_steps(steps: &[Step], mut changes: Weighted) -> Result<Weighted, ArrowError> {
    for step in steps {
        if changes.is_empty() {
            break;
        }
        changes = match step {
            Step::Filter(predicate) => {
                let value = predicate
                    .evaluate(&changes.batch)
                    .and_then(|v| v.into_array(changes.batch.num_rows()))
                    .map_err(datafusion_error)?;
                let mask = value.as_boolean_opt().ok_or_else(|| {
                    ArrowError::ComputeError("a view's WHERE did not give booleans".into())
                })?;
                // NULL is not true: the row goes.
                changes.take(&not_null(mask))?
            }
            Step::Project { exprs, schema } => {
                let rows = changes.batch.num_rows();
                let columns = exprs
                    .iter()
                    .map(|e| e.evaluate(&changes.batch).and_then(|v| v.into_array(rows)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(datafusion_error)?;
                let batch = batch_with(schema, columns, rows)?;
                Weighted {
                    batch,
                    weights: changes.weights,
                }
            }
            Step::Columns(indices) => Weighted {
                batch: changes.batch.project(indices)?,
                weights: changes.weights,
            },
        };
    }
    Ok(changes)
}

/// A batch of `columns` under `schema`, relaxing nullability where an expression's
/// declared nullability was narrower than what it produced.
pub fn batch_with(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch, ArrowError> {
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    match RecordBatch::try_new_with_options(schema.clone(), columns.clone(), &options) {
        Ok(batch) => Ok(batch),
        Err(_) => {
            let fields: Vec<arrow::datatypes::Field> = schema
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| {
                    f.as_ref()
                        .clone()
                        .with_data_type(c.data_type().clone())
                        .with_nullable(true)
                })
                .collect();
            RecordBatch::try_new_with_options(
                Arc::new(arrow::datatypes::Schema::new(fields)),
                columns,
                &options,
            )
        }
    }
}

/// DataFusion errors as Arrow errors (the view's callers speak Arrow).
pub fn datafusion_error(e: datafusion::error::DataFusionError) -> ArrowError {
    ArrowError::ComputeError(e.to_string())
}
