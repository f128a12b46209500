//! TraceQL search over the head and the blocks, whole or streamed as progress reports.

use std::sync::Arc;

use crate::model::{trace_time_range, Trace, TraceId, TraceIdSet};
use crate::tempodb::store::BlockDecode;
use crate::tempodb::vparquet4::pushdown::PushdownStats;
use crate::traceql::eval::{Evaluator, StructuralMode};
use crate::traceql::search::{CompiledSearch, SearchOptions, TraceSearchMetadata};

use super::scan::{Querier, QuerierError};

/// What a search found, with what it cost (Tempo's `SearchMetrics`).
#[derive(Debug, Default)]
pub struct SearchOutcome {
    /// Matching traces, most recent first.
    pub traces: Vec<TraceSearchMetadata>,
    /// Traces the query ran on.
    pub inspected_traces: u64,
    /// Encoded bytes read (head pieces and block objects' traces).
    pub inspected_bytes: u64,
    /// Blocks scanned.
    pub total_blocks: u64,
    /// Spans the query ran on.
    pub inspected_spans: u64,
    /// What the block reads skipped (row groups, pages, traces) thanks to the query's
    /// pre-filter.
    pub pushdown: PushdownStats,
}

impl Querier {
    /// Runs a search over the ingester's memory and, when `options.window` is set, every
    /// block overlapping it, in every given tenant. Traces are tried most recent first and
    /// the search stops at `limit` matches; blocks are decoded one at a time (no column
    /// pruning yet), newest first, so a search holds at most one block in memory.
    pub async fn search(
        &self,
        tenants: &[String],
        query: Arc<CompiledSearch>,
        limit: usize,
        options: SearchOptions,
    ) -> Result<SearchOutcome, QuerierError> {
        self.search_with_progress(tenants, query, limit, options, None)
            .await
    }

    /// [`Querier::search`] that also reports, after the head and after each block, the
    /// matches found since the last delivered report (streaming search). Reports go through
    /// `progress` with `try_send`: a full channel never slows the scan (the undelivered
    /// matches ride along with the next report), a closed one (the reader left) stops it.
    pub async fn search_with_progress(
        &self,
        tenants: &[String],
        query: Arc<CompiledSearch>,
        limit: usize,
        options: SearchOptions,
        progress: Option<tokio::sync::mpsc::Sender<SearchProgress>>,
    ) -> Result<SearchOutcome, QuerierError> {
        let plan = self.plan(tenants, options.window);
        let state = SearchState {
            outcome: SearchOutcome {
                total_blocks: plan.blocks.len() as u64,
                ..SearchOutcome::default()
            },
            seen: TraceIdSet::default(),
            delivered: 0,
            completed_jobs: 0,
        };
        let filter = query.prefilter();
        let decode = BlockDecode::Traces(query.needs());
        let (state, pushdown) = self
            .scan(plan, Some(filter), decode, state, move |state, batch| {
                let job_done = batch.job_done;
                let skip = batch.skip.unwrap_or_default();
                let mut candidates: Vec<(u64, TraceId, Trace)> = batch
                    .traces
                    .into_iter()
                    .filter(|(id, _)| !state.seen.contains(id) && !skip.contains(id))
                    .map(|(id, trace)| {
                        let start = trace_time_range(&trace).map(|(s, _)| s).unwrap_or(0);
                        (start, id, trace)
                    })
                    .collect();
                candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1 .0.cmp(&b.1 .0)));
                let evaluator = Evaluator::new(StructuralMode::Real);
                for (_, id, trace) in &candidates {
                    if state.outcome.traces.len() >= limit {
                        break;
                    }
                    state.seen.insert(*id);
                    state.outcome.inspected_bytes += prost::Message::encoded_len(trace) as u64;
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
                        state.outcome.traces.push(found.metadata);
                    }
                }
                let keep_going = state.outcome.traces.len() < limit;
                // Report even the batch that reached the limit, so a reader sees it early.
                let reader_present = progress
                    .as_ref()
                    .is_none_or(|progress| state.report(progress, job_done));
                Ok(keep_going && reader_present)
            })
            .await?;
        let mut outcome = state.outcome;
        outcome.pushdown = pushdown;
        Ok(outcome)
    }
}

/// What a search has found so far, carried from batch to batch.
struct SearchState {
    outcome: SearchOutcome,
    /// Traces already judged (a trace in the head and in a block is judged once).
    seen: TraceIdSet,
    /// How many of `outcome.traces` a progress report has delivered.
    delivered: usize,
    /// Batches (the head, then blocks) scanned.
    completed_jobs: u64,
}

impl SearchState {
    /// Sends what the last batch added (when it added something or ended a job); `false`
    /// when the reader has gone (stop scanning).
    fn report(
        &mut self,
        progress: &tokio::sync::mpsc::Sender<SearchProgress>,
        job_done: bool,
    ) -> bool {
        use tokio::sync::mpsc::error::TrySendError;
        if job_done {
            self.completed_jobs += 1;
        } else if self.delivered == self.outcome.traces.len() {
            return !progress.is_closed();
        }
        let report = SearchProgress {
            traces: self.outcome.traces[self.delivered..].to_vec(),
            inspected_traces: self.outcome.inspected_traces,
            inspected_bytes: self.outcome.inspected_bytes,
            inspected_spans: self.outcome.inspected_spans,
            total_blocks: self.outcome.total_blocks,
            completed_jobs: self.completed_jobs,
            total_jobs: self.outcome.total_blocks + 1,
        };
        match progress.try_send(report) {
            Ok(()) => {
                self.delivered = self.outcome.traces.len();
                true
            }
            Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// A streaming search's progress after one more batch: the new matches and the cumulative
/// counters (Tempo's `SearchMetrics`; a job is the head or one block).
#[derive(Debug, Clone)]
pub struct SearchProgress {
    /// Matches found since the previous delivered report.
    pub traces: Vec<TraceSearchMetadata>,
    /// Traces the query ran on so far.
    pub inspected_traces: u64,
    /// Encoded bytes read so far.
    pub inspected_bytes: u64,
    /// Spans the query ran on so far.
    pub inspected_spans: u64,
    /// Blocks the search covers.
    pub total_blocks: u64,
    /// Jobs (the head, then blocks) scanned so far.
    pub completed_jobs: u64,
    /// Jobs in all: the blocks and the head.
    pub total_jobs: u64,
}
