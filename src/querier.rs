//! The querier: answers reads over the ingester's memory (live traces, WAL-replayed data and
//! blocks being flushed) and the blocks in the store, and merges a trace split across them.

use std::sync::Arc;
use std::time::Instant;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::ingester::{HeadTrace, Ingester};
use crate::model::{combine, trace_time_range, Trace, TraceId};
use crate::tempodb::Store;
use crate::traceql::ast::Attribute;
use crate::traceql::eval::{Evaluator, StructuralMode};
use crate::traceql::search::{CompiledSearch, SearchOptions};
use crate::traceql::tags::{collect_tag_names, collect_tag_values, TagFilter, TagScope, TagValue};

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
        let gathered = self.gather(tenants, options.window).await?;
        let total_blocks = gathered.total_blocks;
        let task = tokio::task::spawn_blocking(move || {
            let (traces, inspected_bytes) = gathered.combine();
            let mut candidates: Vec<(u64, TraceId, Trace)> = traces
                .into_iter()
                .map(|(id, trace)| {
                    let start = trace_time_range(&trace).map(|(s, _)| s).unwrap_or(0);
                    (start, id, trace)
                })
                .collect();
            candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1 .0.cmp(&b.1 .0)));
            let evaluator = Evaluator::new(StructuralMode::Real);
            let mut outcome = SearchOutcome {
                inspected_bytes,
                total_blocks,
                ..SearchOutcome::default()
            };
            for (_, id, trace) in &candidates {
                if outcome.traces.len() >= limit {
                    break;
                }
                outcome.inspected_traces += 1;
                outcome.inspected_spans += trace
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum::<u64>();
                if let Some(found) = query
                    .run(&evaluator, id, trace, &options)
                    .map_err(|error| QuerierError::Evaluation(error.to_string()))?
                {
                    outcome.traces.push(found.json);
                }
            }
            Ok(outcome)
        });
        task.await
            .map_err(|error| QuerierError::Task(error.to_string()))?
    }
    /// Collects what a read over `window` sees in every given tenant: the head (always) and,
    /// when `window` is set, the blocks overlapping it (Unix nanoseconds).
    async fn gather(
        &self,
        tenants: &[String],
        window: Option<(u64, u64)>,
    ) -> Result<Gathered, QuerierError> {
        let mut head = Vec::new();
        let mut blocks = Vec::new();
        for tenant in tenants {
            head.extend(self.ingester.snapshot(tenant));
            if let Some((start, end)) = window {
                blocks.extend(
                    self.store
                        .blocks(tenant)
                        .into_iter()
                        .filter(|meta| meta.overlaps(start, end)),
                );
            }
        }
        let total_blocks = blocks.len() as u64;
        let mut block_traces: Vec<(TraceId, Trace)> = Vec::new();
        for meta in &blocks {
            let traces =
                self.store
                    .read_block_traces(meta)
                    .await
                    .map_err(|error| QuerierError::Store {
                        tenant: meta.tenant_id.clone(),
                        reason: error.to_string(),
                    })?;
            block_traces.extend(traces);
        }
        Ok(Gathered {
            head,
            block_traces,
            total_blocks,
        })
    }

    /// Attribute names per scope over the same data a search with `window` sees (the head
    /// only when `window` is `None`, as Tempo), on spans matching `filter`; at most `limit`
    /// names per scope.
    pub async fn tag_names(
        &self,
        tenants: &[String],
        scopes: Vec<TagScope>,
        filter: TagFilter,
        window: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<TagNamesOutcome, QuerierError> {
        let gathered = self.gather(tenants, window).await?;
        let task = tokio::task::spawn_blocking(move || {
            let (traces, inspected_bytes) = gathered.combine();
            let names = collect_tag_names(
                traces.iter().map(|(id, trace)| (id, trace)),
                &scopes,
                &filter,
                window,
                limit,
            );
            TagNamesOutcome {
                names,
                inspected_bytes,
            }
        });
        task.await
            .map_err(|error| QuerierError::Task(error.to_string()))
    }

    /// Distinct typed values of `attribute` over the same data a search with `window` sees,
    /// on spans matching `filter`; at most `limit` values.
    pub async fn tag_values(
        &self,
        tenants: &[String],
        attribute: Attribute,
        filter: TagFilter,
        window: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<TagValuesOutcome, QuerierError> {
        let gathered = self.gather(tenants, window).await?;
        let task = tokio::task::spawn_blocking(move || {
            let (traces, inspected_bytes) = gathered.combine();
            let values = collect_tag_values(
                traces.iter().map(|(id, trace)| (id, trace)),
                &attribute,
                &filter,
                window,
                limit,
            );
            TagValuesOutcome {
                values,
                inspected_bytes,
            }
        });
        task.await
            .map_err(|error| QuerierError::Task(error.to_string()))
    }
}

/// What a read gathered, not yet decoded or combined.
struct Gathered {
    head: Vec<HeadTrace>,
    block_traces: Vec<(TraceId, Trace)>,
    total_blocks: u64,
}

impl Gathered {
    /// Decodes the head, combines the pieces of each trace; also the bytes inspected. CPU
    /// work: call on the blocking pool.
    fn combine(self) -> (Vec<(TraceId, Trace)>, u64) {
        let mut inspected_bytes = 0u64;
        let mut pieces: HashMap<TraceId, Vec<Trace>> = HashMap::new();
        for head_trace in self.head {
            inspected_bytes += head_trace.encoded_bytes() as u64;
            if let Some(trace) = head_trace.trace() {
                pieces.entry(head_trace.trace_id).or_default().push(trace);
            }
        }
        for (id, trace) in self.block_traces {
            inspected_bytes += prost::Message::encoded_len(&trace) as u64;
            pieces.entry(id).or_default().push(trace);
        }
        let traces = pieces
            .into_iter()
            .map(|(id, parts)| {
                let trace = if parts.len() == 1 {
                    parts.into_iter().next().unwrap_or_default()
                } else {
                    combine(parts)
                };
                (id, trace)
            })
            .collect();
        (traces, inspected_bytes)
    }
}

/// Tag names found, per scope.
#[derive(Debug, Default)]
pub struct TagNamesOutcome {
    /// Names per scope (scopes without names may be absent).
    pub names: BTreeMap<TagScope, BTreeSet<String>>,
    /// Encoded bytes read.
    pub inspected_bytes: u64,
}

/// Tag values found.
#[derive(Debug, Default)]
pub struct TagValuesOutcome {
    /// Distinct typed values, first seen first.
    pub values: Vec<TagValue>,
    /// Encoded bytes read.
    pub inspected_bytes: u64,
}
