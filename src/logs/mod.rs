//! Logs beside the traces: OTLP logs and Loki pushes in, Parquet blocks out, and the reads the
//! UI's trace view and Grafana's Loki datasource need.
//!
//! # Data flow
//!
//! receivers (`receiver::otlp_logs`: OTLP gRPC/HTTP on :4317/:4318, `receiver::loki`: Loki push on :3200) turn every
//! push into [`LogRow`]s → [`store::LogStore::push`] appends them to the logs write-ahead log
//! (the ingester's WAL format and writer, in its own directory `logs.wal_path`) and acknowledges
//! only once the record is durable per `ingester.wal_fsync` → the rows sit in the head, bounded
//! by `logs.max_head_bytes` → the background loop cuts the head into Parquet blocks
//! (`block.rs`) by size or age, writes them to the backend, and only then deletes the WAL
//! segments they came from → reads (`api.rs`) merge the head and the blocks.
//!
//! # Where blocks live
//!
//! Log blocks use the backend of `storage.trace`, but never inside its key space: a Tempo
//! cluster pointed at the trace bucket would otherwise list them as tenants and blocks. The
//! log root is a *sibling* of the trace root: for `local`, the directory `<local.path>-logs`
//! (default `./data/blocks-logs`); for `s3`/`gcs`/`azure`, the key prefix `<prefix>-logs`, or
//! `vivace-logs` when the trace prefix is empty (then the folder sits at the bucket root, where
//! a Tempo poller sees a tenant `vivace-logs` holding no blocks; give the trace storage a
//! prefix to keep them fully apart). Inside it: `<tenant>/<blockID>/{data.parquet,bloom,meta.json}`,
//! `meta.json` written last so a block is visible only when whole.

pub mod api;
pub mod block;
pub mod logql;
pub mod store;

#[cfg(test)]
mod fuzz_props;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const MIB: u64 = 1024 * 1024;

/// The `logs` section of the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Accept and store logs (OTLP `/v1/logs` and `LogsService/Export`, Loki push) and serve
    /// `/api/logs` and the Loki query API.
    pub enabled: bool,
    /// Directory of the logs write-ahead log; empty means `<ingester.wal_path>-logs` (a
    /// sibling of the trace WAL). Durability follows `ingester.wal_fsync` and
    /// `ingester.wal_fsync_interval`.
    pub wal_path: PathBuf,
    /// Back-pressure: bytes of log records held in memory (head and blocks being written);
    /// a push past it gets 429 / RESOURCE_EXHAUSTED until a block is written.
    pub max_head_bytes: u64,
    /// The head is cut into blocks once a tenant holds this many bytes of records.
    pub max_block_bytes: u64,
    /// The longest records wait in memory before they are written as a block.
    #[serde(with = "humantime_serde")]
    pub max_block_duration: Duration,
    /// How often the head is checked for cutting, and failed block writes retried.
    #[serde(with = "humantime_serde")]
    pub flush_check_period: Duration,
    /// Log blocks whose newest record is older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Records per Parquet row group; each row group has its own trace-ID bloom filter and
    /// time statistics, so smaller groups skip more on lookups and cost more footer bytes.
    pub row_group_rows: usize,
    /// Also serve the Loki push and query API on this port, on `server.http_listen_address`;
    /// 3100 by default, Loki's port, where Promtail, Alloy and Grafana's Loki datasource look
    /// first. 0 = only on `server.http_listen_port`.
    pub loki_listen_port: u16,
}

impl Default for LogsConfig {
    fn default() -> LogsConfig {
        LogsConfig {
            enabled: true,
            wal_path: PathBuf::new(),
            max_head_bytes: 256 * MIB,
            max_block_bytes: 64 * MIB,
            max_block_duration: Duration::from_secs(5 * 60),
            flush_check_period: Duration::from_secs(1),
            retention: Duration::from_secs(14 * 24 * 3600),
            row_group_rows: 8192,
            loki_listen_port: 3100,
        }
    }
}

impl LogsConfig {
    /// The logs WAL directory: `wal_path`, or `<ingester.wal_path>-logs` when empty.
    pub fn resolved_wal_path(&self, ingester_wal_path: &std::path::Path) -> PathBuf {
        if !self.wal_path.as_os_str().is_empty() {
            return self.wal_path.clone();
        }
        let mut path = ingester_wal_path.as_os_str().to_owned();
        path.push("-logs");
        PathBuf::from(path)
    }

    /// Refuses values that cannot work, naming the key (relative to `logs.`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (key, value) in [
            ("max_head_bytes", self.max_head_bytes),
            ("max_block_bytes", self.max_block_bytes),
            ("row_group_rows", self.row_group_rows as u64),
        ] {
            if value == 0 {
                return Err((key.into(), "must be greater than 0".into()));
            }
        }
        for (key, value) in [
            ("max_block_duration", self.max_block_duration),
            ("flush_check_period", self.flush_check_period),
            ("retention", self.retention),
        ] {
            if value.is_zero() {
                return Err((key.into(), "must be greater than 0s".into()));
            }
        }
        Ok(())
    }
}

/// One name/value pair: an attribute (values rendered as text) or a stream label.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl Label {
    /// A pair from two strings.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// One log record as vivace stores it, whatever protocol it came in by. Also the WAL payload
/// (inside a [`LogBatch`]), hence the protobuf tags.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogRow {
    /// When the event happened, Unix nanoseconds (the observed time when the sender gave none).
    #[prost(fixed64, tag = "1")]
    pub timestamp_ns: u64,
    /// When the record was first seen by a collector or vivace, Unix nanoseconds.
    #[prost(fixed64, tag = "2")]
    pub observed_ns: u64,
    /// `service.name` of the resource, or the Loki stream's `service_name`/`service`/`job`.
    #[prost(string, tag = "3")]
    pub service_name: String,
    #[prost(string, tag = "4")]
    pub severity_text: String,
    #[prost(int32, tag = "5")]
    pub severity_number: i32,
    /// The log line (non-string OTLP bodies as JSON).
    #[prost(string, tag = "6")]
    pub body: String,
    /// 16 bytes, or empty when the record belongs to no trace.
    #[prost(bytes = "vec", tag = "7")]
    pub trace_id: Vec<u8>,
    /// 8 bytes, or empty.
    #[prost(bytes = "vec", tag = "8")]
    pub span_id: Vec<u8>,
    /// Record attributes (OTLP) or structured metadata (Loki).
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<Label>,
    /// Resource attributes (OTLP).
    #[prost(message, repeated, tag = "10")]
    pub resource_attributes: Vec<Label>,
    /// Loki stream labels, sorted by name.
    #[prost(message, repeated, tag = "11")]
    pub labels: Vec<Label>,
}

impl LogRow {
    /// Bytes this row is charged in the head budget: its protobuf size plus bookkeeping.
    pub fn cost(&self) -> u64 {
        prost::Message::encoded_len(self) as u64 + 64
    }

    /// The value of a stream label.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|label| label.name == name)
            .map(|label| label.value.as_str())
    }
}

/// The rows of one push: the WAL record's piece.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogBatch {
    #[prost(message, repeated, tag = "1")]
    pub rows: Vec<LogRow>,
}

/// Loki's stream labels for an OTLP record: `service_name` (Loki's OTLP convention for
/// `service.name`), a few other well-known resource attributes with dots as underscores, and
/// `level` from the severity so Grafana's log-level colouring and volume work.
pub fn otlp_stream_labels(row: &LogRow) -> Vec<Label> {
    const RESOURCE_LABELS: [&str; 6] = [
        "service.namespace",
        "service.instance.id",
        "deployment.environment",
        "deployment.environment.name",
        "k8s.namespace.name",
        "k8s.pod.name",
    ];
    let mut labels = vec![Label::new("service_name", row.service_name.clone())];
    for attribute in &row.resource_attributes {
        if RESOURCE_LABELS.contains(&attribute.name.as_str()) {
            labels.push(Label::new(
                attribute.name.replace('.', "_"),
                attribute.value.clone(),
            ));
        }
    }
    let level = level_of(&row.severity_text, row.severity_number);
    if !level.is_empty() {
        labels.push(Label::new("level", level));
    }
    labels.sort();
    labels.dedup_by(|a, b| a.name == b.name);
    labels
}

/// A lower-case level name from OTLP severity text, else from the severity number.
pub fn level_of(severity_text: &str, severity_number: i32) -> String {
    if !severity_text.is_empty() {
        return severity_text.to_ascii_lowercase();
    }
    match severity_number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "",
    }
    .to_string()
}

/// OTLP severity number of a level name (Loki pushes carry names only).
pub fn severity_number_of(level: &str) -> i32 {
    match level.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" | "dbug" => 5,
        "info" | "information" | "notice" => 9,
        "warn" | "warning" => 13,
        "error" | "err" => 17,
        "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert" => 21,
        _ => 0,
    }
}
