//! Trace by ID: the pieces of one trace found in memory and in the blocks, combined.

use std::time::Instant;

use crate::model::{combine, Trace, TraceId};

use super::scan::{Querier, QuerierError};

/// Trace-by-ID result with what it cost.
#[derive(Debug, Default)]
pub struct TraceLookup {
    /// The trace, its pieces combined; `None` when no tenant has it.
    pub trace: Option<Trace>,
    /// Encoded size of what was returned, reported as Tempo's `inspectedBytes`.
    pub inspected_bytes: u64,
}

impl Querier {
    /// Finds a trace in every given tenant (Tempo's `a|b` cross-tenant reads), in memory and in
    /// blocks overlapping `window` (Unix nanoseconds), and combines the pieces.
    pub async fn find_trace_by_id(
        &self,
        tenants: &[String],
        id: &TraceId,
        window: Option<(u64, u64)>,
    ) -> Result<TraceLookup, QuerierError> {
        let started = Instant::now();
        let mut parts = Vec::new();
        for tenant in tenants {
            if let Some(trace) = self.ingester.find_trace_by_id(tenant, id) {
                parts.push(trace);
            }
            let stored = self
                .store
                .find_trace_by_id(tenant, id, window)
                .await
                .map_err(|error| QuerierError::Store {
                    tenant: tenant.clone(),
                    reason: error.to_string(),
                })?;
            if let Some(trace) = stored {
                parts.push(trace);
            }
        }
        if parts.is_empty() {
            tracing::debug!(trace_id = %id, elapsed_ms = started.elapsed().as_millis() as u64, "trace not found");
            return Ok(TraceLookup::default());
        }
        let trace = combine(parts);
        let inspected_bytes = prost::Message::encoded_len(&trace) as u64;
        Ok(TraceLookup {
            trace: Some(trace),
            inspected_bytes,
        })
    }
}
