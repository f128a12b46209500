//! OTLP metrics receiver: gRPC `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`
//! beside the trace service on the OTLP gRPC port, and HTTP `POST /v1/metrics` (protobuf or
//! JSON, gzip) beside `/v1/traces`, with the trace receiver's limits, tenant rules and error
//! codes: a malformed payload is INVALID_ARGUMENT / 400 naming what was wrong; points the
//! conversion refuses are reported as OTLP partial success. Decoding and conversion run off
//! the async runtime; the converted series go to [`OtlpMetrics`], under the request's tenant.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};

use super::otlp::{error_response, grpc_status, gunzip_bounded, http_status, Encoding, RawCodec};
use super::otlp_metrics_json;
use crate::distributor::{Distributor, DistributorError};
use crate::generator::otlp_metrics::OtlpMetrics;

/// gRPC path of the OTLP metrics export method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// What the receiver needs: the distributor's limits and tenant rules, and the conversion.
#[derive(Clone)]
pub struct MetricsReceiver {
    distributor: Arc<Distributor>,
    metrics: Arc<OtlpMetrics>,
}

impl MetricsReceiver {
    pub fn new(distributor: Arc<Distributor>, metrics: Arc<OtlpMetrics>) -> MetricsReceiver {
        MetricsReceiver {
            distributor,
            metrics,
        }
    }

    /// Checks the tenant and size, decodes with `decode`, converts; the refused points count.
    async fn export(
        &self,
        tenant_header: Option<&str>,
        body: Bytes,
        decode: fn(&[u8]) -> Result<ExportMetricsServiceRequest, String>,
    ) -> Result<(u64, String), DistributorError> {
        let tenant = self.distributor.tenant(tenant_header)?;
        let _permit = self.distributor.admit(body.len())?;
        let metrics = Arc::clone(&self.metrics);
        tokio::task::spawn_blocking(move || {
            let request = decode(&body).map_err(DistributorError::BadRequest)?;
            Ok(metrics.export(&tenant, &request))
        })
        .await
        .map_err(|error| {
            DistributorError::Internal(format!("metrics conversion failed: {error}"))
        })?
    }
}

fn decode_protobuf(body: &[u8]) -> Result<ExportMetricsServiceRequest, String> {
    ExportMetricsServiceRequest::decode(body)
        .map_err(|error| format!("invalid ExportMetricsServiceRequest protobuf: {error}"))
}

fn decode_json(body: &[u8]) -> Result<ExportMetricsServiceRequest, String> {
    otlp_metrics_json::decode_export_request(body).map_err(|error| error.to_string())
}

fn response_of(rejected: u64, message: String) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: message,
        }),
    }
}

// ---------------------------------------------------------------- gRPC

struct ExportMethod(MetricsReceiver);

impl tonic::server::UnaryService<Bytes> for ExportMethod {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let receiver = self.0.clone();
        Box::pin(async move {
            let header = request
                .metadata()
                .get("x-scope-orgid")
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            let (rejected, message) = receiver
                .export(header.as_deref(), request.into_inner(), decode_protobuf)
                .await
                .map_err(|error| grpc_status(&error))?;
            Ok(tonic::Response::new(Bytes::from(
                response_of(rejected, message).encode_to_vec(),
            )))
        })
    }
}

/// The OTLP metrics service over gRPC.
#[derive(Clone)]
pub struct MetricsGrpcService(MetricsReceiver);

impl MetricsGrpcService {
    pub fn new(receiver: MetricsReceiver) -> MetricsGrpcService {
        MetricsGrpcService(receiver)
    }
}

impl<B> Service<http::Request<B>> for MetricsGrpcService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let receiver = self.0.clone();
        let limit = receiver.distributor.max_request_bytes();
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async move {
                Ok(tonic::Status::unimplemented("unknown method").into_http())
            });
        }
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            Ok(grpc.unary(ExportMethod(receiver), request).await)
        })
    }
}

impl tonic::server::NamedService for MetricsGrpcService {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

// ---------------------------------------------------------------- HTTP

/// The OTLP/HTTP route `POST /v1/metrics`, merged into the OTLP/HTTP router.
pub fn http_router(receiver: MetricsReceiver) -> Router {
    let limit = receiver.distributor.max_request_bytes();
    Router::new()
        .route("/v1/metrics", any(export_http))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(receiver)
}

async fn export_http(
    State(receiver): State<MetricsReceiver>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let encoding = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return error_response(
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content type {other:?}: use application/x-protobuf or application/json"),
            )
        }
    };
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "405 method not allowed, supported: [POST]",
        )
            .into_response();
    }
    match export_body(&receiver, &headers, encoding, body).await {
        Ok((rejected, message)) => {
            let response = response_of(rejected, message);
            let (content_type, bytes) = match encoding {
                Encoding::Protobuf => ("application/x-protobuf", response.encode_to_vec()),
                Encoding::Json => {
                    let partial = response.partial_success.unwrap_or_default();
                    (
                        "application/json",
                        otlp_metrics_json::encode_export_response(
                            partial.rejected_data_points,
                            &partial.error_message,
                        ),
                    )
                }
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                bytes,
            )
                .into_response()
        }
        Err(error) => {
            let status = http_status(&error);
            if status.is_server_error() {
                tracing::warn!(%error, "otlp/http metrics export failed");
            }
            error_response(encoding, status, error.to_string())
        }
    }
}

async fn export_body(
    receiver: &MetricsReceiver,
    headers: &HeaderMap,
    encoding: Encoding,
    body: Bytes,
) -> Result<(u64, String), DistributorError> {
    let tenant = headers
        .get("x-scope-orgid")
        .and_then(|value| value.to_str().ok());
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = match content_encoding.as_str() {
        "" | "identity" => body,
        "gzip" | "x-gzip" => {
            // The wire size is checked before inflating, the inflated size while inflating.
            receiver.distributor.tenant(tenant)?;
            let _permit = receiver.distributor.admit(body.len())?;
            Bytes::from(gunzip_bounded(
                &body,
                receiver.distributor.max_request_bytes(),
            )?)
        }
        other => {
            return Err(DistributorError::BadRequest(format!(
                "unsupported content encoding {other:?}: use gzip or none"
            )))
        }
    };
    let decode = match encoding {
        Encoding::Protobuf => decode_protobuf,
        Encoding::Json => decode_json,
    };
    receiver.export(tenant, body, decode).await
}
