//! Search over whole traces: runs a validated spanset pipeline on one trace and answers a
//! match as Tempo's `TraceSearchMetadata` values, rendered as its proto3 JSON here and as
//! protobuf by the API (reference/tempo-api.md §2.0, §2.6). CPU only;
//! the querier feeds it traces from the head and the blocks.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::ast::*;
use super::eval::{referenced_attributes, EvalError, Evaluator, Spanset};
use super::rewrite::apply_default_rewrites;
use super::span::{trace_spans, SpanData};
use super::static_value::{format_go_duration, Static, Status};
use crate::model::{Trace, TraceId};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

/// `rootServiceName` of a trace whose root span has not arrived (Tempo's placeholder).
pub const ROOT_SPAN_NOT_YET_RECEIVED: &str = "<root span not yet received>";

/// A query ready to run on many traces.
#[derive(Debug, Clone)]
pub struct CompiledSearch {
    pipeline: Pipeline,
    /// The conditions of the query's filters, each with the attributes it reads. A listed
    /// span shows the attributes of the conditions it satisfies, as Tempo's column
    /// iterators fetch them; a satisfied condition on `name` shows the span's name.
    conditions: Vec<(FieldExpr, Vec<Attribute>)>,
    /// `select()` attributes: always listed, `nil` when the span lacks them.
    selected: Vec<Attribute>,
    /// `by()` attributes: listed when the span has them.
    grouped: Vec<Attribute>,
    metadata_only: bool,
}

/// Limits and trace-level conditions of one search.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    /// Spans listed per spanset (Tempo's `spss`); 0 means the default 3.
    pub spans_per_spanset: usize,
    /// Only traces overlapping `[start, end]`, Unix ns.
    pub window: Option<(u64, u64)>,
    /// Trace duration at least this many ns.
    pub min_duration: Option<u64>,
    /// Trace duration at most this many ns.
    pub max_duration: Option<u64>,
}

impl Default for SearchOptions {
    fn default() -> SearchOptions {
        SearchOptions {
            spans_per_spanset: 3,
            window: None,
            min_duration: None,
            max_duration: None,
        }
    }
}

/// One matching trace: Tempo's `TraceSearchMetadata`, as values. [`Self::to_json`] renders
/// the HTTP API's proto3 JSON; the API renders the same values as protobuf for gRPC.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSearchMetadata {
    /// Lowercase hex, leading zeros trimmed (Tempo's form).
    pub trace_id: String,
    /// The root span's service, or [`ROOT_SPAN_NOT_YET_RECEIVED`].
    pub root_service_name: String,
    /// The root span's name; empty when unknown (left out of the answer).
    pub root_trace_name: String,
    /// Earliest span start, Unix ns; 0 is left out of the answer.
    pub start_time_unix_nano: u64,
    /// Whole milliseconds from the first start to the last end; 0 is left out.
    pub duration_ms: u64,
    /// The matching spansets and spans per service; `None` for metadata-only answers.
    pub matches: Option<TraceMatches>,
}

/// What matched in a trace, and its spans per service.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceMatches {
    pub span_sets: Vec<SpanSetMatch>,
    /// Spans and error spans per `service.name` (empty name for spans without one).
    pub service_stats: BTreeMap<String, ServiceStats>,
}

/// Spans of one service in a matching trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    pub span_count: u64,
    /// 0 is left out of the answer.
    pub error_count: u64,
}

/// One matching spanset: up to `spss` of its spans, how many matched, and the values it was
/// grouped by.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSetMatch {
    pub spans: Vec<SpanMatch>,
    pub matched: u64,
    /// `by()` values; nil values are left out of the answer.
    pub attributes: Vec<(String, Static)>,
}

/// One listed span of a spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanMatch {
    /// 16 lowercase hex characters.
    pub span_id: String,
    /// The span's name when the query matched or selected it; empty otherwise (left out).
    pub name: String,
    /// Unix ns; 0 is left out.
    pub start_time_unix_nano: u64,
    /// ns; 0 is left out.
    pub duration_nanos: u64,
    /// The attributes the query's conditions matched, selected or grouped by; a nil value
    /// is listed as the string `nil`, as Tempo does.
    pub attributes: Vec<(String, Static)>,
}

/// Adds `attributes` as rendered by `render` (those it leaves out are not listed), unless
/// none is left.
fn insert_attributes(
    object: &mut Map<String, Value>,
    attributes: &[(String, Static)],
    render: fn(&str, &Static) -> Option<Value>,
) {
    let rendered: Vec<Value> = attributes
        .iter()
        .filter_map(|(key, value)| render(key, value))
        .collect();
    if !rendered.is_empty() {
        object.insert("attributes".into(), Value::Array(rendered));
    }
}

/// One matching trace and its start (to order results).
#[derive(Debug, Clone)]
pub struct TraceMatch {
    /// Earliest span start, Unix ns.
    pub start: u64,
    pub metadata: TraceSearchMetadata,
}

impl TraceSearchMetadata {
    /// Tempo's proto3 JSON of the answer: fields left out as Tempo leaves them out.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("traceID".into(), json!(self.trace_id));
        object.insert("rootServiceName".into(), json!(self.root_service_name));
        if !self.root_trace_name.is_empty() {
            object.insert("rootTraceName".into(), json!(self.root_trace_name));
        }
        if self.start_time_unix_nano != 0 {
            object.insert(
                "startTimeUnixNano".into(),
                json!(self.start_time_unix_nano.to_string()),
            );
        }
        if self.duration_ms != 0 {
            object.insert("durationMs".into(), json!(self.duration_ms));
        }
        if let Some(matches) = &self.matches {
            let sets: Vec<Value> = matches
                .span_sets
                .iter()
                .map(SpanSetMatch::to_json)
                .collect();
            object.insert("spanSets".into(), Value::Array(sets));
            let mut stats = Map::new();
            for (service, counts) in &matches.service_stats {
                let mut entry = Map::new();
                entry.insert("spanCount".into(), json!(counts.span_count));
                if counts.error_count != 0 {
                    entry.insert("errorCount".into(), json!(counts.error_count));
                }
                stats.insert(service.clone(), Value::Object(entry));
            }
            object.insert("serviceStats".into(), Value::Object(stats));
        }
        Value::Object(object)
    }
}

impl SpanSetMatch {
    fn to_json(&self) -> Value {
        let mut object = Map::new();
        if !self.spans.is_empty() {
            let spans = self.spans.iter().map(SpanMatch::to_json).collect();
            object.insert("spans".into(), Value::Array(spans));
        }
        object.insert("matched".into(), json!(self.matched));
        insert_attributes(&mut object, &self.attributes, key_value);
        Value::Object(object)
    }

    /// The grouping values as OTLP key-values, nil values left out (what `to_json` lists).
    pub fn key_values(&self) -> Vec<KeyValue> {
        self.attributes
            .iter()
            .filter_map(|(key, value)| proto_key_value(key, value))
            .collect()
    }
}

impl SpanMatch {
    fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("spanID".into(), json!(self.span_id));
        if !self.name.is_empty() {
            object.insert("name".into(), json!(self.name));
        }
        if self.start_time_unix_nano != 0 {
            object.insert(
                "startTimeUnixNano".into(),
                json!(self.start_time_unix_nano.to_string()),
            );
        }
        if self.duration_nanos != 0 {
            object.insert(
                "durationNanos".into(),
                json!(self.duration_nanos.to_string()),
            );
        }
        insert_attributes(&mut object, &self.attributes, listed_key_value);
        Value::Object(object)
    }

    /// The listed attributes as OTLP key-values, nil as the string `nil` (what `to_json`
    /// lists).
    pub fn key_values(&self) -> Vec<KeyValue> {
        self.attributes
            .iter()
            .filter_map(|(key, value)| match value {
                Static::Nil => proto_key_value(key, &Static::String("nil".into())),
                other => proto_key_value(key, other),
            })
            .collect()
    }
}

impl CompiledSearch {
    /// Prepares a validated query for search: applies the default rewrites and normalises
    /// `trace:id` literals (leading zeros dropped, lowercase). Metrics queries are refused.
    pub fn new(mut query: Query) -> Result<CompiledSearch, EvalError> {
        apply_default_rewrites(&mut query);
        let RootExpr::Pipeline(mut pipeline) = query.root else {
            return Err(EvalError::Unsupported(
                "metrics queries are served by /api/metrics, not search".into(),
            ));
        };
        normalise_pipeline(&mut pipeline);
        let mut conditions = Vec::new();
        let mut selected = Vec::new();
        let mut grouped = Vec::new();
        collect_listed(&pipeline, &mut conditions, &mut selected, &mut grouped);
        Ok(CompiledSearch {
            pipeline,
            conditions,
            selected,
            grouped,
            metadata_only: false,
        })
    }

    /// A necessary condition on matching traces, for block reads that skip the others.
    pub fn prefilter(&self) -> super::prefilter::TraceFilter {
        super::prefilter::TraceFilter::from_pipeline(&self.pipeline)
    }

    /// The optional parts of spans the query reads; block reads decode nothing else.
    pub fn needs(&self) -> super::prefilter::Needs {
        super::prefilter::Needs::of_attributes(&referenced_attributes(&self.pipeline))
    }

    /// Answers with trace metadata only (no `spanSets`, no `serviceStats`), as Tempo does for
    /// legacy `tags` searches.
    pub fn metadata_only(mut self) -> CompiledSearch {
        self.metadata_only = true;
        self
    }

    /// Whether the query matches any span of a trace already turned into spans, without
    /// rendering an answer: the ingester's sampling rules test many traces against one query.
    pub fn matches_spans(
        &self,
        evaluator: &Evaluator,
        spans: &[SpanData],
    ) -> Result<bool, EvalError> {
        if spans.is_empty() {
            return Ok(false);
        }
        let all = Spanset {
            spans: (0..spans.len()).collect(),
            ..Spanset::default()
        };
        let result = evaluator.eval_pipeline(&self.pipeline, vec![all], spans)?;
        Ok(result.iter().any(|set| !set.spans.is_empty()))
    }

    /// Runs the query on one trace; `Some` when it matches (and passes the trace-level
    /// conditions of `options`).
    pub fn run(
        &self,
        evaluator: &Evaluator,
        trace_id: &TraceId,
        trace: &Trace,
        options: &SearchOptions,
    ) -> Result<Option<TraceMatch>, EvalError> {
        let (info, spans) = trace_spans(trace_id.to_trimmed_hex(), trace);
        if spans.is_empty() {
            return Ok(None);
        }
        let end = info.start.saturating_add(info.duration);
        if let Some((from, to)) = options.window {
            if info.start > to || end < from {
                return Ok(None);
            }
        }
        if options.min_duration.is_some_and(|min| info.duration < min)
            || options.max_duration.is_some_and(|max| info.duration > max)
        {
            return Ok(None);
        }
        let all = Spanset {
            spans: (0..spans.len()).collect(),
            ..Spanset::default()
        };
        let result = evaluator.eval_pipeline(&self.pipeline, vec![all], &spans)?;
        let result: Vec<Spanset> = result.into_iter().filter(|s| !s.spans.is_empty()).collect();
        if result.is_empty() {
            return Ok(None);
        }
        let spss = if options.spans_per_spanset == 0 {
            3
        } else {
            options.spans_per_spanset
        };
        let mut metadata = TraceSearchMetadata {
            trace_id: info.trace_id_hex.clone(),
            root_service_name: info
                .root_service
                .clone()
                .unwrap_or_else(|| ROOT_SPAN_NOT_YET_RECEIVED.to_string()),
            root_trace_name: info.root_name.clone().unwrap_or_default(),
            start_time_unix_nano: info.start,
            duration_ms: info.duration / 1_000_000,
            matches: None,
        };
        if !self.metadata_only {
            metadata.matches = Some(TraceMatches {
                span_sets: result
                    .iter()
                    .map(|set| self.spanset_match(evaluator, set, &spans, spss))
                    .collect(),
                service_stats: service_stats(&spans),
            });
        }
        Ok(Some(TraceMatch {
            start: info.start,
            metadata,
        }))
    }

    fn spanset_match(
        &self,
        evaluator: &Evaluator,
        set: &Spanset,
        spans: &[SpanData],
        spss: usize,
    ) -> SpanSetMatch {
        SpanSetMatch {
            spans: set
                .spans
                .iter()
                .take(spss)
                .filter_map(|&index| spans.get(index))
                .map(|span| self.span_match(evaluator, span))
                .collect(),
            matched: set.spans.len() as u64,
            attributes: set.attributes.clone(),
        }
    }

    fn span_match(&self, evaluator: &Evaluator, span: &SpanData) -> SpanMatch {
        use super::eval::SpanView;
        let mut show_name = false;
        let mut listed: Vec<(String, Static)> = Vec::new();
        let mut list = |key: &str, value: Static| {
            if !listed.iter().any(|(known, _)| known == key) {
                listed.push((key.to_string(), value));
            }
        };
        for (condition, attributes) in &self.conditions {
            // A condition that fails to evaluate on this span is not satisfied by it.
            if !evaluator.matches(condition, span).unwrap_or(false) {
                continue;
            }
            for attribute in attributes {
                if attribute.intrinsic == Some(Intrinsic::Name) {
                    show_name = true;
                } else if is_listed(attribute) {
                    let value = matched_value(condition, attribute, span.value(attribute, 0, 0));
                    list(&attribute.name, value);
                }
            }
        }
        for attribute in &self.selected {
            if attribute.intrinsic == Some(Intrinsic::Name) {
                show_name = true;
            } else if is_listed(attribute) {
                list(&attribute.name, span.value(attribute, 0, 0));
            }
        }
        for attribute in &self.grouped {
            let value = span.value(attribute, 0, 0);
            if is_listed(attribute) && value != Static::Nil {
                list(&attribute.name, value);
            }
        }
        SpanMatch {
            span_id: format!("{:0>16}", span.span_id),
            name: if show_name {
                span.name.clone()
            } else {
                String::new()
            },
            start_time_unix_nano: span.start,
            duration_nanos: span.duration,
            attributes: listed,
        }
    }
}

/// Whether a span's answer lists this attribute: span values (attributes, `status`,
/// `kind`, `statusMessage`, event, link and scope values), never the span's own numbers
/// (`duration`, IDs, nested-set positions) or trace-level values, which Tempo's answer
/// carries elsewhere.
fn is_listed(attribute: &Attribute) -> bool {
    !attribute.parent
        && !matches!(
            attribute.intrinsic,
            Some(
                Intrinsic::Name
                    | Intrinsic::Duration
                    | Intrinsic::RootName
                    | Intrinsic::RootServiceName
                    | Intrinsic::TraceDuration
                    | Intrinsic::TraceId
                    | Intrinsic::SpanId
                    | Intrinsic::SpanParentId
                    | Intrinsic::SpanChildCount
                    | Intrinsic::NestedSetLeft
                    | Intrinsic::NestedSetRight
                    | Intrinsic::NestedSetParent
                    | Intrinsic::Parent
            )
        )
}

/// The value a satisfied condition lists: for an array attribute compared with a literal,
/// the first element that satisfies the comparison (as Tempo, which tests arrays element by
/// element); otherwise the span's value.
fn matched_value(condition: &FieldExpr, attribute: &Attribute, value: Static) -> Static {
    let FieldExpr::Binary { op, lhs, rhs } = condition else {
        return value;
    };
    let literal = match (&**lhs, &**rhs) {
        (FieldExpr::Attribute(a), FieldExpr::Static(literal)) if a == attribute => literal,
        (FieldExpr::Static(literal), FieldExpr::Attribute(a)) if a == attribute => literal,
        _ => return value,
    };
    let elements: Vec<Static> = match &value {
        Static::IntArray(v) => v.iter().map(|x| Static::Int(*x)).collect(),
        Static::FloatArray(v) => v.iter().map(|x| Static::Float(*x)).collect(),
        Static::StringArray(v) => v.iter().map(|x| Static::String(x.clone())).collect(),
        Static::BoolArray(v) => v.iter().map(|x| Static::Bool(*x)).collect(),
        _ => return value,
    };
    let attribute_first = matches!(&**lhs, FieldExpr::Attribute(_));
    elements
        .into_iter()
        .find(|element| {
            let outcome = if attribute_first {
                Static::binary_op(*op, element, literal)
            } else {
                Static::binary_op(*op, literal, element)
            };
            matches!(outcome, Ok(Static::Bool(true)))
        })
        .unwrap_or(value)
}

/// The conditions, `select()` and `by()` attributes of a pipeline, nested ones included.
fn collect_listed(
    pipeline: &Pipeline,
    conditions: &mut Vec<(FieldExpr, Vec<Attribute>)>,
    selected: &mut Vec<Attribute>,
    grouped: &mut Vec<Attribute>,
) {
    fn spanset(
        expr: &SpansetExpr,
        conditions: &mut Vec<(FieldExpr, Vec<Attribute>)>,
        selected: &mut Vec<Attribute>,
        grouped: &mut Vec<Attribute>,
    ) {
        match expr {
            SpansetExpr::Filter(field) => split_conditions(field, conditions),
            SpansetExpr::Op { lhs, rhs, .. } => {
                spanset(lhs, conditions, selected, grouped);
                spanset(rhs, conditions, selected, grouped);
            }
            SpansetExpr::Pipeline(pipeline) => {
                collect_listed(pipeline, conditions, selected, grouped)
            }
        }
    }
    for stage in &pipeline.stages {
        match stage {
            Stage::Spanset(expr) => spanset(expr, conditions, selected, grouped),
            Stage::Select(attributes) => {
                for attribute in attributes {
                    if !selected.contains(attribute) {
                        selected.push(attribute.clone());
                    }
                }
            }
            Stage::GroupBy(expr) => {
                let mut attributes = Vec::new();
                field_attributes(expr, &mut attributes);
                for attribute in attributes {
                    if !grouped.contains(&attribute) {
                        grouped.push(attribute);
                    }
                }
            }
            Stage::ScalarFilter(_) | Stage::Coalesce | Stage::Aggregate(_) => {}
        }
    }
}

/// Splits a filter at its `&&` and `||` into the conditions a span satisfies one by one.
fn split_conditions(expr: &FieldExpr, conditions: &mut Vec<(FieldExpr, Vec<Attribute>)>) {
    if let FieldExpr::Binary {
        op: BinaryOp::And | BinaryOp::Or,
        lhs,
        rhs,
    } = expr
    {
        split_conditions(lhs, conditions);
        split_conditions(rhs, conditions);
        return;
    }
    let mut attributes = Vec::new();
    field_attributes(expr, &mut attributes);
    if !attributes.is_empty() {
        conditions.push((expr.clone(), attributes));
    }
}

fn field_attributes(expr: &FieldExpr, out: &mut Vec<Attribute>) {
    match expr {
        FieldExpr::Static(_) => {}
        FieldExpr::Attribute(attribute) => {
            if !out.contains(attribute) {
                out.push(attribute.clone());
            }
        }
        FieldExpr::Binary { lhs, rhs, .. } => {
            field_attributes(lhs, out);
            field_attributes(rhs, out);
        }
        FieldExpr::Unary { expr, .. } => field_attributes(expr, out),
    }
}

/// A listed attribute: a value, or `nil` (Tempo lists a condition's or select's missing
/// attribute as the string "nil").
fn listed_key_value(key: &str, value: &Static) -> Option<Value> {
    match value {
        Static::Nil => Some(json!({"key": key, "value": {"stringValue": "nil"}})),
        other => key_value(key, other),
    }
}

fn service_stats(spans: &[SpanData]) -> BTreeMap<String, ServiceStats> {
    let mut stats: BTreeMap<String, ServiceStats> = BTreeMap::new();
    for span in spans {
        let service = span
            .resource
            .iter()
            .find(|(key, _)| key == "service.name")
            .and_then(|(_, value)| match value {
                Static::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let entry = stats.entry(service).or_default();
        entry.span_count += 1;
        if span.status == Status::Error {
            entry.error_count += 1;
        }
    }
    stats
}

/// A value as an OTLP `AnyValue`, exactly as [`any_value`] renders it in JSON; `None` for
/// nil.
fn proto_any_value(value: &Static) -> Option<AnyValue> {
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    let text = |text: String| AnyValueKind::StringValue(text);
    let array = |values: Vec<Static>| {
        AnyValueKind::ArrayValue(ArrayValue {
            values: values.iter().filter_map(proto_any_value).collect(),
        })
    };
    let kind = match value {
        Static::Nil => return None,
        Static::Int(i) => AnyValueKind::IntValue(*i),
        Static::Float(f) => AnyValueKind::DoubleValue(*f),
        Static::String(s) => text(s.clone()),
        Static::Bool(b) => AnyValueKind::BoolValue(*b),
        Static::Duration(d) => text(format_go_duration(*d)),
        Static::Status(s) => text(s.as_str().to_string()),
        Static::Kind(k) => text(k.as_str().to_string()),
        Static::IntArray(v) => array(v.iter().map(|x| Static::Int(*x)).collect()),
        Static::FloatArray(v) => array(v.iter().map(|x| Static::Float(*x)).collect()),
        Static::StringArray(v) => array(v.iter().map(|x| Static::String(x.clone())).collect()),
        Static::BoolArray(v) => array(v.iter().map(|x| Static::Bool(*x)).collect()),
    };
    Some(AnyValue { value: Some(kind) })
}

fn proto_key_value(key: &str, value: &Static) -> Option<KeyValue> {
    proto_any_value(value).map(|value| KeyValue {
        key: key.to_string(),
        value: Some(value),
        ..KeyValue::default()
    })
}

/// A value as OTLP `AnyValue` proto3 JSON; `None` for nil.
fn any_value(value: &Static) -> Option<Value> {
    Some(match value {
        Static::Nil => return None,
        Static::Int(i) => json!({"intValue": i.to_string()}),
        Static::Float(f) if f.is_nan() => json!({"doubleValue": "NaN"}),
        Static::Float(f) if f.is_infinite() => {
            json!({"doubleValue": if *f > 0.0 { "Infinity" } else { "-Infinity" }})
        }
        Static::Float(f) => json!({"doubleValue": f}),
        Static::String(s) => json!({"stringValue": s}),
        Static::Bool(b) => json!({"boolValue": b}),
        Static::Duration(d) => json!({"stringValue": format_go_duration(*d)}),
        Static::Status(s) => json!({"stringValue": s.as_str()}),
        Static::Kind(k) => json!({"stringValue": k.as_str()}),
        Static::IntArray(v) => array_json(v.iter().map(|x| Static::Int(*x))),
        Static::FloatArray(v) => array_json(v.iter().map(|x| Static::Float(*x))),
        Static::StringArray(v) => array_json(v.iter().map(|x| Static::String(x.clone()))),
        Static::BoolArray(v) => array_json(v.iter().map(|x| Static::Bool(*x))),
    })
}

fn array_json(values: impl Iterator<Item = Static>) -> Value {
    let values: Vec<Value> = values.filter_map(|v| any_value(&v)).collect();
    if values.is_empty() {
        json!({"arrayValue": {}})
    } else {
        json!({"arrayValue": {"values": values}})
    }
}

fn key_value(key: &str, value: &Static) -> Option<Value> {
    any_value(value).map(|value| json!({"key": key, "value": value}))
}

fn normalise_pipeline(pipeline: &mut Pipeline) {
    for stage in &mut pipeline.stages {
        match stage {
            Stage::Spanset(expr) => normalise_spanset(expr),
            Stage::GroupBy(expr) => normalise_field(expr),
            _ => {}
        }
    }
}

fn normalise_spanset(expr: &mut SpansetExpr) {
    match expr {
        SpansetExpr::Filter(field) => normalise_field(field),
        SpansetExpr::Op { lhs, rhs, .. } => {
            normalise_spanset(lhs);
            normalise_spanset(rhs);
        }
        SpansetExpr::Pipeline(p) => normalise_pipeline(p),
    }
}

/// `trace:id = "00ab"` compares with the trimmed lowercase hex Tempo prints.
fn normalise_field(expr: &mut FieldExpr) {
    match expr {
        FieldExpr::Binary { lhs, rhs, .. } => {
            let lhs_is_trace_id = matches!(&**lhs, FieldExpr::Attribute(a) if a.intrinsic == Some(Intrinsic::TraceId));
            let rhs_is_trace_id = matches!(&**rhs, FieldExpr::Attribute(a) if a.intrinsic == Some(Intrinsic::TraceId));
            if lhs_is_trace_id {
                trim_trace_id_literal(rhs);
            }
            if rhs_is_trace_id {
                trim_trace_id_literal(lhs);
            }
            normalise_field(lhs);
            normalise_field(rhs);
        }
        FieldExpr::Unary { expr, .. } => normalise_field(expr),
        _ => {}
    }
}

fn trim_trace_id_literal(expr: &mut FieldExpr) {
    let trim = |s: &str| s.to_ascii_lowercase().trim_start_matches('0').to_string();
    if let FieldExpr::Static(value) = expr {
        match value {
            Static::String(s) => *s = trim(s),
            Static::StringArray(items) => {
                for item in items.iter_mut() {
                    *item = trim(item);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::string_attribute;
    use crate::traceql::parse_and_validate;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn span(id: u8, parent: Option<u8>, name: &str, attr: &str) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
            parent_span_id: parent
                .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
                .unwrap_or_default(),
            name: name.into(),
            start_time_unix_nano: 1_000 + id as u64,
            end_time_unix_nano: 2_000_000_000,
            attributes: vec![KeyValue {
                key: attr.into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(true)),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Root 1 with children 2 (`.child`) and 3 (`.child2`); span 9's parent 8 is missing.
    fn fixture() -> Trace {
        Trace {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string_attribute("service.name", "svc")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(1, None, "RootSpan", "parent"),
                        span(2, Some(1), "MySpan", "child"),
                        span(3, Some(1), "", "child2"),
                        span(9, Some(8), "BrokenSpan", "broken"),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn matched_ids(query: &str) -> Vec<String> {
        let compiled = CompiledSearch::new(parse_and_validate(query).expect(query)).expect(query);
        let options = SearchOptions {
            spans_per_spanset: 100,
            ..SearchOptions::default()
        };
        let found = compiled
            .run(
                &Evaluator::default(),
                &TraceId([1; 16]),
                &fixture(),
                &options,
            )
            .expect(query);
        let mut ids: Vec<String> = found
            .map(|m| {
                m.metadata.to_json()["spanSets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
                    .map(|s| s["spanID"].as_str().unwrap_or_default()[14..].to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    #[test]
    fn structural_operators_on_real_nested_sets() {
        assert_eq!(matched_ids("{ .parent } >> {}"), ["02", "03"]);
        assert_eq!(matched_ids("{ .parent } > { .child }"), ["02"]);
        assert_eq!(matched_ids("{ .child } < {}"), ["01"]);
        assert_eq!(matched_ids("{ .child } << {}"), ["01"]);
        assert_eq!(matched_ids("{ .child } ~ {}"), ["03"]);
        assert_eq!(matched_ids("{ .parent } &>> { .child }"), ["01", "02"]);
        assert_eq!(matched_ids("{} !~ {}"), ["01"]);
        assert_eq!(
            matched_ids(r#"{ name = "does-not-exist" } !< { name = "MySpan" }"#),
            ["02"]
        );
        assert!(matched_ids("{ .broken } << {}").is_empty());
        assert_eq!(
            matched_ids(r#"{ rootName = "RootSpan" && .broken }"#),
            ["09"]
        );
        assert_eq!(matched_ids("{ span:childCount = 2 }"), ["01"]);
        assert_eq!(
            // 34 hex digits: the literal's leading zeros are dropped like Tempo does.
            matched_ids(r#"{ trace:id = "0001010101010101010101010101010101" }"#),
            ["01", "02", "03", "09"]
        );
    }

    #[test]
    fn missing_root_uses_tempos_placeholder() {
        let mut trace = fixture();
        trace.resource_spans[0].scope_spans[0].spans.remove(0);
        let compiled = CompiledSearch::new(parse_and_validate("{}").expect("{}")).expect("{}");
        let found = compiled
            .run(
                &Evaluator::default(),
                &TraceId([1; 16]),
                &trace,
                &SearchOptions::default(),
            )
            .expect("runs")
            .expect("matches");
        assert_eq!(
            found.metadata.to_json()["rootServiceName"],
            ROOT_SPAN_NOT_YET_RECEIVED
        );
        assert!(found.metadata.to_json().get("rootTraceName").is_none());
        assert_eq!(found.metadata.to_json()["spanSets"][0]["matched"], 3);
    }
}
