//! Helpers shared by the decoders' tests (JSON, CSV, XML): building columns and reading
//! a decoded page's columns and dead letters back as plain values.

use arrow::array::{Array, Float64Array, Int32Array, StringArray};

use super::DecodedPage;
use crate::schema::{Column, ColumnType};

/// A nullable column.
pub(super) fn col(name: &str, ty: ColumnType) -> Column {
    Column::new(name, ty, true)
}

/// Column `i` of the page as its concrete Arrow array type.
pub(super) fn column<T: 'static>(page: &DecodedPage, i: usize) -> &T {
    page.batch.column(i).as_any().downcast_ref::<T>().unwrap()
}

/// A TEXT or JSON column's values.
pub(super) fn strings(page: &DecodedPage, i: usize) -> Vec<Option<&str>> {
    column::<StringArray>(page, i).iter().collect()
}

/// An INT column's values.
pub(super) fn ints(page: &DecodedPage, i: usize) -> Vec<Option<i32>> {
    column::<Int32Array>(page, i).iter().collect()
}

/// A DOUBLE column's values.
pub(super) fn floats(page: &DecodedPage, i: usize) -> Vec<Option<f64>> {
    column::<Float64Array>(page, i).iter().collect()
}

/// The dead letters' reasons, in page order.
pub(super) fn reasons(page: &DecodedPage) -> Vec<&str> {
    page.dead_letters
        .iter()
        .map(|d| d.reason.as_str())
        .collect()
}
