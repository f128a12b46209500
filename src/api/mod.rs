//! The HTTP API on :3200: Tempo's query API as Grafana's Tempo datasource calls it
//! (reference/tempo-api.md), plus `/ready`, `/metrics` and build info. Shapes only: the logic
//! lives in the querier.

mod alerts;
pub mod fuzz_props;
pub mod metrics;
pub mod search;
pub mod state;
pub mod streaming;
mod tags;
pub mod tempopb;
pub mod trace_json;
mod traces;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;

pub use state::{
    check_query_size, read_tenants, scrape_tenant, scrape_tenant_of, ApiError, ApiState,
    MetricsSource, MAX_QUERY_BYTES,
};

/// The Tempo release whose API vivace answers like. Grafana gates features on this version.
pub const TEMPO_COMPATIBLE_VERSION: &str = "3.0.3";

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
