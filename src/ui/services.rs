//! The services pages' numbers from the metrics-generator's span metrics
//! (`traces_spanmetrics_calls_total` and `traces_spanmetrics_latency` of server and consumer
//! spans: a service's incoming requests), which
//! are already counted for every span: no scan of stored spans, so the pages stay fast under
//! ingest load.
//!
//! - `GET /api/ui/services?since=<seconds>`: per service, request rate, error rate and p99.
//! - `GET /api/ui/services/{name}?since=<seconds>`: one service's totals, its rate, error-ratio
//!   and latency series, exemplar traces and per-operation table.
//!
//! The counters are cumulative, so numbers come from differences between samples (taken every
//! ten seconds, [`super::history`]) and a sample taken now. A rate is divided by the time the
//! samples actually cover, never by the nominal window: one minute after startup, "last hour"
//! is the last minute's rate. What span metrics cannot answer (a service's versions, or
//! operations when the generator does not write `span_name`) the pages read from TraceQL
//! metrics; an answer says which parts it has.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::graph::quantile;
use super::samples::{ExemplarPoint, Red, SpanSample};
use super::state::UiState;
use crate::generator::Generator;

/// Exemplar traces returned for one service's latency chart.
const MAX_EXEMPLARS: usize = 100;

/// Points a service's series aim at over the window.
const TARGET_POINTS: i64 = 60;

/// Samples are taken this often, so series steps are not shorter.
const SAMPLE_PERIOD_MS: i64 = 10_000;

/// Counts over a window and the seconds they cover.
#[derive(Debug, PartialEq)]
struct Windowed {
    counts: Red,
    seconds: f64,
}

/// What `pick` counted in the window, and over how many seconds of data.
///
/// The seconds are those the series' data covers, never the nominal window: from the first
/// sample holding the series to `now`, plus the part of the interval before that sample in
/// which its first counts arrived, estimated at the rate seen since (so a steady series counts
/// from when it began, and a burst that stopped counts over the whole interval it fell in).
/// `started_ms` is when counting began (this vivace's start); before it nothing was counted.
fn windowed<'a>(
    now: &'a SpanSample,
    samples: &'a [Arc<SpanSample>],
    started_ms: i64,
    pick: impl Fn(&'a SpanSample) -> Option<&'a Red>,
) -> Option<Windowed> {
    let current = pick(now)?;
    let first_holding = samples
        .iter()
        .position(|sample| pick(sample).is_some_and(|red| red.calls > 0.0));
    let Some(index) = first_holding else {
        // Newer than every stored sample: it began after the latest one.
        let from_ms = samples.last().map_or(started_ms, |sample| sample.at_ms);
        let seconds = (now.at_ms - from_ms) as f64 / 1000.0;
        return (seconds > 0.0).then(|| Windowed {
            counts: current.clone(),
            seconds,
        });
    };
    let base_sample = &samples[index];
    let base = pick(base_sample)?;
    let observed_seconds = (now.at_ms - base_sample.at_ms) as f64 / 1000.0;
    let previous = match index {
        0 if started_ms >= base_sample.at_ms - SAMPLE_PERIOD_MS - 1000 => Some((None, started_ms)),
        // The window starts after the series began: what came before is outside it.
        0 => None,
        _ => Some((pick(&samples[index - 1]), samples[index - 1].at_ms)),
    };
    let Some((before, before_ms)) = previous else {
        return (observed_seconds > 0.0).then(|| Windowed {
            counts: current.since(Some(base)),
            seconds: observed_seconds,
        });
    };
    let gap_seconds = ((base_sample.at_ms - before_ms) as f64 / 1000.0).max(0.0);
    let first_counts = base.since(before).calls;
    let rate_since = match observed_seconds > 0.0 {
        true => current.since(Some(base)).calls / observed_seconds,
        false => 0.0,
    };
    let lead_seconds = match rate_since > 0.0 {
        true => (first_counts / rate_since).min(gap_seconds),
        false => gap_seconds,
    };
    let seconds = observed_seconds + lead_seconds;
    (seconds > 0.0).then(|| Windowed {
        counts: current.since(before),
        seconds,
    })
}

/// Rate, error ratio and latency quantiles of windowed counts.
fn red_json(bounds: &[f64], windowed: Option<&Windowed>) -> Value {
    let Some(Windowed { counts, seconds }) = windowed else {
        return json!({"rate": null, "requests": 0, "errors": 0, "errorRatio": null, "p50Ms": null, "p90Ms": null, "p99Ms": null});
    };
    let milliseconds =
        |q: f64| quantile(bounds, &counts.buckets, q).map(|seconds| seconds * 1000.0);
    json!({
        "rate": counts.calls / seconds,
        "requests": counts.calls,
        "errors": counts.errors,
        "errorRatio": (counts.calls > 0.0).then(|| counts.errors / counts.calls),
        "p50Ms": milliseconds(0.5),
        "p90Ms": milliseconds(0.9),
        "p99Ms": milliseconds(0.99),
    })
}

/// Seconds the window's data covers: the window, or less when this vivace started within it
/// (counting began then).
fn covered_seconds(now: &SpanSample, started_ms: i64, since_seconds: u32) -> f64 {
    ((now.at_ms - started_ms) as f64 / 1000.0).clamp(0.0, f64::from(since_seconds))
}

/// The services list.
fn services_json(
    now: &SpanSample,
    samples: &[Arc<SpanSample>],
    started_ms: i64,
    since_seconds: u32,
) -> Value {
    let mut names: Vec<&String> = now.services.keys().collect();
    names.sort();
    let services: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let windowed = windowed(now, samples, started_ms, |sample| sample.services.get(name));
            let mut entry = red_json(&now.bounds, windowed.as_ref());
            entry["name"] = json!(name);
            entry
        })
        .collect();
    json!({
        "source": "metrics-generator",
        "sinceSeconds": since_seconds,
        "windowSeconds": covered_seconds(now, started_ms, since_seconds),
        "services": services,
    })
}

/// Step of a service's series over `seconds` of data: about [`TARGET_POINTS`] points, never
/// shorter than the sampling period.
fn step_ms(seconds: f64) -> i64 {
    let step = (seconds * 1000.0) as i64 / TARGET_POINTS;
    (step.max(SAMPLE_PERIOD_MS) + SAMPLE_PERIOD_MS - 1) / SAMPLE_PERIOD_MS * SAMPLE_PERIOD_MS
}

/// One service's series: the counts between consecutive samples, summed per step; steps end
/// at `now`, so the last point is the latest.
fn series_json(
    service: &str,
    now: &SpanSample,
    samples: &[Arc<SpanSample>],
    step: i64,
) -> Vec<Value> {
    let mut timeline: Vec<&SpanSample> = samples.iter().map(Arc::as_ref).collect();
    timeline.push(now);
    let mut steps: BTreeMap<i64, (Red, f64)> = BTreeMap::new();
    for pair in timeline.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        let Some(current) = after.services.get(service) else {
            continue;
        };
        let counts = current.since(before.services.get(service));
        let seconds = (after.at_ms - before.at_ms) as f64 / 1000.0;
        if seconds <= 0.0 {
            continue;
        }
        let steps_back = (now.at_ms - after.at_ms).max(0) / step;
        let entry = steps.entry(steps_back).or_default();
        entry.0.add(&counts);
        entry.1 += seconds;
    }
    steps
        .into_iter()
        .rev()
        .map(|(steps_back, (counts, seconds))| {
            let at_ms = now.at_ms - steps_back * step;
            let milliseconds =
                |q: f64| quantile(&now.bounds, &counts.buckets, q).map(|seconds| seconds * 1000.0);
            json!({
                "tMs": at_ms,
                "rate": counts.calls / seconds,
                "errorRatio": (counts.calls > 0.0).then(|| counts.errors / counts.calls),
                "p50Ms": milliseconds(0.5),
                "p90Ms": milliseconds(0.9),
                "p99Ms": milliseconds(0.99),
            })
        })
        .collect()
}

/// One service's page.
fn service_json(
    service: &str,
    now: &SpanSample,
    samples: &[Arc<SpanSample>],
    started_ms: i64,
    since_seconds: u32,
) -> Value {
    let since_ms = now.at_ms - i64::from(since_seconds) * 1000;
    let windowed = windowed(now, samples, started_ms, |sample| {
        sample.services.get(service)
    });
    let mut body = red_json(&now.bounds, windowed.as_ref());
    let covered = covered_seconds(now, started_ms, since_seconds);
    let step = step_ms(covered.min(f64::from(since_seconds)));
    let operations = now.operations_complete.then(|| {
        let mut operations: Vec<Value> = now
            .operations
            .keys()
            .filter(|(name, _)| name == service)
            .map(|key| {
                let windowed = windowed_operation(now, samples, started_ms, key);
                let mut entry = red_json(&now.bounds, windowed.as_ref());
                entry["name"] = json!(key.1);
                entry
            })
            .collect();
        operations.sort_by(|a, b| {
            let rate = |value: &Value| value["rate"].as_f64().unwrap_or(0.0);
            rate(b).total_cmp(&rate(a))
        });
        operations
    });
    let mut exemplars: Vec<&ExemplarPoint> = now
        .exemplars
        .iter()
        .filter(|exemplar| exemplar.at_ms >= since_ms)
        .collect();
    exemplars.sort_by_key(|exemplar| std::cmp::Reverse(exemplar.at_ms));
    exemplars.truncate(MAX_EXEMPLARS);
    body["name"] = json!(service);
    body["source"] = json!("metrics-generator");
    body["known"] = json!(now.services.contains_key(service));
    body["sinceSeconds"] = json!(since_seconds);
    body["windowSeconds"] = json!(covered);
    body["stepSeconds"] = json!(step / 1000);
    body["series"] = Value::Array(series_json(service, now, samples, step));
    body["operations"] = json!(operations);
    body["exemplars"] = exemplars
        .into_iter()
        .map(|exemplar| {
            json!({"tMs": exemplar.at_ms, "valueMs": exemplar.milliseconds, "traceId": exemplar.trace_id})
        })
        .collect();
    body
}

fn windowed_operation(
    now: &SpanSample,
    samples: &[Arc<SpanSample>],
    started_ms: i64,
    key: &(String, String),
) -> Option<Windowed> {
    windowed(now, samples, started_ms, |sample| {
        sample.operations.get(key)
    })
}

/// Why a services endpoint cannot answer: the status and what to say.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct ServicesError {
    status: StatusCode,
    message: String,
}

impl ServicesError {
    fn new(status: StatusCode, message: impl Into<String>) -> ServicesError {
        ServicesError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ServicesError {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.message)).into_response()
    }
}

/// Refuses a sample whose span metrics cannot give these numbers (the pages then use TraceQL
/// metrics).
fn usable(sample: SpanSample) -> Result<SpanSample, ServicesError> {
    match sample.usable {
        true => Ok(sample),
        false => Err(ServicesError::new(
            StatusCode::NOT_FOUND,
            "span metrics lack service, span_kind or status_code (metrics_generator.processors.span_metrics): the pages use TraceQL metrics",
        )),
    }
}

/// The `since` parameter (seconds; 3600 when absent) and the tenant, or the error answer.
fn window_and_tenant(
    state: &UiState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(u32, String, Arc<Generator>), ServicesError> {
    let since_seconds = match query.get("since").map(|value| value.parse::<u32>()) {
        None => 3600,
        Some(Ok(seconds)) if seconds > 0 => seconds,
        Some(_) => {
            return Err(ServicesError::new(
                StatusCode::BAD_REQUEST,
                "since must be a positive number of seconds",
            ))
        }
    };
    let tenant = match crate::api::scrape_tenant_of(state.multitenancy_enabled, headers) {
        Ok(Some(tenant)) => tenant,
        Ok(None) => {
            return Err(ServicesError::new(
                StatusCode::UNAUTHORIZED,
                "no org id: span metrics are per tenant, send X-Scope-OrgID",
            ))
        }
        Err(error) => return Err(ServicesError::new(error.status, error.message)),
    };
    let Some(generator) = state.generator.clone() else {
        return Err(ServicesError::new(
            StatusCode::NOT_FOUND,
            "the metrics-generator is not running: the pages use TraceQL metrics",
        ));
    };
    Ok((since_seconds, tenant, generator))
}

fn json_response(body: Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// A sample taken now, off the async workers.
async fn take_now(
    generator: Arc<Generator>,
    tenant: String,
    exemplars_of: Option<String>,
) -> Result<SpanSample, ServicesError> {
    let sample = tokio::task::spawn_blocking(move || {
        SpanSample::take(&generator, &tenant, exemplars_of.as_deref())
    })
    .await
    .map_err(|error| {
        ServicesError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading span metrics failed: {error}"),
        )
    })?;
    usable(sample)
}

/// `GET /api/ui/services`.
pub async fn services(
    State(state): State<Arc<UiState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match services_answer(&state, &headers, &query).await {
        Ok(body) => json_response(body),
        Err(error) => error.into_response(),
    }
}

async fn services_answer(
    state: &UiState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Value, ServicesError> {
    let (since_seconds, tenant, generator) = window_and_tenant(state, headers, query)?;
    let now = take_now(generator, tenant.clone(), None).await?;
    let since_ms = now.at_ms - i64::from(since_seconds) * 1000;
    let samples = state.span_history.since(&tenant, since_ms);
    Ok(services_json(
        &now,
        &samples,
        state.started_ms,
        since_seconds,
    ))
}

/// `GET /api/ui/services/{name}`.
pub async fn service(
    State(state): State<Arc<UiState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match service_answer(&state, &name, &headers, &query).await {
        Ok(body) => json_response(body),
        Err(error) => error.into_response(),
    }
}

async fn service_answer(
    state: &UiState,
    name: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Value, ServicesError> {
    let (since_seconds, tenant, generator) = window_and_tenant(state, headers, query)?;
    let now = take_now(generator, tenant.clone(), Some(name.to_string())).await?;
    let since_ms = now.at_ms - i64::from(since_seconds) * 1000;
    let samples = state.span_history.since(&tenant, since_ms);
    Ok(service_json(
        name,
        &now,
        &samples,
        state.started_ms,
        since_seconds,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(calls: f64, errors: f64, buckets: Vec<f64>) -> Red {
        Red {
            calls,
            errors,
            buckets,
        }
    }

    fn sample(at_ms: i64, services: &[(&str, Red)]) -> SpanSample {
        SpanSample {
            at_ms,
            bounds: vec![0.01, 0.1],
            services: services
                .iter()
                .map(|(name, red)| (name.to_string(), red.clone()))
                .collect(),
            operations_complete: true,
            usable: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_rate_is_over_the_time_the_data_covers_not_the_nominal_window() {
        // Started a minute ago; samples every ten seconds; 5 requests/s, 10 % errors.
        let started = 1_000_000;
        let samples: Vec<Arc<SpanSample>> = (1..=6)
            .map(|index| {
                let at = started + index * 10_000;
                let calls = (index * 50) as f64;
                Arc::new(sample(
                    at,
                    &[("shop", red(calls, calls / 10.0, vec![calls, 0.0, 0.0]))],
                ))
            })
            .collect();
        let now = sample(
            started + 65_000,
            &[("shop", red(325.0, 32.5, vec![325.0, 0.0, 0.0]))],
        );
        let body = services_json(&now, &samples, started, 3600);
        let shop = &body["services"][0];
        assert_eq!(shop["name"], "shop");
        // 325 calls over the 65 s since counting began.
        assert_eq!(shop["rate"], 5.0);
        assert_eq!(shop["errorRatio"], 0.1);
        assert_eq!(body["windowSeconds"], 65.0);
        // All in the first bucket, (0, 10 ms]: p99 interpolates to 9.9 ms.
        let p99 = shop["p99Ms"].as_f64().unwrap();
        assert!((p99 - 9.9).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn a_burst_that_stopped_is_spread_over_the_interval_it_arrived_in() {
        // 100 calls between the samples at 10 s and 20 s, none since.
        let burst = red(100.0, 0.0, vec![100.0, 0.0, 0.0]);
        let samples = vec![
            Arc::new(sample(10_000, &[])),
            Arc::new(sample(20_000, &[("burst", burst.clone())])),
            Arc::new(sample(30_000, &[("burst", burst.clone())])),
        ];
        let now = sample(40_000, &[("burst", burst)]);
        let body = services_json(&now, &samples, 0, 3600);
        // 100 calls over the 30 s from the sample before it appeared.
        let rate = body["services"][0]["rate"].as_f64().unwrap();
        assert!((rate - 100.0 / 30.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_steady_series_counts_from_when_it_began() {
        // 2 calls/s from 15 s on: 10 by the sample at 20 s, 50 by now at 40 s.
        let samples = vec![
            Arc::new(sample(10_000, &[])),
            Arc::new(sample(
                20_000,
                &[("steady", red(10.0, 0.0, vec![10.0, 0.0, 0.0]))],
            )),
        ];
        let now = sample(40_000, &[("steady", red(50.0, 0.0, vec![50.0, 0.0, 0.0]))]);
        let body = services_json(&now, &samples, 0, 3600);
        let rate = body["services"][0]["rate"].as_f64().unwrap();
        assert!((rate - 2.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_service_newer_than_every_sample_counts_from_the_latest_one() {
        let samples = vec![Arc::new(sample(10_000, &[]))];
        let now = sample(20_000, &[("new", red(30.0, 0.0, vec![30.0, 0.0, 0.0]))]);
        let body = services_json(&now, &samples, 0, 900);
        assert_eq!(body["services"][0]["rate"], 3.0);
        assert_eq!(body["services"][0]["errorRatio"], 0.0);
    }

    #[test]
    fn series_have_a_point_per_step_with_errors_and_latency() {
        let samples: Vec<Arc<SpanSample>> = (0..4)
            .map(|index| {
                let calls = (index * 100) as f64;
                Arc::new(sample(
                    index * 10_000,
                    &[(
                        "shop",
                        red(calls, calls / 4.0, vec![calls / 2.0, calls / 2.0, 0.0]),
                    )],
                ))
            })
            .collect();
        let now = sample(
            40_000,
            &[("shop", red(400.0, 100.0, vec![200.0, 200.0, 0.0]))],
        );
        let points = series_json("shop", &now, &samples, 10_000);
        assert_eq!(points.len(), 4);
        for point in &points {
            assert_eq!(point["rate"], 10.0);
            assert_eq!(point["errorRatio"], 0.25);
            assert!(point["p50Ms"].as_f64().unwrap() > 0.0);
        }
        assert_eq!(points[0]["tMs"], 10_000);
        assert_eq!(points[3]["tMs"], 40_000);
    }

    #[test]
    fn a_restarted_counter_counts_from_zero() {
        let after = red(5.0, 0.0, vec![5.0]);
        let before = red(50.0, 1.0, vec![50.0]);
        assert_eq!(after.since(Some(&before)), red(5.0, 0.0, vec![5.0]));
    }

    #[test]
    fn steps_are_multiples_of_the_sampling_period() {
        assert_eq!(step_ms(900.0), 20_000);
        assert_eq!(step_ms(3600.0), 60_000);
        assert_eq!(step_ms(60.0), 10_000);
        assert_eq!(step_ms(0.0), 10_000);
    }
}
