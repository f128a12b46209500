//! Scrape formats for `/metrics`: Prometheus text 0.0.4 (no exemplars) and OpenMetrics 1.0
//! text with exemplars on `_bucket` samples only, which is all Prometheus 2.42 accepts
//! (reference/metrics-generator.md §5). The format follows the scrape's `Accept` header.

use std::collections::HashSet;
use std::fmt::Write;

use super::labels::{format_float, Labels};
use super::registry::{Exemplar, Family, MetricKind, Registry, SeriesValue};
use crate::telemetry::escape_label;

/// Content type of Prometheus text 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics 1.0 text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A text exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: no exemplars, no `# EOF`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`: exemplars, `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Picks the format from an `Accept` header: OpenMetrics when it is offered with a quality at
/// least that of `text/plain` (Prometheus 2.42 offers it first); otherwise the classic text.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Prometheus;
    };
    let mut openmetrics_quality: f64 = 0.0;
    let mut text_quality: f64 = 0.0;
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
        let quality = parts
            .filter_map(|parameter| parameter.strip_prefix("q="))
            .find_map(|value| value.parse::<f64>().ok())
            .unwrap_or(1.0);
        match media_type.as_str() {
            "application/openmetrics-text" => {
                openmetrics_quality = openmetrics_quality.max(quality)
            }
            "text/plain" => text_quality = text_quality.max(quality),
            _ => {}
        }
    }
    if openmetrics_quality > 0.0 && openmetrics_quality >= text_quality {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

fn write_labels(out: &mut String, labels: &Labels, le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{name}=\"{}\"", escape_label(value));
    }
    if let Some(le) = le {
        if !first {
            out.push(',');
        }
        let _ = write!(out, "le=\"{le}\"");
    }
    out.push('}');
}

fn write_exemplar(out: &mut String, trace_id_label: &str, exemplar: &Exemplar) {
    // An explicit timestamp (the observation time) makes a repeated exemplar an exact
    // duplicate that Prometheus ignores, so exemplars need not be cleared after a scrape and
    // several scrapers each get them.
    let seconds = exemplar.timestamp_ms.div_euclid(1000);
    let millis = exemplar.timestamp_ms.rem_euclid(1000);
    let _ = write!(
        out,
        " # {{{trace_id_label}=\"{}\"}} {} {seconds}.{millis:03}",
        escape_label(&exemplar.trace_id),
        format_float(exemplar.value)
    );
}

fn render_family(out: &mut String, family: &Family, format: Format, trace_id_label: &str) {
    if family.series.is_empty() {
        return;
    }
    let type_name = match (&family.kind, format) {
        (MetricKind::Counter, Format::OpenMetrics) => {
            family.name.strip_suffix("_total").unwrap_or(&family.name)
        }
        _ => &family.name,
    };
    let kind = match family.kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram { .. } => "histogram",
    };
    let _ = writeln!(out, "# TYPE {type_name} {kind}");
    // Sorted so successive scrapes list series in the same order.
    let mut series: Vec<_> = family.series.iter().collect();
    series.sort_by(|left, right| left.0.cmp(right.0));
    for (labels, state) in series {
        match (&state.value, &family.kind) {
            (SeriesValue::Scalar(value), _) => {
                out.push_str(&family.name);
                write_labels(out, labels, None);
                let _ = writeln!(out, " {}", format_float(*value));
            }
            (SeriesValue::Histogram(histogram), MetricKind::Histogram { bounds }) => {
                for bucket in histogram.exposed_buckets(bounds) {
                    let _ = write!(out, "{}_bucket", family.name);
                    write_labels(out, labels, Some(&bucket.le));
                    let _ = write!(out, " {}", format_float(bucket.cumulative));
                    if format == Format::OpenMetrics {
                        if let Some(exemplar) = bucket.exemplar {
                            write_exemplar(out, trace_id_label, exemplar);
                        }
                    }
                    out.push('\n');
                }
                let _ = write!(out, "{}_sum", family.name);
                write_labels(out, labels, None);
                let _ = writeln!(out, " {}", format_float(histogram.sum));
                let _ = write!(out, "{}_count", family.name);
                write_labels(out, labels, None);
                let _ = writeln!(out, " {}", format_float(histogram.count));
            }
            _ => {}
        }
    }
}

/// Appends every generated series in `format` (without `# EOF`).
pub fn render_registry(
    registry: &Registry,
    format: Format,
    trace_id_label: &str,
    out: &mut String,
) {
    for family in registry.families() {
        render_family(out, family, format, trace_id_label);
    }
}

/// Rewrites Prometheus 0.0.4 text (the appliance's own metrics) for an OpenMetrics body: a
/// counter family is named without its `_total` suffix in `# HELP`/`# TYPE`, as OpenMetrics
/// requires, while its samples keep it.
pub fn prometheus_to_openmetrics(text: &str, out: &mut String) {
    let counters: HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .filter(|name| name.ends_with("_total"))
        .collect();
    for line in text.lines() {
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            if !counters.contains(name) {
                return None;
            }
            let family = name.strip_suffix("_total")?;
            Some(format!("{prefix}{family} {tail}"))
        });
        match rewritten {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
}

/// Ends an OpenMetrics body.
pub fn finish_openmetrics(out: &mut String) {
    out.push_str("# EOF\n");
}
