//! Receivers: one folder per protocol, each with the same anatomy: `mod.rs` (what it is and
//! its config section), `decode.rs` (wire bytes to OTLP `ResourceSpans` or log rows, with a
//! clear error per bad input) and `server.rs` (its routes and gRPC methods, and `start`). They
//! share [`ingest`] (tenant → admit → decode → push, body negotiation, the raw-bytes gRPC
//! service) and [`listener`]; refusals map to statuses in one place,
//! [`crate::distributor::DistributorError`].
//!
//! Adding a receiver is one folder here and one line in [`start_all`] (and its config field in
//! [`ReceiversConfig`], when it has one); a receiver that joins another's port adds its routes
//! with [`Startup::share`] (Zipkin v1 on the Zipkin port).

pub mod cors;
pub mod ingest;
pub mod jaeger;
pub mod listener;
pub mod loki;
pub mod otlp;
pub mod otlp_logs;
pub mod otlp_metrics;
pub mod translate;
pub mod zipkin;
pub mod zipkin_v1;

#[cfg(test)]
pub(crate) mod fuzz_props;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use listener::Startup;

/// The `distributor.receivers` section: which protocols listen, and where.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiversConfig {
    /// OpenTelemetry's OTLP over gRPC and HTTP.
    pub otlp: otlp::OtlpConfig,
    /// Zipkin v2 over HTTP; off unless enabled, as in Tempo.
    pub zipkin: zipkin::ZipkinConfig,
    /// Jaeger thrift over HTTP, gRPC and UDP; each off unless enabled, as in Tempo.
    pub jaeger: jaeger::JaegerConfig,
}

/// Receivers' state that outlives their servers (counters shown on `/metrics`).
#[derive(Default)]
pub struct ReceiverStats {
    /// The Jaeger agent's UDP port.
    pub jaeger_udp: Arc<jaeger::server::UdpStats>,
}

/// Starts every enabled receiver in `startup.tasks`: the registry of receivers.
/// `metrics` is the OTLP metrics receiver, when `metrics_generator.otlp_metrics.enabled`.
pub async fn start_all(
    config: &ReceiversConfig,
    metrics: Option<otlp_metrics::MetricsReceiver>,
    stats: &ReceiverStats,
    startup: &mut Startup<'_>,
) -> anyhow::Result<()> {
    otlp::server::start(&config.otlp, metrics, startup).await?;
    zipkin::server::start(&config.zipkin, startup).await?;
    zipkin_v1::server::start(&config.zipkin, startup).await?;
    jaeger::server::start(&config.jaeger, &stats.jaeger_udp, startup).await?;
    // Listeners that several receivers share are bound once all have added their routes.
    startup.serve_shared().await
}
