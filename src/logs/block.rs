//! One log block: a Parquet file of [`LogRow`]s sorted by (service, timestamp), flat columns,
//! row groups of `logs.row_group_rows` with min/max statistics (time and service prune row
//! groups) and a Parquet split-block bloom filter on `trace_id` per row group; plus a block-level
//! bloom over its trace IDs (the `bloom` object, tempodb's format) that readers keep in memory
//! so a trace lookup fetches only the blocks that may hold the trace.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Type as PhysicalType};
use parquet::column::reader::get_typed_column_reader;
use parquet::column::writer::ColumnWriter;
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::{EnabledStatistics, ReaderProperties, WriterProperties};
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use super::{Label, LogRow};
use crate::tempodb::bloom::{shard_for, BloomShard, ShardedBloom};

/// `format` of a log block's meta.json.
pub const FORMAT: &str = "vivace-logs-v1";

const SCHEMA: &str = "message vivace_logs {
  required binary service_name (UTF8);
  required int64 timestamp;
  required int64 observed_timestamp;
  required binary severity_text (UTF8);
  required int32 severity_number;
  required binary body (UTF8);
  required binary trace_id;
  required binary span_id;
  required binary attributes (UTF8);
  required binary resource_attributes (UTF8);
  required binary labels (UTF8);
}";

const COL_SERVICE: usize = 0;
const COL_TIMESTAMP: usize = 1;
const COL_TRACE_ID: usize = 6;

/// A log block's `meta.json`: what readers need to skip it without opening it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogBlockMeta {
    pub format: String,
    #[serde(rename = "blockID")]
    pub block_id: String,
    #[serde(rename = "tenantID")]
    pub tenant_id: String,
    /// Oldest and newest record, Unix nanoseconds (as strings: JSON numbers lose precision).
    #[serde(with = "string_u64")]
    pub min_time_ns: u64,
    #[serde(with = "string_u64")]
    pub max_time_ns: u64,
    pub total_records: u64,
    pub size_bytes: u64,
    /// Distinct services in the block, sorted.
    pub services: Vec<String>,
    /// Bloom shards in the `bloom` object (each a tempodb bloom shard, length-prefixed).
    pub bloom_shards: u32,
}

mod string_u64 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a block could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("malformed log block: {0}")]
    Malformed(String),
}

/// An encoded block, ready to upload.
pub struct EncodedBlock {
    pub data: Vec<u8>,
    pub bloom: Vec<u8>,
    pub meta: LogBlockMeta,
}

fn labels_json(labels: &[Label]) -> String {
    let mut map = serde_json::Map::new();
    for label in labels {
        map.insert(
            label.name.clone(),
            serde_json::Value::String(label.value.clone()),
        );
    }
    serde_json::Value::Object(map).to_string()
}

fn labels_from_json(text: &[u8]) -> Vec<Label> {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(text) {
        Ok(map) => map
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                };
                Label { name, value }
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Sorts `rows` by (service, timestamp) and encodes them as a block of `tenant`.
pub fn encode(
    tenant: &str,
    block_id: &str,
    mut rows: Vec<LogRow>,
    row_group_rows: usize,
) -> Result<EncodedBlock, BlockError> {
    rows.sort_by(|a, b| {
        (a.service_name.as_str(), a.timestamp_ns).cmp(&(b.service_name.as_str(), b.timestamp_ns))
    });
    let schema = Arc::new(
        parse_message_type(SCHEMA).map_err(|error| BlockError::Malformed(error.to_string()))?,
    );
    let row_group_rows = row_group_rows.max(1);
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_column_bloom_filter_enabled(ColumnPath::from("trace_id"), true)
        .set_column_bloom_filter_fpp(ColumnPath::from("trace_id"), 0.01)
        .set_column_bloom_filter_max_ndv(ColumnPath::from("trace_id"), row_group_rows as u64)
        .build();
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, Arc::new(properties))?;
    let mut distinct_traces: Vec<[u8; 16]> = Vec::new();
    for group in rows.chunks(row_group_rows) {
        let mut row_group = writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut column) = row_group.next_column()? {
            match column.untyped() {
                ColumnWriter::Int64ColumnWriter(typed) => {
                    let values: Vec<i64> = group
                        .iter()
                        .map(|row| {
                            let value = if index == COL_TIMESTAMP {
                                row.timestamp_ns
                            } else {
                                row.observed_ns
                            };
                            value.min(i64::MAX as u64) as i64
                        })
                        .collect();
                    typed.write_batch(&values, None, None)?;
                }
                ColumnWriter::Int32ColumnWriter(typed) => {
                    let values: Vec<i32> = group.iter().map(|row| row.severity_number).collect();
                    typed.write_batch(&values, None, None)?;
                }
                ColumnWriter::ByteArrayColumnWriter(typed) => {
                    let values: Vec<ByteArray> = group
                        .iter()
                        .map(|row| {
                            ByteArray::from(match index {
                                0 => row.service_name.as_bytes().to_vec(),
                                3 => row.severity_text.as_bytes().to_vec(),
                                5 => row.body.as_bytes().to_vec(),
                                6 => row.trace_id.clone(),
                                7 => row.span_id.clone(),
                                8 => labels_json(&row.attributes).into_bytes(),
                                9 => labels_json(&row.resource_attributes).into_bytes(),
                                _ => labels_json(&row.labels).into_bytes(),
                            })
                        })
                        .collect();
                    typed.write_batch(&values, None, None)?;
                }
                _ => return Err(BlockError::Malformed(format!("unexpected column {index}"))),
            }
            column.close()?;
            index += 1;
        }
        row_group.close()?;
        for row in group {
            if let Ok(id) = <[u8; 16]>::try_from(row.trace_id.as_slice()) {
                distinct_traces.push(id);
            }
        }
    }
    let data = writer.into_inner()?;
    distinct_traces.sort_unstable();
    distinct_traces.dedup();
    // About 10 bits per ID gives 1% false positives; a single shard keeps the object simple.
    let shard_bytes = (distinct_traces.len() * 10 / 8).max(64);
    let mut bloom = ShardedBloom::new(0.01, shard_bytes, distinct_traces.len().max(1));
    for id in &distinct_traces {
        bloom.add(id);
    }
    let mut bloom_bytes = Vec::new();
    for shard in bloom.to_shard_bytes() {
        bloom_bytes.extend_from_slice(&(shard.len() as u32).to_le_bytes());
        bloom_bytes.extend_from_slice(&shard);
    }
    let mut services: Vec<String> = rows.iter().map(|row| row.service_name.clone()).collect();
    services.dedup();
    let meta = LogBlockMeta {
        format: FORMAT.to_string(),
        block_id: block_id.to_string(),
        tenant_id: tenant.to_string(),
        min_time_ns: rows.iter().map(|row| row.timestamp_ns).min().unwrap_or(0),
        max_time_ns: rows.iter().map(|row| row.timestamp_ns).max().unwrap_or(0),
        total_records: rows.len() as u64,
        size_bytes: data.len() as u64,
        services,
        bloom_shards: bloom.shard_count(),
    };
    Ok(EncodedBlock {
        data,
        bloom: bloom_bytes,
        meta,
    })
}

/// A block's trace-ID bloom filter, held in memory by readers.
#[derive(Debug)]
pub struct BlockBloom {
    shards: Vec<BloomShard>,
}

impl BlockBloom {
    /// Parses the `bloom` object.
    pub fn parse(bytes: &[u8]) -> Result<BlockBloom, BlockError> {
        let mut shards = Vec::new();
        let mut offset = 0;
        while offset < bytes.len() {
            let header = bytes
                .get(offset..offset + 4)
                .ok_or_else(|| BlockError::Malformed("truncated bloom length".into()))?;
            let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            offset += 4;
            let shard = bytes
                .get(offset..offset + length)
                .ok_or_else(|| BlockError::Malformed("truncated bloom shard".into()))?;
            shards.push(
                BloomShard::from_bytes(shard)
                    .map_err(|error| BlockError::Malformed(format!("bloom shard: {error}")))?,
            );
            offset += length;
        }
        Ok(BlockBloom { shards })
    }

    /// Whether the block may hold records of the trace.
    pub fn may_contain(&self, trace_id: &[u8; 16]) -> bool {
        if self.shards.is_empty() {
            return true;
        }
        let shard = shard_for(trace_id, self.shards.len() as u32) as usize;
        self.shards[shard].test(trace_id)
    }
}

/// What a read of a block is after; row groups that cannot match are skipped.
#[derive(Debug, Clone, Default)]
pub struct BlockFilter {
    pub trace_id: Option<[u8; 16]>,
    pub service: Option<String>,
    /// Inclusive time range, Unix nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
}

/// How much of a block a read touched, for figures and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub row_groups: usize,
    pub row_groups_read: usize,
}

/// Decodes the rows of `data` that may pass `filter` (whole row groups; the caller filters
/// rows exactly).
pub fn read(data: Bytes, filter: &BlockFilter) -> Result<(Vec<LogRow>, ReadStats), BlockError> {
    let options = ReadOptionsBuilder::new()
        .with_reader_properties(
            ReaderProperties::builder()
                .set_read_bloom_filter(true)
                .build(),
        )
        .build();
    let file = SerializedFileReader::new_with_options(data, options)?;
    let metadata = file.metadata();
    let columns = metadata.file_metadata().schema_descr().num_columns();
    if columns != 11 {
        return Err(BlockError::Malformed(format!(
            "{columns} columns, expected 11"
        )));
    }
    if metadata
        .file_metadata()
        .schema_descr()
        .column(COL_TRACE_ID)
        .physical_type()
        != PhysicalType::BYTE_ARRAY
    {
        return Err(BlockError::Malformed("trace_id is not binary".into()));
    }
    let mut stats = ReadStats {
        row_groups: metadata.num_row_groups(),
        ..Default::default()
    };
    let mut rows = Vec::new();
    for index in 0..metadata.num_row_groups() {
        let group_meta = metadata.row_group(index);
        if let Some(Statistics::Int64(time)) = group_meta.column(COL_TIMESTAMP).statistics() {
            if let (Some(min), Some(max)) = (time.min_opt(), time.max_opt()) {
                if (*max as u64) < filter.start_ns || (*min as u64) > filter.end_ns {
                    continue;
                }
            }
        }
        if let (Some(service), Some(Statistics::ByteArray(names))) =
            (&filter.service, group_meta.column(COL_SERVICE).statistics())
        {
            if let (Some(min), Some(max)) = (names.min_opt(), names.max_opt()) {
                if service.as_bytes() < min.data() || service.as_bytes() > max.data() {
                    continue;
                }
            }
        }
        let group = file.get_row_group(index)?;
        if let Some(trace_id) = &filter.trace_id {
            if let Some(bloom) = group.get_column_bloom_filter(COL_TRACE_ID) {
                if !bloom.check(&trace_id[..]) {
                    continue;
                }
            }
        }
        stats.row_groups_read += 1;
        rows.extend(read_group(group.as_ref(), group_meta.num_rows() as usize)?);
    }
    Ok((rows, stats))
}

fn read_group(group: &dyn RowGroupReader, count: usize) -> Result<Vec<LogRow>, BlockError> {
    let bytes_column = |index: usize| -> Result<Vec<ByteArray>, BlockError> {
        let mut reader = get_typed_column_reader::<ByteArrayType>(group.get_column_reader(index)?);
        let mut values = Vec::with_capacity(count);
        while values.len() < count {
            let (records, _, _) =
                reader.read_records(count - values.len(), None, None, &mut values)?;
            if records == 0 {
                break;
            }
        }
        Ok(values)
    };
    let int64_column = |index: usize| -> Result<Vec<i64>, BlockError> {
        let mut reader = get_typed_column_reader::<Int64Type>(group.get_column_reader(index)?);
        let mut values = Vec::with_capacity(count);
        while values.len() < count {
            let (records, _, _) =
                reader.read_records(count - values.len(), None, None, &mut values)?;
            if records == 0 {
                break;
            }
        }
        Ok(values)
    };
    let mut severity_numbers = Vec::with_capacity(count);
    {
        let mut reader = get_typed_column_reader::<Int32Type>(group.get_column_reader(4)?);
        while severity_numbers.len() < count {
            let (records, _, _) = reader.read_records(
                count - severity_numbers.len(),
                None,
                None,
                &mut severity_numbers,
            )?;
            if records == 0 {
                break;
            }
        }
    }
    let services = bytes_column(0)?;
    let timestamps = int64_column(1)?;
    let observed = int64_column(2)?;
    let severity_texts = bytes_column(3)?;
    let bodies = bytes_column(5)?;
    let trace_ids = bytes_column(6)?;
    let span_ids = bytes_column(7)?;
    let attributes = bytes_column(8)?;
    let resources = bytes_column(9)?;
    let labels = bytes_column(10)?;
    let lengths = [
        services.len(),
        timestamps.len(),
        observed.len(),
        severity_texts.len(),
        severity_numbers.len(),
        bodies.len(),
        trace_ids.len(),
        span_ids.len(),
        attributes.len(),
        resources.len(),
        labels.len(),
    ];
    if lengths.iter().any(|length| *length != count) {
        return Err(BlockError::Malformed(format!(
            "column lengths {lengths:?} differ from the row count {count}"
        )));
    }
    let text = |value: &ByteArray| String::from_utf8_lossy(value.data()).into_owned();
    Ok((0..count)
        .map(|i| LogRow {
            timestamp_ns: timestamps[i].max(0) as u64,
            observed_ns: observed[i].max(0) as u64,
            service_name: text(&services[i]),
            severity_text: text(&severity_texts[i]),
            severity_number: severity_numbers[i],
            body: text(&bodies[i]),
            trace_id: trace_ids[i].data().to_vec(),
            span_id: span_ids[i].data().to_vec(),
            attributes: labels_from_json(attributes[i].data()),
            resource_attributes: labels_from_json(resources[i].data()),
            labels: labels_from_json(labels[i].data()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(service: &str, time: u64, trace: u8) -> LogRow {
        LogRow {
            timestamp_ns: time,
            observed_ns: time + 1,
            service_name: service.into(),
            severity_text: "INFO".into(),
            severity_number: 9,
            body: format!("line {time}"),
            trace_id: vec![trace; 16],
            span_id: vec![trace; 8],
            attributes: vec![Label::new("http.route", "/pay")],
            resource_attributes: vec![Label::new("service.name", service)],
            labels: vec![Label::new("service_name", service)],
        }
    }

    #[test]
    fn round_trip_sorted_by_service_and_time() {
        let rows = vec![row("b", 3, 1), row("a", 2, 2), row("a", 1, 1)];
        let block = encode("t", "id", rows, 2).unwrap();
        assert_eq!(block.meta.services, vec!["a", "b"]);
        assert_eq!((block.meta.min_time_ns, block.meta.max_time_ns), (1, 3));
        let filter = BlockFilter {
            end_ns: u64::MAX,
            ..Default::default()
        };
        let (read_rows, stats) = read(Bytes::from(block.data), &filter).unwrap();
        assert_eq!(stats.row_groups, 2);
        let keys: Vec<_> = read_rows
            .iter()
            .map(|r| (r.service_name.as_str(), r.timestamp_ns))
            .collect();
        assert_eq!(keys, vec![("a", 1), ("a", 2), ("b", 3)]);
        assert_eq!(read_rows[0], row("a", 1, 1));
    }

    #[test]
    fn trace_and_time_lookups_skip_row_groups() {
        // 100 traces, 10 records each, 10 records per row group, interleaved in time.
        let mut rows = Vec::new();
        for trace in 0..100u8 {
            for i in 0..10u64 {
                rows.push(row("svc", trace as u64 * 1000 + i, trace));
            }
        }
        let block = encode("t", "id", rows, 10).unwrap();
        let bloom = BlockBloom::parse(&block.bloom).unwrap();
        assert!(bloom.may_contain(&[42; 16]));
        let absent = (200..255u8)
            .filter(|b| bloom.may_contain(&[*b; 16]))
            .count();
        assert!(absent < 5, "{absent} false positives of 55");
        let data = Bytes::from(block.data);
        let filter = BlockFilter {
            trace_id: Some([42; 16]),
            end_ns: u64::MAX,
            ..Default::default()
        };
        let (found, stats) = read(data.clone(), &filter).unwrap();
        assert_eq!(stats.row_groups, 100);
        assert!(stats.row_groups_read <= 5, "{stats:?}");
        assert_eq!(
            found.iter().filter(|r| r.trace_id == vec![42; 16]).count(),
            10
        );
        let filter = BlockFilter {
            start_ns: 5000,
            end_ns: 5999,
            ..Default::default()
        };
        let (found, stats) = read(data.clone(), &filter).unwrap();
        assert_eq!(stats.row_groups_read, 1);
        assert_eq!(found.len(), 10);
        let filter = BlockFilter {
            service: Some("other".into()),
            end_ns: u64::MAX,
            ..Default::default()
        };
        assert_eq!(read(data, &filter).unwrap().1.row_groups_read, 0);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read(Bytes::from_static(b"not parquet"), &BlockFilter::default()).is_err());
        assert!(BlockBloom::parse(&[9, 0, 0, 0, 1]).is_err());
    }
}
