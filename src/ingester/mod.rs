//! The ingester: a durable write-ahead log, the head of live traces and sealed segments, and
//! block cutting.
//!
//! # Life of a push
//!
//! 1. [`Ingester::push`] encodes each trace of the push to protobuf once and reserves its bytes
//!    against `max_head_bytes`; past the limit it answers [`PushError::Overloaded`] at once.
//! 2. It hands the push to the log writer's bounded queue with `try_send`: a full queue is also
//!    `Overloaded` at once, never an unbounded wait (clients retry on 429, which is what
//!    back-pressure is for).
//! 3. The writer thread (a std thread, so blocking I/O never runs on async workers) drains
//!    everything queued, writes it as one batch, and with `wal_fsync: always` runs a single
//!    `fdatasync` for the whole batch (group commit). Only then does it add the pieces to the
//!    head and acknowledge each push, so an acknowledged push is both durable and readable.
//!
//! # Head and cuts
//!
//! The head keeps traces as the encoded pieces they arrived in, per tenant: *live* until
//! `trace_idle_period` passes without a span (or `max_block_duration` since the first span),
//! then *complete*. The background loop ([`Ingester::spawn_background`]) cuts a block when a
//! tenant's complete traces are older than `max_block_duration`, reach `max_block_bytes`, or
//! the head is at 80% of `max_head_bytes`. A cut serves every tenant at once because the log
//! segments are shared:
//!
//! 1. rotate the log to a new segment N (every append before it is already in the head);
//! 2. move every tenant's complete traces into flush batches, and re-append everything else
//!    the head holds (live traces) into segment N: the *carry-over*, always fsynced;
//! 3. write each batch through the [`BlockSink`], leaving out the traces tail sampling drops
//!    when `sampling.enabled` (see [`sampling`] for where and why there); a failed batch stays in memory (readable)
//!    and is carried over into segment N too, then retried with exponential backoff;
//! 4. delete the segments before N. A crash anywhere in between replays duplicates at worst,
//!    which replay drops when they are byte-identical and [`crate::model::combine`] dedupes
//!    otherwise.
//!
//! The log on disk therefore holds about what the head holds. Flushes run on the background
//! task and never block pushes, except through the head budget.
//!
//! # Segments: the head as columns
//!
//! Complete traces wait *open* until a few megabytes of them have gathered or the oldest has
//! waited `SEGMENT_AGE` (seconds); then they are *sealed* into an immutable segment, and the
//! background loop builds its columns: the segment's traces as an in-memory vParquet4 file
//! of the block schema (Tempo flushes its WAL blocks into small Parquet files the same way).
//! Queries read live and open traces whole, then every segment as they read a block (the
//! same pruning, column evaluation and early stop), so a query never decodes the whole head.
//! A cut moves whole segments into flush batches; the pieces stay the one source of the
//! log, trace-by-ID lookups and the block written at a cut, and a segment whose columns are
//! not built yet is read by decoding its pieces.
//!
//! # Replay
//!
//! [`Ingester::open`] replays every segment in order into live traces before accepting pushes.
//! A torn or damaged tail of the last segment is truncated (and logged with its size); damage
//! in an earlier segment skips that segment's remainder. Replay never panics on log contents.
//! Replayed data may exceed `max_head_bytes`; pushes are then refused until blocks are cut.
//! The record format is documented in `src/ingester/wal.rs`.

mod config;
mod head;
mod push;
pub mod sampling;
pub(crate) mod wal;

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::watch;

pub use config::{IngesterConfig, WalFsync};
use head::{decode_pieces, piece_cost, FlushBatch, SharedHead};
pub use head::{HeadBatches, HeadSegment, HeadSnapshot, HeadTrace, Segment, SegmentColumns};
pub use push::{OverloadReason, PushError};
use sampling::{BatchSampling, Sampler};
pub use sampling::{SamplingConfig, SamplingRule, SamplingStats};
use wal::{AppendTarget, Budget, Wal, WriterOptions};

use crate::model::{Trace, TraceId};
use crate::telemetry::stage::Stage;
use crate::tempodb::meta::{time_from_unix_nano, BlockMeta, FORMAT_VPARQUET4};

/// Where cut blocks go. The real implementation is `tempodb::Store::write_block`, wired by the
/// app; tests use a recorder.
#[async_trait]
pub trait BlockSink: Send + Sync + 'static {
    /// Writes one block of complete traces (grouped by ID; the sink sorts and encodes them).
    async fn write_block(
        &self,
        tenant: &str,
        traces: Vec<(TraceId, Trace)>,
    ) -> Result<BlockMeta, anyhow::Error>;
}

/// A `meta.json` describing the traces without a real block behind it: what a sink that keeps
/// nothing answers (the ingester's test sinks, the push benchmark's discarding one).
pub fn placeholder_meta(tenant: &str, traces: &[(TraceId, Trace)]) -> BlockMeta {
    let range = traces
        .iter()
        .filter_map(|(_, trace)| crate::model::trace_time_range(trace))
        .reduce(|(low, high), (start, end)| (low.min(start), high.max(end)))
        .unwrap_or((0, 0));
    BlockMeta {
        format: FORMAT_VPARQUET4.to_string(),
        block_id: uuid::Uuid::new_v4(),
        tenant_id: tenant.to_string(),
        start_time: time_from_unix_nano(range.0),
        end_time: time_from_unix_nano(range.1),
        total_objects: traces.len() as i64,
        size: 0,
        compaction_level: 0,
        index_page_size: 0,
        total_records: 0,
        bloom_shards: 0,
        footer_size: 0,
        dedicated_columns: Vec::new(),
        replication_factor: 1,
        retention_tier: None,
    }
}

/// Why the ingester could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngesterError {
    /// A config value that cannot work.
    #[error("invalid ingester config: {0}")]
    Config(String),
    /// The log directory could not be prepared, locked or replayed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The blocking start-up task died.
    #[error("ingester start-up failed: {0}")]
    Startup(String),
}

/// A point-in-time view of the ingester, for `/metrics` and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngesterStats {
    /// Tenants with anything in memory.
    pub tenants: u64,
    /// Traces still receiving spans.
    pub live_traces: u64,
    /// Idle traces waiting for the next cut.
    pub completed_traces: u64,
    /// Traces cut into a block that is being written or waits for a retry.
    pub flushing_traces: u64,
    /// Traces already in a block, kept readable for `complete_block_timeout`.
    pub flushed_traces_kept: u64,
    /// Sealed segments of complete traces in memory (waiting, being written or kept).
    pub head_segments: u64,
    /// Bytes of those segments' columns: in-memory vParquet4 files, not charged against
    /// `max_head_bytes` (about a third of the pieces' protobuf size).
    pub head_segment_column_bytes: u64,
    /// Bytes charged against `max_head_bytes` (protobuf size plus a per-piece overhead).
    pub head_bytes: u64,
    /// Bytes appended to the log since start, carry-overs included.
    pub wal_bytes_written: u64,
    /// Bytes in the log's segment files now.
    pub wal_disk_bytes: u64,
    /// Segment files now.
    pub wal_segments: u64,
    /// fsync calls made on the log.
    pub wal_syncs: u64,
    /// Failed log writes or syncs.
    pub wal_write_failures: u64,
    /// Blocks handed to the sink successfully.
    pub blocks_flushed: u64,
    /// Head segments whose columns were built since start.
    pub head_segments_built: u64,
    /// Live segments (whole copies of quiet live traces, see `LIVE_QUIET`) in memory; built
    /// only while queries read the head.
    pub head_live_segments: u64,
    /// Bytes of the live segments' columns (not charged against `max_head_bytes`).
    pub head_live_segment_column_bytes: u64,
    /// Live segments built since start.
    pub head_live_segments_built: u64,
    /// Block writes that failed (and will be retried).
    pub flush_failures: u64,
    /// Pushes acknowledged.
    pub pushes_accepted: u64,
    /// Pushes refused as overloaded or too large.
    pub pushes_refused: u64,
    /// Log records replayed at start.
    pub replayed_records: u64,
    /// Bytes of torn log tail truncated at start.
    pub wal_truncated_bytes: u64,
    /// Tail-sampling decisions of written batches; all zero when sampling is off.
    pub sampling: SamplingStats,
}

/// What a cut achieved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct CutOutcome {
    blocks_flushed: usize,
    blocks_failed: usize,
    /// Old segments were deleted: the log holds exactly what is in memory.
    wal_compacted: bool,
}

#[derive(Default)]
struct RetryState {
    consecutive_failures: u32,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct Counters {
    pushes_accepted: AtomicU64,
    pushes_refused: AtomicU64,
    blocks_flushed: AtomicU64,
    segments_built: AtomicU64,
    live_segments_built: AtomicU64,
    flush_failures: AtomicU64,
    replayed_records: AtomicU64,
    wal_truncated_bytes: AtomicU64,
}

/// Longest wait between retries of a failing block write.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

/// The ingester of one process: see the module documentation.
pub struct Ingester {
    config: IngesterConfig,
    sink: Arc<dyn BlockSink>,
    /// `None` when `sampling.enabled` is false: every trace goes into its block.
    sampler: Option<Arc<Sampler>>,
    shared: Arc<SharedHead>,
    wal: Wal,
    counters: Counters,
    shutting_down: AtomicBool,
    stop_background: watch::Sender<bool>,
    /// One cut at a time.
    cut_lock: tokio::sync::Mutex<()>,
    retry: Mutex<RetryState>,
    /// When a query last read the head: live segments are built only while queries come.
    head_read_at: Mutex<Option<Instant>>,
}

/// Live segments (see [`head::LIVE_QUIET`]) are built while a query read the head within this
/// long: an ingester nobody queries spends no CPU copying live traces into columns.
pub(crate) const LIVE_SEGMENTS_AFTER_READ: Duration = Duration::from_secs(120);

impl Ingester {
    /// Validates the config, locks and replays the log into the head, and starts the writer.
    pub async fn open(
        config: IngesterConfig,
        sink: Arc<dyn BlockSink>,
    ) -> Result<Arc<Ingester>, IngesterError> {
        config.validate().map_err(IngesterError::Config)?;
        let sampler = Sampler::from_config(&config.sampling)
            .map_err(|reason| IngesterError::Config(format!("ingester.{reason}")))?
            .map(Arc::new);
        let shared = Arc::new(SharedHead::default());
        let started_at = Instant::now();
        let startup = {
            let dir = config.wal_path.clone();
            let shared = shared.clone();
            let options = WriterOptions {
                fsync: config.wal_fsync,
                fsync_interval: config.wal_fsync_interval,
                segment_max_bytes: config.wal_segment_max_bytes,
                queue_capacity: config.wal_queue_capacity,
                disk_full_after_bytes: config.debug_wal_disk_full_bytes,
            };
            let budget = Budget::new(config.max_head_bytes, "max_head_bytes");
            tokio::task::spawn_blocking(move || open_wal(&dir, shared, options, budget))
        };
        let (wal, report) = startup
            .await
            .map_err(|error| IngesterError::Startup(error.to_string()))?
            .map_err(|error| IngesterError::Io {
                action: error.action,
                path: config.wal_path.clone(),
                source: error.source,
            })?;
        let head_counts = shared.head.lock().counts();
        tracing::info!(
            wal_path = %config.wal_path.display(),
            segments = report.segments,
            records = report.records,
            traces = head_counts.live_traces,
            head_bytes = shared.bytes.load(Ordering::Relaxed),
            truncated_bytes = report.truncated_bytes,
            skipped_bytes = report.skipped_bytes,
            unreadable_records = report.unreadable_records,
            elapsed_ms = started_at.elapsed().as_millis() as u64,
            "replayed the write-ahead log"
        );
        let counters = Counters::default();
        report.count_into(&counters.replayed_records, &counters.wal_truncated_bytes);
        let (stop_background, _) = watch::channel(false);
        Ok(Arc::new(Ingester {
            config,
            sink,
            sampler,
            shared,
            wal,
            counters,
            shutting_down: AtomicBool::new(false),
            stop_background,
            cut_lock: tokio::sync::Mutex::new(()),
            retry: Mutex::new(RetryState::default()),
            head_read_at: Mutex::new(None),
        }))
    }

    /// Logs the traces of one push for `tenant`; returns once they are durable (per
    /// `wal_fsync`) and readable through [`Ingester::find_trace_by_id`].
    pub async fn push(&self, tenant: &str, traces: Vec<(TraceId, Trace)>) -> Result<(), PushError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(PushError::ShuttingDown);
        }
        if traces.is_empty() {
            return Ok(());
        }
        // Encoding the WAL record's pieces is the WAL's cost, not the caller's.
        let pieces: Vec<(TraceId, Bytes)> = Stage::Wal.run(|| {
            traces
                .iter()
                .map(|(trace_id, trace)| (*trace_id, Bytes::from(trace.encode_to_vec())))
                .collect()
        });
        let reserved_bytes: u64 = pieces.iter().map(|(_, piece)| piece_cost(piece)).sum();
        let outcome = self.wal.append(tenant, pieces, reserved_bytes).await;
        wal::count_outcome(
            outcome,
            &self.counters.pushes_accepted,
            1,
            &self.counters.pushes_refused,
        )
    }

    /// Encoded bytes each trace already has in the head and not yet cut into a block.
    pub fn gathering_bytes(&self, tenant: &str, trace_ids: &[TraceId]) -> Vec<u64> {
        self.shared.head.lock().gathering_bytes(tenant, trace_ids)
    }

    /// The trace as the ingester holds it: live, complete, being flushed or recently flushed,
    /// all pieces combined.
    pub fn find_trace_by_id(&self, tenant: &str, trace_id: &TraceId) -> Option<Trace> {
        // Clone the cheap handles under the lock; decode outside it.
        let pieces = self.shared.head.lock().pieces_of(tenant, trace_id);
        if pieces.is_empty() {
            return None;
        }
        decode_pieces(trace_id, &pieces)
    }

    /// Adds every trace of `tenant` in memory to `snapshot` (for search over the head, which
    /// hands them out most recently received first). Cheap: handles, no copies, no sorting
    /// under the lock that pushes wait for.
    pub fn snapshot_into(&self, tenant: &str, snapshot: &mut HeadSnapshot) {
        *self.head_read_at.lock() = Some(Instant::now());
        self.shared.head.lock().snapshot_into(tenant, snapshot);
    }

    /// Every trace of `tenant` in memory; see [`Ingester::snapshot_into`].
    pub fn snapshot(&self, tenant: &str) -> HeadSnapshot {
        let mut snapshot = HeadSnapshot::default();
        self.snapshot_into(tenant, &mut snapshot);
        snapshot
    }

    /// Tenants with traces in memory.
    pub fn tenants(&self) -> Vec<String> {
        self.shared.head.lock().tenants()
    }

    /// Starts the loop that completes idle traces and cuts blocks every `flush_check_period`.
    /// It ends at [`Ingester::shutdown`] or when the ingester is dropped.
    ///
    /// Beside it, a second loop builds the columns of sealed segments, so that building them
    /// (up to a core's worth under heavy ingest) never delays a sweep or a cut: segments it
    /// has not reached yet are read by decoding their pieces.
    pub fn spawn_background(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let period = self.config.flush_check_period;
        let cuts = every(
            period,
            Arc::downgrade(self),
            self.stop_background.subscribe(),
            |ingester| async move {
                Stage::Head.within(ingester.tick(Instant::now())).await;
            },
        );
        let builds = every(
            period,
            Arc::downgrade(self),
            self.stop_background.subscribe(),
            |ingester| async move {
                ingester.build_segment_columns().await;
                let now = Instant::now();
                let read_recently = ingester.head_read_at.lock().is_some_and(|read_at| {
                    now.saturating_duration_since(read_at) < LIVE_SEGMENTS_AFTER_READ
                });
                if read_recently {
                    ingester.build_live_segments(now).await;
                }
            },
        );
        tokio::spawn(async move {
            tokio::join!(cuts, builds);
            tracing::debug!("ingester background loops stopped");
        })
    }

    /// One round of the background loop, with `now` given so tests can move time.
    pub(crate) async fn tick(&self, now: Instant) {
        let (reason, freed) = {
            let mut head = self.shared.head.lock();
            head.sweep(
                now,
                self.config.trace_idle_period,
                self.config.max_block_duration,
            );
            head.seal_due(now, self.segment_bytes());
            let freed = head.expire_flushed(Some(now));
            let mut reason = head.cut_reason(
                now,
                self.config.max_block_duration,
                self.config.max_block_bytes,
            );
            let pressure_bytes = self.config.max_head_bytes / 10 * 8;
            if reason.is_none()
                && head.has_completed()
                && self.shared.bytes.load(Ordering::Acquire) >= pressure_bytes
            {
                reason = Some("max_head_bytes");
            }
            if reason.is_none() && head.has_flushing() {
                let retry_due = self
                    .retry
                    .lock()
                    .retry_at
                    .is_none_or(|retry_at| retry_at <= now);
                if retry_due {
                    reason = Some("retry");
                }
            }
            (reason, freed)
        };
        self.shared.release(freed);
        if let Some(reason) = reason {
            self.cut(reason, false).await;
        }
    }

    fn segment_bytes(&self) -> u64 {
        head::segment_bytes(self.config.max_block_bytes, self.config.max_head_bytes)
    }

    /// Builds the columns of every segment that lacks them, one after the other on the
    /// blocking pool (at most one core), so queries read recent traces as they read blocks.
    pub(crate) async fn build_segment_columns(&self) {
        let segments = self.shared.head.lock().segments_lacking_columns();
        for segment in segments {
            let building = Arc::clone(&segment);
            let built = tokio::task::spawn_blocking(move || {
                let _columns = Stage::HeadColumns.enter();
                building.build_columns();
            })
            .await;
            match built {
                Ok(()) => {
                    self.counters.segments_built.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => tracing::error!(%error, "building a head segment's columns failed"),
            }
        }
    }

    /// Copies the live traces quiet at `now` for [`head::LIVE_QUIET`] into live segments, one
    /// segment at a time on the blocking pool, so a query decodes only the traces that
    /// received spans in the last moments. Sealed segments go first (see
    /// [`Ingester::build_segment_columns`]): they are needed for the cut anyway.
    pub(crate) async fn build_live_segments(&self, now: Instant) {
        let groups =
            self.shared
                .head
                .lock()
                .quiet_live(now, head::LIVE_QUIET, self.segment_bytes());
        for group in groups {
            let built = tokio::task::spawn_blocking(move || {
                let _columns = Stage::HeadColumns.enter();
                group.build()
            })
            .await;
            match built {
                Ok(Some((tenant, segment, versions))) => {
                    self.shared.head.lock().add_live_segment(
                        &tenant,
                        segment,
                        &versions,
                        Instant::now(),
                    );
                    self.counters
                        .live_segments_built
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(None) => {}
                Err(error) => tracing::error!(%error, "building a live segment failed"),
            }
        }
    }

    /// Cuts blocks as described in the module documentation. With `complete_everything`,
    /// live traces are completed first (shutdown).
    async fn cut(&self, reason: &'static str, complete_everything: bool) -> CutOutcome {
        let _one_cut_at_a_time = self.cut_lock.lock().await;
        // A background round that raced with shutdown: the shutdown cut covers it.
        if self.shutting_down.load(Ordering::Acquire) && !complete_everything {
            return CutOutcome::default();
        }
        let mut outcome = CutOutcome::default();
        let new_sequence = match self.wal.rotate().await {
            Ok(sequence) => sequence,
            Err(error) => {
                tracing::error!(%error, reason, "cannot start a new wal segment; block cut postponed");
                return outcome;
            }
        };
        let cut_at = Instant::now();
        let (batches, carry_over) = {
            let mut head = self.shared.head.lock();
            if complete_everything {
                head.complete_all(cut_at);
            }
            head.cut(self.config.max_block_bytes, self.segment_bytes());
            (head.flushing_batches(), head.unflushed_records())
        };
        let mut wal_consistent = true;
        if !carry_over.is_empty() {
            let carried_pieces: usize = carry_over.iter().map(|record| record.pieces.len()).sum();
            match self.wal.carry_over(carry_over).await {
                Ok(()) => tracing::debug!(
                    pieces = carried_pieces,
                    "carried live traces into the new wal segment"
                ),
                Err(error) => {
                    tracing::error!(%error, "wal carry-over failed; keeping old segments");
                    wal_consistent = false;
                }
            }
        }
        let keep_until = match self.config.complete_block_timeout.is_zero() {
            true => None,
            false => Some(cut_at + self.config.complete_block_timeout),
        };
        let mut failed: Vec<Arc<FlushBatch>> = Vec::new();
        for batch in batches {
            match self.flush_batch(&batch).await {
                Ok(dropped) => {
                    outcome.blocks_flushed += 1;
                    let freed = self
                        .shared
                        .head
                        .lock()
                        .batch_flushed(&batch, keep_until, &dropped);
                    self.shared.release(freed);
                }
                Err(error) => {
                    outcome.blocks_failed += 1;
                    self.counters.flush_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(tenant = %batch.tenant, traces = batch.trace_count(), bytes = batch.bytes,
                        error = %format!("{error:#}"), "block write failed; keeping the traces and retrying");
                    failed.push(batch);
                }
            }
        }
        if failed.is_empty() {
            *self.retry.lock() = RetryState::default();
        } else {
            let records: Vec<_> = failed.iter().flat_map(|batch| batch.records()).collect();
            if let Err(error) = self.wal.carry_over(records).await {
                tracing::error!(%error, "wal carry-over of unwritten blocks failed; keeping old segments");
                wal_consistent = false;
            }
            let mut retry = self.retry.lock();
            retry.consecutive_failures = retry.consecutive_failures.saturating_add(1);
            let backoff =
                Duration::from_secs(1u64 << retry.consecutive_failures.min(6).saturating_sub(1))
                    .min(MAX_RETRY_BACKOFF);
            retry.retry_at = Some(Instant::now() + backoff);
        }
        if wal_consistent {
            match self.wal.delete_before(new_sequence).await {
                Ok(deleted) => {
                    outcome.wal_compacted = true;
                    tracing::debug!(
                        deleted_segments = deleted,
                        "deleted wal segments covered by blocks and carry-over"
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot delete old wal segments; they replay as duplicates")
                }
            }
        }
        tracing::info!(
            reason,
            blocks = outcome.blocks_flushed,
            failed = outcome.blocks_failed,
            wal_compacted = outcome.wal_compacted,
            "cut blocks"
        );
        outcome
    }

    /// Writes one batch as a block, leaving out the traces sampling drops; answers their IDs.
    async fn flush_batch(
        &self,
        batch: &Arc<FlushBatch>,
    ) -> Result<HashSet<TraceId>, anyhow::Error> {
        let decoding = batch.clone();
        let sampler = self.sampler.clone();
        // Decoding, combining and sampling are CPU work proportional to the block.
        let (traces, sampled) = tokio::task::spawn_blocking(move || {
            let _head = Stage::Head.enter();
            let traces = decoding.decode();
            match sampler {
                Some(sampler) => sampler.sample_batch(&decoding.tenant, traces),
                None => (traces, BatchSampling::default()),
            }
        })
        .await?;
        let dropped_count = sampled.dropped.len();
        if !traces.is_empty() {
            let trace_count = traces.len();
            let meta = self.sink.write_block(&batch.tenant, traces).await?;
            self.counters.blocks_flushed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(tenant = %batch.tenant, block_id = %meta.block_id, traces = trace_count,
                dropped_by_sampling = dropped_count, head_bytes = batch.bytes, "wrote block");
        } else if dropped_count > 0 {
            tracing::info!(tenant = %batch.tenant, dropped_by_sampling = dropped_count,
                "sampling dropped every trace of a cut; no block written");
        }
        // Counted once the batch is done, so a retried write does not count twice.
        if let Some(sampler) = &self.sampler {
            sampler.record(&sampled.stats);
        }
        Ok(sampled.dropped)
    }

    /// Stops accepting pushes, writes every trace in memory to blocks (whatever cannot be
    /// written stays in the log for the next start), and stops the log writer.
    pub async fn shutdown(&self) {
        if self.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.stop_background.send(true);
        let outcome = self.cut("shutdown", true).await;
        if outcome.blocks_failed > 0 || !outcome.wal_compacted {
            tracing::warn!(
                failed_blocks = outcome.blocks_failed,
                "some traces stay in the wal until the next start"
            );
        }
        if !self.wal.stop().await {
            tracing::error!("the wal writer thread panicked");
        }
        tracing::info!("ingester stopped");
    }

    /// Counters and gauges for `/metrics`.
    pub fn stats(&self) -> IngesterStats {
        let counts = self.shared.head.lock().counts();
        IngesterStats {
            tenants: counts.tenants,
            live_traces: counts.live_traces,
            completed_traces: counts.completed_traces,
            flushing_traces: counts.flushing_traces,
            flushed_traces_kept: counts.flushed_traces,
            head_segments: counts.segments,
            head_segment_column_bytes: counts.segment_column_bytes,
            head_bytes: self.shared.bytes.load(Ordering::Relaxed),
            wal_bytes_written: self.wal.counters().bytes_written.load(Ordering::Relaxed),
            wal_disk_bytes: self.wal.counters().disk_bytes.load(Ordering::Relaxed),
            wal_segments: self.wal.counters().segments.load(Ordering::Relaxed),
            wal_syncs: self.wal.counters().syncs.load(Ordering::Relaxed),
            wal_write_failures: self.wal.counters().write_failures.load(Ordering::Relaxed),
            blocks_flushed: self.counters.blocks_flushed.load(Ordering::Relaxed),
            head_segments_built: self.counters.segments_built.load(Ordering::Relaxed),
            head_live_segments: counts.live_segments,
            head_live_segment_column_bytes: counts.live_segment_column_bytes,
            head_live_segments_built: self.counters.live_segments_built.load(Ordering::Relaxed),
            flush_failures: self.counters.flush_failures.load(Ordering::Relaxed),
            pushes_accepted: self.counters.pushes_accepted.load(Ordering::Relaxed),
            pushes_refused: self.counters.pushes_refused.load(Ordering::Relaxed),
            replayed_records: self.counters.replayed_records.load(Ordering::Relaxed),
            wal_truncated_bytes: self.counters.wal_truncated_bytes.load(Ordering::Relaxed),
            sampling: self
                .sampler
                .as_ref()
                .map(|sampler| sampler.stats())
                .unwrap_or_default(),
        }
    }
}

/// Runs `round` on `owner` (the ingester, the log store) every `period`, one round after the
/// other, until `stop` turns true or the owner is dropped (the loop holds a weak handle, so it
/// does not keep a dropped owner alive).
pub(crate) async fn every<T, F, R>(
    period: Duration,
    owner: std::sync::Weak<T>,
    mut stop: watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut(Arc<T>) -> R,
    R: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let Some(owner) = owner.upgrade() else {
            break;
        };
        round(owner).await;
    }
}

/// Blocking start-up: create, lock and replay the log directory into the head, then start the
/// writer.
fn open_wal(
    dir: &Path,
    shared: Arc<SharedHead>,
    options: WriterOptions,
    budget: Budget,
) -> Result<(Wal, wal::ReplayReport), wal::OpenError> {
    let replayed_at = Instant::now();
    let mut replayed_bytes = 0;
    let mut seen = head::ReplaySeen::default();
    let opened = {
        let mut head = shared.head.lock();
        let target: Arc<dyn AppendTarget> = shared.clone();
        Wal::open("wal", dir, options, budget, target, |record| {
            replayed_bytes +=
                head.append_replayed(&record.tenant, record.pieces, replayed_at, &mut seen);
        })?
    };
    shared.bytes.fetch_add(replayed_bytes, Ordering::AcqRel);
    Ok(opened)
}

#[cfg(test)]
mod tests;
