//! Alert-to-trace links: Alertmanager posts its webhook (payload version 4) to
//! `POST /api/alerts/webhook`; each alert is stored (bounded, persisted in one JSON file) and
//! resolved in the background to the traces behind it: the exemplars of its series in the
//! team's Prometheus, and the erroring and slowest traces of its service in its time window.

pub mod resolve;
pub mod store;
pub mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use resolve::Resolver;
pub use store::{AlertStore, AlertTrace, StoreError, StoredAlert};
pub use webhook::{decode_webhook, WebhookAlert, WebhookError, WebhookPayload};

/// The `alerts` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// File the received alerts are kept in (rewritten atomically on every change, read at
    /// start).
    pub path: PathBuf,
    /// Alerts kept; past it the oldest resolved alert is dropped first, then the oldest firing.
    pub max_alerts: usize,
    /// Traces linked to each alert (exemplars first, then erroring, then slowest).
    pub traces_per_alert: usize,
    /// How far before an alert's `startsAt` its traces are looked for (the rule's `for` and
    /// rate window mean the cause started earlier).
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// Alerts waiting for resolution at once; past it an alert is stored without traces and
    /// resolved again on its next notification.
    pub resolve_queue: usize,
    /// Base URL users reach vivace at (e.g. `https://vivace.example.com`), used for each
    /// alert's `url` in `/api/alerts`. Empty: `url` is a path relative to vivace.
    pub external_url: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            path: PathBuf::from("./data/alerts.json"),
            max_alerts: 1000,
            traces_per_alert: 10,
            lookback: Duration::from_secs(300),
            resolve_queue: 256,
            external_url: String::new(),
        }
    }
}

impl AlertsConfig {
    /// Checks limits that would make the feature useless or unbounded.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_alerts == 0 {
            return Err(("max_alerts", "must be at least 1".into()));
        }
        if self.traces_per_alert == 0 || self.traces_per_alert > 100 {
            return Err(("traces_per_alert", "must be between 1 and 100".into()));
        }
        if self.resolve_queue == 0 {
            return Err(("resolve_queue", "must be at least 1".into()));
        }
        let url = &self.external_url;
        let absolute = url.starts_with("http://") || url.starts_with("https://");
        if !url.is_empty() && !absolute {
            return Err((
                "external_url",
                format!(
                    "{:?} must start with http:// or https://",
                    self.external_url
                ),
            ));
        }
        Ok(())
    }
}

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
                "vivace_alerts_notifications_total",
                "Alertmanager webhook notifications received.",
                self.notifications.load(Ordering::Relaxed),
            ),
            (
                "vivace_alerts_resolved_total",
                "Alerts resolved to traces.",
                stats.resolved.load(Ordering::Relaxed),
            ),
            (
                "vivace_alerts_resolve_queue_full_total",
                "Alerts not queued for resolution because the queue was full.",
                stats.queue_full.load(Ordering::Relaxed),
            ),
            (
                "vivace_alerts_prometheus_errors_total",
                "Failed exemplar reads from prometheus.url.",
                stats.prometheus_errors.load(Ordering::Relaxed),
            ),
            (
                "vivace_alerts_search_errors_total",
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
