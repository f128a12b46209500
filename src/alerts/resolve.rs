//! Resolution of an alert to the traces behind it, off the request path: a bounded queue and
//! one background worker. For an alert's labels (`service`/`service_name`/`job` →
//! `resource.service.name`, `span_name` → `name`) and its window (`startsAt` − lookback …
//! `endsAt` or now), it collects, in this order: the exemplar traces of the alerting series from
//! Prometheus (`/api/v1/query_exemplars`, when `prometheus.url` is set), the erroring traces
//! (`status = error`) and the slowest traces, as a TraceQL search over the querier.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::sync::mpsc;

use super::config::AlertsConfig;
use super::store::{AlertStore, AlertTrace, StoredAlert};
use super::webhook::parse_time;
use crate::model::TraceId;
use crate::querier::Querier;
use crate::traceql::eval::{Evaluator, StructuralMode};
use crate::traceql::parse_and_validate;
use crate::traceql::search::{CompiledSearch, SearchOptions, TraceSearchMetadata};

/// Candidates a "slowest traces" search looks at per trace it links.
const SLOW_CANDIDATES_PER_TRACE: usize = 20;
/// Longest wait for Prometheus.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(10);

/// What an alert is about, from its name and labels: it decides which traces are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// Error ratio, error budget burn, failures: erroring traces first.
    Errors,
    /// Latency, slow requests: slowest traces first.
    Latency,
    /// Anything else: erroring, then slowest.
    Other,
}

/// Classifies an alert by its `slo` label, then words in its name.
pub fn alert_kind(labels: &BTreeMap<String, String>) -> AlertKind {
    match labels.get("slo").map(String::as_str) {
        Some("availability") => return AlertKind::Errors,
        Some("latency") => return AlertKind::Latency,
        _ => {}
    }
    let name = labels
        .get("alertname")
        .map(|name| name.to_ascii_lowercase())
        .unwrap_or_default();
    if ["error", "fail", "burn", "availability"]
        .iter()
        .any(|word| name.contains(word))
    {
        AlertKind::Errors
    } else if ["latency", "slow", "duration", "p99", "p95"]
        .iter()
        .any(|word| name.contains(word))
    {
        AlertKind::Latency
    } else {
        AlertKind::Other
    }
}

/// The service an alert is about, from the labels span metrics carry.
pub fn alert_service(labels: &BTreeMap<String, String>) -> Option<&str> {
    ["service", "service_name", "server", "job"]
        .iter()
        .find_map(|key| labels.get(*key))
        .map(String::as_str)
        .filter(|service| !service.is_empty())
}

fn traceql_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The TraceQL filter of an alert's spans (`None` without a service or span name), with
/// `status = error` when `errors_only`.
pub fn alert_traceql(labels: &BTreeMap<String, String>, errors_only: bool) -> Option<String> {
    let mut conditions = Vec::new();
    if let Some(service) = alert_service(labels) {
        conditions.push(format!(
            "resource.service.name = {}",
            traceql_string(service)
        ));
    }
    if let Some(span_name) = labels.get("span_name").filter(|name| !name.is_empty()) {
        conditions.push(format!("name = {}", traceql_string(span_name)));
    }
    if conditions.is_empty() {
        return None;
    }
    if errors_only {
        conditions.push("status = error".to_string());
    }
    Some(format!("{{ {} }}", conditions.join(" && ")))
}

fn promql_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The series whose exemplars are the alert's traces: the rule's `exemplar_selector`
/// annotation, or span-metrics latency buckets of the alert's service (and span name, and
/// error status for an error alert).
pub fn exemplar_selector(alert: &StoredAlert) -> Option<String> {
    if let Some(selector) = alert
        .annotations
        .get("exemplar_selector")
        .filter(|selector| !selector.trim().is_empty())
    {
        return Some(selector.clone());
    }
    let service = alert_service(&alert.labels)?;
    let mut matchers = vec![format!("service={}", promql_string(service))];
    if let Some(span_name) = alert.labels.get("span_name") {
        matchers.push(format!("span_name={}", promql_string(span_name)));
    }
    if alert_kind(&alert.labels) == AlertKind::Errors {
        matchers.push("status_code=\"STATUS_CODE_ERROR\"".to_string());
    }
    Some(format!(
        "traces_spanmetrics_latency_bucket{{{}}}",
        matchers.join(",")
    ))
}

/// The window an alert's traces are looked for in, Unix ns.
pub fn alert_window(alert: &StoredAlert, lookback: Duration) -> Option<(u64, u64)> {
    let starts = parse_time(&alert.starts_at).ok()??;
    let ends = parse_time(&alert.ends_at)
        .ok()
        .flatten()
        .unwrap_or_else(Utc::now);
    let start = starts.timestamp_nanos_opt()?.max(0) as u64;
    let start = start.saturating_sub(lookback.as_nanos() as u64);
    let end = ends.timestamp_nanos_opt()?.max(0) as u64;
    Some((start, end.max(start + 1)))
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct ResolverStats {
    pub resolved: AtomicU64,
    pub queue_full: AtomicU64,
    pub prometheus_errors: AtomicU64,
    pub search_errors: AtomicU64,
}

/// The background resolution of alerts to traces.
pub struct Resolver {
    querier: Arc<Querier>,
    store: Arc<AlertStore>,
    config: AlertsConfig,
    prometheus_url: String,
    client: reqwest::Client,
    queue: mpsc::Sender<(String, String)>,
    pub stats: ResolverStats,
}

impl Resolver {
    /// Starts the worker; it stops when the returned resolver is dropped. Alerts never
    /// resolved (the process stopped first) are queued again.
    pub fn start(
        querier: Arc<Querier>,
        store: Arc<AlertStore>,
        config: AlertsConfig,
        prometheus_url: String,
    ) -> Arc<Resolver> {
        let (queue, mut jobs) = mpsc::channel(config.resolve_queue);
        let client = reqwest::Client::builder()
            .timeout(PROMETHEUS_TIMEOUT)
            .build()
            .unwrap_or_default();
        let resolver = Arc::new(Resolver {
            querier,
            store,
            config,
            prometheus_url: prometheus_url.trim_end_matches('/').to_string(),
            client,
            queue,
            stats: ResolverStats::default(),
        });
        for (tenant, fingerprint) in resolver.store.unresolved() {
            resolver.enqueue(tenant, fingerprint);
        }
        let worker = Arc::downgrade(&resolver);
        tokio::spawn(async move {
            while let Some((tenant, fingerprint)) = jobs.recv().await {
                let Some(resolver) = worker.upgrade() else {
                    break;
                };
                resolver.resolve_and_store(&tenant, &fingerprint).await;
            }
        });
        resolver
    }

    /// Queues an alert for resolution; `false` (and counted) when the queue is full.
    pub fn enqueue(&self, tenant: String, fingerprint: String) -> bool {
        match self.queue.try_send((tenant, fingerprint)) {
            Ok(()) => true,
            Err(error) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "alert resolution queue full; the alert is kept without traces");
                false
            }
        }
    }

    async fn resolve_and_store(&self, tenant: &str, fingerprint: &str) {
        let tenants = vec![tenant.to_string()];
        let Some(alert) = self.store.get(&tenants, fingerprint) else {
            return;
        };
        let traces = self.resolve(&alert).await;
        tracing::info!(
            fingerprint,
            traces = traces.len(),
            alertname = alert
                .labels
                .get("alertname")
                .map(String::as_str)
                .unwrap_or(""),
            "alert resolved to traces"
        );
        self.store.set_traces(tenant, fingerprint, traces);
        self.stats.resolved.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.store.persist().await {
            tracing::warn!(%error, "persisting alerts failed");
        }
    }

    /// The traces behind one alert: exemplars, then erroring, then slowest, without repeats.
    pub async fn resolve(&self, alert: &StoredAlert) -> Vec<AlertTrace> {
        let wanted = self.config.traces_per_alert;
        let Some(window) = alert_window(alert, self.config.lookback) else {
            return Vec::new();
        };
        let tenants = vec![alert.tenant.clone()];
        let kind = alert_kind(&alert.labels);
        let mut found: Vec<AlertTrace> = Vec::new();
        let mut seen = HashSet::new();
        let mut add = |found: &mut Vec<AlertTrace>, trace: AlertTrace| {
            if found.len() < wanted && seen.insert(trace.trace_id.clone()) {
                found.push(trace);
            }
        };
        if !self.prometheus_url.is_empty() {
            match self.exemplar_traces(alert, &tenants, window, kind).await {
                Ok(traces) => traces.into_iter().for_each(|trace| add(&mut found, trace)),
                Err(error) => {
                    self.stats.prometheus_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "exemplars of an alert could not be read from prometheus");
                }
            }
        }
        let mut searches = Vec::new();
        if kind != AlertKind::Latency {
            searches.push((true, "error"));
        }
        searches.push((false, "slow"));
        for (errors_only, reason) in searches {
            if found.len() >= wanted {
                break;
            }
            let Some(query) = alert_traceql(&alert.labels, errors_only) else {
                break;
            };
            let candidates = if errors_only {
                wanted
            } else {
                wanted * SLOW_CANDIDATES_PER_TRACE
            };
            match self.search(&tenants, &query, candidates, window).await {
                Ok(mut traces) => {
                    if !errors_only {
                        traces.sort_by_key(|trace| std::cmp::Reverse(trace.duration_ms));
                    }
                    for mut trace in traces {
                        trace.reason = reason.to_string();
                        add(&mut found, trace);
                    }
                }
                Err(error) => {
                    self.stats.search_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, query, "searching the traces of an alert failed");
                }
            }
        }
        found
    }

    async fn search(
        &self,
        tenants: &[String],
        query: &str,
        limit: usize,
        window: (u64, u64),
    ) -> Result<Vec<AlertTrace>, String> {
        let parsed = parse_and_validate(query).map_err(|error| error.to_string())?;
        let compiled = CompiledSearch::new(parsed)
            .map_err(|error| error.to_string())?
            .metadata_only();
        let options = SearchOptions {
            window: Some(window),
            ..SearchOptions::default()
        };
        let outcome = self
            .querier
            .search(tenants, Arc::new(compiled), limit, options)
            .await
            .map_err(|error| error.to_string())?;
        Ok(outcome.traces.iter().map(metadata_trace).collect())
    }

    /// Trace IDs of the exemplars of the alert's series in its window, that vivace holds.
    async fn exemplar_traces(
        &self,
        alert: &StoredAlert,
        tenants: &[String],
        window: (u64, u64),
        kind: AlertKind,
    ) -> Result<Vec<AlertTrace>, String> {
        let Some(selector) = exemplar_selector(alert) else {
            return Ok(Vec::new());
        };
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query_exemplars", self.prometheus_url),
            [
                ("query", selector.as_str()),
                ("start", &format!("{:.3}", window.0 as f64 / 1e9)),
                ("end", &format!("{:.3}", window.1 as f64 / 1e9)),
            ],
        )
        .map_err(|error| format!("prometheus.url: {error}"))?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|error| format!("query_exemplars: {error}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|error| format!("query_exemplars answered {status}: {error}"))?;
        if body["status"] != "success" {
            return Err(format!("query_exemplars answered {status}: {body}"));
        }
        let mut exemplars: Vec<(f64, String)> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
            .filter_map(|exemplar| {
                let labels = &exemplar["labels"];
                let trace_id = ["traceID", "trace_id", "traceId"]
                    .iter()
                    .find_map(|key| labels[*key].as_str())?;
                let value = exemplar["value"]
                    .as_str()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(0.0);
                Some((value, trace_id.to_string()))
            })
            .collect();
        if kind == AlertKind::Latency {
            exemplars.sort_by(|a, b| b.0.total_cmp(&a.0));
        } else {
            exemplars.reverse(); // most recent first
        }
        let mut traces = Vec::new();
        let mut seen = HashSet::new();
        for (_, trace_id) in exemplars {
            if traces.len() >= self.config.traces_per_alert {
                break;
            }
            let Ok(id) = TraceId::parse_hex(&trace_id) else {
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            if let Some(trace) = self.describe(tenants, id).await {
                traces.push(trace);
            }
        }
        Ok(traces)
    }

    /// Metadata of a trace vivace holds, as search lists it; `None` when it is not stored.
    async fn describe(&self, tenants: &[String], id: TraceId) -> Option<AlertTrace> {
        let lookup = self
            .querier
            .find_trace_by_id(tenants, &id, None)
            .await
            .ok()?;
        let trace = lookup.trace?;
        let compiled = CompiledSearch::new(parse_and_validate("{ }").ok()?)
            .ok()?
            .metadata_only();
        let found = tokio::task::spawn_blocking(move || {
            let evaluator = Evaluator::new(StructuralMode::Real);
            compiled
                .run(&evaluator, &id, &trace, &SearchOptions::default())
                .ok()
                .flatten()
        })
        .await
        .ok()??;
        let mut trace = metadata_trace(&found.metadata);
        trace.reason = "exemplar".to_string();
        Some(trace)
    }
}

/// An `AlertTrace` from a search answer (trace ID padded to 32 digits).
fn metadata_trace(found: &TraceSearchMetadata) -> AlertTrace {
    AlertTrace {
        trace_id: format!("{:0>32}", found.trace_id),
        reason: String::new(),
        root_service_name: found.root_service_name.clone(),
        root_trace_name: found.root_trace_name.clone(),
        start_time_unix_nano: found.start_time_unix_nano.to_string(),
        duration_ms: found.duration_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn queries_from_labels() {
        let error_alert = labels(&[
            ("alertname", "ServiceHighErrorRatio"),
            ("service", "check\"out"),
            ("span_name", "POST /pay"),
        ]);
        assert_eq!(alert_kind(&error_alert), AlertKind::Errors);
        let query = alert_traceql(&error_alert, true).unwrap();
        assert_eq!(
            query,
            r#"{ resource.service.name = "check\"out" && name = "POST /pay" && status = error }"#
        );
        assert!(parse_and_validate(&query).is_ok(), "{query}");
        assert_eq!(
            alert_kind(&labels(&[("alertname", "X"), ("slo", "latency")])),
            AlertKind::Latency
        );
        assert_eq!(
            alert_kind(&labels(&[("alertname", "ServiceLatencyP99High")])),
            AlertKind::Latency
        );
        assert_eq!(
            alert_kind(&labels(&[("alertname", "Watchdog")])),
            AlertKind::Other
        );
        assert_eq!(
            alert_traceql(&labels(&[("job", "api")]), false).unwrap(),
            r#"{ resource.service.name = "api" }"#
        );
        assert!(alert_traceql(&labels(&[("alertname", "Watchdog")]), true).is_none());
    }

    #[test]
    fn selector_and_window() {
        let mut alert = StoredAlert {
            fingerprint: "aa".into(),
            status: "firing".into(),
            labels: labels(&[("alertname", "HighErrorRate"), ("service", "checkout")]),
            annotations: BTreeMap::new(),
            starts_at: "2026-11-22T04:00:00Z".into(),
            ends_at: "2026-11-22T04:10:00Z".into(),
            generator_url: String::new(),
            received_at: String::new(),
            tenant: "single-tenant".into(),
            traces: Vec::new(),
            resolved_at: String::new(),
        };
        assert_eq!(
            exemplar_selector(&alert).unwrap(),
            r#"traces_spanmetrics_latency_bucket{service="checkout",status_code="STATUS_CODE_ERROR"}"#
        );
        let (start, end) = alert_window(&alert, Duration::from_secs(300)).unwrap();
        assert_eq!(end - start, 15 * 60 * 1_000_000_000);
        alert
            .annotations
            .insert("exemplar_selector".into(), "up{job=\"x\"}".into());
        assert_eq!(exemplar_selector(&alert).unwrap(), "up{job=\"x\"}");
    }
}
