//! What the UI's handlers share: [`UiState`], with the histories of generator samples the
//! graph and services pages compute rates from. The pages read it from here, and it reads
//! only the sample types below it, so no page and the UI's root import each other.

use std::sync::Arc;
use std::time::Duration;

use super::history::now_ms;
use super::samples::{ServiceGraphHistory, SpanHistory};

/// What the UI's handlers share.
pub struct UiState {
    /// The metrics-generator whose service-graph series the graph page draws.
    pub generator: Option<Arc<crate::generator::Generator>>,
    /// `prometheus.url`; empty: the service pages use vivace's own TraceQL metrics.
    pub prometheus_url: String,
    /// `ui.grafana_url` and `ui.grafana_datasource_uid`: where "open in Grafana" links go.
    pub grafana_url: String,
    pub grafana_datasource_uid: String,
    /// Samples of the service-graph counters, for rates over a window.
    pub graph_history: ServiceGraphHistory,
    /// Samples of the span metrics the services pages read, likewise.
    pub span_history: SpanHistory,
    /// When this vivace started (ms since the epoch): the generator counts from here, so a
    /// rate over data newer than every sample is over the time since.
    pub started_ms: i64,
    /// With multi-tenancy on, the graph endpoint serves the series of the tenant named by
    /// `X-Scope-OrgID` (401 without it).
    pub multitenancy_enabled: bool,
    /// The client the Prometheus proxy forwards with.
    pub(super) client: reqwest::Client,
}

impl UiState {
    /// The state for `config`, with empty histories.
    pub fn new(
        generator: Option<Arc<crate::generator::Generator>>,
        config: &crate::config::Config,
    ) -> Arc<UiState> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Arc::new(UiState {
            generator,
            prometheus_url: config.prometheus.url.trim_end_matches('/').to_string(),
            grafana_url: config.ui.grafana_url.trim_end_matches('/').to_string(),
            grafana_datasource_uid: config.ui.grafana_datasource_uid.clone(),
            graph_history: ServiceGraphHistory::default(),
            span_history: SpanHistory::default(),
            started_ms: now_ms(),
            multitenancy_enabled: config.multitenancy_enabled,
            client,
        })
    }
}
