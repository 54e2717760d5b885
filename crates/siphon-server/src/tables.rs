//! Table definitions, read-only and with secrets redacted: `GET /v1/tables` (every table
//! and view: its name, kind, connector and connection) and `GET /v1/tables/{name}` (one
//! definition: columns, primary key, its own options and its connection's, or a view's
//! query).
//!
//! The web console shows them; nothing else exposed a definition. Options are those the
//! catalog keeps, as written (`${NAME}` not resolved, so values from the environment are
//! never here), and every value passes through the same secret rules as the sources'
//! messages ([`siphon_connect::config::option_secrets`], built over the table's merged
//! options so a secret of the connection is scrubbed from the table's options too); the
//! value of a secret option (`token`, `password`, `api_key`, `client_secret`) is replaced
//! whole, however short. A definition that names no secret comes back as written.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use siphon_connect::config::option_secrets;
use siphon_connect::secret::{REDACTED, is_secret_option};
use siphon_engine::catalog::{Catalog, ConnectionDef, TableDef};

use crate::{ApiError, AppState};

/// The routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tables", get(list))
        .route("/v1/tables/{table}", get(one))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let catalog = state.engine()?.catalog();
    Ok(Json(json!({ "tables": summaries(&catalog) })))
}

async fn one(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.engine()?.catalog();
    definition(&catalog, &name).map(Json).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("unknown table `{name}`"))
            .with_detail(json!({ "table": name }))
    })
}

/// One entry per table and view, in name order.
fn summaries(catalog: &Catalog) -> Vec<Value> {
    let mut out: BTreeMap<&str, Value> = BTreeMap::new();
    for t in catalog.tables.values() {
        out.insert(
            &t.name,
            json!({
                "name": t.name,
                "kind": "table",
                "connector": t.connector.name(),
                "connection": t.connection,
            }),
        );
    }
    for v in catalog.views.values() {
        out.insert(
            &v.name,
            json!({ "name": v.name, "kind": "view", "connector": "view", "connection": null }),
        );
    }
    out.into_values().collect()
}

fn columns(def: &TableDef) -> Value {
    def.columns
        .iter()
        .map(|c| json!({ "name": c.name, "type": c.ty.sql_name(), "nullable": c.nullable }))
        .collect()
}

/// The definition of a table or view, secrets redacted; `None` when there is none.
fn definition(catalog: &Catalog, name: &str) -> Option<Value> {
    if let Some(view) = catalog.views.get(name) {
        let def = view.table_def();
        return Some(json!({
            "name": view.name,
            "kind": "view",
            "connector": "view",
            "connection": null,
            "columns": columns(&def),
            "primary_key": [],
            "options": {},
            "connection_options": {},
            "query": view.query,
        }));
    }
    let table = catalog.tables.get(name)?;
    let connection = table
        .connection
        .as_ref()
        .and_then(|c| catalog.connections.get(c));
    let (options, connection_options) = redacted_options(table, connection);
    Some(json!({
        "name": table.name,
        "kind": "table",
        "connector": table.connector.name(),
        "connection": table.connection,
        "columns": columns(table),
        "primary_key": table.primary_key,
        "options": options,
        "connection_options": connection_options,
    }))
}

type Options = BTreeMap<String, String>;

/// The table's own options and its connection's, each value redacted with the secrets of
/// the merged set (a table's options override its connection's, as the source sees them).
fn redacted_options(table: &TableDef, connection: Option<&ConnectionDef>) -> (Options, Options) {
    let mut merged = connection.map(|c| c.options.clone()).unwrap_or_default();
    merged.extend(table.options.clone());
    let redactor = option_secrets(&merged, &[]);
    let redact = |options: &Options| -> Options {
        options
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_option(k) {
                    REDACTED.to_string()
                } else {
                    redactor.redact(v)
                };
                (k.clone(), shown)
            })
            .collect()
    };
    (
        redact(&table.options),
        connection.map(|c| redact(&c.options)).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use siphon_connect::schema::{Column, ColumnType};
    use siphon_engine::catalog::{ConnectorKind, ViewDef};

    fn options(pairs: &[(&str, &str)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn catalog() -> Catalog {
        let mut catalog = Catalog::default();
        catalog.connections.insert(
            "api".into(),
            ConnectionDef {
                name: "api".into(),
                connector: ConnectorKind::PollingHttp,
                options: options(&[
                    ("token", "conn-token-123"),
                    ("auth_type", "bearer"),
                    ("interval_ms", "1000"),
                ]),
            },
        );
        catalog.tables.insert(
            "t".into(),
            TableDef {
                name: "t".into(),
                columns: vec![Column {
                    name: "id".into(),
                    ty: ColumnType::BigInt,
                    nullable: false,
                }],
                primary_key: vec!["id".into()],
                connector: ConnectorKind::PollingHttp,
                connection: Some("api".into()),
                options: options(&[
                    (
                        "endpoint",
                        "https://user:hunter22@api.example/v1?api_key=k-12345&page=1&t=conn-token-123",
                    ),
                    (
                        "headers",
                        r#"{"Authorization": "Bearer abcdefgh", "Accept": "application/json"}"#,
                    ),
                    ("password", "pw"),
                    ("query_params", r#"{"access_token": "qp-secret-9", "q": "x"}"#),
                ]),
            },
        );
        catalog.views.insert(
            "v".into(),
            ViewDef {
                name: "v".into(),
                query: "SELECT id FROM t".into(),
                columns: vec![Column {
                    name: "id".into(),
                    ty: ColumnType::BigInt,
                    nullable: true,
                }],
            },
        );
        catalog
    }

    #[test]
    fn definitions_never_show_a_secret() {
        let def = definition(&catalog(), "t").unwrap();
        let text = def.to_string();
        for secret in [
            "conn-token-123",
            "hunter22",
            "k-12345",
            "abcdefgh",
            "qp-secret-9",
            "\"pw\"",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(def["connection_options"]["token"], "***");
        assert_eq!(def["connection_options"]["interval_ms"], "1000");
        assert_eq!(def["options"]["password"], "***");
        let endpoint = def["options"]["endpoint"].as_str().unwrap();
        assert!(endpoint.contains("page=1") && endpoint.contains("api_key=***"));
        assert!(
            def["options"]["headers"]
                .as_str()
                .unwrap()
                .contains("application/json")
        );
        assert_eq!(def["primary_key"], json!(["id"]));
        assert_eq!(
            def["columns"],
            json!([{"name": "id", "type": "BIGINT", "nullable": false}])
        );
    }

    #[test]
    fn views_and_the_list() {
        let catalog = catalog();
        let view = definition(&catalog, "v").unwrap();
        assert_eq!(view["kind"], "view");
        assert_eq!(view["query"], "SELECT id FROM t");
        assert!(definition(&catalog, "nope").is_none());
        let list = summaries(&catalog);
        let names: Vec<_> = list.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["t", "v"]);
        assert_eq!(list[0]["connector"], "polling_http_source");
        assert_eq!(list[0]["connection"], "api");
    }
}
