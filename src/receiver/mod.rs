//! Receivers: one module per wire format, each with the same anatomy (config, decoder, server,
//! tests). They decode to OTLP `ResourceSpans` and hand them to the distributor.

pub mod otlp;
pub mod otlp_json;

use serde::{Deserialize, Serialize};

/// The `distributor.receivers` section: which protocols listen, and where.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiversConfig {
    /// OpenTelemetry's OTLP over gRPC and HTTP.
    pub otlp: otlp::OtlpConfig,
}
