//! The parse error type.
//!
//! This module owns [`ParseError`], the single error the lexer and parser return. It
//! carries the exact position of the offending token so the loader can report
//! `file:line:column`, and its message is written for the user who typed the SQL.

use crate::ast::Pos;

/// A syntax error in a pipeline file, positioned at the token that caused it.
///
/// Displays as `line L, column C: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {message}", pos.line, pos.column)]
pub struct ParseError {
    /// Where the error is (the start of the offending token, or of the unterminated
    /// string/comment/identifier).
    pub pos: Pos,
    /// What is wrong, e.g. "expected `WITH` after connector name, found `(`".
    pub message: String,
}

impl ParseError {
    /// Builds an error at `pos`.
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_line_and_column() {
        let e = ParseError::new(Pos::new(4, 12), "unterminated string starting here");
        assert_eq!(
            e.to_string(),
            "line 4, column 12: unterminated string starting here"
        );
    }
}
