//! The head: every trace the ingester holds in memory, per tenant, from its first span until
//! its block is written. Traces are kept as the encoded protobuf pieces they arrived in, which
//! is both the cheapest form to hold and exactly what the log re-appends at a cut.
//!
//! Queries read the head as columns wherever they can: complete traces are sealed into
//! segments that become in-memory vParquet4 files, and while queries read the head, live
//! traces that went quiet are copied whole into *live segments* of their own (see
//! [`LIVE_QUIET`]), so only the traces that received spans in the last moments are decoded
//! per query.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use parquet::file::metadata::ParquetMetaData;
use prost::Message;

use super::wal::{release_bytes, reserve_bytes, AppendTarget, WalRecord, CARRY_OVER_RECORD_BYTES};
use crate::model::{combine, Trace, TraceId, TraceIdSet};

/// What one piece costs beyond its bytes (ID, handle, vector slot), so a flood of tiny pieces
/// still counts against `max_head_bytes`.
pub(crate) const PIECE_OVERHEAD_BYTES: u64 = 64;

/// The memory a piece is charged for.
pub(crate) fn piece_cost(piece: &Bytes) -> u64 {
    piece.len() as u64 + PIECE_OVERHEAD_BYTES
}

/// Pieces already replayed, per tenant; lives only while the log is replayed.
pub(crate) type ReplaySeen = HashMap<String, HashSet<(TraceId, Bytes)>>;

/// A trace still receiving spans.
struct LiveTrace {
    pieces: Vec<Bytes>,
    bytes: u64,
    first_append: Instant,
    last_append: Instant,
    /// The live segment whose row holds this trace, with every piece it has, if any.
    covered_by: Option<u64>,
}

impl LiveTrace {
    fn new(now: Instant) -> LiveTrace {
        LiveTrace {
            pieces: Vec::new(),
            bytes: 0,
            first_append: now,
            last_append: now,
            covered_by: None,
        }
    }

    /// What a live segment's row must still match to stand for this trace.
    fn version(&self) -> LiveVersion {
        LiveVersion {
            first_append: self.first_append,
            pieces: self.pieces.len(),
        }
    }
}

/// Which state of a live trace a live segment's row holds: a trace that completed and came
/// back is a new live trace (a later first append), and every append adds a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LiveVersion {
    first_append: Instant,
    pieces: usize,
}

/// A live trace quiet for [`LIVE_QUIET`] is copied, whole, into a live segment (while queries
/// read the head), so queries read it as columns instead of decoding it. Short, because
/// until then a query decodes it; not shorter, because a trace that receives another span
/// after being copied is decoded again until it is copied again.
pub(crate) const LIVE_QUIET: Duration = Duration::from_secs(1);

/// Whole copies of quiet live traces, built while queries read the head. The pieces stay
/// with the live traces (the log, trace by ID and the cut use those); a row goes stale when
/// its trace receives a piece or is sealed into a segment, and the segment is dropped once
/// every row is stale.
struct LiveSegment {
    id: u64,
    segment: Arc<Segment>,
    built_at: Instant,
    /// Rows whose trace moved on; a reader skips them.
    stale: Arc<TraceIdSet>,
}

/// Quiet live traces of one tenant to copy into a live segment (see [`Head::quiet_live`]).
pub(crate) struct LiveCandidates {
    pub tenant: String,
    /// Each trace's pieces, all of them, and the version they are.
    pub traces: HashMap<TraceId, (Vec<Bytes>, LiveVersion)>,
    /// Segments of the tenant's cut batches: a trace with parts there is not copied (a
    /// reader takes such a trace whole, every part gathered).
    pub cut_segments: Vec<Arc<Segment>>,
}

impl LiveCandidates {
    /// Builds the live segment (CPU-heavy: callers run it on the blocking pool); answers it
    /// with the version of each row, or `None` if no trace qualifies or encoding failed.
    pub fn build(self) -> Option<(String, Arc<Segment>, HashMap<TraceId, LiveVersion>)> {
        let mut traces = HashMap::with_capacity(self.traces.len());
        let mut versions = HashMap::with_capacity(self.traces.len());
        for (trace_id, (pieces, version)) in self.traces {
            let cut_elsewhere = self
                .cut_segments
                .iter()
                .any(|segment| segment.traces.contains_key(&trace_id));
            if !cut_elsewhere {
                traces.insert(trace_id, pieces);
                versions.insert(trace_id, version);
            }
        }
        if traces.is_empty() {
            return None;
        }
        // Its pieces are charged to the live traces that own them.
        let segment = Segment::new(traces, 0);
        segment.build_columns();
        segment.columns()?;
        Some((self.tenant, segment, versions))
    }
}

/// How recently a trace in memory received data; greater is more recent. Live traces by
/// their last append, then traces waiting for a cut, then those being written (later cuts
/// first), then those already in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Recency {
    /// In a block already; the index counts cuts from the oldest kept.
    Flushed(usize),
    /// Cut, being written; the index counts cuts from the oldest.
    Flushing(usize),
    /// Idle, waiting for the next cut.
    Completed,
    /// Still receiving spans; the time of the last one.
    Live(Instant),
}

/// The traces of one or more tenants' heads at one moment. Live traces and complete ones not
/// yet sealed are handed out whole (every piece of the trace, whatever tier holds it), most
/// recently received first, unless a live segment holds them; the segments follow, most
/// recent first, each read as a block: live segments (skipping their stale rows), then
/// sealed ones. Holds handles on the pieces in one vector, so taking it costs no
/// allocation per trace, and orders lazily, so a reader that stops after a few batches never
/// sorts the rest.
#[derive(Default)]
pub struct HeadSnapshot {
    pieces: Vec<Bytes>,
    traces: Vec<SnapshotTrace>,
    segments: Vec<(Recency, HeadSegment)>,
}

/// A segment of a [`HeadSnapshot`]: what a reader reads as a block.
#[derive(Debug, Clone)]
pub struct HeadSegment {
    /// The segment.
    pub segment: Arc<Segment>,
    /// For a live segment, its stale rows (their traces are handed out whole or sit in a
    /// sealed segment now): a reader skips them. `None` for a sealed segment, which holds
    /// parts of traces, each to be counted unless the trace was handed out whole.
    pub stale: Option<Arc<TraceIdSet>>,
}

struct SnapshotTrace {
    trace_id: TraceId,
    recency: Recency,
    pieces: std::ops::Range<usize>,
}

/// One trace of a [`HeadSnapshot`]: its ID and the pieces it arrived in, decoded only by a
/// reader that gets to it.
#[derive(Debug, Clone)]
pub struct HeadTrace {
    /// The trace's ID.
    pub trace_id: TraceId,
    pub(crate) pieces: Vec<Bytes>,
}

impl HeadTrace {
    /// The trace with its pieces combined; `None` if no piece decodes (never expected).
    pub fn trace(&self) -> Option<Trace> {
        decode_pieces(&self.trace_id, &self.pieces)
    }

    /// Protobuf bytes of the pieces, before combining.
    pub fn encoded_bytes(&self) -> usize {
        self.pieces.iter().map(Bytes::len).sum()
    }
}

impl HeadSnapshot {
    /// Traces in the snapshot: those handed out whole plus those of each segment (a trace
    /// with parts in several segments counts in each; stale rows of live segments do not).
    pub fn len(&self) -> usize {
        self.traces.len()
            + self
                .segments
                .iter()
                .map(|(_, head_segment)| {
                    let stale = head_segment.stale.as_ref().map_or(0, |stale| stale.len());
                    head_segment.segment.trace_count().saturating_sub(stale)
                })
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.traces.is_empty() && self.segments.is_empty()
    }

    /// IDs of the traces handed out whole: a reader that must count a span once skips their
    /// parts in the segments.
    pub fn whole_trace_ids(&self) -> TraceIdSet {
        self.traces.iter().map(|trace| trace.trace_id).collect()
    }

    /// Keeps only the segments that may hold spans between `start` and `end` (Unix ns): those
    /// whose columns say they overlap, and those without columns yet.
    pub fn retain_segments_overlapping(&mut self, start: u64, end: u64) {
        self.segments
            .retain(|(_, head_segment)| match head_segment.segment.columns() {
                Some(columns) => columns.start_unix_nano <= end && columns.end_unix_nano >= start,
                None => true,
            });
    }

    /// Takes the segments out of the snapshot, most recent first: live segments, then
    /// sealed ones.
    pub fn take_segments(&mut self) -> Vec<HeadSegment> {
        let mut segments = std::mem::take(&mut self.segments);
        // Stable: segments of one tier keep the order they were added in (newest first).
        segments.sort_by_key(|(recency, _)| std::cmp::Reverse(*recency));
        segments
            .into_iter()
            .map(|(_, head_segment)| head_segment)
            .collect()
    }

    /// The traces handed out whole, most recently received first, in batches of `first`
    /// traces, twice that, … up to `largest`. Ordering is a heap: handing out `k` traces
    /// costs `O(n + k log n)`. Segments are not part of it (see [`Self::take_segments`]).
    pub fn into_batches(self, first: usize, largest: usize) -> HeadBatches {
        let order: std::collections::BinaryHeap<(Recency, std::cmp::Reverse<usize>)> = self
            .traces
            .iter()
            .enumerate()
            .map(|(index, trace)| (trace.recency, std::cmp::Reverse(index)))
            .collect();
        HeadBatches {
            snapshot: self,
            order,
            size: first.clamp(1, largest.max(1)),
            largest: largest.max(1),
        }
    }
}

/// Batches of a [`HeadSnapshot`], most recent traces first.
pub struct HeadBatches {
    snapshot: HeadSnapshot,
    order: std::collections::BinaryHeap<(Recency, std::cmp::Reverse<usize>)>,
    size: usize,
    largest: usize,
}

impl HeadBatches {
    /// Whether every trace has been handed out.
    pub fn is_done(&self) -> bool {
        self.order.is_empty()
    }
}

impl Iterator for HeadBatches {
    type Item = Vec<HeadTrace>;

    fn next(&mut self) -> Option<Vec<HeadTrace>> {
        if self.order.is_empty() {
            return None;
        }
        let mut batch = Vec::with_capacity(self.size.min(self.order.len()));
        while batch.len() < self.size {
            let Some((_, std::cmp::Reverse(index))) = self.order.pop() else {
                break;
            };
            let trace = &self.snapshot.traces[index];
            batch.push(HeadTrace {
                trace_id: trace.trace_id,
                pieces: self.snapshot.pieces[trace.pieces.clone()].to_vec(),
            });
        }
        self.size = (self.size * 2).min(self.largest);
        Some(batch)
    }
}

/// A trace that went idle and waits to be sealed into a segment.
struct CompletedTrace {
    pieces: Vec<Bytes>,
    bytes: u64,
    /// The live segment whose row still holds this trace whole, if any.
    covered_by: Option<u64>,
}

/// Complete traces of one tenant sealed together: immutable from then on, cut into a block
/// whole, and read by queries as an in-memory vParquet4 file of the block schema once its
/// columns are built (until then, and if building fails, its pieces are decoded instead).
pub struct Segment {
    traces: HashMap<TraceId, Vec<Bytes>>,
    /// What its pieces are charged for (see [`piece_cost`]).
    bytes: u64,
    columns: OnceLock<Option<Arc<SegmentColumns>>>,
}

/// A segment's traces as a vParquet4 file in memory: the bytes a block of them would hold,
/// with its parsed footer, so a query reads it with the same pruning, column evaluation and
/// early stop as a block.
pub struct SegmentColumns {
    /// The whole `data.parquet`.
    pub data: Bytes,
    /// Its footer and page index.
    pub metadata: Arc<ParquetMetaData>,
    /// Earliest span start, Unix ns.
    pub start_unix_nano: u64,
    /// Latest span end, Unix ns.
    pub end_unix_nano: u64,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Segment")
            .field("traces", &self.traces.len())
            .field("bytes", &self.bytes)
            .field("columns", &self.columns().is_some())
            .finish()
    }
}

impl Segment {
    fn new(traces: HashMap<TraceId, Vec<Bytes>>, bytes: u64) -> Arc<Segment> {
        Arc::new(Segment {
            traces,
            bytes,
            columns: OnceLock::new(),
        })
    }

    /// Traces it holds (a part of each: a trace may have pieces elsewhere too).
    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }

    /// The traces' pieces, by ID.
    pub fn pieces(&self) -> &HashMap<TraceId, Vec<Bytes>> {
        &self.traces
    }

    /// Its columns, once built.
    pub fn columns(&self) -> Option<&Arc<SegmentColumns>> {
        self.columns.get().and_then(Option::as_ref)
    }

    /// Whether nobody built (or tried to build) its columns yet.
    pub(crate) fn lacks_columns(&self) -> bool {
        self.columns.get().is_none()
    }

    /// Builds its columns unless that was done or tried already. CPU-heavy (decoding the
    /// pieces and encoding a vParquet4 file): callers run it on the blocking pool. A failure
    /// (never expected: the pieces decoded when they were accepted) is logged, and queries
    /// keep decoding the pieces.
    pub(crate) fn build_columns(&self) {
        self.columns.get_or_init(|| match encode_segment(&self.traces) {
            Ok(columns) => Some(Arc::new(columns)),
            Err(error) => {
                tracing::error!(%error, traces = self.traces.len(), "cannot build a head segment's columns; queries decode its pieces");
                None
            }
        });
    }
}

/// Decodes, sorts and encodes a segment's traces as a vParquet4 file.
fn encode_segment(
    traces: &HashMap<TraceId, Vec<Bytes>>,
) -> Result<SegmentColumns, crate::tempodb::vparquet4::VParquetError> {
    use crate::tempodb::vparquet4;
    let mut decoded: Vec<(TraceId, Trace)> = traces
        .iter()
        .filter_map(|(trace_id, pieces)| Some((*trace_id, decode_pieces(trace_id, pieces)?)))
        .collect();
    decoded.sort_unstable_by_key(|(trace_id, _)| *trace_id);
    let encoded = vparquet4::encode_owned(decoded, &[], &vparquet4::WriterOptions::default())?;
    let data = Bytes::from(encoded.bytes);
    let metadata = vparquet4::read_metadata(&data)?;
    Ok(SegmentColumns {
        data,
        metadata,
        start_unix_nano: encoded.figures.start_unix_nano,
        end_unix_nano: encoded.figures.end_unix_nano,
    })
}

/// Complete traces of one tenant on their way into one block: whole segments. Immutable once
/// cut, so it is read without the head lock while queries still find its traces.
#[derive(Debug)]
pub(crate) struct FlushBatch {
    pub tenant: String,
    /// Oldest first.
    pub segments: Vec<Arc<Segment>>,
    pub bytes: u64,
}

impl FlushBatch {
    /// Traces in the batch (a trace with pieces in two of its segments counts twice).
    pub fn trace_count(&self) -> usize {
        self.segments
            .iter()
            .map(|segment| segment.trace_count())
            .sum()
    }

    /// Adds handles to the trace's pieces, oldest segment first.
    fn gather(&self, trace_id: &TraceId, pieces: &mut Vec<Bytes>) {
        for segment in &self.segments {
            if let Some(found) = segment.traces.get(trace_id) {
                pieces.extend(found.iter().cloned());
            }
        }
    }

    /// Decodes and combines the pieces of each trace (across its segments), for the block
    /// sink. Pieces that do not decode (a bug or damaged memory, never expected) are logged
    /// and left out.
    pub fn decode(&self) -> Vec<(TraceId, Trace)> {
        let mut traces = Vec::with_capacity(self.trace_count());
        if let [segment] = self.segments.as_slice() {
            for (trace_id, pieces) in &segment.traces {
                if let Some(trace) = decode_pieces(trace_id, pieces) {
                    traces.push((*trace_id, trace));
                }
            }
            return traces;
        }
        let mut gathered: HashMap<TraceId, Vec<Bytes>> = HashMap::new();
        for segment in &self.segments {
            for (trace_id, pieces) in &segment.traces {
                gathered
                    .entry(*trace_id)
                    .or_default()
                    .extend(pieces.iter().cloned());
            }
        }
        for (trace_id, pieces) in &gathered {
            if let Some(trace) = decode_pieces(trace_id, pieces) {
                traces.push((*trace_id, trace));
            }
        }
        traces
    }

    /// The batch as log records, for carrying it into a new segment while it is not in a block.
    pub fn records(&self) -> Vec<WalRecord> {
        let mut records = RecordChunker::new(&self.tenant);
        for segment in &self.segments {
            for (trace_id, pieces) in &segment.traces {
                records.add(trace_id, pieces);
            }
        }
        records.finish()
    }
}

/// Combines encoded pieces of one trace; `None` if none of them decodes.
pub(crate) fn decode_pieces(trace_id: &TraceId, pieces: &[Bytes]) -> Option<Trace> {
    let mut decoded = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match Trace::decode(piece.as_ref()) {
            Ok(trace) => decoded.push(trace),
            Err(error) => {
                tracing::error!(trace_id = %trace_id, %error, "skipping a trace piece that does not decode")
            }
        }
    }
    if decoded.is_empty() {
        return None;
    }
    if decoded.len() == 1 {
        return decoded.pop();
    }
    Some(combine(decoded))
}

/// Builds log records of at most about [`CARRY_OVER_RECORD_BYTES`] each.
struct RecordChunker {
    tenant: String,
    records: Vec<WalRecord>,
    current: Vec<(TraceId, Bytes)>,
    current_bytes: usize,
}

impl RecordChunker {
    fn new(tenant: &str) -> RecordChunker {
        RecordChunker {
            tenant: tenant.to_string(),
            records: Vec::new(),
            current: Vec::new(),
            current_bytes: 0,
        }
    }

    fn add(&mut self, trace_id: &TraceId, pieces: &[Bytes]) {
        for piece in pieces {
            if self.current_bytes > 0 && self.current_bytes + piece.len() > CARRY_OVER_RECORD_BYTES
            {
                self.flush_current();
            }
            self.current_bytes += piece.len();
            self.current.push((*trace_id, piece.clone()));
        }
    }

    fn flush_current(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let pieces = std::mem::take(&mut self.current);
        self.records.push(WalRecord {
            tenant: self.tenant.clone(),
            pieces,
        });
        self.current_bytes = 0;
    }

    fn finish(mut self) -> Vec<WalRecord> {
        self.flush_current();
        self.records
    }
}

/// Complete traces are sealed into a segment once this many bytes of them wait (or less,
/// see [`segment_bytes`]): a segment is what one columnar read covers.
pub(crate) const SEGMENT_BYTES: u64 = 16 << 20;
/// … or once the oldest of them has waited this long, so recent traces reach columns within
/// seconds of completing (Tempo flushes its WAL blocks every few seconds too).
pub(crate) const SEGMENT_AGE: Duration = Duration::from_secs(5);

/// The most bytes of pieces one segment holds: [`SEGMENT_BYTES`], or less so that a block
/// is a few segments and building one segment's columns (which decodes its traces) takes a
/// small share of the head's budget.
pub(crate) fn segment_bytes(max_block_bytes: u64, max_head_bytes: u64) -> u64 {
    SEGMENT_BYTES
        .min(max_block_bytes)
        .min(max_head_bytes / 16)
        .max(1)
}

#[derive(Default)]
struct TenantHead {
    live: HashMap<TraceId, LiveTrace>,
    /// Complete traces not yet sealed into a segment; read whole, like live ones.
    open: HashMap<TraceId, CompletedTrace>,
    open_bytes: u64,
    /// When the oldest trace now in `open` completed.
    open_since: Option<Instant>,
    /// Sealed segments waiting for the next cut, oldest first.
    sealed: Vec<Arc<Segment>>,
    /// Whole copies of quiet live traces, oldest first.
    live_segments: Vec<LiveSegment>,
    /// Piece bytes of each complete trace (open or sealed), for `gathering_bytes`.
    completed_piece_bytes: HashMap<TraceId, u64>,
    /// What the complete traces (open and sealed) are charged for.
    completed_bytes: u64,
    /// When the oldest complete trace (open or sealed) completed.
    oldest_completed: Option<Instant>,
    /// Cut and not yet in a block: being written, or waiting to be retried.
    flushing: Vec<Arc<FlushBatch>>,
    /// In a block, kept readable for `complete_block_timeout`.
    flushed: VecDeque<(Instant, Arc<FlushBatch>)>,
}

impl TenantHead {
    fn is_empty(&self) -> bool {
        // Live segments only copy live or open traces: empty once those are.
        self.live.is_empty()
            && self.open.is_empty()
            && self.sealed.is_empty()
            && self.flushing.is_empty()
            && self.flushed.is_empty()
    }

    /// Adds handles to every piece of `trace_id` in any tier to `pieces`, oldest tier first,
    /// so that they stay in the order they arrived.
    fn gather(&self, trace_id: &TraceId, pieces: &mut Vec<Bytes>) {
        for (_, batch) in &self.flushed {
            batch.gather(trace_id, pieces);
        }
        for batch in &self.flushing {
            batch.gather(trace_id, pieces);
        }
        if self.completed_piece_bytes.contains_key(trace_id) {
            for segment in &self.sealed {
                if let Some(found) = segment.traces.get(trace_id) {
                    pieces.extend(found.iter().cloned());
                }
            }
            if let Some(open) = self.open.get(trace_id) {
                pieces.extend(open.pieces.iter().cloned());
            }
        }
        if let Some(live) = self.live.get(trace_id) {
            pieces.extend(live.pieces.iter().cloned());
        }
    }

    fn complete(&mut self, trace_id: TraceId, live: LiveTrace, now: Instant) {
        self.completed_bytes += live.bytes;
        self.open_bytes += live.bytes;
        self.oldest_completed.get_or_insert(now);
        self.open_since.get_or_insert(now);
        let piece_bytes: u64 = live.pieces.iter().map(|piece| piece.len() as u64).sum();
        *self.completed_piece_bytes.entry(trace_id).or_default() += piece_bytes;
        let entry = self.open.entry(trace_id).or_insert_with(|| CompletedTrace {
            pieces: Vec::new(),
            bytes: 0,
            covered_by: None,
        });
        // A row stands for the trace only while it holds every piece: it stays with the
        // completed trace unless this adds to pieces already waiting.
        let covered_by = if entry.pieces.is_empty() {
            live.covered_by
        } else {
            for id in [entry.covered_by.take(), live.covered_by]
                .into_iter()
                .flatten()
            {
                mark_stale(&mut self.live_segments, id, trace_id);
            }
            None
        };
        entry.covered_by = covered_by;
        entry.pieces.extend(live.pieces);
        entry.bytes += live.bytes;
    }

    /// Seals every open trace into segments of at most `segment_bytes` (at least one trace
    /// each); answers the new segments.
    fn seal(&mut self, segment_bytes: u64) -> Vec<Arc<Segment>> {
        let open = std::mem::take(&mut self.open);
        self.open_bytes = 0;
        self.open_since = None;
        let mut segments = Vec::new();
        let mut traces = HashMap::new();
        let mut bytes = 0;
        for (trace_id, trace) in open {
            if let Some(id) = trace.covered_by {
                mark_stale(&mut self.live_segments, id, trace_id);
            }
            if bytes > 0 && bytes + trace.bytes > segment_bytes {
                segments.push(Segment::new(std::mem::take(&mut traces), bytes));
                bytes = 0;
            }
            bytes += trace.bytes;
            traces.insert(trace_id, trace.pieces);
        }
        if !traces.is_empty() {
            segments.push(Segment::new(traces, bytes));
        }
        self.sealed.extend(segments.iter().cloned());
        segments
    }

    /// Every segment of every tier.
    fn segments(&self) -> impl Iterator<Item = &Arc<Segment>> {
        self.sealed
            .iter()
            .chain(self.flushing.iter().flat_map(|batch| &batch.segments))
            .chain(self.flushed.iter().flat_map(|(_, batch)| &batch.segments))
    }
}

/// Marks the row of `trace_id` in live segment `id` stale; drops the segment once every row is.
fn mark_stale(live_segments: &mut Vec<LiveSegment>, id: u64, trace_id: TraceId) {
    let Some(index) = live_segments.iter().position(|live| live.id == id) else {
        return;
    };
    let live = &mut live_segments[index];
    // Copies the set only while a query's snapshot shares it.
    Arc::make_mut(&mut live.stale).insert(trace_id);
    if live.stale.len() >= live.segment.trace_count() {
        live_segments.remove(index);
    }
}

/// Counts for the ingester's stats.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HeadCounts {
    pub tenants: u64,
    pub live_traces: u64,
    pub completed_traces: u64,
    pub flushing_traces: u64,
    pub flushed_traces: u64,
    /// Sealed segments in memory (waiting, being written or kept readable).
    pub segments: u64,
    /// Bytes of the segments' columns.
    pub segment_column_bytes: u64,
    /// Live segments in memory (whole copies of quiet live traces).
    pub live_segments: u64,
    /// Bytes of the live segments' columns.
    pub live_segment_column_bytes: u64,
}

/// Every tenant's traces in memory.
#[derive(Default)]
pub(crate) struct Head {
    tenants: HashMap<String, TenantHead>,
    /// The ID the next live segment gets.
    next_live_segment: u64,
}

impl Head {
    /// Adds pieces to live traces; the caller has already accounted their bytes.
    pub fn append(&mut self, tenant: &str, pieces: Vec<(TraceId, Bytes)>, now: Instant) {
        let TenantHead {
            live: live_traces,
            live_segments,
            ..
        } = self.tenant_mut(tenant);
        for (trace_id, piece) in pieces {
            let cost = piece_cost(&piece);
            let live = live_traces
                .entry(trace_id)
                .or_insert_with(|| LiveTrace::new(now));
            if let Some(id) = live.covered_by.take() {
                mark_stale(live_segments, id, trace_id);
            }
            live.pieces.push(piece);
            live.bytes += cost;
            live.last_append = now;
        }
    }

    /// Adds replayed pieces, skipping exact copies of pieces already replayed (a crash during
    /// a carry-over leaves a piece in two segments); returns the bytes added. `seen` holds
    /// every piece replayed so far: hashing the content makes each check O(1), and equal
    /// hashes are confirmed byte for byte, so no distinct piece is ever dropped.
    pub fn append_replayed(
        &mut self,
        tenant: &str,
        pieces: Vec<(TraceId, Bytes)>,
        now: Instant,
        seen: &mut ReplaySeen,
    ) -> u64 {
        let tenant_seen = seen.entry(tenant.to_string()).or_default();
        let tenant_head = self.tenant_mut(tenant);
        let mut added = 0;
        for (trace_id, piece) in pieces {
            // The set shares the piece's buffer: a handle, not a copy.
            if !tenant_seen.insert((trace_id, piece.clone())) {
                continue;
            }
            let live = tenant_head
                .live
                .entry(trace_id)
                .or_insert_with(|| LiveTrace::new(now));
            if let Some(id) = live.covered_by.take() {
                mark_stale(&mut tenant_head.live_segments, id, trace_id);
            }
            let cost = piece_cost(&piece);
            live.pieces.push(piece);
            live.bytes += cost;
            added += cost;
        }
        added
    }

    fn tenant_mut(&mut self, tenant: &str) -> &mut TenantHead {
        if !self.tenants.contains_key(tenant) {
            self.tenants
                .insert(tenant.to_string(), TenantHead::default());
        }
        self.tenants.get_mut(tenant).expect("inserted just above")
    }

    /// Completes live traces idle for `idle_period`, or live for longer than `max_live` (so a
    /// trace that never stops receiving spans still reaches a block); returns how many.
    pub fn sweep(&mut self, now: Instant, idle_period: Duration, max_live: Duration) -> usize {
        let mut completed_count = 0;
        for tenant_head in self.tenants.values_mut() {
            let due: Vec<TraceId> = tenant_head
                .live
                .iter()
                .filter(|(_, live)| {
                    now.saturating_duration_since(live.last_append) >= idle_period
                        || now.saturating_duration_since(live.first_append) >= max_live
                })
                .map(|(trace_id, _)| *trace_id)
                .collect();
            for trace_id in due {
                if let Some(live) = tenant_head.live.remove(&trace_id) {
                    tenant_head.complete(trace_id, live, now);
                    completed_count += 1;
                }
            }
        }
        completed_count
    }

    /// Seals each tenant's open complete traces into segments of at most `segment_bytes`
    /// (see [`segment_bytes`]) once that many wait or the oldest waited [`SEGMENT_AGE`];
    /// answers the new segments, whose columns the caller builds.
    pub fn seal_due(&mut self, now: Instant, segment_bytes: u64) -> Vec<Arc<Segment>> {
        let mut sealed = Vec::new();
        for tenant_head in self.tenants.values_mut() {
            let due = tenant_head.open_bytes >= segment_bytes
                || tenant_head
                    .open_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= SEGMENT_AGE);
            if due && !tenant_head.open.is_empty() {
                sealed.extend(tenant_head.seal(segment_bytes));
            }
        }
        sealed
    }

    /// Live traces quiet for `quiet`, not yet in a live segment and with no part in another
    /// tier, in groups of one tenant and at most about `segment_bytes` of pieces (handles,
    /// not copies), for the caller to build into live segments off the lock.
    pub fn quiet_live(
        &self,
        now: Instant,
        quiet: Duration,
        segment_bytes: u64,
    ) -> Vec<LiveCandidates> {
        let mut groups = Vec::new();
        for (tenant, tenant_head) in &self.tenants {
            let cut_segments: Vec<Arc<Segment>> = tenant_head
                .flushing
                .iter()
                .flat_map(|batch| &batch.segments)
                .chain(
                    tenant_head
                        .flushed
                        .iter()
                        .flat_map(|(_, batch)| &batch.segments),
                )
                .cloned()
                .collect();
            let empty = || LiveCandidates {
                tenant: tenant.clone(),
                traces: HashMap::new(),
                cut_segments: cut_segments.clone(),
            };
            let mut group = empty();
            let mut bytes = 0;
            for (trace_id, live) in &tenant_head.live {
                if live.covered_by.is_some()
                    || now.saturating_duration_since(live.last_append) < quiet
                    || tenant_head.completed_piece_bytes.contains_key(trace_id)
                {
                    continue;
                }
                if bytes > 0 && bytes + live.bytes > segment_bytes {
                    groups.push(std::mem::replace(&mut group, empty()));
                    bytes = 0;
                }
                bytes += live.bytes;
                group
                    .traces
                    .insert(*trace_id, (live.pieces.clone(), live.version()));
            }
            if !group.traces.is_empty() {
                groups.push(group);
            }
        }
        groups
    }

    /// Adds a live segment built from [`Head::quiet_live`]'s candidates: each row stands for
    /// its trace if the trace is still live, in the version copied, and in no other live
    /// segment; other rows are stale from the start.
    pub fn add_live_segment(
        &mut self,
        tenant: &str,
        segment: Arc<Segment>,
        versions: &HashMap<TraceId, LiveVersion>,
        now: Instant,
    ) {
        let id = self.next_live_segment;
        self.next_live_segment += 1;
        let Some(tenant_head) = self.tenants.get_mut(tenant) else {
            return;
        };
        let mut stale = TraceIdSet::default();
        for (trace_id, version) in versions {
            match tenant_head.live.get_mut(trace_id) {
                Some(live) if live.covered_by.is_none() && live.version() == *version => {
                    live.covered_by = Some(id);
                }
                _ => {
                    stale.insert(*trace_id);
                }
            }
        }
        if stale.len() < segment.trace_count() {
            tenant_head.live_segments.push(LiveSegment {
                id,
                segment,
                built_at: now,
                stale: Arc::new(stale),
            });
        }
    }

    /// Segments of any tier whose columns nobody built yet, oldest tier last.
    pub fn segments_lacking_columns(&self) -> Vec<Arc<Segment>> {
        self.tenants
            .values()
            .flat_map(|tenant_head| tenant_head.segments())
            .filter(|segment| segment.lacks_columns())
            .cloned()
            .collect()
    }

    /// Completes every live trace, for shutdown.
    pub fn complete_all(&mut self, now: Instant) {
        for tenant_head in self.tenants.values_mut() {
            let live = std::mem::take(&mut tenant_head.live);
            for (trace_id, trace) in live {
                tenant_head.complete(trace_id, trace, now);
            }
        }
    }

    /// Why a block should be cut now, if it should.
    pub fn cut_reason(
        &self,
        now: Instant,
        max_block_duration: Duration,
        max_block_bytes: u64,
    ) -> Option<&'static str> {
        for tenant_head in self.tenants.values() {
            if tenant_head.completed_bytes >= max_block_bytes {
                return Some("max_block_bytes");
            }
            if let Some(oldest) = tenant_head.oldest_completed {
                if now.saturating_duration_since(oldest) >= max_block_duration {
                    return Some("max_block_duration");
                }
            }
        }
        None
    }

    /// Whether any tenant has complete traces waiting for a block.
    pub fn has_completed(&self) -> bool {
        self.tenants
            .values()
            .any(|tenant_head| !tenant_head.open.is_empty() || !tenant_head.sealed.is_empty())
    }

    /// Whether any batch waits to be (re)written.
    pub fn has_flushing(&self) -> bool {
        self.tenants
            .values()
            .any(|tenant_head| !tenant_head.flushing.is_empty())
    }

    /// Moves every tenant's complete traces (their open ones sealed first, in segments of at
    /// most `segment_bytes`) into flush batches of whole segments, of about
    /// `max_block_bytes` each.
    pub fn cut(&mut self, max_block_bytes: u64, segment_bytes: u64) {
        for (tenant, tenant_head) in self.tenants.iter_mut() {
            tenant_head.seal(segment_bytes);
            let sealed = std::mem::take(&mut tenant_head.sealed);
            tenant_head.completed_piece_bytes = HashMap::new();
            tenant_head.completed_bytes = 0;
            tenant_head.oldest_completed = None;
            let empty_batch = || FlushBatch {
                tenant: tenant.clone(),
                segments: Vec::new(),
                bytes: 0,
            };
            let mut batch = empty_batch();
            for segment in sealed {
                if batch.bytes > 0 && batch.bytes + segment.bytes > max_block_bytes {
                    let full = std::mem::replace(&mut batch, empty_batch());
                    tenant_head.flushing.push(Arc::new(full));
                }
                batch.bytes += segment.bytes;
                batch.segments.push(segment);
            }
            if !batch.segments.is_empty() {
                tenant_head.flushing.push(Arc::new(batch));
            }
        }
    }

    /// Every batch not yet in a block.
    pub fn flushing_batches(&self) -> Vec<Arc<FlushBatch>> {
        self.tenants
            .values()
            .flat_map(|tenant_head| tenant_head.flushing.iter().cloned())
            .collect()
    }

    /// The live and complete-but-not-cut traces as log records, to carry into a new segment.
    pub fn unflushed_records(&self) -> Vec<WalRecord> {
        let mut records = Vec::new();
        for (tenant, tenant_head) in &self.tenants {
            let mut chunker = RecordChunker::new(tenant);
            for (trace_id, live) in &tenant_head.live {
                chunker.add(trace_id, &live.pieces);
            }
            for segment in &tenant_head.sealed {
                for (trace_id, pieces) in &segment.traces {
                    chunker.add(trace_id, pieces);
                }
            }
            for (trace_id, open) in &tenant_head.open {
                chunker.add(trace_id, &open.pieces);
            }
            records.extend(chunker.finish());
        }
        records
    }

    /// The batch is in a block: keep it readable until `keep_until`, or drop it now when that
    /// is `None`; returns the bytes freed. Traces in `dropped` (left out of the block by
    /// sampling) are not kept readable: they are gone, as they will be after a restart.
    pub fn batch_flushed(
        &mut self,
        batch: &Arc<FlushBatch>,
        keep_until: Option<Instant>,
        dropped: &HashSet<TraceId>,
    ) -> u64 {
        let Some(tenant_head) = self.tenants.get_mut(&batch.tenant) else {
            return 0;
        };
        let before = tenant_head.flushing.len();
        tenant_head
            .flushing
            .retain(|candidate| !Arc::ptr_eq(candidate, batch));
        if tenant_head.flushing.len() == before {
            return 0;
        }
        match keep_until {
            Some(deadline) if dropped.is_empty() => {
                tenant_head.flushed.push_back((deadline, batch.clone()));
                0
            }
            Some(deadline) => {
                // Handles to the kept pieces, no copies of the data; the kept segments build
                // columns of their own.
                let mut kept = FlushBatch {
                    tenant: batch.tenant.clone(),
                    segments: Vec::new(),
                    bytes: 0,
                };
                for segment in &batch.segments {
                    let mut traces = HashMap::new();
                    let mut bytes = 0;
                    for (trace_id, pieces) in &segment.traces {
                        if dropped.contains(trace_id) {
                            continue;
                        }
                        bytes += pieces.iter().map(piece_cost).sum::<u64>();
                        traces.insert(*trace_id, pieces.clone());
                    }
                    if traces.len() == segment.traces.len() {
                        kept.segments.push(segment.clone());
                    } else if !traces.is_empty() {
                        kept.segments.push(Segment::new(traces, bytes));
                    }
                    kept.bytes += bytes;
                }
                let freed = batch.bytes.saturating_sub(kept.bytes);
                if !kept.segments.is_empty() {
                    tenant_head.flushed.push_back((deadline, Arc::new(kept)));
                } else if tenant_head.is_empty() {
                    self.tenants.remove(&batch.tenant);
                }
                freed
            }
            None => {
                if tenant_head.is_empty() {
                    self.tenants.remove(&batch.tenant);
                }
                batch.bytes
            }
        }
    }

    /// Drops flushed batches whose time is up, or all of them with `now = None`; returns the
    /// bytes freed.
    pub fn expire_flushed(&mut self, now: Option<Instant>) -> u64 {
        let mut freed = 0;
        for tenant_head in self.tenants.values_mut() {
            while let Some((deadline, batch)) = tenant_head.flushed.front() {
                let expired = now.is_none_or(|now| *deadline <= now);
                if !expired {
                    break;
                }
                freed += batch.bytes;
                tenant_head.flushed.pop_front();
            }
        }
        self.tenants
            .retain(|_, tenant_head| !tenant_head.is_empty());
        freed
    }

    /// Every piece of one trace the head holds, in whatever state.
    pub fn pieces_of(&self, tenant: &str, trace_id: &TraceId) -> Vec<Bytes> {
        let Some(tenant_head) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        let mut pieces = Vec::new();
        tenant_head.gather(trace_id, &mut pieces);
        pieces
    }

    /// Encoded bytes of each trace's pieces still gathering in the head (live or complete,
    /// not yet cut): what a push adds to when `max_bytes_per_trace` is checked.
    pub fn gathering_bytes(&self, tenant: &str, trace_ids: &[TraceId]) -> Vec<u64> {
        let Some(tenant_head) = self.tenants.get(tenant) else {
            return vec![0; trace_ids.len()];
        };
        let sum = |pieces: &[Bytes]| pieces.iter().map(|piece| piece.len() as u64).sum::<u64>();
        trace_ids
            .iter()
            .map(|trace_id| {
                tenant_head
                    .live
                    .get(trace_id)
                    .map_or(0, |live| sum(&live.pieces))
                    + tenant_head
                        .completed_piece_bytes
                        .get(trace_id)
                        .copied()
                        .unwrap_or(0)
            })
            .collect()
    }

    /// Adds a tenant's head to `snapshot`: its live and open complete traces that no live
    /// segment stands for, whole (cheap handles on every piece of each, from every tier, no
    /// copies of the data, no allocation per trace) with how recently they received data
    /// (see [`Recency`]), its live segments with their stale rows, and its sealed segments of
    /// every tier. Runs under the head lock, so it only looks up the tiers' own
    /// maps; ordering is left to [`HeadSnapshot::into_batches`] and
    /// [`HeadSnapshot::take_segments`].
    pub fn snapshot_into(&self, tenant: &str, snapshot: &mut HeadSnapshot) {
        let Some(head) = self.tenants.get(tenant) else {
            return;
        };
        snapshot.traces.reserve(head.live.len() + head.open.len());
        let mut add = |trace_id: &TraceId, recency: Recency| {
            let start = snapshot.pieces.len();
            head.gather(trace_id, &mut snapshot.pieces);
            snapshot.traces.push(SnapshotTrace {
                trace_id: *trace_id,
                recency,
                pieces: start..snapshot.pieces.len(),
            });
        };
        for (trace_id, live) in &head.live {
            if live.covered_by.is_none() {
                add(trace_id, Recency::Live(live.last_append));
            }
        }
        for (trace_id, open) in &head.open {
            if open.covered_by.is_none() && !head.live.contains_key(trace_id) {
                add(trace_id, Recency::Completed);
            }
        }
        let sealed = |segment: &Arc<Segment>| HeadSegment {
            segment: Arc::clone(segment),
            stale: None,
        };
        // Newest segment first within a tier; `take_segments` sorts tiers stably.
        for live in head.live_segments.iter().rev() {
            let live_segment = HeadSegment {
                segment: Arc::clone(&live.segment),
                stale: Some(Arc::clone(&live.stale)),
            };
            snapshot
                .segments
                .push((Recency::Live(live.built_at), live_segment));
        }
        for segment in head.sealed.iter().rev() {
            snapshot
                .segments
                .push((Recency::Completed, sealed(segment)));
        }
        for (age, batch) in head.flushing.iter().enumerate().rev() {
            for segment in batch.segments.iter().rev() {
                snapshot
                    .segments
                    .push((Recency::Flushing(age), sealed(segment)));
            }
        }
        for (age, (_, batch)) in head.flushed.iter().enumerate().rev() {
            for segment in batch.segments.iter().rev() {
                snapshot
                    .segments
                    .push((Recency::Flushed(age), sealed(segment)));
            }
        }
    }

    /// Tenants with anything in memory.
    pub fn tenants(&self) -> Vec<String> {
        self.tenants.keys().cloned().collect()
    }

    pub fn counts(&self) -> HeadCounts {
        let mut counts = HeadCounts {
            tenants: self.tenants.len() as u64,
            ..HeadCounts::default()
        };
        for tenant_head in self.tenants.values() {
            counts.live_traces += tenant_head.live.len() as u64;
            counts.completed_traces += tenant_head.open.len() as u64
                + tenant_head
                    .sealed
                    .iter()
                    .map(|segment| segment.trace_count() as u64)
                    .sum::<u64>();
            counts.flushing_traces += tenant_head
                .flushing
                .iter()
                .map(|batch| batch.trace_count() as u64)
                .sum::<u64>();
            counts.flushed_traces += tenant_head
                .flushed
                .iter()
                .map(|(_, batch)| batch.trace_count() as u64)
                .sum::<u64>();
            for segment in tenant_head.segments() {
                counts.segments += 1;
                counts.segment_column_bytes += segment
                    .columns()
                    .map_or(0, |columns| columns.data.len() as u64);
            }
            for live in &tenant_head.live_segments {
                counts.live_segments += 1;
                counts.live_segment_column_bytes += live
                    .segment
                    .columns()
                    .map_or(0, |columns| columns.data.len() as u64);
            }
        }
        counts
    }
}

/// The head with its byte budget, shared by pushes, the log writer and the flush loop.
#[derive(Default)]
pub(crate) struct SharedHead {
    pub head: Mutex<Head>,
    /// Bytes held in the head plus bytes reserved by pushes still in the log queue.
    pub bytes: AtomicU64,
}

impl AppendTarget for SharedHead {
    /// Flushed batches kept only for readers are given up before refusing.
    fn reserve(&self, amount: u64, limit: u64) -> Result<(), u64> {
        if reserve_bytes(&self.bytes, amount, limit).is_ok() {
            return Ok(());
        }
        let freed = self.head.lock().expire_flushed(None);
        if freed > 0 {
            self.release(freed);
            if reserve_bytes(&self.bytes, amount, limit).is_ok() {
                return Ok(());
            }
        }
        Err(self.bytes.load(Ordering::Acquire))
    }

    fn release(&self, amount: u64) {
        release_bytes(&self.bytes, amount);
    }

    fn appended(&self, tenant: String, pieces: Vec<(TraceId, Bytes)>) {
        self.head.lock().append(&tenant, pieces, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    /// Whole traces (ID and pieces by their first byte) and segments (IDs), in order.
    type SnapshotOrder = (Vec<(u8, Vec<u8>)>, Vec<Vec<u8>>);

    /// The IDs (first byte) and pieces (their bytes' first byte) of a snapshot's whole
    /// traces, in the order batches of `first`, doubling, hand them out; then the IDs of each
    /// segment, in the order they are handed out.
    fn snapshot_order(head: &Head, first: usize) -> SnapshotOrder {
        let mut snapshot = HeadSnapshot::default();
        head.snapshot_into("t", &mut snapshot);
        let count = snapshot.len();
        let segments: Vec<Vec<u8>> = snapshot
            .take_segments()
            .iter()
            .map(|head_segment| {
                let mut ids: Vec<u8> = head_segment
                    .segment
                    .pieces()
                    .keys()
                    .map(|id| id.0[0])
                    .collect();
                ids.sort_unstable();
                ids
            })
            .collect();
        let whole = snapshot.whole_trace_ids();
        let mut batches = snapshot.into_batches(first, 4);
        let mut sizes = Vec::new();
        let mut order = Vec::new();
        for batch in batches.by_ref() {
            sizes.push(batch.len());
            order.extend(batch.into_iter().map(|trace| {
                (
                    trace.trace_id.0[0],
                    trace.pieces.iter().map(|piece| piece[0]).collect(),
                )
            }));
        }
        assert!(batches.is_done());
        assert_eq!(order.len(), whole.len(), "each whole trace once");
        assert_eq!(
            count,
            order.len() + segments.iter().map(Vec::len).sum::<usize>()
        );
        let mut expected_size = first.min(4);
        for size in &sizes[..sizes.len() - 1] {
            assert_eq!(*size, expected_size, "batches grow: {sizes:?}");
            expected_size = (expected_size * 2).min(4);
        }
        (order, segments)
    }

    #[test]
    fn snapshot_hands_out_live_and_open_traces_whole_then_segments_most_recent_first() {
        let mut head = Head::default();
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let (idle, max_live) = (Duration::from_secs(10), Duration::from_secs(300));
        // Traces 1..=3 go idle and are cut; trace 3 comes back live, trace 2 is cut twice.
        head.append("t", vec![(TraceId([1; 16]), piece(10, 8))], at(0));
        head.append("t", vec![(TraceId([2; 16]), piece(20, 8))], at(1));
        head.append("t", vec![(TraceId([3; 16]), piece(30, 8))], at(2));
        head.sweep(at(20), idle, max_live);
        head.cut(1 << 20, 1 << 20);
        head.append("t", vec![(TraceId([2; 16]), piece(21, 8))], at(21));
        head.sweep(at(40), idle, max_live);
        head.cut(1 << 20, 1 << 20);
        // Trace 6 completes and is sealed; trace 4 completes and waits, open.
        head.append("t", vec![(TraceId([6; 16]), piece(60, 8))], at(40));
        head.sweep(at(50), idle, max_live);
        assert!(head.seal_due(at(51), 1 << 20).is_empty(), "too young");
        assert_eq!(head.seal_due(at(55), 1 << 20).len(), 1);
        head.append("t", vec![(TraceId([4; 16]), piece(40, 8))], at(51));
        head.sweep(at(61), idle, max_live);
        // 3 and 5 are live, 5 the most recent.
        head.append("t", vec![(TraceId([3; 16]), piece(31, 8))], at(61));
        head.append("t", vec![(TraceId([5; 16]), piece(50, 8))], at(62));
        assert_eq!(head.flushing_batches().len(), 2);
        // Live and open traces whole, with their pieces from every tier (3's first part
        // is in the first cut); segments newest first: sealed, then the later cut.
        let expected = (
            vec![(5, vec![50]), (3, vec![30, 31]), (4, vec![40])],
            vec![vec![6], vec![2], vec![1, 2, 3]],
        );
        for first in [1, 2, 64] {
            assert_eq!(
                snapshot_order(&head, first),
                expected,
                "first batch {first}"
            );
        }
        // Once the first cut is in a block, its segment is still handed out, last.
        let batches = head.flushing_batches();
        head.batch_flushed(&batches[0], Some(at(1000)), &HashSet::new());
        assert_eq!(head.counts().flushed_traces, 3);
        assert_eq!(head.counts().segments, 3);
        assert_eq!(snapshot_order(&head, 1), expected);
        // Trace by ID still finds every piece, oldest first.
        let pieces: Vec<u8> = head
            .pieces_of("t", &TraceId([2; 16]))
            .iter()
            .map(|piece| piece[0])
            .collect();
        assert_eq!(pieces, vec![20, 21]);
        assert_eq!(head.gathering_bytes("t", &[TraceId([6; 16])]), vec![8]);
    }

    /// A snapshot's whole traces (sorted IDs by first byte) and its segments (sorted IDs and
    /// stale IDs, `None` for a sealed segment), in order.
    #[allow(clippy::type_complexity)]
    fn whole_and_segments(head: &Head) -> (Vec<u8>, Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        let mut snapshot = HeadSnapshot::default();
        head.snapshot_into("t", &mut snapshot);
        let sorted = |ids: &mut dyn Iterator<Item = &TraceId>| {
            let mut ids: Vec<u8> = ids.map(|id| id.0[0]).collect();
            ids.sort_unstable();
            ids
        };
        let segments = snapshot
            .take_segments()
            .iter()
            .map(|head_segment| {
                (
                    sorted(&mut head_segment.segment.pieces().keys()),
                    head_segment
                        .stale
                        .as_ref()
                        .map(|stale| sorted(&mut stale.iter())),
                )
            })
            .collect();
        (sorted(&mut snapshot.whole_trace_ids().iter()), segments)
    }

    /// Copies `candidates` into a live segment as the ingester does, without columns (the
    /// pieces here are not protobuf).
    fn add_live(head: &mut Head, candidates: Vec<LiveCandidates>, now: Instant) {
        for group in candidates {
            let versions = group
                .traces
                .iter()
                .map(|(trace_id, (_, version))| (*trace_id, *version))
                .collect();
            let traces = group
                .traces
                .into_iter()
                .map(|(trace_id, (pieces, _))| (trace_id, pieces))
                .collect();
            head.add_live_segment(&group.tenant, Segment::new(traces, 0), &versions, now);
        }
    }

    #[test]
    fn live_segments_stand_for_quiet_traces_until_they_move_on() {
        let mut head = Head::default();
        let start = Instant::now();
        let at = |millis| start + Duration::from_millis(millis);
        let (idle, max_live) = (Duration::from_secs(10), Duration::from_secs(300));
        // Trace 7 completed and came back: its parts elsewhere keep it out of live segments.
        head.append("t", vec![(TraceId([7; 16]), piece(70, 8))], at(0));
        head.sweep(at(10_000), idle, max_live);
        head.append("t", vec![(TraceId([7; 16]), piece(71, 8))], at(10_000));
        for id in [1, 2, 3] {
            head.append(
                "t",
                vec![(TraceId([id; 16]), piece(id * 10, 8))],
                at(10_000),
            );
        }
        head.append("t", vec![(TraceId([3; 16]), piece(31, 8))], at(10_500));
        // 1 and 2 are quiet for a second; 3 is not.
        let candidates = head.quiet_live(at(11_200), LIVE_QUIET, 1 << 20);
        let quiet: Vec<Vec<u8>> = candidates
            .iter()
            .map(|group| {
                let mut ids: Vec<u8> = group.traces.keys().map(|id| id.0[0]).collect();
                ids.sort_unstable();
                ids
            })
            .collect();
        assert_eq!(quiet, vec![vec![1, 2]]);
        add_live(&mut head, candidates, at(11_300));
        assert_eq!(head.counts().live_segments, 1);
        // 7's first part waits, open: 7 is handed out whole.
        assert_eq!(
            whole_and_segments(&head),
            (vec![3, 7], vec![(vec![1, 2], Some(vec![]))])
        );
        assert!(
            head.quiet_live(at(11_400), LIVE_QUIET, 1 << 20).is_empty(),
            "1 and 2 are in a live segment, 3 is not quiet yet"
        );
        // A piece for 1: its row goes stale, and 1 is handed out whole again.
        head.append("t", vec![(TraceId([1; 16]), piece(11, 8))], at(12_000));
        assert_eq!(
            whole_and_segments(&head),
            (vec![1, 3, 7], vec![(vec![1, 2], Some(vec![1]))])
        );
        // 2 (and 7) complete: 2's row still stands for it while it waits, open.
        head.sweep(at(20_100), idle, max_live);
        assert_eq!(head.counts().live_traces, 2);
        assert_eq!(
            whole_and_segments(&head),
            (vec![1, 3, 7], vec![(vec![1, 2], Some(vec![1]))])
        );
        // Sealed, 2 is read from its segment; every row is stale, so the live segment goes.
        assert_eq!(head.seal_due(at(30_000), 1 << 20).len(), 1);
        assert_eq!(head.counts().live_segments, 0);
        assert_eq!(
            whole_and_segments(&head),
            (vec![1, 3], vec![(vec![2, 7], None)])
        );
        // A row whose trace changed between the copy and its adding is stale from the start.
        let candidates = head.quiet_live(at(30_000), LIVE_QUIET, 1 << 20);
        assert_eq!(
            candidates
                .iter()
                .map(|group| group.traces.len())
                .sum::<usize>(),
            2
        );
        head.append("t", vec![(TraceId([1; 16]), piece(12, 8))], at(30_001));
        add_live(&mut head, candidates, at(30_002));
        assert_eq!(
            whole_and_segments(&head),
            (
                vec![1],
                vec![(vec![1, 3], Some(vec![1])), (vec![2, 7], None)]
            )
        );
        assert_eq!(head.pieces_of("t", &TraceId([1; 16])).len(), 3);
        // A cut keeps live traces, and the rows that stand for them, as they are.
        head.cut(1 << 20, 1 << 20);
        assert_eq!(head.counts().live_segments, 1);
    }

    #[test]
    fn idle_traces_complete_and_cut_into_batches() {
        let mut head = Head::default();
        let start = Instant::now();
        let idle = Duration::from_secs(10);
        let max_live = Duration::from_secs(300);
        head.append(
            "t",
            vec![
                (TraceId([1; 16]), piece(1, 100)),
                (TraceId([2; 16]), piece(2, 100)),
            ],
            start,
        );
        head.append(
            "t",
            vec![(TraceId([2; 16]), piece(3, 100))],
            start + Duration::from_secs(5),
        );
        assert_eq!(
            head.sweep(start + Duration::from_secs(11), idle, max_live),
            1
        );
        assert_eq!(head.counts().completed_traces, 1);
        assert_eq!(
            head.cut_reason(start + Duration::from_secs(11), max_live, 1 << 20),
            None
        );
        assert_eq!(
            head.cut_reason(start + Duration::from_secs(400), max_live, 1 << 20),
            Some("max_block_duration")
        );
        assert_eq!(
            head.cut_reason(start, max_live, 100),
            Some("max_block_bytes")
        );
        head.cut(1 << 20, 1 << 20);
        let batches = head.flushing_batches();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].trace_count(), 1);
        // Pieces in live and flushing state are both found.
        assert_eq!(head.pieces_of("t", &TraceId([2; 16])).len(), 2);
        assert_eq!(head.pieces_of("t", &TraceId([1; 16])).len(), 1);
        assert_eq!(
            head.batch_flushed(&batches[0], None, &HashSet::new()),
            100 + PIECE_OVERHEAD_BYTES
        );
        assert!(head.pieces_of("t", &TraceId([1; 16])).is_empty());
    }

    #[test]
    fn dropped_traces_are_not_kept_readable_and_their_bytes_are_freed() {
        let mut head = Head::default();
        let now = Instant::now();
        head.append(
            "t",
            vec![
                (TraceId([1; 16]), piece(1, 100)),
                (TraceId([2; 16]), piece(2, 50)),
            ],
            now,
        );
        head.complete_all(now);
        head.cut(1 << 20, 1 << 20);
        let batches = head.flushing_batches();
        let dropped = HashSet::from([TraceId([2; 16])]);
        let keep_until = Some(now + Duration::from_secs(15));
        assert_eq!(
            head.batch_flushed(&batches[0], keep_until, &dropped),
            50 + PIECE_OVERHEAD_BYTES
        );
        assert_eq!(head.pieces_of("t", &TraceId([1; 16])).len(), 1);
        assert!(head.pieces_of("t", &TraceId([2; 16])).is_empty());
        assert_eq!(head.expire_flushed(None), 100 + PIECE_OVERHEAD_BYTES);
        assert!(head.tenants().is_empty());
    }

    #[test]
    fn busy_traces_complete_after_max_live() {
        let mut head = Head::default();
        let start = Instant::now();
        for second in 0..20 {
            head.append(
                "t",
                vec![(TraceId([1; 16]), piece(second, 10))],
                start + Duration::from_secs(second as u64),
            );
        }
        let swept = head.sweep(
            start + Duration::from_secs(20),
            Duration::from_secs(10),
            Duration::from_secs(15),
        );
        assert_eq!(swept, 1);
    }

    #[test]
    fn large_cuts_split_into_several_batches() {
        let mut head = Head::default();
        let start = Instant::now();
        for index in 0..10u8 {
            head.append(
                "t",
                vec![(TraceId([index + 1; 16]), piece(index, 1000))],
                start,
            );
        }
        head.complete_all(start);
        head.cut(2500, 2500);
        let batches = head.flushing_batches();
        assert_eq!(batches.len(), 5);
        assert_eq!(
            batches
                .iter()
                .map(|batch| batch.trace_count())
                .sum::<usize>(),
            10
        );
    }

    #[test]
    fn replay_skips_exact_duplicates() {
        let mut head = Head::default();
        let now = Instant::now();
        let mut seen = ReplaySeen::default();
        let first =
            head.append_replayed("t", vec![(TraceId([1; 16]), piece(1, 10))], now, &mut seen);
        let again = head.append_replayed(
            "t",
            vec![
                (TraceId([1; 16]), piece(1, 10)),
                (TraceId([1; 16]), piece(2, 10)),
            ],
            now,
            &mut seen,
        );
        assert_eq!(first, 10 + PIECE_OVERHEAD_BYTES);
        assert_eq!(again, 10 + PIECE_OVERHEAD_BYTES);
        assert_eq!(head.pieces_of("t", &TraceId([1; 16])).len(), 2);
        // The same bytes under another tenant or trace are a different piece.
        let other_tenant =
            head.append_replayed("u", vec![(TraceId([1; 16]), piece(1, 10))], now, &mut seen);
        let other_trace =
            head.append_replayed("t", vec![(TraceId([2; 16]), piece(1, 10))], now, &mut seen);
        assert_eq!(other_tenant + other_trace, 2 * (10 + PIECE_OVERHEAD_BYTES));
    }

    #[test]
    fn reserve_refuses_past_the_limit_after_evicting_flushed() {
        let shared = SharedHead::default();
        assert!(shared.reserve(60, 100).is_ok());
        assert_eq!(shared.reserve(50, 100), Err(60));
        shared.release(60);
        assert!(shared.reserve(100, 100).is_ok());
    }
}
