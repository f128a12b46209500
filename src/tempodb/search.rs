//! Filtered block reads: the rows of a block that may pass a TraceQL prefilter, decoded and
//! streamed batch by batch (`vparquet4::pushdown`), with only the byte ranges those passes
//! touch fetched.

use std::sync::Arc;

use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;
use tokio::task::JoinError;
use uuid::Uuid;

use super::backend::{tenant_path, DATA_OBJECT};
use super::find::metadata_or_parse;
use super::meta::{BlockMeta, DedicatedColumn};
use super::store::{increment, BlockDecode, DecodedBatches, Store, StoreError};
use super::vparquet4::pushdown::PushdownStats;
use super::vparquet4::{self, VParquetError};
use crate::traceql::prefilter::{Needs, TraceFilter};

/// A filtered block read's figures and the parsed footer to cache.
type FilteredRead = (PushdownStats, Arc<ParquetMetaData>);

/// Parses (or reuses) the footer and streams the rows of a block that may pass `filter` into
/// `batches`, on a blocking thread (blocked while the channel is full). The outer error is the
/// blocking task's.
async fn decode_filtered<R: ChunkReader + Send + 'static>(
    reader: R,
    cached_metadata: Option<Arc<ParquetMetaData>>,
    dedicated: Vec<DedicatedColumn>,
    filter: Arc<TraceFilter>,
    decode: BlockDecode,
    batches: DecodedBatches,
) -> Result<Result<FilteredRead, VParquetError>, JoinError> {
    tokio::task::spawn_blocking(move || {
        let metadata = metadata_or_parse(&reader, cached_metadata)?;
        let stats = vparquet4::pushdown::stream_filtered(
            reader,
            &metadata,
            &dedicated,
            &filter,
            decode.borrowed(),
            &mut |batch| batches.blocking_send(batch).is_ok(),
        )?;
        Ok((stats, metadata))
    })
    .await
}

impl Store {
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
        let task_error = |error: JoinError| StoreError::task(tenant, "block search", error);
        if filter.is_true() && decode == BlockDecode::Traces(Needs::ALL) {
            // Everything is decoded: one GET of the whole object beats ranged reads. A
            // projection reads only its columns' chunks, in a few coalesced ranged reads.
            let read = self
                .read_block_object(tenant, &tenant_key, block_id, DATA_OBJECT)
                .await;
            let bytes = match read {
                Ok(bytes) => bytes,
                Err(StoreError::Object {
                    source: object_store::Error::NotFound { .. },
                    ..
                }) if self.forget_if_gone(tenant, &tenant_key, block_id).await => {
                    return Ok(PushdownStats::default());
                }
                Err(error) => return Err(error),
            };
            let result =
                decode_filtered(bytes, cached_metadata, dedicated, filter, decode, batches)
                    .await
                    .map_err(task_error)?;
            return self.finish_filtered_read(tenant, block_id, result).await;
        }
        let Some(reader) = self.data_reader(tenant, &tenant_key, meta).await? else {
            return Ok(PushdownStats::default());
        };
        let request_counter = reader.clone();
        let result = decode_filtered(reader, cached_metadata, dedicated, filter, decode, batches)
            .await
            .map_err(task_error)?;
        increment(&self.stats.data_requests, request_counter.request_count());
        if result.is_err() && request_counter.object_missing() {
            self.data_went_missing(tenant, &tenant_key, block_id)
                .await?;
            return Ok(PushdownStats::default());
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
                self.remember_metadata(block_id, metadata);
                Ok(stats)
            }
            Err(source) => Err(StoreError::Read {
                tenant: tenant.to_string(),
                block_id,
                source,
            }),
        }
    }
}
