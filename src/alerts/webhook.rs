//! Decoding Alertmanager's webhook payload (version 4): typed, with errors that name the field
//! at fault, so a misconfigured sender gets a 400 it can act on.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The body Alertmanager's `webhook_configs` receiver posts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager ≥ 0.19 sends it; computed from the labels when absent.
    #[serde(default)]
    pub fingerprint: String,
}

/// Largest webhook body accepted, bytes; larger ones get 413 before they are buffered.
/// Alertmanager sends every alert of a group in one notification, each well under 4 KiB.
pub const MAX_WEBHOOK_BYTES: usize = 4 * 1024 * 1024;
/// Most alerts one notification may carry (Alertmanager's `max_alerts` is unlimited by
/// default): each is stored and looked up in the traces, so the count is bounded here.
pub const MAX_WEBHOOK_ALERTS: usize = 1000;

/// A payload that cannot be accepted, naming the field at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WebhookError {
    #[error("invalid webhook payload at `{path}`: {reason}")]
    Json { path: String, reason: String },
    #[error(
        "unsupported webhook payload version {0:?}: vivace reads Alertmanager's version \"4\""
    )]
    Version(String),
    #[error("invalid `{field}`: {reason}")]
    Field { field: String, reason: String },
    #[error("invalid `alerts`: {0} alerts in one notification, at most {MAX_WEBHOOK_ALERTS}; set max_alerts in Alertmanager's webhook_configs")]
    TooManyAlerts(usize),
}

/// Alertmanager's "zero" time, sent as `endsAt` of a firing alert.
const ZERO_TIME_PREFIX: &str = "0001-01-01";

/// Decodes and checks a webhook body. Times are checked here so the store never holds an
/// alert whose window cannot be computed.
pub fn decode_webhook(body: &[u8]) -> Result<WebhookPayload, WebhookError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let mut payload: WebhookPayload =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            WebhookError::Json {
                path: error.path().to_string(),
                reason: error.inner().to_string(),
            }
        })?;
    if let Some(version) = &payload.version {
        if version != "4" {
            return Err(WebhookError::Version(version.clone()));
        }
    }
    check_status("status", &payload.status)?;
    if payload.alerts.len() > MAX_WEBHOOK_ALERTS {
        return Err(WebhookError::TooManyAlerts(payload.alerts.len()));
    }
    for (index, alert) in payload.alerts.iter_mut().enumerate() {
        check_status(&format!("alerts[{index}].status"), &alert.status)?;
        if alert.labels.is_empty() {
            return Err(WebhookError::Field {
                field: format!("alerts[{index}].labels"),
                reason: "an alert needs at least one label".into(),
            });
        }
        parse_time(&alert.starts_at).map_err(|reason| WebhookError::Field {
            field: format!("alerts[{index}].startsAt"),
            reason,
        })?;
        if !alert.ends_at.is_empty() {
            parse_time(&alert.ends_at).map_err(|reason| WebhookError::Field {
                field: format!("alerts[{index}].endsAt"),
                reason,
            })?;
        }
        if alert.fingerprint.is_empty() {
            alert.fingerprint = fingerprint(&alert.labels);
        } else if alert.fingerprint.len() > 32
            || !alert.fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(WebhookError::Field {
                field: format!("alerts[{index}].fingerprint"),
                reason: format!("{:?} is not a hex fingerprint", alert.fingerprint),
            });
        } else {
            alert.fingerprint = alert.fingerprint.to_ascii_lowercase();
        }
    }
    Ok(payload)
}

fn check_status(field: &str, status: &str) -> Result<(), WebhookError> {
    match status {
        "firing" | "resolved" => Ok(()),
        other => Err(WebhookError::Field {
            field: field.to_string(),
            reason: format!("{other:?} is neither \"firing\" nor \"resolved\""),
        }),
    }
}

/// Parses an RFC 3339 time; Alertmanager's zero time (`0001-01-01T00:00:00Z`) is `None`.
pub fn parse_time(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.starts_with(ZERO_TIME_PREFIX) {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|time| Some(time.with_timezone(&Utc)))
        .map_err(|error| format!("{text:?} is not an RFC 3339 time: {error}"))
}

/// Prometheus' label-set fingerprint (FNV-1a 64 over sorted names and values, each followed
/// by the byte 0xff), as Alertmanager computes an alert's `fingerprint`.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two notifications Alertmanager 0.25 sent (firing, then resolved), captured in the lab.
    fn captured() -> Vec<serde_json::Value> {
        include_str!("testdata/webhook_payloads_captured.jsonl")
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["body"].clone())
            .collect()
    }

    #[test]
    fn decodes_captured_alertmanager_payloads() {
        let bodies = captured();
        assert_eq!(bodies.len(), 2);
        let firing = decode_webhook(bodies[0].to_string().as_bytes()).unwrap();
        assert_eq!(firing.status, "firing");
        assert_eq!(firing.alerts.len(), 1);
        let alert = &firing.alerts[0];
        assert_eq!(alert.fingerprint, "e0dd9954c6bb033a");
        assert_eq!(alert.labels["service"], "checkout");
        assert_eq!(parse_time(&alert.ends_at), Ok(None));
        assert!(parse_time(&alert.starts_at).unwrap().is_some());
        let resolved = decode_webhook(bodies[1].to_string().as_bytes()).unwrap();
        assert_eq!(resolved.alerts[0].status, "resolved");
        assert!(parse_time(&resolved.alerts[0].ends_at).unwrap().is_some());
    }

    #[test]
    fn fingerprint_matches_alertmanager() {
        let body = &captured()[0];
        let labels: BTreeMap<String, String> =
            serde_json::from_value(body["alerts"][0]["labels"].clone()).unwrap();
        assert_eq!(fingerprint(&labels), "e0dd9954c6bb033a");
        let mut without = body.clone();
        without["alerts"][0]
            .as_object_mut()
            .unwrap()
            .remove("fingerprint");
        let decoded = decode_webhook(without.to_string().as_bytes()).unwrap();
        assert_eq!(decoded.alerts[0].fingerprint, "e0dd9954c6bb033a");
    }

    #[test]
    fn errors_name_the_field() {
        let body = &captured()[0];
        let mut bad_time = body.clone();
        bad_time["alerts"][0]["startsAt"] = "yesterday".into();
        let error = decode_webhook(bad_time.to_string().as_bytes()).unwrap_err();
        assert!(error.to_string().contains("alerts[0].startsAt"), "{error}");
        let mut bad_type = body.clone();
        bad_type["alerts"][0]["labels"] = serde_json::json!({"service": 3});
        let error = decode_webhook(bad_type.to_string().as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("alerts[0].labels.service"),
            "{error}"
        );
        let mut missing = body.clone();
        missing.as_object_mut().unwrap().remove("alerts");
        let error = decode_webhook(missing.to_string().as_bytes()).unwrap_err();
        assert!(error.to_string().contains("alerts"), "{error}");
        let mut status = body.clone();
        status["alerts"][0]["status"] = "pending".into();
        let error = decode_webhook(status.to_string().as_bytes()).unwrap_err();
        assert!(error.to_string().contains("alerts[0].status"), "{error}");
        let mut version = body.clone();
        version["version"] = "3".into();
        assert_eq!(
            decode_webhook(version.to_string().as_bytes()),
            Err(WebhookError::Version("3".into()))
        );
        assert!(decode_webhook(b"not json").is_err());
    }
}
