//! The OTLP trace servers (the gRPC `TraceService/Export` method and `POST /v1/traces`), and
//! the two OTLP ports that serve them with the metrics and logs receivers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use prost::Message;
use tonic::codegen::BoxFuture;

use super::decode::{decode, json_response_of, response_of};
use crate::distributor::{Distributor, DistributorError};
use crate::receiver::cors::CorsPolicy;
use crate::receiver::ingest::{
    self, decompress_request, ingest_spans, Encodings, GrpcIngest, OtlpEncoding, UnaryIngest,
};
use crate::receiver::listener::Startup;
use crate::receiver::otlp_metrics::MetricsReceiver;
use crate::receiver::{otlp_logs, otlp_metrics};

/// `opentelemetry.proto.collector.trace.v1.TraceService/Export` over raw bytes.
#[derive(Clone)]
pub struct TraceExport(pub Arc<Distributor>);

impl UnaryIngest for TraceExport {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const METHOD: &'static str = "Export";

    fn max_request_bytes(&self) -> usize {
        self.0.max_request_bytes()
    }

    fn call(&self, tenant: Option<String>, message: Bytes) -> BoxFuture<Bytes, DistributorError> {
        let distributor = Arc::clone(&self.0);
        Box::pin(async move {
            let outcome = ingest_spans(&distributor, tenant.as_deref(), message, |body| {
                decode(OtlpEncoding::Protobuf, &body)
            })
            .await?;
            Ok(Bytes::from(response_of(&outcome).encode_to_vec()))
        })
    }
}

/// The OTLP trace service over gRPC.
pub fn grpc_service(distributor: Arc<Distributor>) -> GrpcIngest<TraceExport> {
    GrpcIngest(TraceExport(distributor))
}

/// The OTLP/HTTP trace route: `POST /v1/traces`.
pub fn http_router(distributor: Arc<Distributor>) -> Router {
    // The body limit is checked again after decompression; this one bounds the wire bytes.
    let limit = distributor.max_request_bytes();
    ingest::route("/v1/traces", export_http, distributor, limit)
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
    let pushed = ingest_spans(
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
    match pushed {
        Ok(outcome) => ingest::otlp_ok(encoding, response_of(&outcome).encode_to_vec(), || {
            json_response_of(&outcome)
        }),
        Err(error) => ingest::otlp_error(encoding, &error, "traces"),
    }
}

/// Starts OTLP/gRPC and OTLP/HTTP when enabled, each serving traces, logs and, with `metrics`,
/// metrics. OTLP/HTTP answers CORS preflights (before authentication: they carry no
/// credentials) and marks answers to allowed origins.
pub async fn start(
    config: &super::OtlpConfig,
    metrics: Option<MetricsReceiver>,
    startup: &mut Startup<'_>,
) -> anyhow::Result<()> {
    let protocols = &config.protocols;
    let distributor = startup.distributor;
    if protocols.grpc.enabled {
        let listener = startup.bind("OTLP/gRPC", &protocols.grpc.endpoint).await?;
        let mut routes = tonic::service::Routes::new(grpc_service(Arc::clone(distributor)))
            .add_service(otlp_logs::server::grpc_service(Arc::clone(distributor)));
        if let Some(metrics) = metrics.clone() {
            routes = routes.add_service(otlp_metrics::server::grpc_service(metrics));
        }
        startup.serve(listener, routes.into_axum_router());
    }
    if protocols.http.enabled {
        let listener = startup.bind("OTLP/HTTP", &protocols.http.endpoint).await?;
        let mut router = http_router(Arc::clone(distributor))
            .merge(otlp_logs::server::http_router(Arc::clone(distributor)));
        if let Some(metrics) = metrics {
            router = router.merge(otlp_metrics::server::http_router(metrics));
        }
        let cors = CorsPolicy::new(&protocols.http.cors);
        let outer = move |protected: Router| match cors {
            Some(policy) => protected.layer(axum::middleware::from_fn_with_state(
                policy,
                crate::receiver::cors::middleware,
            )),
            None => protected,
        };
        let stop = startup.stop.clone();
        startup.tasks.spawn(async move {
            listener
                .serve_wrapped(router, outer, async move { stop.cancelled().await })
                .await
        });
    }
    Ok(())
}
