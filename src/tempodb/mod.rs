//! tempodb: the storage engine. Blocks in Tempo's vParquet4 format with bloom filters, index and
//! meta.json, on an `object_store` backend (local directory, S3, GCS, Azure).

pub mod meta;
pub mod vparquet4;
