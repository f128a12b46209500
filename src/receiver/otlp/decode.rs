//! OTLP trace export bodies: protobuf `ExportTraceServiceRequest` or its OTLP/JSON mapping
//! ([`crate::proto::otlp_json`]); the answers in both encodings.

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

use crate::distributor::{DistributorError, PushOutcome};
use crate::proto::otlp_json;
use crate::receiver::ingest::OtlpEncoding;

/// The spans of an export body in `encoding`.
pub fn decode(
    encoding: OtlpEncoding,
    body: &Bytes,
) -> Result<Vec<ResourceSpans>, DistributorError> {
    let request = match encoding {
        OtlpEncoding::Protobuf => {
            ExportTraceServiceRequest::decode(body.as_ref()).map_err(|error| {
                DistributorError::BadRequest(format!(
                    "invalid ExportTraceServiceRequest protobuf: {error}"
                ))
            })?
        }
        OtlpEncoding::Json => otlp_json::decode_export_request(body)
            .map_err(|error| DistributorError::BadRequest(error.to_string()))?,
    };
    Ok(request.resource_spans)
}

/// The export response: partial success when spans were refused.
pub fn response_of(outcome: &PushOutcome) -> ExportTraceServiceResponse {
    let partial_success = (outcome.rejected_spans > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: outcome.rejected_spans as i64,
        error_message: outcome.message.clone(),
    });
    ExportTraceServiceResponse { partial_success }
}

/// [`response_of`] in OTLP/JSON.
pub fn json_response_of(outcome: &PushOutcome) -> Vec<u8> {
    let response = response_of(outcome);
    let partial = response.partial_success.unwrap_or_default();
    otlp_json::encode_export_response(partial.rejected_spans, &partial.error_message)
}
