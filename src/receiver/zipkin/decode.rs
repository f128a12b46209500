//! Zipkin v2 bodies: JSON (an array of spans) or protobuf `ListOfSpans`
//! ([`crate::proto::zipkin`]), decoded into [`ZipkinSpan`]s and translated to OTLP (see the
//! module above for the rules).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opentelemetry_proto::tonic::common::v1::{any_value::Value, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::Value as Json;

use crate::distributor::DistributorError;
use crate::proto::zipkin as proto;
use crate::receiver::translate::{span_id_bytes, trace_id_bytes, Attributes};

/// The Collector's placeholder when a span has no local service name.
const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";
/// Most `otlp.link.N` tags read, as in the Collector.
const MAX_LINK_TAGS: usize = 128;

/// A malformed Zipkin body, naming where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid zipkin {format} at {path}: {reason}")]
pub struct ZipkinDecodeError {
    /// `v2 JSON` or `protobuf`.
    pub format: &'static str,
    /// Where in the body, e.g. `$[3].traceId`.
    pub path: String,
    /// What was wrong.
    pub reason: String,
}

/// An endpoint (local or remote).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    pub service_name: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub port: i32,
}

/// A Zipkin v2 span, as both encodings decode it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZipkinSpan {
    pub trace_id_high: u64,
    pub trace_id_low: u64,
    pub id: u64,
    pub parent_id: u64,
    /// `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER` or empty.
    pub kind: String,
    pub name: String,
    /// Microseconds since the epoch; `None` when absent.
    pub timestamp: Option<u64>,
    /// Microseconds.
    pub duration: u64,
    pub local_endpoint: Option<Endpoint>,
    pub remote_endpoint: Option<Endpoint>,
    /// `(timestamp µs, value)`.
    pub annotations: Vec<(u64, String)>,
    pub tags: BTreeMap<String, String>,
    pub shared: bool,
    /// Zipkin v1's `debug` (forced sampling); the v2 decoders leave it unset, as the
    /// Collector's v2 translator ignores v2's.
    pub debug: bool,
}

// ---------------------------------------------------------------- JSON

pub(crate) fn json_error(path: &str, reason: impl Into<String>) -> ZipkinDecodeError {
    ZipkinDecodeError {
        format: "v2 JSON",
        path: path.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn hex_u64(text: &str, path: &str) -> Result<u64, ZipkinDecodeError> {
    if text.is_empty() || text.len() > 16 {
        return Err(json_error(
            path,
            format!("{text:?} is not 1 to 16 hex characters"),
        ));
    }
    u64::from_str_radix(text, 16).map_err(|_| json_error(path, format!("{text:?} is not hex")))
}

pub(crate) fn json_trace_id(text: &str, path: &str) -> Result<(u64, u64), ZipkinDecodeError> {
    if text.len() > 32 {
        return Err(json_error(
            path,
            format!("{text:?} is longer than 32 hex characters"),
        ));
    }
    if text.len() > 16 {
        let (high, low) = text.split_at(text.len() - 16);
        return Ok((hex_u64(high, path)?, hex_u64(low, path)?));
    }
    Ok((0, hex_u64(text, path)?))
}

pub(crate) fn json_u64(value: &Json, path: &str) -> Result<u64, ZipkinDecodeError> {
    match value {
        Json::Number(number) => number
            .as_u64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|float| *float >= 0.0 && float.fract() == 0.0)
                    .map(|float| float as u64)
            })
            .ok_or_else(|| json_error(path, format!("{number} is not a non-negative integer"))),
        other => Err(json_error(path, format!("expected a number, got {other}"))),
    }
}

pub(crate) fn json_str<'a>(value: &'a Json, path: &str) -> Result<&'a str, ZipkinDecodeError> {
    value
        .as_str()
        .ok_or_else(|| json_error(path, format!("expected a string, got {value}")))
}

/// The address `key` of a JSON endpoint; absent, null or empty is none.
fn json_address<Address: std::str::FromStr>(
    object: &serde_json::Map<String, Json>,
    path: &str,
    key: &str,
    family: &str,
) -> Result<Option<Address>, ZipkinDecodeError> {
    let Some(value) = object.get(key).filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let field = format!("{path}.{key}");
    let text = json_str(value, &field)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| json_error(&field, format!("{text:?} is not an {family} address")))
}

pub(crate) fn json_endpoint(
    value: &Json,
    path: &str,
) -> Result<Option<Endpoint>, ZipkinDecodeError> {
    if value.is_null() {
        return Ok(None);
    }
    let object = value
        .as_object()
        .ok_or_else(|| json_error(path, "expected an object"))?;
    let mut endpoint = Endpoint::default();
    if let Some(name) = object.get("serviceName").filter(|value| !value.is_null()) {
        endpoint.service_name = json_str(name, &format!("{path}.serviceName"))?.to_string();
    }
    endpoint.ipv4 = json_address(object, path, "ipv4", "IPv4")?;
    endpoint.ipv6 = json_address(object, path, "ipv6", "IPv6")?;
    if let Some(port) = object.get("port").filter(|value| !value.is_null()) {
        let field = format!("{path}.port");
        let port = json_u64(port, &field)?;
        endpoint.port = i32::try_from(port)
            .ok()
            .filter(|port| *port <= 65535)
            .ok_or_else(|| json_error(&field, format!("{port} is not a port")))?;
    }
    Ok(Some(endpoint))
}

/// The IDs of a span, as Zipkin v1 and v2 carry them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanIds {
    /// The high 64 bits of a 128-bit trace ID; 0 for a 64-bit one.
    pub trace_id_high: u64,
    /// The trace ID's low 64 bits.
    pub trace_id_low: u64,
    /// The span's ID.
    pub id: u64,
    /// 0 when the span is a root.
    pub parent_id: u64,
}

/// A JSON span's `traceId` and `id` (both required) and `parentId`, in v1 and v2 alike.
pub(crate) fn json_span_ids(
    object: &serde_json::Map<String, Json>,
    path: &str,
) -> Result<SpanIds, ZipkinDecodeError> {
    let field = |name: &str| object.get(name).filter(|value| !value.is_null());
    let mut ids = SpanIds::default();
    let trace_path = format!("{path}.traceId");
    let trace_id = field("traceId").ok_or_else(|| json_error(&trace_path, "missing"))?;
    (ids.trace_id_high, ids.trace_id_low) =
        json_trace_id(json_str(trace_id, &trace_path)?, &trace_path)?;
    let id_path = format!("{path}.id");
    let id = field("id").ok_or_else(|| json_error(&id_path, "missing"))?;
    ids.id = hex_u64(json_str(id, &id_path)?, &id_path)?;
    if let Some(parent) = field("parentId") {
        let parent_path = format!("{path}.parentId");
        let text = json_str(parent, &parent_path)?;
        if !text.is_empty() {
            ids.parent_id = hex_u64(text, &parent_path)?;
        }
    }
    Ok(ids)
}

/// A JSON span's `name`, `timestamp` (0 is none) and `duration`, in v1 and v2 alike.
pub(crate) fn json_name_and_times(
    object: &serde_json::Map<String, Json>,
    path: &str,
) -> Result<(String, Option<u64>, Option<u64>), ZipkinDecodeError> {
    let field = |name: &str| object.get(name).filter(|value| !value.is_null());
    let mut name = String::new();
    if let Some(value) = field("name") {
        name = json_str(value, &format!("{path}.name"))?.to_string();
    }
    let mut timestamp = None;
    if let Some(value) = field("timestamp") {
        let micros = json_u64(value, &format!("{path}.timestamp"))?;
        timestamp = (micros > 0).then_some(micros);
    }
    let duration = field("duration")
        .map(|value| json_u64(value, &format!("{path}.duration")))
        .transpose()?;
    Ok((name, timestamp, duration))
}

/// A JSON annotation's `timestamp` and `value`, in v1 and v2 alike.
pub(crate) fn json_annotation(item: &Json, path: &str) -> Result<(u64, String), ZipkinDecodeError> {
    let timestamp = item
        .get("timestamp")
        .map(|value| json_u64(value, &format!("{path}.timestamp")))
        .transpose()?
        .unwrap_or(0);
    let value = item
        .get("value")
        .map(|value| json_str(value, &format!("{path}.value")))
        .transpose()?
        .unwrap_or("");
    Ok((timestamp, value.to_string()))
}

fn json_span(value: &Json, path: &str) -> Result<ZipkinSpan, ZipkinDecodeError> {
    let object = value
        .as_object()
        .ok_or_else(|| json_error(path, "expected a span object"))?;
    let field = |name: &str| object.get(name).filter(|value| !value.is_null());
    let ids = json_span_ids(object, path)?;
    let mut span = ZipkinSpan {
        trace_id_high: ids.trace_id_high,
        trace_id_low: ids.trace_id_low,
        id: ids.id,
        parent_id: ids.parent_id,
        ..Default::default()
    };
    if let Some(kind) = field("kind") {
        span.kind = json_str(kind, &format!("{path}.kind"))?.to_string();
    }
    let duration;
    (span.name, span.timestamp, duration) = json_name_and_times(object, path)?;
    span.duration = duration.unwrap_or(0);
    if let Some(endpoint) = field("localEndpoint") {
        span.local_endpoint = json_endpoint(endpoint, &format!("{path}.localEndpoint"))?;
    }
    if let Some(endpoint) = field("remoteEndpoint") {
        span.remote_endpoint = json_endpoint(endpoint, &format!("{path}.remoteEndpoint"))?;
    }
    if let Some(annotations) = field("annotations") {
        let annotations_path = format!("{path}.annotations");
        let items = annotations
            .as_array()
            .ok_or_else(|| json_error(&annotations_path, "expected an array"))?;
        for (index, item) in items.iter().enumerate() {
            let annotation = json_annotation(item, &format!("{annotations_path}[{index}]"))?;
            span.annotations.push(annotation);
        }
    }
    if let Some(tags) = field("tags") {
        let tags_path = format!("{path}.tags");
        let object = tags
            .as_object()
            .ok_or_else(|| json_error(&tags_path, "expected an object"))?;
        for (key, value) in object {
            let text = json_str(value, &format!("{tags_path}.{key}"))?;
            span.tags.insert(key.clone(), text.to_string());
        }
    }
    if let Some(shared) = field("shared") {
        span.shared = shared
            .as_bool()
            .ok_or_else(|| json_error(&format!("{path}.shared"), "expected a boolean"))?;
    }
    Ok(span)
}

/// Decodes a Zipkin v2 JSON array of spans.
pub fn decode_json_v2(body: &[u8]) -> Result<Vec<ZipkinSpan>, ZipkinDecodeError> {
    let root: Json = serde_json::from_slice(body)
        .map_err(|error| json_error("$", format!("not valid JSON: {error}")))?;
    let items = root
        .as_array()
        .ok_or_else(|| json_error("$", "expected an array of spans"))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| json_span(item, &format!("$[{index}]")))
        .collect()
}

// ---------------------------------------------------------------- protobuf

fn proto_error(path: String, reason: impl Into<String>) -> ZipkinDecodeError {
    ZipkinDecodeError {
        format: "protobuf",
        path,
        reason: reason.into(),
    }
}

fn proto_u64(bytes: &[u8], path: String) -> Result<u64, ZipkinDecodeError> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| proto_error(path, format!("{} bytes, expected 8", bytes.len())))?;
    Ok(u64::from_be_bytes(raw))
}

fn proto_endpoint(
    endpoint: Option<proto::Endpoint>,
    path: String,
) -> Result<Option<Endpoint>, ZipkinDecodeError> {
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    Ok(Some(Endpoint {
        ipv4: proto_address::<4>(&endpoint.ipv4, format!("{path}.ipv4"))?.map(Ipv4Addr::from),
        ipv6: proto_address::<16>(&endpoint.ipv6, format!("{path}.ipv6"))?.map(Ipv6Addr::from),
        service_name: endpoint.service_name,
        port: endpoint.port,
    }))
}

/// An address of `N` bytes; empty is none.
fn proto_address<const N: usize>(
    bytes: &[u8],
    path: String,
) -> Result<Option<[u8; N]>, ZipkinDecodeError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    <[u8; N]>::try_from(bytes)
        .map(Some)
        .map_err(|_| proto_error(path, format!("{} bytes, expected {N}", bytes.len())))
}

/// Decodes a protobuf `ListOfSpans`.
pub fn decode_proto(body: &[u8]) -> Result<Vec<ZipkinSpan>, ZipkinDecodeError> {
    let list = proto::ListOfSpans::decode(body)
        .map_err(|error| proto_error("ListOfSpans".into(), error.to_string()))?;
    let mut spans = Vec::with_capacity(list.spans.len());
    for (index, span) in list.spans.into_iter().enumerate() {
        let path = format!("spans[{index}]");
        let (trace_id_high, trace_id_low) = match span.trace_id.len() {
            8 => (0, proto_u64(&span.trace_id, format!("{path}.trace_id"))?),
            16 => (
                proto_u64(&span.trace_id[..8], format!("{path}.trace_id"))?,
                proto_u64(&span.trace_id[8..], format!("{path}.trace_id"))?,
            ),
            other => {
                return Err(proto_error(
                    format!("{path}.trace_id"),
                    format!("{other} bytes, expected 8 or 16"),
                ))
            }
        };
        let parent_id = if span.parent_id.is_empty() {
            0
        } else {
            proto_u64(&span.parent_id, format!("{path}.parent_id"))?
        };
        let kind = match span.kind {
            1 => "CLIENT",
            2 => "SERVER",
            3 => "PRODUCER",
            4 => "CONSUMER",
            _ => "",
        };
        spans.push(ZipkinSpan {
            trace_id_high,
            trace_id_low,
            id: proto_u64(&span.id, format!("{path}.id"))?,
            parent_id,
            kind: kind.to_string(),
            name: span.name,
            timestamp: (span.timestamp > 0).then_some(span.timestamp),
            duration: span.duration,
            local_endpoint: proto_endpoint(span.local_endpoint, format!("{path}.local_endpoint"))?,
            remote_endpoint: proto_endpoint(
                span.remote_endpoint,
                format!("{path}.remote_endpoint"),
            )?,
            annotations: span
                .annotations
                .into_iter()
                .map(|annotation| (annotation.timestamp, annotation.value))
                .collect(),
            tags: span.tags,
            shared: span.shared,
            debug: false,
        });
    }
    Ok(spans)
}

// ---------------------------------------------------------------- translation

/// Tags that describe the process, not the span: resource semantic conventions (as in the
/// Collector's list) and the OpenCensus resource keys. They move to the resource.
fn is_resource_tag(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "deployment.environment",
        "faas.name",
        "faas.id",
        "faas.version",
        "faas.instance",
        "faas.max_memory",
        "host.id",
        "host.name",
        "host.type",
        "host.arch",
        "host.image.name",
        "host.image.id",
        "host.image.version",
        "os.type",
        "os.description",
        "os.name",
        "os.version",
        "process.pid",
        "process.executable.name",
        "process.executable.path",
        "process.command",
        "process.command_line",
        "process.command_args",
        "process.owner",
        "process.runtime.name",
        "process.runtime.version",
        "process.runtime.description",
        "service.name",
        "service.namespace",
        "service.instance.id",
        "service.version",
        "telemetry.sdk.name",
        "telemetry.sdk.language",
        "telemetry.sdk.version",
        "telemetry.auto.version",
        "opencensus.starttime",
        "opencensus.exporterversion",
        "opencensus.resourcetype",
    ];
    const PREFIXES: &[&str] = &[
        "cloud.",
        "container.",
        "k8s.",
        "device.",
        "browser.",
        "webengine.",
        "aws.ecs.",
        "aws.eks.",
        "aws.log.",
        "heroku.",
    ];
    EXACT.contains(&key) || PREFIXES.iter().any(|prefix| key.starts_with(prefix))
}

fn local_service_name(span: &ZipkinSpan) -> &str {
    span.local_endpoint
        .as_ref()
        .map(|endpoint| endpoint.service_name.as_str())
        .filter(|name| !name.is_empty())
        .unwrap_or(NO_SERVICE_NAME)
}

fn library_name(span: &ZipkinSpan) -> &str {
    span.tags
        .get("otel.library.name")
        .map_or("", String::as_str)
}

fn status_code_of(value: &str) -> OtlpStatusCode {
    match value {
        "STATUS_CODE_OK" | "Ok" => OtlpStatusCode::Ok,
        "STATUS_CODE_ERROR" | "Error" => OtlpStatusCode::Error,
        other if other.eq_ignore_ascii_case("ok") => OtlpStatusCode::Ok,
        other if other.eq_ignore_ascii_case("error") => OtlpStatusCode::Error,
        _ => OtlpStatusCode::Unset,
    }
}

/// A JSON object of event or link attributes: whole numbers become ints, as in the Collector.
fn json_attributes(text: &str, what: &str) -> Result<Attributes, String> {
    let parsed: serde_json::Map<String, Json> =
        serde_json::from_str(text).map_err(|error| format!("{what} attributes: {error}"))?;
    let mut attributes = Attributes::default();
    for (key, value) in parsed {
        match value {
            Json::String(text) => attributes.put_str(&key, &text),
            Json::Bool(flag) => attributes.put(&key, Value::BoolValue(flag)),
            Json::Number(number) => {
                let float = number.as_f64().unwrap_or_default();
                if float.fract() == 0.0 {
                    attributes.put(&key, Value::IntValue(float as i64));
                } else {
                    attributes.put(&key, Value::DoubleValue(float));
                }
            }
            _ => {}
        }
    }
    Ok(attributes)
}

fn hex_into(text: &str, width: usize, what: &str) -> Result<Vec<u8>, String> {
    let text = text.trim_matches('"');
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = hex::decode(text).map_err(|_| format!("{what} {text:?} is not hex"))?;
    if bytes.len() != width {
        return Err(format!("{what} {text:?} is not {width} bytes"));
    }
    Ok(bytes)
}

fn links_of(tags: &mut BTreeMap<String, String>) -> Result<Vec<Link>, String> {
    let mut links = Vec::new();
    for index in 0..MAX_LINK_TAGS {
        let key = format!("otlp.link.{index}");
        let Some(value) = tags.remove(&key) else {
            break;
        };
        let parts: Vec<&str> = value.split('|').collect();
        if parts.len() < 5 {
            continue;
        }
        let attributes_text = parts[3..parts.len() - 1].join("|");
        let dropped = parts[parts.len() - 1]
            .parse::<u32>()
            .map_err(|_| format!("tag {key}: dropped count is not a number"))?;
        links.push(Link {
            trace_id: hex_into(parts[0], 16, "link trace id")?,
            span_id: hex_into(parts[1], 8, "link span id")?,
            trace_state: parts[2].to_string(),
            attributes: json_attributes(&attributes_text, &format!("tag {key}"))?.into_vec(),
            dropped_attributes_count: dropped,
            flags: 0,
        });
    }
    Ok(links)
}

fn events_of(annotations: &[(u64, String)]) -> Result<Vec<Event>, String> {
    let mut events = Vec::with_capacity(annotations.len());
    for (timestamp, value) in annotations {
        let parts: Vec<&str> = value.split('|').collect();
        let mut event = Event {
            time_unix_nano: timestamp.wrapping_mul(1000),
            name: parts[0].to_string(),
            ..Default::default()
        };
        if parts.len() >= 3 {
            let attributes_text = parts[1..parts.len() - 1].join("|");
            event.attributes = json_attributes(&attributes_text, "annotation")?.into_vec();
            event.dropped_attributes_count = parts[parts.len() - 1]
                .parse::<u32>()
                .map_err(|_| format!("annotation {value:?}: dropped count is not a number"))?;
        }
        events.push(event);
    }
    Ok(events)
}

/// An endpoint's address as attributes `ip_key` (IPv6 over IPv4) and `port_key` (when set).
fn put_address(attributes: &mut Attributes, endpoint: &Endpoint, ip_key: &str, port_key: &str) {
    if let Some(address) = endpoint.ipv4 {
        attributes.put_str(ip_key, &address.to_string());
    }
    if let Some(address) = endpoint.ipv6 {
        attributes.put_str(ip_key, &IpAddr::V6(address).to_string());
    }
    if endpoint.port > 0 {
        attributes.put(port_key, Value::IntValue(i64::from(endpoint.port)));
    }
}

fn otlp_span(span: &ZipkinSpan, mut tags: BTreeMap<String, String>) -> Result<Span, String> {
    let mut otlp = Span {
        trace_id: trace_id_bytes(span.trace_id_high, span.trace_id_low),
        span_id: span_id_bytes(span.id),
        name: span.name.clone(),
        ..Default::default()
    };
    if let Some(state) = tags.remove("w3c.tracestate") {
        otlp.trace_state = state;
    }
    if span.parent_id != span.id {
        otlp.parent_span_id = span_id_bytes(span.parent_id);
    }
    if span.debug {
        // Debug means "always sample": W3C's sampled flag, the low bit of OTLP's flags.
        otlp.flags = 1;
    }
    otlp.kind = match span.kind.as_str() {
        "CLIENT" => SpanKind::Client,
        "SERVER" => SpanKind::Server,
        "PRODUCER" => SpanKind::Producer,
        "CONSUMER" => SpanKind::Consumer,
        _ => match tags.remove("span.kind").as_deref() {
            Some("internal") => SpanKind::Internal,
            _ => SpanKind::Unspecified,
        },
    } as i32;
    let mut status = Status::default();
    if let Some(code) = tags.remove("otel.status_code") {
        status.code = status_code_of(&code) as i32;
        if let Some(message) = tags.remove("otel.status_description") {
            status.message = message;
        }
    }
    if let Some(error) = tags.get("error") {
        status.code = OtlpStatusCode::Error as i32;
        if error == "true" {
            tags.remove("error");
        }
    }
    otlp.status = Some(status);
    otlp.links = links_of(&mut tags)?;

    let mut attributes = Attributes::default();
    for (key, value) in &tags {
        if !is_resource_tag(key) && key != "otel.library.name" && key != "otel.library.version" {
            attributes.put_str(key, value);
        }
    }
    if let Some(local) = &span.local_endpoint {
        put_address(&mut attributes, local, "net.host.ip", "net.host.port");
    }
    if let Some(remote) = &span.remote_endpoint {
        if !remote.service_name.is_empty() {
            attributes.put_str("peer.service", &remote.service_name);
        }
        put_address(&mut attributes, remote, "net.peer.ip", "net.peer.port");
    }
    match span.timestamp {
        Some(micros) => {
            otlp.start_time_unix_nano = micros.wrapping_mul(1000);
            otlp.end_time_unix_nano = micros.wrapping_add(span.duration).wrapping_mul(1000);
        }
        None => {
            otlp.start_time_unix_nano = 0;
            otlp.end_time_unix_nano = span.duration.wrapping_mul(1000);
            attributes.put("otel.zipkin.absentField.startTime", Value::BoolValue(true));
        }
    }
    otlp.attributes = attributes.into_vec();
    otlp.events = events_of(&span.annotations)?;
    Ok(otlp)
}

fn resource_of(service: &str, tags: &mut BTreeMap<String, String>) -> Resource {
    let mut resource = Resource::default();
    if service == NO_SERVICE_NAME {
        return resource;
    }
    let mut attributes = Attributes::default();
    attributes.put_str("service.name", service);
    let keys: Vec<String> = tags
        .keys()
        .filter(|key| is_resource_tag(key))
        .cloned()
        .collect();
    for key in keys {
        if let Some(value) = tags.remove(&key) {
            attributes.put_str(&key, &value);
        }
    }
    resource.attributes = attributes.into_vec();
    resource
}

/// Translates Zipkin spans to OTLP, grouped like the Collector: spans sorted by local service
/// then library name, one resource per service, one scope per library.
pub fn to_resource_spans(mut spans: Vec<ZipkinSpan>) -> Result<Vec<ResourceSpans>, String> {
    spans.sort_by(|left, right| {
        local_service_name(left)
            .cmp(local_service_name(right))
            .then_with(|| library_name(left).cmp(library_name(right)))
    });
    let mut out: Vec<ResourceSpans> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for span in &spans {
        let service = local_service_name(span).to_string();
        let library = library_name(span).to_string();
        let mut tags = span.tags.clone();
        let new_resource = current
            .as_ref()
            .is_none_or(|(known_service, _)| *known_service != service);
        if new_resource {
            out.push(ResourceSpans {
                resource: Some(resource_of(&service, &mut tags)),
                ..Default::default()
            });
        } else {
            // Resource tags of later spans of the same service are dropped from the span, as
            // the Collector only reads them from the first span of each resource.
            tags.retain(|key, _| !is_resource_tag(key));
        }
        let new_scope = new_resource
            || current
                .as_ref()
                .is_some_and(|(_, known_library)| *known_library != library);
        let Some(resource_spans) = out.last_mut() else {
            continue;
        };
        if new_scope {
            let mut scope = InstrumentationScope::default();
            if !library.is_empty() {
                scope.name = library.clone();
                scope.version = tags
                    .get("otel.library.version")
                    .cloned()
                    .unwrap_or_default();
            }
            resource_spans.scope_spans.push(ScopeSpans {
                scope: Some(scope),
                ..Default::default()
            });
        }
        let otlp = otlp_span(span, tags)?;
        if let Some(scope_spans) = resource_spans.scope_spans.last_mut() {
            scope_spans.spans.push(otlp);
        }
        current = Some((service, library));
    }
    Ok(out)
}

/// A Zipkin v2 body as the receiver decodes it by its media type: protobuf `ListOfSpans`, else
/// JSON; translated to OTLP.
pub fn decode_body(media_type: &str, body: &[u8]) -> Result<Vec<ResourceSpans>, DistributorError> {
    translate(match media_type {
        "application/x-protobuf" | "application/protobuf" => decode_proto(body),
        _ => decode_json_v2(body),
    })
}

/// Decoded spans translated to OTLP, as the Zipkin receivers answer: a body that did not
/// decode, or a span that cannot be translated, is a bad request naming what was wrong.
pub fn translate(
    decoded: Result<Vec<ZipkinSpan>, ZipkinDecodeError>,
) -> Result<Vec<ResourceSpans>, DistributorError> {
    let spans = decoded.map_err(|error| DistributorError::BadRequest(error.to_string()))?;
    to_resource_spans(spans)
        .map_err(|error| DistributorError::BadRequest(format!("invalid zipkin span: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::translate::span_attribute as attribute;
    use proptest::prelude::*;

    fn string(value: &str) -> Option<Value> {
        Some(Value::StringValue(value.into()))
    }

    #[test]
    fn v2_json_translates_every_field() {
        let body = br#"[{"traceId":"abc","id":"2","parentId":"1","kind":"CLIENT","name":"get",
            "timestamp":1000,"duration":5,"shared":true,
            "localEndpoint":{"serviceName":"shop","ipv4":"10.0.0.1","port":80},
            "remoteEndpoint":{"serviceName":"db","ipv6":"::1","port":5432},
            "annotations":[{"timestamp":1002,"value":"retry"},{"timestamp":1003,"value":"ev|{\"n\":1,\"f\":1.5}|2"}],
            "tags":{"http.method":"GET","otel.status_code":"ERROR","error":"boom","service.version":"9",
              "otel.library.name":"lib","otel.library.version":"1","w3c.tracestate":"a=b",
              "otlp.link.0":"0000000000000000000000000000000a|000000000000000b||{\"k\":\"v\"}|0"}}]"#;
        let resource_spans = to_resource_spans(decode_json_v2(body).unwrap()).unwrap();
        assert_eq!(resource_spans.len(), 1);
        let resource = resource_spans[0].resource.as_ref().unwrap();
        let resource_keys: Vec<&str> = resource
            .attributes
            .iter()
            .map(|pair| pair.key.as_str())
            .collect();
        assert_eq!(resource_keys, ["service.name", "service.version"]);
        let scope = &resource_spans[0].scope_spans[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "lib");
        assert_eq!(scope.scope.as_ref().unwrap().version, "1");
        let span = &scope.spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "00000000000000000000000000000abc"
        );
        assert_eq!(hex::encode(&span.span_id), "0000000000000002");
        assert_eq!(hex::encode(&span.parent_span_id), "0000000000000001");
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(span.start_time_unix_nano, 1_000_000);
        assert_eq!(span.end_time_unix_nano, 1_005_000);
        assert_eq!(span.trace_state, "a=b");
        assert_eq!(
            span.status.as_ref().unwrap().code,
            OtlpStatusCode::Error as i32
        );
        assert_eq!(attribute(span, "error").cloned(), string("boom"));
        assert_eq!(attribute(span, "http.method").cloned(), string("GET"));
        assert_eq!(attribute(span, "net.host.ip").cloned(), string("10.0.0.1"));
        assert_eq!(attribute(span, "net.host.port"), Some(&Value::IntValue(80)));
        assert_eq!(attribute(span, "peer.service").cloned(), string("db"));
        assert_eq!(attribute(span, "net.peer.ip").cloned(), string("::1"));
        assert_eq!(
            attribute(span, "net.peer.port"),
            Some(&Value::IntValue(5432))
        );
        assert!(attribute(span, "service.version").is_none());
        assert!(attribute(span, "otel.library.name").is_none());
        assert_eq!(span.events.len(), 2);
        assert_eq!(span.events[0].name, "retry");
        assert_eq!(span.events[0].time_unix_nano, 1_002_000);
        assert_eq!(span.events[1].name, "ev");
        assert_eq!(span.events[1].dropped_attributes_count, 2);
        assert_eq!(span.events[1].attributes.len(), 2);
        assert_eq!(span.links.len(), 1);
        assert_eq!(hex::encode(&span.links[0].span_id), "000000000000000b");
    }

    #[test]
    fn missing_timestamp_and_service_follow_the_collector() {
        let body = br#"[{"traceId":"1","id":"1","parentId":"1","duration":7,"tags":{"span.kind":"internal","error":"true"}}]"#;
        let resource_spans = to_resource_spans(decode_json_v2(body).unwrap()).unwrap();
        assert!(resource_spans[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .is_empty());
        let span = &resource_spans[0].scope_spans[0].spans[0];
        assert!(
            span.parent_span_id.is_empty(),
            "a span that is its own parent is a root"
        );
        assert_eq!(span.kind, SpanKind::Internal as i32);
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (0, 7000)
        );
        assert_eq!(
            attribute(span, "otel.zipkin.absentField.startTime"),
            Some(&Value::BoolValue(true))
        );
        assert!(attribute(span, "error").is_none());
        assert_eq!(
            span.status.as_ref().unwrap().code,
            OtlpStatusCode::Error as i32
        );
    }

    #[test]
    fn protobuf_and_its_errors() {
        let list = proto::ListOfSpans {
            spans: vec![proto::Span {
                trace_id: vec![0, 0, 0, 0, 0, 0, 0, 9],
                id: vec![0, 0, 0, 0, 0, 0, 0, 1],
                kind: 2,
                name: "x".into(),
                timestamp: 5,
                local_endpoint: Some(proto::Endpoint {
                    service_name: "svc".into(),
                    ipv4: vec![127, 0, 0, 1],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        let spans = decode_proto(&list.encode_to_vec()).unwrap();
        assert_eq!(spans[0].trace_id_low, 9);
        assert_eq!(spans[0].kind, "SERVER");
        assert_eq!(
            spans[0].local_endpoint.as_ref().unwrap().ipv4,
            Some(Ipv4Addr::LOCALHOST)
        );
        let mut bad = list.clone();
        bad.spans[0].id = vec![1, 2, 3];
        let error = decode_proto(&bad.encode_to_vec()).unwrap_err();
        assert_eq!(error.path, "spans[0].id");
    }

    #[test]
    fn json_errors_name_the_path() {
        for (body, path) in [
            (&br#"{}"#[..], "$"),
            (br#"[{"id":"1"}]"#, "$[0].traceId"),
            (
                br#"[{"traceId":"1","id":"1","timestamp":"x"}]"#,
                "$[0].timestamp",
            ),
            (
                br#"[{"traceId":"1","id":"1","tags":{"a":1}}]"#,
                "$[0].tags.a",
            ),
            (
                br#"[{"traceId":"1","id":"1","localEndpoint":{"ipv4":"nope"}}]"#,
                "$[0].localEndpoint.ipv4",
            ),
        ] {
            assert_eq!(decode_json_v2(body).unwrap_err().path, path);
        }
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(spans) = decode_proto(&bytes) {
                let _ = to_resource_spans(spans);
            }
            let _ = decode_json_v2(&bytes);
        }
    }
}
