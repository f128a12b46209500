//! What the API's handlers share: their state, their error, the tenants a request reads, and
//! the TraceQL size check. Apart from the router (`api/mod.rs`) so that the handlers depend on
//! it and not on the module that mounts them.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::querier::Querier;
use crate::telemetry::Telemetry;
use crate::tenant::{self, TenantError};

/// Longest TraceQL text (`q`) any endpoint accepts, bytes. Parsing is linear, but the tree a
/// query builds and the regexes it compiles grow with it; Grafana's queries are far shorter.
pub const MAX_QUERY_BYTES: usize = 128 * 1024;

/// Refuses a TraceQL text longer than [`MAX_QUERY_BYTES`], naming the parameter.
pub fn check_query_size(name: &str, text: &str) -> Result<(), ApiError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(ApiError::bad_request(format!(
            "invalid TraceQL query: {name} is {} bytes, at most {MAX_QUERY_BYTES}",
            text.len()
        )));
    }
    Ok(())
}

/// Appends gauges read at scrape time (ingester, store) to the `/metrics` text.
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Everything the API handlers share.
pub struct ApiState {
    pub querier: Arc<Querier>,
    pub telemetry: Arc<Telemetry>,
    pub multitenancy_enabled: bool,
    /// Per-tenant limits; reads use `read.max_search_duration`.
    pub overrides: Arc<crate::overrides::OverridesConfig>,
    pub ready: AtomicBool,
    pub metrics_sources: Vec<MetricsSource>,
    /// The metrics-generator whose series `/metrics` also serves (the scrape's tenant's), if
    /// it runs.
    pub generator: Option<Arc<crate::generator::Generator>>,
    /// Converted OTLP metrics, appended to `/metrics` (the scrape's tenant's) when
    /// `otlp_metrics.scrape_path` is `/metrics`.
    pub otlp_metrics: Option<Arc<crate::generator::otlp_metrics::OtlpMetrics>>,
    /// Alerts received from Alertmanager and the traces behind them.
    pub alerts: Arc<crate::alerts::Alerts>,
}

/// An API error: plain-text body as Tempo writes it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), message = %self.message, "api request failed");
        }
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}

impl From<TenantError> for ApiError {
    /// A read without a tenant is 401 `no org id`; a bad one 400 naming the rule it breaks.
    fn from(error: TenantError) -> Self {
        match error {
            TenantError::Missing => ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: error.to_string(),
            },
            TenantError::Invalid { reason, .. } => ApiError::bad_request(reason),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// Tenants a read applies to: `single-tenant` without multi-tenancy, otherwise the
/// `X-Scope-OrgID` header, where `a|b` reads several tenants at once.
pub fn read_tenants(state: &ApiState, headers: &HeaderMap) -> Result<Vec<String>, ApiError> {
    Ok(tenant::read_tenants(
        state.multitenancy_enabled,
        tenant::org_id(headers),
    )?)
}

/// The tenant whose generated series a `/metrics` scrape shows: `single-tenant` without
/// multi-tenancy; with it the one tenant `X-Scope-OrgID` names, or none without the header
/// (the scrape then shows vivace's own metrics only). Several tenants (`a|b`) are refused:
/// their series would clash in one exposition.
pub fn scrape_tenant(state: &ApiState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    scrape_tenant_of(state.multitenancy_enabled, headers)
}

/// [`scrape_tenant`] for handlers outside the API state (the UI, the OTLP scrape path).
pub fn scrape_tenant_of(
    multitenancy_enabled: bool,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    Ok(tenant::scrape_tenant(multitenancy_enabled, headers)?)
}
