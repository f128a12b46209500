//! The metrics-generator: span metrics and service graphs with exemplars from every accepted
//! span, with Tempo's names and labels (reference/metrics-generator.md) so Grafana's service
//! graph and RED dashboards work unchanged.
//!
//! The distributor hands each accepted request to [`Generator::reserve`] / [`Reservation::send`];
//! the spans are processed on a dedicated thread, so ingest never waits for the generator. The
//! queue is bounded by `max_queued_spans`: past it a request's spans are skipped and counted.
//! `/metrics` renders the series in Prometheus or OpenMetrics text ([`exposition`]).
//!
//! Every tenant has its own [`GeneratorState`] (registry, processors, series limit), created on
//! the tenant's first spans and dropped once all its series went stale, as Tempo keeps one
//! registry per tenant: a tenant's series are rendered, remote-written and limited apart from
//! every other tenant's. Without multi-tenancy the only tenant is `single-tenant`.

pub mod config;
pub mod exposition;
pub mod filter;
pub mod labels;
pub mod otlp_metrics;
pub mod registry;
pub mod remote_write;
pub mod servicegraphs;
pub mod spanmetrics;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use parking_lot::Mutex;

use crate::overrides::OverridesConfig;
use crate::telemetry::stage::Stage;
pub use config::GeneratorConfig;
use exposition::Format;
use labels::{string_attribute, trace_id_text};
use registry::{Registry, RegistryStats};
use servicegraphs::{ServiceGraphStats, ServiceGraphs};
use spanmetrics::SpanMetrics;

/// How often pending service-graph edges are checked for expiry (Tempo: about every 2 s, at
/// one-second granularity).
const TICK: Duration = Duration::from_secs(1);

/// Longest time between two sweeps of stale series (Tempo sweeps every 5 minutes).
const MAX_STALE_SWEEP: Duration = Duration::from_secs(5 * 60);

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Counters about the generator itself, rendered with the appliance's own metrics.
#[derive(Debug, Default)]
struct GeneratorCounters {
    spans_received: AtomicU64,
    discarded_queue_full: AtomicU64,
    discarded_slack: AtomicU64,
    discarded_filtered: AtomicU64,
    discarded_invalid: AtomicU64,
}

/// The processors and their series; one lock, taken per request and per scrape.
pub struct GeneratorState {
    config: GeneratorConfig,
    registry: Registry,
    span_metrics: Option<SpanMetrics>,
    service_graphs: Option<ServiceGraphs>,
    slack_ns: u64,
}

/// What one request contributed, for the generator's own counters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConsumeOutcome {
    /// Spans looked at.
    pub spans: u64,
    /// Spans outside `metrics_ingestion_time_range_slack`.
    pub outside_slack: u64,
    /// Spans a span-metrics filter policy dropped.
    pub filtered: u64,
    /// Spans without a usable trace ID.
    pub invalid: u64,
}

impl GeneratorState {
    /// Builds the processors named in the config.
    pub fn new(config: GeneratorConfig) -> Result<GeneratorState, String> {
        let mut registry = Registry::new(config.registry.clone());
        let span_metrics = if config.processors.span_metrics.enabled {
            Some(SpanMetrics::new(
                config.processors.span_metrics.clone(),
                &mut registry,
            )?)
        } else {
            None
        };
        let service_graphs = if config.processors.service_graphs.enabled {
            Some(ServiceGraphs::new(
                config.processors.service_graphs.clone(),
                &mut registry,
            )?)
        } else {
            None
        };
        let slack_ns =
            u64::try_from(config.metrics_ingestion_time_range_slack.as_nanos()).unwrap_or(u64::MAX);
        Ok(GeneratorState {
            config,
            registry,
            span_metrics,
            service_graphs,
            slack_ns,
        })
    }

    /// Runs every span of a request through the processors; `now_ms` is the arrival time.
    pub fn consume(
        &mut self,
        tenant: &str,
        resource_spans: &[ResourceSpans],
        now_ms: i64,
    ) -> ConsumeOutcome {
        let mut outcome = ConsumeOutcome::default();
        let now_ns = u64::try_from(now_ms).unwrap_or(0).saturating_mul(1_000_000);
        let earliest_ns = now_ns.saturating_sub(self.slack_ns);
        let latest_ns = now_ns.saturating_add(self.slack_ns);
        for batch in resource_spans {
            let resource: &[_] = batch
                .resource
                .as_ref()
                .map(|resource| resource.attributes.as_slice())
                .unwrap_or_default();
            let service =
                string_attribute(resource, "service.name").filter(|name| !name.is_empty());
            let mut counted_in_resource = false;
            for span in batch.scope_spans.iter().flat_map(|scope| &scope.spans) {
                outcome.spans += 1;
                if span.end_time_unix_nano < earliest_ns || span.end_time_unix_nano > latest_ns {
                    outcome.outside_slack += 1;
                    continue;
                }
                if span.trace_id.is_empty() || span.trace_id.iter().all(|byte| *byte == 0) {
                    outcome.invalid += 1;
                    continue;
                }
                let trace_id = trace_id_text(&span.trace_id);
                if let Some(span_metrics) = &self.span_metrics {
                    if span_metrics.consume_span(
                        &mut self.registry,
                        tenant,
                        resource,
                        service.as_deref(),
                        span,
                        &trace_id,
                        now_ms,
                    ) {
                        counted_in_resource = true;
                    } else {
                        outcome.filtered += 1;
                    }
                }
                if let (Some(service_graphs), Some(service)) =
                    (&mut self.service_graphs, service.as_deref())
                {
                    service_graphs.consume_span(
                        &mut self.registry,
                        tenant,
                        resource,
                        service,
                        span,
                        &trace_id,
                        now_ms,
                    );
                }
            }
            if counted_in_resource {
                if let Some(span_metrics) = &self.span_metrics {
                    span_metrics.finish_resource(&mut self.registry, tenant, resource, now_ms);
                }
            }
        }
        outcome
    }

    /// Expires service-graph edges that waited too long.
    pub fn expire_edges(&mut self, now_ms: i64) {
        if let Some(service_graphs) = &mut self.service_graphs {
            service_graphs.expire(&mut self.registry, now_ms);
        }
    }

    /// Deletes series not updated for `registry.stale_duration`.
    pub fn remove_stale(&mut self, now_ms: i64) -> usize {
        self.registry.remove_stale(now_ms)
    }

    /// The series.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Appends the generated series in `format` (without `# EOF`).
    pub fn render(&self, format: Format, out: &mut String) {
        exposition::render_registry(
            &self.registry,
            format,
            &self.config.trace_id_label_name,
            out,
        );
    }

    /// Whether the state holds nothing worth keeping: no series, no half-edge waiting.
    pub fn is_idle(&self) -> bool {
        self.registry.stats().active_series == 0
            && self
                .service_graphs
                .as_ref()
                .is_none_or(|processor| processor.pending() == 0)
    }

    /// The processors' own counters and the half-edges waiting for their partner.
    fn stats(&self) -> TenantStats {
        TenantStats {
            registry: self.registry.stats(),
            service_graphs: self
                .service_graphs
                .as_ref()
                .map(|processor| processor.stats())
                .unwrap_or_default(),
            pending_edges: self
                .service_graphs
                .as_ref()
                .map(|processor| processor.pending())
                .unwrap_or_default() as u64,
        }
    }
}

/// A per-tenant family of the generator's own metrics: name, type, help, value.
type TenantFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TenantStats) -> u64,
);

/// One tenant's counters, for the appliance's own metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TenantStats {
    /// The registry's counters.
    pub registry: RegistryStats,
    /// The service-graph processor's counters.
    pub service_graphs: ServiceGraphStats,
    /// Service-graph half-edges waiting now.
    pub pending_edges: u64,
}

impl TenantStats {
    /// Adds `other`'s counters and gauges to these.
    fn add(&mut self, other: &TenantStats) {
        let registry = &mut self.registry;
        registry.active_series += other.registry.active_series;
        registry.series_limited += other.registry.series_limited;
        registry.series_removed_stale += other.registry.series_removed_stale;
        registry.invalid_labels += other.registry.invalid_labels;
        let graphs = &mut self.service_graphs;
        graphs.expired_edges += other.service_graphs.expired_edges;
        graphs.dropped_spans += other.service_graphs.dropped_spans;
        graphs.completed_edges += other.service_graphs.completed_edges;
        self.pending_edges += other.pending_edges;
    }

    /// The counters only (gauges zeroed): what a dropped tenant leaves behind in the totals.
    fn counters_only(mut self) -> TenantStats {
        self.registry.active_series = 0;
        self.pending_edges = 0;
        self
    }
}

/// One [`GeneratorState`] per tenant, created on the tenant's first spans with the tenant's
/// series limit (`overrides.per_tenant.<tenant>.metrics_generator.max_active_series`, else
/// `registry.max_active_series`).
pub struct Tenants {
    config: GeneratorConfig,
    overrides: Arc<OverridesConfig>,
    states: Mutex<BTreeMap<String, Arc<Mutex<GeneratorState>>>>,
    /// Counters of tenants dropped after going idle, so the totals never go down.
    retired: Mutex<TenantStats>,
}

impl Tenants {
    /// No tenant yet; fails if the processors cannot be built from `config`.
    pub fn new(
        config: GeneratorConfig,
        overrides: Arc<OverridesConfig>,
    ) -> Result<Tenants, String> {
        GeneratorState::new(config.clone())?;
        Ok(Tenants {
            config,
            overrides,
            states: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(TenantStats::default()),
        })
    }

    /// The most series `tenant` may hold at once.
    pub fn max_active_series(&self, tenant: &str) -> usize {
        self.overrides
            .generator_max_active_series(tenant)
            .unwrap_or(self.config.registry.max_active_series)
    }

    /// `tenant`'s state, created if it has none yet.
    fn state_or_create(&self, tenant: &str) -> Result<Arc<Mutex<GeneratorState>>, String> {
        let mut states = self.states.lock();
        if let Some(state) = states.get(tenant) {
            return Ok(Arc::clone(state));
        }
        let mut config = self.config.clone();
        config.registry.max_active_series = self.max_active_series(tenant);
        let state = Arc::new(Mutex::new(GeneratorState::new(config)?));
        states.insert(tenant.to_string(), Arc::clone(&state));
        tracing::debug!(tenant, "generator: first spans of a tenant");
        Ok(state)
    }

    /// `tenant`'s state, if it has one.
    pub fn state(&self, tenant: &str) -> Option<Arc<Mutex<GeneratorState>>> {
        self.states.lock().get(tenant).cloned()
    }

    /// The tenants with a state, sorted.
    pub fn names(&self) -> Vec<String> {
        self.states.lock().keys().cloned().collect()
    }

    /// Every tenant's state, sorted by tenant.
    fn all(&self) -> Vec<(String, Arc<Mutex<GeneratorState>>)> {
        self.states
            .lock()
            .iter()
            .map(|(tenant, state)| (tenant.clone(), Arc::clone(state)))
            .collect()
    }

    /// Runs a request's spans through `tenant`'s processors.
    pub fn consume(
        &self,
        tenant: &str,
        resource_spans: &[ResourceSpans],
        now_ms: i64,
    ) -> ConsumeOutcome {
        match self.state_or_create(tenant) {
            Ok(state) => state.lock().consume(tenant, resource_spans, now_ms),
            Err(error) => {
                // Unreachable in practice: the same config built a state in `new`.
                tracing::error!(tenant, %error, "generator: cannot build a tenant's processors");
                ConsumeOutcome::default()
            }
        }
    }

    /// Expires every tenant's service-graph edges that waited too long.
    pub fn expire_edges(&self, now_ms: i64) {
        for (_, state) in self.all() {
            state.lock().expire_edges(now_ms);
        }
    }

    /// Deletes stale series of every tenant and drops the tenants left idle; returns how many
    /// label sets went.
    pub fn remove_stale(&self, now_ms: i64) -> usize {
        let mut removed = 0;
        let mut states = self.states.lock();
        let mut idle = Vec::new();
        for (tenant, state) in states.iter() {
            let mut state = state.lock();
            removed += state.remove_stale(now_ms);
            if state.is_idle() {
                idle.push(tenant.clone());
            }
        }
        for tenant in idle {
            if let Some(state) = states.remove(&tenant) {
                let stats = state.lock().stats();
                self.retired.lock().add(&stats.counters_only());
                tracing::debug!(tenant, "generator: tenant idle, its registry dropped");
            }
        }
        removed
    }

    /// Appends `tenant`'s generated series in `format` (nothing if it has none).
    pub fn render(&self, tenant: &str, format: Format, out: &mut String) {
        if let Some(state) = self.state(tenant) {
            state.lock().render(format, out);
        }
    }

    /// Every tenant's counters, and their sum (with those of dropped tenants).
    pub fn stats(&self) -> (Vec<(String, TenantStats)>, TenantStats) {
        let mut total = *self.retired.lock();
        let mut per_tenant = Vec::new();
        for (tenant, state) in self.all() {
            let stats = state.lock().stats();
            total.add(&stats);
            per_tenant.push((tenant, stats));
        }
        (per_tenant, total)
    }
}

struct Batch {
    tenant: String,
    resource_spans: Vec<ResourceSpans>,
    spans: usize,
    received_ms: i64,
}

/// The running generator: a queue in front of a dedicated thread, and the state it updates.
pub struct Generator {
    tenants: Arc<Tenants>,
    queue: Mutex<Option<mpsc::Sender<Batch>>>,
    queued_spans: Arc<AtomicUsize>,
    max_queued_spans: usize,
    counters: Arc<GeneratorCounters>,
}

/// Room for one request's spans in the generator's queue; give it the spans with
/// [`Reservation::send`] once the request is accepted, or drop it to release the room.
pub struct Reservation<'a> {
    generator: &'a Generator,
    spans: usize,
}

impl Reservation<'_> {
    /// Queues the request's spans for the generator thread; never blocks.
    pub fn send(self, tenant: &str, resource_spans: Vec<ResourceSpans>) {
        let batch = Batch {
            tenant: tenant.to_string(),
            resource_spans,
            spans: self.spans,
            received_ms: now_ms(),
        };
        let sent = match self.generator.queue.lock().as_ref() {
            Some(queue) => queue.send(batch).is_ok(),
            None => false,
        };
        if sent {
            // The thread releases the room once it has processed the batch.
            std::mem::forget(self);
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.generator
            .queued_spans
            .fetch_sub(self.spans, Ordering::AcqRel);
    }
}

impl Generator {
    /// Checks the processors' config and starts the generator thread; each tenant's series
    /// limit comes from `overrides` (else `registry.max_active_series`).
    pub fn start(
        config: GeneratorConfig,
        overrides: Arc<OverridesConfig>,
    ) -> Result<Arc<Generator>, String> {
        let max_queued_spans = config.max_queued_spans;
        let stale_sweep = (config.registry.stale_duration / 2).min(MAX_STALE_SWEEP);
        let tenants = Arc::new(Tenants::new(config, overrides)?);
        let (sender, receiver) = mpsc::channel::<Batch>();
        let queued_spans = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(GeneratorCounters::default());
        let generator = Arc::new(Generator {
            tenants: Arc::clone(&tenants),
            queue: Mutex::new(Some(sender)),
            queued_spans: Arc::clone(&queued_spans),
            max_queued_spans,
            counters: Arc::clone(&counters),
        });
        std::thread::Builder::new()
            .name("generator".into())
            .spawn(move || run(receiver, tenants, queued_spans, counters, stale_sweep))
            .map_err(|error| format!("cannot start the generator thread: {error}"))?;
        Ok(generator)
    }

    /// Reserves queue room for `spans` spans, or counts them as discarded (`queue_full`) and
    /// returns `None` so the caller does not even copy them.
    pub fn reserve(&self, spans: usize) -> Option<Reservation<'_>> {
        let reserved = self
            .queued_spans
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                let total = queued.checked_add(spans)?;
                (total <= self.max_queued_spans).then_some(total)
            })
            .is_ok();
        if reserved {
            Some(Reservation {
                generator: self,
                spans,
            })
        } else {
            self.counters
                .discarded_queue_full
                .fetch_add(spans as u64, Ordering::Relaxed);
            tracing::debug!(spans, "generator queue full, skipping spans");
            None
        }
    }

    /// Stops the thread once the queued requests are processed.
    pub fn stop(&self) {
        self.queue.lock().take();
    }

    /// Appends `tenant`'s generated series (`traces_*`) in `format`, without `# EOF`.
    pub fn render(&self, tenant: &str, format: Format, out: &mut String) {
        self.tenants.render(tenant, format, out);
    }

    /// The per-tenant states.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// Appends the generator's own metrics (Prometheus text) to `out`: totals over every
    /// tenant, and each tenant's active and limited series.
    pub fn render_own_metrics(&self, out: &mut String) {
        let (per_tenant, total) = self.tenants.stats();
        let registry = total.registry;
        let service_graphs = total.service_graphs;
        let pending = total.pending_edges;
        let counters = &self.counters;
        let _ = writeln!(
            out,
            "# HELP tempo_metrics_generator_spans_received_total Spans the generator processed."
        );
        let _ = writeln!(
            out,
            "# TYPE tempo_metrics_generator_spans_received_total counter"
        );
        let _ = writeln!(
            out,
            "tempo_metrics_generator_spans_received_total {}",
            counters.spans_received.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP tempo_metrics_generator_spans_discarded_total Spans the generator skipped, by reason.");
        let _ = writeln!(
            out,
            "# TYPE tempo_metrics_generator_spans_discarded_total counter"
        );
        for (reason, counter) in [
            ("queue_full", &counters.discarded_queue_full),
            ("outside_metrics_ingestion_slack", &counters.discarded_slack),
            ("filtered", &counters.discarded_filtered),
            ("invalid_trace_id", &counters.discarded_invalid),
        ] {
            let _ = writeln!(
                out,
                "tempo_metrics_generator_spans_discarded_total{{reason=\"{reason}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let samples: [(&str, &str, &str, u64); 8] = [
            (
                crate::telemetry::names::GENERATOR_QUEUED_SPANS,
                "gauge",
                "Spans waiting for the generator thread.",
                self.queued_spans.load(Ordering::Relaxed) as u64,
            ),
            (
                "tempo_metrics_generator_registry_active_series",
                "gauge",
                "Generated series alive (each bucket, _sum and _count counts).",
                registry.active_series,
            ),
            (
                "tempo_metrics_generator_registry_series_limited_total",
                "counter",
                "Updates folded into the overflow series by registry.max_active_series.",
                registry.series_limited,
            ),
            (
                crate::telemetry::names::GENERATOR_SERIES_REMOVED,
                "counter",
                "Series deleted after registry.stale_duration without updates.",
                registry.series_removed_stale,
            ),
            (
                crate::telemetry::names::GENERATOR_INVALID_LABELS,
                "counter",
                "Updates dropped because cut labels were not valid UTF-8.",
                registry.invalid_labels,
            ),
            (
                "tempo_metrics_generator_processor_service_graphs_expired_edges_total",
                "counter",
                "Service-graph half-edges that expired (virtual or unpaired).",
                service_graphs.expired_edges,
            ),
            (
                "tempo_metrics_generator_processor_service_graphs_dropped_spans_total",
                "counter",
                "Spans not paired because the service-graph store was full.",
                service_graphs.dropped_spans,
            ),
            (
                crate::telemetry::names::GENERATOR_PENDING_EDGES,
                "gauge",
                "Service-graph half-edges waiting for their partner.",
                pending,
            ),
        ];
        for (name, kind, help, value) in samples {
            crate::telemetry::write_sample(out, name, kind, help, value as f64);
        }
        crate::telemetry::write_sample(
            out,
            crate::telemetry::GENERATOR_TENANTS,
            "gauge",
            "Tenants with a metrics-generator registry (series or service-graph edges alive).",
            per_tenant.len() as f64,
        );
        let tenant_families: [TenantFamily; 2] = [
            (
                crate::telemetry::GENERATOR_TENANT_ACTIVE_SERIES,
                "gauge",
                "Generated series alive per tenant (each tenant has its own max_active_series).",
                |stats| stats.registry.active_series,
            ),
            (
                crate::telemetry::GENERATOR_TENANT_SERIES_LIMITED,
                "counter",
                "Updates folded into the overflow series per tenant since its registry was created.",
                |stats| stats.registry.series_limited,
            ),
        ];
        for (name, kind, help, value) in tenant_families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (tenant, stats) in &per_tenant {
                let _ = writeln!(
                    out,
                    "{name}{{tenant=\"{}\"}} {}",
                    crate::telemetry::escape_label(tenant),
                    value(stats)
                );
            }
        }
    }

    /// Runs `f` on `tenant`'s state, if the tenant has one: remote write's collection, the UI,
    /// tests and benchmarks.
    pub fn with_tenant_state<T>(
        &self,
        tenant: &str,
        f: impl FnOnce(&mut GeneratorState) -> T,
    ) -> Option<T> {
        let state = self.tenants.state(tenant)?;
        let mut state = state.lock();
        Some(f(&mut state))
    }
}

/// The remote writer's view of the generator: its tenants' registries, read under each
/// tenant's lock.
impl remote_write::TenantRegistries for Generator {
    fn tenant_names(&self) -> Vec<String> {
        self.tenants.names()
    }

    fn collect_tenant(
        &self,
        tenant: &str,
        collect: &dyn Fn(&Registry) -> Vec<remote_write::TimeSeries>,
    ) -> Option<Vec<remote_write::TimeSeries>> {
        self.with_tenant_state(tenant, |state| collect(state.registry()))
    }
}

fn run(
    receiver: mpsc::Receiver<Batch>,
    tenants: Arc<Tenants>,
    queued_spans: Arc<AtomicUsize>,
    counters: Arc<GeneratorCounters>,
    stale_sweep: Duration,
) {
    let mut last_tick = now_ms();
    let mut last_sweep = last_tick;
    let tick_ms = TICK.as_millis() as i64;
    let sweep_ms = i64::try_from(stale_sweep.as_millis())
        .unwrap_or(i64::MAX)
        .max(tick_ms);
    loop {
        match receiver.recv_timeout(TICK) {
            Ok(batch) => {
                let outcome = Stage::Generator.run(|| {
                    let outcome =
                        tenants.consume(&batch.tenant, &batch.resource_spans, batch.received_ms);
                    // The request's spans are freed here too: part of the generator's cost.
                    drop(batch.resource_spans);
                    outcome
                });
                queued_spans.fetch_sub(batch.spans, Ordering::AcqRel);
                counters
                    .spans_received
                    .fetch_add(outcome.spans, Ordering::Relaxed);
                counters
                    .discarded_slack
                    .fetch_add(outcome.outside_slack, Ordering::Relaxed);
                counters
                    .discarded_filtered
                    .fetch_add(outcome.filtered, Ordering::Relaxed);
                counters
                    .discarded_invalid
                    .fetch_add(outcome.invalid, Ordering::Relaxed);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                tracing::info!("generator stopped");
                return;
            }
        }
        let now = now_ms();
        if now - last_tick >= tick_ms {
            last_tick = now;
            Stage::Generator.run(|| tenants.expire_edges(now));
        }
        if now - last_sweep >= sweep_ms {
            last_sweep = now;
            let removed = Stage::Generator.run(|| tenants.remove_stale(now));
            if removed > 0 {
                tracing::debug!(removed, "generator removed stale series");
            }
        }
    }
}
