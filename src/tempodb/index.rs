//! The block's `index` object: the last (largest) trace ID of every row group, in order, as
//! `{"rowGroups":["<base64>", ...]}` (reference/tempo-block-format.md §7). Tempo copies it
//! along in compaction; with it a reader can pick the one row group that may hold an ID.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::model::TraceId;

/// The row-group index of one block.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RowGroupIndex {
    /// Last trace ID of each row group, ascending.
    pub last_trace_ids: Vec<TraceId>,
}

#[derive(Serialize, Deserialize)]
struct IndexJson {
    #[serde(rename = "rowGroups")]
    row_groups: Vec<String>,
}

/// Why an `index` object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Not the expected JSON shape.
    #[error("index is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A row-group entry is not base64 of 16 bytes.
    #[error("index row group {row_group}: {reason}")]
    Entry {
        /// Position of the bad entry.
        row_group: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl RowGroupIndex {
    /// The JSON bytes Tempo writes.
    pub fn to_json(&self) -> Vec<u8> {
        let json = IndexJson {
            row_groups: self
                .last_trace_ids
                .iter()
                .map(|id| STANDARD.encode(id.as_bytes()))
                .collect(),
        };
        // A struct of strings always serialises.
        serde_json::to_vec(&json).unwrap_or_default()
    }

    /// Parses an `index` object.
    pub fn from_json(bytes: &[u8]) -> Result<RowGroupIndex, IndexError> {
        let json: IndexJson = serde_json::from_slice(bytes)?;
        let mut last_trace_ids = Vec::with_capacity(json.row_groups.len());
        for (row_group, text) in json.row_groups.iter().enumerate() {
            let bytes = STANDARD.decode(text).map_err(|error| IndexError::Entry {
                row_group,
                reason: format!("not base64: {error}"),
            })?;
            let id: [u8; 16] = bytes.as_slice().try_into().map_err(|_| IndexError::Entry {
                row_group,
                reason: format!("{} bytes, expected 16", bytes.len()),
            })?;
            last_trace_ids.push(TraceId(id));
        }
        Ok(RowGroupIndex { last_trace_ids })
    }

    /// The only row group that can hold `id`: the first whose last ID is not smaller.
    /// `None` when the ID is beyond the block's last ID.
    pub fn row_group_for(&self, id: &TraceId) -> Option<usize> {
        let position = self.last_trace_ids.partition_point(|last| last < id);
        (position < self.last_trace_ids.len()).then_some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPO_INDEX: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tempo-blocks/generated-by-tempo-v3.0.3/vParquet4/single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10/index"
    );

    #[test]
    fn round_trips_tempos_index() {
        let golden = std::fs::read(TEMPO_INDEX).unwrap_or_else(|error| {
            panic!("golden file {TEMPO_INDEX} is missing ({error}); see tests/data/README.md")
        });
        let index = RowGroupIndex::from_json(&golden).unwrap();
        assert_eq!(
            index.last_trace_ids,
            [TraceId::parse_hex("ffa8d7161f6f9f01").unwrap()]
        );
        assert_eq!(index.to_json(), golden);
    }

    #[test]
    fn finds_the_row_group_of_an_id() {
        let ids = [3u8, 7, 9].map(|last| {
            let mut id = [0u8; 16];
            id[15] = last;
            TraceId(id)
        });
        let index = RowGroupIndex {
            last_trace_ids: ids.to_vec(),
        };
        let probe = |value: u8| {
            let mut id = [0u8; 16];
            id[15] = value;
            index.row_group_for(&TraceId(id))
        };
        assert_eq!(probe(1), Some(0));
        assert_eq!(probe(3), Some(0));
        assert_eq!(probe(4), Some(1));
        assert_eq!(probe(9), Some(2));
        assert_eq!(probe(10), None);
        assert_eq!(
            String::from_utf8(RowGroupIndex::default().to_json()).unwrap(),
            r#"{"rowGroups":[]}"#
        );
    }

    #[test]
    fn refuses_bad_entries() {
        assert!(RowGroupIndex::from_json(br#"{"rowGroups":["AAAA"]}"#)
            .unwrap_err()
            .to_string()
            .contains("3 bytes"));
        assert!(RowGroupIndex::from_json(br#"{"rowGroups":["!!"]}"#).is_err());
        assert!(RowGroupIndex::from_json(b"[]").is_err());
    }
}
