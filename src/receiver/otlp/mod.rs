//! OTLP receiver: gRPC `opentelemetry.proto.collector.trace.v1.TraceService/Export` (default
//! :4317, gzip accepted) and HTTP `POST /v1/traces` (default :4318, protobuf or JSON, gzip).
//! The OTLP metrics and logs receivers are served on the same two ports.
//!
//! The gRPC service decodes the protobuf itself (the generated codec would report a malformed
//! message as INTERNAL); a bad payload is INVALID_ARGUMENT / 400 naming what was wrong.

pub mod decode;
pub mod server;

use serde::{Deserialize, Serialize};

use super::cors::CorsConfig;
use super::listener::{ListenerConfig, ListenerInput};

/// The `distributor.receivers.otlp` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// The two OTLP transports.
    pub protocols: OtlpProtocols,
}

/// `distributor.receivers.otlp.protocols`. A protocol listed here listens (as in Tempo, where
/// configuring a receiver enables it) on its default endpoint unless one is given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "OtlpProtocolsInput")]
pub struct OtlpProtocols {
    /// OTLP over gRPC.
    pub grpc: ListenerConfig,
    /// OTLP over HTTP (`POST /v1/traces`), with CORS for pages that export from a browser.
    pub http: OtlpHttpConfig,
}

/// `distributor.receivers.otlp.protocols.http`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpHttpConfig {
    /// Whether this receiver listens at all.
    pub enabled: bool,
    /// `address:port` to listen on; `0.0.0.0:<port>` to accept from other machines.
    pub endpoint: String,
    /// Which web pages (origins) may export from a browser, and with which extra headers.
    pub cors: CorsConfig,
}

/// `distributor.receivers.otlp.protocols.http` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct OtlpHttpInput {
    enabled: Option<bool>,
    endpoint: Option<String>,
    cors: Option<CorsConfig>,
}

impl OtlpHttpInput {
    fn resolve(written: Option<OtlpHttpInput>, default: OtlpHttpConfig) -> OtlpHttpConfig {
        match written {
            None => default,
            Some(written) => OtlpHttpConfig {
                enabled: written.enabled.unwrap_or(true),
                endpoint: written.endpoint.unwrap_or(default.endpoint),
                cors: written.cors.unwrap_or(default.cors),
            },
        }
    }
}

/// `distributor.receivers.otlp.protocols` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct OtlpProtocolsInput {
    grpc: Option<ListenerInput>,
    http: Option<OtlpHttpInput>,
}

impl From<OtlpProtocolsInput> for OtlpProtocols {
    fn from(input: OtlpProtocolsInput) -> Self {
        let default = OtlpProtocols::default();
        OtlpProtocols {
            grpc: ListenerInput::resolve(input.grpc, default.grpc),
            http: OtlpHttpInput::resolve(input.http, default.http),
        }
    }
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            protocols: OtlpProtocols {
                grpc: ListenerConfig {
                    enabled: true,
                    endpoint: "127.0.0.1:4317".into(),
                },
                http: OtlpHttpConfig {
                    enabled: true,
                    endpoint: "127.0.0.1:4318".into(),
                    cors: CorsConfig::default(),
                },
            },
        }
    }
}

impl Default for OtlpProtocols {
    fn default() -> Self {
        OtlpConfig::default().protocols
    }
}
