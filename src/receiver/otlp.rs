//! OTLP receiver: gRPC `opentelemetry.proto.collector.trace.v1.TraceService/Export` (default
//! :4317, gzip accepted) and HTTP `POST /v1/traces` (default :4318, protobuf or JSON, gzip).
//!
//! The gRPC service decodes the protobuf itself (the generated codec would report a malformed
//! message as INTERNAL); a bad payload is INVALID_ARGUMENT / 400 naming what was wrong.

use std::convert::Infallible;
use std::io::Read;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};

use super::otlp_json;
use crate::distributor::{Distributor, DistributorError, PushOutcome};

/// gRPC path of the OTLP trace export method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The `distributor.receivers.otlp` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// The two OTLP transports.
    pub protocols: OtlpProtocols,
}

/// `distributor.receivers.otlp.protocols`. A protocol listed here listens (as in Tempo, where
/// configuring a receiver enables it) on its default endpoint unless one is given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "OtlpProtocolsInput")]
pub struct OtlpProtocols {
    /// OTLP over gRPC.
    pub grpc: ListenerConfig,
    /// OTLP over HTTP (`POST /v1/traces`), with CORS for pages that export from a browser.
    pub http: OtlpHttpConfig,
}

/// `distributor.receivers.otlp.protocols.http`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpHttpConfig {
    /// Whether this receiver listens at all.
    pub enabled: bool,
    /// `address:port` to listen on; `0.0.0.0:<port>` to accept from other machines.
    pub endpoint: String,
    /// Which web pages (origins) may export from a browser, and with which extra headers.
    pub cors: super::cors::CorsConfig,
}

/// `distributor.receivers.otlp.protocols.http` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct OtlpHttpInput {
    enabled: Option<bool>,
    endpoint: Option<String>,
    cors: Option<super::cors::CorsConfig>,
}

impl OtlpHttpInput {
    fn resolve(written: Option<OtlpHttpInput>, default: OtlpHttpConfig) -> OtlpHttpConfig {
        match written {
            None => default,
            Some(written) => OtlpHttpConfig {
                enabled: written.enabled.unwrap_or(true),
                endpoint: written.endpoint.unwrap_or(default.endpoint),
                cors: written.cors.unwrap_or(default.cors),
            },
        }
    }
}

/// One listening receiver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// Whether this receiver listens at all.
    pub enabled: bool,
    /// `address:port` to listen on; `0.0.0.0:<port>` to accept from other machines.
    pub endpoint: String,
}

/// A receiver as written in the config file: what is not written comes from the receiver's
/// default, except `enabled`, which a listed receiver has unless it says `enabled: false`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerInput {
    enabled: Option<bool>,
    endpoint: Option<String>,
}

impl ListenerInput {
    /// The receiver's settings: `written` over `default`, or `default` when not listed.
    pub fn resolve(written: Option<ListenerInput>, default: ListenerConfig) -> ListenerConfig {
        match written {
            None => default,
            Some(written) => ListenerConfig {
                enabled: written.enabled.unwrap_or(true),
                endpoint: written.endpoint.unwrap_or(default.endpoint),
            },
        }
    }
}

/// `distributor.receivers.otlp.protocols` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct OtlpProtocolsInput {
    grpc: Option<ListenerInput>,
    http: Option<OtlpHttpInput>,
}

impl From<OtlpProtocolsInput> for OtlpProtocols {
    fn from(input: OtlpProtocolsInput) -> Self {
        let default = OtlpProtocols::default();
        OtlpProtocols {
            grpc: ListenerInput::resolve(input.grpc, default.grpc),
            http: OtlpHttpInput::resolve(input.http, default.http),
        }
    }
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            protocols: OtlpProtocols {
                grpc: ListenerConfig {
                    enabled: true,
                    endpoint: "127.0.0.1:4317".into(),
                },
                http: OtlpHttpConfig {
                    enabled: true,
                    endpoint: "127.0.0.1:4318".into(),
                    cors: super::cors::CorsConfig::default(),
                },
            },
        }
    }
}

impl Default for OtlpProtocols {
    fn default() -> Self {
        OtlpConfig::default().protocols
    }
}

/// `google.rpc.Status`, the error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

fn response_of(outcome: &PushOutcome) -> ExportTraceServiceResponse {
    let partial_success = (outcome.rejected_spans > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: outcome.rejected_spans as i64,
        error_message: outcome.message.clone(),
    });
    ExportTraceServiceResponse { partial_success }
}

pub(crate) fn grpc_status(error: &DistributorError) -> tonic::Status {
    let message = error.to_string();
    match error {
        DistributorError::MissingTenant => tonic::Status::unauthenticated(message),
        DistributorError::InvalidTenant { .. } | DistributorError::BadRequest(_) => {
            tonic::Status::invalid_argument(message)
        }
        DistributorError::TooLarge { .. } | DistributorError::Overloaded(_) => {
            tonic::Status::resource_exhausted(message)
        }
        DistributorError::Unavailable(_) => tonic::Status::unavailable(message),
        DistributorError::Internal(_) => tonic::Status::internal(message),
    }
}

pub(crate) fn http_status(error: &DistributorError) -> StatusCode {
    match error {
        DistributorError::MissingTenant => StatusCode::UNAUTHORIZED,
        DistributorError::InvalidTenant { .. } | DistributorError::BadRequest(_) => {
            StatusCode::BAD_REQUEST
        }
        DistributorError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        DistributorError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
        DistributorError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        DistributorError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// gRPC code numbers for the `google.rpc.Status` body of an HTTP error.
fn rpc_code_of(status: StatusCode) -> i32 {
    match status {
        StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument as i32,
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated as i32,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => {
            tonic::Code::ResourceExhausted as i32
        }
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable as i32,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => tonic::Code::InvalidArgument as i32,
        _ => tonic::Code::Internal as i32,
    }
}

// ---------------------------------------------------------------- gRPC

/// A codec that hands the raw message bytes to the service, so decoding errors are ours to
/// report as INVALID_ARGUMENT.
#[derive(Default, Clone, Copy)]
pub struct RawCodec;

pub struct RawEncoder;
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        destination: &mut EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(destination, &item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, source: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let length = bytes::Buf::remaining(source);
        Ok(Some(bytes::Buf::copy_to_bytes(source, length)))
    }
}

/// The OTLP trace service over gRPC.
#[derive(Clone)]
pub struct OtlpGrpcService {
    distributor: Arc<Distributor>,
}

impl OtlpGrpcService {
    pub fn new(distributor: Arc<Distributor>) -> OtlpGrpcService {
        OtlpGrpcService { distributor }
    }
}

struct ExportMethod(Arc<Distributor>);

impl tonic::server::UnaryService<Bytes> for ExportMethod {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let distributor = Arc::clone(&self.0);
        Box::pin(crate::telemetry::Stage::Decode.within(async move {
            let header = request
                .metadata()
                .get("x-scope-orgid")
                .and_then(|value| value.to_str().ok());
            let tenant = distributor
                .tenant(header)
                .map_err(|error| grpc_status(&error))?;
            let body = request.into_inner();
            let _permit = distributor
                .admit(body.len())
                .map_err(|error| grpc_status(&error))?;
            let export = ExportTraceServiceRequest::decode(body.as_ref()).map_err(|error| {
                tonic::Status::invalid_argument(format!(
                    "invalid ExportTraceServiceRequest protobuf: {error}"
                ))
            })?;
            let outcome = crate::telemetry::Stage::Distributor
                .within(distributor.push(&tenant, export.resource_spans))
                .await
                .map_err(|error| grpc_status(&error))?;
            Ok(tonic::Response::new(Bytes::from(
                response_of(&outcome).encode_to_vec(),
            )))
        }))
    }
}

impl<B> Service<http::Request<B>> for OtlpGrpcService
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
        let distributor = Arc::clone(&self.distributor);
        let limit = distributor.max_request_bytes();
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
            Ok(grpc.unary(ExportMethod(distributor), request).await)
        })
    }
}

impl tonic::server::NamedService for OtlpGrpcService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// Serves OTLP/gRPC on `listener` until `shutdown` resolves.
/// With `metrics`, the OTLP metrics service is served on the same port.
pub async fn serve_grpc(
    listener: crate::server::Listener,
    distributor: Arc<Distributor>,
    metrics: Option<super::otlp_metrics::MetricsReceiver>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut routes = tonic::service::Routes::new(OtlpGrpcService::new(Arc::clone(&distributor)))
        .add_service(crate::logs::receiver::LogsGrpcService(distributor));
    if let Some(metrics) = metrics {
        routes = routes.add_service(super::otlp_metrics::MetricsGrpcService::new(metrics));
    }
    listener.serve(routes.into_axum_router(), shutdown).await
}

// ---------------------------------------------------------------- HTTP

/// The body encoding of an OTLP/HTTP request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Protobuf,
    Json,
}

/// The OTLP/HTTP router: `POST /v1/traces`.
pub fn http_router(distributor: Arc<Distributor>) -> Router {
    // The body limit is checked again after decompression; this one bounds the wire bytes.
    let limit = distributor.max_request_bytes();
    Router::new()
        .route("/v1/traces", any(export_http))
        .route("/v1/logs", any(crate::logs::receiver::export_http))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(distributor)
}

pub(crate) fn error_response(encoding: Encoding, status: StatusCode, message: String) -> Response {
    let body = RpcStatus {
        code: rpc_code_of(status),
        message,
    };
    let mut response = match encoding {
        Encoding::Protobuf => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )],
            body.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            serde_json::json!({ "code": body.code, "message": body.message }).to_string(),
        )
            .into_response(),
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn export_http(
    State(distributor): State<Arc<Distributor>>,
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
    match crate::telemetry::Stage::Decode
        .within(export_body(&distributor, &headers, encoding, body))
        .await
    {
        Ok(outcome) => {
            let response = response_of(&outcome);
            let (content_type, bytes) = match encoding {
                Encoding::Protobuf => ("application/x-protobuf", response.encode_to_vec()),
                Encoding::Json => (
                    "application/json",
                    otlp_json::encode_export_response(
                        response
                            .partial_success
                            .as_ref()
                            .map_or(0, |partial| partial.rejected_spans),
                        response
                            .partial_success
                            .as_ref()
                            .map_or("", |partial| partial.error_message.as_str()),
                    ),
                ),
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
                tracing::warn!(%error, "otlp/http export failed");
            }
            error_response(encoding, status, error.to_string())
        }
    }
}

async fn export_body(
    distributor: &Distributor,
    headers: &HeaderMap,
    encoding: Encoding,
    body: Bytes,
) -> Result<PushOutcome, DistributorError> {
    let header = headers
        .get("x-scope-orgid")
        .and_then(|value| value.to_str().ok());
    let tenant = distributor.tenant(header)?;
    let limit = distributor.max_request_bytes();
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let _permit = distributor.admit(body.len())?;
    let body = match content_encoding.as_str() {
        "" | "identity" => body,
        "gzip" | "x-gzip" => Bytes::from(gunzip_bounded(&body, limit)?),
        other => {
            return Err(DistributorError::BadRequest(format!(
                "unsupported content encoding {other:?}: use gzip or none"
            )))
        }
    };
    let request = match encoding {
        Encoding::Protobuf => {
            ExportTraceServiceRequest::decode(body.as_ref()).map_err(|error| {
                DistributorError::BadRequest(format!(
                    "invalid ExportTraceServiceRequest protobuf: {error}"
                ))
            })?
        }
        Encoding::Json => otlp_json::decode_export_request(&body)
            .map_err(|error| DistributorError::BadRequest(error.to_string()))?,
    };
    crate::telemetry::Stage::Distributor
        .within(distributor.push(&tenant, request.resource_spans))
        .await
}

/// Decompresses gzip, refusing output larger than `limit` so a small bomb cannot fill memory.
pub fn gunzip_bounded(compressed: &[u8], limit: usize) -> Result<Vec<u8>, DistributorError> {
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    let mut output = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut output)
        .map_err(|error| DistributorError::BadRequest(format!("invalid gzip body: {error}")))?;
    if output.len() > limit {
        return Err(DistributorError::TooLarge {
            size: output.len(),
            limit,
        });
    }
    Ok(output)
}

/// Serves OTLP/HTTP on `listener` until `shutdown` resolves; with `metrics`, `/v1/metrics` too.
/// With `cors`, preflights are answered (before authentication: they carry no credentials)
/// and answers to allowed origins carry `Access-Control-Allow-Origin`.
pub async fn serve_http(
    listener: crate::server::Listener,
    distributor: Arc<Distributor>,
    metrics: Option<super::otlp_metrics::MetricsReceiver>,
    cors: Option<Arc<super::cors::CorsPolicy>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut router = http_router(distributor);
    if let Some(metrics) = metrics {
        router = router.merge(super::otlp_metrics::http_router(metrics));
    }
    let outer = move |protected: Router| match cors {
        Some(policy) => protected.layer(axum::middleware::from_fn_with_state(
            policy,
            super::cors::middleware,
        )),
        None => protected,
    };
    listener.serve_wrapped(router, outer, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_bombs_are_refused() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
        let compressed = encoder.finish().unwrap();
        assert!(matches!(
            gunzip_bounded(&compressed, 1000),
            Err(DistributorError::TooLarge { .. })
        ));
        assert_eq!(gunzip_bounded(&compressed, 1 << 20).unwrap().len(), 1 << 20);
        assert!(matches!(
            gunzip_bounded(b"not gzip", 1000),
            Err(DistributorError::BadRequest(_))
        ));
    }
}
