//! `meta.json`: the block metadata Tempo reads, with its keys in Tempo's order
//! (reference/tempo-block-format.md §3). Writing it last is what makes a block visible.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The only block format vivace writes; Tempo v2.6 to v3.0 write it by default.
pub const FORMAT_VPARQUET4: &str = "vParquet4";

/// One entry of `dedicatedColumns`: an attribute that has its own Parquet column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DedicatedColumn {
    /// `resource`, `span` or `event`; omitted in JSON when `span`.
    #[serde(
        rename = "s",
        default = "span_scope",
        skip_serializing_if = "is_span_scope"
    )]
    pub scope: String,
    /// The attribute name, e.g. `http.route`.
    #[serde(rename = "n")]
    pub name: String,
    /// `string` or `int`; omitted in JSON when `string`.
    #[serde(
        rename = "t",
        default = "string_type",
        skip_serializing_if = "is_string_type"
    )]
    pub value_type: String,
    /// Options such as `array` or `blob` (vParquet5 only); omitted when empty.
    #[serde(rename = "o", default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

fn span_scope() -> String {
    "span".to_string()
}
fn is_span_scope(scope: &String) -> bool {
    scope == "span"
}
fn string_type() -> String {
    "string".to_string()
}
fn is_string_type(value_type: &String) -> bool {
    value_type == "string"
}

impl DedicatedColumn {
    pub fn new(scope: &str, name: &str) -> DedicatedColumn {
        DedicatedColumn {
            scope: scope.to_string(),
            name: name.to_string(),
            value_type: string_type(),
            options: Vec::new(),
        }
    }
}

/// `meta.json` of one block. Unknown keys (legacy `minID`, `encoding`, …) are ignored on read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub format: String,
    #[serde(rename = "blockID")]
    pub block_id: Uuid,
    #[serde(rename = "tenantID")]
    pub tenant_id: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// Number of traces (rows).
    pub total_objects: i64,
    /// Exact byte length of data.parquet.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub size: u64,
    #[serde(default)]
    pub compaction_level: u32,
    #[serde(default)]
    pub index_page_size: u32,
    /// Number of Parquet row groups.
    #[serde(default)]
    pub total_records: u32,
    /// Number of `bloom-N` objects; 0 means the legacy 10.
    #[serde(default)]
    pub bloom_shards: u32,
    /// Length of the Parquet footer (the little-endian u32 at `size - 8`).
    #[serde(default)]
    pub footer_size: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedicated_columns: Vec<DedicatedColumn>,
    /// 1 for blocks written once (block-builder, vivace); TraceQL metrics use only those.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub replication_factor: u32,
    /// vivace's retention tier: absent for ordinary blocks, `extended` for blocks holding the
    /// error and slow traces kept past `block_retention`. Tempo ignores the key.
    #[serde(
        rename = "vivaceRetentionTier",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub retention_tier: Option<String>,
}

fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}
fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

impl BlockMeta {
    /// The number of bloom shards to read: Tempo treats 0 as the legacy 10.
    pub fn effective_bloom_shards(&self) -> u32 {
        if self.bloom_shards == 0 {
            10
        } else {
            self.bloom_shards
        }
    }

    /// Serialises as Tempo writes it: RFC 3339 times with nanoseconds where needed.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("BlockMeta always serialises")
    }

    pub fn from_json(bytes: &[u8]) -> Result<BlockMeta, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Whether the block's time range overlaps `[start, end]` (Unix nanoseconds).
    pub fn overlaps(&self, start_unix_nano: u64, end_unix_nano: u64) -> bool {
        let block_start = self.start_time.timestamp_nanos_opt().unwrap_or(i64::MIN);
        let block_end = self.end_time.timestamp_nanos_opt().unwrap_or(i64::MAX);
        (block_start as i128) <= end_unix_nano as i128
            && (block_end as i128) >= start_unix_nano as i128
    }
}

/// A Unix-nanosecond timestamp as a UTC time.
pub fn time_from_unix_nano(unix_nano: u64) -> DateTime<Utc> {
    let seconds = (unix_nano / 1_000_000_000) as i64;
    let nanos = (unix_nano % 1_000_000_000) as u32;
    Utc.timestamp_opt(seconds, nanos)
        .single()
        .unwrap_or_default()
}

/// RFC 3339 text of a time, as Go's `time.Time` marshals it.
pub fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tempo_meta_json() {
        let text = r#"{"format":"vParquet4","blockID":"44444444-4444-4444-8444-444444444444","tenantID":"single-tenant",
 "startTime":"2022-07-04T11:11:09Z","endTime":"2022-07-04T11:11:35Z","totalObjects":133,"size":161530,
 "compactionLevel":0,"indexPageSize":0,"totalRecords":4,"bloomShards":1,"footerSize":67951,
 "replicationFactor":1,"minID":"AAAA",
 "dedicatedColumns":[{"s":"resource","n":"ip"},{"n":"instance"},{"n":"version"},{"n":"region"},{"n":"sampler.type"}]}"#;
        let meta = BlockMeta::from_json(text.as_bytes()).unwrap();
        assert_eq!(meta.total_objects, 133);
        assert_eq!(
            meta.dedicated_columns[0],
            DedicatedColumn::new("resource", "ip")
        );
        assert_eq!(
            meta.dedicated_columns[1],
            DedicatedColumn::new("span", "instance")
        );
        let written = String::from_utf8(meta.to_json()).unwrap();
        assert!(written.starts_with(r#"{"format":"vParquet4","blockID":"44444444-4444-4444-8444-444444444444","tenantID":"single-tenant","startTime":"2022-07-04T11:11:09Z""#), "{written}");
        assert!(written.contains(r#"{"s":"resource","n":"ip"},{"n":"instance"}"#));
    }
}
