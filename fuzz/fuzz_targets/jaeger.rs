//! Jaeger: thrift binary (HTTP), thrift compact (UDP agent) and protobuf PostSpans, translated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vivace::receiver::jaeger::decode::{self as jaeger, Model};

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = jaeger::decode_thrift_http(data) {
        let _ = vivace::model::split_by_trace(jaeger::to_resource_spans(batch, Model::Thrift));
    }
    if let Ok(batch) = jaeger::decode_agent_compact(data) {
        let _ = vivace::model::split_by_trace(jaeger::to_resource_spans(batch, Model::Thrift));
    }
    if let Ok(batch) = jaeger::decode_post_spans(data) {
        let _ = vivace::model::split_by_trace(jaeger::to_resource_spans(batch, Model::Proto));
    }
});
