//! The distributor: resolves and validates the tenant, enforces request size and in-flight
//! limits (back-pressure instead of unbounded memory), splits requests by trace and hands them
//! to the ingester. A request is acknowledged only once the ingester has it in the WAL.

use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::generator::Generator;
use crate::ingester::{Ingester, PushError};
use crate::model::{split_by_trace, TraceId};
use crate::overrides::{truncate_utf8, OverridesConfig, RateLimiters};
use crate::receiver::ReceiversConfig;
use crate::telemetry::Telemetry;

/// Tenant used for everything when multi-tenancy is off (Tempo's `FakeTenantID`).
pub const SINGLE_TENANT: &str = "single-tenant";

/// Longest tenant ID accepted, as in Tempo.
const MAX_TENANT_LENGTH: usize = 150;

/// The `distributor` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributorConfig {
    /// Which receivers listen, and on which address.
    pub receivers: ReceiversConfig,
    /// Largest request accepted, in bytes, after decompression. Larger requests get
    /// 413 / RESOURCE_EXHAUSTED. The OpenTelemetry SDKs batch 512 spans by default, well under this.
    pub max_request_bytes: usize,
    /// Request bytes being decoded and written at once across all receivers. Past it,
    /// requests are refused with 429 / RESOURCE_EXHAUSTED so memory stays bounded; clients retry.
    pub max_inflight_bytes: usize,
}

impl Default for DistributorConfig {
    fn default() -> Self {
        DistributorConfig {
            receivers: ReceiversConfig::default(),
            max_request_bytes: 16 * 1024 * 1024,
            max_inflight_bytes: 256 * 1024 * 1024,
        }
    }
}

impl DistributorConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.max_request_bytes == 0 {
            return Err(("max_request_bytes".into(), "must be positive".into()));
        }
        if self.max_inflight_bytes < self.max_request_bytes {
            return Err((
                "max_inflight_bytes".into(),
                format!(
                    "must be at least max_request_bytes ({})",
                    self.max_request_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// Why a push was refused; each maps to one HTTP status and one gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum DistributorError {
    #[error("no org id")]
    MissingTenant,
    #[error("invalid tenant id {tenant:?}: {reason}")]
    InvalidTenant { tenant: String, reason: String },
    #[error("request of {size} bytes exceeds the limit of {limit} bytes (distributor.max_request_bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    BadRequest(String),
    /// Back-pressure or a tenant's rate limit: retry later (429 / RESOURCE_EXHAUSTED).
    #[error("{0}")]
    Overloaded(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What happened to the spans of an accepted request (OTLP partial success).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushOutcome {
    pub accepted_spans: u64,
    pub rejected_spans: u64,
    pub message: String,
}

/// Checks a tenant ID against Tempo's rules (dskit's `ValidTenantID`).
pub fn validate_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() {
        return Err("tenant ID is empty".into());
    }
    if tenant.len() > MAX_TENANT_LENGTH {
        return Err(format!(
            "tenant ID is too long: max {MAX_TENANT_LENGTH} characters"
        ));
    }
    if tenant == "." || tenant == ".." {
        return Err("tenant ID is '.' or '..'".into());
    }
    if let Some(bad) = tenant
        .chars()
        .find(|character| !(character.is_ascii_alphanumeric() || "!-_.*'()".contains(*character)))
    {
        return Err(format!("tenant ID contains unsupported character '{bad}'"));
    }
    Ok(())
}

/// Resolves the tenant of a request from its `X-Scope-OrgID` header / metadata value.
pub fn resolve_tenant(
    multitenancy_enabled: bool,
    header: Option<&str>,
) -> Result<String, DistributorError> {
    if !multitenancy_enabled {
        return Ok(SINGLE_TENANT.to_string());
    }
    let tenant = header
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(DistributorError::MissingTenant)?;
    validate_tenant(tenant).map_err(|reason| DistributorError::InvalidTenant {
        tenant: tenant.to_string(),
        reason,
    })?;
    Ok(tenant.to_string())
}

/// The write path's front door, shared by every receiver.
pub struct Distributor {
    config: DistributorConfig,
    multitenancy_enabled: bool,
    inflight_bytes: Semaphore,
    ingester: Arc<Ingester>,
    telemetry: Arc<Telemetry>,
    generator: Option<Arc<Generator>>,
    /// The log store logs receivers push into; `None` when `logs.enabled` is false.
    logs: Option<Arc<crate::logs::store::LogStore>>,
    overrides: Arc<OverridesConfig>,
    rate_limiters: RateLimiters,
}

/// Holds a request's share of the in-flight budget until it is acknowledged or refused.
pub struct InflightPermit<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Distributor {
    pub fn new(
        config: DistributorConfig,
        multitenancy_enabled: bool,
        ingester: Arc<Ingester>,
        telemetry: Arc<Telemetry>,
    ) -> Distributor {
        let budget = config.max_inflight_bytes.min(Semaphore::MAX_PERMITS);
        Distributor {
            inflight_bytes: Semaphore::new(budget),
            config,
            multitenancy_enabled,
            ingester,
            telemetry,
            generator: None,
            logs: None,
            overrides: Arc::new(OverridesConfig::default()),
            rate_limiters: RateLimiters::default(),
        }
    }

    /// Applies these per-tenant limits (rate, trace size, attribute length).
    pub fn with_overrides(mut self, overrides: Arc<OverridesConfig>) -> Distributor {
        self.overrides = overrides;
        self
    }

    /// Also hands every accepted request's spans to the metrics-generator.
    pub fn with_generator(mut self, generator: Arc<Generator>) -> Distributor {
        self.generator = Some(generator);
        self
    }

    /// Sends logs receivers' pushes to `logs`.
    pub fn with_logs(mut self, logs: Arc<crate::logs::store::LogStore>) -> Distributor {
        self.logs = Some(logs);
        self
    }

    /// The log store, if logs are enabled.
    pub fn logs(&self) -> Option<&Arc<crate::logs::store::LogStore>> {
        self.logs.as_ref()
    }

    pub fn max_request_bytes(&self) -> usize {
        self.config.max_request_bytes
    }

    pub fn tenant(&self, header: Option<&str>) -> Result<String, DistributorError> {
        resolve_tenant(self.multitenancy_enabled, header)
    }

    /// Reserves `bytes` of the in-flight budget before a body is decoded; refuses at once
    /// (429) rather than queueing when the budget is spent.
    pub fn admit(&self, bytes: usize) -> Result<InflightPermit<'_>, DistributorError> {
        if bytes > self.config.max_request_bytes {
            return Err(DistributorError::TooLarge {
                size: bytes,
                limit: self.config.max_request_bytes,
            });
        }
        let permits = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
        match self.inflight_bytes.try_acquire_many(permits) {
            Ok(permit) => Ok(InflightPermit { _permit: permit }),
            Err(_) => {
                self.telemetry.spans_refused("overloaded", 0);
                Err(DistributorError::Overloaded(format!(
                    "too many requests in flight: {} bytes already in flight (distributor.max_inflight_bytes)",
                    self.config.max_inflight_bytes
                )))
            }
        }
    }

    /// Splits the spans by trace and writes them through the ingester; returns once they are
    /// in the WAL. Spans with invalid trace IDs are refused individually (partial success).
    pub async fn push(
        &self,
        tenant: &str,
        mut resource_spans: Vec<ResourceSpans>,
    ) -> Result<PushOutcome, DistributorError> {
        let limits = self.overrides.limits(tenant).ingestion;
        let truncated = truncate_attributes(&mut resource_spans, limits.max_attribute_bytes);
        if truncated > 0 {
            self.telemetry.attributes_truncated(tenant, truncated);
        }
        let bytes: u64 = resource_spans
            .iter()
            .map(|batch| prost::Message::encoded_len(batch) as u64)
            .sum();
        if let Err(message) = self.rate_limiters.take(tenant, &limits, bytes) {
            self.telemetry
                .spans_refused("rate_limited", count_spans(&resource_spans));
            return Err(DistributorError::Overloaded(message));
        }
        // The generator gets its own copy, taken only when its queue has room, and only after
        // the WAL accepted the request; it never slows or fails the write.
        let for_generator = self.generator.as_deref().and_then(|generator| {
            let spans = resource_spans
                .iter()
                .flat_map(|batch| &batch.scope_spans)
                .map(|scope| scope.spans.len())
                .sum();
            generator
                .reserve(spans)
                .map(|reservation| (reservation, resource_spans.clone()))
        });
        let mut split = split_by_trace(resource_spans);
        if split.rejected_spans > 0 {
            self.telemetry
                .spans_refused("invalid_trace_id", split.rejected_spans);
        }
        if limits.max_bytes_per_trace > 0 {
            // The limit holds for a trace as it gathers over several pushes, as in Tempo.
            let trace_ids: Vec<TraceId> = split.traces.iter().map(|(id, _)| *id).collect();
            let mut gathered = self
                .ingester
                .gathering_bytes(tenant, &trace_ids)
                .into_iter();
            let mut too_large = 0;
            split.traces.retain(|(trace_id, trace)| {
                let size = prost::Message::encoded_len(trace) as u64;
                let already = gathered.next().unwrap_or(0);
                if already + size <= limits.max_bytes_per_trace {
                    return true;
                }
                too_large += count_spans(&trace.resource_spans);
                split.rejection.get_or_insert_with(|| format!(
                    "TRACE_TOO_LARGE: max size of trace ({}) exceeded while adding {size} bytes to trace {trace_id} for tenant {tenant}",
                    limits.max_bytes_per_trace
                ));
                false
            });
            if too_large > 0 {
                self.telemetry.spans_refused("trace_too_large", too_large);
                split.rejected_spans += too_large;
            }
        }
        let accepted_spans: u64 = split
            .traces
            .iter()
            .map(|(_, trace)| {
                trace
                    .resource_spans
                    .iter()
                    .flat_map(|batch| &batch.scope_spans)
                    .map(|scope| scope.spans.len() as u64)
                    .sum::<u64>()
            })
            .sum();
        if !split.traces.is_empty() {
            if let Err(error) = self.ingester.push(tenant, split.traces).await {
                let disk_full = matches!(&error, PushError::Wal(io) if is_disk_full(io));
                let reason = match &error {
                    _ if disk_full => "disk_full",
                    PushError::Overloaded { .. } => "overloaded",
                    PushError::TooLarge { .. } => "too_large",
                    PushError::ShuttingDown => "shutting_down",
                    _ => "internal",
                };
                self.telemetry.spans_refused(reason, accepted_spans);
                return Err(match error {
                    PushError::Overloaded { .. } => DistributorError::Overloaded(format!(
                        "too many requests in flight: {error}"
                    )),
                    PushError::TooLarge { bytes, limit, .. } => DistributorError::TooLarge {
                        size: usize::try_from(bytes).unwrap_or(usize::MAX),
                        limit: usize::try_from(limit).unwrap_or(usize::MAX),
                    },
                    PushError::ShuttingDown => DistributorError::Unavailable(error.to_string()),
                    // Retryable (503 / UNAVAILABLE): the write succeeds once space returns.
                    PushError::Wal(io) if disk_full => DistributorError::Unavailable(format!(
                        "disk full: the write-ahead log (ingester.wal_path) cannot be written: {io}; \
                         writes resume when space is freed, reads keep working"
                    )),
                    other => DistributorError::Internal(other.to_string()),
                });
            }
        }
        self.telemetry.spans_received(tenant, accepted_spans);
        if let Some((reservation, resource_spans)) = for_generator {
            reservation.send(tenant, resource_spans);
        }
        Ok(PushOutcome {
            accepted_spans,
            rejected_spans: split.rejected_spans,
            message: split.rejection.unwrap_or_default(),
        })
    }
}

/// No space (ENOSPC) or quota (EDQUOT) left on the volume.
fn is_disk_full(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::StorageFull
        || error.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(error.raw_os_error(), Some(28) | Some(122))
}

fn count_spans(resource_spans: &[ResourceSpans]) -> u64 {
    resource_spans
        .iter()
        .flat_map(|batch| &batch.scope_spans)
        .map(|scope| scope.spans.len() as u64)
        .sum()
}

/// Cuts attribute keys and string values longer than `max` bytes (0: no limit) in resources,
/// scopes, spans, events and links; returns how many were cut.
fn truncate_attributes(resource_spans: &mut [ResourceSpans], max: usize) -> u64 {
    use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
    if max == 0 {
        return 0;
    }
    let mut count = 0;
    let mut cut = |attributes: &mut Vec<KeyValue>| {
        for attribute in attributes {
            count += u64::from(truncate_utf8(&mut attribute.key, max));
            if let Some(any_value::Value::StringValue(text)) = attribute
                .value
                .as_mut()
                .and_then(|value| value.value.as_mut())
            {
                count += u64::from(truncate_utf8(text, max));
            }
        }
    };
    for batch in resource_spans {
        if let Some(resource) = &mut batch.resource {
            cut(&mut resource.attributes);
        }
        for scope_spans in &mut batch.scope_spans {
            if let Some(scope) = &mut scope_spans.scope {
                cut(&mut scope.attributes);
            }
            for span in &mut scope_spans.spans {
                cut(&mut span.attributes);
                for event in &mut span.events {
                    cut(&mut event.attributes);
                }
                for link in &mut span.links {
                    cut(&mut link.attributes);
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_follow_tempo_rules() {
        assert!(validate_tenant("team-a_1.prod").is_ok());
        assert!(validate_tenant("a/b").unwrap_err().contains("'/'"));
        assert!(validate_tenant("..").is_err());
        assert!(validate_tenant(&"x".repeat(151))
            .unwrap_err()
            .contains("too long"));
        assert!(validate_tenant("").is_err());
        assert_eq!(
            resolve_tenant(false, Some("../etc")).unwrap(),
            SINGLE_TENANT
        );
        assert!(matches!(
            resolve_tenant(true, None),
            Err(DistributorError::MissingTenant)
        ));
        assert!(matches!(
            resolve_tenant(true, Some("a\\b")),
            Err(DistributorError::InvalidTenant { .. })
        ));
        assert_eq!(resolve_tenant(true, Some("acme")).unwrap(), "acme");
    }
}
