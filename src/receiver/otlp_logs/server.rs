//! The OTLP logs signal: the gRPC `LogsService/Export` method and `POST /v1/logs`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use tonic::codegen::BoxFuture;

use super::decode::decode;
use crate::distributor::{Distributor, DistributorError};
use crate::logs::LogRow;
use crate::receiver::ingest::{
    otlp_grpc_service, otlp_http_router, GrpcIngest, OtlpEncoding, OtlpGrpc, OtlpSignal,
};

/// The OTLP logs signal: records go to [`Distributor::push_logs`] as [`LogRow`]s.
#[derive(Clone)]
pub struct Logs(pub Arc<Distributor>);

impl OtlpSignal for Logs {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/v1/logs";
    type Decoded = Vec<LogRow>;
    type Outcome = ();

    fn distributor(&self) -> &Distributor {
        &self.0
    }

    fn decode(&self, encoding: OtlpEncoding, body: Bytes) -> Result<Vec<LogRow>, DistributorError> {
        decode(encoding, &body)
    }

    fn push(&self, tenant: String, rows: Vec<LogRow>) -> BoxFuture<(), DistributorError> {
        let distributor = Arc::clone(&self.0);
        Box::pin(async move { distributor.push_logs(&tenant, rows).await })
    }

    fn protobuf_answer(_: &()) -> Vec<u8> {
        ExportLogsServiceResponse::default().encode_to_vec()
    }

    fn json_answer(_: &()) -> Vec<u8> {
        b"{}".to_vec()
    }
}

/// The OTLP logs service over gRPC.
pub fn grpc_service(distributor: Arc<Distributor>) -> GrpcIngest<OtlpGrpc<Logs>> {
    otlp_grpc_service(Logs(distributor))
}

/// The OTLP/HTTP logs route: `POST /v1/logs`.
pub fn http_router(distributor: Arc<Distributor>) -> Router {
    otlp_http_router(Logs(distributor))
}
