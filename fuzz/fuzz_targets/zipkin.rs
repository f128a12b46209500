//! Zipkin v2 JSON and protobuf `ListOfSpans`, translated to OTLP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vivace::receiver::zipkin::decode as zipkin;

fuzz_target!(|data: &[u8]| {
    if let Ok(spans) = zipkin::decode_json_v2(data) {
        let _ = zipkin::to_resource_spans(spans);
    }
    if let Ok(spans) = zipkin::decode_proto(data) {
        let _ = zipkin::to_resource_spans(spans);
    }
});
