//! Zipkin receiver (default :9411): `POST` on any path, Zipkin v2 JSON (default) or protobuf
//! `ListOfSpans` (`application/x-protobuf`), gzip/deflate bodies, answered with 202 Accepted.
//! The port is shared: `/api/v1/spans` is Zipkin v1's ([`crate::receiver::zipkin_v1`], enabled
//! with this section), whose spans become v2 spans and then follow the rules below.
//!
//! Translation follows the OpenTelemetry Collector's `zipkinv2` translator (what Tempo runs):
//! `localEndpoint.serviceName` → `service.name`; tags that are resource semantic conventions
//! (and `otel.library.*` → the scope) leave the span; `otel.status_code`/`error` give the
//! status; `w3c.tracestate` the trace state; `otlp.link.N` tags links; annotations become
//! events (`name|{json attributes}|dropped` is unpacked); endpoints become `net.host.ip`,
//! `net.host.port`, `peer.service`, `net.peer.ip`, `net.peer.port`; tags stay strings; 64-bit
//! trace IDs get zero high bytes; a missing timestamp becomes 0 with
//! `otel.zipkin.absentField.startTime=true`. One deliberate difference: `otel.status_code`
//! values `OK`/`ERROR` (what the OpenTelemetry SDKs' Zipkin exporters send, per the spec) are
//! understood as well as the Collector's `STATUS_CODE_*`/`Ok`/`Error`.

pub mod decode;
pub mod server;

use serde::{Deserialize, Serialize};

/// The `distributor.receivers.zipkin` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZipkinConfig {
    /// Whether Zipkin listens; off unless configured, as in Tempo: a `zipkin` section that
    /// does not say `enabled: false` listens.
    #[serde(default = "listed_receiver_listens")]
    pub enabled: bool,
    /// `address:port` to listen on; `0.0.0.0:9411` to accept from other machines.
    pub endpoint: String,
}

impl Default for ZipkinConfig {
    fn default() -> Self {
        ZipkinConfig {
            enabled: false,
            endpoint: "127.0.0.1:9411".into(),
        }
    }
}

fn listed_receiver_listens() -> bool {
    true
}
