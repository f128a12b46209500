//! The `metrics_generator:` section. Keys follow Tempo's names (reference/metrics-generator.md);
//! each doc comment is the key's user documentation.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::labels::is_valid_label_name;

/// Configuration of the metrics-generator: span metrics and service graphs from every span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// The processors; each can be turned off on its own.
    pub processors: ProcessorsConfig,
    /// Series storage shared by the processors: limits and staleness.
    pub registry: RegistryConfig,
    /// A span whose end time is further than this from the time it arrives creates no metrics
    /// (Tempo's `metrics_ingestion_time_range_slack`), so replayed or late spans do not count.
    #[serde(with = "humantime_serde")]
    pub metrics_ingestion_time_range_slack: Duration,
    /// Spans waiting for the generator at once. Beyond it the generator skips a request's spans
    /// (counted in `tempo_metrics_generator_spans_discarded_total{reason="queue_full"}`) rather
    /// than slowing ingest or growing memory.
    pub max_queued_spans: usize,
    /// Label name of the trace ID in exemplars; Grafana's default is Tempo's `traceID`.
    pub trace_id_label_name: String,
    /// Prometheus remote write 1.0 targets; every collection is sent to each of them. Each
    /// tenant's series go in requests of their own.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// With `multitenancy_enabled`, every remote-write request carries `X-Scope-OrgID: <tenant>`
    /// naming the tenant whose series it holds (replacing any `X-Scope-OrgID` in a target's
    /// `headers`), so Mimir or Cortex stores each tenant apart, as Tempo does. Without
    /// multi-tenancy (tenant `single-tenant`) no such header is added.
    pub remote_write_add_org_id_header: bool,
    /// How often the series are collected and remote-written (Tempo's `collection_interval`).
    #[serde(with = "humantime_serde")]
    pub remote_write_interval: Duration,
    /// Requests waiting per target; when full the oldest is dropped and its samples counted in
    /// `vivace_generator_remote_write_samples_total{outcome="dropped"}`.
    pub remote_write_queue_size: usize,
    /// Most series in one remote-write request.
    pub remote_write_max_series_per_request: usize,
    /// An application's own metrics sent to the OTLP ports, converted to Prometheus series and
    /// sent through the same `remote_write` targets, queues and retries.
    pub otlp_metrics: OtlpMetricsConfig,
}

/// HTTP basic authentication for a remote-write target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// One `metrics_generator.remote_write` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's URL, for Prometheus `http://host:9090/api/v1/write`.
    pub url: String,
    /// Extra request headers (such as `X-Scope-OrgID`); they cannot replace the remote-write
    /// protocol headers.
    pub headers: BTreeMap<String, String>,
    /// HTTP basic authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Sent as `Authorization: Bearer <token>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// Send the histogram buckets' exemplars (Prometheus stores them only with
    /// `--enable-feature=exemplar-storage`).
    pub send_exemplars: bool,
    /// Only these tenants' series go to this target (for one Prometheus per tenant); empty:
    /// every tenant's. Without multi-tenancy the only tenant is `single-tenant`.
    pub tenants: Vec<String>,
    /// Which series go to this target: `generator` (span metrics and service graphs) and
    /// `otlp_metrics` (applications' own metrics received over OTLP). A Prometheus that already
    /// scrapes `/metrics` for the generator's series takes `[otlp_metrics]`, so every series
    /// reaches it once.
    pub sources: Vec<RemoteWriteSource>,
}

/// A producer of series that a remote-write target may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteWriteSource {
    /// The generator's span metrics and service graphs.
    Generator,
    /// Applications' own metrics received over OTLP (`otlp_metrics`).
    OtlpMetrics,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            headers: BTreeMap::new(),
            basic_auth: None,
            bearer_token: None,
            send_exemplars: true,
            tenants: Vec::new(),
            sources: vec![RemoteWriteSource::Generator, RemoteWriteSource::OtlpMetrics],
        }
    }
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            processors: ProcessorsConfig::default(),
            registry: RegistryConfig::default(),
            metrics_ingestion_time_range_slack: Duration::from_secs(30),
            max_queued_spans: 100_000,
            trace_id_label_name: "traceID".to_string(),
            remote_write: Vec::new(),
            remote_write_add_org_id_header: true,
            remote_write_interval: Duration::from_secs(15),
            remote_write_queue_size: 100,
            remote_write_max_series_per_request: 500,
            otlp_metrics: OtlpMetricsConfig::default(),
        }
    }
}

/// The `metrics_generator.otlp_metrics` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpMetricsConfig {
    /// Accept OTLP metrics on the OTLP ports (gRPC `MetricsService/Export`, HTTP
    /// `POST /v1/metrics`) and forward them, converted to Prometheus series, through the
    /// generator's `remote_write` targets.
    pub enabled: bool,
    /// Also serve the latest value of every converted series for scraping (Prometheus text,
    /// no exemplars): `/metrics` appends them to vivace's own metrics, another path such as
    /// `/otlp/metrics` serves them alone on the API port; empty serves them nowhere.
    pub scrape_path: String,
    /// Most series remembered at once (each bucket, `_sum` and `_count` counts). Memory for
    /// delta accumulation, the timestamp guard, staleness and scrapes is bounded by it: points
    /// of new series beyond it are rejected and counted.
    pub max_series: usize,
    /// A series with no point for this long gets a stale marker and is forgotten (a delta
    /// series then restarts from 0, which `rate()` reads as a reset).
    #[serde(with = "humantime_serde")]
    pub staleness: Duration,
}

impl Default for OtlpMetricsConfig {
    fn default() -> Self {
        OtlpMetricsConfig {
            enabled: true,
            scrape_path: String::new(),
            max_series: 100_000,
            staleness: Duration::from_secs(5 * 60),
        }
    }
}

impl OtlpMetricsConfig {
    /// Checks the keys; the error names the key at fault.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let path = &self.scrape_path;
        if !path.is_empty() && (!path.starts_with('/') || path.contains(['?', '#', ' '])) {
            return Err((
                "otlp_metrics.scrape_path".into(),
                format!("{path:?} must be empty or an absolute path such as /otlp/metrics"),
            ));
        }
        if self.max_series == 0 {
            return Err((
                "otlp_metrics.max_series".into(),
                "must be at least 1".into(),
            ));
        }
        if self.staleness < Duration::from_secs(1) {
            return Err((
                "otlp_metrics.staleness".into(),
                "must be at least 1s".into(),
            ));
        }
        Ok(())
    }

    /// Whether the series are appended to vivace's own `/metrics`.
    pub fn on_own_metrics(&self) -> bool {
        self.scrape_path == "/metrics"
    }

    /// The separate scrape path, if one is configured.
    pub fn separate_scrape_path(&self) -> Option<&str> {
        (!self.scrape_path.is_empty() && !self.on_own_metrics()).then_some(&self.scrape_path)
    }
}

/// The `metrics_generator.processors` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorsConfig {
    /// RED metrics per span: `traces_spanmetrics_*`.
    pub span_metrics: SpanMetricsConfig,
    /// Edges between services: `traces_service_graph_*`.
    pub service_graphs: ServiceGraphsConfig,
}

/// The `metrics_generator.registry` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// A series not updated for this long is deleted; if its labels come back it restarts at
    /// 0, which `rate()` reads as a counter reset.
    #[serde(with = "humantime_serde")]
    pub stale_duration: Duration,
    /// Most series (each histogram bucket, `_sum` and `_count` counts as one) kept at once.
    /// Beyond it new label sets are folded into one series per metric labelled
    /// `metric_overflow="true"`. 0 means no limit (Tempo's default); vivace bounds memory.
    pub max_active_series: usize,
    /// Label names are cut to this many bytes.
    pub max_label_name_length: usize,
    /// Label values are cut to this many bytes.
    pub max_label_value_length: usize,
    /// Labels added to every generated series.
    pub external_labels: BTreeMap<String, String>,
    /// When not empty, every series gets a label of this name holding the tenant ID.
    pub inject_tenant_id_as: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            stale_duration: Duration::from_secs(15 * 60),
            max_active_series: 100_000,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            external_labels: BTreeMap::new(),
            inject_tenant_id_as: String::new(),
        }
    }
}

/// Which of the default span-metrics labels are written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntrinsicDimensions {
    /// `service`: the resource's `service.name`.
    pub service: bool,
    /// `span_name`: the span name.
    pub span_name: bool,
    /// `span_kind`: `SPAN_KIND_*`.
    pub span_kind: bool,
    /// `status_code`: `STATUS_CODE_*`.
    pub status_code: bool,
    /// `status_message`: the span status message; off because it is often unbounded.
    pub status_message: bool,
}

impl Default for IntrinsicDimensions {
    fn default() -> Self {
        IntrinsicDimensions {
            service: true,
            span_name: true,
            span_kind: true,
            status_code: true,
            status_message: false,
        }
    }
}

/// A label built from several attributes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DimensionMapping {
    /// Label name (sanitised like a dimension).
    pub name: String,
    /// Attribute keys (with dots), each looked up resource first, then span.
    pub source_labels: Vec<String>,
    /// Put between the non-empty source values.
    pub join: String,
}

/// How a filter policy compares values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    /// Equal value and type.
    #[default]
    Strict,
    /// An unanchored regular expression matched against the value as text.
    Regex,
}

/// A value to compare with in a filter policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PolicyValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Double(f64),
    /// Text (also the regular expression with `match_type: regex`).
    String(String),
}

/// One attribute condition: `kind`, `status`, `name`, `span.<key>` or `resource.<key>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyAttribute {
    /// What to compare.
    pub key: String,
    /// The value it must have (or match).
    pub value: PolicyValue,
}

/// A block of conditions that must all hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyMatch {
    /// `strict` or `regex`.
    pub match_type: MatchType,
    /// Conditions, all of which must hold.
    pub attributes: Vec<PolicyAttribute>,
}

/// What a filter policy condition reads from a span, as its key names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyTarget {
    /// `name`: the span name.
    Name,
    /// `status`: `STATUS_CODE_*`.
    Status,
    /// `kind`: `SPAN_KIND_*`.
    Kind,
    /// `span.<key>`: a span attribute.
    Span(String),
    /// `resource.<key>`: a resource attribute.
    Resource(String),
}

impl PolicyAttribute {
    /// What the key names in a span; keys other than `name`, `status`, `kind`, `span.<key>`
    /// and `resource.<key>` are refused.
    pub fn target(&self) -> Result<PolicyTarget, String> {
        Ok(match self.key.as_str() {
            "name" => PolicyTarget::Name,
            "status" => PolicyTarget::Status,
            "kind" => PolicyTarget::Kind,
            key => {
                if let Some(rest) = key.strip_prefix("span.") {
                    PolicyTarget::Span(rest.to_string())
                } else if let Some(rest) = key.strip_prefix("resource.") {
                    PolicyTarget::Resource(rest.to_string())
                } else {
                    return Err(format!(
                        "key {key:?} must be name, status, kind, span.<attribute> or resource.<attribute>"
                    ));
                }
            }
        })
    }

    /// The value compiled as the regular expression of a `match_type: regex` block; only a
    /// string is a pattern.
    pub fn regex(&self) -> Result<Regex, String> {
        let PolicyValue::String(pattern) = &self.value else {
            return Err(format!(
                "key {:?}: a regex value must be a string",
                self.key
            ));
        };
        Regex::new(pattern).map_err(|error| format!("invalid regex {pattern:?}: {error}"))
    }
}

impl PolicyMatch {
    /// Checks every condition in order as the span filter compiles it: its key, then (for
    /// `regex`) its pattern.
    pub fn validate(&self) -> Result<(), String> {
        for attribute in &self.attributes {
            attribute.target()?;
            if self.match_type == MatchType::Regex {
                attribute.regex()?;
            }
        }
        Ok(())
    }
}

/// One filter policy (Tempo's `filter_policies` entry).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterPolicy {
    /// Spans must match every `include` block of every policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<PolicyMatch>,
    /// A span matching any `include_any` block is kept (unless excluded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_any: Option<PolicyMatch>,
    /// A span matching any `exclude` block is dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<PolicyMatch>,
}

/// The `metrics_generator.processors.span_metrics` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsConfig {
    /// Whether span metrics are generated.
    pub enabled: bool,
    /// Upper bounds (seconds) of `traces_spanmetrics_latency`; `+Inf` is added.
    pub histogram_buckets: Vec<f64>,
    /// Which default labels are written.
    pub intrinsic_dimensions: IntrinsicDimensions,
    /// Extra labels from attributes (resource first, then span); `http.route` becomes
    /// `http_route`, and a name equal to a default label gets a `__` prefix.
    pub dimensions: Vec<String>,
    /// Extra labels joined from several attributes.
    pub dimension_mappings: Vec<DimensionMapping>,
    /// Write `traces_target_info` (one series per resource) and the `job`/`instance` labels.
    pub enable_target_info: bool,
    /// With `enable_target_info`, also write `instance` from `service.instance.id`.
    pub enable_instance_label: bool,
    /// Resource attributes left out of `traces_target_info`.
    pub target_info_excluded_dimensions: Vec<String>,
    /// A double attribute holding the sampling ratio; counts are multiplied by its inverse.
    pub span_multiplier_key: String,
    /// Which spans count (include / include_any / exclude blocks).
    pub filter_policies: Vec<FilterPolicy>,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            enabled: true,
            // ExponentialBuckets(0.002, 2, 14), as Tempo.
            histogram_buckets: vec![
                0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
                8.192, 16.384,
            ],
            intrinsic_dimensions: IntrinsicDimensions::default(),
            dimensions: Vec::new(),
            dimension_mappings: Vec::new(),
            enable_target_info: false,
            enable_instance_label: true,
            target_info_excluded_dimensions: Vec::new(),
            span_multiplier_key: String::new(),
            filter_policies: Vec::new(),
        }
    }
}

/// The `metrics_generator.processors.service_graphs` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceGraphsConfig {
    /// Whether service graphs are generated.
    pub enabled: bool,
    /// How long half of a call (client or server span) waits for the other half.
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
    /// Most half-calls waiting at once; further ones are dropped and counted.
    pub max_items: usize,
    /// Upper bounds (seconds) of the client/server latency histograms; `+Inf` is added.
    pub histogram_buckets: Vec<f64>,
    /// Extra labels from attributes (resource first, then span), sanitised.
    pub dimensions: Vec<String>,
    /// Write dimensions as `client_<name>` and `server_<name>` instead of one label.
    pub enable_client_server_prefix: bool,
    /// Write `traces_service_graph_request_messaging_system_seconds` for producer→consumer edges.
    pub enable_messaging_system_latency_histogram: bool,
    /// Write `virtual_node="client"|"server"` on edges to an uninstrumented peer.
    pub enable_virtual_node_label: bool,
    /// Span attributes naming an uninstrumented peer, first match wins.
    pub peer_attributes: Vec<String>,
    /// Attributes that make a client span a database call (resource first, then span).
    pub database_name_attributes: Vec<String>,
    /// A double attribute holding the sampling ratio; counts are multiplied by its inverse.
    pub span_multiplier_key: String,
    /// Which spans take part (include / include_any / exclude blocks).
    pub filter_policies: Vec<FilterPolicy>,
}

impl Default for ServiceGraphsConfig {
    fn default() -> Self {
        ServiceGraphsConfig {
            enabled: true,
            wait: Duration::from_secs(10),
            max_items: 10_000,
            histogram_buckets: vec![0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8],
            dimensions: Vec::new(),
            enable_client_server_prefix: false,
            enable_messaging_system_latency_histogram: false,
            enable_virtual_node_label: false,
            peer_attributes: strings(&["peer.service", "db.name", "db.system", "db.system.name"]),
            database_name_attributes: strings(&[
                "db.namespace",
                "db.name",
                "db.system",
                "db.system.name",
            ]),
            span_multiplier_key: String::new(),
            filter_policies: Vec::new(),
        }
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

fn check_buckets(buckets: &[f64]) -> Result<(), String> {
    if buckets.iter().any(|bound| !bound.is_finite()) {
        return Err("must be finite numbers (+Inf is added)".into());
    }
    Ok(())
}

/// Checks filter policies as the span filter compiles them: blocks in the order `include`,
/// `include_any`, `exclude`, policy by policy; the first fault is the error.
fn check_filter_policies(policies: &[FilterPolicy]) -> Result<(), String> {
    for policy in policies {
        for block in [&policy.include, &policy.include_any, &policy.exclude]
            .into_iter()
            .flatten()
        {
            block.validate()?;
        }
    }
    Ok(())
}

impl GeneratorConfig {
    /// Refuses settings the generator cannot run with, naming the key (below
    /// `metrics_generator.`) and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        fn invalid<T>(key: &str, reason: String) -> Result<T, (String, String)> {
            Err((key.to_string(), reason))
        }
        if !is_valid_label_name(&self.trace_id_label_name) {
            return invalid(
                "trace_id_label_name",
                format!("{:?} is not a label name", self.trace_id_label_name),
            );
        }
        for (index, target) in self.remote_write.iter().enumerate() {
            let key = format!("remote_write[{index}]");
            if !(target.url.starts_with("http://") || target.url.starts_with("https://")) {
                return invalid(
                    &format!("{key}.url"),
                    format!("{:?} is not an http(s) URL", target.url),
                );
            }
            if target.sources.is_empty() {
                return invalid(
                    &format!("{key}.sources"),
                    "names no source: list generator, otlp_metrics or both".into(),
                );
            }
            if target.basic_auth.is_some() && target.bearer_token.is_some() {
                return invalid(
                    &key,
                    "basic_auth and bearer_token cannot both be set".into(),
                );
            }
            for tenant in &target.tenants {
                if let Err(reason) = crate::tenant::validate_tenant(tenant) {
                    return invalid(&format!("{key}.tenants"), format!("{tenant:?}: {reason}"));
                }
            }
        }
        if self.remote_write_interval.is_zero() {
            return invalid("remote_write_interval", "must be greater than 0s".into());
        }
        if self.remote_write_queue_size == 0 {
            return invalid("remote_write_queue_size", "must be greater than 0".into());
        }
        if self.remote_write_max_series_per_request == 0 {
            return invalid(
                "remote_write_max_series_per_request",
                "must be greater than 0".into(),
            );
        }
        if self.max_queued_spans == 0 {
            return invalid("max_queued_spans", "must be greater than 0".into());
        }
        self.otlp_metrics.validate()?;
        for name in self.registry.external_labels.keys() {
            if !is_valid_label_name(name) {
                return invalid(
                    "registry.external_labels",
                    format!("{name:?} is not a label name"),
                );
            }
        }
        let tenant_label = &self.registry.inject_tenant_id_as;
        if !tenant_label.is_empty() && !is_valid_label_name(tenant_label) {
            return invalid(
                "registry.inject_tenant_id_as",
                format!("{tenant_label:?} is not a label name"),
            );
        }
        if self.registry.stale_duration.is_zero() {
            return invalid("registry.stale_duration", "must be greater than 0s".into());
        }
        let span_metrics = &self.processors.span_metrics;
        check_buckets(&span_metrics.histogram_buckets)
            .or_else(|reason| invalid("processors.span_metrics.histogram_buckets", reason))?;
        check_filter_policies(&span_metrics.filter_policies)
            .or_else(|reason| invalid("processors.span_metrics.filter_policies", reason))?;
        let service_graphs = &self.processors.service_graphs;
        check_buckets(&service_graphs.histogram_buckets)
            .or_else(|reason| invalid("processors.service_graphs.histogram_buckets", reason))?;
        check_filter_policies(&service_graphs.filter_policies)
            .or_else(|reason| invalid("processors.service_graphs.filter_policies", reason))?;
        if service_graphs.wait.is_zero() {
            return invalid(
                "processors.service_graphs.wait",
                "must be greater than 0s".into(),
            );
        }
        Ok(())
    }
}
