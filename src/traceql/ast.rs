//! The typed TraceQL syntax tree, with a `Display` that prints Tempo's canonical form.
//!
//! The shape follows what the evaluator needs: a [`Query`] is either a spanset
//! [`Pipeline`] (search) or a [`MetricsExpr`] (TraceQL metrics); field expressions inside
//! `{ }` are [`FieldExpr`] trees whose leaves are [`Static`] values and [`Attribute`]s.

use std::fmt::{self, Display, Formatter, Write};

pub use super::operator::BinaryOp;
use super::static_value::{format_go_duration, Static, StaticType};

/// A parsed query: the root expression plus its `with(...)` hints.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// What the query computes.
    pub root: RootExpr,
    /// `with(name=value, …)` hints, in the order written.
    pub hints: Vec<Hint>,
}

/// The two kinds of query.
#[derive(Debug, Clone, PartialEq)]
pub enum RootExpr {
    /// A search: spansets out.
    Pipeline(Pipeline),
    /// A metrics query: time series out.
    Metrics(MetricsExpr),
}

/// One `with(name=value)` hint.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// The hint's name (`sample`, `most_recent`, …).
    pub name: String,
    /// Its value; a hint of the wrong type is ignored at run time, not refused.
    pub value: Static,
}

/// Stages separated by `|`, each mapping a list of spansets to a list of spansets.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The stages, first to last.
    pub stages: Vec<Stage>,
}

/// One pipeline stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `{ … }` filters and spanset operators between them.
    Spanset(SpansetExpr),
    /// `aggregate CMP literal` (and the unsupported richer forms).
    ScalarFilter(ScalarFilter),
    /// `by(expr)`: split each spanset into groups.
    GroupBy(FieldExpr),
    /// `coalesce()`: merge all spansets back into one.
    Coalesce,
    /// `select(a, b)`: return these fields with each span.
    Select(Vec<Attribute>),
    /// A bare aggregate, only as the last stage of a parenthesised scalar pipeline
    /// `({ … } | count())`.
    Aggregate(Aggregate),
}

/// An expression over spansets.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ expr }`: keep the spans for which `expr` is `true`.
    Filter(FieldExpr),
    /// `lhs OP rhs` with a logical or structural operator.
    Op {
        /// the operator
        op: SpansetOp,
        /// left operand
        lhs: Box<SpansetExpr>,
        /// right operand
        rhs: Box<SpansetExpr>,
    },
    /// A parenthesised pipeline used as an operand, `({ .a } | { .b }) > (…)`; only at the
    /// root of a query.
    Pipeline(Box<Pipeline>),
}

/// Operators between spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpansetOp {
    /// `&&`
    And,
    /// `||`
    Or,
    /// `>` child
    Child,
    /// `<` parent
    Parent,
    /// `>>` descendant
    Descendant,
    /// `<<` ancestor
    Ancestor,
    /// `~` sibling
    Sibling,
    /// `!>`
    NotChild,
    /// `!<`
    NotParent,
    /// `!>>`
    NotDescendant,
    /// `!<<`
    NotAncestor,
    /// `!~`
    NotSibling,
    /// `&>`
    UnionChild,
    /// `&<`
    UnionParent,
    /// `&>>`
    UnionDescendant,
    /// `&<<`
    UnionAncestor,
    /// `&~`
    UnionSibling,
}

impl SpansetOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            SpansetOp::And => "&&",
            SpansetOp::Or => "||",
            SpansetOp::Child => ">",
            SpansetOp::Parent => "<",
            SpansetOp::Descendant => ">>",
            SpansetOp::Ancestor => "<<",
            SpansetOp::Sibling => "~",
            SpansetOp::NotChild => "!>",
            SpansetOp::NotParent => "!<",
            SpansetOp::NotDescendant => "!>>",
            SpansetOp::NotAncestor => "!<<",
            SpansetOp::NotSibling => "!~",
            SpansetOp::UnionChild => "&>",
            SpansetOp::UnionParent => "&<",
            SpansetOp::UnionDescendant => "&>>",
            SpansetOp::UnionAncestor => "&<<",
            SpansetOp::UnionSibling => "&~",
        }
    }
}

/// A comparison whose operands are scalars: aggregates, literals, arithmetic between them,
/// or parenthesised scalar pipelines.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarFilter {
    /// One of `= != < <= > >=`.
    pub op: BinaryOp,
    /// left operand
    pub lhs: ScalarExpr,
    /// right operand
    pub rhs: ScalarExpr,
}

/// A scalar operand of a [`ScalarFilter`].
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarExpr {
    /// A numeric literal (already constant-folded).
    Static(Static),
    /// `count()`, `avg(expr)`, …
    Aggregate(Aggregate),
    /// Arithmetic between scalars.
    Op {
        /// one of `+ - * / % ^`
        op: BinaryOp,
        /// left operand
        lhs: Box<ScalarExpr>,
        /// right operand
        rhs: Box<ScalarExpr>,
    },
    /// `({ … } | count())`: a pipeline ending in an aggregate.
    Pipeline(Box<Pipeline>),
}

/// An aggregate over the spans of a spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// which aggregate
    pub func: AggregateFn,
    /// its argument (`None` for `count()`)
    pub expr: Option<FieldExpr>,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFn {
    /// `count()`
    Count,
    /// `avg(e)`
    Avg,
    /// `min(e)`
    Min,
    /// `max(e)`
    Max,
    /// `sum(e)`
    Sum,
}

impl AggregateFn {
    /// The function's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateFn::Count => "count",
            AggregateFn::Avg => "avg",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
            AggregateFn::Sum => "sum",
        }
    }
}

/// An expression evaluated on one span.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    /// A literal.
    Static(Static),
    /// An attribute or intrinsic of the span.
    Attribute(Attribute),
    /// `lhs op rhs`
    Binary {
        /// the operator
        op: BinaryOp,
        /// left operand
        lhs: Box<FieldExpr>,
        /// right operand
        rhs: Box<FieldExpr>,
    },
    /// `-x`, `!x`, `x != nil`, `x = nil`
    Unary {
        /// the operator
        op: UnaryOp,
        /// the operand
        expr: Box<FieldExpr>,
    },
}

impl FieldExpr {
    /// True when the expression reads the span (contains an attribute or intrinsic);
    /// aggregates and `by()` require this.
    pub fn references_span(&self) -> bool {
        match self {
            FieldExpr::Static(_) => false,
            FieldExpr::Attribute(_) => true,
            FieldExpr::Binary { lhs, rhs, .. } => lhs.references_span() || rhs.references_span(),
            FieldExpr::Unary { expr, .. } => expr.references_span(),
        }
    }

    fn is_leaf(&self) -> bool {
        matches!(self, FieldExpr::Static(_) | FieldExpr::Attribute(_))
    }
}

/// Unary operators of field expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `!x`
    Not,
    /// `x != nil`: the value is present.
    Exists,
    /// `x = nil`: the value is absent.
    NotExists,
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttributeScope {
    /// `.x`, or an intrinsic: span first, then resource.
    None,
    /// `span.x`
    Span,
    /// `resource.x`
    Resource,
    /// `event.x`
    Event,
    /// `link.x`
    Link,
    /// `instrumentation.x`
    Instrumentation,
}

impl AttributeScope {
    /// The scope's name as the conformance data writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeScope::None => "none",
            AttributeScope::Span => "span",
            AttributeScope::Resource => "resource",
            AttributeScope::Event => "event",
            AttributeScope::Link => "link",
            AttributeScope::Instrumentation => "instrumentation",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            AttributeScope::None => ".",
            AttributeScope::Span => "span.",
            AttributeScope::Resource => "resource.",
            AttributeScope::Event => "event.",
            AttributeScope::Link => "link.",
            AttributeScope::Instrumentation => "instrumentation.",
        }
    }
}

/// Built-in fields of a span, its trace, events, links and scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intrinsic {
    /// `duration`, `span:duration`
    Duration,
    /// `name`, `span:name`
    Name,
    /// `status`, `span:status`
    Status,
    /// `statusMessage`, `span:statusMessage`
    StatusMessage,
    /// `kind`, `span:kind`
    Kind,
    /// `rootName`, `trace:rootName`
    RootName,
    /// `rootServiceName`, `trace:rootService`
    RootServiceName,
    /// `traceDuration`, `trace:duration`
    TraceDuration,
    /// `nestedSetLeft`
    NestedSetLeft,
    /// `nestedSetRight`
    NestedSetRight,
    /// `nestedSetParent`
    NestedSetParent,
    /// `parent` (parses; unsupported at validation)
    Parent,
    /// `trace:id`
    TraceId,
    /// `span:id`
    SpanId,
    /// `span:parentID`
    SpanParentId,
    /// `span:childCount`
    SpanChildCount,
    /// `event:name`
    EventName,
    /// `event:timeSinceStart`
    EventTimeSinceStart,
    /// `link:traceID`
    LinkTraceId,
    /// `link:spanID`
    LinkSpanId,
    /// `instrumentation:name`
    InstrumentationName,
    /// `instrumentation:version`
    InstrumentationVersion,
}

impl Intrinsic {
    /// Tempo's canonical name, which is also how the canonical string prints it.
    pub fn canonical_name(self) -> &'static str {
        match self {
            Intrinsic::Duration => "duration",
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::RootName => "rootName",
            Intrinsic::RootServiceName => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::NestedSetLeft => "nestedSetLeft",
            Intrinsic::NestedSetRight => "nestedSetRight",
            Intrinsic::NestedSetParent => "nestedSetParent",
            Intrinsic::Parent => "parent",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::SpanId => "span:id",
            Intrinsic::SpanParentId => "span:parentID",
            Intrinsic::SpanChildCount => "span:childCount",
            Intrinsic::EventName => "event:name",
            Intrinsic::EventTimeSinceStart => "event:timeSinceStart",
            Intrinsic::LinkTraceId => "link:traceID",
            Intrinsic::LinkSpanId => "link:spanID",
            Intrinsic::InstrumentationName => "instrumentation:name",
            Intrinsic::InstrumentationVersion => "instrumentation:version",
        }
    }

    /// The intrinsic's value type; `Attribute` (unknown) for `parent`.
    pub fn static_type(self) -> StaticType {
        match self {
            Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::EventTimeSinceStart => {
                StaticType::Duration
            }
            Intrinsic::NestedSetLeft
            | Intrinsic::NestedSetRight
            | Intrinsic::NestedSetParent
            | Intrinsic::SpanChildCount => StaticType::Int,
            Intrinsic::Status => StaticType::Status,
            Intrinsic::Kind => StaticType::Kind,
            Intrinsic::Parent => StaticType::Attribute,
            _ => StaticType::String,
        }
    }
}

/// A reference to a value of the span: a (possibly scoped) attribute or an intrinsic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// where to look
    pub scope: AttributeScope,
    /// `parent.` prefix: the value is read from the span's parent (unsupported)
    pub parent: bool,
    /// the attribute name, or the intrinsic's canonical name
    pub name: String,
    /// set when this is an intrinsic
    pub intrinsic: Option<Intrinsic>,
}

impl Attribute {
    /// A scoped or unscoped attribute.
    pub fn new(scope: AttributeScope, parent: bool, name: impl Into<String>) -> Attribute {
        Attribute {
            scope,
            parent,
            name: name.into(),
            intrinsic: None,
        }
    }

    /// An intrinsic.
    pub fn intrinsic(intrinsic: Intrinsic) -> Attribute {
        Attribute {
            scope: AttributeScope::None,
            parent: false,
            name: intrinsic.canonical_name().to_string(),
            intrinsic: Some(intrinsic),
        }
    }
}

/// A metrics query: a pipeline feeding a metrics function, or arithmetic between them.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsExpr {
    /// `<pipeline> | <function> [second stage]`
    Query {
        /// the spans to turn into series
        pipeline: Pipeline,
        /// the metrics function
        function: MetricsFunction,
        /// topk/bottomk, filters and constant arithmetic, applied in order
        second_stage: Vec<SecondStageOp>,
    },
    /// `(a) OP (b)`: series arithmetic, matched by labels.
    Math {
        /// one of `+ - * /`
        op: BinaryOp,
        /// left operand
        lhs: Box<MetricsExpr>,
        /// right operand
        rhs: Box<MetricsExpr>,
        /// operations applied to the result, in order
        second_stage: Vec<SecondStageOp>,
    },
}

impl MetricsExpr {
    /// The second-stage list of this node, to append to.
    pub fn second_stage_mut(&mut self) -> &mut Vec<SecondStageOp> {
        match self {
            MetricsExpr::Query { second_stage, .. } | MetricsExpr::Math { second_stage, .. } => {
                second_stage
            }
        }
    }
}

/// A metrics function with its `by(...)` labels.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsFunction {
    /// which function, with its arguments
    pub aggregate: MetricsAggregate,
    /// `by(a, b)` label attributes
    pub by: Vec<Attribute>,
}

/// The metrics functions of §9.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsAggregate {
    /// `rate()`
    Rate,
    /// `count_over_time()`
    CountOverTime,
    /// `min_over_time(a)`
    MinOverTime(Attribute),
    /// `max_over_time(a)`
    MaxOverTime(Attribute),
    /// `avg_over_time(a)`
    AvgOverTime(Attribute),
    /// `sum_over_time(a)`
    SumOverTime(Attribute),
    /// `quantile_over_time(a, q…)`
    QuantileOverTime(Attribute, Vec<f64>),
    /// `histogram_over_time(a)`
    HistogramOverTime(Attribute),
    /// `compare({filter}, topN, start, end)`
    Compare {
        /// the selection filter
        filter: FieldExpr,
        /// how many values per attribute (default 10)
        top_n: i64,
        /// selection start, unix ns (0 when not given)
        start: i64,
        /// selection end, unix ns (0 when not given)
        end: i64,
    },
}

impl MetricsAggregate {
    /// The function's name.
    pub fn name(&self) -> &'static str {
        match self {
            MetricsAggregate::Rate => "rate",
            MetricsAggregate::CountOverTime => "count_over_time",
            MetricsAggregate::MinOverTime(_) => "min_over_time",
            MetricsAggregate::MaxOverTime(_) => "max_over_time",
            MetricsAggregate::AvgOverTime(_) => "avg_over_time",
            MetricsAggregate::SumOverTime(_) => "sum_over_time",
            MetricsAggregate::QuantileOverTime(_, _) => "quantile_over_time",
            MetricsAggregate::HistogramOverTime(_) => "histogram_over_time",
            MetricsAggregate::Compare { .. } => "compare",
        }
    }
}

/// Operations after a metrics function.
#[derive(Debug, Clone, PartialEq)]
pub enum SecondStageOp {
    /// `| topk(k)`
    TopK(i64),
    /// `| bottomk(k)`
    BottomK(i64),
    /// `> 10`: keep data points passing the comparison (durations already in seconds).
    Filter {
        /// one of `= != < <= > >=`
        op: BinaryOp,
        /// the threshold
        value: f64,
    },
    /// Arithmetic with a constant: `(…) * 100` or `100 * (…)`.
    Scalar {
        /// one of `+ - * /`
        op: BinaryOp,
        /// the constant
        value: f64,
        /// whether the constant is the left operand
        scalar_on_left: bool,
    },
}

// ---------------------------------------------------------------------------------------
// Canonical strings (reference §11).

/// Characters that end an unquoted attribute name (reference §2).
pub(crate) fn is_attribute_rune(c: char) -> bool {
    !(c.is_whitespace()
        || matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ','
        ))
}

fn write_attribute_name(f: &mut Formatter<'_>, name: &str, unscoped: bool) -> fmt::Result {
    // Tempo quotes names with a non-attribute rune or a `"`. vivace also quotes names that
    // would not lex back as the same attribute: empty names, and unscoped names starting
    // with a digit (`.3` is a float), so every AST prints to a string that re-parses to it.
    let starts_with_digit = name.chars().next().is_some_and(|c| c.is_ascii_digit());
    let needs_quotes = name.is_empty()
        || name.contains('"')
        || !name.chars().all(is_attribute_rune)
        || (unscoped && starts_with_digit)
        || name.starts_with("//")
        || name.starts_with("/*");
    if !needs_quotes {
        return f.write_str(name);
    }
    f.write_char('"')?;
    for c in name.chars() {
        if c == '"' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(intrinsic) = self.intrinsic {
            return f.write_str(intrinsic.canonical_name());
        }
        if self.parent {
            f.write_str("parent.")?;
            if self.scope != AttributeScope::None {
                f.write_str(self.scope.prefix())?;
            }
        } else {
            f.write_str(self.scope.prefix())?;
        }
        let unscoped = self.scope == AttributeScope::None && !self.parent;
        write_attribute_name(f, &self.name, unscoped)
    }
}

fn format_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    // Debug gives the shortest representation that round-trips, with `.0` or an exponent.
    format!("{value:?}")
}

/// A number in metrics second stages: shortest form, no forced `.0` (`> 10`, `>= 5.5`).
fn format_metrics_number(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format_float(value)
    }
}

impl Display for Static {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Static::Nil => f.write_str("nil"),
            Static::Int(value) => write!(f, "{value}"),
            Static::Float(value) => f.write_str(&format_float(*value)),
            // Tempo prints strings in backticks without escaping; a string holding a
            // backtick therefore cannot round-trip (reference §11).
            Static::String(value) => write!(f, "`{value}`"),
            Static::Bool(value) => write!(f, "{value}"),
            Static::Duration(nanos) => f.write_str(&format_go_duration(*nanos)),
            Static::Status(status) => f.write_str(status.as_str()),
            Static::Kind(kind) => f.write_str(kind.as_str()),
            Static::IntArray(values) => write_list(f, values.iter().map(|v| v.to_string())),
            Static::FloatArray(values) => write_list(f, values.iter().map(|v| format_float(*v))),
            Static::StringArray(values) => write_list(f, values.iter().map(|v| format!("`{v}`"))),
            Static::BoolArray(values) => write_list(f, values.iter().map(|v| v.to_string())),
        }
    }
}

fn write_list(f: &mut Formatter<'_>, items: impl Iterator<Item = String>) -> fmt::Result {
    let items: Vec<String> = items.collect();
    write!(f, "[{}]", items.join(", "))
}

fn write_field_operand(f: &mut Formatter<'_>, expr: &FieldExpr) -> fmt::Result {
    if expr.is_leaf() {
        write!(f, "{expr}")
    } else {
        write!(f, "({expr})")
    }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Static(value) => write!(f, "{value}"),
            FieldExpr::Attribute(attribute) => write!(f, "{attribute}"),
            FieldExpr::Binary { op, lhs, rhs } => {
                write_field_operand(f, lhs)?;
                write!(f, " {} ", op.as_str())?;
                write_field_operand(f, rhs)
            }
            FieldExpr::Unary { op, expr } => match op {
                UnaryOp::Neg => {
                    f.write_char('-')?;
                    write_field_operand(f, expr)
                }
                UnaryOp::Not => {
                    f.write_char('!')?;
                    write_field_operand(f, expr)
                }
                UnaryOp::Exists => {
                    write_field_operand(f, expr)?;
                    f.write_str(" != nil")
                }
                UnaryOp::NotExists => {
                    write_field_operand(f, expr)?;
                    f.write_str(" = nil")
                }
            },
        }
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(expr) => write!(f, "{{ {expr} }}"),
            SpansetExpr::Op { op, lhs, rhs } => {
                write!(f, "({lhs}) {} ({rhs})", op.as_str())
            }
            SpansetExpr::Pipeline(pipeline) => write!(f, "{pipeline}"),
        }
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.expr {
            Some(expr) => write!(f, "{}({expr})", self.func.as_str()),
            None => write!(f, "{}()", self.func.as_str()),
        }
    }
}

fn write_scalar_operand(f: &mut Formatter<'_>, expr: &ScalarExpr) -> fmt::Result {
    match expr {
        ScalarExpr::Static(value) => write!(f, "{value}"),
        other => write!(f, "({other})"),
    }
}

impl Display for ScalarExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Static(value) => write!(f, "{value}"),
            ScalarExpr::Aggregate(aggregate) => write!(f, "{aggregate}"),
            ScalarExpr::Op { op, lhs, rhs } => {
                write_scalar_operand(f, lhs)?;
                write!(f, " {} ", op.as_str())?;
                write_scalar_operand(f, rhs)
            }
            ScalarExpr::Pipeline(pipeline) => write!(f, "{pipeline}"),
        }
    }
}

impl Display for ScalarFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_scalar_operand(f, &self.lhs)?;
        write!(f, " {} ", self.op.as_str())?;
        write_scalar_operand(f, &self.rhs)
    }
}

fn write_attribute_list(f: &mut Formatter<'_>, attributes: &[Attribute], sep: &str) -> fmt::Result {
    for (index, attribute) in attributes.iter().enumerate() {
        if index > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{attribute}")?;
    }
    Ok(())
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Spanset(expr) => write!(f, "{expr}"),
            Stage::ScalarFilter(filter) => write!(f, "{filter}"),
            Stage::GroupBy(expr) => write!(f, "by({expr})"),
            Stage::Coalesce => f.write_str("coalesce()"),
            Stage::Select(attributes) => {
                f.write_str("select(")?;
                write_attribute_list(f, attributes, ", ")?;
                f.write_char(')')
            }
            Stage::Aggregate(aggregate) => write!(f, "{aggregate}"),
        }
    }
}

impl Display for Pipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (index, stage) in self.stages.iter().enumerate() {
            if index > 0 {
                f.write_char('|')?;
            }
            write!(f, "{stage}")?;
        }
        Ok(())
    }
}

impl Display for MetricsFunction {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = self.aggregate.name();
        match &self.aggregate {
            MetricsAggregate::Rate | MetricsAggregate::CountOverTime => write!(f, "{name}()")?,
            MetricsAggregate::MinOverTime(attribute)
            | MetricsAggregate::MaxOverTime(attribute)
            | MetricsAggregate::AvgOverTime(attribute)
            | MetricsAggregate::SumOverTime(attribute)
            | MetricsAggregate::HistogramOverTime(attribute) => write!(f, "{name}({attribute})")?,
            MetricsAggregate::QuantileOverTime(attribute, quantiles) => {
                write!(f, "{name}({attribute}")?;
                for quantile in quantiles {
                    write!(f, ",{quantile:.5}")?;
                }
                f.write_char(')')?;
            }
            // Decision: Tempo prints compare(...) with a stray `}`; vivace closes it with `)`
            // so the canonical string re-parses.
            MetricsAggregate::Compare {
                filter,
                top_n,
                start,
                end,
            } => {
                write!(f, "{name}({{ {filter} }},{top_n}")?;
                if *start != 0 || *end != 0 {
                    write!(f, ",{start},{end}")?;
                }
                f.write_char(')')?;
            }
        }
        if !self.by.is_empty() {
            f.write_str("by(")?;
            write_attribute_list(f, &self.by, ",")?;
            f.write_char(')')?;
        }
        Ok(())
    }
}

fn write_with_second_stage(
    f: &mut Formatter<'_>,
    base: String,
    second_stage: &[SecondStageOp],
) -> fmt::Result {
    let mut text = base;
    for op in second_stage {
        text = match op {
            SecondStageOp::TopK(k) => format!("{text} | topk({k})"),
            SecondStageOp::BottomK(k) => format!("{text} | bottomk({k})"),
            SecondStageOp::Filter { op, value } => {
                format!("{text} {} {}", op.as_str(), format_metrics_number(*value))
            }
            SecondStageOp::Scalar {
                op,
                value,
                scalar_on_left,
            } => {
                let number = format_metrics_number(*value);
                if *scalar_on_left {
                    format!("{number} {} ({text})", op.as_str())
                } else {
                    format!("({text}) {} {number}", op.as_str())
                }
            }
        };
    }
    f.write_str(&text)
}

impl Display for MetricsExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricsExpr::Query {
                pipeline,
                function,
                second_stage,
            } => write_with_second_stage(f, format!("{pipeline} | {function}"), second_stage),
            MetricsExpr::Math {
                op,
                lhs,
                rhs,
                second_stage,
            } => {
                write_with_second_stage(f, format!("({lhs}) {} ({rhs})", op.as_str()), second_stage)
            }
        }
    }
}

impl Display for RootExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            RootExpr::Pipeline(pipeline) => write!(f, "{pipeline}"),
            RootExpr::Metrics(metrics) => write!(f, "{metrics}"),
        }
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root)?;
        if !self.hints.is_empty() {
            f.write_str(" with(")?;
            for (index, hint) in self.hints.iter().enumerate() {
                if index > 0 {
                    f.write_char(',')?;
                }
                write!(f, "{}={}", hint.name, hint.value)?;
            }
            f.write_char(')')?;
        }
        Ok(())
    }
}
