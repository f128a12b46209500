//! The binary operators of field expressions: what the AST holds and values compute.

/// Binary operators of field expressions. `In`, `NotIn`, `MatchAny` and `MatchNone` are
/// internal: only the `or_to_in` rewrite produces them, never the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `IN` (internal)
    In,
    /// `NOT IN` (internal)
    NotIn,
    /// `MATCH ANY` (internal)
    MatchAny,
    /// `MATCH NONE` (internal)
    MatchNone,
}

impl BinaryOp {
    /// The operator as written (or as Tempo prints the internal ones).
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Eq => "=",
            BinaryOp::Neq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Lte => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Gte => ">=",
            BinaryOp::Regex => "=~",
            BinaryOp::NotRegex => "!~",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
            BinaryOp::In => "IN",
            BinaryOp::NotIn => "NOT IN",
            BinaryOp::MatchAny => "MATCH ANY",
            BinaryOp::MatchNone => "MATCH NONE",
        }
    }

    /// The operator for a written symbol (the internal operators included).
    pub fn from_symbol(symbol: &str) -> Option<BinaryOp> {
        use BinaryOp::*;
        let all = [
            Add, Sub, Mul, Div, Mod, Pow, Eq, Neq, Lt, Lte, Gt, Gte, Regex, NotRegex, And, Or, In,
            NotIn, MatchAny, MatchNone,
        ];
        all.into_iter().find(|op| op.as_str() == symbol)
    }

    /// `+ - * / % ^`
    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Mod
                | BinaryOp::Pow
        )
    }

    /// `= != < <= > >=`
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::Neq
                | BinaryOp::Lt
                | BinaryOp::Lte
                | BinaryOp::Gt
                | BinaryOp::Gte
        )
    }

    /// Operators whose result is a boolean.
    pub fn is_boolean_result(self) -> bool {
        !self.is_arithmetic()
    }
}
