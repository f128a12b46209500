//! Zipkin v1 bodies: a JSON array of v1 spans, or a Thrift-binary `list<Span>` of zipkincore
//! structs (read with [`crate::proto::thrift`]); decoded into [`V1Span`]s, then converted to
//! Zipkin v2 spans (see the module above for the rules) for the Zipkin v2 translation.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde_json::Value as Json;

use crate::distributor::DistributorError;
use crate::proto::thrift::{
    read_known_fields, read_list, BinaryProtocol, KnownField, Protocol, TType, ThriftError,
};
use crate::receiver::zipkin::decode::{
    json_annotation, json_endpoint, json_error, json_name_and_times, json_span_ids, json_str,
    translate, Endpoint, SpanIds, ZipkinDecodeError, ZipkinSpan,
};

/// The error format of JSON bodies.
const JSON_FORMAT: &str = "v1 JSON";
/// The error format of Thrift bodies.
const THRIFT_FORMAT: &str = "v1 thrift";

/// A v1 annotation: a core annotation (`cs`, `sr`, ...) or an event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotation {
    /// Microseconds since the epoch.
    pub timestamp: u64,
    /// `cs`, `sr` and the like, or the event's name.
    pub value: String,
    /// The host that recorded it.
    pub endpoint: Option<Endpoint>,
}

/// The value of a binary annotation.
#[derive(Clone, Debug, PartialEq)]
pub enum TagValue {
    /// A BOOL (the address annotations are `true`).
    Bool(bool),
    /// Any other type, rendered as text.
    Text(String),
}

/// A v1 binary annotation: a tag, or (`sa`, `ca`, `ma`) the address of the other side.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryAnnotation {
    /// The tag's key, or `sa`, `ca`, `ma`.
    pub key: String,
    /// The value, read by its type.
    pub value: TagValue,
    /// The host that recorded it; for an address annotation, the address.
    pub endpoint: Option<Endpoint>,
}

/// A Zipkin v1 span, as both encodings decode it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct V1Span {
    /// Trace ID (64 or 128 bits), ID and parent ID.
    pub ids: SpanIds,
    /// The operation's name.
    pub name: String,
    /// Microseconds since the epoch; `None` when absent.
    pub timestamp: Option<u64>,
    /// Microseconds; `None` when absent.
    pub duration: Option<u64>,
    /// Forced sampling.
    pub debug: bool,
    /// Core annotations and events.
    pub annotations: Vec<Annotation>,
    /// Tags and address annotations.
    pub binary_annotations: Vec<BinaryAnnotation>,
}

/// A Zipkin v1 body as the receiver decodes it by its media type: Thrift, else JSON; converted
/// and translated to OTLP.
pub fn decode_body(media_type: &str, body: &[u8]) -> Result<Vec<ResourceSpans>, DistributorError> {
    let decoded = match media_type {
        "application/x-thrift" | "application/vnd.apache.thrift.binary" => decode_thrift(body),
        _ => decode_json(body),
    };
    translate(decoded.map(to_v2_spans))
}

// ---------------------------------------------------------------- Thrift

/// A non-negative i64 (times and durations).
fn read_micros<P: Protocol>(protocol: &mut P, field: &str) -> Result<u64, ThriftError> {
    let value = protocol.read_i64()?;
    u64::try_from(value).map_err(|_| protocol.error(format!("{field} {value} is negative")))
}

/// zipkincore's `Endpoint`.
const ENDPOINT_FIELDS: [KnownField; 4] = [
    (1, "Endpoint.ipv4", TType::I32),
    (2, "Endpoint.port", TType::I16),
    (3, "Endpoint.service_name", TType::Binary),
    (4, "Endpoint.ipv6", TType::Binary),
];

fn thrift_endpoint<P: Protocol>(protocol: &mut P) -> Result<Endpoint, ThriftError> {
    read_known_fields(
        protocol,
        &ENDPOINT_FIELDS,
        |protocol, endpoint: &mut Endpoint, id| {
            match id {
                1 => {
                    // The address travels as a signed i32 in network order; 0 is none.
                    let address = protocol.read_i32()? as u32;
                    endpoint.ipv4 = (address != 0).then(|| Ipv4Addr::from(address));
                }
                // Ports above 32767 travel as negative i16s.
                2 => endpoint.port = i32::from(protocol.read_i16()? as u16),
                3 => endpoint.service_name = protocol.read_string()?,
                _ => {
                    let address = protocol.read_binary()?;
                    endpoint.ipv6 = match <[u8; 16]>::try_from(address.as_slice()) {
                        Ok(octets) => Some(Ipv6Addr::from(octets)),
                        Err(_) if address.is_empty() => None,
                        Err(_) => {
                            return Err(protocol.error(format!(
                                "Endpoint.ipv6 has {} bytes, expected 16",
                                address.len()
                            )))
                        }
                    };
                }
            }
            Ok(())
        },
    )
}

/// zipkincore's `Annotation`.
const ANNOTATION_FIELDS: [KnownField; 3] = [
    (1, "Annotation.timestamp", TType::I64),
    (2, "Annotation.value", TType::Binary),
    (3, "Annotation.host", TType::Struct),
];

fn thrift_annotation<P: Protocol>(protocol: &mut P) -> Result<Annotation, ThriftError> {
    read_known_fields(
        protocol,
        &ANNOTATION_FIELDS,
        |protocol, annotation: &mut Annotation, id| {
            match id {
                1 => annotation.timestamp = read_micros(protocol, "Annotation.timestamp")?,
                2 => annotation.value = protocol.read_string()?,
                _ => annotation.endpoint = Some(thrift_endpoint(protocol)?),
            }
            Ok(())
        },
    )
}

/// zipkincore's `AnnotationType`, in its order.
const ANNOTATION_TYPES: [&str; 7] = ["BOOL", "BYTES", "I16", "I32", "I64", "DOUBLE", "STRING"];

/// `N` big-endian bytes of a binary annotation of type `type_name`.
fn fixed_width<const N: usize>(
    key: &str,
    type_name: &str,
    bytes: &[u8],
) -> Result<[u8; N], String> {
    <[u8; N]>::try_from(bytes).map_err(|_| {
        format!(
            "binary annotation {key:?} of type {type_name} has {} bytes, expected {N}",
            bytes.len()
        )
    })
}

/// The value of a Thrift binary annotation, read by its `AnnotationType`.
fn thrift_tag_value(key: &str, bytes: Vec<u8>, annotation_type: i32) -> Result<TagValue, String> {
    let type_name = usize::try_from(annotation_type)
        .ok()
        .and_then(|index| ANNOTATION_TYPES.get(index))
        .ok_or_else(|| format!("binary annotation {key:?} has unknown type {annotation_type}"))?;
    Ok(match *type_name {
        "BOOL" => TagValue::Bool(fixed_width::<1>(key, type_name, &bytes)?[0] != 0),
        "BYTES" => TagValue::Text(base64::engine::general_purpose::STANDARD.encode(&bytes)),
        "I16" => {
            TagValue::Text(i16::from_be_bytes(fixed_width(key, type_name, &bytes)?).to_string())
        }
        "I32" => {
            TagValue::Text(i32::from_be_bytes(fixed_width(key, type_name, &bytes)?).to_string())
        }
        "I64" => {
            TagValue::Text(i64::from_be_bytes(fixed_width(key, type_name, &bytes)?).to_string())
        }
        "DOUBLE" => {
            TagValue::Text(f64::from_be_bytes(fixed_width(key, type_name, &bytes)?).to_string())
        }
        _ => TagValue::Text(
            String::from_utf8(bytes)
                .map_err(|_| format!("binary annotation {key:?} is not valid UTF-8"))?,
        ),
    })
}

/// A Thrift binary annotation's fields as they travel, before its value is read by its type.
struct ThriftBinaryAnnotation {
    key: String,
    value: Vec<u8>,
    annotation_type: i32,
    endpoint: Option<Endpoint>,
}

impl Default for ThriftBinaryAnnotation {
    fn default() -> Self {
        ThriftBinaryAnnotation {
            key: String::new(),
            value: Vec::new(),
            // Without a type, a binary annotation is read as a string, what v1 tracers send.
            annotation_type: 6,
            endpoint: None,
        }
    }
}

/// zipkincore's `BinaryAnnotation`.
const BINARY_ANNOTATION_FIELDS: [KnownField; 4] = [
    (1, "BinaryAnnotation.key", TType::Binary),
    (2, "BinaryAnnotation.value", TType::Binary),
    (3, "BinaryAnnotation.annotation_type", TType::I32),
    (4, "BinaryAnnotation.host", TType::Struct),
];

fn thrift_binary_annotation<P: Protocol>(
    protocol: &mut P,
) -> Result<BinaryAnnotation, ThriftError> {
    let raw = read_known_fields(
        protocol,
        &BINARY_ANNOTATION_FIELDS,
        |protocol, raw: &mut ThriftBinaryAnnotation, id| {
            match id {
                1 => raw.key = protocol.read_string()?,
                2 => raw.value = protocol.read_binary()?,
                3 => raw.annotation_type = protocol.read_i32()?,
                _ => raw.endpoint = Some(thrift_endpoint(protocol)?),
            }
            Ok(())
        },
    )?;
    let value = thrift_tag_value(&raw.key, raw.value, raw.annotation_type)
        .map_err(|reason| protocol.error(reason))?;
    Ok(BinaryAnnotation {
        key: raw.key,
        value,
        endpoint: raw.endpoint,
    })
}

/// Which of a Thrift span's required fields were read.
#[derive(Default)]
struct ThriftSpan {
    span: V1Span,
    has_trace_id: bool,
    has_id: bool,
}

/// zipkincore's `Span` (field 2 and 7 are long retired).
const SPAN_FIELDS: [KnownField; 10] = [
    (1, "Span.trace_id", TType::I64),
    (3, "Span.name", TType::Binary),
    (4, "Span.id", TType::I64),
    (5, "Span.parent_id", TType::I64),
    (6, "Span.annotations", TType::List),
    (8, "Span.binary_annotations", TType::List),
    (9, "Span.debug", TType::Bool),
    (10, "Span.timestamp", TType::I64),
    (11, "Span.duration", TType::I64),
    (12, "Span.trace_id_high", TType::I64),
];

fn thrift_span<P: Protocol>(protocol: &mut P) -> Result<V1Span, ThriftError> {
    let read = read_known_fields(
        protocol,
        &SPAN_FIELDS,
        |protocol, read: &mut ThriftSpan, id| {
            let span = &mut read.span;
            match id {
                1 => {
                    span.ids.trace_id_low = protocol.read_i64()? as u64;
                    read.has_trace_id = true;
                }
                3 => span.name = protocol.read_string()?,
                4 => {
                    span.ids.id = protocol.read_i64()? as u64;
                    read.has_id = true;
                }
                5 => span.ids.parent_id = protocol.read_i64()? as u64,
                6 => {
                    span.annotations = read_list(
                        protocol,
                        TType::Struct,
                        "Span.annotations",
                        thrift_annotation,
                    )?
                }
                8 => {
                    span.binary_annotations = read_list(
                        protocol,
                        TType::Struct,
                        "Span.binary_annotations",
                        thrift_binary_annotation,
                    )?
                }
                9 => span.debug = protocol.read_bool()?,
                10 => {
                    let micros = read_micros(protocol, "Span.timestamp")?;
                    span.timestamp = (micros > 0).then_some(micros);
                }
                11 => span.duration = Some(read_micros(protocol, "Span.duration")?),
                _ => span.ids.trace_id_high = protocol.read_i64()? as u64,
            }
            Ok(())
        },
    )?;
    if !read.has_trace_id {
        return Err(protocol.error("Span without its trace_id".into()));
    }
    if !read.has_id {
        return Err(protocol.error("Span without its id".into()));
    }
    Ok(read.span)
}

/// Decodes a Thrift-binary `list<Span>`, what v1 tracers send as `application/x-thrift`. The
/// list's count is checked against the bytes left before anything is allocated (see
/// [`crate::proto::thrift`]); bytes after the list are refused.
pub fn decode_thrift(body: &[u8]) -> Result<Vec<V1Span>, ZipkinDecodeError> {
    let mut protocol = BinaryProtocol::new(body);
    // The index of the span being read, for the error's path.
    let mut current: Option<usize> = None;
    let read = read_list(&mut protocol, TType::Struct, "list<Span>", |protocol| {
        current = Some(current.map_or(0, |index| index + 1));
        thrift_span(protocol)
    });
    let path = |offset: usize| match current {
        Some(index) => format!("spans[{index}] (byte {offset})"),
        None => format!("byte {offset}"),
    };
    let spans = read.map_err(|error| ZipkinDecodeError {
        format: THRIFT_FORMAT,
        path: path(error.offset),
        reason: error.reason,
    })?;
    if protocol.remaining() > 0 {
        return Err(ZipkinDecodeError {
            format: THRIFT_FORMAT,
            path: format!("byte {}", body.len() - protocol.remaining()),
            reason: format!("{} bytes after the list of spans", protocol.remaining()),
        });
    }
    Ok(spans)
}

// ---------------------------------------------------------------- JSON

/// The array `key` of `object`, each element (an object, given as itself and as its map) read
/// by `read` with its path; absent or null is empty.
fn json_items<T>(
    object: &serde_json::Map<String, Json>,
    path: &str,
    key: &str,
    mut read: impl FnMut(&Json, &serde_json::Map<String, Json>, &str) -> Result<T, ZipkinDecodeError>,
) -> Result<Vec<T>, ZipkinDecodeError> {
    let Some(value) = object.get(key).filter(|value| !value.is_null()) else {
        return Ok(Vec::new());
    };
    let items_path = format!("{path}.{key}");
    let items = value
        .as_array()
        .ok_or_else(|| json_error(&items_path, "expected an array"))?;
    let mut read_items = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{items_path}[{index}]");
        let item_object = item
            .as_object()
            .ok_or_else(|| json_error(&item_path, "expected an object"))?;
        read_items.push(read(item, item_object, &item_path)?);
    }
    Ok(read_items)
}

/// The host of a JSON annotation or binary annotation (`endpoint`).
fn json_host(
    object: &serde_json::Map<String, Json>,
    path: &str,
) -> Result<Option<Endpoint>, ZipkinDecodeError> {
    match object.get("endpoint") {
        Some(endpoint) => json_endpoint(endpoint, &format!("{path}.endpoint")),
        None => Ok(None),
    }
}

/// A binary annotation's `value`: JSON carries its own type, and a `type` (BYTES and the like)
/// only says how to read a string, whose text is kept as it is.
fn json_tag_value(value: Option<&Json>, path: &str) -> Result<TagValue, ZipkinDecodeError> {
    match value {
        Some(Json::Bool(flag)) => Ok(TagValue::Bool(*flag)),
        Some(Json::String(text)) => Ok(TagValue::Text(text.clone())),
        Some(Json::Number(number)) => Ok(TagValue::Text(number.to_string())),
        Some(other) => Err(json_error(
            path,
            format!("expected a string, boolean or number, got {other}"),
        )),
        None => Err(json_error(path, "missing")),
    }
}

fn json_span(
    object: &serde_json::Map<String, Json>,
    path: &str,
) -> Result<V1Span, ZipkinDecodeError> {
    let ids = json_span_ids(object, path)?;
    let (name, timestamp, duration) = json_name_and_times(object, path)?;
    let debug = match object.get("debug").filter(|value| !value.is_null()) {
        Some(debug) => debug
            .as_bool()
            .ok_or_else(|| json_error(&format!("{path}.debug"), "expected a boolean"))?,
        None => false,
    };
    let annotations = json_items(
        object,
        path,
        "annotations",
        |item, item_object, item_path| {
            let (timestamp, value) = json_annotation(item, item_path)?;
            let endpoint = json_host(item_object, item_path)?;
            Ok(Annotation {
                timestamp,
                value,
                endpoint,
            })
        },
    )?;
    let binary_annotations =
        json_items(object, path, "binaryAnnotations", |_, item, item_path| {
            let key_path = format!("{item_path}.key");
            let key = item
                .get("key")
                .ok_or_else(|| json_error(&key_path, "missing"))?;
            let key = json_str(key, &key_path)?.to_string();
            let value = json_tag_value(item.get("value"), &format!("{item_path}.value"))?;
            let endpoint = json_host(item, item_path)?;
            Ok(BinaryAnnotation {
                key,
                value,
                endpoint,
            })
        })?;
    Ok(V1Span {
        ids,
        name,
        timestamp,
        duration,
        debug,
        annotations,
        binary_annotations,
    })
}

/// Decodes a Zipkin v1 JSON array of spans.
pub fn decode_json(body: &[u8]) -> Result<Vec<V1Span>, ZipkinDecodeError> {
    let decoded = serde_json::from_slice::<Json>(body)
        .map_err(|error| json_error("$", format!("not valid JSON: {error}")))
        .and_then(|root| {
            let items = root
                .as_array()
                .ok_or_else(|| json_error("$", "expected an array of spans"))?;
            let mut spans = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let path = format!("$[{index}]");
                let object = item
                    .as_object()
                    .ok_or_else(|| json_error(&path, "expected a span object"))?;
                spans.push(json_span(object, &path)?);
            }
            Ok(spans)
        });
    // The v2 JSON readers name their format; these are v1 bodies.
    decoded.map_err(|error| ZipkinDecodeError {
        format: JSON_FORMAT,
        ..error
    })
}

// ---------------------------------------------------------------- to Zipkin v2

/// One side of a v1 span: its v2 kind, the core annotations that start and end it, and the
/// address annotation that names the other side.
struct Side {
    kind: &'static str,
    start: &'static str,
    end: Option<&'static str>,
    remote_address: &'static str,
}

/// The sides in the order they are looked for: a span with client annotations is the
/// client's even when it also holds the server's.
const SIDES: [Side; 4] = [
    Side {
        kind: "CLIENT",
        start: "cs",
        end: Some("cr"),
        remote_address: "sa",
    },
    Side {
        kind: "SERVER",
        start: "sr",
        end: Some("ss"),
        remote_address: "ca",
    },
    Side {
        kind: "PRODUCER",
        start: "ms",
        end: None,
        remote_address: "ma",
    },
    Side {
        kind: "CONSUMER",
        start: "mr",
        end: None,
        remote_address: "ma",
    },
];

/// The boolean binary annotations that carry an address rather than a tag.
const ADDRESS_KEYS: [&str; 3] = ["sa", "ca", "ma"];

/// Converts v1 spans to Zipkin v2 spans, one each (see the module above for the rules).
pub fn to_v2_spans(spans: Vec<V1Span>) -> Vec<ZipkinSpan> {
    spans.into_iter().map(to_v2_span).collect()
}

fn to_v2_span(span: V1Span) -> ZipkinSpan {
    let find = |value: &str| {
        span.annotations
            .iter()
            .find(|annotation| annotation.value == value)
    };
    let side = SIDES
        .iter()
        .find(|side| find(side.start).is_some() || side.end.is_some_and(|end| find(end).is_some()));
    let start = side.and_then(|side| find(side.start));
    let end = side.and_then(|side| side.end.and_then(find));
    let timestamp = span
        .timestamp
        .or_else(|| start.map(|annotation| annotation.timestamp))
        .or_else(|| {
            span.annotations
                .iter()
                .map(|annotation| annotation.timestamp)
                .min()
        })
        .filter(|micros| *micros > 0);
    let duration = span.duration.unwrap_or_else(|| match (timestamp, end) {
        (Some(started), Some(ended)) => ended.timestamp.saturating_sub(started),
        _ => 0,
    });
    let local_endpoint = start
        .into_iter()
        .chain(end)
        .chain(&span.annotations)
        .find_map(|annotation| annotation.endpoint.clone())
        .or_else(|| {
            span.binary_annotations
                .iter()
                .filter(|binary| !ADDRESS_KEYS.contains(&binary.key.as_str()))
                .find_map(|binary| binary.endpoint.clone())
        });
    let remote_keys: Vec<&str> = match side {
        Some(side) => vec![side.remote_address],
        None => ADDRESS_KEYS.to_vec(),
    };
    let remote_endpoint = remote_keys.iter().find_map(|key| {
        span.binary_annotations
            .iter()
            .find(|binary| binary.key == *key && binary.value == TagValue::Bool(true))
            .and_then(|binary| binary.endpoint.clone())
    });
    let consumed: Vec<&str> = side
        .map(|side| side.end.into_iter().chain([side.start]).collect())
        .unwrap_or_default();
    let annotations = span
        .annotations
        .iter()
        .filter(|annotation| !consumed.contains(&annotation.value.as_str()))
        .map(|annotation| (annotation.timestamp, annotation.value.clone()))
        .collect();
    let mut tags = BTreeMap::new();
    for binary in &span.binary_annotations {
        if ADDRESS_KEYS.contains(&binary.key.as_str()) {
            continue;
        }
        let text = match &binary.value {
            TagValue::Bool(flag) => flag.to_string(),
            TagValue::Text(text) => text.clone(),
        };
        tags.insert(binary.key.clone(), text);
    }
    ZipkinSpan {
        trace_id_high: span.ids.trace_id_high,
        trace_id_low: span.ids.trace_id_low,
        id: span.ids.id,
        parent_id: span.ids.parent_id,
        kind: side.map_or("", |side| side.kind).to_string(),
        name: span.name,
        timestamp,
        duration,
        local_endpoint,
        remote_endpoint,
        annotations,
        tags,
        shared: false,
        debug: span.debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::translate::span_attribute as attribute;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

    /// Thrift binary, written by hand: enough to build v1 spans and break them.
    #[derive(Default)]
    struct Writer(Vec<u8>);

    impl Writer {
        fn field(&mut self, ttype: u8, id: i16) -> &mut Self {
            self.0.push(ttype);
            self.0.extend_from_slice(&id.to_be_bytes());
            self
        }
        fn i64(&mut self, id: i16, value: i64) -> &mut Self {
            self.field(10, id).0.extend_from_slice(&value.to_be_bytes());
            self
        }
        fn binary(&mut self, id: i16, bytes: &[u8]) -> &mut Self {
            self.field(11, id);
            self.0
                .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            self.0.extend_from_slice(bytes);
            self
        }
        fn i32(&mut self, id: i16, value: i32) -> &mut Self {
            self.field(8, id).0.extend_from_slice(&value.to_be_bytes());
            self
        }
        fn list(&mut self, id: i16, element_type: u8, count: i32) -> &mut Self {
            self.field(15, id).0.push(element_type);
            self.0.extend_from_slice(&count.to_be_bytes());
            self
        }
        fn endpoint(&mut self, id: i16, service: &str, ipv4: [u8; 4], port: u16) -> &mut Self {
            self.field(12, id).i32(1, i32::from_be_bytes(ipv4));
            self.field(6, 2).0.extend_from_slice(&port.to_be_bytes());
            self.binary(3, service.as_bytes()).stop()
        }
        fn stop(&mut self) -> &mut Self {
            self.0.push(0);
            self
        }
    }

    /// A list of one server span (128-bit trace) with sr/ss, a `ca` address, an i64 and a
    /// string tag and an event; `mangle` may break the span before it is closed.
    fn thrift_body(mangle: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.0.push(12);
        writer.0.extend_from_slice(&1i32.to_be_bytes());
        writer
            .i64(1, 0x22)
            .i64(12, 0x11)
            .binary(3, b"get /cart")
            .i64(4, 7)
            .i64(5, 3)
            .list(6, 12, 3);
        for (micros, value) in [(1_000, "sr"), (1_250, "ss"), (1_100, "cache miss")] {
            writer
                .i64(1, micros)
                .binary(2, value.as_bytes())
                .endpoint(3, "cart", [10, 0, 0, 1], 8080)
                .stop();
        }
        writer.list(8, 12, 3);
        writer
            .binary(1, b"ca")
            .binary(2, &[1])
            .i32(3, 0)
            .endpoint(4, "web", [10, 0, 0, 2], 40000)
            .stop();
        writer
            .binary(1, b"items")
            .binary(2, &4i64.to_be_bytes())
            .i32(3, 4)
            .stop();
        writer
            .binary(1, b"http.path")
            .binary(2, b"/cart")
            .i32(3, 6)
            .stop();
        writer.field(2, 9).0.push(1);
        mangle(&mut writer);
        writer.stop();
        writer.0
    }

    fn only_span(resource_spans: &[ResourceSpans]) -> &opentelemetry_proto::tonic::trace::v1::Span {
        &resource_spans[0].scope_spans[0].spans[0]
    }

    /// Asserts that each `(key, value)` is a string attribute of `span`.
    fn assert_strings(span: &opentelemetry_proto::tonic::trace::v1::Span, wanted: &[(&str, &str)]) {
        for (key, value) in wanted {
            assert_eq!(
                attribute(span, key),
                Some(&Value::StringValue(value.to_string())),
                "{key}"
            );
        }
    }

    fn service_of(resource_spans: &[ResourceSpans]) -> Option<&Value> {
        resource_spans[0]
            .resource
            .as_ref()
            .and_then(|resource| resource.attributes.first())
            .and_then(|pair| pair.value.as_ref())
            .and_then(|value| value.value.as_ref())
    }

    #[test]
    fn thrift_server_span_translates() {
        let resource_spans = decode_body("application/x-thrift", &thrift_body(|_| {})).unwrap();
        assert_eq!(
            service_of(&resource_spans),
            Some(&Value::StringValue("cart".into()))
        );
        let span = only_span(&resource_spans);
        assert_eq!(
            hex::encode(&span.trace_id),
            "00000000000000110000000000000022"
        );
        assert_eq!(hex::encode(&span.span_id), "0000000000000007");
        assert_eq!(hex::encode(&span.parent_span_id), "0000000000000003");
        assert_eq!(span.name, "get /cart");
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(span.flags, 1, "debug is the sampled flag");
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (1_000_000, 1_250_000),
            "no timestamp or duration: sr to ss"
        );
        assert_strings(
            span,
            &[
                ("items", "4"),
                ("http.path", "/cart"),
                ("peer.service", "web"),
                ("net.peer.ip", "10.0.0.2"),
            ],
        );
        assert_eq!(
            attribute(span, "net.peer.port"),
            Some(&Value::IntValue(40000))
        );
        assert!(attribute(span, "ca").is_none());
        assert_eq!(span.events.len(), 1);
        assert_eq!(span.events[0].name, "cache miss");
        assert_eq!(span.events[0].time_unix_nano, 1_100_000);
    }

    #[test]
    fn json_client_span_translates() {
        let body = br#"[{"traceId":"0000000000000011000000000000002a","id":"5","parentId":"4",
            "name":"select","timestamp":2000,"duration":30,"debug":false,
            "annotations":[{"timestamp":2000,"value":"cs","endpoint":{"serviceName":"api","ipv4":"10.1.0.1"}},
                {"timestamp":2030,"value":"cr","endpoint":{"serviceName":"api"}},
                {"timestamp":2010,"value":"sr","endpoint":{"serviceName":"db"}},
                {"timestamp":2015,"value":"query sent"}],
            "binaryAnnotations":[{"key":"sa","value":true,"endpoint":{"serviceName":"postgres","ipv6":"::1","port":5432}},
                {"key":"rows","value":3},{"key":"cached","value":false},{"key":"error","value":"timeout"}]}]"#;
        let resource_spans = decode_body("application/json", body).unwrap();
        assert_eq!(
            service_of(&resource_spans),
            Some(&Value::StringValue("api".into()))
        );
        let span = only_span(&resource_spans);
        assert_eq!(
            span.kind,
            SpanKind::Client as i32,
            "client wins over server"
        );
        assert_eq!(span.flags, 0);
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (2_000_000, 2_030_000)
        );
        assert_eq!(
            hex::encode(&span.trace_id),
            "0000000000000011000000000000002a"
        );
        assert_strings(
            span,
            &[
                ("rows", "3"),
                ("cached", "false"),
                ("net.peer.ip", "::1"),
                ("peer.service", "postgres"),
            ],
        );
        let status = span.status.as_ref().unwrap();
        assert_eq!(
            status.code,
            opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32
        );
        let names: Vec<&str> = span
            .events
            .iter()
            .map(|event| event.name.as_str())
            .collect();
        assert_eq!(names, ["sr", "query sent"]);
    }

    #[test]
    fn local_and_producer_spans() {
        let body = br#"[{"traceId":"1","id":"1","name":"work","timestamp":10,"duration":5,
            "binaryAnnotations":[{"key":"lc","value":"batch","endpoint":{"serviceName":"jobs"}}]},
            {"traceId":"1","id":"2","parentId":"1","annotations":[{"timestamp":12,"value":"ms","endpoint":{"serviceName":"jobs"}}],
             "binaryAnnotations":[{"key":"ma","value":true,"endpoint":{"serviceName":"kafka"}}]}]"#;
        let spans = to_v2_spans(decode_json(body).unwrap());
        assert_eq!(spans[0].kind, "");
        assert_eq!(
            spans[0].local_endpoint.as_ref().unwrap().service_name,
            "jobs"
        );
        assert_eq!(spans[0].tags["lc"], "batch");
        assert_eq!((spans[0].timestamp, spans[0].duration), (Some(10), 5));
        assert_eq!(spans[1].kind, "PRODUCER");
        assert_eq!(spans[1].timestamp, Some(12));
        assert_eq!(
            spans[1].remote_endpoint.as_ref().unwrap().service_name,
            "kafka"
        );
        assert!(spans[1].annotations.is_empty());
    }

    /// Every bad body is an error naming what was wrong, never a panic.
    #[test]
    fn bad_bodies_are_refused_naming_why() {
        let valid = thrift_body(|_| {});
        let thrift_cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "truncated list header"),
            ("truncated", valid[..valid.len() - 9].to_vec(), "truncated"),
            (
                "a trailing byte",
                [&valid[..], &[0]].concat(),
                "1 bytes after",
            ),
            (
                "a huge list of spans",
                vec![12, 0x7f, 0xff, 0xff, 0xff, 0],
                "larger than the",
            ),
            (
                "a huge annotation list",
                thrift_body(|writer| {
                    writer.list(6, 12, i32::MAX);
                }),
                "larger than the",
            ),
            (
                "a negative list size",
                vec![12, 0xff, 0xff, 0xff, 0xff],
                "negative",
            ),
            (
                "a list of strings",
                vec![11, 0, 0, 0, 1, 0, 0, 0, 0],
                "expected Struct",
            ),
            (
                "a string trace id",
                thrift_body(|writer| {
                    writer.binary(1, b"abc");
                }),
                "Span.trace_id is Binary, expected I64",
            ),
            (
                "an i32 debug",
                thrift_body(|writer| {
                    writer.i32(9, 1);
                }),
                "Span.debug is I32",
            ),
            (
                "no id",
                [
                    &[12u8, 0, 0, 0, 1][..],
                    &[10, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                ]
                .concat(),
                "Span without its id",
            ),
            (
                "no trace id",
                [
                    &[12u8, 0, 0, 0, 1][..],
                    &[10, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                ]
                .concat(),
                "Span without its trace_id",
            ),
            (
                "a negative timestamp",
                thrift_body(|writer| {
                    writer.i64(10, -5);
                }),
                "Span.timestamp -5 is negative",
            ),
            (
                "a two-byte boolean",
                thrift_body(|writer| {
                    writer
                        .list(8, 12, 1)
                        .binary(1, b"sa")
                        .binary(2, &[1, 1])
                        .i32(3, 0)
                        .stop();
                }),
                "has 2 bytes, expected 1",
            ),
            (
                "an unknown annotation type",
                thrift_body(|writer| {
                    writer
                        .list(8, 12, 1)
                        .binary(1, b"k")
                        .binary(2, b"v")
                        .i32(3, 9)
                        .stop();
                }),
                "unknown type 9",
            ),
            (
                "a short ipv6",
                thrift_body(|writer| {
                    writer
                        .list(6, 12, 1)
                        .i64(1, 1)
                        .field(12, 3)
                        .binary(4, &[1, 2, 3])
                        .stop()
                        .stop();
                }),
                "Endpoint.ipv6 has 3 bytes",
            ),
        ];
        for (what, body, needle) in &thrift_cases {
            let error = decode_thrift(body).expect_err(what);
            assert_eq!(error.format, "v1 thrift", "{what}");
            assert!(error.to_string().contains(needle), "{what}: {error}");
        }
        let json_cases: [(&[u8], &str, &str); 8] = [
            (b"{", "$", "not valid JSON"),
            (b"{}", "$", "expected an array"),
            (br#"[{"id":"1"}]"#, "$[0].traceId", "missing"),
            (br#"[{"traceId":"zz","id":"1"}]"#, "$[0].traceId", "not hex"),
            (
                br#"[{"traceId":"1","id":"12345678901234567"}]"#,
                "$[0].id",
                "1 to 16",
            ),
            (
                br#"[{"traceId":"1","id":"1","annotations":[{"value":"cs","timestamp":-1}]}]"#,
                "$[0].annotations[0].timestamp",
                "non-negative",
            ),
            (
                br#"[{"traceId":"1","id":"1","binaryAnnotations":[{"key":"k","value":[1]}]}]"#,
                "$[0].binaryAnnotations[0].value",
                "expected a string, boolean or number",
            ),
            (
                br#"[{"traceId":"1","id":"1","debug":"yes"}]"#,
                "$[0].debug",
                "expected a boolean",
            ),
        ];
        for (body, path, needle) in json_cases {
            let error = decode_json(body).expect_err(path);
            assert_eq!((error.format, error.path.as_str()), ("v1 JSON", path));
            assert!(error.reason.contains(needle), "{error}");
        }
        let refused = decode_body("application/json", b"[{}]").unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("invalid zipkin v1 JSON at $[0].traceId"),
            "{refused}"
        );
    }
}
