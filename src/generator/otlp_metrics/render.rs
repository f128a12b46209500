//! Rendering of converted points: their Prometheus series (remote-write label sets, classic
//! histogram buckets) and the scrape text of the latest values.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::metrics::v1::{
    summary_data_point::ValueAtQuantile, Exemplar as OtlpExemplar,
};

use super::convert::{exemplar_of, PointInput};
use super::{Converter, Tracked};
use crate::generator::labels::format_float;
use crate::generator::remote_write::{Exemplar, Label, Sample, TimeSeries};
use crate::telemetry::escape_label;

/// One expanded series of a point.
pub(super) struct Expanded {
    /// The complete label set, `__name__` included.
    pub(super) labels: Vec<Label>,
    /// The sample's value.
    pub(super) value: f64,
    /// The exemplars that go with the sample.
    pub(super) exemplars: Vec<Exemplar>,
}

impl Expanded {
    /// A series without exemplars.
    pub(super) fn plain(labels: Vec<Label>, value: f64) -> Expanded {
        Expanded {
            labels,
            value,
            exemplars: Vec::new(),
        }
    }
}

/// A remote-write series of one sample at `time_ms`.
pub(super) fn one_sample_series(
    labels: Vec<Label>,
    value: f64,
    time_ms: i64,
    exemplars: Vec<Exemplar>,
) -> TimeSeries {
    TimeSeries {
        labels,
        samples: vec![Sample {
            value,
            timestamp: time_ms,
        }],
        exemplars,
    }
}

/// Sorted remote-write labels from `__name__`, `labels` and an optional extra label.
pub(super) fn make_labels(
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

/// `_bucket{le}` (cumulative, `+Inf` = `count`), `_sum` and `_count` series of a histogram with
/// `buckets` (upper bound, count in that bucket); each exemplar goes to the first bucket whose
/// bound holds its value.
pub(super) fn histogram_series(
    input: &PointInput<'_>,
    buckets: &[(f64, u64)],
    sum: Option<f64>,
    count: u64,
    exemplars: &[OtlpExemplar],
) -> Vec<Expanded> {
    let PointInput { name, labels, .. } = *input;
    let bucket_name = format!("{name}_bucket");
    let mut series = Vec::with_capacity(buckets.len() + 3);
    let mut cumulative = 0u64;
    let mut by_bucket: Vec<Vec<Exemplar>> = vec![Vec::new(); buckets.len() + 1];
    for exemplar in exemplars.iter().filter_map(exemplar_of) {
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
    push_sum_and_count(input, sum, count.max(cumulative) as f64, &mut series);
    series
}

/// `{quantile}` series, `_sum` and `_count` of a summary point.
pub(super) fn summary_series(
    input: &PointInput<'_>,
    quantiles: &[ValueAtQuantile],
    sum: f64,
    count: u64,
) -> Vec<Expanded> {
    let mut series = Vec::with_capacity(quantiles.len() + 2);
    for quantile in quantiles {
        let quantile_text = format_float(quantile.quantile);
        let labels = make_labels(input.name, input.labels, Some(("quantile", &quantile_text)));
        series.push(Expanded::plain(labels, quantile.value));
    }
    push_sum_and_count(input, Some(sum), count as f64, &mut series);
    series
}

/// Appends the `_sum` (when there is one) and `_count` series of a histogram or summary.
fn push_sum_and_count(
    input: &PointInput<'_>,
    sum: Option<f64>,
    count: f64,
    series: &mut Vec<Expanded>,
) {
    let PointInput { name, labels, .. } = *input;
    if let Some(sum) = sum {
        series.push(Expanded::plain(
            make_labels(&format!("{name}_sum"), labels, None),
            sum,
        ));
    }
    series.push(Expanded::plain(
        make_labels(&format!("{name}_count"), labels, None),
        count,
    ));
}

impl Converter {
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
