//! Jaeger payloads: Thrift `jaeger.Batch` (binary over HTTP, compact `Agent.emitBatch` over
//! UDP) and protobuf `PostSpansRequest` ([`crate::proto::jaeger`]), decoded into one
//! [`JaegerBatch`] and translated to OTLP (see the module above for the rules).

use opentelemetry_proto::tonic::common::v1::{any_value::Value, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use crate::proto::jaeger as proto;
use crate::proto::thrift::{
    read_list, BinaryProtocol, CompactProtocol, Protocol, TType, ThriftError, MESSAGE_CALL,
    MESSAGE_ONEWAY,
};
use crate::receiver::translate::{self, span_id_bytes, trace_id_bytes, Attributes};

/// Jaeger's placeholder service name for a process without one; the Collector leaves the
/// resource empty for it.
const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";

/// A malformed Jaeger payload.
#[derive(Debug, thiserror::Error)]
pub enum JaegerDecodeError {
    #[error("invalid jaeger.Batch ({context}): {source}")]
    Thrift {
        context: &'static str,
        source: ThriftError,
    },
    #[error("invalid jaeger thrift: {0}")]
    Structure(String),
    #[error("invalid PostSpansRequest protobuf: {0}")]
    Protobuf(String),
}

// ---------------------------------------------------------------- common model

/// A tag value of either wire model.
#[derive(Clone, Debug, PartialEq)]
pub enum TagValue {
    Str(String),
    Bool(bool),
    Long(i64),
    Double(f64),
    Binary(Vec<u8>),
    /// A type code neither model defines.
    Unknown(i32),
}

/// A Jaeger tag (thrift `Tag`, proto `KeyValue`).
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: TagValue,
}

/// `jaeger.Process`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Process {
    pub service_name: String,
    /// `None` when the field was absent (the Collector distinguishes nil from empty).
    pub tags: Option<Vec<Tag>>,
}

/// Reference kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefType {
    ChildOf,
    FollowsFrom,
}

/// `jaeger.SpanRef`.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRef {
    pub ref_type: RefType,
    pub trace_id_high: u64,
    pub trace_id_low: u64,
    pub span_id: u64,
}

/// `jaeger.Log`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Log {
    pub time_unix_nano: u64,
    pub fields: Vec<Tag>,
}

/// A span of either wire model, times already in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JaegerSpan {
    pub trace_id_high: u64,
    pub trace_id_low: u64,
    pub span_id: u64,
    /// Thrift's explicit parent field (0 when absent; proto carries parents as references).
    pub parent_span_id: u64,
    pub operation_name: String,
    pub references: Vec<SpanRef>,
    pub flags: u32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
    /// A span's own process (proto only), overriding the batch's.
    pub process: Option<Process>,
}

/// `jaeger.Batch` of either wire model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JaegerBatch {
    pub process: Option<Process>,
    pub spans: Vec<JaegerSpan>,
}

/// Which wire model a batch came from; the Collector's two translators differ slightly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Thrift,
    Proto,
}

// ---------------------------------------------------------------- thrift decoding

fn thrift_tag<P: Protocol>(protocol: &mut P) -> Result<Tag, ThriftError> {
    protocol.struct_begin()?;
    let mut key = None;
    let mut value_type = None;
    let (mut text, mut double, mut flag, mut long, mut binary) = (None, None, None, None, None);
    while let Some((id, ttype)) = protocol.field_begin()? {
        match (id, ttype) {
            (1, TType::Binary) => key = Some(protocol.read_string()?),
            (2, TType::I32) => value_type = Some(protocol.read_i32()?),
            (3, TType::Binary) => text = Some(protocol.read_string()?),
            (4, TType::Double) => double = Some(protocol.read_double()?),
            (5, TType::Bool) => flag = Some(protocol.read_bool()?),
            (6, TType::I64) => long = Some(protocol.read_i64()?),
            (7, TType::Binary) => binary = Some(protocol.read_binary()?),
            (_, other) => protocol.skip(other)?,
        }
    }
    protocol.struct_end()?;
    let key = key.ok_or_else(|| protocol.error("Tag without its required key".into()))?;
    let value_type =
        value_type.ok_or_else(|| protocol.error(format!("Tag {key:?} without its vType")))?;
    // Thrift's TagType: STRING, DOUBLE, BOOL, LONG, BINARY; an unset value reads as its zero.
    let value = match value_type {
        0 => TagValue::Str(text.unwrap_or_default()),
        1 => TagValue::Double(double.unwrap_or_default()),
        2 => TagValue::Bool(flag.unwrap_or_default()),
        3 => TagValue::Long(long.unwrap_or_default()),
        4 => TagValue::Binary(binary.unwrap_or_default()),
        other => TagValue::Unknown(other),
    };
    Ok(Tag { key, value })
}

fn thrift_tags<P: Protocol>(protocol: &mut P, what: &str) -> Result<Vec<Tag>, ThriftError> {
    read_list(protocol, TType::Struct, what, thrift_tag)
}

fn thrift_process<P: Protocol>(protocol: &mut P) -> Result<Process, ThriftError> {
    protocol.struct_begin()?;
    let mut process = Process::default();
    while let Some((id, ttype)) = protocol.field_begin()? {
        match (id, ttype) {
            (1, TType::Binary) => process.service_name = protocol.read_string()?,
            (2, TType::List) => process.tags = Some(thrift_tags(protocol, "Process.tags")?),
            (_, other) => protocol.skip(other)?,
        }
    }
    protocol.struct_end()?;
    Ok(process)
}

fn thrift_span_ref<P: Protocol>(protocol: &mut P) -> Result<SpanRef, ThriftError> {
    protocol.struct_begin()?;
    let mut reference = SpanRef {
        ref_type: RefType::ChildOf,
        trace_id_high: 0,
        trace_id_low: 0,
        span_id: 0,
    };
    while let Some((id, ttype)) = protocol.field_begin()? {
        match (id, ttype) {
            (1, TType::I32) => {
                reference.ref_type = match protocol.read_i32()? {
                    0 => RefType::ChildOf,
                    _ => RefType::FollowsFrom,
                }
            }
            (2, TType::I64) => reference.trace_id_low = protocol.read_i64()? as u64,
            (3, TType::I64) => reference.trace_id_high = protocol.read_i64()? as u64,
            (4, TType::I64) => reference.span_id = protocol.read_i64()? as u64,
            (_, other) => protocol.skip(other)?,
        }
    }
    protocol.struct_end()?;
    Ok(reference)
}

fn thrift_log<P: Protocol>(protocol: &mut P) -> Result<Log, ThriftError> {
    protocol.struct_begin()?;
    let mut log = Log::default();
    while let Some((id, ttype)) = protocol.field_begin()? {
        match (id, ttype) {
            (1, TType::I64) => log.time_unix_nano = micros_to_nanos(protocol.read_i64()?),
            (2, TType::List) => log.fields = thrift_tags(protocol, "Log.fields")?,
            (_, other) => protocol.skip(other)?,
        }
    }
    protocol.struct_end()?;
    Ok(log)
}

/// The Collector converts with `uint64(µs) * 1000`, wrapping; so do we.
fn micros_to_nanos(micros: i64) -> u64 {
    (micros as u64).wrapping_mul(1000)
}

fn thrift_span<P: Protocol>(protocol: &mut P) -> Result<JaegerSpan, ThriftError> {
    protocol.struct_begin()?;
    let mut span = JaegerSpan::default();
    let (mut start, mut duration) = (0i64, 0i64);
    while let Some((id, ttype)) = protocol.field_begin()? {
        match (id, ttype) {
            (1, TType::I64) => span.trace_id_low = protocol.read_i64()? as u64,
            (2, TType::I64) => span.trace_id_high = protocol.read_i64()? as u64,
            (3, TType::I64) => span.span_id = protocol.read_i64()? as u64,
            (4, TType::I64) => span.parent_span_id = protocol.read_i64()? as u64,
            (5, TType::Binary) => span.operation_name = protocol.read_string()?,
            (6, TType::List) => {
                span.references =
                    read_list(protocol, TType::Struct, "Span.references", thrift_span_ref)?
            }
            (7, TType::I32) => span.flags = protocol.read_i32()? as u32,
            (8, TType::I64) => start = protocol.read_i64()?,
            (9, TType::I64) => duration = protocol.read_i64()?,
            (10, TType::List) => span.tags = thrift_tags(protocol, "Span.tags")?,
            (11, TType::List) => {
                span.logs = read_list(protocol, TType::Struct, "Span.logs", thrift_log)?
            }
            (_, other) => protocol.skip(other)?,
        }
    }
    protocol.struct_end()?;
    span.start_unix_nano = micros_to_nanos(start);
    span.end_unix_nano = micros_to_nanos(start.wrapping_add(duration));
    Ok(span)
}

/// Reads a Thrift `jaeger.Batch` struct; both of its fields are `required` in jaeger.thrift,
/// so a batch without one is refused rather than read as empty.
pub fn thrift_batch<P: Protocol>(protocol: &mut P) -> Result<JaegerBatch, ThriftError> {
    protocol.struct_begin()?;
    let mut process = None;
    let mut spans = None;
    while let Some((id, ttype)) = protocol.field_begin()? {
        match (id, ttype) {
            (1, TType::Struct) => process = Some(thrift_process(protocol)?),
            (2, TType::List) => {
                spans = Some(read_list(
                    protocol,
                    TType::Struct,
                    "Batch.spans",
                    thrift_span,
                )?)
            }
            (_, other) => protocol.skip(other)?,
        }
    }
    protocol.struct_end()?;
    let process =
        process.ok_or_else(|| protocol.error("Batch without its required process".into()))?;
    let spans = spans.ok_or_else(|| protocol.error("Batch without its required spans".into()))?;
    Ok(JaegerBatch {
        process: Some(process),
        spans,
    })
}

/// Decodes the body of `POST /api/traces`: one Thrift-binary `jaeger.Batch`.
pub fn decode_thrift_http(body: &[u8]) -> Result<JaegerBatch, JaegerDecodeError> {
    let mut protocol = BinaryProtocol::new(body);
    thrift_batch(&mut protocol).map_err(|source| JaegerDecodeError::Thrift {
        context: "thrift binary body",
        source,
    })
}

/// Decodes one agent UDP datagram: a Thrift-compact `Agent.emitBatch(1: Batch batch)` call
/// (the agent's :6831).
pub fn decode_agent_compact(packet: &[u8]) -> Result<JaegerBatch, JaegerDecodeError> {
    emit_batch(&mut CompactProtocol::new(packet))
}

/// Decodes one agent UDP datagram: a Thrift-binary `Agent.emitBatch(1: Batch batch)` call
/// (the agent's :6832, where jaeger-client-node and others send by default).
pub fn decode_agent_binary(packet: &[u8]) -> Result<JaegerBatch, JaegerDecodeError> {
    emit_batch(&mut BinaryProtocol::new(packet))
}

fn emit_batch<P: Protocol>(protocol: &mut P) -> Result<JaegerBatch, JaegerDecodeError> {
    let thrift = |source| JaegerDecodeError::Thrift {
        context: "agent emitBatch",
        source,
    };
    let (name, message_type, _) = protocol.message_begin().map_err(thrift)?;
    if name != "emitBatch" {
        return Err(JaegerDecodeError::Structure(format!(
            "agent method {name:?} is not emitBatch"
        )));
    }
    if message_type != MESSAGE_ONEWAY && message_type != MESSAGE_CALL {
        return Err(JaegerDecodeError::Structure(format!(
            "message type {message_type} is not a call"
        )));
    }
    protocol.struct_begin().map_err(thrift)?;
    let mut batch = None;
    while let Some((id, ttype)) = protocol.field_begin().map_err(thrift)? {
        match (id, ttype) {
            (1, TType::Struct) => batch = Some(thrift_batch(protocol).map_err(thrift)?),
            (_, other) => protocol.skip(other).map_err(thrift)?,
        }
    }
    protocol.struct_end().map_err(thrift)?;
    batch.ok_or_else(|| JaegerDecodeError::Structure("emitBatch without its batch".into()))
}

// ---------------------------------------------------------------- protobuf model

fn proto_time_nanos(time: Option<&proto::Time>) -> u64 {
    time.map_or(0, |time| {
        (time.seconds as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(time.nanos as u64)
    })
}

fn proto_trace_id(bytes: &[u8], what: &str) -> Result<(u64, u64), JaegerDecodeError> {
    match bytes.len() {
        0 => Ok((0, 0)),
        16 => {
            let mut high = [0u8; 8];
            let mut low = [0u8; 8];
            high.copy_from_slice(&bytes[..8]);
            low.copy_from_slice(&bytes[8..]);
            Ok((u64::from_be_bytes(high), u64::from_be_bytes(low)))
        }
        other => Err(JaegerDecodeError::Protobuf(format!(
            "{what} has {other} bytes, expected 16"
        ))),
    }
}

fn proto_span_id(bytes: &[u8], what: &str) -> Result<u64, JaegerDecodeError> {
    match bytes.len() {
        0 => Ok(0),
        8 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(bytes);
            Ok(u64::from_be_bytes(raw))
        }
        other => Err(JaegerDecodeError::Protobuf(format!(
            "{what} has {other} bytes, expected 8"
        ))),
    }
}

fn proto_tags(tags: Vec<proto::KeyValue>) -> Vec<Tag> {
    tags.into_iter()
        .map(|tag| {
            // The proto ValueType order differs from thrift's: STRING, BOOL, INT64, FLOAT64, BINARY.
            let value = match tag.v_type {
                0 => TagValue::Str(tag.v_str),
                1 => TagValue::Bool(tag.v_bool),
                2 => TagValue::Long(tag.v_int64),
                3 => TagValue::Double(tag.v_float64),
                4 => TagValue::Binary(tag.v_binary),
                other => TagValue::Unknown(other),
            };
            Tag {
                key: tag.key,
                value,
            }
        })
        .collect()
}

fn proto_process(process: proto::Process) -> Process {
    Process {
        service_name: process.service_name,
        // Protobuf cannot tell an absent repeated field from an empty one.
        tags: (!process.tags.is_empty()).then(|| proto_tags(process.tags)),
    }
}

/// Decodes a gRPC `PostSpansRequest`.
pub fn decode_post_spans(body: &[u8]) -> Result<JaegerBatch, JaegerDecodeError> {
    let request = proto::PostSpansRequest::decode(body)
        .map_err(|error| JaegerDecodeError::Protobuf(error.to_string()))?;
    let batch = request.batch.unwrap_or_default();
    let mut spans = Vec::with_capacity(batch.spans.len());
    for (index, span) in batch.spans.into_iter().enumerate() {
        let (trace_id_high, trace_id_low) =
            proto_trace_id(&span.trace_id, &format!("batch.spans[{index}].trace_id"))?;
        let span_id = proto_span_id(&span.span_id, &format!("batch.spans[{index}].span_id"))?;
        let mut references = Vec::with_capacity(span.references.len());
        for (reference_index, reference) in span.references.into_iter().enumerate() {
            let path = format!("batch.spans[{index}].references[{reference_index}]");
            let (high, low) = proto_trace_id(&reference.trace_id, &format!("{path}.trace_id"))?;
            references.push(SpanRef {
                ref_type: if reference.ref_type == 0 {
                    RefType::ChildOf
                } else {
                    RefType::FollowsFrom
                },
                trace_id_high: high,
                trace_id_low: low,
                span_id: proto_span_id(&reference.span_id, &format!("{path}.span_id"))?,
            });
        }
        let start_unix_nano = proto_time_nanos(span.start_time.as_ref());
        let duration = proto_time_nanos(span.duration.as_ref());
        spans.push(JaegerSpan {
            trace_id_high,
            trace_id_low,
            span_id,
            parent_span_id: 0,
            operation_name: span.operation_name,
            references,
            flags: span.flags,
            start_unix_nano,
            end_unix_nano: start_unix_nano.wrapping_add(duration),
            tags: proto_tags(span.tags),
            logs: span
                .logs
                .into_iter()
                .map(|log| Log {
                    time_unix_nano: proto_time_nanos(log.timestamp.as_ref()),
                    fields: proto_tags(log.fields),
                })
                .collect(),
            process: span.process.map(proto_process),
        });
    }
    Ok(JaegerBatch {
        process: batch.process.map(proto_process),
        spans,
    })
}

// ---------------------------------------------------------------- translation

fn put_tags(attributes: &mut Attributes, tags: &[Tag]) {
    for tag in tags {
        let value = match &tag.value {
            TagValue::Str(text) => Value::StringValue(text.clone()),
            TagValue::Bool(flag) => Value::BoolValue(*flag),
            TagValue::Long(number) => Value::IntValue(*number),
            TagValue::Double(number) => Value::DoubleValue(*number),
            TagValue::Binary(bytes) => Value::BytesValue(bytes.clone()),
            TagValue::Unknown(code) => {
                Value::StringValue(format!("<Unknown Jaeger TagType \"{code}\">"))
            }
        };
        attributes.put(&tag.key, value);
    }
}

fn resource_of(process: Option<&Process>, model: Model) -> Resource {
    let mut resource = Resource::default();
    let Some(process) = process else {
        return resource;
    };
    if model == Model::Proto && process.service_name == NO_SERVICE_NAME {
        return resource;
    }
    if process.service_name.is_empty() && process.tags.is_none() {
        return resource;
    }
    let mut attributes = Attributes::default();
    if !process.service_name.is_empty() {
        attributes.put_str("service.name", &process.service_name);
    }
    put_tags(&mut attributes, process.tags.as_deref().unwrap_or_default());
    if !attributes.contains("host.name") {
        if let Some(hostname) = attributes.remove("hostname") {
            attributes.put("host.name", hostname);
        }
    }
    if !attributes.contains("opencensus.exporterversion") {
        if let Some(version) = attributes.remove("jaeger.version") {
            let version = translate::value_as_string(&version);
            attributes.put_str("opencensus.exporterversion", &format!("Jaeger-{version}"));
        }
    }
    resource.attributes = attributes.into_vec();
    resource
}

/// The parent: the explicit field, else a CHILD_OF reference in the same trace, else the first
/// FOLLOWS_FROM one (Jaeger's `Span.ParentSpanID`).
fn parent_of(span: &JaegerSpan) -> u64 {
    if span.parent_span_id != 0 {
        return span.parent_span_id;
    }
    let same_trace = |reference: &&SpanRef| {
        reference.trace_id_high == span.trace_id_high && reference.trace_id_low == span.trace_id_low
    };
    if let Some(child_of) = span
        .references
        .iter()
        .filter(same_trace)
        .find(|reference| reference.ref_type == RefType::ChildOf)
    {
        return child_of.span_id;
    }
    span.references
        .iter()
        .filter(same_trace)
        .find(|reference| reference.ref_type == RefType::FollowsFrom)
        .map_or(0, |reference| reference.span_id)
}

fn kind_of(tag: &str) -> SpanKind {
    match tag {
        "client" => SpanKind::Client,
        "server" => SpanKind::Server,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => SpanKind::Unspecified,
    }
}

fn integer_code(value: &Value) -> Option<i64> {
    match value {
        Value::IntValue(number) => Some(*number),
        Value::StringValue(text) => text.parse().ok(),
        _ => None,
    }
}

/// The Collector's `setInternalSpanStatus`: `error=true` wins, then `otel.status_code`, then an
/// HTTP status code (4xx is an error only for clients).
fn status_of(attributes: &mut Attributes, kind: SpanKind) -> Option<Status> {
    let mut code = OtlpStatusCode::Unset;
    let mut message = String::new();
    let mut exists = false;
    if let Some(Value::BoolValue(true)) = attributes.get("error") {
        code = OtlpStatusCode::Error;
        attributes.remove("error");
        exists = true;
        if let Some(description) = attributes.remove("otel.status_description") {
            message = translate::value_as_string(&description);
        } else if let Some(http_message) = attributes.get("http.status_message") {
            message = translate::value_as_string(http_message);
        }
    }
    if let Some(status_code) = attributes.get("otel.status_code") {
        if !exists {
            exists = true;
            match translate::value_as_string(status_code)
                .to_ascii_uppercase()
                .as_str()
            {
                "OK" => code = OtlpStatusCode::Ok,
                "ERROR" => code = OtlpStatusCode::Error,
                _ => {}
            }
            if let Some(description) = attributes.remove("otel.status_description") {
                message = translate::value_as_string(&description);
            }
        }
        attributes.remove("otel.status_code");
    } else if !exists {
        if let Some(http_code) = attributes.get("http.status_code").and_then(integer_code) {
            let client_error = (400..500).contains(&http_code);
            // 4xx is the server's answer to a bad request (unset) but a failure for a client.
            let http_status = match (client_error, kind) {
                (true, SpanKind::Client) => OtlpStatusCode::Error,
                (true, SpanKind::Server) => OtlpStatusCode::Unset,
                _ if (100..399).contains(&http_code) => OtlpStatusCode::Unset,
                _ => OtlpStatusCode::Error,
            };
            if http_status != OtlpStatusCode::Unset {
                exists = true;
                code = http_status;
            }
            if let Some(http_message) = attributes.get("http.status_message") {
                message = translate::value_as_string(http_message);
            }
        }
    }
    exists.then_some(Status {
        code: code as i32,
        message,
    })
}

fn take_string_tag(tags: &mut Vec<Tag>, key: &str) -> Option<String> {
    let index = tags.iter().position(|tag| tag.key == key)?;
    let tag = tags.remove(index);
    Some(match tag.value {
        TagValue::Str(text) => text,
        _ => String::new(),
    })
}

fn otlp_span(mut span: JaegerSpan, model: Model) -> Span {
    let parent = parent_of(&span);
    let mut attributes = Attributes::default();
    put_tags(&mut attributes, &span.tags);
    let mut kind = SpanKind::Unspecified;
    if let Some(kind_tag) = attributes.remove("span.kind") {
        kind = kind_of(&translate::value_as_string(&kind_tag));
    }
    let status = status_of(&mut attributes, kind);
    let mut trace_state = String::new();
    if model == Model::Proto {
        if let Some(state) = attributes.remove("w3c.tracestate") {
            trace_state = translate::value_as_string(&state);
        }
    }
    let events = std::mem::take(&mut span.logs)
        .into_iter()
        .map(|log| {
            let mut fields = Attributes::default();
            put_tags(&mut fields, &log.fields);
            let name = fields
                .remove("event")
                .map(|name| translate::value_as_string(&name))
                .unwrap_or_default();
            Event {
                time_unix_nano: log.time_unix_nano,
                name,
                attributes: fields.into_vec(),
                dropped_attributes_count: 0,
            }
        })
        .collect();
    let only_the_parent = span.references.len() == 1
        && span.references[0].span_id == parent
        && span.references[0].ref_type == RefType::ChildOf;
    let links = if only_the_parent {
        Vec::new()
    } else {
        span.references
            .iter()
            .filter(|reference| {
                !(reference.span_id == parent && reference.ref_type == RefType::ChildOf)
            })
            .map(|reference| {
                let mut link_attributes = Attributes::default();
                link_attributes.put_str(
                    "opentracing.ref_type",
                    match reference.ref_type {
                        RefType::ChildOf => "child_of",
                        RefType::FollowsFrom => "follows_from",
                    },
                );
                Link {
                    trace_id: trace_id_bytes(reference.trace_id_high, reference.trace_id_low),
                    span_id: span_id_bytes(reference.span_id),
                    attributes: link_attributes.into_vec(),
                    ..Default::default()
                }
            })
            .collect()
    };
    Span {
        trace_id: trace_id_bytes(span.trace_id_high, span.trace_id_low),
        span_id: span_id_bytes(span.span_id),
        trace_state,
        parent_span_id: span_id_bytes(parent),
        // Jaeger's flag bit 1 is "sampled", the same bit as W3C's sampled trace flag.
        flags: span.flags & 0x1,
        name: span.operation_name,
        kind: kind as i32,
        start_time_unix_nano: span.start_unix_nano,
        end_time_unix_nano: span.end_unix_nano,
        attributes: attributes.into_vec(),
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        links,
        dropped_links_count: 0,
        status,
    }
}

fn is_blank(span: &JaegerSpan) -> bool {
    *span == JaegerSpan::default()
}

/// Translates a batch to OTLP as the Collector's `ThriftToTraces` / `ProtoToTraces` do.
pub fn to_resource_spans(batch: JaegerBatch, model: Model) -> Vec<ResourceSpans> {
    if batch.process.is_none() && batch.spans.is_empty() {
        return Vec::new();
    }
    match model {
        Model::Thrift => {
            let resource = resource_of(batch.process.as_ref(), model);
            let spans: Vec<Span> = batch
                .spans
                .into_iter()
                .filter(|span| !is_blank(span))
                .map(|span| otlp_span(span, model))
                .collect();
            let scope_spans = if spans.is_empty() {
                Vec::new()
            } else {
                vec![ScopeSpans {
                    scope: Some(InstrumentationScope::default()),
                    spans,
                    schema_url: String::new(),
                }]
            };
            vec![ResourceSpans {
                resource: Some(resource),
                scope_spans,
                schema_url: String::new(),
            }]
        }
        Model::Proto => {
            // A span's own process wins over the batch's; spans are regrouped by process, in
            // the order processes are first seen.
            let mut groups: Vec<(Option<Process>, Vec<JaegerSpan>)> =
                vec![(batch.process.clone(), Vec::new())];
            for mut span in batch.spans {
                let process = span.process.take().or_else(|| batch.process.clone());
                match groups.iter_mut().find(|(known, _)| *known == process) {
                    Some((_, spans)) => spans.push(span),
                    None => groups.push((process, vec![span])),
                }
            }
            groups
                .into_iter()
                .filter(|(process, spans)| process.is_some() || !spans.is_empty())
                .map(|(process, spans)| {
                    let resource = resource_of(process.as_ref(), model);
                    let mut scopes: Vec<ScopeSpans> = Vec::new();
                    for mut span in spans.into_iter().filter(|span| !is_blank(span)) {
                        let mut scope = InstrumentationScope::default();
                        if let Some(name) = take_string_tag(&mut span.tags, "otel.scope.name") {
                            scope.name = name;
                            if let Some(version) =
                                take_string_tag(&mut span.tags, "otel.scope.version")
                            {
                                scope.version = version;
                            }
                        }
                        let otlp = otlp_span(span, model);
                        match scopes
                            .iter_mut()
                            .find(|existing| existing.scope.as_ref() == Some(&scope))
                        {
                            Some(existing) => existing.spans.push(otlp),
                            None => scopes.push(ScopeSpans {
                                scope: Some(scope),
                                spans: vec![otlp],
                                schema_url: String::new(),
                            }),
                        }
                    }
                    ResourceSpans {
                        resource: Some(resource),
                        scope_spans: scopes,
                        schema_url: String::new(),
                    }
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::translate::span_attribute as attribute;
    use proptest::prelude::*;

    fn tag(key: &str, value: TagValue) -> Tag {
        Tag {
            key: key.into(),
            value,
        }
    }

    #[test]
    fn a_thrift_batch_needs_its_required_fields() {
        // Field 1: Process { 1: serviceName = "shop" }; field 2: an empty list<Span>.
        let process = [&[12u8, 0, 1, 11, 0, 1, 0, 0, 0, 4][..], b"shop", &[0]].concat();
        let spans = [15u8, 0, 2, 12, 0, 0, 0, 0];
        let cases: [(Vec<u8>, Option<&str>); 4] = [
            ([&process[..], &spans, &[0]].concat(), None),
            (vec![0], Some("required process")),
            ([&process[..], &[0]].concat(), Some("required spans")),
            ([&spans[..], &[0]].concat(), Some("required process")),
        ];
        for (body, refusal) in &cases {
            match (decode_thrift_http(body), refusal) {
                (Ok(batch), None) => {
                    assert_eq!(batch.process.unwrap().service_name, "shop");
                    assert!(batch.spans.is_empty());
                }
                (Err(error), Some(needle)) => {
                    assert!(error.to_string().contains(needle), "{error}")
                }
                (outcome, expected) => panic!("{outcome:?}, expected {expected:?}"),
            }
        }
        assert_eq!(cases.len(), 4);
    }

    #[test]
    fn thrift_translation_follows_the_collector() {
        let batch = JaegerBatch {
            process: Some(Process {
                service_name: "shop".into(),
                tags: Some(vec![
                    tag("hostname", TagValue::Str("box".into())),
                    tag("jaeger.version", TagValue::Str("Go-2".into())),
                ]),
            }),
            spans: vec![JaegerSpan {
                trace_id_low: 7,
                span_id: 2,
                operation_name: "op".into(),
                references: vec![
                    SpanRef {
                        ref_type: RefType::ChildOf,
                        trace_id_high: 0,
                        trace_id_low: 7,
                        span_id: 1,
                    },
                    SpanRef {
                        ref_type: RefType::FollowsFrom,
                        trace_id_high: 0,
                        trace_id_low: 8,
                        span_id: 3,
                    },
                ],
                flags: 3,
                start_unix_nano: 1000,
                end_unix_nano: 3000,
                tags: vec![
                    tag("span.kind", TagValue::Str("server".into())),
                    tag("error", TagValue::Bool(true)),
                    tag("otel.status_description", TagValue::Str("bad".into())),
                    tag("n", TagValue::Long(4)),
                    tag("b", TagValue::Binary(vec![1])),
                ],
                logs: vec![Log {
                    time_unix_nano: 2000,
                    fields: vec![
                        tag("event", TagValue::Str("retry".into())),
                        tag("x", TagValue::Double(1.5)),
                    ],
                }],
                ..Default::default()
            }],
        };
        let resource_spans = to_resource_spans(batch, Model::Thrift);
        let resource = resource_spans[0].resource.as_ref().unwrap();
        let keys: Vec<&str> = resource
            .attributes
            .iter()
            .map(|pair| pair.key.as_str())
            .collect();
        assert_eq!(
            keys,
            ["service.name", "host.name", "opencensus.exporterversion"]
        );
        let span = &resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "00000000000000000000000000000007"
        );
        assert_eq!(hex::encode(&span.parent_span_id), "0000000000000001");
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(span.flags, 1);
        let status = span.status.as_ref().unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (OtlpStatusCode::Error as i32, "bad")
        );
        assert!(attribute(span, "error").is_none() && attribute(span, "span.kind").is_none());
        assert_eq!(attribute(span, "n"), Some(&Value::IntValue(4)));
        assert_eq!(attribute(span, "b"), Some(&Value::BytesValue(vec![1])));
        assert_eq!(span.events[0].name, "retry");
        assert_eq!(span.events[0].attributes.len(), 1);
        assert_eq!(span.links.len(), 1, "the parent is not repeated as a link");
        assert_eq!(hex::encode(&span.links[0].span_id), "0000000000000003");
    }

    #[test]
    fn proto_regroups_by_process_and_reads_scope_and_status() {
        let request = proto::PostSpansRequest {
            batch: Some(proto::Batch {
                process: Some(proto::Process {
                    service_name: "a".into(),
                    tags: vec![],
                }),
                spans: vec![
                    proto::Span {
                        trace_id: vec![0; 15].into_iter().chain([5]).collect(),
                        span_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
                        tags: vec![
                            proto::KeyValue {
                                key: "otel.scope.name".into(),
                                v_str: "lib".into(),
                                ..Default::default()
                            },
                            proto::KeyValue {
                                key: "otel.status_code".into(),
                                v_str: "OK".into(),
                                ..Default::default()
                            },
                        ],
                        start_time: Some(proto::Time {
                            seconds: 1,
                            nanos: 5,
                        }),
                        duration: Some(proto::Time {
                            seconds: 0,
                            nanos: 10,
                        }),
                        ..Default::default()
                    },
                    proto::Span {
                        trace_id: vec![0; 15].into_iter().chain([5]).collect(),
                        span_id: vec![0, 0, 0, 0, 0, 0, 0, 2],
                        process: Some(proto::Process {
                            service_name: "b".into(),
                            tags: vec![],
                        }),
                        references: vec![proto::SpanRef {
                            trace_id: vec![0; 15].into_iter().chain([5]).collect(),
                            span_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
                            ref_type: 1,
                        }],
                        tags: vec![proto::KeyValue {
                            key: "http.status_code".into(),
                            v_type: 2,
                            v_int64: 503,
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                ],
            }),
        };
        let batch = decode_post_spans(&request.encode_to_vec()).unwrap();
        let resource_spans = to_resource_spans(batch, Model::Proto);
        assert_eq!(resource_spans.len(), 2);
        let first = &resource_spans[0].scope_spans[0];
        assert_eq!(first.scope.as_ref().unwrap().name, "lib");
        assert_eq!(first.spans[0].start_time_unix_nano, 1_000_000_005);
        assert_eq!(first.spans[0].end_time_unix_nano, 1_000_000_015);
        assert_eq!(
            first.spans[0].status.as_ref().unwrap().code,
            OtlpStatusCode::Ok as i32
        );
        let second = &resource_spans[1].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&second.parent_span_id),
            "0000000000000001",
            "FOLLOWS_FROM in the same trace is the parent"
        );
        assert_eq!(
            second.links.len(),
            1,
            "and, as in the Collector, also a link"
        );
        assert_eq!(
            second.status.as_ref().unwrap().code,
            OtlpStatusCode::Error as i32
        );
        let mut bad = request.clone();
        if let Some(batch) = bad.batch.as_mut() {
            batch.spans[0].trace_id = vec![1, 2];
        }
        let error = decode_post_spans(&bad.encode_to_vec())
            .unwrap_err()
            .to_string();
        assert!(error.contains("batch.spans[0].trace_id"), "{error}");
    }

    #[test]
    fn agent_compact_packet_decodes() {
        // emitBatch(1: Batch{1: Process{1: "svc"}, 2: [Span{1: 7, 2: 0, 3: 1, 4: 0, 5: "op", 7: 1, 8: 10, 9: 2}]})
        let mut packet = vec![0x82, 0x81, 0x01, 9];
        packet.extend_from_slice(b"emitBatch");
        packet.extend_from_slice(&[0x1c, 0x1c, 0x18, 3]);
        packet.extend_from_slice(b"svc");
        packet.extend_from_slice(&[0x00, 0x19, 0x1c]);
        packet.extend_from_slice(&[0x16, 14, 0x16, 0, 0x16, 2, 0x16, 0, 0x18, 2]);
        packet.extend_from_slice(b"op");
        packet.extend_from_slice(&[0x25, 2, 0x16, 20, 0x16, 4, 0x00, 0x00, 0x00]);
        let batch = decode_agent_compact(&packet).unwrap();
        assert_eq!(batch.process.as_ref().unwrap().service_name, "svc");
        let span = &batch.spans[0];
        assert_eq!((span.trace_id_low, span.span_id, span.flags), (7, 1, 1));
        assert_eq!((span.start_unix_nano, span.end_unix_nano), (10_000, 12_000));
        assert!(decode_agent_compact(&packet[..packet.len() - 3]).is_err());
        let mut wrong_method = packet.clone();
        wrong_method[4] = b'x';
        assert!(decode_agent_compact(&wrong_method)
            .unwrap_err()
            .to_string()
            .contains("emitBatch"));
    }

    #[test]
    fn agent_binary_packet_decodes() {
        // The same emitBatch as above in Thrift's binary protocol (strict header, oneway).
        let i64_field = |id: u8, value: i64| {
            let mut out = vec![10, 0, id];
            out.extend_from_slice(&value.to_be_bytes());
            out
        };
        let string = |text: &str| {
            let mut out = (text.len() as i32).to_be_bytes().to_vec();
            out.extend_from_slice(text.as_bytes());
            out
        };
        let mut packet = vec![0x80, 0x01, 0x00, 0x04];
        packet.extend(string("emitBatch"));
        packet.extend_from_slice(&[0, 0, 0, 0]);
        packet.extend_from_slice(&[12, 0, 1, 12, 0, 1, 11, 0, 1]);
        packet.extend(string("svc"));
        packet.extend_from_slice(&[0, 15, 0, 2, 12, 0, 0, 0, 1]);
        for (id, value) in [(1, 7), (2, 0), (3, 1), (4, 0)] {
            packet.extend(i64_field(id, value));
        }
        packet.extend_from_slice(&[11, 0, 5]);
        packet.extend(string("op"));
        packet.extend_from_slice(&[8, 0, 7, 0, 0, 0, 1]);
        packet.extend(i64_field(8, 10));
        packet.extend(i64_field(9, 2));
        packet.extend_from_slice(&[0, 0, 0]);
        let batch = decode_agent_binary(&packet).unwrap();
        assert_eq!(batch.process.as_ref().unwrap().service_name, "svc");
        let span = &batch.spans[0];
        assert_eq!((span.trace_id_low, span.span_id, span.flags), (7, 1, 1));
        assert_eq!((span.start_unix_nano, span.end_unix_nano), (10_000, 12_000));
        assert!(decode_agent_binary(&packet[..packet.len() - 3]).is_err());
        let mut wrong_version = packet.clone();
        wrong_version[1] = 0x02;
        assert!(decode_agent_binary(&wrong_version)
            .unwrap_err()
            .to_string()
            .contains("version"));
        // A compact datagram on the binary port is refused, not misread.
        assert!(decode_agent_binary(&[0x82, 0x81, 0x01, 9]).is_err());
    }

    proptest! {
        #[test]
        fn random_payloads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok(batch) = decode_agent_binary(&bytes) {
                let _ = to_resource_spans(batch, Model::Thrift);
            }
            if let Ok(batch) = decode_thrift_http(&bytes) {
                let _ = to_resource_spans(batch, Model::Thrift);
            }
            if let Ok(batch) = decode_agent_compact(&bytes) {
                let _ = to_resource_spans(batch, Model::Thrift);
            }
            if let Ok(batch) = decode_post_spans(&bytes) {
                let _ = to_resource_spans(batch, Model::Proto);
            }
        }
    }
}
