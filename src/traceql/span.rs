//! The span model the evaluator runs on, built from an OTLP trace: intrinsics, nested-set
//! numbering, resource/span/event/link/instrumentation attributes and trace-level values.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, status};

use super::ast::{Attribute, AttributeScope, Intrinsic};
use super::eval::{NestedSet, SpanView};
use super::static_value::{Kind, Static, Status};
use crate::model::Trace;

/// Trace-level values shared by every span of a trace.
#[derive(Debug, Clone, Default)]
pub struct TraceInfo {
    /// Lowercase hex of the 16-byte trace ID.
    pub trace_id_hex: String,
    /// Root span name, when the root span is known.
    pub root_name: Option<String>,
    /// Root span's `service.name`, when the root span is known.
    pub root_service: Option<String>,
    /// Earliest span start, Unix ns.
    pub start: u64,
    /// Latest end minus earliest start, ns.
    pub duration: u64,
}

/// A span's instrumentation scope.
#[derive(Debug, Clone, Default)]
pub struct ScopeInfo {
    /// scope name
    pub name: String,
    /// scope version
    pub version: String,
    /// scope attributes
    pub attributes: Vec<(String, Static)>,
}

/// One event of a span.
#[derive(Debug, Clone, Default)]
pub struct EventInfo {
    /// event name
    pub name: String,
    /// time since the span's start, ns
    pub since_start: i64,
    /// event attributes
    pub attributes: Vec<(String, Static)>,
}

/// One link of a span.
#[derive(Debug, Clone, Default)]
pub struct LinkInfo {
    /// linked trace ID, lowercase hex
    pub trace_id: String,
    /// linked span ID, lowercase hex
    pub span_id: String,
    /// link attributes
    pub attributes: Vec<(String, Static)>,
}

/// One span with everything a query can read.
#[derive(Debug, Clone)]
pub struct SpanData {
    /// 8-byte span ID, lowercase hex (16 chars)
    pub span_id: String,
    /// parent span ID, lowercase hex; empty for a root
    pub parent_id: String,
    /// span name
    pub name: String,
    /// span kind
    pub kind: Kind,
    /// status code
    pub status: Status,
    /// status message
    pub status_message: String,
    /// start, Unix ns
    pub start: u64,
    /// duration, ns
    pub duration: u64,
    /// span attributes
    pub attributes: Vec<(String, Static)>,
    /// the resource's attributes
    pub resource: Arc<Vec<(String, Static)>>,
    /// the instrumentation scope
    pub scope: Arc<ScopeInfo>,
    /// events
    pub events: Vec<EventInfo>,
    /// links
    pub links: Vec<LinkInfo>,
    /// nested-set numbering
    pub nested: NestedSet,
    /// number of direct children
    pub child_count: i64,
    /// the trace's values
    pub trace: Arc<TraceInfo>,
}

/// Converts an OTLP attribute value to a TraceQL value (kvlists and bytes are not
/// queryable: nil). Arrays take the type of their first element.
pub fn static_from_any(value: &AnyValue) -> Static {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => Static::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Static::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Static::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => Static::Float(*f),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<Static> = array.values.iter().map(static_from_any).collect();
            match items.first() {
                Some(Static::Int(_)) => Static::IntArray(
                    items
                        .iter()
                        .filter_map(|v| match v {
                            Static::Int(i) => Some(*i),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(Static::Float(_)) => Static::FloatArray(
                    items
                        .iter()
                        .filter_map(|v| match v {
                            Static::Float(f) => Some(*f),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(Static::Bool(_)) => Static::BoolArray(
                    items
                        .iter()
                        .filter_map(|v| match v {
                            Static::Bool(b) => Some(*b),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(Static::String(_)) => Static::StringArray(
                    items
                        .iter()
                        .filter_map(|v| match v {
                            Static::String(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                None => Static::StringArray(Vec::new()),
                Some(_) => Static::Nil,
            }
        }
        _ => Static::Nil,
    }
}

fn convert(attributes: &[KeyValue]) -> Vec<(String, Static)> {
    attributes
        .iter()
        .filter_map(|kv| {
            let value = kv.value.as_ref().map(static_from_any)?;
            (value != Static::Nil).then(|| (kv.key.clone(), value))
        })
        .collect()
}

fn lookup(attributes: &[(String, Static)], name: &str) -> Static {
    lookup_ref(attributes, name).clone()
}

const NIL: &Static = &Static::Nil;

fn lookup_ref<'a>(attributes: &'a [(String, Static)], name: &str) -> &'a Static {
    attributes
        .iter()
        .find(|(key, _)| key == name)
        .map_or(NIL, |(_, value)| value)
}

pub(crate) fn kind_of(code: i32) -> Kind {
    match span::SpanKind::try_from(code) {
        Ok(span::SpanKind::Internal) => Kind::Internal,
        Ok(span::SpanKind::Server) => Kind::Server,
        Ok(span::SpanKind::Client) => Kind::Client,
        Ok(span::SpanKind::Producer) => Kind::Producer,
        Ok(span::SpanKind::Consumer) => Kind::Consumer,
        _ => Kind::Unspecified,
    }
}

pub(crate) fn status_of(code: i32) -> Status {
    match status::StatusCode::try_from(code) {
        Ok(status::StatusCode::Ok) => Status::Ok,
        Ok(status::StatusCode::Error) => Status::Error,
        _ => Status::Unset,
    }
}

/// Builds the spans of a trace, numbering them with nested sets: roots (no parent ID) get
/// `left = 1…` and parent −1, children their parent's `left`; spans whose parent is missing
/// (and their subtrees) keep 0/0/0 and take part in no structural relationship.
pub fn trace_spans(trace_id_hex: String, trace: &Trace) -> (Arc<TraceInfo>, Vec<SpanData>) {
    let mut raw = Vec::new();
    let mut start = u64::MAX;
    let mut end = 0u64;
    let mut root: Option<(String, Option<String>)> = None;
    for batch in &trace.resource_spans {
        let resource = Arc::new(
            batch
                .resource
                .as_ref()
                .map(|r| convert(&r.attributes))
                .unwrap_or_default(),
        );
        for scope_batch in &batch.scope_spans {
            let scope = Arc::new(
                scope_batch
                    .scope
                    .as_ref()
                    .map(|s| ScopeInfo {
                        name: s.name.clone(),
                        version: s.version.clone(),
                        attributes: convert(&s.attributes),
                    })
                    .unwrap_or_default(),
            );
            for span in &scope_batch.spans {
                start = start.min(span.start_time_unix_nano);
                end = end.max(span.end_time_unix_nano.max(span.start_time_unix_nano));
                if span.parent_span_id.is_empty() && root.is_none() {
                    let service = match lookup(&resource, "service.name") {
                        Static::String(s) => Some(s),
                        _ => None,
                    };
                    root = Some((span.name.clone(), service));
                }
                raw.push((span, resource.clone(), scope.clone()));
            }
        }
    }
    if raw.is_empty() {
        start = 0;
    }
    let info = Arc::new(TraceInfo {
        trace_id_hex,
        root_name: root.as_ref().map(|(name, _)| name.clone()),
        root_service: root.and_then(|(_, service)| service),
        start,
        duration: end.saturating_sub(start),
    });
    let mut spans: Vec<SpanData> = raw
        .into_iter()
        .map(|(span, resource, scope)| SpanData {
            span_id: hex::encode(&span.span_id),
            parent_id: hex::encode(&span.parent_span_id),
            name: span.name.clone(),
            kind: kind_of(span.kind),
            status: span
                .status
                .as_ref()
                .map(|s| status_of(s.code))
                .unwrap_or(Status::Unset),
            status_message: span
                .status
                .as_ref()
                .map(|s| s.message.clone())
                .unwrap_or_default(),
            start: span.start_time_unix_nano,
            duration: span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano),
            attributes: convert(&span.attributes),
            resource,
            scope,
            events: span
                .events
                .iter()
                .map(|e| EventInfo {
                    name: e.name.clone(),
                    since_start: e.time_unix_nano as i64 - span.start_time_unix_nano as i64,
                    attributes: convert(&e.attributes),
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|l| LinkInfo {
                    trace_id: hex::encode(&l.trace_id),
                    span_id: hex::encode(&l.span_id),
                    attributes: convert(&l.attributes),
                })
                .collect(),
            nested: NestedSet::default(),
            child_count: 0,
            trace: info.clone(),
        })
        .collect();
    number_nested_sets(&mut spans);
    (info, spans)
}

fn number_nested_sets(spans: &mut [SpanData]) {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (index, span) in spans.iter().enumerate() {
        by_id.entry(span.span_id.as_str()).or_insert(index);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (index, span) in spans.iter().enumerate() {
        if span.parent_id.is_empty() || span.parent_id.chars().all(|c| c == '0') {
            roots.push(index);
        } else if let Some(&parent) = by_id.get(span.parent_id.as_str()) {
            if parent != index {
                children[parent].push(index);
            }
        }
    }
    for kids in &mut children {
        kids.sort_by_key(|&i| (spans[i].start, i));
    }
    let mut assigned: Vec<Option<NestedSet>> = vec![None; spans.len()];
    let mut counter = 0i64;
    // Iterative DFS: (span, parent's left, children visited?)
    for root in roots {
        let mut stack = vec![(root, -1i64, false)];
        while let Some((index, parent_left, done)) = stack.pop() {
            if done {
                counter += 1;
                if let Some(set) = assigned[index].as_mut() {
                    set.right = counter;
                }
                continue;
            }
            if assigned[index].is_some() {
                continue; // a cycle in parent IDs: visit each span once
            }
            counter += 1;
            let left = counter;
            assigned[index] = Some(NestedSet {
                parent: parent_left,
                left,
                right: 0,
            });
            stack.push((index, parent_left, true));
            for &child in children[index].iter().rev() {
                if assigned[child].is_none() {
                    stack.push((child, left, false));
                }
            }
        }
    }
    for (index, span) in spans.iter_mut().enumerate() {
        span.child_count = children[index].len() as i64;
        span.nested = assigned[index].unwrap_or_default();
    }
}

impl SpanView for SpanData {
    fn value(&self, attr: &Attribute, event: usize, link: usize) -> Static {
        if let Some(intrinsic) = attr.intrinsic {
            return self.intrinsic(intrinsic, event, link);
        }
        match attr.scope {
            AttributeScope::None => match lookup(&self.attributes, &attr.name) {
                Static::Nil => lookup(&self.resource, &attr.name),
                value => value,
            },
            AttributeScope::Span => lookup(&self.attributes, &attr.name),
            AttributeScope::Resource => lookup(&self.resource, &attr.name),
            AttributeScope::Instrumentation => lookup(&self.scope.attributes, &attr.name),
            AttributeScope::Event => self
                .events
                .get(event)
                .map(|e| lookup(&e.attributes, &attr.name))
                .unwrap_or(Static::Nil),
            AttributeScope::Link => self
                .links
                .get(link)
                .map(|l| lookup(&l.attributes, &attr.name))
                .unwrap_or(Static::Nil),
        }
    }

    fn value_ref(&self, attr: &Attribute, event: usize, link: usize) -> Cow<'_, Static> {
        if attr.intrinsic.is_some() {
            return Cow::Owned(self.value(attr, event, link));
        }
        Cow::Borrowed(match attr.scope {
            AttributeScope::None => match lookup_ref(&self.attributes, &attr.name) {
                Static::Nil => lookup_ref(&self.resource, &attr.name),
                value => value,
            },
            AttributeScope::Span => lookup_ref(&self.attributes, &attr.name),
            AttributeScope::Resource => lookup_ref(&self.resource, &attr.name),
            AttributeScope::Instrumentation => lookup_ref(&self.scope.attributes, &attr.name),
            AttributeScope::Event => self
                .events
                .get(event)
                .map_or(NIL, |e| lookup_ref(&e.attributes, &attr.name)),
            AttributeScope::Link => self
                .links
                .get(link)
                .map_or(NIL, |l| lookup_ref(&l.attributes, &attr.name)),
        })
    }

    fn nested_set(&self) -> NestedSet {
        self.nested
    }

    fn event_count(&self) -> usize {
        self.events.len()
    }

    fn link_count(&self) -> usize {
        self.links.len()
    }
}

fn string_or_nil(value: Option<&String>) -> Static {
    value
        .map(|s| Static::String(s.clone()))
        .unwrap_or(Static::Nil)
}

impl SpanData {
    fn intrinsic(&self, intrinsic: Intrinsic, event: usize, link: usize) -> Static {
        match intrinsic {
            Intrinsic::Duration => Static::Duration(self.duration as i64),
            Intrinsic::Name => Static::String(self.name.clone()),
            Intrinsic::Status => Static::Status(self.status),
            Intrinsic::StatusMessage => Static::String(self.status_message.clone()),
            Intrinsic::Kind => Static::Kind(self.kind),
            Intrinsic::RootName => string_or_nil(self.trace.root_name.as_ref()),
            Intrinsic::RootServiceName => string_or_nil(self.trace.root_service.as_ref()),
            Intrinsic::TraceDuration => Static::Duration(self.trace.duration as i64),
            Intrinsic::NestedSetLeft => Static::Int(self.nested.left),
            Intrinsic::NestedSetRight => Static::Int(self.nested.right),
            Intrinsic::NestedSetParent => Static::Int(self.nested.parent),
            Intrinsic::Parent => Static::Nil,
            // Tempo compares trace IDs without leading zeros on both sides.
            Intrinsic::TraceId => Static::String(self.trace.trace_id_hex.clone()),
            Intrinsic::SpanId => Static::String(self.span_id.clone()),
            Intrinsic::SpanParentId => {
                if self.parent_id.is_empty() {
                    Static::Nil
                } else {
                    Static::String(self.parent_id.clone())
                }
            }
            Intrinsic::SpanChildCount => Static::Int(self.child_count),
            Intrinsic::EventName => string_or_nil(self.events.get(event).map(|e| &e.name)),
            Intrinsic::EventTimeSinceStart => self
                .events
                .get(event)
                .map(|e| Static::Duration(e.since_start))
                .unwrap_or(Static::Nil),
            Intrinsic::LinkTraceId => string_or_nil(self.links.get(link).map(|l| &l.trace_id)),
            Intrinsic::LinkSpanId => string_or_nil(self.links.get(link).map(|l| &l.span_id)),
            Intrinsic::InstrumentationName => Static::String(self.scope.name.clone()),
            Intrinsic::InstrumentationVersion => Static::String(self.scope.version.clone()),
        }
    }
}
