//! Store tests: polling rules on hand-made buckets, Tempo's golden block, and write → reopen →
//! find round trips on a local directory.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use parking_lot::Mutex;
use uuid::Uuid;

use super::backend::StorageConfig;
use super::meta::BlockMeta;
use super::store::*;
use crate::model::{Trace, TraceId};
use crate::tempodb::backend::{BackendKind, LocalConfig, COMPACTED_META_OBJECT};
use crate::tempodb::blocklist::QUARANTINE_PREFIX;
use crate::tempodb::meta::{time_from_unix_nano, FORMAT_VPARQUET4};
use crate::tempodb::writer::{MULTIPART_CHUNK_BYTES, SINGLE_PUT_BYTES};

const GOLDEN_ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tempo-blocks/generated-by-tempo-v3.0.3"
);
const GOLDEN_TENANT: &str = "single-tenant";
const GOLDEN_BLOCK: &str = "b27b0e53-66a0-4505-afd6-434ae3cd4a10";

fn golden_block_dir() -> std::path::PathBuf {
    let dir = FsPath::new(GOLDEN_ROOT)
        .join("vParquet4")
        .join(GOLDEN_TENANT)
        .join(GOLDEN_BLOCK);
    assert!(
        dir.is_dir(),
        "golden block {} is missing; see tests/data/README.md",
        dir.display()
    );
    dir
}

fn golden_trace_ids() -> Vec<TraceId> {
    let path = FsPath::new(GOLDEN_ROOT).join("trace_ids.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("golden file {} is missing ({error})", path.display()));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| TraceId::parse_hex(line.trim()).unwrap())
        .collect()
}

/// A bucket directory holding a copy of Tempo's golden vParquet4 block.
fn bucket_with_golden_block() -> tempfile::TempDir {
    let bucket = tempfile::tempdir().unwrap();
    let target = bucket.path().join(GOLDEN_TENANT).join(GOLDEN_BLOCK);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(golden_block_dir()).unwrap() {
        let entry = entry.unwrap();
        let destination = target.join(entry.file_name());
        std::fs::write(&destination, std::fs::read(entry.path()).unwrap()).unwrap();
    }
    // Things a shared Tempo bucket also holds, which must not confuse the listing.
    std::fs::write(bucket.path().join("tempo_cluster_seed.json"), b"{}").unwrap();
    std::fs::write(
        bucket.path().join(GOLDEN_TENANT).join("index.json.gz"),
        b"not read",
    )
    .unwrap();
    bucket
}

fn local_config(path: &FsPath) -> StorageConfig {
    StorageConfig {
        backend: BackendKind::Local,
        local: LocalConfig {
            path: path.to_path_buf(),
        },
        // Small shards so the written blocks have several.
        bloom_filter_shard_size_bytes: 16,
        ..StorageConfig::default()
    }
}

fn meta_json(tenant: &str, block_id: Uuid, format: &str) -> Vec<u8> {
    format!(
        r#"{{"format":"{format}","blockID":"{block_id}","tenantID":"{tenant}","startTime":"2024-01-01T00:00:00Z","endTime":"2024-01-01T00:01:00Z","totalObjects":1,"size":100,"compactionLevel":0,"indexPageSize":0,"totalRecords":1,"bloomShards":1,"footerSize":10,"replicationFactor":1}}"#
    )
    .into_bytes()
}

async fn put(store: &dyn ObjectStore, key: &str, bytes: Vec<u8>) {
    store
        .put(&Path::from(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

#[tokio::test]
async fn poll_only_takes_live_meta_json_under_uuid_folders() {
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let live = Uuid::new_v4();
    let compacted_with_both = Uuid::new_v4();
    let compacted_only = Uuid::new_v4();
    let other_format = Uuid::new_v4();
    let wrong_id = Uuid::new_v4();
    let without_meta = Uuid::new_v4();
    put(
        bucket.as_ref(),
        &format!("t1/{live}/meta.json"),
        meta_json("t1", live, "vParquet4"),
    )
    .await;
    put(
        bucket.as_ref(),
        &format!("t1/{live}/data.parquet"),
        b"x".to_vec(),
    )
    .await;
    put(
        bucket.as_ref(),
        &format!("t1/{compacted_with_both}/meta.json"),
        meta_json("t1", compacted_with_both, "vParquet4"),
    )
    .await;
    put(
        bucket.as_ref(),
        &format!("t1/{compacted_with_both}/meta.compacted.json"),
        meta_json("t1", compacted_with_both, "vParquet4"),
    )
    .await;
    put(
        bucket.as_ref(),
        &format!("t1/{compacted_only}/{COMPACTED_META_OBJECT}"),
        meta_json("t1", compacted_only, "vParquet4"),
    )
    .await;
    put(
        bucket.as_ref(),
        &format!("t1/{other_format}/meta.json"),
        meta_json("t1", other_format, "vParquet5"),
    )
    .await;
    put(
        bucket.as_ref(),
        &format!("t1/{wrong_id}/meta.json"),
        meta_json("t1", Uuid::new_v4(), "vParquet4"),
    )
    .await;
    put(
        bucket.as_ref(),
        "t1/not-a-uuid/meta.json",
        meta_json("t1", live, "vParquet4"),
    )
    .await;
    put(
        bucket.as_ref(),
        &format!("t1/{}/meta.json", live.simple()),
        meta_json("t1", live, "vParquet4"),
    )
    .await;
    put(bucket.as_ref(), "t1/index.json.gz", b"gz".to_vec()).await;
    put(
        bucket.as_ref(),
        &format!("t2/{without_meta}/data.parquet"),
        b"x".to_vec(),
    )
    .await;
    put(bucket.as_ref(), "tempo_cluster_seed.json", b"{}".to_vec()).await;
    put(bucket.as_ref(), "work.json", b"{}".to_vec()).await;

    let store = Store::open_with_backend(StorageConfig::default(), bucket.clone())
        .await
        .unwrap();
    assert_eq!(store.tenants(), ["t1"]);
    let blocks = store.blocks("t1");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].block_id, live);
    assert_eq!(store.stats().snapshot().unreadable_blocks, 2);

    // Unreadable blocks are remembered, not fetched again on every poll.
    store.poll().await.unwrap();
    assert_eq!(store.stats().snapshot().unreadable_blocks, 2);

    // Another writer compacts the live block away and writes a new one.
    let newer = Uuid::new_v4();
    put(
        bucket.as_ref(),
        &format!("t1/{live}/meta.compacted.json"),
        meta_json("t1", live, "vParquet4"),
    )
    .await;
    bucket
        .delete(&Path::from(format!("t1/{live}/meta.json")))
        .await
        .unwrap();
    put(
        bucket.as_ref(),
        &format!("t3/{newer}/meta.json"),
        meta_json("t3", newer, "vParquet4"),
    )
    .await;
    store.poll().await.unwrap();
    assert!(store.blocks("t1").is_empty());
    assert_eq!(store.tenants(), ["t3"]);
    assert_eq!(store.blocks("t3")[0].block_id, newer);
}

#[tokio::test]
async fn refuses_tenants_that_cannot_be_keys() {
    let store = Store::open_with_backend(StorageConfig::default(), Arc::new(InMemory::new()))
        .await
        .unwrap();
    let id = TraceId::parse_hex("1").unwrap();
    let error = store.find_trace_by_id("a/b", &id, None).await.unwrap_err();
    assert!(matches!(error, StoreError::InvalidTenant(_)), "{error}");
    let error = store
        .write_block("../x", vec![(id, Trace::default())])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("\"../x\""), "{error}");
    let error = store.write_block("ok", Vec::new()).await.unwrap_err();
    assert!(matches!(error, StoreError::EmptyBlock { .. }), "{error}");
}

#[tokio::test]
async fn lists_tempos_block_and_skips_it_by_bloom_or_time() {
    let bucket = bucket_with_golden_block();
    let store = Store::open(local_config(bucket.path())).await.unwrap();
    assert_eq!(store.tenants(), [GOLDEN_TENANT]);
    let blocks = store.blocks(GOLDEN_TENANT);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].block_id.to_string(), GOLDEN_BLOCK);
    assert_eq!(blocks[0].total_objects, 133);
    assert_eq!(blocks[0].footer_size, 19546);

    let absent = TraceId::parse_hex("123456789abcdef0123456789abcdef").unwrap();
    assert!(store
        .find_trace_by_id(GOLDEN_TENANT, &absent, None)
        .await
        .unwrap()
        .is_none());
    let stats = store.stats().snapshot();
    assert_eq!(
        (
            stats.bloom_skips,
            stats.block_reads,
            stats.bloom_cache_misses
        ),
        (1, 0, 1)
    );

    // A window after the block's end touches no block at all.
    let present = golden_trace_ids()[0];
    let after = 1_700_000_000_000_000_000u64;
    assert!(store
        .find_trace_by_id(GOLDEN_TENANT, &present, Some((after, after + 1)))
        .await
        .unwrap()
        .is_none());
    let stats = store.stats().snapshot();
    assert_eq!(
        (
            stats.lookups,
            stats.bloom_cache_misses + stats.bloom_cache_hits
        ),
        (2, 1)
    );
    assert!(store
        .find_trace_by_id("other-tenant", &present, None)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn finds_all_133_traces_of_tempos_block() {
    let bucket = bucket_with_golden_block();
    let store = Store::open(local_config(bucket.path())).await.unwrap();
    let ids = golden_trace_ids();
    assert_eq!(ids.len(), 133);
    // Tempo wrote the block on 2022-07-04 between 11:11:09 and 11:11:35 UTC.
    let window = (1_656_933_069_000_000_000u64, 1_656_933_095_000_000_000u64);
    let started = Instant::now();
    for id in &ids {
        let trace = store
            .find_trace_by_id(GOLDEN_TENANT, id, Some(window))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("trace {id} of Tempo's block was not found"));
        let span_trace_ids: BTreeSet<Vec<u8>> =
            spans(&trace).map(|span| span.trace_id.clone()).collect();
        assert!(!span_trace_ids.is_empty(), "trace {id} has no spans");
        for span_trace_id in span_trace_ids {
            assert_eq!(TraceId::from_bytes(&span_trace_id).unwrap(), *id);
        }
    }
    let elapsed = started.elapsed();
    let stats = store.stats().snapshot();
    assert_eq!(stats.block_reads, 133);
    assert_eq!(stats.footer_cache_misses, 1, "the footer is fetched once");
    eprintln!(
        "golden block: 133 lookups in {elapsed:?} ({:?} each), {} data requests",
        elapsed / 133,
        stats.data_requests
    );
}

fn spans(trace: &Trace) -> impl Iterator<Item = &Span> {
    trace
        .resource_spans
        .iter()
        .flat_map(|batch| batch.scope_spans.iter())
        .flat_map(|scope| scope.spans.iter())
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// A trace of `span_count` spans of one service, starting at `start` (Unix ns).
fn make_trace(id: &TraceId, service: &str, first_span: u64, span_count: u64, start: u64) -> Trace {
    let spans = (first_span..first_span + span_count)
        .map(|index| Span {
            trace_id: id.as_bytes().to_vec(),
            span_id: (index + 1).to_be_bytes().to_vec(),
            name: format!("operation-{index}"),
            kind: 2,
            start_time_unix_nano: start + index * 1_000,
            end_time_unix_nano: start + index * 1_000 + 500,
            attributes: vec![string_attribute("http.route", "/api/things")],
            ..Default::default()
        })
        .collect();
    Trace {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn span_ids(trace: &Trace) -> BTreeSet<Vec<u8>> {
    spans(trace).map(|span| span.span_id.clone()).collect()
}

fn trace_id(value: u64) -> TraceId {
    let mut bytes = [0u8; 16];
    bytes[0] = 0x5a;
    bytes[8..].copy_from_slice(&value.to_be_bytes());
    TraceId(bytes)
}

#[tokio::test]
async fn written_blocks_survive_a_restart_and_combine_across_blocks() {
    let bucket = tempfile::tempdir().unwrap();
    let base = 1_700_000_000_000_000_000u64;
    let shared = trace_id(999);
    let mut expected: Vec<(TraceId, BTreeSet<Vec<u8>>)> = Vec::new();
    let mut written_ids = Vec::new();
    {
        let store = Store::open(local_config(bucket.path())).await.unwrap();
        for block in 0..3u64 {
            let mut traces = Vec::new();
            for index in 0..40u64 {
                let id = trace_id(block * 1000 + index);
                let trace = make_trace(&id, "checkout", 0, 3, base + block * 60_000_000_000);
                expected.push((id, span_ids(&trace)));
                traces.push((id, trace));
            }
            // The same trace in every block, a different span each time, plus a repeated piece
            // inside the block that must be merged before encoding.
            traces.push((shared, make_trace(&shared, "cart", block, 1, base)));
            traces.push((shared, make_trace(&shared, "cart", block, 1, base)));
            traces.reverse();
            let meta = store.write_block("tenant-a", traces).await.unwrap();
            assert_eq!(meta.total_objects, 41);
            assert_eq!(meta.replication_factor, 1);
            assert_eq!(meta.compaction_level, 0);
            assert!(meta.bloom_shards > 1, "16-byte shards give several");
            assert!(meta.total_records >= 1);
            // The earliest span is the shared trace's, which starts `block` µs after `base`.
            assert_eq!(
                meta.start_time,
                crate::tempodb::meta::time_from_unix_nano(base + block * 1_000)
            );
            written_ids.push(meta.block_id);
        }
        let stats = store.stats().snapshot();
        assert_eq!(stats.blocks_flushed, 3);
        assert!(stats.bytes_written > 0);
        assert_eq!(store.blocks("tenant-a").len(), 3);
    }

    // A fresh store on the same directory: nothing carried over but the bucket.
    let store = Store::open(local_config(bucket.path())).await.unwrap();
    let listed: BTreeSet<Uuid> = store
        .blocks("tenant-a")
        .iter()
        .map(|meta| meta.block_id)
        .collect();
    assert_eq!(listed, written_ids.iter().copied().collect());
    for block_id in &written_ids {
        let meta_on_disk = std::fs::read(
            bucket
                .path()
                .join("tenant-a")
                .join(block_id.to_string())
                .join("meta.json"),
        )
        .unwrap();
        let meta = BlockMeta::from_json(&meta_on_disk).unwrap();
        let data_len = std::fs::metadata(
            bucket
                .path()
                .join("tenant-a")
                .join(block_id.to_string())
                .join("data.parquet"),
        )
        .unwrap()
        .len();
        assert_eq!(meta.size, data_len);
        let index = store.read_index("tenant-a", *block_id).await.unwrap();
        assert_eq!(index.last_trace_ids.len(), meta.total_records as usize);
    }

    let started = Instant::now();
    for (id, spans_expected) in &expected {
        let trace = store
            .find_trace_by_id("tenant-a", id, None)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("trace {id} lost"));
        assert_eq!(&span_ids(&trace), spans_expected, "trace {id}");
    }
    let elapsed = started.elapsed();
    let stats = store.stats().snapshot();
    eprintln!(
        "3 local blocks: {} lookups in {elapsed:?} ({:?} each); bloom skips {}, block reads {}",
        expected.len(),
        elapsed / expected.len() as u32,
        stats.bloom_skips,
        stats.block_reads
    );
    assert!(
        stats.bloom_skips >= expected.len() as u64,
        "each trace is in one block; the bloom skips most others"
    );

    let combined = store
        .find_trace_by_id("tenant-a", &shared, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        span_ids(&combined),
        (0..3u64)
            .map(|index| (index + 1).to_be_bytes().to_vec())
            .collect()
    );
    assert!(store
        .find_trace_by_id("tenant-a", &trace_id(123_456), None)
        .await
        .unwrap()
        .is_none());
}

/// An in-memory bucket that records the order of writes.
#[derive(Debug, Default)]
struct RecordingStore {
    inner: InMemory,
    writes: Mutex<Vec<String>>,
}

impl fmt::Display for RecordingStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("RecordingStore")
    }
}

#[async_trait]
impl ObjectStore for RecordingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await;
        self.writes.lock().push(location.to_string());
        result
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.writes.lock().push(location.to_string());
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn meta_json_is_written_last() {
    let recording = Arc::new(RecordingStore::default());
    let config = StorageConfig {
        bloom_filter_shard_size_bytes: 16,
        ..StorageConfig::default()
    };
    let store = Store::open_with_backend(config, recording.clone())
        .await
        .unwrap();
    let traces: Vec<_> = (0..20u64)
        .map(|index| {
            (
                trace_id(index),
                make_trace(&trace_id(index), "svc", 0, 2, 1_000),
            )
        })
        .collect();
    let meta = store.write_block("t", traces).await.unwrap();
    let writes = recording.writes.lock().clone();
    let prefix = format!("t/{}/", meta.block_id);
    let names: Vec<&str> = writes
        .iter()
        .map(|key| {
            key.strip_prefix(&prefix)
                .expect("every write is inside the block")
        })
        .collect();
    assert_eq!(names.first(), Some(&"data.parquet"));
    assert_eq!(names.last(), Some(&"meta.json"));
    assert_eq!(names[names.len() - 2], "index");
    let blooms: BTreeSet<&str> = names[1..names.len() - 2].iter().copied().collect();
    let expected: BTreeSet<String> = (0..meta.bloom_shards)
        .map(crate::tempodb::bloom::shard_object_name)
        .collect();
    assert_eq!(blooms, expected.iter().map(String::as_str).collect());
    assert_eq!(names.len(), meta.bloom_shards as usize + 3);
}

#[tokio::test]
async fn poller_picks_up_blocks_from_another_writer_and_stops() {
    let bucket = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        blocklist_poll: Duration::from_millis(50),
        ..local_config(bucket.path())
    };
    let reader = Arc::new(Store::open(config.clone()).await.unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let poller = reader.clone().spawn_poller(stopped);

    let writer = Store::open(config).await.unwrap();
    let id = trace_id(7);
    writer
        .write_block("t", vec![(id, make_trace(&id, "svc", 0, 2, 1_000))])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.blocks("t").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the poller never saw the new block"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reader
        .find_trace_by_id("t", &id, None)
        .await
        .unwrap()
        .is_some());
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), poller)
        .await
        .expect("poller stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn large_objects_go_up_as_multipart_uploads() {
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = Store::open_with_backend(StorageConfig::default(), bucket.clone())
        .await
        .unwrap();
    let data: Vec<u8> = (0..SINGLE_PUT_BYTES + 3 * MULTIPART_CHUNK_BYTES + 17)
        .map(|offset| (offset % 253) as u8)
        .collect();
    let path = Path::from("t/big/data.parquet");
    store
        .put_large(&path, Bytes::from(data.clone()))
        .await
        .unwrap();
    let stored = bucket.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(stored.len(), data.len());
    assert!(stored == data, "multipart upload changed the bytes");
}

#[tokio::test]
async fn a_block_deleted_behind_the_stores_back_is_skipped_and_dropped() {
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = Store::open_with_backend(StorageConfig::default(), bucket.clone())
        .await
        .unwrap();
    let kept = trace_id(1);
    let doomed = trace_id(2);
    store
        .write_block("t", vec![(kept, make_trace(&kept, "svc", 0, 1, 1_000))])
        .await
        .unwrap();
    let gone = store
        .write_block("t", vec![(doomed, make_trace(&doomed, "svc", 0, 1, 1_000))])
        .await
        .unwrap();

    // Another writer (Tempo's retention) deletes the second block entirely.
    let objects: Vec<ObjectMeta> = bucket
        .list(Some(&Path::from(format!("t/{}", gone.block_id))))
        .try_collect()
        .await
        .unwrap();
    for object in objects {
        bucket.delete(&object.location).await.unwrap();
    }
    assert!(store
        .find_trace_by_id("t", &doomed, None)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.blocks("t").len(),
        1,
        "the vanished block is dropped without waiting for a poll"
    );
    assert!(store
        .find_trace_by_id("t", &kept, None)
        .await
        .unwrap()
        .is_some());

    // Data missing under a live meta.json is an error, not an empty answer.
    let broken = store.blocks("t")[0].block_id;
    bucket
        .delete(&Path::from(format!("t/{broken}/data.parquet")))
        .await
        .unwrap();
    let error = store.find_trace_by_id("t", &kept, None).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "tenant \"t\": block {broken} is corrupt: data.parquet is missing but meta.json is not"
        )
    );
    // Without a cached footer the same is an error too.
    let fresh = Store::open_with_backend(StorageConfig::default(), bucket.clone())
        .await
        .unwrap();
    let error = fresh.find_trace_by_id("t", &kept, None).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("block {broken}: read data.parquet failed")),
        "{error}"
    );
}

/// Writes `blocks` blocks of 20 traces each; trace 1000 gets a piece in every block.
async fn write_small_blocks(store: &Store, blocks: u64) -> Vec<(TraceId, BTreeSet<Vec<u8>>)> {
    let base = 1_700_000_000_000_000_000u64;
    let shared = trace_id(1000);
    let mut expected = Vec::new();
    let mut shared_spans = BTreeSet::new();
    for block in 0..blocks {
        let mut traces: Vec<(TraceId, Trace)> = (0..20u64)
            .map(|index| {
                let id = trace_id(block * 100 + index);
                (id, make_trace(&id, "svc", 0, 3, base + block * 1_000_000))
            })
            .collect();
        let piece = make_trace(&shared, "svc", block * 10, 2, base + block * 1_000_000);
        shared_spans.extend(span_ids(&piece));
        traces.push((shared, piece));
        for (id, trace) in &traces {
            if *id != shared {
                expected.push((*id, span_ids(trace)));
            }
        }
        store.write_block("acme", traces).await.unwrap();
    }
    expected.push((shared, shared_spans));
    expected
}

async fn assert_all_found(store: &Store, expected: &[(TraceId, BTreeSet<Vec<u8>>)]) {
    for (id, spans) in expected {
        let found = store.find_trace_by_id("acme", id, None).await.unwrap();
        assert_eq!(
            found.map(|trace| span_ids(&trace)).as_ref(),
            Some(spans),
            "trace {id}"
        );
    }
}

#[test]
fn compaction_plans_group_by_window_and_level() {
    let config = crate::tempodb::CompactorConfig {
        max_input_blocks: 3,
        ..Default::default()
    };
    let meta = |minute: i64, level: u32| BlockMeta {
        format: FORMAT_VPARQUET4.to_string(),
        block_id: Uuid::new_v4(),
        tenant_id: "acme".into(),
        start_time: time_from_unix_nano(1_700_000_000_000_000_000 + minute as u64 * 60_000_000_000),
        end_time: time_from_unix_nano(1_700_000_000_000_000_000 + minute as u64 * 60_000_000_000),
        total_objects: 10,
        size: 1000,
        compaction_level: level,
        index_page_size: 0,
        total_records: 1,
        bloom_shards: 1,
        footer_size: 100,
        dedicated_columns: Vec::new(),
        replication_factor: 1,
        retention_tier: None,
    };
    // 1_700_000_000 s is 13 min 20 s into an hour: minutes 0..46 share a window, 47.. the next.
    let blocks = vec![
        meta(0, 0),
        meta(1, 0),
        meta(2, 0),
        meta(3, 0),
        meta(5, 1),
        meta(50, 0),
        meta(51, 0),
        meta(6, 1),
    ];
    let plans = crate::tempodb::compactor::plan_compactions(&blocks, &config);
    let sizes: Vec<usize> = plans.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 2, 2], "{plans:?}");
    assert!(plans.iter().all(|plan| plan
        .iter()
        .all(|meta| meta.compaction_level == plan[0].compaction_level)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_blocks_and_queries_never_miss_a_trace() {
    let bucket = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(local_config(bucket.path())).await.unwrap());
    let expected = Arc::new(write_small_blocks(&store, 8).await);
    assert_eq!(store.blocks("acme").len(), 8);

    // Readers look every trace up again and again while the compactor runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, expected, stop) =
            (Arc::clone(&store), Arc::clone(&expected), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds == 0 {
                assert_all_found(&store, &expected).await;
                rounds += 1;
            }
            rounds
        })
    };
    let config = crate::tempodb::CompactorConfig {
        max_input_blocks: 4,
        ..Default::default()
    };
    // "Now" is just after the spans (from 2023), so retention leaves the blocks alone.
    let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_100);
    let first = store.compaction_cycle(&config, now).await.unwrap();
    assert_eq!((first.blocks_written, first.blocks_compacted), (2, 8));
    let second = store.compaction_cycle(&config, now).await.unwrap();
    assert_eq!((second.blocks_written, second.blocks_compacted), (1, 2));
    let third = store.compaction_cycle(&config, now).await.unwrap();
    assert_eq!(
        third,
        crate::tempodb::CycleOutcome::default(),
        "nothing left to merge"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = reader.await.unwrap();
    assert!(rounds >= 1);

    let blocks = store.blocks("acme");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].compaction_level, 2);
    assert_eq!(
        blocks[0].total_objects,
        8 * 20 + 1,
        "the shared trace is one row"
    );
    assert_all_found(&store, &expected).await;

    // A fresh store sees only the merged block: the inputs carry meta.compacted.json.
    let reopened = Store::open(local_config(bucket.path())).await.unwrap();
    assert_eq!(reopened.blocks("acme").len(), 1);
    let markers = walk(bucket.path())
        .into_iter()
        .filter(|path| path.ends_with(COMPACTED_META_OBJECT))
        .count();
    assert_eq!(
        markers, 10,
        "8 level-0 and 2 level-1 inputs were marked compacted"
    );
    assert_all_found(&reopened, &expected).await;
}

fn walk(root: &FsPath) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn retention_expires_blocks_then_deletes_them() {
    let bucket = tempfile::tempdir().unwrap();
    let store = Store::open(local_config(bucket.path())).await.unwrap();
    write_small_blocks(&store, 2).await;
    let config = crate::tempodb::CompactorConfig {
        max_input_blocks: 4,
        ..Default::default()
    };
    // The spans are from 2023: at a "now" just after they were written nothing expires...
    let written = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_100);
    let outcome = store
        .compaction_cycle(
            &crate::tempodb::CompactorConfig {
                max_input_blocks: 2,
                max_compaction_objects: 1,
                ..config.clone()
            },
            written,
        )
        .await
        .unwrap();
    assert_eq!(outcome.blocks_expired, 0);
    // ...fifteen days later both are past the 14-day retention and marked compacted,
    let later = std::time::SystemTime::now() + Duration::from_secs(15 * 24 * 3600);
    let outcome = store
        .compaction_cycle(&config, std::time::SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        outcome.blocks_expired, 2,
        "spans from 2023 are long past retention"
    );
    assert!(store.blocks("acme").is_empty());
    assert_eq!(
        walk(bucket.path())
            .iter()
            .filter(|path| path.ends_with(COMPACTED_META_OBJECT))
            .count(),
        2
    );
    assert!(store
        .find_trace_by_id("acme", &trace_id(1), None)
        .await
        .unwrap()
        .is_none());
    // ...and once compacted_block_retention has passed, every object of them is deleted.
    let outcome = store.compaction_cycle(&config, later).await.unwrap();
    assert_eq!(outcome.blocks_deleted, 2);
    assert!(walk(bucket.path()).is_empty(), "{:?}", walk(bucket.path()));
}

#[tokio::test]
async fn retention_tiers_keep_error_and_slow_traces_longer() {
    let bucket = tempfile::tempdir().unwrap();
    let store = Store::open(local_config(bucket.path())).await.unwrap();
    let base_seconds = 1_700_000_000u64;
    let base = base_seconds * 1_000_000_000;
    let (ordinary, failed, slow) = (trace_id(1), trace_id(2), trace_id(3));
    let mut failed_trace = make_trace(&failed, "svc", 0, 2, base);
    failed_trace.resource_spans[0].scope_spans[0].spans[1].status =
        Some(opentelemetry_proto::tonic::trace::v1::Status {
            code: 2,
            message: "boom".into(),
        });
    let mut slow_trace = make_trace(&slow, "svc", 0, 2, base);
    slow_trace.resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano = base + 3_000_000_000;
    store
        .write_block(
            "acme",
            vec![
                (ordinary, make_trace(&ordinary, "svc", 0, 2, base)),
                (failed, failed_trace),
                (slow, slow_trace),
            ],
        )
        .await
        .unwrap();
    let config = crate::tempodb::CompactorConfig::default();
    let day = 24 * 3600;
    let at = |days: u64| std::time::UNIX_EPOCH + Duration::from_secs(base_seconds + days * day);
    let found = |id: TraceId| {
        let store = &store;
        async move {
            store
                .find_trace_by_id("acme", &id, None)
                .await
                .unwrap()
                .is_some()
        }
    };

    // Day 13: inside block_retention (14 days), everything is there.
    assert_eq!(
        store.compaction_cycle(&config, at(13)).await.unwrap(),
        crate::tempodb::CycleOutcome::default()
    );
    assert!(found(ordinary).await && found(failed).await && found(slow).await);

    // Day 15: the baseline expired; the error trace and the 3 s trace moved to the extended tier.
    let outcome = store.compaction_cycle(&config, at(15)).await.unwrap();
    assert_eq!(
        (outcome.blocks_expired, outcome.traces_kept),
        (1, 2),
        "{outcome:?}"
    );
    assert!(!found(ordinary).await, "the ordinary trace expired at T1");
    assert!(
        found(failed).await && found(slow).await,
        "error and slow traces are kept"
    );
    let blocks = store.blocks("acme");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].retention_tier.as_deref(), Some("extended"));
    // The tier survives a restart (it is in meta.json) and is not re-filtered at day 20.
    let reopened = Store::open(local_config(bucket.path())).await.unwrap();
    assert_eq!(
        reopened.blocks("acme")[0].retention_tier.as_deref(),
        Some("extended")
    );
    assert_eq!(
        reopened
            .compaction_cycle(&config, at(20))
            .await
            .unwrap()
            .blocks_expired,
        0
    );

    // Day 31: past extended_retention (30 days), the kept traces expire too.
    let outcome = reopened.compaction_cycle(&config, at(31)).await.unwrap();
    assert_eq!((outcome.blocks_expired, outcome.traces_kept), (1, 0));
    assert!(reopened.blocks("acme").is_empty());
    assert!(reopened
        .find_trace_by_id("acme", &failed, None)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn startup_verification_quarantines_corrupt_blocks_only() {
    let bucket = bucket_with_golden_block();
    let store = Store::open(local_config(bucket.path())).await.unwrap();
    let id = TraceId::parse_hex("5").unwrap();
    let mut written = Vec::new();
    for _ in 0..4 {
        written.push(
            store
                .write_block("t", vec![(id, Trace::default())])
                .await
                .unwrap()
                .block_id,
        );
    }
    drop(store);
    let block = |n: usize, object: &str| {
        bucket
            .path()
            .join("t")
            .join(written[n].to_string())
            .join(object)
    };
    // 0: truncated data; 1: garbage meta.json; 2: a missing bloom shard; 3: intact.
    let data = std::fs::read(block(0, "data.parquet")).unwrap();
    std::fs::write(block(0, "data.parquet"), &data[..data.len() - 10]).unwrap();
    std::fs::write(block(1, "meta.json"), b"{not json").unwrap();
    std::fs::remove_file(block(2, "bloom-0")).unwrap();

    let store = Store::open(local_config(bucket.path())).await.unwrap();
    assert_eq!(store.verify_blocks().await, 3);
    assert_eq!(store.stats().snapshot().quarantined_blocks, 3);
    let live: Vec<Uuid> = store.blocks("t").iter().map(|meta| meta.block_id).collect();
    assert_eq!(live, [written[3]]);
    assert_eq!(
        store.blocks(GOLDEN_TENANT).len(),
        1,
        "Tempo's own block passes"
    );
    for (n, block_id) in written.iter().enumerate().take(3) {
        let moved = bucket
            .path()
            .join(QUARANTINE_PREFIX)
            .join("t")
            .join(block_id.to_string());
        assert!(
            moved.join("meta.json").is_file(),
            "block {n} kept in quarantine"
        );
        assert!(!block(n, "meta.json").exists());
    }
    assert!(store
        .find_trace_by_id("t", &id, None)
        .await
        .unwrap()
        .is_some());
    // The quarantine folder is not a tenant, and a second start finds nothing more to move.
    let store = Store::open(local_config(bucket.path())).await.unwrap();
    assert_eq!(store.verify_blocks().await, 0);
    assert!(!store.tenants().contains(&QUARANTINE_PREFIX.to_string()));
}
