//! Tag names and tag values over traces (Tempo's `/api/search/tags` and
//! `/api/search/tag/{tag}/values`, reference/tempo-api.md §2.7–2.8): enumerates the scoped
//! attributes of the span model, optionally only on spans matching a `q` filter. CPU only;
//! the querier feeds it traces.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::ast::*;
use super::eval::{Evaluator, StructuralMode};
use super::parser::parse;
use super::span::{trace_spans, SpanData};
use super::static_value::{format_go_duration, Static};
use crate::model::{Trace, TraceId};

/// Intrinsics Tempo lists in the `intrinsic` scope (`search.GetVirtualIntrinsicValues()`).
pub const INTRINSIC_TAGS: &[&str] = &[
    "duration",
    "name",
    "status",
    "statusMessage",
    "kind",
    "rootServiceName",
    "rootName",
    "traceDuration",
    "event:name",
    "event:timeSinceStart",
    "link:spanID",
    "link:traceID",
    "instrumentation:name",
    "instrumentation:version",
    "trace:id",
    "span:id",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "span:duration",
    "span:name",
    "span:kind",
    "trace:rootName",
    "trace:rootService",
    "trace:duration",
];

/// A scope of attribute names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagScope {
    /// span attributes
    Span,
    /// resource attributes
    Resource,
    /// event attributes
    Event,
    /// link attributes
    Link,
    /// instrumentation scope attributes
    Instrumentation,
}

impl TagScope {
    /// Every attribute scope.
    pub const ALL: [TagScope; 5] = [
        TagScope::Span,
        TagScope::Resource,
        TagScope::Event,
        TagScope::Link,
        TagScope::Instrumentation,
    ];

    /// The scope's name in Tempo's answers.
    pub fn as_str(self) -> &'static str {
        match self {
            TagScope::Span => "span",
            TagScope::Resource => "resource",
            TagScope::Event => "event",
            TagScope::Link => "link",
            TagScope::Instrumentation => "instrumentation",
        }
    }
}

/// A span-level filter from a `q` parameter. Tempo tolerates incomplete or invalid `q`: such
/// a query (or anything but a single `{ … }` filter) filters nothing.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    expr: Option<FieldExpr>,
}

impl TagFilter {
    /// Builds the filter from `q`; `None`, an empty, invalid or unsupported query keeps every span.
    pub fn new(q: Option<&str>) -> TagFilter {
        let expr = q.and_then(|text| parse(text).ok()).and_then(|query| {
            let RootExpr::Pipeline(pipeline) = query.root else {
                return None;
            };
            match pipeline.stages.as_slice() {
                [Stage::Spanset(SpansetExpr::Filter(expr))] => match expr {
                    FieldExpr::Static(Static::Bool(true)) => None,
                    other => Some(other.clone()),
                },
                _ => None,
            }
        });
        TagFilter { expr }
    }

    /// Whether the filter keeps every span.
    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }

    /// A necessary condition on the traces with kept spans, for block reads that skip the
    /// others (a span failing to evaluate is not kept, so nothing here can hide an error).
    pub fn prefilter(&self) -> crate::traceql::prefilter::TraceFilter {
        match &self.expr {
            None => crate::traceql::prefilter::TraceFilter::True,
            Some(expr) => crate::traceql::prefilter::TraceFilter::from_span_condition(expr),
        }
    }

    fn keeps(&self, evaluator: &Evaluator, span: &SpanData) -> bool {
        match &self.expr {
            None => true,
            Some(expr) => evaluator.matches(expr, span).unwrap_or(false),
        }
    }
}

/// Spans of a trace passing the filter, or none when the trace is outside `window`.
fn kept_spans(
    id: &TraceId,
    trace: &Trace,
    window: Option<(u64, u64)>,
    filter: &TagFilter,
    evaluator: &Evaluator,
) -> Vec<SpanData> {
    let (info, spans) = trace_spans(id.to_trimmed_hex(), trace);
    if let Some((from, to)) = window {
        let end = info.start.saturating_add(info.duration);
        if spans.is_empty() || info.start > to || end < from {
            return Vec::new();
        }
    }
    spans
        .into_iter()
        .filter(|span| filter.keeps(evaluator, span))
        .collect()
}

/// Attribute names per scope found on the kept spans of `traces`, at most `limit` per scope.
pub fn collect_tag_names<'a>(
    traces: impl IntoIterator<Item = (&'a TraceId, &'a Trace)>,
    scopes: &[TagScope],
    filter: &TagFilter,
    window: Option<(u64, u64)>,
    limit: usize,
) -> BTreeMap<TagScope, BTreeSet<String>> {
    let evaluator = Evaluator::new(StructuralMode::Real);
    let mut out: BTreeMap<TagScope, BTreeSet<String>> = BTreeMap::new();
    let mut add = |scope: TagScope, attributes: &[(String, Static)]| {
        let names = out.entry(scope).or_default();
        for (key, _) in attributes {
            if names.len() >= limit {
                return;
            }
            if !names.contains(key) {
                names.insert(key.clone());
            }
        }
    };
    for (id, trace) in traces {
        for span in kept_spans(id, trace, window, filter, &evaluator) {
            for scope in scopes {
                match scope {
                    TagScope::Span => add(*scope, &span.attributes),
                    TagScope::Resource => add(*scope, &span.resource),
                    TagScope::Instrumentation => add(*scope, &span.scope.attributes),
                    TagScope::Event => {
                        for event in &span.events {
                            add(*scope, &event.attributes);
                        }
                    }
                    TagScope::Link => {
                        for link in &span.links {
                            add(*scope, &link.attributes);
                        }
                    }
                }
            }
        }
    }
    out
}

/// One typed tag value (`tempopb.TagValue`): `type` is `string`, `int`, `float`, `bool`,
/// `duration` or `keyword`; `value` is always text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagValue {
    /// value type
    pub kind: &'static str,
    /// the value as text
    pub value: String,
}

impl TagValue {
    fn new(kind: &'static str, value: impl Into<String>) -> TagValue {
        TagValue {
            kind,
            value: value.into(),
        }
    }
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
pub fn format_go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    format!("{value}")
}

/// The typed values a TraceQL value contributes (arrays contribute their elements).
pub fn typed_values(value: &Static, out: &mut Vec<TagValue>) {
    match value {
        Static::Nil => {}
        Static::String(s) => out.push(TagValue::new("string", s.clone())),
        Static::Int(i) => out.push(TagValue::new("int", i.to_string())),
        Static::Float(f) => out.push(TagValue::new("float", format_go_float(*f))),
        Static::Bool(b) => out.push(TagValue::new("bool", b.to_string())),
        Static::Duration(d) => out.push(TagValue::new("duration", format_go_duration(*d))),
        Static::Status(s) => out.push(TagValue::new("keyword", s.as_str())),
        Static::Kind(k) => out.push(TagValue::new("keyword", k.as_str())),
        Static::IntArray(items) => {
            out.extend(items.iter().map(|i| TagValue::new("int", i.to_string())))
        }
        Static::FloatArray(items) => out.extend(
            items
                .iter()
                .map(|f| TagValue::new("float", format_go_float(*f))),
        ),
        Static::StringArray(items) => {
            out.extend(items.iter().map(|s| TagValue::new("string", s.clone())))
        }
        Static::BoolArray(items) => {
            out.extend(items.iter().map(|b| TagValue::new("bool", b.to_string())))
        }
    }
}

/// Values Tempo answers without reading data (`GetVirtualTagValuesV2`): `Some` for status,
/// kind (keywords) and durations (none), `None` when the data must be read.
pub fn virtual_values(attribute: &Attribute) -> Option<Vec<TagValue>> {
    let keywords = |words: &[&str]| words.iter().map(|w| TagValue::new("keyword", *w)).collect();
    match attribute.intrinsic? {
        Intrinsic::Status => Some(keywords(&["ok", "error", "unset"])),
        Intrinsic::Kind => Some(keywords(&[
            "client",
            "server",
            "producer",
            "consumer",
            "internal",
            "unspecified",
        ])),
        Intrinsic::Duration | Intrinsic::TraceDuration => Some(Vec::new()),
        _ => None,
    }
}

/// Distinct values of `attribute` on the kept spans of `traces`, in first-seen order, at most
/// `limit`. Unscoped attributes read span then resource attributes; event and link scopes
/// read every event (link) of a span.
pub fn collect_tag_values<'a>(
    traces: impl IntoIterator<Item = (&'a TraceId, &'a Trace)>,
    attribute: &Attribute,
    filter: &TagFilter,
    window: Option<(u64, u64)>,
    limit: usize,
) -> Vec<TagValue> {
    use super::eval::SpanView;
    let evaluator = Evaluator::new(StructuralMode::Real);
    let mut seen: HashSet<TagValue> = HashSet::new();
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    for (id, trace) in traces {
        for span in kept_spans(id, trace, window, filter, &evaluator) {
            scratch.clear();
            let events = span.events.len().max(1);
            let links = span.links.len().max(1);
            match (attribute.intrinsic, attribute.scope) {
                (Some(Intrinsic::EventName | Intrinsic::EventTimeSinceStart), _)
                | (None, AttributeScope::Event) => {
                    for event in 0..events {
                        typed_values(&span.value(attribute, event, 0), &mut scratch);
                    }
                }
                (Some(Intrinsic::LinkTraceId | Intrinsic::LinkSpanId), _)
                | (None, AttributeScope::Link) => {
                    for link in 0..links {
                        typed_values(&span.value(attribute, 0, link), &mut scratch);
                    }
                }
                (None, AttributeScope::None) => {
                    // `.x` is any span or resource attribute `x`, not the first found.
                    for source in [&span.attributes, &*span.resource] {
                        if let Some((_, value)) = source.iter().find(|(k, _)| *k == attribute.name)
                        {
                            typed_values(value, &mut scratch);
                        }
                    }
                }
                _ => typed_values(&span.value(attribute, 0, 0), &mut scratch),
            }
            for value in scratch.drain(..) {
                if value.value.is_empty() && value.kind == "string" {
                    continue;
                }
                if out.len() >= limit {
                    return out;
                }
                if seen.insert(value.clone()) {
                    out.push(value);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_format() {
        assert_eq!(format_go_float(453.7), "453.7");
        assert_eq!(format_go_float(488.17), "488.17");
        assert_eq!(format_go_float(1e6), "1e+06");
        assert_eq!(format_go_float(123456.0), "123456");
        assert_eq!(format_go_float(0.0001), "0.0001");
        assert_eq!(format_go_float(0.00001), "1e-05");
        assert_eq!(format_go_float(-2.5), "-2.5");
    }

    #[test]
    fn invalid_q_filters_nothing() {
        assert!(TagFilter::new(Some("{ resource.service.name = ")).is_empty());
        assert!(TagFilter::new(Some("{}")).is_empty());
        assert!(TagFilter::new(None).is_empty());
        assert!(!TagFilter::new(Some(r#"{ resource.service.name = "a" }"#)).is_empty());
    }
}
