//! Matching a record's fields (a JSON object's members, a CSV header, an XML element's
//! attributes and children) to the table's columns. A field goes to the column of
//! exactly its name; failing that, to the first column whose name matches ignoring case.
//! An exact match always beats a case-insensitive one, a repeated key keeps its last
//! value (as JSON parsers that build maps do), and among several case-insensitive
//! candidates the first in the record wins. Unmatched fields are skipped unparsed.
//!
//! With `field_paths` (see `paths`), a mapped column is not matched by its name; the
//! first member of its path is matched instead (exactly, no case folding), into a slot
//! after the columns' when no column reads that member, so the record is still read in
//! one pass.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::de::{IgnoredAny, MapAccess};
use serde_json::value::RawValue;

use super::paths::FieldPaths;
use super::raw::KeySeed;
use crate::schema::RecordSchema;

/// Above this many columns a hash lookup beats comparing names one by one.
const LINEAR_LOOKUP_MAX: usize = 16;

/// Column lookup by field name, built once per decoder.
#[derive(Debug)]
pub(crate) struct FieldIndex {
    /// The field names looked for.
    names: Vec<Box<str>>,
    /// The slot each name fills (a column's own index for a column read by its name).
    targets: Vec<usize>,
    /// The first `folded` names are columns' and also match ignoring case; the others
    /// are the first members of `field_paths`, matched exactly.
    folded: usize,
    /// Slots a record fills: one per column, then one per path member no column reads.
    slot_count: usize,
    by_name: Option<HashMap<Box<str>, usize>>,
}

impl FieldIndex {
    pub(crate) fn new(schema: &RecordSchema) -> Self {
        Self::with_paths(schema, &mut FieldPaths::default())
    }

    /// The index for `schema` when `paths` map some columns: sets each path's source
    /// slot.
    pub(crate) fn with_paths(schema: &RecordSchema, paths: &mut FieldPaths) -> Self {
        let mut names: Vec<Box<str>> = Vec::with_capacity(schema.columns().len());
        let mut targets = Vec::with_capacity(schema.columns().len());
        for (i, column) in schema.columns().iter().enumerate() {
            if paths.get(i).is_none() {
                names.push(column.name.as_str().into());
                targets.push(i);
            }
        }
        let folded = names.len();
        let mut slot_count = schema.columns().len();
        for path in paths.iter_mut() {
            path.source = match names.iter().position(|n| *n == path.first) {
                Some(p) => targets[p],
                None => {
                    names.push(path.first.clone());
                    targets.push(slot_count);
                    slot_count += 1;
                    slot_count - 1
                }
            };
        }
        let by_name = (names.len() > LINEAR_LOOKUP_MAX).then(|| {
            let mut map = HashMap::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                map.entry(name.clone()).or_insert(i);
            }
            map
        });
        FieldIndex {
            names,
            targets,
            folded,
            slot_count,
            by_name,
        }
    }

    /// The number of slots a record fills (columns, then path members).
    pub(crate) fn len(&self) -> usize {
        self.slot_count
    }

    /// The slot of the name at position `p`.
    fn target(&self, p: usize) -> usize {
        self.targets.get(p).copied().unwrap_or(usize::MAX)
    }

    /// The column named exactly `key`. `hint` is where to look first: records of one
    /// page usually list their fields in the same order, so it is the column after the
    /// previous match.
    fn exact(&self, key: &str, hint: usize) -> Option<usize> {
        if self.names.get(hint).is_some_and(|name| **name == *key) {
            return Some(hint);
        }
        match &self.by_name {
            Some(map) => map.get(key).copied(),
            None => self.names.iter().position(|name| **name == *key),
        }
    }

    fn case_insensitive(&self, key: &str) -> Option<usize> {
        self.names[..self.folded]
            .iter()
            .position(|name| eq_ignore_case(name, key))
            .map(|p| self.target(p))
    }

    /// Puts `value`, a field named `key`, into the slot of its column under the same
    /// rules as [`read_fields`] (the text formats use this; JSON reads its fields there).
    /// `hint` carries the previous match between calls. Returns whether a column took it.
    pub(crate) fn assign<T>(
        &self,
        key: &str,
        value: T,
        hint: &mut usize,
        slots: &mut [Option<T>],
    ) -> bool {
        if let Some(p) = self.exact(key, *hint) {
            *hint = p + 1;
            if let Some(slot) = slots.get_mut(self.target(p)) {
                *slot = Some(value);
                return true;
            }
            return false;
        }
        match self
            .case_insensitive(key)
            .and_then(|i| slots.get_mut(i))
            .filter(|slot| slot.is_none())
        {
            Some(slot) => {
                *slot = Some(value);
                true
            }
            None => false,
        }
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// The value a record holds for one column.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    /// The value's raw JSON text.
    pub(crate) raw: &'a str,
    /// The field name as the record spells it.
    pub(crate) key: Cow<'a, str>,
}

/// Reads an object's members from `map` into `slots` (one per column, cleared first):
/// each matched field's raw value. Works on any serde_json deserializer over the page, so
/// the streaming walker and the per-record paths share this one loop.
pub(crate) fn read_fields<'a, A: MapAccess<'a>>(
    mut map: A,
    index: &FieldIndex,
    slots: &mut [Option<Slot<'a>>],
) -> Result<(), A::Error> {
    slots.iter_mut().for_each(|slot| *slot = None);
    let mut hint = 0;
    while let Some(key) = map.next_key_seed(KeySeed)? {
        if let Some(p) = index.exact(&key, hint) {
            hint = p + 1;
            let raw: &'a RawValue = map.next_value()?;
            if let Some(slot) = slots.get_mut(index.target(p)) {
                *slot = Some(Slot {
                    raw: raw.get(),
                    key,
                });
            }
            continue;
        }
        let free = index
            .case_insensitive(&key)
            .and_then(|i| slots.get_mut(i))
            .filter(|slot| slot.is_none());
        match free {
            Some(slot) => {
                let raw: &'a RawValue = map.next_value()?;
                *slot = Some(Slot {
                    raw: raw.get(),
                    key,
                });
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, ColumnType};

    fn index(names: &[&str]) -> FieldIndex {
        FieldIndex::new(&RecordSchema::new(
            names
                .iter()
                .map(|n| Column::new(*n, ColumnType::Text, true))
                .collect(),
        ))
    }

    struct Object<'x, 'a> {
        index: &'x FieldIndex,
        slots: &'x mut [Option<Slot<'a>>],
    }

    impl<'a> serde::de::Visitor<'a> for Object<'_, 'a> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'a>>(self, map: A) -> Result<(), A::Error> {
            read_fields(map, self.index, self.slots)
        }
    }

    fn try_read<'a>(
        json: &'a str,
        index: &FieldIndex,
        slots: &mut [Option<Slot<'a>>],
    ) -> serde_json::Result<()> {
        use serde::Deserializer;
        let mut de = serde_json::Deserializer::from_str(json);
        (&mut de).deserialize_map(Object { index, slots })?;
        de.end()
    }

    fn read<'a>(json: &'a str, index: &FieldIndex) -> Vec<Option<(String, &'a str)>> {
        let mut slots: Vec<Option<Slot<'a>>> = (0..index.len()).map(|_| None).collect();
        try_read(json, index, &mut slots).unwrap();
        slots
            .into_iter()
            .map(|s| s.map(|s| (s.key.to_string(), s.raw)))
            .collect()
    }

    #[test]
    fn exact_then_case_insensitive() {
        let idx = index(&["id", "Name", "value"]);
        let got = read(
            r#"{"ID": 1, "name": "x", "extra": {"a": 1}, "value": [1, 2]}"#,
            &idx,
        );
        assert_eq!(
            got,
            vec![
                Some(("ID".into(), "1")),
                Some(("name".into(), "\"x\"")),
                Some(("value".into(), "[1, 2]")),
            ]
        );
    }

    #[test]
    fn exact_match_beats_earlier_or_later_case_insensitive_one() {
        let idx = index(&["id"]);
        assert_eq!(
            read(r#"{"ID": 1, "id": 2, "Id": 3}"#, &idx),
            vec![Some(("id".into(), "2"))]
        );
        assert_eq!(
            read(r#"{"Id": 3, "ID": 1}"#, &idx),
            vec![Some(("Id".into(), "3"))]
        );
    }

    #[test]
    fn repeated_key_keeps_last_value() {
        let idx = index(&["a"]);
        assert_eq!(
            read(r#"{"a": 1, "a": 2}"#, &idx),
            vec![Some(("a".into(), "2"))]
        );
    }

    #[test]
    fn unicode_case_insensitive_and_escaped_keys() {
        let idx = index(&["Größe", "a\"b"]);
        assert_eq!(
            read(r#"{"GRÖSSE": 0, "größe": 1, "a\"b": 2}"#, &idx),
            vec![Some(("größe".into(), "1")), Some(("a\"b".into(), "2"))]
        );
    }

    #[test]
    fn many_columns_use_the_hash_index() {
        let names: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let idx = index(&refs);
        let got = read(r#"{"c39": 1, "C0": 2}"#, &idx);
        assert_eq!(got[39], Some(("c39".into(), "1")));
        assert_eq!(got[0], Some(("C0".into(), "2")));
    }

    #[test]
    fn not_an_object_is_an_error() {
        let idx = index(&["a"]);
        let mut slots = vec![None];
        assert!(try_read("[1]", &idx, &mut slots).is_err());
        assert!(try_read(r#"{"a": 1} x"#, &idx, &mut slots).is_err());
    }
}
