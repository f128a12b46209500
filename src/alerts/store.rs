//! The alerts received, keyed by Alertmanager's fingerprint: bounded by count (the oldest
//! resolved alert goes first), persisted as one JSON file rewritten atomically (temp file,
//! fsync, rename) after every change and read back at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::webhook::WebhookAlert;

/// One trace behind an alert, as `/api/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertTrace {
    pub trace_id: String,
    /// `exemplar` (from the alerting series in Prometheus), `error` or `slow`.
    pub reason: String,
    #[serde(default)]
    pub root_service_name: String,
    #[serde(default)]
    pub root_trace_name: String,
    #[serde(default)]
    pub start_time_unix_nano: String,
    #[serde(default)]
    pub duration_ms: u64,
}

/// An alert as stored and as `/api/alerts` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAlert {
    pub fingerprint: String,
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// When vivace last received a notification for it (RFC 3339).
    pub received_at: String,
    /// Tenant whose traces it resolves to.
    pub tenant: String,
    pub traces: Vec<AlertTrace>,
    /// When its traces were last looked for (RFC 3339); empty while resolution is pending.
    #[serde(default)]
    pub resolved_at: String,
}

/// The alerts file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read alerts file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("alerts file {path} is not valid: {source}")]
    Decode {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot write alerts file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize, Default)]
struct FileContents {
    alerts: Vec<StoredAlert>,
}

/// Bounded, persisted alert store.
pub struct AlertStore {
    path: PathBuf,
    max_alerts: usize,
    alerts: Mutex<Vec<StoredAlert>>,
    /// Serialises file writes so an older snapshot never replaces a newer one.
    write_lock: tokio::sync::Mutex<()>,
}

/// Now as Alertmanager writes times.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl AlertStore {
    /// Opens the store, reading the file when it exists.
    pub fn open(path: &Path, max_alerts: usize) -> Result<AlertStore, StoreError> {
        let alerts = match std::fs::read(path) {
            Ok(bytes) => {
                let contents: FileContents =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::Decode {
                        path: path.display().to_string(),
                        source,
                    })?;
                contents.alerts
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(StoreError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let store = AlertStore {
            path: path.to_path_buf(),
            max_alerts,
            alerts: Mutex::new(alerts),
            write_lock: tokio::sync::Mutex::new(()),
        };
        store.evict();
        Ok(store)
    }

    /// Records a notification for one alert. Returns whether its traces should be (re)looked
    /// for: a new alert, a status change, or one never resolved.
    pub fn upsert(&self, tenant: &str, alert: &WebhookAlert) -> bool {
        let received_at = now_rfc3339();
        let mut alerts = self.alerts.lock();
        let position = alerts
            .iter()
            .position(|stored| stored.fingerprint == alert.fingerprint && stored.tenant == tenant);
        let needs_resolution = match position {
            Some(index) => {
                let stored = &mut alerts[index];
                let changed = stored.status != alert.status || stored.starts_at != alert.starts_at;
                stored.status = alert.status.clone();
                stored.labels = alert.labels.clone();
                stored.annotations = alert.annotations.clone();
                stored.starts_at = alert.starts_at.clone();
                stored.ends_at = alert.ends_at.clone();
                stored.generator_url = alert.generator_url.clone();
                stored.received_at = received_at;
                let stored = alerts.remove(index);
                let needs = changed || stored.resolved_at.is_empty() || stored.traces.is_empty();
                alerts.push(stored);
                needs
            }
            None => {
                alerts.push(StoredAlert {
                    fingerprint: alert.fingerprint.clone(),
                    status: alert.status.clone(),
                    labels: alert.labels.clone(),
                    annotations: alert.annotations.clone(),
                    starts_at: alert.starts_at.clone(),
                    ends_at: alert.ends_at.clone(),
                    generator_url: alert.generator_url.clone(),
                    received_at,
                    tenant: tenant.to_string(),
                    traces: Vec::new(),
                    resolved_at: String::new(),
                });
                true
            }
        };
        drop(alerts);
        self.evict();
        needs_resolution
    }

    /// Drops alerts past `max_alerts`: resolved ones first, oldest notification first.
    fn evict(&self) {
        let mut alerts = self.alerts.lock();
        while alerts.len() > self.max_alerts {
            // The vector is in order of last notification, oldest first.
            let victim = alerts
                .iter()
                .position(|alert| alert.status == "resolved")
                .unwrap_or(0);
            let dropped = alerts.remove(victim);
            tracing::debug!(fingerprint = %dropped.fingerprint, status = %dropped.status, "alert evicted");
        }
    }

    /// Stores the traces found for an alert (if it is still kept).
    pub fn set_traces(&self, tenant: &str, fingerprint: &str, traces: Vec<AlertTrace>) {
        let mut alerts = self.alerts.lock();
        if let Some(alert) = alerts
            .iter_mut()
            .find(|alert| alert.fingerprint == fingerprint && alert.tenant == tenant)
        {
            alert.traces = traces;
            alert.resolved_at = now_rfc3339();
        }
    }

    /// Alerts kept.
    pub fn len(&self) -> usize {
        self.alerts.lock().len()
    }

    /// Whether no alert is kept.
    pub fn is_empty(&self) -> bool {
        self.alerts.lock().is_empty()
    }

    /// One alert by fingerprint within `tenants`.
    pub fn get(&self, tenants: &[String], fingerprint: &str) -> Option<StoredAlert> {
        self.alerts
            .lock()
            .iter()
            .rev()
            .find(|alert| alert.fingerprint == fingerprint && tenants.contains(&alert.tenant))
            .cloned()
    }

    /// The most recently notified alert of `tenants` carrying every label of `labels`.
    pub fn find_by_labels(
        &self,
        tenants: &[String],
        labels: &BTreeMap<String, String>,
    ) -> Option<StoredAlert> {
        self.alerts
            .lock()
            .iter()
            .rev()
            .filter(|alert| tenants.contains(&alert.tenant))
            .find(|alert| {
                labels
                    .iter()
                    .all(|(name, value)| alert.labels.get(name) == Some(value))
            })
            .cloned()
    }

    /// Alerts of `tenants`, most recent notification first.
    pub fn list(&self, tenants: &[String]) -> Vec<StoredAlert> {
        self.alerts
            .lock()
            .iter()
            .rev()
            .filter(|alert| tenants.contains(&alert.tenant))
            .cloned()
            .collect()
    }

    /// Alerts whose traces were never looked for (e.g. the process stopped first).
    pub fn unresolved(&self) -> Vec<(String, String)> {
        self.alerts
            .lock()
            .iter()
            .filter(|alert| alert.resolved_at.is_empty())
            .map(|alert| (alert.tenant.clone(), alert.fingerprint.clone()))
            .collect()
    }

    /// Writes the current alerts to the file: a temporary file beside it, fsync, rename, so a
    /// crash leaves either the old or the new file, never a torn one.
    pub async fn persist(&self) -> Result<(), StoreError> {
        let _writing = self.write_lock.lock().await;
        let bytes = {
            let alerts = self.alerts.lock();
            serde_json::to_vec(&FileContents {
                alerts: alerts.clone(),
            })
            .map_err(|source| StoreError::Write {
                path: self.path.display().to_string(),
                source: std::io::Error::other(source),
            })?
        };
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|error| StoreError::Write {
                path: self.path.display().to_string(),
                source: std::io::Error::other(error.to_string()),
            })?
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let failed = |source: std::io::Error| StoreError::Write {
        path: path.display().to_string(),
        source,
    };
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory).map_err(failed)?;
    let mut temporary = tempfile::NamedTempFile::new_in(directory).map_err(failed)?;
    temporary.write_all(bytes).map_err(failed)?;
    temporary.as_file().sync_all().map_err(failed)?;
    temporary
        .persist(path)
        .map_err(|error| failed(error.error))?;
    if let Ok(directory) = std::fs::File::open(directory) {
        let _ = directory.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(fingerprint: &str, status: &str) -> WebhookAlert {
        WebhookAlert {
            status: status.into(),
            labels: [("alertname".to_string(), fingerprint.to_string())].into(),
            annotations: BTreeMap::new(),
            starts_at: "2026-11-22T04:00:00Z".into(),
            ends_at: "0001-01-01T00:00:00Z".into(),
            generator_url: String::new(),
            fingerprint: fingerprint.into(),
        }
    }

    fn tenants() -> Vec<String> {
        vec!["single-tenant".to_string()]
    }

    #[tokio::test]
    async fn persists_and_reloads() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("sub/alerts.json");
        let store = AlertStore::open(&path, 10).unwrap();
        assert!(store.upsert("single-tenant", &alert("aa", "firing")));
        store.set_traces(
            "single-tenant",
            "aa",
            vec![AlertTrace {
                trace_id: "0123".into(),
                reason: "error".into(),
                root_service_name: "checkout".into(),
                root_trace_name: "POST /pay".into(),
                start_time_unix_nano: "1".into(),
                duration_ms: 5,
            }],
        );
        store.persist().await.unwrap();
        let reopened = AlertStore::open(&path, 10).unwrap();
        assert_eq!(reopened.list(&tenants()), store.list(&tenants()));
        assert_eq!(reopened.get(&tenants(), "aa").unwrap().traces.len(), 1);
        assert!(reopened.unresolved().is_empty());
        assert!(reopened.get(&["other".to_string()], "aa").is_none());
        // A repeat notification of a resolved alert with traces does not resolve again.
        assert!(!reopened.upsert("single-tenant", &alert("aa", "firing")));
        assert!(reopened.upsert("single-tenant", &alert("aa", "resolved")));
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("alerts.json");
        std::fs::write(&path, b"{not json").unwrap();
        let error = AlertStore::open(&path, 10).err().unwrap();
        assert!(error.to_string().contains("alerts.json"), "{error}");
    }

    #[test]
    fn evicts_oldest_resolved_first() {
        let directory = tempfile::tempdir().unwrap();
        let store = AlertStore::open(&directory.path().join("alerts.json"), 3).unwrap();
        store.upsert("single-tenant", &alert("01", "firing"));
        store.upsert("single-tenant", &alert("02", "resolved"));
        store.upsert("single-tenant", &alert("03", "resolved"));
        store.upsert("single-tenant", &alert("04", "firing"));
        let kept: Vec<String> = store
            .list(&tenants())
            .into_iter()
            .map(|alert| alert.fingerprint)
            .collect();
        assert_eq!(kept, ["04", "03", "01"]);
        store.upsert("single-tenant", &alert("05", "firing"));
        store.upsert("single-tenant", &alert("06", "firing"));
        let kept: Vec<String> = store
            .list(&tenants())
            .into_iter()
            .map(|alert| alert.fingerprint)
            .collect();
        assert_eq!(kept, ["06", "05", "04"]);
    }
}
