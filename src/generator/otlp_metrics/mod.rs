//! OTLP metrics to Prometheus series, as the OpenTelemetry "Prometheus and OpenMetrics
//! Compatibility" specification describes, for an application's own metrics sent to vivace's
//! OTLP ports (`receiver::otlp_metrics` decodes them).
//!
//! - Names: invalid characters become `_`, the unit is appended as a word (`s` → `_seconds`,
//!   `By` → `_bytes`, `{requests}` dropped, `m/s` → `_meters_per_second`), monotonic sums end
//!   in `_total`, gauges of unit `1` in `_ratio`. Label names are sanitised the same way
//!   (`key_` before a leading digit, `key` before a leading `_`); attributes that collide
//!   after sanitising are joined with `;`.
//! - Gauges and non-monotonic sums are gauges; monotonic sums are counters; histograms are
//!   classic `_bucket{le}`/`_sum`/`_count`; exponential histograms are turned into classic
//!   buckets at their own boundaries; summaries are `{quantile}`/`_sum`/`_count`.
//! - Delta temporality is accumulated into cumulative series (the state is bounded by
//!   `max_series`); points older than the last one of their series are held back, the
//!   remote-write timestamp guard's rule.
//! - Resource: `job` (`service.namespace/service.name`) and `instance` (`service.instance.id`)
//!   on every series, the other resource attributes on `target_info`. Scope: `otel_scope_name`
//!   and `otel_scope_version` labels, its attributes on `otel_scope_info`.
//! - Exemplars keep `trace_id` and `span_id` (hex) on the counter or bucket they belong to.
//! - A series that stops (no point for `staleness`, or a point flagged "no recorded value")
//!   gets Prometheus' stale marker and is forgotten.
//!
//! The converted series go through the generator's remote-write senders, and optionally to
//! scrapes. Each tenant has its own conversion state (bounded by `max_series` apart), its own
//! remote-write requests and its own scrape output.
//!
//! The conversion's parts: `naming` (metric and label names), `convert` (one export: resource
//! and scope labels, the steps every point goes through, exemplars), `points` and `exponential`
//! (each kind of data point), `cumulative` (delta to cumulative), `staleness` (stale markers and
//! expiry), `render` (series and scrape text). This file holds the state and the per-tenant path.

mod convert;
mod cumulative;
mod exponential;
mod naming;
mod points;
mod render;
mod staleness;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use self::cumulative::Accumulated;
pub use self::exponential::ExponentialBuckets;
pub use self::naming::{label_name, metric_name, Kind};
pub use self::staleness::{stale_nan, STALE_NAN_BITS};
pub use super::config::OtlpMetricsConfig;
use super::config::RemoteWriteSource;
use super::remote_write::{Label, RemoteWriter, TimeSeries};

/// One metric point's identity (`__name__` and labels, no `le`/`quantile`) and what it last
/// produced.
#[derive(Debug)]
struct Tracked {
    /// The family's name, which groups series in scrapes.
    family: String,
    kind: Kind,
    /// The metric's description, for `# HELP`.
    help: String,
    /// Receive time of the last point, for staleness.
    seen_ms: i64,
    /// Timestamp of the last point sent; older or equal points are held back.
    last_ms: i64,
    /// Point time of the last delta added, in nanoseconds.
    delta_time: u64,
    /// The running total of a delta series.
    accumulated: Option<Accumulated>,
    /// The expanded series last sent, with their values (for scrapes and stale markers).
    emitted: Vec<(Vec<Label>, f64)>,
}

/// What one export produced.
#[derive(Debug, Default)]
pub struct ExportOutcome {
    /// The series to remote-write, one sample each.
    pub series: Vec<TimeSeries>,
    /// Points refused, for OTLP's partial success.
    pub rejected_points: u64,
    /// Why the first refused point was refused.
    pub message: String,
}

impl ExportOutcome {
    /// Counts a refused point; the first reason is the one reported.
    fn reject(&mut self, reason: String) {
        self.rejected_points += 1;
        if self.message.is_empty() {
            self.message = reason;
        }
    }
}

/// The conversion state: every tracked point identity, bounded by `max_series`.
#[derive(Debug)]
pub struct Converter {
    max_series: usize,
    tracked: HashMap<Vec<Label>, Tracked>,
    active_series: usize,
    /// Data points converted.
    pub points_accepted: u64,
    /// Data points not newer than the last of their series.
    pub points_held_back: u64,
    /// Series ended with a stale marker.
    pub series_stale: u64,
}

impl Converter {
    /// An empty state remembering at most `max_series` series.
    pub fn new(max_series: usize) -> Converter {
        Converter {
            max_series,
            tracked: HashMap::new(),
            active_series: 0,
            points_accepted: 0,
            points_held_back: 0,
            series_stale: 0,
        }
    }

    /// Series remembered now.
    pub fn active_series(&self) -> usize {
        self.active_series
    }

    /// Whether no series is remembered.
    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }
}

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Counters of the conversion states of tenants that went idle and were dropped.
#[derive(Clone, Copy, Debug, Default)]
struct RetiredCounters {
    points_accepted: u64,
    points_held_back: u64,
    series_stale: u64,
}

/// The running OTLP metrics path: one conversion state per tenant, the shared remote writer,
/// staleness.
pub struct OtlpMetrics {
    config: OtlpMetricsConfig,
    converters: Mutex<BTreeMap<String, Arc<Mutex<Converter>>>>,
    retired: Mutex<RetiredCounters>,
    writer: Option<Arc<RemoteWriter>>,
    points_rejected: AtomicU64,
    exports: AtomicU64,
}

impl OtlpMetrics {
    /// The path with `writer` (the generator's remote writer, if it has targets) as output.
    pub fn new(config: OtlpMetricsConfig, writer: Option<Arc<RemoteWriter>>) -> OtlpMetrics {
        OtlpMetrics {
            converters: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(RetiredCounters::default()),
            config,
            writer,
            points_rejected: AtomicU64::new(0),
            exports: AtomicU64::new(0),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &OtlpMetricsConfig {
        &self.config
    }

    fn converter(&self, tenant: &str) -> Arc<Mutex<Converter>> {
        let mut converters = self.converters.lock();
        let converter = converters
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Converter::new(self.config.max_series))));
        Arc::clone(converter)
    }

    /// Converts one export of `tenant` and queues its series for remote write. CPU work: call
    /// it off the async runtime. Returns the points refused and why (OTLP partial success).
    pub fn export(&self, tenant: &str, request: &ExportMetricsServiceRequest) -> (u64, String) {
        let outcome = self.converter(tenant).lock().convert(request, now_ms());
        self.exports.fetch_add(1, Ordering::Relaxed);
        self.points_rejected
            .fetch_add(outcome.rejected_points, Ordering::Relaxed);
        if let Some(writer) = &self.writer {
            writer.send(RemoteWriteSource::OtlpMetrics, tenant, outcome.series);
        }
        (outcome.rejected_points, outcome.message)
    }

    /// Ends series that stopped; their stale markers are remote-written. A tenant left with
    /// no series has its state dropped.
    pub fn sweep(&self) {
        let staleness_ms = i64::try_from(self.config.staleness.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let mut converters = self.converters.lock();
        let mut idle = Vec::new();
        for (tenant, converter) in converters.iter() {
            let mut converter = converter.lock();
            let markers = converter.sweep(now, staleness_ms);
            if converter.is_empty() {
                idle.push(tenant.clone());
            }
            drop(converter);
            if !markers.is_empty() {
                tracing::debug!(
                    tenant,
                    series = markers.len(),
                    "otlp metrics: series went stale"
                );
                if let Some(writer) = &self.writer {
                    writer.send(RemoteWriteSource::OtlpMetrics, tenant, markers);
                }
            }
        }
        for tenant in idle {
            if let Some(converter) = converters.remove(&tenant) {
                let converter = converter.lock();
                let mut retired = self.retired.lock();
                retired.points_accepted += converter.points_accepted;
                retired.points_held_back += converter.points_held_back;
                retired.series_stale += converter.series_stale;
            }
        }
    }

    /// Sweeps for stale series until `stop`, at a tenth of `staleness` (at least every second).
    pub fn spawn_sweeper(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let every = (self.config.staleness / 10).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let this = Arc::clone(&self);
                let _ = tokio::task::spawn_blocking(move || this.sweep()).await;
            }
        })
    }

    /// Appends the latest value of every series converted for `tenant` (Prometheus text
    /// 0.0.4); nothing when the tenant sent none.
    pub fn render(&self, tenant: &str, out: &mut String) {
        let converter = self.converters.lock().get(tenant).cloned();
        if let Some(converter) = converter {
            converter.lock().render(out);
        }
    }

    /// Appends the path's own counters (Prometheus text).
    pub fn render_own_metrics(&self, out: &mut String) {
        let retired = *self.retired.lock();
        let (mut active, mut accepted, mut held_back, mut stale) = (
            0,
            retired.points_accepted,
            retired.points_held_back,
            retired.series_stale,
        );
        let converters: Vec<_> = self.converters.lock().values().cloned().collect();
        for converter in converters {
            let converter = converter.lock();
            active += converter.active_series();
            accepted += converter.points_accepted;
            held_back += converter.points_held_back;
            stale += converter.series_stale;
        }
        let name = crate::telemetry::names::OTLP_METRICS_DATA_POINTS;
        let _ = writeln!(
            out,
            "# HELP {name} OTLP metric data points received, by outcome."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (outcome, value) in [
            ("accepted", accepted),
            ("rejected", self.points_rejected.load(Ordering::Relaxed)),
            ("held_back", held_back),
        ] {
            let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {value}");
        }
        for (name, kind, help, value) in [
            (
                crate::telemetry::names::OTLP_METRICS_EXPORTS,
                "counter",
                "OTLP metric export requests converted.",
                self.exports.load(Ordering::Relaxed),
            ),
            (
                crate::telemetry::names::OTLP_METRICS_ACTIVE_SERIES,
                "gauge",
                "Converted series remembered (bounded by otlp_metrics.max_series).",
                active as u64,
            ),
            (
                crate::telemetry::names::OTLP_METRICS_STALE_SERIES,
                "counter",
                "Converted series ended with a stale marker.",
                stale,
            ),
        ] {
            crate::telemetry::write_sample(out, name, kind, help, value as f64);
        }
    }
}
