//! TraceQL: lexer, parser, syntax tree with Tempo's canonical strings, validation, and the
//! semantics of values and operators. No I/O; the evaluator and the search API build on it.
//!
//! ```text
//! parse(q) ──► Query ──► validate(&Query) ──► (evaluator)
//!                 └────► to_string(): Tempo's canonical form, which re-parses to the same tree
//! ```

pub mod ast;
pub mod lexer;
pub mod parser;
pub mod rewrite;
pub mod static_value;
pub mod validate;

pub use ast::*;
pub use parser::{parse, parse_identifier};
pub use static_value::{Kind, OpError, Static, StaticType, Status};
pub use validate::{validate, ValidateError};

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

/// Why a query was refused: it does not parse, or it parses but fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Syntax error.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Semantic error or unsupported construct.
    #[error(transparent)]
    Validate(#[from] ValidateError),
}

/// Parses and validates a query: what the search and metrics endpoints accept.
pub fn parse_and_validate(query: &str) -> Result<Query, QueryError> {
    let parsed = parse(query)?;
    validate(&parsed)?;
    Ok(parsed)
}
