//! The span-metrics processor: `traces_spanmetrics_calls_total`, `traces_spanmetrics_latency`,
//! `traces_spanmetrics_size_total` and `traces_target_info`, labelled as Tempo labels them
//! (reference/metrics-generator.md §2).

use std::collections::HashSet;

use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::config::SpanMetricsConfig;
use super::filter::{span_kind_name, status_code_name, SpanFilter};
use super::labels::{
    any_value_text, find_attribute, lookup_dimension, sanitize_label_name, string_attribute,
    LabelsBuilder,
};
use super::registry::{MetricId, Registry};

/// Calls counter.
pub const CALLS: &str = "traces_spanmetrics_calls_total";
/// Latency histogram (seconds, though the name has no `_seconds`, as in Tempo).
pub const LATENCY: &str = "traces_spanmetrics_latency";
/// Span size counter (protobuf bytes).
pub const SIZE: &str = "traces_spanmetrics_size_total";
/// One gauge per resource carrying its attributes.
pub const TARGET_INFO: &str = "traces_target_info";

/// Label names a dimension may not take; it gets a `__` prefix instead.
const INTRINSIC_LABELS: [&str; 5] = [
    "service",
    "span_name",
    "span_kind",
    "status_code",
    "status_message",
];

/// Resource attributes `traces_target_info` never copies: they are `job` and `instance`.
const TARGET_INFO_SKIPPED: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

struct Mapping {
    label: String,
    sources: Vec<String>,
    join: String,
}

/// The processor; state lives in the registry.
pub struct SpanMetrics {
    config: SpanMetricsConfig,
    filter: SpanFilter,
    calls: MetricId,
    latency: MetricId,
    size: MetricId,
    target_info: MetricId,
    /// (attribute key, label name) per configured dimension.
    dimensions: Vec<(String, String)>,
    mappings: Vec<Mapping>,
    target_info_excluded: HashSet<String>,
}

/// `job` as Tempo builds it: `<service.namespace>/<service.name>` or `service.name`.
fn job_label(resource: &[KeyValue]) -> Option<String> {
    let service = string_attribute(resource, "service.name").filter(|name| !name.is_empty())?;
    match string_attribute(resource, "service.namespace").filter(|name| !name.is_empty()) {
        Some(namespace) => Some(format!("{namespace}/{service}")),
        None => Some(service),
    }
}

/// Label name of a span-metrics dimension: sanitised, `__`-prefixed if it would hide a
/// default label.
fn dimension_label(key: &str) -> String {
    let sanitized = sanitize_label_name(key);
    if INTRINSIC_LABELS.contains(&sanitized.as_str()) {
        format!("__{sanitized}")
    } else {
        sanitized
    }
}

/// The sampling compensation of Tempo's `span_multiplier_key`: `1/v` for a positive double
/// attribute `v` (span first, then resource), else 1.
pub fn span_multiplier(key: &str, resource: &[KeyValue], span: &Span) -> f64 {
    if key.is_empty() {
        return 1.0;
    }
    let value = find_attribute(&span.attributes, key).or_else(|| find_attribute(resource, key));
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::DoubleValue(ratio)) if *ratio > 0.0 => 1.0 / ratio,
        _ => 1.0,
    }
}

/// A span's duration in seconds; a negative duration counts as 0.
pub fn span_seconds(span: &Span) -> f64 {
    span.end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano) as f64
        / 1e9
}

impl SpanMetrics {
    /// Registers the metrics; `filter` is compiled from the config's policies.
    pub fn new(config: SpanMetricsConfig, registry: &mut Registry) -> Result<SpanMetrics, String> {
        let filter = SpanFilter::new(&config.filter_policies)?;
        let dimensions = config
            .dimensions
            .iter()
            .map(|key| (key.clone(), dimension_label(key)))
            .collect();
        let mappings = config
            .dimension_mappings
            .iter()
            .map(|mapping| Mapping {
                label: dimension_label(&mapping.name),
                sources: mapping.source_labels.clone(),
                join: mapping.join.clone(),
            })
            .collect();
        Ok(SpanMetrics {
            calls: registry.counter(CALLS),
            latency: registry.histogram(LATENCY, &config.histogram_buckets),
            size: registry.counter(SIZE),
            target_info: registry.gauge(TARGET_INFO),
            target_info_excluded: config
                .target_info_excluded_dimensions
                .iter()
                .cloned()
                .collect(),
            filter,
            dimensions,
            mappings,
            config,
        })
    }

    /// Counts one span. Returns false when a filter policy dropped it.
    #[allow(clippy::too_many_arguments)]
    pub fn consume_span(
        &self,
        registry: &mut Registry,
        tenant: &str,
        resource: &[KeyValue],
        service: Option<&str>,
        span: &Span,
        trace_id: &str,
        now_ms: i64,
    ) -> bool {
        if !self.filter.keep(resource, span) {
            return false;
        }
        let intrinsic = &self.config.intrinsic_dimensions;
        let mut builder =
            LabelsBuilder::with_capacity(6 + self.dimensions.len() + self.mappings.len());
        if intrinsic.service {
            builder.add("service", service.unwrap_or_default());
        }
        if intrinsic.span_name {
            builder.add("span_name", span.name.as_str());
        }
        if intrinsic.span_kind {
            builder.add("span_kind", span_kind_name(span.kind));
        }
        if intrinsic.status_code {
            builder.add("status_code", status_code_name(span));
        }
        if intrinsic.status_message {
            let message = span
                .status
                .as_ref()
                .map(|status| status.message.as_str())
                .unwrap_or_default();
            builder.add("status_message", message);
        }
        if self.config.enable_target_info {
            if let Some(job) = job_label(resource) {
                builder.add("job", job);
            }
            if self.config.enable_instance_label {
                if let Some(instance) = string_attribute(resource, "service.instance.id") {
                    builder.add("instance", instance);
                }
            }
        }
        for (key, label) in &self.dimensions {
            if let Some(value) = lookup_dimension(resource, &span.attributes, key) {
                builder.add(label.as_str(), value);
            }
        }
        for mapping in &self.mappings {
            let values: Vec<String> = mapping
                .sources
                .iter()
                .filter_map(|key| lookup_dimension(resource, &span.attributes, key))
                .filter(|value| !value.is_empty())
                .collect();
            builder.add(mapping.label.as_str(), values.join(&mapping.join));
        }
        let Some(labels) = registry.labels(builder, tenant) else {
            return true;
        };
        let multiplier = span_multiplier(&self.config.span_multiplier_key, resource, span);
        registry.add(self.calls, &labels, multiplier, now_ms);
        registry.observe(
            self.latency,
            &labels,
            span_seconds(span),
            multiplier,
            Some(trace_id),
            now_ms,
        );
        // The size is not multiplied, as in Tempo.
        registry.add(self.size, &labels, span.encoded_len() as f64, now_ms);
        true
    }

    /// After a resource's spans: writes its `traces_target_info` if enabled and at least one
    /// of its spans counted.
    pub fn finish_resource(
        &self,
        registry: &mut Registry,
        tenant: &str,
        resource: &[KeyValue],
        now_ms: i64,
    ) {
        if !self.config.enable_target_info {
            return;
        }
        let mut builder = LabelsBuilder::with_capacity(resource.len() + 2);
        let mut other_labels = 0;
        for attribute in resource {
            let key = attribute.key.as_str();
            if key.is_empty()
                || key.starts_with(|character: char| character.is_ascii_digit())
                || TARGET_INFO_SKIPPED.contains(&key)
                || self.target_info_excluded.contains(key)
            {
                continue;
            }
            let sanitized = sanitize_label_name(key);
            let label = if INTRINSIC_LABELS.contains(&sanitized.as_str())
                || sanitized == "job"
                || sanitized == "instance"
            {
                format!("__{sanitized}")
            } else {
                sanitized
            };
            let value = attribute
                .value
                .as_ref()
                .map(any_value_text)
                .unwrap_or_default();
            if !value.is_empty() {
                other_labels += 1;
            }
            builder.add(label, value);
        }
        let job = job_label(resource);
        let instance = if self.config.enable_instance_label {
            string_attribute(resource, "service.instance.id").filter(|value| !value.is_empty())
        } else {
            None
        };
        if other_labels == 0 || (job.is_none() && instance.is_none()) {
            return;
        }
        if let Some(job) = job {
            builder.add("job", job);
        }
        if let Some(instance) = instance {
            builder.add("instance", instance);
        }
        if let Some(labels) = registry.labels(builder, tenant) {
            registry.set_if_absent(self.target_info, &labels, 1.0, now_ms);
        }
    }
}
