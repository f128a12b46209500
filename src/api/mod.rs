//! The HTTP API on :3200: Tempo's query API as Grafana's Tempo datasource calls it
//! (reference/tempo-api.md), plus `/ready`, `/metrics` and build info. Shapes only: the logic
//! lives in the querier.

mod alerts;
pub mod fuzz_props;
pub mod metrics;
pub mod search;
pub mod streaming;
mod tags;
pub mod tempopb;
pub mod trace_json;
mod traces;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;

use crate::distributor::{validate_tenant, SINGLE_TENANT};
use crate::querier::Querier;
use crate::telemetry::Telemetry;

/// The Tempo release whose API vivace answers like. Grafana gates features on this version.
pub const TEMPO_COMPATIBLE_VERSION: &str = "3.0.3";

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

/// Tenants a read applies to: `single-tenant` without multi-tenancy, otherwise the
/// `X-Scope-OrgID` header, where `a|b` reads several tenants at once.
pub fn read_tenants(state: &ApiState, headers: &HeaderMap) -> Result<Vec<String>, ApiError> {
    if !state.multitenancy_enabled {
        return Ok(vec![SINGLE_TENANT.to_string()]);
    }
    let header = headers
        .get("x-scope-orgid")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "no org id".into(),
        })?;
    let mut tenants = Vec::new();
    for tenant in header.split('|') {
        validate_tenant(tenant).map_err(ApiError::bad_request)?;
        if !tenants.iter().any(|known: &String| known == tenant) {
            tenants.push(tenant.to_string());
        }
    }
    Ok(tenants)
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
    if !multitenancy_enabled {
        return Ok(Some(SINGLE_TENANT.to_string()));
    }
    let Some(header) = headers.get("x-scope-orgid") else {
        return Ok(None);
    };
    let header = header
        .to_str()
        .map_err(|_| ApiError::bad_request("X-Scope-OrgID is not visible ASCII"))?
        .trim();
    if header.is_empty() {
        return Ok(None);
    }
    if header.contains('|') {
        return Err(ApiError::bad_request(format!(
            "X-Scope-OrgID {header:?} names several tenants: metrics are served for one tenant at a time"
        )));
    }
    validate_tenant(header).map_err(ApiError::bad_request)?;
    Ok(Some(header.to_string()))
}

/// Builds the router of the :3200 API.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/echo", any(|| async { "echo\n" }))
        .route("/ready", get(ready))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/metrics", get(metrics))
        .route("/api/traces/{trace_id}", get(traces::trace_v1))
        .route("/api/v2/traces/{trace_id}", get(traces::trace_v2))
        .route("/api/search", get(search::search))
        .route("/api/metrics/query_range", get(metrics::query_range))
        .route("/api/metrics/query", get(metrics::query_instant))
        .route("/api/search/tags", get(tags::tags_v1))
        .route("/api/v2/search/tags", get(tags::tags_v2))
        .route("/api/search/tag/{*rest}", get(tags::tag_values_v1))
        .route("/api/v2/search/tag/{*rest}", get(tags::tag_values_v2))
        .route(
            "/api/alerts/webhook",
            post(alerts::webhook).layer(DefaultBodyLimit::max(
                crate::alerts::webhook::MAX_WEBHOOK_BYTES,
            )),
        )
        .route("/api/alerts", get(alerts::list))
        .route("/api/alerts/open", get(alerts::open))
        .route("/api/alerts/{fingerprint}", get(alerts::get_one))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "other".to_string());
    let response = next.run(request).await;
    state.telemetry.observe_request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn ready(State(state): State<Arc<ApiState>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting or stopping\n",
        )
            .into_response()
    }
}

async fn buildinfo() -> Response {
    let body = serde_json::json!({
        "version": TEMPO_COMPATIBLE_VERSION,
        "revision": format!("vivace-{}", env!("CARGO_PKG_VERSION")),
        "branch": "vivace",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    use crate::generator::exposition::{self, Format};
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = exposition::negotiate(accept);
    let tenant = match scrape_tenant(&state, &headers) {
        Ok(tenant) => tenant,
        Err(error) => return error.into_response(),
    };
    // Rendering thousands of generated series is CPU work: keep it off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let mut own = String::new();
        state.telemetry.render(&mut own);
        for source in &state.metrics_sources {
            source(&mut own);
        }
        if let (Some(metrics), Some(tenant)) = (&state.otlp_metrics, &tenant) {
            if metrics.config().on_own_metrics() {
                metrics.render(tenant, &mut own);
            }
        }
        let mut text = match format {
            Format::Prometheus => own,
            Format::OpenMetrics => {
                let mut text = String::with_capacity(own.len());
                exposition::prometheus_to_openmetrics(&own, &mut text);
                text
            }
        };
        if let (Some(generator), Some(tenant)) = (&state.generator, &tenant) {
            generator.render(tenant, format, &mut text);
        }
        if format == Format::OpenMetrics {
            exposition::finish_openmetrics(&mut text);
        }
        text
    })
    .await;
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(error) => {
            ApiError::internal(format!("rendering metrics failed: {error}")).into_response()
        }
    }
}
