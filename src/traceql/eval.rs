//! The TraceQL evaluator: runs a spanset [`Pipeline`] over the spans of one trace.
//!
//! The evaluator is generic over [`SpanView`], so the same code runs over real traces
//! ([`super::span::TraceSpans`]) and over the in-memory spans of the conformance data.
//! A [`Spanset`] holds indices into the trace's span slice plus its metadata (`by()` values,
//! aggregate results).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use super::ast::*;
use super::static_value::{compile_regex, OpError, Static};

/// Nested-set numbering of a span: `left`/`right` of its DFS interval and its parent's `left`
/// (the root has parent −1; spans cut off from the tree are all 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NestedSet {
    /// the parent's `left` (−1 for a root)
    pub parent: i64,
    /// DFS entry number
    pub left: i64,
    /// DFS exit number
    pub right: i64,
}

/// What the evaluator needs from a span.
pub trait SpanView {
    /// The value of an attribute or intrinsic; [`Static::Nil`] when absent. `event` and
    /// `link` select which of the span's events and links `event.`/`link.` references read.
    fn value(&self, attr: &Attribute, event: usize, link: usize) -> Static;
    /// [`value`](Self::value), borrowed where the span already holds it as a [`Static`]
    /// (column values, attribute lists): filters and `by()` read it per span without a copy.
    fn value_ref(&self, attr: &Attribute, event: usize, link: usize) -> Cow<'_, Static> {
        Cow::Owned(self.value(attr, event, link))
    }
    /// Its nested-set numbering.
    fn nested_set(&self) -> NestedSet;
    /// How many events the span has (event-scoped conditions hold when one event satisfies
    /// the whole filter).
    fn event_count(&self) -> usize {
        0
    }
    /// How many links the span has.
    fn link_count(&self) -> usize {
        0
    }
}

/// A set of spans of one trace, with its metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spanset {
    /// Indices into the trace's span slice.
    pub spans: Vec<usize>,
    /// Metadata such as `by(resource.service.name)` and `count()`, in insertion order.
    pub attributes: Vec<(String, Static)>,
    /// The last aggregate's value.
    pub scalar: Option<Static>,
}

/// Which structural relationships to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StructuralMode {
    /// Tempo's storage semantics: spans with missing nested-set data never relate, a span is
    /// not its own sibling, union operators return both sides.
    #[default]
    Real,
    /// The simplified relationships of Tempo's engine unit tests (mock spans): descendant by
    /// `left` only, self-siblings, the union flag ignored.
    Mock,
}

/// An evaluation failure (Tempo reports these as query errors).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// An operation on values failed (`!` on nil, integer division by zero, …).
    #[error(transparent)]
    Op(#[from] OpError),
    /// A structural operator saw several spansets per trace.
    #[error("spanset operators are not supported for multiple spansets per trace. consider using coalesce()")]
    MultipleSpansets,
    /// A construct that parses and validates but is not executed.
    #[error("unsupported in search: {0}")]
    Unsupported(String),
}

/// Evaluates pipelines over spans; caches compiled regular expressions.
#[derive(Default)]
pub struct Evaluator {
    mode: StructuralMode,
    regexes: RefCell<HashMap<String, regex::Regex>>,
}

/// Attributes a query reads or `select()`s: what search results return with each span.
pub fn referenced_attributes(pipeline: &Pipeline) -> Vec<Attribute> {
    let mut out: Vec<Attribute> = Vec::new();
    collect_pipeline(pipeline, &mut out);
    out
}

fn push_unique(out: &mut Vec<Attribute>, attr: &Attribute) {
    if !out.contains(attr) {
        out.push(attr.clone());
    }
}

fn collect_pipeline(pipeline: &Pipeline, out: &mut Vec<Attribute>) {
    for stage in &pipeline.stages {
        match stage {
            Stage::Spanset(expr) => collect_spanset(expr, out),
            Stage::GroupBy(expr) => collect_field(expr, out),
            Stage::Select(attrs) => attrs.iter().for_each(|a| push_unique(out, a)),
            Stage::ScalarFilter(filter) => {
                collect_scalar(&filter.lhs, out);
                collect_scalar(&filter.rhs, out);
            }
            Stage::Aggregate(agg) => {
                if let Some(expr) = &agg.expr {
                    collect_field(expr, out);
                }
            }
            Stage::Coalesce => {}
        }
    }
}

fn collect_scalar(expr: &ScalarExpr, out: &mut Vec<Attribute>) {
    match expr {
        ScalarExpr::Static(_) => {}
        ScalarExpr::Aggregate(agg) => {
            if let Some(expr) = &agg.expr {
                collect_field(expr, out);
            }
        }
        ScalarExpr::Op { lhs, rhs, .. } => {
            collect_scalar(lhs, out);
            collect_scalar(rhs, out);
        }
        ScalarExpr::Pipeline(p) => collect_pipeline(p, out),
    }
}

fn collect_spanset(expr: &SpansetExpr, out: &mut Vec<Attribute>) {
    match expr {
        SpansetExpr::Filter(field) => collect_field(field, out),
        SpansetExpr::Op { lhs, rhs, .. } => {
            collect_spanset(lhs, out);
            collect_spanset(rhs, out);
        }
        SpansetExpr::Pipeline(p) => collect_pipeline(p, out),
    }
}

fn collect_field(expr: &FieldExpr, out: &mut Vec<Attribute>) {
    match expr {
        FieldExpr::Static(_) => {}
        FieldExpr::Attribute(attr) => push_unique(out, attr),
        FieldExpr::Binary { lhs, rhs, .. } => {
            collect_field(lhs, out);
            collect_field(rhs, out);
        }
        FieldExpr::Unary { expr, .. } => collect_field(expr, out),
    }
}

/// Whether a filter reads an event's or a link's attributes (then it holds for a span when
/// one of its events or links makes it true).
pub fn reads_events_or_links(expr: &FieldExpr) -> bool {
    references_scope(expr, true) || references_scope(expr, false)
}

fn references_scope(expr: &FieldExpr, event: bool) -> bool {
    match expr {
        FieldExpr::Static(_) => false,
        FieldExpr::Attribute(attr) => {
            if event {
                attr.scope == AttributeScope::Event
                    || matches!(
                        attr.intrinsic,
                        Some(Intrinsic::EventName | Intrinsic::EventTimeSinceStart)
                    )
            } else {
                attr.scope == AttributeScope::Link
                    || matches!(
                        attr.intrinsic,
                        Some(Intrinsic::LinkTraceId | Intrinsic::LinkSpanId)
                    )
            }
        }
        FieldExpr::Binary { lhs, rhs, .. } => {
            references_scope(lhs, event) || references_scope(rhs, event)
        }
        FieldExpr::Unary { expr, .. } => references_scope(expr, event),
    }
}

impl Evaluator {
    /// An evaluator using the given structural semantics.
    pub fn new(mode: StructuralMode) -> Evaluator {
        Evaluator {
            mode,
            regexes: RefCell::new(HashMap::new()),
        }
    }

    /// Runs `pipeline` over `input` spansets whose indices point into `spans`. Stops as soon as
    /// a stage produces no spansets.
    pub fn eval_pipeline<S: SpanView>(
        &self,
        pipeline: &Pipeline,
        input: Vec<Spanset>,
        spans: &[S],
    ) -> Result<Vec<Spanset>, EvalError> {
        let mut current = input;
        for stage in &pipeline.stages {
            if current.is_empty() {
                break;
            }
            current = self.eval_stage(stage, current, spans)?;
        }
        Ok(current)
    }

    fn eval_stage<S: SpanView>(
        &self,
        stage: &Stage,
        input: Vec<Spanset>,
        spans: &[S],
    ) -> Result<Vec<Spanset>, EvalError> {
        match stage {
            Stage::Spanset(expr) => self.eval_spanset(expr, &input, spans),
            Stage::ScalarFilter(filter) => self.eval_scalar_filter(filter, input, spans),
            Stage::GroupBy(expr) => self.eval_group_by(expr, input, spans),
            Stage::Coalesce => {
                let mut merged = Spanset::default();
                for set in input {
                    merged.spans.extend(set.spans);
                }
                Ok(if merged.spans.is_empty() {
                    Vec::new()
                } else {
                    vec![merged]
                })
            }
            Stage::Select(_) => Ok(input),
            Stage::Aggregate(agg) => Err(EvalError::Unsupported(format!(
                "bare aggregate {agg} outside a comparison"
            ))),
        }
    }

    fn eval_spanset<S: SpanView>(
        &self,
        expr: &SpansetExpr,
        input: &[Spanset],
        spans: &[S],
    ) -> Result<Vec<Spanset>, EvalError> {
        match expr {
            SpansetExpr::Filter(field) => {
                let mut out = Vec::new();
                for set in input {
                    let mut kept = Vec::new();
                    for &index in &set.spans {
                        if let Some(span) = spans.get(index) {
                            if self.matches(field, span)? {
                                kept.push(index);
                            }
                        }
                    }
                    if !kept.is_empty() {
                        out.push(Spanset {
                            spans: kept,
                            attributes: set.attributes.clone(),
                            scalar: set.scalar.clone(),
                        });
                    }
                }
                Ok(out)
            }
            SpansetExpr::Pipeline(pipeline) => {
                let mut out = Vec::new();
                for set in input {
                    out.extend(self.eval_pipeline(pipeline, vec![set.clone()], spans)?);
                }
                Ok(out)
            }
            SpansetExpr::Op { op, lhs, rhs } => {
                let mut out = Vec::new();
                for set in input {
                    let current = std::slice::from_ref(set);
                    let left = self.eval_spanset(lhs, current, spans)?;
                    let right = self.eval_spanset(rhs, current, spans)?;
                    let result = match op {
                        SpansetOp::And | SpansetOp::Or => {
                            let keep = if *op == SpansetOp::And {
                                !left.is_empty() && !right.is_empty()
                            } else {
                                !left.is_empty() || !right.is_empty()
                            };
                            if !keep {
                                continue;
                            }
                            let mut union: Vec<usize> = Vec::new();
                            for s in left.iter().chain(right.iter()) {
                                for &index in &s.spans {
                                    if !union.contains(&index) {
                                        union.push(index);
                                    }
                                }
                            }
                            union
                        }
                        _ => self.join_structural(*op, &left, &right, spans)?,
                    };
                    if !result.is_empty() {
                        out.push(Spanset {
                            spans: result,
                            attributes: set.attributes.clone(),
                            scalar: set.scalar.clone(),
                        });
                    }
                }
                Ok(out)
            }
        }
    }

    fn join_structural<S: SpanView>(
        &self,
        op: SpansetOp,
        lhs: &[Spanset],
        rhs: &[Spanset],
        spans: &[S],
    ) -> Result<Vec<usize>, EvalError> {
        if lhs.len() > 1 || rhs.len() > 1 {
            return Err(EvalError::MultipleSpansets);
        }
        let left: &[usize] = lhs.first().map(|s| s.spans.as_slice()).unwrap_or(&[]);
        let right: &[usize] = rhs.first().map(|s| s.spans.as_slice()).unwrap_or(&[]);
        let real = self.mode == StructuralMode::Real;
        let (relation, negated, union) = match op {
            SpansetOp::Child => (Relation::Child, false, false),
            SpansetOp::Parent => (Relation::Parent, false, false),
            SpansetOp::Descendant => (Relation::Descendant, false, false),
            SpansetOp::Ancestor => (Relation::Ancestor, false, false),
            SpansetOp::Sibling => (Relation::Sibling, false, false),
            SpansetOp::NotChild => (Relation::Child, true, false),
            SpansetOp::NotParent => (Relation::Parent, true, false),
            SpansetOp::NotDescendant => (Relation::Descendant, true, false),
            SpansetOp::NotAncestor => (Relation::Ancestor, true, false),
            SpansetOp::NotSibling => (Relation::Sibling, true, false),
            SpansetOp::UnionChild => (Relation::Child, false, real),
            SpansetOp::UnionParent => (Relation::Parent, false, real),
            SpansetOp::UnionDescendant => (Relation::Descendant, false, real),
            SpansetOp::UnionAncestor => (Relation::Ancestor, false, real),
            SpansetOp::UnionSibling => (Relation::Sibling, false, real),
            SpansetOp::And | SpansetOp::Or => return Ok(Vec::new()),
        };
        let nested = |index: usize| spans.get(index).map(SpanView::nested_set);
        let mut out: Vec<usize> = Vec::new();
        let mut matched_left: Vec<usize> = Vec::new();
        for &b in right {
            let Some(b_set) = nested(b) else { continue };
            if real && b_set.left == 0 && b_set.right == 0 {
                continue; // no nested-set data: takes part in no relationship
            }
            let mut related = false;
            for &a in left {
                let Some(a_set) = nested(a) else { continue };
                if real && a_set.left == 0 && a_set.right == 0 {
                    continue;
                }
                if relation.holds(a, a_set, b, b_set, real) {
                    related = true;
                    if union {
                        if !matched_left.contains(&a) {
                            matched_left.push(a);
                        }
                    } else {
                        break;
                    }
                }
            }
            if related != negated && !out.contains(&b) {
                out.push(b);
            }
        }
        if union {
            for a in matched_left {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    fn eval_scalar_filter<S: SpanView>(
        &self,
        filter: &ScalarFilter,
        input: Vec<Spanset>,
        spans: &[S],
    ) -> Result<Vec<Spanset>, EvalError> {
        let (ScalarExpr::Aggregate(agg), ScalarExpr::Static(literal)) = (&filter.lhs, &filter.rhs)
        else {
            return Err(EvalError::Unsupported(format!("{filter}")));
        };
        let mut out = Vec::new();
        for mut set in input {
            let Some(value) = self.aggregate(agg, &set, spans)? else {
                continue;
            };
            if Static::binary_op(filter.op, &value, literal)? == Static::Bool(true) {
                set.attributes.push((agg.to_string(), value.clone()));
                set.scalar = Some(value);
                out.push(set);
            }
        }
        Ok(out)
    }

    fn aggregate<S: SpanView>(
        &self,
        agg: &Aggregate,
        set: &Spanset,
        spans: &[S],
    ) -> Result<Option<Static>, EvalError> {
        let Some(expr) = &agg.expr else {
            return Ok(Some(Static::Int(set.spans.len() as i64)));
        };
        let mut values = Vec::new();
        for &index in &set.spans {
            if let Some(span) = spans.get(index) {
                let value = self.eval_field(expr, span, 0, 0)?;
                if value.as_f64().is_some() {
                    values.push(value);
                }
            }
        }
        let Some(first) = values.first().cloned() else {
            return Ok(None);
        };
        Ok(Some(match agg.func {
            AggregateFn::Count => Static::Int(set.spans.len() as i64),
            AggregateFn::Min | AggregateFn::Max => {
                let mut best = first;
                for value in &values[1..] {
                    let ordering = value.compare(&best);
                    let better = match agg.func {
                        AggregateFn::Min => ordering == Some(std::cmp::Ordering::Less),
                        _ => ordering == Some(std::cmp::Ordering::Greater),
                    };
                    if better {
                        best = value.clone();
                    }
                }
                best
            }
            AggregateFn::Sum => {
                // Tempo keeps the type of the first value and skips values of another
                // numeric type (a source quirk, kept for compatibility).
                match first {
                    Static::Int(_) => Static::Int(
                        values
                            .iter()
                            .filter_map(|v| match v {
                                Static::Int(i) => Some(*i),
                                _ => None,
                            })
                            .fold(0i64, i64::wrapping_add),
                    ),
                    Static::Duration(_) => Static::Duration(
                        values
                            .iter()
                            .filter_map(|v| match v {
                                Static::Duration(i) => Some(*i),
                                _ => None,
                            })
                            .fold(0i64, i64::wrapping_add),
                    ),
                    _ => Static::Float(
                        values
                            .iter()
                            .filter_map(|v| match v {
                                Static::Float(f) => Some(*f),
                                _ => None,
                            })
                            .sum(),
                    ),
                }
            }
            AggregateFn::Avg => {
                let total: f64 = values.iter().filter_map(Static::as_f64).sum();
                let mean = total / values.len() as f64;
                let all_durations = values.iter().all(|v| matches!(v, Static::Duration(_)));
                if all_durations {
                    Static::Duration(mean as i64)
                } else {
                    Static::Float(mean)
                }
            }
        }))
    }

    fn eval_group_by<S: SpanView>(
        &self,
        expr: &FieldExpr,
        input: Vec<Spanset>,
        spans: &[S],
    ) -> Result<Vec<Spanset>, EvalError> {
        let label = format!("by({expr})");
        let mut out = Vec::new();
        for set in input {
            let mut groups: Vec<(Static, Vec<usize>)> = Vec::new();
            for &index in &set.spans {
                let Some(span) = spans.get(index) else {
                    continue;
                };
                let mut value = self.eval_field(expr, span, 0, 0)?;
                if value == Static::Nil {
                    value = Static::String("nil".to_string());
                }
                match groups.iter_mut().find(|(key, _)| same_group(key, &value)) {
                    Some((_, members)) => members.push(index),
                    None => groups.push((value, vec![index])),
                }
            }
            for (value, members) in groups {
                let mut attributes = set.attributes.clone();
                attributes.push((label.clone(), value));
                out.push(Spanset {
                    spans: members,
                    attributes,
                    scalar: set.scalar.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Whether the filter expression is `true` for the span. Event- and link-scoped
    /// references are satisfied when one event (link) makes the whole expression true.
    pub fn matches<S: SpanView>(&self, expr: &FieldExpr, span: &S) -> Result<bool, EvalError> {
        let events = if references_scope(expr, true) {
            span.event_count().max(1)
        } else {
            1
        };
        let links = if references_scope(expr, false) {
            span.link_count().max(1)
        } else {
            1
        };
        for event in 0..events {
            for link in 0..links {
                if *self.eval_field_ref(expr, span, event, link)? == Static::Bool(true) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// [`matches`](Self::matches) for a filter that reads no event or link
    /// ([`reads_events_or_links`] is false): one evaluation, no scan of the expression.
    pub fn matches_span<S: SpanView>(&self, expr: &FieldExpr, span: &S) -> Result<bool, EvalError> {
        Ok(*self.eval_field_ref(expr, span, 0, 0)? == Static::Bool(true))
    }

    /// Evaluates a field expression on one span (with the given event and link selected).
    pub fn eval_field<S: SpanView>(
        &self,
        expr: &FieldExpr,
        span: &S,
        event: usize,
        link: usize,
    ) -> Result<Static, EvalError> {
        Ok(self.eval_field_ref(expr, span, event, link)?.into_owned())
    }

    /// [`eval_field`](Self::eval_field) borrowing literals and the span's values: a filter
    /// such as `span.db.system = "redis"` copies no string.
    fn eval_field_ref<'a, S: SpanView>(
        &self,
        expr: &'a FieldExpr,
        span: &'a S,
        event: usize,
        link: usize,
    ) -> Result<Cow<'a, Static>, EvalError> {
        Ok(match expr {
            FieldExpr::Static(value) => Cow::Borrowed(value),
            FieldExpr::Attribute(attr) => span.value_ref(attr, event, link),
            FieldExpr::Unary { op, expr } => {
                let value = self.eval_field_ref(expr, span, event, link)?;
                Cow::Owned(match op {
                    UnaryOp::Neg => value.negate()?,
                    UnaryOp::Not => value.not()?,
                    UnaryOp::Exists => Static::Bool(*value != Static::Nil),
                    UnaryOp::NotExists => Static::Bool(*value == Static::Nil),
                })
            }
            FieldExpr::Binary { op, lhs, rhs } => {
                let left = self.eval_field_ref(lhs, span, event, link)?;
                let right = self.eval_field_ref(rhs, span, event, link)?;
                if let (
                    BinaryOp::Regex | BinaryOp::NotRegex,
                    Static::String(value),
                    Static::String(pattern),
                ) = (op, left.as_ref(), right.as_ref())
                {
                    let matched = self.regex_match(value, pattern)?;
                    return Ok(Cow::Owned(Static::Bool(
                        matched == (*op == BinaryOp::Regex),
                    )));
                }
                Cow::Owned(Static::binary_op(*op, &left, &right)?)
            }
        })
    }

    fn regex_match(&self, value: &str, pattern: &str) -> Result<bool, EvalError> {
        let mut cache = self.regexes.borrow_mut();
        if let Some(regex) = cache.get(pattern) {
            return Ok(regex.is_match(value));
        }
        let regex = compile_regex(pattern)?;
        let matched = regex.is_match(value);
        if cache.len() < 1024 {
            cache.insert(pattern.to_string(), regex);
        }
        Ok(matched)
    }
}

fn same_group(a: &Static, b: &Static) -> bool {
    a.static_type() == b.static_type() && (a == b || a.equals(b))
}

#[derive(Clone, Copy)]
enum Relation {
    /// B is a direct child of A
    Child,
    /// B is the direct parent of A
    Parent,
    /// B is a descendant of A
    Descendant,
    /// B is an ancestor of A
    Ancestor,
    /// B shares a parent with A
    Sibling,
}

impl Relation {
    fn holds(self, a: usize, a_set: NestedSet, b: usize, b_set: NestedSet, real: bool) -> bool {
        let descendant = |anc: NestedSet, desc: NestedSet| {
            if real {
                desc.left > anc.left && desc.right < anc.right
            } else {
                desc.left > anc.left && desc.left < anc.right
            }
        };
        match self {
            Relation::Child => b_set.parent == a_set.left,
            Relation::Parent => a_set.parent == b_set.left,
            Relation::Descendant => descendant(a_set, b_set),
            Relation::Ancestor => descendant(b_set, a_set),
            Relation::Sibling => {
                if real {
                    a != b && a_set.parent == b_set.parent && a_set.parent != 0
                } else {
                    a_set.parent == b_set.parent
                }
            }
        }
    }
}
