//! Push throughput of the ingester alone (in process, blocks discarded) under each fsync
//! policy, for `vivace bench`'s figures. Figures only: nothing here passes or fails on time.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::ingester::{placeholder_meta, BlockSink, Ingester, IngesterConfig, PushError, WalFsync};
use crate::model::{Trace, TraceId};
use crate::tempodb::meta::BlockMeta;

/// What one throughput run measured.
#[derive(Debug, Clone)]
pub struct PushThroughput {
    /// The policy measured.
    pub fsync: WalFsync,
    /// Pushing tasks running at once.
    pub concurrency: usize,
    /// Pushes acknowledged.
    pub pushes: u64,
    /// Spans in those pushes.
    pub spans: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// fsync calls the log made (group commit shows as far fewer syncs than pushes).
    pub wal_syncs: u64,
    /// Bytes the log wrote.
    pub wal_bytes: u64,
}

impl PushThroughput {
    /// Acknowledged pushes per second.
    pub fn pushes_per_second(&self) -> f64 {
        self.pushes as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Acknowledged spans per second.
    pub fn spans_per_second(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

impl fmt::Display for PushThroughput {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "wal_fsync={:?} concurrency={} pushes={} spans={} elapsed={:.2}s -> {:.0} pushes/s, {:.0} spans/s, {} fsyncs, {:.1} wal bytes/span",
            self.fsync,
            self.concurrency,
            self.pushes,
            self.spans,
            self.elapsed.as_secs_f64(),
            self.pushes_per_second(),
            self.spans_per_second(),
            self.wal_syncs,
            self.wal_bytes as f64 / self.spans.max(1) as f64,
        )
    }
}

/// A sink that accepts every block and keeps nothing.
pub struct DiscardSink;

#[async_trait]
impl BlockSink for DiscardSink {
    async fn write_block(
        &self,
        tenant: &str,
        traces: Vec<(TraceId, Trace)>,
    ) -> Result<BlockMeta, anyhow::Error> {
        Ok(placeholder_meta(tenant, &traces))
    }
}

/// A trace of `span_count` spans of a typical instrumented service (a few attributes each).
pub fn sample_trace(trace_number: u64, span_count: usize) -> (TraceId, Trace) {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&0x5eed_u64.to_be_bytes());
    id[8..].copy_from_slice(&(trace_number + 1).to_be_bytes());
    let trace_id = TraceId(id);
    let attribute = |key: &str, value: any_value::Value| KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    };
    let text = |value: &str| any_value::Value::StringValue(value.to_string());
    let start = 1_700_000_000_000_000_000u64 + trace_number * 1_000_000;
    let spans = (0..span_count)
        .map(|index| Span {
            trace_id: id.to_vec(),
            span_id: ((trace_number << 16) + index as u64 + 1)
                .to_be_bytes()
                .to_vec(),
            parent_span_id: if index == 0 {
                Vec::new()
            } else {
                ((trace_number << 16) + 1).to_be_bytes().to_vec()
            },
            name: format!("GET /api/items/{index}"),
            kind: 2,
            start_time_unix_nano: start + index as u64 * 1000,
            end_time_unix_nano: start + index as u64 * 1000 + 50_000,
            attributes: vec![
                attribute("http.method", text("GET")),
                attribute("http.route", text("/api/items/{id}")),
                attribute("http.status_code", any_value::Value::IntValue(200)),
            ],
            ..Default::default()
        })
        .collect();
    let trace = Trace {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", text("checkout"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (trace_id, trace)
}

/// Runs `concurrency` tasks each pushing `pushes_per_task` single-trace pushes of
/// `spans_per_trace` spans into a fresh ingester at `wal_path`, and measures until the last
/// acknowledgement.
pub async fn measure_push_throughput(
    wal_path: &Path,
    fsync: WalFsync,
    concurrency: usize,
    pushes_per_task: usize,
    spans_per_trace: usize,
) -> Result<PushThroughput, anyhow::Error> {
    let config = IngesterConfig {
        wal_path: wal_path.to_path_buf(),
        wal_fsync: fsync,
        max_head_bytes: 4 * 1024 * 1024 * 1024,
        wal_queue_capacity: concurrency.max(1) * 2,
        ..IngesterConfig::default()
    };
    let ingester = Ingester::open(config, Arc::new(DiscardSink)).await?;
    // Build the traces first so the figure is the ingester's, not the generator's.
    let mut per_task: Vec<Vec<(TraceId, Trace)>> = Vec::with_capacity(concurrency);
    for task in 0..concurrency {
        let traces = (0..pushes_per_task)
            .map(|push| sample_trace((task * pushes_per_task + push) as u64, spans_per_trace))
            .collect();
        per_task.push(traces);
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for traces in per_task {
        let ingester = ingester.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = 0u64;
            for trace in traces {
                ingester.push("bench", vec![trace]).await?;
                acknowledged += 1;
            }
            Ok::<u64, PushError>(acknowledged)
        }));
    }
    let mut pushes = 0;
    for task in tasks {
        pushes += task.await??;
    }
    let elapsed = started.elapsed();
    let stats = ingester.stats();
    ingester.shutdown().await;
    Ok(PushThroughput {
        fsync,
        concurrency,
        pushes,
        spans: pushes * spans_per_trace as u64,
        elapsed,
        wal_syncs: stats.wal_syncs,
        wal_bytes: stats.wal_bytes_written,
    })
}
