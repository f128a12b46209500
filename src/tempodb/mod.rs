//! tempodb: the storage engine. Blocks in Tempo's vParquet4 format with bloom filters, index and
//! meta.json, on an `object_store` backend (local directory, S3, GCS, Azure).

pub mod backend;
pub mod bloom;
pub mod cache;
pub mod compactor;
pub mod index;
pub mod meta;
pub mod reader;
pub mod store;
pub mod vparquet4;

pub use backend::StorageConfig;
pub use compactor::{CompactorConfig, CycleOutcome, RetentionTiersConfig};
pub use store::{Store, StoreError, StoreStats, StoreStatsSnapshot};
