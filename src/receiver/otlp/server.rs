//! The OTLP trace servers (the gRPC `TraceService/Export` method and `POST /v1/traces`), and
//! the two OTLP ports that serve them with the metrics and logs receivers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::Router;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use tonic::codegen::BoxFuture;

use super::decode::{decode, json_response_of, response_of};
use crate::distributor::{Distributor, DistributorError, PushOutcome};
use crate::receiver::cors::CorsPolicy;
use crate::receiver::ingest::{
    otlp_grpc_service, otlp_http_router, GrpcIngest, OtlpEncoding, OtlpGrpc, OtlpSignal,
};
use crate::receiver::listener::Startup;
use crate::receiver::otlp_metrics::MetricsReceiver;
use crate::receiver::{otlp_logs, otlp_metrics};

/// The OTLP trace signal: spans go to [`Distributor::push`].
#[derive(Clone)]
pub struct Traces(pub Arc<Distributor>);

impl OtlpSignal for Traces {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/v1/traces";
    type Decoded = Vec<ResourceSpans>;
    type Outcome = PushOutcome;

    fn distributor(&self) -> &Distributor {
        &self.0
    }

    fn decode(
        &self,
        encoding: OtlpEncoding,
        body: Bytes,
    ) -> Result<Vec<ResourceSpans>, DistributorError> {
        decode(encoding, &body)
    }

    fn push(
        &self,
        tenant: String,
        resource_spans: Vec<ResourceSpans>,
    ) -> BoxFuture<PushOutcome, DistributorError> {
        let distributor = Arc::clone(&self.0);
        Box::pin(async move { distributor.push(&tenant, resource_spans).await })
    }

    fn protobuf_answer(outcome: &PushOutcome) -> Vec<u8> {
        response_of(outcome).encode_to_vec()
    }

    fn json_answer(outcome: &PushOutcome) -> Vec<u8> {
        json_response_of(outcome)
    }
}

/// The OTLP trace service over gRPC.
pub fn grpc_service(distributor: Arc<Distributor>) -> GrpcIngest<OtlpGrpc<Traces>> {
    otlp_grpc_service(Traces(distributor))
}

/// The OTLP/HTTP trace route: `POST /v1/traces`.
pub fn http_router(distributor: Arc<Distributor>) -> Router {
    otlp_http_router(Traces(distributor))
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
