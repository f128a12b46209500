//! `GET /api/search`: TraceQL (or legacy logfmt `tags`) search, answered as Tempo's
//! `SearchResponse` in proto3 JSON (reference/tempo-api.md §2.0, §2.6). Only fields of the
//! 2025-05 schema are sent, and `spanSets` without the deprecated `spanSet`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query as UrlQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::state::{check_query_size, read_tenants, ApiError, ApiState};
use crate::querier::QuerierError;
use crate::traceql::ast::*;
use crate::traceql::search::{CompiledSearch, SearchOptions};
use crate::traceql::static_value::{parse_duration, Static};
use crate::traceql::{parse_and_validate, QueryError};

/// Results per search when `limit` is absent (`default_result_limit`).
pub const DEFAULT_LIMIT: usize = 20;
/// Largest accepted `limit`.
pub const MAX_LIMIT: usize = 262_144;
/// Spans per spanset when `spss` is absent or 0.
pub const DEFAULT_SPSS: usize = 3;
/// Largest accepted `spss`.
pub const MAX_SPSS: usize = 100;
/// Longest accepted `start`..`end` range, seconds (168 h).
pub const MAX_RANGE_SECONDS: u64 = 168 * 3600;
/// Most tags a legacy tag search (`tags=` logfmt, or `?name=value` parameters) may name: each
/// becomes one more condition of a chain that is evaluated recursively.
pub const MAX_SEARCH_TAGS: usize = 100;

fn non_empty<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Longest search range of `tenants`, seconds: the smallest per-tenant
/// `read.max_search_duration` given, else the global 168h.
pub(crate) fn max_search_seconds(state: &ApiState, tenants: &[String]) -> u64 {
    tenants
        .iter()
        .map(|tenant| {
            state
                .overrides
                .limits(tenant)
                .read
                .max_search_duration
                .as_secs()
        })
        .filter(|&seconds| seconds > 0)
        .min()
        .unwrap_or(MAX_RANGE_SECONDS)
        .min(MAX_RANGE_SECONDS)
}

/// Seconds as Go prints a `time.Duration` (`168h0m0s`, `30m0s`, `45s`), as in Tempo's errors.
fn go_duration(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

pub(super) fn parse_window(
    params: &HashMap<String, String>,
    max_seconds: u64,
) -> Result<Option<(u64, u64)>, ApiError> {
    let parse = |name: &str| -> Result<u64, ApiError> {
        match non_empty(params, name) {
            None => Ok(0),
            Some(text) => text.parse::<u32>().map(u64::from).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid {name}: strconv.ParseUint: parsing {text:?}: invalid syntax"
                ))
            }),
        }
    };
    let (start, end) = (parse("start")?, parse("end")?);
    if start == 0 && end == 0 {
        return Ok(None);
    }
    if end <= start {
        return Err(ApiError::bad_request(format!(
            "http parameter start must be before end. received start={start} end={end}"
        )));
    }
    if end - start > max_seconds {
        return Err(ApiError::bad_request(format!(
            "range specified by start and end exceeds {}. received start={start} end={end}",
            go_duration(max_seconds)
        )));
    }
    Ok(Some((start * 1_000_000_000, end * 1_000_000_000)))
}

fn parse_duration_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<u64>, ApiError> {
    match non_empty(params, name) {
        None => Ok(None),
        Some(text) => parse_duration(text)
            .filter(|nanos| *nanos >= 0)
            .map(|nanos| Some(nanos as u64))
            .ok_or_else(|| ApiError::bad_request(format!("invalid {name}: {text:?}"))),
    }
}

/// Splits logfmt `k=v k2="v 2"` into pairs.
fn parse_logfmt(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => {
                            closed = true;
                            break;
                        }
                        other => value.push(other),
                    }
                }
                if !closed {
                    return Err("logfmt syntax error: unterminated quoted value".into());
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err("logfmt syntax error: missing key".into());
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(format!("duplicate key {key:?}"));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Legacy tag search as a filter: every tag must match one span, case-insensitive
/// substring, span attribute first, then resource.
fn tags_query(pairs: &[(String, String)]) -> Query {
    let mut expr: Option<FieldExpr> = None;
    for (key, value) in pairs {
        let test = FieldExpr::Binary {
            op: BinaryOp::Regex,
            lhs: Box::new(FieldExpr::Attribute(Attribute::new(
                AttributeScope::None,
                false,
                key.clone(),
            ))),
            rhs: Box::new(FieldExpr::Static(Static::String(format!(
                "(?i).*{}.*",
                regex::escape(value)
            )))),
        };
        expr = Some(match expr {
            None => test,
            Some(previous) => FieldExpr::Binary {
                op: BinaryOp::And,
                lhs: Box::new(previous),
                rhs: Box::new(test),
            },
        });
    }
    Query {
        root: RootExpr::Pipeline(Pipeline {
            stages: vec![Stage::Spanset(SpansetExpr::Filter(
                expr.unwrap_or(FieldExpr::Static(Static::Bool(true))),
            ))],
        }),
        hints: Vec::new(),
    }
}

/// Parameters `/api/search` knows; with none of `q`, `tags`, `start`, `end` present, every
/// other parameter is a tag (the very old Grafana form `?service.name=x`).
const KNOWN_PARAMS: &[&str] = &[
    "q",
    "tags",
    "minDuration",
    "maxDuration",
    "limit",
    "spss",
    "start",
    "end",
];

/// The legacy form's tags: unknown parameters, when none of `q`, `tags`, `start`, `end` is
/// given. Sorted by name so the query does not depend on the map's order.
fn legacy_tags(params: &HashMap<String, String>) -> Vec<(String, String)> {
    if ["q", "tags", "start", "end"]
        .iter()
        .any(|name| params.contains_key(*name))
    {
        return Vec::new();
    }
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(key, _)| !KNOWN_PARAMS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    pairs.sort();
    pairs
}

fn check_tag_count(count: usize) -> Result<(), ApiError> {
    if count > MAX_SEARCH_TAGS {
        return Err(ApiError::bad_request(format!(
            "invalid tags: {count} tags, at most {MAX_SEARCH_TAGS}"
        )));
    }
    Ok(())
}

fn compile(params: &HashMap<String, String>) -> Result<CompiledSearch, ApiError> {
    let q = non_empty(params, "q");
    let tags = non_empty(params, "tags");
    if let Some(text) = q {
        check_query_size("q", text)?;
    }
    if let Some(text) = tags {
        check_query_size("tags", text)?;
    }
    let legacy = legacy_tags(params);
    check_tag_count(legacy.len())?;
    let query = match (q, tags) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid request: can't specify tags and q in the same query",
            ))
        }
        (Some(text), None) => parse_and_validate(text).map_err(|error| match error {
            QueryError::Parse(e) => ApiError::bad_request(format!("invalid TraceQL query: {e}")),
            QueryError::Validate(e) => ApiError::bad_request(format!("invalid TraceQL query: {e}")),
        })?,
        (None, Some(text)) => {
            let pairs = parse_logfmt(text)
                .map_err(|e| ApiError::bad_request(format!("invalid tags: {e}")))?;
            check_tag_count(pairs.len())?;
            tags_query(&pairs)
        }
        (None, None) => tags_query(&legacy),
    };
    let compiled = CompiledSearch::new(query)
        .map_err(|e| ApiError::bad_request(format!("invalid TraceQL query: {e}")))?;
    Ok(if tags.is_some() || !legacy.is_empty() {
        compiled.metadata_only()
    } else {
        compiled
    })
}

/// A validated search: what `/api/search` and the streaming `Search` RPC both run.
pub struct PreparedSearch {
    pub query: Arc<CompiledSearch>,
    pub limit: usize,
    pub options: SearchOptions,
}

/// Validates `/api/search` parameters (as Tempo's `ParseSearchRequest`: `q`, `tags`, `limit`,
/// `spss`, `start`, `end`, `minDuration`, `maxDuration`) against the README's "Limits" and
/// compiles the query; `max_search_seconds` is the longest `start`…`end` the tenants may
/// search (their `overrides.read.max_search_duration`). Pure, so the fuzz target and property
/// tests drive it directly.
pub fn prepare(
    params: &HashMap<String, String>,
    max_search_seconds: u64,
) -> Result<PreparedSearch, ApiError> {
    let limit = match non_empty(params, "limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<u64>() {
            Ok(0) => {
                return Err(ApiError::bad_request(
                    "invalid limit: must be a positive number",
                ))
            }
            Ok(n) if n > MAX_LIMIT as u64 => {
                return Err(ApiError::bad_request(format!(
                    "limit {n} exceeds max limit of {MAX_LIMIT}"
                )))
            }
            Ok(n) => n as usize,
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid limit: strconv.ParseUint: parsing {text:?}: invalid syntax"
                )))
            }
        },
    };
    let spss = match non_empty(params, "spss") {
        None => DEFAULT_SPSS,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n > MAX_SPSS as u64 => {
                return Err(ApiError::bad_request(format!(
                    "spans per span set exceeds {MAX_SPSS}. received {n}"
                )))
            }
            Ok(0) => DEFAULT_SPSS,
            Ok(n) => n as usize,
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid spss: strconv.ParseUint: parsing {text:?}: invalid syntax"
                )))
            }
        },
    };
    let window = parse_window(params, max_search_seconds)?;
    let min_duration = parse_duration_param(params, "minDuration")?;
    let max_duration = parse_duration_param(params, "maxDuration")?;
    if let (Some(min), Some(max)) = (min_duration, max_duration) {
        if max < min {
            return Err(ApiError::bad_request(
                "invalid maxDuration: must be greater than minDuration",
            ));
        }
    }
    Ok(PreparedSearch {
        query: Arc::new(compile(params)?),
        limit,
        options: SearchOptions {
            spans_per_spanset: spss,
            window,
            min_duration,
            max_duration,
        },
    })
}

/// How a failed search run is reported.
pub(crate) fn run_error(error: QuerierError) -> ApiError {
    match error {
        QuerierError::Evaluation(message) => ApiError::bad_request(message),
        other => ApiError::internal(other.to_string()),
    }
}

/// `GET /api/search`.
pub async fn search(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenants = read_tenants(&state, &headers)?;
    let prepared = prepare(&params, max_search_seconds(&state, &tenants))?;
    let outcome = state
        .querier
        .search(&tenants, prepared.query, prepared.limit, prepared.options)
        .await
        .map_err(run_error)?;
    let mut body = Map::new();
    if !outcome.traces.is_empty() {
        let traces = outcome.traces.iter().map(|trace| trace.to_json()).collect();
        body.insert("traces".into(), Value::Array(traces));
    }
    let mut metrics = Map::new();
    if outcome.inspected_traces != 0 {
        metrics.insert("inspectedTraces".into(), json!(outcome.inspected_traces));
    }
    if outcome.inspected_bytes != 0 {
        metrics.insert(
            "inspectedBytes".into(),
            json!(outcome.inspected_bytes.to_string()),
        );
    }
    if outcome.total_blocks != 0 {
        metrics.insert("totalBlocks".into(), json!(outcome.total_blocks));
    }
    metrics.insert("completedJobs".into(), json!(1));
    metrics.insert("totalJobs".into(), json!(1));
    if outcome.inspected_spans != 0 {
        metrics.insert(
            "inspectedSpans".into(),
            json!(outcome.inspected_spans.to_string()),
        );
    }
    body.insert("metrics".into(), Value::Object(metrics));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Value::Object(body).to_string(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_pairs() {
        assert_eq!(
            parse_logfmt(r#"service.name=payments  http.route="/a b""#),
            Ok(vec![
                ("service.name".to_string(), "payments".to_string()),
                ("http.route".to_string(), "/a b".to_string()),
            ])
        );
        assert!(parse_logfmt("a=1 a=2").is_err());
        assert!(parse_logfmt(r#"a="x"#).is_err());
    }

    #[test]
    fn unknown_parameters_are_tags_only_in_the_legacy_form() {
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            legacy_tags(&params(&[
                ("service.name", "x"),
                ("limit", "5"),
                ("a", "b")
            ])),
            vec![
                ("a".to_string(), "b".to_string()),
                ("service.name".to_string(), "x".to_string())
            ]
        );
        assert!(legacy_tags(&params(&[("service.name", "x"), ("start", "1")])).is_empty());
        assert!(legacy_tags(&params(&[("service.name", "x"), ("q", "{}")])).is_empty());
    }
}
