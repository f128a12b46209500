//! TraceQL metrics (reference/traceql.md §9, tempo-api.md §2.9): turns the spans a pipeline
//! selects into time series. CPU only; the querier feeds it whole traces.
//!
//! ```text
//! CompiledMetrics::new(query) ──► MetricsEvaluation::new(&compiled, request)
//!        observe_trace(id, trace) for every trace (head, then block by block)
//!        finish() ──► QueryRangeResponse / QueryInstantResponse (types.rs)
//! ```
//!
//! Semantics follow Tempo: the window is aligned to the step with one extra bucket in
//! front, a span counts in the right-closed interval holding its start time, durations are
//! seconds, quantiles come from power-of-two buckets, `by()` drops nil labels.

pub mod types;

use std::collections::{BTreeMap, HashMap};

use super::ast::*;
use super::columns::{ColumnSpan, SpanField, SpanFields};
use super::eval::{
    reads_events_or_links, referenced_attributes, EvalError, Evaluator, SpanView, Spanset,
};
use super::prefilter::Needs;
use super::rewrite::apply_default_rewrites;
use super::span::{trace_spans, SpanData};
use super::static_value::{format_go_duration, Static};
use crate::model::{Trace, TraceId};
pub use types::*;

/// Exemplars per query at most (Tempo's `max_exemplars` default).
pub const MAX_EXEMPLARS: usize = 100;
/// Series per answer at most; beyond it the answer is partial (Tempo's
/// `max_response_series` default).
pub const MAX_SERIES: usize = 1000;
/// Longest accepted range (Tempo's `query_frontend.metrics.max_duration` default).
pub const MAX_DURATION_NANOS: u64 = 24 * 3600 * 1_000_000_000;
/// Points per series at most (Prometheus' limit): a range query whose step would give more
/// is refused before anything is allocated for its intervals.
pub const MAX_POINTS_PER_SERIES: u64 = 11_000;
/// Points a query holds at once over all its functions and groups (a quantile group counts
/// once per quantile): 1,000 full series. A group that would pass it is not started and the
/// answer is partial, as for [`MAX_SERIES`], so data with many distinct values cannot make one
/// query allocate without bound.
pub const MAX_POINTS_PER_QUERY: u64 = MAX_SERIES as u64 * MAX_POINTS_PER_SERIES;
/// Metrics functions (`<pipeline> | rate()` …) one query may combine with arithmetic.
pub const MAX_FUNCTIONS_PER_QUERY: usize = 100;

const NANOS_PER_SECOND: f64 = 1e9;

/// Why a metrics query was refused before running.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// A search query sent to the metrics API (Tempo's text).
    #[error("not a metrics query")]
    NotAMetricsQuery,
    /// The step divides the range into more intervals than a series may hold.
    #[error(
        "exceeded maximum resolution of {MAX_POINTS_PER_SERIES} points per timeseries ({points} asked for). Try decreasing the query resolution (?step=XX)"
    )]
    TooManyPoints { points: u64 },
    /// The range's end lies beyond what nanosecond timestamps hold once aligned to the step.
    #[error("invalid time range: end {end} aligned to step {step} overflows")]
    RangeOverflow { end: u64, step: u64 },
    /// More metrics functions combined than a query may hold.
    #[error(
        "invalid TraceQL query: {functions} metrics functions in one query, at most {MAX_FUNCTIONS_PER_QUERY}"
    )]
    TooManyFunctions { functions: usize },
}

/// Start of the first interval (exclusive), end (inclusive) and step, Unix ns, as the query
/// runs them (already aligned for range queries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsRequest {
    /// exclusive left edge of the first interval, ns
    pub start: u64,
    /// inclusive right edge of the last interval, ns
    pub end: u64,
    /// interval length, ns; `end - start` for an instant query
    pub step: u64,
    /// exemplars to return at most
    pub exemplars: usize,
}

impl MetricsRequest {
    /// A range query over `[start, end]` (ns): aligns start down and end up to the step and
    /// prepends one interval, as Tempo's `AlignRequest`. A zero step takes Tempo's default.
    /// Refused when the step would give more than [`MAX_POINTS_PER_SERIES`] intervals.
    pub fn range(
        start: u64,
        end: u64,
        step: u64,
        exemplars: usize,
    ) -> Result<MetricsRequest, MetricsError> {
        let step = if step == 0 {
            default_step(start, end)
        } else {
            step
        };
        let mut aligned_start = start - start % step;
        let aligned_end = if end.is_multiple_of(step) {
            Some(end)
        } else {
            end.checked_add(step - end % step)
        }
        .ok_or(MetricsError::RangeOverflow { end, step })?;
        if aligned_start > step {
            aligned_start -= step;
        }
        let points = aligned_end.saturating_sub(aligned_start) / step;
        if points > MAX_POINTS_PER_SERIES {
            return Err(MetricsError::TooManyPoints { points });
        }
        Ok(MetricsRequest {
            start: aligned_start,
            end: aligned_end,
            step,
            exemplars: exemplars.min(MAX_EXEMPLARS),
        })
    }

    /// An instant query: one interval `(start, end]`.
    pub fn instant(start: u64, end: u64, exemplars: usize) -> MetricsRequest {
        MetricsRequest {
            start,
            end,
            step: end.saturating_sub(start).max(1),
            exemplars: exemplars.min(MAX_EXEMPLARS),
        }
    }

    /// Number of intervals.
    pub fn intervals(&self) -> usize {
        (self.end.saturating_sub(self.start) / self.step.max(1)).max(1) as usize
    }

    /// The interval holding a span that started at `ts` (right-closed), if any.
    pub fn interval_of(&self, ts: u64) -> Option<usize> {
        if ts <= self.start || ts > self.end {
            return None;
        }
        let index = ((ts - self.start - 1) / self.step) as usize;
        Some(index.min(self.intervals() - 1))
    }

    /// Timestamp of interval `i`: its right edge, Unix ms.
    pub fn timestamp_ms(&self, i: usize) -> i64 {
        ((self.start + (i as u64 + 1) * self.step) / 1_000_000) as i64
    }
}

/// Tempo's default step: about 240 points, rounded down to 5 s (or 1 s) multiples, at least
/// 1 s.
pub fn default_step(start: u64, end: u64) -> u64 {
    let second = 1_000_000_000u64;
    let baseline = end.saturating_sub(start) / 240;
    let mut interval = baseline / (5 * second) * (5 * second);
    if interval < 5 * second {
        interval = baseline / second * second;
    }
    interval.max(second)
}

/// A metrics query ready to run: the expression with default rewrites applied.
#[derive(Debug, Clone)]
pub struct CompiledMetrics {
    root: MetricsExpr,
    hint_exemplars: Option<usize>,
}

impl CompiledMetrics {
    /// Prepares a validated query; search queries are refused.
    pub fn new(mut query: Query) -> Result<CompiledMetrics, MetricsError> {
        apply_default_rewrites(&mut query);
        let hint_exemplars = query.hints.iter().find_map(|h| match (&*h.name, &h.value) {
            ("exemplars", Static::Int(n)) if *n >= 0 => Some(*n as usize),
            _ => None,
        });
        match query.root {
            RootExpr::Metrics(root) => {
                let mut pipelines = Vec::new();
                collect_pipelines(&root, &mut pipelines);
                if pipelines.len() > MAX_FUNCTIONS_PER_QUERY {
                    return Err(MetricsError::TooManyFunctions {
                        functions: pipelines.len(),
                    });
                }
                Ok(CompiledMetrics {
                    root,
                    hint_exemplars,
                })
            }
            RootExpr::Pipeline(_) => Err(MetricsError::NotAMetricsQuery),
        }
    }

    /// Exemplars to return for a request asking for `requested`: the `with(exemplars=n)` hint
    /// wins, capped to [`MAX_EXEMPLARS`].
    pub fn exemplars(&self, requested: usize) -> usize {
        self.hint_exemplars.unwrap_or(requested).min(MAX_EXEMPLARS)
    }

    /// The optional parts of spans the query reads; block reads decode nothing else.
    pub fn needs(&self) -> Needs {
        needs_of(&self.root)
    }

    /// The span fields the query reads, when every one of them has a column of its own
    /// and the query relates no spans to each other (no structural operator, no trace-level
    /// intrinsic, no `compare()`): then blocks can feed it columns ([`SpanColumns`]) instead
    /// of traces. Always includes the span ID, which exemplars carry.
    ///
    /// [`SpanColumns`]: super::columns::SpanColumns
    pub fn span_fields(&self) -> Option<SpanFields> {
        let mut fields = SpanFields::from([SpanField::SpanId]);
        let mut leaves = Vec::new();
        collect_functions(&self.root, &mut leaves);
        for &(pipeline, function) in &leaves {
            if !pipeline.stages.iter().all(stage_reads_one_span) {
                return None;
            }
            let attributes = function_attributes(pipeline, function)?;
            for attribute in &attributes {
                if attribute.intrinsic == Some(Intrinsic::TraceId) && !attribute.parent {
                    continue;
                }
                fields.insert(SpanField::of(attribute)?);
            }
        }
        // Attributes the query only compares with string literals need only their strings.
        let names: Vec<String> = fields
            .iter()
            .filter_map(|field| match field {
                SpanField::SpanAttribute(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        for name in names {
            if leaves
                .iter()
                .all(|(pipeline, function)| only_string_compared(pipeline, function, &name))
            {
                fields.remove(&SpanField::SpanAttribute(name.clone()));
                fields.insert(SpanField::SpanAttributeStrings(name));
            }
        }
        Some(fields)
    }

    /// The pipelines whose spans feed the functions (for a storage pre-filter).
    pub fn pipelines(&self) -> Vec<&Pipeline> {
        let mut out = Vec::new();
        collect_pipelines(&self.root, &mut out);
        out
    }
}

/// What the pipelines, the functions and their `by()` of a metrics expression read;
/// `compare()` looks at every attribute.
fn needs_of(expr: &MetricsExpr) -> Needs {
    match expr {
        MetricsExpr::Query {
            pipeline, function, ..
        } => match function_attributes(pipeline, function) {
            Some(attributes) => Needs::of_attributes(&attributes),
            None => Needs::ALL,
        },
        MetricsExpr::Math { lhs, rhs, .. } => needs_of(lhs).or(needs_of(rhs)),
    }
}

/// What a pipeline, its function's argument and its `by()` read; `None` for `compare()`,
/// which reads every attribute.
fn function_attributes(pipeline: &Pipeline, function: &MetricsFunction) -> Option<Vec<Attribute>> {
    let mut attributes = referenced_attributes(pipeline);
    attributes.extend(function.by.iter().cloned());
    match &function.aggregate {
        MetricsAggregate::Compare { .. } => return None,
        MetricsAggregate::MinOverTime(a)
        | MetricsAggregate::MaxOverTime(a)
        | MetricsAggregate::AvgOverTime(a)
        | MetricsAggregate::SumOverTime(a)
        | MetricsAggregate::QuantileOverTime(a, _)
        | MetricsAggregate::HistogramOverTime(a) => attributes.push(a.clone()),
        MetricsAggregate::Rate | MetricsAggregate::CountOverTime => {}
    }
    Some(attributes)
}

/// Whether span attribute `name` appears in `pipeline` only as `span.<name> = "literal"`,
/// `"literal" = span.<name>` or `span.<name> =~ "literal"`, and nowhere in `function`: then a
/// value of another type answers like nil (`false`), so only its strings need reading.
fn only_string_compared(pipeline: &Pipeline, function: &MetricsFunction, name: &str) -> bool {
    let is_it = |attribute: &Attribute| {
        attribute.scope == AttributeScope::Span
            && !attribute.parent
            && attribute.intrinsic.is_none()
            && attribute.name == name
    };
    let argument = match &function.aggregate {
        MetricsAggregate::Compare { .. } => return false,
        MetricsAggregate::MinOverTime(a)
        | MetricsAggregate::MaxOverTime(a)
        | MetricsAggregate::AvgOverTime(a)
        | MetricsAggregate::SumOverTime(a)
        | MetricsAggregate::QuantileOverTime(a, _)
        | MetricsAggregate::HistogramOverTime(a) => Some(a),
        MetricsAggregate::Rate | MetricsAggregate::CountOverTime => None,
    };
    if function.by.iter().chain(argument).any(is_it) {
        return false;
    }
    fn strip_field(expr: &mut FieldExpr, is_it: &dyn Fn(&Attribute) -> bool) {
        let literal = |e: &FieldExpr| matches!(e, FieldExpr::Static(Static::String(_)));
        let attribute = |e: &FieldExpr| matches!(e, FieldExpr::Attribute(a) if is_it(a));
        match expr {
            FieldExpr::Binary { op, lhs, rhs }
                if (*op == BinaryOp::Eq
                    && ((attribute(lhs) && literal(rhs)) || (literal(lhs) && attribute(rhs))))
                    || (*op == BinaryOp::Regex && attribute(lhs) && literal(rhs)) =>
            {
                *expr = FieldExpr::Static(Static::Bool(true));
            }
            FieldExpr::Binary { lhs, rhs, .. } => {
                strip_field(lhs, is_it);
                strip_field(rhs, is_it);
            }
            FieldExpr::Unary { expr, .. } => strip_field(expr, is_it),
            FieldExpr::Static(_) | FieldExpr::Attribute(_) => {}
        }
    }
    fn strip_spanset(expr: &mut SpansetExpr, is_it: &dyn Fn(&Attribute) -> bool) {
        match expr {
            SpansetExpr::Filter(field) => strip_field(field, is_it),
            SpansetExpr::Op { lhs, rhs, .. } => {
                strip_spanset(lhs, is_it);
                strip_spanset(rhs, is_it);
            }
            SpansetExpr::Pipeline(pipeline) => strip_pipeline(pipeline, is_it),
        }
    }
    fn strip_pipeline(pipeline: &mut Pipeline, is_it: &dyn Fn(&Attribute) -> bool) {
        for stage in &mut pipeline.stages {
            if let Stage::Spanset(expr) = stage {
                strip_spanset(expr, is_it);
            }
        }
    }
    let mut stripped = pipeline.clone();
    strip_pipeline(&mut stripped, &is_it);
    !referenced_attributes(&stripped).iter().any(is_it)
}

fn collect_functions<'a>(
    expr: &'a MetricsExpr,
    out: &mut Vec<(&'a Pipeline, &'a MetricsFunction)>,
) {
    match expr {
        MetricsExpr::Query {
            pipeline, function, ..
        } => out.push((pipeline, function)),
        MetricsExpr::Math { lhs, rhs, .. } => {
            collect_functions(lhs, out);
            collect_functions(rhs, out);
        }
    }
}

/// A stage that judges spans one by one or spansets of one trace, never relating two spans
/// by their place in the tree.
fn stage_reads_one_span(stage: &Stage) -> bool {
    fn spanset(expr: &SpansetExpr) -> bool {
        match expr {
            SpansetExpr::Filter(_) => true,
            SpansetExpr::Op { op, lhs, rhs } => {
                matches!(op, SpansetOp::And | SpansetOp::Or) && spanset(lhs) && spanset(rhs)
            }
            SpansetExpr::Pipeline(pipeline) => pipeline.stages.iter().all(stage_reads_one_span),
        }
    }
    match stage {
        Stage::Spanset(expr) => spanset(expr),
        Stage::ScalarFilter(_) | Stage::GroupBy(_) | Stage::Coalesce | Stage::Aggregate(_) => true,
        Stage::Select(_) => false,
    }
}

fn collect_pipelines<'a>(expr: &'a MetricsExpr, out: &mut Vec<&'a Pipeline>) {
    match expr {
        MetricsExpr::Query { pipeline, .. } => out.push(pipeline),
        MetricsExpr::Math { lhs, rhs, .. } => {
            collect_pipelines(lhs, out);
            collect_pipelines(rhs, out);
        }
    }
}

/// A series while it is computed: labels, one value per interval, exemplars.
#[derive(Debug, Clone)]
struct Series {
    labels: Vec<(String, Static)>,
    values: Vec<f64>,
    exemplars: Vec<RawExemplar>,
    /// keep even without samples (compare()'s overflow flags)
    keep_empty: bool,
}

#[derive(Debug, Clone)]
struct RawExemplar {
    labels: Vec<(String, Static)>,
    /// NaN: take the data point's value
    value: f64,
    start_ns: u64,
}

/// Series keyed by their Prometheus text labels (Tempo's `SeriesSet`).
type SeriesSet = BTreeMap<String, Series>;

/// The points a running query holds, against [`MAX_POINTS_PER_QUERY`], and whether a group
/// was left out by [`MAX_SERIES`].
#[derive(Debug, Clone, Copy, Default)]
struct PointBudget {
    used: u64,
    /// a group or value was left out because the budget was spent
    exhausted: bool,
    /// a group was left out because its function already had [`MAX_SERIES`]
    series_capped: bool,
}

impl PointBudget {
    /// Takes `points` if they fit; otherwise marks the answer partial and refuses.
    fn take(&mut self, points: usize) -> bool {
        let points = points as u64;
        match self.used.checked_add(points) {
            Some(total) if total <= MAX_POINTS_PER_QUERY => {
                self.used = total;
                true
            }
            _ => {
                self.exhausted = true;
                false
            }
        }
    }
}

/// Per-interval accumulator of one group.
#[derive(Debug, Clone)]
enum Accumulator {
    /// rate, count_over_time, histogram_over_time bucket counts
    Count(Vec<f64>),
    Min(Vec<f64>),
    Max(Vec<f64>),
    Sum(Vec<f64>),
    /// (sum, count)
    Avg(Vec<(f64, f64)>),
    /// bucket upper bound (f64 bits) → count, per interval
    Buckets(Vec<BTreeMap<u64, u64>>),
}

#[derive(Debug, Clone)]
struct Group {
    by_values: Vec<Static>,
    /// `__bucket` of histogram_over_time
    bucket: Option<f64>,
    acc: Accumulator,
    exemplars: Vec<RawExemplar>,
}

/// Per attribute: value key → (value, counts per interval).
type ValueCounts = BTreeMap<String, HashMap<String, (Static, Vec<f64>)>>;

/// compare(): counts per attribute value, for the baseline and the selection.
#[derive(Debug, Default, Clone)]
struct CompareState {
    /// [baseline, selection]: attribute → value key → (value, counts)
    values: [ValueCounts; 2],
    totals: [BTreeMap<String, Vec<f64>>; 2],
    exemplars: [Vec<(Vec<String>, RawExemplar)>; 2],
}

/// State of one `<pipeline> | <function>` leaf of the expression.
#[derive(Debug, Clone)]
struct Leaf {
    pipeline: Pipeline,
    /// The pipeline's one filter when it is nothing else (`{ kind = server }`): it judges
    /// each span alone, without building spansets.
    filter: Option<FieldExpr>,
    /// Whether `filter` reads events or links (then each of them is tried).
    filter_reads_events_or_links: bool,
    /// The one attribute `filter` reads, when it reads one, and what it said for each code
    /// of that attribute's coded column (0 not yet judged, 1 false, 2 true): spans with the
    /// same value get the same answer.
    filter_of_code: Option<(Attribute, u64, Vec<u8>)>,
    function: MetricsFunction,
    /// The groups with their keys (the `by()` values and bucket as text), in creation order.
    groups: Vec<(String, Group)>,
    /// Group by key.
    group_of_key: HashMap<String, usize>,
    /// Groups by [`group_hash`] of their `by()` values and bucket: a span finds its group
    /// from values it borrows, without formatting a key.
    group_of_hash: HashMap<u64, Vec<usize>>,
    /// The group the previous span went to: spans in a row mostly share one (a trace's
    /// spans, one service).
    last_group: Option<usize>,
    /// For a single `by()` attribute read from a coded column: that column's identity and
    /// the group of each code met (`u32::MAX` where unknown yet).
    group_of_code: (u64, Vec<u32>),
    compare: CompareState,
    exemplars_taken: usize,
    exemplars_per_interval: Vec<usize>,
}

/// A hash of a group's `by()` values and bucket, consistent with [`Static::identical`].
fn group_hash<'a>(values: impl Iterator<Item = &'a Static>, bucket: Option<f64>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for value in values {
        value.hash_identity(&mut hasher);
    }
    bucket.map(f64::to_bits).hash(&mut hasher);
    hasher.finish()
}

/// A metrics query running over traces: feed every trace once, then [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub struct MetricsEvaluation {
    root: MetricsExpr,
    leaves: Vec<Leaf>,
    request: MetricsRequest,
    partial: bool,
    budget: PointBudget,
    /// Which spans of the trace being observed a leaf's pipeline selected (reused).
    matched: Vec<bool>,
    /// traces and spans looked at
    pub stats: QueryStats,
}

fn collect_leaves(expr: &MetricsExpr, request: &MetricsRequest, out: &mut Vec<Leaf>) {
    match expr {
        MetricsExpr::Query {
            pipeline, function, ..
        } => out.push(Leaf {
            filter: match pipeline.stages.as_slice() {
                [Stage::Spanset(SpansetExpr::Filter(filter))] => Some(filter.clone()),
                _ => None,
            },
            filter_reads_events_or_links: pipeline.stages.iter().any(|stage| {
                matches!(stage, Stage::Spanset(SpansetExpr::Filter(filter)) if reads_events_or_links(filter))
            }),
            filter_of_code: match (
                pipeline.stages.as_slice(),
                referenced_attributes(pipeline).as_slice(),
            ) {
                ([Stage::Spanset(SpansetExpr::Filter(_))], [attribute])
                    if !matches!(
                        attribute.scope,
                        AttributeScope::Event | AttributeScope::Link
                    ) && attribute.intrinsic.is_none_or(|intrinsic| {
                        matches!(
                            intrinsic,
                            Intrinsic::Name
                                | Intrinsic::StatusMessage
                                | Intrinsic::Kind
                                | Intrinsic::Status
                        )
                    }) =>
                {
                    Some((attribute.clone(), u64::MAX, Vec::new()))
                }
                _ => None,
            },
            pipeline: pipeline.clone(),
            function: function.clone(),
            groups: Vec::new(),
            group_of_key: HashMap::new(),
            group_of_hash: HashMap::new(),
            last_group: None,
            group_of_code: (u64::MAX, Vec::new()),
            compare: CompareState::default(),
            exemplars_taken: 0,
            exemplars_per_interval: vec![0; request.intervals()],
        }),
        MetricsExpr::Math { lhs, rhs, .. } => {
            collect_leaves(lhs, request, out);
            collect_leaves(rhs, request, out);
        }
    }
}

/// A span value as a number: durations in seconds, ints and floats as they are; anything
/// else (nil, strings, …) has none.
fn numeric(value: &Static) -> Option<f64> {
    match value {
        Static::Duration(nanos) => Some(*nanos as f64 / NANOS_PER_SECOND),
        Static::Int(i) => Some(*i as f64),
        Static::Float(f) if !f.is_nan() => Some(*f),
        _ => None,
    }
}

/// Rounds up to the next power of two (Tempo's `Log2Bucketize`).
fn log2_bucketize(value: u64) -> f64 {
    2f64.powf((value as f64).log2().ceil())
}

/// The histogram bucket of a value: ints as they are, durations in seconds; values below 2
/// and other types have none (the span is left out, as Tempo does).
fn bucket_of(value: &Static) -> Option<f64> {
    match value {
        Static::Int(i) if *i >= 2 => Some(log2_bucketize(*i as u64)),
        Static::Duration(d) if *d >= 2 => Some(log2_bucketize(*d as u64) / NANOS_PER_SECOND),
        _ => None,
    }
}

/// A quantile from power-of-two buckets sorted by upper bound, with exponential
/// interpolation inside the bucket (Tempo's `Log2Quantile`).
pub fn log2_quantile(p: f64, buckets: &[(f64, u64)]) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) || buckets.is_empty() {
        return 0.0;
    }
    let total_count: u64 = buckets.iter().map(|(_, c)| c).sum();
    if total_count == 0 {
        return 0.0;
    }
    let max_samples = ((p * total_count as f64).ceil() as u64).max(1);
    let mut total = 0u64;
    let mut bucket = 0usize;
    for (i, (max, count)) in buckets.iter().enumerate() {
        bucket = i;
        if total + count > max_samples {
            break;
        }
        total += count;
        if total == max_samples {
            return *max;
        }
    }
    let interp = (max_samples - total) as f64 / buckets[bucket].1 as f64;
    let max_v = buckets[bucket].0.log2();
    let min_v = if bucket > 0 {
        buckets[bucket - 1].0.log2()
    } else {
        max_v - 1.0
    };
    2f64.powf(min_v + (max_v - min_v) * interp)
}

/// Prometheus text of labels, sorted by name (Tempo's `Labels.String`): nil prints as
/// `<nil>`, an empty string as `<empty>`.
fn prom_labels(labels: &[(String, Static)]) -> String {
    let mut pairs: Vec<(&str, String)> = labels
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Static::Nil => "<nil>".to_string(),
                Static::String(s) if s.is_empty() => "<empty>".to_string(),
                Static::String(s) if s == "nil" => "<nil>".to_string(),
                other => label_text(other),
            };
            (k.as_str(), text)
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs.dedup_by(|a, b| a.0 == b.0);
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn label_text(value: &Static) -> String {
    match value {
        Static::String(s) => s.clone(),
        Static::Int(i) => i.to_string(),
        Static::Float(f) => f.to_string(),
        Static::Bool(b) => b.to_string(),
        Static::Duration(d) => format_go_duration(*d),
        Static::Status(s) => s.as_str().to_string(),
        Static::Kind(k) => k.as_str().to_string(),
        Static::Nil => "nil".to_string(),
        other => other.to_string(),
    }
}

/// A typed label value as the API sends it: durations, status and kind as strings; arrays
/// as their text.
fn label_value(value: &Static) -> LabelValue {
    match value {
        Static::Nil => LabelValue::Nil,
        Static::Int(i) => LabelValue::Int(*i),
        Static::Float(f) => LabelValue::Double(*f),
        Static::Bool(b) => LabelValue::Bool(*b),
        other => LabelValue::String(label_text(other)),
    }
}

fn to_labels(labels: &[(String, Static)]) -> Vec<Label> {
    labels
        .iter()
        .map(|(key, value)| Label {
            key: key.clone(),
            value: label_value(value),
        })
        .collect()
}

/// The string a label carries for an attribute: its canonical form (`resource.service.name`,
/// `span.http.status_code`, `name`, `.foo`).
fn attribute_label(attribute: &Attribute) -> String {
    attribute.to_string()
}

impl MetricsEvaluation {
    /// Starts evaluating `compiled` over `request`'s window.
    pub fn new(compiled: &CompiledMetrics, request: MetricsRequest) -> MetricsEvaluation {
        let mut leaves = Vec::new();
        collect_leaves(&compiled.root, &request, &mut leaves);
        MetricsEvaluation {
            root: compiled.root.clone(),
            leaves,
            request,
            partial: false,
            budget: PointBudget::default(),
            matched: Vec::new(),
            stats: QueryStats::default(),
        }
    }

    /// The window spans must start in, `(start, end]` ns.
    pub fn window(&self) -> (u64, u64) {
        (self.request.start, self.request.end)
    }

    /// Runs every leaf's pipeline on one trace and adds its matching spans (those starting in
    /// the window) to the series. Feed each trace once.
    pub fn observe_trace(
        &mut self,
        evaluator: &Evaluator,
        trace_id: &TraceId,
        trace: &Trace,
    ) -> Result<(), EvalError> {
        let (_, spans) = trace_spans(trace_id.to_trimmed_hex(), trace);
        self.observe_spans(evaluator, &spans)
    }

    /// [`observe_trace`](Self::observe_trace) over the spans of one trace, already built
    /// (whole, or read from a block's columns).
    pub fn observe_spans<S: MetricsSpan>(
        &mut self,
        evaluator: &Evaluator,
        spans: &[S],
    ) -> Result<(), EvalError> {
        if spans.is_empty() {
            return Ok(());
        }
        self.stats.inspected_traces = self.stats.inspected_traces.saturating_add(1);
        self.stats.inspected_spans += spans.len() as u64;
        let request = self.request;
        let mut matched = std::mem::take(&mut self.matched);
        for leaf_index in 0..self.leaves.len() {
            matched.clear();
            let leaf = &mut self.leaves[leaf_index];
            if let Some(filter) = &leaf.filter {
                let judge = |span: &S| match leaf.filter_reads_events_or_links {
                    true => evaluator.matches(filter, span),
                    false => evaluator.matches_span(filter, span),
                };
                for span in spans {
                    let coded =
                        leaf.filter_of_code
                            .as_mut()
                            .and_then(|(attribute, column, said)| {
                                let (of, code) = span.value_code(attribute)?;
                                if *column != of {
                                    *column = of;
                                    said.clear();
                                }
                                if said.len() <= code as usize {
                                    said.resize(code as usize + 1, 0);
                                }
                                Some(&mut said[code as usize])
                            });
                    match coded {
                        Some(said) if *said != 0 => matched.push(*said == 2),
                        Some(said) => {
                            let verdict = judge(span)?;
                            *said = if verdict { 2 } else { 1 };
                            matched.push(verdict);
                        }
                        None => matched.push(judge(span)?),
                    }
                }
            } else {
                let all = Spanset {
                    spans: (0..spans.len()).collect(),
                    ..Spanset::default()
                };
                let result =
                    evaluator.eval_pipeline(&self.leaves[leaf_index].pipeline, vec![all], spans)?;
                matched.resize(spans.len(), false);
                for set in &result {
                    for &index in &set.spans {
                        if let Some(flag) = matched.get_mut(index) {
                            *flag = true;
                        }
                    }
                }
            }
            let mut exemplar_taken = false;
            for (index, span) in spans.iter().enumerate() {
                if !matched[index] {
                    continue;
                }
                let Some(interval) = request.interval_of(span.start_ns()) else {
                    continue;
                };
                let leaf = &mut self.leaves[leaf_index];
                let want_exemplar = !exemplar_taken
                    && leaf.exemplars_taken < request.exemplars
                    && leaf.exemplars_per_interval[interval]
                        < request.exemplars.div_ceil(request.intervals()).max(2);
                let took = leaf.observe(
                    evaluator,
                    span,
                    interval,
                    want_exemplar,
                    &request,
                    &mut self.budget,
                );
                if took {
                    exemplar_taken = true;
                    leaf.exemplars_taken += 1;
                    leaf.exemplars_per_interval[interval] += 1;
                }
            }
        }
        self.matched = matched;
        Ok(())
    }

    /// Computes the series: functions, arithmetic, second stages; drops NaN points and empty
    /// series; caps the series count.
    pub fn finish(mut self) -> QueryRangeResponse {
        let mut leaves = std::mem::take(&mut self.leaves).into_iter();
        let set = evaluate(&self.root, &mut leaves, &self.request);
        let mut series: Vec<TimeSeries> = set
            .into_iter()
            .filter_map(|(key, s)| to_time_series(key, s, &self.request))
            .collect();
        if series.len() > MAX_SERIES {
            series.truncate(MAX_SERIES);
            self.partial = true;
        }
        let partial = if self.budget.exhausted {
            Some(format!(
                "Response exceeds maximum of {MAX_POINTS_PER_QUERY} points per query, a partial response is returned. Warning: the accuracy of each individual value is not guaranteed."
            ))
        } else {
            (self.partial || self.budget.series_capped).then(|| {
                format!(
                    "Response exceeds maximum series limit of {MAX_SERIES}, a partial response is returned. Warning: the accuracy of each individual value is not guaranteed."
                )
            })
        };
        QueryRangeResponse {
            series,
            metrics: self.stats,
            partial,
        }
    }

    /// [`finish`](Self::finish) for an instant query: one value per series.
    pub fn finish_instant(self) -> QueryInstantResponse {
        let range = self.finish();
        QueryInstantResponse {
            series: range
                .series
                .into_iter()
                .filter_map(|s| {
                    let value = s.samples.last()?.value;
                    Some(InstantSeries {
                        labels: s.labels,
                        value,
                        prom_labels: s.prom_labels,
                    })
                })
                .collect(),
            metrics: range.metrics,
            partial: range.partial,
        }
    }
}

fn to_time_series(key: String, series: Series, request: &MetricsRequest) -> Option<TimeSeries> {
    let samples: Vec<Sample> = series
        .values
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, v)| Sample {
            timestamp_ms: request.timestamp_ms(i),
            value: *v,
        })
        .collect();
    if samples.is_empty() && !series.keep_empty {
        return None;
    }
    let exemplars = series
        .exemplars
        .iter()
        .filter_map(|e| {
            let interval = request.interval_of(e.start_ns)?;
            let point = *series.values.get(interval)?;
            if point.is_nan() {
                return None;
            }
            let value = if e.value.is_nan() { point } else { e.value };
            Some(Exemplar {
                labels: to_labels(&e.labels),
                value,
                timestamp_ms: (e.start_ns / 1_000_000) as i64,
            })
        })
        .collect();
    Some(TimeSeries {
        labels: to_labels(&series.labels),
        samples,
        exemplars,
        prom_labels: key,
    })
}

impl Leaf {
    /// Whether group `index` holds the span's `by()` values and `bucket`.
    fn holds<S: MetricsSpan>(&self, index: usize, span: &S, bucket: Option<f64>) -> bool {
        let group = &self.groups[index].1;
        group.bucket.map(f64::to_bits) == bucket.map(f64::to_bits)
            && self
                .function
                .by
                .iter()
                .zip(&group.by_values)
                .all(|(attribute, value)| span.value_ref(attribute, 0, 0).identical(value))
    }

    /// The group of the span's `by()` values and `bucket`, started if new (when the series
    /// and point budgets allow).
    fn group_for<S: MetricsSpan>(
        &mut self,
        span: &S,
        bucket: Option<f64>,
        intervals: usize,
        budget: &mut PointBudget,
    ) -> Option<usize> {
        let coded = match self.function.by.as_slice() {
            [attribute] if bucket.is_none() => span.value_code(attribute),
            _ => None,
        };
        if let Some((column, code)) = coded {
            if self.group_of_code.0 != column {
                self.group_of_code.0 = column;
                self.group_of_code.1.clear();
            }
            if let Some(&group) = self.group_of_code.1.get(code as usize) {
                if group != u32::MAX {
                    return Some(group as usize);
                }
            }
            let group = self.group_by_value(span, bucket, intervals, budget)?;
            let codes = &mut self.group_of_code.1;
            if codes.len() <= code as usize {
                codes.resize(code as usize + 1, u32::MAX);
            }
            codes[code as usize] = group as u32;
            return Some(group);
        }
        self.group_by_value(span, bucket, intervals, budget)
    }

    /// [`group_for`](Self::group_for) by the span's values.
    fn group_by_value<S: MetricsSpan>(
        &mut self,
        span: &S,
        bucket: Option<f64>,
        intervals: usize,
        budget: &mut PointBudget,
    ) -> Option<usize> {
        if let Some(last) = self.last_group {
            if self.holds(last, span, bucket) {
                return Some(last);
            }
        }
        let hash = {
            let values: Vec<_> = self
                .function
                .by
                .iter()
                .map(|attribute| span.value_ref(attribute, 0, 0))
                .collect();
            group_hash(values.iter().map(|value| value.as_ref()), bucket)
        };
        if let Some(candidates) = self.group_of_hash.get(&hash) {
            if let Some(&found) = candidates
                .iter()
                .find(|&&index| self.holds(index, span, bucket))
            {
                self.last_group = Some(found);
                return Some(found);
            }
        }
        let by_values: Vec<Static> = self
            .function
            .by
            .iter()
            .map(|attribute| span.value(attribute, 0, 0))
            .collect();
        let mut key = format!("{by_values:?}");
        if matches!(
            self.function.aggregate,
            MetricsAggregate::HistogramOverTime(_)
        ) {
            key.push_str(&format!("|{:?}", bucket));
        }
        let index = match self.group_of_key.get(&key) {
            // Values that print alike (NaNs of other bits) share the group of their key.
            Some(&index) => index,
            None => {
                if self.groups.len() >= MAX_SERIES {
                    budget.series_capped = true;
                    return None;
                }
                // A quantile group becomes one series per quantile when the answer is built.
                let series_per_group = match &self.function.aggregate {
                    MetricsAggregate::QuantileOverTime(_, quantiles) => quantiles.len().max(1),
                    _ => 1,
                };
                if !budget.take(intervals.saturating_mul(series_per_group)) {
                    return None;
                }
                let acc = match &self.function.aggregate {
                    MetricsAggregate::Rate
                    | MetricsAggregate::CountOverTime
                    | MetricsAggregate::HistogramOverTime(_) => {
                        Accumulator::Count(vec![0.0; intervals])
                    }
                    MetricsAggregate::MinOverTime(_) => Accumulator::Min(vec![f64::NAN; intervals]),
                    MetricsAggregate::MaxOverTime(_) => Accumulator::Max(vec![f64::NAN; intervals]),
                    MetricsAggregate::SumOverTime(_) => Accumulator::Sum(vec![f64::NAN; intervals]),
                    MetricsAggregate::AvgOverTime(_) => {
                        Accumulator::Avg(vec![(0.0, 0.0); intervals])
                    }
                    _ => Accumulator::Buckets(vec![BTreeMap::new(); intervals]),
                };
                let index = self.groups.len();
                self.group_of_key.insert(key.clone(), index);
                self.groups.push((
                    key,
                    Group {
                        by_values,
                        bucket,
                        acc,
                        exemplars: Vec::new(),
                    },
                ));
                index
            }
        };
        self.group_of_hash.entry(hash).or_default().push(index);
        self.last_group = Some(index);
        Some(index)
    }

    /// Adds one span; returns whether it was taken as an exemplar.
    fn observe<S: MetricsSpan>(
        &mut self,
        evaluator: &Evaluator,
        span: &S,
        interval: usize,
        want_exemplar: bool,
        request: &MetricsRequest,
        budget: &mut PointBudget,
    ) -> bool {
        let intervals = request.intervals();
        if let MetricsAggregate::Compare {
            filter, start, end, ..
        } = &self.function.aggregate
        {
            // compare() reads every attribute: never asked of spans read from columns.
            let Some(span) = span.whole() else {
                return false;
            };
            return observe_compare(
                &mut self.compare,
                evaluator,
                span,
                (interval, intervals),
                (filter, *start, *end),
                want_exemplar,
                budget,
            );
        }
        let (value, bucket) = match &self.function.aggregate {
            MetricsAggregate::MinOverTime(a)
            | MetricsAggregate::MaxOverTime(a)
            | MetricsAggregate::AvgOverTime(a)
            | MetricsAggregate::SumOverTime(a) => (numeric(&span.value_ref(a, 0, 0)), None),
            MetricsAggregate::HistogramOverTime(a) | MetricsAggregate::QuantileOverTime(a, _) => {
                let raw = span.value_ref(a, 0, 0);
                match bucket_of(&raw) {
                    Some(b) => (numeric(&raw), Some(b)),
                    None => return false,
                }
            }
            _ => (None, None),
        };
        let histogram = matches!(
            self.function.aggregate,
            MetricsAggregate::HistogramOverTime(_)
        );
        let group_bucket = if histogram { bucket } else { None };
        let Some(group_index) = self.group_for(span, group_bucket, intervals, budget) else {
            return false;
        };
        let group = &mut self.groups[group_index].1;
        let counted = match &mut group.acc {
            Accumulator::Count(v) => {
                v[interval] += 1.0;
                true
            }
            Accumulator::Min(v) => value.is_some_and(|x| {
                if v[interval].is_nan() || x < v[interval] {
                    v[interval] = x;
                }
                true
            }),
            Accumulator::Max(v) => value.is_some_and(|x| {
                if v[interval].is_nan() || x > v[interval] {
                    v[interval] = x;
                }
                true
            }),
            Accumulator::Sum(v) => value.is_some_and(|x| {
                v[interval] = if v[interval].is_nan() {
                    x
                } else {
                    v[interval] + x
                };
                true
            }),
            Accumulator::Avg(v) => value.is_some_and(|x| {
                v[interval].0 += x;
                v[interval].1 += 1.0;
                true
            }),
            Accumulator::Buckets(v) => {
                if let Some(b) = bucket {
                    *v[interval].entry(b.to_bits()).or_default() += 1;
                }
                true
            }
        };
        if !(want_exemplar && counted) {
            return false;
        }
        let mut labels = span.exemplar_labels();
        for (attribute, value) in self.function.by.iter().zip(&group.by_values) {
            if *value != Static::Nil {
                labels.push((attribute_label(attribute), value.clone()));
            }
        }
        let exemplar_value = match &self.function.aggregate {
            MetricsAggregate::Rate
            | MetricsAggregate::CountOverTime
            | MetricsAggregate::HistogramOverTime(_) => f64::NAN,
            _ => value.unwrap_or(f64::NAN),
        };
        group.exemplars.push(RawExemplar {
            labels,
            value: exemplar_value,
            start_ns: span.start_ns(),
        });
        true
    }
}

/// compare(): counts every attribute value of the span on its side (selection when the
/// filter matches within the selection window, baseline otherwise).
fn observe_compare(
    compare: &mut CompareState,
    evaluator: &Evaluator,
    span: &SpanData,
    (interval, intervals): (usize, usize),
    (filter, start, end): (&FieldExpr, i64, i64),
    want_exemplar: bool,
    budget: &mut PointBudget,
) -> bool {
    let in_selection_window =
        (start <= 0 && end <= 0) || (span.start >= start as u64 && span.start < end as u64);
    // A failing filter (e.g. `!` on nil) puts the span in the baseline, as Tempo does.
    let selected = in_selection_window && evaluator.matches(filter, span).unwrap_or(false);
    let side = usize::from(selected);
    let mut attributes: Vec<(String, Static)> = vec![
        ("name".into(), Static::String(span.name.clone())),
        ("status".into(), Static::Status(span.status)),
        ("kind".into(), Static::Kind(span.kind)),
    ];
    if !span.status_message.is_empty() {
        attributes.push((
            "statusMessage".into(),
            Static::String(span.status_message.clone()),
        ));
    }
    for (key, value) in span.resource.iter() {
        attributes.push((format!("resource.{key}"), value.clone()));
    }
    for (key, value) in &span.attributes {
        attributes.push((format!("span.{key}"), value.clone()));
    }
    let mut names = Vec::new();
    for (name, value) in attributes {
        // Durations and arrays make no useful groups.
        if matches!(value, Static::Duration(_) | Static::Nil) || value.static_type().is_array() {
            continue;
        }
        // Every new value and attribute holds one point per interval: counted against the
        // query's budget, since distinct values come from the data, not the request.
        if !compare.totals[side].contains_key(&name) && !budget.take(intervals) {
            continue;
        }
        compare.totals[side]
            .entry(name.clone())
            .or_insert_with(|| vec![0.0; intervals])[interval] += 1.0;
        let values = compare.values[side].entry(name.clone()).or_default();
        let key = format!("{value:?}");
        if !values.contains_key(&key) && !budget.take(intervals) {
            continue;
        }
        values
            .entry(key)
            .or_insert_with(|| (value, vec![0.0; intervals]))
            .1[interval] += 1.0;
        names.push(name);
    }
    if !want_exemplar {
        return false;
    }
    compare.exemplars[side].push((
        names,
        RawExemplar {
            labels: exemplar_base_labels(span),
            value: f64::NAN,
            start_ns: span.start,
        },
    ));
    true
}

impl Leaf {
    /// The leaf's series before its second stage.
    fn series(self, request: &MetricsRequest) -> SeriesSet {
        let mut out = SeriesSet::new();
        let step_seconds = request.step as f64 / NANOS_PER_SECOND;
        let name = self.function.aggregate.name();
        if let MetricsAggregate::Compare { top_n, .. } = &self.function.aggregate {
            return compare_series(self.compare, (*top_n).max(1) as usize);
        }
        let quantiles = match &self.function.aggregate {
            MetricsAggregate::QuantileOverTime(_, q) => q.clone(),
            _ => Vec::new(),
        };
        // Quantile exemplars go to the series of the smallest quantile (over all data) at
        // least as large as their value, as Tempo assigns them.
        let overall_quantiles: Vec<f64> = if quantiles.is_empty() {
            Vec::new()
        } else {
            let mut all: BTreeMap<u64, u64> = BTreeMap::new();
            for (_, group) in &self.groups {
                if let Accumulator::Buckets(per_interval) = &group.acc {
                    for buckets in per_interval {
                        for (b, c) in buckets {
                            *all.entry(*b).or_default() += c;
                        }
                    }
                }
            }
            let sorted = sorted_buckets(&all);
            quantiles
                .iter()
                .map(|q| log2_quantile(*q, &sorted))
                .collect()
        };
        // In key order: values of different types can print alike (an integer 3 and a float
        // 3.0 are both "3") and then share a series, which must not depend on hash order.
        let mut groups = self.groups;
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, group) in groups {
            let mut labels: Vec<(String, Static)> = self
                .function
                .by
                .iter()
                .zip(&group.by_values)
                .filter(|(_, v)| **v != Static::Nil)
                .map(|(a, v)| (attribute_label(a), v.clone()))
                .collect();
            // Histogram and quantile series always carry a bucket label in Tempo, so an
            // all-nil group gets no placeholder and no `__name__`.
            let bucketed = matches!(
                self.function.aggregate,
                MetricsAggregate::HistogramOverTime(_) | MetricsAggregate::QuantileOverTime(..)
            );
            if labels.is_empty() && !bucketed {
                labels = match self.function.by.first() {
                    Some(first) => vec![(attribute_label(first), Static::String("nil".into()))],
                    None => vec![("__name__".into(), Static::String(name.into()))],
                };
            }
            if let Some(bucket) = group.bucket {
                labels.push(("__bucket".into(), Static::Float(bucket)));
            }
            let values: Vec<f64> = match group.acc {
                Accumulator::Count(v) => {
                    if matches!(self.function.aggregate, MetricsAggregate::Rate) {
                        v.iter().map(|c| c / step_seconds).collect()
                    } else {
                        v
                    }
                }
                Accumulator::Min(v) | Accumulator::Max(v) | Accumulator::Sum(v) => v,
                Accumulator::Avg(v) => v
                    .iter()
                    .map(|(s, c)| if *c == 0.0 { f64::NAN } else { s / c })
                    .collect(),
                Accumulator::Buckets(per_interval) => {
                    for (qi, q) in quantiles.iter().enumerate() {
                        let mut q_labels = labels.clone();
                        q_labels.push(("p".into(), Static::Float(*q)));
                        // An interval without spans has no quantile (NaN, dropped), where
                        // Tempo reports 0.
                        let values = per_interval
                            .iter()
                            .map(|buckets| {
                                if buckets.is_empty() {
                                    f64::NAN
                                } else {
                                    log2_quantile(*q, &sorted_buckets(buckets))
                                }
                            })
                            .collect();
                        let exemplars = group
                            .exemplars
                            .iter()
                            .filter(|e| {
                                let target = overall_quantiles
                                    .iter()
                                    .position(|t| e.value <= *t)
                                    .unwrap_or(overall_quantiles.len().saturating_sub(1));
                                target == qi
                            })
                            .cloned()
                            .collect();
                        insert(
                            &mut out,
                            Series {
                                labels: q_labels,
                                values,
                                exemplars,
                                keep_empty: false,
                            },
                        );
                    }
                    continue;
                }
            };
            insert(
                &mut out,
                Series {
                    labels,
                    values,
                    exemplars: group.exemplars,
                    keep_empty: false,
                },
            );
        }
        out
    }
}

/// A span as metrics read it: what pipelines and `by()` read (through [`SpanView`]), its
/// start, and the IDs an exemplar carries.
pub trait MetricsSpan: SpanView {
    /// Start, Unix ns.
    fn start_ns(&self) -> u64;
    /// `trace:id` and `span:id` labels of an exemplar taken from this span.
    fn exemplar_labels(&self) -> Vec<(String, Static)>;
    /// The whole span, for `compare()` (which reads every attribute); `None` for spans read
    /// from a block's columns, which such queries never use.
    fn whole(&self) -> Option<&SpanData>;
    /// Where the span's value of `attr` is coded once per distinct value (a column of a
    /// batch read from a block): the column's identity, unique for the process's life, and
    /// the value's code in it. Spans with the same identity and code hold identical values.
    fn value_code(&self, _attr: &Attribute) -> Option<(u64, u32)> {
        None
    }
}

impl MetricsSpan for ColumnSpan<'_> {
    fn start_ns(&self) -> u64 {
        ColumnSpan::start_ns(self)
    }

    fn exemplar_labels(&self) -> Vec<(String, Static)> {
        ColumnSpan::exemplar_labels(self)
    }

    fn whole(&self) -> Option<&SpanData> {
        None
    }

    fn value_code(&self, attr: &Attribute) -> Option<(u64, u32)> {
        ColumnSpan::value_code(self, attr)
    }
}

impl MetricsSpan for SpanData {
    fn start_ns(&self) -> u64 {
        self.start
    }

    fn exemplar_labels(&self) -> Vec<(String, Static)> {
        exemplar_base_labels(self)
    }

    fn whole(&self) -> Option<&SpanData> {
        Some(self)
    }
}

fn exemplar_base_labels(span: &SpanData) -> Vec<(String, Static)> {
    vec![
        (
            "trace:id".into(),
            Static::String(span.trace.trace_id_hex.clone()),
        ),
        ("span:id".into(), Static::String(span.span_id.clone())),
    ]
}

fn sorted_buckets(buckets: &BTreeMap<u64, u64>) -> Vec<(f64, u64)> {
    let mut sorted: Vec<(f64, u64)> = buckets
        .iter()
        .map(|(b, c)| (f64::from_bits(*b), *c))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted
}

fn insert(set: &mut SeriesSet, series: Series) {
    set.insert(prom_labels(&series.labels), series);
}

fn compare_series(state: CompareState, top_n: usize) -> SeriesSet {
    const META: [&str; 2] = ["baseline", "selection"];
    const TOTAL: [&str; 2] = ["baseline_total", "selection_total"];
    let mut out = SeriesSet::new();
    let mut overflow: BTreeMap<String, ()> = BTreeMap::new();
    let CompareState {
        values,
        totals,
        exemplars,
    } = state;
    for (side, per_attribute) in values.into_iter().enumerate() {
        for (attribute, per_value) in per_attribute {
            if per_value.len() > top_n {
                overflow.insert(attribute.clone(), ());
            }
            let mut ranked: Vec<(f64, String, Static, Vec<f64>)> = per_value
                .into_iter()
                .map(|(key, (value, counts))| (counts.iter().sum(), key, value, counts))
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            for (_, _, value, counts) in ranked.into_iter().take(top_n) {
                insert(
                    &mut out,
                    Series {
                        labels: vec![
                            ("__meta_type".into(), Static::String(META[side].into())),
                            (attribute.clone(), value),
                        ],
                        values: counts,
                        exemplars: Vec::new(),
                        keep_empty: false,
                    },
                );
            }
        }
    }
    for attribute in overflow.into_keys() {
        insert(
            &mut out,
            Series {
                labels: vec![
                    (
                        "__meta_error".into(),
                        Static::String("__too_many_values__".into()),
                    ),
                    (attribute, Static::Nil),
                ],
                values: Vec::new(),
                exemplars: Vec::new(),
                keep_empty: true,
            },
        );
    }
    let mut total_keys: [BTreeMap<String, String>; 2] = Default::default();
    for (side, per_attribute) in totals.into_iter().enumerate() {
        for (attribute, counts) in per_attribute {
            let labels = vec![
                ("__meta_type".into(), Static::String(TOTAL[side].into())),
                (attribute.clone(), Static::Nil),
            ];
            let key = prom_labels(&labels);
            total_keys[side].insert(attribute, key);
            insert(
                &mut out,
                Series {
                    labels,
                    values: counts,
                    exemplars: Vec::new(),
                    keep_empty: false,
                },
            );
        }
    }
    for (side, list) in exemplars.into_iter().enumerate() {
        for (names, exemplar) in list {
            for name in names {
                if let Some(series) = total_keys[side].get(&name).and_then(|k| out.get_mut(k)) {
                    series.exemplars.push(exemplar.clone());
                }
            }
        }
    }
    out
}

/// Evaluates an expression node; leaves are taken in the order `collect_leaves` listed them.
fn evaluate(
    expr: &MetricsExpr,
    leaves: &mut impl Iterator<Item = Leaf>,
    request: &MetricsRequest,
) -> SeriesSet {
    match expr {
        MetricsExpr::Query { second_stage, .. } => {
            let set = leaves
                .next()
                .map(|leaf| leaf.series(request))
                .unwrap_or_default();
            apply_second_stage(set, second_stage, request.intervals())
        }
        MetricsExpr::Math {
            op,
            lhs,
            rhs,
            second_stage,
        } => {
            let left = evaluate(lhs, leaves, request);
            let right = evaluate(rhs, leaves, request);
            apply_second_stage(math(*op, left, right), second_stage, request.intervals())
        }
    }
}

fn arithmetic(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div if b == 0.0 => f64::NAN,
        BinaryOp::Div => a / b,
        _ => f64::NAN,
    }
}

fn unlabelled(set: &SeriesSet) -> Option<&Series> {
    match set.values().next() {
        Some(series) if set.len() == 1 && series.labels.iter().all(|(k, _)| k == "__name__") => {
            Some(series)
        }
        _ => None,
    }
}

/// Series arithmetic: series with the same labels are combined; a side with no labels (a
/// query without `by()`) applies to every series of the other; a missing point is NaN.
fn math(op: BinaryOp, left: SeriesSet, right: SeriesSet) -> SeriesSet {
    let combine = |a: &[f64], b: &[f64]| -> Vec<f64> {
        (0..a.len().max(b.len()))
            .map(|i| {
                let x = a.get(i).copied().unwrap_or(f64::NAN);
                let y = b.get(i).copied().unwrap_or(f64::NAN);
                arithmetic(op, x, y)
            })
            .collect()
    };
    if let Some(r) = unlabelled(&right).cloned() {
        return left
            .into_iter()
            .map(|(k, mut s)| {
                s.values = combine(&s.values, &r.values);
                (k, s)
            })
            .collect();
    }
    if let Some(l) = unlabelled(&left).cloned() {
        return right
            .into_iter()
            .map(|(k, mut s)| {
                s.values = combine(&l.values, &s.values);
                s.exemplars = l.exemplars.clone();
                (k, s)
            })
            .collect();
    }
    left.into_iter()
        .filter_map(|(k, mut s)| {
            let r = right.get(&k)?;
            s.values = combine(&s.values, &r.values);
            Some((k, s))
        })
        .collect()
}

fn passes(op: BinaryOp, value: f64, threshold: f64) -> bool {
    match op {
        BinaryOp::Eq => value == threshold,
        BinaryOp::Neq => value != threshold,
        BinaryOp::Lt => value < threshold,
        BinaryOp::Lte => value <= threshold,
        BinaryOp::Gt => value > threshold,
        BinaryOp::Gte => value >= threshold,
        _ => false,
    }
}

fn apply_second_stage(mut set: SeriesSet, ops: &[SecondStageOp], intervals: usize) -> SeriesSet {
    for op in ops {
        set = match op {
            SecondStageOp::TopK(k) => top_k(set, (*k).max(0) as usize, intervals, true),
            SecondStageOp::BottomK(k) => top_k(set, (*k).max(0) as usize, intervals, false),
            SecondStageOp::Filter { op, value } => set
                .into_iter()
                .map(|(key, mut s)| {
                    for v in &mut s.values {
                        if !passes(*op, *v, *value) {
                            *v = f64::NAN;
                        }
                    }
                    (key, s)
                })
                .collect(),
            SecondStageOp::Scalar {
                op,
                value,
                scalar_on_left,
            } => set
                .into_iter()
                .map(|(key, mut s)| {
                    for v in &mut s.values {
                        *v = if *scalar_on_left {
                            arithmetic(*op, *value, *v)
                        } else {
                            arithmetic(*op, *v, *value)
                        };
                    }
                    (key, s)
                })
                .collect(),
        };
    }
    set
}

/// `topk(k)` / `bottomk(k)`, per interval: at each step only the k largest (smallest)
/// values stay, so more than k series can remain overall. Ties go to the first series in
/// label order.
fn top_k(set: SeriesSet, k: usize, intervals: usize, largest: bool) -> SeriesSet {
    let mut keep: HashMap<String, Vec<f64>> = HashMap::new();
    for i in 0..intervals {
        let mut points: Vec<(&String, f64)> = set
            .iter()
            .filter_map(|(key, s)| s.values.get(i).map(|v| (key, *v)))
            .filter(|(_, v)| !v.is_nan())
            .collect();
        points.sort_by(|a, b| {
            let order = a.1.total_cmp(&b.1);
            let order = if largest { order.reverse() } else { order };
            order.then_with(|| a.0.cmp(b.0))
        });
        for (key, value) in points.into_iter().take(k) {
            keep.entry(key.clone())
                .or_insert_with(|| vec![f64::NAN; intervals])[i] = value;
        }
    }
    set.into_iter()
        .filter_map(|(key, mut s)| {
            let values = keep.remove(&key)?;
            s.values = values;
            Some((key, s))
        })
        .collect()
}

#[cfg(test)]
mod tests;
