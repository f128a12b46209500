//! Storage configuration and the object-storage backend built from it, plus the bucket layout
//! Tempo uses: `[<prefix>/]<tenant>/<blockID>/<object>` (reference/tempo-block-format.md §2).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::{Path, PathPart};
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::meta::DedicatedColumn;

/// Object name of a block's Parquet data.
pub const DATA_OBJECT: &str = "data.parquet";
/// Object name of a block's row-group index.
pub const INDEX_OBJECT: &str = "index";
/// Object name of a live block's metadata; its presence makes the block visible.
pub const META_OBJECT: &str = "meta.json";
/// Object name that replaces `meta.json` once a block has been compacted away.
pub const COMPACTED_META_OBJECT: &str = "meta.compacted.json";

/// Which object store holds the blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A directory on the local file system (`local.path`).
    #[default]
    Local,
    /// Amazon S3 or any S3-compatible server (MinIO, Ceph, R2, …) (`s3.*`).
    S3,
    /// Google Cloud Storage (`gcs.*`).
    Gcs,
    /// Azure Blob Storage (`azure.*`).
    Azure,
}

/// Where and how blocks are stored; the `storage` section of the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Object store for blocks: `local`, `s3`, `gcs` or `azure`. Only the matching section
    /// below is used.
    pub backend: BackendKind,
    /// Settings of the `local` backend.
    pub local: LocalConfig,
    /// Settings of the `s3` backend.
    pub s3: S3Config,
    /// Settings of the `gcs` backend.
    pub gcs: GcsConfig,
    /// Settings of the `azure` backend.
    pub azure: AzureConfig,
    /// Target false-positive rate of each block's bloom filter over trace IDs; lower costs
    /// more bloom bytes and saves reads of blocks that do not hold the trace.
    pub bloom_filter_false_positive: f64,
    /// Size of one bloom-filter shard object (`bloom-N`), in bytes. Large blocks get more shards;
    /// a lookup reads one shard per block.
    pub bloom_filter_shard_size_bytes: usize,
    /// How often the bucket is listed to pick up blocks written by others (Tempo, another vivace)
    /// and to drop blocks compacted or deleted by them, e.g. `30s`, `5m`.
    #[serde(with = "humantime_serde")]
    pub blocklist_poll: Duration,
    /// Target size of a Parquet row group in a written block, in bytes (Tempo's
    /// `parquet_row_group_size_bytes`).
    pub row_group_size_bytes: usize,
    /// Attributes stored in their own Parquet columns in new blocks (at most 10 per scope,
    /// string values only in vParquet4). Queries on them read less data. Changing the list
    /// only affects blocks written afterwards.
    pub dedicated_columns: Vec<DedicatedColumnConfig>,
    /// Memory for cached bloom-filter shards, in bytes; the working set is one shard per
    /// block queried.
    pub bloom_cache_bytes: usize,
    /// Memory for cached Parquet footers, in bytes, and as much again for their parsed page
    /// indexes; a cached block answers a trace lookup with one page read per column.
    pub footer_cache_bytes: usize,
    /// How many blocks are read at once across all trace-by-ID lookups.
    pub max_concurrent_block_reads: usize,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            backend: BackendKind::Local,
            local: LocalConfig::default(),
            s3: S3Config::default(),
            gcs: GcsConfig::default(),
            azure: AzureConfig::default(),
            bloom_filter_false_positive: 0.01,
            bloom_filter_shard_size_bytes: 100 * 1024,
            blocklist_poll: Duration::from_secs(5 * 60),
            row_group_size_bytes: 100_000_000,
            dedicated_columns: default_dedicated_columns(),
            bloom_cache_bytes: 64 * 1024 * 1024,
            footer_cache_bytes: 64 * 1024 * 1024,
            max_concurrent_block_reads: 16,
        }
    }
}

/// The dedicated columns Tempo 3.x configures by default for span attributes.
pub fn default_dedicated_columns() -> Vec<DedicatedColumnConfig> {
    [
        "http.request.method",
        "url.path",
        "url.route",
        "server.address",
        "http.route",
    ]
    .into_iter()
    .map(|name| DedicatedColumnConfig {
        scope: DedicatedScope::Span,
        name: name.to_string(),
        value_type: DedicatedType::String,
    })
    .collect()
}

/// One dedicated attribute column, written as Tempo's `parquet_dedicated_columns` entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedicatedColumnConfig {
    /// `span` or `resource`: whose attribute it is.
    #[serde(default)]
    pub scope: DedicatedScope,
    /// The attribute name, e.g. `http.route`.
    pub name: String,
    /// The value type; vParquet4 supports `string` only.
    #[serde(rename = "type", default)]
    pub value_type: DedicatedType,
}

/// Scope of a dedicated column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedicatedScope {
    /// A span attribute.
    #[default]
    Span,
    /// A resource attribute.
    Resource,
}

/// Value type of a dedicated column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedicatedType {
    /// String values (the only type vParquet4 has columns for).
    #[default]
    String,
}

/// At most this many dedicated columns per scope fit vParquet4's `String01..String10`.
pub const MAX_DEDICATED_COLUMNS_PER_SCOPE: usize = 10;

impl StorageConfig {
    /// The dedicated columns as they are recorded in meta.json, in configured order.
    pub fn meta_dedicated_columns(&self) -> Vec<DedicatedColumn> {
        self.dedicated_columns
            .iter()
            .map(|column| {
                let scope = match column.scope {
                    DedicatedScope::Span => "span",
                    DedicatedScope::Resource => "resource",
                };
                DedicatedColumn::new(scope, &column.name)
            })
            .collect()
    }

    /// Checks values serde cannot: ranges, required names, per-scope limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let false_positive = self.bloom_filter_false_positive;
        if !(false_positive > 0.0 && false_positive < 1.0) {
            return Err(ConfigError::Invalid(format!(
                "bloom_filter_false_positive must be between 0 and 1 (exclusive), got {false_positive}"
            )));
        }
        if self.bloom_filter_shard_size_bytes == 0 {
            return Err(ConfigError::Invalid(
                "bloom_filter_shard_size_bytes must be positive".into(),
            ));
        }
        if self.blocklist_poll.is_zero() {
            return Err(ConfigError::Invalid(
                "blocklist_poll must be positive".into(),
            ));
        }
        if self.row_group_size_bytes == 0 {
            return Err(ConfigError::Invalid(
                "row_group_size_bytes must be positive".into(),
            ));
        }
        if self.max_concurrent_block_reads == 0 {
            return Err(ConfigError::Invalid(
                "max_concurrent_block_reads must be positive".into(),
            ));
        }
        for scope in [DedicatedScope::Span, DedicatedScope::Resource] {
            let count = self
                .dedicated_columns
                .iter()
                .filter(|column| column.scope == scope)
                .count();
            if count > MAX_DEDICATED_COLUMNS_PER_SCOPE {
                return Err(ConfigError::Invalid(format!(
                    "dedicated_columns: {count} {scope:?} columns, at most {MAX_DEDICATED_COLUMNS_PER_SCOPE} fit vParquet4"
                )));
            }
        }
        for (position, column) in self.dedicated_columns.iter().enumerate() {
            if column.name.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "dedicated_columns[{position}]: name is empty"
                )));
            }
            let duplicate = self.dedicated_columns[..position]
                .iter()
                .any(|earlier| earlier.scope == column.scope && earlier.name == column.name);
            if duplicate {
                return Err(ConfigError::Invalid(format!(
                    "dedicated_columns: {:?} is listed twice",
                    column.name
                )));
            }
        }
        Ok(())
    }
}

/// The `local` backend: a directory laid out like a bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Directory holding `<tenant>/<blockID>/…`; created if missing.
    pub path: PathBuf,
}

impl Default for LocalConfig {
    fn default() -> LocalConfig {
        LocalConfig {
            path: PathBuf::from("./data/blocks"),
        }
    }
}

/// The `s3` backend (Amazon S3 or an S3-compatible server).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Server address, as Tempo takes it: `host[:port]` (scheme from `insecure`) or a full URL.
    /// Empty means AWS's regional endpoint.
    pub endpoint: String,
    /// AWS region; empty means `AWS_REGION` from the environment, else `us-east-1`.
    pub region: String,
    /// Access key ID; empty means credentials from the environment (`AWS_ACCESS_KEY_ID`, web
    /// identity, instance metadata).
    pub access_key: String,
    /// Secret access key, used with `access_key`.
    pub secret_key: String,
    /// Key prefix inside the bucket, so several deployments can share one bucket.
    pub prefix: String,
    /// Talk plain HTTP instead of HTTPS (for local S3-compatible servers).
    pub insecure: bool,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint` (MinIO and most
    /// S3-compatible servers need this).
    pub forcepathstyle: bool,
}

/// The `gcs` backend (Google Cloud Storage).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcsConfig {
    /// Bucket name.
    pub bucket_name: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Service-account JSON key file; unset means application-default credentials
    /// (`GOOGLE_APPLICATION_CREDENTIALS`, workload identity).
    pub service_account_path: Option<PathBuf>,
}

/// The `azure` backend (Azure Blob Storage).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    /// Blob container name.
    pub container_name: String,
    /// Storage account name.
    pub storage_account_name: String,
    /// Storage account key; empty means credentials from the environment (managed identity,
    /// `AZURE_*` variables).
    pub storage_account_key: String,
    /// Key prefix inside the container.
    pub prefix: String,
    /// Blob service URL, for Azurite or sovereign clouds; unset means the public cloud.
    pub endpoint: Option<String>,
}

/// A storage configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value out of range or missing.
    #[error("invalid storage config: {0}")]
    Invalid(String),
    /// The backend client refused its settings.
    #[error("cannot set up the {backend} backend: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The client's reason.
        #[source]
        source: object_store::Error,
    },
    /// The local directory could not be created.
    #[error("cannot create block directory {path:?}: {source}")]
    LocalDirectory {
        /// The directory.
        path: PathBuf,
        /// The file system's reason.
        #[source]
        source: std::io::Error,
    },
}

/// Builds the object store the config describes, with its key prefix applied, so every key
/// the store uses starts at `<tenant>/`.
pub fn build_object_store(config: &StorageConfig) -> Result<Arc<dyn ObjectStore>, ConfigError> {
    let (store, prefix): (Arc<dyn ObjectStore>, &str) = match config.backend {
        BackendKind::Local => {
            let path = &config.local.path;
            std::fs::create_dir_all(path).map_err(|source| ConfigError::LocalDirectory {
                path: path.clone(),
                source,
            })?;
            let store =
                LocalFileSystem::new_with_prefix(path).map_err(|source| ConfigError::Backend {
                    backend: "local",
                    source,
                })?;
            (Arc::new(store), "")
        }
        BackendKind::S3 => (Arc::new(build_s3(&config.s3)?), config.s3.prefix.as_str()),
        BackendKind::Gcs => (
            Arc::new(build_gcs(&config.gcs)?),
            config.gcs.prefix.as_str(),
        ),
        BackendKind::Azure => (
            Arc::new(build_azure(&config.azure)?),
            config.azure.prefix.as_str(),
        ),
    };
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Ok(store);
    }
    let prefix_path = Path::parse(prefix).map_err(|error| {
        ConfigError::Invalid(format!(
            "prefix {prefix:?} is not a valid key prefix: {error}"
        ))
    })?;
    Ok(Arc::new(PrefixStore::new(store, prefix_path)))
}

fn build_s3(config: &S3Config) -> Result<object_store::aws::AmazonS3, ConfigError> {
    if config.bucket.is_empty() {
        return Err(ConfigError::Invalid("s3.bucket is required".into()));
    }
    // Environment first, so unset keys fall back to the usual AWS variables and roles.
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&config.bucket)
        .with_allow_http(config.insecure)
        .with_virtual_hosted_style_request(!config.forcepathstyle);
    if !config.endpoint.is_empty() {
        builder = builder.with_endpoint(endpoint_url(&config.endpoint, config.insecure));
    }
    if !config.region.is_empty() {
        builder = builder.with_region(&config.region);
    }
    if !config.access_key.is_empty() {
        builder = builder
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret_key);
    }
    builder.build().map_err(|source| ConfigError::Backend {
        backend: "s3",
        source,
    })
}

/// Tempo takes the S3 endpoint as `host:port`; object_store wants a URL.
fn endpoint_url(endpoint: &str, insecure: bool) -> String {
    if endpoint.contains("://") {
        return endpoint.to_string();
    }
    let scheme = if insecure { "http" } else { "https" };
    format!("{scheme}://{endpoint}")
}

fn build_gcs(config: &GcsConfig) -> Result<object_store::gcp::GoogleCloudStorage, ConfigError> {
    if config.bucket_name.is_empty() {
        return Err(ConfigError::Invalid("gcs.bucket_name is required".into()));
    }
    let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(&config.bucket_name);
    if let Some(path) = &config.service_account_path {
        builder = builder.with_service_account_path(path.to_string_lossy());
    }
    builder.build().map_err(|source| ConfigError::Backend {
        backend: "gcs",
        source,
    })
}

fn build_azure(config: &AzureConfig) -> Result<object_store::azure::MicrosoftAzure, ConfigError> {
    if config.container_name.is_empty() {
        return Err(ConfigError::Invalid(
            "azure.container_name is required".into(),
        ));
    }
    let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(&config.container_name);
    if !config.storage_account_name.is_empty() {
        builder = builder.with_account(&config.storage_account_name);
    }
    if !config.storage_account_key.is_empty() {
        builder = builder.with_access_key(&config.storage_account_key);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_endpoint(endpoint.clone())
            .with_allow_http(endpoint.starts_with("http://"));
    }
    builder.build().map_err(|source| ConfigError::Backend {
        backend: "azure",
        source,
    })
}

/// Why a tenant cannot name a folder of the bucket.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("tenant {tenant:?} cannot be used as a storage key: {reason}")]
pub struct InvalidTenant {
    /// The tenant as given.
    pub tenant: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The key of a tenant's folder. Tenants that are empty, `.`/`..`, or contain `/`, control
/// characters or characters object_store would percent-encode are refused, so a key always
/// spells the tenant exactly as Tempo would and never escapes the tenant's folder.
pub fn tenant_path(tenant: &str) -> Result<Path, InvalidTenant> {
    let invalid = |reason| InvalidTenant {
        tenant: tenant.to_string(),
        reason,
    };
    if tenant.is_empty() {
        return Err(invalid("it is empty"));
    }
    if tenant.contains('/') {
        return Err(invalid("it contains '/'"));
    }
    let part = PathPart::parse(tenant)
        .map_err(|_| invalid("it is '.', '..' or contains control characters"))?;
    if PathPart::from(tenant).as_ref() != part.as_ref() {
        return Err(invalid(
            "it contains characters object keys cannot hold verbatim",
        ));
    }
    Ok(Path::from_iter([part]))
}

/// The folder of one block: `<tenant>/<blockID>`.
pub fn block_path(tenant: &Path, block_id: &Uuid) -> Path {
    tenant.clone().join(block_id.hyphenated().to_string())
}

/// The key of one object of a block: `<tenant>/<blockID>/<object>`.
pub fn object_path(tenant: &Path, block_id: &Uuid, object: &str) -> Path {
    block_path(tenant, block_id).join(object)
}

/// What a key found while listing a tenant says about a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMarker {
    /// `<tenant>/<uuid>/meta.json`: a live block.
    Live(Uuid),
    /// `<tenant>/<uuid>/meta.compacted.json`: a block compacted away.
    Compacted(Uuid),
}

/// Classifies a key relative to the tenant folder (`<uuid>/<object>`); every other key
/// (data, blooms, tenant index, foreign files, non-UUID folders) defines nothing.
pub fn classify_block_key(relative_parts: &[&str]) -> Option<BlockMarker> {
    let [block, object] = relative_parts else {
        return None;
    };
    // Tempo writes canonical hyphenated IDs; other spellings are not its blocks.
    let block_id = Uuid::try_parse(block).ok()?;
    if block_id.hyphenated().to_string() != *block {
        return None;
    }
    match *object {
        META_OBJECT => Some(BlockMarker::Live(block_id)),
        COMPACTED_META_OBJECT => Some(BlockMarker::Compacted(block_id)),
        _ => None,
    }
}

/// Serde for durations as humantime strings (`30s`, `5m`, `1h30m`).
mod humantime_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*duration).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|error| {
            serde::de::Error::custom(format!("invalid duration {text:?}: {error}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_deserialize_from_nothing_and_round_trip() {
        let config: StorageConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(config, StorageConfig::default());
        assert_eq!(config.local.path, PathBuf::from("./data/blocks"));
        assert_eq!(config.blocklist_poll, Duration::from_secs(300));
        assert_eq!(config.bloom_filter_shard_size_bytes, 102_400);
        config.validate().unwrap();
        let text = serde_yaml::to_string(&config).unwrap();
        assert!(text.contains("blocklist_poll: 5m"), "{text}");
        let again: StorageConfig = serde_yaml::from_str(&text).unwrap();
        assert_eq!(again, config);
        let names: Vec<_> = config
            .meta_dedicated_columns()
            .into_iter()
            .map(|column| column.name)
            .collect();
        assert_eq!(
            names,
            [
                "http.request.method",
                "url.path",
                "url.route",
                "server.address",
                "http.route"
            ]
        );
    }

    #[test]
    fn reads_a_tempo_style_s3_section() {
        let text = r#"
backend: s3
blocklist_poll: 30s
s3:
  bucket: tempo
  endpoint: minio:9000
  access_key: key
  secret_key: secret
  insecure: true
  forcepathstyle: true
  prefix: traces/
dedicated_columns:
  - {scope: resource, name: k8s.cluster.name}
  - {name: http.route, type: string}
"#;
        let config: StorageConfig = serde_yaml::from_str(text).unwrap();
        assert_eq!(config.backend, BackendKind::S3);
        assert_eq!(config.blocklist_poll, Duration::from_secs(30));
        assert!(config.s3.forcepathstyle && config.s3.insecure);
        assert_eq!(
            config.meta_dedicated_columns()[0],
            DedicatedColumn::new("resource", "k8s.cluster.name")
        );
        assert_eq!(
            endpoint_url(&config.s3.endpoint, config.s3.insecure),
            "http://minio:9000"
        );
        assert_eq!(
            endpoint_url("https://s3.example.com", true),
            "https://s3.example.com"
        );
        build_object_store(&config).unwrap();
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        let unknown =
            serde_yaml::from_str::<StorageConfig>("s3: {bucket: a, bukket: b}").unwrap_err();
        assert!(unknown.to_string().contains("bukket"), "{unknown}");
        let duration = serde_yaml::from_str::<StorageConfig>("blocklist_poll: soon").unwrap_err();
        assert!(
            duration.to_string().contains("invalid duration"),
            "{duration}"
        );
        let config = StorageConfig {
            bloom_filter_false_positive: 1.5,
            ..StorageConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("bloom_filter_false_positive"));
        let mut config = StorageConfig::default();
        config
            .dedicated_columns
            .push(config.dedicated_columns[0].clone());
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
        let missing_bucket = StorageConfig {
            backend: BackendKind::S3,
            ..StorageConfig::default()
        };
        assert!(build_object_store(&missing_bucket).is_err());
    }

    #[test]
    fn key_layout_is_tempos() {
        let tenant = tenant_path("single-tenant").unwrap();
        let block = Uuid::parse_str("b27b0e53-66a0-4505-afd6-434ae3cd4a10").unwrap();
        assert_eq!(
            object_path(&tenant, &block, META_OBJECT).as_ref(),
            "single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10/meta.json"
        );
        assert_eq!(
            object_path(
                &tenant,
                &block,
                &crate::tempodb::bloom::shard_object_name(2)
            )
            .as_ref(),
            "single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10/bloom-2"
        );
    }

    #[test]
    fn refuses_tenants_that_would_escape_or_be_rewritten() {
        for tenant in ["", "a/b", "..", ".", "a%b", "a\nb", "a#b"] {
            assert!(tenant_path(tenant).is_err(), "{tenant:?} was accepted");
        }
        for tenant in ["single-tenant", "team_a.prod", "A-1"] {
            assert_eq!(tenant_path(tenant).unwrap().as_ref(), tenant);
        }
    }

    #[test]
    fn only_meta_keys_under_uuid_folders_define_blocks() {
        let id = "b27b0e53-66a0-4505-afd6-434ae3cd4a10";
        let uuid = Uuid::parse_str(id).unwrap();
        assert_eq!(
            classify_block_key(&[id, "meta.json"]),
            Some(BlockMarker::Live(uuid))
        );
        assert_eq!(
            classify_block_key(&[id, "meta.compacted.json"]),
            Some(BlockMarker::Compacted(uuid))
        );
        assert_eq!(classify_block_key(&[id, "data.parquet"]), None);
        assert_eq!(classify_block_key(&["not-a-uuid", "meta.json"]), None);
        assert_eq!(
            classify_block_key(&["b27b0e5366a04505afd6434ae3cd4a10", "meta.json"]),
            None
        );
        assert_eq!(classify_block_key(&["index.json.gz"]), None);
        assert_eq!(classify_block_key(&[id, "nested", "meta.json"]), None);
    }
}
