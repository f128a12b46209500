//! Spans read from a block's columns instead of assembled into traces: the few fields a query
//! reads, one vector per field, so TraceQL metrics aggregate without building spans
//! (reference/columnar-read.md, "TraceQL metrics"). The storage layer fills [`SpanColumns`];
//! [`ColumnSpan`] lets the evaluator read a span of it like any other.

use std::collections::BTreeSet;

use super::ast::{Attribute, AttributeScope, Intrinsic};
use super::eval::{NestedSet, SpanView};
use super::metrics::MetricsSpan;
use super::span::{kind_of, status_of, SpanData};
use super::static_value::Static;
use crate::model::TraceId;

/// A span field read from columns without the span's other parts. The start time and the
/// trace ID are always read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpanField {
    /// `duration`
    Duration,
    /// `name`
    Name,
    /// `status`
    Status,
    /// `statusMessage`
    StatusMessage,
    /// `kind`
    Kind,
    /// `span:id` (also what exemplars carry)
    SpanId,
    /// `resource.service.name`
    ServiceName,
    /// `span.<name>`: a span attribute, from the generic attribute list or the column the
    /// block gives it.
    SpanAttribute(String),
}

impl SpanField {
    /// The column an attribute reads, if it has one of its own.
    pub fn of(attribute: &Attribute) -> Option<SpanField> {
        if attribute.parent {
            return None;
        }
        match attribute.intrinsic {
            Some(Intrinsic::Duration) => Some(SpanField::Duration),
            Some(Intrinsic::Name) => Some(SpanField::Name),
            Some(Intrinsic::Status) => Some(SpanField::Status),
            Some(Intrinsic::StatusMessage) => Some(SpanField::StatusMessage),
            Some(Intrinsic::Kind) => Some(SpanField::Kind),
            Some(Intrinsic::SpanId) => Some(SpanField::SpanId),
            Some(_) => None,
            None if attribute.scope == AttributeScope::Resource
                && attribute.name == "service.name" =>
            {
                Some(SpanField::ServiceName)
            }
            None if attribute.scope == AttributeScope::Span => {
                Some(SpanField::SpanAttribute(attribute.name.clone()))
            }
            None => None,
        }
    }
}

/// The fields a query reads from columns.
pub type SpanFields = BTreeSet<SpanField>;

/// Spans of a run of traces, field by field. Spans of one trace are contiguous, in the order
/// the trace stores them (resource by resource, scope by scope); fields not asked for stay
/// empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanColumns {
    /// IDs of the traces, in row order.
    pub trace_ids: Vec<TraceId>,
    /// Index of each trace's first span; one more entry, the span count, closes the last.
    pub trace_starts: Vec<usize>,
    /// Start of each span, Unix ns.
    pub start: Vec<u64>,
    /// Duration of each span, ns.
    pub duration: Vec<u64>,
    /// Name of each span.
    pub name: Vec<String>,
    /// OTLP status code of each span.
    pub status: Vec<i64>,
    /// Status message of each span.
    pub status_message: Vec<String>,
    /// OTLP kind of each span.
    pub kind: Vec<i64>,
    /// Span ID bytes of each span.
    pub span_id: Vec<Vec<u8>>,
    /// Index of each span's resource into `service_name`.
    pub resource_of_span: Vec<usize>,
    /// `service.name` of each resource (never empty: a resource without one is not read from
    /// columns).
    pub service_name: Vec<String>,
    /// Span attributes asked for: the name and each span's value (nil where it has none).
    pub span_attributes: Vec<(String, Vec<Static>)>,
}

impl SpanColumns {
    /// Number of spans.
    pub fn len(&self) -> usize {
        self.start.len()
    }

    /// True when there is no span.
    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
    }

    /// Number of traces.
    pub fn trace_count(&self) -> usize {
        self.trace_ids.len()
    }

    /// The spans of trace `index`, in order.
    pub fn trace_spans(&self, index: usize) -> impl Iterator<Item = ColumnSpan<'_>> {
        let range = self.trace_starts[index]..self.trace_starts[index + 1];
        let columns = self;
        range.map(move |span| ColumnSpan {
            columns,
            span,
            trace: index,
        })
    }
}

/// One span of [`SpanColumns`], read through the evaluator's [`SpanView`].
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpan<'a> {
    columns: &'a SpanColumns,
    span: usize,
    trace: usize,
}

impl ColumnSpan<'_> {
    /// The trace ID as TraceQL shows it, built only when asked for.
    fn trace_id_hex(&self) -> String {
        self.columns.trace_ids[self.trace].to_trimmed_hex()
    }
}

impl SpanView for ColumnSpan<'_> {
    fn value(&self, attr: &Attribute, _event: usize, _link: usize) -> Static {
        let columns = self.columns;
        let at = self.span;
        if !attr.parent && attr.intrinsic.is_none() && attr.scope == AttributeScope::Span {
            return columns
                .span_attributes
                .iter()
                .find(|(name, _)| *name == attr.name)
                .and_then(|(_, values)| values.get(at))
                .cloned()
                .unwrap_or(Static::Nil);
        }
        match SpanField::of(attr) {
            Some(SpanField::Duration) => columns
                .duration
                .get(at)
                .map_or(Static::Nil, |nanos| Static::Duration(*nanos as i64)),
            Some(SpanField::Name) => columns
                .name
                .get(at)
                .map_or(Static::Nil, |name| Static::String(name.clone())),
            Some(SpanField::Status) => columns
                .status
                .get(at)
                .map_or(Static::Nil, |code| Static::Status(status_of(*code as i32))),
            Some(SpanField::StatusMessage) => columns
                .status_message
                .get(at)
                .map_or(Static::Nil, |message| Static::String(message.clone())),
            Some(SpanField::Kind) => columns
                .kind
                .get(at)
                .map_or(Static::Nil, |kind| Static::Kind(kind_of(*kind as i32))),
            Some(SpanField::SpanId) => columns
                .span_id
                .get(at)
                .map_or(Static::Nil, |id| Static::String(hex::encode(id))),
            Some(SpanField::ServiceName) => columns
                .resource_of_span
                .get(at)
                .and_then(|resource| columns.service_name.get(*resource))
                .map_or(Static::Nil, |name| Static::String(name.clone())),
            // Looked up by reference below, without building the field's name.
            Some(SpanField::SpanAttribute(_)) => Static::Nil,
            None if attr.intrinsic == Some(Intrinsic::TraceId) => {
                Static::String(self.trace_id_hex())
            }
            // Queries read from columns reference nothing else.
            None => Static::Nil,
        }
    }

    fn nested_set(&self) -> NestedSet {
        NestedSet::default()
    }
}

impl MetricsSpan for ColumnSpan<'_> {
    fn start_ns(&self) -> u64 {
        self.columns.start[self.span]
    }

    fn exemplar_labels(&self) -> Vec<(String, Static)> {
        let span_id = self
            .columns
            .span_id
            .get(self.span)
            .map(hex::encode)
            .unwrap_or_default();
        vec![
            ("trace:id".into(), Static::String(self.trace_id_hex())),
            ("span:id".into(), Static::String(span_id)),
        ]
    }

    fn whole(&self) -> Option<&SpanData> {
        None
    }
}
