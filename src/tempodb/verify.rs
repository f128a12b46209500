//! Startup verification: cheap checks of every listed block against its meta.json, and the
//! quarantine that moves a corrupt block aside (`quarantine/<tenant>/<block>/…`) instead of
//! serving or deleting it.

use object_store::path::Path;
use object_store::ObjectStoreExt;
use tracing::warn;
use uuid::Uuid;

use super::backend::{object_path, tenant_path, DATA_OBJECT, INDEX_OBJECT, META_OBJECT};
use super::blocklist::QUARANTINE_PREFIX;
use super::index::RowGroupIndex;
use super::meta::BlockMeta;
use super::store::{increment, Store};

impl Store {
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
                // A meta.json that cannot be read now is left for the next start.
                let parsed = self
                    .read_block_object(tenant, &tenant_key, *block_id, META_OBJECT)
                    .await
                    .map(|bytes| BlockMeta::from_json(&bytes).err());
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
        let objects = self.list_block_objects(tenant_key, block_id).await?;
        for from in &objects {
            let to = Path::from(format!("{QUARANTINE_PREFIX}/{from}"));
            self.backend.rename(from, &to).await?;
        }
        Ok(objects.len())
    }
}
