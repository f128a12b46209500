//! Receivers: one module per wire format, each with the same anatomy (config, decoder, server,
//! tests). They decode to OTLP `ResourceSpans` and hand them to the distributor.

pub mod bench;
pub mod cors;
pub mod jaeger;
pub mod otlp;
pub mod otlp_json;
pub mod otlp_metrics;
pub mod otlp_metrics_json;
pub mod thrift;
pub mod translate;
pub mod zipkin;

#[cfg(test)]
pub(crate) mod fuzz_props;

use serde::{Deserialize, Serialize};

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
