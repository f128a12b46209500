//! The metrics-generator: span metrics and service graphs with exemplars from every accepted
//! span, with Tempo's names and labels (reference/metrics-generator.md) so Grafana's service
//! graph and RED dashboards work unchanged.
//!
//! The distributor hands each accepted request to [`Generator::reserve`] / [`Reservation::send`];
//! the spans are processed on a dedicated thread, so ingest never waits for the generator. The
//! queue is bounded by `max_queued_spans`: past it a request's spans are skipped and counted.
//! `/metrics` renders the series in Prometheus or OpenMetrics text ([`exposition`]).

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

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use parking_lot::Mutex;

pub use config::GeneratorConfig;
use exposition::Format;
use labels::{string_attribute, trace_id_text};
use registry::Registry;
use servicegraphs::ServiceGraphs;
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
}

struct Batch {
    tenant: String,
    resource_spans: Vec<ResourceSpans>,
    spans: usize,
    received_ms: i64,
}

/// The running generator: a queue in front of a dedicated thread, and the state it updates.
pub struct Generator {
    state: Arc<Mutex<GeneratorState>>,
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
    /// Builds the processors and starts the generator thread.
    pub fn start(config: GeneratorConfig) -> Result<Arc<Generator>, String> {
        let max_queued_spans = config.max_queued_spans;
        let stale_sweep = (config.registry.stale_duration / 2).min(MAX_STALE_SWEEP);
        let state = Arc::new(Mutex::new(GeneratorState::new(config)?));
        let (sender, receiver) = mpsc::channel::<Batch>();
        let queued_spans = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(GeneratorCounters::default());
        let generator = Arc::new(Generator {
            state: Arc::clone(&state),
            queue: Mutex::new(Some(sender)),
            queued_spans: Arc::clone(&queued_spans),
            max_queued_spans,
            counters: Arc::clone(&counters),
        });
        std::thread::Builder::new()
            .name("generator".into())
            .spawn(move || run(receiver, state, queued_spans, counters, stale_sweep))
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

    /// Appends the generated series (`traces_*`) in `format`, without `# EOF`.
    pub fn render(&self, format: Format, out: &mut String) {
        self.state.lock().render(format, out);
    }

    /// Appends the generator's own metrics (Prometheus text) to `out`.
    pub fn render_own_metrics(&self, out: &mut String) {
        let (registry, service_graphs, pending) = {
            let state = self.state.lock();
            (
                state.registry.stats(),
                state
                    .service_graphs
                    .as_ref()
                    .map(|processor| processor.stats())
                    .unwrap_or_default(),
                state
                    .service_graphs
                    .as_ref()
                    .map(|processor| processor.pending())
                    .unwrap_or_default(),
            )
        };
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
                "vivace_generator_queued_spans",
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
                "vivace_generator_registry_series_removed_total",
                "counter",
                "Series deleted after registry.stale_duration without updates.",
                registry.series_removed_stale,
            ),
            (
                "vivace_generator_registry_invalid_labels_total",
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
                "vivace_generator_service_graph_pending_edges",
                "gauge",
                "Service-graph half-edges waiting for their partner.",
                pending as u64,
            ),
        ];
        for (name, kind, help, value) in samples {
            crate::telemetry::write_sample(out, name, kind, help, value as f64);
        }
    }

    /// Runs `f` on the state: remote write's collection, tests and benchmarks.
    pub fn with_state<T>(&self, f: impl FnOnce(&mut GeneratorState) -> T) -> T {
        f(&mut self.state.lock())
    }
}

fn run(
    receiver: mpsc::Receiver<Batch>,
    state: Arc<Mutex<GeneratorState>>,
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
                let outcome =
                    state
                        .lock()
                        .consume(&batch.tenant, &batch.resource_spans, batch.received_ms);
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
            state.lock().expire_edges(now);
        }
        if now - last_sweep >= sweep_ms {
            last_sweep = now;
            let removed = state.lock().remove_stale(now);
            if removed > 0 {
                tracing::debug!(removed, "generator removed stale series");
            }
        }
    }
}
