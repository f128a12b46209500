//! The querier: answers reads over the ingester's memory (live traces, WAL-replayed data and
//! blocks being flushed) and the blocks in the store, and merges a trace split across them.

use std::sync::Arc;
use std::time::Instant;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::ingester::{HeadSegment, HeadSnapshot, HeadTrace, Ingester, Segment};
use crate::model::{combine, trace_time_range, Trace, TraceId, TraceIdSet};
use crate::tempodb::meta::BlockMeta;
use crate::tempodb::store::BlockDecode;
use crate::tempodb::vparquet4::pushdown::PushdownStats;
use crate::tempodb::vparquet4::pushdown::{Decoded, Held};
use crate::tempodb::Store;
use crate::traceql::ast::Attribute;
use crate::traceql::columns::SpanColumns;
use crate::traceql::eval::{Evaluator, StructuralMode};
use crate::traceql::metrics::{
    CompiledMetrics, MetricsEvaluation, MetricsRequest, QueryInstantResponse, QueryRangeResponse,
};
use crate::traceql::prefilter::{Needs, TraceFilter};
use crate::traceql::search::{CompiledSearch, SearchOptions, TraceSearchMetadata};
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
    /// Whether block reads use queries' pre-filters (off only to measure the difference).
    pushdown: std::sync::atomic::AtomicBool,
}

impl Querier {
    pub fn new(ingester: Arc<Ingester>, store: Arc<Store>) -> Querier {
        Querier {
            ingester,
            store,
            pushdown: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Turns the use of pre-filters in block reads on or off (`vivace bench --search`
    /// compares both); results are the same either way.
    pub fn set_pushdown(&self, enabled: bool) {
        self.pushdown
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
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

    /// Runs a TraceQL metrics query over the head and every block overlapping the request's
    /// window, in every given tenant. Each trace is evaluated once (the first copy seen: the
    /// head's, or the newest block's); spans count in the interval holding their start. CPU work runs on the blocking pool through `scan`.
    pub async fn query_range(
        &self,
        tenants: &[String],
        query: Arc<CompiledMetrics>,
        request: MetricsRequest,
    ) -> Result<QueryRangeResponse, QuerierError> {
        Ok(self.run_metrics(tenants, query, request).await?.finish())
    }

    /// [`query_range`](Self::query_range) as an instant query: one value per series over
    /// `(request.start, request.end]`.
    pub async fn query_instant(
        &self,
        tenants: &[String],
        query: Arc<CompiledMetrics>,
        request: MetricsRequest,
    ) -> Result<QueryInstantResponse, QuerierError> {
        Ok(self
            .run_metrics(tenants, query, request)
            .await?
            .finish_instant())
    }

    /// Parses, validates and runs a metrics range query for one tenant, without HTTP: the
    /// entry point for benchmarks. `start`/`end` are Unix ns, `step` ns (0: Tempo's default).
    pub async fn metrics_query_range(
        &self,
        tenant: &str,
        query: &str,
        start: u64,
        end: u64,
        step: u64,
    ) -> Result<QueryRangeResponse, QuerierError> {
        let parsed = crate::traceql::parse_and_validate(query)
            .map_err(|error| QuerierError::Evaluation(error.to_string()))?;
        let compiled = CompiledMetrics::new(parsed)
            .map_err(|error| QuerierError::Evaluation(error.to_string()))?;
        let request = MetricsRequest::range(start, end, step, 0)
            .map_err(|error| QuerierError::Evaluation(error.to_string()))?;
        self.query_range(&[tenant.to_string()], Arc::new(compiled), request)
            .await
    }

    async fn run_metrics(
        &self,
        tenants: &[String],
        query: Arc<CompiledMetrics>,
        request: MetricsRequest,
    ) -> Result<MetricsEvaluation, QuerierError> {
        let started = Instant::now();
        let plan = self.plan(tenants, Some((request.start, request.end)));
        let mut evaluation = MetricsEvaluation::new(&query, request);
        evaluation.stats.total_blocks = plan.blocks.len() as u32;
        let state = MetricsState {
            evaluation,
            seen: TraceIdSet::default(),
        };
        // The one place metrics read traces: only traces some pipeline of the query could
        // match are decoded.
        let filter = query
            .pipelines()
            .into_iter()
            .map(TraceFilter::from_pipeline)
            .reduce(TraceFilter::or)
            .unwrap_or(TraceFilter::True);
        // Queries that read only span fields with columns of their own (and relate no spans)
        // aggregate straight from those columns; the others from decoded traces.
        let needs = query.needs();
        let columnar = self.pushdown.load(std::sync::atomic::Ordering::Relaxed);
        let fields = query.span_fields().filter(|_| columnar);
        // Traces that come whole (the head's, or a row group that cannot be read as columns)
        // are put into the same columns when the query reads columns: one fast path for all.
        let whole_as_columns = fields.clone();
        let decode = match fields {
            Some(fields) => BlockDecode::Columns { fields, needs },
            None => BlockDecode::Traces(needs),
        };
        let (state, _) = self
            .scan(plan, Some(filter), decode, state, move |state, batch| {
                let evaluator = Evaluator::new(StructuralMode::Real);
                let (from, to) = state.evaluation.window();
                let mut spans = Vec::new();
                if let Some(columns) = &batch.columns {
                    for trace in 0..columns.trace_count() {
                        if !batch.counts_trace(&mut state.seen, columns.trace_ids[trace]) {
                            continue;
                        }
                        spans.clear();
                        spans.extend(columns.trace_spans(trace));
                        state
                            .evaluation
                            .observe_spans(&evaluator, &spans)
                            .map_err(|error| QuerierError::Evaluation(error.to_string()))?;
                    }
                }
                let mut whole = Vec::new();
                for (id, trace) in &batch.traces {
                    if !batch.counts_trace(&mut state.seen, *id) {
                        continue;
                    }
                    state.evaluation.stats.inspected_bytes +=
                        prost::Message::encoded_len(trace) as u64;
                    // Spans of a trace that ends before or starts after the window never count.
                    if let Some((start, end)) = trace_time_range(trace) {
                        if end < from || start > to {
                            continue;
                        }
                    }
                    match &whole_as_columns {
                        Some(_) => whole.push((*id, trace)),
                        None => state
                            .evaluation
                            .observe_trace(&evaluator, id, trace)
                            .map_err(|error| QuerierError::Evaluation(error.to_string()))?,
                    }
                }
                let from_whole = whole_as_columns
                    .as_ref()
                    .filter(|_| !whole.is_empty())
                    .map(|fields| SpanColumns::from_traces(whole, fields));
                if let Some(columns) = &from_whole {
                    for trace in 0..columns.trace_count() {
                        spans.clear();
                        spans.extend(columns.trace_spans(trace));
                        state
                            .evaluation
                            .observe_spans(&evaluator, &spans)
                            .map_err(|error| QuerierError::Evaluation(error.to_string()))?;
                    }
                }
                Ok(true)
            })
            .await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            traces = state.evaluation.stats.inspected_traces,
            "metrics query evaluated"
        );
        Ok(state.evaluation)
    }

    /// Where a read over `window` looks in every given tenant: the head (always) and, when
    /// `window` is set, the blocks overlapping it (Unix nanoseconds), newest first.
    pub(crate) fn plan(&self, tenants: &[String], window: Option<(u64, u64)>) -> ReadPlan {
        let mut head = HeadSnapshot::default();
        let mut blocks = Vec::new();
        for tenant in tenants {
            self.ingester.snapshot_into(tenant, &mut head);
            if let Some((start, end)) = window {
                head.retain_segments_overlapping(start, end);
                blocks.extend(
                    self.store
                        .blocks(tenant)
                        .into_iter()
                        .filter(|meta| meta.overlaps(start, end)),
                );
            }
        }
        blocks.sort_by_key(|meta| std::cmp::Reverse(meta.end_time));
        ReadPlan { head, blocks }
    }

    /// Feeds `visit` batches of traces (or span columns) on the blocking pool: first the
    /// head (its live and open traces whole, most recently received first, then its sealed
    /// segments read as blocks, see [`scan_head`]), then the blocks, newest first, each
    /// block's traces in row order. Stops as soon as `visit` returns `false`: no further head
    /// trace is decoded and segment and block reads stop at their next batch, in the middle of
    /// a row group if need be.
    ///
    /// A trace split between the head and a block is visited piece by piece (as Tempo judges
    /// the ingesters' and the blocks' parts apart); callers that must count a trace once keep
    /// the IDs they saw ([`Batch::counts_trace`]). Blocks are read `read_parallelism()` at a time, each skipping the
    /// traces `filter` rules out (`None`: every trace), while `visit` consumes them in plan
    /// order, so results and early stop are those of a sequential scan. Memory: one batch
    /// being visited plus, per block read at once, [`BATCHES_AHEAD`] decoded batches and the
    /// column chunks of one row group.
    pub(crate) async fn scan<S, F>(
        &self,
        plan: ReadPlan,
        filter: Option<TraceFilter>,
        decode: BlockDecode,
        state: S,
        visit: F,
    ) -> Result<(S, PushdownStats), QuerierError>
    where
        S: Send + 'static,
        F: Fn(&mut S, Batch) -> Result<bool, QuerierError> + Send + Sync + 'static,
    {
        let visit = Arc::new(visit);
        let filter = Arc::new(
            filter
                .filter(|_| self.pushdown.load(std::sync::atomic::Ordering::Relaxed))
                .unwrap_or(TraceFilter::True),
        );
        let head_visit = Arc::clone(&visit);
        let (head_filter, head_decode) = (Arc::clone(&filter), decode.clone());
        let (mut state, mut keep_going, head_stats) = tokio::task::spawn_blocking(move || {
            scan_head(plan.head, &head_filter, &head_decode, state, &*head_visit)
        })
        .await
        .map_err(|error| QuerierError::Task(error.to_string()))??;
        let mut stats = head_stats;
        if !keep_going || plan.blocks.is_empty() {
            return Ok((state, stats));
        }
        let mut pending = plan.blocks.into_iter();
        let mut reads: std::collections::VecDeque<BlockRead> = std::collections::VecDeque::new();
        let start_read = |meta: BlockMeta| {
            let (store, filter) = (Arc::clone(&self.store), Arc::clone(&filter));
            let decode = decode.clone();
            let (sender, batches) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
            let task = AbortOnDrop(tokio::spawn(async move {
                store
                    .read_block_filtered(&meta, filter, decode, sender)
                    .await
                    .map_err(|error| QuerierError::Store {
                        tenant: meta.tenant_id.clone(),
                        reason: error.to_string(),
                    })
            }));
            BlockRead { batches, task }
        };
        while keep_going {
            while reads.len() < read_parallelism() {
                let Some(meta) = pending.next() else {
                    break;
                };
                reads.push_back(start_read(meta));
            }
            let Some(mut read) = reads.pop_front() else {
                break;
            };
            while keep_going {
                let Some(decoded) = read.batches.recv().await else {
                    break;
                };
                let batch = Batch::decoded(decoded, None);
                (state, keep_going) = visit_on_pool(&visit, state, batch).await?;
            }
            if !keep_going {
                // Dropping the receiver stops the read at its next batch.
                drop(read.batches);
            }
            let block_stats = read
                .task
                .await
                .map_err(|error| QuerierError::Task(error.to_string()))??;
            stats.add(&block_stats);
            if keep_going {
                (state, keep_going) = visit_on_pool(&visit, state, Batch::done()).await?;
            }
        }
        Ok((state, stats))
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
        let plan = self.plan(tenants, window);
        let prefilter = filter.prefilter();
        let (outcome, _) = self
            .scan(
                plan,
                Some(prefilter),
                BlockDecode::Traces(Needs::ALL),
                TagNamesOutcome::default(),
                move |outcome, batch| {
                    let batch = batch.traces;
                    outcome.inspected_bytes += encoded_bytes(&batch);
                    let names = collect_tag_names(
                        batch.iter().map(|(id, trace)| (id, trace)),
                        &scopes,
                        &filter,
                        window,
                        limit,
                    );
                    for (scope, found) in names {
                        let known = outcome.names.entry(scope).or_default();
                        for name in found {
                            if known.len() >= limit {
                                break;
                            }
                            known.insert(name);
                        }
                    }
                    Ok(true)
                },
            )
            .await?;
        Ok(outcome)
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
        let plan = self.plan(tenants, window);
        let prefilter = filter.prefilter();
        let (outcome, _) = self
            .scan(
                plan,
                Some(prefilter),
                BlockDecode::Traces(Needs::ALL),
                (TagValuesOutcome::default(), HashSet::new()),
                move |(outcome, seen), batch| {
                    let batch = batch.traces;
                    outcome.inspected_bytes += encoded_bytes(&batch);
                    let values = collect_tag_values(
                        batch.iter().map(|(id, trace)| (id, trace)),
                        &attribute,
                        &filter,
                        window,
                        limit,
                    );
                    for value in values {
                        if outcome.values.len() >= limit {
                            break;
                        }
                        if seen.insert(value.clone()) {
                            outcome.values.push(value);
                        }
                    }
                    Ok(outcome.values.len() < limit)
                },
            )
            .await?;
        Ok(outcome.0)
    }
}

/// Protobuf bytes of `traces`, what a read reports as inspected.
fn encoded_bytes(traces: &[(TraceId, Trace)]) -> u64 {
    traces
        .iter()
        .map(|(_, trace)| prost::Message::encoded_len(trace) as u64)
        .sum()
}

/// Head traces decoded and visited at a time, at most: a search that finds enough in the
/// first batches never decodes the rest of the head. The first batch is smaller, and each
/// next one doubles.
const HEAD_BATCH_TRACES: usize = 1024;
const FIRST_HEAD_BATCH_TRACES: usize = 64;

/// Decoded batches a block read may hold ready before the scan takes them.
const BATCHES_AHEAD: usize = 2;

/// Traces handed to a scan's visitor at once, in scan order.
pub(crate) struct Batch {
    pub traces: Vec<(TraceId, Trace)>,
    /// Spans read as columns, when the scan asked blocks for [`BlockDecode::Columns`] (and
    /// the row group's columns sufficed).
    pub columns: Option<SpanColumns>,
    /// The last batch of a job (the head, or one block): progress reports count jobs.
    pub job_done: bool,
    /// Set for a batch of a head segment: the traces of the batch that neither count nor
    /// are judged here. A sealed segment holds parts of traces (every piece of the head is
    /// in exactly one tier), each to be counted except those of the traces the head handed
    /// out whole (with every piece, from any tier) before its segments; a live segment holds
    /// whole copies of live traces, except its stale rows, whose traces moved on.
    pub skip: Option<Arc<TraceIdSet>>,
    /// Counts the batch's traces as held until it is dropped, after its visit.
    _held: Option<Held>,
}

impl Batch {
    /// The empty batch that ends a job.
    fn done() -> Batch {
        Batch {
            traces: Vec::new(),
            columns: None,
            job_done: false,
            skip: None,
            _held: None,
        }
        .ending_job()
    }

    fn ending_job(mut self) -> Batch {
        self.job_done = true;
        self
    }

    /// A batch of traces decoded from head pieces.
    fn of_traces(traces: Vec<(TraceId, Trace)>, skip: Option<Arc<TraceIdSet>>) -> Batch {
        Batch {
            _held: Some(Held::new(traces.len())),
            traces,
            columns: None,
            job_done: false,
            skip,
        }
    }

    /// A batch of what a block or head segment read decoded.
    fn decoded(decoded: Decoded, skip: Option<Arc<TraceIdSet>>) -> Batch {
        let (traces, columns, held) = match decoded {
            Decoded::Traces(traces, held) => (traces, None, held),
            Decoded::Columns(columns, held) => (Vec::new(), Some(*columns), held),
        };
        Batch {
            traces,
            columns,
            job_done: false,
            skip,
            _held: Some(held),
        }
    }

    /// Whether a visitor that counts each span once takes `trace_id` from this batch, noting
    /// it in `seen`: a block's copy of a trace counts only if no earlier batch had it; a
    /// head segment's part or copy counts unless the batch skips it (see [`Batch::skip`]).
    pub fn counts_trace(&self, seen: &mut TraceIdSet, trace_id: TraceId) -> bool {
        match &self.skip {
            Some(skip) => {
                if skip.contains(&trace_id) {
                    return false;
                }
                seen.insert(trace_id);
                true
            }
            None => seen.insert(trace_id),
        }
    }
}

/// The head's part of a scan, on the blocking pool: its live and open traces that no live
/// segment holds, whole, most recent first, decoded a batch at a time, then its segments,
/// most recent first (live ones, then sealed ones), each read as a block is (its columns
/// with `filter`'s pruning and `decode`'s projection, stopping mid-segment), or its pieces
/// decoded when its columns are not built yet. Ends with the
/// batch that closes the head's job; answers whether to go on, and what the segment reads
/// skipped.
fn scan_head<S>(
    mut head: HeadSnapshot,
    filter: &TraceFilter,
    decode: &BlockDecode,
    mut state: S,
    visit: &dyn Fn(&mut S, Batch) -> Result<bool, QuerierError>,
) -> Result<(S, bool, PushdownStats), QuerierError> {
    let mut stats = PushdownStats::default();
    let segments = head.take_segments();
    let whole = Arc::new(head.whole_trace_ids());
    let mut batches = head.into_batches(FIRST_HEAD_BATCH_TRACES, HEAD_BATCH_TRACES);
    for chunk in batches.by_ref() {
        let traces: Vec<_> = chunk
            .iter()
            .filter_map(|head_trace| Some((head_trace.trace_id, head_trace.trace()?)))
            .collect();
        if !visit(&mut state, Batch::of_traces(traces, None))? {
            return Ok((state, false, stats));
        }
    }
    for HeadSegment { segment, stale } in segments {
        let skip = stale.unwrap_or_else(|| Arc::clone(&whole));
        let keep_going = match segment.columns() {
            Some(columns) => {
                let mut outcome = Ok(true);
                let read = crate::tempodb::vparquet4::pushdown::stream_filtered(
                    columns.data.clone(),
                    &columns.metadata,
                    &[],
                    filter,
                    decode.borrowed(),
                    &mut |decoded| {
                        outcome = visit(&mut state, Batch::decoded(decoded, Some(skip.clone())));
                        matches!(outcome, Ok(true))
                    },
                )
                .map_err(|error| QuerierError::Task(format!("reading a head segment: {error}")))?;
                stats.add(&read);
                outcome?
            }
            None => visit_segment_pieces(&segment, &skip, &mut state, visit)?,
        };
        if !keep_going {
            return Ok((state, false, stats));
        }
    }
    let keep_going = visit(&mut state, Batch::done())?;
    Ok((state, keep_going, stats))
}

/// Visits a head segment without columns by decoding its pieces, a batch at a time.
fn visit_segment_pieces<S>(
    segment: &Segment,
    skip: &Arc<TraceIdSet>,
    state: &mut S,
    visit: &dyn Fn(&mut S, Batch) -> Result<bool, QuerierError>,
) -> Result<bool, QuerierError> {
    let ids: Vec<&TraceId> = segment.pieces().keys().collect();
    for chunk in ids.chunks(HEAD_BATCH_TRACES) {
        let traces: Vec<(TraceId, Trace)> = chunk
            .iter()
            .filter_map(|trace_id| {
                let head_trace = HeadTrace {
                    trace_id: **trace_id,
                    pieces: segment.pieces().get(*trace_id)?.clone(),
                };
                Some((**trace_id, head_trace.trace()?))
            })
            .collect();
        if !visit(state, Batch::of_traces(traces, Some(Arc::clone(skip))))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs `visit` on one batch on the blocking pool, moving the state there and back.
async fn visit_on_pool<S, F>(
    visit: &Arc<F>,
    state: S,
    batch: Batch,
) -> Result<(S, bool), QuerierError>
where
    S: Send + 'static,
    F: Fn(&mut S, Batch) -> Result<bool, QuerierError> + Send + Sync + 'static,
{
    let visit = Arc::clone(visit);
    tokio::task::spawn_blocking(move || {
        let mut state = state;
        let keep_going = visit(&mut state, batch)?;
        Ok((state, keep_going))
    })
    .await
    .map_err(|error| QuerierError::Task(error.to_string()))?
}

/// A block read under way: its batches as they are decoded, and its figures at the end.
struct BlockRead {
    batches: tokio::sync::mpsc::Receiver<Decoded>,
    task: AbortOnDrop<Result<PushdownStats, QuerierError>>,
}

/// Blocks read at once by a scan: one per core, so decoding keeps every core busy while
/// the caller consumes results in order.
fn read_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|cores| cores.get())
        .unwrap_or(1)
}

/// A spawned block read that is cancelled when a scan stops early and drops it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(context)
    }
}

/// Where a read looks: the head and the blocks overlapping its window, newest first.
pub(crate) struct ReadPlan {
    head: HeadSnapshot,
    blocks: Vec<BlockMeta>,
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
    pub inspected_traces: u64,
    pub inspected_bytes: u64,
    pub inspected_spans: u64,
    pub total_blocks: u64,
    pub completed_jobs: u64,
    pub total_jobs: u64,
}

/// A metrics query's progress, carried from batch to batch.
struct MetricsState {
    evaluation: MetricsEvaluation,
    /// Traces already evaluated (a trace in the head and in a block counts once).
    seen: TraceIdSet,
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

#[cfg(test)]
mod head_tests;
