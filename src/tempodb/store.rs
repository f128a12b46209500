//! The block store itself: the `Store` with its caches and block list, how it opens, its
//! errors and counters. What it does lives in the sibling modules, each an `impl Store`:
//! `writer` (blocks in), `find` (trace by ID), `search` (filtered block reads), `blocklist`
//! (the bucket's listing, shared with the compactor) and `verify` (startup checks). Those
//! modules import this one and never the other way round.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use object_store::ObjectStore;
use parking_lot::RwLock;
use tokio::sync::Semaphore;
use tracing::info;
use uuid::Uuid;

use super::backend::{build_object_store, ConfigError, InvalidTenant, StorageConfig};
use super::bloom::BloomShard;
use super::cache::ByteLru;
use super::meta::{BlockMeta, DedicatedColumn};
use super::reader::FooterTail;
use super::vparquet4::pushdown::{Decode, Decoded};
use super::vparquet4::VParquetError;
use crate::traceql::columns::SpanFields;
use crate::traceql::prefilter::Needs;
use parquet::file::metadata::ParquetMetaData;

/// Small objects (bloom shards, meta.json of new blocks) fetched or written at once.
pub(super) const SMALL_OBJECT_CONCURRENCY: usize = 8;

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
    /// The borrowed form the decoder takes.
    pub(crate) fn borrowed(&self) -> Decode<'_> {
        match self {
            BlockDecode::Traces(needs) => Decode::Traces(needs),
            BlockDecode::Columns { fields, needs } => Decode::Columns { fields, needs },
        }
    }
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

impl StoreError {
    /// [`StoreError::Task`] for a blocking task that panicked or was cancelled.
    pub(super) fn task(
        tenant: &str,
        task: &'static str,
        error: impl std::fmt::Display,
    ) -> StoreError {
        StoreError::Task {
            tenant: tenant.to_string(),
            task,
            reason: error.to_string(),
        }
    }

    /// [`StoreError::Object`] for one object of a block.
    pub(super) fn object(
        tenant: &str,
        block_id: Uuid,
        object: &str,
        operation: &'static str,
        source: object_store::Error,
    ) -> StoreError {
        StoreError::Object {
            tenant: tenant.to_string(),
            block_id,
            object: object.to_string(),
            operation,
            source,
        }
    }
}

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

/// Adds `by` to one of the [`StoreStats`] counters.
pub(super) fn increment(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// The blocks of one tenant.
#[derive(Default, Clone)]
pub(super) struct TenantBlocks {
    /// Live blocks vivace can read, by ID.
    pub(super) live: BTreeMap<Uuid, Arc<BlockMeta>>,
    /// Live blocks whose meta.json is invalid or whose format vivace cannot read; remembered so
    /// each poll does not fetch their meta.json again.
    pub(super) unreadable: HashSet<Uuid>,
}

/// Tempo-compatible block storage on one object store.
///
/// The fields are open to the sibling modules that implement its methods.
pub struct Store {
    /// The configuration the store was opened with.
    pub(super) config: StorageConfig,
    /// The bucket (with the configured prefix applied).
    pub(super) backend: Arc<dyn ObjectStore>,
    /// Dedicated columns written into new blocks.
    pub(super) dedicated_columns: Vec<DedicatedColumn>,
    /// Blocks per tenant, as of the last poll and this store's own writes.
    pub(super) blocklist: RwLock<HashMap<String, TenantBlocks>>,
    /// Bloom shards by block and shard number.
    pub(super) bloom_cache: ByteLru<(Uuid, u32), Arc<BloomShard>>,
    /// The footer region of each block's data.parquet.
    pub(super) footer_cache: ByteLru<Uuid, FooterTail>,
    /// Parsed footers with page indexes: parsing a large block's page index costs more than
    /// the lookup itself.
    pub(super) metadata_cache: ByteLru<Uuid, Arc<ParquetMetaData>>,
    /// Bounds the blocks read at once across all lookups (`max_concurrent_block_reads`).
    pub(super) block_reads: Semaphore,
    /// The counters behind [`Store::stats`].
    pub(super) stats: StoreStats,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Store")
            .field("backend", &self.backend.to_string())
            .finish_non_exhaustive()
    }
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

    /// Keeps a block's parsed footer for the next read of the block.
    pub(super) fn remember_metadata(&self, block_id: Uuid, metadata: Arc<ParquetMetaData>) {
        let weight = metadata.memory_size();
        self.metadata_cache.insert(block_id, metadata, weight);
    }
}
