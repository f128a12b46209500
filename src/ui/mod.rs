//! The built-in web UI: server-rendered page shells (askama templates in `web/templates/`) and
//! plain ES modules + CSS (`web/static/`) embedded in the binary with rust-embed, so the UI
//! works offline with no JavaScript build step. The pages' scripts read vivace's own APIs;
//! this module adds only what the browser cannot get same-origin otherwise: the service graph
//! from the metrics-generator's series and a proxy to the configured Prometheus.

mod graph;
mod history;
mod samples;
mod services;
mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;

pub use samples::ServiceGraphHistory;
pub use state::UiState;

/// The static files: ES modules, CSS and icons, served under `/static/`.
#[derive(RustEmbed)]
#[folder = "web/static/"]
struct Assets;

/// The UI's routes: pages, static files and the two UI-only JSON endpoints. None clashes with
/// Tempo's API (`/api/*` other than `/api/ui/*`), `/ready`, `/metrics` or `/loki/*`.
pub fn router(state: Arc<UiState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/search") }))
        .route("/search", get(search_page))
        .route("/trace/{id}", get(trace_page))
        .route("/services", get(services_page))
        .route("/services/{name}", get(service_page))
        .route("/graph", get(graph_page))
        .route("/alerts", get(alerts_page))
        .route("/alerts/{fingerprint}", get(alert_page))
        .route("/static/{*path}", get(static_file))
        .route("/api/ui/service-graph", get(graph::service_graph))
        .route("/api/ui/services", get(services::services))
        .route("/api/ui/services/{name}", get(services::service))
        .route("/api/ui/prom/{endpoint}", get(prometheus_proxy))
        .layer(CompressionLayer::new().gzip(true))
        .with_state(state)
}

/// Samples the service-graph counters and the span metrics every ten seconds until `stop`, so
/// the graph and services pages can show rates over the last minutes from their first load.
pub async fn sample_service_graph(
    state: Arc<UiState>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let Some(generator) = state.generator.clone() else {
        // The app stops when any of its tasks ends: wait for shutdown like the others.
        stop.cancelled().await;
        return Ok(());
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let generator = Arc::clone(&generator);
        let sampled = tokio::task::spawn_blocking(move || {
            let tenants = generator.tenants().names();
            let samples: Vec<(String, samples::Sample, samples::SpanSample)> = tenants
                .iter()
                .map(|tenant| {
                    (
                        tenant.clone(),
                        samples::Sample::take(&generator, tenant),
                        samples::SpanSample::take(&generator, tenant, None),
                    )
                })
                .collect();
            (tenants, samples)
        })
        .await;
        if let Ok((tenants, samples)) = sampled {
            state.graph_history.retain(&tenants);
            state.span_history.retain(&tenants);
            for (tenant, graph_sample, span_sample) in samples {
                state.graph_history.push(&tenant, graph_sample);
                state.span_history.push(&tenant, span_sample);
            }
        }
    }
}

/// Fields every page shell has.
struct Shell {
    /// The nav entry shown as current.
    nav: &'static str,
    /// `/static/app.css?v=<hash>`: cacheable forever, changes with the content.
    css: String,
    /// The page's module, versioned the same way.
    script: String,
    /// Whether the service pages read Prometheus.
    prometheus: bool,
    /// Grafana base URL for Explore links (empty: none) and its Tempo datasource UID.
    grafana_url: String,
    grafana_datasource_uid: String,
}

fn shell(state: &UiState, nav: &'static str, module: &str) -> Shell {
    Shell {
        nav,
        css: versioned("app.css"),
        script: versioned(module),
        prometheus: !state.prometheus_url.is_empty(),
        grafana_url: state.grafana_url.clone(),
        grafana_datasource_uid: state.grafana_datasource_uid.clone(),
    }
}

/// `/static/<file>?v=<first 12 hex of its sha256>`.
fn versioned(file: &str) -> String {
    match Assets::get(file) {
        Some(asset) => format!(
            "/static/{file}?v={}",
            &hex::encode(asset.metadata.sha256_hash())[..12]
        ),
        None => format!("/static/{file}"),
    }
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    shell: Shell,
    title: String,
    query: String,
    start: String,
    end: String,
}

#[derive(Template)]
#[template(path = "trace.html")]
struct TracePage {
    shell: Shell,
    title: String,
    trace_id: String,
}

#[derive(Template)]
#[template(path = "services.html")]
struct ServicesPage {
    shell: Shell,
    title: String,
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    shell: Shell,
    title: String,
    service: String,
}

#[derive(Template)]
#[template(path = "graph.html")]
struct GraphPage {
    shell: Shell,
    title: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    shell: Shell,
    title: String,
    fingerprint: String,
}

fn html(page: impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, "rendering a UI page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering the page failed: {error}"),
            )
                .into_response()
        }
    }
}

async fn search_page(
    State(state): State<Arc<UiState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let value = |key: &str| query.get(key).cloned().unwrap_or_default();
    html(SearchPage {
        shell: shell(&state, "search", "search.js"),
        title: "Search".into(),
        query: value("q"),
        start: value("start"),
        end: value("end"),
    })
}

async fn trace_page(State(state): State<Arc<UiState>>, Path(id): Path<String>) -> Response {
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return (
            StatusCode::BAD_REQUEST,
            format!("trace id {id:?} is not 1 to 32 hex digits"),
        )
            .into_response();
    }
    html(TracePage {
        shell: shell(&state, "search", "trace.js"),
        title: format!("Trace {id}"),
        trace_id: id.to_ascii_lowercase(),
    })
}

async fn services_page(State(state): State<Arc<UiState>>) -> Response {
    html(ServicesPage {
        shell: shell(&state, "services", "services.js"),
        title: "Services".into(),
    })
}

async fn service_page(State(state): State<Arc<UiState>>, Path(name): Path<String>) -> Response {
    html(ServicePage {
        shell: shell(&state, "services", "service.js"),
        title: format!("Service {name}"),
        service: name,
    })
}

async fn graph_page(State(state): State<Arc<UiState>>) -> Response {
    html(GraphPage {
        shell: shell(&state, "graph", "graph.js"),
        title: "Service graph".into(),
    })
}

async fn alerts_page(State(state): State<Arc<UiState>>) -> Response {
    html(AlertsPage {
        shell: shell(&state, "alerts", "alerts.js"),
        title: "Alerts".into(),
        fingerprint: String::new(),
    })
}

async fn alert_page(
    State(state): State<Arc<UiState>>,
    Path(fingerprint): Path<String>,
) -> Response {
    html(AlertsPage {
        shell: shell(&state, "alerts", "alerts.js"),
        title: format!("Alert {fingerprint}"),
        fingerprint,
    })
}

/// A static file with its content type and an ETag from its hash. Versioned URLs (`?v=`) are
/// cached for a year; plain ones (module imports) are revalidated with the ETag.
async fn static_file(
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = Assets::get(&path) else {
        return (StatusCode::NOT_FOUND, format!("no static file {path:?}\n")).into_response();
    };
    let etag = format!("\"{}\"", &hex::encode(asset.metadata.sha256_hash())[..16]);
    let cache_control = if query.is_some_and(|query| query.starts_with("v=")) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(&path))],
            asset.data.into_owned(),
        )
            .into_response()
    };
    let response_headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "html" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Largest Prometheus answer the proxy relays, bytes: it is buffered whole, so one is bounded
/// (Prometheus bounds points per series, not the number of series).
pub const MAX_PROXY_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Reads an answer's body up to [`MAX_PROXY_ANSWER_BYTES`]; `Err` names what failed.
async fn bounded_body(mut answer: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|error| format!("reading Prometheus' answer failed: {error}"))?
    {
        if body.len() + chunk.len() > MAX_PROXY_ANSWER_BYTES {
            return Err(format!(
                "Prometheus' answer exceeds {MAX_PROXY_ANSWER_BYTES} bytes: narrow the query"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `/api/ui/prom/{query_range|query|query_exemplars|series|label}`: forwards the query string
/// to the configured Prometheus so the browser stays same-origin.
async fn prometheus_proxy(
    State(state): State<Arc<UiState>>,
    Path(endpoint): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if state.prometheus_url.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            "prometheus.url is not set: the UI charts vivace's own TraceQL metrics\n",
        )
            .into_response();
    }
    if !matches!(
        endpoint.as_str(),
        "query_range" | "query" | "query_exemplars" | "series" | "labels"
    ) {
        return (
            StatusCode::BAD_REQUEST,
            format!("unknown Prometheus endpoint {endpoint:?}: query_range, query, query_exemplars, series or labels\n"),
        )
            .into_response();
    }
    let mut url = format!("{}/api/v1/{endpoint}", state.prometheus_url);
    if let Some(query) = query {
        url.push('?');
        url.push_str(&query);
    }
    match state.client.get(&url).send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            match bounded_body(answer).await {
                Ok(body) => {
                    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
                Err(error) => (StatusCode::BAD_GATEWAY, format!("{error}\n")).into_response(),
            }
        }
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            format!(
                "Prometheus at {} did not answer: {error}\n",
                state.prometheus_url
            ),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_module_and_the_stylesheet_are_embedded() {
        for file in [
            "app.css",
            "common.js",
            "search.js",
            "trace.js",
            "services.js",
            "service.js",
            "graph.js",
            "alerts.js",
        ] {
            assert!(Assets::get(file).is_some(), "{file} is not embedded");
            assert!(versioned(file).contains("?v="), "{file} has no version");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
