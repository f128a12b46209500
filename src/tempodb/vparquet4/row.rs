//! One trace ⇄ one vParquet4 row (spec §5.4): well-known and dedicated columns, root span,
//! service stats, nested set model, event offsets. Rows are `dremel::Value` trees in schema
//! field order; the field indexes below follow `schema::SCHEMA_TEXT`.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::attributes::{attribute_from_value, attribute_value};
use super::dremel::Value;
use super::VParquetError;
use crate::model::{rebatch, Trace, TraceId};
use crate::tempodb::meta::DedicatedColumn;

/// Resource attributes with their own OPTIONAL column, in schema order (string values only).
const RESOURCE_WELL_KNOWN: [&str; 8] = [
    "cluster",
    "namespace",
    "pod",
    "container",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
];
const SERVICE_NAME: &str = "service.name";
const HTTP_METHOD: &str = "http.method";
const HTTP_URL: &str = "http.url";
const HTTP_STATUS_CODE: &str = "http.status_code";
/// `DedicatedAttributes.String01..String10`.
pub const DEDICATED_SLOTS: usize = 10;

const SPAN_KIND_SERVER: i32 = 2;
const SPAN_KIND_CLIENT: i32 = 3;
const STATUS_CODE_ERROR: i32 = 2;

/// Which attribute each `DedicatedAttributes.StringNN` column holds, per scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DedicatedMapping {
    pub resource: Vec<String>,
    pub span: Vec<String>,
}

impl DedicatedMapping {
    /// Tempo's vParquet4 rule: in list order, string columns without options get the next free
    /// slot of their scope (resource/span, at most 10 each); other types, options, the event
    /// scope and names that already have a well-known column get none.
    pub fn new(columns: &[DedicatedColumn]) -> DedicatedMapping {
        let mut mapping = DedicatedMapping::default();
        for column in columns {
            if column.value_type != "string" || !column.options.is_empty() {
                continue;
            }
            let name = column.name.as_str();
            let (slots, has_well_known_column) = match column.scope.as_str() {
                "resource" => (
                    &mut mapping.resource,
                    name == SERVICE_NAME || RESOURCE_WELL_KNOWN.contains(&name),
                ),
                "span" => (
                    &mut mapping.span,
                    [HTTP_METHOD, HTTP_URL, HTTP_STATUS_CODE].contains(&name),
                ),
                _ => continue,
            };
            if !has_well_known_column && slots.len() < DEDICATED_SLOTS {
                slots.push(column.name.clone());
            }
        }
        mapping
    }
}

/// The LIST shape parquet-go writes: `group (LIST) { repeated group list { element } }`.
pub fn list(elements: Vec<Value>) -> Value {
    Value::List(elements)
}

/// The elements of a LIST-shaped value, in either spelling.
pub fn list_elements(value: &Value) -> Result<Vec<&Value>, VParquetError> {
    if let Value::List(elements) = value {
        return Ok(elements.iter().collect());
    }
    let Value::Repeated(items) = value.field(0)? else {
        return Err(malformed("a list group does not hold a repeated field"));
    };
    items.iter().map(|item| item.field(0)).collect()
}

fn malformed(problem: impl Into<String>) -> VParquetError {
    VParquetError::Malformed(problem.into())
}

/// Typed access to assembled rows; a mismatch means the file is not vParquet4.
impl Value {
    pub fn field(&self, index: usize) -> Result<&Value, VParquetError> {
        match self {
            Value::Group(fields) => fields
                .get(index)
                .ok_or_else(|| malformed(format!("group has no field {index}"))),
            other => Err(malformed(format!("expected a group, found {other:?}"))),
        }
    }

    pub fn as_bytes(&self) -> Result<&[u8], VParquetError> {
        match self {
            Value::Bytes(bytes) => Ok(bytes),
            other => Err(malformed(format!("expected bytes, found {other:?}"))),
        }
    }

    /// Strings are UTF-8 in OTLP; a foreign writer's invalid bytes are replaced, not fatal.
    pub fn as_string(&self) -> Result<String, VParquetError> {
        Ok(String::from_utf8_lossy(self.as_bytes()?).into_owned())
    }

    pub fn as_optional_string(&self) -> Result<Option<String>, VParquetError> {
        match self {
            Value::Null => Ok(None),
            other => other.as_string().map(Some),
        }
    }

    pub fn as_i64(&self) -> Result<i64, VParquetError> {
        match self {
            Value::Int64(number) => Ok(*number),
            other => Err(malformed(format!("expected an int64, found {other:?}"))),
        }
    }

    pub fn as_i32(&self) -> Result<i32, VParquetError> {
        match self {
            Value::Int32(number) => Ok(*number),
            other => Err(malformed(format!("expected an int32, found {other:?}"))),
        }
    }

    pub fn as_f64(&self) -> Result<f64, VParquetError> {
        match self {
            Value::Double(number) => Ok(*number),
            other => Err(malformed(format!("expected a double, found {other:?}"))),
        }
    }

    pub fn as_bool(&self) -> Result<bool, VParquetError> {
        match self {
            Value::Bool(flag) => Ok(*flag),
            other => Err(malformed(format!("expected a boolean, found {other:?}"))),
        }
    }
}

/// A row and the figures the writer needs about it.
pub struct Row {
    pub value: Value,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Tempo's row-group size estimate for this trace (§5.5).
    pub estimated_size: usize,
}

fn bytes(text: &str) -> Value {
    Value::Bytes(text.as_bytes().to_vec())
}

fn optional_bytes(text: Option<&str>) -> Value {
    text.map(bytes).unwrap_or(Value::Null)
}

fn string_of(attribute: &KeyValue) -> Option<&str> {
    match attribute
        .value
        .as_ref()
        .and_then(|value| value.value.as_ref())
    {
        Some(AnyValueKind::StringValue(text)) => Some(text),
        _ => None,
    }
}

fn int_of(attribute: &KeyValue) -> Option<i64> {
    match attribute
        .value
        .as_ref()
        .and_then(|value| value.value.as_ref())
    {
        Some(AnyValueKind::IntValue(number)) => Some(*number),
        _ => None,
    }
}

/// Builds the row of one trace. Resource and scope batches are merged first (Tempo's rebatch),
/// which the nested set and service stats are computed over.
pub fn trace_to_row(trace_id: &TraceId, trace: &Trace, dedicated: &DedicatedMapping) -> Row {
    trace_to_row_owned(trace_id, trace.clone(), dedicated)
}

/// [`trace_to_row`] taking the trace, so the block encoder does not copy every trace first.
pub fn trace_to_row_owned(
    trace_id: &TraceId,
    mut trace: Trace,
    dedicated: &DedicatedMapping,
) -> Row {
    // vParquet4 keeps no schema URL, so batches differing only by it become one, as they
    // would when Tempo rebatches the stored row.
    for batch in &mut trace.resource_spans {
        batch.schema_url.clear();
        for scope_batch in &mut batch.scope_spans {
            scope_batch.schema_url.clear();
        }
    }
    let trace = rebatch(trace);
    let all_spans: Vec<&Span> = trace
        .resource_spans
        .iter()
        .flat_map(|batch| batch.scope_spans.iter())
        .flat_map(|scope_batch| scope_batch.spans.iter())
        .collect();
    let nested_set = nested_set_model(&all_spans);

    let mut estimated_size = 7;
    let mut start: u64 = 0;
    let mut end: u64 = 0;
    let mut root_service_name = String::new();
    let mut root_span_name = String::new();
    let mut service_stats: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut span_position = 0;
    let mut resource_values = Vec::with_capacity(trace.resource_spans.len());
    for batch in &trace.resource_spans {
        let (resource_value, service_name, attribute_count) =
            resource_to_value(batch.resource.as_ref(), dedicated);
        estimated_size += 10 + 7 * attribute_count;
        let stats = service_stats.entry(service_name.clone()).or_default();
        let mut scope_values = Vec::with_capacity(batch.scope_spans.len());
        for scope_batch in &batch.scope_spans {
            let scope = scope_batch.scope.clone().unwrap_or_default();
            estimated_size += 2 + 7 * scope.attributes.len();
            let scope_value = Value::Group(vec![
                bytes(&scope.name),
                bytes(&scope.version),
                attributes_list(&sorted_by_key(&scope.attributes)),
                Value::Int32(scope.dropped_attributes_count as i32),
            ]);
            let mut span_values = Vec::with_capacity(scope_batch.spans.len());
            for span in &scope_batch.spans {
                let (parent_id, left, right) =
                    nested_set.get(span_position).copied().unwrap_or((0, 0, 0));
                span_position += 1;
                if start == 0 || span.start_time_unix_nano < start {
                    start = span.start_time_unix_nano;
                }
                end = end.max(span.end_time_unix_nano);
                if is_root(span, trace_id) {
                    root_service_name = service_name.clone();
                    root_span_name = span.name.clone();
                }
                stats.0 = stats.0.wrapping_add(1);
                if span.status.as_ref().map(|status| status.code) == Some(STATUS_CODE_ERROR) {
                    stats.1 = stats.1.wrapping_add(1);
                }
                estimated_size += 14 + 7 * span.attributes.len();
                for event in &span.events {
                    estimated_size += 4 + 4 * event.attributes.len();
                }
                span_values.push(span_to_value(span, (parent_id, left, right), dedicated));
            }
            scope_values.push(Value::Group(vec![scope_value, list(span_values)]));
        }
        resource_values.push(Value::Group(vec![resource_value, list(scope_values)]));
    }

    let stats_entries = service_stats
        .into_iter()
        .map(|(service_name, (span_count, error_count))| {
            Value::Group(vec![
                bytes(&service_name),
                Value::Group(vec![
                    Value::Int32(span_count as i32),
                    Value::Int32(error_count as i32),
                ]),
            ])
        })
        .collect();
    let value = Value::Group(vec![
        Value::Bytes(trace_id.as_bytes().to_vec()),
        bytes(&trace_id.to_trimmed_hex()),
        Value::Int64(start as i64),
        Value::Int64(end as i64),
        // Go's uint64 arithmetic: a trace ending before it starts wraps rather than failing.
        Value::Int64(end.wrapping_sub(start) as i64),
        bytes(&root_service_name),
        bytes(&root_span_name),
        Value::Group(vec![Value::Repeated(stats_entries)]),
        list(resource_values),
    ]);
    Row {
        value,
        start_unix_nano: start,
        end_unix_nano: end,
        estimated_size,
    }
}

/// A root span has no parent and no OpenTracing `child_of` link into its own trace.
fn is_root(span: &Span, trace_id: &TraceId) -> bool {
    if !span.parent_span_id.is_empty() {
        return false;
    }
    !span.links.iter().any(|link| {
        TraceId::from_bytes(&link.trace_id).ok().as_ref() == Some(trace_id)
            && link.attributes.iter().any(|attribute| {
                attribute.key == "opentracing.ref_type" && string_of(attribute) == Some("child_of")
            })
    })
}

fn sorted_by_key(attributes: &[KeyValue]) -> Vec<KeyValue> {
    let mut sorted = attributes.to_vec();
    sorted.sort_by(|left, right| left.key.cmp(&right.key));
    sorted
}

fn attributes_list(attributes: &[KeyValue]) -> Value {
    list(attributes.iter().map(attribute_value).collect())
}

fn attribute_refs_list(attributes: &[&KeyValue]) -> Value {
    list(
        attributes
            .iter()
            .map(|attribute| attribute_value(attribute))
            .collect(),
    )
}

/// Puts string values with a column of their own into `slots` (the first occurrence of a key
/// wins; later duplicates stay generic so nothing is lost) and returns the rest.
fn split_columns<'a>(
    attributes: &'a [KeyValue],
    names: &[&str],
    slots: &mut [Option<&'a str>],
) -> Vec<&'a KeyValue> {
    let mut generic = Vec::new();
    for attribute in attributes {
        let slot = string_of(attribute).and_then(|text| {
            let position = names.iter().position(|name| *name == attribute.key)?;
            match slots.get(position) {
                Some(None) => Some((position, text)),
                _ => None,
            }
        });
        match slot {
            Some((position, text)) => slots[position] = Some(text),
            None => generic.push(attribute),
        }
    }
    generic
}

/// The Resource group, its service name, and the number of attributes (for the estimate).
fn resource_to_value(
    resource: Option<&Resource>,
    dedicated: &DedicatedMapping,
) -> (Value, String, usize) {
    let empty = Resource::default();
    let resource = resource.unwrap_or(&empty);
    let attributes = sorted_by_key(&resource.attributes);
    // Slot 0 is service.name, then the well-known columns, then the dedicated ones.
    let mut names: Vec<&str> = vec![SERVICE_NAME];
    names.extend(RESOURCE_WELL_KNOWN);
    names.extend(dedicated.resource.iter().map(String::as_str));
    let mut slots: Vec<Option<&str>> = vec![None; names.len()];
    let mut generic = split_columns(&attributes, &names, &mut slots);
    // ServiceName is REQUIRED and "" means absent, so an empty service.name stays generic.
    let service_name = match slots[0] {
        Some("") => {
            if let Some(attribute) = attributes
                .iter()
                .find(|attribute| attribute.key == SERVICE_NAME)
            {
                generic.insert(0, attribute);
            }
            String::new()
        }
        Some(name) => name.to_string(),
        None => String::new(),
    };
    let mut fields = vec![
        attribute_refs_list(&generic),
        Value::Int32(resource.dropped_attributes_count as i32),
        bytes(&service_name),
    ];
    fields.extend(
        slots[1..1 + RESOURCE_WELL_KNOWN.len()]
            .iter()
            .map(|slot| optional_bytes(*slot)),
    );
    fields.push(dedicated_group(&slots[1 + RESOURCE_WELL_KNOWN.len()..]));
    (Value::Group(fields), service_name, attributes.len())
}

fn dedicated_group(slots: &[Option<&str>]) -> Value {
    let mut values: Vec<Value> = slots.iter().map(|slot| optional_bytes(*slot)).collect();
    values.resize(DEDICATED_SLOTS, Value::Null);
    Value::Group(values)
}

fn span_to_value(span: &Span, nested_set: (i32, i32, i32), dedicated: &DedicatedMapping) -> Value {
    let mut names: Vec<&str> = vec![HTTP_METHOD, HTTP_URL];
    names.extend(dedicated.span.iter().map(String::as_str));
    let mut slots: Vec<Option<&str>> = vec![None; names.len()];
    let mut http_status_code: Option<i64> = None;
    let mut generic = Vec::new();
    for attribute in split_columns(&span.attributes, &names, &mut slots) {
        match int_of(attribute) {
            Some(code) if attribute.key == HTTP_STATUS_CODE && http_status_code.is_none() => {
                http_status_code = Some(code)
            }
            _ => generic.push(attribute),
        }
    }
    let status = span.status.clone().unwrap_or_default();
    let events = span
        .events
        .iter()
        .map(|event| {
            Value::Group(vec![
                Value::Int64(event.time_unix_nano.wrapping_sub(span.start_time_unix_nano) as i64),
                bytes(&event.name),
                attributes_list(&event.attributes),
                Value::Int32(event.dropped_attributes_count as i32),
            ])
        })
        .collect();
    let links = span
        .links
        .iter()
        .map(|link| {
            Value::Group(vec![
                Value::Bytes(link.trace_id.clone()),
                Value::Bytes(link.span_id.clone()),
                bytes(&link.trace_state),
                attributes_list(&link.attributes),
                Value::Int32(link.dropped_attributes_count as i32),
            ])
        })
        .collect();
    let (parent_id, left, right) = nested_set;
    Value::Group(vec![
        Value::Bytes(span.span_id.clone()),
        Value::Bytes(span.parent_span_id.clone()),
        Value::Int32(parent_id),
        Value::Int32(left),
        Value::Int32(right),
        bytes(&span.name),
        Value::Int64(span.kind as i64),
        bytes(&span.trace_state),
        Value::Int64(span.start_time_unix_nano as i64),
        Value::Int64(
            span.end_time_unix_nano
                .wrapping_sub(span.start_time_unix_nano) as i64,
        ),
        Value::Int64(status.code as i64),
        bytes(&status.message),
        attribute_refs_list(&generic),
        Value::Int32(span.dropped_attributes_count as i32),
        list(events),
        Value::Int32(span.dropped_events_count as i32),
        list(links),
        Value::Int32(span.dropped_links_count as i32),
        optional_bytes(slots[0]),
        optional_bytes(slots[1]),
        http_status_code.map(Value::Int64).unwrap_or(Value::Null),
        dedicated_group(&slots[2..]),
    ])
}

/// `(ParentID, NestedSetLeft, NestedSetRight)` per span, in encounter order (§5.4). Spans are
/// linked by the first 8 bytes of their IDs; when a Zipkin client/server pair shares an ID the
/// parent is the one of the opposite kind. Without a root, or with more than two spans sharing
/// an ID, everything stays 0; spans whose parent is missing keep 0/0/0.
pub fn nested_set_model(spans: &[&Span]) -> Vec<(i32, i32, i32)> {
    let mut result = vec![(0, 0, 0); spans.len()];
    let id_key = |id: &[u8]| -> Vec<u8> { id[..id.len().min(8)].to_vec() };
    let mut by_id: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (index, span) in spans.iter().enumerate() {
        by_id.entry(id_key(&span.span_id)).or_default().push(index);
    }
    if by_id.values().any(|sharing| sharing.len() > 2) {
        return result;
    }
    let roots: Vec<usize> = (0..spans.len())
        .filter(|index| spans[*index].parent_span_id.is_empty())
        .collect();
    if roots.is_empty() {
        return result;
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    for (index, span) in spans.iter().enumerate() {
        if span.parent_span_id.is_empty() {
            continue;
        }
        let Some(candidates) = by_id.get(&id_key(&span.parent_span_id)) else {
            continue;
        };
        let candidates: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|candidate| *candidate != index)
            .collect();
        let parent = match candidates.as_slice() {
            [] => None,
            [only] => Some(*only),
            several => {
                // Client and server share the ID: a server's parent is the client, and anything
                // else runs inside the server.
                let wanted = if span.kind == SPAN_KIND_SERVER {
                    SPAN_KIND_CLIENT
                } else {
                    SPAN_KIND_SERVER
                };
                several
                    .iter()
                    .copied()
                    .find(|candidate| spans[*candidate].kind == wanted)
                    .or(several.first().copied())
            }
        };
        if let Some(parent) = parent {
            children[parent].push(index);
        }
    }
    let mut counter: i32 = 1;
    let mut visited = vec![false; spans.len()];
    for root in roots {
        if visited[root] {
            continue;
        }
        // Iterative depth-first walk; (span, parent's left, next child position).
        let mut stack: Vec<(usize, i32, usize)> = vec![(root, -1, 0)];
        visited[root] = true;
        result[root] = (-1, counter, 0);
        counter = counter.wrapping_add(1);
        while let Some(top) = stack.last_mut() {
            let (node, _, next_child) = *top;
            match children[node].get(next_child) {
                Some(child) => {
                    top.2 += 1;
                    let child = *child;
                    if visited[child] {
                        continue;
                    }
                    visited[child] = true;
                    let parent_left = result[node].1;
                    result[child] = (parent_left, counter, 0);
                    counter = counter.wrapping_add(1);
                    stack.push((child, parent_left, 0));
                }
                None => {
                    result[node].2 = counter;
                    counter = counter.wrapping_add(1);
                    stack.pop();
                }
            }
        }
    }
    result
}

/// Turns a row back into OTLP. `trace_id` on every span is the row's TraceID; columns are
/// turned back into attributes using the block's dedicated columns.
pub fn row_to_trace(
    row: &Value,
    dedicated: &DedicatedMapping,
) -> Result<(TraceId, Trace), VParquetError> {
    let id_bytes = row.field(0)?.as_bytes()?;
    let id_array: [u8; 16] = id_bytes
        .try_into()
        .map_err(|_| malformed(format!("TraceID has {} bytes, not 16", id_bytes.len())))?;
    let trace_id = TraceId(id_array);
    let mut resource_spans = Vec::new();
    for resource_element in list_elements(row.field(8)?)? {
        let resource = resource_from_value(resource_element.field(0)?, dedicated)?;
        let mut scope_spans = Vec::new();
        for scope_element in list_elements(resource_element.field(1)?)? {
            let scope_value = scope_element.field(0)?;
            let scope = InstrumentationScope {
                name: scope_value.field(0)?.as_string()?,
                version: scope_value.field(1)?.as_string()?,
                attributes: attributes_from_list(scope_value.field(2)?)?,
                dropped_attributes_count: scope_value.field(3)?.as_i32()? as u32,
            };
            let mut spans = Vec::new();
            for span_value in list_elements(scope_element.field(1)?)? {
                spans.push(span_from_value(span_value, &trace_id, dedicated)?);
            }
            scope_spans.push(ScopeSpans {
                scope: Some(scope),
                spans,
                schema_url: String::new(),
            });
        }
        resource_spans.push(ResourceSpans {
            resource: Some(resource),
            scope_spans,
            schema_url: String::new(),
        });
    }
    Ok((trace_id, Trace { resource_spans }))
}

fn string_attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn attributes_from_list(value: &Value) -> Result<Vec<KeyValue>, VParquetError> {
    list_elements(value)?
        .into_iter()
        .map(attribute_from_value)
        .collect()
}

/// Attributes from the `DedicatedAttributes` group, named by the block's dedicated columns.
fn dedicated_attributes(
    group: &Value,
    names: &[String],
    out: &mut Vec<KeyValue>,
) -> Result<(), VParquetError> {
    for slot in 0..DEDICATED_SLOTS {
        if let Some(value) = group.field(slot)?.as_optional_string()? {
            // A value in a slot the block's meta does not name cannot be given back a key.
            if let Some(name) = names.get(slot) {
                out.push(string_attribute(name, value));
            }
        }
    }
    Ok(())
}

fn resource_from_value(
    value: &Value,
    dedicated: &DedicatedMapping,
) -> Result<Resource, VParquetError> {
    let mut attributes = Vec::new();
    let service_name = value.field(2)?.as_string()?;
    if !service_name.is_empty() {
        attributes.push(string_attribute(SERVICE_NAME, service_name));
    }
    for (offset, name) in RESOURCE_WELL_KNOWN.iter().enumerate() {
        if let Some(text) = value.field(3 + offset)?.as_optional_string()? {
            attributes.push(string_attribute(name, text));
        }
    }
    dedicated_attributes(
        value.field(3 + RESOURCE_WELL_KNOWN.len())?,
        &dedicated.resource,
        &mut attributes,
    )?;
    attributes.extend(attributes_from_list(value.field(0)?)?);
    Ok(Resource {
        attributes,
        dropped_attributes_count: value.field(1)?.as_i32()? as u32,
        ..Default::default()
    })
}

fn span_from_value(
    value: &Value,
    trace_id: &TraceId,
    dedicated: &DedicatedMapping,
) -> Result<Span, VParquetError> {
    let start = value.field(8)?.as_i64()? as u64;
    let duration = value.field(9)?.as_i64()? as u64;
    let kind = value.field(6)?.as_i64()?;
    let status_code = value.field(10)?.as_i64()?;
    let mut attributes = attributes_from_list(value.field(12)?)?;
    if let Some(method) = value.field(18)?.as_optional_string()? {
        attributes.push(string_attribute(HTTP_METHOD, method));
    }
    if let Some(url) = value.field(19)?.as_optional_string()? {
        attributes.push(string_attribute(HTTP_URL, url));
    }
    match value.field(20)? {
        Value::Null => {}
        code => attributes.push(KeyValue {
            key: HTTP_STATUS_CODE.to_string(),
            value: Some(AnyValue {
                value: Some(AnyValueKind::IntValue(code.as_i64()?)),
            }),
            ..Default::default()
        }),
    }
    dedicated_attributes(value.field(21)?, &dedicated.span, &mut attributes)?;
    let mut events = Vec::new();
    for event in list_elements(value.field(14)?)? {
        events.push(Event {
            time_unix_nano: start.wrapping_add(event.field(0)?.as_i64()? as u64),
            name: event.field(1)?.as_string()?,
            attributes: attributes_from_list(event.field(2)?)?,
            dropped_attributes_count: event.field(3)?.as_i32()? as u32,
        });
    }
    let mut links = Vec::new();
    for link in list_elements(value.field(16)?)? {
        links.push(Link {
            trace_id: link.field(0)?.as_bytes()?.to_vec(),
            span_id: link.field(1)?.as_bytes()?.to_vec(),
            trace_state: link.field(2)?.as_string()?,
            attributes: attributes_from_list(link.field(3)?)?,
            dropped_attributes_count: link.field(4)?.as_i32()? as u32,
            flags: 0,
        });
    }
    Ok(Span {
        trace_id: trace_id.as_bytes().to_vec(),
        span_id: value.field(0)?.as_bytes()?.to_vec(),
        trace_state: value.field(7)?.as_string()?,
        parent_span_id: value.field(1)?.as_bytes()?.to_vec(),
        flags: 0,
        name: value.field(5)?.as_string()?,
        kind: i32::try_from(kind)
            .map_err(|_| malformed(format!("span kind {kind} out of range")))?,
        start_time_unix_nano: start,
        end_time_unix_nano: start.wrapping_add(duration),
        attributes,
        dropped_attributes_count: value.field(13)?.as_i32()? as u32,
        events,
        dropped_events_count: value.field(15)?.as_i32()? as u32,
        links,
        dropped_links_count: value.field(17)?.as_i32()? as u32,
        status: Some(Status {
            message: value.field(11)?.as_string()?,
            code: i32::try_from(status_code)
                .map_err(|_| malformed(format!("status code {status_code} out of range")))?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u8, parent: Option<u8>, kind: i32) -> Span {
        Span {
            span_id: vec![id; 8],
            parent_span_id: parent.map(|parent| vec![parent; 8]).unwrap_or_default(),
            kind,
            ..Default::default()
        }
    }

    #[test]
    fn nested_set_walks_depth_first_in_encounter_order() {
        let spans = [
            span(1, None, 2),
            span(2, Some(1), 1),
            span(3, Some(2), 1),
            span(4, Some(1), 1),
            span(5, Some(9), 1),
        ];
        let references: Vec<&Span> = spans.iter().collect();
        assert_eq!(
            nested_set_model(&references),
            vec![(-1, 1, 8), (1, 2, 5), (2, 3, 4), (1, 6, 7), (0, 0, 0)]
        );
    }

    #[test]
    fn nested_set_resolves_shared_zipkin_ids_and_gives_up_without_root() {
        // Client 2 and server 2 share an ID; the server hangs under the client, span 3 under the server.
        let spans = [
            span(1, None, 2),
            span(2, Some(1), 3),
            span(2, Some(2), 2),
            span(3, Some(2), 1),
        ];
        let references: Vec<&Span> = spans.iter().collect();
        assert_eq!(
            nested_set_model(&references),
            vec![(-1, 1, 8), (1, 2, 7), (2, 3, 6), (3, 4, 5)]
        );
        let orphans = [span(2, Some(1), 1), span(3, Some(2), 1)];
        let references: Vec<&Span> = orphans.iter().collect();
        assert_eq!(nested_set_model(&references), vec![(0, 0, 0), (0, 0, 0)]);
    }

    #[test]
    fn dedicated_mapping_follows_tempo_rules() {
        let mut columns = vec![
            DedicatedColumn::new("resource", "ip"),
            DedicatedColumn::new("resource", "k8s.pod.name"),
            DedicatedColumn::new("span", "http.method"),
            DedicatedColumn::new("span", "instance"),
            DedicatedColumn::new("event", "exception.type"),
            DedicatedColumn {
                value_type: "int".into(),
                ..DedicatedColumn::new("span", "http.response.status_code")
            },
            DedicatedColumn {
                options: vec!["array".into()],
                ..DedicatedColumn::new("span", "tags")
            },
        ];
        for index in 0..12 {
            columns.push(DedicatedColumn::new("span", &format!("extra.{index}")));
        }
        let mapping = DedicatedMapping::new(&columns);
        assert_eq!(mapping.resource, vec!["ip"]);
        assert_eq!(mapping.span.len(), 10);
        assert_eq!(mapping.span[0], "instance");
        assert_eq!(mapping.span[9], "extra.8");
    }
}
