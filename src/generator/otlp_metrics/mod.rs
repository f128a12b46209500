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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint,
};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

pub use super::config::OtlpMetricsConfig;
use super::config::RemoteWriteSource;
use super::labels::format_float;
use super::remote_write::{Exemplar, Label, RemoteWriter, Sample, TimeSeries};
use crate::telemetry::escape_label;

/// Bits of Prometheus' staleness marker, a NaN that ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Exemplar label sets longer than this (in characters) are refused by Prometheus.
const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// Prometheus' stale marker.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

// ---------------------------------------------------------------- names

/// What a metric becomes, which decides its name's suffixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Info,
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge | Kind::Info => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// The word for a UCUM unit, per the specification's table; unknown units are kept.
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other => other,
    }
}

/// The word for the unit after `/` (`m/s` → `per_second`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// Splits on everything but ASCII letters, digits and `:`, dropping empty words.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|word| !word.is_empty())
        .collect()
}

/// The Prometheus name of an OTLP metric: sanitised, the unit appended as words unless already
/// there, `_total` for counters, `_ratio` for gauges of unit `1`.
pub fn metric_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> = words(name).into_iter().map(str::to_string).collect();
    // Annotations in braces carry no unit.
    let mut unit = unit.to_string();
    while let (Some(open), Some(close)) = (unit.find('{'), unit.find('}')) {
        if close < open {
            break;
        }
        unit.replace_range(open..=close, "");
    }
    let unit = unit.trim();
    let (main, per) = match unit.split_once('/') {
        Some((main, per)) => (main.trim(), per.trim()),
        None => (unit, ""),
    };
    let counter = kind == Kind::Counter;
    if counter {
        tokens.retain(|token| token != "total");
    }
    if main == "1" {
        if kind == Kind::Gauge && !tokens.iter().any(|token| token == "ratio") {
            tokens.push("ratio".into());
        }
    } else if !main.is_empty() {
        for word in words(unit_word(main)) {
            if !tokens.iter().any(|token| token == word) {
                tokens.push(word.to_string());
            }
        }
    }
    if !per.is_empty() {
        let per_words = words(per_unit_word(per));
        if !per_words.is_empty() && !tokens.iter().any(|token| token == "per") {
            tokens.push("per".into());
            tokens.extend(per_words.into_iter().map(str::to_string));
        }
    }
    if counter {
        tokens.push("total".into());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A Prometheus label name for an attribute key.
pub fn label_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    out
}

/// An attribute value as label text: strings as they are, other values as JSON.
fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => format_float(*number),
        Some(any_value::Value::BytesValue(bytes)) => hex::encode(bytes),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array
                .values
                .iter()
                .map(|item| serde_json::to_string(&value_text(Some(item))).unwrap_or_default())
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let items: Vec<String> = list
                .values
                .iter()
                .map(|item| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(&item.key).unwrap_or_default(),
                        serde_json::to_string(&value_text(item.value.as_ref())).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        // A string-table reference (profiles only) carries no text of its own.
        Some(_) => String::new(),
    }
}

/// Attributes as sanitised labels; values of keys that sanitise to the same name are joined
/// with `;` in the order of their original keys. Empty values are dropped.
fn attribute_labels(attributes: &[KeyValue], skip: &[&str]) -> BTreeMap<String, String> {
    let mut by_key: Vec<(&str, String)> = attributes
        .iter()
        .filter(|attribute| !skip.contains(&attribute.key.as_str()))
        .map(|attribute| (attribute.key.as_str(), value_text(attribute.value.as_ref())))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    by_key.sort_by(|left, right| left.0.cmp(right.0));
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in by_key {
        out.entry(label_name(key))
            .and_modify(|existing| {
                existing.push(';');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(
            |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(text) => Some(text.as_str()),
                _ => None,
            },
        )
}

/// Sorted remote-write labels from `__name__`, `labels` and an optional extra label.
fn make_labels(
    name: &str,
    labels: &BTreeMap<String, String>,
    extra: Option<(&str, &str)>,
) -> Vec<Label> {
    let mut out = Vec::with_capacity(labels.len() + 2);
    out.push(Label {
        name: "__name__".into(),
        value: name.into(),
    });
    for (label, value) in labels {
        if Some(label.as_str()) == extra.map(|(name, _)| name) {
            continue;
        }
        out.push(Label {
            name: label.clone(),
            value: value.clone(),
        });
    }
    if let Some((label, value)) = extra {
        out.push(Label {
            name: label.into(),
            value: value.into(),
        });
    }
    out.sort_by(|left, right| left.name.as_bytes().cmp(right.name.as_bytes()));
    out
}

fn nanos_to_ms(nanos: u64, now_ms: i64) -> i64 {
    if nanos == 0 {
        now_ms
    } else {
        i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
    }
}

fn exemplar_of(source: &opentelemetry_proto::tonic::metrics::v1::Exemplar) -> Option<Exemplar> {
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

// ---------------------------------------------------------------- state

/// A delta series' running total.
#[derive(Clone, Debug, PartialEq)]
enum Accumulated {
    Number(f64),
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: Option<f64>,
        count: u64,
    },
    Exponential(ExponentialBuckets),
}

/// An exponential histogram with sparse buckets, so deltas of different scales can be added.
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialBuckets {
    scale: i32,
    zero_threshold: f64,
    zero_count: u64,
    positive: BTreeMap<i32, u64>,
    negative: BTreeMap<i32, u64>,
    sum: Option<f64>,
    count: u64,
}

fn sparse(buckets: Option<&Buckets>) -> BTreeMap<i32, u64> {
    let mut out = BTreeMap::new();
    if let Some(buckets) = buckets {
        for (position, count) in buckets.bucket_counts.iter().enumerate() {
            if *count > 0 {
                let index = buckets.offset.saturating_add(position as i32);
                *out.entry(index).or_insert(0) += count;
            }
        }
    }
    out
}

fn downscale(buckets: &BTreeMap<i32, u64>, by: i32) -> BTreeMap<i32, u64> {
    let mut out = BTreeMap::new();
    for (index, count) in buckets {
        // An arithmetic shift floors, which is how indexes merge at a lower scale.
        *out.entry(index >> by.clamp(0, 31)).or_insert(0) += count;
    }
    out
}

impl ExponentialBuckets {
    fn of(point: &ExponentialHistogramDataPoint) -> ExponentialBuckets {
        ExponentialBuckets {
            scale: point.scale,
            zero_threshold: point.zero_threshold,
            zero_count: point.zero_count,
            positive: sparse(point.positive.as_ref()),
            negative: sparse(point.negative.as_ref()),
            sum: point.sum,
            count: point.count,
        }
    }

    fn rescale(&mut self, scale: i32) {
        if scale < self.scale {
            let by = self.scale - scale;
            self.positive = downscale(&self.positive, by);
            self.negative = downscale(&self.negative, by);
            self.scale = scale;
        }
    }

    /// Adds a delta, bringing both to the lower scale.
    fn add(&mut self, mut delta: ExponentialBuckets) {
        let scale = self.scale.min(delta.scale);
        self.rescale(scale);
        delta.rescale(scale);
        for (index, count) in delta.positive {
            *self.positive.entry(index).or_insert(0) += count;
        }
        for (index, count) in delta.negative {
            *self.negative.entry(index).or_insert(0) += count;
        }
        self.zero_threshold = self.zero_threshold.max(delta.zero_threshold);
        self.zero_count += delta.zero_count;
        self.count += delta.count;
        self.sum = match (self.sum, delta.sum) {
            (Some(left), Some(right)) => Some(left + right),
            (left, right) => left.or(right),
        };
    }

    /// Upper bound of bucket `index` at this scale: base^(index+1), base = 2^(2^-scale).
    fn upper_bound(&self, index: i32) -> f64 {
        ((f64::from(index) + 1.0) * (-f64::from(self.scale)).exp2()).exp2()
    }

    /// Classic buckets: (upper bound, count in the bucket) ascending, without `+Inf`. Negative
    /// buckets come first (bucket `i` holds [-base^(i+1), -base^i), bound -base^i), then the
    /// zero bucket (bound `zero_threshold`), then the positive ones.
    pub fn classic(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::with_capacity(self.positive.len() + self.negative.len() + 1);
        if let (Some(first), Some(last)) = (
            self.negative.keys().next().copied(),
            self.negative.keys().next_back().copied(),
        ) {
            for index in (first..=last).rev() {
                let count = self.negative.get(&index).copied().unwrap_or(0);
                out.push((-self.upper_bound(index - 1), count));
            }
        }
        out.push((self.zero_threshold, self.zero_count));
        if let (Some(first), Some(last)) = (
            self.positive.keys().next().copied(),
            self.positive.keys().next_back().copied(),
        ) {
            for index in first..=last {
                let count = self.positive.get(&index).copied().unwrap_or(0);
                out.push((self.upper_bound(index), count));
            }
        }
        out
    }
}

/// One metric point's identity (`__name__` and labels, no `le`/`quantile`) and what it last
/// produced.
#[derive(Debug)]
struct Tracked {
    family: String,
    kind: Kind,
    help: String,
    /// Receive time of the last point, for staleness.
    seen_ms: i64,
    /// Timestamp of the last point sent; older or equal points are held back.
    last_ms: i64,
    /// Point time of the last delta added, in nanoseconds.
    delta_time: u64,
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

/// One expanded series of a point.
struct Expanded {
    labels: Vec<Label>,
    value: f64,
    exemplars: Vec<Exemplar>,
}

/// The labels every series of a resource and scope carries.
struct Context<'a> {
    common: BTreeMap<String, String>,
    now_ms: i64,
    outcome: &'a mut ExportOutcome,
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

    fn emit_info(
        &mut self,
        name: &str,
        help: &str,
        labels: BTreeMap<String, String>,
        at_ms: i64,
        context: &mut Context<'_>,
    ) {
        let key = make_labels(name, &labels, None);
        let series = vec![Expanded {
            labels: key.clone(),
            value: 1.0,
            exemplars: Vec::new(),
        }];
        self.emit(
            Point {
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
        let mut newest = None;
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
        let help = &metric.description;
        match data {
            Data::Gauge(gauge) => {
                let name = metric_name(&metric.name, &metric.unit, Kind::Gauge);
                for point in &gauge.data_points {
                    newest =
                        newest.max(self.number(&name, Kind::Gauge, help, point, false, context));
                }
            }
            Data::Sum(sum) => {
                let kind = if sum.is_monotonic {
                    Kind::Counter
                } else {
                    Kind::Gauge
                };
                let name = metric_name(&metric.name, &metric.unit, kind);
                let delta = match temporality(sum.aggregation_temporality) {
                    Ok(delta) => delta,
                    Err(reason) => {
                        for _ in &sum.data_points {
                            context.outcome.reject(format!("{}: {reason}", metric.name));
                        }
                        return None;
                    }
                };
                for point in &sum.data_points {
                    newest = newest.max(self.number(&name, kind, help, point, delta, context));
                }
            }
            Data::Histogram(histogram) => {
                let name = metric_name(&metric.name, &metric.unit, Kind::Histogram);
                let delta = match temporality(histogram.aggregation_temporality) {
                    Ok(delta) => delta,
                    Err(reason) => {
                        for _ in &histogram.data_points {
                            context.outcome.reject(format!("{}: {reason}", metric.name));
                        }
                        return None;
                    }
                };
                for point in &histogram.data_points {
                    newest = newest.max(self.histogram(&name, help, point, delta, context));
                }
            }
            Data::ExponentialHistogram(histogram) => {
                let name = metric_name(&metric.name, &metric.unit, Kind::Histogram);
                let delta = match temporality(histogram.aggregation_temporality) {
                    Ok(delta) => delta,
                    Err(reason) => {
                        for _ in &histogram.data_points {
                            context.outcome.reject(format!("{}: {reason}", metric.name));
                        }
                        return None;
                    }
                };
                for point in &histogram.data_points {
                    newest = newest.max(self.exponential(&name, help, point, delta, context));
                }
            }
            Data::Summary(summary) => {
                let name = metric_name(&metric.name, &metric.unit, Kind::Summary);
                for point in &summary.data_points {
                    newest = newest.max(self.summary(&name, help, point, context));
                }
            }
        }
        newest
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

    /// Whether a point is newer than the last of its series (the remote-write timestamp
    /// guard's rule, and for deltas: not a repeat); counts it as held back if not.
    fn is_newer(&mut self, key: &[Label], time_ms: i64, delta_time: u64, delta: bool) -> bool {
        let newer = match self.tracked.get(key) {
            Some(tracked) if delta && tracked.accumulated.is_some() => {
                delta_time > tracked.delta_time && time_ms > tracked.last_ms
            }
            Some(tracked) => time_ms > tracked.last_ms,
            None => true,
        };
        if !newer {
            self.points_held_back += 1;
        }
        newer
    }

    fn number(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        point: &NumberDataPoint,
        delta: bool,
        context: &mut Context<'_>,
    ) -> Option<i64> {
        let (_, key) = Self::point_labels(name, &point.attributes, context);
        let time_ms = nanos_to_ms(point.time_unix_nano, context.now_ms);
        if point.flags & FLAG_NO_RECORDED_VALUE != 0 {
            self.end(&key, time_ms, context);
            return None;
        }
        let Some(value) = point.value.map(|value| match value {
            number_data_point::Value::AsDouble(value) => value,
            number_data_point::Value::AsInt(value) => value as f64,
        }) else {
            context
                .outcome
                .reject(format!("{name}: a data point has no value"));
            return None;
        };
        if !self.admit(&key, context) || !self.is_newer(&key, time_ms, point.time_unix_nano, delta)
        {
            return None;
        }
        let (value, accumulated) = if delta {
            let total = match self.accumulated(&key) {
                Some(Accumulated::Number(total)) => total + value,
                _ => value,
            };
            (total, Some(Accumulated::Number(total)))
        } else {
            (value, None)
        };
        let exemplars = point.exemplars.iter().filter_map(exemplar_of).collect();
        let series = vec![Expanded {
            labels: key.clone(),
            value,
            exemplars,
        }];
        self.emit(
            Point {
                key,
                family: name,
                kind,
                help,
                time_ms,
                delta_time: point.time_unix_nano,
                accumulated,
                series,
            },
            context,
        );
        Some(time_ms)
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        point: &HistogramDataPoint,
        delta: bool,
        context: &mut Context<'_>,
    ) -> Option<i64> {
        let (labels, key) = Self::point_labels(name, &point.attributes, context);
        let time_ms = nanos_to_ms(point.time_unix_nano, context.now_ms);
        if point.flags & FLAG_NO_RECORDED_VALUE != 0 {
            self.end(&key, time_ms, context);
            return None;
        }
        let bounds = &point.explicit_bounds;
        if !point.bucket_counts.is_empty() && point.bucket_counts.len() != bounds.len() + 1 {
            context.outcome.reject(format!(
                "{name}: {} bucket counts for {} explicit bounds, expected {}",
                point.bucket_counts.len(),
                bounds.len(),
                bounds.len() + 1
            ));
            return None;
        }
        if bounds.iter().any(|bound| bound.is_nan())
            || bounds.windows(2).any(|pair| pair[0] >= pair[1])
        {
            context.outcome.reject(format!(
                "{name}: explicit bounds are not strictly increasing"
            ));
            return None;
        }
        if !self.admit(&key, context) || !self.is_newer(&key, time_ms, point.time_unix_nano, delta)
        {
            return None;
        }
        let mut counts = point.bucket_counts.clone();
        counts.resize(bounds.len() + 1, 0);
        let (counts, sum, count, accumulated) = if delta {
            let (counts, sum, count) = match self.accumulated(&key) {
                Some(Accumulated::Histogram {
                    bounds: previous_bounds,
                    counts: previous,
                    sum: previous_sum,
                    count: previous_count,
                }) if previous_bounds == bounds => (
                    previous
                        .iter()
                        .zip(&counts)
                        .map(|(left, right)| left + right)
                        .collect(),
                    match (previous_sum, point.sum) {
                        (Some(left), Some(right)) => Some(left + right),
                        (left, right) => left.or(right),
                    },
                    previous_count + point.count,
                ),
                // A new layout restarts the series.
                _ => (counts, point.sum, point.count),
            };
            let accumulated = Accumulated::Histogram {
                bounds: bounds.clone(),
                counts: counts.clone(),
                sum,
                count,
            };
            (counts, sum, count, Some(accumulated))
        } else {
            (counts, point.sum, point.count, None)
        };
        let buckets: Vec<(f64, u64)> = bounds.iter().copied().zip(counts).collect();
        let series = histogram_series(
            name,
            &labels,
            &buckets,
            sum,
            count,
            point.exemplars.iter().filter_map(exemplar_of).collect(),
        );
        self.emit(
            Point {
                key,
                family: name,
                kind: Kind::Histogram,
                help,
                time_ms,
                delta_time: point.time_unix_nano,
                accumulated,
                series,
            },
            context,
        );
        Some(time_ms)
    }

    fn exponential(
        &mut self,
        name: &str,
        help: &str,
        point: &ExponentialHistogramDataPoint,
        delta: bool,
        context: &mut Context<'_>,
    ) -> Option<i64> {
        let (labels, key) = Self::point_labels(name, &point.attributes, context);
        let time_ms = nanos_to_ms(point.time_unix_nano, context.now_ms);
        if point.flags & FLAG_NO_RECORDED_VALUE != 0 {
            self.end(&key, time_ms, context);
            return None;
        }
        if !(-10..=20).contains(&point.scale) {
            context
                .outcome
                .reject(format!("{name}: scale {} is outside -10..=20", point.scale));
            return None;
        }
        if !self.admit(&key, context) || !self.is_newer(&key, time_ms, point.time_unix_nano, delta)
        {
            return None;
        }
        let mut buckets = ExponentialBuckets::of(point);
        let accumulated = if delta {
            if let Some(Accumulated::Exponential(previous)) = self.accumulated(&key) {
                let mut total = previous.clone();
                total.add(buckets);
                buckets = total;
            }
            Some(Accumulated::Exponential(buckets.clone()))
        } else {
            None
        };
        let series = histogram_series(
            name,
            &labels,
            &buckets.classic(),
            buckets.sum,
            buckets.count,
            point.exemplars.iter().filter_map(exemplar_of).collect(),
        );
        self.emit(
            Point {
                key,
                family: name,
                kind: Kind::Histogram,
                help,
                time_ms,
                delta_time: point.time_unix_nano,
                accumulated,
                series,
            },
            context,
        );
        Some(time_ms)
    }

    fn summary(
        &mut self,
        name: &str,
        help: &str,
        point: &SummaryDataPoint,
        context: &mut Context<'_>,
    ) -> Option<i64> {
        let (labels, key) = Self::point_labels(name, &point.attributes, context);
        let time_ms = nanos_to_ms(point.time_unix_nano, context.now_ms);
        if point.flags & FLAG_NO_RECORDED_VALUE != 0 {
            self.end(&key, time_ms, context);
            return None;
        }
        if !self.admit(&key, context) || !self.is_newer(&key, time_ms, 0, false) {
            return None;
        }
        let mut series = Vec::with_capacity(point.quantile_values.len() + 2);
        for quantile in &point.quantile_values {
            series.push(Expanded {
                labels: make_labels(
                    name,
                    &labels,
                    Some(("quantile", &format_float(quantile.quantile))),
                ),
                value: quantile.value,
                exemplars: Vec::new(),
            });
        }
        series.push(Expanded {
            labels: make_labels(&format!("{name}_sum"), &labels, None),
            value: point.sum,
            exemplars: Vec::new(),
        });
        series.push(Expanded {
            labels: make_labels(&format!("{name}_count"), &labels, None),
            value: point.count as f64,
            exemplars: Vec::new(),
        });
        self.emit(
            Point {
                key,
                family: name,
                kind: Kind::Summary,
                help,
                time_ms,
                delta_time: 0,
                accumulated: None,
                series,
            },
            context,
        );
        Some(time_ms)
    }

    fn accumulated(&self, key: &[Label]) -> Option<&Accumulated> {
        self.tracked
            .get(key)
            .and_then(|tracked| tracked.accumulated.as_ref())
    }

    /// Sends a point's series and remembers them; series the key sent before but not now
    /// (a changed bucket layout) get stale markers.
    fn emit(&mut self, point: Point<'_>, context: &mut Context<'_>) {
        let Point {
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
            context.outcome.series.push(TimeSeries {
                labels: entry.labels,
                samples: vec![Sample {
                    value: entry.value,
                    timestamp: time_ms,
                }],
                exemplars: entry.exemplars,
            });
        }
        self.points_accepted += 1;
    }

    /// Ends the series of `key` with stale markers at `time_ms` (or just after their last
    /// sample) and forgets it.
    fn end(&mut self, key: &[Label], time_ms: i64, context: &mut Context<'_>) {
        if let Some(tracked) = self.tracked.remove(key) {
            self.active_series -= tracked.emitted.len();
            self.series_stale += tracked.emitted.len() as u64;
            let at = time_ms.max(tracked.last_ms.saturating_add(1));
            for (labels, _) in tracked.emitted {
                context.outcome.series.push(stale_series(labels, at));
            }
        }
    }

    /// Ends every series with no point since `now_ms - staleness_ms`; returns their stale
    /// markers.
    pub fn sweep(&mut self, now_ms: i64, staleness_ms: i64) -> Vec<TimeSeries> {
        let expired: Vec<Vec<Label>> = self
            .tracked
            .iter()
            .filter(|(_, tracked)| now_ms - tracked.seen_ms >= staleness_ms)
            .map(|(key, _)| key.clone())
            .collect();
        let mut outcome = ExportOutcome::default();
        let mut context = Context {
            common: BTreeMap::new(),
            now_ms,
            outcome: &mut outcome,
        };
        for key in expired {
            self.end(&key, now_ms, &mut context);
        }
        outcome.series
    }

    /// Appends the latest value of every series in Prometheus text 0.0.4, families sorted.
    pub fn render(&self, out: &mut String) {
        let mut families: BTreeMap<&str, Vec<&Tracked>> = BTreeMap::new();
        for tracked in self.tracked.values() {
            families.entry(&tracked.family).or_default().push(tracked);
        }
        for (family, members) in families {
            let Some(first) = members.first() else {
                continue;
            };
            if !first.help.is_empty() {
                let help = first.help.replace('\\', "\\\\").replace('\n', "\\n");
                let _ = writeln!(out, "# HELP {family} {help}");
            }
            let _ = writeln!(out, "# TYPE {family} {}", first.kind.type_name());
            let mut lines: Vec<&(Vec<Label>, f64)> = members
                .iter()
                .flat_map(|tracked| &tracked.emitted)
                .collect();
            lines.sort_by(|left, right| left.0.cmp(&right.0));
            for (labels, value) in lines {
                let name = labels
                    .iter()
                    .find(|label| label.name == "__name__")
                    .map_or(family, |label| label.value.as_str());
                out.push_str(name);
                let mut first = true;
                for label in labels.iter().filter(|label| label.name != "__name__") {
                    out.push(if first { '{' } else { ',' });
                    first = false;
                    let _ = write!(out, "{}=\"{}\"", label.name, escape_label(&label.value));
                }
                if !first {
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_float(*value));
            }
        }
    }
}

/// One converted point, ready to send.
struct Point<'a> {
    key: Vec<Label>,
    family: &'a str,
    kind: Kind,
    help: &'a str,
    time_ms: i64,
    delta_time: u64,
    accumulated: Option<Accumulated>,
    series: Vec<Expanded>,
}

fn stale_series(labels: Vec<Label>, time_ms: i64) -> TimeSeries {
    TimeSeries {
        labels,
        samples: vec![Sample {
            value: stale_nan(),
            timestamp: time_ms,
        }],
        exemplars: Vec::new(),
    }
}

/// `_bucket{le}` (cumulative, `+Inf` = `count`), `_sum` and `_count` series of a histogram with
/// `buckets` (upper bound, count in that bucket); each exemplar goes to the first bucket whose
/// bound holds its value.
fn histogram_series(
    name: &str,
    labels: &BTreeMap<String, String>,
    buckets: &[(f64, u64)],
    sum: Option<f64>,
    count: u64,
    exemplars: Vec<Exemplar>,
) -> Vec<Expanded> {
    let bucket_name = format!("{name}_bucket");
    let mut series = Vec::with_capacity(buckets.len() + 3);
    let mut cumulative = 0u64;
    let mut by_bucket: Vec<Vec<Exemplar>> = vec![Vec::new(); buckets.len() + 1];
    for exemplar in exemplars {
        let index = buckets
            .iter()
            .position(|(bound, _)| exemplar.value <= *bound)
            .unwrap_or(buckets.len());
        by_bucket[index].push(exemplar);
    }
    for ((bound, bucket_count), exemplars) in buckets.iter().zip(by_bucket.iter_mut()) {
        cumulative += bucket_count;
        series.push(Expanded {
            labels: make_labels(&bucket_name, labels, Some(("le", &format_float(*bound)))),
            value: cumulative as f64,
            exemplars: std::mem::take(exemplars),
        });
    }
    series.push(Expanded {
        labels: make_labels(&bucket_name, labels, Some(("le", "+Inf"))),
        value: count.max(cumulative) as f64,
        exemplars: by_bucket.pop().unwrap_or_default(),
    });
    if let Some(sum) = sum {
        series.push(Expanded {
            labels: make_labels(&format!("{name}_sum"), labels, None),
            value: sum,
            exemplars: Vec::new(),
        });
    }
    series.push(Expanded {
        labels: make_labels(&format!("{name}_count"), labels, None),
        value: count.max(cumulative) as f64,
        exemplars: Vec::new(),
    });
    series
}

/// Whether a temporality is delta; unspecified is refused.
fn temporality(value: i32) -> Result<bool, String> {
    match AggregationTemporality::try_from(value) {
        Ok(AggregationTemporality::Delta) => Ok(true),
        Ok(AggregationTemporality::Cumulative) => Ok(false),
        _ => Err(format!(
            "aggregation temporality {value} is neither delta nor cumulative"
        )),
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

#[cfg(test)]
mod tests;
