//! The compactor and retention: merges small blocks of one time window into larger ones
//! (Tempo's levels and `meta.compacted.json` markers), expires blocks past retention and
//! deletes compacted blocks once no reader can still be using them.
//!
//! Safety with concurrent queries: the merged block is listed before its inputs are marked
//! compacted, and a compacted block's objects stay in the bucket for
//! `compacted_block_retention`, so a lookup that started on an input still reads it, and one
//! that starts later finds the merged block. Pieces seen in both are combined.
//!
//! The bucket's tenants, a tenant's block markers, a block's objects and whole-object reads
//! come from `blocklist`, the same listing the store's polling uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use uuid::Uuid;

use super::backend::{
    object_path, tenant_path, BlockMarker, COMPACTED_META_OBJECT, DATA_OBJECT, META_OBJECT,
};
use super::meta::BlockMeta;
use super::store::{Store, StoreError};
use super::vparquet4;
use crate::model::{Trace, TraceId};
use crate::telemetry::stage::Stage;

/// The `compactor` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// Run compaction and retention in this process. Turn off when a Tempo cluster's
    /// compactor (backend-scheduler) owns the same bucket: two compactors would race.
    pub enabled: bool,
    /// How often a compaction and retention cycle runs.
    #[serde(with = "humantime_serde")]
    pub compaction_cycle: Duration,
    /// Blocks whose end times fall in the same window of this length are merged together.
    #[serde(with = "humantime_serde")]
    pub compaction_window: Duration,
    /// Most blocks merged into one in a single compaction (Tempo merges 2 to 4).
    pub max_input_blocks: usize,
    /// Most traces in a merged block (Tempo's `max_compaction_objects`).
    pub max_compaction_objects: u64,
    /// Most bytes of input data.parquet merged at once. A merge streams its inputs (spooled to
    /// temporary files, read a batch of rows at a time) and its output (written a row group at
    /// a time), so its memory does not grow with this; it bounds how much one merge rewrites
    /// and the temporary disk space it takes (inputs plus output).
    pub max_input_bytes: u64,
    /// Blocks whose newest span is older than this are expired (Tempo's `block_retention`).
    #[serde(with = "humantime_serde")]
    pub block_retention: Duration,
    /// How long a compacted or expired block's objects stay before deletion, so queries that
    /// already chose it can finish (Tempo's `compacted_block_retention`).
    #[serde(with = "humantime_serde")]
    pub compacted_block_retention: Duration,
    /// Keep the traces worth keeping longer than the rest: when a block passes
    /// `block_retention`, its error and slow traces are rewritten into an `extended` block
    /// that lives until `retention_tiers.extended_retention`.
    pub retention_tiers: RetentionTiersConfig,
}

/// The `compactor.retention_tiers` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionTiersConfig {
    /// Whether error and slow traces outlive `block_retention`.
    pub enabled: bool,
    /// Keep traces with at least one span whose status is ERROR.
    pub keep_errors: bool,
    /// Keep traces at least this long (first span start to last span end); `0s` keeps none
    /// for their duration.
    #[serde(with = "humantime_serde")]
    pub slow_trace_threshold: Duration,
    /// How long kept traces live, counted like `block_retention` from their newest span.
    #[serde(with = "humantime_serde")]
    pub extended_retention: Duration,
}

impl Default for RetentionTiersConfig {
    fn default() -> Self {
        RetentionTiersConfig {
            enabled: true,
            keep_errors: true,
            slow_trace_threshold: Duration::from_secs(2),
            extended_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Tier name recorded in the meta.json of blocks holding the kept traces.
pub const EXTENDED_TIER: &str = "extended";

impl RetentionTiersConfig {
    /// Whether a trace belongs in the extended tier.
    pub fn keeps(&self, trace: &Trace) -> bool {
        let spans = || {
            trace
                .resource_spans
                .iter()
                .flat_map(|batch| &batch.scope_spans)
                .flat_map(|scope| &scope.spans)
        };
        let has_error = spans().any(|span| {
            span.status
                .as_ref()
                .is_some_and(|status| status.code == STATUS_CODE_ERROR)
        });
        if self.keep_errors && has_error {
            return true;
        }
        if self.slow_trace_threshold.is_zero() {
            return false;
        }
        let start = spans().map(|span| span.start_time_unix_nano).min();
        let end = spans().map(|span| span.end_time_unix_nano).max();
        match (start, end) {
            (Some(start), Some(end)) => {
                end.saturating_sub(start) >= self.slow_trace_threshold.as_nanos() as u64
            }
            _ => false,
        }
    }
}

/// OTLP's `STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: i32 = 2;

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            enabled: true,
            compaction_cycle: Duration::from_secs(30),
            compaction_window: Duration::from_secs(3600),
            max_input_blocks: 4,
            max_compaction_objects: 6_000_000,
            max_input_bytes: 64 * 1024 * 1024,
            block_retention: Duration::from_secs(14 * 24 * 3600),
            compacted_block_retention: Duration::from_secs(3600),
            retention_tiers: RetentionTiersConfig::default(),
        }
    }
}

impl CompactorConfig {
    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.max_input_blocks < 2 {
            return Err(("max_input_blocks".into(), "must be at least 2".into()));
        }
        if self.compaction_window.is_zero() || self.compaction_cycle.is_zero() {
            return Err((
                "compaction_window".into(),
                "compaction_window and compaction_cycle must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// What one cycle did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CycleOutcome {
    /// Merged blocks written.
    pub blocks_written: u64,
    /// Input blocks marked compacted by merges.
    pub blocks_compacted: u64,
    /// Blocks marked compacted because they passed retention.
    pub blocks_expired: u64,
    /// Compacted blocks whose objects were deleted.
    pub blocks_deleted: u64,
    /// Error and slow traces moved into the extended retention tier.
    pub traces_kept: u64,
}

/// Blocks that may be merged together: the same window, level, format, replication
/// factor and dedicated columns (Tempo's grouping), and the same retention tier.
type GroupKey = (i64, u32, String, u32, String, Option<String>);

fn group_key(meta: &BlockMeta, window: Duration) -> GroupKey {
    let window_nanos = window.as_nanos().max(1) as i64;
    let end = meta.end_time.timestamp_nanos_opt().unwrap_or(0);
    (
        end.div_euclid(window_nanos),
        meta.compaction_level,
        meta.format.clone(),
        meta.replication_factor,
        serde_json::to_string(&meta.dedicated_columns).unwrap_or_default(),
        meta.retention_tier.clone(),
    )
}

/// Chooses the next merges of one tenant: in each group, the oldest blocks first, up to the
/// block, trace and byte limits; a group needs at least two blocks.
pub fn plan_compactions(blocks: &[BlockMeta], config: &CompactorConfig) -> Vec<Vec<BlockMeta>> {
    let mut groups: BTreeMap<GroupKey, Vec<BlockMeta>> = BTreeMap::new();
    for meta in blocks {
        if meta.format != crate::tempodb::meta::FORMAT_VPARQUET4 {
            continue;
        }
        groups
            .entry(group_key(meta, config.compaction_window))
            .or_default()
            .push(meta.clone());
    }
    let mut plans = Vec::new();
    for (_, mut group) in groups {
        group.sort_by_key(|meta| (meta.start_time, meta.block_id));
        let mut current: Vec<BlockMeta> = Vec::new();
        let (mut objects, mut bytes) = (0u64, 0u64);
        for meta in group {
            let meta_objects = meta.total_objects.max(0) as u64;
            let fits = current.len() < config.max_input_blocks
                && objects + meta_objects <= config.max_compaction_objects
                && bytes + meta.size <= config.max_input_bytes;
            if !fits {
                if current.len() >= 2 {
                    plans.push(std::mem::take(&mut current));
                } else {
                    current.clear();
                }
                objects = 0;
                bytes = 0;
            }
            if meta_objects > config.max_compaction_objects || meta.size > config.max_input_bytes {
                continue; // already as large as a merge may make it
            }
            objects += meta_objects;
            bytes += meta.size;
            current.push(meta);
        }
        if current.len() >= 2 {
            plans.push(current);
        }
    }
    plans
}

impl Store {
    /// Reads every trace of a block (the whole data.parquet; compaction reads it all anyway).
    pub(crate) async fn read_block_traces(
        &self,
        meta: &BlockMeta,
    ) -> Result<Vec<(TraceId, Trace)>, StoreError> {
        let tenant = meta.tenant_id.clone();
        let tenant_key = tenant_path(&tenant)?;
        let bytes = self
            .read_block_object(&tenant, &tenant_key, meta.block_id, DATA_OBJECT)
            .await?;
        let dedicated = meta.dedicated_columns.clone();
        let block_id = meta.block_id;
        tokio::task::spawn_blocking(move || {
            Stage::Compaction.run(|| vparquet4::read_traces(bytes, &dedicated))
        })
        .await
        .map_err(|error| StoreError::task(&tenant, "block decoding", error))?
        .map_err(|error| StoreError::CorruptBlock {
            tenant: tenant.clone(),
            block_id,
            reason: error.to_string(),
        })
    }

    /// Marks a block compacted the way Tempo does: `meta.compacted.json` is written, then
    /// `meta.json` deleted; the block leaves the block list at once.
    pub(crate) async fn mark_compacted(&self, meta: &BlockMeta) -> Result<(), StoreError> {
        let tenant_key = tenant_path(&meta.tenant_id)?;
        let object_error = |object: &str, operation, source| StoreError::Object {
            tenant: meta.tenant_id.clone(),
            block_id: meta.block_id,
            object: object.to_string(),
            operation,
            source,
        };
        let compacted = object_path(&tenant_key, &meta.block_id, COMPACTED_META_OBJECT);
        self.backend()
            .put(&compacted, object_store::PutPayload::from(meta.to_json()))
            .await
            .map_err(|source| object_error(COMPACTED_META_OBJECT, "write", source))?;
        self.forget_block(&meta.tenant_id, meta.block_id);
        let live = object_path(&tenant_key, &meta.block_id, META_OBJECT);
        match self.backend().delete(&live).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(object_error(META_OBJECT, "delete", source)),
        }
    }

    /// Deletes compacted blocks of a tenant whose `meta.compacted.json` is older than
    /// `older_than`; returns how many were deleted.
    pub(crate) async fn delete_compacted(
        &self,
        tenant: &str,
        older_than: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let tenant_key = tenant_path(tenant)?;
        let expired: Vec<Uuid> = self
            .list_block_markers(tenant, &tenant_key)
            .await?
            .into_iter()
            .filter_map(|listed| match listed.marker {
                BlockMarker::Compacted(block_id) if listed.last_modified < older_than => {
                    Some(block_id)
                }
                _ => None,
            })
            .collect();
        let mut deleted = 0;
        for block_id in expired {
            let objects = self
                .list_block_objects(&tenant_key, block_id)
                .await
                .map_err(|source| StoreError::List {
                    what: format!("block {block_id} of tenant {tenant:?}"),
                    source,
                })?;
            // meta.compacted.json last, so a failed deletion is retried next cycle.
            let (markers, data): (Vec<_>, Vec<_>) = objects
                .into_iter()
                .partition(|path| path.filename() == Some(COMPACTED_META_OBJECT));
            for path in data.into_iter().chain(markers) {
                match self.backend().delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(source) => {
                        return Err(StoreError::Object {
                            tenant: tenant.to_string(),
                            block_id,
                            object: path.filename().unwrap_or_default().to_string(),
                            operation: "delete",
                            source,
                        })
                    }
                }
            }
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Rewrites the traces of an expiring block that the tier keeps into an `extended` block
    /// (before the block is marked compacted, so they are never absent); returns how many.
    async fn keep_tier(
        &self,
        meta: &BlockMeta,
        tiers: &RetentionTiersConfig,
    ) -> Result<u64, StoreError> {
        let traces = self.read_block_traces(meta).await?;
        let keeps = tiers.clone();
        let kept: Vec<(TraceId, Trace)> = tokio::task::spawn_blocking(move || {
            Stage::Compaction.run(|| {
                traces
                    .into_iter()
                    .filter(|(_, trace)| keeps.keeps(trace))
                    .collect()
            })
        })
        .await
        .map_err(|error| StoreError::task(&meta.tenant_id, "retention tier filter", error))?;
        if kept.is_empty() {
            return Ok(0);
        }
        let count = kept.len() as u64;
        let written = self
            .write_block_with(
                &meta.tenant_id,
                kept,
                meta.compaction_level,
                meta.dedicated_columns.clone(),
                Some(EXTENDED_TIER.to_string()),
                Stage::Compaction,
            )
            .await?;
        info!(tenant = %meta.tenant_id, from = %meta.block_id, block = %written.block_id, traces = count, "error and slow traces kept in the extended tier");
        Ok(count)
    }

    /// Merges one planned set of blocks into a block one level up (streaming: see
    /// [`Store::write_merged_block`]), then marks the inputs compacted. The merged block is
    /// listed before any input leaves the list.
    async fn compact(&self, inputs: &[BlockMeta]) -> Result<BlockMeta, StoreError> {
        let tenant = inputs[0].tenant_id.clone();
        let level = inputs
            .iter()
            .map(|meta| meta.compaction_level)
            .max()
            .unwrap_or(0)
            + 1;
        let tier = inputs[0].retention_tier.clone();
        let merged = self.write_merged_block(inputs, level, tier).await?;
        for input in inputs {
            self.mark_compacted(input).await?;
        }
        info!(
            tenant,
            block = %merged.block_id,
            level,
            inputs = inputs.len(),
            traces = merged.total_objects,
            bytes = merged.size,
            "blocks compacted"
        );
        Ok(merged)
    }

    /// One compaction and retention cycle at `now`: expire blocks past retention, delete
    /// compacted blocks past `compacted_block_retention`, then run the planned merges.
    pub async fn compaction_cycle(
        &self,
        config: &CompactorConfig,
        now: SystemTime,
    ) -> Result<CycleOutcome, StoreError> {
        let mut outcome = CycleOutcome::default();
        let now: DateTime<Utc> = now.into();
        let retention =
            chrono::Duration::from_std(config.block_retention).unwrap_or(chrono::Duration::MAX);
        let compacted_retention = chrono::Duration::from_std(config.compacted_block_retention)
            .unwrap_or(chrono::Duration::MAX);
        // Tenants from the bucket, not the block list: a tenant whose blocks all expired has
        // nothing live left but still has compacted blocks to delete.
        let mut tenants: Vec<String> = self
            .list_root_folders()
            .await?
            .into_iter()
            .filter(|tenant| tenant_path(tenant).is_ok())
            .collect();
        for tenant in self.tenants() {
            if !tenants.contains(&tenant) {
                tenants.push(tenant);
            }
        }
        for tenant in tenants {
            let blocks = self.blocks(&tenant);
            let expire_before = now.checked_sub_signed(retention);
            let extended_before = now.checked_sub_signed(
                chrono::Duration::from_std(config.retention_tiers.extended_retention)
                    .unwrap_or(chrono::Duration::MAX),
            );
            let (expired, kept): (Vec<_>, Vec<_>) = blocks.into_iter().partition(|meta| {
                let limit = match meta.retention_tier.as_deref() {
                    Some(EXTENDED_TIER) => extended_before,
                    _ => expire_before,
                };
                limit.is_some_and(|limit| meta.end_time < limit)
            });
            for meta in &expired {
                if config.retention_tiers.enabled && meta.retention_tier.is_none() {
                    outcome.traces_kept += self.keep_tier(meta, &config.retention_tiers).await?;
                }
                self.mark_compacted(meta).await?;
                outcome.blocks_expired += 1;
                info!(tenant, block = %meta.block_id, end = %meta.end_time, tier = ?meta.retention_tier, "block expired by retention");
            }
            if let Some(limit) = now.checked_sub_signed(compacted_retention) {
                outcome.blocks_deleted += self.delete_compacted(&tenant, limit).await?;
            }
            for plan in plan_compactions(&kept, config) {
                self.compact(&plan).await?;
                outcome.blocks_written += 1;
                outcome.blocks_compacted += plan.len() as u64;
            }
        }
        Ok(outcome)
    }

    /// Runs [`Store::compaction_cycle`] every `compaction_cycle` until `shutdown` turns true.
    pub fn spawn_compactor(
        self: Arc<Self>,
        config: CompactorConfig,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(config.compaction_cycle) => {}
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            return;
                        }
                    }
                }
                match Stage::Compaction
                    .within(self.compaction_cycle(&config, SystemTime::now()))
                    .await
                {
                    Ok(outcome) if outcome != CycleOutcome::default() => {
                        info!(?outcome, "compaction cycle");
                    }
                    Ok(_) => {}
                    Err(error) => warn!(%error, "compaction cycle failed; retrying next cycle"),
                }
            }
        })
    }
}
