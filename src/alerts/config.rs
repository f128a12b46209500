//! The `alerts` section of the configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
