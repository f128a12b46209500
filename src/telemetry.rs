//! The appliance's own metrics, named in one place so they are reviewable: Tempo's names where a
//! Tempo dashboard expects them (`tempo_distributor_spans_received_total`, …), `vivace_*` for
//! the rest. Rendered in the Prometheus text format on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

pub mod stage;
pub use stage::Stage;

/// Most label combinations one metric keeps; more are folded into `__overflow__` so a flood of
/// tenants cannot grow memory without bound.
const MAX_SERIES_PER_METRIC: usize = 1000;

/// Upper bounds (seconds) of the request-latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

struct CounterFamily {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl CounterFamily {
    const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> CounterFamily {
        CounterFamily {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn add(&self, label_values: &[&str], amount: u64) {
        let mut series = self.series.lock();
        let key: Vec<String> = label_values.iter().map(|value| value.to_string()).collect();
        let key = if series.contains_key(&key) || series.len() < MAX_SERIES_PER_METRIC {
            key
        } else {
            label_values
                .iter()
                .map(|_| "__overflow__".to_string())
                .collect()
        };
        *series.entry(key).or_insert(0) += amount;
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} counter", self.name);
        for (values, count) in self.series.lock().iter() {
            let _ = writeln!(
                out,
                "{}{} {}",
                self.name,
                label_text(self.labels, values, None),
                count
            );
        }
    }
}

#[derive(Default, Clone)]
struct HistogramSeries {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, HistogramSeries>>,
}

impl HistogramFamily {
    fn observe(&self, label_values: &[&str], seconds: f64) {
        let mut series = self.series.lock();
        let key: Vec<String> = label_values.iter().map(|value| value.to_string()).collect();
        if !series.contains_key(&key) && series.len() >= MAX_SERIES_PER_METRIC {
            return;
        }
        let entry = series.entry(key).or_default();
        for (index, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                entry.buckets[index] += 1;
            }
        }
        entry.count += 1;
        entry.sum += seconds;
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} histogram", self.name);
        for (values, series) in self.series.lock().iter() {
            for (index, bound) in LATENCY_BUCKETS.iter().enumerate() {
                let le = bound.to_string();
                let labels = label_text(self.labels, values, Some(&le));
                let _ = writeln!(
                    out,
                    "{}_bucket{} {}",
                    self.name, labels, series.buckets[index]
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                self.name,
                label_text(self.labels, values, Some("+Inf")),
                series.count
            );
            let _ = writeln!(
                out,
                "{}_sum{} {}",
                self.name,
                label_text(self.labels, values, None),
                series.sum
            );
            let _ = writeln!(
                out,
                "{}_count{} {}",
                self.name,
                label_text(self.labels, values, None),
                series.count
            );
        }
    }
}

fn label_text(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label(value)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The names of vivace's own series that modules outside this file render: one place to find
/// every name `/metrics` serves (the help text stays beside the value it describes).
pub mod names {
    // Logs (`logs::store`).
    pub const LOGS_RECORDS_RECEIVED: &str = "vivace_logs_records_received_total";
    pub const LOGS_PUSHES_REFUSED: &str = "vivace_logs_pushes_refused_total";
    pub const LOGS_BLOCKS_FLUSHED: &str = "vivace_logs_blocks_flushed_total";
    pub const LOGS_FLUSH_FAILURES: &str = "vivace_logs_flush_failures_total";
    pub const LOGS_BLOCKS_DELETED: &str = "vivace_logs_blocks_deleted_total";
    pub const LOGS_HEAD_BYTES: &str = "vivace_logs_head_bytes";
    pub const LOGS_BLOCKS: &str = "vivace_logs_blocks";
    pub const LOGS_WAL_DISK_BYTES: &str = "vivace_logs_wal_disk_bytes";
    // Alerts (`alerts`).
    pub const ALERTS_NOTIFICATIONS: &str = "vivace_alerts_notifications_total";
    pub const ALERTS_RESOLVED: &str = "vivace_alerts_resolved_total";
    pub const ALERTS_RESOLVE_QUEUE_FULL: &str = "vivace_alerts_resolve_queue_full_total";
    pub const ALERTS_PROMETHEUS_ERRORS: &str = "vivace_alerts_prometheus_errors_total";
    pub const ALERTS_SEARCH_ERRORS: &str = "vivace_alerts_search_errors_total";
    // The OTLP metrics converter (`generator::otlp_metrics`).
    pub const OTLP_METRICS_DATA_POINTS: &str = "vivace_otlp_metrics_data_points_total";
    pub const OTLP_METRICS_EXPORTS: &str = "vivace_otlp_metrics_exports_total";
    pub const OTLP_METRICS_ACTIVE_SERIES: &str = "vivace_otlp_metrics_active_series";
    pub const OTLP_METRICS_STALE_SERIES: &str = "vivace_otlp_metrics_stale_series_total";
    // The generator (`generator`).
    pub const GENERATOR_QUEUED_SPANS: &str = "vivace_generator_queued_spans";
    pub const GENERATOR_SERIES_REMOVED: &str = "vivace_generator_registry_series_removed_total";
    pub const GENERATOR_INVALID_LABELS: &str = "vivace_generator_registry_invalid_labels_total";
    pub const GENERATOR_PENDING_EDGES: &str = "vivace_generator_service_graph_pending_edges";
    // Remote write (`generator::remote_write`).
    pub const REMOTE_WRITE_SAMPLES: &str = "vivace_generator_remote_write_samples_total";
    // The Jaeger agent's UDP receiver (`receiver::jaeger`).
    pub const JAEGER_UDP_PACKETS: &str = "vivace_receiver_jaeger_udp_packets_total";
    // Authentication (`server::auth`).
    pub const AUTH_REFUSED: &str = "vivace_auth_refused_total";
    // Per-stage CPU and memory (`telemetry::stage`, which names them itself so that it depends on
    // nothing else in the crate).
    pub use super::stage::{STAGE_CPU_SECONDS, STAGE_PEAK_RSS};
    // The ingester's head (`telemetry`).
    pub const INGESTER_LIVE_TRACES: &str = "vivace_ingester_live_traces";
    pub const INGESTER_COMPLETED_TRACES: &str = "vivace_ingester_completed_traces";
    pub const INGESTER_FLUSHING_TRACES: &str = "vivace_ingester_flushing_traces";
}

/// Tenants with a metrics-generator registry now (gauge).
pub const GENERATOR_TENANTS: &str = "vivace_generator_tenants";
/// Generated series alive per tenant (gauge, label `tenant`).
pub const GENERATOR_TENANT_ACTIVE_SERIES: &str = "vivace_generator_tenant_active_series";
/// Updates folded into a tenant's overflow series (counter, label `tenant`).
pub const GENERATOR_TENANT_SERIES_LIMITED: &str = "vivace_generator_tenant_series_limited_total";

/// Escapes a label value for the Prometheus text format.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one gauge or counter sample with its HELP/TYPE header.
pub fn write_sample(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// Every metric vivace keeps about itself.
pub struct Telemetry {
    spans_received: CounterFamily,
    spans_refused: CounterFamily,
    attributes_truncated: CounterFamily,
    requests: HistogramFamily,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            spans_received: CounterFamily::new(
                "tempo_distributor_spans_received_total",
                "Spans accepted and written to the WAL, by tenant.",
                &["tenant"],
            ),
            spans_refused: CounterFamily::new(
                "tempo_discarded_spans_total",
                "Spans refused, by reason (invalid_trace_id, overloaded, rate_limited, trace_too_large, shutting_down, internal).",
                &["reason"],
            ),
            attributes_truncated: CounterFamily::new(
                "tempo_distributor_attributes_truncated_total",
                "Attribute keys and values cut to overrides' max_attribute_bytes, by tenant.",
                &["tenant"],
            ),
            requests: HistogramFamily {
                name: "tempo_request_duration_seconds",
                help: "Time to answer HTTP and gRPC requests, by route and status code.",
                labels: &["route", "status_code"],
                series: Mutex::new(BTreeMap::new()),
            },
        }
    }
}

impl Telemetry {
    pub fn spans_received(&self, tenant: &str, count: u64) {
        self.spans_received.add(&[tenant], count);
    }

    pub fn spans_refused(&self, reason: &str, count: u64) {
        self.spans_refused.add(&[reason], count);
    }

    pub fn attributes_truncated(&self, tenant: &str, count: u64) {
        self.attributes_truncated.add(&[tenant], count);
    }

    pub fn observe_request(&self, route: &str, status_code: u16, seconds: f64) {
        self.requests
            .observe(&[route, &status_code.to_string()], seconds);
    }

    /// Appends this registry's metrics to `out` in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        self.spans_received.render(out);
        self.spans_refused.render(out);
        self.attributes_truncated.render(out);
        self.requests.render(out);
    }
}

/// The ingester's figures as metrics (read at scrape time).
pub fn render_ingester(stats: &crate::ingester::IngesterStats, out: &mut String) {
    let samples: [(&str, &str, &str, u64); 23] = [
        (
            "vivace_ingester_tenants",
            "gauge",
            "Tenants with data in memory.",
            stats.tenants,
        ),
        (
            names::INGESTER_LIVE_TRACES,
            "gauge",
            "Traces still receiving spans.",
            stats.live_traces,
        ),
        (
            names::INGESTER_COMPLETED_TRACES,
            "gauge",
            "Idle traces waiting for the next block cut.",
            stats.completed_traces,
        ),
        (
            names::INGESTER_FLUSHING_TRACES,
            "gauge",
            "Traces in a block being written or retried.",
            stats.flushing_traces,
        ),
        (
            "vivace_ingester_flushed_traces_kept",
            "gauge",
            "Flushed traces still served from memory.",
            stats.flushed_traces_kept,
        ),
        (
            "vivace_ingester_head_segments",
            "gauge",
            "Sealed segments of complete traces in memory (waiting, being written or kept).",
            stats.head_segments,
        ),
        (
            "vivace_ingester_head_segment_column_bytes",
            "gauge",
            "Bytes of the head segments' columns (in-memory vParquet4 files queries read).",
            stats.head_segment_column_bytes,
        ),
        (
            "vivace_ingester_head_bytes",
            "gauge",
            "Bytes held in memory against ingester.max_head_bytes.",
            stats.head_bytes,
        ),
        (
            "vivace_ingester_wal_bytes_written_total",
            "counter",
            "Bytes appended to the WAL since start.",
            stats.wal_bytes_written,
        ),
        (
            "vivace_ingester_wal_disk_bytes",
            "gauge",
            "Bytes in WAL segment files.",
            stats.wal_disk_bytes,
        ),
        (
            "vivace_ingester_wal_segments",
            "gauge",
            "WAL segment files.",
            stats.wal_segments,
        ),
        (
            "vivace_ingester_wal_syncs_total",
            "counter",
            "fsync calls on the WAL.",
            stats.wal_syncs,
        ),
        (
            "vivace_ingester_wal_write_failures_total",
            "counter",
            "Failed WAL writes or syncs.",
            stats.wal_write_failures,
        ),
        (
            "tempo_ingester_blocks_flushed_total",
            "counter",
            "Blocks written to the store.",
            stats.blocks_flushed,
        ),
        (
            "vivace_ingester_head_segments_built_total",
            "counter",
            "Head segments whose columns (in-memory vParquet4 for queries) were built.",
            stats.head_segments_built,
        ),
        (
            "vivace_ingester_head_live_segments",
            "gauge",
            "Live segments in memory: columns of quiet live traces, built while queries read the head.",
            stats.head_live_segments,
        ),
        (
            "vivace_ingester_head_live_segment_column_bytes",
            "gauge",
            "Bytes of the live segments' columns.",
            stats.head_live_segment_column_bytes,
        ),
        (
            "vivace_ingester_head_live_segments_built_total",
            "counter",
            "Live segments built (quiet live traces copied into columns).",
            stats.head_live_segments_built,
        ),
        (
            "tempo_ingester_failed_flushes_total",
            "counter",
            "Block writes that failed and will be retried.",
            stats.flush_failures,
        ),
        (
            "vivace_ingester_pushes_accepted_total",
            "counter",
            "Pushes acknowledged after their WAL append.",
            stats.pushes_accepted,
        ),
        (
            "vivace_ingester_pushes_refused_total",
            "counter",
            "Pushes refused as overloaded or too large.",
            stats.pushes_refused,
        ),
        (
            "vivace_ingester_wal_replayed_records_total",
            "counter",
            "WAL records replayed at start.",
            stats.replayed_records,
        ),
        (
            "vivace_ingester_wal_truncated_bytes_total",
            "counter",
            "Bytes of torn WAL tail truncated at start.",
            stats.wal_truncated_bytes,
        ),
    ];
    for (name, kind, help, value) in samples {
        write_sample(out, name, kind, help, value as f64);
    }
    render_sampling(&stats.sampling, out);
}

/// Tail-sampling decisions per `decision` (kept, dropped) and `reason` (rule, error, latency,
/// baseline), for traces and for their spans.
fn render_sampling(stats: &crate::ingester::SamplingStats, out: &mut String) {
    use crate::ingester::sampling::SampleReason;
    let families = [
        (
            "vivace_sampling_traces_total",
            "Trace pieces decided by tail sampling when cut, per decision and reason.",
            &stats.traces,
        ),
        (
            "vivace_sampling_spans_total",
            "Spans of the trace pieces decided by tail sampling, per decision and reason.",
            &stats.spans,
        ),
    ];
    for (name, help, counts) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (row, decision) in ["kept", "dropped"].iter().enumerate() {
            for (column, reason) in SampleReason::ALL.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{decision=\"{decision}\",reason=\"{}\"}} {}",
                    reason.label(),
                    counts[row][column]
                );
            }
        }
    }
}

/// The block store's figures as metrics (read at scrape time).
pub fn render_store(stats: &crate::tempodb::StoreStatsSnapshot, out: &mut String) {
    let samples: [(&str, &str, u64); 15] = [
        (
            "vivace_tempodb_blocks_written_total",
            "Blocks written (meta.json last).",
            stats.blocks_flushed,
        ),
        (
            "vivace_tempodb_bytes_written_total",
            "Bytes of block objects written.",
            stats.bytes_written,
        ),
        (
            "vivace_tempodb_traces_written_total",
            "Traces written into blocks.",
            stats.traces_written,
        ),
        (
            "vivace_tempodb_lookups_total",
            "Trace-by-ID lookups over blocks.",
            stats.lookups,
        ),
        (
            "vivace_tempodb_bloom_skips_total",
            "Blocks skipped because their bloom filter ruled the trace out.",
            stats.bloom_skips,
        ),
        (
            "vivace_tempodb_block_reads_total",
            "Blocks whose data.parquet was read for a lookup.",
            stats.block_reads,
        ),
        (
            "vivace_tempodb_bloom_cache_hits_total",
            "Bloom shards served from memory.",
            stats.bloom_cache_hits,
        ),
        (
            "vivace_tempodb_bloom_cache_misses_total",
            "Bloom shards fetched from the backend.",
            stats.bloom_cache_misses,
        ),
        (
            "vivace_tempodb_footer_cache_hits_total",
            "Parquet footers served from memory.",
            stats.footer_cache_hits,
        ),
        (
            "vivace_tempodb_footer_cache_misses_total",
            "Parquet footers fetched from the backend.",
            stats.footer_cache_misses,
        ),
        (
            "vivace_tempodb_data_requests_total",
            "Ranged reads of data.parquet objects.",
            stats.data_requests,
        ),
        (
            "vivace_tempodb_blocklist_polls_total",
            "Bucket listings made to discover blocks.",
            stats.polls,
        ),
        (
            "vivace_tempodb_blocklist_poll_errors_total",
            "Bucket listings that failed.",
            stats.poll_errors,
        ),
        (
            "vivace_tempodb_unreadable_blocks_total",
            "Blocks skipped because their meta.json could not be used.",
            stats.unreadable_blocks,
        ),
        (
            "vivace_tempodb_quarantined_blocks_total",
            "Blocks found corrupt at startup and moved under quarantine/ in the bucket.",
            stats.quarantined_blocks,
        ),
    ];
    for (name, help, value) in samples {
        write_sample(out, name, "counter", help, value as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parseable_prometheus_text() {
        let telemetry = Telemetry::default();
        telemetry.spans_received("single-tenant", 10);
        telemetry.spans_received("single-tenant", 5);
        telemetry.spans_refused("overloaded", 3);
        telemetry.observe_request("/api/traces/{id}", 200, 0.003);
        let mut text = String::new();
        telemetry.render(&mut text);
        assert!(
            text.contains("tempo_distributor_spans_received_total{tenant=\"single-tenant\"} 15"),
            "{text}"
        );
        assert!(text.contains("tempo_request_duration_seconds_bucket{route=\"/api/traces/{id}\",status_code=\"200\",le=\"0.005\"} 1"), "{text}");
        let lines = text.lines().map(|line| Ok(line.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        assert!(scrape
            .samples
            .iter()
            .any(|sample| sample.metric == "tempo_discarded_spans_total"));
    }

    #[test]
    fn series_are_bounded() {
        let telemetry = Telemetry::default();
        for tenant in 0..(MAX_SERIES_PER_METRIC + 50) {
            telemetry.spans_received(&format!("t{tenant}"), 1);
        }
        assert_eq!(
            telemetry.spans_received.series.lock().len(),
            MAX_SERIES_PER_METRIC + 1
        );
    }
}
