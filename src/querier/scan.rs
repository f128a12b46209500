//! The scan machinery every read shares: the [`Querier`] over the ingester and the store,
//! where a read looks ([`ReadPlan`]), and how the head and the blocks are fed to a visitor a
//! [`Batch`] at a time on the blocking pool, in plan order, with early stop.

use std::sync::Arc;

use crate::ingester::{HeadSegment, HeadSnapshot, HeadTrace, Ingester, Segment};
use crate::model::{Trace, TraceId, TraceIdSet};
use crate::tempodb::meta::BlockMeta;
use crate::tempodb::store::BlockDecode;
use crate::tempodb::vparquet4::pushdown::{Decoded, PushdownStats};
use crate::tempodb::Store;
use crate::traceql::prefilter::TraceFilter;

use super::batch::Batch;

/// A read that failed for a reason other than the caller's input.
#[derive(Debug, thiserror::Error)]
pub enum QuerierError {
    /// The store could not list or read a tenant's blocks.
    #[error("reading blocks of tenant {tenant:?} failed: {reason}")]
    Store { tenant: String, reason: String },
    /// The query failed while running (`!` on a missing value, integer division by zero, …).
    #[error("{0}")]
    Evaluation(String),
    /// A background task failed.
    #[error("search task failed: {0}")]
    Task(String),
}

/// Reads over the ingester and the store.
pub struct Querier {
    pub(super) ingester: Arc<Ingester>,
    pub(super) store: Arc<Store>,
    /// Whether block reads use queries' pre-filters (off only to measure the difference).
    pushdown: std::sync::atomic::AtomicBool,
}

impl Querier {
    /// A querier over `ingester` and `store`, with pre-filters on.
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

    /// Whether block reads use queries' pre-filters (see [`Querier::set_pushdown`]).
    pub(super) fn pushdown_enabled(&self) -> bool {
        self.pushdown.load(std::sync::atomic::Ordering::Relaxed)
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
        let visit: Arc<Visitor<S>> = Arc::new(visit);
        let filter = Arc::new(
            filter
                .filter(|_| self.pushdown_enabled())
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
}

/// Head traces decoded and visited at a time, at most: a search that finds enough in the
/// first batches never decodes the rest of the head. The first batch is smaller, and each
/// next one doubles.
const HEAD_BATCH_TRACES: usize = 1024;
const FIRST_HEAD_BATCH_TRACES: usize = 64;

/// Decoded batches a block read may hold ready before the scan takes them.
const BATCHES_AHEAD: usize = 2;

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
    visit: &Visitor<S>,
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
    visit: &Visitor<S>,
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

/// What a scan calls with each batch, on the blocking pool: `false` stops the scan.
type Visitor<S> = dyn Fn(&mut S, Batch) -> Result<bool, QuerierError> + Send + Sync;

/// Runs `visit` on one batch on the blocking pool, moving the state there and back.
async fn visit_on_pool<S: Send + 'static>(
    visit: &Arc<Visitor<S>>,
    state: S,
    batch: Batch,
) -> Result<(S, bool), QuerierError> {
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
    pub(super) head: HeadSnapshot,
    pub(super) blocks: Vec<BlockMeta>,
}
