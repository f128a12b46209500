//! Tag names and tag values (reference/tempo-api.md §2.7–2.8): `GET /api/search/tags`,
//! `GET /api/v2/search/tags`, `GET /api/search/tag/{tag}/values` and
//! `GET /api/v2/search/tag/{tag}/values`, the lists Grafana's query editor offers.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::search::{max_search_seconds, parse_window};
use super::state::{check_query_size, read_tenants, ApiError, ApiState};
use crate::traceql::ast::{Attribute, AttributeScope};
use crate::traceql::tags::{virtual_values, TagFilter, TagScope, INTRINSIC_TAGS};
use crate::traceql::{parse_identifier, ParseError};

/// Tags per scope, or values, when `limit` is absent or 0.
pub const DEFAULT_TAG_LIMIT: usize = 1000;

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn parse_limit(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    match param(params, "limit") {
        None => Ok(DEFAULT_TAG_LIMIT),
        Some(text) => match text.parse::<u32>() {
            Ok(0) => Ok(DEFAULT_TAG_LIMIT),
            Ok(n) => Ok(n as usize),
            Err(_) => Err(ApiError::bad_request(format!(
                "invalid limit: strconv.ParseUint: parsing {text:?}: invalid syntax"
            ))),
        },
    }
}

/// The `scope` parameter: which attribute scopes to read and whether intrinsics are listed.
fn parse_scope(params: &HashMap<String, String>) -> Result<(Vec<TagScope>, bool), ApiError> {
    let scope = params.get("scope").map(String::as_str).unwrap_or("");
    Ok(match scope {
        "" | "none" => (TagScope::ALL.to_vec(), true),
        "intrinsic" => (Vec::new(), true),
        "trace" => (Vec::new(), false),
        "span" => (vec![TagScope::Span], false),
        "resource" => (vec![TagScope::Resource], false),
        "event" => (vec![TagScope::Event], false),
        "link" => (vec![TagScope::Link], false),
        "instrumentation" => (vec![TagScope::Instrumentation], false),
        other => return Err(ApiError::bad_request(format!("invalid scope: {other}"))),
    })
}

fn metrics(inspected_bytes: u64) -> Value {
    let mut metrics = Map::new();
    if inspected_bytes != 0 {
        metrics.insert("inspectedBytes".into(), json!(inspected_bytes.to_string()));
    }
    Value::Object(metrics)
}

fn json_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

struct TagNames {
    names: Vec<(TagScope, BTreeSet<String>)>,
    intrinsics: bool,
    inspected_bytes: u64,
}

async fn tag_names(
    state: &ApiState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    use_q: bool,
) -> Result<TagNames, ApiError> {
    let tenants = read_tenants(state, headers)?;
    let (scopes, intrinsics) = parse_scope(params)?;
    let window = parse_window(params, max_search_seconds(state, &tenants))?;
    let limit = parse_limit(params)?;
    let q = if use_q { param(params, "q") } else { None };
    if let Some(text) = q {
        check_query_size("q", text)?;
    }
    let filter = TagFilter::new(q);
    if scopes.is_empty() {
        return Ok(TagNames {
            names: Vec::new(),
            intrinsics,
            inspected_bytes: 0,
        });
    }
    let outcome = state
        .querier
        .tag_names(&tenants, scopes, filter, window, limit)
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(TagNames {
        names: outcome.names.into_iter().collect(),
        intrinsics,
        inspected_bytes: outcome.inspected_bytes,
    })
}

/// Tag names of every scope merged (at most `limit`), intrinsics only for `scope=intrinsic`,
/// and the bytes read: the answer of `GET /api/search/tags` and of the `SearchTags` RPC.
pub async fn tags_v1_answer(
    state: &ApiState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(Vec<String>, u64), ApiError> {
    let found = tag_names(state, headers, params, false).await?;
    let mut merged: BTreeSet<String> = found.names.into_iter().flat_map(|(_, n)| n).collect();
    if params.get("scope").map(String::as_str) == Some("intrinsic") {
        merged.extend(INTRINSIC_TAGS.iter().map(|t| t.to_string()));
    }
    let limit = parse_limit(params)?;
    Ok((
        merged.into_iter().take(limit).collect(),
        found.inspected_bytes,
    ))
}

/// `GET /api/search/tags`: `tagNames`.
pub async fn tags_v1(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (names, inspected_bytes) = tags_v1_answer(&state, &headers, &params).await?;
    Ok(json_response(json!({
        "tagNames": names,
        "metrics": metrics(inspected_bytes),
    })))
}

/// Tag names per scope (`(scope, names)`, scopes without names left out), with the
/// `intrinsic` scope when `scope` is empty, `none` or `intrinsic`, and the bytes read: the
/// answer of `GET /api/v2/search/tags` and of the `SearchTagsV2` RPC.
pub async fn tags_v2_answer(
    state: &ApiState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(Vec<(String, Vec<String>)>, u64), ApiError> {
    let found = tag_names(state, headers, params, true).await?;
    let mut scopes: Vec<(String, Vec<String>)> = found
        .names
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(scope, names)| (scope.as_str().to_string(), names.into_iter().collect()))
        .collect();
    if found.intrinsics {
        let mut intrinsics: Vec<String> = INTRINSIC_TAGS.iter().map(|t| t.to_string()).collect();
        intrinsics.sort_unstable();
        scopes.push(("intrinsic".to_string(), intrinsics));
    }
    Ok((scopes, found.inspected_bytes))
}

/// `GET /api/v2/search/tags`: `scopes: [{name, tags}]`.
pub async fn tags_v2(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (scopes, inspected_bytes) = tags_v2_answer(&state, &headers, &params).await?;
    let scopes: Vec<Value> = scopes
        .into_iter()
        .map(|(name, tags)| json!({"name": name, "tags": tags}))
        .collect();
    Ok(json_response(json!({
        "scopes": scopes,
        "metrics": metrics(inspected_bytes),
    })))
}

/// Splits `{tag}/values` from the wildcard route; `None` when the path does not end so.
fn tag_of(rest: &str) -> Option<&str> {
    rest.strip_suffix("/values").filter(|tag| !tag.is_empty())
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

/// Tempo's `ParseIdentifier` reports a bare word as `unknown identifier: app` where the
/// query grammar says `syntax error: unexpected IDENTIFIER`.
fn identifier_error(tag: &str, mut error: ParseError) -> ParseError {
    if error
        .message
        .starts_with("syntax error: unexpected IDENTIFIER")
        && error.line == 1
    {
        // The tag was parsed inside `{…}`: column 2 is its first character.
        let word: String = tag
            .chars()
            .skip(error.col.saturating_sub(2))
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty() {
            error.message = format!("unknown identifier: {word}");
        }
    }
    error
}

/// The values of an unscoped attribute as strings, and the bytes read: the answer of
/// `GET /api/search/tag/{tag}/values` and of the `SearchTagValues` RPC.
pub async fn tag_values_v1_answer(
    state: &ApiState,
    headers: &HeaderMap,
    tag: &str,
    params: &HashMap<String, String>,
) -> Result<(Vec<String>, u64), ApiError> {
    let tenants = read_tenants(state, headers)?;
    let window = parse_window(params, max_search_seconds(state, &tenants))?;
    let limit = parse_limit(params)?;
    let attribute = Attribute::new(AttributeScope::None, false, tag);
    let outcome = state
        .querier
        .tag_values(&tenants, attribute, TagFilter::default(), window, limit)
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let mut seen = BTreeSet::new();
    let values: Vec<String> = outcome
        .values
        .into_iter()
        .map(|v| v.value)
        .filter(|v| seen.insert(v.clone()))
        .collect();
    Ok((values, outcome.inspected_bytes))
}

/// `GET /api/search/tag/{tag}/values`: `tagValues` as strings.
pub async fn tag_values_v1(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(rest): Path<String>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let Some(tag) = tag_of(&rest) else {
        return Ok(not_found());
    };
    let (values, inspected_bytes) = tag_values_v1_answer(&state, &headers, tag, &params).await?;
    Ok(json_response(json!({
        "tagValues": values,
        "metrics": metrics(inspected_bytes),
    })))
}

/// Typed values (`(type, value)`) of a TraceQL identifier, optionally only on spans matching
/// `q`, and the bytes read; status and kind answer their keywords without reading data. The
/// answer of `GET /api/v2/search/tag/{tag}/values` and of the `SearchTagValuesV2` RPC.
pub async fn tag_values_v2_answer(
    state: &ApiState,
    headers: &HeaderMap,
    tag: &str,
    params: &HashMap<String, String>,
) -> Result<(Vec<(String, String)>, u64), ApiError> {
    let tenants = read_tenants(state, headers)?;
    let attribute = parse_identifier(tag).map_err(|error| {
        ApiError::bad_request(format!(
            "please provide a valid tagName: failed to parse identifier {tag}: {}",
            identifier_error(tag, error)
        ))
    })?;
    let window = parse_window(params, max_search_seconds(state, &tenants))?;
    let limit = parse_limit(params)?;
    if let Some(values) = virtual_values(&attribute) {
        let values = values
            .into_iter()
            .map(|v| (v.kind.to_string(), v.value))
            .collect();
        return Ok((values, 0));
    }
    let q = param(params, "q");
    if let Some(text) = q {
        check_query_size("q", text)?;
    }
    let filter = TagFilter::new(q);
    let outcome = state
        .querier
        .tag_values(&tenants, attribute, filter, window, limit)
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let values = outcome
        .values
        .into_iter()
        .map(|v| (v.kind.to_string(), v.value))
        .collect();
    Ok((values, outcome.inspected_bytes))
}

/// `GET /api/v2/search/tag/{tag}/values`: `tagValues: [{type, value}]`.
pub async fn tag_values_v2(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(rest): Path<String>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let Some(tag) = tag_of(&rest) else {
        return Ok(not_found());
    };
    let (values, inspected_bytes) = tag_values_v2_answer(&state, &headers, tag, &params).await?;
    let values: Vec<Value> = values
        .into_iter()
        .map(|(kind, value)| json!({"type": kind, "value": value}))
        .collect();
    Ok(json_response(json!({
        "tagValues": values,
        "metrics": metrics(inspected_bytes),
    })))
}
