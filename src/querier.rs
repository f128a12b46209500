//! The querier: answers reads over the ingester's memory (live traces, WAL-replayed data and
//! blocks being flushed) and the blocks in the store, and merges a trace split across them.

use std::sync::Arc;
use std::time::Instant;

use std::collections::{HashMap, HashSet};

use crate::ingester::Ingester;
use crate::model::{combine, trace_time_range, Trace, TraceId};
use crate::tempodb::Store;
use crate::traceql::eval::{Evaluator, StructuralMode};
use crate::traceql::search::{CompiledSearch, SearchOptions};

/// A read that failed for a reason other than the caller's input.
#[derive(Debug, thiserror::Error)]
pub enum QuerierError {
    #[error("reading blocks of tenant {tenant:?} failed: {reason}")]
    Store { tenant: String, reason: String },
    /// The query failed while running (`!` on a missing value, integer division by zero, …).
    #[error("{0}")]
    Evaluation(String),
    /// A background task failed.
    #[error("search task failed: {0}")]
    Task(String),
}

/// What a search found, with what it cost (Tempo's `SearchMetrics`).
#[derive(Debug, Default)]
pub struct SearchOutcome {
    /// Matching traces as `TraceSearchMetadata` JSON, most recent first.
    pub traces: Vec<serde_json::Value>,
    /// Traces the query ran on.
    pub inspected_traces: u64,
    /// Encoded bytes read (head pieces and block objects' traces).
    pub inspected_bytes: u64,
    /// Blocks scanned.
    pub total_blocks: u64,
    /// Spans the query ran on.
    pub inspected_spans: u64,
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

    /// Runs a search over the ingester's memory and, when `options.window` is set, every
    /// block overlapping it, in every given tenant. Pieces of one trace are combined before
    /// the query runs; traces are tried most recent first and the search stops at `limit`
    /// matches. Blocks are decoded in full (no column pruning yet); decoding and evaluation
    /// run on the blocking pool.
    pub async fn search(
        &self,
        tenants: &[String],
        query: Arc<CompiledSearch>,
        limit: usize,
        options: SearchOptions,
    ) -> Result<SearchOutcome, QuerierError> {
        let mut head = Vec::new();
        let mut blocks = Vec::new();
        for tenant in tenants {
            head.extend(self.ingester.snapshot(tenant));
            if let Some((start, end)) = options.window {
                blocks.extend(
                    self.store
                        .blocks(tenant)
                        .into_iter()
                        .filter(|meta| meta.overlaps(start, end)),
                );
            }
        }
        let total_blocks = blocks.len() as u64;
        // Newest blocks first; one block is decoded at a time so a search holds at most one
        // block in memory, and the scan stops as soon as `limit` traces matched.
        blocks.sort_by_key(|meta| std::cmp::Reverse(meta.end_time));
        let head_pieces: HashMap<TraceId, Vec<Trace>> = {
            let mut pieces: HashMap<TraceId, Vec<Trace>> = HashMap::new();
            for head_trace in head {
                if let Some(trace) = head_trace.trace() {
                    pieces.entry(head_trace.trace_id).or_default().push(trace);
                }
            }
            pieces
        };
        let head_pieces = Arc::new(head_pieces);
        let mut state = SearchState {
            outcome: SearchOutcome {
                total_blocks,
                ..SearchOutcome::default()
            },
            seen: HashSet::new(),
        };
        // The head first: recent traces, each combined with nothing else.
        let head_candidates: Vec<(TraceId, Trace)> = head_pieces
            .iter()
            .map(|(id, parts)| (*id, combine(parts.clone())))
            .collect();
        state = self
            .evaluate_batch(state, head_candidates, &query, limit, &options)
            .await?;
        for meta in &blocks {
            if state.outcome.traces.len() >= limit {
                break;
            }
            let traces =
                self.store
                    .read_block_traces(meta)
                    .await
                    .map_err(|error| QuerierError::Store {
                        tenant: meta.tenant_id.clone(),
                        reason: error.to_string(),
                    })?;
            // A trace that also has spans in the head is judged on all of them.
            let candidates: Vec<(TraceId, Trace)> = traces
                .into_iter()
                .map(|(id, trace)| match head_pieces.get(&id) {
                    Some(parts) => {
                        let mut all = parts.clone();
                        all.push(trace);
                        (id, combine(all))
                    }
                    None => (id, trace),
                })
                .collect();
            state = self
                .evaluate_batch(state, candidates, &query, limit, &options)
                .await?;
        }
        Ok(state.outcome)
    }

    /// Runs the query over one batch of traces (newest first) off the async runtime.
    async fn evaluate_batch(
        &self,
        mut state: SearchState,
        batch: Vec<(TraceId, Trace)>,
        query: &Arc<CompiledSearch>,
        limit: usize,
        options: &SearchOptions,
    ) -> Result<SearchState, QuerierError> {
        let query = Arc::clone(query);
        let options = *options;
        let task = tokio::task::spawn_blocking(move || {
            let mut candidates: Vec<(u64, TraceId, Trace)> = batch
                .into_iter()
                .filter(|(id, _)| !state.seen.contains(id))
                .map(|(id, trace)| {
                    let start = trace_time_range(&trace).map(|(s, _)| s).unwrap_or(0);
                    (start, id, trace)
                })
                .collect();
            candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1 .0.cmp(&b.1 .0)));
            let evaluator = Evaluator::new(StructuralMode::Real);
            for (_, id, trace) in &candidates {
                state.outcome.inspected_bytes += prost::Message::encoded_len(trace) as u64;
                if state.outcome.traces.len() >= limit {
                    break;
                }
                state.seen.insert(*id);
                state.outcome.inspected_traces += 1;
                state.outcome.inspected_spans += trace
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum::<u64>();
                if let Some(found) = query
                    .run(&evaluator, id, trace, &options)
                    .map_err(|error| QuerierError::Evaluation(error.to_string()))?
                {
                    state.outcome.traces.push(found.json);
                }
            }
            Ok(state)
        });
        task.await
            .map_err(|error| QuerierError::Task(error.to_string()))?
    }
}

/// What a search has found so far, carried from batch to batch.
struct SearchState {
    outcome: SearchOutcome,
    /// Traces already judged (a trace in the head and in a block is judged once).
    seen: HashSet<TraceId>,
}
