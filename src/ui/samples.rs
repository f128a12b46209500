//! What the UI samples from the metrics-generator (every ten seconds into the histories, and
//! once more per request for "now"): the service-graph counters per edge ([`Sample`]) and the
//! span metrics per service and operation ([`SpanSample`]). The graph and services pages and
//! the UI's state all read these types, so they sit below all three.

use std::collections::HashMap;

use super::history::{now_ms, History, Timed};
use crate::generator::registry::{Family, MetricKind, SeriesValue};
use crate::generator::servicegraphs::{
    REQUEST_FAILED_TOTAL, REQUEST_SERVER_SECONDS, REQUEST_TOTAL,
};
use crate::generator::spanmetrics::{CALLS, LATENCY};
use crate::generator::Generator;

/// An edge: client, server and `connection_type` (empty for plain calls).
pub(super) type EdgeKey = (String, String, String);

/// One edge's counters at one time.
#[derive(Clone, Debug, Default)]
pub struct EdgeCounts {
    pub(super) requests: f64,
    pub(super) failed: f64,
    pub(super) seconds_sum: f64,
    pub(super) seconds_count: f64,
    /// Per-bucket (not cumulative) counts of server latency, the last being +Inf.
    pub(super) buckets: Vec<f64>,
    /// Latest exemplar trace IDs of the edge's latency histogram.
    pub(super) exemplars: Vec<String>,
}

/// The generator's service-graph counters at one time.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub(super) at_ms: i64,
    pub(super) bounds: Vec<f64>,
    pub(super) edges: HashMap<EdgeKey, EdgeCounts>,
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or("")
}

fn edge_key(labels: &[(String, String)]) -> EdgeKey {
    (
        label(labels, "client").to_string(),
        label(labels, "server").to_string(),
        label(labels, "connection_type").to_string(),
    )
}

impl Sample {
    /// Reads `tenant`'s counters (takes its lock briefly; call off the async workers); empty
    /// when the tenant has no series.
    pub fn take(generator: &Generator, tenant: &str) -> Sample {
        let at_ms = now_ms();
        generator
            .with_tenant_state(tenant, |state| {
                Sample::from_families(state.registry().families(), at_ms)
            })
            .unwrap_or_else(|| Sample {
                at_ms,
                ..Default::default()
            })
    }

    fn from_families(families: &[Family], at_ms: i64) -> Sample {
        let mut sample = Sample {
            at_ms,
            ..Default::default()
        };
        for family in families {
            for (labels, series) in &family.series {
                if label(labels, "client").is_empty() && label(labels, "server").is_empty() {
                    continue;
                }
                let entry = sample.edges.entry(edge_key(labels)).or_default();
                match (&series.value, family.name.as_str()) {
                    (SeriesValue::Scalar(value), REQUEST_TOTAL) => entry.requests += value,
                    (SeriesValue::Scalar(value), REQUEST_FAILED_TOTAL) => entry.failed += value,
                    (SeriesValue::Histogram(histogram), REQUEST_SERVER_SECONDS) => {
                        if let crate::generator::registry::MetricKind::Histogram { bounds } =
                            &family.kind
                        {
                            sample.bounds = bounds.clone();
                        }
                        entry.seconds_sum += histogram.sum;
                        entry.seconds_count += histogram.count;
                        if entry.buckets.len() < histogram.buckets.len() {
                            entry.buckets.resize(histogram.buckets.len(), 0.0);
                        }
                        for (total, value) in entry.buckets.iter_mut().zip(&histogram.buckets) {
                            *total += value;
                        }
                        let mut exemplars: Vec<_> = histogram.exemplars.iter().flatten().collect();
                        exemplars.sort_by_key(|exemplar| std::cmp::Reverse(exemplar.timestamp_ms));
                        entry.exemplars.extend(
                            exemplars
                                .into_iter()
                                .take(5)
                                .map(|exemplar| format!("{:0>32}", exemplar.trace_id)),
                        );
                    }
                    _ => {}
                }
            }
        }
        sample
    }
}

/// Samples of each tenant's service-graph counters.
pub type ServiceGraphHistory = History<Sample>;

impl Timed for Sample {
    fn at_ms(&self) -> i64 {
        self.at_ms
    }
}

/// The span kinds that are a service's incoming requests: calls it serves and messages it
/// consumes (a queue consumer has no server spans).
const INCOMING: [&str; 2] = ["SPAN_KIND_SERVER", "SPAN_KIND_CONSUMER"];
const ERROR: &str = "STATUS_CODE_ERROR";

/// Operations kept per sample: beyond it the operations table is read from TraceQL metrics.
const MAX_OPERATIONS: usize = 5_000;

/// Server-span counters of a service or an operation at one time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Red {
    pub(super) calls: f64,
    pub(super) errors: f64,
    /// Per-bucket (not cumulative) latency counts, the last being +Inf.
    pub(super) buckets: Vec<f64>,
}

impl Red {
    fn add_buckets(&mut self, buckets: &[f64]) {
        if self.buckets.len() < buckets.len() {
            self.buckets.resize(buckets.len(), 0.0);
        }
        for (total, value) in self.buckets.iter_mut().zip(buckets) {
            *total += value;
        }
    }

    /// What was counted since `before` (a series that restarted counts from zero).
    pub(super) fn since(&self, before: Option<&Red>) -> Red {
        let Some(before) = before else {
            return self.clone();
        };
        let difference = |now: f64, then: f64| if now >= then { now - then } else { now };
        Red {
            calls: difference(self.calls, before.calls),
            errors: difference(self.errors, before.errors),
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(index, now)| {
                    difference(*now, before.buckets.get(index).copied().unwrap_or(0.0))
                })
                .collect(),
        }
    }

    pub(super) fn add(&mut self, other: &Red) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.add_buckets(&other.buckets);
    }
}

/// A service's exemplar: a trace behind one latency observation.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct ExemplarPoint {
    pub(super) at_ms: i64,
    pub(super) milliseconds: f64,
    pub(super) trace_id: String,
}

/// The span metrics the services pages read, at one time.
#[derive(Clone, Debug, Default)]
pub struct SpanSample {
    pub(super) at_ms: i64,
    pub(super) bounds: Vec<f64>,
    /// Server-span counters by service; services seen with other span kinds only are present
    /// with zero counts.
    pub(super) services: HashMap<String, Red>,
    /// Server-span counters by (service, span name).
    pub(super) operations: HashMap<(String, String), Red>,
    /// False when the generator writes no `span_name` or there were more than
    /// [`MAX_OPERATIONS`].
    pub(super) operations_complete: bool,
    /// False when the series lack `service`, `span_kind` or `status_code` (intrinsic
    /// dimensions switched off), or span metrics are off: then these numbers cannot be had.
    pub(super) usable: bool,
    /// Exemplars of the service asked for, when one was.
    pub(super) exemplars: Vec<ExemplarPoint>,
}

impl Timed for SpanSample {
    fn at_ms(&self) -> i64 {
        self.at_ms
    }
}

/// Samples of each tenant's span metrics.
pub type SpanHistory = History<SpanSample>;

fn has_label(labels: &[(String, String)], name: &str) -> bool {
    labels.iter().any(|(key, _)| key == name)
}

impl SpanSample {
    /// Reads `tenant`'s span metrics (holds its lock while reading: call off the async
    /// workers); with `exemplars_of`, that service's latency exemplars too.
    pub fn take(generator: &Generator, tenant: &str, exemplars_of: Option<&str>) -> SpanSample {
        let at_ms = now_ms();
        generator
            .with_tenant_state(tenant, |state| {
                SpanSample::from_families(state.registry().families(), at_ms, exemplars_of)
            })
            .unwrap_or_else(|| SpanSample {
                at_ms,
                operations_complete: true,
                usable: true,
                ..Default::default()
            })
    }

    fn from_families(families: &[Family], at_ms: i64, exemplars_of: Option<&str>) -> SpanSample {
        let mut sample = SpanSample {
            at_ms,
            operations_complete: true,
            usable: families.iter().any(|family| family.name == CALLS),
            ..Default::default()
        };
        for family in families {
            if family.name != CALLS && family.name != LATENCY {
                continue;
            }
            if let MetricKind::Histogram { bounds } = &family.kind {
                sample.bounds = bounds.clone();
            }
            for (labels, series) in &family.series {
                if !has_label(labels, "service") {
                    // The overflow series past max_active_series has none of the intrinsic
                    // labels; a series with others but no `service` means it is switched off.
                    if has_label(labels, "span_kind") || has_label(labels, "span_name") {
                        sample.usable = false;
                    }
                    continue;
                }
                let service = label(labels, "service");
                if !has_label(labels, "span_kind") || !has_label(labels, "status_code") {
                    sample.usable = false;
                    continue;
                }
                let red = sample.services.entry(service.to_string()).or_default();
                if !INCOMING.contains(&label(labels, "span_kind")) {
                    continue;
                }
                let error = label(labels, "status_code") == ERROR;
                match &series.value {
                    SeriesValue::Scalar(value) => {
                        red.calls += value;
                        if error {
                            red.errors += value;
                        }
                    }
                    SeriesValue::Histogram(histogram) => {
                        red.add_buckets(&histogram.buckets);
                        if exemplars_of == Some(service) {
                            sample
                                .exemplars
                                .extend(histogram.exemplars.iter().flatten().map(|exemplar| {
                                    ExemplarPoint {
                                        at_ms: exemplar.timestamp_ms,
                                        milliseconds: exemplar.value * 1000.0,
                                        trace_id: format!("{:0>32}", exemplar.trace_id),
                                    }
                                }));
                        }
                    }
                }
                if !has_label(labels, "span_name") {
                    sample.operations_complete = false;
                    continue;
                }
                let key = (service.to_string(), label(labels, "span_name").to_string());
                if !sample.operations.contains_key(&key)
                    && sample.operations.len() >= MAX_OPERATIONS
                {
                    sample.operations_complete = false;
                    continue;
                }
                let operation = sample.operations.entry(key).or_default();
                match &series.value {
                    SeriesValue::Scalar(value) => {
                        operation.calls += value;
                        if error {
                            operation.errors += value;
                        }
                    }
                    SeriesValue::Histogram(histogram) => operation.add_buckets(&histogram.buckets),
                }
            }
        }
        sample
    }
}
