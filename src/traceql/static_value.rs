//! Typed TraceQL values and the operations between them: equality, ordering, arithmetic,
//! comparison, regex matching and the internal array operators (`IN`, `MATCH ANY`, …).
//!
//! These are the semantics shared by constant folding in the parser and by the evaluator.

use std::cmp::Ordering;
use std::fmt;

use super::operator::BinaryOp;

/// Span status, as TraceQL spells it. The numeric codes are Tempo's (`error`=0, `ok`=1,
/// `unset`=2); an int compares equal to the status with that code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `error`
    Error,
    /// `ok`
    Ok,
    /// `unset`
    Unset,
}

impl Status {
    /// The keyword for this status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::Ok => "ok",
            Status::Unset => "unset",
        }
    }

    /// Tempo's numeric code for the status; ints compare equal to it.
    pub fn code(self) -> i64 {
        match self {
            Status::Error => 0,
            Status::Ok => 1,
            Status::Unset => 2,
        }
    }

    /// Parses a status keyword.
    pub fn from_keyword(keyword: &str) -> Option<Status> {
        match keyword {
            "error" => Some(Status::Error),
            "ok" => Some(Status::Ok),
            "unset" => Some(Status::Unset),
            _ => None,
        }
    }
}

/// Span kind, as TraceQL spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `unspecified`
    Unspecified,
    /// `internal`
    Internal,
    /// `server`
    Server,
    /// `client`
    Client,
    /// `producer`
    Producer,
    /// `consumer`
    Consumer,
}

impl Kind {
    /// The keyword for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        }
    }

    /// Parses a kind keyword.
    pub fn from_keyword(keyword: &str) -> Option<Kind> {
        match keyword {
            "unspecified" => Some(Kind::Unspecified),
            "internal" => Some(Kind::Internal),
            "server" => Some(Kind::Server),
            "client" => Some(Kind::Client),
            "producer" => Some(Kind::Producer),
            "consumer" => Some(Kind::Consumer),
            _ => None,
        }
    }
}

/// The type of a value, or `Attribute` when it is only known at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaticType {
    /// The absence of a value.
    Nil,
    /// i64
    Int,
    /// f64
    Float,
    /// UTF-8 string
    String,
    /// boolean
    Bool,
    /// i64 nanoseconds
    Duration,
    /// span status
    Status,
    /// span kind
    Kind,
    /// int[]
    IntArray,
    /// float[]
    FloatArray,
    /// string[]
    StringArray,
    /// bool[]
    BoolArray,
    /// An attribute: its type is whatever the span holds at run time.
    Attribute,
}

impl StaticType {
    /// Int, float and duration form one numeric family that may be mixed.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            StaticType::Int | StaticType::Float | StaticType::Duration
        )
    }

    /// True for the array types.
    pub fn is_array(self) -> bool {
        matches!(
            self,
            StaticType::IntArray
                | StaticType::FloatArray
                | StaticType::StringArray
                | StaticType::BoolArray
        )
    }

    /// The element type of an array type, or the type itself.
    pub fn element(self) -> StaticType {
        match self {
            StaticType::IntArray => StaticType::Int,
            StaticType::FloatArray => StaticType::Float,
            StaticType::StringArray => StaticType::String,
            StaticType::BoolArray => StaticType::Bool,
            other => other,
        }
    }

    /// Whether two known types may meet in a binary operation: same type, or both numeric.
    pub fn compatible(self, other: StaticType) -> bool {
        self == other || (self.is_numeric() && other.is_numeric())
    }

    /// Whether `op` is defined for operands of this type (§4.1 of the reference).
    pub fn allows(self, op: BinaryOp) -> bool {
        use BinaryOp::*;
        match self {
            StaticType::Int | StaticType::Float | StaticType::Duration => matches!(
                op,
                Add | Sub | Mul | Div | Mod | Pow | Eq | Neq | Lt | Lte | Gt | Gte
            ),
            StaticType::String => matches!(op, Eq | Neq | Lt | Lte | Gt | Gte | Regex | NotRegex),
            StaticType::Bool => matches!(op, Eq | Neq | And | Or),
            StaticType::Status | StaticType::Kind | StaticType::Nil => matches!(op, Eq | Neq),
            StaticType::IntArray
            | StaticType::FloatArray
            | StaticType::StringArray
            | StaticType::BoolArray => false,
            StaticType::Attribute => true,
        }
    }
}

impl fmt::Display for StaticType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            StaticType::Nil => "nil",
            StaticType::Int => "int",
            StaticType::Float => "float",
            StaticType::String => "string",
            StaticType::Bool => "bool",
            StaticType::Duration => "duration",
            StaticType::Status => "status",
            StaticType::Kind => "kind",
            StaticType::IntArray => "int[]",
            StaticType::FloatArray => "float[]",
            StaticType::StringArray => "string[]",
            StaticType::BoolArray => "bool[]",
            StaticType::Attribute => "attribute",
        };
        f.write_str(name)
    }
}

/// A typed TraceQL value: a literal in a query or a value read from a span.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    /// The absence of a value (a missing attribute, or the `nil` literal).
    Nil,
    /// i64
    Int(i64),
    /// f64
    Float(f64),
    /// string
    String(String),
    /// boolean
    Bool(bool),
    /// nanoseconds
    Duration(i64),
    /// span status
    Status(Status),
    /// span kind
    Kind(Kind),
    /// int[]; an empty array and Go's nil slice are the same value here.
    IntArray(Vec<i64>),
    /// float[]
    FloatArray(Vec<f64>),
    /// string[]
    StringArray(Vec<String>),
    /// bool[]
    BoolArray(Vec<bool>),
}

impl Static {
    /// The same value, floats compared by their bits: what tells `by()` groups apart (two
    /// values are one group exactly when they print alike).
    pub fn identical(&self, other: &Static) -> bool {
        match (self, other) {
            (Static::Float(a), Static::Float(b)) => a.to_bits() == b.to_bits(),
            (Static::FloatArray(a), Static::FloatArray(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            _ => self == other,
        }
    }

    /// Hashes the value consistently with [`identical`](Self::identical).
    pub fn hash_identity<H: std::hash::Hasher>(&self, state: &mut H) {
        use std::hash::Hash;
        std::mem::discriminant(self).hash(state);
        match self {
            Static::Nil => {}
            Static::Int(v) | Static::Duration(v) => v.hash(state),
            Static::Float(v) => v.to_bits().hash(state),
            Static::String(v) => v.hash(state),
            Static::Bool(v) => v.hash(state),
            Static::Status(v) => v.hash(state),
            Static::Kind(v) => v.hash(state),
            Static::IntArray(v) => v.hash(state),
            Static::FloatArray(v) => v.iter().for_each(|x| x.to_bits().hash(state)),
            Static::StringArray(v) => v.hash(state),
            Static::BoolArray(v) => v.hash(state),
        }
    }
}

/// A failure while computing an operation on values (an evaluation error, not a mismatch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// Integer `/` or `%` by zero.
    #[error("integer division by zero")]
    DivisionByZero,
    /// Arithmetic with an array operand.
    #[error("arithmetic on an array operand is not supported")]
    ArrayArithmetic,
    /// `IN`-style operators with the array on the left.
    #[error("array operators require array on the right side")]
    ArrayOnLeft,
    /// Array against array, or scalar against scalar, in an array operator.
    #[error("array operators must consist of a scalar and an array operand")]
    ArrayOperands,
    /// `!` on a non-boolean value, `-` on a non-numeric value.
    #[error("unary {op} is not defined for {operand}")]
    UnaryType {
        /// the operator
        op: &'static str,
        /// the operand's type
        operand: StaticType,
    },
    /// A regular expression that does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    Regex {
        /// the pattern as written
        pattern: String,
        /// why it failed
        reason: String,
    },
}

/// Compiles a TraceQL regex: RE2 syntax, fully anchored, `.` also matches newlines.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, OpError> {
    // Anchoring with a non-capturing group keeps alternations inside the anchors:
    // `a|b` must mean `^(a|b)$`, not `^a|b$`.
    let anchored = format!("^(?s:{pattern})$");
    regex::Regex::new(&anchored).map_err(|error| OpError::Regex {
        pattern: pattern.to_string(),
        reason: error
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string(),
    })
}

impl Static {
    /// This value's type.
    pub fn static_type(&self) -> StaticType {
        match self {
            Static::Nil => StaticType::Nil,
            Static::Int(_) => StaticType::Int,
            Static::Float(_) => StaticType::Float,
            Static::String(_) => StaticType::String,
            Static::Bool(_) => StaticType::Bool,
            Static::Duration(_) => StaticType::Duration,
            Static::Status(_) => StaticType::Status,
            Static::Kind(_) => StaticType::Kind,
            Static::IntArray(_) => StaticType::IntArray,
            Static::FloatArray(_) => StaticType::FloatArray,
            Static::StringArray(_) => StaticType::StringArray,
            Static::BoolArray(_) => StaticType::BoolArray,
        }
    }

    /// The value as f64 when it is numeric (durations in nanoseconds).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Static::Int(value) => Some(*value as f64),
            Static::Float(value) => Some(*value),
            Static::Duration(value) => Some(*value as f64),
            _ => None,
        }
    }

    fn is_array(&self) -> bool {
        self.static_type().is_array()
    }

    /// Value equality. Nil never equals anything (itself included); numeric types compare by
    /// value; an int equals the status with that code; arrays compare element-wise.
    pub fn equals(&self, other: &Static) -> bool {
        match (self, other) {
            (Static::Nil, _) | (_, Static::Nil) => false,
            (Static::Int(a), Static::Int(b)) | (Static::Duration(a), Static::Duration(b)) => a == b,
            (Static::Int(a), Static::Duration(b)) | (Static::Duration(a), Static::Int(b)) => a == b,
            (Static::Status(status), Static::Int(code))
            | (Static::Int(code), Static::Status(status)) => status.code() == *code,
            (Static::String(a), Static::String(b)) => a == b,
            (Static::Bool(a), Static::Bool(b)) => a == b,
            (Static::Status(a), Static::Status(b)) => a == b,
            (Static::Kind(a), Static::Kind(b)) => a == b,
            (Static::IntArray(a), Static::IntArray(b)) => a == b,
            (Static::FloatArray(a), Static::FloatArray(b)) => a == b,
            (Static::StringArray(a), Static::StringArray(b)) => a == b,
            (Static::BoolArray(a), Static::BoolArray(b)) => a == b,
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        }
    }

    /// Value inequality: false whenever either side is nil (a missing attribute makes both
    /// `=` and `!=` false), otherwise the negation of [`Static::equals`].
    pub fn not_equals(&self, other: &Static) -> bool {
        if matches!(self, Static::Nil) || matches!(other, Static::Nil) {
            return false;
        }
        !self.equals(other)
    }

    /// Ordering used by `min`, `max` and `by()`: numeric by value, strings byte-wise, `false <
    /// true`, arrays element-wise then by length. `None` when the types are not comparable.
    pub fn compare(&self, other: &Static) -> Option<Ordering> {
        match (self, other) {
            (Static::Int(a), Static::Int(b)) | (Static::Duration(a), Static::Duration(b)) => {
                Some(a.cmp(b))
            }
            (Static::Int(a), Static::Duration(b)) | (Static::Duration(a), Static::Int(b)) => {
                Some(a.cmp(b))
            }
            (Static::String(a), Static::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Static::Bool(a), Static::Bool(b)) => Some(a.cmp(b)),
            (Static::IntArray(a), Static::IntArray(b)) => Some(a.cmp(b)),
            (Static::StringArray(a), Static::StringArray(b)) => Some(a.cmp(b)),
            (Static::BoolArray(a), Static::BoolArray(b)) => Some(a.cmp(b)),
            (Static::FloatArray(a), Static::FloatArray(b)) => {
                for (x, y) in a.iter().zip(b.iter()) {
                    match x.partial_cmp(y) {
                        Some(Ordering::Equal) => continue,
                        other => return other,
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => None,
            },
        }
    }

    /// Applies unary `-`: numeric operands keep their type.
    pub fn negate(&self) -> Result<Static, OpError> {
        match self {
            Static::Int(value) => Ok(Static::Int(value.wrapping_neg())),
            Static::Float(value) => Ok(Static::Float(-value)),
            Static::Duration(value) => Ok(Static::Duration(value.wrapping_neg())),
            other => Err(OpError::UnaryType {
                op: "-",
                operand: other.static_type(),
            }),
        }
    }

    /// Applies unary `!`: only booleans. `!` on a missing attribute is an error (Tempo).
    pub fn not(&self) -> Result<Static, OpError> {
        match self {
            Static::Bool(value) => Ok(Static::Bool(!value)),
            other => Err(OpError::UnaryType {
                op: "!",
                operand: other.static_type(),
            }),
        }
    }

    /// Applies a binary operator to two values.
    ///
    /// Mismatched types give `false` for comparisons and nil for arithmetic, never an error:
    /// at run time a span whose attribute has an unexpected type simply does not match.
    /// Errors are reserved for what Tempo reports as evaluation errors (integer division by
    /// zero, arithmetic on arrays, misuse of the array operators, bad regexes).
    pub fn binary_op(op: BinaryOp, lhs: &Static, rhs: &Static) -> Result<Static, OpError> {
        use BinaryOp::*;
        match op {
            In | NotIn | MatchAny | MatchNone => return array_operator(op, lhs, rhs),
            _ => {}
        }
        if op.is_arithmetic() {
            if lhs.is_array() || rhs.is_array() {
                return Err(OpError::ArrayArithmetic);
            }
            return arithmetic(op, lhs, rhs);
        }
        if lhs.is_array() || rhs.is_array() {
            return array_comparison(op, lhs, rhs);
        }
        scalar_comparison(op, lhs, rhs).map(Static::Bool)
    }
}

fn arithmetic(op: BinaryOp, lhs: &Static, rhs: &Static) -> Result<Static, OpError> {
    use BinaryOp::*;
    if let (Static::Int(a), Static::Int(b)) = (lhs, rhs) {
        let (a, b) = (*a, *b);
        return match op {
            Add => Ok(Static::Int(a.wrapping_add(b))),
            Sub => Ok(Static::Int(a.wrapping_sub(b))),
            Mul => Ok(Static::Int(a.wrapping_mul(b))),
            Div if b == 0 => Err(OpError::DivisionByZero),
            Div => Ok(Static::Int(a.wrapping_div(b))),
            Mod if b == 0 => Err(OpError::DivisionByZero),
            Mod => Ok(Static::Int(a.wrapping_rem(b))),
            // Decision: Tempo computes int ^ int as rhs^lhs (its operands are swapped when
            // calling its power helper). That is a defect no query relies on (its tests only
            // use symmetric cases), so vivace computes the mathematical lhs^rhs.
            Pow => Ok(Static::Int(int_pow(a, b))),
            _ => Ok(Static::Nil),
        };
    }
    let (Some(a), Some(b)) = (lhs.as_f64(), rhs.as_f64()) else {
        return Ok(Static::Nil);
    };
    let value = match op {
        Add => a + b,
        Sub => a - b,
        Mul => a * b,
        Div => a / b,
        Mod => a % b,
        Pow => a.powf(b),
        _ => return Ok(Static::Nil),
    };
    Ok(Static::Float(value))
}

/// Integer power with wrapping; a negative exponent truncates toward zero like Go's
/// float-free integer maths would (1 for base ±1, else 0).
fn int_pow(base: i64, exponent: i64) -> i64 {
    if exponent < 0 {
        return match base {
            1 => 1,
            -1 if exponent % 2 == 0 => 1,
            -1 => -1,
            _ => 0,
        };
    }
    let mut result: i64 = 1;
    let mut factor = base;
    let mut remaining = exponent as u64;
    while remaining > 0 {
        if remaining & 1 == 1 {
            result = result.wrapping_mul(factor);
        }
        factor = factor.wrapping_mul(factor);
        remaining >>= 1;
    }
    result
}

fn regex_matches(value: &str, pattern: &str) -> Result<bool, OpError> {
    Ok(compile_regex(pattern)?.is_match(value))
}

fn scalar_comparison(op: BinaryOp, lhs: &Static, rhs: &Static) -> Result<bool, OpError> {
    use BinaryOp::*;
    let (left_type, right_type) = (lhs.static_type(), rhs.static_type());
    match op {
        Eq => Ok(lhs.equals(rhs)),
        Neq => Ok(lhs.not_equals(rhs)),
        Regex | NotRegex => {
            let (Static::String(value), Static::String(pattern)) = (lhs, rhs) else {
                return Ok(false);
            };
            let matched = regex_matches(value, pattern)?;
            Ok(if op == Regex { matched } else { !matched })
        }
        And | Or => {
            let (Static::Bool(a), Static::Bool(b)) = (lhs, rhs) else {
                return Ok(false);
            };
            Ok(if op == And { *a && *b } else { *a || *b })
        }
        Lt | Lte | Gt | Gte => {
            // Ordering is only defined for numbers and strings (§4.1); bools, status and kind
            // have no `<`.
            let orderable = (left_type.is_numeric() && right_type.is_numeric())
                || (left_type == StaticType::String && right_type == StaticType::String);
            if !orderable {
                return Ok(false);
            }
            let Some(ordering) = lhs.compare(rhs) else {
                return Ok(false);
            };
            Ok(match op {
                Lt => ordering == Ordering::Less,
                Lte => ordering != Ordering::Greater,
                Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            })
        }
        _ => Ok(false),
    }
}

fn array_elements(array: &Static) -> Vec<Static> {
    match array {
        Static::IntArray(values) => values.iter().map(|v| Static::Int(*v)).collect(),
        Static::FloatArray(values) => values.iter().map(|v| Static::Float(*v)).collect(),
        Static::StringArray(values) => values.iter().map(|v| Static::String(v.clone())).collect(),
        Static::BoolArray(values) => values.iter().map(|v| Static::Bool(*v)).collect(),
        _ => Vec::new(),
    }
}

/// `=`, `!=`, `<`, `=~`, … between a scalar and an array: positive operators hold when any
/// element satisfies them, negative ones (`!=`, `!~`) only when every element passes.
fn array_comparison(op: BinaryOp, lhs: &Static, rhs: &Static) -> Result<Static, OpError> {
    use BinaryOp::*;
    if lhs.is_array() == rhs.is_array() {
        return Err(OpError::ArrayOperands);
    }
    let array_on_left = lhs.is_array();
    let (array, scalar) = if array_on_left {
        (lhs, rhs)
    } else {
        (rhs, lhs)
    };
    let elements = array_elements(array);
    let check = |element: &Static, op: BinaryOp| -> Result<bool, OpError> {
        // Keep the operands in their written order so `<` and `=~` keep their meaning:
        // for `=~` the pattern is always the right-hand operand.
        if array_on_left {
            scalar_comparison(op, element, scalar)
        } else {
            scalar_comparison(op, scalar, element)
        }
    };
    let result = match op {
        Neq => {
            let mut all = true;
            for element in &elements {
                all &= check(element, Neq)?;
            }
            all && !matches!(scalar, Static::Nil)
        }
        NotRegex => {
            let mut none_matched = true;
            for element in &elements {
                if check(element, Regex)? {
                    none_matched = false;
                }
            }
            none_matched && matches!(scalar, Static::String(_))
        }
        _ => {
            let mut any = false;
            for element in &elements {
                if check(element, op)? {
                    any = true;
                    break;
                }
            }
            any
        }
    };
    Ok(Static::Bool(result))
}

/// The internal operators produced by the `or_to_in` rewrite: the array is always the
/// right-hand operand.
fn array_operator(op: BinaryOp, lhs: &Static, rhs: &Static) -> Result<Static, OpError> {
    use BinaryOp::*;
    if lhs.is_array() && rhs.is_array() {
        return Err(OpError::ArrayOperands);
    }
    if lhs.is_array() {
        return Err(OpError::ArrayOnLeft);
    }
    if !rhs.is_array() {
        return Err(OpError::ArrayOperands);
    }
    let elements = array_elements(rhs);
    let result = match op {
        In => elements.iter().any(|element| lhs.equals(element)),
        NotIn => !matches!(lhs, Static::Nil) && elements.iter().all(|element| !lhs.equals(element)),
        MatchAny | MatchNone => {
            let Static::String(value) = lhs else {
                return Ok(Static::Bool(false));
            };
            let mut any = false;
            for element in &elements {
                if let Static::String(pattern) = element {
                    if regex_matches(value, pattern)? {
                        any = true;
                        break;
                    }
                }
            }
            let all_strings = matches!(rhs, Static::StringArray(_));
            if op == MatchAny {
                any
            } else {
                all_strings && !any
            }
        }
        _ => false,
    };
    Ok(Static::Bool(result))
}

/// Formats nanoseconds the way Go's `time.Duration.String` does (`1h15m30.5s`, `100ms`, `1µs`,
/// `0s`), which is the form Tempo's canonical strings use.
pub fn format_go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let negative = nanos < 0;
    let magnitude = nanos.unsigned_abs();
    let mut out = String::new();
    if magnitude < 1_000_000_000 {
        // Below one second Go picks the largest unit that keeps the integer part non-zero.
        let (unit, scale) = if magnitude < 1_000 {
            ("ns", 1u64)
        } else if magnitude < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&format_fraction(magnitude, scale));
        out.push_str(unit);
    } else {
        let hours = magnitude / 3_600_000_000_000;
        let minutes = (magnitude / 60_000_000_000) % 60;
        let seconds_nanos = magnitude % 60_000_000_000;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        if hours > 0 || minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&format_fraction(seconds_nanos, 1_000_000_000));
        out.push('s');
    }
    if negative {
        format!("-{out}")
    } else {
        out
    }
}

/// `value / scale` as a decimal with trailing zeros trimmed.
fn format_fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Parses a TraceQL duration literal (`100ms`, `1.5m`, `1h15m30.918273645s`, `1d`, `2w`, `1y`)
/// into nanoseconds. Like Tempo, Prometheus syntax (integers, units in descending order,
/// including `d`, `w`, `y`) is tried first, then Go's syntax (fractions allowed, `ns` to `h`).
pub fn parse_duration(text: &str) -> Option<i64> {
    parse_prometheus_duration(text).or_else(|| parse_go_duration(text))
}

fn split_duration_segments(text: &str) -> Option<Vec<(&str, &str)>> {
    let mut segments = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
            .map(|(index, _)| index)
            .unwrap_or(rest.len());
        let (number, after_number) = rest.split_at(number_len);
        let unit_len = after_number
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(index, _)| index)
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        if number.is_empty() || unit.is_empty() {
            return None;
        }
        segments.push((number, unit));
        rest = after_unit;
    }
    if segments.is_empty() {
        None
    } else {
        Some(segments)
    }
}

fn parse_prometheus_duration(text: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000_000_000),
        ("w", 7 * 24 * 3_600_000_000_000),
        ("d", 24 * 3_600_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    let segments = split_duration_segments(text)?;
    let mut next_allowed = 0;
    let mut total: i64 = 0;
    for (number, unit) in segments {
        if !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let position = UNITS[next_allowed..]
            .iter()
            .position(|(name, _)| *name == unit)?
            + next_allowed;
        next_allowed = position + 1;
        let value: i64 = number.parse().ok()?;
        total = total.checked_add(value.checked_mul(UNITS[position].1)?)?;
    }
    Some(total)
}

fn parse_go_duration(text: &str) -> Option<i64> {
    let segments = split_duration_segments(text)?;
    // Exact integer arithmetic, so `30.918273645s` is exactly 30918273645ns and values near
    // the i64 limit keep every digit.
    let mut total: i128 = 0;
    for (number, unit) in segments {
        let scale: i128 = match unit {
            "ns" => 1,
            // Only the micro sign U+00B5 and `us` are accepted (reference §2).
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        total = total.checked_add(exact_scaled(number, scale)?)?;
    }
    i64::try_from(total).ok()
}

/// `number × scale` for a decimal `number` (fraction digits beyond nanoseconds truncate).
fn exact_scaled(number: &str, scale: i128) -> Option<i128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let whole_value: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut result = whole_value.checked_mul(scale)?;
    if !fraction.is_empty() {
        let digits = fraction.len().min(18);
        let fraction_value: i128 = fraction[..digits].parse().ok()?;
        result = result.checked_add(fraction_value * scale / 10i128.pow(digits as u32))?;
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_both_syntaxes() {
        assert_eq!(
            parse_duration("1h15m30.918273645s"),
            Some(4_530_918_273_645)
        );
        assert_eq!(parse_duration("1µs"), Some(1_000));
        assert_eq!(parse_duration("1y"), Some(31_536_000_000_000_000));
        assert_eq!(parse_duration("1.5m"), Some(90_000_000_000));
        assert_eq!(parse_duration("1d2h"), Some(93_600_000_000_000));
        assert_eq!(parse_duration("1t"), None);
        assert_eq!(parse_duration("1.5d"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("2562047h47m16.854775807s"), Some(i64::MAX));
        assert_eq!(parse_duration("2562047h47m16.854775808s"), None);
    }

    #[test]
    fn durations_format_like_go() {
        assert_eq!(format_go_duration(3 * 3_600_000_000_000), "3h0m0s");
        assert_eq!(format_go_duration(90_000_000_000), "1m30s");
        assert_eq!(format_go_duration(100_000_000), "100ms");
        assert_eq!(format_go_duration(1_000), "1µs");
        assert_eq!(format_go_duration(1_500), "1.5µs");
        assert_eq!(format_go_duration(-2_000_000_000), "-2s");
        assert_eq!(format_go_duration(4_530_918_273_645), "1h15m30.918273645s");
        assert_eq!(format_go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn int_arithmetic_truncates_and_errors_on_zero() {
        let one = Static::Int(1);
        let ten = Static::Int(10);
        assert_eq!(
            Static::binary_op(BinaryOp::Div, &one, &ten),
            Ok(Static::Int(0))
        );
        assert_eq!(
            Static::binary_op(BinaryOp::Div, &one, &Static::Int(0)),
            Err(OpError::DivisionByZero)
        );
        assert_eq!(
            Static::binary_op(BinaryOp::Pow, &Static::Int(2), &Static::Int(3)),
            Ok(Static::Int(8))
        );
    }

    #[test]
    fn regexes_are_fully_anchored_and_dot_matches_newline() {
        let matches = |value: &str, pattern: &str| {
            Static::binary_op(
                BinaryOp::Regex,
                &Static::String(value.into()),
                &Static::String(pattern.into()),
            )
        };
        assert_eq!(matches("foobar", "bar"), Ok(Static::Bool(false)));
        assert_eq!(matches("bar", "bar"), Ok(Static::Bool(true)));
        assert_eq!(matches("a\nb", "a.b"), Ok(Static::Bool(true)));
        assert_eq!(matches("b", "a|b"), Ok(Static::Bool(true)));
    }
}
