//! The syntax tree of a pipeline file.
//!
//! This module owns the plain data types the parser produces: statements, identifiers,
//! column definitions, types and `WITH (...)` options, each carrying the exact source
//! position it came from. Later layers (option validation, planning) only read these
//! types, so they are deliberately dumb: no behaviour beyond small accessors and the
//! `Display` forms used in error messages.

use std::fmt;

/// A position in the source text: 1-based line and 1-based column, counted in chars.
///
/// A leading UTF-8 byte-order mark is not counted, and a CRLF line ending counts as one
/// line break. Positions order by line, then column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, in chars (not bytes).
    pub column: u32,
}

impl Pos {
    /// Builds a position from a 1-based line and column.
    pub const fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// One `;`-terminated statement of a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// What the statement declares or asks.
    pub kind: StatementKind,
    /// Where the statement's first token starts.
    pub pos: Pos,
    /// The statement's source text, from its first token to the end of its last token
    /// (the `;` and any comment or whitespace just before it are not included; comments
    /// between tokens are kept verbatim).
    pub text: String,
}

/// The kinds of statement a pipeline file may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// `CREATE [OR REPLACE] CONNECTION [IF NOT EXISTS] name FROM connector WITH (...)`.
    CreateConnection {
        /// The connection's name.
        name: Ident,
        /// The connector kind after `FROM`, e.g. `polling_http_source`.
        connector: Ident,
        /// The `WITH (...)` options, in source order.
        options: Vec<SqlOption>,
        /// `OR REPLACE` was given.
        or_replace: bool,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
    },
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] name (columns...) [WITH (...)]`.
    CreateTable {
        /// The table's name.
        name: Ident,
        /// The columns, in declaration order.
        columns: Vec<ColumnDef>,
        /// The primary key columns, from either a table-level `PRIMARY KEY (a, b)` or an
        /// inline `col TYPE PRIMARY KEY`; empty when the table has no key.
        primary_key: Vec<Ident>,
        /// The `WITH (...)` options, in source order; empty when there is no `WITH`
        /// clause (a push-only table).
        options: Vec<SqlOption>,
        /// `OR REPLACE` was given.
        or_replace: bool,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
    },
    /// `CREATE [OR REPLACE] VIEW [IF NOT EXISTS] name AS <query>`.
    CreateView {
        /// The view's name.
        name: Ident,
        /// The query text after `AS`, up to the end of its last token.
        query: String,
        /// Where the query text starts.
        query_pos: Pos,
        /// `OR REPLACE` was given.
        or_replace: bool,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
    },
    /// `CREATE [OR REPLACE] SINK [IF NOT EXISTS] name FROM table_or_view WITH (...)`.
    CreateSink {
        /// The sink's name.
        name: Ident,
        /// The table or view whose changes it publishes.
        from: Ident,
        /// The `WITH (...)` options, in source order (`connector` among them).
        options: Vec<SqlOption>,
        /// `OR REPLACE` was given.
        or_replace: bool,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
    },
    /// `DROP TABLE|VIEW|CONNECTION|SINK [IF EXISTS] a, b, ...`.
    Drop {
        /// What kind of object is dropped.
        object: ObjectKind,
        /// The names to drop, at least one.
        names: Vec<Ident>,
        /// `IF EXISTS` was given.
        if_exists: bool,
    },
    /// An ad hoc query (a statement starting with `SELECT` or `WITH`), kept as text for
    /// the SQL engine.
    Query {
        /// The full statement text (same as [`Statement::text`]).
        sql: String,
    },
}

impl StatementKind {
    /// A short description for error messages, e.g. `CREATE TABLE api_data`,
    /// `DROP VIEW a, b` or `SELECT`.
    pub fn summary(&self) -> String {
        match self {
            StatementKind::CreateConnection { name, .. } => format!("CREATE CONNECTION {name}"),
            StatementKind::CreateTable { name, .. } => format!("CREATE TABLE {name}"),
            StatementKind::CreateView { name, .. } => format!("CREATE VIEW {name}"),
            StatementKind::CreateSink { name, .. } => format!("CREATE SINK {name}"),
            StatementKind::Drop { object, names, .. } => {
                let names: Vec<&str> = names.iter().map(|n| n.value.as_str()).collect();
                format!("DROP {object} {}", names.join(", "))
            }
            StatementKind::Query { sql } => sql
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()
                .to_uppercase(),
        }
    }
}

/// The kind of object a `DROP` statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// `DROP TABLE`.
    Table,
    /// `DROP VIEW`.
    View,
    /// `DROP CONNECTION`.
    Connection,
    /// `DROP SINK`.
    Sink,
}

impl ObjectKind {
    /// The SQL keyword for this kind: `TABLE`, `VIEW`, `CONNECTION` or `SINK`.
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectKind::Table => "TABLE",
            ObjectKind::View => "VIEW",
            ObjectKind::Connection => "CONNECTION",
            ObjectKind::Sink => "SINK",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// An identifier (a name) as written in the source.
///
/// Unquoted identifiers are folded to lower case; `"Quoted"` ones keep their case. A
/// dotted name such as `system.foo` or `"S".t` keeps its full dotted text in `value`
/// (each part folded or not on its own), and `quoted` is true when any part was quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The (folded) name.
    pub value: String,
    /// Where the name starts.
    pub pos: Pos,
    /// Whether (any part of) the name was written in double quotes.
    pub quoted: bool,
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// One column of a `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// The column's name.
    pub name: Ident,
    /// The declared type.
    pub type_name: TypeName,
    /// The column may not hold NULL: `NOT NULL` was declared, or the column is part of
    /// the table's primary key (SQL makes key columns NOT NULL).
    pub not_null: bool,
    /// The column was declared inline as `PRIMARY KEY` (`id TEXT PRIMARY KEY`).
    pub primary_key: bool,
}

/// A column type as written, normalised for lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName {
    /// Upper-case name; multi-word names are joined with one space: `DOUBLE PRECISION`,
    /// `CHARACTER VARYING`, `TIMESTAMP WITH TIME ZONE`, `INT UNSIGNED`.
    pub name: String,
    /// Integer parameters: `DECIMAL(10,2)` gives `[10, 2]`, `VARCHAR(255)` gives `[255]`.
    pub params: Vec<u32>,
    /// Where the type's first word starts.
    pub pos: Pos,
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.params.is_empty() {
            let params: Vec<String> = self.params.iter().map(u32::to_string).collect();
            write!(f, "({})", params.join(", "))?;
        }
        Ok(())
    }
}

/// One `key = value` entry of a `WITH (...)` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlOption {
    /// The option name, lower-cased (dotted keys such as `json.unstructured` keep their
    /// dots).
    pub key: String,
    /// Where the key starts.
    pub key_pos: Pos,
    /// The value.
    pub value: OptionValue,
    /// Where the value starts (the sign, for a signed number).
    pub value_pos: Pos,
}

/// The value of an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    /// A single-quoted SQL string, with `''` unescaped to `'`. `${NAME}` is kept as text.
    String(String),
    /// A number literal exactly as written, sign included: `"60000"`, `"2.0"`, `"-1"`.
    Number(String),
    /// `TRUE` or `FALSE` (any case).
    Bool(bool),
}

impl OptionValue {
    /// The value as plain text, for binding to a typed setting: strings unquoted,
    /// numbers as written, booleans as `true`/`false`.
    pub fn as_text(&self) -> String {
        match self {
            OptionValue::String(s) | OptionValue::Number(s) => s.clone(),
            OptionValue::Bool(b) => b.to_string(),
        }
    }

    /// What kind of literal this is, for "wrong type" messages: `string`, `number` or
    /// `boolean`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            OptionValue::String(_) => "string",
            OptionValue::Number(_) => "number",
            OptionValue::Bool(_) => "boolean",
        }
    }
}

impl fmt::Display for OptionValue {
    /// Renders the value as a SQL literal: `'it''s'`, `60000`, `true`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            OptionValue::Number(n) => f.write_str(n),
            OptionValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(v: &str) -> Ident {
        Ident {
            value: v.to_string(),
            pos: Pos::new(1, 1),
            quoted: false,
        }
    }

    #[test]
    fn option_value_text_and_display() {
        assert_eq!(OptionValue::String("it's".into()).as_text(), "it's");
        assert_eq!(OptionValue::String("it's".into()).to_string(), "'it''s'");
        assert_eq!(OptionValue::Number("-1.5".into()).as_text(), "-1.5");
        assert_eq!(OptionValue::Bool(true).as_text(), "true");
        assert_eq!(OptionValue::Bool(false).to_string(), "false");
        assert_eq!(OptionValue::Number("1".into()).kind_name(), "number");
    }

    #[test]
    fn summaries() {
        let drop = StatementKind::Drop {
            object: ObjectKind::View,
            names: vec![ident("a"), ident("b")],
            if_exists: false,
        };
        assert_eq!(drop.summary(), "DROP VIEW a, b");
        let q = StatementKind::Query {
            sql: "select * from t".into(),
        };
        assert_eq!(q.summary(), "SELECT");
        let t = StatementKind::CreateTable {
            name: ident("foo"),
            columns: vec![],
            primary_key: vec![],
            options: vec![],
            or_replace: false,
            if_not_exists: false,
        };
        assert_eq!(t.summary(), "CREATE TABLE foo");
    }

    #[test]
    fn type_and_pos_display() {
        let t = TypeName {
            name: "DECIMAL".into(),
            params: vec![10, 2],
            pos: Pos::new(1, 1),
        };
        assert_eq!(t.to_string(), "DECIMAL(10, 2)");
        assert_eq!(Pos::new(3, 7).to_string(), "line 3, column 7");
        assert!(Pos::new(2, 9) < Pos::new(3, 1));
    }
}
