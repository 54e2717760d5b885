//! The Arrow side of decoding: one builder per column, fed whole rows of converted cells,
//! finished into one `RecordBatch` per page. Rows arrive only after every cell of the
//! record converted, so a batch never holds a partial record.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, RecordBatch, RecordBatchOptions, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

use super::cell::Cell;
use crate::schema::{ColumnType, RecordSchema};

enum Builder {
    Text(StringBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
}

/// The builders of one page's batch.
pub(crate) struct ColumnBuilders {
    schema: SchemaRef,
    builders: Vec<Builder>,
    rows: usize,
}

impl ColumnBuilders {
    /// Empty builders for `schema`, sized for about `rows` rows. Fails only for a DECIMAL
    /// precision/scale Arrow rejects, which the decoder validates up front.
    pub(crate) fn new(schema: &RecordSchema, rows: usize) -> Result<Self, ArrowError> {
        let builders = schema
            .columns()
            .iter()
            .map(|column| {
                Ok(match column.ty {
                    ColumnType::Text | ColumnType::Json => {
                        Builder::Text(StringBuilder::with_capacity(rows, rows * 16))
                    }
                    ColumnType::SmallInt => Builder::Int16(Int16Builder::with_capacity(rows)),
                    ColumnType::Int => Builder::Int32(Int32Builder::with_capacity(rows)),
                    ColumnType::BigInt => Builder::Int64(Int64Builder::with_capacity(rows)),
                    ColumnType::Double => Builder::Float64(Float64Builder::with_capacity(rows)),
                    ColumnType::Decimal { precision, scale } => Builder::Decimal(
                        Decimal128Builder::with_capacity(rows)
                            .with_precision_and_scale(precision, scale)?,
                    ),
                    ColumnType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
                    ColumnType::Timestamp => Builder::Timestamp(
                        TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
                    ),
                    ColumnType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
                })
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        Ok(ColumnBuilders {
            schema: schema.arrow_schema(),
            builders,
            rows: 0,
        })
    }

    /// Appends one row: `row[i]` is column `i`'s cell, of that column's representation
    /// (the cell converter guarantees it; a mismatch would be stored as NULL).
    pub(crate) fn append_row(&mut self, row: &[Cell<'_>]) {
        for (builder, cell) in self.builders.iter_mut().zip(row) {
            match (builder, cell) {
                (Builder::Text(b), Cell::Text(v)) => b.append_value(v),
                (Builder::Int16(b), Cell::Int16(v)) => b.append_value(*v),
                (Builder::Int32(b), Cell::Int32(v)) => b.append_value(*v),
                (Builder::Int64(b), Cell::Int64(v)) => b.append_value(*v),
                (Builder::Float64(b), Cell::Float64(v)) => b.append_value(*v),
                (Builder::Decimal(b), Cell::Decimal(v)) => b.append_value(*v),
                (Builder::Boolean(b), Cell::Boolean(v)) => b.append_value(*v),
                (Builder::Timestamp(b), Cell::TimestampMicros(v)) => b.append_value(*v),
                (Builder::Date(b), Cell::Date(v)) => b.append_value(*v),
                (builder, cell) => {
                    debug_assert!(matches!(cell, Cell::Null), "cell {cell:?} in wrong column");
                    builder.append_null();
                }
            }
        }
        self.rows += 1;
    }

    /// The rows appended so far as one batch with the schema's Arrow schema.
    pub(crate) fn finish(self) -> Result<RecordBatch, ArrowError> {
        let columns = self
            .builders
            .into_iter()
            .map(Builder::finish)
            .collect::<Vec<_>>();
        RecordBatch::try_new_with_options(
            self.schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(self.rows)),
        )
    }
}

impl Builder {
    fn append_null(&mut self) {
        match self {
            Builder::Text(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Text(mut b) => Arc::new(b.finish()),
            Builder::Int16(mut b) => Arc::new(b.finish()),
            Builder::Int32(mut b) => Arc::new(b.finish()),
            Builder::Int64(mut b) => Arc::new(b.finish()),
            Builder::Float64(mut b) => Arc::new(b.finish()),
            Builder::Decimal(mut b) => Arc::new(b.finish()),
            Builder::Boolean(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
            Builder::Date(mut b) => Arc::new(b.finish()),
        }
    }
}
