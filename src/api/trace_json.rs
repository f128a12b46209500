//! Traces as Tempo's query API writes them in JSON: proto3 JSON of `tempopb.Trace` (gogo jsonpb
//! defaults: lowerCamel keys, default values omitted, 64-bit integers as strings, enums by name,
//! bytes as standard base64), with v1's top-level key renamed to `batches`.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value};

use crate::model::Trace;

/// `GET /api/traces/{id}` JSON: `{"batches":[...]}`.
pub fn trace_v1(trace: &Trace) -> Value {
    let mut object = Map::new();
    insert_list(
        &mut object,
        "batches",
        trace.resource_spans.iter().map(resource_spans),
    );
    Value::Object(object)
}

/// `GET /api/v2/traces/{id}` JSON: `{"trace":{"resourceSpans":[...]},"metrics":{...}}`.
pub fn trace_v2(trace: &Trace, inspected_bytes: u64) -> Value {
    let mut trace_object = Map::new();
    insert_list(
        &mut trace_object,
        "resourceSpans",
        trace.resource_spans.iter().map(resource_spans),
    );
    let mut metrics = Map::new();
    if inspected_bytes > 0 {
        metrics.insert(
            "inspectedBytes".into(),
            Value::String(inspected_bytes.to_string()),
        );
    }
    let mut object = Map::new();
    object.insert("trace".into(), Value::Object(trace_object));
    object.insert("metrics".into(), Value::Object(metrics));
    Value::Object(object)
}

fn resource_spans(batch: &ResourceSpans) -> Value {
    let mut object = Map::new();
    // Grafana dereferences `resource` unconditionally, so it is always present.
    object.insert("resource".into(), resource(batch.resource.as_ref()));
    insert_list(
        &mut object,
        "scopeSpans",
        batch.scope_spans.iter().map(scope_spans),
    );
    insert_string(&mut object, "schemaUrl", &batch.schema_url);
    Value::Object(object)
}

fn resource(resource: Option<&Resource>) -> Value {
    let mut object = Map::new();
    if let Some(resource) = resource {
        insert_list(
            &mut object,
            "attributes",
            resource.attributes.iter().map(key_value),
        );
        insert_u32(
            &mut object,
            "droppedAttributesCount",
            resource.dropped_attributes_count,
        );
    }
    Value::Object(object)
}

fn scope_spans(batch: &ScopeSpans) -> Value {
    let mut object = Map::new();
    object.insert("scope".into(), scope(batch.scope.as_ref()));
    insert_list(&mut object, "spans", batch.spans.iter().map(span));
    insert_string(&mut object, "schemaUrl", &batch.schema_url);
    Value::Object(object)
}

fn scope(scope: Option<&InstrumentationScope>) -> Value {
    let mut object = Map::new();
    if let Some(scope) = scope {
        insert_string(&mut object, "name", &scope.name);
        insert_string(&mut object, "version", &scope.version);
        insert_list(
            &mut object,
            "attributes",
            scope.attributes.iter().map(key_value),
        );
        insert_u32(
            &mut object,
            "droppedAttributesCount",
            scope.dropped_attributes_count,
        );
    }
    Value::Object(object)
}

fn span(span: &Span) -> Value {
    let mut object = Map::new();
    insert_bytes(&mut object, "traceId", &span.trace_id);
    insert_bytes(&mut object, "spanId", &span.span_id);
    insert_string(&mut object, "traceState", &span.trace_state);
    insert_bytes(&mut object, "parentSpanId", &span.parent_span_id);
    insert_u32(&mut object, "flags", span.flags);
    insert_string(&mut object, "name", &span.name);
    if span.kind != 0 {
        let name = SpanKind::try_from(span.kind).map(|kind| kind.as_str_name().to_string());
        object.insert("kind".into(), enum_value(name.ok(), span.kind));
    }
    insert_u64(&mut object, "startTimeUnixNano", span.start_time_unix_nano);
    insert_u64(&mut object, "endTimeUnixNano", span.end_time_unix_nano);
    insert_list(
        &mut object,
        "attributes",
        span.attributes.iter().map(key_value),
    );
    insert_u32(
        &mut object,
        "droppedAttributesCount",
        span.dropped_attributes_count,
    );
    insert_list(&mut object, "events", span.events.iter().map(event));
    insert_u32(&mut object, "droppedEventsCount", span.dropped_events_count);
    insert_list(&mut object, "links", span.links.iter().map(link));
    insert_u32(&mut object, "droppedLinksCount", span.dropped_links_count);
    // Grafana dereferences `status` unconditionally, so it is always present.
    object.insert("status".into(), status(span.status.as_ref()));
    Value::Object(object)
}

fn status(status: Option<&Status>) -> Value {
    let mut object = Map::new();
    if let Some(status) = status {
        insert_string(&mut object, "message", &status.message);
        if status.code != 0 {
            let name = StatusCode::try_from(status.code).map(|code| code.as_str_name().to_string());
            object.insert("code".into(), enum_value(name.ok(), status.code));
        }
    }
    Value::Object(object)
}

fn event(event: &Event) -> Value {
    let mut object = Map::new();
    insert_u64(&mut object, "timeUnixNano", event.time_unix_nano);
    insert_string(&mut object, "name", &event.name);
    insert_list(
        &mut object,
        "attributes",
        event.attributes.iter().map(key_value),
    );
    insert_u32(
        &mut object,
        "droppedAttributesCount",
        event.dropped_attributes_count,
    );
    Value::Object(object)
}

fn link(link: &Link) -> Value {
    let mut object = Map::new();
    insert_bytes(&mut object, "traceId", &link.trace_id);
    insert_bytes(&mut object, "spanId", &link.span_id);
    insert_string(&mut object, "traceState", &link.trace_state);
    insert_list(
        &mut object,
        "attributes",
        link.attributes.iter().map(key_value),
    );
    insert_u32(
        &mut object,
        "droppedAttributesCount",
        link.dropped_attributes_count,
    );
    insert_u32(&mut object, "flags", link.flags);
    Value::Object(object)
}

/// A `KeyValue` in proto3 JSON; `value` is present whenever the attribute carries one.
pub fn key_value(attribute: &KeyValue) -> Value {
    let mut object = Map::new();
    insert_string(&mut object, "key", &attribute.key);
    if let Some(value) = &attribute.value {
        object.insert("value".into(), any_value_json(value));
    }
    Value::Object(object)
}

/// An `AnyValue` in proto3 JSON: the set oneof field is written even when it holds a default.
pub fn any_value_json(value: &AnyValue) -> Value {
    let mut object = Map::new();
    match &value.value {
        // String-table references only occur in OTLP profiles, never in traces.
        None | Some(any_value::Value::StringValueStrindex(_)) => {}
        Some(any_value::Value::StringValue(text)) => {
            object.insert("stringValue".into(), Value::String(text.clone()));
        }
        Some(any_value::Value::BoolValue(flag)) => {
            object.insert("boolValue".into(), Value::Bool(*flag));
        }
        Some(any_value::Value::IntValue(number)) => {
            object.insert("intValue".into(), Value::String(number.to_string()));
        }
        Some(any_value::Value::DoubleValue(number)) => {
            object.insert("doubleValue".into(), double(*number));
        }
        Some(any_value::Value::BytesValue(bytes)) => {
            object.insert(
                "bytesValue".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            );
        }
        Some(any_value::Value::ArrayValue(array)) => {
            let mut inner = Map::new();
            insert_list(
                &mut inner,
                "values",
                array.values.iter().map(any_value_json),
            );
            object.insert("arrayValue".into(), Value::Object(inner));
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let mut inner = Map::new();
            insert_list(&mut inner, "values", list.values.iter().map(key_value));
            object.insert("kvlistValue".into(), Value::Object(inner));
        }
    }
    Value::Object(object)
}

fn double(number: f64) -> Value {
    if number.is_nan() {
        Value::String("NaN".into())
    } else if number.is_infinite() {
        Value::String(
            if number > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }
            .into(),
        )
    } else if number.fract() == 0.0 && number.abs() < 1e15 {
        // Go's encoder writes whole doubles without a fraction (`1`, not `1.0`).
        Value::Number((number as i64).into())
    } else {
        serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
    }
}

fn enum_value(name: Option<String>, number: i32) -> Value {
    match name {
        Some(name) => Value::String(name),
        None => Value::Number(number.into()),
    }
}

fn insert_list(object: &mut Map<String, Value>, key: &str, items: impl Iterator<Item = Value>) {
    let list: Vec<Value> = items.collect();
    if !list.is_empty() {
        object.insert(key.into(), Value::Array(list));
    }
}

fn insert_string(object: &mut Map<String, Value>, key: &str, text: &str) {
    if !text.is_empty() {
        object.insert(key.into(), Value::String(text.to_string()));
    }
}

fn insert_bytes(object: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    if !bytes.is_empty() {
        object.insert(
            key.into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
    }
}

fn insert_u32(object: &mut Map<String, Value>, key: &str, number: u32) {
    if number != 0 {
        object.insert(key.into(), Value::Number(number.into()));
    }
}

fn insert_u64(object: &mut Map<String, Value>, key: &str, number: u64) {
    if number != 0 {
        object.insert(key.into(), Value::String(number.to_string()));
    }
}
