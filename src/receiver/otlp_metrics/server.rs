//! The OTLP metrics signal: the gRPC `MetricsService/Export` method and `POST /v1/metrics`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::Router;
use prost::Message;
use tonic::codegen::BoxFuture;

use super::decode::{decode, encode_export_response, response_of};
use super::MetricsReceiver;
use crate::distributor::{Distributor, DistributorError};
use crate::receiver::ingest::{
    otlp_grpc_service, otlp_http_router, GrpcIngest, OtlpEncoding, OtlpGrpc, OtlpSignal,
};

/// The OTLP metrics signal. Decoding waits for the push, which decodes and converts off the
/// async runtime; the outcome is the refused points' count and why.
impl OtlpSignal for MetricsReceiver {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/v1/metrics";
    type Decoded = (OtlpEncoding, Bytes);
    type Outcome = (u64, String);

    fn distributor(&self) -> &Distributor {
        &self.distributor
    }

    fn decode(
        &self,
        encoding: OtlpEncoding,
        body: Bytes,
    ) -> Result<(OtlpEncoding, Bytes), DistributorError> {
        Ok((encoding, body))
    }

    fn push(
        &self,
        tenant: String,
        (encoding, body): (OtlpEncoding, Bytes),
    ) -> BoxFuture<(u64, String), DistributorError> {
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let request = decode(encoding, &body).map_err(DistributorError::BadRequest)?;
                Ok(metrics.export(&tenant, &request))
            })
            .await
            .map_err(|error| {
                DistributorError::Internal(format!("metrics conversion failed: {error}"))
            })?
        })
    }

    fn protobuf_answer((rejected, message): &(u64, String)) -> Vec<u8> {
        response_of(*rejected, message.clone()).encode_to_vec()
    }

    fn json_answer((rejected, message): &(u64, String)) -> Vec<u8> {
        let partial = response_of(*rejected, message.clone())
            .partial_success
            .unwrap_or_default();
        encode_export_response(partial.rejected_data_points, &partial.error_message)
    }
}

/// The OTLP metrics service over gRPC.
pub fn grpc_service(receiver: MetricsReceiver) -> GrpcIngest<OtlpGrpc<MetricsReceiver>> {
    otlp_grpc_service(receiver)
}

/// The OTLP/HTTP route `POST /v1/metrics`, merged into the OTLP/HTTP router.
pub fn http_router(receiver: MetricsReceiver) -> Router {
    otlp_http_router(receiver)
}
