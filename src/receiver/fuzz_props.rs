//! A short fuzz-like pass over every span decoder and the TraceQL parser that runs with the
//! normal test suite: random bytes and byte-level mutations of valid seeds must give `Ok` or a
//! clear error, never a panic, and whatever decodes must also translate and split by trace.
//! The long runs are the `cargo fuzz` targets in `fuzz/`, which share these seeds.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use proptest::prelude::*;
use prost::Message;

use super::jaeger::decode as jaeger;
use super::zipkin::decode as zipkin;
use super::zipkin_v1::decode as zipkin_v1;
use crate::model::split_by_trace;
use crate::proto::otlp_json;

/// Valid OTLP/JSON: one span with attributes, an event and a link.
pub const OTLP_JSON_SEED: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","parentSpanId":"0807060504030201","name":"GET /","kind":2,"startTimeUnixNano":"1000","endTimeUnixNano":"2000","attributes":[{"key":"n","value":{"intValue":"7"}},{"key":"d","value":{"doubleValue":1.5}},{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true}]}}}],"events":[{"name":"e","timeUnixNano":"1500"}],"links":[{"traceId":"0102030405060708090a0b0c0d0e0f11","spanId":"0102030405060709"}],"status":{"code":2,"message":"boom"}}]}]}]}"#;

/// Valid Zipkin v2 JSON.
pub const ZIPKIN_JSON_SEED: &str = r#"[{"traceId":"abc","id":"2","parentId":"1","kind":"CLIENT","name":"get","timestamp":1000,"duration":5,"shared":true,"localEndpoint":{"serviceName":"shop","ipv4":"10.0.0.1","port":80},"remoteEndpoint":{"serviceName":"db","ipv6":"::1"},"annotations":[{"timestamp":1001,"value":"ws"}],"tags":{"http.method":"GET","error":"x"}}]"#;

/// Valid Zipkin v1 JSON, as py_zipkin 0.20 writes it (its clock and randomness fixed): a client
/// span with an address annotation and an event, under a server span.
pub const ZIPKIN_V1_JSON_SEED: &str = r#"[{"traceId": "6553f100269e0d37f2a74de452e6b438", "name": "db query", "id": "128b2f330c5c7fd0", "annotations": [{"endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1"}, "timestamp": 1700000000003000, "value": "cs"}, {"endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1"}, "timestamp": 1700000000005000, "value": "cr"}, {"endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1"}, "timestamp": 1700000000004000, "value": "retry"}], "binaryAnnotations": [{"key": "db", "value": "orders", "endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1"}}, {"key": "rows", "value": 3, "endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1"}}, {"key": "sa", "value": true, "endpoint": {"serviceName": "postgres", "port": 5432, "ipv4": "10.0.0.7"}}], "parentId": "a6a3a4506513270e", "timestamp": 1700000000003000, "duration": 2000},{"traceId": "6553f100269e0d37f2a74de452e6b438", "name": "checkout", "id": "a6a3a4506513270e", "annotations": [{"endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1"}, "timestamp": 1700000000002000, "value": "sr"}, {"endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1"}, "timestamp": 1700000000006000, "value": "ss"}], "binaryAnnotations": [{"key": "http.method", "value": "GET", "endpoint": {"serviceName": "shop", "ipv4": "127.0.0.1"}}], "timestamp": 1700000000002000, "duration": 3999}]"#;

/// The same two spans as py_zipkin writes them in Thrift (its default), in hex.
pub const ZIPKIN_V1_THRIFT_SEED: &str = "0c000000020a0001f2a74de452e6b4380b00030000000864622071756572790a0004128b2f330c5c7fd00a0005a6a3a4506513270e0f00060c000000030a000100060a24181e4bb80b00020000000263730c00030800017f00000106000200000b00030000000473686f7000000a000100060a24181e53880b00020000000263720c00030800017f00000106000200000b00030000000473686f7000000a000100060a24181e4fa00b00020000000572657472790c00030800017f00000106000200000b00030000000473686f7000000f00080c000000030b00010000000264620b0002000000066f7264657273080003000000060c00040800017f00000106000200000b00030000000473686f7000000b000100000004726f77730b00020000000133080003000000060c00040800017f00000106000200000b00030000000473686f7000000b00010000000273610b00020000000101080003000000000c00040800010a00000706000215380b000300000008706f7374677265730000020009000a000a00060a24181e4bb80a000b00000000000007d00a000c6553f100269e0d37000a0001f2a74de452e6b4380b000300000008636865636b6f75740a0004a6a3a4506513270e0f00060c000000020a000100060a24181e47d00b00020000000273720c00030800017f00000106000200000b00030000000473686f7000000a000100060a24181e57700b00020000000273730c00030800017f00000106000200000b00030000000473686f7000000f00080c000000010b00010000000b687474702e6d6574686f640b000200000003474554080003000000060c00040800017f00000106000200000b00030000000473686f700000020009000a000a00060a24181e47d00a000b0000000000000f9f0a000c6553f100269e0d3700";

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

/// Decodes as the Zipkin v1 receiver does (both media types) and runs the split.
pub fn check_zipkin_v1(bytes: &[u8]) {
    for media_type in ["application/x-thrift", "application/json"] {
        if let Ok(resource_spans) = zipkin_v1::decode_body(media_type, bytes) {
            let _ = split_by_trace(resource_spans);
        }
    }
}

pub fn zipkin_v1_thrift_seed() -> Vec<u8> {
    hex::decode(ZIPKIN_V1_THRIFT_SEED).unwrap_or_default()
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
        check_zipkin_v1(&bytes);
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
    fn mutated_zipkin_v1_never_panics(edits in edits()) {
        check_zipkin_v1(&mutate(ZIPKIN_V1_JSON_SEED.as_bytes(), &edits));
        check_zipkin_v1(&mutate(&zipkin_v1_thrift_seed(), &edits));
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
    let v1_json = zipkin_v1::decode_json(ZIPKIN_V1_JSON_SEED.as_bytes()).unwrap_or_default();
    let v1_thrift = zipkin_v1::decode_thrift(&zipkin_v1_thrift_seed()).unwrap_or_default();
    assert_eq!(v1_json.len(), 2);
    assert_eq!(
        v1_json, v1_thrift,
        "py_zipkin's JSON and Thrift of one trace decode alike"
    );
    for query in TRACEQL_SEEDS {
        assert!(crate::traceql::parse_and_validate(query).is_ok(), "{query}");
    }
}
