//! `server.memory_limit`: one memory budget, divided among the parts of vivace that hold memory.
//!
//! The limit is a size in the config, or by default the memory limit of the cgroup vivace runs
//! in (a container's limit). When there is one, each budget below that is not set explicitly
//! is this share of it; the rest is headroom for decoding requests, encoding blocks, queries
//! and the runtime. Past a budget vivace answers 429, so the process stays under the limit
//! instead of being killed.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The shares of the limit, in per mille, and the key each one sets. Chosen from the overload
/// test (`tests/overload.rs`, 512 MiB): peak RSS was about 100 MiB plus three times the head's
/// charged (protobuf) bytes — live traces are also held column by column, and a block cut
/// encodes a copy — 480 MiB with a 25 % head, 343 MiB with 15 %, 220 MiB with 8 %.
pub const SHARES: &[(BudgetKey, u64)] = &[
    (BudgetKey::HeadBytes, 150),
    (BudgetKey::InflightBytes, 100),
    (BudgetKey::LogsHeadBytes, 50),
    // Merging takes about ten times its input: 5 % of the limit for 0.5 % of input.
    (BudgetKey::CompactionInputBytes, 5),
    (BudgetKey::BloomCacheBytes, 25),
    // Footers, and as much again for parsed page indexes: 5 % in all.
    (BudgetKey::FooterCacheBytes, 25),
];

/// The smallest limit vivace accepts: below it the shares are too small to hold one request.
pub const MIN_MEMORY_LIMIT: u64 = 128 * 1024 * 1024;

/// A limit at or above this is no limit (cgroup v1 writes "unlimited" as a huge number).
const UNLIMITED_THRESHOLD: u64 = 1 << 60;

/// cgroup v2 and v1 files holding the memory limit, in the order they are read.
pub const CGROUP_LIMIT_FILES: &[&str] = &[
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
];

/// `server.memory_limit`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemoryLimit {
    /// The cgroup's limit when one is set, else none.
    #[default]
    Auto,
    /// No overall limit: every budget keeps its own default.
    Unlimited,
    /// This many bytes.
    Bytes(u64),
}

impl Serialize for MemoryLimit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MemoryLimit::Auto => serializer.serialize_str("auto"),
            MemoryLimit::Unlimited => serializer.serialize_str("none"),
            MemoryLimit::Bytes(bytes) => serializer.serialize_u64(*bytes),
        }
    }
}

impl<'de> Deserialize<'de> for MemoryLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let limit = match Raw::deserialize(deserializer)? {
            Raw::Number(bytes) => MemoryLimit::Bytes(bytes),
            Raw::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "auto" => MemoryLimit::Auto,
                "none" => MemoryLimit::Unlimited,
                _ => MemoryLimit::Bytes(parse_size(&text).map_err(serde::de::Error::custom)?),
            },
        };
        Ok(limit)
    }
}

/// Parses a size: bytes (`536870912`), or a number with a unit: binary `KiB`, `MiB`, `GiB`,
/// `TiB` (also Kubernetes' `Ki`, `Mi`, `Gi`, `Ti`), decimal `KB`, `MB`, `GB`, `TB` (also `k`,
/// `M`, `G`, `T`), or `B`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 536870912, 512MiB or 2GiB)"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "Ki" => 1 << 10,
        "MiB" | "Mi" => 1 << 20,
        "GiB" | "Gi" => 1 << 30,
        "TiB" | "Ti" => 1 << 40,
        "KB" | "kB" | "k" | "K" => 1_000,
        "MB" | "M" => 1_000_000,
        "GB" | "G" => 1_000_000_000,
        "TB" | "T" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Reads a cgroup memory limit file's text: `max` (v2) or a huge number (v1's unlimited) is
/// no limit.
pub fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let value = text.trim();
    if value == "max" {
        return None;
    }
    let bytes: u64 = value.parse().ok()?;
    (bytes > 0 && bytes < UNLIMITED_THRESHOLD).then_some(bytes)
}

/// The memory limit of this process's cgroup, from the first of `files` that holds one.
pub fn cgroup_memory_limit(files: &[&str]) -> Option<(u64, String)> {
    files.iter().find_map(|file| {
        let text = std::fs::read_to_string(Path::new(file)).ok()?;
        parse_cgroup_limit(&text).map(|bytes| (bytes, file.to_string()))
    })
}

/// A config key the budget sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetKey {
    HeadBytes,
    InflightBytes,
    LogsHeadBytes,
    CompactionInputBytes,
    BloomCacheBytes,
    FooterCacheBytes,
}

impl BudgetKey {
    /// The key's path in the config file.
    pub fn path(self) -> &'static [&'static str] {
        match self {
            BudgetKey::HeadBytes => &["ingester", "max_head_bytes"],
            BudgetKey::InflightBytes => &["distributor", "max_inflight_bytes"],
            BudgetKey::LogsHeadBytes => &["logs", "max_head_bytes"],
            BudgetKey::CompactionInputBytes => &["compactor", "max_input_bytes"],
            BudgetKey::BloomCacheBytes => &["storage", "trace", "bloom_cache_bytes"],
            BudgetKey::FooterCacheBytes => &["storage", "trace", "footer_cache_bytes"],
        }
    }

    /// The key as written in docs and logs, e.g. `ingester.max_head_bytes`.
    pub fn name(self) -> String {
        self.path().join(".")
    }
}

/// Where the limit came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitSource {
    /// `server.memory_limit` in the config.
    Configured,
    /// The cgroup's limit, read from this file.
    Cgroup(String),
}

impl fmt::Display for LimitSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitSource::Configured => formatter.write_str("server.memory_limit"),
            LimitSource::Cgroup(file) => write!(formatter, "cgroup ({file})"),
        }
    }
}

/// One budget: its key, bytes, and whether it came from the limit or was set explicitly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetPart {
    pub key: BudgetKey,
    pub bytes: u64,
    pub derived: bool,
}

/// The limit in force and how it was divided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    pub limit: u64,
    pub source: LimitSource,
    pub parts: Vec<BudgetPart>,
}

impl MemoryBudget {
    /// The limit vivace works under: the configured one, else (for `auto`) the cgroup's.
    pub fn resolve(
        configured: MemoryLimit,
        cgroup: Option<(u64, String)>,
    ) -> Option<(u64, LimitSource)> {
        match configured {
            MemoryLimit::Bytes(bytes) => Some((bytes, LimitSource::Configured)),
            MemoryLimit::Unlimited => None,
            MemoryLimit::Auto => cgroup.map(|(bytes, file)| (bytes, LimitSource::Cgroup(file))),
        }
    }

    /// Divides `limit` by [`SHARES`]; `explicit` says which keys the user set, which keep
    /// their value (given by `current`).
    pub fn divide(
        limit: u64,
        source: LimitSource,
        explicit: impl Fn(BudgetKey) -> bool,
        current: impl Fn(BudgetKey) -> u64,
    ) -> MemoryBudget {
        let parts = SHARES
            .iter()
            .map(|(key, per_mille)| {
                if explicit(*key) {
                    BudgetPart {
                        key: *key,
                        bytes: current(*key),
                        derived: false,
                    }
                } else {
                    BudgetPart {
                        key: *key,
                        bytes: limit / 1000 * per_mille,
                        derived: true,
                    }
                }
            })
            .collect();
        MemoryBudget {
            limit,
            source,
            parts,
        }
    }

    /// The bytes given to `key`.
    pub fn bytes(&self, key: BudgetKey) -> Option<u64> {
        self.parts
            .iter()
            .find(|part| part.key == key)
            .map(|part| part.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_files_of_v1_and_v2() {
        let cases: &[(&str, Option<u64>)] = &[
            // v2: a limit, and "max" for none.
            ("536870912\n", Some(536_870_912)),
            ("max\n", None),
            // v1: a limit, and the page-rounded i64::MAX it writes for none.
            ("2147483648\n", Some(2_147_483_648)),
            ("9223372036854771712\n", None),
            ("9223372036854775807", None),
            ("", None),
            ("0\n", None),
            ("garbage", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_cgroup_limit(text), *expected, "{text:?}");
        }
        assert_eq!(cases.len(), 8);

        let directory = tempfile::tempdir().unwrap();
        let v2 = directory.path().join("memory.max");
        let v1 = directory.path().join("memory.limit_in_bytes");
        let missing = directory.path().join("missing");
        std::fs::write(&v2, "max\n").unwrap();
        std::fs::write(&v1, "1073741824\n").unwrap();
        let files = [
            missing.to_str().unwrap(),
            v2.to_str().unwrap(),
            v1.to_str().unwrap(),
        ];
        assert_eq!(
            cgroup_memory_limit(&files),
            Some((1_073_741_824, v1.display().to_string()))
        );
        std::fs::write(&v2, "268435456\n").unwrap();
        assert_eq!(
            cgroup_memory_limit(&files),
            Some((268_435_456, v2.display().to_string()))
        );
        assert_eq!(cgroup_memory_limit(&[missing.to_str().unwrap()]), None);
    }

    #[test]
    fn sizes() {
        let cases: &[(&str, Result<u64, ()>)] = &[
            ("536870912", Ok(536_870_912)),
            ("512MiB", Ok(512 << 20)),
            ("512Mi", Ok(512 << 20)),
            ("2GiB", Ok(2 << 30)),
            ("2 GiB", Ok(2 << 30)),
            ("1GB", Ok(1_000_000_000)),
            ("64KiB", Ok(64 << 10)),
            ("10B", Ok(10)),
            ("512 mebibytes", Err(())),
            ("MiB", Err(())),
            ("-1", Err(())),
            ("99999999999TiB", Err(())),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text).map_err(|_| ()), *expected, "{text:?}");
        }
        assert_eq!(cases.len(), 12);
        let parsed: MemoryLimit = serde_yaml::from_str("512MiB").unwrap();
        assert_eq!(parsed, MemoryLimit::Bytes(512 << 20));
        let parsed: MemoryLimit = serde_yaml::from_str("1073741824").unwrap();
        assert_eq!(parsed, MemoryLimit::Bytes(1 << 30));
        let parsed: MemoryLimit = serde_yaml::from_str("auto").unwrap();
        assert_eq!(parsed, MemoryLimit::Auto);
        let parsed: MemoryLimit = serde_yaml::from_str("none").unwrap();
        assert_eq!(parsed, MemoryLimit::Unlimited);
        let error = serde_yaml::from_str::<MemoryLimit>("lots").unwrap_err();
        assert!(error.to_string().contains("\"lots\""), "{error}");
    }

    #[test]
    fn shares_leave_headroom() {
        let total: u64 = SHARES.iter().map(|(_, per_mille)| per_mille).sum();
        assert!(total <= 500, "{total}‰ of the limit is budgeted");
        let budget = MemoryBudget::divide(
            1000 << 20,
            LimitSource::Configured,
            |key| key == BudgetKey::HeadBytes,
            |_| 7,
        );
        assert_eq!(budget.bytes(BudgetKey::HeadBytes), Some(7));
        assert_eq!(
            budget.bytes(BudgetKey::InflightBytes),
            Some((1000 << 20) / 1000 * 100)
        );
        assert_eq!(budget.parts.len(), SHARES.len());
    }
}
