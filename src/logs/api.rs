//! Logs out: `GET /api/logs` (the UI's shape, see `/work/shared` contracts) and Loki's HTTP API
//! as Grafana's Loki datasource calls it: `query_range`, `query`, `labels`,
//! `label/{name}/values`, `status/buildinfo`, plus `POST /loki/api/v1/push`. Served on :3200
//! beside Tempo's API and on `logs.loki_listen_port` (3100, Loki's, by default).

// Parameter checks return the finished 400 response; these are cold paths, so the size of
// `Response` in the error variant costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::logql;
use super::store::{LogSearch, LogStore};
use super::LogRow;
use crate::distributor::Distributor;
use crate::tenant::{self, TenantError};

/// Default and largest page of `/api/logs` and Loki queries (Loki's
/// `max_entries_limit_per_query` default); a larger `limit` is refused, as Loki does.
const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 5000;
/// Points a Loki range query's `step` may divide its range into (Loki's and Prometheus' limit).
pub const MAX_POINTS_PER_SERIES: u64 = 11_000;
/// Loki's default look-back when `start` is missing.
const DEFAULT_LOOKBACK_NS: u64 = 3600 * 1_000_000_000;

/// What the logs routes share.
pub struct LogsApiState {
    pub store: Arc<LogStore>,
    pub distributor: Arc<Distributor>,
    pub multitenancy_enabled: bool,
}

/// The routes; merged into the :3200 router and served alone on the Loki port.
pub fn router(state: Arc<LogsApiState>) -> Router {
    // A push may be as large as any receiver's request (`distributor.max_request_bytes`), not
    // axum's default 2 MiB; larger bodies get 413 before they are buffered.
    let push_limit = DefaultBodyLimit::max(state.distributor.max_request_bytes());
    Router::new()
        .route("/api/logs", get(api_logs))
        .route("/loki/api/v1/push", post(push).layer(push_limit))
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/query", get(query_instant).post(query_instant))
        .route("/loki/api/v1/labels", get(labels))
        .route("/loki/api/v1/label", get(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .with_state(state)
}

/// The Loki port adds `/ready`, which :3200 already has.
pub fn loki_port_router(state: Arc<LogsApiState>) -> Router {
    router(state).route("/ready", get(|| async { "ready\n" }))
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

fn internal(message: String) -> Response {
    tracing::warn!(%message, "logs read failed");
    (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}

/// The tenants a logs read applies to ([`tenant::read_tenants`]), refusals as Loki writes them.
fn tenants(state: &LogsApiState, headers: &HeaderMap) -> Result<Vec<String>, Response> {
    tenant::read_tenants(state.multitenancy_enabled, tenant::org_id(headers)).map_err(|error| {
        match error {
            TenantError::Missing => (StatusCode::UNAUTHORIZED, "no org id").into_response(),
            TenantError::Invalid { reason, .. } => bad_request(reason),
            other => bad_request(other.to_string()),
        }
    })
}

async fn search_tenants(
    state: &LogsApiState,
    tenants: &[String],
    search: &LogSearch,
) -> Result<Vec<LogRow>, Response> {
    let mut rows = Vec::new();
    for tenant in tenants {
        rows.extend(state.store.search(tenant, search).await.map_err(internal)?);
    }
    if tenants.len() > 1 {
        rows.sort_by_key(|row| row.timestamp_ns);
        if search.newest_first {
            rows.reverse();
        }
        rows.truncate(search.limit);
    }
    Ok(rows)
}

/// Unix seconds (integer or fractional) → nanoseconds.
fn unix_seconds(name: &str, text: &str) -> Result<u64, Response> {
    let seconds: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|value: &f64| value.is_finite() && *value >= 0.0)
        .ok_or_else(|| bad_request(format!("invalid {name}: {text:?} is not Unix seconds")))?;
    Ok((seconds * 1e9) as u64)
}

fn limit_of(text: Option<&String>, default: usize) -> Result<usize, Response> {
    match text {
        None => Ok(default),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(limit) if limit > MAX_LIMIT as u64 => Err(bad_request(format!(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {MAX_LIMIT})"
            ))),
            Ok(limit) if limit > 0 => Ok(limit as usize),
            _ => Err(bad_request(format!(
                "invalid limit: {text:?} is not a positive integer"
            ))),
        },
    }
}

/// Checks a range query's `step` (float seconds or a duration such as `15s`), as Loki does:
/// positive, and at most [`MAX_POINTS_PER_SERIES`] points over `start`..`end`. Log queries
/// answer streams, so the step is only checked.
fn check_step(text: Option<&String>, start: u64, end: u64) -> Result<(), Response> {
    let Some(text) = text.map(|text| text.trim()).filter(|text| !text.is_empty()) else {
        return Ok(());
    };
    let step_ns = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => seconds * 1e9,
        Ok(_) => return Err(bad_request(format!("invalid step: {text:?}"))),
        Err(_) => humantime::parse_duration(text)
            .map(|duration| duration.as_nanos() as f64)
            .map_err(|error| bad_request(format!("invalid step: {text:?}: {error}")))?,
    };
    if step_ns <= 0.0 {
        return Err(bad_request(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end.saturating_sub(start) as f64 / step_ns) > MAX_POINTS_PER_SERIES as f64 {
        return Err(bad_request(format!(
            "exceeded maximum resolution of {MAX_POINTS_PER_SERIES} points per timeseries. Try increasing the value of the step parameter"
        )));
    }
    Ok(())
}

fn row_json(row: &LogRow) -> Value {
    let attributes: serde_json::Map<String, Value> = row
        .attributes
        .iter()
        .map(|label| (label.name.clone(), Value::String(label.value.clone())))
        .collect();
    json!({
        "timeUnixNano": row.timestamp_ns.to_string(),
        "traceId": hex::encode(&row.trace_id),
        "spanId": hex::encode(&row.span_id),
        "severityText": row.severity_text,
        "severityNumber": row.severity_number,
        "body": row.body,
        "serviceName": row.service_name,
        "attributes": attributes,
    })
}

/// `GET /api/logs?traceID=` (oldest first, every record of the trace up to 5000) or
/// `?service=&start=&end=&q=&limit=` (newest first).
async fn api_logs(
    State(state): State<Arc<LogsApiState>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let tenants = match tenants(&state, &headers) {
        Ok(tenants) => tenants,
        Err(response) => return response,
    };
    let search = match api_logs_search(&params) {
        Ok(search) => search,
        Err(response) => return response,
    };
    match search_tenants(&state, &tenants, &search).await {
        Ok(rows) => {
            Json(json!({ "logs": rows.iter().map(row_json).collect::<Vec<_>>() })).into_response()
        }
        Err(response) => response,
    }
}

fn api_logs_search(params: &BTreeMap<String, String>) -> Result<LogSearch, Response> {
    let mut search = LogSearch::all(DEFAULT_LIMIT);
    if let Some(text) = params.get("traceID").or_else(|| params.get("traceId")) {
        let id = logql::parse_trace_id(text).ok_or_else(|| {
            bad_request(format!(
                "invalid traceID: {text:?} is not a hex trace ID of 1 to 32 digits"
            ))
        })?;
        search.trace_id = Some(id);
        search.limit = limit_of(params.get("limit"), MAX_LIMIT)?;
        return Ok(search);
    }
    search.newest_first = true;
    search.limit = limit_of(params.get("limit"), DEFAULT_LIMIT)?;
    if let Some(service) = params.get("service").filter(|s| !s.is_empty()) {
        search.service = Some(service.clone());
    }
    if let Some(start) = params.get("start") {
        search.start_ns = unix_seconds("start", start)?;
    }
    if let Some(end) = params.get("end") {
        search.end_ns = unix_seconds("end", end)?.saturating_add(999_999_999);
    }
    if search.start_ns > search.end_ns {
        return Err(bad_request("invalid end: end is before start"));
    }
    if let Some(q) = params.get("q").filter(|q| !q.is_empty()) {
        search.contains = Some(q.clone());
    }
    Ok(search)
}

async fn push(State(state): State<Arc<LogsApiState>>, headers: HeaderMap, body: Bytes) -> Response {
    crate::receiver::loki::server::push(&state.distributor, &headers, body).await
}

/// Loki's time parameters: RFC 3339, float seconds, or integers in s, ms, µs or ns by size.
fn loki_time(name: &str, text: &str) -> Result<u64, Response> {
    let text = text.trim();
    if text.contains('T') {
        return chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .and_then(|time| time.timestamp_nanos_opt())
            .map(|ns| ns.max(0) as u64)
            .ok_or_else(|| {
                bad_request(format!("invalid {name}: {text:?} is not an RFC 3339 time"))
            });
    }
    if let Ok(number) = text.parse::<u64>() {
        return Ok(match number {
            n if n < 100_000_000_000 => n * 1_000_000_000,
            n if n < 100_000_000_000_000 => n * 1_000_000,
            n if n < 100_000_000_000_000_000 => n * 1_000,
            n => n,
        });
    }
    unix_seconds(name, text)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

fn loki_error(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// A stream's label set, in name order.
type StreamKey = Vec<(String, String)>;

/// Rows as Loki's `streams` result: grouped by label set, values in query order.
fn streams_json(rows: &[LogRow]) -> Value {
    let mut streams: Vec<(StreamKey, Vec<Value>)> = Vec::new();
    let mut index: BTreeMap<Vec<(String, String)>, usize> = BTreeMap::new();
    for row in rows {
        let key: Vec<(String, String)> = row
            .labels
            .iter()
            .map(|label| (label.name.clone(), label.value.clone()))
            .collect();
        let position = *index.entry(key.clone()).or_insert_with(|| {
            streams.push((key, Vec::new()));
            streams.len() - 1
        });
        let mut value = vec![
            Value::String(row.timestamp_ns.to_string()),
            Value::String(row.body.clone()),
        ];
        // Structured metadata as Loki returns it with `categorize-labels`-less clients: the
        // trace and span IDs so Grafana's derived fields can link to the trace.
        let mut metadata = serde_json::Map::new();
        if !row.trace_id.is_empty() {
            metadata.insert("trace_id".into(), Value::String(hex::encode(&row.trace_id)));
        }
        if !row.span_id.is_empty() {
            metadata.insert("span_id".into(), Value::String(hex::encode(&row.span_id)));
        }
        if !metadata.is_empty() {
            value.push(json!({ "structuredMetadata": metadata }));
        }
        streams[position].1.push(Value::Array(value));
    }
    Value::Array(
        streams
            .into_iter()
            .map(|(labels, values)| {
                let stream: serde_json::Map<String, Value> = labels
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                json!({ "stream": stream, "values": values })
            })
            .collect(),
    )
}

/// `vector(a) + vector(b) …`: the constant expression Grafana's health check runs.
fn constant_vector(query: &str) -> Option<f64> {
    let mut total = 0.0;
    for term in query.split('+') {
        let inner = term.trim().strip_prefix("vector(")?.strip_suffix(')')?;
        total += inner.trim().parse::<f64>().ok()?;
    }
    Some(total)
}

async fn run_log_query(
    state: &LogsApiState,
    headers: &HeaderMap,
    query_text: &str,
    start_ns: u64,
    end_ns: u64,
    limit: usize,
    newest_first: bool,
) -> Response {
    let tenants = match tenants(state, headers) {
        Ok(tenants) => tenants,
        Err(response) => return response,
    };
    let query = match logql::parse(query_text) {
        Ok(query) => query,
        Err(error) => return loki_error(format!("{error}")),
    };
    let mut search = LogSearch::all(limit);
    search.start_ns = start_ns;
    search.end_ns = end_ns;
    search.newest_first = newest_first;
    search.trace_id = query.trace_id_hint();
    search.service = query.equal_label("service_name").map(str::to_string);
    search.query = Some(query);
    match search_tenants(state, &tenants, &search).await {
        Ok(rows) => Json(json!({
            "status": "success",
            "data": { "resultType": "streams", "result": streams_json(&rows), "stats": {} }
        }))
        .into_response(),
        Err(response) => response,
    }
}

fn direction_newest_first(params: &BTreeMap<String, String>) -> Result<bool, Response> {
    match params.get("direction").map(|d| d.to_ascii_lowercase()) {
        None => Ok(true),
        Some(direction) if direction == "backward" => Ok(true),
        Some(direction) if direction == "forward" => Ok(false),
        Some(other) => Err(loki_error(format!(
            "invalid direction {other:?}: use forward or backward"
        ))),
    }
}

async fn query_range(
    State(state): State<Arc<LogsApiState>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(query) = params.get("query") else {
        return loki_error("query parameter is required".into());
    };
    let parsed = (|| {
        let end = match params.get("end") {
            Some(text) => loki_time("end", text)?,
            None => now_ns(),
        };
        let start = match (params.get("start"), params.get("since")) {
            (Some(text), _) => loki_time("start", text)?,
            (None, Some(since)) => {
                let since = humantime::parse_duration(since)
                    .map_err(|error| loki_error(format!("invalid since: {error}")))?;
                end.saturating_sub(since.as_nanos() as u64)
            }
            (None, None) => end.saturating_sub(DEFAULT_LOOKBACK_NS),
        };
        if start > end {
            return Err(loki_error("invalid start: start is after end".into()));
        }
        check_step(params.get("step"), start, end)?;
        Ok((
            start,
            end,
            limit_of(params.get("limit"), DEFAULT_LIMIT)?,
            direction_newest_first(&params)?,
        ))
    })();
    let (start, end, limit, newest_first) = match parsed {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    if let Some(value) = constant_vector(query) {
        return Json(json!({"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[end as f64 / 1e9, value.to_string()]]}]}})).into_response();
    }
    run_log_query(&state, &headers, query, start, end, limit, newest_first).await
}

async fn query_instant(
    State(state): State<Arc<LogsApiState>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(query) = params.get("query") else {
        return loki_error("query parameter is required".into());
    };
    let time = match params.get("time") {
        Some(text) => match loki_time("time", text) {
            Ok(time) => time,
            Err(response) => return response,
        },
        None => now_ns(),
    };
    if let Some(value) = constant_vector(query) {
        return Json(json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[time as f64 / 1e9, value.to_string()]}]}})).into_response();
    }
    let limit = match limit_of(params.get("limit"), DEFAULT_LIMIT) {
        Ok(limit) => limit,
        Err(response) => return response,
    };
    let newest_first = match direction_newest_first(&params) {
        Ok(direction) => direction,
        Err(response) => return response,
    };
    run_log_query(
        &state,
        &headers,
        query,
        time.saturating_sub(DEFAULT_LOOKBACK_NS),
        time,
        limit,
        newest_first,
    )
    .await
}

fn label_range(params: &BTreeMap<String, String>) -> Result<(u64, u64), Response> {
    let end = match params.get("end") {
        Some(text) => loki_time("end", text)?,
        None => now_ns(),
    };
    let start = match params.get("start") {
        Some(text) => loki_time("start", text)?,
        None => end.saturating_sub(6 * DEFAULT_LOOKBACK_NS),
    };
    Ok((start, end))
}

async fn label_answer(
    state: &LogsApiState,
    headers: &HeaderMap,
    params: &BTreeMap<String, String>,
    name: Option<&str>,
) -> Response {
    let tenants = match tenants(state, headers) {
        Ok(tenants) => tenants,
        Err(response) => return response,
    };
    let (start, end) = match label_range(params) {
        Ok(range) => range,
        Err(response) => return response,
    };
    let mut values = Vec::new();
    for tenant in &tenants {
        match state.store.labels(tenant, start, end, name).await {
            Ok(found) => values.extend(found),
            Err(error) => return internal(error),
        }
    }
    values.sort();
    values.dedup();
    Json(json!({ "status": "success", "data": values })).into_response()
}

async fn labels(
    State(state): State<Arc<LogsApiState>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    label_answer(&state, &headers, &params, None).await
}

async fn label_values(
    State(state): State<Arc<LogsApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    label_answer(&state, &headers, &params, Some(&name)).await
}

/// Loki's build info; Grafana reads the version to pick features.
async fn buildinfo() -> Response {
    Json(json!({
        "version": "3.0.0",
        "revision": "vivace",
        "branch": "vivace",
        "buildUser": "vivace",
        "buildDate": "",
        "goVersion": "",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parameters() {
        assert!(loki_time("t", "1700000000").is_ok_and(|ns| ns == 1_700_000_000_000_000_000));
        assert!(loki_time("t", "1700000000000").is_ok_and(|ns| ns == 1_700_000_000_000_000_000));
        assert!(
            loki_time("t", "1700000000000000000").is_ok_and(|ns| ns == 1_700_000_000_000_000_000)
        );
        assert!(loki_time("t", "1700000000.5").is_ok_and(|ns| ns == 1_700_000_000_500_000_000));
        assert!(
            loki_time("t", "2023-11-14T22:13:20Z").is_ok_and(|ns| ns == 1_700_000_000_000_000_000)
        );
        assert!(loki_time("t", "yesterday").is_err());
        assert_eq!(constant_vector("vector(1)+vector(1)"), Some(2.0));
        assert_eq!(constant_vector("{a=\"b\"}"), None);
    }

    #[test]
    fn api_logs_parameters() {
        let params = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let search = api_logs_search(&params(&[("traceID", "abc")])).unwrap();
        assert!(search.trace_id.is_some() && !search.newest_first);
        let search = api_logs_search(&params(&[
            ("service", "a"),
            ("start", "10"),
            ("end", "20"),
            ("q", "x"),
        ]))
        .unwrap();
        assert!(search.newest_first);
        assert_eq!(search.limit, DEFAULT_LIMIT);
        assert_eq!(search.start_ns, 10_000_000_000);
        for bad in [
            params(&[("traceID", "xyz")]),
            params(&[("start", "soon")]),
            params(&[("limit", "0")]),
            params(&[("start", "20"), ("end", "10")]),
        ] {
            assert!(api_logs_search(&bad).is_err(), "{bad:?}");
        }
    }
}
