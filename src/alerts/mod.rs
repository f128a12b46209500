//! Alert-to-trace links: Alertmanager posts its webhook (payload version 4) to
//! `POST /api/alerts/webhook`; each alert is stored (bounded, persisted in one JSON file) and
//! resolved in the background to the traces behind it: the exemplars of its series in the
//! team's Prometheus, and the erroring and slowest traces of its service in its time window.

pub mod config;
pub mod resolve;
pub mod store;
pub mod webhook;

pub use config::AlertsConfig;
pub use resolve::Resolver;
pub use store::{AlertStore, AlertTrace, StoreError, StoredAlert};
pub use webhook::{decode_webhook, WebhookAlert, WebhookError, WebhookPayload};

/// The alerts role as the API and `/metrics` see it.
pub struct Alerts {
    pub store: std::sync::Arc<AlertStore>,
    pub resolver: std::sync::Arc<Resolver>,
    pub external_url: String,
    notifications: std::sync::atomic::AtomicU64,
}

impl Alerts {
    /// Opens the alerts file and starts the resolution worker.
    pub fn start(
        config: &AlertsConfig,
        prometheus_url: &str,
        querier: std::sync::Arc<crate::querier::Querier>,
    ) -> Result<Alerts, StoreError> {
        let store = std::sync::Arc::new(AlertStore::open(&config.path, config.max_alerts)?);
        let resolver = Resolver::start(
            querier,
            std::sync::Arc::clone(&store),
            config.clone(),
            prometheus_url.to_string(),
        );
        Ok(Alerts {
            store,
            resolver,
            external_url: config.external_url.trim_end_matches('/').to_string(),
            notifications: Default::default(),
        })
    }

    /// Records one webhook notification: stores its alerts, writes the file, and queues the
    /// alerts whose traces need looking for. Returns how many alerts it carried.
    pub async fn receive(
        &self,
        tenant: &str,
        payload: &WebhookPayload,
    ) -> Result<usize, StoreError> {
        use std::sync::atomic::Ordering;
        self.notifications.fetch_add(1, Ordering::Relaxed);
        let mut to_resolve = Vec::new();
        for alert in &payload.alerts {
            if self.store.upsert(tenant, alert) {
                to_resolve.push(alert.fingerprint.clone());
            }
        }
        self.store.persist().await?;
        for fingerprint in to_resolve {
            self.resolver.enqueue(tenant.to_string(), fingerprint);
        }
        Ok(payload.alerts.len())
    }

    /// The link to an alert's page in vivace's UI.
    pub fn alert_url(&self, fingerprint: &str) -> String {
        format!("{}/alerts/{fingerprint}", self.external_url)
    }

    /// `vivace_alerts_*` lines for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        use std::sync::atomic::Ordering;
        let stats = &self.resolver.stats;
        let stored = self.store.len();
        let counters = [
            (
                crate::telemetry::names::ALERTS_NOTIFICATIONS,
                "Alertmanager webhook notifications received.",
                self.notifications.load(Ordering::Relaxed),
            ),
            (
                crate::telemetry::names::ALERTS_RESOLVED,
                "Alerts resolved to traces.",
                stats.resolved.load(Ordering::Relaxed),
            ),
            (
                crate::telemetry::names::ALERTS_RESOLVE_QUEUE_FULL,
                "Alerts not queued for resolution because the queue was full.",
                stats.queue_full.load(Ordering::Relaxed),
            ),
            (
                crate::telemetry::names::ALERTS_PROMETHEUS_ERRORS,
                "Failed exemplar reads from prometheus.url.",
                stats.prometheus_errors.load(Ordering::Relaxed),
            ),
            (
                crate::telemetry::names::ALERTS_SEARCH_ERRORS,
                "Failed trace searches while resolving alerts.",
                stats.search_errors.load(Ordering::Relaxed),
            ),
        ];
        let _ = writeln!(
            out,
            "# HELP vivace_alerts_stored Alerts kept (firing and resolved).\n# TYPE vivace_alerts_stored gauge\nvivace_alerts_stored {stored}"
        );
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
    }
}
