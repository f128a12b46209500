//! Writing blocks: traces sorted, combined and encoded as vParquet4 with their bloom and index,
//! then uploaded in Tempo's order (`data.parquet` → `bloom-0..N-1` → `index` → `meta.json`)
//! so a block is visible to any reader only once it is complete.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use tracing::{info, warn};
use uuid::Uuid;

use super::backend::{object_path, tenant_path, DATA_OBJECT, INDEX_OBJECT, META_OBJECT};
use super::bloom::{self, ShardedBloom};
use super::index::RowGroupIndex;
use super::merge::{MergeError, MergedTraces};
use super::meta::{time_from_unix_nano, BlockMeta, DedicatedColumn, FORMAT_VPARQUET4};
use super::store::{increment, Store, StoreError, SMALL_OBJECT_CONCURRENCY};
use super::vparquet4::{self, EncodedFigures, VParquetError, WriterOptions};
use crate::model::{combine, Trace, TraceId};
use crate::telemetry::stage::Stage;

/// Objects up to this size are written with one PUT; larger ones as multipart uploads, so a
/// failed part is retried alone and no single request carries a whole block.
pub(super) const SINGLE_PUT_BYTES: usize = 16 * 1024 * 1024;
/// Part size of multipart uploads.
pub(super) const MULTIPART_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const MULTIPART_CONCURRENCY: usize = 4;
/// A merged block's row groups are cut at this many units of Tempo's size estimate at most
/// (`row_group_size_bytes` when smaller): a row group is held as shredded columns until it
/// is written, several times its estimate in memory, and a merge must not grow with the
/// blocks it merges.
const MERGED_ROW_GROUP_SIZE_BYTES: usize = 2_000_000;

/// A block's `data.parquet`: encoded in memory, or written to an unnamed temporary file by a
/// streaming merge (so memory does not grow with the block).
enum BlockData {
    Memory(Bytes),
    Spooled { file: Arc<std::fs::File>, len: u64 },
}

impl BlockData {
    fn len(&self) -> u64 {
        match self {
            BlockData::Memory(bytes) => bytes.len() as u64,
            BlockData::Spooled { len, .. } => *len,
        }
    }

    /// `len` bytes from `offset`; a spooled file is read on a blocking thread.
    async fn read(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        match self {
            BlockData::Memory(bytes) => {
                let start = usize::try_from(offset).map_err(std::io::Error::other)?;
                let end = start.saturating_add(len).min(bytes.len());
                Ok(bytes.slice(start.min(end)..end))
            }
            BlockData::Spooled { file, .. } => {
                let file = Arc::clone(file);
                tokio::task::spawn_blocking(move || read_at(&file, offset, len))
                    .await
                    .map_err(std::io::Error::other)?
            }
        }
    }
}

/// Reads exactly `len` bytes at `offset` of `file`.
fn read_at(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buffer = vec![0u8; len];
    file.read_exact_at(&mut buffer, offset)?;
    Ok(Bytes::from(buffer))
}

/// What a block's meta.json takes besides the encoder's figures.
struct Written {
    block_id: Uuid,
    compaction_level: u32,
    dedicated: Vec<DedicatedColumn>,
    retention_tier: Option<String>,
    /// When the write began, for the log line.
    started: Instant,
}

/// A block encoded, ready to upload.
struct EncodedBlock {
    data: BlockData,
    figures: EncodedFigures,
    blooms: Vec<Bytes>,
    index: Bytes,
}

impl EncodedBlock {
    /// The block around an encoded `data` with its figures, the bloom `filter` of its trace
    /// IDs and the index of its row groups.
    fn new(data: BlockData, figures: EncodedFigures, filter: ShardedBloom) -> EncodedBlock {
        let index = RowGroupIndex {
            last_trace_ids: figures.last_trace_id_per_row_group.clone(),
        };
        EncodedBlock {
            data,
            figures,
            blooms: filter
                .to_shard_bytes()
                .into_iter()
                .map(Bytes::from)
                .collect(),
            index: Bytes::from(index.to_json()),
        }
    }
}

impl Store {
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
        .map_err(|error| StoreError::task(tenant, "block encoding", error))?
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
        let written = Written {
            block_id,
            compaction_level,
            dedicated: meta_dedicated,
            retention_tier,
            started,
        };
        self.publish(tenant, &tenant_key, encoded, written).await
    }

    /// Merges `inputs` (blocks of one tenant) into one block at `compaction_level`, streaming:
    /// each input's `data.parquet` is spooled to a temporary file and read a batch at a time,
    /// a k-way merge by trace ID combines the pieces of a trace, and the output is encoded row
    /// group by row group into another temporary file that is uploaded a part at a time. Memory
    /// holds a batch per input and one output row group, never a whole block.
    pub(crate) async fn write_merged_block(
        &self,
        inputs: &[BlockMeta],
        compaction_level: u32,
        retention_tier: Option<String>,
    ) -> Result<BlockMeta, StoreError> {
        let Some(first) = inputs.first() else {
            return Err(StoreError::EmptyBlock {
                tenant: String::new(),
            });
        };
        let tenant = first.tenant_id.clone();
        let tenant_key = tenant_path(&tenant)?;
        let started = Instant::now();
        let block_id = Uuid::new_v4();
        let mut spooled = Vec::with_capacity(inputs.len());
        for input in inputs {
            let file = self
                .spool_data(&tenant, &tenant_key, input.block_id)
                .await?;
            spooled.push((file, input.dedicated_columns.clone()));
        }
        let dedicated = first.dedicated_columns.clone();
        let expected_traces = inputs
            .iter()
            .map(|meta| usize::try_from(meta.total_objects).unwrap_or(0))
            .sum();
        let options = WriterOptions {
            row_group_size_bytes: self
                .config
                .row_group_size_bytes
                .min(MERGED_ROW_GROUP_SIZE_BYTES),
            ..WriterOptions::default()
        };
        let false_positive = self.config.bloom_filter_false_positive;
        let shard_size = self.config.bloom_filter_shard_size_bytes;
        let output_dedicated = dedicated.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            Stage::Compaction.run(|| {
                merge_block(
                    spooled,
                    expected_traces,
                    &output_dedicated,
                    &options,
                    false_positive,
                    shard_size,
                )
            })
        })
        .await
        .map_err(|error| StoreError::task(&tenant, "compaction merge", error))?
        .map_err(|error| match error {
            MergeBlockError::Input(error) => StoreError::CorruptBlock {
                tenant: tenant.clone(),
                block_id: inputs[error.input()].block_id,
                reason: error.to_string(),
            },
            MergeBlockError::Encode(source) => StoreError::Encode {
                tenant: tenant.clone(),
                block_id,
                source,
            },
            MergeBlockError::Spool(error) => StoreError::task(&tenant, "compaction spool", error),
            MergeBlockError::Inconsistent(reason) => StoreError::Inconsistent {
                tenant: tenant.clone(),
                block_id,
                reason,
            },
        })?;
        if encoded.figures.trace_count == 0 {
            return Err(StoreError::EmptyBlock { tenant });
        }
        let written = Written {
            block_id,
            compaction_level,
            dedicated,
            retention_tier,
            started,
        };
        self.publish(&tenant, &tenant_key, encoded, written).await
    }

    /// Copies a block's `data.parquet` into an unnamed temporary file, a chunk at a time.
    async fn spool_data(
        &self,
        tenant: &str,
        tenant_key: &Path,
        block_id: Uuid,
    ) -> Result<std::fs::File, StoreError> {
        use tokio::io::AsyncWriteExt;
        let path = object_path(tenant_key, &block_id, DATA_OBJECT);
        let object_error =
            |source| StoreError::object(tenant, block_id, DATA_OBJECT, "read", source);
        let spool_error =
            |error: std::io::Error| StoreError::task(tenant, "compaction spool", error);
        let mut chunks = self
            .backend
            .get(&path)
            .await
            .map_err(object_error)?
            .into_stream();
        let file = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(|error| StoreError::task(tenant, "compaction spool", error))?
            .map_err(spool_error)?;
        let mut file = tokio::fs::File::from_std(file);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(object_error)?;
            file.write_all(&chunk).await.map_err(spool_error)?;
        }
        file.flush().await.map_err(spool_error)?;
        Ok(file.into_std().await)
    }

    /// Uploads an encoded block and lists it: meta.json from the encoder's figures, objects in
    /// Tempo's order, stats, the log line.
    async fn publish(
        &self,
        tenant: &str,
        tenant_key: &Path,
        encoded: EncodedBlock,
        written: Written,
    ) -> Result<BlockMeta, StoreError> {
        let Written {
            block_id,
            compaction_level,
            dedicated: meta_dedicated,
            retention_tier,
            started,
        } = written;
        let encode_time = started.elapsed();
        let meta = BlockMeta {
            format: FORMAT_VPARQUET4.to_string(),
            block_id,
            tenant_id: tenant.to_string(),
            start_time: time_from_unix_nano(encoded.figures.start_unix_nano),
            end_time: time_from_unix_nano(encoded.figures.end_unix_nano),
            total_objects: encoded.figures.trace_count as i64,
            size: encoded.data.len(),
            compaction_level,
            index_page_size: 0,
            total_records: encoded.figures.row_group_count,
            bloom_shards: encoded.blooms.len() as u32,
            footer_size: encoded.figures.footer_size,
            dedicated_columns: meta_dedicated,
            replication_factor: 1,
            retention_tier,
        };
        let bytes_written = match Stage::Upload
            .within(self.upload_block(tenant, tenant_key, &meta, &encoded))
            .await
        {
            Ok(bytes_written) => bytes_written,
            Err(error) => {
                self.remove_partial_block(tenant_key, &meta).await;
                return Err(error);
            }
        };

        increment(&self.stats.blocks_flushed, 1);
        increment(&self.stats.bytes_written, bytes_written);
        increment(
            &self.stats.traces_written,
            encoded.figures.trace_count as u64,
        );
        self.blocklist
            .write()
            .entry(tenant.to_string())
            .or_default()
            .live
            .insert(block_id, Arc::new(meta.clone()));
        info!(
            tenant,
            block = %block_id,
            traces = encoded.figures.trace_count,
            row_groups = encoded.figures.row_group_count,
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
        let object_error =
            |object: &str, source| StoreError::object(tenant, block_id, object, "write", source);
        let mut bytes_written = 0u64;

        let data_path = object_path(tenant_key, &block_id, DATA_OBJECT);
        self.put_data(&data_path, &encoded.data)
            .await
            .map_err(|source| object_error(DATA_OBJECT, source))?;
        bytes_written += encoded.data.len();

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

    /// Writes one object held in memory: at once when small, as a multipart upload when large.
    #[cfg(test)]
    pub(super) async fn put_large(&self, path: &Path, data: Bytes) -> object_store::Result<()> {
        self.put_data(path, &BlockData::Memory(data)).await
    }

    /// Writes one object: at once when small, as a multipart upload when large (a spooled
    /// file is read a part at a time, so at most a few parts are in memory).
    async fn put_data(&self, path: &Path, data: &BlockData) -> object_store::Result<()> {
        let spool_error = |source: std::io::Error| object_store::Error::Generic {
            store: "block spool",
            source: Box::new(source),
        };
        let len = data.len();
        if len <= SINGLE_PUT_BYTES as u64 {
            let bytes = data.read(0, len as usize).await.map_err(spool_error)?;
            self.backend
                .put(path, PutPayload::from_bytes(bytes))
                .await?;
            return Ok(());
        }
        let upload = self.backend.put_multipart(path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK_BYTES);
        let mut offset = 0u64;
        while offset < len {
            let part = (len - offset).min(MULTIPART_CHUNK_BYTES as u64) as usize;
            let waited = writer.wait_for_capacity(MULTIPART_CONCURRENCY).await;
            let read = match waited {
                Ok(()) => data.read(offset, part).await.map_err(spool_error),
                Err(error) => Err(error),
            };
            match read {
                Ok(bytes) => writer.put(bytes),
                Err(error) => {
                    // Best effort: an unfinished upload only costs storage until the bucket
                    // expires it.
                    let _ = writer.abort().await;
                    return Err(error);
                }
            }
            offset += part as u64;
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
    for trace_id in &trace_ids {
        filter.add(trace_id.as_bytes());
    }
    let data = BlockData::Memory(Bytes::from(encoded.bytes));
    Ok(EncodedBlock::new(data, encoded.figures, filter))
}

/// Why a streaming merge failed.
enum MergeBlockError {
    Input(MergeError),
    Encode(VParquetError),
    Spool(std::io::Error),
    Inconsistent(String),
}

/// The blocking half of [`Store::write_merged_block`]: merges the spooled inputs (each with
/// the dedicated columns it was written with) into a spooled output with its bloom and index.
fn merge_block(
    inputs: Vec<(std::fs::File, Vec<DedicatedColumn>)>,
    expected_traces: usize,
    dedicated: &[DedicatedColumn],
    options: &WriterOptions,
    false_positive: f64,
    shard_size: usize,
) -> Result<EncodedBlock, MergeBlockError> {
    let mut batches = Vec::with_capacity(inputs.len());
    for (input, (file, input_dedicated)) in inputs.into_iter().enumerate() {
        let reader = vparquet4::TraceBatches::new(file, &input_dedicated)
            .map_err(|source| MergeBlockError::Input(MergeError::Read { input, source }))?;
        batches.push(reader);
    }
    let merged = MergedTraces::new(batches).map_err(MergeBlockError::Input)?;
    let output = tempfile::tempfile().map_err(MergeBlockError::Spool)?;
    let sink = std::io::BufWriter::with_capacity(1 << 20, output);
    let mut encoder =
        vparquet4::BlockEncoder::new(sink, dedicated, options).map_err(MergeBlockError::Encode)?;
    // Sized for every input trace (pieces of one trace in several inputs make it a little
    // larger than needed), so that no ID list is held.
    let mut filter = ShardedBloom::new(false_positive, shard_size, expected_traces);
    for trace in merged {
        let (trace_id, trace) = trace.map_err(MergeBlockError::Input)?;
        filter.add(trace_id.as_bytes());
        encoder
            .push(trace_id, trace)
            .map_err(MergeBlockError::Encode)?;
    }
    let (sink, figures) = encoder.finish().map_err(MergeBlockError::Encode)?;
    let file = sink
        .into_inner()
        .map_err(|error| MergeBlockError::Spool(error.into_error()))?;
    let data = BlockData::Spooled {
        file: Arc::new(file),
        len: figures.size,
    };
    let encoded = EncodedBlock::new(data, figures, filter);
    check_footer(&encoded).map_err(MergeBlockError::Inconsistent)?;
    Ok(encoded)
}

/// One piece stays as it is; several are merged with span de-duplication.
fn combine_pieces(mut pieces: Vec<Trace>) -> Trace {
    if pieces.len() == 1 {
        return pieces.pop().unwrap_or_default();
    }
    combine(pieces)
}

/// Checks the encoded file against the numbers that go into meta.json: Tempo trusts them. A
/// spooled file's last bytes are read from it (blocking: call it off the async runtime).
fn check_footer(encoded: &EncodedBlock) -> Result<(), String> {
    let len = encoded.data.len();
    if len < 12 {
        return Err("data.parquet is shorter than a parquet file".to_string());
    }
    let tail = match &encoded.data {
        BlockData::Memory(bytes) => bytes.slice(bytes.len() - 8..),
        BlockData::Spooled { file, .. } => {
            read_at(file, len - 8, 8).map_err(|error| format!("reading data.parquet: {error}"))?
        }
    };
    if &tail[4..] != b"PAR1" {
        return Err("data.parquet does not end in the parquet magic".to_string());
    }
    let length_bytes = &tail[..4];
    let footer = u32::from_le_bytes([
        length_bytes[0],
        length_bytes[1],
        length_bytes[2],
        length_bytes[3],
    ]);
    if footer != encoded.figures.footer_size {
        return Err(format!(
            "footer is {footer} bytes but the encoder reported {}",
            encoded.figures.footer_size
        ));
    }
    Ok(())
}
