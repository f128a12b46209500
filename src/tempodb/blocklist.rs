//! The block list and the bucket listing behind it: which tenants and blocks the bucket
//! holds (shared with the compactor), reading one object of a block, polling, and dropping
//! blocks that vanished.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::backend::{
    block_path, classify_block_key, object_path, tenant_path, BlockMarker, DATA_OBJECT, META_OBJECT,
};
use super::meta::{BlockMeta, FORMAT_VPARQUET4};
use super::store::{increment, Store, StoreError, TenantBlocks, SMALL_OBJECT_CONCURRENCY};

/// Bucket folder corrupt blocks are moved to at startup (`quarantine/<tenant>/<block>/…`);
/// never listed as a tenant.
pub const QUARANTINE_PREFIX: &str = "quarantine";

/// A block marker met while listing a tenant's folder.
pub(super) struct ListedMarker {
    /// The block, live (`meta.json`) or compacted (`meta.compacted.json`).
    pub(super) marker: BlockMarker,
    /// When the marker object was last written.
    pub(super) last_modified: DateTime<Utc>,
}

impl Store {
    /// The folder names at the bucket root: the tenants, and `quarantine/` if present.
    pub(super) async fn list_root_folders(&self) -> Result<Vec<String>, StoreError> {
        let root = self
            .backend
            .list_with_delimiter(None)
            .await
            .map_err(|source| StoreError::List {
                what: "the bucket root".to_string(),
                source,
            })?;
        Ok(root
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename().map(str::to_string))
            .collect())
    }

    /// Every block marker in a tenant's folder (`<uuid>/meta.json`, `<uuid>/meta.compacted.json`);
    /// other objects are passed over.
    pub(super) async fn list_block_markers(
        &self,
        tenant: &str,
        tenant_key: &Path,
    ) -> Result<Vec<ListedMarker>, StoreError> {
        let mut listing = self.backend.list(Some(tenant_key));
        let mut markers = Vec::new();
        while let Some(object) = listing.next().await {
            let object = object.map_err(|source| StoreError::List {
                what: format!("tenant {tenant:?}"),
                source,
            })?;
            let Some(relative) = object.location.prefix_match(tenant_key) else {
                continue;
            };
            let parts: Vec<String> = relative.map(|part| part.as_ref().to_string()).collect();
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            if let Some(marker) = classify_block_key(&parts) {
                markers.push(ListedMarker {
                    marker,
                    last_modified: object.last_modified,
                });
            }
        }
        Ok(markers)
    }

    /// The keys of every object of one block.
    pub(super) async fn list_block_objects(
        &self,
        tenant_key: &Path,
        block_id: Uuid,
    ) -> object_store::Result<Vec<Path>> {
        self.backend
            .list(Some(&block_path(tenant_key, &block_id)))
            .map_ok(|object| object.location)
            .try_collect()
            .await
    }

    /// The whole of one object of a block; the error names the tenant, block and object.
    pub(super) async fn read_block_object(
        &self,
        tenant: &str,
        tenant_key: &Path,
        block_id: Uuid,
        object: &str,
    ) -> Result<Bytes, StoreError> {
        let path = object_path(tenant_key, &block_id, object);
        let object_error = |source| StoreError::object(tenant, block_id, object, "read", source);
        self.backend
            .get(&path)
            .await
            .map_err(object_error)?
            .bytes()
            .await
            .map_err(object_error)
    }

    /// Re-lists the bucket. Only `<tenant>/<uuid>/meta.json` defines a live block; blocks with
    /// `meta.compacted.json`, non-UUID folders and objects at the root are ignored. New blocks
    /// (from Tempo or another vivace) appear, vanished or compacted ones are dropped. A tenant
    /// whose listing fails keeps its previous blocks, and the first error is returned.
    pub async fn poll(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let folders = match self.list_root_folders().await {
            Ok(folders) => folders,
            Err(error) => {
                increment(&self.stats.poll_errors, 1);
                return Err(error);
            }
        };
        let tenants: Vec<String> = folders
            .into_iter()
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
        let mut live = HashSet::new();
        let mut compacted = HashSet::new();
        for listed in self.list_block_markers(tenant, &tenant_key).await? {
            match listed.marker {
                BlockMarker::Live(block_id) => {
                    live.insert(block_id);
                }
                BlockMarker::Compacted(block_id) => {
                    compacted.insert(block_id);
                }
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
        // Borrowed, so each fetch's `async move` takes a reference and not the key itself.
        let tenant_folder = &tenant_key;
        let fetches = to_fetch.into_iter().map(|block_id| async move {
            let fetched = self
                .read_block_object(tenant, tenant_folder, block_id, META_OBJECT)
                .await;
            (block_id, fetched)
        });
        let mut fetched = futures::stream::iter(fetches).buffer_unordered(SMALL_OBJECT_CONCURRENCY);
        while let Some((block_id, result)) = fetched.next().await {
            let bytes = match result {
                Ok(bytes) => bytes,
                // Compacted or deleted between the listing and now.
                Err(StoreError::Object {
                    source: object_store::Error::NotFound { .. },
                    ..
                }) => continue,
                Err(error) => return Err(error),
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

    /// When an object of a listed block is missing, checks whether the block itself is gone
    /// (compacted or deleted by another writer since the last poll); if so drops it from the
    /// list and reports true, so the lookup skips it instead of failing.
    pub(super) async fn forget_if_gone(
        &self,
        tenant: &str,
        tenant_key: &Path,
        block_id: Uuid,
    ) -> bool {
        let meta_path = object_path(tenant_key, &block_id, META_OBJECT);
        match self.backend.head(&meta_path).await {
            Err(object_store::Error::NotFound { .. }) => {
                info!(tenant, block = %block_id, "block disappeared from the bucket; dropping it");
                self.forget_block(tenant, block_id);
                true
            }
            _ => false,
        }
    }

    /// After a read of a listed block found its `data.parquet` missing: `Ok` when the whole
    /// block is gone (and now forgotten), so the read yields nothing; a corrupt-block error
    /// when its meta.json is still there.
    pub(super) async fn data_went_missing(
        &self,
        tenant: &str,
        tenant_key: &Path,
        block_id: Uuid,
    ) -> Result<(), StoreError> {
        if self.forget_if_gone(tenant, tenant_key, block_id).await {
            return Ok(());
        }
        Err(StoreError::CorruptBlock {
            tenant: tenant.to_string(),
            block_id,
            reason: format!("{DATA_OBJECT} is missing but meta.json is not"),
        })
    }

    /// Drops a block from the block list (it was compacted or expired by this store).
    pub(crate) fn forget_block(&self, tenant: &str, block_id: Uuid) {
        if let Some(blocks) = self.blocklist.write().get_mut(tenant) {
            blocks.live.remove(&block_id);
        }
        self.forget_cached(&[block_id]);
    }

    /// Drops the cached bloom shards, footers and parsed footers of blocks that are gone.
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
