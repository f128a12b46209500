//! The OTLP metrics servers: the gRPC `MetricsService/Export` method and `POST /v1/metrics`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use prost::Message;
use tonic::codegen::BoxFuture;

use super::decode::{decode, encode_export_response, response_of};
use super::MetricsReceiver;
use crate::distributor::DistributorError;
use crate::receiver::ingest::{
    self, decompress_request, ingest, Encodings, GrpcIngest, OtlpEncoding, UnaryIngest,
};

impl MetricsReceiver {
    /// Checks the tenant and size, decodes (off the async runtime, as the conversion), converts;
    /// the refused points count and why.
    async fn export(
        &self,
        tenant_header: Option<&str>,
        body: Bytes,
        inflate: impl FnOnce(Bytes) -> Result<Bytes, DistributorError>,
        encoding: OtlpEncoding,
    ) -> Result<(u64, String), DistributorError> {
        let metrics = Arc::clone(&self.metrics);
        ingest(
            &self.distributor,
            tenant_header,
            body,
            inflate,
            |tenant, body| async move {
                tokio::task::spawn_blocking(move || {
                    let request = decode(encoding, &body).map_err(DistributorError::BadRequest)?;
                    Ok(metrics.export(&tenant, &request))
                })
                .await
                .map_err(|error| {
                    DistributorError::Internal(format!("metrics conversion failed: {error}"))
                })?
            },
        )
        .await
    }
}

/// `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` over raw bytes.
#[derive(Clone)]
pub struct MetricsExport(pub MetricsReceiver);

impl UnaryIngest for MetricsExport {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const METHOD: &'static str = "Export";

    fn max_request_bytes(&self) -> usize {
        self.0.distributor.max_request_bytes()
    }

    fn call(&self, tenant: Option<String>, message: Bytes) -> BoxFuture<Bytes, DistributorError> {
        let receiver = self.0.clone();
        Box::pin(async move {
            let (rejected, message) = receiver
                .export(tenant.as_deref(), message, Ok, OtlpEncoding::Protobuf)
                .await?;
            Ok(Bytes::from(response_of(rejected, message).encode_to_vec()))
        })
    }
}

/// The OTLP metrics service over gRPC.
pub fn grpc_service(receiver: MetricsReceiver) -> GrpcIngest<MetricsExport> {
    GrpcIngest(MetricsExport(receiver))
}

/// The OTLP/HTTP route `POST /v1/metrics`, merged into the OTLP/HTTP router.
pub fn http_router(receiver: MetricsReceiver) -> Router {
    let limit = receiver.distributor.max_request_bytes();
    ingest::route("/v1/metrics", export_http, receiver, limit)
}

async fn export_http(
    State(receiver): State<MetricsReceiver>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = match ingest::otlp_export_encoding(&method, &headers) {
        Ok(encoding) => encoding,
        Err(refused) => return refused.into_response(),
    };
    let limit = receiver.distributor.max_request_bytes();
    let inflate = |body| decompress_request(&headers, Encodings::Gzip, body, limit);
    let exported = receiver
        .export(crate::tenant::org_id(&headers), body, inflate, encoding)
        .await;
    match exported {
        Ok((rejected, message)) => {
            let response = response_of(rejected, message);
            let protobuf = response.encode_to_vec();
            ingest::otlp_ok(encoding, protobuf, || {
                let partial = response.partial_success.unwrap_or_default();
                encode_export_response(partial.rejected_data_points, &partial.error_message)
            })
        }
        Err(error) => ingest::otlp_error(encoding, &error, "metrics"),
    }
}
