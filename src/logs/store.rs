//! The log store: WAL, head, block cuts, block list, retention and reads.
//!
//! A push is logged as one WAL record (the ingester's segment format and group-commit writer,
//! `src/ingester/wal.rs`, with one piece: the protobuf [`LogBatch`]) and acknowledged only after
//! the writer made it durable and added it to the head. A cut (size, age, memory pressure or
//! shutdown) works as the ingester's: rotate the WAL to segment N; move every tenant's head into
//! flush batches; write each as a block (data, bloom, then meta.json); re-log batches whose
//! write failed into N (the carry-over) to retry later; then delete the segments before N. A
//! crash anywhere in between replays rows that may also be in a block: reads drop exact
//! duplicates.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::{Mutex, RwLock};
use prost::Message;
use tokio::sync::{watch, Semaphore};

use super::block::{self, BlockBloom, BlockFilter, LogBlockMeta};
use super::logql::LogQuery;
use super::{LogBatch, LogRow, LogsConfig};
use crate::ingester::wal::{self, AppendTarget, Budget, Wal, WalRecord, WriterOptions};
use crate::ingester::{IngesterConfig, PushError};
use crate::model::TraceId;
use crate::tempodb::backend::{self, BackendKind, StorageConfig};

const DATA_OBJECT: &str = "data.parquet";
const BLOOM_OBJECT: &str = "bloom";
const META_OBJECT: &str = "meta.json";
/// How often retention runs.
const RETENTION_PERIOD: Duration = Duration::from_secs(60);
/// Blocks decoded at once by reads.
const MAX_CONCURRENT_BLOCK_READS: usize = 4;

/// Why the log store could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("invalid logs config: logs.{0}: {1}")]
    Config(String, String),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: String,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("log storage: {0}")]
    Storage(String),
}

/// A read over one tenant's logs.
#[derive(Debug, Clone)]
pub struct LogSearch {
    pub trace_id: Option<[u8; 16]>,
    pub service: Option<String>,
    /// Inclusive, Unix nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
    /// A LogQL query every row must match.
    pub query: Option<LogQuery>,
    /// A substring the body must contain.
    pub contains: Option<String>,
    pub limit: usize,
    /// Newest first (and the newest `limit`), else oldest first.
    pub newest_first: bool,
}

impl LogSearch {
    /// Everything of every time, oldest first, up to `limit`.
    pub fn all(limit: usize) -> LogSearch {
        LogSearch {
            trace_id: None,
            service: None,
            start_ns: 0,
            end_ns: u64::MAX,
            query: None,
            contains: None,
            limit,
            newest_first: false,
        }
    }

    fn matches(&self, row: &LogRow) -> bool {
        if row.timestamp_ns < self.start_ns || row.timestamp_ns > self.end_ns {
            return false;
        }
        if let Some(trace_id) = &self.trace_id {
            if row.trace_id.as_slice() != trace_id {
                return false;
            }
        }
        if let Some(service) = &self.service {
            if &row.service_name != service {
                return false;
            }
        }
        if let Some(needle) = &self.contains {
            if !row.body.contains(needle.as_str()) {
                return false;
            }
        }
        self.query.as_ref().is_none_or(|query| query.matches(row))
    }

    fn block_filter(&self) -> BlockFilter {
        BlockFilter {
            trace_id: self.trace_id,
            service: self.service.clone(),
            start_ns: self.start_ns,
            end_ns: self.end_ns,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct LogCounters {
    pub records_received: AtomicU64,
    pub pushes_refused: AtomicU64,
    pub blocks_flushed: AtomicU64,
    pub flush_failures: AtomicU64,
    pub blocks_deleted: AtomicU64,
    pub replayed_records: AtomicU64,
    pub wal_truncated_bytes: AtomicU64,
}

struct TenantHead {
    rows: Vec<LogRow>,
    bytes: u64,
    first_at: Instant,
}

struct FlushBatch {
    tenant: String,
    rows: Vec<LogRow>,
    bytes: u64,
}

#[derive(Default)]
struct Head {
    tenants: HashMap<String, TenantHead>,
    /// Cut and being written, or waiting for a retry; still readable.
    flushing: Vec<Arc<FlushBatch>>,
}

impl Head {
    fn append(&mut self, tenant: &str, rows: Vec<LogRow>, bytes: u64) {
        let head = self
            .tenants
            .entry(tenant.to_string())
            .or_insert_with(|| TenantHead {
                rows: Vec::new(),
                bytes: 0,
                first_at: Instant::now(),
            });
        head.rows.extend(rows);
        head.bytes += bytes;
    }
}

/// The head shared with the WAL writer thread.
#[derive(Default)]
struct SharedHead {
    head: Mutex<Head>,
    /// Bytes charged against `max_head_bytes`, reserved at push.
    bytes: AtomicU64,
}

fn decode_batch(piece: &[u8]) -> Vec<LogRow> {
    match LogBatch::decode(piece) {
        Ok(batch) => batch.rows,
        Err(error) => {
            tracing::error!(%error, "skipping an unreadable logs wal piece");
            Vec::new()
        }
    }
}

impl AppendTarget for SharedHead {
    fn reserve(&self, amount: u64, limit: u64) -> Result<(), u64> {
        wal::reserve_bytes(&self.bytes, amount, limit)
    }

    fn release(&self, amount: u64) {
        wal::release_bytes(&self.bytes, amount);
    }

    fn appended(&self, tenant: String, pieces: Vec<(TraceId, Bytes)>) {
        let mut head = self.head.lock();
        for (_, piece) in pieces {
            let rows = decode_batch(&piece);
            let bytes = rows.iter().map(LogRow::cost).sum();
            head.append(&tenant, rows, bytes);
        }
    }
}

struct BlockEntry {
    meta: LogBlockMeta,
    bloom: BlockBloom,
}

/// The log store of one process.
pub struct LogStore {
    config: LogsConfig,
    backend: Arc<dyn ObjectStore>,
    shared: Arc<SharedHead>,
    wal: Wal,
    blocks: RwLock<HashMap<String, Vec<Arc<BlockEntry>>>>,
    read_permits: Semaphore,
    pub counters: LogCounters,
    shutting_down: AtomicBool,
    stop_background: watch::Sender<bool>,
    cut_lock: tokio::sync::Mutex<()>,
    blocklist_poll: Duration,
}

/// The backend config of the log root: `storage.trace`'s backend with a sibling root (see the
/// module documentation of `crate::logs`).
pub fn log_storage_config(trace: &StorageConfig) -> StorageConfig {
    let mut config = trace.clone();
    let sibling = |prefix: &str| {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            "vivace-logs".to_string()
        } else {
            format!("{prefix}-logs")
        }
    };
    match config.backend {
        BackendKind::Local => {
            let mut path = config.local.path.clone().into_os_string();
            path.push("-logs");
            config.local.path = path.into();
        }
        BackendKind::S3 => config.s3.prefix = sibling(&config.s3.prefix),
        BackendKind::Gcs => config.gcs.prefix = sibling(&config.gcs.prefix),
        BackendKind::Azure => config.azure.prefix = sibling(&config.azure.prefix),
    }
    config
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

impl LogStore {
    /// Opens the log store: replays the logs WAL into the head, lists the blocks, starts the
    /// WAL writer.
    pub async fn open(
        config: LogsConfig,
        ingester: &IngesterConfig,
        storage: &StorageConfig,
    ) -> Result<Arc<LogStore>, LogStoreError> {
        config
            .validate()
            .map_err(|(key, reason)| LogStoreError::Config(key, reason))?;
        let backend = backend::build_object_store(&log_storage_config(storage))
            .map_err(|error| LogStoreError::Storage(error.to_string()))?;
        let config = LogsConfig {
            wal_path: config.resolved_wal_path(&ingester.wal_path),
            ..config
        };
        Self::open_with_backend(config, ingester, backend, storage.blocklist_poll).await
    }

    /// As [`LogStore::open`] with a given backend (tests).
    pub async fn open_with_backend(
        config: LogsConfig,
        ingester: &IngesterConfig,
        backend: Arc<dyn ObjectStore>,
        blocklist_poll: Duration,
    ) -> Result<Arc<LogStore>, LogStoreError> {
        let shared = Arc::new(SharedHead::default());
        let options = WriterOptions {
            fsync: ingester.wal_fsync,
            fsync_interval: ingester.wal_fsync_interval,
            segment_max_bytes: ingester.wal_segment_max_bytes,
            queue_capacity: ingester.wal_queue_capacity,
            // The fault injection (ingester.debug_wal_disk_full_bytes) is the trace WAL's only.
            disk_full_after_bytes: 0,
        };
        let dir = config.wal_path.clone();
        let startup = {
            let shared = Arc::clone(&shared);
            let budget = Budget::new(config.max_head_bytes, "logs.max_head_bytes");
            tokio::task::spawn_blocking(move || open_wal(&dir, shared, options, budget))
        };
        let (wal, report) = startup
            .await
            .map_err(|error| LogStoreError::Storage(format!("start-up task failed: {error}")))?
            .map_err(|error| LogStoreError::Io {
                action: error.action,
                path: config.wal_path.display().to_string(),
                source: error.source,
            })?;
        let counters = LogCounters::default();
        report.count_into(&counters.replayed_records, &counters.wal_truncated_bytes);
        tracing::info!(wal_path = %config.wal_path.display(), records = report.records,
            truncated_bytes = report.truncated_bytes, head_bytes = shared.bytes.load(Ordering::Relaxed),
            "replayed the logs write-ahead log");
        let (stop_background, _) = watch::channel(false);
        let store = Arc::new(LogStore {
            config,
            backend,
            shared,
            wal,
            blocks: RwLock::new(HashMap::new()),
            read_permits: Semaphore::new(MAX_CONCURRENT_BLOCK_READS),
            counters,
            shutting_down: AtomicBool::new(false),
            stop_background,
            cut_lock: tokio::sync::Mutex::new(()),
            blocklist_poll,
        });
        if let Err(error) = store.poll_blocklist().await {
            tracing::warn!(%error, "cannot list log blocks; reads see the head only until the next poll");
        }
        Ok(store)
    }

    /// Logs `rows` for `tenant`; returns once they are durable (per `ingester.wal_fsync`) and
    /// readable.
    pub async fn push(&self, tenant: &str, rows: Vec<LogRow>) -> Result<(), PushError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(PushError::ShuttingDown);
        }
        if rows.is_empty() {
            return Ok(());
        }
        let count = rows.len() as u64;
        let reserved_bytes: u64 = rows.iter().map(LogRow::cost).sum();
        let piece = Bytes::from(LogBatch { rows }.encode_to_vec());
        let pieces = vec![(TraceId([0; 16]), piece)];
        let outcome = self.wal.append(tenant, pieces, reserved_bytes).await;
        wal::count_outcome(
            outcome,
            &self.counters.records_received,
            count,
            &self.counters.pushes_refused,
        )
    }

    /// Bytes held in memory now.
    pub fn head_bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// Blocks known, over all tenants.
    pub fn block_count(&self) -> usize {
        self.blocks.read().values().map(Vec::len).sum()
    }

    /// Appends `/metrics` lines.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let counters = [
            (
                crate::telemetry::names::LOGS_RECORDS_RECEIVED,
                "Log records acknowledged.",
                &self.counters.records_received,
            ),
            (
                crate::telemetry::names::LOGS_PUSHES_REFUSED,
                "Log pushes refused as overloaded or too large.",
                &self.counters.pushes_refused,
            ),
            (
                crate::telemetry::names::LOGS_BLOCKS_FLUSHED,
                "Log blocks written.",
                &self.counters.blocks_flushed,
            ),
            (
                crate::telemetry::names::LOGS_FLUSH_FAILURES,
                "Log block writes that failed and will be retried.",
                &self.counters.flush_failures,
            ),
            (
                crate::telemetry::names::LOGS_BLOCKS_DELETED,
                "Log blocks deleted by retention.",
                &self.counters.blocks_deleted,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                crate::telemetry::names::LOGS_HEAD_BYTES,
                "Bytes of log records in memory.",
                self.head_bytes(),
            ),
            (
                crate::telemetry::names::LOGS_BLOCKS,
                "Log blocks in the block list.",
                self.block_count() as u64,
            ),
            (
                crate::telemetry::names::LOGS_WAL_DISK_BYTES,
                "Bytes in the logs WAL segments.",
                self.wal.counters().disk_bytes.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
    }

    /// Starts the loop that cuts blocks, polls the block list and applies retention. It ends
    /// at [`LogStore::shutdown`].
    pub fn spawn_background(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let poll_every = self.blocklist_poll;
        let mut last_retention = Instant::now();
        let mut last_poll = Instant::now();
        // Each round decides what is due before it runs; rounds never overlap.
        let round = move |store: Arc<LogStore>| {
            let retention_due = last_retention.elapsed() >= RETENTION_PERIOD;
            if retention_due {
                last_retention = Instant::now();
            }
            let poll_due = last_poll.elapsed() >= poll_every;
            if poll_due {
                last_poll = Instant::now();
            }
            async move {
                if let Some(reason) = store.cut_reason() {
                    store.cut(reason).await;
                }
                if retention_due {
                    store.apply_retention(now_ns()).await;
                }
                if poll_due {
                    if let Err(error) = store.poll_blocklist().await {
                        tracing::warn!(%error, "cannot list log blocks");
                    }
                }
            }
        };
        tokio::spawn(crate::ingester::every(
            self.config.flush_check_period,
            Arc::downgrade(self),
            self.stop_background.subscribe(),
            round,
        ))
    }

    fn cut_reason(&self) -> Option<&'static str> {
        let head = self.shared.head.lock();
        if !head.flushing.is_empty() {
            return Some("retry");
        }
        let pressure = self.config.max_head_bytes / 10 * 8;
        if !head.tenants.is_empty() && self.shared.bytes.load(Ordering::Acquire) >= pressure {
            return Some("max_head_bytes");
        }
        for tenant in head.tenants.values() {
            if tenant.bytes >= self.config.max_block_bytes {
                return Some("max_block_bytes");
            }
            if tenant.first_at.elapsed() >= self.config.max_block_duration {
                return Some("max_block_duration");
            }
        }
        None
    }

    /// Writes everything in memory to blocks (see the module documentation). Returns whether
    /// the head is empty and the old WAL segments are gone.
    pub async fn cut(&self, reason: &'static str) -> bool {
        let _one_at_a_time = self.cut_lock.lock().await;
        let new_sequence = match self.wal.rotate().await {
            Ok(sequence) => sequence,
            Err(error) => {
                tracing::error!(%error, reason, "cannot start a new logs wal segment; cut postponed");
                return false;
            }
        };
        let batches: Vec<Arc<FlushBatch>> = {
            let mut head = self.shared.head.lock();
            let tenants = std::mem::take(&mut head.tenants);
            for (tenant, tenant_head) in tenants {
                let mut rows = Vec::new();
                let mut bytes = 0;
                for row in tenant_head.rows {
                    bytes += row.cost();
                    rows.push(row);
                    if bytes >= self.config.max_block_bytes {
                        head.flushing.push(Arc::new(FlushBatch {
                            tenant: tenant.clone(),
                            rows: std::mem::take(&mut rows),
                            bytes: std::mem::take(&mut bytes),
                        }));
                    }
                }
                if !rows.is_empty() {
                    head.flushing.push(Arc::new(FlushBatch {
                        tenant,
                        rows,
                        bytes,
                    }));
                }
            }
            head.flushing.clone()
        };
        let mut failed = Vec::new();
        for batch in batches {
            match self.write_block(&batch).await {
                Ok(meta) => {
                    self.counters.blocks_flushed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(tenant = %batch.tenant, block_id = %meta.block_id,
                        records = meta.total_records, bytes = meta.size_bytes, reason, "wrote log block");
                    self.shared
                        .head
                        .lock()
                        .flushing
                        .retain(|other| !Arc::ptr_eq(other, &batch));
                    self.shared.release(batch.bytes);
                }
                Err(error) => {
                    self.counters.flush_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(tenant = %batch.tenant, records = batch.rows.len(), %error,
                        "log block write failed; keeping the records and retrying");
                    failed.push(batch);
                }
            }
        }
        let mut consistent = true;
        if !failed.is_empty() {
            let records: Vec<WalRecord> = failed
                .iter()
                .map(|batch| WalRecord {
                    tenant: batch.tenant.clone(),
                    pieces: vec![(
                        TraceId([0; 16]),
                        Bytes::from(
                            LogBatch {
                                rows: batch.rows.clone(),
                            }
                            .encode_to_vec(),
                        ),
                    )],
                })
                .collect();
            if let Err(error) = self.wal.carry_over(records).await {
                tracing::error!(%error, "logs wal carry-over failed; keeping old segments");
                consistent = false;
            }
            // Wait before the retry so a broken backend is not hammered every tick.
            tokio::time::sleep(self.config.flush_check_period * 4).await;
        }
        if consistent {
            if let Err(error) = self.wal.delete_before(new_sequence).await {
                tracing::warn!(%error, "cannot delete old logs wal segments; they replay as duplicates");
                consistent = false;
            }
        }
        failed.is_empty() && consistent
    }

    async fn write_block(&self, batch: &Arc<FlushBatch>) -> Result<LogBlockMeta, String> {
        let tenant_key = backend::tenant_path(&batch.tenant).map_err(|error| error.to_string())?;
        let block_id = uuid::Uuid::new_v4();
        let encoding = Arc::clone(batch);
        let row_group_rows = self.config.row_group_rows;
        let id_text = block_id.hyphenated().to_string();
        let encoded = tokio::task::spawn_blocking(move || {
            block::encode(
                &encoding.tenant,
                &id_text,
                encoding.rows.clone(),
                row_group_rows,
            )
        })
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| error.to_string())?;
        let folder = backend::block_path(&tenant_key, &block_id);
        let meta_json = serde_json::to_vec(&encoded.meta).map_err(|error| error.to_string())?;
        for (name, bytes) in [
            (DATA_OBJECT, encoded.data),
            (BLOOM_OBJECT, encoded.bloom.clone()),
            (META_OBJECT, meta_json),
        ] {
            self.backend
                .put(&folder.clone().join(name), PutPayload::from(bytes))
                .await
                .map_err(|error| format!("writing {name}: {error}"))?;
        }
        let bloom = BlockBloom::parse(&encoded.bloom).map_err(|error| error.to_string())?;
        let meta = encoded.meta.clone();
        self.blocks
            .write()
            .entry(batch.tenant.clone())
            .or_default()
            .push(Arc::new(BlockEntry {
                meta: encoded.meta,
                bloom,
            }));
        Ok(meta)
    }

    /// Lists `<tenant>/<block>/meta.json` in the log root and loads new blocks' blooms; drops
    /// blocks that are gone.
    pub async fn poll_blocklist(&self) -> Result<(), String> {
        let mut listing = self.backend.list(None);
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        while let Some(object) = listing.next().await {
            let object = object.map_err(|error| error.to_string())?;
            let parts: Vec<_> = object.location.parts().collect();
            if parts.len() == 3 && parts[2].as_ref() == META_OBJECT {
                found
                    .entry(parts[0].as_ref().to_string())
                    .or_default()
                    .push(parts[1].as_ref().to_string());
            }
        }
        let known: HashSet<(String, String)> = self
            .blocks
            .read()
            .iter()
            .flat_map(|(tenant, blocks)| {
                blocks
                    .iter()
                    .map(move |entry| (tenant.clone(), entry.meta.block_id.clone()))
            })
            .collect();
        let mut loaded = Vec::new();
        for (tenant, ids) in &found {
            for id in ids {
                if known.contains(&(tenant.clone(), id.clone())) {
                    continue;
                }
                match self.load_block(tenant, id).await {
                    Ok(entry) => loaded.push((tenant.clone(), Arc::new(entry))),
                    Err(error) => {
                        tracing::warn!(%tenant, block_id = %id, %error, "skipping an unreadable log block")
                    }
                }
            }
        }
        let mut blocks = self.blocks.write();
        for (tenant, list) in blocks.iter_mut() {
            let present = found.get(tenant);
            list.retain(|entry| present.is_some_and(|ids| ids.contains(&entry.meta.block_id)));
        }
        for (tenant, entry) in loaded {
            blocks.entry(tenant).or_default().push(entry);
        }
        blocks.retain(|_, list| !list.is_empty());
        Ok(())
    }

    async fn load_block(&self, tenant: &str, id: &str) -> Result<BlockEntry, String> {
        let folder = Path::from_iter([tenant, id]);
        let get = |name: &'static str| {
            let path = folder.clone().join(name);
            async move {
                self.backend
                    .get(&path)
                    .await
                    .map_err(|error| format!("{name}: {error}"))?
                    .bytes()
                    .await
                    .map_err(|error| format!("{name}: {error}"))
            }
        };
        let meta: LogBlockMeta = serde_json::from_slice(&get(META_OBJECT).await?)
            .map_err(|error| format!("meta.json: {error}"))?;
        if meta.format != block::FORMAT {
            return Err(format!("unknown log block format {:?}", meta.format));
        }
        let bloom =
            BlockBloom::parse(&get(BLOOM_OBJECT).await?).map_err(|error| error.to_string())?;
        Ok(BlockEntry { meta, bloom })
    }

    /// Deletes blocks whose newest record is older than `logs.retention` before `now_ns`.
    pub async fn apply_retention(&self, now_ns: u64) {
        let cutoff = now_ns.saturating_sub(self.config.retention.as_nanos() as u64);
        let doomed: Vec<(String, String)> = self
            .blocks
            .read()
            .iter()
            .flat_map(|(tenant, list)| {
                list.iter()
                    .filter(|entry| entry.meta.max_time_ns < cutoff)
                    .map(move |entry| (tenant.clone(), entry.meta.block_id.clone()))
            })
            .collect();
        for (tenant, id) in doomed {
            let folder = Path::from_iter([tenant.as_str(), id.as_str()]);
            // meta.json first: a half-deleted block is invisible, never half-read.
            let mut deleted = true;
            for name in [META_OBJECT, BLOOM_OBJECT, DATA_OBJECT] {
                match self.backend.delete(&folder.clone().join(name)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(error) => {
                        tracing::warn!(%tenant, block_id = %id, %error, "cannot delete an expired log block");
                        deleted = false;
                        break;
                    }
                }
            }
            if deleted {
                self.counters.blocks_deleted.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%tenant, block_id = %id, "deleted an expired log block");
                if let Some(list) = self.blocks.write().get_mut(&tenant) {
                    list.retain(|entry| entry.meta.block_id != id);
                }
            }
        }
    }

    /// The rows of `tenant` matching `search`: head and blocks, exact duplicates dropped,
    /// ordered by time (newest first if asked), at most `limit`.
    pub async fn search(&self, tenant: &str, search: &LogSearch) -> Result<Vec<LogRow>, String> {
        let mut rows: Vec<LogRow> = {
            let head = self.shared.head.lock();
            let active = head
                .tenants
                .get(tenant)
                .map(|t| t.rows.iter())
                .into_iter()
                .flatten();
            let flushing = head
                .flushing
                .iter()
                .filter(|batch| batch.tenant == tenant)
                .flat_map(|batch| batch.rows.iter());
            active
                .chain(flushing)
                .filter(|row| search.matches(row))
                .cloned()
                .collect()
        };
        let mut candidates: Vec<Arc<BlockEntry>> = self
            .blocks
            .read()
            .get(tenant)
            .map(|list| {
                list.iter()
                    .filter(|entry| {
                        entry.meta.max_time_ns >= search.start_ns
                            && entry.meta.min_time_ns <= search.end_ns
                            && search.service.as_ref().is_none_or(|service| {
                                entry.meta.services.binary_search(service).is_ok()
                            })
                            && search
                                .trace_id
                                .as_ref()
                                .is_none_or(|id| entry.bloom.may_contain(id))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        // Read the blocks nearest the wanted end first, and stop when no further block can
        // hold a row that beats the `limit` collected.
        if search.newest_first {
            candidates.sort_by_key(|entry| std::cmp::Reverse(entry.meta.max_time_ns));
        } else {
            candidates.sort_by_key(|entry| entry.meta.min_time_ns);
        }
        for entry in candidates {
            if rows.len() >= search.limit {
                sort_rows(&mut rows, search.newest_first);
                let boundary = rows[search.limit - 1].timestamp_ns;
                let beyond = if search.newest_first {
                    entry.meta.max_time_ns < boundary
                } else {
                    entry.meta.min_time_ns > boundary
                };
                if beyond {
                    break;
                }
                rows.truncate(search.limit);
            }
            let found = self.read_block(tenant, &entry, search).await?;
            rows.extend(found);
        }
        sort_rows(&mut rows, search.newest_first);
        rows.dedup();
        rows.truncate(search.limit);
        Ok(rows)
    }

    async fn read_block(
        &self,
        tenant: &str,
        entry: &BlockEntry,
        search: &LogSearch,
    ) -> Result<Vec<LogRow>, String> {
        let _permit = self
            .read_permits
            .acquire()
            .await
            .map_err(|error| error.to_string())?;
        let path = Path::from_iter([tenant, entry.meta.block_id.as_str(), DATA_OBJECT]);
        let data = match self.backend.get(&path).await {
            Ok(result) => result.bytes().await.map_err(|error| error.to_string())?,
            // Deleted by retention (here or elsewhere) since the list was taken.
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(error) => {
                return Err(format!(
                    "reading log block {}: {error}",
                    entry.meta.block_id
                ))
            }
        };
        let search = search.clone();
        tokio::task::spawn_blocking(move || {
            let (rows, _) =
                block::read(data, &search.block_filter()).map_err(|error| error.to_string())?;
            Ok(rows.into_iter().filter(|row| search.matches(row)).collect())
        })
        .await
        .map_err(|error| error.to_string())?
    }

    /// Distinct stream label names (and values of `name` if given) of rows in the time range.
    pub async fn labels(
        &self,
        tenant: &str,
        start_ns: u64,
        end_ns: u64,
        name: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let mut search = LogSearch::all(usize::MAX);
        search.start_ns = start_ns;
        search.end_ns = end_ns;
        let rows = self.search(tenant, &search).await?;
        let mut out: Vec<String> = rows
            .iter()
            .flat_map(|row| row.labels.iter())
            .filter_map(|label| match name {
                Some(name) => (label.name == name).then(|| label.value.clone()),
                None => Some(label.name.clone()),
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Stops accepting pushes, writes the head to blocks (what cannot be written stays in the
    /// WAL for the next start) and stops the WAL writer.
    pub async fn shutdown(&self) {
        if self.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.stop_background.send(true);
        let has_rows = {
            let head = self.shared.head.lock();
            !head.tenants.is_empty() || !head.flushing.is_empty()
        };
        if has_rows && !self.cut("shutdown").await {
            tracing::warn!("some log records stay in the logs wal until the next start");
        }
        if !self.wal.stop().await {
            tracing::error!("the logs wal writer thread panicked");
        }
        tracing::info!("log store stopped");
    }
}

fn sort_rows(rows: &mut [LogRow], newest_first: bool) {
    // Ties keep a stable order by observed time then body, so pages are deterministic.
    rows.sort_by(|a, b| {
        (a.timestamp_ns, a.observed_ns, &a.body).cmp(&(b.timestamp_ns, b.observed_ns, &b.body))
    });
    if newest_first {
        rows.reverse();
    }
}

/// Blocking start-up: create, lock and replay the logs WAL directory into the head, then start
/// the writer.
fn open_wal(
    dir: &std::path::Path,
    shared: Arc<SharedHead>,
    options: WriterOptions,
    budget: Budget,
) -> Result<(Wal, wal::ReplayReport), wal::OpenError> {
    let mut replayed_bytes = 0;
    let opened = {
        let mut head = shared.head.lock();
        let target: Arc<dyn AppendTarget> = shared.clone();
        Wal::open("logs wal", dir, options, budget, target, |record| {
            for (_, piece) in record.pieces {
                let rows = decode_batch(&piece);
                let bytes: u64 = rows.iter().map(LogRow::cost).sum();
                replayed_bytes += bytes;
                head.append(&record.tenant, rows, bytes);
            }
        })?
    };
    shared.bytes.fetch_add(replayed_bytes, Ordering::AcqRel);
    Ok(opened)
}

#[cfg(test)]
mod tests;
