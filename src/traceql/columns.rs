//! Spans read from a block's columns instead of assembled into traces: the few fields a query
//! reads, one vector per field, so TraceQL metrics aggregate without building spans
//! (reference/columnar-read.md, "TraceQL metrics"). The storage layer fills [`SpanColumns`];
//! [`ColumnSpan`] lets the evaluator read a span of it like any other.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use super::ast::{Attribute, AttributeScope, Intrinsic};
use super::eval::{NestedSet, SpanView};
use super::span::{kind_of, static_from_any, status_of};
use super::static_value::Static;
use crate::model::{FoldHasherBuilder, Trace, TraceId};
use opentelemetry_proto::tonic::common::v1::KeyValue;

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
    /// `span.<name>` where the query only asks whether it equals or matches a string
    /// literal: only its string values are read, others read as nil (which answers those
    /// comparisons alike: `false`).
    SpanAttributeStrings(String),
}

impl SpanField {
    /// The span attribute the field reads, if it reads one.
    pub fn span_attribute(&self) -> Option<&str> {
        match self {
            SpanField::SpanAttribute(name) | SpanField::SpanAttributeStrings(name) => Some(name),
            _ => None,
        }
    }
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

/// Values of one field over many spans (or resources), each distinct value held once: entry
/// `i` is `values[codes[i]]`. Code 0 is nil. Reading a value borrows it; building the column
/// allocates once per distinct value, not once per span.
#[derive(Debug, Clone, PartialEq)]
pub struct Coded {
    /// The distinct values; `values[0]` is nil.
    pub values: Vec<Static>,
    /// One code per entry.
    pub codes: Vec<u32>,
}

impl Default for Coded {
    fn default() -> Coded {
        Coded {
            values: vec![Static::Nil],
            codes: Vec::new(),
        }
    }
}

impl Coded {
    /// The value of entry `at`.
    pub fn get(&self, at: usize) -> Option<&Static> {
        self.values.get(*self.codes.get(at)? as usize)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// Builds a [`Coded`] from values met one by one: a value already met is found by its bytes
/// or number, without building it again.
#[derive(Debug, Default)]
pub struct CodedBuilder {
    coded: Coded,
    strings: HashMap<Box<[u8]>, u32, FoldHasherBuilder>,
    ints: HashMap<i64, u32>,
    floats: HashMap<u64, u32>,
    bools: [Option<u32>; 2],
    /// The code of the string met last: runs of one value skip the lookup.
    last_string: Option<u32>,
}

/// The nil code of every [`Coded`].
pub const NIL_CODE: u32 = 0;

/// A string value that is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a string value is not UTF-8")]
pub struct NotUtf8;

impl CodedBuilder {
    fn add(&mut self, value: Static) -> u32 {
        self.coded.values.push(value);
        (self.coded.values.len() - 1) as u32
    }

    /// The code of the string `bytes`.
    pub fn code_str(&mut self, bytes: &[u8]) -> Result<u32, NotUtf8> {
        if let Some(last) = self.last_string {
            if let Some(Static::String(text)) = self.coded.values.get(last as usize) {
                if text.as_bytes() == bytes {
                    return Ok(last);
                }
            }
        }
        let code = match self.strings.get(bytes) {
            Some(code) => *code,
            None => {
                let text = std::str::from_utf8(bytes).map_err(|_| NotUtf8)?;
                let code = self.add(Static::String(text.to_string()));
                self.strings.insert(bytes.into(), code);
                code
            }
        };
        self.last_string = Some(code);
        Ok(code)
    }

    /// The code of the integer `value`.
    pub fn code_int(&mut self, value: i64) -> u32 {
        if let Some(code) = self.ints.get(&value) {
            return *code;
        }
        let code = self.add(Static::Int(value));
        self.ints.insert(value, code);
        code
    }

    /// The code of the float `value` (by its bits).
    pub fn code_float(&mut self, value: f64) -> u32 {
        if let Some(code) = self.floats.get(&value.to_bits()) {
            return *code;
        }
        let code = self.add(Static::Float(value));
        self.floats.insert(value.to_bits(), code);
        code
    }

    /// The code of the boolean `value`.
    pub fn code_bool(&mut self, value: bool) -> u32 {
        if let Some(code) = self.bools[usize::from(value)] {
            return code;
        }
        let code = self.add(Static::Bool(value));
        self.bools[usize::from(value)] = Some(code);
        code
    }

    /// The code of the text `text`.
    pub fn code_text(&mut self, text: &str) -> u32 {
        // A `str` is UTF-8 already: the check cannot fail.
        self.code_str(text.as_bytes()).unwrap_or(NIL_CODE)
    }

    /// The code of any value: scalars are found again when met twice, arrays get a code of
    /// their own each time.
    pub fn code_value(&mut self, value: Static) -> u32 {
        match value {
            Static::Nil => NIL_CODE,
            Static::String(text) => self.code_text(&text),
            Static::Int(number) => self.code_int(number),
            Static::Float(number) => self.code_float(number),
            Static::Bool(flag) => self.code_bool(flag),
            other => self.add(other),
        }
    }

    /// Appends an entry of code `code` (from this builder).
    pub fn push_code(&mut self, code: u32) {
        self.coded.codes.push(code);
    }

    /// Appends the string `bytes`.
    pub fn push_str(&mut self, bytes: &[u8]) -> Result<(), NotUtf8> {
        let code = self.code_str(bytes)?;
        self.push_code(code);
        Ok(())
    }

    /// The column built.
    pub fn finish(self) -> Coded {
        self.coded
    }
}

/// Spans of a run of traces, field by field. Spans of one trace are contiguous, in the order
/// the trace stores them (resource by resource, scope by scope); fields not asked for stay
/// empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanColumns {
    /// This batch's identity, unique for the process's life ([`SpanColumns::new`]): what
    /// tells codes of its columns from codes of another batch's.
    pub batch: u64,
    /// IDs of the traces, in row order.
    pub trace_ids: Vec<TraceId>,
    /// Index of each trace's first span; one more entry, the span count, closes the last.
    pub trace_starts: Vec<usize>,
    /// Start of each span, Unix ns.
    pub start: Vec<u64>,
    /// Duration of each span, ns.
    pub duration: Vec<u64>,
    /// Name of each span.
    pub name: Coded,
    /// OTLP status code of each span.
    pub status: Vec<i64>,
    /// Status message of each span.
    pub status_message: Coded,
    /// OTLP kind of each span.
    pub kind: Vec<i64>,
    /// Span ID bytes of all spans, one after the other.
    pub span_id_bytes: Vec<u8>,
    /// End of each span's ID in `span_id_bytes`.
    pub span_id_ends: Vec<usize>,
    /// Index of each span's resource into `service_name`.
    pub resource_of_span: Vec<usize>,
    /// `service.name` of each resource (never nil: a resource without one is not read from
    /// columns).
    pub service_name: Coded,
    /// Span attributes asked for: the name and each span's value (nil where it has none).
    pub span_attributes: Vec<(String, Coded)>,
}

impl SpanColumns {
    /// Empty columns with an identity of their own.
    pub fn new() -> SpanColumns {
        static BATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        SpanColumns {
            batch: BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..SpanColumns::default()
        }
    }

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

    /// The fields `fields` of every span of `traces` (in order), as a block's columns give
    /// them: what lets recent traces, held as OTLP, be aggregated like a block's. Every value
    /// reads as the evaluator reads it from the whole span ([`super::span::trace_spans`]): an
    /// attribute is its first entry of that key with a queryable value.
    pub fn from_traces<'a>(
        traces: impl IntoIterator<Item = (TraceId, &'a Trace)>,
        fields: &SpanFields,
    ) -> SpanColumns {
        let wants = |field: SpanField| fields.contains(&field);
        let (durations, names, statuses, messages, kinds, span_ids, services) = (
            wants(SpanField::Duration),
            wants(SpanField::Name),
            wants(SpanField::Status),
            wants(SpanField::StatusMessage),
            wants(SpanField::Kind),
            wants(SpanField::SpanId),
            wants(SpanField::ServiceName),
        );
        let attribute_names: Vec<&str> = fields
            .iter()
            .filter_map(SpanField::span_attribute)
            .collect();
        let mut attributes: Vec<(CodedBuilder, Vec<u32>)> = attribute_names
            .iter()
            .map(|_| (CodedBuilder::default(), Vec::new()))
            .collect();
        let mut name_codes = CodedBuilder::default();
        let mut message_codes = CodedBuilder::default();
        let mut service_codes = CodedBuilder::default();
        let mut resources = 0usize;
        let mut out = SpanColumns::new();
        for (trace_id, trace) in traces {
            out.trace_ids.push(trace_id);
            out.trace_starts.push(out.start.len());
            for batch in &trace.resource_spans {
                let resource = resources;
                resources += 1;
                if services {
                    let service = batch
                        .resource
                        .as_ref()
                        .map_or(Static::Nil, |r| first_value(&r.attributes, "service.name"));
                    let code = service_codes.code_value(service);
                    service_codes.push_code(code);
                }
                for span in batch.scope_spans.iter().flat_map(|scope| &scope.spans) {
                    out.start.push(span.start_time_unix_nano);
                    if durations {
                        out.duration.push(
                            span.end_time_unix_nano
                                .saturating_sub(span.start_time_unix_nano),
                        );
                    }
                    if names {
                        let code = name_codes.code_text(&span.name);
                        name_codes.push_code(code);
                    }
                    if statuses {
                        out.status.push(
                            span.status
                                .as_ref()
                                .map_or(0, |status| i64::from(status.code)),
                        );
                    }
                    if messages {
                        let message = span.status.as_ref().map_or("", |status| &status.message);
                        let code = message_codes.code_text(message);
                        message_codes.push_code(code);
                    }
                    if kinds {
                        out.kind.push(i64::from(span.kind));
                    }
                    if span_ids {
                        out.span_id_bytes.extend_from_slice(&span.span_id);
                        out.span_id_ends.push(out.span_id_bytes.len());
                    }
                    if services {
                        out.resource_of_span.push(resource);
                    }
                    for (name, (builder, codes)) in attribute_names.iter().zip(&mut attributes) {
                        let code = builder.code_value(first_value(&span.attributes, name));
                        codes.push(code);
                    }
                }
            }
        }
        out.trace_starts.push(out.start.len());
        out.name = name_codes.finish();
        out.status_message = message_codes.finish();
        if services {
            out.service_name = service_codes.finish();
        }
        out.span_attributes = attribute_names
            .iter()
            .zip(attributes)
            .map(|(name, (builder, codes))| {
                (
                    name.to_string(),
                    Coded {
                        values: builder.finish().values,
                        codes,
                    },
                )
            })
            .collect();
        out
    }

    /// The ID of span `at`, if span IDs were read.
    pub fn span_id(&self, at: usize) -> Option<&[u8]> {
        let end = *self.span_id_ends.get(at)?;
        let start = match at {
            0 => 0,
            _ => *self.span_id_ends.get(at - 1)?,
        };
        self.span_id_bytes.get(start..end)
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

const NIL: &Static = &Static::Nil;

/// The first queryable value of key `key` among `attributes` (nil when none has one).
fn first_value(attributes: &[KeyValue], key: &str) -> Static {
    attributes
        .iter()
        .filter(|kv| kv.key == key)
        .filter_map(|kv| kv.value.as_ref().map(static_from_any))
        .find(|value| *value != Static::Nil)
        .unwrap_or(Static::Nil)
}

impl SpanView for ColumnSpan<'_> {
    fn value(&self, attr: &Attribute, event: usize, link: usize) -> Static {
        self.value_ref(attr, event, link).into_owned()
    }

    fn value_ref(&self, attr: &Attribute, _event: usize, _link: usize) -> Cow<'_, Static> {
        let columns = self.columns;
        let at = self.span;
        if !attr.parent && attr.intrinsic.is_none() {
            match attr.scope {
                AttributeScope::Span => {
                    return Cow::Borrowed(
                        columns
                            .span_attributes
                            .iter()
                            .find(|(name, _)| *name == attr.name)
                            .and_then(|(_, values)| values.get(at))
                            .unwrap_or(NIL),
                    )
                }
                AttributeScope::Resource if attr.name == "service.name" => {
                    return Cow::Borrowed(
                        columns
                            .resource_of_span
                            .get(at)
                            .and_then(|resource| columns.service_name.get(*resource))
                            .unwrap_or(NIL),
                    )
                }
                _ => {}
            }
        }
        Cow::Owned(match SpanField::of(attr) {
            Some(SpanField::Duration) => columns
                .duration
                .get(at)
                .map_or(Static::Nil, |nanos| Static::Duration(*nanos as i64)),
            Some(SpanField::Name) => return Cow::Borrowed(columns.name.get(at).unwrap_or(NIL)),
            Some(SpanField::Status) => columns
                .status
                .get(at)
                .map_or(Static::Nil, |code| Static::Status(status_of(*code as i32))),
            Some(SpanField::StatusMessage) => {
                return Cow::Borrowed(columns.status_message.get(at).unwrap_or(NIL))
            }
            Some(SpanField::Kind) => columns
                .kind
                .get(at)
                .map_or(Static::Nil, |kind| Static::Kind(kind_of(*kind as i32))),
            Some(SpanField::SpanId) => columns
                .span_id(at)
                .map_or(Static::Nil, |id| Static::String(hex::encode(id))),
            // Read by reference above.
            Some(
                SpanField::ServiceName
                | SpanField::SpanAttribute(_)
                | SpanField::SpanAttributeStrings(_),
            ) => Static::Nil,
            None if attr.intrinsic == Some(Intrinsic::TraceId) => {
                Static::String(self.trace_id_hex())
            }
            // Queries read from columns reference nothing else.
            None => Static::Nil,
        })
    }

    fn nested_set(&self) -> NestedSet {
        NestedSet::default()
    }
}

/// What TraceQL metrics read of a span besides its values (the `MetricsSpan` view).
impl ColumnSpan<'_> {
    /// Start, Unix ns.
    pub fn start_ns(&self) -> u64 {
        self.columns.start[self.span]
    }

    /// `trace:id` and `span:id` labels of an exemplar taken from this span.
    pub fn exemplar_labels(&self) -> Vec<(String, Static)> {
        let span_id = self
            .columns
            .span_id(self.span)
            .map(hex::encode)
            .unwrap_or_default();
        vec![
            ("trace:id".into(), Static::String(self.trace_id_hex())),
            ("span:id".into(), Static::String(span_id)),
        ]
    }

    /// The column identity and code of the span's value of `attr`, where it is coded: see
    /// `MetricsSpan::value_code`.
    pub fn value_code(&self, attr: &Attribute) -> Option<(u64, u32)> {
        let columns = self.columns;
        let at = self.span;
        // The field's place in the batch, to tell its codes from other fields' codes.
        let (field, code) =
            if !attr.parent && attr.intrinsic.is_none() && attr.scope == AttributeScope::Span {
                let index = columns
                    .span_attributes
                    .iter()
                    .position(|(name, _)| *name == attr.name)?;
                (
                    3 + index as u64,
                    *columns.span_attributes[index].1.codes.get(at)?,
                )
            } else {
                match SpanField::of(attr)? {
                    SpanField::Name => (0, *columns.name.codes.get(at)?),
                    SpanField::StatusMessage => (1, *columns.status_message.codes.get(at)?),
                    SpanField::ServiceName => {
                        let resource = *columns.resource_of_span.get(at)?;
                        (2, *columns.service_name.codes.get(resource)?)
                    }
                    // Kinds and status codes are small numbers: their own codes.
                    SpanField::Kind => (3, u32::try_from(*columns.kind.get(at)?).ok()?),
                    SpanField::Status => (4, u32::try_from(*columns.status.get(at)?).ok()?),
                    _ => return None,
                }
            };
        // Batch and field in one word: batches number far below 2^48.
        Some(((columns.batch << 16) | field, code))
    }
}
