//! Logs in: OTLP logs (gRPC `LogsService/Export` on the OTLP gRPC port, `POST /v1/logs` on the
//! OTLP HTTP port, protobuf or JSON, gzip) and Loki push (`POST /loki/api/v1/push`, JSON or
//! snappy-compressed protobuf `logproto.PushRequest`). Every protocol becomes [`LogRow`]s pushed
//! through [`Distributor::logs`], with the same tenant rules, request limits and status codes
//! as traces; malformed bodies are 400 / INVALID_ARGUMENT naming what was wrong.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde_json::Value;
use tonic::codegen::BoxFuture;

use super::logql::{self, parse_trace_id, MatchOp};
use super::{level_of, otlp_stream_labels, severity_number_of, Label, LogRow};
use crate::distributor::{Distributor, DistributorError};
use crate::ingester::PushError;
use crate::receiver::otlp::gunzip_bounded;

/// gRPC path of the OTLP logs export method.
pub const LOGS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// Text of an OTLP `AnyValue`: strings as they are, other values as JSON.
pub fn any_value_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => hex::encode(bytes),
        Some(_) => any_value_json(value).to_string(),
        None => String::new(),
    }
}

fn any_value_json(value: &AnyValue) -> Value {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => Value::String(text.clone()),
        Some(any_value::Value::BoolValue(flag)) => Value::Bool(*flag),
        Some(any_value::Value::IntValue(number)) => Value::from(*number),
        Some(any_value::Value::DoubleValue(number)) => Value::from(*number),
        Some(any_value::Value::BytesValue(bytes)) => Value::String(hex::encode(bytes)),
        Some(any_value::Value::StringValueStrindex(index)) => Value::from(*index),
        Some(any_value::Value::ArrayValue(array)) => {
            Value::Array(array.values.iter().map(any_value_json).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Value::Object(
            list.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(Value::Null, any_value_json),
                    )
                })
                .collect(),
        ),
        None => Value::Null,
    }
}

fn labels_of(attributes: &[KeyValue]) -> Vec<Label> {
    attributes
        .iter()
        .map(|kv| {
            Label::new(
                kv.key.clone(),
                kv.value.as_ref().map_or_else(String::new, any_value_text),
            )
        })
        .collect()
}

/// The rows of an OTLP export; `now_ns` stands in for missing timestamps. IDs of the wrong
/// length are a bad request, as for spans.
pub fn otlp_rows(request: ExportLogsServiceRequest, now_ns: u64) -> Result<Vec<LogRow>, String> {
    let mut rows = Vec::new();
    for (resource_index, resource_logs) in request.resource_logs.into_iter().enumerate() {
        let resource_attributes = resource_logs
            .resource
            .as_ref()
            .map(|resource| labels_of(&resource.attributes))
            .unwrap_or_default();
        let service_name = resource_attributes
            .iter()
            .find(|label| label.name == "service.name")
            .map_or_else(
                || "unknown_service".to_string(),
                |label| label.value.clone(),
            );
        for scope_logs in resource_logs.scope_logs {
            for record in scope_logs.log_records {
                for (name, id, expected) in [
                    ("trace_id", &record.trace_id, 16),
                    ("span_id", &record.span_id, 8),
                ] {
                    if !id.is_empty() && id.len() != expected {
                        return Err(format!(
                            "resource_logs[{resource_index}]: log record {name} has {} bytes, expected {expected}",
                            id.len()
                        ));
                    }
                }
                let observed = if record.observed_time_unix_nano == 0 {
                    now_ns
                } else {
                    record.observed_time_unix_nano
                };
                let timestamp = if record.time_unix_nano == 0 {
                    observed
                } else {
                    record.time_unix_nano
                };
                let trace_id = if record.trace_id.iter().all(|b| *b == 0) {
                    Vec::new()
                } else {
                    record.trace_id
                };
                let span_id = if record.span_id.iter().all(|b| *b == 0) {
                    Vec::new()
                } else {
                    record.span_id
                };
                let mut row = LogRow {
                    timestamp_ns: timestamp,
                    observed_ns: observed,
                    service_name: service_name.clone(),
                    severity_text: record.severity_text,
                    severity_number: record.severity_number,
                    body: record
                        .body
                        .as_ref()
                        .map_or_else(String::new, any_value_text),
                    trace_id,
                    span_id,
                    attributes: labels_of(&record.attributes),
                    resource_attributes: resource_attributes.clone(),
                    labels: Vec::new(),
                };
                row.labels = otlp_stream_labels(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// Maps the log store's refusal to the distributor's error (and so to HTTP/gRPC codes).
pub fn push_error(error: PushError) -> DistributorError {
    match error {
        PushError::Overloaded { .. } => DistributorError::Overloaded(error.to_string()),
        PushError::TooLarge { bytes, limit, .. } => DistributorError::TooLarge {
            size: usize::try_from(bytes).unwrap_or(usize::MAX),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        PushError::ShuttingDown => DistributorError::Unavailable(error.to_string()),
        other => DistributorError::Internal(other.to_string()),
    }
}

/// Pushes rows through the distributor's log store.
pub async fn push_rows(
    distributor: &Distributor,
    tenant: &str,
    rows: Vec<LogRow>,
) -> Result<(), DistributorError> {
    let store = distributor
        .logs()
        .ok_or_else(|| DistributorError::Unavailable("logs are disabled (logs.enabled)".into()))?;
    store.push(tenant, rows).await.map_err(push_error)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

fn grpc_status(error: &DistributorError) -> tonic::Status {
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

/// HTTP status of a distributor error, as for traces.
pub fn http_status(error: &DistributorError) -> StatusCode {
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

// ---------------------------------------------------------------- OTLP gRPC

/// The unary `LogsService/Export` method over raw bytes (see `receiver::otlp::RawCodec`).
pub struct LogsExportMethod(pub Arc<Distributor>);

impl tonic::server::UnaryService<Bytes> for LogsExportMethod {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let distributor = Arc::clone(&self.0);
        Box::pin(async move {
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
            let export = ExportLogsServiceRequest::decode(body.as_ref()).map_err(|error| {
                tonic::Status::invalid_argument(format!(
                    "invalid ExportLogsServiceRequest protobuf: {error}"
                ))
            })?;
            let rows = otlp_rows(export, now_ns()).map_err(tonic::Status::invalid_argument)?;
            push_rows(&distributor, &tenant, rows)
                .await
                .map_err(|error| grpc_status(&error))?;
            Ok(tonic::Response::new(Bytes::from(
                ExportLogsServiceResponse::default().encode_to_vec(),
            )))
        })
    }
}

/// `opentelemetry.proto.collector.logs.v1.LogsService` on the OTLP gRPC server.
#[derive(Clone)]
pub struct LogsGrpcService(pub Arc<Distributor>);

impl<B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for LogsGrpcService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        let distributor = Arc::clone(&self.0);
        let limit = distributor.max_request_bytes();
        if request.uri().path() != LOGS_EXPORT_PATH {
            return Box::pin(async move {
                Ok(tonic::Status::unimplemented("unknown method").into_http())
            });
        }
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(crate::receiver::otlp::RawCodec)
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            Ok(grpc.unary(LogsExportMethod(distributor), request).await)
        })
    }
}

impl tonic::server::NamedService for LogsGrpcService {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

// ---------------------------------------------------------------- OTLP HTTP

fn otlp_error(json: bool, status: StatusCode, message: String) -> Response {
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            tonic::Code::InvalidArgument
        }
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => {
            tonic::Code::ResourceExhausted
        }
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    } as i32;
    let mut response = if json {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "code": code, "message": message }).to_string(),
        )
            .into_response()
    } else {
        let body = crate::receiver::otlp::RpcStatus { code, message };
        (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body.encode_to_vec(),
        )
            .into_response()
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn content_type(headers: &HeaderMap) -> String {
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

/// Applies `Content-Encoding` (none or gzip), bounded by the request limit.
fn decode_content(
    distributor: &Distributor,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Bytes, DistributorError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => Ok(Bytes::from(gunzip_bounded(
            &body,
            distributor.max_request_bytes(),
        )?)),
        other => Err(DistributorError::BadRequest(format!(
            "unsupported content encoding {other:?}: use gzip or none"
        ))),
    }
}

/// `POST /v1/logs` on the OTLP HTTP port.
pub async fn export_http(
    axum::extract::State(distributor): axum::extract::State<Arc<Distributor>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = match content_type(&headers).as_str() {
        "application/x-protobuf" | "application/protobuf" => false,
        "application/json" => true,
        other => {
            return otlp_error(
                true,
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
    let result = async {
        let header = headers
            .get("x-scope-orgid")
            .and_then(|value| value.to_str().ok());
        let tenant = distributor.tenant(header)?;
        let _permit = distributor.admit(body.len())?;
        let body = decode_content(&distributor, &headers, body)?;
        let request = if json {
            crate::receiver::otlp_json::decode_logs_request(&body)
                .map_err(|error| DistributorError::BadRequest(error.to_string()))?
        } else {
            ExportLogsServiceRequest::decode(body.as_ref()).map_err(|error| {
                DistributorError::BadRequest(format!(
                    "invalid ExportLogsServiceRequest protobuf: {error}"
                ))
            })?
        };
        let rows = otlp_rows(request, now_ns()).map_err(DistributorError::BadRequest)?;
        push_rows(&distributor, &tenant, rows).await
    }
    .await;
    match result {
        Ok(()) if json => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            ExportLogsServiceResponse::default().encode_to_vec(),
        )
            .into_response(),
        Err(error) => otlp_error(json, http_status(&error), error.to_string()),
    }
}

// ---------------------------------------------------------------- Loki push

/// Loki's push protobuf (`logproto.PushRequest`), field numbers from Loki's `push.proto`.
pub mod loki_proto {
    /// `logproto.PushRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }
    /// `logproto.StreamAdapter`: labels in selector syntax and entries.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    /// `logproto.EntryAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
        #[prost(message, repeated, tag = "4")]
        pub parsed: Vec<LabelPairAdapter>,
    }
    /// `logproto.LabelPairAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// A trace or span ID in a line: `traceID=<hex>`, `trace_id=<hex>`, `traceId=<hex>` (also with
/// `:` or quotes, as logfmt and JSON lines write them).
fn id_in_line(line: &str, keys: &[&str]) -> Option<String> {
    for key in keys {
        let mut search = line;
        while let Some(position) = search.find(key) {
            let rest = &search[position + key.len()..];
            let rest = rest.trim_start_matches(['"', '\'']);
            let rest = rest.trim_start();
            if let Some(value) = rest.strip_prefix(['=', ':']) {
                let value = value.trim_start().trim_start_matches(['"', '\'']);
                let hex: String = value
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .collect();
                if !hex.is_empty() {
                    return Some(hex);
                }
            }
            search = &search[position + key.len()..];
        }
    }
    None
}

const TRACE_KEYS: [&str; 4] = ["trace_id", "traceID", "traceId", "traceid"];
const SPAN_KEYS: [&str; 4] = ["span_id", "spanID", "spanId", "spanid"];

/// One Loki entry as a row: stream labels, line, structured metadata.
pub fn loki_row(
    labels: &[Label],
    timestamp_ns: u64,
    line: String,
    metadata: Vec<Label>,
    now_ns: u64,
) -> LogRow {
    let find = |names: &[&str]| {
        names.iter().find_map(|name| {
            metadata
                .iter()
                .chain(labels.iter())
                .find(|label| label.name == *name)
                .map(|label| label.value.clone())
        })
    };
    let trace_hex = find(&TRACE_KEYS).or_else(|| id_in_line(&line, &TRACE_KEYS));
    let trace_id = trace_hex
        .as_deref()
        .and_then(parse_trace_id)
        .map(|id| id.to_vec())
        .unwrap_or_default();
    let span_id = find(&SPAN_KEYS)
        .or_else(|| id_in_line(&line, &SPAN_KEYS))
        .filter(|hex| hex.len() <= 16)
        .and_then(|hex| {
            let mut id = [0u8; 8];
            hex::decode_to_slice(format!("{hex:0>16}"), &mut id).ok()?;
            Some(id.to_vec())
        })
        .unwrap_or_default();
    let service_name = ["service_name", "service", "app", "job"]
        .iter()
        .find_map(|name| labels.iter().find(|label| label.name == *name))
        .map_or_else(
            || "unknown_service".to_string(),
            |label| label.value.clone(),
        );
    let severity_text =
        find(&["level", "severity", "detected_level", "severity_text"]).unwrap_or_default();
    let severity_number = severity_number_of(&severity_text);
    let mut labels = labels.to_vec();
    if !labels.iter().any(|label| label.name == "service_name") {
        labels.push(Label::new("service_name", service_name.clone()));
    }
    labels.sort();
    LogRow {
        timestamp_ns,
        observed_ns: now_ns,
        service_name,
        severity_text,
        severity_number,
        body: line,
        trace_id,
        span_id,
        attributes: metadata,
        resource_attributes: Vec::new(),
        labels,
    }
}

fn stream_labels(text: &str, position: &str) -> Result<Vec<Label>, String> {
    let matchers = logql::parse_selector(text)
        .map_err(|error| format!("{position}: invalid stream labels {text:?}: {error}"))?;
    let mut labels = Vec::new();
    for matcher in matchers {
        if matcher.op != MatchOp::Equal {
            return Err(format!(
                "{position}: stream labels must use `=`, found {text:?}"
            ));
        }
        labels.push(Label::new(matcher.name, matcher.value));
    }
    Ok(labels)
}

/// Rows of a Loki protobuf push (already snappy-decompressed).
pub fn loki_proto_rows(body: &[u8], now_ns: u64) -> Result<Vec<LogRow>, String> {
    let request = loki_proto::PushRequest::decode(body)
        .map_err(|error| format!("invalid logproto.PushRequest protobuf: {error}"))?;
    let mut rows = Vec::new();
    for (index, stream) in request.streams.into_iter().enumerate() {
        let labels = stream_labels(&stream.labels, &format!("streams[{index}]"))?;
        for entry in stream.entries {
            let timestamp = entry.timestamp.map_or(now_ns, |ts| {
                (ts.seconds.max(0) as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.nanos.max(0) as u64)
            });
            let metadata = entry
                .structured_metadata
                .into_iter()
                .map(|pair| Label::new(pair.name, pair.value))
                .collect();
            rows.push(loki_row(&labels, timestamp, entry.line, metadata, now_ns));
        }
    }
    Ok(rows)
}

/// Rows of a Loki JSON push: `{"streams":[{"stream":{…},"values":[["<ns>","line",{…}]]}]}`.
pub fn loki_json_rows(body: &[u8], now_ns: u64) -> Result<Vec<LogRow>, String> {
    let root: Value =
        serde_json::from_slice(body).map_err(|error| format!("invalid JSON push body: {error}"))?;
    let streams = root
        .get("streams")
        .and_then(Value::as_array)
        .ok_or("push body needs a \"streams\" array")?;
    let mut rows = Vec::new();
    for (index, stream) in streams.iter().enumerate() {
        let position = format!("streams[{index}]");
        let labels_value = stream
            .get("stream")
            .or_else(|| stream.get("labels"))
            .ok_or_else(|| format!("{position}: needs a \"stream\" object"))?;
        let mut labels = match labels_value {
            Value::Object(map) => map
                .iter()
                .map(|(name, value)| match value {
                    Value::String(text) => Ok(Label::new(name.clone(), text.clone())),
                    _ => Err(format!(
                        "{position}.stream.{name}: label values must be strings"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Value::String(text) => stream_labels(text, &position)?,
            _ => return Err(format!("{position}.stream: expected an object")),
        };
        labels.sort();
        let values = stream
            .get("values")
            .or_else(|| stream.get("entries"))
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{position}: needs a \"values\" array"))?;
        for (value_index, value) in values.iter().enumerate() {
            let at = format!("{position}.values[{value_index}]");
            let items = value
                .as_array()
                .filter(|items| items.len() == 2 || items.len() == 3)
                .ok_or_else(|| {
                    format!("{at}: expected [\"<unix ns>\", \"<line>\"(, {{metadata}})]")
                })?;
            let timestamp = match &items[0] {
                Value::String(text) => text.parse::<u64>().ok(),
                Value::Number(number) => number.as_u64(),
                _ => None,
            }
            .ok_or_else(|| format!("{at}[0]: expected a Unix nanosecond timestamp string"))?;
            let line = items[1]
                .as_str()
                .ok_or_else(|| format!("{at}[1]: expected the log line as a string"))?
                .to_string();
            let metadata = match items.get(2) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Object(map)) => map
                    .iter()
                    .map(|(name, value)| match value {
                        Value::String(text) => Ok(Label::new(name.clone(), text.clone())),
                        _ => Err(format!(
                            "{at}[2].{name}: structured metadata values must be strings"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(format!("{at}[2]: expected a structured metadata object")),
            };
            rows.push(loki_row(&labels, timestamp, line, metadata, now_ns));
        }
    }
    Ok(rows)
}

/// Decompresses a Loki protobuf push (snappy block format), refusing one that would
/// decompress to more than `limit` bytes before allocating for it.
pub fn loki_snappy_decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, DistributorError> {
    let length = snap::raw::decompress_len(body)
        .map_err(|error| DistributorError::BadRequest(format!("invalid snappy body: {error}")))?;
    if length > limit {
        return Err(DistributorError::TooLarge {
            size: length,
            limit,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| DistributorError::BadRequest(format!("invalid snappy body: {error}")))
}

/// Decodes a Loki push body by content type: JSON (optionally gzip) or snappy protobuf.
pub fn loki_rows(
    distributor: &Distributor,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Vec<LogRow>, DistributorError> {
    let kind = content_type(headers);
    let now = now_ns();
    match kind.as_str() {
        "application/json" => {
            let body = decode_content(distributor, headers, body)?;
            loki_json_rows(&body, now).map_err(DistributorError::BadRequest)
        }
        "" | "application/x-protobuf" | "application/protobuf" => {
            let raw = loki_snappy_decompress(&body, distributor.max_request_bytes())?;
            loki_proto_rows(&raw, now).map_err(DistributorError::BadRequest)
        }
        other => Err(DistributorError::BadRequest(format!(
            "unsupported content type {other:?}: use application/json or application/x-protobuf (snappy)"
        ))),
    }
}

/// `POST /loki/api/v1/push`: 204 on success, plain-text errors as Loki writes them.
pub async fn loki_push(distributor: &Distributor, headers: &HeaderMap, body: Bytes) -> Response {
    let result = async {
        let header = headers
            .get("x-scope-orgid")
            .and_then(|value| value.to_str().ok());
        let tenant = distributor.tenant(header)?;
        let _permit = distributor.admit(body.len())?;
        let rows = loki_rows(distributor, headers, body)?;
        push_rows(distributor, &tenant, rows).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            let status = http_status(&error);
            if status.is_server_error() {
                tracing::warn!(%error, "loki push failed");
            }
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{error}\n"),
            )
                .into_response()
        }
    }
}

/// Level label for Loki rows whose stream carries none, used by the query API.
pub fn display_level(row: &LogRow) -> String {
    level_of(&row.severity_text, row.severity_number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    #[test]
    fn otlp_records_become_rows_with_loki_labels() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![crate::model::string_attribute("service.name", "payments")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        time_unix_nano: 5,
                        severity_text: "ERROR".into(),
                        severity_number: 17,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("declined".into())),
                        }),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        attributes: vec![crate::model::int_attribute("retry", 2)],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let rows = otlp_rows(request.clone(), 99).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.timestamp_ns, row.observed_ns), (5, 99));
        assert_eq!(row.body, "declined");
        assert_eq!(row.label("service_name"), Some("payments"));
        assert_eq!(row.label("level"), Some("error"));
        assert_eq!(row.attributes, vec![Label::new("retry", "2")]);
        let mut bad = request;
        bad.resource_logs[0].scope_logs[0].log_records[0].trace_id = vec![1; 5];
        assert!(otlp_rows(bad, 0).unwrap_err().contains("trace_id"));
    }

    #[test]
    fn loki_json_push_with_trace_ids() {
        let body = br#"{"streams":[{"stream":{"service_name":"api","level":"warn"},"values":[
            ["1700000000000000001","GET /x traceID=0af7651916cd43dd8448eb211c80319c done"],
            ["1700000000000000002","plain",{"trace_id":"00000000000000000000000000000abc","span_id":"b7ad6b7169203331"}]]}]}"#;
        let rows = loki_json_rows(body, 7).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            hex::encode(&rows[0].trace_id),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(rows[0].severity_number, 13);
        assert_eq!(
            hex::encode(&rows[1].trace_id),
            "00000000000000000000000000000abc"
        );
        assert_eq!(hex::encode(&rows[1].span_id), "b7ad6b7169203331");
        assert_eq!(rows[1].attributes.len(), 2);
        for bad in [
            &b"{"[..],
            br#"{"streams":{}}"#,
            br#"{"streams":[{"values":[]}]}"#,
            br#"{"streams":[{"stream":{"a":"b"},"values":[["x","line"]]}]}"#,
            br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
            br#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#,
        ] {
            assert!(
                loki_json_rows(bad, 0).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn loki_protobuf_push() {
        let request = loki_proto::PushRequest {
            streams: vec![loki_proto::StreamAdapter {
                labels: r#"{job="checkout", level="error"}"#.into(),
                entries: vec![loki_proto::EntryAdapter {
                    timestamp: Some(loki_proto::Timestamp {
                        seconds: 2,
                        nanos: 3,
                    }),
                    line: "trace_id=abc failed".into(),
                    ..Default::default()
                }],
                hash: 0,
            }],
        };
        let rows = loki_proto_rows(&request.encode_to_vec(), 0).unwrap();
        assert_eq!(rows[0].timestamp_ns, 2_000_000_003);
        assert_eq!(rows[0].service_name, "checkout");
        assert_eq!(rows[0].label("service_name"), Some("checkout"));
        assert_eq!(
            hex::encode(&rows[0].trace_id),
            "00000000000000000000000000000abc"
        );
        assert!(loki_proto_rows(b"\xff\xff\xff", 0).is_err());
        let mut bad = request;
        bad.streams[0].labels = "job=x".into();
        assert!(loki_proto_rows(&bad.encode_to_vec(), 0).is_err());
    }
}
