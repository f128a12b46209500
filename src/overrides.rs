//! Per-tenant limits (Tempo's `overrides`): ingestion rate and burst, largest trace, longest
//! attribute, longest search range. One tenant's flood or giant trace cannot starve the others.
//! `overrides.defaults` applies to every tenant; `overrides.per_tenant.<id>` replaces single
//! keys for one tenant. `overrides.per_tenant.<id>.metrics_generator.max_active_series` bounds
//! one tenant's generated series (the default is `metrics_generator.registry.max_active_series`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The `overrides` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverridesConfig {
    /// Limits of every tenant without its own entry (and of `single-tenant`).
    pub defaults: TenantLimits,
    /// Limits of named tenants; each key given replaces the default for that tenant only.
    pub per_tenant: BTreeMap<String, TenantOverrides>,
}

/// Every limit of one tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Write-path limits.
    pub ingestion: IngestionLimits,
    /// Read-path limits.
    pub read: ReadLimits,
}

/// Write-path limits of one tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestionLimits {
    /// Sustained ingest rate in bytes per second (token bucket refill); 0 means unlimited.
    /// Past it pushes get 429 / RESOURCE_EXHAUSTED with `RATE_LIMITED`, as in Tempo.
    pub rate_limit_bytes: u64,
    /// Bytes a tenant may send at once above the rate (bucket size); a single request larger
    /// than this is always refused.
    pub burst_size_bytes: u64,
    /// Largest trace, in bytes, counted over every push while it gathers in the ingester
    /// (until cut); a push passing it has that trace's spans refused (partial success,
    /// `TRACE_TOO_LARGE`) while the other traces of the request are stored. 0 means unlimited.
    pub max_bytes_per_trace: u64,
    /// Attribute keys and string values longer than this many bytes are truncated (at a
    /// character boundary) before they are stored, as Tempo does. 0 means unlimited.
    pub max_attribute_bytes: usize,
}

impl Default for IngestionLimits {
    fn default() -> Self {
        IngestionLimits {
            rate_limit_bytes: 15_000_000,
            burst_size_bytes: 20_000_000,
            max_bytes_per_trace: 5_000_000,
            max_attribute_bytes: 2048,
        }
    }
}

/// Read-path limits of one tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadLimits {
    /// Longest `start`..`end` range of a search or tag lookup; longer ones get 400.
    /// 0s means the global limit of 168h.
    #[serde(with = "humantime_serde")]
    pub max_search_duration: Duration,
}

/// One tenant's replacements of single default limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantOverrides {
    /// Write-path limits given for this tenant.
    pub ingestion: IngestionOverrides,
    /// Read-path limits given for this tenant.
    pub read: ReadOverrides,
    /// Metrics-generator limits given for this tenant.
    pub metrics_generator: GeneratorOverrides,
}

/// Metrics-generator limits given for one tenant; absent keys keep
/// `metrics_generator.registry`'s.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorOverrides {
    /// Most generated series this tenant keeps at once (each histogram bucket, `_sum` and
    /// `_count` counts as one); beyond it its new label sets fold into its own
    /// `metric_overflow="true"` series. 0 means no limit. Default:
    /// `metrics_generator.registry.max_active_series`, which applies to each tenant apart.
    pub max_active_series: Option<usize>,
}

/// Write-path limits given for one tenant; absent keys keep the default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestionOverrides {
    /// See `IngestionLimits::rate_limit_bytes`.
    pub rate_limit_bytes: Option<u64>,
    /// See `IngestionLimits::burst_size_bytes`.
    pub burst_size_bytes: Option<u64>,
    /// See `IngestionLimits::max_bytes_per_trace`.
    pub max_bytes_per_trace: Option<u64>,
    /// See `IngestionLimits::max_attribute_bytes`.
    pub max_attribute_bytes: Option<usize>,
}

/// Read-path limits given for one tenant; absent keys keep the default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadOverrides {
    /// See `ReadLimits::max_search_duration`.
    #[serde(with = "humantime_serde")]
    pub max_search_duration: Option<Duration>,
}

impl OverridesConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        for tenant in self.per_tenant.keys() {
            crate::tenant::validate_tenant(tenant)
                .map_err(|reason| (format!("per_tenant.{tenant}"), reason))?;
        }
        let check = |name: &str, limits: &IngestionLimits| {
            if limits.rate_limit_bytes > 0 && limits.burst_size_bytes == 0 {
                return Err((
                    format!("{name}.ingestion.burst_size_bytes"),
                    "must be positive when rate_limit_bytes is set".to_string(),
                ));
            }
            Ok(())
        };
        check("defaults", &self.defaults.ingestion)?;
        for tenant in self.per_tenant.keys() {
            check(
                &format!("per_tenant.{tenant}"),
                &self.limits(tenant).ingestion,
            )?;
        }
        Ok(())
    }

    /// `tenant`'s own generated-series limit, if `per_tenant` gives one.
    pub fn generator_max_active_series(&self, tenant: &str) -> Option<usize> {
        self.per_tenant
            .get(tenant)
            .and_then(|given| given.metrics_generator.max_active_series)
    }

    /// The effective limits of `tenant`.
    pub fn limits(&self, tenant: &str) -> TenantLimits {
        let mut limits = self.defaults.clone();
        if let Some(given) = self.per_tenant.get(tenant) {
            let ingestion = &mut limits.ingestion;
            let from = &given.ingestion;
            ingestion.rate_limit_bytes =
                from.rate_limit_bytes.unwrap_or(ingestion.rate_limit_bytes);
            ingestion.burst_size_bytes =
                from.burst_size_bytes.unwrap_or(ingestion.burst_size_bytes);
            ingestion.max_bytes_per_trace = from
                .max_bytes_per_trace
                .unwrap_or(ingestion.max_bytes_per_trace);
            ingestion.max_attribute_bytes = from
                .max_attribute_bytes
                .unwrap_or(ingestion.max_attribute_bytes);
            if let Some(duration) = given.read.max_search_duration {
                limits.read.max_search_duration = duration;
            }
        }
        limits
    }
}

/// A token bucket of bytes: refills at `rate` per second up to `burst`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The ingestion rate limiters of every tenant seen (Tempo's "local" strategy: one process).
#[derive(Debug, Default)]
pub struct RateLimiters {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiters {
    /// Takes `bytes` from `tenant`'s bucket, or says why not (Tempo's `RATE_LIMITED` text).
    pub fn take(&self, tenant: &str, limits: &IngestionLimits, bytes: u64) -> Result<(), String> {
        if limits.rate_limit_bytes == 0 {
            return Ok(());
        }
        let refused = || {
            format!(
                "RATE_LIMITED: ingestion rate limit ({} bytes) exceeded while adding {bytes} bytes for user {tenant}",
                limits.rate_limit_bytes
            )
        };
        if bytes > limits.burst_size_bytes {
            return Err(refused());
        }
        let now = Instant::now();
        let burst = limits.burst_size_bytes as f64;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(tenant.to_string()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let refill =
            now.duration_since(bucket.updated).as_secs_f64() * limits.rate_limit_bytes as f64;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.updated = now;
        if bucket.tokens < bytes as f64 {
            return Err(refused());
        }
        bucket.tokens -= bytes as f64;
        Ok(())
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary; true when it was cut.
pub fn truncate_utf8(text: &mut String, max: usize) -> bool {
    if max == 0 || text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tenant_keys_replace_single_defaults() {
        let config: OverridesConfig = serde_yaml::from_str(
            "defaults:\n  ingestion:\n    rate_limit_bytes: 100\n    burst_size_bytes: 200\n\
per_tenant:\n  big:\n    ingestion:\n      rate_limit_bytes: 1000\n    read:\n      max_search_duration: 1h\n",
        )
        .unwrap();
        config.validate().unwrap();
        let big = config.limits("big");
        assert_eq!(big.ingestion.rate_limit_bytes, 1000);
        assert_eq!(big.ingestion.burst_size_bytes, 200);
        assert_eq!(big.ingestion.max_attribute_bytes, 2048);
        assert_eq!(big.read.max_search_duration, Duration::from_secs(3600));
        let other = config.limits("other");
        assert_eq!(other.ingestion.rate_limit_bytes, 100);
        assert_eq!(other.read.max_search_duration, Duration::ZERO);
        let bad: OverridesConfig = serde_yaml::from_str(
            "per_tenant:\n  ../x:\n    ingestion:\n      burst_size_bytes: 1\n",
        )
        .unwrap();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn bucket_allows_burst_then_refuses_per_tenant() {
        let limiters = RateLimiters::default();
        let limits = IngestionLimits {
            rate_limit_bytes: 1,
            burst_size_bytes: 1000,
            ..IngestionLimits::default()
        };
        assert!(limiters.take("a", &limits, 600).is_ok());
        let refused = limiters.take("a", &limits, 600).unwrap_err();
        assert!(refused.starts_with("RATE_LIMITED: ingestion rate limit (1 bytes) exceeded while adding 600 bytes for user a"), "{refused}");
        assert!(
            limiters.take("b", &limits, 600).is_ok(),
            "tenants have their own buckets"
        );
        assert!(
            limiters.take("b", &limits, 1001).is_err(),
            "larger than the burst"
        );
        let unlimited = IngestionLimits {
            rate_limit_bytes: 0,
            ..limits
        };
        assert!(limiters.take("a", &unlimited, 1 << 40).is_ok());
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let mut text = "héllo".to_string();
        assert!(truncate_utf8(&mut text, 2));
        assert_eq!(text, "h");
        let mut short = "ok".to_string();
        assert!(!truncate_utf8(&mut short, 2));
        assert!(!truncate_utf8(&mut short, 0));
    }
}
