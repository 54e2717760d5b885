//! siphon-ddl: the pipeline-file language of siphon.
//!
//! This crate owns reading a `.sql` pipeline file into statements with exact source
//! positions (`CREATE CONNECTION`, `CREATE TABLE`, `CREATE VIEW`, `DROP`, and ad hoc
//! `SELECT`/`WITH` queries kept as text), plus two helpers every later layer needs:
//! `${NAME}` environment substitution in option values ([`env`](mod@env)) and "did you mean"
//! suggestions ([`suggest`]). It is a hand-written tokenizer and recursive-descent
//! parser with no SQL-library dependency, so it builds in seconds; query text is passed
//! on verbatim for the SQL engine to parse.
//!
//! ```
//! use siphon_ddl::{parse_script, OptionValue, StatementKind};
//! let stmts = parse_script(
//!     "CREATE CONNECTION api FROM polling_http_source WITH (endpoint = 'https://x', interval_ms = 60000);",
//! )
//! .unwrap();
//! let StatementKind::CreateConnection { name, options, .. } = &stmts[0].kind else { panic!() };
//! assert_eq!(name.value, "api");
//! assert_eq!(options[1].value, OptionValue::Number("60000".into()));
//! ```

#![warn(missing_docs)]

mod ast;
pub mod env;
mod error;
mod lexer;
mod parser;
pub mod suggest;

pub use ast::{
    ColumnDef, Ident, ObjectKind, OptionValue, Pos, SqlOption, Statement, StatementKind, TypeName,
};
pub use env::{EnvError, referenced_vars, substitute_env};
pub use error::ParseError;
pub use parser::parse_script;
pub use suggest::closest;

#[cfg(test)]
mod seed_tests;
