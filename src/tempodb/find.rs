//! Finding a trace by ID: the blocks whose time range fits, each ruled out by its bloom shard
//! where it can be, then the Parquet data of the rest read through a ranged reader that keeps
//! the footer region per block. Also a block's `index` object (last trace ID per row group).

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;
use tracing::{debug, warn};
use uuid::Uuid;

use super::backend::{object_path, tenant_path, DATA_OBJECT, INDEX_OBJECT};
use super::bloom::{self, BloomShard};
use super::index::RowGroupIndex;
use super::meta::BlockMeta;
use super::reader::{fetch_footer_tail, ObjectChunkReader, OpenError};
use super::store::{increment, Store, StoreError};
use super::vparquet4::{self, VParquetError};
use crate::model::{combine, Trace, TraceId};

/// Blocks of one lookup examined at once (the store-wide bound is `max_concurrent_block_reads`).
const BLOCKS_PER_LOOKUP: usize = 8;

impl Store {
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
            .map_err(|error| StoreError::task(tenant, "block lookup", error))?;
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
            let metadata = metadata_or_parse(&reader, cached_metadata)?;
            let found =
                vparquet4::find_trace_with_metadata(reader, &metadata, &trace_id, &dedicated)?;
            Ok::<_, VParquetError>((found, metadata))
        })
        .await
        .map_err(|error| StoreError::task(tenant, "block read", error))?;
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
                self.remember_metadata(block_id, metadata);
                Ok(found)
            }
            Err(_) if request_counter.object_missing() => {
                self.data_went_missing(tenant, tenant_key, block_id).await?;
                Ok(None)
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
    pub(super) async fn data_reader(
        &self,
        tenant: &str,
        tenant_key: &Path,
        meta: &BlockMeta,
    ) -> Result<Option<ObjectChunkReader>, StoreError> {
        let block_id = meta.block_id;
        let data_path = object_path(tenant_key, &block_id, DATA_OBJECT);
        let object_error =
            |source| StoreError::object(tenant, block_id, DATA_OBJECT, "read", source);
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
        let bytes = self
            .read_block_object(tenant, tenant_key, block_id, &name)
            .await?;
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

    /// Reads a block's `index` object (last trace ID per row group).
    pub async fn read_index(
        &self,
        tenant: &str,
        block_id: Uuid,
    ) -> Result<RowGroupIndex, StoreError> {
        let tenant_key = tenant_path(tenant)?;
        let bytes = self
            .read_block_object(tenant, &tenant_key, block_id, INDEX_OBJECT)
            .await?;
        RowGroupIndex::from_json(&bytes).map_err(|error| StoreError::CorruptBlock {
            tenant: tenant.to_string(),
            block_id,
            reason: error.to_string(),
        })
    }
}

/// The block's parsed footer: the cached one, or parsed from the reader (which fetched the
/// footer region already). CPU work: call it on a blocking thread.
pub(super) fn metadata_or_parse<R: ChunkReader + 'static>(
    reader: &R,
    cached_metadata: Option<Arc<ParquetMetaData>>,
) -> Result<Arc<ParquetMetaData>, VParquetError> {
    match cached_metadata {
        Some(metadata) => Ok(metadata),
        None => vparquet4::read_metadata(reader),
    }
}
