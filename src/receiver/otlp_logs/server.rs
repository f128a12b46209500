//! The OTLP logs servers: the gRPC `LogsService/Export` method and `POST /v1/logs`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use tonic::codegen::BoxFuture;

use super::decode::decode;
use crate::distributor::{Distributor, DistributorError};
use crate::receiver::ingest::{
    self, decompress_request, ingest, Encodings, GrpcIngest, OtlpEncoding, UnaryIngest,
};

/// `opentelemetry.proto.collector.logs.v1.LogsService/Export` over raw bytes.
#[derive(Clone)]
pub struct LogsExport(pub Arc<Distributor>);

impl UnaryIngest for LogsExport {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const METHOD: &'static str = "Export";

    fn max_request_bytes(&self) -> usize {
        self.0.max_request_bytes()
    }

    fn call(&self, tenant: Option<String>, message: Bytes) -> BoxFuture<Bytes, DistributorError> {
        let distributor = Arc::clone(&self.0);
        Box::pin(async move {
            export(&distributor, tenant.as_deref(), message, |body| {
                decode(OtlpEncoding::Protobuf, &body)
            })
            .await?;
            Ok(Bytes::from(
                ExportLogsServiceResponse::default().encode_to_vec(),
            ))
        })
    }
}

async fn export(
    distributor: &Distributor,
    tenant: Option<&str>,
    body: Bytes,
    decode: impl FnOnce(Bytes) -> Result<Vec<crate::logs::LogRow>, DistributorError>,
) -> Result<(), DistributorError> {
    ingest(
        distributor,
        tenant,
        body,
        decode,
        |tenant, rows| async move { distributor.push_logs(&tenant, rows).await },
    )
    .await
}

/// The OTLP logs service over gRPC.
pub fn grpc_service(distributor: Arc<Distributor>) -> GrpcIngest<LogsExport> {
    GrpcIngest(LogsExport(distributor))
}

/// The OTLP/HTTP logs route: `POST /v1/logs`.
pub fn http_router(distributor: Arc<Distributor>) -> Router {
    let limit = distributor.max_request_bytes();
    ingest::route("/v1/logs", export_http, distributor, limit)
}

async fn export_http(
    State(distributor): State<Arc<Distributor>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = match ingest::otlp_export_encoding(&method, &headers) {
        Ok(encoding) => encoding,
        Err(refused) => return refused.into_response(),
    };
    let limit = distributor.max_request_bytes();
    let exported = export(
        &distributor,
        crate::tenant::org_id(&headers),
        body,
        |body| {
            decode(
                encoding,
                &decompress_request(&headers, Encodings::Gzip, body, limit)?,
            )
        },
    )
    .await;
    match exported {
        Ok(()) => ingest::otlp_ok(
            encoding,
            ExportLogsServiceResponse::default().encode_to_vec(),
            || b"{}".to_vec(),
        ),
        Err(error) => ingest::otlp_error(encoding, &error, "logs"),
    }
}
