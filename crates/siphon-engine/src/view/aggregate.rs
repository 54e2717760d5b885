//! `GROUP BY` state kept per group, updated by changes in proportion to their size.
//!
//! Per group: how many input rows it holds (it exists while that is above zero; the one
//! group of an aggregate without `GROUP BY` always exists, as SQL says), and per aggregate
//! what its value needs under inserts AND deletes: COUNT keeps a count, SUM and AVG a
//! count of non-NULL values and their sum (exact for integers and decimals), MIN and MAX
//! every distinct value with its multiplicity (in Arrow's row format, whose byte order is
//! the value order), so deleting the minimum finds the next one without a scan.
//!
//! A change to a group is output as the delete of its old row and the insert of its new
//! one (nothing when the row did not change).

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type, SchemaRef, UInt64Type};
use arrow::error::ArrowError;
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;

use crate::view::delta::{Weighted, batch_with, datafusion_error};
use crate::view::plan::{AggKind, AggregateStep};

/// One output row of the aggregate: group values, then aggregate values.
type OutputRow = Vec<ScalarValue>;

/// A running sum.
#[derive(Clone, Copy, Debug)]
enum Sum {
    Int(i128),
    Float(f64),
}

/// What one aggregate of one group keeps.
#[derive(Clone, Debug)]
enum Acc {
    /// Non-NULL arguments seen.
    Count(i64),
    /// Non-NULL arguments and their sum (SUM and AVG).
    Sum { n: i64, sum: Sum },
    /// Distinct non-NULL values with their multiplicity (MIN and MAX).
    Extreme(BTreeMap<ExtremeKey, i64>),
}

/// A MIN/MAX value, ordered as SQL orders it: integers (and dates, times, timestamps,
/// durations) and decimals inline, anything else in Arrow's row format, whose byte order
/// is the value order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ExtremeKey {
    Int(i64),
    Wide(i128),
    Row(OwnedRow),
}

/// How a MIN/MAX argument is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExtremeRepr {
    /// Cast to Int64 (order-preserving and lossless for these types).
    Int,
    /// Decimal128 values.
    Wide,
    /// Arrow's row format.
    Row,
}

fn extreme_repr(t: &DataType) -> ExtremeRepr {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(_, _)
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Duration(_) => ExtremeRepr::Int,
        DataType::Decimal128(_, _) => ExtremeRepr::Wide,
        _ => ExtremeRepr::Row,
    }
}

#[derive(Clone, Debug)]
struct Group {
    /// The group's key values (the group columns of its output row).
    key: Vec<ScalarValue>,
    /// Input rows in the group.
    rows: i64,
    accs: Vec<Acc>,
}

/// An argument column, cast once per batch to what its accumulator reads.
enum Arg {
    Count(ArrayRef),
    Int(ArrayRef),
    UInt(ArrayRef),
    Float(ArrayRef),
    Decimal(ArrayRef),
    ExtremeInt(ArrayRef),
    ExtremeWide(ArrayRef),
    ExtremeRow(arrow::row::Rows, ArrayRef),
}

/// The state of a view's `GROUP BY`.
pub struct AggregateState {
    schema: SchemaRef,
    /// Row format of the group key (`None` without GROUP BY: one global group).
    keys: Option<RowConverter>,
    /// Row format of each MIN/MAX argument.
    extremes: Vec<Option<RowConverter>>,
    groups: HashMap<Box<[u8]>, Group>,
}

impl std::fmt::Debug for AggregateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AggregateState({} groups)", self.groups.len())
    }
}

impl AggregateState {
    /// The state of no rows.
    pub fn new(step: &AggregateStep) -> Result<Self, ArrowError> {
        let schema = step.schema.clone();
        let group_count = step.group.len();
        let keys = if group_count == 0 {
            None
        } else {
            Some(RowConverter::new(
                schema.fields()[..group_count]
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?)
        };
        let extremes = step
            .aggs
            .iter()
            .map(|a| match a.kind {
                AggKind::Min | AggKind::Max => {
                    RowConverter::new(vec![SortField::new(a.output.clone())]).map(Some)
                }
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        let mut state = AggregateState {
            schema,
            keys,
            extremes,
            groups: HashMap::new(),
        };
        if state.keys.is_none() {
            state
                .groups
                .insert(Box::new([]), state.empty_group(Vec::new(), step));
        }
        Ok(state)
    }

    /// How many groups exist.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group exists.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    fn empty_group(&self, key: Vec<ScalarValue>, step: &AggregateStep) -> Group {
        Group {
            key,
            rows: 0,
            accs: step
                .aggs
                .iter()
                .map(|a| match a.kind {
                    AggKind::Count => Acc::Count(0),
                    AggKind::Sum | AggKind::Avg => Acc::Sum {
                        n: 0,
                        sum: if a.input.is_floating() {
                            Sum::Float(0.0)
                        } else {
                            Sum::Int(0)
                        },
                    },
                    AggKind::Min | AggKind::Max => Acc::Extreme(BTreeMap::new()),
                })
                .collect(),
        }
    }

    /// Applies changes (the aggregate's input rows with weights) and returns the change of
    /// the aggregate's output: old rows of changed groups deleted, new rows inserted.
    pub fn apply(
        &mut self,
        step: &AggregateStep,
        changes: &Weighted,
    ) -> Result<Weighted, ArrowError> {
        let batch = &changes.batch;
        let rows = batch.num_rows();
        let evaluate = |e: &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>| {
            e.evaluate(batch)
                .and_then(|v| v.into_array(rows))
                .map_err(datafusion_error)
        };
        let group_columns = step
            .group
            .iter()
            .map(evaluate)
            .collect::<Result<Vec<_>, _>>()?;
        let key_rows = match &self.keys {
            Some(converter) => Some(converter.convert_columns(&group_columns)?),
            None => None,
        };
        let mut args = Vec::with_capacity(step.aggs.len());
        let mut filters = Vec::with_capacity(step.aggs.len());
        for (i, agg) in step.aggs.iter().enumerate() {
            let value = evaluate(&agg.arg)?;
            args.push(self.arg(i, agg.kind, &agg.output, value)?);
            filters.push(match &agg.filter {
                Some(f) => Some(crate::view::delta::not_null(
                    evaluate(f)?.as_boolean_opt().ok_or_else(|| {
                        ArrowError::ComputeError("a FILTER clause did not give booleans".into())
                    })?,
                )),
                None => None,
            });
        }

        // Old output rows of the groups this change touches, in first-touch order.
        let mut touched: Vec<(Box<[u8]>, Option<OutputRow>)> = Vec::new();
        let mut seen: HashMap<Box<[u8]>, ()> = HashMap::new();
        for row in 0..rows {
            let weight = changes.weights[row];
            if weight == 0 {
                continue;
            }
            let key: Box<[u8]> = match &key_rows {
                Some(k) => k.row(row).data().into(),
                None => Box::new([]),
            };
            if !seen.contains_key(&key) {
                let old = match self.groups.get(&key) {
                    Some(g) => Some(self.output_row(step, g)?),
                    None => None,
                };
                seen.insert(key.clone(), ());
                touched.push((key.clone(), old));
            }
            if !self.groups.contains_key(&key) {
                let values = group_columns
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, row))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(datafusion_error)?;
                let group = self.empty_group(values, step);
                self.groups.insert(key.clone(), group);
            }
            let group = self.groups.get_mut(&key).expect("inserted above");
            group.rows += weight;
            for (i, acc) in group.accs.iter_mut().enumerate() {
                if filters[i].as_ref().is_some_and(|f| !f.value(row)) {
                    continue;
                }
                update(acc, &args[i], row, weight);
            }
        }

        let mut old_rows = Vec::new();
        let mut new_rows = Vec::new();
        for (key, old) in touched {
            let global = self.keys.is_none();
            let group = self.groups.get(&key).expect("touched groups exist");
            let new = if group.rows > 0 || global {
                Some(self.output_row(step, group)?)
            } else {
                self.groups.remove(&key);
                None
            };
            if old == new {
                continue;
            }
            old_rows.extend(old);
            new_rows.extend(new);
        }
        self.rows_to_changes(old_rows, new_rows)
    }

    /// Every group's current output row, as inserts.
    pub fn current(&self, step: &AggregateStep) -> Result<Weighted, ArrowError> {
        let rows = self
            .groups
            .values()
            .map(|g| self.output_row(step, g))
            .collect::<Result<Vec<_>, _>>()?;
        self.rows_to_changes(Vec::new(), rows)
    }

    fn rows_to_changes(
        &self,
        old_rows: Vec<Vec<ScalarValue>>,
        new_rows: Vec<Vec<ScalarValue>>,
    ) -> Result<Weighted, ArrowError> {
        let mut weights = vec![-1i64; old_rows.len()];
        weights.extend(std::iter::repeat_n(1i64, new_rows.len()));
        let all: Vec<Vec<ScalarValue>> = old_rows.into_iter().chain(new_rows).collect();
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (c, field) in self.schema.fields().iter().enumerate() {
            let column = if all.is_empty() {
                arrow::array::new_empty_array(field.data_type())
            } else {
                ScalarValue::iter_to_array(all.iter().map(|r| r[c].clone()))
                    .map_err(datafusion_error)?
            };
            columns.push(if column.data_type() == field.data_type() {
                column
            } else {
                arrow::compute::cast(&column, field.data_type())?
            });
        }
        Ok(Weighted {
            batch: batch_with(&self.schema, columns, weights.len())?,
            weights,
        })
    }

    fn arg(
        &self,
        index: usize,
        kind: AggKind,
        output: &DataType,
        value: ArrayRef,
    ) -> Result<Arg, ArrowError> {
        let cast = |to: &DataType| -> Result<ArrayRef, ArrowError> {
            if value.data_type() == to {
                Ok(value.clone())
            } else {
                arrow::compute::cast(&value, to)
            }
        };
        Ok(match kind {
            AggKind::Count => Arg::Count(value.clone()),
            AggKind::Sum | AggKind::Avg => match output {
                DataType::Float64 if kind == AggKind::Avg && value.data_type().is_integer() => {
                    Arg::Int(cast(&DataType::Int64)?)
                }
                DataType::Float64 => Arg::Float(cast(&DataType::Float64)?),
                DataType::UInt64 => Arg::UInt(cast(&DataType::UInt64)?),
                DataType::Int64 => Arg::Int(cast(&DataType::Int64)?),
                DataType::Decimal128(_, _) => {
                    let scale = match value.data_type() {
                        DataType::Decimal128(_, s) => *s,
                        _ => 0,
                    };
                    Arg::Decimal(cast(&DataType::Decimal128(38, scale))?)
                }
                other => {
                    return Err(ArrowError::ComputeError(format!(
                        "no running sum for {other}"
                    )));
                }
            },
            AggKind::Min | AggKind::Max => {
                let value = cast(output)?;
                match extreme_repr(output) {
                    ExtremeRepr::Int => {
                        Arg::ExtremeInt(arrow::compute::cast(&value, &DataType::Int64)?)
                    }
                    ExtremeRepr::Wide => Arg::ExtremeWide(value),
                    ExtremeRepr::Row => {
                        let converter = self.extremes[index]
                            .as_ref()
                            .expect("MIN/MAX has a converter");
                        Arg::ExtremeRow(
                            converter.convert_columns(std::slice::from_ref(&value))?,
                            value,
                        )
                    }
                }
            }
        })
    }

    /// The aggregate's output row of a group: its key values, then each aggregate.
    fn output_row(
        &self,
        step: &AggregateStep,
        group: &Group,
    ) -> Result<Vec<ScalarValue>, ArrowError> {
        let mut row = group.key.clone();
        for (i, (acc, spec)) in group.accs.iter().zip(&step.aggs).enumerate() {
            let null = || ScalarValue::try_from(&spec.output).map_err(datafusion_error);
            let value = match (acc, spec.kind) {
                (Acc::Count(n), _) => ScalarValue::Int64(Some(*n)),
                (Acc::Sum { n: 0, .. }, _) => null()?,
                (Acc::Sum { sum, .. }, AggKind::Sum) => match (&spec.output, sum) {
                    (DataType::Float64, Sum::Float(f)) => ScalarValue::Float64(Some(*f)),
                    (DataType::Int64, Sum::Int(v)) => ScalarValue::Int64(Some(*v as i64)),
                    (DataType::UInt64, Sum::Int(v)) => ScalarValue::UInt64(Some(*v as u64)),
                    (DataType::Decimal128(p, s), Sum::Int(v)) => {
                        ScalarValue::Decimal128(Some(*v), *p, *s)
                    }
                    (other, _) => {
                        return Err(ArrowError::ComputeError(format!("no SUM for {other}")));
                    }
                },
                (Acc::Sum { n, sum }, _) => match (&spec.output, sum) {
                    (DataType::Float64, Sum::Float(f)) => ScalarValue::Float64(Some(f / *n as f64)),
                    (DataType::Float64, Sum::Int(v)) => {
                        ScalarValue::Float64(Some(*v as f64 / *n as f64))
                    }
                    (DataType::Decimal128(p, s), Sum::Int(v)) => {
                        // As DataFusion: scale the sum up to the result's scale, then divide
                        // (truncating).
                        let input_scale = match &spec.input {
                            DataType::Decimal128(_, s) => *s,
                            _ => 0,
                        };
                        let factor = 10i128.pow((*s - input_scale).max(0) as u32);
                        ScalarValue::Decimal128(Some(v * factor / *n as i128), *p, *s)
                    }
                    (other, _) => {
                        return Err(ArrowError::ComputeError(format!("no AVG for {other}")));
                    }
                },
                (Acc::Extreme(values), kind) => {
                    let chosen = if kind == AggKind::Min {
                        values.keys().next()
                    } else {
                        values.keys().next_back()
                    };
                    match chosen {
                        None => null()?,
                        Some(ExtremeKey::Int(v)) => ScalarValue::Int64(Some(*v))
                            .cast_to(&spec.output)
                            .map_err(datafusion_error)?,
                        Some(ExtremeKey::Wide(v)) => match &spec.output {
                            DataType::Decimal128(p, s) => ScalarValue::Decimal128(Some(*v), *p, *s),
                            other => {
                                return Err(ArrowError::ComputeError(format!(
                                    "a decimal MIN/MAX of type {other}"
                                )));
                            }
                        },
                        Some(ExtremeKey::Row(v)) => {
                            let converter = self.extremes[i].as_ref().expect("MIN/MAX converter");
                            let array = converter.convert_rows(std::iter::once(v.row()))?;
                            ScalarValue::try_from_array(&array[0], 0).map_err(datafusion_error)?
                        }
                    }
                }
            };
            row.push(value);
        }
        Ok(row)
    }
}

/// Adds one row's argument, `weight` times, to an accumulator.
fn update(acc: &mut Acc, arg: &Arg, row: usize, weight: i64) {
    match (acc, arg) {
        (Acc::Count(n), Arg::Count(values)) if values.is_valid(row) => *n += weight,
        (Acc::Sum { n, sum }, arg) => {
            let added: Option<Sum> = match arg {
                Arg::Int(a) => {
                    let a = a.as_primitive::<Int64Type>();
                    a.is_valid(row).then(|| Sum::Int(i128::from(a.value(row))))
                }
                Arg::UInt(a) => {
                    let a = a.as_primitive::<UInt64Type>();
                    a.is_valid(row).then(|| Sum::Int(i128::from(a.value(row))))
                }
                Arg::Decimal(a) => {
                    let a = a.as_primitive::<Decimal128Type>();
                    a.is_valid(row).then(|| Sum::Int(a.value(row)))
                }
                Arg::Float(a) => {
                    let a = a.as_primitive::<Float64Type>();
                    a.is_valid(row).then(|| Sum::Float(a.value(row)))
                }
                _ => None,
            };
            if let Some(added) = added {
                *n += weight;
                *sum = match (*sum, added) {
                    (Sum::Int(s), Sum::Int(v)) => Sum::Int(s.wrapping_add(v * i128::from(weight))),
                    (Sum::Float(s), Sum::Float(v)) => Sum::Float(s + v * weight as f64),
                    (Sum::Int(s), Sum::Float(v)) => Sum::Float(s as f64 + v * weight as f64),
                    (Sum::Float(s), Sum::Int(v)) => Sum::Float(s + (v * i128::from(weight)) as f64),
                };
                if *n == 0 {
                    // No value left: start again from an exact zero (a float sum would keep
                    // the rounding residue of what was added and taken away).
                    *sum = match *sum {
                        Sum::Int(_) => Sum::Int(0),
                        Sum::Float(_) => Sum::Float(0.0),
                    };
                }
            }
        }
        (Acc::Extreme(values), arg) => {
            let key = match arg {
                Arg::ExtremeInt(a) if a.is_valid(row) => {
                    ExtremeKey::Int(a.as_primitive::<Int64Type>().value(row))
                }
                Arg::ExtremeWide(a) if a.is_valid(row) => {
                    ExtremeKey::Wide(a.as_primitive::<Decimal128Type>().value(row))
                }
                Arg::ExtremeRow(rows, a) if a.is_valid(row) => {
                    ExtremeKey::Row(rows.row(row).owned())
                }
                _ => return,
            };
            match values.entry(key) {
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    *e.get_mut() += weight;
                    if *e.get() <= 0 {
                        e.remove();
                    }
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    if weight > 0 {
                        e.insert(weight);
                    }
                }
            }
        }
        _ => {}
    }
}
