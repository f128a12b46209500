//! The distributor: resolves and validates the tenant, enforces request size and in-flight
//! limits (back-pressure instead of unbounded memory), splits requests by trace and hands them
//! to the ingester. A request is acknowledged only once the ingester has it in the WAL.

use std::sync::Arc;

use axum::http::StatusCode;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tokio::sync::Semaphore;

use crate::generator::Generator;
use crate::ingester::{Ingester, PushError};
use crate::model::{split_by_trace, TraceId};
use crate::overrides::{truncate_utf8, OverridesConfig, RateLimiters};
use crate::telemetry::Telemetry;
use crate::tenant::TenantError;

/// The distributor's request limits (the `distributor` config section's own keys, documented
/// where that section is defined, `config::distributor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DistributorLimits {
    /// Largest request accepted, in bytes, after decompression.
    pub max_request_bytes: usize,
    /// Request bytes being decoded and written at once across all receivers.
    pub max_inflight_bytes: usize,
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

impl From<TenantError> for DistributorError {
    fn from(error: TenantError) -> Self {
        match error {
            TenantError::Missing => DistributorError::MissingTenant,
            TenantError::Invalid { tenant, reason } => {
                DistributorError::InvalidTenant { tenant, reason }
            }
            other => DistributorError::BadRequest(other.to_string()),
        }
    }
}

impl DistributorError {
    /// The HTTP status every receiver answers this refusal with.
    pub fn http_status(&self) -> StatusCode {
        match self {
            DistributorError::MissingTenant => StatusCode::UNAUTHORIZED,
            DistributorError::InvalidTenant { .. } | DistributorError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            DistributorError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            DistributorError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            DistributorError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            DistributorError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC code every receiver answers this refusal with.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            DistributorError::MissingTenant => tonic::Code::Unauthenticated,
            DistributorError::InvalidTenant { .. } | DistributorError::BadRequest(_) => {
                tonic::Code::InvalidArgument
            }
            DistributorError::TooLarge { .. } | DistributorError::Overloaded(_) => {
                tonic::Code::ResourceExhausted
            }
            DistributorError::Unavailable(_) => tonic::Code::Unavailable,
            DistributorError::Internal(_) => tonic::Code::Internal,
        }
    }

    /// The gRPC status: [`Self::grpc_code`] with the error's text.
    pub fn grpc_status(&self) -> tonic::Status {
        tonic::Status::new(self.grpc_code(), self.to_string())
    }
}

impl From<DistributorError> for tonic::Status {
    fn from(error: DistributorError) -> Self {
        error.grpc_status()
    }
}

/// The write path's front door, shared by every receiver.
pub struct Distributor {
    config: DistributorLimits,
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
        config: DistributorLimits,
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

    /// The tenant a write names in its `X-Scope-OrgID` header / metadata (see [`crate::tenant`]).
    pub fn tenant(&self, header: Option<&str>) -> Result<String, DistributorError> {
        Ok(crate::tenant::write_tenant(
            self.multitenancy_enabled,
            header,
        )?)
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

    /// Writes log rows through the log store (`logs.enabled`); refused like spans when the store
    /// is full, shutting down or off.
    pub async fn push_logs(
        &self,
        tenant: &str,
        rows: Vec<crate::logs::LogRow>,
    ) -> Result<(), DistributorError> {
        let store = self.logs.as_ref().ok_or_else(|| {
            DistributorError::Unavailable("logs are disabled (logs.enabled)".into())
        })?;
        store.push(tenant, rows).await.map_err(log_push_error)
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

/// Maps the log store's refusal to the distributor's error (and so to HTTP/gRPC codes).
fn log_push_error(error: PushError) -> DistributorError {
    match error {
        PushError::Overloaded { .. } => DistributorError::Overloaded(error.to_string()),
        PushError::TooLarge { bytes, limit, .. } => DistributorError::TooLarge {
            size: usize::try_from(bytes).unwrap_or(usize::MAX),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        PushError::ShuttingDown => DistributorError::Unavailable(error.to_string()),
        other => DistributorError::Internal(other.to_string()),
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
    fn tenant_errors_keep_their_statuses_and_texts() {
        let missing = DistributorError::from(TenantError::Missing);
        assert_eq!(missing.http_status(), StatusCode::UNAUTHORIZED);
        assert_eq!(missing.grpc_code(), tonic::Code::Unauthenticated);
        assert_eq!(missing.to_string(), "no org id");
        let invalid =
            DistributorError::from(crate::tenant::write_tenant(true, Some("a\\b")).unwrap_err());
        assert_eq!(invalid.http_status(), StatusCode::BAD_REQUEST);
        assert_eq!(invalid.grpc_code(), tonic::Code::InvalidArgument);
        assert!(invalid
            .to_string()
            .starts_with("invalid tenant id \"a\\\\b\": "));
    }

    #[test]
    fn refusals_map_to_one_status_each() {
        for (error, http, grpc) in [
            (
                DistributorError::TooLarge { size: 2, limit: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
                tonic::Code::ResourceExhausted,
            ),
            (
                DistributorError::Overloaded("busy".into()),
                StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::ResourceExhausted,
            ),
            (
                DistributorError::Unavailable("stopping".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
            ),
            (
                DistributorError::Internal("x".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                tonic::Code::Internal,
            ),
        ] {
            assert_eq!(error.http_status(), http, "{error}");
            assert_eq!(tonic::Status::from(error).code(), grpc);
        }
    }
}
