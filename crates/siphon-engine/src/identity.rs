//! What a source's saved state is about: the options that define *what* is polled.
//!
//! A source's state (cursor or `since` value, ETag, body hash) only means something for
//! the request it was read from. If the user points the table at another endpoint, another
//! `json_path`, another `state_field` or another pagination, the old state would be sent
//! to the new source: a `since` from another API that skips everything, an ETag that
//! answers 304 for ever. So the state is saved with a fingerprint of those options, and a
//! source whose fingerprint changed starts again from `initial_state`, saying which option
//! changed.
//!
//! The fingerprint is taken over the options *as written* (before `${NAME}` substitution):
//! a rotated secret in the environment is not a new source, and no secret value is hashed
//! onto the disk. Options that change *how* the same data is fetched (interval, timeouts,
//! retries, headers, credentials, rate limits) are not part of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use siphon_connect::source::SourceState;

use crate::catalog::{ConnectionDef, TableDef};

/// The options whose change makes a saved state meaningless.
pub const IDENTITY_OPTIONS: &[&str] = &[
    "endpoint",
    "method",
    "body",
    "query_params",
    "format",
    "json_path",
    "csv_header",
    "csv_delimiter",
    "xml_root_path",
    "pagination_type",
    "page_size",
    "offset_param",
    "limit_param",
    "page_param",
    "size_param",
    "start_page",
    "cursor_param",
    "cursor_path",
    "link_rel",
    "next_url_path",
    "state_type",
    "state_field",
    "state_param",
    "initial_state",
];

/// Option name → short hash of its text as written; absent options are absent.
pub type PollIdentity = BTreeMap<String, String>;

/// The identity of a table's source: its connection's options overridden by its own.
pub fn poll_identity(table: &TableDef, connection: Option<&ConnectionDef>) -> PollIdentity {
    let mut merged: BTreeMap<&str, &str> = BTreeMap::new();
    for options in connection
        .map(|c| &c.options)
        .into_iter()
        .chain([&table.options])
    {
        for (key, value) in options {
            if IDENTITY_OPTIONS.contains(&key.as_str()) {
                merged.insert(key, value);
            }
        }
    }
    merged
        .into_iter()
        .map(|(key, value)| {
            let digest = Sha256::digest(value.as_bytes());
            let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            (key.to_string(), short)
        })
        .collect()
}

/// The options that differ between two identities, sorted.
pub fn changed_options(saved: &PollIdentity, current: &PollIdentity) -> Vec<String> {
    let mut keys: Vec<String> = saved
        .keys()
        .chain(current.keys())
        .filter(|k| saved.get(*k) != current.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A source's state as the store keeps it: the source's own state and the identity it
/// belongs to. States saved before identities existed read with an empty identity, which
/// is taken to match (an upgrade must not reset every source).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    /// The source's state.
    #[serde(flatten)]
    pub source: SourceState,
    /// The identity of the source that produced it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub identity: PollIdentity,
    /// When the poll that saved it started: a restart waits out the rest of the interval
    /// from there instead of polling at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polled_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl SavedState {
    /// The state to resume from under `current`: the saved one when it belongs to the same
    /// source, else a fresh state and the options that changed.
    pub fn resume(self, current: &PollIdentity) -> (SourceState, Vec<String>) {
        if self.identity.is_empty() {
            return (self.source, Vec::new());
        }
        let changed = changed_options(&self.identity, current);
        if changed.is_empty() {
            (self.source, changed)
        } else {
            (SourceState::default(), changed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ConnectorKind;

    fn table(options: &[(&str, &str)]) -> TableDef {
        TableDef {
            name: "t".into(),
            columns: Vec::new(),
            primary_key: Vec::new(),
            connector: ConnectorKind::PollingHttp,
            connection: None,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn only_what_is_polled_is_part_of_the_identity() {
        let a = poll_identity(
            &table(&[("endpoint", "http://a/x"), ("interval_ms", "100")]),
            None,
        );
        let b = poll_identity(
            &table(&[
                ("endpoint", "http://a/x"),
                ("interval_ms", "5000"),
                ("token", "${T}"),
            ]),
            None,
        );
        assert_eq!(a, b);
        let c = poll_identity(&table(&[("endpoint", "http://b/x")]), None);
        assert_eq!(changed_options(&a, &c), vec!["endpoint".to_string()]);
        let d = poll_identity(
            &table(&[("endpoint", "http://a/x"), ("json_path", "$.items[*]")]),
            None,
        );
        assert_eq!(changed_options(&a, &d), vec!["json_path".to_string()]);
    }

    #[test]
    fn a_table_option_overrides_its_connection() {
        let connection = ConnectionDef {
            name: "c".into(),
            connector: ConnectorKind::PollingHttp,
            options: [("endpoint".to_string(), "http://conn/".to_string())].into(),
        };
        let own = poll_identity(&table(&[("endpoint", "http://own/")]), Some(&connection));
        let alone = poll_identity(&table(&[("endpoint", "http://own/")]), None);
        assert_eq!(own, alone);
    }

    #[test]
    fn a_state_from_another_source_is_not_resumed() {
        let current = poll_identity(&table(&[("endpoint", "http://b/")]), None);
        let saved = SavedState {
            source: SourceState {
                value: Some("2024-01-01T00:00:00Z".into()),
                etag: Some("\"v1\"".into()),
                ..SourceState::default()
            },
            identity: poll_identity(&table(&[("endpoint", "http://a/")]), None),
            polled_at: None,
        };
        let (state, changed) = saved.clone().resume(&current);
        assert_eq!(state, SourceState::default());
        assert_eq!(changed, vec!["endpoint".to_string()]);
        let (state, changed) = saved.clone().resume(&saved.identity);
        assert_eq!(state, saved.source);
        assert!(changed.is_empty());
        // A state saved before identities existed is resumed.
        let legacy: SavedState = serde_json::from_str(r#"{"value": "7", "polls": 3}"#).unwrap();
        let (state, changed) = legacy.resume(&current);
        assert_eq!(state.value.as_deref(), Some("7"));
        assert!(changed.is_empty());
    }
}
