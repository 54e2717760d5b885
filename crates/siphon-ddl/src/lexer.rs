//! The tokenizer for pipeline files.
//!
//! This module owns turning source text into tokens with exact positions. It knows SQL's
//! lexical rules (comments, `'...'` strings and `"..."` identifiers with doubled-quote
//! escapes, numbers, identifiers) but nothing about statements: every other char becomes
//! a one-char symbol, so query text full of operators (`>=`, `||`, `::`) passes through
//! untouched. Comments and whitespace produce no tokens; the parser slices the original
//! text by byte offsets when it needs a statement's or query's text.

use crate::ast::Pos;
use crate::error::ParseError;

/// The kind of a token. Text that is not unescaped (words, numbers, symbols) is read
/// from the source through [`Token::start`]..[`Token::end`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// An unquoted identifier or keyword: `[A-Za-z_][A-Za-z0-9_$]*` (other Unicode
    /// letters are accepted too).
    Word,
    /// A `"double-quoted"` (or `` `backquoted` ``) identifier, unescaped.
    QuotedIdent(String),
    /// A `'single-quoted'` string, with `''` unescaped to `'`.
    Str(String),
    /// A number: digits, optionally `.digits` and an exponent. No sign.
    Number,
    /// Any other single char: `( ) , ; = . *`, operators, ...
    Symbol(char),
}

/// One token with its byte range in the source and its start position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// Byte offset of the first char.
    pub start: usize,
    /// Byte offset just past the last char.
    pub end: usize,
    /// Line and column of the first char.
    pub pos: Pos,
}

/// The tokens of a whole file, and the position just past its last char.
#[derive(Debug)]
pub(crate) struct Lexed {
    /// The tokens, in order.
    pub tokens: Vec<Token>,
    /// The position of the end of the input, for "found end of input" errors.
    pub end_pos: Pos,
}

struct Cursor<'a> {
    src: &'a str,
    i: usize,
    line: u32,
    col: u32,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.i..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.i..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn pos(&self) -> Pos {
        Pos::new(self.line, self.col)
    }

    fn eat_while(&mut self, f: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&f) {
            self.bump();
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c == '$' || c.is_alphanumeric()
}

/// Splits `src` into tokens. A leading byte-order mark is skipped.
///
/// Errors on an unterminated string, quoted identifier or block comment, positioned at
/// its start.
pub(crate) fn tokenize(src: &str) -> Result<Lexed, ParseError> {
    let mut cur = Cursor {
        src,
        i: 0,
        line: 1,
        col: 1,
    };
    if src.starts_with('\u{feff}') {
        cur.i = '\u{feff}'.len_utf8();
    }
    let mut tokens = Vec::new();
    loop {
        cur.eat_while(char::is_whitespace);
        let Some(c) = cur.peek() else { break };
        let start = cur.i;
        let pos = cur.pos();
        let kind = match c {
            '-' if cur.peek2() == Some('-') => {
                cur.eat_while(|c| c != '\n');
                continue;
            }
            '/' if cur.peek2() == Some('*') => {
                block_comment(&mut cur, pos)?;
                continue;
            }
            '\'' => TokenKind::Str(quoted(&mut cur, '\'', pos, "string")?),
            '"' => TokenKind::QuotedIdent(quoted(&mut cur, '"', pos, "quoted identifier")?),
            '`' => TokenKind::QuotedIdent(quoted(&mut cur, '`', pos, "quoted identifier")?),
            c if is_ident_start(c) => {
                cur.eat_while(is_ident_char);
                TokenKind::Word
            }
            c if c.is_ascii_digit() => {
                number(&mut cur);
                TokenKind::Number
            }
            c => {
                cur.bump();
                TokenKind::Symbol(c)
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: cur.i,
            pos,
        });
    }
    Ok(Lexed {
        tokens,
        end_pos: cur.pos(),
    })
}

/// Skips a `/* ... */` comment, which may nest.
fn block_comment(cur: &mut Cursor<'_>, pos: Pos) -> Result<(), ParseError> {
    cur.bump();
    cur.bump();
    let mut depth = 1usize;
    while depth > 0 {
        match cur.bump() {
            None => {
                return Err(ParseError::new(
                    pos,
                    "unterminated block comment starting here (missing `*/`)",
                ));
            }
            Some('*') if cur.peek() == Some('/') => {
                cur.bump();
                depth -= 1;
            }
            Some('/') if cur.peek() == Some('*') => {
                cur.bump();
                depth += 1;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Reads a token quoted with `q`, where a doubled `q` stands for one `q`.
fn quoted(cur: &mut Cursor<'_>, q: char, pos: Pos, what: &str) -> Result<String, ParseError> {
    cur.bump();
    let mut out = String::new();
    loop {
        match cur.bump() {
            None => {
                return Err(ParseError::new(
                    pos,
                    format!("unterminated {what} starting here (missing closing {q})"),
                ));
            }
            Some(c) if c == q => {
                if cur.peek() == Some(q) {
                    cur.bump();
                    out.push(q);
                } else {
                    return Ok(out);
                }
            }
            Some(c) => out.push(c),
        }
    }
}

/// Reads `digits [. digits] [e [+-] digits]`.
fn number(cur: &mut Cursor<'_>) {
    cur.eat_while(|c| c.is_ascii_digit());
    if cur.peek() == Some('.') && cur.peek2().is_some_and(|c| c.is_ascii_digit()) {
        cur.bump();
        cur.eat_while(|c| c.is_ascii_digit());
    }
    if matches!(cur.peek(), Some('e' | 'E')) {
        let rest = &cur.src[cur.i + 1..];
        let mut chars = rest.chars();
        let has_exponent = match chars.next() {
            Some('+' | '-') => chars.next().is_some_and(|c| c.is_ascii_digit()),
            Some(c) => c.is_ascii_digit(),
            None => false,
        };
        if has_exponent {
            cur.bump();
            if matches!(cur.peek(), Some('+' | '-')) {
                cur.bump();
            }
            cur.eat_while(|c| c.is_ascii_digit());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (kind, source text, line, column) of each token.
    fn toks(src: &str) -> Vec<(TokenKind, String, u32, u32)> {
        tokenize(src)
            .unwrap()
            .tokens
            .into_iter()
            .map(|t| {
                (
                    t.kind,
                    src[t.start..t.end].to_string(),
                    t.pos.line,
                    t.pos.column,
                )
            })
            .collect()
    }

    fn err(src: &str) -> ParseError {
        tokenize(src).unwrap_err()
    }

    #[test]
    fn words_numbers_symbols() {
        let t = toks("SELECT a1, b_$ FROM t WHERE x >= 1.5e3;");
        let texts: Vec<&str> = t.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(
            texts,
            [
                "SELECT", "a1", ",", "b_$", "FROM", "t", "WHERE", "x", ">", "=", "1.5e3", ";"
            ]
        );
        assert_eq!(t[0].0, TokenKind::Word);
        assert_eq!(t[8].0, TokenKind::Symbol('>'));
        assert_eq!(t[10].0, TokenKind::Number);
        assert_eq!((t[10].2, t[10].3), (1, 34));
    }

    #[test]
    fn number_edges() {
        let t = toks("1. 2.0 3e 4e-2 x.5");
        let texts: Vec<&str> = t.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(texts, ["1", ".", "2.0", "3", "e", "4e-2", "x", ".", "5"]);
    }

    #[test]
    fn strings_and_quoted_identifiers_unescape() {
        let t = toks(r#"'it''s' "My ""Col""" `bq` '${A}' ''"#);
        assert_eq!(t[0].0, TokenKind::Str("it's".into()));
        assert_eq!(t[0].1, "'it''s'");
        assert_eq!(t[1].0, TokenKind::QuotedIdent("My \"Col\"".into()));
        assert_eq!(t[2].0, TokenKind::QuotedIdent("bq".into()));
        assert_eq!(t[3].0, TokenKind::Str("${A}".into()));
        assert_eq!(t[4].0, TokenKind::Str(String::new()));
    }

    #[test]
    fn comments_are_skipped_and_positions_follow() {
        let src = "-- c1\n/* a\n /* nested */ b */ x -- tail\n  y/**/z";
        let t = toks(src);
        assert_eq!(
            t.iter()
                .map(|t| (t.1.as_str(), t.2, t.3))
                .collect::<Vec<_>>(),
            [("x", 3, 20), ("y", 4, 3), ("z", 4, 8)]
        );
    }

    #[test]
    fn semicolons_inside_strings_and_comments_are_not_tokens() {
        let t = toks("'a;b' /* ; */ -- ;\n;");
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].0, TokenKind::Symbol(';'));
        assert_eq!((t[1].2, t[1].3), (2, 1));
    }

    #[test]
    fn crlf_and_bom() {
        let src = "\u{feff}a\r\n  b\r\n\r\nc";
        let t = toks(src);
        assert_eq!(
            t.iter()
                .map(|t| (t.1.as_str(), t.2, t.3))
                .collect::<Vec<_>>(),
            [("a", 1, 1), ("b", 2, 3), ("c", 4, 1)]
        );
    }

    #[test]
    fn columns_count_chars_not_bytes() {
        let t = toks("'héllo' x");
        assert_eq!((t[1].2, t[1].3), (1, 9));
    }

    #[test]
    fn end_position() {
        let l = tokenize("ab\ncd ").unwrap();
        assert_eq!(l.end_pos, Pos::new(2, 4));
    }

    #[test]
    fn unterminated_things_error_at_their_start() {
        let e = err("x = 'abc\n def");
        assert_eq!(e.pos, Pos::new(1, 5));
        assert!(
            e.message.starts_with("unterminated string starting here"),
            "{}",
            e.message
        );

        let e = err("a\n  /* x /* y */");
        assert_eq!(e.pos, Pos::new(2, 3));
        assert!(
            e.message
                .starts_with("unterminated block comment starting here")
        );

        let e = err("a \"foo");
        assert_eq!(e.pos, Pos::new(1, 3));
        assert!(
            e.message
                .starts_with("unterminated quoted identifier starting here")
        );
    }

    #[test]
    fn only_comments_give_no_tokens() {
        assert!(toks("-- nothing\n/* here */\n").is_empty());
        assert!(toks("").is_empty());
    }
}
