//! A program's tables and views as Feldera's `program_info` describes them: the client
//! types its DataFrames from these names and types, and looks views up by name.

use serde_json::{Value, json};
use siphon_connect::schema::{Column, ColumnType};
use siphon_engine::catalog::Catalog;

/// Feldera's name for a column type.
pub fn feldera_type(ty: &ColumnType) -> Value {
    match ty {
        ColumnType::Text => json!({"type": "VARCHAR"}),
        ColumnType::SmallInt => json!({"type": "SMALLINT"}),
        ColumnType::Int => json!({"type": "INTEGER"}),
        ColumnType::BigInt => json!({"type": "BIGINT"}),
        ColumnType::Double => json!({"type": "DOUBLE"}),
        ColumnType::Decimal { precision, scale } => {
            json!({"type": "DECIMAL", "precision": precision, "scale": scale})
        }
        ColumnType::Boolean => json!({"type": "BOOLEAN"}),
        ColumnType::Timestamp => json!({"type": "TIMESTAMP"}),
        ColumnType::Date => json!({"type": "DATE"}),
        ColumnType::Json => json!({"type": "VARIANT"}),
    }
}

fn fields(columns: &[Column], key: &[String]) -> Value {
    Value::Array(
        columns
            .iter()
            .map(|c| {
                let mut ty = feldera_type(&c.ty);
                ty["nullable"] = json!(c.nullable && !key.contains(&c.name));
                json!({"name": c.name, "case_sensitive": false, "columntype": ty})
            })
            .collect(),
    )
}

/// `program_info` for a compiled program.
pub fn program_info(catalog: &Catalog) -> Value {
    let inputs: Vec<Value> = catalog
        .tables
        .values()
        .map(|t| {
            json!({
                "name": t.name,
                "case_sensitive": false,
                "materialized": true,
                "fields": fields(&t.columns, &t.primary_key),
                "properties": {},
            })
        })
        .collect();
    let outputs: Vec<Value> = catalog
        .views
        .values()
        .map(|v| {
            json!({
                "name": v.name,
                "case_sensitive": false,
                "materialized": true,
                "fields": fields(&v.columns, &[]),
                "properties": {},
            })
        })
        .collect();
    json!({
        "schema": {"inputs": inputs, "outputs": outputs},
        "input_connectors": {},
        "output_connectors": {},
        "udf_stubs": "",
        "dataflow": null,
    })
}
