//! The querier: answers reads over the ingester's memory (live traces, WAL-replayed data and
//! blocks being flushed) and the blocks in the store, and merges a trace split across them.

use std::sync::Arc;
use std::time::Instant;

use crate::ingester::Ingester;
use crate::model::{combine, Trace, TraceId};
use crate::tempodb::Store;

/// A read that failed for a reason other than the caller's input.
#[derive(Debug, thiserror::Error)]
pub enum QuerierError {
    #[error("reading blocks of tenant {tenant:?} failed: {reason}")]
    Store { tenant: String, reason: String },
}

/// Trace-by-ID result with what it cost.
#[derive(Debug, Default)]
pub struct TraceLookup {
    pub trace: Option<Trace>,
    /// Encoded size of what was returned, reported as Tempo's `inspectedBytes`.
    pub inspected_bytes: u64,
}

/// Reads over the ingester and the store.
pub struct Querier {
    ingester: Arc<Ingester>,
    store: Arc<Store>,
}

impl Querier {
    pub fn new(ingester: Arc<Ingester>, store: Arc<Store>) -> Querier {
        Querier { ingester, store }
    }

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
