//! tempodb: the storage engine. Blocks in Tempo's vParquet4 format with bloom filters, index and
//! meta.json, on an `object_store` backend (local directory, S3, GCS, Azure).
//!
//! `store` holds the `Store`; `writer`, `find`, `search`, `blocklist` and `verify` each add
//! one part of its work as an `impl Store`, and `compactor` lists the bucket through
//! `blocklist` like the store's polling does.

pub mod backend;
pub mod blocklist;
pub mod bloom;
pub mod cache;
pub mod compactor;
pub mod find;
pub mod index;
pub(crate) mod merge;
pub mod meta;
pub mod reader;
pub mod search;
pub mod store;
pub mod verify;
pub mod vparquet4;
pub mod writer;

pub use backend::StorageConfig;
pub use compactor::{CompactorConfig, CycleOutcome, RetentionTiersConfig};
pub use store::{Store, StoreError, StoreStats, StoreStatsSnapshot};

#[cfg(test)]
mod tests;
