//! The service-graph processor: pairs each client (or producer) span with its direct child
//! server (or consumer) span in a bounded store, and writes `traces_service_graph_*` per edge,
//! with virtual nodes for uninstrumented peers and databases (reference/metrics-generator.md §3).

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;

use super::config::ServiceGraphsConfig;
use super::filter::{status_code_name, SpanFilter};
use super::labels::{lookup_dimension, sanitize_label_name, string_attribute, LabelsBuilder};
use super::registry::{MetricId, Registry};
use super::spanmetrics::{span_multiplier, span_seconds};

/// Requests per edge.
pub const REQUEST_TOTAL: &str = "traces_service_graph_request_total";
/// Failed requests per edge (either side's status is ERROR).
pub const REQUEST_FAILED_TOTAL: &str = "traces_service_graph_request_failed_total";
/// Server-side latency per edge.
pub const REQUEST_SERVER_SECONDS: &str = "traces_service_graph_request_server_seconds";
/// Client-side latency per edge.
pub const REQUEST_CLIENT_SECONDS: &str = "traces_service_graph_request_client_seconds";
/// Time between a producer's end and its consumer's start.
pub const REQUEST_MESSAGING_SYSTEM_SECONDS: &str =
    "traces_service_graph_request_messaging_system_seconds";
/// Half-edges that expired without a partner or a virtual node (Grafana Agent's semantics).
pub const UNPAIRED_SPANS_TOTAL: &str = "traces_service_graph_unpaired_spans_total";
/// Spans not stored because the store was full (Grafana Agent's semantics).
pub const DROPPED_SPANS_TOTAL: &str = "traces_service_graph_dropped_spans_total";

/// The `connection_type` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnectionType {
    /// Plain client→server; the label is absent.
    Unset,
    MessagingSystem,
    Database,
    VirtualNode,
}

impl ConnectionType {
    fn label(self) -> &'static str {
        match self {
            ConnectionType::Unset => "",
            ConnectionType::MessagingSystem => "messaging_system",
            ConnectionType::Database => "database",
            ConnectionType::VirtualNode => "virtual_node",
        }
    }
}

/// Which side of a virtual edge was made up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VirtualSide {
    None,
    Client,
    Server,
}

/// One call being paired: filled by the client span, the server span, or both.
#[derive(Clone, Debug)]
struct Edge {
    tenant: String,
    trace_id: String,
    client: String,
    server: String,
    client_seconds: f64,
    server_seconds: f64,
    client_end_ns: u64,
    server_start_ns: u64,
    failed: bool,
    connection_type: ConnectionType,
    client_dimensions: Vec<(String, String)>,
    server_dimensions: Vec<(String, String)>,
    /// The first peer attribute of the client span: the server of a virtual edge.
    client_peer: Option<String>,
    /// The first peer attribute of a root server span: the client of a virtual edge.
    server_peer: Option<String>,
    server_is_root: bool,
    /// A filter policy dropped one side, so the edge is dropped when it completes or expires.
    filtered: bool,
    multiplier: f64,
    expires_at_ms: i64,
}

impl Edge {
    fn new(tenant: &str, trace_id: &str, expires_at_ms: i64) -> Edge {
        Edge {
            tenant: tenant.to_string(),
            trace_id: trace_id.to_string(),
            client: String::new(),
            server: String::new(),
            client_seconds: 0.0,
            server_seconds: 0.0,
            client_end_ns: 0,
            server_start_ns: 0,
            failed: false,
            connection_type: ConnectionType::Unset,
            client_dimensions: Vec::new(),
            server_dimensions: Vec::new(),
            client_peer: None,
            server_peer: None,
            server_is_root: false,
            filtered: false,
            multiplier: 1.0,
            expires_at_ms,
        }
    }

    fn is_complete(&self) -> bool {
        !self.client.is_empty() && !self.server.is_empty()
    }
}

/// Store key: the client span's (trace ID, span ID), which is the server span's
/// (trace ID, parent span ID).
type EdgeKey = ([u8; 16], [u8; 8]);

fn edge_key(trace_id: &[u8], span_id: &[u8]) -> EdgeKey {
    let mut trace = [0u8; 16];
    let trace_bytes = &trace_id[trace_id.len().saturating_sub(16)..];
    trace[16 - trace_bytes.len()..].copy_from_slice(trace_bytes);
    let mut span = [0u8; 8];
    let span_bytes = &span_id[span_id.len().saturating_sub(8)..];
    span[8 - span_bytes.len()..].copy_from_slice(span_bytes);
    (trace, span)
}

/// Counters for the appliance's own metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceGraphStats {
    /// Half-edges that expired (paired into a virtual edge or not).
    pub expired_edges: u64,
    /// Spans not stored because the store held `max_items` half-edges.
    pub dropped_spans: u64,
    /// Edges recorded as metrics.
    pub completed_edges: u64,
}

/// The processor: pending half-edges and the metric IDs.
pub struct ServiceGraphs {
    config: ServiceGraphsConfig,
    filter: SpanFilter,
    wait_ms: i64,
    store: HashMap<EdgeKey, Edge>,
    /// (attribute key, client label, server label) per dimension.
    dimensions: Vec<(String, String, String)>,
    request_total: MetricId,
    request_failed_total: MetricId,
    server_seconds: MetricId,
    client_seconds: MetricId,
    messaging_seconds: Option<MetricId>,
    unpaired_spans: MetricId,
    dropped_spans: MetricId,
    stats: ServiceGraphStats,
}

impl ServiceGraphs {
    /// Registers the metrics.
    pub fn new(
        config: ServiceGraphsConfig,
        registry: &mut Registry,
    ) -> Result<ServiceGraphs, String> {
        let filter = SpanFilter::new(&config.filter_policies)?;
        let dimensions = config
            .dimensions
            .iter()
            .map(|key| {
                let label = sanitize_label_name(key);
                if config.enable_client_server_prefix {
                    (
                        key.clone(),
                        format!("client_{label}"),
                        format!("server_{label}"),
                    )
                } else {
                    (key.clone(), label.clone(), label)
                }
            })
            .collect();
        let buckets = config.histogram_buckets.clone();
        Ok(ServiceGraphs {
            wait_ms: i64::try_from(config.wait.as_millis()).unwrap_or(i64::MAX),
            request_total: registry.counter(REQUEST_TOTAL),
            request_failed_total: registry.counter(REQUEST_FAILED_TOTAL),
            server_seconds: registry.histogram(REQUEST_SERVER_SECONDS, &buckets),
            client_seconds: registry.histogram(REQUEST_CLIENT_SECONDS, &buckets),
            messaging_seconds: config
                .enable_messaging_system_latency_histogram
                .then(|| registry.histogram(REQUEST_MESSAGING_SYSTEM_SECONDS, &buckets)),
            unpaired_spans: registry.counter(UNPAIRED_SPANS_TOTAL),
            dropped_spans: registry.counter(DROPPED_SPANS_TOTAL),
            store: HashMap::new(),
            stats: ServiceGraphStats::default(),
            filter,
            dimensions,
            config,
        })
    }

    fn peer(&self, span: &Span) -> Option<String> {
        self.config
            .peer_attributes
            .iter()
            .find_map(|key| string_attribute(&span.attributes, key))
            .filter(|value| !value.is_empty())
    }

    fn dimensions_of(
        &self,
        resource: &[KeyValue],
        span: &Span,
        client_side: bool,
    ) -> Vec<(String, String)> {
        self.dimensions
            .iter()
            .filter_map(|(key, client_label, server_label)| {
                let label = if client_side {
                    client_label
                } else {
                    server_label
                };
                lookup_dimension(resource, &span.attributes, key)
                    .map(|value| (label.clone(), value))
            })
            .collect()
    }

    /// The database a client span calls, if it is a database call.
    fn database_server(&self, resource: &[KeyValue], span: &Span) -> Option<String> {
        let database = self
            .config
            .database_name_attributes
            .iter()
            .find_map(|key| lookup_dimension(resource, &span.attributes, key))
            .filter(|value| !value.is_empty())?;
        let attribute =
            |key: &str| string_attribute(&span.attributes, key).filter(|value| !value.is_empty());
        let server = attribute("peer.service")
            .or_else(|| attribute("server.address"))
            .or_else(|| {
                attribute("network.peer.address").map(|address| {
                    match attribute("network.peer.port") {
                        Some(port) => format!("{address}:{port}"),
                        None => address,
                    }
                })
            })
            .unwrap_or(database);
        Some(server)
    }

    /// Looks at one span of a resource named `service`.
    #[allow(clippy::too_many_arguments)]
    pub fn consume_span(
        &mut self,
        registry: &mut Registry,
        tenant: &str,
        resource: &[KeyValue],
        service: &str,
        span: &Span,
        trace_id: &str,
        now_ms: i64,
    ) {
        let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
        let is_client = matches!(kind, SpanKind::Client | SpanKind::Producer);
        let is_server = matches!(kind, SpanKind::Server | SpanKind::Consumer);
        if !is_client && !is_server {
            return;
        }
        let kept = self.filter.keep(resource, span);
        let failed = status_code_name(span) == "STATUS_CODE_ERROR";
        if is_client && kept && kind == SpanKind::Client {
            if let Some(server) = self.database_server(resource, span) {
                // A database does not send spans: the edge is complete at once, and its server
                // latency is what the client saw.
                let mut edge = Edge::new(tenant, trace_id, now_ms);
                edge.client = service.to_string();
                edge.server = server;
                edge.client_seconds = span_seconds(span);
                edge.server_seconds = edge.client_seconds;
                edge.failed = failed;
                edge.connection_type = ConnectionType::Database;
                edge.client_dimensions = self.dimensions_of(resource, span, true);
                edge.multiplier = span_multiplier(&self.config.span_multiplier_key, resource, span);
                self.record(registry, &edge, VirtualSide::None, now_ms);
                return;
            }
        }
        let key = if is_client {
            edge_key(&span.trace_id, &span.span_id)
        } else {
            edge_key(&span.trace_id, &span.parent_span_id)
        };
        if !self.store.contains_key(&key) && self.store.len() >= self.config.max_items {
            // Full: refuse the new half-edge rather than evict older ones, as Tempo does.
            self.stats.dropped_spans += 1;
            let mut builder = LabelsBuilder::with_capacity(2);
            if is_client {
                builder.add("client", service);
            } else {
                builder.add("server", service);
            }
            if let Some(labels) = registry.labels(builder, tenant) {
                registry.add(self.dropped_spans, &labels, 1.0, now_ms);
            }
            return;
        }
        let expires_at_ms = now_ms.saturating_add(self.wait_ms);
        let edge = self
            .store
            .entry(key)
            .or_insert_with(|| Edge::new(tenant, trace_id, expires_at_ms));
        edge.failed |= failed;
        edge.filtered |= !kept;
        if matches!(kind, SpanKind::Producer | SpanKind::Consumer) {
            edge.connection_type = ConnectionType::MessagingSystem;
        }
        if is_client {
            edge.client = service.to_string();
            edge.client_seconds = span_seconds(span);
            edge.client_end_ns = span.end_time_unix_nano;
            edge.multiplier = span_multiplier(&self.config.span_multiplier_key, resource, span);
        } else {
            edge.server = service.to_string();
            edge.server_seconds = span_seconds(span);
            edge.server_start_ns = span.start_time_unix_nano;
            edge.server_is_root = span.parent_span_id.iter().all(|byte| *byte == 0);
        }
        let dimensions = self.dimensions_of(resource, span, is_client);
        let peer = self.peer(span);
        let Some(edge) = self.store.get_mut(&key) else {
            return;
        };
        if is_client {
            edge.client_dimensions = dimensions;
            edge.client_peer = peer;
        } else {
            edge.server_dimensions = dimensions;
            edge.server_peer = peer;
        }
        if !edge.is_complete() {
            return;
        }
        let Some(edge) = self.store.remove(&key) else {
            return;
        };
        if !edge.filtered {
            self.record(registry, &edge, VirtualSide::None, now_ms);
        }
    }

    /// Expires half-edges older than `wait`: a root server span becomes an edge from a virtual
    /// client (its peer attribute, or `user`), a client span with a peer attribute an edge to a
    /// virtual server; anything else counts as unpaired.
    pub fn expire(&mut self, registry: &mut Registry, now_ms: i64) {
        let mut expired = Vec::new();
        self.store.retain(|_, edge| {
            if edge.expires_at_ms <= now_ms {
                expired.push(edge.clone());
                false
            } else {
                true
            }
        });
        for mut edge in expired {
            self.stats.expired_edges += 1;
            if edge.filtered {
                continue;
            }
            let has_client = !edge.client.is_empty();
            let has_server = !edge.server.is_empty();
            if has_server && !has_client && edge.server_is_root {
                edge.client = edge
                    .server_peer
                    .clone()
                    .unwrap_or_else(|| "user".to_string());
                edge.connection_type = ConnectionType::VirtualNode;
                self.record(registry, &edge, VirtualSide::Client, now_ms);
            } else if has_client && !has_server && edge.client_peer.is_some() {
                edge.server = edge.client_peer.clone().unwrap_or_default();
                edge.connection_type = ConnectionType::VirtualNode;
                self.record(registry, &edge, VirtualSide::Server, now_ms);
            } else {
                let mut builder = LabelsBuilder::with_capacity(2);
                builder.add("client", edge.client.as_str());
                builder.add("server", edge.server.as_str());
                if let Some(labels) = registry.labels(builder, &edge.tenant) {
                    registry.add(self.unpaired_spans, &labels, 1.0, now_ms);
                }
            }
        }
    }

    fn record(
        &mut self,
        registry: &mut Registry,
        edge: &Edge,
        virtual_side: VirtualSide,
        now_ms: i64,
    ) {
        self.stats.completed_edges += 1;
        let mut builder = LabelsBuilder::with_capacity(
            4 + edge.client_dimensions.len() + edge.server_dimensions.len(),
        );
        builder.add("client", edge.client.as_str());
        builder.add("server", edge.server.as_str());
        builder.add("connection_type", edge.connection_type.label());
        if self.config.enable_virtual_node_label {
            match virtual_side {
                VirtualSide::None => {}
                VirtualSide::Client => builder.add("virtual_node", "client"),
                VirtualSide::Server => builder.add("virtual_node", "server"),
            }
        }
        // Without the client/server prefix both sides write the same label; the server's,
        // added last, wins.
        for (name, value) in edge.client_dimensions.iter().chain(&edge.server_dimensions) {
            builder.add(name.as_str(), value.as_str());
        }
        let Some(labels) = registry.labels(builder, &edge.tenant) else {
            return;
        };
        let multiplier = edge.multiplier;
        let trace_id = Some(edge.trace_id.as_str());
        registry.add(self.request_total, &labels, multiplier, now_ms);
        if edge.failed {
            registry.add(self.request_failed_total, &labels, multiplier, now_ms);
        }
        registry.observe(
            self.client_seconds,
            &labels,
            edge.client_seconds,
            multiplier,
            trace_id,
            now_ms,
        );
        registry.observe(
            self.server_seconds,
            &labels,
            edge.server_seconds,
            multiplier,
            trace_id,
            now_ms,
        );
        if let Some(messaging) = self.messaging_seconds {
            let queued_ns = edge.server_start_ns as i128 - edge.client_end_ns as i128;
            if edge.connection_type == ConnectionType::MessagingSystem && queued_ns > 0 {
                registry.observe(
                    messaging,
                    &labels,
                    queued_ns as f64 / 1e9,
                    multiplier,
                    trace_id,
                    now_ms,
                );
            }
        }
    }

    /// Half-edges waiting for their partner.
    pub fn pending(&self) -> usize {
        self.store.len()
    }

    /// The processor's own counters.
    pub fn stats(&self) -> ServiceGraphStats {
        self.stats
    }
}
