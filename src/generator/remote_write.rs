//! Prometheus remote write 1.0 from the generator (reference/metrics-generator.md §4).
//!
//! The senders are shared: the OTLP metrics receiver queues its converted series through
//! [`RemoteWriter::send`] as the generator's collection loop does.
//!
//! Every `remote_write_interval` each tenant's registry is collected with one timestamp (the
//! collection time), as Prometheus series with `__name__` and labels sorted by name, the
//! histogram buckets carrying their exemplars. A per-series guard (one per tenant) never lets
//! a sample go out that is not newer than the last one sent for that series (Prometheus rolls
//! back a whole request on an out-of-order sample). A request holds one tenant's series only;
//! with multi-tenancy it carries `X-Scope-OrgID: <tenant>` (Tempo's behaviour), and a target
//! may be limited to some tenants (`tenants`). Each tenant's series are cut into requests of at most
//! `remote_write_max_series_per_request`, encoded as protobuf, compressed with snappy's
//! *block* format and queued for every target. Each target has its own sender task and a
//! bounded queue that drops its oldest request when full; a request is retried with
//! exponential backoff on 5xx, 429 and network errors, and dropped on any other non-2xx.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::{GeneratorConfig, RemoteWriteConfig, RemoteWriteSource};
use super::registry::{MetricKind, Registry, SeriesValue};
use crate::telemetry::escape_label;

/// Backoff before the first retry (Prometheus' `min_backoff`).
const MIN_BACKOFF: Duration = Duration::from_millis(30);
/// Longest wait between retries (Prometheus' `max_backoff`).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Per-request timeout (Prometheus' `remote_timeout`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series, each with its complete label set.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels including `__name__`, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples in ascending timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars (a Prometheus extension of the 1.0 spec).
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// The exemplar's labels (the trace ID).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The observed value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// The complete, sorted label set of one exposed series: `labels` plus `__name__` and `le`.
pub fn series_labels(name: &str, labels: &[(String, String)], le: Option<&str>) -> Vec<Label> {
    let mut out = Vec::with_capacity(labels.len() + 2);
    out.push(label("__name__", name));
    out.extend(
        labels
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| label(name, value)),
    );
    if let Some(le) = le {
        out.push(label("le", le));
    }
    out.sort_by(|left, right| left.name.as_bytes().cmp(right.name.as_bytes()));
    // Duplicate names make Prometheus answer 500 (retried forever): keep the first.
    out.dedup_by(|later, earlier| later.name == earlier.name);
    out
}

/// Every series of `registry` as remote-write time series stamped `now_ms`; histogram buckets
/// carry their latest exemplar (trace ID under `trace_id_label`).
pub fn collect(registry: &Registry, trace_id_label: &str, now_ms: i64) -> Vec<TimeSeries> {
    let mut out = Vec::new();
    let sample = |value: f64| {
        vec![Sample {
            value,
            timestamp: now_ms,
        }]
    };
    for family in registry.families() {
        for (labels, series) in &family.series {
            match (&series.value, &family.kind) {
                (SeriesValue::Scalar(value), _) => out.push(TimeSeries {
                    labels: series_labels(&family.name, labels, None),
                    samples: sample(*value),
                    exemplars: Vec::new(),
                }),
                (SeriesValue::Histogram(histogram), MetricKind::Histogram { bounds }) => {
                    let bucket_name = format!("{}_bucket", family.name);
                    for bucket in histogram.exposed_buckets(bounds) {
                        let exemplars = bucket
                            .exemplar
                            .map(|exemplar| Exemplar {
                                labels: vec![label(trace_id_label, &exemplar.trace_id)],
                                value: exemplar.value,
                                timestamp: exemplar.timestamp_ms,
                            })
                            .into_iter()
                            .collect();
                        out.push(TimeSeries {
                            labels: series_labels(&bucket_name, labels, Some(&bucket.le)),
                            samples: sample(bucket.cumulative),
                            exemplars,
                        });
                    }
                    out.push(TimeSeries {
                        labels: series_labels(&format!("{}_sum", family.name), labels, None),
                        samples: sample(histogram.sum),
                        exemplars: Vec::new(),
                    });
                    out.push(TimeSeries {
                        labels: series_labels(&format!("{}_count", family.name), labels, None),
                        samples: sample(histogram.count),
                        exemplars: Vec::new(),
                    });
                }
                _ => {}
            }
        }
    }
    out
}

/// Where the collection loop finds the series to send: each tenant's registry. The generator
/// provides it; the remote writer knows no more of the generator than this.
pub trait TenantRegistries: Send + Sync {
    /// The tenants that have a registry now, sorted.
    fn tenant_names(&self) -> Vec<String>;
    /// What `collect` makes of `tenant`'s registry; `None` when the tenant has none.
    fn collect_tenant(
        &self,
        tenant: &str,
        collect: &dyn Fn(&Registry) -> Vec<TimeSeries>,
    ) -> Option<Vec<TimeSeries>>;
}

/// Remembers the last timestamp sent per series so no sample goes out that is older than or
/// equal to it; series absent from a collection are forgotten, which bounds the memory.
#[derive(Debug, Default)]
pub struct TimestampGuard {
    last: HashMap<Vec<Label>, i64>,
}

impl TimestampGuard {
    /// Like [`TimestampGuard::filter`] for a producer whose batches carry only some of its
    /// series (OTLP exports): series absent from `series` are remembered, not forgotten; the
    /// producer calls [`TimestampGuard::forget`] when a series goes stale, which bounds memory.
    /// Samples not newer than the last sent for their series, or than the one before them in
    /// the same series, are held back; returns how many samples were.
    pub fn filter_partial(&mut self, series: &mut Vec<TimeSeries>) -> usize {
        let mut held_back = 0;
        series.retain_mut(|entry| {
            entry.samples.sort_by_key(|sample| sample.timestamp);
            let mut last = self.last.get(&entry.labels).copied();
            let before = entry.samples.len();
            entry.samples.retain(|sample| {
                let newer = last.is_none_or(|last| sample.timestamp > last);
                if newer {
                    last = Some(sample.timestamp);
                }
                newer
            });
            held_back += before - entry.samples.len();
            match last {
                Some(timestamp) if !entry.samples.is_empty() => {
                    self.last.insert(entry.labels.clone(), timestamp);
                    true
                }
                _ => false,
            }
        });
        held_back
    }

    /// The last timestamp sent for `labels`.
    pub fn last(&self, labels: &[Label]) -> Option<i64> {
        self.last.get(labels).copied()
    }

    /// Forgets a series (gone stale).
    pub fn forget(&mut self, labels: &[Label]) {
        self.last.remove(labels);
    }

    /// Series remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no series is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Keeps the series whose samples are all newer than the last sent for them, records
    /// their newest timestamp, and returns how many were held back.
    pub fn filter(&mut self, series: &mut Vec<TimeSeries>) -> usize {
        let mut next = HashMap::with_capacity(series.len());
        let before = series.len();
        series.retain_mut(|entry| {
            let last = self.last.get(&entry.labels).copied();
            if let Some(last) = last {
                entry.samples.retain(|sample| sample.timestamp > last);
            }
            let newest = entry.samples.iter().map(|sample| sample.timestamp).max();
            match newest.or(last) {
                Some(timestamp) => {
                    next.insert(entry.labels.clone(), timestamp);
                }
                None => return false,
            }
            !entry.samples.is_empty()
        });
        self.last = next;
        before - series.len()
    }
}

/// Sorts by labels and cuts into `WriteRequest`s of at most `max_series` series.
pub fn batch(mut series: Vec<TimeSeries>, max_series: usize) -> Vec<WriteRequest> {
    series.sort_by(|left, right| left.labels.cmp(&right.labels));
    let mut requests = Vec::with_capacity(series.len().div_ceil(max_series.max(1)));
    let mut series = series.into_iter().peekable();
    while series.peek().is_some() {
        requests.push(WriteRequest {
            timeseries: series.by_ref().take(max_series.max(1)).collect(),
        });
    }
    requests
}

/// The protobuf of `request`, compressed with snappy's block (not framed) format.
pub fn encode(request: &WriteRequest) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(&request.encode_to_vec())
}

/// Reverses [`encode`].
pub fn decode(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| format!("snappy: {error}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|error| format!("protobuf: {error}"))
}

/// What to do after one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx: done.
    Sent,
    /// 5xx, 429 or a network error: try again after a backoff.
    Retry,
    /// Any other status: the receiver refused the data; drop it.
    Reject,
}

/// Classifies an attempt by its HTTP status (`None`: no response, a network error).
pub fn classify(status: Option<u16>) -> Attempt {
    match status {
        Some(code) if (200..300).contains(&code) => Attempt::Sent,
        Some(code) if code == 429 || (500..600).contains(&code) => Attempt::Retry,
        Some(_) => Attempt::Reject,
        None => Attempt::Retry,
    }
}

/// The wait before retry number `retry` (0-based): 30 ms doubling up to 5 s.
pub fn backoff(retry: u32) -> Duration {
    MIN_BACKOFF
        .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF)
}

/// Sample counters of one target.
#[derive(Debug, Default)]
pub struct TargetStats {
    /// Samples the receiver accepted.
    pub sent: AtomicU64,
    /// Samples the receiver refused (non-retryable status) or that were in flight at shutdown.
    pub failed: AtomicU64,
    /// Samples dropped because the target's queue was full.
    pub dropped: AtomicU64,
}

struct QueuedRequest {
    body: Bytes,
    samples: u64,
    /// `X-Scope-OrgID` of the request: the tenant whose series it holds, with multi-tenancy.
    org_id: Option<String>,
}

/// A bounded queue that drops its oldest request when full.
struct Queue {
    items: Mutex<VecDeque<QueuedRequest>>,
    capacity: usize,
    ready: Notify,
}

impl Queue {
    /// Pushes, and returns the samples of the request dropped to make room.
    fn push(&self, request: QueuedRequest) -> u64 {
        let mut dropped = 0;
        {
            let mut items = self.items.lock();
            while items.len() >= self.capacity {
                match items.pop_front() {
                    Some(old) => dropped += old.samples,
                    None => break,
                }
            }
            items.push_back(request);
        }
        self.ready.notify_one();
        dropped
    }

    fn pop(&self) -> Option<QueuedRequest> {
        self.items.lock().pop_front()
    }
}

struct Target {
    config: RemoteWriteConfig,
    queue: Queue,
    stats: TargetStats,
}

/// The running remote writer: one sender task and bounded queue per target, shared by every
/// producer of series (the generator's collection loop and the OTLP metrics receiver), so all
/// of them get the same batching, retries, queue bounds and counters.
pub struct RemoteWriter {
    targets: Vec<Arc<Target>>,
    max_series: usize,
    /// Whether requests carry `X-Scope-OrgID: <tenant>`.
    add_org_id_header: bool,
    stop: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("vivace/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl RemoteWriter {
    /// Starts collecting from `generator` (the generator's tenant registries) and sending to
    /// every configured target; `None` when no target is configured. With
    /// `multitenancy_enabled` (and `remote_write_add_org_id_header`) every request names its
    /// tenant in `X-Scope-OrgID`. Must run inside a tokio runtime.
    pub fn start<Source: TenantRegistries + 'static>(
        config: &GeneratorConfig,
        generator: Arc<Source>,
        multitenancy_enabled: bool,
    ) -> anyhow::Result<Option<Arc<RemoteWriter>>> {
        if config.remote_write.is_empty() {
            return Ok(None);
        }
        let client = http_client()?;
        let stop = CancellationToken::new();
        let targets: Vec<Arc<Target>> = config
            .remote_write
            .iter()
            .map(|target| {
                Arc::new(Target {
                    config: target.clone(),
                    queue: Queue {
                        items: Mutex::new(VecDeque::new()),
                        capacity: config.remote_write_queue_size.max(1),
                        ready: Notify::new(),
                    },
                    stats: TargetStats::default(),
                })
            })
            .collect();
        let mut tasks = Vec::new();
        for target in &targets {
            tasks.push(tokio::spawn(send_loop(
                Arc::clone(target),
                client.clone(),
                stop.clone(),
            )));
        }
        let writer = Arc::new(RemoteWriter {
            targets,
            max_series: config.remote_write_max_series_per_request,
            add_org_id_header: multitenancy_enabled && config.remote_write_add_org_id_header,
            stop: stop.clone(),
            tasks: Mutex::new(tasks),
        });
        let collector = tokio::spawn(collect_loop(
            Arc::clone(&writer),
            generator,
            config.trace_id_label_name.clone(),
            config.remote_write_interval,
            stop,
        ));
        writer.tasks.lock().push(collector);
        tracing::info!(
            targets = writer.targets.len(),
            interval = ?config.remote_write_interval,
            "remote write started"
        );
        Ok(Some(writer))
    }

    /// Queues `tenant`'s `series` from `source` for every target that takes that source and
    /// tenant: sorted, cut into
    /// requests of at most `remote_write_max_series_per_request` series, encoded once per
    /// target (without exemplars where `send_exemplars` is off). Never blocks: a full queue
    /// drops its oldest request, counted as dropped. Callers apply their own
    /// [`TimestampGuard`] (one per tenant) first.
    pub fn send(&self, source: RemoteWriteSource, tenant: &str, series: Vec<TimeSeries>) {
        if series.is_empty() {
            return;
        }
        let org_id = self.add_org_id_header.then(|| tenant.to_string());
        let requests = batch(series, self.max_series);
        for target in &self.targets {
            if !target.config.sources.contains(&source) {
                continue;
            }
            if !target.config.tenants.is_empty()
                && !target.config.tenants.iter().any(|name| name == tenant)
            {
                continue;
            }
            for request in &requests {
                let samples: u64 = request
                    .timeseries
                    .iter()
                    .map(|entry| entry.samples.len() as u64)
                    .sum();
                let encoded = if target.config.send_exemplars {
                    encode(request)
                } else {
                    let mut without = request.clone();
                    for entry in &mut without.timeseries {
                        entry.exemplars.clear();
                    }
                    encode(&without)
                };
                match encoded {
                    Ok(body) => {
                        let dropped = target.queue.push(QueuedRequest {
                            body: Bytes::from(body),
                            samples,
                            org_id: org_id.clone(),
                        });
                        if dropped > 0 {
                            target.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
                            tracing::warn!(
                                url = %target.config.url,
                                dropped,
                                "remote write queue full, dropped the oldest request"
                            );
                        }
                    }
                    Err(error) => {
                        target.stats.failed.fetch_add(samples, Ordering::Relaxed);
                        tracing::error!(%error, "remote write: cannot compress a request");
                    }
                }
            }
        }
    }

    /// Stops collecting and sending; a request in flight counts as failed, queued ones as
    /// dropped.
    pub async fn stop(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        for target in &self.targets {
            let left: u64 = target
                .queue
                .items
                .lock()
                .drain(..)
                .map(|request| request.samples)
                .sum();
            if left > 0 {
                target.stats.dropped.fetch_add(left, Ordering::Relaxed);
                tracing::info!(url = %target.config.url, samples = left, "remote write stopped with samples queued");
            }
        }
    }

    /// Appends `vivace_generator_remote_write_samples_total{url,outcome}` (Prometheus text).
    pub fn render_metrics(&self, out: &mut String) {
        let name = crate::telemetry::names::REMOTE_WRITE_SAMPLES;
        let _ = writeln!(
            out,
            "# HELP {name} Samples remote-written by the generator, by target and outcome."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for target in &self.targets {
            let url = escape_label(&target.config.url);
            for (outcome, counter) in [
                ("sent", &target.stats.sent),
                ("failed", &target.stats.failed),
                ("dropped", &target.stats.dropped),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{url=\"{url}\",outcome=\"{outcome}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
        }
    }
}

async fn collect_loop(
    writer: Arc<RemoteWriter>,
    generator: Arc<dyn TenantRegistries>,
    trace_id_label: String,
    interval: Duration,
    stop: CancellationToken,
) {
    let takes_generator_series = writer.targets.iter().any(|target| {
        target
            .config
            .sources
            .contains(&RemoteWriteSource::Generator)
    });
    if !takes_generator_series {
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One guard per tenant: two tenants may have series with the same labels.
    let mut guards: HashMap<String, TimestampGuard> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = now_ms();
        let tenants = generator.tenant_names();
        // A tenant whose registry was dropped has no series left to guard.
        guards.retain(|tenant, _| tenants.contains(tenant));
        for tenant in tenants {
            let Some(mut series) = generator
                .collect_tenant(&tenant, &|registry| collect(registry, &trace_id_label, now))
            else {
                continue;
            };
            let held_back = guards
                .entry(tenant.clone())
                .or_default()
                .filter(&mut series);
            if held_back > 0 {
                tracing::warn!(
                    tenant,
                    held_back,
                    "remote write: series not newer than their last sample were held back"
                );
            }
            writer.send(RemoteWriteSource::Generator, &tenant, series);
        }
    }
}

fn build_request(
    client: &reqwest::Client,
    config: &RemoteWriteConfig,
    body: Bytes,
    org_id: Option<&str>,
) -> reqwest::RequestBuilder {
    const RESERVED: [&str; 4] = [
        "content-encoding",
        "content-type",
        "user-agent",
        "x-prometheus-remote-write-version",
    ];
    const ORG_ID: &str = "x-scope-orgid";
    let mut request = client.post(&config.url);
    for (name, value) in &config.headers {
        let name_lower = name.trim().to_ascii_lowercase();
        // The tenant's own header replaces a configured one, whatever its spelling.
        let replaced = org_id.is_some() && name_lower == ORG_ID;
        if !RESERVED.contains(&name_lower.as_str()) && !replaced {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    if let Some(org_id) = org_id {
        request = request.header("X-Scope-OrgID", org_id);
    }
    if let Some(auth) = &config.basic_auth {
        request = request.basic_auth(&auth.username, Some(&auth.password));
    }
    if let Some(token) = &config.bearer_token {
        request = request.bearer_auth(token);
    }
    request
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
}

async fn send_loop(target: Arc<Target>, client: reqwest::Client, stop: CancellationToken) {
    let url = target.config.url.clone();
    loop {
        let Some(request) = target.queue.pop() else {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = target.queue.ready.notified() => continue,
            }
        };
        let mut retry = 0u32;
        loop {
            let attempt = build_request(
                &client,
                &target.config,
                request.body.clone(),
                request.org_id.as_deref(),
            )
            .send()
            .await;
            let (outcome, detail) = match attempt {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let outcome = classify(Some(status));
                    let detail = if outcome == Attempt::Sent {
                        String::new()
                    } else {
                        let body = response.text().await.unwrap_or_default();
                        format!("HTTP {status}: {}", body.trim())
                    };
                    (outcome, detail)
                }
                Err(error) => (classify(None), error.to_string()),
            };
            match outcome {
                Attempt::Sent => {
                    target
                        .stats
                        .sent
                        .fetch_add(request.samples, Ordering::Relaxed);
                    break;
                }
                Attempt::Reject => {
                    target
                        .stats
                        .failed
                        .fetch_add(request.samples, Ordering::Relaxed);
                    tracing::warn!(%url, %detail, samples = request.samples, "remote write rejected, dropping the request");
                    break;
                }
                Attempt::Retry => {
                    let wait = backoff(retry);
                    retry = retry.saturating_add(1);
                    tracing::warn!(%url, %detail, retry, ?wait, "remote write failed, retrying");
                    tokio::select! {
                        _ = stop.cancelled() => {
                            target.stats.failed.fetch_add(request.samples, Ordering::Relaxed);
                            return;
                        }
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::config::RegistryConfig;
    use crate::generator::labels::LabelsBuilder;

    fn registry_with_data() -> Registry {
        let mut registry = Registry::new(RegistryConfig::default());
        let calls = registry.counter("calls_total");
        let latency = registry.histogram("latency", &[0.1, 1.0]);
        let mut builder = LabelsBuilder::default();
        builder.add("service", "b");
        builder.add("abc", "x");
        let labels = registry.labels(builder, "single-tenant").unwrap();
        registry.add(calls, &labels, 3.0, 1_000);
        registry.observe(latency, &labels, 0.5, 1.0, Some("abc123"), 1_000);
        registry
    }

    fn name_of(series: &TimeSeries) -> String {
        series
            .labels
            .iter()
            .find(|label| label.name == "__name__")
            .map(|label| label.value.clone())
            .unwrap_or_default()
    }

    #[test]
    fn labels_are_sorted_bytewise_with_name_and_le() {
        let labels = vec![
            ("service".to_string(), "a".to_string()),
            ("Zeta".to_string(), "z".to_string()),
            ("empty".to_string(), String::new()),
        ];
        let sorted = series_labels("m_bucket", &labels, Some("0.1"));
        let names: Vec<_> = sorted.iter().map(|label| label.name.as_str()).collect();
        assert_eq!(names, vec!["Zeta", "__name__", "le", "service"]);
    }

    #[test]
    fn collect_writes_counters_buckets_sum_count_and_exemplars() {
        let registry = registry_with_data();
        let series = collect(&registry, "traceID", 5_000);
        assert_eq!(series.len(), 1 + 3 + 2);
        for entry in &series {
            assert_eq!(entry.samples.len(), 1);
            assert_eq!(entry.samples[0].timestamp, 5_000);
            let mut sorted = entry.labels.clone();
            sorted.sort();
            assert_eq!(sorted, entry.labels);
        }
        let buckets: Vec<_> = series
            .iter()
            .filter(|entry| name_of(entry) == "latency_bucket")
            .collect();
        let value = |le: &str| {
            buckets
                .iter()
                .find(|entry| entry.labels.contains(&label("le", le)))
                .map(|entry| (entry.samples[0].value, entry.exemplars.clone()))
                .unwrap()
        };
        assert_eq!(value("0.1").0, 0.0);
        assert!(value("0.1").1.is_empty());
        assert_eq!(value("1").0, 1.0);
        assert_eq!(
            value("1").1,
            vec![Exemplar {
                labels: vec![label("traceID", "abc123")],
                value: 0.5,
                timestamp: 1_000
            }]
        );
        assert_eq!(value("+Inf").0, 1.0);
        let counter = series
            .iter()
            .find(|entry| name_of(entry) == "calls_total")
            .unwrap();
        assert_eq!(counter.samples[0].value, 3.0);
    }

    #[test]
    fn requests_round_trip_through_snappy_block_and_protobuf() {
        let registry = registry_with_data();
        let requests = batch(collect(&registry, "traceID", 5_000), 4);
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].timeseries.len(), 4);
        assert_eq!(requests[1].timeseries.len(), 2);
        for request in &requests {
            let body = encode(request).unwrap();
            // Block format: no stream identifier chunk.
            assert!(!body.starts_with(b"\xff\x06\x00\x00sNaPpY"));
            let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
            assert_eq!(&WriteRequest::decode(raw.as_slice()).unwrap(), request);
            assert_eq!(&decode(&body).unwrap(), request);
        }
        // Field numbers as in prompb: TimeSeries is field 1 (tag 0x0a), Label is field 1.
        let raw = requests[0].encode_to_vec();
        assert_eq!(raw[0], 0x0a);
    }

    #[test]
    fn guard_holds_back_samples_not_newer_than_the_last_sent() {
        let registry = registry_with_data();
        let mut guard = TimestampGuard::default();
        let mut first = collect(&registry, "traceID", 5_000);
        assert_eq!(guard.filter(&mut first), 0);
        assert_eq!(first.len(), 6);
        let mut same = collect(&registry, "traceID", 5_000);
        assert_eq!(guard.filter(&mut same), 6);
        assert!(same.is_empty());
        let mut older = collect(&registry, "traceID", 4_000);
        assert_eq!(guard.filter(&mut older), 6);
        // The held-back series are still remembered at 5 000.
        let mut still_older = collect(&registry, "traceID", 4_500);
        assert_eq!(guard.filter(&mut still_older), 6);
        let mut newer = collect(&registry, "traceID", 6_000);
        assert_eq!(guard.filter(&mut newer), 0);
        assert_eq!(newer.len(), 6);
    }

    #[test]
    fn only_5xx_429_and_network_errors_are_retried() {
        assert_eq!(classify(Some(200)), Attempt::Sent);
        assert_eq!(classify(Some(204)), Attempt::Sent);
        assert_eq!(classify(Some(500)), Attempt::Retry);
        assert_eq!(classify(Some(503)), Attempt::Retry);
        assert_eq!(classify(Some(429)), Attempt::Retry);
        assert_eq!(classify(None), Attempt::Retry);
        assert_eq!(classify(Some(400)), Attempt::Reject);
        assert_eq!(classify(Some(401)), Attempt::Reject);
        assert_eq!(classify(Some(404)), Attempt::Reject);
        assert_eq!(classify(Some(301)), Attempt::Reject);
        assert_eq!(backoff(0), Duration::from_millis(30));
        assert_eq!(backoff(1), Duration::from_millis(60));
        assert_eq!(backoff(20), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn sender_sends_the_protocol_headers_retries_5xx_and_429_and_drops_4xx() {
        use axum::http::{HeaderMap, StatusCode};
        let statuses = Arc::new(Mutex::new(VecDeque::from([503u16, 429, 204, 400])));
        let seen = Arc::new(Mutex::new(Vec::<(HeaderMap, Bytes)>::new()));
        let handler = {
            let statuses = Arc::clone(&statuses);
            let seen = Arc::clone(&seen);
            move |headers: HeaderMap, body: Bytes| async move {
                seen.lock().push((headers, body));
                let status = statuses.lock().pop_front().unwrap_or(204);
                StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT)
            }
        };
        let app = axum::Router::new().route("/write", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let target = Arc::new(Target {
            config: RemoteWriteConfig {
                url: format!("http://{address}/write"),
                headers: [
                    ("X-Scope-OrgID".to_string(), "tenant-a".to_string()),
                    ("Content-Type".to_string(), "text/plain".to_string()),
                ]
                .into(),
                bearer_token: Some("secret".into()),
                ..RemoteWriteConfig::default()
            },
            queue: Queue {
                items: Mutex::new(VecDeque::new()),
                capacity: 4,
                ready: Notify::new(),
            },
            stats: TargetStats::default(),
        });
        let request = WriteRequest {
            timeseries: collect(&registry_with_data(), "traceID", 5_000),
        };
        for _ in 0..2 {
            target.queue.push(QueuedRequest {
                body: Bytes::from(encode(&request).unwrap()),
                samples: 6,
                org_id: None,
            });
        }
        let stop = CancellationToken::new();
        let sender = tokio::spawn(send_loop(
            Arc::clone(&target),
            http_client().unwrap(),
            stop.clone(),
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while target.stats.sent.load(Ordering::Relaxed)
            + target.stats.failed.load(Ordering::Relaxed)
            < 12
        {
            assert!(tokio::time::Instant::now() < deadline, "sender stuck");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        sender.await.unwrap();
        // 503 and 429 were retried, 204 sent the first request, 400 refused the second.
        assert_eq!(target.stats.sent.load(Ordering::Relaxed), 6);
        assert_eq!(target.stats.failed.load(Ordering::Relaxed), 6);
        assert_eq!(target.stats.dropped.load(Ordering::Relaxed), 0);
        let seen = seen.lock();
        assert_eq!(seen.len(), 4);
        for (headers, body) in seen.iter() {
            let header = |name: &str| {
                let values: Vec<_> = headers
                    .get_all(name)
                    .iter()
                    .map(|value| value.to_str().unwrap().to_string())
                    .collect();
                values.join(",")
            };
            assert_eq!(header("content-encoding"), "snappy");
            assert_eq!(header("content-type"), "application/x-protobuf");
            assert_eq!(header("x-prometheus-remote-write-version"), "0.1.0");
            assert!(header("user-agent").starts_with("vivace/"));
            assert_eq!(header("x-scope-orgid"), "tenant-a");
            assert_eq!(header("authorization"), "Bearer secret");
            assert_eq!(decode(body).unwrap(), request);
        }
    }

    #[test]
    fn config_parses_targets_and_refuses_bad_ones() {
        let yaml = "remote_write:\n  - url: http://127.0.0.1:9090/api/v1/write\n    basic_auth: {username: u, password: p}\n    send_exemplars: false\nremote_write_interval: 1s\n";
        let mut config: GeneratorConfig = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.remote_write_interval, Duration::from_secs(1));
        let target = &config.remote_write[0];
        assert!(!target.send_exemplars);
        assert_eq!(target.basic_auth.as_ref().unwrap().username, "u");
        assert!(RemoteWriteConfig::default().send_exemplars);

        config.remote_write[0].bearer_token = Some("t".into());
        assert_eq!(config.validate().unwrap_err().0, "remote_write[0]");
        config.remote_write[0].bearer_token = None;
        config.remote_write[0].url = "127.0.0.1:9090".into();
        assert_eq!(config.validate().unwrap_err().0, "remote_write[0].url");
        config.remote_write[0].url = "https://prometheus/api/v1/write".into();
        config.remote_write_queue_size = 0;
        assert_eq!(config.validate().unwrap_err().0, "remote_write_queue_size");
        config.remote_write_queue_size = 1;
        config.remote_write[0].tenants = vec!["tenant-a".into(), "../x".into()];
        let (key, reason) = config.validate().unwrap_err();
        assert_eq!(key, "remote_write[0].tenants");
        assert!(reason.contains("\"../x\""), "{reason}");
        config.remote_write[0].tenants = vec!["tenant-a".into()];
        assert_eq!(config.validate(), Ok(()));
    }

    fn writer_with(targets: Vec<RemoteWriteConfig>, add_org_id_header: bool) -> RemoteWriter {
        RemoteWriter {
            targets: targets
                .into_iter()
                .map(|config| {
                    Arc::new(Target {
                        config,
                        queue: Queue {
                            items: Mutex::new(VecDeque::new()),
                            capacity: 10,
                            ready: Notify::new(),
                        },
                        stats: TargetStats::default(),
                    })
                })
                .collect(),
            max_series: 4,
            add_org_id_header,
            stop: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn each_request_holds_one_tenant_and_goes_only_to_targets_that_take_it() {
        let writer = writer_with(
            vec![
                RemoteWriteConfig {
                    url: "http://127.0.0.1:1/all".into(),
                    ..RemoteWriteConfig::default()
                },
                RemoteWriteConfig {
                    url: "http://127.0.0.1:1/only-b".into(),
                    tenants: vec!["tenant-b".into()],
                    ..RemoteWriteConfig::default()
                },
                RemoteWriteConfig {
                    url: "http://127.0.0.1:1/only-otlp".into(),
                    sources: vec![RemoteWriteSource::OtlpMetrics],
                    ..RemoteWriteConfig::default()
                },
            ],
            true,
        );
        let series = collect(&registry_with_data(), "traceID", 5_000);
        writer.send(RemoteWriteSource::Generator, "tenant-a", series.clone());
        writer.send(RemoteWriteSource::Generator, "tenant-b", series);
        let org_ids = |target: usize| -> Vec<Option<String>> {
            writer.targets[target]
                .queue
                .items
                .lock()
                .iter()
                .map(|request| request.org_id.clone())
                .collect()
        };
        // 6 series cut into requests of at most 4: two requests per tenant.
        let a = Some("tenant-a".to_string());
        let b = Some("tenant-b".to_string());
        assert_eq!(org_ids(0), vec![a.clone(), a, b.clone(), b.clone()]);
        assert_eq!(org_ids(1), vec![b.clone(), b.clone()]);
        // A target for OTLP metrics only takes none of the generator's series.
        assert_eq!(org_ids(2), Vec::<Option<String>>::new());
        let otlp_series = collect(&registry_with_data(), "traceID", 6_000);
        writer.send(RemoteWriteSource::OtlpMetrics, "tenant-b", otlp_series);
        assert_eq!(org_ids(2), vec![b.clone(), b]);
        assert_eq!(org_ids(0).len(), 6, "the default target takes both sources");

        let without = writer_with(vec![RemoteWriteConfig::default()], false);
        without.send(
            RemoteWriteSource::Generator,
            "single-tenant",
            collect(&registry_with_data(), "traceID", 5_000),
        );
        let queued: Vec<_> = without.targets[0]
            .queue
            .items
            .lock()
            .iter()
            .map(|request| request.org_id.clone())
            .collect();
        assert_eq!(queued, vec![None, None]);
    }

    #[test]
    fn the_tenant_header_replaces_a_configured_org_id() {
        let client = http_client().unwrap();
        let config = RemoteWriteConfig {
            url: "http://127.0.0.1:1/write".into(),
            headers: [
                ("x-scope-ORGID".to_string(), "configured".to_string()),
                ("X-Other".to_string(), "kept".to_string()),
            ]
            .into(),
            ..RemoteWriteConfig::default()
        };
        let headers = |org_id: Option<&str>| {
            let request = build_request(&client, &config, Bytes::new(), org_id)
                .build()
                .unwrap();
            let values: Vec<String> = request
                .headers()
                .get_all("x-scope-orgid")
                .iter()
                .map(|value| value.to_str().unwrap().to_string())
                .collect();
            let other = request.headers()["x-other"].to_str().unwrap().to_string();
            (values, other)
        };
        assert_eq!(
            headers(Some("tenant-a")),
            (vec!["tenant-a".to_string()], "kept".to_string())
        );
        assert_eq!(
            headers(None),
            (vec!["configured".to_string()], "kept".to_string())
        );
    }

    #[test]
    fn a_full_queue_drops_its_oldest_request() {
        let queue = Queue {
            items: Mutex::new(VecDeque::new()),
            capacity: 2,
            ready: Notify::new(),
        };
        let request = |samples| QueuedRequest {
            body: Bytes::new(),
            samples,
            org_id: None,
        };
        assert_eq!(queue.push(request(1)), 0);
        assert_eq!(queue.push(request(2)), 0);
        assert_eq!(queue.push(request(3)), 1);
        assert_eq!(queue.pop().map(|item| item.samples), Some(2));
        assert_eq!(queue.pop().map(|item| item.samples), Some(3));
        assert!(queue.pop().is_none());
    }
}
