//! The LogQL subset vivace answers: a stream selector (`{name="v", name!="v", name=~"re",
//! name!~"re"}`), then any number of line filters (`|= "s"`, `!= "s"`, `|~ "re"`, `!~ "re"`)
//! and label filters (`| name="v"` with the same four operators) in any order.
//!
//! Line filters see the line and, so Grafana's trace-to-logs `|= "<trace ID>"` finds OTLP
//! records whose body does not repeat the ID, also the record's trace and span IDs in hex.
//! Label filters see stream labels, then attributes (structured metadata), then `trace_id` and
//! `span_id`. Regexes are RE2 syntax: label matchers are anchored, line filters are not, as in
//! Loki.

use regex::Regex;

use super::LogRow;

/// Why a query cannot be run; the message names the position and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at position {position}: {message}")]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

/// A comparison of a label-matcher or label filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// `name op "value"`, with its regex compiled (anchored) for the regex operators.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// A matcher; regex values are compiled anchored.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|error| format!("invalid regex {value:?}: {error}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Whether `value` (empty when the label is missing, as in Loki) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|re| re.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|re| re.is_match(value)),
        }
    }
}

/// A line filter.
#[derive(Debug, Clone)]
pub enum LineFilter {
    Contains(String),
    NotContains(String),
    Regex(Regex),
    NotRegex(Regex),
}

/// One pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    Line(LineFilter),
    Label(Matcher),
}

/// A parsed log query.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub selector: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

impl LogQuery {
    /// Whether the row belongs to the selected streams and passes every stage.
    pub fn matches(&self, row: &LogRow) -> bool {
        let selected = self
            .selector
            .iter()
            .all(|matcher| matcher.matches(row.label(&matcher.name).unwrap_or("")));
        if !selected {
            return false;
        }
        let mut ids: Option<(String, String)> = None;
        let mut ids_of = |row: &LogRow| -> (String, String) {
            ids.get_or_insert_with(|| (hex::encode(&row.trace_id), hex::encode(&row.span_id)))
                .clone()
        };
        for stage in &self.stages {
            let passed = match stage {
                Stage::Line(LineFilter::Contains(needle)) => {
                    row.body.contains(needle.as_str()) || {
                        let (trace, span) = ids_of(row);
                        ids_contain(&trace, &span, needle)
                    }
                }
                Stage::Line(LineFilter::NotContains(needle)) => {
                    !row.body.contains(needle.as_str()) && {
                        let (trace, span) = ids_of(row);
                        !ids_contain(&trace, &span, needle)
                    }
                }
                Stage::Line(LineFilter::Regex(regex)) => regex.is_match(&row.body),
                Stage::Line(LineFilter::NotRegex(regex)) => !regex.is_match(&row.body),
                Stage::Label(matcher) => {
                    let value = field_of(row, &matcher.name);
                    matcher.matches(&value)
                }
            };
            if !passed {
                return false;
            }
        }
        true
    }

    /// A trace ID the query can only match records of (a `|= "<32 hex>"` filter or a
    /// `| trace_id="<hex>"` label filter), so the store can use its trace-ID index.
    pub fn trace_id_hint(&self) -> Option<[u8; 16]> {
        self.stages.iter().find_map(|stage| {
            let text = match stage {
                Stage::Line(LineFilter::Contains(needle)) => needle,
                Stage::Label(matcher)
                    if matcher.op == MatchOp::Equal
                        && matches!(matcher.name.as_str(), "trace_id" | "traceID" | "traceId") =>
                {
                    &matcher.value
                }
                _ => return None,
            };
            parse_trace_id(text)
        })
    }

    /// The value of an `=` selector matcher on `name`, if any (for service pruning).
    pub fn equal_label(&self, name: &str) -> Option<&str> {
        self.selector
            .iter()
            .find(|matcher| matcher.name == name && matcher.op == MatchOp::Equal)
            .map(|matcher| matcher.value.as_str())
    }
}

fn ids_contain(trace: &str, span: &str, needle: &str) -> bool {
    let lower = needle.to_ascii_lowercase();
    (!trace.is_empty() && trace.contains(&lower)) || (!span.is_empty() && span.contains(&lower))
}

/// A label filter's subject: stream label, attribute, or the IDs.
fn field_of(row: &LogRow, name: &str) -> String {
    if let Some(value) = row.label(name) {
        return value.to_string();
    }
    if let Some(attribute) = row.attributes.iter().find(|label| label.name == name) {
        return attribute.value.clone();
    }
    match name {
        "trace_id" | "traceID" | "traceId" => hex::encode(&row.trace_id),
        "span_id" | "spanID" | "spanId" => hex::encode(&row.span_id),
        "severity_text" => row.severity_text.clone(),
        _ => String::new(),
    }
}

/// 32 hex digits (or fewer, zero-padded on the left, as Tempo reads IDs) → 16 bytes.
pub fn parse_trace_id(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{text:0>32}");
    let mut id = [0u8; 16];
    hex::decode_to_slice(padded, &mut id).ok()?;
    (id != [0u8; 16]).then_some(id)
}

/// Parses a query (see the module documentation).
pub fn parse(text: &str) -> Result<LogQuery, ParseError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        position: 0,
    };
    let selector = parser.selector()?;
    let mut stages = Vec::new();
    loop {
        parser.skip_space();
        if parser.at_end() {
            break;
        }
        stages.push(parser.stage()?);
    }
    Ok(LogQuery { selector, stages })
}

/// Parses only a stream selector, e.g. Loki push's `labels` string.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, ParseError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        position: 0,
    };
    let selector = parser.selector()?;
    parser.skip_space();
    if !parser.at_end() {
        return Err(parser.error("unexpected text after the stream selector"));
    }
    Ok(selector)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    position: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            position: self.position,
            message: message.into(),
        }
    }

    fn at_end(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.position += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.text[self.position..].starts_with(token) {
            self.position += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), ParseError> {
        self.skip_space();
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{token}`")))
        }
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, ParseError> {
        self.expect("{")?;
        let mut matchers = Vec::new();
        loop {
            self.skip_space();
            if self.eat("}") {
                break;
            }
            if !matchers.is_empty() {
                self.expect(",")?;
                self.skip_space();
                // Prometheus allows a trailing comma.
                if self.eat("}") {
                    break;
                }
            }
            matchers.push(self.matcher()?);
        }
        Ok(matchers)
    }

    fn matcher(&mut self) -> Result<Matcher, ParseError> {
        self.skip_space();
        let name = self.identifier()?;
        self.skip_space();
        let op = self.match_op()?;
        self.skip_space();
        let start = self.position;
        let value = self.string()?;
        Matcher::new(&name, op, &value).map_err(|message| ParseError {
            position: start,
            message,
        })
    }

    fn match_op(&mut self) -> Result<MatchOp, ParseError> {
        if self.eat("=~") {
            Ok(MatchOp::Regex)
        } else if self.eat("!~") {
            Ok(MatchOp::NotRegex)
        } else if self.eat("!=") {
            Ok(MatchOp::NotEqual)
        } else if self.eat("==") || self.eat("=") {
            Ok(MatchOp::Equal)
        } else {
            Err(self.error("expected one of `=`, `!=`, `=~`, `!~`"))
        }
    }

    fn identifier(&mut self) -> Result<String, ParseError> {
        let start = self.position;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            self.position += 1;
        }
        if start == self.position || self.bytes[start].is_ascii_digit() {
            return Err(self.error("expected a label name"));
        }
        Ok(self.text[start..self.position].to_string())
    }

    /// A double-quoted (with escapes) or back-quoted (raw) string.
    fn string(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(b'`') => {
                self.position += 1;
                let start = self.position;
                let Some(length) = self.text[start..].find('`') else {
                    return Err(self.error("unterminated raw string"));
                };
                self.position = start + length + 1;
                Ok(self.text[start..start + length].to_string())
            }
            Some(b'"') => {
                self.position += 1;
                let mut out = String::new();
                let mut chars = self.text[self.position..].char_indices();
                while let Some((offset, character)) = chars.next() {
                    match character {
                        '"' => {
                            self.position += offset + 1;
                            return Ok(out);
                        }
                        '\\' => match chars.next() {
                            Some((_, 'n')) => out.push('\n'),
                            Some((_, 't')) => out.push('\t'),
                            Some((_, 'r')) => out.push('\r'),
                            Some((_, other)) => out.push(other),
                            None => break,
                        },
                        other => out.push(other),
                    }
                }
                Err(self.error("unterminated string"))
            }
            _ => Err(self.error("expected a quoted string")),
        }
    }

    fn stage(&mut self) -> Result<Stage, ParseError> {
        let filter = if self.eat("|=") {
            Some(0)
        } else if self.eat("!=") {
            Some(1)
        } else if self.eat("|~") {
            Some(2)
        } else if self.eat("!~") {
            Some(3)
        } else {
            None
        };
        if let Some(kind) = filter {
            self.skip_space();
            let start = self.position;
            let value = self.string()?;
            let regex = |value: &str| {
                Regex::new(value).map_err(|error| ParseError {
                    position: start,
                    message: format!("invalid regex {value:?}: {error}"),
                })
            };
            return Ok(Stage::Line(match kind {
                0 => LineFilter::Contains(value),
                1 => LineFilter::NotContains(value),
                2 => LineFilter::Regex(regex(&value)?),
                _ => LineFilter::NotRegex(regex(&value)?),
            }));
        }
        if self.eat("|") {
            self.skip_space();
            let start = self.position;
            let name = self.identifier()?;
            self.skip_space();
            if matches!(self.peek(), Some(b'=' | b'!')) {
                let op = self.match_op()?;
                self.skip_space();
                let value = self.string()?;
                let matcher = Matcher::new(&name, op, &value).map_err(|message| ParseError {
                    position: start,
                    message,
                })?;
                return Ok(Stage::Label(matcher));
            }
            self.position = start;
            return Err(self.error(format!(
                "unsupported pipeline stage `{name}`: vivace supports line filters (|=, !=, |~, !~) and label filters (| name=\"value\")"
            )));
        }
        Err(self
            .error("expected a line filter (|=, !=, |~, !~) or a label filter (| name=\"value\")"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Label;

    fn row(body: &str, labels: &[(&str, &str)]) -> LogRow {
        LogRow {
            body: body.into(),
            labels: labels.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
            trace_id: vec![0xab; 16],
            ..Default::default()
        }
    }

    #[test]
    fn selectors_and_line_filters() {
        let query = parse(r#"{service_name="api", env=~"prod|staging", team!="x"} |= "error" != "timeout" |~ "code=[45]\\d\\d""#).unwrap();
        assert_eq!(query.selector.len(), 3);
        assert_eq!(query.stages.len(), 3);
        let labels = [("service_name", "api"), ("env", "prod")];
        assert!(query.matches(&row("an error code=503", &labels)));
        assert!(!query.matches(&row("an error timeout code=503", &labels)));
        assert!(!query.matches(&row("an error code=200", &labels)));
        assert!(!query.matches(&row(
            "an error code=503",
            &[("service_name", "api"), ("env", "dev")]
        )));
        // Anchored label regex: "production" is not "prod".
        assert!(!query.matches(&row(
            "an error code=503",
            &[("service_name", "api"), ("env", "production")]
        )));
        assert_eq!(query.equal_label("service_name"), Some("api"));
    }

    #[test]
    fn not_regex_and_missing_labels() {
        let query = parse(r#"{app!~"a.*"} !~ `^debug`"#).unwrap();
        assert!(query.matches(&row("info line", &[])));
        assert!(!query.matches(&row("debug line", &[])));
        assert!(!query.matches(&row("info", &[("app", "abc")])));
    }

    #[test]
    fn trace_ids_are_searchable_and_hinted() {
        let hex_id = "abababababababababababababababab";
        let query = parse(&format!("{{service_name=\"a\"}} |= \"{hex_id}\"")).unwrap();
        assert!(query.matches(&row("no id in the body", &[("service_name", "a")])));
        assert_eq!(query.trace_id_hint(), Some([0xab; 16]));
        let query = parse(&format!("{{service_name=\"a\"}} | trace_id=\"{hex_id}\"")).unwrap();
        assert!(query.matches(&row("x", &[("service_name", "a")])));
        assert_eq!(query.trace_id_hint(), Some([0xab; 16]));
        let query = parse("{service_name=\"a\"} | trace_id=\"00\"").unwrap();
        assert!(!query.matches(&row("x", &[("service_name", "a")])));
    }

    #[test]
    fn errors_name_the_position() {
        for bad in [
            "",
            "service_name=\"a\"",
            "{service_name=\"a\"",
            "{service_name~\"a\"}",
            "{a=\"x\"} |= ",
            "{a=\"x\"} | json",
            "{a=~\"(\"}",
            "{a=\"x\"} |~ \"(\"",
            "{a=\"unterminated}",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(!error.message.is_empty(), "{bad}");
        }
        assert_eq!(parse("{a=\"x\"} | json").unwrap_err().position, 10);
    }

    #[test]
    fn push_label_strings() {
        let matchers = parse_selector(r#"{job="varlogs", level="error",}"#).unwrap();
        assert_eq!(matchers.len(), 2);
        assert!(parse_selector(r#"{job="x"} extra"#).is_err());
    }
}
