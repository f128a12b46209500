//! The `ingester:` section of the config file. Each key's doc comment is its user documentation.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sampling::SamplingConfig;

const MIB: u64 = 1024 * 1024;

/// How the write-ahead log makes a push durable before the push is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalFsync {
    /// Group commit: one `fdatasync` covers every push queued while the previous one ran, and a
    /// push is acknowledged only after it. Survives process crashes and power loss.
    Always,
    /// A push is acknowledged once its `write()` reached the operating system and the log is
    /// synced every `wal_fsync_interval`. Survives process crashes, not power loss.
    Interval,
    /// Never sync; the operating system writes back when it likes. Survives process crashes,
    /// not power loss.
    Never,
}

/// Configuration of the ingester: the write-ahead log, the head of live traces and block cutting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngesterConfig {
    /// Directory of the write-ahead log segments (`<sequence>.wal`). Only one vivace process may
    /// use it at a time.
    pub wal_path: PathBuf,
    /// When a push is durable: `always` (fdatasync before acknowledging, shared by every push
    /// waiting at that moment), `interval` (acknowledge after write, fsync every
    /// `wal_fsync_interval`) or `never`.
    pub wal_fsync: WalFsync,
    /// With `wal_fsync: interval`, the longest time written data waits for its fsync.
    #[serde(with = "humantime_serde")]
    pub wal_fsync_interval: Duration,
    /// A log segment is closed and a new one started once it holds this many bytes.
    pub wal_segment_max_bytes: u64,
    /// Pushes that may wait for the log writer at once; a push beyond it is refused with
    /// "overloaded" (HTTP 429 / gRPC RESOURCE_EXHAUSTED) rather than queued without bound.
    pub wal_queue_capacity: usize,
    /// A trace that received no span for this long is complete and waits for the next block.
    #[serde(with = "humantime_serde")]
    pub trace_idle_period: Duration,
    /// The longest complete traces wait in memory before they are written as a block; also
    /// the longest a trace stays live while it keeps receiving spans. Tempo's default is 30m;
    /// vivace's 5m keeps the log short and restarts fast on a small machine.
    #[serde(with = "humantime_serde")]
    pub max_block_duration: Duration,
    /// A block is cut as soon as a tenant's complete traces reach this many (protobuf) bytes;
    /// larger cuts are split into blocks of about this size.
    pub max_block_bytes: u64,
    /// Back-pressure: the (protobuf) bytes of traces held in memory across all tenants, live,
    /// complete or being written to a block. A push that would exceed it is refused with
    /// "overloaded" until blocks are written.
    pub max_head_bytes: u64,
    /// How often live traces are checked for idleness and blocks for cutting.
    #[serde(with = "humantime_serde")]
    pub flush_check_period: Duration,
    /// How long traces stay readable from memory after their block was written, for readers
    /// whose block list lags behind the store. 0s when the block list is updated at once.
    /// This memory is given back first when the head is full.
    #[serde(with = "humantime_serde")]
    pub complete_block_timeout: Duration,
    /// Tail sampling: which complete traces are written to blocks when they are cut (errors,
    /// slow traces, TraceQL rules, a baseline ratio). Off by default; span metrics always see
    /// every span.
    pub sampling: SamplingConfig,
    /// Testing aid (fault injection): trace WAL writes fail with ENOSPC, exactly as on a full
    /// disk, once its segments would hold more than this many bytes; space returns as blocks
    /// are written and old segments deleted. 0 (the default) is off; leave it off in
    /// production.
    pub debug_wal_disk_full_bytes: u64,
}

impl Default for IngesterConfig {
    fn default() -> IngesterConfig {
        IngesterConfig {
            wal_path: PathBuf::from("./data/wal"),
            wal_fsync: WalFsync::Always,
            wal_fsync_interval: Duration::from_millis(100),
            wal_segment_max_bytes: 128 * MIB,
            wal_queue_capacity: 1024,
            trace_idle_period: Duration::from_secs(10),
            max_block_duration: Duration::from_secs(5 * 60),
            max_block_bytes: 100 * MIB,
            max_head_bytes: 1024 * MIB,
            flush_check_period: Duration::from_secs(1),
            complete_block_timeout: Duration::from_secs(15),
            sampling: SamplingConfig::default(),
            debug_wal_disk_full_bytes: 0,
        }
    }
}

impl IngesterConfig {
    /// Refuses values that would stop the ingester from working, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        let nonzero_durations = [
            ("trace_idle_period", self.trace_idle_period),
            ("max_block_duration", self.max_block_duration),
            ("flush_check_period", self.flush_check_period),
        ];
        for (key, value) in nonzero_durations {
            if value.is_zero() {
                return Err(format!("ingester.{key} must be greater than 0s"));
            }
        }
        if self.wal_fsync == WalFsync::Interval && self.wal_fsync_interval.is_zero() {
            return Err(
                "ingester.wal_fsync_interval must be greater than 0s when wal_fsync is interval"
                    .into(),
            );
        }
        let nonzero_sizes = [
            ("wal_segment_max_bytes", self.wal_segment_max_bytes),
            ("max_block_bytes", self.max_block_bytes),
            ("max_head_bytes", self.max_head_bytes),
            ("wal_queue_capacity", self.wal_queue_capacity as u64),
        ];
        for (key, value) in nonzero_sizes {
            if value == 0 {
                return Err(format!("ingester.{key} must be greater than 0"));
            }
        }
        self.sampling
            .validate()
            .map_err(|reason| format!("ingester.{reason}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_durations_and_refuses_unknown_keys() {
        let config: IngesterConfig = serde_yaml::from_str(
            "wal_fsync: interval\nwal_fsync_interval: 250ms\nmax_block_duration: 30m\n",
        )
        .expect("valid config");
        assert_eq!(config.wal_fsync, WalFsync::Interval);
        assert_eq!(config.wal_fsync_interval, Duration::from_millis(250));
        assert_eq!(config.max_block_duration, Duration::from_secs(1800));
        assert_eq!(config.trace_idle_period, Duration::from_secs(10));
        let unknown = serde_yaml::from_str::<IngesterConfig>("wal_fsnc: always\n");
        assert!(unknown.is_err());
        assert!(IngesterConfig::default().validate().is_ok());
        let zero = IngesterConfig {
            max_head_bytes: 0,
            ..IngesterConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err("ingester.max_head_bytes must be greater than 0".to_string())
        );
    }
}
