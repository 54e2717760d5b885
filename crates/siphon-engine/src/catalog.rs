//! The catalog: the connections, tables, views and sinks that exist, as the store persists them.
//!
//! Definitions keep option values as the user wrote them, before environment
//! substitution, so secrets given as `${NAME}` never reach the disk; they are resolved each
//! time the catalog is loaded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use siphon_connect::schema::{Column, RecordSchema};

/// The kinds of connector a table can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// `polling_http_source` (alias `polling_http`).
    PollingHttp,
    /// `http_input`, or no connector: records are pushed over HTTP.
    HttpInput,
    /// Not a connector: the rows of a continuous view (`CREATE VIEW`), which takes no
    /// pushes and polls nothing.
    View,
}

impl ConnectorKind {
    /// Every accepted spelling, for suggestions.
    pub const NAMES: &'static [&'static str] =
        &["polling_http_source", "polling_http", "http_input"];

    /// Parses a connector name.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "polling_http_source" | "polling_http" => Some(ConnectorKind::PollingHttp),
            "http_input" => Some(ConnectorKind::HttpInput),
            _ => None,
        }
    }

    /// The canonical name, as `system.connector_status.connector_name` shows it.
    pub fn name(self) -> &'static str {
        match self {
            ConnectorKind::PollingHttp => "polling_http_source",
            ConnectorKind::HttpInput => "http_input",
            ConnectorKind::View => "view",
        }
    }
}

/// `CREATE CONNECTION`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionDef {
    /// Name.
    pub name: String,
    /// The connector it configures.
    pub connector: ConnectorKind,
    /// Options as written (before `${NAME}` substitution).
    pub options: BTreeMap<String, String>,
}

/// `CREATE TABLE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    /// Name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Primary key columns (empty: append-only).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The connector feeding it.
    pub connector: ConnectorKind,
    /// The connection whose options it inherits.
    #[serde(default)]
    pub connection: Option<String>,
    /// The table's own options as written (they override the connection's).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl TableDef {
    /// The record schema of its rows. PRIMARY KEY columns are NOT NULL whatever the
    /// column list says: a record without its key cannot be upserted, so the decoder makes
    /// it a dead letter instead of one NULL-key row that absorbs every other keyless record.
    pub fn schema(&self) -> RecordSchema {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                nullable: c.nullable && !self.primary_key.contains(&c.name),
                ..c.clone()
            })
            .collect();
        RecordSchema::new(columns)
    }

    /// Whether `other` stores rows of the same shape, so data written under one can be read
    /// under the other. Options may differ freely.
    pub fn same_shape(&self, other: &TableDef) -> bool {
        self.columns == other.columns && self.primary_key == other.primary_key
    }

    /// Describes the columns, for messages: `id TEXT, value DOUBLE`.
    pub fn describe_columns(&self) -> String {
        self.columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.name,
                    c.ty.sql_name(),
                    if c.nullable { "" } else { " NOT NULL" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `CREATE VIEW`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    /// Name.
    pub name: String,
    /// The query text after `AS`, as written.
    pub query: String,
    /// Its output columns as stored (computed from the query when it was created).
    pub columns: Vec<Column>,
}

impl ViewDef {
    /// The table definition its rows are stored and served under.
    pub fn table_def(&self) -> TableDef {
        TableDef {
            name: self.name.clone(),
            columns: self.columns.clone(),
            primary_key: Vec::new(),
            connector: ConnectorKind::View,
            connection: None,
            options: BTreeMap::new(),
        }
    }
}

/// The kinds of sink (`CREATE SINK ... WITH (connector = ...)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkConnector {
    /// `nats_jetstream`: every change published to a JetStream stream.
    NatsJetstream,
}

impl SinkConnector {
    /// Every accepted spelling, for suggestions.
    pub const NAMES: &'static [&'static str] = &["nats_jetstream"];

    /// Parses a sink connector name.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "nats_jetstream" | "jetstream" => Some(SinkConnector::NatsJetstream),
            _ => None,
        }
    }

    /// The canonical name, as `system.connector_status.connector_name` shows it.
    pub fn name(self) -> &'static str {
        match self {
            SinkConnector::NatsJetstream => "nats_jetstream",
        }
    }
}

/// `CREATE SINK`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkDef {
    /// Name.
    pub name: String,
    /// The table or view whose changes it publishes.
    pub from: String,
    /// Where it publishes.
    pub connector: SinkConnector,
    /// Options as written (before `${NAME}` substitution), `connector` left out.
    pub options: BTreeMap<String, String>,
}

/// The whole catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Connections by name.
    pub connections: BTreeMap<String, ConnectionDef>,
    /// Tables by name.
    pub tables: BTreeMap<String, TableDef>,
    /// Views by name.
    pub views: BTreeMap<String, ViewDef>,
    /// Sinks by name.
    pub sinks: BTreeMap<String, SinkDef>,
}

impl Catalog {
    /// Store key of a connection.
    pub fn connection_key(name: &str) -> String {
        format!("connection:{name}")
    }

    /// Store key of a table.
    pub fn table_key(name: &str) -> String {
        format!("table:{name}")
    }

    /// Store key of a view.
    pub fn view_key(name: &str) -> String {
        format!("view:{name}")
    }

    /// Store key of a sink.
    pub fn sink_key(name: &str) -> String {
        format!("sink:{name}")
    }

    /// Rebuilds the catalog from the store's `(key, JSON)` entries.
    pub fn from_entries(entries: &[(String, String)]) -> Result<Self, String> {
        let mut catalog = Catalog::default();
        for (key, json) in entries {
            if key.starts_with("connection:") {
                let def: ConnectionDef =
                    serde_json::from_str(json).map_err(|e| format!("catalog entry {key}: {e}"))?;
                catalog.connections.insert(def.name.clone(), def);
            } else if key.starts_with("table:") {
                let def: TableDef =
                    serde_json::from_str(json).map_err(|e| format!("catalog entry {key}: {e}"))?;
                catalog.tables.insert(def.name.clone(), def);
            } else if key.starts_with("view:") {
                let def: ViewDef =
                    serde_json::from_str(json).map_err(|e| format!("catalog entry {key}: {e}"))?;
                catalog.views.insert(def.name.clone(), def);
            } else if key.starts_with("sink:") {
                let def: SinkDef =
                    serde_json::from_str(json).map_err(|e| format!("catalog entry {key}: {e}"))?;
                catalog.sinks.insert(def.name.clone(), def);
            } else {
                return Err(format!("unknown catalog entry {key}"));
            }
        }
        Ok(catalog)
    }
}
