//! OTLP/HTTP bodies: protobuf `ExportTraceServiceRequest` and OTLP/JSON, then the split by
//! trace every push goes through.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ExportTraceServiceRequest::decode(data) {
        let _ = vivace::model::split_by_trace(request.resource_spans);
    }
    if let Ok(request) = vivace::proto::otlp_json::decode_export_request(data) {
        let _ = vivace::model::split_by_trace(request.resource_spans);
    }
});
