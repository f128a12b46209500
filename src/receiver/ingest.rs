//! What every receiver shares: one write path ([`ingest`]: tenant → admit → decode → push),
//! the body negotiation of HTTP receivers (content type, content encoding, bounded
//! decompression), their error answers, and one raw-bytes unary gRPC service
//! ([`GrpcIngest`]) that every gRPC receiver mounts with its own [`UnaryIngest`] method.
//!
//! The statuses of a refusal are [`DistributorError::http_status`] and
//! [`DistributorError::grpc_status`]; nothing here maps them again.

use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};

use crate::distributor::{Distributor, DistributorError};
use crate::proto::RpcStatus;
use crate::telemetry::stage::Stage;

// ---------------------------------------------------------------- the write path

/// The one write path: resolves the tenant from `tenant_header`, reserves the wire bytes of
/// the in-flight budget (refusing at once when it is spent), decodes (decompression included)
/// and hands the result to `push`, holding the reservation until `push` is done.
pub async fn ingest<Decoded, Outcome, Pushed>(
    distributor: &Distributor,
    tenant_header: Option<&str>,
    body: Bytes,
    decode: impl FnOnce(Bytes) -> Result<Decoded, DistributorError>,
    push: impl FnOnce(String, Decoded) -> Pushed,
) -> Result<Outcome, DistributorError>
where
    Pushed: Future<Output = Result<Outcome, DistributorError>>,
{
    let tenant = distributor.tenant(tenant_header)?;
    let _permit = distributor.admit(body.len())?;
    let decoded = Stage::Decode.run(|| decode(body))?;
    Stage::Distributor.within(push(tenant, decoded)).await
}

/// [`ingest`] for spans: decoded OTLP `ResourceSpans` go to [`Distributor::push`].
pub async fn ingest_spans(
    distributor: &Distributor,
    tenant_header: Option<&str>,
    body: Bytes,
    decode: impl FnOnce(
        Bytes,
    ) -> Result<
        Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>,
        DistributorError,
    >,
) -> Result<crate::distributor::PushOutcome, DistributorError> {
    ingest(
        distributor,
        tenant_header,
        body,
        decode,
        |tenant, resource_spans| async move { distributor.push(&tenant, resource_spans).await },
    )
    .await
}

/// Now in Unix nanoseconds: what stands in for a missing log timestamp.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

// ---------------------------------------------------------------- HTTP bodies

/// The media type of `Content-Type`, lowercased, without parameters.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The `Content-Encoding` header, lowercased.
pub fn content_encoding(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Which `Content-Encoding`s a receiver accepts; each protocol keeps what its clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encodings {
    /// None or gzip (OTLP, Loki JSON).
    Gzip,
    /// None, gzip or deflate (zlib-wrapped or raw), as Zipkin and Jaeger clients send.
    GzipOrDeflate,
}

/// Undoes `encoding` (a `Content-Encoding` value) if `accepted`, refusing output larger than
/// `limit` so a small bomb cannot fill memory.
pub fn decompress_bounded(
    encoding: &str,
    accepted: Encodings,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, DistributorError> {
    let reader: Box<dyn Read + '_> = match (encoding, accepted) {
        ("" | "identity", _) => return Ok(body),
        ("gzip" | "x-gzip", _) => Box::new(flate2::read::MultiGzDecoder::new(body.as_ref())),
        // HTTP's "deflate" is zlib-wrapped, but some clients send raw deflate: sniff the header.
        ("deflate" | "zlib", Encodings::GzipOrDeflate) => {
            let zlib_header = body.len() >= 2
                && body[0] & 0x0f == 8
                && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
            if zlib_header {
                Box::new(flate2::read::ZlibDecoder::new(body.as_ref()))
            } else {
                Box::new(flate2::read::DeflateDecoder::new(body.as_ref()))
            }
        }
        (other, Encodings::Gzip) => {
            return Err(DistributorError::BadRequest(format!(
                "unsupported content encoding {other:?}: use gzip or none"
            )))
        }
        (other, Encodings::GzipOrDeflate) => {
            return Err(DistributorError::BadRequest(format!(
                "unsupported content encoding {other:?}: use gzip, deflate or none"
            )))
        }
    };
    let name = match accepted {
        Encodings::Gzip => "gzip",
        Encodings::GzipOrDeflate => encoding,
    };
    let mut output = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut output)
        .map_err(|error| DistributorError::BadRequest(format!("invalid {name} body: {error}")))?;
    if output.len() > limit {
        return Err(DistributorError::TooLarge {
            size: output.len(),
            limit,
        });
    }
    Ok(Bytes::from(output))
}

/// Undoes the request's `Content-Encoding` (see [`decompress_bounded`]).
pub fn decompress_request(
    headers: &HeaderMap,
    accepted: Encodings,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, DistributorError> {
    decompress_bounded(&content_encoding(headers), accepted, body, limit)
}

/// A router answering `path` with `handler` for every method (so that the handler gives the
/// receiver's own 405), bodies bounded by `limit` wire bytes before they are buffered.
pub fn route<Handler, Extracted, State>(
    path: &str,
    handler: Handler,
    state: State,
    limit: usize,
) -> axum::Router
where
    Handler: axum::handler::Handler<Extracted, State>,
    Extracted: 'static,
    State: Clone + Send + Sync + 'static,
{
    axum::Router::new()
        .route(path, axum::routing::any(handler))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// 405 for anything but `POST`, as Tempo's receivers answer.
pub fn post_only(method: &Method) -> Option<Response> {
    (*method != Method::POST).then(|| {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "405 method not allowed, supported: [POST]",
        )
            .into_response()
    })
}

/// A refusal as a plain-text answer (Zipkin, Jaeger), logged when it is the server's fault.
pub fn text_error(error: &DistributorError, receiver: &'static str) -> Response {
    let status = error.http_status();
    if status.is_server_error() {
        tracing::warn!(%error, receiver, "push failed");
    }
    (status, error.to_string()).into_response()
}

/// A span push answered as Zipkin and Jaeger answer: 202 Accepted, or the refusal in plain
/// text. `decode` gets the body with its `Content-Encoding` (gzip or deflate) undone.
pub async fn accept_spans(
    distributor: &Distributor,
    headers: &HeaderMap,
    body: Bytes,
    receiver: &'static str,
    decode: impl FnOnce(
        Bytes,
    ) -> Result<
        Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>,
        DistributorError,
    >,
) -> Response {
    let limit = distributor.max_request_bytes();
    let pushed = ingest_spans(distributor, crate::tenant::org_id(headers), body, |body| {
        decode(decompress_request(
            headers,
            Encodings::GzipOrDeflate,
            body,
            limit,
        )?)
    })
    .await;
    match pushed {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(error) => text_error(&error, receiver),
    }
}

/// Decodes a span receiver's body (its `Content-Encoding` undone) by its media type.
pub type DecodeSpans =
    fn(
        media_type: &str,
        body: &[u8],
    ) -> Result<Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>, DistributorError>;

/// Which requests a [`spans_router`] answers.
#[derive(Clone, Copy, Debug)]
pub enum SpanPaths {
    /// Those to this path.
    Exactly(&'static str),
    /// Those to any path the other routers of its listener leave (the router's fallback).
    AnyOther,
}

#[derive(Clone)]
struct SpanRoute {
    distributor: std::sync::Arc<Distributor>,
    receiver: &'static str,
    decode: DecodeSpans,
}

/// A span receiver's HTTP router answered by [`accept_spans`]: `POST` only, bodies bounded by
/// the request limit on the wire, decoded by `decode`.
pub fn spans_router(
    paths: SpanPaths,
    receiver: &'static str,
    distributor: std::sync::Arc<Distributor>,
    decode: DecodeSpans,
) -> axum::Router {
    let limit = distributor.max_request_bytes();
    let router = match paths {
        SpanPaths::Exactly(path) => axum::Router::new().route(path, axum::routing::any(post_spans)),
        SpanPaths::AnyOther => axum::Router::new().fallback(post_spans),
    };
    router
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(SpanRoute {
            distributor,
            receiver,
            decode,
        })
}

async fn post_spans(
    axum::extract::State(route): axum::extract::State<SpanRoute>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = post_only(&method) {
        return refused;
    }
    let media_type = media_type(&headers);
    accept_spans(&route.distributor, &headers, body, route.receiver, |body| {
        (route.decode)(&media_type, &body)
    })
    .await
}

// ---------------------------------------------------------------- OTLP/HTTP

/// The body encoding of an OTLP/HTTP request (traces, metrics, logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpEncoding {
    Protobuf,
    Json,
}

/// An OTLP/HTTP request refused before its body is read, with its answer.
#[derive(Debug)]
pub struct Refusal(Box<Response>);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The encoding of an OTLP/HTTP export (traces, metrics, logs), or its refusal: 415 (in
/// OTLP/JSON) for a content type OTLP does not take, then 405 for a method other than POST.
pub fn otlp_export_encoding(method: &Method, headers: &HeaderMap) -> Result<OtlpEncoding, Refusal> {
    let encoding = match media_type(headers).as_str() {
        "application/x-protobuf" | "application/protobuf" => OtlpEncoding::Protobuf,
        "application/json" => OtlpEncoding::Json,
        other => {
            return Err(Refusal(Box::new(otlp_error_response(
                OtlpEncoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content type {other:?}: use application/x-protobuf or application/json"),
            ))))
        }
    };
    match post_only(method) {
        Some(refused) => Err(Refusal(Box::new(refused))),
        None => Ok(encoding),
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

/// An OTLP/HTTP error: a `google.rpc.Status` body in the request's encoding, `Retry-After`
/// on 429 and 503.
pub fn otlp_error_response(
    encoding: OtlpEncoding,
    status: StatusCode,
    message: String,
) -> Response {
    let body = RpcStatus {
        code: rpc_code_of(status),
        message,
    };
    let mut response = match encoding {
        OtlpEncoding::Protobuf => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )],
            body.encode_to_vec(),
        )
            .into_response(),
        OtlpEncoding::Json => (
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

/// An OTLP/HTTP refusal, logged when it is the server's fault.
pub fn otlp_error(
    encoding: OtlpEncoding,
    error: &DistributorError,
    signal: &'static str,
) -> Response {
    let status = error.http_status();
    if status.is_server_error() {
        tracing::warn!(%error, signal, "otlp/http export failed");
    }
    otlp_error_response(encoding, status, error.to_string())
}

/// An OTLP/HTTP success: the export response in the request's encoding.
pub fn otlp_ok(
    encoding: OtlpEncoding,
    protobuf: Vec<u8>,
    json: impl FnOnce() -> Vec<u8>,
) -> Response {
    let (content_type, bytes) = match encoding {
        OtlpEncoding::Protobuf => ("application/x-protobuf", protobuf),
        OtlpEncoding::Json => ("application/json", json()),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        bytes,
    )
        .into_response()
}

// ---------------------------------------------------------------- OTLP signals

/// One OTLP signal (traces, metrics, logs): how its export body is decoded and pushed, and its
/// answer in each encoding. [`OtlpGrpc`] serves it over gRPC, [`otlp_http_router`] over HTTP.
pub trait OtlpSignal: Clone + Send + Sync + 'static {
    /// The gRPC service, e.g. `opentelemetry.proto.collector.trace.v1.TraceService`.
    const SERVICE: &'static str;
    /// The OTLP/HTTP path, `/v1/` and the signal's name (`traces`, `metrics`, `logs`).
    const PATH: &'static str;
    /// What decoding hands to [`OtlpSignal::push`].
    type Decoded: Send + 'static;
    /// What a push hands to the answer.
    type Outcome: Send + 'static;

    /// The distributor whose tenant rules and limits apply.
    fn distributor(&self) -> &Distributor;
    /// Decodes a body (already decompressed) in `encoding`.
    fn decode(
        &self,
        encoding: OtlpEncoding,
        body: Bytes,
    ) -> Result<Self::Decoded, DistributorError>;
    /// Hands what was decoded on, under `tenant`.
    fn push(
        &self,
        tenant: String,
        decoded: Self::Decoded,
    ) -> BoxFuture<Self::Outcome, DistributorError>;
    /// The export response in protobuf.
    fn protobuf_answer(outcome: &Self::Outcome) -> Vec<u8>;
    /// The export response in OTLP/JSON.
    fn json_answer(outcome: &Self::Outcome) -> Vec<u8>;
}

/// One export of `signal` through [`ingest`]: `content_encoding` (gzip or none) is undone in
/// the decode stage, bounded by the request limit.
async fn export_signal<Signal: OtlpSignal>(
    signal: &Signal,
    tenant_header: Option<&str>,
    body: Bytes,
    encoding: OtlpEncoding,
    content_encoding: &str,
) -> Result<Signal::Outcome, DistributorError> {
    let distributor = signal.distributor();
    let limit = distributor.max_request_bytes();
    ingest(
        distributor,
        tenant_header,
        body,
        |body| {
            let inflated = decompress_bounded(content_encoding, Encodings::Gzip, body, limit)?;
            signal.decode(encoding, inflated)
        },
        |tenant, decoded| signal.push(tenant, decoded),
    )
    .await
}

/// An OTLP signal's gRPC `Export` method (tonic has already undone gRPC compression).
#[derive(Clone)]
pub struct OtlpGrpc<Signal>(pub Signal);

impl<Signal: OtlpSignal> UnaryIngest for OtlpGrpc<Signal> {
    const SERVICE: &'static str = Signal::SERVICE;
    const METHOD: &'static str = "Export";

    fn max_request_bytes(&self) -> usize {
        self.0.distributor().max_request_bytes()
    }

    fn call(&self, tenant: Option<String>, message: Bytes) -> BoxFuture<Bytes, DistributorError> {
        let signal = self.0.clone();
        Box::pin(async move {
            let outcome = export_signal(
                &signal,
                tenant.as_deref(),
                message,
                OtlpEncoding::Protobuf,
                "",
            )
            .await?;
            Ok(Bytes::from(Signal::protobuf_answer(&outcome)))
        })
    }
}

/// An OTLP signal's gRPC service.
pub fn otlp_grpc_service<Signal: OtlpSignal>(signal: Signal) -> GrpcIngest<OtlpGrpc<Signal>> {
    GrpcIngest(OtlpGrpc(signal))
}

/// An OTLP signal's HTTP route, `POST Signal::PATH`. The body limit bounds the wire bytes; it
/// is checked again after decompression.
pub fn otlp_http_router<Signal: OtlpSignal>(signal: Signal) -> axum::Router {
    let limit = signal.distributor().max_request_bytes();
    route(Signal::PATH, otlp_export_http::<Signal>, signal, limit)
}

async fn otlp_export_http<Signal: OtlpSignal>(
    axum::extract::State(signal): axum::extract::State<Signal>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = match otlp_export_encoding(&method, &headers) {
        Ok(encoding) => encoding,
        Err(refused) => return refused.into_response(),
    };
    let exported = export_signal(
        &signal,
        crate::tenant::org_id(&headers),
        body,
        encoding,
        &content_encoding(&headers),
    )
    .await;
    match exported {
        Ok(outcome) => otlp_ok(encoding, Signal::protobuf_answer(&outcome), || {
            Signal::json_answer(&outcome)
        }),
        Err(error) => otlp_error(encoding, &error, Signal::PATH.trim_start_matches("/v1/")),
    }
}

// ---------------------------------------------------------------- gRPC

/// A codec that hands the raw message bytes to the service, so decoding errors are ours to
/// report as INVALID_ARGUMENT (the generated codec would report them as INTERNAL).
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

/// One unary gRPC method over raw bytes: what a gRPC receiver writes.
pub trait UnaryIngest: Clone + Send + Sync + 'static {
    /// The full gRPC service name, e.g. `opentelemetry.proto.collector.trace.v1.TraceService`.
    const SERVICE: &'static str;
    /// The method's name within the service, e.g. `Export`.
    const METHOD: &'static str;
    /// Whether answers are gzip-compressed when the client accepts it.
    const SEND_GZIP: bool = true;

    /// Largest request message accepted (`distributor.max_request_bytes`).
    fn max_request_bytes(&self) -> usize;

    /// Handles one request: its `x-scope-orgid` metadata and message bytes; the answer's bytes.
    fn call(
        &self,
        tenant_header: Option<String>,
        message: Bytes,
    ) -> BoxFuture<Bytes, DistributorError>;
}

/// A tonic service serving one [`UnaryIngest`] method (gzip accepted); other paths are
/// UNIMPLEMENTED.
#[derive(Clone)]
pub struct GrpcIngest<Method>(pub Method);

struct UnaryCall<Method>(Method);

impl<M: UnaryIngest> tonic::server::UnaryService<Bytes> for UnaryCall<M> {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let method = self.0.clone();
        Box::pin(async move {
            let header = crate::tenant::grpc_org_id(request.metadata()).map(str::to_string);
            let answer = method.call(header, request.into_inner()).await?;
            Ok(tonic::Response::new(answer))
        })
    }
}

impl<M, B> Service<http::Request<B>> for GrpcIngest<M>
where
    M: UnaryIngest,
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
        let method = self.0.clone();
        let known = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(M::SERVICE))
            .and_then(|path| path.strip_prefix('/'))
            == Some(M::METHOD);
        if !known {
            return Box::pin(async move {
                Ok(tonic::Status::unimplemented("unknown method").into_http())
            });
        }
        let limit = method.max_request_bytes();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            if M::SEND_GZIP {
                grpc = grpc.send_compressed(CompressionEncoding::Gzip);
            }
            Ok(grpc.unary(UnaryCall(method), request).await)
        })
    }
}

impl<M: UnaryIngest> tonic::server::NamedService for GrpcIngest<M> {
    const NAME: &'static str = M::SERVICE;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_bombs_are_refused() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
        let compressed = Bytes::from(encoder.finish().unwrap());
        assert!(matches!(
            decompress_bounded("gzip", Encodings::Gzip, compressed.clone(), 1000),
            Err(DistributorError::TooLarge { .. })
        ));
        assert_eq!(
            decompress_bounded("gzip", Encodings::Gzip, compressed, 1 << 20)
                .unwrap()
                .len(),
            1 << 20
        );
        assert!(matches!(
            decompress_bounded(
                "gzip",
                Encodings::Gzip,
                Bytes::from_static(b"not gzip"),
                1000
            ),
            Err(DistributorError::BadRequest(_))
        ));
    }

    #[test]
    fn each_receiver_keeps_its_encodings_and_texts() {
        let refused = decompress_bounded("br", Encodings::Gzip, Bytes::new(), 10).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "unsupported content encoding \"br\": use gzip or none"
        );
        assert!(decompress_bounded("deflate", Encodings::Gzip, Bytes::new(), 10).is_err());
        let refused =
            decompress_bounded("br", Encodings::GzipOrDeflate, Bytes::new(), 10).unwrap_err();
        assert!(refused.to_string().ends_with("use gzip, deflate or none"));
    }

    #[test]
    fn deflate_in_both_framings_and_bombs() {
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(b"hello").unwrap();
        let zlib = zlib.finish().unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"hello").unwrap();
        let raw = raw.finish().unwrap();
        for body in [zlib, raw] {
            let output =
                decompress_bounded("deflate", Encodings::GzipOrDeflate, body.into(), 100).unwrap();
            assert_eq!(output.as_ref(), b"hello");
        }
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&[0u8; 100_000]).unwrap();
        assert!(matches!(
            decompress_bounded(
                "gzip",
                Encodings::GzipOrDeflate,
                bomb.finish().unwrap().into(),
                1000
            ),
            Err(DistributorError::TooLarge { .. })
        ));
        assert!(matches!(
            decompress_bounded("br", Encodings::GzipOrDeflate, Bytes::new(), 10),
            Err(DistributorError::BadRequest(_))
        ));
    }
}
