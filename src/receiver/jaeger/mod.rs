//! Jaeger receivers: thrift over HTTP (`POST /api/traces`, default :14268), gRPC
//! `jaeger.api_v2.CollectorService/PostSpans` (default :14250) and the agent's UDP `emitBatch`,
//! thrift compact (default :6831) and thrift binary (default :6832).
//!
//! Both wire models (Thrift `jaeger.Batch`, protobuf `jaeger.api_v2.Batch`) are decoded into
//! one [`JaegerBatch`] and translated to OTLP the way the OpenTelemetry Collector's
//! `pkg/translator/jaeger` does (which is what Tempo runs): process tags become resource
//! attributes (`hostname` → `host.name`, `jaeger.version` → `opencensus.exporterversion`),
//! `span.kind` gives the kind, `error` / `otel.status_code` / `otel.status_description` /
//! `http.status_code` give the status, logs become events (field `event` is the name),
//! references become the parent (CHILD_OF first, else FOLLOWS_FROM in the same trace) and
//! links (with `opentracing.ref_type`), 64-bit trace IDs get zero high bytes. Over gRPC,
//! `otel.scope.name`/`otel.scope.version` become the scope and `w3c.tracestate` the trace state;
//! the Collector's thrift path does neither, and neither do we.

pub mod decode;
pub mod server;

use serde::{Deserialize, Serialize};

use super::listener::{ListenerConfig, ListenerInput};

/// The `distributor.receivers.jaeger` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JaegerConfig {
    /// The Jaeger transports; each listens only when `enabled`, as in Tempo, where a
    /// receiver is active only when configured.
    pub protocols: JaegerProtocols,
}

/// `distributor.receivers.jaeger.protocols`. A protocol listed here listens on its default
/// endpoint unless one is given (or it says `enabled: false`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "JaegerProtocolsInput")]
pub struct JaegerProtocols {
    /// Thrift binary `jaeger.Batch` over HTTP (`POST /api/traces`), as jaeger-client's
    /// collector endpoint sends it.
    pub thrift_http: ListenerConfig,
    /// Jaeger's protobuf model over gRPC (`CollectorService/PostSpans`).
    pub grpc: ListenerConfig,
    /// Thrift compact `Agent.emitBatch` over UDP, as jaeger-client's agent reporter sends it.
    pub thrift_compact: ListenerConfig,
    /// Thrift binary `Agent.emitBatch` over UDP (the agent's :6832), as jaeger-client-node
    /// and other agent reporters send it.
    pub thrift_binary: ListenerConfig,
}

impl Default for JaegerProtocols {
    fn default() -> Self {
        JaegerProtocols {
            thrift_http: ListenerConfig {
                enabled: false,
                endpoint: "127.0.0.1:14268".into(),
            },
            grpc: ListenerConfig {
                enabled: false,
                endpoint: "127.0.0.1:14250".into(),
            },
            thrift_compact: ListenerConfig {
                enabled: false,
                endpoint: "127.0.0.1:6831".into(),
            },
            thrift_binary: ListenerConfig {
                enabled: false,
                endpoint: "127.0.0.1:6832".into(),
            },
        }
    }
}

/// `distributor.receivers.jaeger.protocols` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct JaegerProtocolsInput {
    thrift_http: Option<ListenerInput>,
    grpc: Option<ListenerInput>,
    thrift_compact: Option<ListenerInput>,
    thrift_binary: Option<ListenerInput>,
}

impl From<JaegerProtocolsInput> for JaegerProtocols {
    fn from(input: JaegerProtocolsInput) -> Self {
        let default = JaegerProtocols::default();
        JaegerProtocols {
            thrift_http: ListenerInput::resolve(input.thrift_http, default.thrift_http),
            grpc: ListenerInput::resolve(input.grpc, default.grpc),
            thrift_compact: ListenerInput::resolve(input.thrift_compact, default.thrift_compact),
            thrift_binary: ListenerInput::resolve(input.thrift_binary, default.thrift_binary),
        }
    }
}
