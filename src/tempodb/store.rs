//! The block store: writes blocks in Tempo's layout, keeps the list of live blocks per tenant
//! (its own and those others wrote to the same bucket), and finds traces by ID across blocks.
//!
//! Write order is Tempo's: `data.parquet` → `bloom-0..N-1` → `index` → `meta.json`, so a block
//! is visible to any reader (vivace or Tempo) only once it is complete.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use parking_lot::RwLock;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::backend::{
    block_path, build_object_store, classify_block_key, object_path, tenant_path, BlockMarker,
    ConfigError, InvalidTenant, StorageConfig, DATA_OBJECT, INDEX_OBJECT, META_OBJECT,
};
use super::bloom::{self, BloomShard, ShardedBloom};
use super::cache::ByteLru;
use super::index::RowGroupIndex;
use super::meta::{time_from_unix_nano, BlockMeta, DedicatedColumn, FORMAT_VPARQUET4};
use super::reader::{fetch_footer_tail, FooterTail, ObjectChunkReader, OpenError};
use super::vparquet4::pushdown::{Decode, Decoded, PushdownStats};
use super::vparquet4::{self, VParquetError, WriterOptions};
use crate::model::{combine, Trace, TraceId};
use crate::telemetry::stage::Stage;
use crate::traceql::columns::SpanFields;
use crate::traceql::prefilter::{Needs, TraceFilter};
use parquet::file::metadata::ParquetMetaData;

/// Objects up to this size are written with one PUT; larger ones as multipart uploads, so a
/// failed part is retried alone and no single request carries a whole block.
const SINGLE_PUT_BYTES: usize = 16 * 1024 * 1024;
/// Part size of multipart uploads.
const MULTIPART_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const MULTIPART_CONCURRENCY: usize = 4;
/// Bucket folder corrupt blocks are moved to at startup (`quarantine/<tenant>/<block>/…`);
/// never listed as a tenant.
pub const QUARANTINE_PREFIX: &str = "quarantine";

/// Small objects (bloom shards, meta.json of new blocks) fetched or written at once.
const SMALL_OBJECT_CONCURRENCY: usize = 8;
/// Blocks of one lookup examined at once (the store-wide bound is `max_concurrent_block_reads`).
const BLOCKS_PER_LOOKUP: usize = 8;

/// A filtered block read's figures and the parsed footer to cache.
type FilteredRead = (PushdownStats, Arc<ParquetMetaData>);

/// Where a filtered block read hands what it decodes, a batch at a time; the read stops when
/// the receiving side is dropped.
pub type DecodedBatches = tokio::sync::mpsc::Sender<Decoded>;

/// What a filtered block read decodes of the rows that pass (an owned [`Decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockDecode {
    /// Whole traces; of the optional parts, only what the `Needs` names.
    Traces(Needs),
    /// Only these span fields, as columns (whole traces, with `needs`, where a row group's
    /// columns do not suffice).
    Columns { fields: SpanFields, needs: Needs },
}

impl BlockDecode {
    pub(crate) fn borrowed(&self) -> Decode<'_> {
        match self {
            BlockDecode::Traces(needs) => Decode::Traces(needs),
            BlockDecode::Columns { fields, needs } => Decode::Columns { fields, needs },
        }
    }
}

/// Parses (or reuses) the footer and streams the rows of a block that may pass `filter` into
/// `batches` (blocking the calling thread while the channel is full).
fn decode_filtered<R: parquet::file::reader::ChunkReader + 'static>(
    reader: R,
    cached_metadata: Option<Arc<ParquetMetaData>>,
    dedicated: &[DedicatedColumn],
    filter: &TraceFilter,
    decode: &BlockDecode,
    batches: &DecodedBatches,
) -> Result<FilteredRead, VParquetError> {
    let metadata = match cached_metadata {
        Some(metadata) => metadata,
        None => vparquet4::read_metadata(&reader)?,
    };
    let stats = vparquet4::pushdown::stream_filtered(
        reader,
        &metadata,
        dedicated,
        filter,
        decode.borrowed(),
        &mut |batch| batches.blocking_send(batch).is_ok(),
    )?;
    Ok((stats, metadata))
}

/// What went wrong in the store; messages name the tenant and block involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The tenant cannot name a folder of the bucket.
    #[error(transparent)]
    InvalidTenant(#[from] InvalidTenant),
    /// `write_block` was given no traces.
    #[error("tenant {tenant:?}: refusing to write a block without traces")]
    EmptyBlock {
        /// The tenant.
        tenant: String,
    },
    /// The traces could not be encoded as vParquet4.
    #[error("tenant {tenant:?}: encoding block {block_id} failed: {source}")]
    Encode {
        /// The tenant.
        tenant: String,
        /// The block being written.
        block_id: Uuid,
        /// The encoder's reason.
        #[source]
        source: VParquetError,
    },
    /// The encoder produced a file that disagrees with its own description (a bug).
    #[error("tenant {tenant:?}: block {block_id} is inconsistent: {reason}")]
    Inconsistent {
        /// The tenant.
        tenant: String,
        /// The block.
        block_id: Uuid,
        /// What disagrees.
        reason: String,
    },
    /// Reading or writing one object failed.
    #[error("tenant {tenant:?}: block {block_id}: {operation} {object} failed: {source}")]
    Object {
        /// The tenant.
        tenant: String,
        /// The block.
        block_id: Uuid,
        /// The object name inside the block (`data.parquet`, `bloom-0`, …).
        object: String,
        /// `read` or `write`.
        operation: &'static str,
        /// The object store's reason.
        #[source]
        source: object_store::Error,
    },
    /// Listing the bucket failed.
    #[error("listing {what} failed: {source}")]
    List {
        /// What was being listed (the bucket root or a tenant).
        what: String,
        /// The object store's reason.
        #[source]
        source: object_store::Error,
    },
    /// A block's objects are not what its meta.json describes.
    #[error("tenant {tenant:?}: block {block_id} is corrupt: {reason}")]
    CorruptBlock {
        /// The tenant.
        tenant: String,
        /// The block.
        block_id: Uuid,
        /// What is wrong.
        reason: String,
    },
    /// The Parquet reader failed on a block.
    #[error("tenant {tenant:?}: reading block {block_id} failed: {source}")]
    Read {
        /// The tenant.
        tenant: String,
        /// The block.
        block_id: Uuid,
        /// The reader's reason.
        #[source]
        source: VParquetError,
    },
    /// A blocking task panicked or was cancelled.
    #[error("tenant {tenant:?}: {task} did not finish: {reason}")]
    Task {
        /// The tenant.
        tenant: String,
        /// What the task was doing.
        task: &'static str,
        /// The runtime's reason.
        reason: String,
    },
}

/// Counters of the store's work, for metrics. Monotonic; read them with [`StoreStats::snapshot`].
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Blocks written completely (meta.json included).
    pub blocks_flushed: AtomicU64,
    /// Bytes of all objects written (data, blooms, index, meta).
    pub bytes_written: AtomicU64,
    /// Traces written into blocks.
    pub traces_written: AtomicU64,
    /// `find_trace_by_id` calls.
    pub lookups: AtomicU64,
    /// Blocks a lookup skipped because their bloom filter ruled the ID out.
    pub bloom_skips: AtomicU64,
    /// Blocks whose data a lookup had to read.
    pub block_reads: AtomicU64,
    /// Bloom shards served from memory.
    pub bloom_cache_hits: AtomicU64,
    /// Bloom shards fetched from the bucket.
    pub bloom_cache_misses: AtomicU64,
    /// Parquet footers served from memory.
    pub footer_cache_hits: AtomicU64,
    /// Parquet footers fetched from the bucket.
    pub footer_cache_misses: AtomicU64,
    /// Ranged reads of `data.parquet` beyond the footer.
    pub data_requests: AtomicU64,
    /// Bucket listings completed.
    pub polls: AtomicU64,
    /// Bucket listings that failed in whole or in part.
    pub poll_errors: AtomicU64,
    /// Blocks in the bucket that cannot be read (bad meta.json, unsupported format).
    pub unreadable_blocks: AtomicU64,
    /// Blocks found corrupt at startup and moved under `quarantine/`.
    pub quarantined_blocks: AtomicU64,
}

/// A copy of [`StoreStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStatsSnapshot {
    /// See [`StoreStats::blocks_flushed`].
    pub blocks_flushed: u64,
    /// See [`StoreStats::bytes_written`].
    pub bytes_written: u64,
    /// See [`StoreStats::traces_written`].
    pub traces_written: u64,
    /// See [`StoreStats::lookups`].
    pub lookups: u64,
    /// See [`StoreStats::bloom_skips`].
    pub bloom_skips: u64,
    /// See [`StoreStats::block_reads`].
    pub block_reads: u64,
    /// See [`StoreStats::bloom_cache_hits`].
    pub bloom_cache_hits: u64,
    /// See [`StoreStats::bloom_cache_misses`].
    pub bloom_cache_misses: u64,
    /// See [`StoreStats::footer_cache_hits`].
    pub footer_cache_hits: u64,
    /// See [`StoreStats::footer_cache_misses`].
    pub footer_cache_misses: u64,
    /// See [`StoreStats::data_requests`].
    pub data_requests: u64,
    /// See [`StoreStats::polls`].
    pub polls: u64,
    /// See [`StoreStats::poll_errors`].
    pub poll_errors: u64,
    /// See [`StoreStats::unreadable_blocks`].
    pub unreadable_blocks: u64,
    /// See [`StoreStats::quarantined_blocks`].
    pub quarantined_blocks: u64,
}

impl StoreStats {
    /// The current values.
    pub fn snapshot(&self) -> StoreStatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StoreStatsSnapshot {
            blocks_flushed: read(&self.blocks_flushed),
            bytes_written: read(&self.bytes_written),
            traces_written: read(&self.traces_written),
            lookups: read(&self.lookups),
            bloom_skips: read(&self.bloom_skips),
            block_reads: read(&self.block_reads),
            bloom_cache_hits: read(&self.bloom_cache_hits),
            bloom_cache_misses: read(&self.bloom_cache_misses),
            footer_cache_hits: read(&self.footer_cache_hits),
            footer_cache_misses: read(&self.footer_cache_misses),
            data_requests: read(&self.data_requests),
            polls: read(&self.polls),
            poll_errors: read(&self.poll_errors),
            unreadable_blocks: read(&self.unreadable_blocks),
            quarantined_blocks: read(&self.quarantined_blocks),
        }
    }
}

fn increment(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// The blocks of one tenant.
#[derive(Default, Clone)]
struct TenantBlocks {
    /// Live blocks vivace can read, by ID.
    live: BTreeMap<Uuid, Arc<BlockMeta>>,
    /// Live blocks whose meta.json is invalid or whose format vivace cannot read; remembered so
    /// each poll does not fetch their meta.json again.
    unreadable: HashSet<Uuid>,
}

/// Tempo-compatible block storage on one object store.
pub struct Store {
    config: StorageConfig,
    backend: Arc<dyn ObjectStore>,
    dedicated_columns: Vec<DedicatedColumn>,
    blocklist: RwLock<HashMap<String, TenantBlocks>>,
    bloom_cache: ByteLru<(Uuid, u32), Arc<BloomShard>>,
    footer_cache: ByteLru<Uuid, FooterTail>,
    /// Parsed footers with page indexes: parsing a large block's page index costs more than
    /// the lookup itself.
    metadata_cache: ByteLru<Uuid, Arc<ParquetMetaData>>,
    block_reads: Semaphore,
    stats: StoreStats,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Store")
            .field("backend", &self.backend.to_string())
            .finish_non_exhaustive()
    }
}

/// A block encoded in memory, ready to upload.
struct EncodedBlock {
    data: Bytes,
    footer_size: u32,
    row_group_count: u32,
    start_unix_nano: u64,
    end_unix_nano: u64,
    trace_count: usize,
    blooms: Vec<Bytes>,
    index: Bytes,
}

impl Store {
    /// Builds the configured backend and lists the blocks already in it.
    pub async fn open(config: StorageConfig) -> Result<Store, StoreError> {
        config.validate()?;
        let backend = build_object_store(&config)?;
        Store::open_with_backend(config, backend).await
    }

    /// Like [`Store::open`] on a backend built elsewhere (tests, in-memory stores, wrappers);
    /// the config's backend sections are ignored.
    pub async fn open_with_backend(
        config: StorageConfig,
        backend: Arc<dyn ObjectStore>,
    ) -> Result<Store, StoreError> {
        config.validate()?;
        let store = Store {
            dedicated_columns: config.meta_dedicated_columns(),
            blocklist: RwLock::new(HashMap::new()),
            bloom_cache: ByteLru::new(config.bloom_cache_bytes),
            footer_cache: ByteLru::new(config.footer_cache_bytes),
            metadata_cache: ByteLru::new(config.footer_cache_bytes),
            block_reads: Semaphore::new(config.max_concurrent_block_reads),
            stats: StoreStats::default(),
            backend,
            config,
        };
        store.poll().await?;
        let tenants = store.tenants();
        let block_count: usize = tenants
            .iter()
            .map(|tenant| store.blocks(tenant).len())
            .sum();
        info!(backend = %store.backend, tenants = tenants.len(), blocks = block_count, "block store opened");
        Ok(store)
    }

    /// The object store blocks live in (with the configured prefix applied).
    pub fn backend(&self) -> &Arc<dyn ObjectStore> {
        &self.backend
    }

    /// The store's counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// The live, readable blocks of a tenant, ordered by block ID.
    pub fn blocks(&self, tenant: &str) -> Vec<BlockMeta> {
        let blocklist = self.blocklist.read();
        blocklist
            .get(tenant)
            .map(|blocks| {
                blocks
                    .live
                    .values()
                    .map(|meta| BlockMeta::clone(meta))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Tenants with at least one live, readable block, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let blocklist = self.blocklist.read();
        let mut tenants: Vec<String> = blocklist
            .iter()
            .filter(|(_, blocks)| !blocks.live.is_empty())
            .map(|(tenant, _)| tenant.clone())
            .collect();
        tenants.sort();
        tenants
    }

    /// Writes one block holding `traces`: sorted by ID, pieces of the same trace combined,
    /// encoded as vParquet4 off the async runtime, then uploaded in Tempo's order with
    /// meta.json last. The block is listed in [`Store::blocks`] once this returns.
    pub async fn write_block(
        &self,
        tenant: &str,
        traces: Vec<(TraceId, Trace)>,
    ) -> Result<BlockMeta, StoreError> {
        let dedicated = self.dedicated_columns.clone();
        self.write_block_with(tenant, traces, 0, dedicated, None, Stage::BlockEncode)
            .await
    }

    /// [`Store::write_block`] with the compaction level and dedicated columns given: the
    /// compactor writes its output at the inputs' level + 1 with the inputs' columns. The
    /// encoding's CPU is charged to `encode_stage` (a cut's bloom and index to
    /// [`Stage::BloomIndex`]), the upload's to [`Stage::Upload`].
    pub(crate) async fn write_block_with(
        &self,
        tenant: &str,
        traces: Vec<(TraceId, Trace)>,
        compaction_level: u32,
        dedicated: Vec<DedicatedColumn>,
        retention_tier: Option<String>,
        encode_stage: Stage,
    ) -> Result<BlockMeta, StoreError> {
        let tenant_key = tenant_path(tenant)?;
        if traces.is_empty() {
            return Err(StoreError::EmptyBlock {
                tenant: tenant.to_string(),
            });
        }
        let started = Instant::now();
        let block_id = Uuid::new_v4();
        let meta_dedicated = dedicated.clone();
        let options = WriterOptions {
            row_group_size_bytes: self.config.row_group_size_bytes,
            ..WriterOptions::default()
        };
        let false_positive = self.config.bloom_filter_false_positive;
        let shard_size = self.config.bloom_filter_shard_size_bytes;
        let encoded = tokio::task::spawn_blocking(move || {
            encode_block(
                traces,
                &dedicated,
                &options,
                false_positive,
                shard_size,
                encode_stage,
            )
        })
        .await
        .map_err(|error| StoreError::Task {
            tenant: tenant.to_string(),
            task: "block encoding",
            reason: error.to_string(),
        })?
        .map_err(|source| StoreError::Encode {
            tenant: tenant.to_string(),
            block_id,
            source,
        })?;
        check_footer(&encoded).map_err(|reason| StoreError::Inconsistent {
            tenant: tenant.to_string(),
            block_id,
            reason,
        })?;
        let encode_time = started.elapsed();

        let meta = BlockMeta {
            format: FORMAT_VPARQUET4.to_string(),
            block_id,
            tenant_id: tenant.to_string(),
            start_time: time_from_unix_nano(encoded.start_unix_nano),
            end_time: time_from_unix_nano(encoded.end_unix_nano),
            total_objects: encoded.trace_count as i64,
            size: encoded.data.len() as u64,
            compaction_level,
            index_page_size: 0,
            total_records: encoded.row_group_count,
            bloom_shards: encoded.blooms.len() as u32,
            footer_size: encoded.footer_size,
            dedicated_columns: meta_dedicated,
            replication_factor: 1,
            retention_tier,
        };
        let bytes_written = match Stage::Upload
            .within(self.upload_block(tenant, &tenant_key, &meta, &encoded))
            .await
        {
            Ok(bytes_written) => bytes_written,
            Err(error) => {
                self.remove_partial_block(&tenant_key, &meta).await;
                return Err(error);
            }
        };

        increment(&self.stats.blocks_flushed, 1);
        increment(&self.stats.bytes_written, bytes_written);
        increment(&self.stats.traces_written, encoded.trace_count as u64);
        self.blocklist
            .write()
            .entry(tenant.to_string())
            .or_default()
            .live
            .insert(block_id, Arc::new(meta.clone()));
        info!(
            tenant,
            block = %block_id,
            traces = encoded.trace_count,
            row_groups = encoded.row_group_count,
            bytes = bytes_written,
            encode_ms = encode_time.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "block written"
        );
        Ok(meta)
    }

    /// Uploads a block's objects in Tempo's order; returns the bytes written.
    async fn upload_block(
        &self,
        tenant: &str,
        tenant_key: &Path,
        meta: &BlockMeta,
        encoded: &EncodedBlock,
    ) -> Result<u64, StoreError> {
        let block_id = meta.block_id;
        let object_error = |object: &str, source| StoreError::Object {
            tenant: tenant.to_string(),
            block_id,
            object: object.to_string(),
            operation: "write",
            source,
        };
        let mut bytes_written = 0u64;

        let data_path = object_path(tenant_key, &block_id, DATA_OBJECT);
        self.put_large(&data_path, encoded.data.clone())
            .await
            .map_err(|source| object_error(DATA_OBJECT, source))?;
        bytes_written += encoded.data.len() as u64;

        // Collected first so the futures own everything they use: a lazily mapped iterator
        // borrowing the shard list makes the whole write future fail `Send`'s lifetime check.
        let backend = &self.backend;
        let bloom_uploads: Vec<_> = encoded
            .blooms
            .iter()
            .enumerate()
            .map(|(shard, bytes)| {
                let name = bloom::shard_object_name(shard as u32);
                let path = object_path(tenant_key, &block_id, &name);
                let payload = PutPayload::from_bytes(bytes.clone());
                async move {
                    backend
                        .put(&path, payload)
                        .await
                        .map_err(|source| (name, source))
                }
            })
            .collect();
        futures::stream::iter(bloom_uploads)
            .buffer_unordered(SMALL_OBJECT_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|(name, source)| object_error(&name, source))?;
        bytes_written += encoded
            .blooms
            .iter()
            .map(|bytes| bytes.len() as u64)
            .sum::<u64>();

        let index_path = object_path(tenant_key, &block_id, INDEX_OBJECT);
        self.backend
            .put(&index_path, PutPayload::from_bytes(encoded.index.clone()))
            .await
            .map_err(|source| object_error(INDEX_OBJECT, source))?;
        bytes_written += encoded.index.len() as u64;

        // Last: from here on the block is visible to every reader of the bucket.
        let meta_json = Bytes::from(meta.to_json());
        let meta_path = object_path(tenant_key, &block_id, META_OBJECT);
        bytes_written += meta_json.len() as u64;
        self.backend
            .put(&meta_path, PutPayload::from_bytes(meta_json))
            .await
            .map_err(|source| object_error(META_OBJECT, source))?;
        Ok(bytes_written)
    }

    async fn put_large(&self, path: &Path, data: Bytes) -> object_store::Result<()> {
        if data.len() <= SINGLE_PUT_BYTES {
            self.backend.put(path, PutPayload::from_bytes(data)).await?;
            return Ok(());
        }
        let upload = self.backend.put_multipart(path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK_BYTES);
        let mut offset = 0;
        while offset < data.len() {
            let end = (offset + MULTIPART_CHUNK_BYTES).min(data.len());
            if let Err(error) = writer.wait_for_capacity(MULTIPART_CONCURRENCY).await {
                // Best effort: an unfinished upload only costs storage until the bucket expires it.
                let _ = writer.abort().await;
                return Err(error);
            }
            writer.put(data.slice(offset..end));
            offset = end;
        }
        writer.finish().await?;
        Ok(())
    }

    /// After a failed write, removes what was uploaded so no meta-less debris stays behind
    /// (Tempo's retention only deletes blocks it can see). Failures are only logged: the
    /// objects are invisible without meta.json either way.
    async fn remove_partial_block(&self, tenant_key: &Path, meta: &BlockMeta) {
        let mut objects = vec![
            DATA_OBJECT.to_string(),
            INDEX_OBJECT.to_string(),
            META_OBJECT.to_string(),
        ];
        objects.extend((0..meta.bloom_shards).map(bloom::shard_object_name));
        for object in objects {
            let path = object_path(tenant_key, &meta.block_id, &object);
            match self.backend.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    warn!(tenant = %meta.tenant_id, block = %meta.block_id, object, %error, "cannot remove object of a failed block write")
                }
            }
        }
    }

    /// The trace with this ID from every block of the tenant overlapping `start_end` (Unix
    /// nanoseconds, inclusive; all blocks when `None`), pieces from several blocks combined.
    pub async fn find_trace_by_id(
        &self,
        tenant: &str,
        id: &TraceId,
        start_end: Option<(u64, u64)>,
    ) -> Result<Option<Trace>, StoreError> {
        let tenant_key = tenant_path(tenant)?;
        increment(&self.stats.lookups, 1);
        let started = Instant::now();
        let candidates: Vec<Arc<BlockMeta>> = {
            let blocklist = self.blocklist.read();
            match blocklist.get(tenant) {
                Some(blocks) => blocks
                    .live
                    .values()
                    .filter(|meta| start_end.is_none_or(|(start, end)| meta.overlaps(start, end)))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            }
        };
        let candidate_count = candidates.len();
        let lookups = candidates.into_iter().map(|meta| {
            let tenant_key = tenant_key.clone();
            async move { self.find_in_block(tenant, &tenant_key, &meta, id).await }
        });
        let found: Vec<Option<Trace>> = futures::stream::iter(lookups)
            .buffer_unordered(BLOCKS_PER_LOOKUP)
            .try_collect()
            .await?;
        let mut parts: Vec<Trace> = found.into_iter().flatten().collect();
        debug!(
            tenant,
            trace = %id,
            blocks = candidate_count,
            found_in = parts.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "trace lookup"
        );
        let trace = match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(combine(parts)),
        };
        Ok(trace)
    }

    /// Looks the ID up in one block: bloom first, then the Parquet data on a blocking thread.
    async fn find_in_block(
        &self,
        tenant: &str,
        tenant_key: &Path,
        meta: &BlockMeta,
        id: &TraceId,
    ) -> Result<Option<Trace>, StoreError> {
        let block_id = meta.block_id;
        // The semaphore is never closed, so acquiring only fails if it were.
        let _permit = self
            .block_reads
            .acquire()
            .await
            .map_err(|error| StoreError::Task {
                tenant: tenant.to_string(),
                task: "block lookup",
                reason: error.to_string(),
            })?;
        let shard = bloom::shard_for(id.as_bytes(), meta.effective_bloom_shards());
        match self.bloom_shard(tenant, tenant_key, block_id, shard).await {
            Ok(filter) if !filter.test(id.as_bytes()) => {
                increment(&self.stats.bloom_skips, 1);
                return Ok(None);
            }
            Ok(_) => {}
            Err(StoreError::Object {
                source: object_store::Error::NotFound { .. },
                ..
            }) => {
                if self.forget_if_gone(tenant, tenant_key, block_id).await {
                    return Ok(None);
                }
                // A live block without its bloom: slower, still correct.
                warn!(tenant, block = %block_id, shard, "bloom shard missing, reading the block's data");
            }
            Err(error) => return Err(error),
        }

        increment(&self.stats.block_reads, 1);
        let Some(reader) = self.data_reader(tenant, tenant_key, meta).await? else {
            return Ok(None);
        };
        let request_counter = reader.clone();
        let dedicated = meta.dedicated_columns.clone();
        let trace_id = *id;
        let started = Instant::now();
        let cached_metadata = self.metadata_cache.get(&block_id);
        let result = tokio::task::spawn_blocking(move || {
            let metadata = match cached_metadata {
                Some(metadata) => metadata,
                None => vparquet4::read_metadata(&reader)?,
            };
            let found =
                vparquet4::find_trace_with_metadata(reader, &metadata, &trace_id, &dedicated)?;
            Ok::<_, VParquetError>((found, metadata))
        })
        .await
        .map_err(|error| StoreError::Task {
            tenant: tenant.to_string(),
            task: "block read",
            reason: error.to_string(),
        })?;
        increment(&self.stats.data_requests, request_counter.request_count());
        debug!(
            tenant,
            block = %block_id,
            trace = %id,
            requests = request_counter.request_count(),
            found = matches!(result, Ok((Some(_), _))),
            elapsed_us = started.elapsed().as_micros() as u64,
            "block read"
        );
        match result {
            Ok((found, metadata)) => {
                let weight = metadata.memory_size();
                self.metadata_cache.insert(block_id, metadata, weight);
                Ok(found)
            }
            Err(_) if request_counter.object_missing() => {
                if self.forget_if_gone(tenant, tenant_key, block_id).await {
                    return Ok(None);
                }
                Err(StoreError::CorruptBlock {
                    tenant: tenant.to_string(),
                    block_id,
                    reason: format!("{DATA_OBJECT} is missing but meta.json is not"),
                })
            }
            Err(source) => Err(StoreError::Read {
                tenant: tenant.to_string(),
                block_id,
                source,
            }),
        }
    }

    /// A ranged reader of a block's `data.parquet` with its footer region fetched (cached per
    /// block). `None` when the block was deleted meanwhile (and is now forgotten).
    async fn data_reader(
        &self,
        tenant: &str,
        tenant_key: &Path,
        meta: &BlockMeta,
    ) -> Result<Option<ObjectChunkReader>, StoreError> {
        let block_id = meta.block_id;
        let data_path = object_path(tenant_key, &block_id, DATA_OBJECT);
        let object_error = |source| StoreError::Object {
            tenant: tenant.to_string(),
            block_id,
            object: DATA_OBJECT.to_string(),
            operation: "read",
            source,
        };
        let size = if meta.size > 0 {
            meta.size
        } else {
            // Blocks from before `size` was recorded.
            self.backend
                .head(&data_path)
                .await
                .map_err(object_error)?
                .size
        };
        let tail = match self.footer_cache.get(&block_id) {
            Some(tail) => {
                increment(&self.stats.footer_cache_hits, 1);
                tail
            }
            None => {
                increment(&self.stats.footer_cache_misses, 1);
                let fetched =
                    fetch_footer_tail(self.backend.as_ref(), &data_path, size, meta.footer_size)
                        .await;
                let (tail, _) = match fetched {
                    Ok(fetched) => fetched,
                    Err(OpenError::Store(object_store::Error::NotFound { .. }))
                        if self.forget_if_gone(tenant, tenant_key, block_id).await =>
                    {
                        return Ok(None);
                    }
                    Err(OpenError::Store(source)) => return Err(object_error(source)),
                    Err(OpenError::Corrupt(reason)) => {
                        return Err(StoreError::CorruptBlock {
                            tenant: tenant.to_string(),
                            block_id,
                            reason,
                        })
                    }
                };
                self.footer_cache
                    .insert(block_id, tail.clone(), tail.size_bytes());
                tail
            }
        };

        let reader = ObjectChunkReader::new(
            self.backend.clone(),
            data_path,
            size,
            tail,
            tokio::runtime::Handle::current(),
        );
        Ok(Some(reader))
    }

    /// Streams the traces of a block that may pass `filter` (every trace for
    /// [`TraceFilter::True`]) into `batches` as they are decoded: column statistics,
    /// dictionaries and the page index rule out row groups and pages, and only candidate rows
    /// are decoded (`vparquet4::pushdown`). Only the byte ranges those passes touch are
    /// fetched. Of the traces, only what `needs` names beyond the well-known columns is
    /// decoded (attribute lists, events, links). Dropping the receiver stops the read at the
    /// next batch, in the middle of a row group if need be.
    pub async fn read_block_filtered(
        &self,
        meta: &BlockMeta,
        filter: Arc<TraceFilter>,
        decode: BlockDecode,
        batches: DecodedBatches,
    ) -> Result<PushdownStats, StoreError> {
        let tenant = meta.tenant_id.as_str();
        let tenant_key = tenant_path(tenant)?;
        let block_id = meta.block_id;
        let dedicated = meta.dedicated_columns.clone();
        let cached_metadata = self.metadata_cache.get(&block_id);
        let task_error = |error: tokio::task::JoinError| StoreError::Task {
            tenant: tenant.to_string(),
            task: "block search",
            reason: error.to_string(),
        };
        if filter.is_true() && decode == BlockDecode::Traces(Needs::ALL) {
            // Everything is decoded: one GET of the whole object beats ranged reads. A
            // projection reads only its columns' chunks, in a few coalesced ranged reads.
            let path = object_path(&tenant_key, &block_id, DATA_OBJECT);
            let object_error = |source| StoreError::Object {
                tenant: tenant.to_string(),
                block_id,
                object: DATA_OBJECT.to_string(),
                operation: "read",
                source,
            };
            let bytes = match self.backend.get(&path).await {
                Ok(object) => object.bytes().await.map_err(object_error)?,
                Err(object_store::Error::NotFound { .. })
                    if self.forget_if_gone(tenant, &tenant_key, block_id).await =>
                {
                    return Ok(PushdownStats::default());
                }
                Err(source) => return Err(object_error(source)),
            };
            let result = tokio::task::spawn_blocking(move || {
                decode_filtered(
                    bytes,
                    cached_metadata,
                    &dedicated,
                    &filter,
                    &decode,
                    &batches,
                )
            })
            .await
            .map_err(task_error)?;
            return self.finish_filtered_read(tenant, block_id, result).await;
        }
        let Some(reader) = self.data_reader(tenant, &tenant_key, meta).await? else {
            return Ok(PushdownStats::default());
        };
        let request_counter = reader.clone();
        let result = tokio::task::spawn_blocking(move || {
            decode_filtered(
                reader,
                cached_metadata,
                &dedicated,
                &filter,
                &decode,
                &batches,
            )
        })
        .await
        .map_err(task_error)?;
        increment(&self.stats.data_requests, request_counter.request_count());
        if result.is_err() && request_counter.object_missing() {
            if self.forget_if_gone(tenant, &tenant_key, block_id).await {
                return Ok(PushdownStats::default());
            }
            return Err(StoreError::CorruptBlock {
                tenant: tenant.to_string(),
                block_id,
                reason: format!("{DATA_OBJECT} is missing but meta.json is not"),
            });
        }
        self.finish_filtered_read(tenant, block_id, result).await
    }

    /// Caches the parsed footer of a filtered read and names the block in its error (async
    /// only to share the error type of its callers).
    async fn finish_filtered_read(
        &self,
        tenant: &str,
        block_id: Uuid,
        result: Result<FilteredRead, VParquetError>,
    ) -> Result<PushdownStats, StoreError> {
        match result {
            Ok((stats, metadata)) => {
                let weight = metadata.memory_size();
                self.metadata_cache.insert(block_id, metadata, weight);
                Ok(stats)
            }
            Err(source) => Err(StoreError::Read {
                tenant: tenant.to_string(),
                block_id,
                source,
            }),
        }
    }

    /// One bloom shard of a block, from the cache or the bucket.
    async fn bloom_shard(
        &self,
        tenant: &str,
        tenant_key: &Path,
        block_id: Uuid,
        shard: u32,
    ) -> Result<Arc<BloomShard>, StoreError> {
        if let Some(filter) = self.bloom_cache.get(&(block_id, shard)) {
            increment(&self.stats.bloom_cache_hits, 1);
            return Ok(filter);
        }
        increment(&self.stats.bloom_cache_misses, 1);
        let name = bloom::shard_object_name(shard);
        let path = object_path(tenant_key, &block_id, &name);
        let object_error = |source| StoreError::Object {
            tenant: tenant.to_string(),
            block_id,
            object: name.clone(),
            operation: "read",
            source,
        };
        let bytes = self
            .backend
            .get(&path)
            .await
            .map_err(object_error)?
            .bytes()
            .await
            .map_err(object_error)?;
        let filter = BloomShard::from_bytes(&bytes).map_err(|error| StoreError::CorruptBlock {
            tenant: tenant.to_string(),
            block_id,
            reason: format!("{name}: {error}"),
        })?;
        let filter = Arc::new(filter);
        self.bloom_cache
            .insert((block_id, shard), filter.clone(), filter.size_bytes());
        Ok(filter)
    }

    /// When an object of a listed block is missing, checks whether the block itself is gone
    /// (compacted or deleted by another writer since the last poll); if so drops it from the
    /// list and reports true, so the lookup skips it instead of failing.
    async fn forget_if_gone(&self, tenant: &str, tenant_key: &Path, block_id: Uuid) -> bool {
        let meta_path = object_path(tenant_key, &block_id, META_OBJECT);
        match self.backend.head(&meta_path).await {
            Err(object_store::Error::NotFound { .. }) => {
                info!(tenant, block = %block_id, "block disappeared from the bucket; dropping it");
                if let Some(blocks) = self.blocklist.write().get_mut(tenant) {
                    blocks.live.remove(&block_id);
                }
                self.forget_cached(&[block_id]);
                true
            }
            _ => false,
        }
    }

    /// Drops a block from the block list (it was compacted or expired by this store).
    pub(crate) fn forget_block(&self, tenant: &str, block_id: Uuid) {
        if let Some(blocks) = self.blocklist.write().get_mut(tenant) {
            blocks.live.remove(&block_id);
        }
        self.forget_cached(&[block_id]);
    }

    fn forget_cached(&self, block_ids: &[Uuid]) {
        if block_ids.is_empty() {
            return;
        }
        let gone: HashSet<Uuid> = block_ids.iter().copied().collect();
        self.bloom_cache
            .remove_where(|(block_id, _)| gone.contains(block_id));
        self.footer_cache
            .remove_where(|block_id| gone.contains(block_id));
        self.metadata_cache
            .remove_where(|block_id| gone.contains(block_id));
    }

    /// Re-lists the bucket. Only `<tenant>/<uuid>/meta.json` defines a live block; blocks with
    /// `meta.compacted.json`, non-UUID folders and objects at the root are ignored. New blocks
    /// (from Tempo or another vivace) appear, vanished or compacted ones are dropped. A tenant
    /// whose listing fails keeps its previous blocks, and the first error is returned.
    pub async fn poll(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let root = match self.backend.list_with_delimiter(None).await {
            Ok(root) => root,
            Err(source) => {
                increment(&self.stats.poll_errors, 1);
                return Err(StoreError::List {
                    what: "the bucket root".to_string(),
                    source,
                });
            }
        };
        let tenants: Vec<String> = root
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename().map(str::to_string))
            .filter(|tenant| tenant != QUARANTINE_PREFIX)
            .collect();
        let previous = self.blocklist.read().clone();
        let mut next: HashMap<String, TenantBlocks> = HashMap::new();
        let mut first_error = None;
        for tenant in tenants {
            let known = previous.get(&tenant).cloned().unwrap_or_default();
            match self.poll_tenant(&tenant, &known).await {
                Ok(blocks) => {
                    if !blocks.live.is_empty() || !blocks.unreadable.is_empty() {
                        next.insert(tenant, blocks);
                    }
                }
                Err(error) => {
                    warn!(tenant, %error, "listing tenant failed; keeping its previous blocks");
                    next.insert(tenant, known);
                    first_error.get_or_insert(error);
                }
            }
        }

        let mut vanished = Vec::new();
        let mut added = 0usize;
        {
            let mut blocklist = self.blocklist.write();
            // Blocks this store wrote while the listing ran are kept: they are complete.
            for (tenant, blocks) in blocklist.iter() {
                let before = previous.get(tenant);
                for (block_id, meta) in &blocks.live {
                    let written_meanwhile =
                        before.is_none_or(|before| !before.live.contains_key(block_id));
                    if written_meanwhile {
                        next.entry(tenant.clone())
                            .or_default()
                            .live
                            .entry(*block_id)
                            .or_insert_with(|| meta.clone());
                    }
                }
            }
            for (tenant, blocks) in &previous {
                for block_id in blocks.live.keys() {
                    if !next
                        .get(tenant)
                        .is_some_and(|now| now.live.contains_key(block_id))
                    {
                        vanished.push(*block_id);
                    }
                }
            }
            for (tenant, blocks) in &next {
                added += blocks
                    .live
                    .keys()
                    .filter(|block_id| {
                        !previous
                            .get(tenant)
                            .is_some_and(|before| before.live.contains_key(block_id))
                    })
                    .count();
            }
            *blocklist = next;
        }
        self.forget_cached(&vanished);
        increment(&self.stats.polls, 1);
        debug!(
            added,
            removed = vanished.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "blocklist polled"
        );
        match first_error {
            Some(error) => {
                increment(&self.stats.poll_errors, 1);
                Err(error)
            }
            None => Ok(()),
        }
    }

    /// Startup check of every block: meta.json parses, data.parquet has the size meta.json
    /// gives and ends in the Parquet magic, the bloom shards exist and the index (when present)
    /// parses. A corrupt block is moved under `quarantine/<tenant>/<block>/` (kept for a
    /// human to look at, never deleted), logged and counted; the others are served.
    /// Run by the binary at startup (`app`), after the store opened; returns how many blocks
    /// were quarantined.
    pub async fn verify_blocks(&self) -> usize {
        let mut quarantined = 0;
        let blocklist = self.blocklist.read().clone();
        for (tenant, blocks) in &blocklist {
            let Ok(tenant_key) = tenant_path(tenant) else {
                continue;
            };
            let mut corrupt = Vec::new();
            for (block_id, meta) in &blocks.live {
                if let Err(reason) = self.check_block(&tenant_key, *block_id, meta).await {
                    corrupt.push((*block_id, reason));
                }
            }
            for block_id in &blocks.unreadable {
                let path = object_path(&tenant_key, block_id, META_OBJECT);
                let parsed = match self.backend.get(&path).await {
                    Ok(result) => result
                        .bytes()
                        .await
                        .map(|bytes| BlockMeta::from_json(&bytes).err()),
                    Err(error) => Err(error),
                };
                if let Ok(Some(error)) = parsed {
                    corrupt.push((*block_id, format!("meta.json is invalid: {error}")));
                }
            }
            for (block_id, reason) in corrupt {
                match self.quarantine(&tenant_key, block_id).await {
                    Ok(moved) => {
                        increment(&self.stats.quarantined_blocks, 1);
                        quarantined += 1;
                        warn!(tenant, block = %block_id, reason, moved, "corrupt block moved to quarantine/");
                        let mut blocklist = self.blocklist.write();
                        if let Some(blocks) = blocklist.get_mut(tenant) {
                            blocks.live.remove(&block_id);
                            blocks.unreadable.remove(&block_id);
                        }
                    }
                    Err(error) => {
                        warn!(tenant, block = %block_id, reason, %error, "corrupt block could not be quarantined");
                    }
                }
            }
        }
        quarantined
    }

    /// Cheap checks of one block's objects against its meta.json.
    async fn check_block(
        &self,
        tenant_key: &Path,
        block_id: Uuid,
        meta: &BlockMeta,
    ) -> Result<(), String> {
        let data = object_path(tenant_key, &block_id, DATA_OBJECT);
        let head = self
            .backend
            .head(&data)
            .await
            .map_err(|error| format!("{DATA_OBJECT}: {error}"))?;
        if meta.size > 0 && head.size != meta.size {
            return Err(format!(
                "{DATA_OBJECT} is {} bytes, meta.json says {}",
                head.size, meta.size
            ));
        }
        if head.size < 12 {
            return Err(format!("{DATA_OBJECT} is only {} bytes", head.size));
        }
        let tail = self
            .backend
            .get_range(&data, head.size - 4..head.size)
            .await
            .map_err(|error| format!("{DATA_OBJECT}: {error}"))?;
        if tail.as_ref() != b"PAR1" {
            return Err(format!(
                "{DATA_OBJECT} does not end in the Parquet magic PAR1"
            ));
        }
        let shards = if meta.bloom_shards == 0 {
            10
        } else {
            meta.bloom_shards
        };
        for shard in 0..shards {
            let name = format!("bloom-{shard}");
            self.backend
                .head(&object_path(tenant_key, &block_id, &name))
                .await
                .map_err(|error| format!("{name}: {error}"))?;
        }
        let index = object_path(tenant_key, &block_id, INDEX_OBJECT);
        match self.backend.get(&index).await {
            Ok(result) => {
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|error| format!("{INDEX_OBJECT}: {error}"))?;
                RowGroupIndex::from_json(&bytes)
                    .map_err(|error| format!("{INDEX_OBJECT} is invalid: {error}"))?;
            }
            // Tempo's own blocks have no index object.
            Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(format!("{INDEX_OBJECT}: {error}")),
        }
        Ok(())
    }

    /// Moves every object of a block under `quarantine/`; returns how many were moved.
    async fn quarantine(
        &self,
        tenant_key: &Path,
        block_id: Uuid,
    ) -> Result<usize, object_store::Error> {
        let prefix = block_path(tenant_key, &block_id);
        let objects: Vec<Path> = self
            .backend
            .list(Some(&prefix))
            .map_ok(|object| object.location)
            .try_collect()
            .await?;
        for from in &objects {
            let to = Path::from(format!("{QUARANTINE_PREFIX}/{from}"));
            self.backend.rename(from, &to).await?;
        }
        Ok(objects.len())
    }

    /// Lists one tenant and reads the meta.json of blocks not seen before.
    async fn poll_tenant(
        &self,
        tenant: &str,
        known: &TenantBlocks,
    ) -> Result<TenantBlocks, StoreError> {
        // Tenants straight from the listing; one whose name could not be a key is not ours.
        let Ok(tenant_key) = tenant_path(tenant) else {
            debug!(tenant, "skipping a folder whose name cannot be a tenant");
            return Ok(TenantBlocks::default());
        };
        let mut listing = self.backend.list(Some(&tenant_key));
        let mut live = HashSet::new();
        let mut compacted = HashSet::new();
        while let Some(object) = listing.next().await {
            let object = object.map_err(|source| StoreError::List {
                what: format!("tenant {tenant:?}"),
                source,
            })?;
            let Some(relative) = object.location.prefix_match(&tenant_key) else {
                continue;
            };
            let parts: Vec<String> = relative.map(|part| part.as_ref().to_string()).collect();
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            match classify_block_key(&parts) {
                Some(BlockMarker::Live(block_id)) => {
                    live.insert(block_id);
                }
                Some(BlockMarker::Compacted(block_id)) => {
                    compacted.insert(block_id);
                }
                None => {}
            }
        }

        let mut blocks = TenantBlocks::default();
        let mut to_fetch = Vec::new();
        for block_id in live.difference(&compacted) {
            if let Some(meta) = known.live.get(block_id) {
                blocks.live.insert(*block_id, meta.clone());
            } else if known.unreadable.contains(block_id) {
                blocks.unreadable.insert(*block_id);
            } else {
                to_fetch.push(*block_id);
            }
        }
        let fetches = to_fetch.into_iter().map(|block_id| {
            let path = object_path(&tenant_key, &block_id, META_OBJECT);
            async move {
                let fetched = match self.backend.get(&path).await {
                    Ok(result) => result.bytes().await,
                    Err(error) => Err(error),
                };
                (block_id, fetched)
            }
        });
        let mut fetched = futures::stream::iter(fetches).buffer_unordered(SMALL_OBJECT_CONCURRENCY);
        while let Some((block_id, result)) = fetched.next().await {
            let bytes = match result {
                Ok(bytes) => bytes,
                // Compacted or deleted between the listing and now.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(source) => {
                    return Err(StoreError::Object {
                        tenant: tenant.to_string(),
                        block_id,
                        object: META_OBJECT.to_string(),
                        operation: "read",
                        source,
                    })
                }
            };
            match readable_meta(tenant, block_id, &bytes) {
                Ok(meta) => {
                    blocks.live.insert(block_id, Arc::new(meta));
                }
                Err(reason) => {
                    increment(&self.stats.unreadable_blocks, 1);
                    warn!(tenant, block = %block_id, reason, "ignoring a block vivace cannot read");
                    blocks.unreadable.insert(block_id);
                }
            }
        }
        Ok(blocks)
    }

    /// Polls every `blocklist_poll` until `shutdown` turns true or its sender is dropped.
    pub fn spawn_poller(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let interval = self.config.blocklist_poll;
            loop {
                if *shutdown.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                if let Err(error) = self.poll().await {
                    warn!(%error, "blocklist poll failed");
                }
            }
            debug!("blocklist poller stopped");
        })
    }

    /// Reads a block's `index` object (last trace ID per row group).
    pub async fn read_index(
        &self,
        tenant: &str,
        block_id: Uuid,
    ) -> Result<RowGroupIndex, StoreError> {
        let tenant_key = tenant_path(tenant)?;
        let path = object_path(&tenant_key, &block_id, INDEX_OBJECT);
        let object_error = |source| StoreError::Object {
            tenant: tenant.to_string(),
            block_id,
            object: INDEX_OBJECT.to_string(),
            operation: "read",
            source,
        };
        let bytes = self
            .backend
            .get(&path)
            .await
            .map_err(object_error)?
            .bytes()
            .await
            .map_err(object_error)?;
        RowGroupIndex::from_json(&bytes).map_err(|error| StoreError::CorruptBlock {
            tenant: tenant.to_string(),
            block_id,
            reason: error.to_string(),
        })
    }
}

/// Parses a meta.json found while polling and checks vivace can read the block it describes.
fn readable_meta(tenant: &str, block_id: Uuid, bytes: &[u8]) -> Result<BlockMeta, String> {
    let meta =
        BlockMeta::from_json(bytes).map_err(|error| format!("meta.json is invalid: {error}"))?;
    if meta.block_id != block_id {
        return Err(format!(
            "meta.json names block {} but lives in folder {block_id}",
            meta.block_id
        ));
    }
    if meta.tenant_id != tenant {
        return Err(format!(
            "meta.json names tenant {:?} but lives in folder {tenant:?}",
            meta.tenant_id
        ));
    }
    if meta.format != FORMAT_VPARQUET4 {
        return Err(format!(
            "format {:?} is not supported (only {FORMAT_VPARQUET4})",
            meta.format
        ));
    }
    Ok(meta)
}

/// Sorts, combines pieces of the same trace, encodes, and builds the bloom and index. CPU
/// heavy: runs on a blocking thread.
fn encode_block(
    mut traces: Vec<(TraceId, Trace)>,
    dedicated: &[DedicatedColumn],
    options: &WriterOptions,
    false_positive: f64,
    shard_size: usize,
    stage: Stage,
) -> Result<EncodedBlock, VParquetError> {
    let _encoding = stage.enter();
    traces.sort_by_key(|(id, _)| *id);
    let mut unique: Vec<(TraceId, Trace)> = Vec::with_capacity(traces.len());
    let mut pieces: Vec<Trace> = Vec::new();
    let mut current: Option<TraceId> = None;
    for (id, trace) in traces {
        if current != Some(id) {
            if let Some(previous) = current {
                unique.push((previous, combine_pieces(std::mem::take(&mut pieces))));
            }
            current = Some(id);
        }
        pieces.push(trace);
    }
    if let Some(last) = current {
        unique.push((last, combine_pieces(pieces)));
    }

    let trace_ids: Vec<TraceId> = unique.iter().map(|(id, _)| *id).collect();
    // Consumed trace by trace: no copy of each trace, and each is freed once in the columns.
    let encoded = vparquet4::encode_owned(unique, dedicated, options)?;
    let bloom_stage = match stage {
        Stage::BlockEncode => Stage::BloomIndex,
        other => other,
    };
    let _bloom = bloom_stage.enter();
    let mut filter = ShardedBloom::new(false_positive, shard_size, trace_ids.len());
    for id in &trace_ids {
        filter.add(id.as_bytes());
    }
    let index = RowGroupIndex {
        last_trace_ids: encoded.last_trace_id_per_row_group.clone(),
    };
    Ok(EncodedBlock {
        footer_size: encoded.footer_size,
        row_group_count: encoded.row_group_count,
        start_unix_nano: encoded.start_unix_nano,
        end_unix_nano: encoded.end_unix_nano,
        trace_count: encoded.trace_count,
        blooms: filter
            .to_shard_bytes()
            .into_iter()
            .map(Bytes::from)
            .collect(),
        index: Bytes::from(index.to_json()),
        data: Bytes::from(encoded.bytes),
    })
}

/// One piece stays as it is; several are merged with span de-duplication.
fn combine_pieces(mut pieces: Vec<Trace>) -> Trace {
    if pieces.len() == 1 {
        return pieces.pop().unwrap_or_default();
    }
    combine(pieces)
}

/// Checks the encoded file against the numbers that go into meta.json: Tempo trusts them.
fn check_footer(encoded: &EncodedBlock) -> Result<(), String> {
    let data = &encoded.data;
    if data.len() < 12 || &data[data.len() - 4..] != b"PAR1" {
        return Err("data.parquet does not end in the parquet magic".to_string());
    }
    let length_bytes = &data[data.len() - 8..data.len() - 4];
    let footer = u32::from_le_bytes([
        length_bytes[0],
        length_bytes[1],
        length_bytes[2],
        length_bytes[3],
    ]);
    if footer != encoded.footer_size {
        return Err(format!(
            "footer is {footer} bytes but the encoder reported {}",
            encoded.footer_size
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
