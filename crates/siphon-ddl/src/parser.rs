//! The recursive-descent parser for pipeline files.
//!
//! This module owns the grammar: it splits the token stream at `;` into statements and
//! turns each into a [`StatementKind`], checking everything that can be checked from the
//! text alone (syntax, duplicate options and columns, primary key columns) so errors
//! point at the exact token. What options mean, and which are valid for a connector, is
//! left to later layers.
//!
//! Grammar (keywords case-insensitive, `[..]` optional):
//!
//! ```text
//! script     := [statement] (';' [statement])*
//! statement  := create | drop | query
//! create     := CREATE [OR REPLACE] (TABLE table | [MATERIALIZED] VIEW view | CONNECTION connection
//!               | SINK sink)
//! table      := [IF NOT EXISTS] name '(' element (',' element)* [','] ')' [WITH options]
//! element    := [CONSTRAINT ident] PRIMARY KEY '(' ident (',' ident)* ')'
//!             | ident type (NOT NULL | NULL | PRIMARY KEY)*
//! type       := word [PRECISION | VARYING | UNSIGNED] ['(' int (',' int)* ')']
//!               [(WITH | WITHOUT) TIME ZONE]
//! view       := [IF NOT EXISTS] name AS <query text>
//! connection := [IF NOT EXISTS] name FROM ident WITH options
//! sink       := [IF NOT EXISTS] name FROM name WITH options
//! options    := '(' [option (',' option)* [',']] ')'
//! option     := key '=' ('...' | ['-'|'+'] number | TRUE | FALSE)
//! drop       := DROP (TABLE | VIEW | CONNECTION | SINK) [IF EXISTS] name (',' name)*
//! query      := (SELECT | WITH) <any tokens>
//! name       := ident ('.' ident)*
//! ```

use crate::ast::{
    ColumnDef, Ident, ObjectKind, OptionValue, Pos, SqlOption, Statement, StatementKind, TypeName,
};
use crate::error::ParseError;
use crate::lexer::{Token, TokenKind, tokenize};
use crate::suggest::did_you_mean;

type Result<T> = std::result::Result<T, ParseError>;

const STATEMENT_KEYWORDS: [&str; 4] = ["CREATE", "DROP", "SELECT", "WITH"];
const OBJECT_KEYWORDS: [&str; 4] = ["TABLE", "VIEW", "CONNECTION", "SINK"];
const QUERY_KEYWORDS: [&str; 3] = ["SELECT", "WITH", "VALUES"];
/// Words that cannot start a column type (they are column constraints).
const CONSTRAINT_WORDS: [&str; 3] = ["NOT", "NULL", "PRIMARY"];
/// Column constraints we recognise but do not support.
const UNSUPPORTED_CONSTRAINTS: [&str; 7] = [
    "DEFAULT",
    "UNIQUE",
    "REFERENCES",
    "CHECK",
    "GENERATED",
    "COLLATE",
    "AUTO_INCREMENT",
];
const INTEGER_TYPES: [&str; 6] = [
    "TINYINT",
    "SMALLINT",
    "INT",
    "INTEGER",
    "BIGINT",
    "MEDIUMINT",
];

/// Parses a whole pipeline file into its statements, in order.
///
/// Statements are separated by `;` (the last may omit it); empty statements and a file
/// of only comments yield nothing. Parsing stops at the first error.
///
/// ```
/// use siphon_ddl::{parse_script, StatementKind};
/// let stmts = parse_script("CREATE TABLE t (id TEXT PRIMARY KEY);\nSELECT * FROM t").unwrap();
/// assert_eq!(stmts.len(), 2);
/// assert_eq!(stmts[1].pos.line, 2);
/// assert!(matches!(stmts[1].kind, StatementKind::Query { .. }));
/// ```
///
/// # Errors
/// A [`ParseError`] positioned at the offending token (or at the start of an
/// unterminated string, quoted identifier or comment).
pub fn parse_script(text: &str) -> Result<Vec<Statement>> {
    let lexed = tokenize(text)?;
    let toks = &lexed.tokens;
    let mut out = Vec::new();
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        if t.kind == TokenKind::Symbol(';') {
            if i > start {
                let end = End {
                    pos: t.pos,
                    what: "`;`",
                };
                out.push(parse_statement(text, &toks[start..i], end)?);
            }
            start = i + 1;
        }
    }
    if start < toks.len() {
        let end = End {
            pos: lexed.end_pos,
            what: "end of input",
        };
        out.push(parse_statement(text, &toks[start..], end)?);
    }
    Ok(out)
}

/// What follows a statement's last token: its `;` or the end of the input.
#[derive(Clone, Copy)]
struct End {
    pos: Pos,
    what: &'static str,
}

fn parse_statement(src: &str, toks: &[Token], end: End) -> Result<Statement> {
    let first = &toks[0];
    let last = &toks[toks.len() - 1];
    let text = src[first.start..last.end].to_string();
    let mut p = Parser {
        src,
        toks,
        i: 0,
        end,
    };
    let kind = match p.keyword_at(0).as_deref() {
        Some("CREATE") => {
            p.i += 1;
            p.create()?
        }
        Some("DROP") => {
            p.i += 1;
            p.drop()?
        }
        Some("SELECT" | "WITH") => StatementKind::Query { sql: text.clone() },
        Some(_) => {
            let word = p.text(first);
            return Err(ParseError::new(
                first.pos,
                format!(
                    "unknown statement `{word}`: expected CREATE, DROP, SELECT or WITH{}",
                    did_you_mean(word, STATEMENT_KEYWORDS)
                ),
            ));
        }
        None => return Err(p.expected("a statement (CREATE, DROP, SELECT or WITH)")),
    };
    Ok(Statement {
        kind,
        pos: first.pos,
        text,
    })
}

/// Parser state over the tokens of one statement (without its `;`).
struct Parser<'a> {
    src: &'a str,
    toks: &'a [Token],
    i: usize,
    end: End,
}

impl<'a> Parser<'a> {
    // ---- token access -------------------------------------------------------------

    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.i)
    }

    fn advance(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.i);
        if t.is_some() {
            self.i += 1;
        }
        t
    }

    fn at_end(&self) -> bool {
        self.i >= self.toks.len()
    }

    fn text(&self, t: &Token) -> &'a str {
        &self.src[t.start..t.end]
    }

    /// The upper-cased word `n` tokens ahead, if that token is an unquoted word.
    fn keyword_at(&self, n: usize) -> Option<String> {
        let t = self.toks.get(self.i + n)?;
        (t.kind == TokenKind::Word).then(|| self.text(t).to_ascii_uppercase())
    }

    fn peek_kw_at(&self, n: usize, kw: &str) -> bool {
        self.toks
            .get(self.i + n)
            .is_some_and(|t| t.kind == TokenKind::Word && self.text(t).eq_ignore_ascii_case(kw))
    }

    fn peek_kw(&self, kw: &str) -> bool {
        self.peek_kw_at(0, kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.peek_kw(kw);
        if hit {
            self.i += 1;
        }
        hit
    }

    /// Consumes keyword `kw` or fails with "expected `KW` {context}, found ...".
    fn expect_kw(&mut self, kw: &str, context: &str) -> Result<&'a Token> {
        if self.peek_kw(kw) {
            Ok(self.advance().expect("peeked"))
        } else {
            Err(self.expected(&format!("`{kw}` {context}")))
        }
    }

    fn peek_sym(&self, c: char) -> bool {
        self.peek().is_some_and(|t| t.kind == TokenKind::Symbol(c))
    }

    fn eat_sym(&mut self, c: char) -> bool {
        let hit = self.peek_sym(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    /// Consumes symbol `c` or fails with "expected {what}, found ...".
    fn expect_sym(&mut self, c: char, what: &str) -> Result<&'a Token> {
        if self.peek_sym(c) {
            Ok(self.advance().expect("peeked"))
        } else {
            Err(self.expected(what))
        }
    }

    // ---- errors -------------------------------------------------------------------

    /// Where the current token is (or the statement's end).
    fn here(&self) -> Pos {
        self.peek().map_or(self.end.pos, |t| t.pos)
    }

    /// The current token, described for "found ..." (or the statement's end).
    fn found(&self) -> String {
        match self.peek() {
            None => self.end.what.to_string(),
            Some(t) => {
                let text = self.text(t);
                let mut chars = text.chars();
                let short: String = chars.by_ref().take(40).collect();
                if chars.next().is_some() {
                    format!("`{short}...`")
                } else {
                    format!("`{short}`")
                }
            }
        }
    }

    /// "expected {what}, found X" at the current token.
    fn expected(&self, what: &str) -> ParseError {
        ParseError::new(
            self.here(),
            format!("expected {what}, found {}", self.found()),
        )
    }

    /// Fails unless the statement is complete.
    fn expect_end(&self, after: &str) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.expected(&format!("`;` {after}")))
        }
    }

    // ---- names --------------------------------------------------------------------

    /// One identifier: an unquoted word (lower-cased) or a quoted identifier.
    fn ident(&mut self, what: &str) -> Result<Ident> {
        match self.peek() {
            Some(t) if t.kind == TokenKind::Word => {
                self.i += 1;
                Ok(Ident {
                    value: self.text(t).to_lowercase(),
                    pos: t.pos,
                    quoted: false,
                })
            }
            Some(Token {
                kind: TokenKind::QuotedIdent(v),
                pos,
                ..
            }) => {
                if v.is_empty() {
                    return Err(ParseError::new(*pos, format!("{what} cannot be empty")));
                }
                self.i += 1;
                Ok(Ident {
                    value: v.clone(),
                    pos: *pos,
                    quoted: true,
                })
            }
            _ => Err(self.expected(what)),
        }
    }

    /// A possibly dotted name: `ident ('.' ident)*`, kept as one dotted identifier.
    fn object_name(&mut self, what: &str) -> Result<Ident> {
        let mut name = self.ident(what)?;
        while self.eat_sym('.') {
            let part = self.ident(&format!("a name after `{}.`", name.value))?;
            name.value.push('.');
            name.value.push_str(&part.value);
            name.quoted |= part.quoted;
        }
        Ok(name)
    }

    // ---- statements ---------------------------------------------------------------

    fn create(&mut self) -> Result<StatementKind> {
        let or_replace = if self.eat_kw("OR") {
            self.expect_kw("REPLACE", "after `CREATE OR`")?;
            true
        } else {
            false
        };
        match self.keyword_at(0).as_deref() {
            Some("TABLE") => {
                self.i += 1;
                self.create_table(or_replace)
            }
            Some("VIEW") => {
                self.i += 1;
                self.create_view(or_replace)
            }
            // Feldera's spelling: every view is materialized here.
            Some("MATERIALIZED") => {
                self.i += 1;
                self.expect_kw("VIEW", "after `CREATE MATERIALIZED`")?;
                self.create_view(or_replace)
            }
            Some("CONNECTION") => {
                self.i += 1;
                self.create_connection(or_replace)
            }
            Some("SINK") => {
                self.i += 1;
                self.create_sink(or_replace)
            }
            Some(_) => {
                let t = self.peek().expect("keyword present");
                let word = self.text(t);
                Err(ParseError::new(
                    t.pos,
                    format!(
                        "expected TABLE, VIEW, CONNECTION or SINK after `CREATE`, found `{word}`{}",
                        did_you_mean(word, OBJECT_KEYWORDS)
                    ),
                ))
            }
            None => Err(self.expected("TABLE, VIEW, CONNECTION or SINK after `CREATE`")),
        }
    }

    /// `[IF NOT EXISTS]`; an error if combined with `OR REPLACE`.
    fn if_not_exists(&mut self, or_replace: bool) -> Result<bool> {
        let Some(t) = self.peek().filter(|_| self.peek_kw("IF")) else {
            return Ok(false);
        };
        self.i += 1;
        self.expect_kw("NOT", "after `IF`")?;
        self.expect_kw("EXISTS", "after `IF NOT`")?;
        if or_replace {
            return Err(ParseError::new(
                t.pos,
                "`OR REPLACE` and `IF NOT EXISTS` cannot be used together",
            ));
        }
        Ok(true)
    }

    fn create_connection(&mut self, or_replace: bool) -> Result<StatementKind> {
        let if_not_exists = self.if_not_exists(or_replace)?;
        let name = self.object_name("a connection name")?;
        self.expect_kw(
            "FROM",
            &format!("and a connector after connection name `{name}`"),
        )?;
        let connector = match self.peek() {
            Some(Token {
                kind: TokenKind::Str(v),
                pos,
                ..
            }) => {
                self.i += 1;
                Ident {
                    value: v.clone(),
                    pos: *pos,
                    quoted: true,
                }
            }
            _ => self.ident("a connector name after `FROM` (e.g. polling_http_source)")?,
        };
        self.expect_kw("WITH", "after connector name")?;
        let options = self.options()?;
        self.expect_end("after the WITH options")?;
        Ok(StatementKind::CreateConnection {
            name,
            connector,
            options,
            or_replace,
            if_not_exists,
        })
    }

    fn create_sink(&mut self, or_replace: bool) -> Result<StatementKind> {
        let if_not_exists = self.if_not_exists(or_replace)?;
        let name = self.object_name("a sink name")?;
        self.expect_kw(
            "FROM",
            &format!("and the table or view it publishes after sink name `{name}`"),
        )?;
        let from = self.object_name("a table or view name after `FROM`")?;
        self.expect_kw("WITH", &format!("after `FROM {from}`"))?;
        let options = self.options()?;
        self.expect_end("after the WITH options")?;
        Ok(StatementKind::CreateSink {
            name,
            from,
            options,
            or_replace,
            if_not_exists,
        })
    }

    fn create_view(&mut self, or_replace: bool) -> Result<StatementKind> {
        let if_not_exists = self.if_not_exists(or_replace)?;
        let name = self.object_name("a view name")?;
        self.expect_kw("AS", &format!("after view name `{name}`"))?;
        let Some(first) = self.peek() else {
            return Err(self.expected("a query after `AS`"));
        };
        let starts_query = self.peek_sym('(')
            || self
                .keyword_at(0)
                .is_some_and(|k| QUERY_KEYWORDS.contains(&k.as_str()));
        if !starts_query {
            let hint = if first.kind == TokenKind::Word {
                did_you_mean(self.text(first), ["SELECT", "WITH"])
            } else {
                String::new()
            };
            return Err(ParseError::new(
                first.pos,
                format!(
                    "expected a query (SELECT ...) after `AS`, found {}{hint}",
                    self.found()
                ),
            ));
        }
        let last = &self.toks[self.toks.len() - 1];
        Ok(StatementKind::CreateView {
            name,
            query: self.src[first.start..last.end].to_string(),
            query_pos: first.pos,
            or_replace,
            if_not_exists,
        })
    }

    fn create_table(&mut self, or_replace: bool) -> Result<StatementKind> {
        let if_not_exists = self.if_not_exists(or_replace)?;
        let name = self.object_name("a table name")?;
        if self.peek_kw("AS") {
            return Err(ParseError::new(
                self.here(),
                "CREATE TABLE ... AS SELECT is not supported: use CREATE VIEW name AS SELECT ...",
            ));
        }
        let open = self.expect_sym(
            '(',
            &format!("`(` and a column list after table name `{name}`"),
        )?;
        if self.peek_sym(')') {
            return Err(ParseError::new(
                open.pos,
                format!("table `{name}` needs at least one column"),
            ));
        }

        let mut columns: Vec<ColumnDef> = Vec::new();
        let mut inline_pk: Option<Ident> = None;
        // Position of the `PRIMARY` keyword, and the key columns.
        let mut table_pk: Option<(Pos, Vec<Ident>)> = None;
        loop {
            let after = if self.peek_kw("CONSTRAINT")
                || (self.peek_kw("PRIMARY") && self.peek_kw_at(1, "KEY"))
            {
                let (pos, cols) = self.table_constraint()?;
                if let Some((first, _)) = &table_pk {
                    return Err(ParseError::new(
                        pos,
                        format!("PRIMARY KEY declared twice (first on line {})", first.line),
                    ));
                }
                table_pk = Some((pos, cols));
                "after the PRIMARY KEY constraint".to_string()
            } else if self.peek_kw_at(1, "KEY")
                && self
                    .keyword_at(0)
                    .is_some_and(|k| k == "FOREIGN" || k == "UNIQUE")
            {
                return Err(ParseError::new(
                    self.here(),
                    "only PRIMARY KEY table constraints are supported",
                ));
            } else {
                let col = self.column_def()?;
                if let Some(prev) = columns.iter().find(|c| c.name.value == col.name.value) {
                    return Err(ParseError::new(
                        col.name.pos,
                        format!(
                            "duplicate column `{}` (first declared on line {})",
                            col.name, prev.name.pos.line
                        ),
                    ));
                }
                if col.primary_key {
                    if let Some(prev) = &inline_pk {
                        return Err(ParseError::new(
                            col.name.pos,
                            format!(
                                "columns `{prev}` and `{}` are both declared PRIMARY KEY; \
                                 for a composite key write PRIMARY KEY ({prev}, {}) after the columns",
                                col.name, col.name
                            ),
                        ));
                    }
                    inline_pk = Some(col.name.clone());
                }
                let after = format!("after column `{}`", col.name);
                columns.push(col);
                after
            };
            if self.eat_sym(',') {
                if self.eat_sym(')') {
                    break;
                }
                continue;
            }
            if self.eat_sym(')') {
                break;
            }
            return Err(self.expected(&format!("`,` or `)` {after}")));
        }

        if columns.is_empty() {
            return Err(ParseError::new(
                open.pos,
                format!("table `{name}` needs at least one column"),
            ));
        }

        let primary_key = match (inline_pk, table_pk) {
            (Some(inline), Some((pos, _))) => {
                return Err(ParseError::new(
                    pos,
                    format!(
                        "PRIMARY KEY declared twice: column `{inline}` (line {}) is already declared PRIMARY KEY",
                        inline.pos.line
                    ),
                ));
            }
            (Some(inline), None) => vec![inline],
            (None, Some((_, cols))) => {
                for (i, key) in cols.iter().enumerate() {
                    if cols[..i].iter().any(|k| k.value == key.value) {
                        return Err(ParseError::new(
                            key.pos,
                            format!("column `{key}` appears twice in PRIMARY KEY"),
                        ));
                    }
                    let Some(col) = columns.iter_mut().find(|c| c.name.value == key.value) else {
                        return Err(ParseError::new(
                            key.pos,
                            format!(
                                "PRIMARY KEY column `{key}` is not a column of table `{name}`{}",
                                did_you_mean(
                                    &key.value,
                                    columns.iter().map(|c| c.name.value.as_str())
                                )
                            ),
                        ));
                    };
                    col.not_null = true;
                }
                cols
            }
            (None, None) => Vec::new(),
        };

        let has_with = self.eat_kw("WITH");
        let options = if has_with {
            self.options()?
        } else {
            Vec::new()
        };
        self.expect_end(if has_with {
            "after the WITH options"
        } else {
            "or `WITH (...)` after the column list"
        })?;
        Ok(StatementKind::CreateTable {
            name,
            columns,
            primary_key,
            options,
            or_replace,
            if_not_exists,
        })
    }

    /// `[CONSTRAINT name] PRIMARY KEY (a, b)`: the `PRIMARY` position and the columns.
    fn table_constraint(&mut self) -> Result<(Pos, Vec<Ident>)> {
        if self.eat_kw("CONSTRAINT") {
            self.ident("a constraint name after `CONSTRAINT`")?;
            if !(self.peek_kw("PRIMARY") && self.peek_kw_at(1, "KEY")) {
                return Err(self.expected("`PRIMARY KEY` (the only supported constraint)"));
            }
        }
        let pos = self.here();
        self.i += 2; // PRIMARY KEY
        self.expect_sym('(', "`(` and key columns after `PRIMARY KEY`")?;
        let mut cols = vec![self.ident("a column name in PRIMARY KEY")?];
        while self.eat_sym(',') {
            cols.push(self.ident("a column name in PRIMARY KEY")?);
        }
        self.expect_sym(')', "`,` or `)` in the PRIMARY KEY column list")?;
        Ok((pos, cols))
    }

    fn column_def(&mut self) -> Result<ColumnDef> {
        let name = self.ident("a column name")?;
        let is_type_word = self
            .keyword_at(0)
            .is_some_and(|k| !CONSTRAINT_WORDS.contains(&k.as_str()));
        if !is_type_word {
            return Err(self.expected(&format!("a column type after `{name}`")));
        }
        let type_name = self.type_name()?;

        let mut not_null = false;
        let mut explicit_null = false;
        let mut primary_key = false;
        loop {
            let pos = self.here();
            if self.peek_kw("NOT") && self.peek_kw_at(1, "NULL") {
                self.i += 2;
                if explicit_null {
                    return Err(ParseError::new(
                        pos,
                        format!("column `{name}` is declared both NULL and NOT NULL"),
                    ));
                }
                not_null = true;
            } else if self.peek_kw("NOT") {
                self.i += 1;
                return Err(self.expected("`NULL` after `NOT`"));
            } else if self.eat_kw("NULL") {
                if not_null || primary_key {
                    return Err(ParseError::new(
                        pos,
                        format!("column `{name}` cannot be both NULL and NOT NULL/PRIMARY KEY"),
                    ));
                }
                explicit_null = true;
            } else if self.eat_kw("PRIMARY") {
                self.expect_kw("KEY", "after `PRIMARY`")?;
                if explicit_null {
                    return Err(ParseError::new(
                        pos,
                        format!("column `{name}` is declared NULL and cannot be a PRIMARY KEY"),
                    ));
                }
                primary_key = true;
                not_null = true;
            } else if let Some(k) = self
                .keyword_at(0)
                .filter(|k| UNSUPPORTED_CONSTRAINTS.contains(&k.as_str()))
            {
                return Err(ParseError::new(
                    pos,
                    format!(
                        "column constraint `{k}` is not supported (supported: NOT NULL, NULL, PRIMARY KEY)"
                    ),
                ));
            } else {
                break;
            }
        }
        Ok(ColumnDef {
            name,
            type_name,
            not_null,
            primary_key,
        })
    }

    fn type_name(&mut self) -> Result<TypeName> {
        let first = self.advance().expect("caller checked a word");
        let mut name = self.text(first).to_ascii_uppercase();
        match name.as_str() {
            "DOUBLE" if self.eat_kw("PRECISION") => name.push_str(" PRECISION"),
            "CHARACTER" | "CHAR" if self.eat_kw("VARYING") => name.push_str(" VARYING"),
            n if INTEGER_TYPES.contains(&n) && self.eat_kw("UNSIGNED") => {
                name.push_str(" UNSIGNED");
            }
            _ => {}
        }
        let mut params = Vec::new();
        if self.eat_sym('(') {
            loop {
                match self.peek() {
                    Some(t) if t.kind == TokenKind::Number => match self.text(t).parse::<u32>() {
                        Ok(n) => {
                            self.i += 1;
                            params.push(n);
                        }
                        Err(_) => {
                            return Err(ParseError::new(
                                t.pos,
                                format!(
                                    "type parameter of {name} must be a whole number, found `{}`",
                                    self.text(t)
                                ),
                            ));
                        }
                    },
                    _ => {
                        return Err(self.expected(&format!("a number in the parameters of {name}")));
                    }
                }
                if self.eat_sym(',') {
                    continue;
                }
                self.expect_sym(')', &format!("`,` or `)` in the parameters of {name}"))?;
                break;
            }
        }
        if (name == "TIMESTAMP" || name == "TIME")
            && (self.peek_kw("WITH") || self.peek_kw("WITHOUT"))
            && self.peek_kw_at(1, "TIME")
            && self.peek_kw_at(2, "ZONE")
        {
            let with = self.keyword_at(0).expect("checked");
            self.i += 3;
            name = format!("{name} {with} TIME ZONE");
        }
        Ok(TypeName {
            name,
            params,
            pos: first.pos,
        })
    }

    // ---- options ------------------------------------------------------------------

    /// `'(' [option (',' option)* [',']] ')'`, after `WITH`.
    fn options(&mut self) -> Result<Vec<SqlOption>> {
        self.expect_sym('(', "`(` after `WITH`")?;
        let mut out: Vec<SqlOption> = Vec::new();
        loop {
            if self.eat_sym(')') {
                break;
            }
            let opt = self.option()?;
            if let Some(prev) = out.iter().find(|o| o.key == opt.key) {
                return Err(ParseError::new(
                    opt.key_pos,
                    format!(
                        "option `{}` is given twice (lines {} and {})",
                        opt.key, prev.key_pos.line, opt.key_pos.line
                    ),
                ));
            }
            let key = opt.key.clone();
            out.push(opt);
            if self.eat_sym(',') {
                continue;
            }
            self.expect_sym(
                ')',
                &format!("`,` or `)` after the value of option `{key}`"),
            )?;
            break;
        }
        Ok(out)
    }

    fn option(&mut self) -> Result<SqlOption> {
        let (key, key_pos) = match self.peek() {
            Some(t) if t.kind == TokenKind::Word => {
                self.i += 1;
                let mut key = self.text(t).to_lowercase();
                while self.peek_sym('.') {
                    self.i += 1;
                    match self.peek() {
                        Some(p) if p.kind == TokenKind::Word => {
                            self.i += 1;
                            key.push('.');
                            key.push_str(&self.text(p).to_lowercase());
                        }
                        _ => return Err(self.expected(&format!("a name after `{key}.`"))),
                    }
                }
                (key, t.pos)
            }
            Some(Token {
                kind: TokenKind::QuotedIdent(k) | TokenKind::Str(k),
                pos,
                ..
            }) if !k.is_empty() => {
                self.i += 1;
                (k.to_lowercase(), *pos)
            }
            _ => return Err(self.expected("an option name")),
        };
        self.expect_sym('=', &format!("`=` after option `{key}`"))?;
        let value_pos = self.here();
        let what =
            || format!("a value for option `{key}` (a '...' string, a number, TRUE or FALSE)");
        let value = match self.peek() {
            Some(Token {
                kind: TokenKind::Str(s),
                ..
            }) => {
                self.i += 1;
                OptionValue::String(s.clone())
            }
            Some(t) if t.kind == TokenKind::Number => {
                self.i += 1;
                OptionValue::Number(self.text(t).to_string())
            }
            Some(Token {
                kind: TokenKind::Symbol(sign @ ('-' | '+')),
                ..
            }) => {
                self.i += 1;
                match self.peek() {
                    Some(t) if t.kind == TokenKind::Number => {
                        self.i += 1;
                        OptionValue::Number(format!("{sign}{}", self.text(t)))
                    }
                    _ => return Err(self.expected(&format!("a number after `{sign}`"))),
                }
            }
            Some(t) if t.kind == TokenKind::Word => {
                let word = self.text(t);
                if word.eq_ignore_ascii_case("true") {
                    self.i += 1;
                    OptionValue::Bool(true)
                } else if word.eq_ignore_ascii_case("false") {
                    self.i += 1;
                    OptionValue::Bool(false)
                } else {
                    return Err(ParseError::new(
                        t.pos,
                        format!(
                            "expected {}, found `{word}`; quote it as a string: '{word}'",
                            what()
                        ),
                    ));
                }
            }
            _ => return Err(self.expected(&what())),
        };
        Ok(SqlOption {
            key,
            key_pos,
            value,
            value_pos,
        })
    }

    // ---- DROP ---------------------------------------------------------------------

    fn drop(&mut self) -> Result<StatementKind> {
        let object = match self.keyword_at(0).as_deref() {
            Some("TABLE") => ObjectKind::Table,
            Some("VIEW") => ObjectKind::View,
            Some("CONNECTION") => ObjectKind::Connection,
            Some("SINK") => ObjectKind::Sink,
            Some(_) => {
                let t = self.peek().expect("keyword present");
                let word = self.text(t);
                return Err(ParseError::new(
                    t.pos,
                    format!(
                        "expected TABLE, VIEW, CONNECTION or SINK after `DROP`, found `{word}`{}",
                        did_you_mean(word, OBJECT_KEYWORDS)
                    ),
                ));
            }
            None => return Err(self.expected("TABLE, VIEW, CONNECTION or SINK after `DROP`")),
        };
        self.i += 1;
        let if_exists = if self.eat_kw("IF") {
            self.expect_kw("EXISTS", "after `IF`")?;
            true
        } else {
            false
        };
        let what = format!("a {} name", object.keyword().to_lowercase());
        let mut names = vec![self.object_name(&what)?];
        while self.eat_sym(',') {
            names.push(self.object_name(&what)?);
        }
        let last = &names[names.len() - 1];
        if !self.at_end() {
            return Err(self.expected(&format!("`,` or `;` after `{last}`")));
        }
        Ok(StatementKind::Drop {
            object,
            names,
            if_exists,
        })
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
