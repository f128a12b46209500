//! OTLP metrics receiver: gRPC `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`
//! beside the trace service on the OTLP gRPC port, and HTTP `POST /v1/metrics` (protobuf or
//! JSON, gzip) beside `/v1/traces`, with the trace receiver's limits, tenant rules and error
//! codes: a malformed payload is INVALID_ARGUMENT / 400 naming what was wrong; points the
//! conversion refuses are reported as OTLP partial success. Decoding and conversion run off
//! the async runtime; the converted series go to [`OtlpMetrics`], under the request's tenant.

//!
//! Its settings are the metrics-generator's (`metrics_generator.otlp_metrics`); it listens on
//! the OTLP ports (`distributor.receivers.otlp`).

pub mod decode;
pub mod server;

use std::sync::Arc;

use crate::distributor::Distributor;
use crate::generator::otlp_metrics::OtlpMetrics;

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
}
