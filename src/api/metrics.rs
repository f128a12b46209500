//! `GET /api/metrics/query_range` and `GET /api/metrics/query`: TraceQL metrics as Tempo
//! answers them (reference/tempo-api.md §2.9): parameters, step alignment, proto3 JSON
//! (`QueryRangeResponse`, `QueryInstantResponse`), plain-text 400s with Tempo's texts.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query as UrlQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::{check_query_size, read_tenants, ApiError, ApiState};
use crate::querier::QuerierError;
use crate::traceql::metrics::{
    CompiledMetrics, MetricsRequest, QueryInstantResponse, QueryRangeResponse, MAX_DURATION_NANOS,
    MAX_EXEMPLARS,
};
use crate::traceql::static_value::parse_duration;
use crate::traceql::{parse_and_validate, QueryError};

/// Default lookback when `start` is absent (`since`).
const DEFAULT_SINCE_NANOS: u64 = 3600 * 1_000_000_000;

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A timestamp as Tempo accepts it: Unix seconds (up to 10 digits), Unix nanoseconds
/// (longer), fractional seconds, or RFC3339. Returns Unix ns.
pub fn parse_timestamp(text: &str) -> Option<u64> {
    if text.chars().all(|c| c.is_ascii_digit()) {
        let value: u64 = text.parse().ok()?;
        return if text.len() <= 10 {
            value.checked_mul(1_000_000_000)
        } else {
            Some(value)
        };
    }
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Some((seconds * 1e9).round() as u64);
        }
        return None;
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(parsed.timestamp_nanos_opt()?).ok()
}

/// A step: float seconds (`15`, `0.5`) or a duration (`15s`, `1m`), at most the longest range
/// (a longer one would stretch the aligned window far past it). `None` when absent.
fn parse_step(params: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    let Some(text) = param(params, "step") else {
        return Ok(None);
    };
    let nanos = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => seconds * 1e9,
        Ok(_) => -1.0,
        Err(_) => parse_duration(text)
            .map(|n| n as f64)
            .ok_or_else(|| ApiError::bad_request(format!("invalid step: {text:?}")))?,
    };
    if nanos < 0.0 {
        return Err(ApiError::bad_request(format!(
            "invalid step: {text:?}: must be positive"
        )));
    }
    if nanos > MAX_DURATION_NANOS as f64 {
        return Err(ApiError::bad_request(format!(
            "invalid step: {text:?}: longer than the longest range, 24h0m0s"
        )));
    }
    Ok(Some(nanos.round() as u64).filter(|n| *n > 0))
}

/// Now, Unix ns (0 before 1970).
fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `start`/`end` in ns: defaults end = `now`, start = end − `since` (default 1h).
fn parse_bounds(params: &HashMap<String, String>, now: u64) -> Result<(u64, u64), ApiError> {
    let timestamp = |name: &str| -> Result<Option<u64>, ApiError> {
        param(params, name)
            .map(|text| {
                parse_timestamp(text)
                    .ok_or_else(|| ApiError::bad_request(format!("invalid {name}: {text:?}")))
            })
            .transpose()
    };
    let end = timestamp("end")?.unwrap_or(now);
    let start = match timestamp("start")? {
        Some(start) => start,
        None => {
            let since = match param(params, "since") {
                None => DEFAULT_SINCE_NANOS,
                Some(text) => parse_duration(text)
                    .filter(|n| *n > 0)
                    .map(|n| n as u64)
                    .ok_or_else(|| ApiError::bad_request(format!("invalid since: {text:?}")))?,
            };
            end.saturating_sub(since)
        }
    };
    if end <= start {
        return Err(ApiError::bad_request("end must be greater than start"));
    }
    if end - start > MAX_DURATION_NANOS {
        return Err(ApiError::bad_request(
            "metrics query time range exceeds the maximum allowed duration of 24h0m0s",
        ));
    }
    Ok((start, end))
}

fn parse_exemplars(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    match param(params, "exemplars") {
        None => Ok(MAX_EXEMPLARS),
        Some(text) => text
            .parse::<u32>()
            .map(|n| (n as usize).min(MAX_EXEMPLARS))
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid exemplars: strconv.ParseUint: parsing {text:?}: invalid syntax"
                ))
            }),
    }
}

/// Parses `q` (or `query`) into a runnable metrics query, with Tempo's error texts.
fn compile(params: &HashMap<String, String>) -> Result<CompiledMetrics, ApiError> {
    let (name, text) = param(params, "q")
        .map(|text| ("q", text))
        .or_else(|| param(params, "query").map(|text| ("query", text)))
        .ok_or_else(|| ApiError::bad_request("invalid TraceQL query: query is empty"))?;
    check_query_size(name, text)?;
    let query = parse_and_validate(text).map_err(|error| match error {
        QueryError::Parse(e) => ApiError::bad_request(e.to_string()),
        QueryError::Validate(e) => ApiError::bad_request(format!("invalid TraceQL query: {e}")),
    })?;
    CompiledMetrics::new(query).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn querier_error(error: QuerierError) -> ApiError {
    match error {
        QuerierError::Evaluation(message) => ApiError::bad_request(message),
        other => ApiError::internal(other.to_string()),
    }
}

fn json_response(body: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A metrics query checked against every limit and ready to run: what the querier is given.
#[derive(Debug, Clone)]
pub struct PlannedMetrics {
    pub compiled: CompiledMetrics,
    pub request: MetricsRequest,
}

/// Parses and checks `/api/metrics/query_range` parameters (`q`, `start`, `end`, `since`,
/// `step`, `exemplars`) with `now` (Unix ns) as the default end: every limit of the README's
/// "Limits" table that a range query's parameters meet is applied here, before the querier
/// allocates anything. Pure, so the fuzz target and property tests drive it directly.
pub fn plan_range(params: &HashMap<String, String>, now: u64) -> Result<PlannedMetrics, ApiError> {
    let compiled = compile(params)?;
    let (start, end) = parse_bounds(params, now)?;
    let step = parse_step(params)?.unwrap_or(0);
    let exemplars = compiled.exemplars(parse_exemplars(params)?);
    let request = MetricsRequest::range(start, end, step, exemplars)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok(PlannedMetrics { compiled, request })
}

/// [`plan_range`] for `/api/metrics/query` (no step: one interval).
pub fn plan_instant(
    params: &HashMap<String, String>,
    now: u64,
) -> Result<PlannedMetrics, ApiError> {
    let compiled = compile(params)?;
    let (start, end) = parse_bounds(params, now)?;
    let request = MetricsRequest::instant(start, end, 0);
    Ok(PlannedMetrics { compiled, request })
}

/// Validates and runs a range query from `/api/metrics/query_range` parameters (also what the
/// streaming `MetricsQueryRange` RPC runs).
pub(super) async fn run_range(
    state: &ApiState,
    tenants: &[String],
    params: &HashMap<String, String>,
) -> Result<QueryRangeResponse, ApiError> {
    let planned = plan_range(params, now_nanos())?;
    state
        .querier
        .query_range(tenants, Arc::new(planned.compiled), planned.request)
        .await
        .map_err(querier_error)
}

/// Validates and runs an instant query from `/api/metrics/query` parameters (also what the
/// streaming `MetricsQueryInstant` RPC runs).
pub(super) async fn run_instant(
    state: &ApiState,
    tenants: &[String],
    params: &HashMap<String, String>,
) -> Result<QueryInstantResponse, ApiError> {
    let planned = plan_instant(params, now_nanos())?;
    state
        .querier
        .query_instant(tenants, Arc::new(planned.compiled), planned.request)
        .await
        .map_err(querier_error)
}

/// `GET /api/metrics/query_range`.
pub async fn query_range(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenants = read_tenants(&state, &headers)?;
    let response = run_range(&state, &tenants, &params).await?;
    Ok(json_response(response.to_json()))
}

/// `GET /api/metrics/query`: one value per series over `(start, end]`.
pub async fn query_instant(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenants = read_tenants(&state, &headers)?;
    let response = run_instant(&state, &tenants, &params).await?;
    Ok(json_response(response.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_form() {
        assert_eq!(
            parse_timestamp("1700000000"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_timestamp("1700000000123456789"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_timestamp("1700000000.5"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn steps_as_seconds_or_durations() {
        let step = |v: &str| parse_step(&HashMap::from([("step".to_string(), v.to_string())]));
        assert_eq!(step("15").unwrap(), Some(15_000_000_000));
        assert_eq!(step("1m").unwrap(), Some(60_000_000_000));
        assert_eq!(step("0.5").unwrap(), Some(500_000_000));
        assert!(step("-5").is_err());
        assert!(step("soon").is_err());
    }
}
