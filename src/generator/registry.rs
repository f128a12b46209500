//! The generator's series: counters, gauges and classic histograms keyed by sorted label sets,
//! with the latest exemplar per histogram bucket, a bound on active series and deletion of
//! series that stopped being updated (reference/metrics-generator.md §1).

use std::collections::HashMap;

use super::config::RegistryConfig;
use super::labels::{format_float, Labels, LabelsBuilder, LabelsError};

/// Index of a metric family in its registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MetricId(usize);

/// What kind of samples a family writes.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricKind {
    /// `<name>` ends in `_total`; one sample per series.
    Counter,
    /// One sample per series.
    Gauge,
    /// `<name>_bucket{le}`, `<name>_sum`, `<name>_count`; the bounds exclude `+Inf`.
    Histogram { bounds: Vec<f64> },
}

/// The most recent observation that fell into one histogram bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// Trace ID as Tempo writes it (hex without leading zeros).
    pub trace_id: String,
    /// The observed value (seconds).
    pub value: f64,
    /// When it was observed, in milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// A histogram series' state; `buckets` are per bucket (not cumulative), the last is `+Inf`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramState {
    /// Observations (times multiplier) per bucket, the last one being `+Inf`.
    pub buckets: Vec<f64>,
    /// Latest exemplar per bucket.
    pub exemplars: Vec<Option<Exemplar>>,
    /// Sum of the observed values (times multiplier).
    pub sum: f64,
    /// Number of observations (times multiplier).
    pub count: f64,
}

/// One bucket of a histogram as it is exposed (scraped or remote-written).
#[derive(Clone, Debug, PartialEq)]
pub struct ExposedBucket<'a> {
    /// The `le` label: the bound's text, `+Inf` for the last bucket. Scrapes and remote write
    /// use the same text, so both make one series.
    pub le: String,
    /// Observations up to and including this bucket.
    pub cumulative: f64,
    /// The latest exemplar that fell into this bucket.
    pub exemplar: Option<&'a Exemplar>,
}

impl HistogramState {
    /// The buckets as exposed, in order, given the family's `bounds` (without `+Inf`).
    pub fn exposed_buckets<'a>(
        &'a self,
        bounds: &'a [f64],
    ) -> impl Iterator<Item = ExposedBucket<'a>> + 'a {
        let mut cumulative = 0.0;
        self.buckets.iter().enumerate().map(move |(index, count)| {
            cumulative += count;
            ExposedBucket {
                le: bounds
                    .get(index)
                    .map(|bound| format_float(*bound))
                    .unwrap_or_else(|| "+Inf".to_string()),
                cumulative,
                exemplar: self.exemplars.get(index).and_then(Option::as_ref),
            }
        })
    }
}

/// The value of one series.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesValue {
    /// A counter's or gauge's value.
    Scalar(f64),
    /// A histogram's buckets, sum, count and exemplars.
    Histogram(HistogramState),
}

/// One series and when it was last updated.
#[derive(Clone, Debug)]
pub struct Series {
    /// Current value.
    pub value: SeriesValue,
    /// Last update, in milliseconds since the epoch; drives stale deletion.
    pub last_update_ms: i64,
}

/// A named metric and its series.
#[derive(Debug)]
pub struct Family {
    /// Full name as written (`traces_spanmetrics_calls_total`, `traces_spanmetrics_latency`).
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Series by label set (without `__name__`).
    pub series: HashMap<Labels, Series>,
}

impl Family {
    /// Exposed series one label set costs against `max_active_series`: a histogram writes
    /// every bucket plus `_sum` and `_count`.
    fn series_cost(&self) -> usize {
        match &self.kind {
            MetricKind::Histogram { bounds } => bounds.len() + 3,
            _ => 1,
        }
    }
}

/// Registry counters for the appliance's own metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Exposed series alive now.
    pub active_series: u64,
    /// Updates that would have created a series past `max_active_series` (folded into overflow).
    pub series_limited: u64,
    /// Series deleted because they were not updated for `stale_duration`.
    pub series_removed_stale: u64,
    /// Updates dropped because cut labels were not valid UTF-8.
    pub invalid_labels: u64,
}

/// All generated series.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    families: Vec<Family>,
    active_series: usize,
    stats: RegistryStats,
}

impl Registry {
    /// An empty registry with the given limits.
    pub fn new(config: RegistryConfig) -> Registry {
        Registry {
            config,
            families: Vec::new(),
            active_series: 0,
            stats: RegistryStats::default(),
        }
    }

    fn register(&mut self, name: &str, kind: MetricKind) -> MetricId {
        if let Some(index) = self.families.iter().position(|family| family.name == name) {
            return MetricId(index);
        }
        self.families.push(Family {
            name: name.to_string(),
            kind,
            series: HashMap::new(),
        });
        MetricId(self.families.len() - 1)
    }

    /// Registers (or finds) a counter; `name` includes `_total`.
    pub fn counter(&mut self, name: &str) -> MetricId {
        self.register(name, MetricKind::Counter)
    }

    /// Registers (or finds) a gauge.
    pub fn gauge(&mut self, name: &str) -> MetricId {
        self.register(name, MetricKind::Gauge)
    }

    /// Registers (or finds) a classic histogram with these upper bounds (sorted here; `+Inf`
    /// is implied).
    pub fn histogram(&mut self, name: &str, bounds: &[f64]) -> MetricId {
        let mut sorted = bounds.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        self.register(name, MetricKind::Histogram { bounds: sorted })
    }

    /// Finishes a label set: adds the external and tenant labels, sorts, drops empty values,
    /// cuts to the length limits. `None` (counted) when the result is not valid UTF-8.
    pub fn labels(&mut self, mut builder: LabelsBuilder, tenant: &str) -> Option<Labels> {
        for (name, value) in &self.config.external_labels {
            builder.add(name.as_str(), value.as_str());
        }
        if !self.config.inject_tenant_id_as.is_empty() {
            builder.add(self.config.inject_tenant_id_as.as_str(), tenant);
        }
        match builder.finish(
            self.config.max_label_name_length,
            self.config.max_label_value_length,
        ) {
            Ok(labels) => Some(labels),
            Err(LabelsError::InvalidUtf8) => {
                self.stats.invalid_labels += 1;
                None
            }
        }
    }

    /// The series for `labels`, created if there is room; past `max_active_series` the
    /// family's overflow series (`metric_overflow="true"`) instead.
    fn series_entry(&mut self, id: MetricId, labels: &Labels, now_ms: i64) -> Option<&mut Series> {
        let family = self.families.get(id.0)?;
        let cost = family.series_cost();
        let limit = self.config.max_active_series;
        let exists = family.series.contains_key(labels);
        // Updates of existing series (the common case) look up by reference: no label copy.
        if exists {
            let series = self.families.get_mut(id.0)?.series.get_mut(labels)?;
            series.last_update_ms = now_ms;
            return Some(series);
        }
        let key = if limit == 0 || self.active_series + cost <= limit {
            labels.clone()
        } else {
            self.stats.series_limited += 1;
            let mut overflow = LabelsBuilder::with_capacity(1 + self.config.external_labels.len());
            overflow.add("metric_overflow", "true");
            for (name, value) in &self.config.external_labels {
                overflow.add(name.as_str(), value.as_str());
            }
            overflow
                .finish(
                    self.config.max_label_name_length,
                    self.config.max_label_value_length,
                )
                .ok()?
        };
        let family = self.families.get_mut(id.0)?;
        let active_series = &mut self.active_series;
        let series = family.series.entry(key).or_insert_with(|| {
            *active_series += cost;
            let value = match &family.kind {
                MetricKind::Histogram { bounds } => SeriesValue::Histogram(HistogramState {
                    buckets: vec![0.0; bounds.len() + 1],
                    exemplars: vec![None; bounds.len() + 1],
                    sum: 0.0,
                    count: 0.0,
                }),
                _ => SeriesValue::Scalar(0.0),
            };
            Series {
                value,
                last_update_ms: now_ms,
            }
        });
        series.last_update_ms = now_ms;
        Some(series)
    }

    /// Adds `amount` to a counter series.
    pub fn add(&mut self, id: MetricId, labels: &Labels, amount: f64, now_ms: i64) {
        if let Some(series) = self.series_entry(id, labels, now_ms) {
            if let SeriesValue::Scalar(value) = &mut series.value {
                *value += amount;
            }
        }
    }

    /// Sets a gauge series only if it does not exist yet (Tempo's `traces_target_info`),
    /// refreshing its update time either way so it does not go stale while in use.
    pub fn set_if_absent(&mut self, id: MetricId, labels: &Labels, value: f64, now_ms: i64) {
        let existed = self
            .families
            .get(id.0)
            .is_some_and(|family| family.series.contains_key(labels));
        if let Some(series) = self.series_entry(id, labels, now_ms) {
            if !existed {
                series.value = SeriesValue::Scalar(value);
            }
        }
    }

    /// Records `value` into the first bucket whose bound is `>= value`, `multiplier` times,
    /// and keeps it as that bucket's exemplar when a trace ID is given.
    pub fn observe(
        &mut self,
        id: MetricId,
        labels: &Labels,
        value: f64,
        multiplier: f64,
        trace_id: Option<&str>,
        now_ms: i64,
    ) {
        let bucket = match self.families.get(id.0).map(|family| &family.kind) {
            Some(MetricKind::Histogram { bounds }) => bounds
                .iter()
                .position(|bound| value <= *bound)
                .unwrap_or(bounds.len()),
            _ => return,
        };
        let Some(series) = self.series_entry(id, labels, now_ms) else {
            return;
        };
        let SeriesValue::Histogram(histogram) = &mut series.value else {
            return;
        };
        histogram.buckets[bucket] += multiplier;
        histogram.count += multiplier;
        histogram.sum += value * multiplier;
        if let Some(trace_id) = trace_id {
            histogram.exemplars[bucket] = Some(Exemplar {
                trace_id: trace_id.to_string(),
                value,
                timestamp_ms: now_ms,
            });
        }
    }

    /// Deletes series not updated for `stale_duration`; returns how many label sets went.
    pub fn remove_stale(&mut self, now_ms: i64) -> usize {
        let stale_ms = i64::try_from(self.config.stale_duration.as_millis()).unwrap_or(i64::MAX);
        let mut removed = 0;
        for family in &mut self.families {
            let cost = family.series_cost();
            let before = family.series.len();
            family
                .series
                .retain(|_, series| now_ms.saturating_sub(series.last_update_ms) < stale_ms);
            let gone = before - family.series.len();
            self.active_series = self.active_series.saturating_sub(gone * cost);
            removed += gone;
        }
        self.stats.series_removed_stale += removed as u64;
        removed
    }

    /// The families in registration order, for exposition.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The family behind an ID.
    pub fn family(&self, id: MetricId) -> Option<&Family> {
        self.families.get(id.0)
    }

    /// The registry's own counters.
    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            active_series: self.active_series as u64,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn labels(registry: &mut Registry, pairs: &[(&str, &str)]) -> Labels {
        let mut builder = LabelsBuilder::default();
        for (name, value) in pairs {
            builder.add(*name, *value);
        }
        registry.labels(builder, "single-tenant").unwrap()
    }

    #[test]
    fn histograms_fill_the_first_bucket_at_or_above_the_value() {
        let mut registry = Registry::new(RegistryConfig::default());
        let latency = registry.histogram("h", &[0.2, 0.1]);
        let set = labels(&mut registry, &[("service", "a")]);
        registry.observe(latency, &set, 0.1, 1.0, Some("ab"), 1_000);
        registry.observe(latency, &set, 0.15, 2.0, Some("cd"), 2_000);
        registry.observe(latency, &set, 9.0, 1.0, None, 3_000);
        let family = registry.family(latency).unwrap();
        let SeriesValue::Histogram(state) = &family.series[&set].value else {
            panic!("not a histogram");
        };
        assert_eq!(state.buckets, vec![1.0, 2.0, 1.0]);
        assert_eq!(state.count, 4.0);
        assert!((state.sum - (0.1 + 0.3 + 9.0)).abs() < 1e-9);
        assert_eq!(state.exemplars[0].as_ref().unwrap().trace_id, "ab");
        assert_eq!(
            state.exemplars[1],
            Some(Exemplar {
                trace_id: "cd".into(),
                value: 0.15,
                timestamp_ms: 2_000
            })
        );
        assert_eq!(state.exemplars[2], None);
        assert_eq!(registry.stats().active_series, 5);
    }

    #[test]
    fn labels_get_external_and_tenant_labels() {
        let mut registry = Registry::new(RegistryConfig {
            external_labels: [("cluster".to_string(), "eu".to_string())].into(),
            inject_tenant_id_as: "tenant".into(),
            ..RegistryConfig::default()
        });
        let set = labels(&mut registry, &[("service", "a")]);
        assert_eq!(
            set,
            vec![
                ("cluster".to_string(), "eu".to_string()),
                ("service".to_string(), "a".to_string()),
                ("tenant".to_string(), "single-tenant".to_string()),
            ]
        );
    }

    #[test]
    fn series_past_the_limit_fold_into_overflow() {
        let mut registry = Registry::new(RegistryConfig {
            max_active_series: 3,
            ..RegistryConfig::default()
        });
        let calls = registry.counter("calls_total");
        for service in ["a", "b", "c", "d", "e"] {
            let set = labels(&mut registry, &[("service", service)]);
            registry.add(calls, &set, 1.0, 0);
        }
        let family = registry.family(calls).unwrap();
        assert_eq!(family.series.len(), 4);
        let overflow = vec![("metric_overflow".to_string(), "true".to_string())];
        assert_eq!(family.series[&overflow].value, SeriesValue::Scalar(2.0));
        assert_eq!(registry.stats().series_limited, 2);
        // An existing series keeps counting at the limit.
        let existing = labels(&mut registry, &[("service", "a")]);
        registry.add(calls, &existing, 1.0, 0);
        let family = registry.family(calls).unwrap();
        assert_eq!(family.series[&existing].value, SeriesValue::Scalar(2.0));
    }

    #[test]
    fn stale_series_are_deleted_and_restart_from_zero() {
        let mut registry = Registry::new(RegistryConfig {
            stale_duration: Duration::from_secs(60),
            ..RegistryConfig::default()
        });
        let calls = registry.counter("calls_total");
        let old = labels(&mut registry, &[("service", "old")]);
        let fresh = labels(&mut registry, &[("service", "fresh")]);
        registry.add(calls, &old, 5.0, 0);
        registry.add(calls, &fresh, 1.0, 30_000);
        assert_eq!(registry.remove_stale(59_999), 0);
        assert_eq!(registry.remove_stale(60_000), 1);
        assert_eq!(registry.stats().active_series, 1);
        assert_eq!(registry.stats().series_removed_stale, 1);
        registry.add(calls, &old, 1.0, 61_000);
        let family = registry.family(calls).unwrap();
        assert_eq!(family.series[&old].value, SeriesValue::Scalar(1.0));
    }

    #[test]
    fn gauges_set_once() {
        let mut registry = Registry::new(RegistryConfig::default());
        let info = registry.gauge("info");
        let set = labels(&mut registry, &[("job", "a")]);
        registry.set_if_absent(info, &set, 1.0, 0);
        registry.set_if_absent(info, &set, 2.0, 10);
        let series = &registry.family(info).unwrap().series[&set];
        assert_eq!(series.value, SeriesValue::Scalar(1.0));
        assert_eq!(series.last_update_ms, 10);
    }
}
