//! The typed shape of a table's records: SQL column types, columns, and the Arrow schema
//! built from them once. Every decoder (JSON today, CSV and XML later) converts into this
//! shape, and the catalog persists it, so it lives apart from any one format.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// Arrow field metadata key that marks a column's SQL type where Arrow's own type is
/// ambiguous (a JSON column is stored as `Utf8`, like TEXT).
pub const SIPHON_TYPE_METADATA_KEY: &str = "siphon.type";

/// Default precision of a `DECIMAL` declared without parameters.
pub const DEFAULT_DECIMAL_PRECISION: u8 = 38;

/// Default scale of a `DECIMAL` declared without a scale parameter list.
pub const DEFAULT_DECIMAL_SCALE: i8 = 10;

/// Largest precision a `DECIMAL` may declare (what fits in Arrow's `Decimal128`).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// The accepted SQL type names, listed in error messages.
const ACCEPTED_TYPES: &str = "TEXT, VARCHAR, STRING, CHAR, CHARACTER VARYING, TINYINT, SMALLINT, INT2, \
     INT, INTEGER, INT4, BIGINT, INT8, FLOAT, FLOAT4, FLOAT8, REAL, DOUBLE, DOUBLE PRECISION, \
     DECIMAL[(p[,s])], NUMERIC[(p[,s])], BOOLEAN, BOOL, TIMESTAMP, TIMESTAMPTZ, \
     TIMESTAMP WITH TIME ZONE, DATE, JSON, JSONB, VARIANT";

/// The SQL type of one column, as declared in `CREATE TABLE`.
///
/// All floating-point types are stored as `f64`; all text types as UTF-8 without a length
/// limit; timestamps as microseconds since the Unix epoch in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnType {
    /// Unbounded UTF-8 text (`TEXT`, `VARCHAR(n)`, `STRING`, ...).
    Text,
    /// 16-bit signed integer.
    SmallInt,
    /// 32-bit signed integer.
    Int,
    /// 64-bit signed integer.
    BigInt,
    /// 64-bit IEEE float (every SQL float type maps here).
    Double,
    /// Exact decimal with `precision` significant digits, `scale` of them after the point.
    Decimal {
        /// Total significant digits, 1..=38.
        precision: u8,
        /// Digits after the decimal point, 0..=precision.
        scale: i8,
    },
    /// `true` / `false`.
    Boolean,
    /// An instant, stored as microseconds since the Unix epoch, UTC.
    Timestamp,
    /// A calendar date, stored as days since 1970-01-01.
    Date,
    /// Any JSON value, stored as compact JSON text.
    Json,
}

impl ColumnType {
    /// From a SQL type name and its parameters, e.g. `("DECIMAL", [10, 2])`.
    ///
    /// The name is matched case-insensitively with runs of whitespace treated as one space.
    /// Accepted: TEXT/VARCHAR/STRING/CHAR/CHARACTER VARYING → `Text` (one length parameter
    /// accepted and ignored); INT/INTEGER/INT4 → `Int`; BIGINT/INT8 → `BigInt`;
    /// SMALLINT/INT2 → `SmallInt`; FLOAT/REAL/DOUBLE/DOUBLE PRECISION/FLOAT8/FLOAT4 →
    /// `Double` (a FLOAT(p) precision is accepted and ignored: every float is an f64);
    /// DECIMAL/NUMERIC[(p[,s])] → `Decimal` (default p=38, s=10, or s=0 when only p is
    /// given; p in 1..=38 and s <= p); BOOLEAN/BOOL → `Boolean`; TIMESTAMP/TIMESTAMPTZ/
    /// TIMESTAMP WITH TIME ZONE → `Timestamp` (a fractional-seconds precision up to 9 is
    /// accepted and ignored: storage is always microseconds); DATE → `Date`;
    /// JSON/JSONB → `Json`.
    ///
    /// The error message says what was wrong and, for unknown names, lists the accepted
    /// types.
    pub fn from_sql(name: &str, params: &[u32]) -> Result<ColumnType, String> {
        let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
        let name = name.to_ascii_uppercase();
        let ty = match name.as_str() {
            "TEXT" | "VARCHAR" | "STRING" | "CHAR" | "CHARACTER VARYING" | "CHARACTER" => {
                at_most(&name, params, 1)?;
                ColumnType::Text
            }
            // TINYINT (Feldera's 8-bit integer) is stored in 16 bits.
            "SMALLINT" | "INT2" | "TINYINT" => no_params(&name, params, ColumnType::SmallInt)?,
            "INT" | "INTEGER" | "INT4" => no_params(&name, params, ColumnType::Int)?,
            "BIGINT" | "INT8" => no_params(&name, params, ColumnType::BigInt)?,
            "FLOAT" => {
                at_most(&name, params, 1)?;
                ColumnType::Double
            }
            "REAL" | "DOUBLE" | "DOUBLE PRECISION" | "FLOAT8" | "FLOAT4" => {
                no_params(&name, params, ColumnType::Double)?
            }
            "DECIMAL" | "NUMERIC" => decimal(&name, params)?,
            "BOOLEAN" | "BOOL" => no_params(&name, params, ColumnType::Boolean)?,
            "TIMESTAMP" | "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => {
                at_most(&name, params, 1)?;
                if let Some(&p) = params.first()
                    && p > 9
                {
                    return Err(format!(
                        "{name}({p}): fractional-second precision must be 0..=9"
                    ));
                }
                ColumnType::Timestamp
            }
            "DATE" => no_params(&name, params, ColumnType::Date)?,
            // VARIANT is Feldera's name for a JSON value.
            "JSON" | "JSONB" | "VARIANT" => no_params(&name, params, ColumnType::Json)?,
            _ => {
                return Err(format!(
                    "unsupported column type {name}; accepted types: {ACCEPTED_TYPES}"
                ));
            }
        };
        Ok(ty)
    }

    /// The Arrow type this column is stored as.
    ///
    /// Text/Json → Utf8, SmallInt → Int16, Int → Int32, BigInt → Int64, Double → Float64,
    /// Decimal → Decimal128(p, s), Boolean → Boolean, Timestamp → Timestamp(µs, "UTC"),
    /// Date → Date32.
    pub fn arrow_type(&self) -> DataType {
        match *self {
            ColumnType::Text | ColumnType::Json => DataType::Utf8,
            ColumnType::SmallInt => DataType::Int16,
            ColumnType::Int => DataType::Int32,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Date => DataType::Date32,
        }
    }

    /// The canonical SQL spelling, e.g. `BIGINT` or `DECIMAL(10,2)`: used in messages and
    /// to compare a declared schema with the catalog's.
    pub fn sql_name(&self) -> String {
        match *self {
            ColumnType::Text => "TEXT".into(),
            ColumnType::SmallInt => "SMALLINT".into(),
            ColumnType::Int => "INT".into(),
            ColumnType::BigInt => "BIGINT".into(),
            ColumnType::Double => "DOUBLE".into(),
            ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            ColumnType::Boolean => "BOOLEAN".into(),
            ColumnType::Timestamp => "TIMESTAMP".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Json => "JSON".into(),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql_name())
    }
}

fn no_params(name: &str, params: &[u32], ty: ColumnType) -> Result<ColumnType, String> {
    if params.is_empty() {
        Ok(ty)
    } else {
        Err(format!(
            "{name} takes no parameters, got {}",
            show_params(params)
        ))
    }
}

fn at_most(name: &str, params: &[u32], max: usize) -> Result<(), String> {
    if params.len() <= max {
        Ok(())
    } else {
        Err(format!(
            "{name} takes at most {max} parameter, got {}",
            show_params(params)
        ))
    }
}

fn decimal(name: &str, params: &[u32]) -> Result<ColumnType, String> {
    let (precision, scale) = match *params {
        [] => (
            u32::from(DEFAULT_DECIMAL_PRECISION),
            DEFAULT_DECIMAL_SCALE.unsigned_abs().into(),
        ),
        [p] => (p, 0),
        [p, s] => (p, s),
        _ => {
            return Err(format!(
                "{name} takes at most 2 parameters (precision, scale), got {}",
                show_params(params)
            ));
        }
    };
    if !(1..=u32::from(MAX_DECIMAL_PRECISION)).contains(&precision) {
        return Err(format!(
            "{name}{}: precision must be 1..={MAX_DECIMAL_PRECISION}",
            show_params(params)
        ));
    }
    if scale > precision {
        return Err(format!(
            "{name}{}: scale must not exceed precision",
            show_params(params)
        ));
    }
    // Both bounded by 38 above, so the narrowing casts are lossless.
    Ok(ColumnType::Decimal {
        precision: precision as u8,
        scale: scale as i8,
    })
}

fn show_params(params: &[u32]) -> String {
    let inner = params
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!("({inner})")
}

/// One declared column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Column {
    /// The column name; record fields are matched to it exactly, else case-insensitively.
    pub name: String,
    /// The SQL type values are converted to.
    pub ty: ColumnType,
    /// Whether NULL is allowed; a record with NULL here goes to the dead letters.
    pub nullable: bool,
}

impl Column {
    /// A column; shorthand for the struct literal.
    pub fn new(name: impl Into<String>, ty: ColumnType, nullable: bool) -> Self {
        Column {
            name: name.into(),
            ty,
            nullable,
        }
    }

    /// The Arrow field for this column; JSON columns carry `siphon.type = json` metadata so
    /// a reader can tell them from TEXT.
    pub fn arrow_field(&self) -> Field {
        let field = Field::new(&self.name, self.ty.arrow_type(), self.nullable);
        if self.ty == ColumnType::Json {
            field.with_metadata(HashMap::from([(
                SIPHON_TYPE_METADATA_KEY.to_string(),
                "json".to_string(),
            )]))
        } else {
            field
        }
    }
}

/// A table's columns in declaration order, with the Arrow schema built from them once.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSchema {
    columns: Vec<Column>,
    arrow: SchemaRef,
}

impl RecordSchema {
    /// Builds the schema (and its Arrow form) from columns in declaration order.
    pub fn new(columns: Vec<Column>) -> Self {
        let fields = columns.iter().map(Column::arrow_field).collect::<Vec<_>>();
        RecordSchema {
            columns,
            arrow: Arc::new(Schema::new(fields)),
        }
    }

    /// The columns in declaration order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The Arrow schema every decoded batch of this table carries.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::clone(&self.arrow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str, params: &[u32]) -> ColumnType {
        ColumnType::from_sql(name, params).expect(name)
    }

    #[test]
    fn text_family_accepts_and_ignores_length() {
        for name in ["TEXT", "VARCHAR", "STRING", "CHAR", "CHARACTER VARYING"] {
            assert_eq!(ok(name, &[]), ColumnType::Text);
        }
        assert_eq!(ok("VARCHAR", &[255]), ColumnType::Text);
        assert_eq!(ok("character  varying", &[10]), ColumnType::Text);
        assert!(ColumnType::from_sql("VARCHAR", &[1, 2]).is_err());
    }

    #[test]
    fn integer_and_float_names() {
        assert_eq!(ok("INT", &[]), ColumnType::Int);
        assert_eq!(ok("INTEGER", &[]), ColumnType::Int);
        assert_eq!(ok("INT4", &[]), ColumnType::Int);
        assert_eq!(ok("BIGINT", &[]), ColumnType::BigInt);
        assert_eq!(ok("INT8", &[]), ColumnType::BigInt);
        assert_eq!(ok("SMALLINT", &[]), ColumnType::SmallInt);
        assert_eq!(ok("INT2", &[]), ColumnType::SmallInt);
        for name in [
            "FLOAT",
            "REAL",
            "DOUBLE",
            "DOUBLE PRECISION",
            "FLOAT8",
            "FLOAT4",
        ] {
            assert_eq!(ok(name, &[]), ColumnType::Double);
        }
        assert_eq!(ok("FLOAT", &[53]), ColumnType::Double);
        assert_eq!(
            ColumnType::from_sql("INT", &[4]).unwrap_err(),
            "INT takes no parameters, got (4)"
        );
    }

    #[test]
    fn other_names() {
        assert_eq!(ok("BOOLEAN", &[]), ColumnType::Boolean);
        assert_eq!(ok("BOOL", &[]), ColumnType::Boolean);
        assert_eq!(ok("TIMESTAMP", &[]), ColumnType::Timestamp);
        assert_eq!(ok("TIMESTAMPTZ", &[]), ColumnType::Timestamp);
        assert_eq!(ok("TIMESTAMP WITH TIME ZONE", &[]), ColumnType::Timestamp);
        assert_eq!(ok("TIMESTAMP", &[6]), ColumnType::Timestamp);
        assert!(ColumnType::from_sql("TIMESTAMP", &[12]).is_err());
        assert_eq!(ok("DATE", &[]), ColumnType::Date);
        assert_eq!(ok("JSON", &[]), ColumnType::Json);
        assert_eq!(ok("JSONB", &[]), ColumnType::Json);
    }

    #[test]
    fn decimal_params_and_defaults() {
        let dec = |p, s| ColumnType::Decimal {
            precision: p,
            scale: s,
        };
        assert_eq!(ok("DECIMAL", &[]), dec(38, 10));
        assert_eq!(ok("NUMERIC", &[12]), dec(12, 0));
        assert_eq!(ok("DECIMAL", &[10, 2]), dec(10, 2));
        assert_eq!(ok("DECIMAL", &[38, 38]), dec(38, 38));
        assert_eq!(
            ColumnType::from_sql("DECIMAL", &[39, 2]).unwrap_err(),
            "DECIMAL(39,2): precision must be 1..=38"
        );
        assert_eq!(
            ColumnType::from_sql("DECIMAL", &[0]).unwrap_err(),
            "DECIMAL(0): precision must be 1..=38"
        );
        assert_eq!(
            ColumnType::from_sql("NUMERIC", &[5, 6]).unwrap_err(),
            "NUMERIC(5,6): scale must not exceed precision"
        );
        assert!(ColumnType::from_sql("DECIMAL", &[5, 2, 1]).is_err());
    }

    #[test]
    fn unknown_type_lists_accepted_ones() {
        let err = ColumnType::from_sql("BLOB", &[]).unwrap_err();
        assert!(err.starts_with("unsupported column type BLOB; accepted types: TEXT,"));
        assert!(err.contains("DECIMAL[(p[,s])]"));
        assert!(err.contains("JSONB"));
    }

    #[test]
    fn arrow_types_and_sql_names() {
        let cases = [
            (ColumnType::Text, DataType::Utf8, "TEXT"),
            (ColumnType::Json, DataType::Utf8, "JSON"),
            (ColumnType::SmallInt, DataType::Int16, "SMALLINT"),
            (ColumnType::Int, DataType::Int32, "INT"),
            (ColumnType::BigInt, DataType::Int64, "BIGINT"),
            (ColumnType::Double, DataType::Float64, "DOUBLE"),
            (
                ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                },
                DataType::Decimal128(10, 2),
                "DECIMAL(10,2)",
            ),
            (ColumnType::Boolean, DataType::Boolean, "BOOLEAN"),
            (
                ColumnType::Timestamp,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "TIMESTAMP",
            ),
            (ColumnType::Date, DataType::Date32, "DATE"),
        ];
        for (ty, arrow, sql) in cases {
            assert_eq!(ty.arrow_type(), arrow);
            assert_eq!(ty.sql_name(), sql);
            assert_eq!(ty.to_string(), sql);
            // The canonical name parses back to the same type.
            let (name, params) = match ty {
                ColumnType::Decimal { precision, scale } => {
                    ("DECIMAL".to_string(), vec![precision.into(), scale as u32])
                }
                _ => (sql.to_string(), vec![]),
            };
            assert_eq!(ColumnType::from_sql(&name, &params), Ok(ty));
        }
    }

    #[test]
    fn schema_builds_arrow_fields_with_json_metadata() {
        let schema = RecordSchema::new(vec![
            Column::new("id", ColumnType::BigInt, false),
            Column::new("payload", ColumnType::Json, true),
        ]);
        let arrow = schema.arrow_schema();
        assert_eq!(schema.columns().len(), 2);
        assert_eq!(arrow.field(0).name(), "id");
        assert!(!arrow.field(0).is_nullable());
        assert!(arrow.field(0).metadata().is_empty());
        assert_eq!(arrow.field(1).data_type(), &DataType::Utf8);
        assert_eq!(
            arrow.field(1).metadata().get(SIPHON_TYPE_METADATA_KEY),
            Some(&"json".to_string())
        );
    }

    #[test]
    fn column_round_trips_through_serde_json() {
        let column = Column::new(
            "price",
            ColumnType::Decimal {
                precision: 10,
                scale: 2,
            },
            true,
        );
        let text = serde_json::to_string(&column).unwrap();
        assert_eq!(
            text,
            r#"{"name":"price","ty":{"Decimal":{"precision":10,"scale":2}},"nullable":true}"#
        );
        assert_eq!(serde_json::from_str::<Column>(&text).unwrap(), column);
    }
}
