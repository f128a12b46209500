//! `GET /api/traces/{id}` (v1) and `GET /api/v2/traces/{id}`, in JSON or protobuf.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;

use super::state::{read_tenants, ApiError, ApiState};
use super::trace_json;
use crate::model::{Trace, TraceId};

/// `tempopb.TraceByIDMetrics` as of Grafana's vendored schema (only `inspectedBytes`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdMetrics {
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}

/// `tempopb.TraceByIDResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<Trace>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    // Tempo matches substrings in this order: protobuf first, then JSON.
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/protobuf"))
}

/// Parses Tempo's optional `start`/`end` (Unix seconds) into a nanosecond window.
fn time_window(query: &HashMap<String, String>) -> Result<Option<(u64, u64)>, ApiError> {
    let parse = |name: &str| -> Result<Option<i64>, ApiError> {
        match query.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid {name}: {text:?} is not a Unix time in seconds"
                ))
            }),
        }
    };
    let (start, end) = (parse("start")?, parse("end")?);
    match (start, end) {
        (Some(start), Some(end)) if end <= start => Err(ApiError::bad_request(format!(
            "http parameter start must be before end. received start={start} end={end}"
        ))),
        (Some(start), Some(end)) => {
            let to_nanos = |seconds: i64| (seconds.max(0) as u64).saturating_mul(1_000_000_000);
            Ok(Some((to_nanos(start), to_nanos(end))))
        }
        _ => Ok(None),
    }
}

async fn lookup(
    state: &ApiState,
    headers: &HeaderMap,
    raw_id: &str,
    query: &HashMap<String, String>,
) -> Result<(Option<Trace>, u64), ApiError> {
    let tenants = read_tenants(state, headers)?;
    let id =
        TraceId::parse_hex(raw_id).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let window = time_window(query)?;
    let lookup = state
        .querier
        .find_trace_by_id(&tenants, &id, window)
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok((lookup.trace, lookup.inspected_bytes))
}

/// `GET /api/traces/{id}`: `{"batches":[...]}` or `tempopb.Trace`; 404 with an empty body
/// when the trace is unknown.
pub async fn trace_v1(
    State(state): State<Arc<ApiState>>,
    Path(raw_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (trace, _) = lookup(&state, &headers, &raw_id, &query).await?;
    let Some(trace) = trace else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    if wants_protobuf(&headers) {
        return Ok((
            [(header::CONTENT_TYPE, "application/protobuf")],
            trace.encode_to_vec(),
        )
            .into_response());
    }
    let body = trace_json::trace_v1(&trace).to_string();
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/v2/traces/{id}`: `{"trace":…,"metrics":…}` or `tempopb.TraceByIDResponse`; 404
/// with an empty body when the trace is unknown (Grafana then tries v1, which 404s too).
pub async fn trace_v2(
    State(state): State<Arc<ApiState>>,
    Path(raw_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (trace, inspected_bytes) = lookup(&state, &headers, &raw_id, &query).await?;
    let Some(trace) = trace else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    if wants_protobuf(&headers) {
        let response = TraceByIdResponse {
            trace: Some(trace),
            metrics: Some(TraceByIdMetrics { inspected_bytes }),
            status: 0,
            message: String::new(),
        };
        return Ok((
            [(header::CONTENT_TYPE, "application/protobuf")],
            response.encode_to_vec(),
        )
            .into_response());
    }
    let body = trace_json::trace_v2(&trace, inspected_bytes).to_string();
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
