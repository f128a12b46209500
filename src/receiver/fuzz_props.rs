//! A short fuzz-like pass over every span decoder and the TraceQL parser that runs with the
//! normal test suite: random bytes and byte-level mutations of valid seeds must give `Ok` or a
//! clear error, never a panic, and whatever decodes must also translate and split by trace.
//! The long runs are the `cargo fuzz` targets in `fuzz/`, which share these seeds.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use proptest::prelude::*;
use prost::Message;

use super::jaeger::decode as jaeger;
use super::zipkin::decode as zipkin;
use crate::model::split_by_trace;
use crate::proto::otlp_json;

/// Valid OTLP/JSON: one span with attributes, an event and a link.
pub const OTLP_JSON_SEED: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","parentSpanId":"0807060504030201","name":"GET /","kind":2,"startTimeUnixNano":"1000","endTimeUnixNano":"2000","attributes":[{"key":"n","value":{"intValue":"7"}},{"key":"d","value":{"doubleValue":1.5}},{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true}]}}}],"events":[{"name":"e","timeUnixNano":"1500"}],"links":[{"traceId":"0102030405060708090a0b0c0d0e0f11","spanId":"0102030405060709"}],"status":{"code":2,"message":"boom"}}]}]}]}"#;

/// Valid Zipkin v2 JSON.
pub const ZIPKIN_JSON_SEED: &str = r#"[{"traceId":"abc","id":"2","parentId":"1","kind":"CLIENT","name":"get","timestamp":1000,"duration":5,"shared":true,"localEndpoint":{"serviceName":"shop","ipv4":"10.0.0.1","port":80},"remoteEndpoint":{"serviceName":"db","ipv6":"::1"},"annotations":[{"timestamp":1001,"value":"ws"}],"tags":{"http.method":"GET","error":"x"}}]"#;

/// TraceQL queries covering most of the grammar.
pub const TRACEQL_SEEDS: &[&str] = &[
    r#"{ resource.service.name = "shop" && span.http.status_code >= 500 }"#,
    r#"{ .a =~ "x.*" } >> { status = error } | count() > 2"#,
    r#"{ duration > 1.5s || kind = server } | select(span.foo, name) | by(resource.service.name)"#,
    r#"{ .x != nil } ~ { event.name = "e" } | avg(duration) > 10ms"#,
    r#"{ trace:rootService = "a" && span:id = "0102" && link:traceID != "" } | max(.n) < -3"#,
];

pub fn otlp_protobuf_seed() -> Vec<u8> {
    otlp_json::decode_export_request(OTLP_JSON_SEED.as_bytes())
        .map(|request| request.encode_to_vec())
        .unwrap_or_default()
}

/// Decodes as the OTLP receivers do and runs the split every push goes through.
pub fn check_otlp(bytes: &[u8]) {
    if let Ok(request) = ExportTraceServiceRequest::decode(bytes) {
        let _ = split_by_trace(request.resource_spans);
    }
    if let Ok(request) = otlp_json::decode_export_request(bytes) {
        let _ = split_by_trace(request.resource_spans);
    }
}

pub fn check_zipkin(bytes: &[u8]) {
    if let Ok(spans) = zipkin::decode_json_v2(bytes) {
        let _ = zipkin::to_resource_spans(spans);
    }
    if let Ok(spans) = zipkin::decode_proto(bytes) {
        let _ = zipkin::to_resource_spans(spans);
    }
}

pub fn check_jaeger(bytes: &[u8]) {
    if let Ok(batch) = jaeger::decode_thrift_http(bytes) {
        let _ = split_by_trace(jaeger::to_resource_spans(batch, jaeger::Model::Thrift));
    }
    if let Ok(batch) = jaeger::decode_agent_compact(bytes) {
        let _ = split_by_trace(jaeger::to_resource_spans(batch, jaeger::Model::Thrift));
    }
    if let Ok(batch) = jaeger::decode_post_spans(bytes) {
        let _ = split_by_trace(jaeger::to_resource_spans(batch, jaeger::Model::Proto));
    }
}

pub fn check_traceql(bytes: &[u8]) {
    if let Ok(query) = std::str::from_utf8(bytes) {
        let _ = crate::traceql::parse_and_validate(query);
    }
}

/// Applies `(position, byte)` edits to `seed`: overwrite, insert or delete by the byte's value.
pub(crate) fn mutate(seed: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for &(position, byte) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let at = position % bytes.len();
        match byte % 3 {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ => {
                bytes.remove(at);
            }
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_otlp(&bytes);
        check_zipkin(&bytes);
        check_jaeger(&bytes);
        check_traceql(&bytes);
    }

    #[test]
    fn mutated_otlp_never_panics(edits in edits()) {
        check_otlp(&mutate(&otlp_protobuf_seed(), &edits));
        check_otlp(&mutate(OTLP_JSON_SEED.as_bytes(), &edits));
    }

    #[test]
    fn mutated_zipkin_never_panics(edits in edits()) {
        check_zipkin(&mutate(ZIPKIN_JSON_SEED.as_bytes(), &edits));
    }

    #[test]
    fn mutated_traceql_never_panics(seed in 0..TRACEQL_SEEDS.len(), edits in edits()) {
        check_traceql(&mutate(TRACEQL_SEEDS[seed].as_bytes(), &edits));
    }
}

#[test]
fn seeds_are_valid() {
    assert!(!otlp_protobuf_seed().is_empty());
    assert!(zipkin::decode_json_v2(ZIPKIN_JSON_SEED.as_bytes()).is_ok());
    for query in TRACEQL_SEEDS {
        assert!(crate::traceql::parse_and_validate(query).is_ok(), "{query}");
    }
}
