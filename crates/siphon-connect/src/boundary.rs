//! Incremental loads without duplicates or losses at the boundary.
//!
//! Most APIs filter inclusively (`updated_since=T` returns records with `updatedAt >= T`),
//! because an exclusive filter loses records that share the boundary instant but became
//! visible after the last poll. So every poll gets back the records at the saved maximum
//! again. Storing them again would duplicate them; skipping every record at the maximum
//! would lose the late ones. The way out is memory: the state remembers *which* records were
//! stored at the boundary (a hash of each record's decoded row), committed in the same
//! transaction as the records, and the next poll drops exactly those.
//!
//! * Boundary dedup (on by default, `boundary_dedup`): a record whose state value equals
//!   the saved maximum and that is remembered is dropped; one that is not is stored.
//! * `lookback_ms` (timestamp state): the state sent is the maximum minus the window, for
//!   APIs whose records become visible late; records inside the window that were stored
//!   are remembered for the window, and dropped when they come again.
//! * `client_side_filter`: for APIs that ignore the filter parameter, records below the
//!   window (older than anything remembered) are dropped as already stored.
//!
//! The memory holds only the records inside the window (at the maximum, without
//! lookback), so it is bounded by what the API can return at once for that window.

use std::collections::HashSet;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::row::{RowConverter, SortField};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::StateKind;
use crate::state::{self, Number, StateError};

/// One record remembered at the boundary: its state value (canonical text) and a hash of
/// its decoded row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Seen {
    /// The record's state value, canonical (`state::canonical`).
    pub at: String,
    /// The first 16 hex digits of the SHA-256 of the record's decoded row.
    pub id: String,
}

/// The boundary options of an incremental source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundaryConfig {
    /// `boundary_dedup`: remember the records stored at the boundary and drop them when
    /// they come again.
    pub dedup: bool,
    /// `lookback_ms`: how far before the saved maximum the state that is sent reaches.
    pub lookback: TimeDelta,
    /// `client_side_filter`: drop records below the window locally.
    pub client_side_filter: bool,
}

impl Default for BoundaryConfig {
    fn default() -> Self {
        BoundaryConfig {
            dedup: true,
            lookback: TimeDelta::zero(),
            client_side_filter: false,
        }
    }
}

/// What [`filter`] kept and remembered.
#[derive(Debug)]
pub struct Filtered {
    /// The records to store.
    pub batch: RecordBatch,
    /// Records dropped as already stored.
    pub dropped: usize,
}

/// The lower edge of the window: the saved maximum minus the lookback (timestamps only).
pub fn window_start(kind: StateKind, saved: &str, config: &BoundaryConfig) -> Option<Number> {
    let max = state::ordinal(kind, saved)?;
    Some(match (kind, max) {
        (StateKind::Timestamp, Number::Int(micros)) => {
            Number::Int(micros - i128::from(config.lookback.num_microseconds().unwrap_or(0)))
        }
        (_, n) => n,
    })
}

/// The state value a request sends: the saved maximum, minus the lookback for timestamps.
pub fn value_to_send(kind: StateKind, saved: &str, config: &BoundaryConfig) -> String {
    if kind != StateKind::Timestamp || config.lookback.is_zero() {
        return saved.to_string();
    }
    match state::parse_instant(saved) {
        Some(at) => state::instant_text(at - config.lookback),
        None => saved.to_string(),
    }
}

/// The hashes of the rows `indices` of a batch (their decoded values, so the same record
/// hashes alike whatever its JSON spacing or key order), in the order of `indices`. Only
/// the rows inside the window are hashed: a large poll past the boundary costs nothing.
fn row_ids(batch: &RecordBatch, indices: &[usize]) -> Result<Vec<String>, StateError> {
    if indices.is_empty() {
        return Ok(Vec::new());
    }
    let take =
        arrow::array::UInt32Array::from(indices.iter().map(|i| *i as u32).collect::<Vec<_>>());
    let rows = arrow::compute::take_record_batch(batch, &take).map_err(|e| StateError {
        field: String::new(),
        message: format!("hashing records: {e}"),
    })?;
    all_row_ids(&rows)
}

fn all_row_ids(batch: &RecordBatch) -> Result<Vec<String>, StateError> {
    let err = |e: arrow::error::ArrowError| StateError {
        field: String::new(),
        message: format!("hashing records: {e}"),
    };
    let converter = RowConverter::new(
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )
    .map_err(err)?;
    let rows = converter.convert_columns(batch.columns()).map_err(err)?;
    Ok(rows
        .iter()
        .map(|row| {
            let digest = Sha256::digest(row.as_ref());
            digest[..8].iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect())
}

/// Drops the records of a poll that were already stored (see the module docs). `saved` is
/// the saved maximum, `memory` the records remembered with it.
pub fn filter(
    kind: StateKind,
    batch: RecordBatch,
    field: &str,
    saved: Option<&str>,
    memory: &[Seen],
    config: &BoundaryConfig,
) -> Result<Filtered, StateError> {
    let Some(saved) = saved else {
        return Ok(Filtered { batch, dropped: 0 });
    };
    let (Some(floor), Some(max)) = (
        window_start(kind, saved, config),
        state::ordinal(kind, saved),
    ) else {
        return Ok(Filtered { batch, dropped: 0 });
    };
    let values = state::ordinals(kind, &batch, field)?;
    let remembered: HashSet<(&str, &str)> = memory
        .iter()
        .map(|s| (s.at.as_str(), s.id.as_str()))
        .collect();
    let inside: Vec<usize> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            v.is_some_and(|v| !state::compare(v, floor).is_lt() && !state::compare(v, max).is_gt())
        })
        .map(|(i, _)| i)
        .collect();
    let mut remembered_rows = HashSet::new();
    if config.dedup && !remembered.is_empty() {
        for (i, id) in inside.iter().zip(row_ids(&batch, &inside)?) {
            let value = values[*i].expect("rows inside the window have a value");
            if remembered.contains(&(state::canonical(value).as_str(), id.as_str())) {
                remembered_rows.insert(*i);
            }
        }
    }
    let keep: Vec<bool> = values
        .iter()
        .enumerate()
        .map(|(i, value)| match value {
            None => true,
            Some(v) if state::compare(*v, floor).is_lt() => !config.client_side_filter,
            Some(_) => !remembered_rows.contains(&i),
        })
        .collect();
    let dropped = keep.iter().filter(|k| !**k).count();
    if dropped == 0 {
        return Ok(Filtered { batch, dropped });
    }
    let batch =
        arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep)).map_err(|e| {
            StateError {
                field: field.to_string(),
                message: format!("dropping already stored records: {e}"),
            }
        })?;
    Ok(Filtered { batch, dropped })
}

/// The memory to save with the new maximum `new_max`: the remembered records and the
/// stored `batch`'s records whose value lies inside the window below `new_max`.
pub fn remember(
    kind: StateKind,
    batch: &RecordBatch,
    field: &str,
    new_max: Option<&str>,
    memory: &[Seen],
    config: &BoundaryConfig,
) -> Result<Vec<Seen>, StateError> {
    if !config.dedup {
        return Ok(Vec::new());
    }
    let Some(new_max) = new_max else {
        return Ok(Vec::new());
    };
    let (Some(floor), Some(max)) = (
        window_start(kind, new_max, config),
        state::ordinal(kind, new_max),
    ) else {
        return Ok(Vec::new());
    };
    let inside = |value: Number| {
        !state::compare(value, floor).is_lt() && !state::compare(value, max).is_gt()
    };
    let mut kept: Vec<Seen> = memory
        .iter()
        .filter(|s| state::parse_number(&s.at).is_some_and(inside))
        .cloned()
        .collect();
    let values = state::ordinals(kind, batch, field)?;
    let rows: Vec<usize> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_some_and(inside))
        .map(|(i, _)| i)
        .collect();
    for (i, id) in rows.iter().zip(row_ids(batch, &rows)?) {
        kept.push(Seen {
            at: state::canonical(values[*i].expect("rows inside the window have a value")),
            id,
        });
    }
    let mut unique = HashSet::new();
    kept.retain(|s| unique.insert(s.clone()));
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    fn batch(rows: &[(i64, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("ts", DataType::Utf8, true),
            ])),
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

    fn ids(b: &RecordBatch) -> Vec<i64> {
        b.column(0).as_primitive::<Int64Type>().values().to_vec()
    }

    const T: StateKind = StateKind::Timestamp;

    /// One poll: filter against the saved state, advance, remember.
    fn poll(
        incoming: &[(i64, &str)],
        saved: Option<&str>,
        memory: &[Seen],
        config: &BoundaryConfig,
    ) -> (Vec<i64>, Option<String>, Vec<Seen>) {
        let kept = filter(T, batch(incoming), "ts", saved, memory, config).unwrap();
        let max = state::advance(T, &kept.batch, "ts", saved, chrono::Utc::now())
            .unwrap()
            .value;
        let memory = remember(T, &kept.batch, "ts", max.as_deref(), memory, config).unwrap();
        (ids(&kept.batch), max, memory)
    }

    #[test]
    fn an_inclusive_api_neither_duplicates_nor_loses_at_the_boundary() {
        let config = BoundaryConfig::default();
        let (stored, max, memory) = poll(
            &[(1, "2024-01-01T00:00:01Z"), (2, "2024-01-01T00:00:02Z")],
            None,
            &[],
            &config,
        );
        assert_eq!(stored, vec![1, 2]);
        assert_eq!(
            memory.len(),
            1,
            "only the record at the maximum is remembered"
        );
        // `>=` sends record 2 again; record 3 arrived later at the same instant.
        let (stored, max, memory) = poll(
            &[(2, "2024-01-01T00:00:02Z"), (3, "2024-01-01T00:00:02Z")],
            max.as_deref(),
            &memory,
            &config,
        );
        assert_eq!(stored, vec![3]);
        assert_eq!(memory.len(), 2);
        // Both come again with a newer one: only the newer one is stored, and the memory
        // moves to the new maximum.
        let (stored, max, memory) = poll(
            &[
                (2, "2024-01-01T00:00:02Z"),
                (3, "2024-01-01T00:00:02Z"),
                (4, "2024-01-01T00:00:05Z"),
            ],
            max.as_deref(),
            &memory,
            &config,
        );
        assert_eq!(stored, vec![4]);
        assert_eq!(max.as_deref(), Some("2024-01-01T00:00:05.000000Z"));
        assert_eq!(memory.len(), 1);
        // Without boundary dedup, a record at the boundary is stored again.
        let (stored, _, _) = poll(
            &[(4, "2024-01-01T00:00:05Z")],
            max.as_deref(),
            &memory,
            &BoundaryConfig {
                dedup: false,
                ..config
            },
        );
        assert_eq!(stored, vec![4]);
    }

    #[test]
    fn a_lookback_window_catches_late_records_and_drops_the_stored_ones() {
        let config = BoundaryConfig {
            lookback: TimeDelta::seconds(10),
            ..BoundaryConfig::default()
        };
        let (_, max, memory) = poll(
            &[
                (1, "2024-01-01T00:00:00Z"),
                (2, "2024-01-01T00:00:55Z"),
                (3, "2024-01-01T00:01:00Z"),
            ],
            None,
            &[],
            &config,
        );
        assert_eq!(
            memory.len(),
            2,
            "the window [00:50, 01:00] holds records 2 and 3"
        );
        assert_eq!(
            value_to_send(T, max.as_deref().unwrap(), &config),
            "2024-01-01T00:00:50.000000Z"
        );
        // The API returns the window again, plus record 4 that became visible late with
        // an older timestamp inside the window.
        let (stored, max2, memory) = poll(
            &[
                (2, "2024-01-01T00:00:55Z"),
                (4, "2024-01-01T00:00:52Z"),
                (3, "2024-01-01T00:01:00Z"),
            ],
            max.as_deref(),
            &memory,
            &config,
        );
        assert_eq!(stored, vec![4]);
        assert_eq!(max2, max);
        assert_eq!(memory.len(), 3);
        // Without client_side_filter, a record below the window is stored (the API sent
        // it, so it is taken as new); with it, it is dropped as already stored.
        let old = [(1, "2024-01-01T00:00:00Z")];
        assert_eq!(poll(&old, max.as_deref(), &memory, &config).0, vec![1]);
        let filtering = BoundaryConfig {
            client_side_filter: true,
            ..config
        };
        assert!(poll(&old, max.as_deref(), &memory, &filtering).0.is_empty());
    }

    #[test]
    fn the_memory_holds_only_the_window() {
        let config = BoundaryConfig::default();
        let many: Vec<(i64, String)> = (0..50)
            .map(|i| (i, format!("2024-01-01T00:00:{:02}Z", i % 60)))
            .collect();
        let rows: Vec<(i64, &str)> = many.iter().map(|(i, t)| (*i, t.as_str())).collect();
        let (_, _, memory) = poll(&rows, None, &[], &config);
        assert_eq!(memory.len(), 1);
        assert_eq!(memory[0].at, "1704067249000000");
    }
}
