//! Alert-to-trace API: `POST /api/alerts/webhook` (Alertmanager's webhook, version 4),
//! `GET /api/alerts` (newest first) and `GET /api/alerts/{fingerprint}`. The UI's `/alerts`
//! pages render this JSON.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::state::{read_tenants, ApiError, ApiState};
use crate::alerts::{decode_webhook, StoredAlert};
use crate::tenant::{self, TenantError};

/// The tenant a notification's alerts belong to: `single-tenant` without multi-tenancy;
/// otherwise `X-Scope-OrgID`, or the `tenant` URL parameter (Alertmanager's webhook cannot set
/// headers, so its URL carries `?tenant=`).
fn webhook_tenant(
    state: &ApiState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let header = tenant::org_id(headers).or_else(|| params.get("tenant").map(String::as_str));
    tenant::write_tenant(state.multitenancy_enabled, header).map_err(|error| match error {
        TenantError::Missing => ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "no org id: send X-Scope-OrgID or ?tenant= on the webhook URL".into(),
        },
        other => ApiError::from(other),
    })
}

/// `POST /api/alerts/webhook`: stores the alerts and answers once they are on disk; their
/// traces are looked for in the background.
pub async fn webhook(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = webhook_tenant(&state, &headers, &params)?;
    let payload =
        decode_webhook(&body).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let received = state
        .alerts
        .receive(&tenant, &payload)
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(json_response(json!({ "received": received })))
}

fn alert_json(state: &ApiState, alert: StoredAlert) -> Value {
    let url = state.alerts.alert_url(&alert.fingerprint);
    let mut value = serde_json::to_value(alert).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.insert("url".into(), json!(url));
    }
    value
}

fn json_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /api/alerts`: every kept alert of the caller's tenants, newest notification first.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenants = read_tenants(&state, &headers)?;
    let alerts: Vec<Value> = state
        .alerts
        .store
        .list(&tenants)
        .into_iter()
        .map(|alert| alert_json(&state, alert))
        .collect();
    Ok(json_response(json!({ "alerts": alerts })))
}

/// `GET /api/alerts/{fingerprint}`: one alert, or 404.
pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(fingerprint): Path<String>,
) -> Result<Response, ApiError> {
    let tenants = read_tenants(&state, &headers)?;
    let fingerprint = fingerprint.to_ascii_lowercase();
    match state.alerts.store.get(&tenants, &fingerprint) {
        Some(alert) => Ok(json_response(alert_json(&state, alert))),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("alert {fingerprint:?} not found"),
        }),
    }
}

/// `GET /api/alerts/open?alertname=…&service=…`: the link rule annotations carry (Prometheus
/// templates know an alert's labels, not Alertmanager's fingerprint). Redirects to the page of
/// the newest alert with those labels, or, before its notification arrived, to a TraceQL
/// search for the traces those labels select (erroring ones for an error alert).
pub async fn open(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenants = read_tenants(&state, &headers)?;
    let labels: std::collections::BTreeMap<String, String> = params
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    if labels.is_empty() {
        return Err(ApiError::bad_request(
            "give the alert's labels as parameters, e.g. ?alertname=HighErrorRate&service=checkout",
        ));
    }
    let location = match state.alerts.store.find_by_labels(&tenants, &labels) {
        Some(alert) => format!("/alerts/{}", alert.fingerprint),
        None => {
            let errors = crate::alerts::resolve::alert_kind(&labels)
                != crate::alerts::resolve::AlertKind::Latency;
            let query = crate::alerts::resolve::alert_traceql(&labels, errors).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "no alert with labels {labels:?} yet, and no service or span_name label to search traces by"
                ))
            })?;
            let url = reqwest::Url::parse_with_params("http://vivace/search", [("q", query)])
                .map_err(|error| ApiError::internal(error.to_string()))?;
            format!("/search?{}", url.query().unwrap_or_default())
        }
    };
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}
