//! The Jaeger servers: thrift over HTTP, `CollectorService/PostSpans` over gRPC, and the
//! agent's thrift-compact UDP port.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tonic::codegen::BoxFuture;

use super::decode::{
    decode_agent_binary, decode_agent_compact, decode_post_spans, decode_thrift_http,
    to_resource_spans, JaegerBatch, JaegerDecodeError, Model,
};
use crate::distributor::{Distributor, DistributorError};
use crate::receiver::ingest::{self, accept_spans, ingest_spans, GrpcIngest, UnaryIngest};
use crate::receiver::listener::Startup;

/// Largest UDP datagram read; the Jaeger agent's own limit is 65000 bytes, so anything larger
/// arrives truncated and fails to decode (and is counted as dropped).
pub const MAX_UDP_PACKET_BYTES: usize = 65_000;

/// The thrift-over-HTTP router: `POST /api/traces`.
pub fn thrift_http_router(distributor: Arc<Distributor>) -> Router {
    let limit = distributor.max_request_bytes();
    ingest::route("/api/traces", post_traces, distributor, limit)
}

async fn post_traces(
    State(distributor): State<Arc<Distributor>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = ingest::post_only(&method) {
        return refused;
    }
    let media_type = ingest::media_type(&headers);
    if media_type != "application/x-thrift" && media_type != "application/vnd.apache.thrift.binary"
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("unsupported content type {media_type:?}: use application/x-thrift or application/vnd.apache.thrift.binary"),
        )
            .into_response();
    }
    accept_spans(&distributor, &headers, body, "jaeger thrift_http", |body| {
        let batch = decode_thrift_http(&body)
            .map_err(|error| DistributorError::BadRequest(error.to_string()))?;
        Ok(to_resource_spans(batch, Model::Thrift))
    })
    .await
}

/// `jaeger.api_v2.CollectorService/PostSpans` over raw bytes.
#[derive(Clone)]
pub struct PostSpans(pub Arc<Distributor>);

impl UnaryIngest for PostSpans {
    const SERVICE: &'static str = "jaeger.api_v2.CollectorService";
    const METHOD: &'static str = "PostSpans";
    const SEND_GZIP: bool = false;

    fn max_request_bytes(&self) -> usize {
        self.0.max_request_bytes()
    }

    fn call(&self, tenant: Option<String>, message: Bytes) -> BoxFuture<Bytes, DistributorError> {
        let distributor = Arc::clone(&self.0);
        Box::pin(async move {
            ingest_spans(&distributor, tenant.as_deref(), message, |body| {
                let batch = decode_post_spans(&body)
                    .map_err(|error| DistributorError::BadRequest(error.to_string()))?;
                Ok(to_resource_spans(batch, Model::Proto))
            })
            .await?;
            // PostSpansResponse has no fields: its encoding is empty.
            Ok(Bytes::new())
        })
    }
}

/// Jaeger's `CollectorService` over gRPC (only `PostSpans`).
pub fn grpc_service(distributor: Arc<Distributor>) -> GrpcIngest<PostSpans> {
    GrpcIngest(PostSpans(distributor))
}

/// The Thrift protocol of an agent UDP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentDecoder {
    /// Thrift compact (:6831).
    Compact,
    /// Thrift binary (:6832).
    Binary,
}

impl AgentDecoder {
    fn decode(self, packet: &[u8]) -> Result<JaegerBatch, JaegerDecodeError> {
        match self {
            AgentDecoder::Compact => decode_agent_compact(packet),
            AgentDecoder::Binary => decode_agent_binary(packet),
        }
    }
}

/// Counters of the UDP agent ports (both protocols together), shown on `/metrics`.
#[derive(Debug, Default)]
pub struct UdpStats {
    /// Datagrams received.
    pub packets: AtomicU64,
    /// Datagrams that were not valid `emitBatch` calls.
    pub malformed: AtomicU64,
    /// Valid datagrams the distributor refused (no tenant, overload, shutdown).
    pub refused: AtomicU64,
}

impl UdpStats {
    /// Renders the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let name = crate::telemetry::names::JAEGER_UDP_PACKETS;
        let _ = writeln!(
            out,
            "# HELP {name} Jaeger agent UDP datagrams, by outcome (accepted, malformed, refused)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        let packets = self.packets.load(Ordering::Relaxed);
        let malformed = self.malformed.load(Ordering::Relaxed);
        let refused = self.refused.load(Ordering::Relaxed);
        let accepted = packets.saturating_sub(malformed).saturating_sub(refused);
        for (outcome, value) in [
            ("accepted", accepted),
            ("malformed", malformed),
            ("refused", refused),
        ] {
            let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {value}");
        }
    }
}

/// Serves an agent UDP port, its datagrams read by `decoder`, until `shutdown` resolves. Datagrams are handled
/// one at a time: when vivace is slower than the senders, the kernel's socket buffer overflows
/// and drops, which is UDP's back-pressure, instead of memory growing here.
pub async fn serve_udp(
    socket: tokio::net::UdpSocket,
    decoder: AgentDecoder,
    distributor: Arc<Distributor>,
    stats: Arc<UdpStats>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut buffer = vec![0u8; MAX_UDP_PACKET_BYTES];
    tokio::pin!(shutdown);
    loop {
        let (length, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(error) => {
                    // ICMP errors and the like surface here; the socket stays usable.
                    tracing::debug!(%error, "jaeger udp receive failed");
                    continue;
                }
            },
        };
        stats.packets.fetch_add(1, Ordering::Relaxed);
        let packet = buffer.get(..length).unwrap_or_default();
        let batch = match decoder.decode(packet) {
            Ok(batch) => batch,
            Err(error) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, %peer, bytes = length, "jaeger udp datagram dropped");
                continue;
            }
        };
        // The datagram's bytes are what it holds of the in-flight budget.
        let wire = Bytes::copy_from_slice(packet);
        let pushed = ingest_spans(&distributor, None, wire, |_| {
            Ok(to_resource_spans(batch, Model::Thrift))
        })
        .await;
        if let Err(error) = pushed {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, %peer, "jaeger udp batch refused");
        }
    }
}

/// Starts each enabled Jaeger protocol; the UDP port counts its datagrams in `udp_stats`.
pub async fn start(
    config: &super::JaegerConfig,
    udp_stats: &Arc<UdpStats>,
    startup: &mut Startup<'_>,
) -> anyhow::Result<()> {
    let protocols = &config.protocols;
    let distributor = startup.distributor;
    if protocols.thrift_http.enabled {
        let listener = startup
            .bind("Jaeger thrift_http", &protocols.thrift_http.endpoint)
            .await?;
        startup.serve(listener, thrift_http_router(Arc::clone(distributor)));
    }
    if protocols.grpc.enabled {
        let listener = startup
            .bind("Jaeger gRPC", &protocols.grpc.endpoint)
            .await?;
        let routes = tonic::service::Routes::new(grpc_service(Arc::clone(distributor)));
        startup.serve(listener, routes.into_axum_router());
    }
    let agent_ports = [
        (
            &protocols.thrift_compact,
            "Jaeger thrift_compact",
            AgentDecoder::Compact,
        ),
        (
            &protocols.thrift_binary,
            "Jaeger thrift_binary",
            AgentDecoder::Binary,
        ),
    ];
    for (listener, what, decoder) in agent_ports {
        if !listener.enabled {
            continue;
        }
        let address = &listener.endpoint;
        let socket = tokio::net::UdpSocket::bind(address)
            .await
            .map_err(|error| {
                anyhow::Error::new(error)
                    .context(format!("cannot listen for {what} on udp {address}"))
            })?;
        tracing::info!(endpoint = %address, receiver = what, "receiver listening");
        let stop = startup.stop.clone();
        startup.tasks.spawn(serve_udp(
            socket,
            decoder,
            Arc::clone(distributor),
            Arc::clone(udp_stats),
            async move { stop.cancelled().await },
        ));
    }
    Ok(())
}
