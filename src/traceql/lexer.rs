//! TraceQL tokens with byte positions.
//!
//! The lexer has two modes: ordinary tokens, and attribute names, entered after a dot scope
//! (`.`, `span.`, `resource.`, …). In attribute mode the name runs until a character that
//! cannot belong to a name, quoted segments are concatenated, and a synthetic
//! [`TokenKind::EndAttribute`] closes the name.

use super::ast::is_attribute_rune;
use super::static_value::parse_duration;

/// A syntax error, positioned like Tempo's (`parse error at line 1, col 22: syntax error:
/// unexpected }`); the API prefixes it with `invalid TraceQL query: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line {line}, col {col}: {message}")]
pub struct ParseError {
    /// 1-based line
    pub line: usize,
    /// 1-based column, in characters
    pub col: usize,
    /// goyacc-style reason, e.g. `syntax error: unexpected $end`
    pub message: String,
}

/// Scope prefixes that start an attribute name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DotScope {
    /// `.`
    None,
    /// `span.`
    Span,
    /// `resource.`
    Resource,
    /// `event.`
    Event,
    /// `link.`
    Link,
    /// `instrumentation.`
    Instrumentation,
    /// `parent.`
    Parent,
}

impl DotScope {
    fn from_word(word: &str) -> Option<DotScope> {
        match word {
            "span" => Some(DotScope::Span),
            "resource" => Some(DotScope::Resource),
            "event" => Some(DotScope::Event),
            "link" => Some(DotScope::Link),
            "instrumentation" => Some(DotScope::Instrumentation),
            "parent" => Some(DotScope::Parent),
            _ => None,
        }
    }

    fn text(self) -> &'static str {
        match self {
            DotScope::None => ".",
            DotScope::Span => "span.",
            DotScope::Resource => "resource.",
            DotScope::Event => "event.",
            DotScope::Link => "link.",
            DotScope::Instrumentation => "instrumentation.",
            DotScope::Parent => "parent.",
        }
    }
}

/// Scope prefixes that start an intrinsic (`span:name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColonScope {
    /// `trace:`
    Trace,
    /// `span:`
    Span,
    /// `event:`
    Event,
    /// `link:`
    Link,
    /// `instrumentation:`
    Instrumentation,
}

impl ColonScope {
    fn from_word(word: &str) -> Option<ColonScope> {
        match word {
            "trace" => Some(ColonScope::Trace),
            "span" => Some(ColonScope::Span),
            "event" => Some(ColonScope::Event),
            "link" => Some(ColonScope::Link),
            "instrumentation" => Some(ColonScope::Instrumentation),
            _ => None,
        }
    }

    fn text(self) -> &'static str {
        match self {
            ColonScope::Trace => "trace:",
            ColonScope::Span => "span:",
            ColonScope::Event => "event:",
            ColonScope::Link => "link:",
            ColonScope::Instrumentation => "instrumentation:",
        }
    }
}

/// Keywords: tokens only when they stand alone, outside attribute names.
pub const KEYWORDS: &[&str] = &[
    "true",
    "false",
    "nil",
    "ok",
    "error",
    "unset",
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
    "duration",
    "name",
    "status",
    "statusMessage",
    "kind",
    "childCount",
    "rootName",
    "rootServiceName",
    "rootService",
    "traceDuration",
    "nestedSetLeft",
    "nestedSetRight",
    "nestedSetParent",
    "id",
    "traceID",
    "spanID",
    "parentID",
    "timeSinceStart",
    "version",
    "parent",
    "count",
    "avg",
    "max",
    "min",
    "sum",
    "by",
    "coalesce",
    "select",
    "with",
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
];

/// Operators and punctuation, longest first so matching is greedy.
const SYMBOLS: &[&str] = &[
    "!>>", "!<<", "&>>", "&<<", "!=", "=~", "!~", ">=", "<=", ">>", "<<", "&&", "||", "!>", "!<",
    "&>", "&<", "&~", "{", "}", "(", ")", ",", "=", ">", "<", "+", "-", "*", "/", "%", "^", "!",
    "~", "|",
];

/// The magnitude of i64::MIN, which only exists as a literal after a unary minus.
const I64_MIN_MAGNITUDE: &str = "9223372036854775808";

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// End of input (`$end` in goyacc's messages).
    Eof,
    /// A bare identifier, or the name of an attribute (after a dot scope).
    Identifier(String),
    /// Closes an attribute name.
    EndAttribute,
    /// A string literal, escapes resolved.
    String(String),
    /// An integer literal.
    Integer(i64),
    /// A float literal.
    Float(f64),
    /// A duration literal, in nanoseconds.
    Duration(i64),
    /// A keyword, by its text.
    Keyword(&'static str),
    /// `.`, `span.`, … (the name follows).
    DotScope(DotScope),
    /// `trace:`, `span:`, … (a keyword follows).
    ColonScope(ColonScope),
    /// An operator or punctuation, by its text.
    Symbol(&'static str),
}

impl TokenKind {
    /// How goyacc names the token in "unexpected X" messages.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Eof => "$end".to_string(),
            TokenKind::Identifier(_) => "IDENTIFIER".to_string(),
            TokenKind::EndAttribute => "END_ATTRIBUTE".to_string(),
            TokenKind::String(_) => "STRING".to_string(),
            TokenKind::Integer(_) => "INTEGER".to_string(),
            TokenKind::Float(_) => "FLOAT".to_string(),
            TokenKind::Duration(_) => "DURATION".to_string(),
            TokenKind::Keyword(word) => word.to_string(),
            TokenKind::DotScope(scope) => scope.text().to_string(),
            TokenKind::ColonScope(scope) => scope.text().to_string(),
            TokenKind::Symbol(symbol) => symbol.to_string(),
        }
    }

    /// The token's name in Tempo's grammar (`SPAN_DOT`, `IDURATION`, `DESC`, …), as the
    /// conformance data's lexer cases spell it.
    pub fn grammar_name(&self) -> String {
        let name = match self {
            TokenKind::Eof => "END",
            TokenKind::Identifier(_) => "IDENTIFIER",
            TokenKind::EndAttribute => "END_ATTRIBUTE",
            TokenKind::String(_) => "STRING",
            TokenKind::Integer(_) => "INTEGER",
            TokenKind::Float(_) => "FLOAT",
            TokenKind::Duration(_) => "DURATION",
            TokenKind::DotScope(scope) => match scope {
                DotScope::None => "DOT",
                DotScope::Span => "SPAN_DOT",
                DotScope::Resource => "RESOURCE_DOT",
                DotScope::Event => "EVENT_DOT",
                DotScope::Link => "LINK_DOT",
                DotScope::Instrumentation => "INSTRUMENTATION_DOT",
                DotScope::Parent => "PARENT_DOT",
            },
            TokenKind::ColonScope(scope) => match scope {
                ColonScope::Trace => "TRACE_COLON",
                ColonScope::Span => "SPAN_COLON",
                ColonScope::Event => "EVENT_COLON",
                ColonScope::Link => "LINK_COLON",
                ColonScope::Instrumentation => "INSTRUMENTATION_COLON",
            },
            TokenKind::Keyword(word) => match *word {
                "duration" => "IDURATION",
                "statusMessage" => "STATUS_MESSAGE",
                "parentID" => "PARENT_ID",
                "traceID" => "TRACE_ID",
                "spanID" => "SPAN_ID",
                "rootService" => "ROOTSERVICE",
                "rootServiceName" => "ROOTSERVICENAME",
                "timeSinceStart" => "TIMESINCESTART",
                "childCount" => "CHILDCOUNT",
                "rootName" => "ROOTNAME",
                "traceDuration" => "TRACEDURATION",
                "nestedSetLeft" => "NESTEDSETLEFT",
                "nestedSetRight" => "NESTEDSETRIGHT",
                "nestedSetParent" => "NESTEDSETPARENT",
                other => return other.to_uppercase(),
            },
            TokenKind::Symbol(symbol) => match *symbol {
                "{" => "OPEN_BRACE",
                "}" => "CLOSE_BRACE",
                "(" => "OPEN_PARENS",
                ")" => "CLOSE_PARENS",
                "," => "COMMA",
                "=" => "EQ",
                "!=" => "NEQ",
                "=~" => "RE",
                "!~" => "NRE",
                ">" => "GT",
                ">=" => "GTE",
                "<" => "LT",
                "<=" => "LTE",
                "+" => "ADD",
                "-" => "SUB",
                "*" => "MUL",
                "/" => "DIV",
                "%" => "MOD",
                "^" => "POW",
                "!" => "NOT",
                "~" => "TILDE",
                "|" => "PIPE",
                "&&" => "AND",
                "||" => "OR",
                ">>" => "DESC",
                "<<" => "ANCE",
                "!>" => "NOT_CHILD",
                "!<" => "NOT_PARENT",
                "!>>" => "NOT_DESC",
                "!<<" => "NOT_ANCE",
                "&>" => "UNION_CHILD",
                "&<" => "UNION_PARENT",
                "&>>" => "UNION_DESC",
                "&<<" => "UNION_ANCE",
                "&~" => "UNION_SIBL",
                other => other,
            },
        };
        name.to_string()
    }
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// what the token is
    pub kind: TokenKind,
    /// byte offset of its first character in the query
    pub start: usize,
}

/// 1-based line and column (in characters) of a byte offset, as Tempo reports them.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for (index, c) in source.char_indices() {
        if index >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

fn error_at(source: &str, offset: usize, message: impl Into<String>) -> ParseError {
    let (line, col) = line_col(source, offset);
    ParseError {
        line,
        col,
        message: message.into(),
    }
}

/// Splits a query into tokens, ending with [`TokenKind::Eof`].
pub fn tokenize(source: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer {
        source,
        pos: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    source: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.source[self.pos..].chars().next()
    }

    fn peek_at(&self, offset_chars: usize) -> Option<char> {
        self.source[self.pos..].chars().nth(offset_chars)
    }

    fn rest(&self) -> &str {
        &self.source[self.pos..]
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token { kind, start });
    }

    fn run(&mut self) -> Result<(), ParseError> {
        loop {
            self.skip_whitespace_and_comments()?;
            let start = self.pos;
            let Some(c) = self.peek() else {
                self.push(TokenKind::Eof, start);
                return Ok(());
            };
            if c == '.' {
                if self.peek_at(1).is_some_and(|next| next.is_ascii_digit()) {
                    self.number()?;
                } else {
                    self.pos += 1;
                    self.push(TokenKind::DotScope(DotScope::None), start);
                    self.attribute_name()?;
                }
            } else if c.is_ascii_digit() {
                self.number()?;
            } else if c == '"' {
                let value = self.interpreted_string()?;
                self.push(TokenKind::String(value), start);
            } else if c == '`' {
                let value = self.raw_string()?;
                self.push(TokenKind::String(value), start);
            } else if c.is_alphabetic() || c == '_' {
                self.word()?;
            } else if let Some(symbol) = SYMBOLS.iter().find(|s| self.rest().starts_with(**s)) {
                self.pos += symbol.len();
                self.push(TokenKind::Symbol(symbol), start);
            } else {
                return Err(error_at(
                    self.source,
                    start,
                    format!("syntax error: unexpected character {c:?}"),
                ));
            }
        }
    }

    fn skip_whitespace_and_comments(&mut self) -> Result<(), ParseError> {
        loop {
            let Some(c) = self.peek() else {
                return Ok(());
            };
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if self.rest().starts_with("//") {
                // Go's scanner skips comments in token mode (reference §2, source only).
                let line_end = self.rest().find('\n').unwrap_or(self.rest().len());
                self.pos += line_end;
            } else if self.rest().starts_with("/*") {
                let Some(end) = self.rest()[2..].find("*/") else {
                    return Err(error_at(self.source, self.pos, "comment not terminated"));
                };
                self.pos += end + 4;
            } else {
                return Ok(());
            }
        }
    }

    /// An identifier or keyword, possibly fused with a following `.` or `:` into a scope.
    fn word(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let len = self
            .rest()
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map(|(index, _)| index)
            .unwrap_or(self.rest().len());
        let word = &self.source[start..start + len];
        self.pos += len;
        let next = self.peek();
        if next == Some('.') {
            if let Some(scope) = DotScope::from_word(word) {
                self.pos += 1;
                self.push(TokenKind::DotScope(scope), start);
                if scope == DotScope::Parent {
                    // Only `span.` and `resource.` may follow `parent.`.
                    for (prefix, nested) in
                        [("span.", DotScope::Span), ("resource.", DotScope::Resource)]
                    {
                        if self.rest().starts_with(prefix) {
                            let nested_start = self.pos;
                            self.pos += prefix.len();
                            self.push(TokenKind::DotScope(nested), nested_start);
                            break;
                        }
                    }
                }
                return self.attribute_name();
            }
        }
        if next == Some(':') {
            if let Some(scope) = ColonScope::from_word(word) {
                self.pos += 1;
                self.push(TokenKind::ColonScope(scope), start);
                return Ok(());
            }
        }
        let kind = match KEYWORDS.iter().find(|keyword| **keyword == word) {
            Some(keyword) => TokenKind::Keyword(keyword),
            None => TokenKind::Identifier(word.to_string()),
        };
        self.push(kind, start);
        Ok(())
    }

    /// Reads an attribute name after a dot scope and emits IDENTIFIER (if any) and
    /// END_ATTRIBUTE.
    fn attribute_name(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let mut name = String::new();
        let mut any = false;
        while let Some(c) = self.peek() {
            if c == '"' {
                any = true;
                let quote_start = self.pos;
                self.pos += 1;
                loop {
                    let Some(c) = self.peek() else {
                        return Err(error_at(
                            self.source,
                            quote_start,
                            "unexpected EOF, expecting \"",
                        ));
                    };
                    self.pos += c.len_utf8();
                    match c {
                        '"' => break,
                        '\\' => {
                            let escaped = self.peek();
                            match escaped {
                                Some(e @ ('"' | '\\')) => {
                                    self.pos += 1;
                                    name.push(e);
                                }
                                _ => {
                                    return Err(error_at(
                                        self.source,
                                        self.pos,
                                        "invalid escape sequence in attribute name",
                                    ))
                                }
                            }
                        }
                        other => name.push(other),
                    }
                }
            } else if is_attribute_rune(c) {
                any = true;
                name.push(c);
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        if any {
            self.push(TokenKind::Identifier(name), start);
        }
        self.push(TokenKind::EndAttribute, self.pos);
        Ok(())
    }

    /// A number: INTEGER, FLOAT, or DURATION when unit characters follow immediately.
    fn number(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let bytes = self.source.as_bytes();
        let mut end = start;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        let mut is_float = false;
        if end < bytes.len() && bytes[end] == b'.' {
            is_float = true;
            end += 1;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
        }
        // An exponent only when digits follow, so `1e` is not half a float.
        if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
            let mut exponent_end = end + 1;
            if exponent_end < bytes.len()
                && (bytes[exponent_end] == b'+' || bytes[exponent_end] == b'-')
            {
                exponent_end += 1;
            }
            if exponent_end < bytes.len() && bytes[exponent_end].is_ascii_digit() {
                while exponent_end < bytes.len() && bytes[exponent_end].is_ascii_digit() {
                    exponent_end += 1;
                }
                is_float = true;
                end = exponent_end;
            }
        }
        let number_text = &self.source[start..end];
        // Hex, octal, binary and `_` separators are scanned by Go and then fail to convert.
        let after = &self.source[end..];
        if after.starts_with('_')
            || (number_text == "0" && after.starts_with(['x', 'X', 'b', 'B', 'o', 'O']))
        {
            return Err(error_at(
                self.source,
                start,
                format!("syntax error: invalid number {number_text}{}", &after[..1]),
            ));
        }
        // A duration: the number followed immediately by unit characters.
        let unit_len = after
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '.' || *c == 'µ'))
            .map(|(index, _)| index)
            .unwrap_or(after.len());
        if unit_len > 0 && after.starts_with(|c: char| c.is_ascii_alphabetic() || c == 'µ') {
            let candidate = &self.source[start..end + unit_len];
            if let Some(nanos) = parse_duration(candidate) {
                self.pos = end + unit_len;
                self.push(TokenKind::Duration(nanos), start);
                return Ok(());
            }
        }
        self.pos = end;
        if is_float {
            let value: f64 = number_text.parse().map_err(|_| {
                error_at(
                    self.source,
                    start,
                    format!("syntax error: invalid float {number_text}"),
                )
            })?;
            self.push(TokenKind::Float(value), start);
        } else if number_text == I64_MIN_MAGNITUDE
            && matches!(
                self.tokens.last(),
                Some(Token {
                    kind: TokenKind::Symbol("-"),
                    ..
                })
            )
        {
            // `-9223372036854775808` is how minInt prints; its magnitude only fits an i64
            // once negated, so it is carried as i64::MIN and the parser accepts it only
            // directly after a unary minus.
            self.push(TokenKind::Integer(i64::MIN), start);
        } else {
            let value: i64 = number_text.parse().map_err(|_| {
                error_at(
                    self.source,
                    start,
                    format!("syntax error: integer {number_text} out of range"),
                )
            })?;
            self.push(TokenKind::Integer(value), start);
        }
        Ok(())
    }

    /// `"…"` with Go's escapes.
    fn interpreted_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(error_at(self.source, start, "literal not terminated"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(value),
                '\n' => return Err(error_at(self.source, start, "literal not terminated")),
                '\\' => self.escape(&mut value)?,
                other => value.push(other),
            }
        }
    }

    fn escape(&mut self, value: &mut String) -> Result<(), ParseError> {
        let escape_start = self.pos.saturating_sub(1);
        let invalid =
            |lexer: &Lexer<'_>| error_at(lexer.source, escape_start, "invalid char escape");
        let Some(c) = self.peek() else {
            return Err(invalid(self));
        };
        self.pos += c.len_utf8();
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            _ => None,
        };
        if let Some(resolved) = simple {
            value.push(resolved);
            return Ok(());
        }
        let (digits, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(invalid(self)),
        };
        let mut text = String::new();
        if radix == 8 {
            text.push(c);
        }
        for _ in 0..digits {
            let Some(d) = self.peek() else {
                return Err(invalid(self));
            };
            if !d.is_digit(radix) {
                return Err(invalid(self));
            }
            text.push(d);
            self.pos += 1;
        }
        let code = u32::from_str_radix(&text, radix).map_err(|_| invalid(self))?;
        match c {
            // \x and octal escapes are bytes in Go; a byte above 0x7f alone is not valid
            // UTF-8, so vivace refuses it rather than inventing a character.
            'x' | '0'..='7' if code > 0x7f => Err(invalid(self)),
            _ => match char::from_u32(code) {
                Some(resolved) => {
                    value.push(resolved);
                    Ok(())
                }
                None => Err(invalid(self)),
            },
        }
    }

    /// `` `…` `` without escapes.
    fn raw_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let Some(end) = self.source[start + 1..].find('`') else {
            return Err(error_at(self.source, start, "literal not terminated"));
        };
        let value = self.source[start + 1..start + 1 + end].to_string();
        self.pos = start + 1 + end + 1;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(query: &str) -> Vec<String> {
        let tokens = tokenize(query).unwrap_or_default();
        tokens
            .iter()
            .filter(|token| token.kind != TokenKind::Eof)
            .map(|token| token.kind.grammar_name())
            .collect()
    }

    #[test]
    fn attribute_names_swallow_operators_and_dots() {
        assert_eq!(names(".a+1"), ["DOT", "IDENTIFIER", "END_ATTRIBUTE"]);
        assert_eq!(
            names("parent.span.foo"),
            ["PARENT_DOT", "SPAN_DOT", "IDENTIFIER", "END_ATTRIBUTE"]
        );
        assert_eq!(names(". foo"), ["DOT", "END_ATTRIBUTE", "IDENTIFIER"]);
        let tokens = tokenize(r#".foo."bar \" baz".x"#).unwrap_or_default();
        assert_eq!(
            tokens[1].kind,
            TokenKind::Identifier("foo.bar \" baz.x".into())
        );
    }

    #[test]
    fn numbers_durations_and_suffixes() {
        assert_eq!(names(".3"), ["FLOAT"]);
        assert_eq!(names(".24h"), ["DURATION"]);
        assert_eq!(names("1t"), ["INTEGER", "IDENTIFIER"]);
        assert_eq!(names("1h15m30.918273645s"), ["DURATION"]);
        assert!(tokenize("99999999999999999999").is_err());
        assert!(tokenize("0x10").is_err());
    }

    #[test]
    fn quoted_attribute_errors() {
        assert!(tokenize(r#"{ ."foo }"#).is_err());
        assert!(tokenize(r#"{ ."a\n" }"#).is_err());
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("µs x", 3), (1, 3));
    }
}
