//! A trace-level pre-filter derived from a query, for readers that can skip stored traces
//! without decoding them (the vParquet4 pushdown in `tempodb::vparquet4::pushdown`).
//!
//! The filter is a *necessary* condition: every trace the query can match passes it, while
//! traces that pass may still fail the query. It is built from the first spanset stage only
//! (every later stage works on that stage's spans), and each part it cannot prove keeps
//! everything: `||` between an understood and a non-understood side, negated structural
//! operators, `!`, `nil` tests, arithmetic, `!=`, trace-level values computed differently by
//! the evaluator than by the block writer (`traceDuration`), and scopes without columns
//! (events, links, instrumentation).
//!
//! Conditions are tested "somewhere in the trace": `{ A && B }` becomes "a span satisfies A
//! and a span satisfies B", which every matching trace satisfies, whichever span it is.

use std::collections::BTreeSet;

use super::ast::*;
use super::static_value::{compile_regex, Kind, Static, Status};

/// A necessary condition on a trace.
#[derive(Debug, Clone)]
pub enum TraceFilter {
    /// Keeps every trace.
    True,
    /// All of these hold.
    And(Vec<TraceFilter>),
    /// At least one of these holds.
    Or(Vec<TraceFilter>),
    /// Some value of `field` in the trace passes `test`.
    Cond(Condition),
}

/// One field tested against a literal somewhere in a trace.
#[derive(Debug, Clone)]
pub struct Condition {
    /// What is read.
    pub field: Field,
    /// What a value must satisfy.
    pub test: ValueTest,
}

/// The fields a pre-filter can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The span name.
    SpanName,
    /// The span kind code (OTLP numbering).
    SpanKind,
    /// The span status code (OTLP numbering).
    SpanStatus,
    /// The span duration in nanoseconds.
    SpanDuration,
    /// A span attribute.
    SpanAttribute(String),
    /// A resource attribute.
    ResourceAttribute(String),
    /// The trace ID (16 bytes).
    TraceId,
}

/// A test on one value.
#[derive(Debug, Clone)]
pub enum ValueTest {
    /// A string equal to one of these (one for `=`, several for `in`).
    StrIn(BTreeSet<String>),
    /// A string matching this fully anchored regular expression.
    StrRegex(regex::Regex),
    /// A number compared with a literal, as [`Static::compare`] compares them.
    Num(NumOp, Number),
    /// A boolean equal to this.
    Bool(bool),
    /// Raw bytes equal to one of these (trace IDs).
    BytesIn(std::sync::Arc<std::collections::HashSet<Vec<u8>>>),
}

/// A numeric comparison `value OP literal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// A numeric literal: integers (and durations, in ns) compare exactly with integers, floats
/// compare as `f64` (the evaluator's rule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl NumOp {
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            NumOp::Eq => ordering == Equal,
            NumOp::Lt => ordering == Less,
            NumOp::Lte => ordering != Greater,
            NumOp::Gt => ordering == Greater,
            NumOp::Gte => ordering != Less,
        }
    }

    /// `literal OP value` rewritten as `value OP' literal`.
    fn flipped(self) -> NumOp {
        match self {
            NumOp::Eq => NumOp::Eq,
            NumOp::Lt => NumOp::Gt,
            NumOp::Lte => NumOp::Gte,
            NumOp::Gt => NumOp::Lt,
            NumOp::Gte => NumOp::Lte,
        }
    }
}

impl ValueTest {
    /// Whether an integer value passes.
    pub fn int(&self, value: i64) -> bool {
        match self {
            ValueTest::Num(op, Number::Int(literal)) => op.holds(value.cmp(literal)),
            ValueTest::Num(op, Number::Float(literal)) => (value as f64)
                .partial_cmp(literal)
                .is_some_and(|ordering| op.holds(ordering)),
            _ => false,
        }
    }

    /// Whether a float value passes.
    pub fn float(&self, value: f64) -> bool {
        let literal = match self {
            ValueTest::Num(_, Number::Int(literal)) => *literal as f64,
            ValueTest::Num(_, Number::Float(literal)) => *literal,
            _ => return false,
        };
        let ValueTest::Num(op, _) = self else {
            return false;
        };
        value
            .partial_cmp(&literal)
            .is_some_and(|ordering| op.holds(ordering))
    }

    /// Whether a string (or byte) value passes.
    pub fn bytes(&self, value: &[u8]) -> bool {
        match self {
            ValueTest::StrIn(wanted) => std::str::from_utf8(value)
                .map(|text| wanted.contains(text))
                // Readers replace invalid UTF-8, so compare the way the evaluator will see it.
                .unwrap_or_else(|_| wanted.contains(String::from_utf8_lossy(value).as_ref())),
            ValueTest::StrRegex(regex) => regex.is_match(&String::from_utf8_lossy(value)),
            ValueTest::BytesIn(wanted) => wanted.contains(value),
            _ => false,
        }
    }

    /// Whether a boolean value passes.
    pub fn boolean(&self, value: bool) -> bool {
        matches!(self, ValueTest::Bool(wanted) if *wanted == value)
    }

    /// Whether some integer in `[min, max]` passes (column statistics).
    pub fn int_range(&self, min: i64, max: i64) -> bool {
        match self {
            ValueTest::Num(op, Number::Int(literal)) => match op {
                NumOp::Eq => min <= *literal && *literal <= max,
                NumOp::Lt => min < *literal,
                NumOp::Lte => min <= *literal,
                NumOp::Gt => max > *literal,
                NumOp::Gte => max >= *literal,
            },
            ValueTest::Num(..) => self.float_range(min as f64, max as f64),
            _ => true,
        }
    }

    /// Whether some float in `[min, max]` passes (column statistics).
    pub fn float_range(&self, min: f64, max: f64) -> bool {
        let (op, literal) = match self {
            ValueTest::Num(op, Number::Int(literal)) => (*op, *literal as f64),
            ValueTest::Num(op, Number::Float(literal)) => (*op, *literal),
            _ => return true,
        };
        if min.is_nan() || max.is_nan() || literal.is_nan() {
            return true;
        }
        match op {
            NumOp::Eq => min <= literal && literal <= max,
            NumOp::Lt => min < literal,
            NumOp::Lte => min <= literal,
            NumOp::Gt => max > literal,
            NumOp::Gte => max >= literal,
        }
    }

    /// Whether some byte string in `[min, max]` (byte-wise order) may pass; regular
    /// expressions are not bounded by a range, so they always may.
    pub fn bytes_range(&self, min: &[u8], max: &[u8]) -> bool {
        match self {
            ValueTest::StrIn(wanted) => wanted
                .iter()
                .any(|value| min <= value.as_bytes() && value.as_bytes() <= max),
            ValueTest::BytesIn(wanted) => wanted
                .iter()
                .any(|value| min <= value.as_slice() && value.as_slice() <= max),
            _ => true,
        }
    }
}

/// Which optional parts of spans a query reads: a block read may leave the others'
/// columns (generic attribute lists, events, links) undecoded. Well-known columns and
/// dedicated attribute columns are always read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Span attributes outside the well-known and dedicated columns.
    pub span_attributes: bool,
    /// Resource attributes outside the well-known and dedicated columns.
    pub resource_attributes: bool,
    /// Instrumentation scope attributes.
    pub scope_attributes: bool,
    /// Span events.
    pub events: bool,
    /// Span links.
    pub links: bool,
}

impl Needs {
    /// Everything: what a read that returns whole traces needs.
    pub const ALL: Needs = Needs {
        span_attributes: true,
        resource_attributes: true,
        scope_attributes: true,
        events: true,
        links: true,
    };

    /// Nothing optional: intrinsics and well-known columns only.
    pub const NONE: Needs = Needs {
        span_attributes: false,
        resource_attributes: false,
        scope_attributes: false,
        events: false,
        links: false,
    };

    /// What reading `attributes` (as a query references them) needs.
    pub fn of_attributes<'a>(attributes: impl IntoIterator<Item = &'a Attribute>) -> Needs {
        let mut needs = Needs::NONE;
        for attribute in attributes {
            match attribute.intrinsic {
                Some(Intrinsic::EventName | Intrinsic::EventTimeSinceStart) => needs.events = true,
                Some(Intrinsic::LinkTraceId | Intrinsic::LinkSpanId) => needs.links = true,
                Some(_) => {}
                None => match attribute.scope {
                    AttributeScope::None => {
                        needs.span_attributes = true;
                        needs.resource_attributes = true;
                    }
                    AttributeScope::Span => needs.span_attributes = true,
                    // Even service.name: an empty or non-string one sits in the generic list.
                    AttributeScope::Resource => needs.resource_attributes = true,
                    AttributeScope::Event => needs.events = true,
                    AttributeScope::Link => needs.links = true,
                    AttributeScope::Instrumentation => needs.scope_attributes = true,
                },
            }
        }
        needs
    }

    /// Needs of either.
    pub fn or(self, other: Needs) -> Needs {
        Needs {
            span_attributes: self.span_attributes || other.span_attributes,
            resource_attributes: self.resource_attributes || other.resource_attributes,
            scope_attributes: self.scope_attributes || other.scope_attributes,
            events: self.events || other.events,
            links: self.links || other.links,
        }
    }
}

impl TraceFilter {
    /// The pre-filter of a search or metrics query (their first spanset stage).
    pub fn from_query(query: &Query) -> TraceFilter {
        match &query.root {
            RootExpr::Pipeline(pipeline) => TraceFilter::from_pipeline(pipeline),
            RootExpr::Metrics(metrics) => TraceFilter::from_metrics(metrics),
        }
    }

    /// The pre-filter of a metrics query: a trace feeds some series only if it passes the
    /// first stage of one of the pipelines.
    pub fn from_metrics(metrics: &MetricsExpr) -> TraceFilter {
        match metrics {
            MetricsExpr::Query { pipeline, .. } => TraceFilter::from_pipeline(pipeline),
            MetricsExpr::Math { lhs, rhs, .. } => or(
                TraceFilter::from_metrics(lhs),
                TraceFilter::from_metrics(rhs),
            ),
        }
    }

    /// The pre-filter of a spanset pipeline.
    pub fn from_pipeline(pipeline: &Pipeline) -> TraceFilter {
        match pipeline.stages.first() {
            Some(Stage::Spanset(expr)) => from_spanset(expr),
            _ => TraceFilter::True,
        }
    }

    /// The pre-filter of traces with a span satisfying `condition` (a tag filter).
    pub fn from_span_condition(condition: &FieldExpr) -> TraceFilter {
        from_spanset(&SpansetExpr::Filter(condition.clone()))
    }

    /// Whether this keeps every trace.
    pub fn is_true(&self) -> bool {
        matches!(self, TraceFilter::True)
    }

    /// This filter, or `extra` (to always keep some traces, e.g. those with pieces in memory).
    pub fn or(self, extra: TraceFilter) -> TraceFilter {
        or(self, extra)
    }
}

fn and(lhs: TraceFilter, rhs: TraceFilter) -> TraceFilter {
    match (lhs, rhs) {
        (TraceFilter::True, other) | (other, TraceFilter::True) => other,
        (TraceFilter::And(mut left), TraceFilter::And(right)) => {
            left.extend(right);
            TraceFilter::And(left)
        }
        (TraceFilter::And(mut left), other) | (other, TraceFilter::And(mut left)) => {
            left.push(other);
            TraceFilter::And(left)
        }
        (left, right) => TraceFilter::And(vec![left, right]),
    }
}

fn or(lhs: TraceFilter, rhs: TraceFilter) -> TraceFilter {
    match (lhs, rhs) {
        (TraceFilter::True, _) | (_, TraceFilter::True) => TraceFilter::True,
        (TraceFilter::Or(mut left), TraceFilter::Or(right)) => {
            left.extend(right);
            TraceFilter::Or(left)
        }
        (TraceFilter::Or(mut left), other) | (other, TraceFilter::Or(mut left)) => {
            left.push(other);
            TraceFilter::Or(left)
        }
        (left, right) => TraceFilter::Or(vec![left, right]),
    }
}

fn from_spanset(expr: &SpansetExpr) -> TraceFilter {
    match expr {
        SpansetExpr::Filter(field) => {
            if may_fail(field) {
                TraceFilter::True
            } else {
                from_field(field)
            }
        }
        SpansetExpr::Op { op, lhs, rhs } => match op {
            SpansetOp::Or => or(from_spanset(lhs), from_spanset(rhs)),
            // Both sides must have matched spans for any of these to return spans.
            SpansetOp::And
            | SpansetOp::Child
            | SpansetOp::Parent
            | SpansetOp::Descendant
            | SpansetOp::Ancestor
            | SpansetOp::Sibling
            | SpansetOp::UnionChild
            | SpansetOp::UnionParent
            | SpansetOp::UnionDescendant
            | SpansetOp::UnionAncestor
            | SpansetOp::UnionSibling => and(from_spanset(lhs), from_spanset(rhs)),
            // A negated relation can return spans with nothing on the other side.
            _ => TraceFilter::True,
        },
        SpansetExpr::Pipeline(_) => TraceFilter::True,
    }
}

/// Whether evaluating `field` on some span can be an error rather than `false`. A trace
/// whose evaluation fails must still fail the search, so such filters prune nothing.
fn may_fail(field: &FieldExpr) -> bool {
    match field {
        FieldExpr::Static(_) | FieldExpr::Attribute(_) => false,
        FieldExpr::Unary { op, expr } => {
            matches!(op, UnaryOp::Not | UnaryOp::Neg) || may_fail(expr)
        }
        FieldExpr::Binary { op, lhs, rhs } => {
            op.is_arithmetic()
                || matches!(
                    op,
                    BinaryOp::NotIn | BinaryOp::MatchAny | BinaryOp::MatchNone
                )
                || may_fail(lhs)
                || may_fail(rhs)
        }
    }
}

fn from_field(field: &FieldExpr) -> TraceFilter {
    let FieldExpr::Binary { op, lhs, rhs } = field else {
        return TraceFilter::True;
    };
    match op {
        BinaryOp::And => and(from_field(lhs), from_field(rhs)),
        BinaryOp::Or => or(from_field(lhs), from_field(rhs)),
        _ => match (lhs.as_ref(), rhs.as_ref()) {
            (FieldExpr::Attribute(attribute), FieldExpr::Static(literal)) => {
                comparison(attribute, *op, literal, false)
            }
            (FieldExpr::Static(literal), FieldExpr::Attribute(attribute)) => {
                comparison(attribute, *op, literal, true)
            }
            _ => TraceFilter::True,
        },
    }
}

/// `attribute OP literal` (or `literal OP attribute` when `flipped`).
fn comparison(attribute: &Attribute, op: BinaryOp, literal: &Static, flipped: bool) -> TraceFilter {
    if attribute.parent {
        return TraceFilter::True;
    }
    let condition = |field: Field, test: ValueTest| TraceFilter::Cond(Condition { field, test });
    match attribute.intrinsic {
        Some(Intrinsic::Status) => {
            return match (op, literal) {
                (BinaryOp::Eq, Static::Status(Status::Error)) => {
                    condition(Field::SpanStatus, ValueTest::Num(NumOp::Eq, Number::Int(2)))
                }
                (BinaryOp::Eq, Static::Status(Status::Ok)) => {
                    condition(Field::SpanStatus, ValueTest::Num(NumOp::Eq, Number::Int(1)))
                }
                (BinaryOp::Eq, Static::Int(code @ (1 | 2))) => condition(
                    Field::SpanStatus,
                    ValueTest::Num(NumOp::Eq, Number::Int(*code)),
                ),
                _ => TraceFilter::True,
            }
        }
        Some(Intrinsic::Kind) => {
            return match (op, literal) {
                (BinaryOp::Eq, Static::Kind(kind)) => match kind_code(*kind) {
                    Some(code) => condition(
                        Field::SpanKind,
                        ValueTest::Num(NumOp::Eq, Number::Int(code)),
                    ),
                    None => TraceFilter::True,
                },
                _ => TraceFilter::True,
            }
        }
        _ => {}
    }
    let Some(test) = value_test(op, literal, flipped) else {
        return TraceFilter::True;
    };
    match attribute.intrinsic {
        Some(intrinsic) => match (intrinsic, &test) {
            (Intrinsic::Name, ValueTest::StrIn(_) | ValueTest::StrRegex(_)) => {
                condition(Field::SpanName, test)
            }
            // The evaluator's root span may differ from the writer's RootSpanName, but it is
            // always some span of the trace.
            (Intrinsic::RootName, ValueTest::StrIn(_) | ValueTest::StrRegex(_)) => {
                condition(Field::SpanName, test)
            }
            (Intrinsic::RootServiceName, ValueTest::StrIn(_) | ValueTest::StrRegex(_)) => {
                condition(Field::ResourceAttribute("service.name".into()), test)
            }
            (Intrinsic::Duration, ValueTest::Num(..)) if !matches!(literal, Static::Status(_)) => {
                condition(Field::SpanDuration, test)
            }
            _ => TraceFilter::True,
        },
        None => {
            if matches!(literal, Static::Status(_) | Static::Kind(_)) {
                return TraceFilter::True;
            }
            let span = || condition(Field::SpanAttribute(attribute.name.clone()), test.clone());
            let resource = || {
                condition(
                    Field::ResourceAttribute(attribute.name.clone()),
                    test.clone(),
                )
            };
            match attribute.scope {
                AttributeScope::Span => span(),
                AttributeScope::Resource => resource(),
                // Unscoped: the span's value, else the resource's.
                AttributeScope::None => or(span(), resource()),
                _ => TraceFilter::True,
            }
        }
    }
}

/// Kind codes the evaluator maps one-to-one; `unspecified` also covers unknown codes.
fn kind_code(kind: Kind) -> Option<i64> {
    match kind {
        Kind::Internal => Some(1),
        Kind::Server => Some(2),
        Kind::Client => Some(3),
        Kind::Producer => Some(4),
        Kind::Consumer => Some(5),
        Kind::Unspecified => None,
    }
}

fn value_test(op: BinaryOp, literal: &Static, flipped: bool) -> Option<ValueTest> {
    let number = match literal {
        Static::Int(value) | Static::Duration(value) => Some(Number::Int(*value)),
        Static::Float(value) if !value.is_nan() => Some(Number::Float(*value)),
        _ => None,
    };
    let num_op = match op {
        BinaryOp::Eq => Some(NumOp::Eq),
        BinaryOp::Lt => Some(NumOp::Lt),
        BinaryOp::Lte => Some(NumOp::Lte),
        BinaryOp::Gt => Some(NumOp::Gt),
        BinaryOp::Gte => Some(NumOp::Gte),
        _ => None,
    }
    .map(|op| if flipped { op.flipped() } else { op });
    match (op, literal) {
        (BinaryOp::Eq, Static::String(text)) => {
            Some(ValueTest::StrIn(BTreeSet::from([text.clone()])))
        }
        (BinaryOp::Regex, Static::String(pattern)) if !flipped => {
            compile_regex(pattern).ok().map(ValueTest::StrRegex)
        }
        (BinaryOp::In, Static::StringArray(values)) if !flipped && !values.is_empty() => {
            Some(ValueTest::StrIn(values.iter().cloned().collect()))
        }
        (BinaryOp::Eq, Static::Bool(value)) => Some(ValueTest::Bool(*value)),
        (BinaryOp::Eq | BinaryOp::Lt | BinaryOp::Lte | BinaryOp::Gt | BinaryOp::Gte, _) => {
            Some(ValueTest::Num(num_op?, number?))
        }
        // Status and kind literals are handled by the caller.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traceql::parse;
    use crate::traceql::rewrite::apply_default_rewrites;

    fn filter(text: &str) -> TraceFilter {
        let mut query = parse(text).expect("query parses");
        apply_default_rewrites(&mut query);
        TraceFilter::from_query(&query)
    }

    /// A compact rendering to assert on.
    fn show(filter: &TraceFilter) -> String {
        match filter {
            TraceFilter::True => "true".into(),
            TraceFilter::And(parts) => format!(
                "and({})",
                parts.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            TraceFilter::Or(parts) => format!(
                "or({})",
                parts.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            TraceFilter::Cond(condition) => {
                let field = match &condition.field {
                    Field::SpanName => "name".to_string(),
                    Field::SpanKind => "kind".into(),
                    Field::SpanStatus => "status".into(),
                    Field::SpanDuration => "duration".into(),
                    Field::SpanAttribute(name) => format!("span.{name}"),
                    Field::ResourceAttribute(name) => format!("resource.{name}"),
                    Field::TraceId => "trace:id".into(),
                };
                let test = match &condition.test {
                    ValueTest::StrIn(values) => format!(
                        "in[{}]",
                        values.iter().cloned().collect::<Vec<_>>().join(",")
                    ),
                    ValueTest::StrRegex(regex) => format!("~{}", regex.as_str()),
                    ValueTest::Num(op, Number::Int(value)) => format!("{op:?} {value}"),
                    ValueTest::Num(op, Number::Float(value)) => format!("{op:?} {value}f"),
                    ValueTest::Bool(value) => format!("={value}"),
                    ValueTest::BytesIn(values) => format!("bytes[{}]", values.len()),
                };
                format!("{field} {test}")
            }
        }
    }

    #[test]
    fn conditions_that_prune() {
        assert_eq!(
            show(&filter(
                r#"{ span.http.status_code = 503 && resource.service.name = "payments" }"#
            )),
            "and(span.http.status_code Eq 503, resource.service.name in[payments])"
        );
        assert_eq!(show(&filter("{ duration > 2s }")), "duration Gt 2000000000");
        assert_eq!(show(&filter("{ 2s < duration }")), "duration Gt 2000000000");
        assert_eq!(
            show(&filter(
                r#"{ resource.service.name = "frontend" } >> { span.db.system = "postgresql" }"#
            )),
            "and(resource.service.name in[frontend], span.db.system in[postgresql])"
        );
        assert_eq!(
            show(&filter(
                r#"{ name =~ "GET.*" && status = error && kind = server }"#
            )),
            "and(name ~^(?s:GET.*)$, status Eq 2, kind Eq 2)"
        );
        assert_eq!(
            show(&filter(r#"{ .foo = 1.5 }"#)),
            "or(span.foo Eq 1.5f, resource.foo Eq 1.5f)"
        );
        assert_eq!(
            show(&filter(r#"{ rootServiceName = "a" } | count() > 2"#)),
            "resource.service.name in[a]"
        );
        // The default rewrites turn an or-chain of equalities into `in`.
        assert_eq!(
            show(&filter(
                r#"{ resource.service.name = "a" || resource.service.name = "b" }"#
            )),
            "resource.service.name in[a,b]"
        );
        assert_eq!(
            show(&filter(r#"{ span.a = "x" } || { span.b = true }"#)),
            "or(span.a in[x], span.b =true)"
        );
        assert_eq!(
            show(&filter(
                r#"{ span.a = "x" } | rate() by (resource.service.name)"#
            )),
            "span.a in[x]"
        );
    }

    #[test]
    fn conditions_that_do_not_prune() {
        for query in [
            "{ }",
            "{ true }",
            r#"{ span.a != "x" }"#,
            r#"{ span.a !~ "x" }"#,
            r#"{ span.a = nil }"#,
            r#"{ span.a != nil }"#,
            r#"{ !(span.a = "x") }"#,
            r#"{ span.a + 1 = 2 }"#,
            r#"{ span.a = "x" || span.b != 1 }"#,
            r#"{ span.a = "x" } !>> { span.b = "y" }"#,
            r#"{ span.a = "x" } || { }"#,
            r#"{ event.a = "x" }"#,
            r#"{ link.a = "x" }"#,
            r#"{ instrumentation.a = "x" }"#,
            r#"{ traceDuration > 1s }"#,
            "{ status = unset }",
            "{ kind = unspecified }",
            "{ status != error }",
            r#"{ parent.span.a = "x" }"#,
            "{ } | rate()",
        ] {
            assert!(filter(query).is_true(), "{query} should not prune");
        }
        // The safe side of an `&&` still prunes.
        assert_eq!(
            show(&filter(r#"{ span.a = "x" && span.b != 1 }"#)),
            "span.a in[x]"
        );
    }

    #[test]
    fn value_tests_follow_the_evaluator() {
        let gt = ValueTest::Num(NumOp::Gt, Number::Int(10));
        assert!(gt.int(11) && !gt.int(10));
        assert!(gt.float(10.5) && !gt.float(10.0));
        assert!(gt.int_range(0, 11) && !gt.int_range(0, 10));
        let eq = ValueTest::Num(NumOp::Eq, Number::Float(2.0));
        assert!(eq.int(2) && eq.float(2.0) && !eq.int(3));
        let strings = ValueTest::StrIn(BTreeSet::from(["b".to_string()]));
        assert!(strings.bytes(b"b") && !strings.bytes(b"c"));
        assert!(strings.bytes_range(b"a", b"c") && !strings.bytes_range(b"c", b"d"));
    }
}
