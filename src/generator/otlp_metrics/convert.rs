//! The conversion of one export: resource and scope labels, every data point through the same
//! steps (labels, "no recorded value", checks, `max_series`, order, delta, emit), info series,
//! and exemplars.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, Exemplar as OtlpExemplar, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
};

use super::cumulative::{temporality, Accumulated};
use super::naming::{attribute_labels, metric_name, string_attribute, words, Kind};
use super::render::{make_labels, one_sample_series, Expanded};
use super::staleness::{stale_series, FLAG_NO_RECORDED_VALUE};
use super::{Converter, ExportOutcome, Tracked};
use crate::generator::remote_write::{Exemplar, Label};

/// Exemplar label sets longer than this (in characters) are refused by Prometheus.
const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// The labels every series of a resource and scope carries.
pub(super) struct Context<'a> {
    /// `job`, `instance`, `otel_scope_name` and `otel_scope_version`.
    pub(super) common: BTreeMap<String, String>,
    /// When the export was received (or the sweep runs).
    pub(super) now_ms: i64,
    /// What the export produces.
    pub(super) outcome: &'a mut ExportOutcome,
}

/// The metric a point belongs to, as Prometheus names it.
struct Family<'a> {
    name: String,
    kind: Kind,
    help: &'a str,
}

/// What a kind of point expands from besides the point itself: its identity and its series'
/// state.
pub(super) struct PointInput<'a> {
    /// The family's Prometheus name.
    pub(super) name: &'a str,
    /// The point's labels (attributes, then the resource's and scope's), without `__name__`.
    pub(super) labels: &'a BTreeMap<String, String>,
    /// `__name__` and the labels, sorted: the key its series is tracked by.
    pub(super) key: &'a [Label],
    /// Whether the point is a delta.
    pub(super) delta: bool,
    /// For a delta point, its series' running total so far.
    pub(super) previous: Option<&'a Accumulated>,
}

/// What a point expands to: its series, and for a delta point its series' new running total.
pub(super) type Expansion = (Vec<Expanded>, Option<Accumulated>);

/// The fields every kind of OTLP data point has, under the same names.
pub(super) trait PointFields {
    /// The point's own attributes.
    fn attributes(&self) -> &[KeyValue];
    /// The point's time in nanoseconds since the epoch (0: unset).
    fn time_unix_nano(&self) -> u64;
    /// `DataPointFlags` bits.
    fn flags(&self) -> u32;
}

/// Implements [`PointFields`] for data point types, whose fields are named alike.
macro_rules! point_fields {
    ($($point:ty),+) => {$(
        impl PointFields for $point {
            fn attributes(&self) -> &[KeyValue] {
                &self.attributes
            }

            fn time_unix_nano(&self) -> u64 {
                self.time_unix_nano
            }

            fn flags(&self) -> u32 {
                self.flags
            }
        }
    )+};
}

point_fields!(
    NumberDataPoint,
    HistogramDataPoint,
    ExponentialHistogramDataPoint,
    SummaryDataPoint
);

/// What sets one kind of data point apart in the conversion: its checks and its series.
pub(super) trait DataPoint: PointFields {
    /// What `check` reads out of a valid point for `expand`.
    type Checked;
    /// Refuses a malformed point with a reason that starts with the metric's `name`.
    fn check(&self, name: &str) -> Result<Self::Checked, String>;
    /// The point's series and its series' new running total.
    fn expand(&self, checked: Self::Checked, input: &PointInput<'_>) -> Expansion;
}

impl Converter {
    /// Converts one export received at `now_ms`.
    pub fn convert(&mut self, request: &ExportMetricsServiceRequest, now_ms: i64) -> ExportOutcome {
        let mut outcome = ExportOutcome::default();
        for resource_metrics in &request.resource_metrics {
            let resource = resource_metrics
                .resource
                .as_ref()
                .map(|resource| resource.attributes.as_slice())
                .unwrap_or_default();
            let mut resource_labels = BTreeMap::new();
            let service = string_attribute(resource, "service.name").unwrap_or_default();
            let job = match string_attribute(resource, "service.namespace") {
                Some(namespace) if !namespace.is_empty() && !service.is_empty() => {
                    format!("{namespace}/{service}")
                }
                _ => service.to_string(),
            };
            if !job.is_empty() {
                resource_labels.insert("job".to_string(), job);
            }
            if let Some(instance) = string_attribute(resource, "service.instance.id") {
                if !instance.is_empty() {
                    resource_labels.insert("instance".to_string(), instance.to_string());
                }
            }
            let mut newest_ms = None;
            for scope_metrics in &resource_metrics.scope_metrics {
                let mut common = resource_labels.clone();
                let scope = scope_metrics.scope.as_ref();
                let scope_name = scope.map(|scope| scope.name.as_str()).unwrap_or_default();
                let scope_version = scope
                    .map(|scope| scope.version.as_str())
                    .unwrap_or_default();
                if !scope_name.is_empty() {
                    common.insert("otel_scope_name".into(), scope_name.into());
                }
                if !scope_version.is_empty() {
                    common.insert("otel_scope_version".into(), scope_version.into());
                }
                let mut context = Context {
                    common,
                    now_ms,
                    outcome: &mut outcome,
                };
                let mut scope_newest = None;
                for metric in &scope_metrics.metrics {
                    if let Some(newest) = self.convert_metric(metric, &mut context) {
                        scope_newest = scope_newest.max(Some(newest));
                    }
                }
                newest_ms = newest_ms.max(scope_newest);
                let scope_attributes = scope
                    .map(|scope| scope.attributes.as_slice())
                    .unwrap_or_default();
                if let (Some(at), false) = (scope_newest, scope_attributes.is_empty()) {
                    let mut labels = attribute_labels(scope_attributes, &[]);
                    labels.extend(context.common.clone());
                    self.emit_info(
                        "otel_scope_info",
                        "Instrumentation scope metadata.",
                        labels,
                        at,
                        &mut context,
                    );
                }
            }
            let others = attribute_labels(
                resource,
                &["service.name", "service.namespace", "service.instance.id"],
            );
            if let (Some(at), false) = (newest_ms, others.is_empty()) {
                let mut labels = others;
                labels.extend(resource_labels);
                let mut context = Context {
                    common: BTreeMap::new(),
                    now_ms,
                    outcome: &mut outcome,
                };
                self.emit_info("target_info", "Target metadata.", labels, at, &mut context);
            }
        }
        outcome
    }

    /// Sends an info series (`target_info`, `otel_scope_info`): value 1, metadata as labels.
    fn emit_info(
        &mut self,
        name: &str,
        help: &str,
        labels: BTreeMap<String, String>,
        at_ms: i64,
        context: &mut Context<'_>,
    ) {
        let key = make_labels(name, &labels, None);
        let series = vec![Expanded::plain(key.clone(), 1.0)];
        self.emit(
            Emitted {
                key,
                family: name,
                kind: Kind::Info,
                help,
                time_ms: at_ms,
                delta_time: 0,
                accumulated: None,
                series,
            },
            context,
        );
    }

    /// Converts one metric; returns the newest point time it sent.
    fn convert_metric(&mut self, metric: &Metric, context: &mut Context<'_>) -> Option<i64> {
        let Some(data) = &metric.data else {
            context
                .outcome
                .reject(format!("metric {:?} has no data", metric.name));
            return None;
        };
        if words(&metric.name).is_empty() {
            let points = match data {
                Data::Gauge(gauge) => gauge.data_points.len(),
                Data::Sum(sum) => sum.data_points.len(),
                Data::Histogram(histogram) => histogram.data_points.len(),
                Data::ExponentialHistogram(histogram) => histogram.data_points.len(),
                Data::Summary(summary) => summary.data_points.len(),
            };
            for _ in 0..points.max(1) {
                context.outcome.reject(format!(
                    "metric name {:?} has no usable character",
                    metric.name
                ));
            }
            return None;
        }
        match data {
            Data::Gauge(gauge) => {
                self.convert_points(metric, Kind::Gauge, &gauge.data_points, Ok(false), context)
            }
            Data::Sum(sum) => {
                let kind = if sum.is_monotonic {
                    Kind::Counter
                } else {
                    Kind::Gauge
                };
                let delta = temporality(sum.aggregation_temporality);
                self.convert_points(metric, kind, &sum.data_points, delta, context)
            }
            Data::Histogram(histogram) => {
                let delta = temporality(histogram.aggregation_temporality);
                self.convert_points(
                    metric,
                    Kind::Histogram,
                    &histogram.data_points,
                    delta,
                    context,
                )
            }
            Data::ExponentialHistogram(exponential) => {
                let delta = temporality(exponential.aggregation_temporality);
                let points = &exponential.data_points;
                self.convert_points(metric, Kind::Histogram, points, delta, context)
            }
            Data::Summary(summary) => {
                let points = &summary.data_points;
                self.convert_points(metric, Kind::Summary, points, Ok(false), context)
            }
        }
    }

    /// Converts the points of one metric, which become `kind`; `delta` is their temporality
    /// (an error refuses them all). Returns the newest point time it sent.
    fn convert_points<Point: DataPoint>(
        &mut self,
        metric: &Metric,
        kind: Kind,
        points: &[Point],
        delta: Result<bool, String>,
        context: &mut Context<'_>,
    ) -> Option<i64> {
        let delta = match delta {
            Ok(delta) => delta,
            Err(reason) => {
                for _ in points {
                    context.outcome.reject(format!("{}: {reason}", metric.name));
                }
                return None;
            }
        };
        let family = Family {
            name: metric_name(&metric.name, &metric.unit, kind),
            kind,
            help: &metric.description,
        };
        let mut newest = None;
        for point in points {
            newest = newest.max(self.convert_point(&family, point, delta, context));
        }
        newest
    }

    /// Converts one point: a point flagged "no recorded value" ends its series; a malformed
    /// one, one beyond `max_series` or one not newer than its series' last is refused or held
    /// back; a delta is added to its series' running total. Returns the point's time if sent.
    fn convert_point<Point: DataPoint>(
        &mut self,
        family: &Family<'_>,
        point: &Point,
        delta: bool,
        context: &mut Context<'_>,
    ) -> Option<i64> {
        let (labels, key) = Self::point_labels(&family.name, point.attributes(), context);
        let time_ms = nanos_to_ms(point.time_unix_nano(), context.now_ms);
        if point.flags() & FLAG_NO_RECORDED_VALUE != 0 {
            self.end(&key, time_ms, context);
            return None;
        }
        let checked = match point.check(&family.name) {
            Ok(checked) => checked,
            Err(reason) => {
                context.outcome.reject(reason);
                return None;
            }
        };
        if !self.admit(&key, context)
            || !self.is_newer(&key, time_ms, point.time_unix_nano(), delta)
        {
            return None;
        }
        let input = PointInput {
            name: &family.name,
            labels: &labels,
            key: &key,
            delta,
            previous: if delta { self.accumulated(&key) } else { None },
        };
        let (series, accumulated) = point.expand(checked, &input);
        self.emit(
            Emitted {
                key,
                family: &family.name,
                kind: family.kind,
                help: family.help,
                time_ms,
                delta_time: point.time_unix_nano(),
                accumulated,
                series,
            },
            context,
        );
        Some(time_ms)
    }

    /// The point's labels (its attributes, then the resource's and scope's) and its key.
    fn point_labels(
        name: &str,
        attributes: &[KeyValue],
        context: &Context<'_>,
    ) -> (BTreeMap<String, String>, Vec<Label>) {
        let mut labels = attribute_labels(attributes, &[]);
        for (label, value) in &context.common {
            labels.insert(label.clone(), value.clone());
        }
        let key = make_labels(name, &labels, None);
        (labels, key)
    }

    /// Whether a point of `key` may be converted: known, or room for one more.
    fn admit(&self, key: &[Label], context: &mut Context<'_>) -> bool {
        if self.tracked.contains_key(key) || self.active_series < self.max_series {
            return true;
        }
        context.outcome.reject(format!(
            "otlp_metrics.max_series ({}) reached; new series are refused",
            self.max_series
        ));
        false
    }

    /// Sends a point's series and remembers them; series the key sent before but not now
    /// (a changed bucket layout) get stale markers.
    fn emit(&mut self, point: Emitted<'_>, context: &mut Context<'_>) {
        let Emitted {
            key,
            family,
            kind,
            help,
            time_ms,
            delta_time,
            accumulated,
            series,
        } = point;
        let emitted: Vec<(Vec<Label>, f64)> = series
            .iter()
            .map(|entry| (entry.labels.clone(), entry.value))
            .collect();
        let tracked = self.tracked.entry(key).or_insert_with(|| Tracked {
            family: family.to_string(),
            kind,
            help: help.to_string(),
            seen_ms: 0,
            last_ms: i64::MIN,
            delta_time: 0,
            accumulated: None,
            emitted: Vec::new(),
        });
        // Usually the same series in the same order; only a changed layout needs the set.
        let same_layout = tracked.emitted.len() == emitted.len()
            && tracked
                .emitted
                .iter()
                .zip(&emitted)
                .all(|(before, now)| before.0 == now.0);
        if !same_layout {
            let now: std::collections::HashSet<&Vec<Label>> =
                emitted.iter().map(|(labels, _)| labels).collect();
            for (labels, _) in &tracked.emitted {
                if !now.contains(labels) {
                    context
                        .outcome
                        .series
                        .push(stale_series(labels.clone(), time_ms));
                }
            }
        }
        self.active_series = self.active_series - tracked.emitted.len() + emitted.len();
        tracked.emitted = emitted;
        tracked.seen_ms = context.now_ms;
        tracked.last_ms = time_ms;
        tracked.help = help.to_string();
        if accumulated.is_some() {
            tracked.accumulated = accumulated;
            tracked.delta_time = delta_time;
        }
        for entry in series {
            context.outcome.series.push(one_sample_series(
                entry.labels,
                entry.value,
                time_ms,
                entry.exemplars,
            ));
        }
        self.points_accepted += 1;
    }
}

/// One converted point, ready to send.
struct Emitted<'a> {
    key: Vec<Label>,
    family: &'a str,
    kind: Kind,
    help: &'a str,
    time_ms: i64,
    delta_time: u64,
    accumulated: Option<Accumulated>,
    series: Vec<Expanded>,
}

/// A point time in milliseconds; 0 (unset) is the receive time.
fn nanos_to_ms(nanos: u64, now_ms: i64) -> i64 {
    if nanos == 0 {
        now_ms
    } else {
        i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// An OTLP exemplar as Prometheus keeps it: `trace_id`, `span_id` and what fits of its
/// filtered attributes; `None` without a value.
pub(super) fn exemplar_of(source: &OtlpExemplar) -> Option<Exemplar> {
    let value = match source.value? {
        exemplar::Value::AsDouble(value) => value,
        exemplar::Value::AsInt(value) => value as f64,
    };
    let mut labels = Vec::new();
    let mut chars = 0;
    for (name, bytes) in [("trace_id", &source.trace_id), ("span_id", &source.span_id)] {
        if !bytes.is_empty() {
            let text = hex::encode(bytes);
            chars += name.len() + text.len();
            labels.push(Label {
                name: name.into(),
                value: text,
            });
        }
    }
    // Filtered attributes ride along while Prometheus' limit allows.
    for (name, value) in attribute_labels(&source.filtered_attributes, &[]) {
        if chars + name.len() + value.chars().count() > MAX_EXEMPLAR_LABEL_CHARS
            || labels.iter().any(|label| label.name == name)
        {
            continue;
        }
        chars += name.len() + value.chars().count();
        labels.push(Label { name, value });
    }
    labels.sort();
    let timestamp = i64::try_from(source.time_unix_nano / 1_000_000).unwrap_or(i64::MAX);
    Some(Exemplar {
        labels,
        value,
        timestamp,
    })
}
