//! The same spans in every wire format vivace receives, for `vivace bench --protocols`: an OTLP
//! request re-encoded as OTLP/JSON, Zipkin v2 JSON and protobuf, Jaeger thrift (binary, as
//! `POST /api/traces` takes it) and Jaeger protobuf (`PostSpans`). Encoders only; the decoders
//! are the receivers' own, so a bench run also checks that what is sent is accepted.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;

/// A wire format of the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    OtlpProtobuf,
    OtlpJson,
    OtlpGrpc,
    ZipkinJson,
    ZipkinProtobuf,
    JaegerThriftHttp,
    JaegerGrpc,
}

impl Protocol {
    pub const ALL: [Protocol; 7] = [
        Protocol::OtlpProtobuf,
        Protocol::OtlpGrpc,
        Protocol::OtlpJson,
        Protocol::ZipkinJson,
        Protocol::ZipkinProtobuf,
        Protocol::JaegerThriftHttp,
        Protocol::JaegerGrpc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::OtlpProtobuf => "OTLP/HTTP protobuf",
            Protocol::OtlpJson => "OTLP/HTTP JSON",
            Protocol::OtlpGrpc => "OTLP/gRPC",
            Protocol::ZipkinJson => "Zipkin v2 JSON",
            Protocol::ZipkinProtobuf => "Zipkin v2 protobuf",
            Protocol::JaegerThriftHttp => "Jaeger thrift HTTP",
            Protocol::JaegerGrpc => "Jaeger gRPC",
        }
    }

    /// The request body and its content type, for the HTTP protocols (`None` for gRPC).
    pub fn http_body(self, request: &ExportTraceServiceRequest) -> Option<(&'static str, Vec<u8>)> {
        use prost::Message;
        Some(match self {
            Protocol::OtlpProtobuf => ("application/x-protobuf", request.encode_to_vec()),
            Protocol::OtlpJson => ("application/json", otlp_json(request)),
            Protocol::ZipkinJson => ("application/json", zipkin_json(request)),
            Protocol::ZipkinProtobuf => (
                "application/x-protobuf",
                zipkin_proto(request).encode_to_vec(),
            ),
            Protocol::JaegerThriftHttp => ("application/x-thrift", jaeger_thrift(request)),
            Protocol::OtlpGrpc | Protocol::JaegerGrpc => return None,
        })
    }
}

/// Every span with the service name of its resource.
fn spans(request: &ExportTraceServiceRequest) -> impl Iterator<Item = (&str, &Span)> {
    request.resource_spans.iter().flat_map(|resource_spans| {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|resource| string_value(&resource.attributes, "service.name"))
            .unwrap_or("unknown");
        resource_spans
            .scope_spans
            .iter()
            .flat_map(|scope| &scope.spans)
            .map(move |span| (service, span))
    })
}

/// The string value of attribute `key`, if it has one.
fn string_value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(
            |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(text) => Some(text.as_str()),
                _ => None,
            },
        )
}

fn string_tags(attributes: &[KeyValue]) -> impl Iterator<Item = (&str, String)> {
    attributes.iter().map(|attribute| {
        let value = match attribute.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(text)) => text.clone(),
            Some(any_value::Value::IntValue(number)) => number.to_string(),
            Some(any_value::Value::DoubleValue(number)) => number.to_string(),
            Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
            _ => String::new(),
        };
        (attribute.key.as_str(), value)
    })
}

fn kind_name(kind: i32) -> Option<&'static str> {
    match SpanKind::try_from(kind).ok()? {
        SpanKind::Server => Some("SERVER"),
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        _ => None,
    }
}

/// OTLP/JSON as the SDKs write it: hex IDs, 64-bit integers as strings.
fn otlp_json(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let resource_spans: Vec<serde_json::Value> = request
        .resource_spans
        .iter()
        .map(|resource_spans| {
            let attributes = |attributes: &[KeyValue]| -> Vec<serde_json::Value> {
                string_tags(attributes)
                    .map(|(key, value)| serde_json::json!({"key": key, "value": {"stringValue": value}}))
                    .collect()
            };
            let scope_spans: Vec<serde_json::Value> = resource_spans
                .scope_spans
                .iter()
                .map(|scope| {
                    let spans: Vec<serde_json::Value> = scope
                        .spans
                        .iter()
                        .map(|span| {
                            serde_json::json!({
                                "traceId": hex::encode(&span.trace_id),
                                "spanId": hex::encode(&span.span_id),
                                "parentSpanId": hex::encode(&span.parent_span_id),
                                "name": span.name,
                                "kind": span.kind,
                                "startTimeUnixNano": span.start_time_unix_nano.to_string(),
                                "endTimeUnixNano": span.end_time_unix_nano.to_string(),
                                "attributes": attributes(&span.attributes),
                                "status": {},
                            })
                        })
                        .collect();
                    serde_json::json!({"scope": {"name": scope.scope.as_ref().map_or("", |s| s.name.as_str())}, "spans": spans})
                })
                .collect();
            serde_json::json!({
                "resource": {"attributes": attributes(resource_spans.resource.as_ref().map_or(&[][..], |r| &r.attributes))},
                "scopeSpans": scope_spans,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "resourceSpans": resource_spans })).unwrap_or_default()
}

/// Zipkin v2 JSON (`[{traceId, id, parentId, kind, name, timestamp, duration, localEndpoint, tags}]`).
fn zipkin_json(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let spans: Vec<serde_json::Value> = spans(request)
        .map(|(service, span)| {
            let mut json = serde_json::json!({
                "traceId": hex::encode(&span.trace_id),
                "id": hex::encode(&span.span_id),
                "name": span.name,
                "timestamp": span.start_time_unix_nano / 1_000,
                "duration": span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) / 1_000,
                "localEndpoint": {"serviceName": service},
                "tags": string_tags(&span.attributes).map(|(key, value)| (key.to_string(), serde_json::Value::from(value))).collect::<serde_json::Map<_, _>>(),
            });
            if !span.parent_span_id.is_empty() {
                json["parentId"] = hex::encode(&span.parent_span_id).into();
            }
            if let Some(kind) = kind_name(span.kind) {
                json["kind"] = kind.into();
            }
            json
        })
        .collect();
    serde_json::to_vec(&spans).unwrap_or_default()
}

/// Zipkin v2 protobuf `ListOfSpans`.
fn zipkin_proto(request: &ExportTraceServiceRequest) -> crate::proto::zipkin::ListOfSpans {
    crate::proto::zipkin::ListOfSpans {
        spans: spans(request)
            .map(|(service, span)| crate::proto::zipkin::Span {
                trace_id: span.trace_id.clone(),
                parent_id: span.parent_span_id.clone(),
                id: span.span_id.clone(),
                kind: match span.kind {
                    k if k == SpanKind::Client as i32 => 1,
                    k if k == SpanKind::Server as i32 => 2,
                    k if k == SpanKind::Producer as i32 => 3,
                    k if k == SpanKind::Consumer as i32 => 4,
                    _ => 0,
                },
                name: span.name.clone(),
                timestamp: span.start_time_unix_nano / 1_000,
                duration: span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano)
                    / 1_000,
                local_endpoint: Some(crate::proto::zipkin::Endpoint {
                    service_name: service.to_string(),
                    ..Default::default()
                }),
                tags: string_tags(&span.attributes)
                    .map(|(key, value)| (key.to_string(), value))
                    .collect(),
                ..Default::default()
            })
            .collect(),
    }
}

fn id_u64(bytes: &[u8]) -> i64 {
    let mut id = [0u8; 8];
    let take = bytes.len().min(8);
    id[8 - take..].copy_from_slice(&bytes[bytes.len() - take..]);
    i64::from_be_bytes(id)
}

fn span_kind_tag(kind: i32) -> Option<(&'static str, String)> {
    kind_name(kind).map(|name| ("span.kind", name.to_ascii_lowercase()))
}

/// Jaeger protobuf `PostSpansRequest` (one batch per resource).
pub fn jaeger_proto(
    request: &ExportTraceServiceRequest,
) -> Vec<crate::proto::jaeger::PostSpansRequest> {
    let tag = |key: &str, value: String| crate::proto::jaeger::KeyValue {
        key: key.to_string(),
        v_str: value,
        ..Default::default()
    };
    let time = |nanos: u64| crate::proto::jaeger::Time {
        seconds: (nanos / 1_000_000_000) as i64,
        nanos: (nanos % 1_000_000_000) as i32,
    };
    request
        .resource_spans
        .iter()
        .map(|resource_spans| {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| string_value(&r.attributes, "service.name"))
                .unwrap_or("unknown");
            let spans = resource_spans
                .scope_spans
                .iter()
                .flat_map(|scope| &scope.spans)
                .map(|span| crate::proto::jaeger::Span {
                    trace_id: span.trace_id.clone(),
                    span_id: span.span_id.clone(),
                    operation_name: span.name.clone(),
                    references: (!span.parent_span_id.is_empty())
                        .then(|| crate::proto::jaeger::SpanRef {
                            trace_id: span.trace_id.clone(),
                            span_id: span.parent_span_id.clone(),
                            ref_type: 0,
                        })
                        .into_iter()
                        .collect(),
                    start_time: Some(time(span.start_time_unix_nano)),
                    duration: Some(time(
                        span.end_time_unix_nano
                            .saturating_sub(span.start_time_unix_nano),
                    )),
                    tags: string_tags(&span.attributes)
                        .chain(span_kind_tag(span.kind))
                        .map(|(key, value)| tag(key, value))
                        .collect(),
                    ..Default::default()
                })
                .collect();
            crate::proto::jaeger::PostSpansRequest {
                batch: Some(crate::proto::jaeger::Batch {
                    spans,
                    process: Some(crate::proto::jaeger::Process {
                        service_name: service.to_string(),
                        tags: Vec::new(),
                    }),
                }),
            }
        })
        .collect()
}

/// Thrift binary protocol, the few shapes a `jaeger.Batch` needs.
struct ThriftWriter(Vec<u8>);

impl ThriftWriter {
    const STRING: u8 = 11;
    const I32: u8 = 8;
    const I64: u8 = 10;
    const STRUCT: u8 = 12;
    const LIST: u8 = 15;

    fn field(&mut self, kind: u8, id: i16) {
        self.0.push(kind);
        self.0.extend_from_slice(&id.to_be_bytes());
    }
    fn stop(&mut self) {
        self.0.push(0);
    }
    fn i32(&mut self, id: i16, value: i32) {
        self.field(Self::I32, id);
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn i64(&mut self, id: i16, value: i64) {
        self.field(Self::I64, id);
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn string(&mut self, id: i16, value: &str) {
        self.field(Self::STRING, id);
        self.0
            .extend_from_slice(&(value.len() as i32).to_be_bytes());
        self.0.extend_from_slice(value.as_bytes());
    }
    fn list_of_structs(&mut self, id: i16, count: usize) {
        self.field(Self::LIST, id);
        self.0.push(Self::STRUCT);
        self.0.extend_from_slice(&(count as i32).to_be_bytes());
    }
    /// A `jaeger.Tag` of type STRING.
    fn tag(&mut self, key: &str, value: &str) {
        self.string(1, key);
        self.i32(2, 0);
        self.string(3, value);
        self.stop();
    }
}

/// Thrift binary `jaeger.Batch` of the first resource's spans, as `POST /api/traces` takes it.
fn jaeger_thrift(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let mut out = ThriftWriter(Vec::with_capacity(request.resource_spans.len() * 4096));
    let service = spans(request)
        .next()
        .map_or("unknown", |(service, _)| service);
    // field 1: process
    out.field(ThriftWriter::STRUCT, 1);
    out.string(1, service);
    out.stop();
    // field 2: spans
    let all: Vec<&Span> = spans(request).map(|(_, span)| span).collect();
    out.list_of_structs(2, all.len());
    for span in all {
        let trace_id = &span.trace_id;
        let (high, low) = trace_id.split_at(trace_id.len().saturating_sub(8));
        out.i64(1, id_u64(low));
        out.i64(2, id_u64(high));
        out.i64(3, id_u64(&span.span_id));
        out.i64(4, id_u64(&span.parent_span_id));
        out.string(5, &span.name);
        out.i32(7, 1);
        out.i64(8, (span.start_time_unix_nano / 1_000) as i64);
        out.i64(
            9,
            (span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano)
                / 1_000) as i64,
        );
        let tags: Vec<(&str, String)> = string_tags(&span.attributes)
            .chain(span_kind_tag(span.kind))
            .collect();
        out.list_of_structs(10, tags.len());
        for (key, value) in &tags {
            out.tag(key, value);
        }
        out.stop();
    }
    out.stop();
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::string_attribute;
    use crate::receiver::jaeger::decode as jaeger;
    use crate::receiver::zipkin::decode as zipkin;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn request() -> ExportTraceServiceRequest {
        let span = |id: u8, parent: Option<u8>, kind: SpanKind| Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("op-{id}"),
            kind: kind as i32,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_005_000_000,
            attributes: vec![string_attribute("http.route", "/x")],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string_attribute("service.name", "svc")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(1, None, SpanKind::Server),
                        span(2, Some(1), SpanKind::Client),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// Every encoding decodes with the receiver's own decoder into the same spans.
    #[test]
    fn every_encoding_is_accepted_by_its_receiver() {
        let request = request();
        let check = |protocol: &str, resource_spans: Vec<ResourceSpans>| {
            let spans: Vec<&Span> = resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .collect();
            assert_eq!(spans.len(), 2, "{protocol}");
            assert_eq!(spans[0].trace_id, vec![7; 16], "{protocol}");
            assert_eq!(spans[1].parent_span_id, vec![1; 8], "{protocol}");
            assert_eq!(spans[0].name, "op-1", "{protocol}");
            assert_eq!(spans[0].kind, SpanKind::Server as i32, "{protocol}");
            assert_eq!(
                spans[0].end_time_unix_nano - spans[0].start_time_unix_nano,
                5_000_000,
                "{protocol}"
            );
            let service = resource_spans[0]
                .resource
                .as_ref()
                .and_then(|r| string_value(&r.attributes, "service.name"));
            assert_eq!(service, Some("svc"), "{protocol}");
        };
        let json = otlp_json(&request);
        let decoded = crate::proto::otlp_json::decode_export_request(&json).expect("otlp json");
        check("otlp json", decoded.resource_spans);
        let zipkin = zipkin::decode_json_v2(&zipkin_json(&request)).expect("zipkin json");
        check(
            "zipkin json",
            zipkin::to_resource_spans(zipkin).expect("translate"),
        );
        let body = prost::Message::encode_to_vec(&zipkin_proto(&request));
        let zipkin = zipkin::decode_proto(&body).expect("zipkin proto");
        check(
            "zipkin proto",
            zipkin::to_resource_spans(zipkin).expect("translate"),
        );
        let batch = jaeger::decode_thrift_http(&jaeger_thrift(&request)).expect("jaeger thrift");
        check(
            "jaeger thrift",
            jaeger::to_resource_spans(batch, jaeger::Model::Thrift),
        );
        let body = prost::Message::encode_to_vec(&jaeger_proto(&request)[0]);
        let batch = jaeger::decode_post_spans(&body).expect("jaeger proto");
        check(
            "jaeger proto",
            jaeger::to_resource_spans(batch, jaeger::Model::Proto),
        );
    }
}
