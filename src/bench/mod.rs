//! `vivace bench`: starts this binary as a separate server process on loopback with a scratch
//! data directory, drives it with OTLP/HTTP (protobuf) and OTLP/gRPC load of ~10-span traces,
//! and prints figures: ingest spans/s (wall clock, and per core-second of server CPU), bytes
//! on disk per span after flush, trace-by-ID p50/p99 from memory and from blocks, and RSS
//! idle and under load. It never fails on a time; it reports.

pub mod compaction;
pub mod ingester;
pub mod lifecycle;
pub mod receivers;
pub mod search;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use parking_lot::Mutex;
use prost::Message;
use rand::Rng;

use crate::bench::receivers::{jaeger_proto, Protocol};
use crate::model::string_attribute;
use crate::receiver::ingest::RawCodec;

/// What to measure.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Spans to ingest in total (half over OTLP/HTTP, half over OTLP/gRPC).
    #[arg(long, default_value_t = 1_000_000)]
    pub spans: u64,
    /// Concurrent client connections per protocol.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Traces per export request (10 spans each); 50, or 20 with `--lifecycle`.
    #[arg(long)]
    pub traces_per_request: Option<usize>,
    /// Trace-by-ID lookups per latency measurement.
    #[arg(long, default_value_t = 2000)]
    pub lookups: usize,
    /// WAL fsync policy for the server under test (always, interval, never).
    #[arg(long, default_value = "always")]
    pub wal_fsync: String,
    /// Only measure the ingester's WAL push path in-process, under each fsync policy.
    #[arg(long)]
    pub wal_only: bool,
    /// Measure search over `--spans` spans written as blocks in-process instead (pushdown
    /// against whole-block decoding; try `--spans 10000000`).
    #[arg(long)]
    pub search: bool,
    /// Runs per query and mode with `--search`.
    #[arg(long, default_value_t = 5)]
    pub search_runs: usize,
    /// What `--search` reads: `blocks` (`--spans` in blocks of 500k spans, pushdown against
    /// whole-block decoding), `tempo-block` (the block Tempo wrote, `--search-block`),
    /// `large-block` (`--spans` in one block of vivace's own), `head` (`--spans` pushed into
    /// the ingester's memory, no blocks, every trace complete and sealed) or `live-head` (the
    /// same, every trace still live and quiet, copied into live segments).
    #[arg(long, default_value = "blocks")]
    pub search_shape: String,
    /// With `--search-shape tempo-block`: a folder holding `<tenant>/<block id>/` as Tempo
    /// wrote it (the one-row-group block of the team library by default).
    #[arg(long, default_value = "../shared/golden/tempo-blocks/large")]
    pub search_block: std::path::PathBuf,
    /// With `--search`: only the queries whose label contains this text (e.g. `metrics`).
    #[arg(long)]
    pub search_only: Option<String>,
    /// Only compare the receivers: the same spans sent over every protocol vivace takes
    /// (OTLP protobuf/JSON/gRPC, Zipkin JSON/protobuf, Jaeger thrift/gRPC), `--spans` each.
    #[arg(long)]
    pub protocols: bool,
    /// Only measure the OTLP metrics conversion in-process (cost per data point).
    #[arg(long)]
    pub otlp_metrics_only: bool,
    /// Follow spans through their whole life instead: push over OTLP/HTTP with span metrics
    /// and service graphs on, wait until everything is cut, flushed and compacted, and print
    /// CPU per span, CPU per stage, peak RSS per phase and bytes on disk per span.
    #[arg(long)]
    pub lifecycle: bool,
    /// With `--lifecycle`: the push stops after this many seconds or `--spans` spans,
    /// whichever comes first.
    #[arg(long, default_value_t = 20)]
    pub push_seconds: u64,
    /// With `--lifecycle`: longest wait for the cut, flush and compaction after the push.
    #[arg(long, default_value_t = 300)]
    pub drain_timeout_seconds: u64,
    /// With `--lifecycle` or `--compaction`: the vivace binary to measure (an older build, for
    /// a before/after comparison on the same load); this one by default.
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Measure compaction instead: `--spans` generated spans written as
    /// `--compaction-blocks` blocks, then merged into one in a fresh process; prints wall and
    /// CPU time and that process's RSS growth (try `--spans 16000000` for 8 blocks of 100 MB).
    #[arg(long)]
    pub compaction: bool,
    /// With `--compaction`: how many blocks the spans are written as.
    #[arg(long, default_value_t = 8)]
    pub compaction_blocks: usize,
    /// With `--compaction`: compact the blocks already in this bucket folder and print the
    /// figures (the child process of `--compaction`).
    #[arg(long)]
    pub compaction_input: Option<PathBuf>,
}

impl BenchArgs {
    /// Traces per request: as given, else 50 (20 with `--lifecycle`).
    pub fn traces_per_request(&self) -> usize {
        let default = if self.lifecycle { 20 } else { 50 };
        self.traces_per_request.unwrap_or(default).max(1)
    }
}

/// An OTLP metrics export like an instrumented service's: `metrics` metrics of each kind
/// (cumulative counter, delta counter, 15-bucket histogram, exponential histogram at scale 3
/// with 40 buckets), each with `points` attribute sets, at `time_ns`.
fn metrics_request(
    metrics: usize,
    points: usize,
    time_ns: u64,
) -> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
        AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Histogram,
        HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    let kv = |key: &str, value: String| KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    };
    let attributes = |index: usize| {
        vec![
            kv("http.route", format!("/api/v1/items/{index}")),
            kv("http.request.method", "GET".into()),
            kv("http.response.status_code", "200".into()),
        ]
    };
    let bounds = vec![
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];
    let mut list = Vec::new();
    for metric in 0..metrics {
        let number = |index: usize| NumberDataPoint {
            attributes: attributes(index),
            time_unix_nano: time_ns,
            value: Some(number_data_point::Value::AsInt(index as i64 + 1)),
            ..Default::default()
        };
        for temporality in [
            AggregationTemporality::Cumulative,
            AggregationTemporality::Delta,
        ] {
            list.push(Metric {
                name: format!("requests.{metric}.{}", temporality as i32),
                unit: "{request}".into(),
                data: Some(Data::Sum(Sum {
                    data_points: (0..points).map(number).collect(),
                    aggregation_temporality: temporality as i32,
                    is_monotonic: true,
                })),
                ..Default::default()
            });
        }
        list.push(Metric {
            name: format!("request.duration.{metric}"),
            unit: "s".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: (0..points)
                    .map(|index| HistogramDataPoint {
                        attributes: attributes(index),
                        time_unix_nano: time_ns,
                        count: 15,
                        sum: Some(3.5),
                        bucket_counts: vec![1; 15],
                        explicit_bounds: bounds.clone(),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        });
        list.push(Metric {
            name: format!("payload.size.{metric}"),
            unit: "By".into(),
            data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                data_points: (0..points)
                    .map(|index| ExponentialHistogramDataPoint {
                        attributes: attributes(index),
                        time_unix_nano: time_ns,
                        count: 40,
                        sum: Some(1e5),
                        scale: 3,
                        positive: Some(Buckets {
                            offset: 60,
                            bucket_counts: vec![1; 40],
                        }),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Delta as i32,
            })),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "bench".into()),
                    kv("service.instance.id", "bench-1".into()),
                    kv("host.name", "bench-host".into()),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "bench".into(),
                    version: "1".into(),
                    ..Default::default()
                }),
                metrics: list,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Cost of the OTLP metrics path in-process: protobuf decode, conversion (names, labels,
/// delta state, exponential buckets) and remote-write encoding (sort, protobuf, snappy), per
/// data point and per output series, on one core.
fn otlp_metrics_figures() {
    use crate::generator::otlp_metrics::Converter;
    use crate::generator::remote_write::{batch, encode};
    const METRICS: usize = 25;
    const POINTS: usize = 20;
    const ROUNDS: u64 = 50;
    let start_ns: u64 = 1_700_000_000_000_000_000;
    let points = (METRICS * 4 * POINTS) as u64;
    let mut converter = Converter::new(1_000_000);
    let (mut decode_time, mut convert_time, mut encode_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut series_out, mut bytes_out) = (0u64, 0u64);
    for round in 0..ROUNDS {
        let time_ns = start_ns + round * 15_000_000_000;
        let body = metrics_request(METRICS, POINTS, time_ns).encode_to_vec();
        let started = Instant::now();
        let request = match opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(body.as_slice()) {
            Ok(request) => request,
            Err(error) => {
                println!("otlp metrics bench: decode failed: {error}");
                return;
            }
        };
        decode_time += started.elapsed();
        let started = Instant::now();
        let outcome = converter.convert(&request, 1_700_000_000_000);
        convert_time += started.elapsed();
        series_out += outcome.series.len() as u64;
        let started = Instant::now();
        for request in batch(outcome.series, 500) {
            bytes_out += encode(&request).map_or(0, |body| body.len() as u64);
        }
        encode_time += started.elapsed();
    }
    let total_points = (points * ROUNDS) as f64;
    let per_point = |time: Duration| time.as_nanos() as f64 / total_points;
    println!(
        "otlp metrics path in-process: {ROUNDS} exports x {points} data points (counters cumulative and delta, 15-bucket histograms, 40-bucket exponential histograms), {:.1} series out per point",
        series_out as f64 / total_points
    );
    println!(
        "  protobuf decode:                 {:>8.0} ns per data point",
        per_point(decode_time)
    );
    println!(
        "  conversion:                      {:>8.0} ns per data point ({:.0} ns per series out)",
        per_point(convert_time),
        convert_time.as_nanos() as f64 / series_out as f64
    );
    println!(
        "  remote-write sort+encode+snappy: {:>8.0} ns per data point ({:.1} bytes per series)",
        per_point(encode_time),
        bytes_out as f64 / series_out as f64
    );
    println!(
        "  total:                           {:>8.0} ns per data point, {:.0} data points/s per core",
        per_point(decode_time + convert_time + encode_time),
        total_points / (decode_time + convert_time + encode_time).as_secs_f64()
    );
    println!(
        "  series remembered:               {:>8}",
        converter.active_series()
    );
}

/// Push throughput of the ingester alone (WAL append + head insert, no network, blocks
/// discarded) under each fsync policy, one and many concurrent pushers.
async fn wal_figures() -> anyhow::Result<()> {
    use crate::bench::ingester::measure_push_throughput;
    use crate::ingester::WalFsync;
    println!("ingester push path in-process (one 10-span trace per push):");
    for (fsync, concurrency) in [
        (WalFsync::Always, 1),
        (WalFsync::Always, 64),
        (WalFsync::Interval, 64),
        (WalFsync::Never, 64),
    ] {
        let scratch = tempfile::tempdir()?;
        let pushes_per_task = if concurrency == 1 { 2_000 } else { 300 };
        let figures = measure_push_throughput(
            &scratch.path().join("wal"),
            fsync,
            concurrency,
            pushes_per_task,
            SPANS_PER_TRACE,
        )
        .await?;
        println!("  {figures}");
    }
    Ok(())
}

pub(crate) const SPANS_PER_TRACE: usize = 10;

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) struct Server {
    child: Child,
    pub(crate) http: u16,
    grpc: u16,
    pub(crate) otlp_http: u16,
    config: PathBuf,
}

impl Server {
    fn start(directory: &Path, wal_fsync: &str) -> anyhow::Result<Server> {
        Server::start_with(directory, wal_fsync, "")
    }

    /// Starts a server whose config gets `receivers_yaml` appended under
    /// `distributor.receivers` (indented by four spaces).
    fn start_with(
        directory: &Path,
        wal_fsync: &str,
        receivers_yaml: &str,
    ) -> anyhow::Result<Server> {
        let (http, grpc, otlp_http) = (free_port()?, free_port()?, free_port()?);
        let config = directory.join("bench.yaml");
        // The streaming gRPC port too, so a bench never collides with a running vivace on 9095.
        let grpc_api = free_port()?;
        std::fs::write(
            &config,
            format!(
                "server:\n  http_listen_port: {http}\n  grpc_listen_port: {grpc_api}\n  log_level: warn\n\
distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          enabled: true\n          endpoint: 127.0.0.1:{grpc}\n        http:\n          enabled: true\n          endpoint: 127.0.0.1:{otlp_http}\n{receivers_yaml}\
ingester:\n  wal_path: {wal}\n  wal_fsync: {wal_fsync}\n\
storage:\n  trace:\n    backend: local\n    local:\n      path: {blocks}\n\
overrides:\n  defaults:\n    ingestion:\n      rate_limit_bytes: 0\n",
                wal = directory.join("wal").display(),
                blocks = directory.join("blocks").display(),
            ),
        )?;
        Server::spawn(config, http, grpc, otlp_http)
    }

    fn spawn(config: PathBuf, http: u16, grpc: u16, otlp_http: u16) -> anyhow::Result<Server> {
        Server::spawn_binary(&std::env::current_exe()?, config, http, grpc, otlp_http)
    }

    /// Starts `binary serve --config config` and waits until it is ready.
    pub(crate) fn spawn_binary(
        binary: &Path,
        config: PathBuf,
        http: u16,
        grpc: u16,
        otlp_http: u16,
    ) -> anyhow::Result<Server> {
        let child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the server under test")?;
        let server = Server {
            child,
            http,
            grpc,
            otlp_http,
            config,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.http)) {
                use std::io::{Read, Write};
                let _ = write!(
                    stream,
                    "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("server not ready within 120 s")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// User + system CPU seconds the server has used so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |index: usize| {
            fields
                .get(index)
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Fields 14 and 15 of /proc/pid/stat (utime, stime) are 11 and 12 after the name.
        (ticks(11) + ticks(12)) / 100.0
    }

    pub(crate) fn terminate(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

/// A request of `traces` ten-span traces, with the trace IDs it carries.
pub(crate) fn export_request(traces: usize) -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
    let mut rng = rand::rng();
    let mut ids = Vec::with_capacity(traces);
    let mut spans = Vec::with_capacity(traces * SPANS_PER_TRACE);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    for _ in 0..traces {
        let trace_id: [u8; 16] = rng.random();
        ids.push(trace_id);
        let root: [u8; 8] = rng.random();
        for index in 0..SPANS_PER_TRACE {
            let span_id: [u8; 8] = if index == 0 { root } else { rng.random() };
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: if index == 0 {
                    Vec::new()
                } else {
                    root.to_vec()
                },
                name: format!("GET /api/items/{}", index % 4),
                kind: if index == 0 {
                    SpanKind::Server as i32
                } else {
                    SpanKind::Client as i32
                },
                start_time_unix_nano: now + index as u64 * 1000,
                end_time_unix_nano: now + 5_000_000 + index as u64 * 1000,
                attributes: vec![
                    string_attribute("http.request.method", "GET"),
                    string_attribute("http.route", "/api/items/{id}"),
                    string_attribute("server.address", "inventory"),
                ],
                status: Some(Status::default()),
                ..Default::default()
            });
        }
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string_attribute("service.name", "bench"),
                    string_attribute("deployment.environment", "bench"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "vivace.bench".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (request, ids)
}

struct Load {
    spans: AtomicU64,
    refused: AtomicU64,
    ids: Mutex<Vec<[u8; 16]>>,
}

async fn ingest(
    server: &Server,
    args: &BenchArgs,
    grpc: bool,
    target_spans: u64,
) -> anyhow::Result<(f64, f64, u64, u64)> {
    let load = Arc::new(Load {
        spans: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        ids: Mutex::new(Vec::new()),
    });
    let peak_rss = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let sampler = {
        let (pid, peak_rss, done) = (server.pid(), Arc::clone(&peak_rss), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let rss = status
                    .lines()
                    .find(|line| line.starts_with("VmRSS:"))
                    .and_then(|line| line.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024;
                peak_rss.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let load = Arc::clone(&load);
        let traces = args.traces_per_request();
        let (otlp_http, grpc_port) = (server.otlp_http, server.grpc);
        workers.push(tokio::spawn(async move {
            let http_client = reqwest::Client::new();
            let mut grpc_client = if grpc {
                Some(
                    TraceServiceClient::connect(format!("http://127.0.0.1:{grpc_port}"))
                        .await?
                        .max_encoding_message_size(64 << 20),
                )
            } else {
                None
            };
            while load.spans.load(Ordering::Relaxed) < target_spans {
                let (request, ids) = export_request(traces);
                let accepted = match grpc_client.as_mut() {
                    Some(client) => client.export(request).await.is_ok(),
                    None => {
                        let response = http_client
                            .post(format!("http://127.0.0.1:{otlp_http}/v1/traces"))
                            .header("Content-Type", "application/x-protobuf")
                            .body(request.encode_to_vec())
                            .send()
                            .await?;
                        response.status().is_success()
                    }
                };
                if accepted {
                    load.spans
                        .fetch_add((ids.len() * SPANS_PER_TRACE) as u64, Ordering::Relaxed);
                    load.ids.lock().extend(ids);
                } else {
                    load.refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (server.cpu_seconds() - cpu_before).max(0.001);
    let spans = load.spans.load(Ordering::Relaxed);
    IDS.lock().extend(load.ids.lock().iter().copied());
    Ok((
        spans as f64 / elapsed,
        spans as f64 / cpu,
        peak_rss.load(Ordering::Relaxed),
        load.refused.load(Ordering::Relaxed),
    ))
}

static IDS: Mutex<Vec<[u8; 16]>> = Mutex::new(Vec::new());

async fn lookup_latencies(server: &Server, count: usize) -> anyhow::Result<(f64, f64, usize)> {
    let ids = IDS.lock().clone();
    if ids.is_empty() {
        bail!("no trace was acknowledged");
    }
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(count);
    let mut missing = 0;
    for _ in 0..count {
        let id = ids[rand::rng().random_range(0..ids.len())];
        let started = Instant::now();
        let response = client
            .get(format!(
                "http://127.0.0.1:{}/api/v2/traces/{}",
                server.http,
                hex::encode(id)
            ))
            .header("Accept", "application/protobuf")
            .send()
            .await?;
        let ok = response.status().is_success();
        let _ = response.bytes().await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if !ok {
            missing += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let percentile = |fraction: f64| {
        latencies[((latencies.len() as f64 * fraction) as usize).min(latencies.len() - 1)]
    };
    Ok((percentile(0.5), percentile(0.99), missing))
}

pub(crate) fn directory_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                directory_bytes(&path)
            } else {
                entry.metadata().map_or(0, |metadata| metadata.len())
            }
        })
        .sum()
}

/// Ports of the Zipkin and Jaeger receivers of a protocol comparison.
struct LegacyPorts {
    zipkin: u16,
    jaeger_http: u16,
    jaeger_grpc: u16,
}

/// Sends `target_spans` spans over `protocol` from `connections` clients; returns spans/s of
/// wall time and spans per server CPU-second.
async fn ingest_protocol(
    server: &Server,
    ports: &LegacyPorts,
    protocol: Protocol,
    args: &BenchArgs,
) -> anyhow::Result<(f64, f64, u64)> {
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let (sent, refused) = (Arc::clone(&sent), Arc::clone(&refused));
        let (target, traces) = (args.spans, args.traces_per_request());
        let url = match protocol {
            Protocol::OtlpProtobuf | Protocol::OtlpJson => {
                format!("http://127.0.0.1:{}/v1/traces", server.otlp_http)
            }
            Protocol::ZipkinJson | Protocol::ZipkinProtobuf => {
                format!("http://127.0.0.1:{}/api/v2/spans", ports.zipkin)
            }
            Protocol::JaegerThriftHttp => {
                format!("http://127.0.0.1:{}/api/traces", ports.jaeger_http)
            }
            Protocol::OtlpGrpc => format!("http://127.0.0.1:{}", server.grpc),
            Protocol::JaegerGrpc => format!("http://127.0.0.1:{}", ports.jaeger_grpc),
        };
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut grpc = match protocol {
                Protocol::OtlpGrpc | Protocol::JaegerGrpc => Some(tonic::client::Grpc::new(
                    tonic::transport::Endpoint::from_shared(url.clone())?
                        .connect()
                        .await?,
                )),
                _ => None,
            };
            while sent.load(Ordering::Relaxed) < target {
                let (request, ids) = export_request(traces);
                let accepted = match (protocol.http_body(&request), grpc.as_mut()) {
                    (Some((content_type, body)), _) => http
                        .post(&url)
                        .header("Content-Type", content_type)
                        .body(body)
                        .send()
                        .await?
                        .status()
                        .is_success(),
                    (None, Some(client)) => {
                        let (path, body) = match protocol {
                            Protocol::JaegerGrpc => (
                                "/jaeger.api_v2.CollectorService/PostSpans",
                                jaeger_proto(&request)
                                    .first()
                                    .map(Message::encode_to_vec)
                                    .unwrap_or_default(),
                            ),
                            _ => (
                                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                request.encode_to_vec(),
                            ),
                        };
                        client.ready().await?;
                        client
                            .unary(
                                tonic::Request::new(bytes::Bytes::from(body)),
                                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                                RawCodec,
                            )
                            .await
                            .is_ok()
                    }
                    (None, None) => bail!("no client for {protocol:?}"),
                };
                if accepted {
                    sent.fetch_add((ids.len() * SPANS_PER_TRACE) as u64, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (server.cpu_seconds() - cpu_before).max(0.001);
    let spans = sent.load(Ordering::Relaxed) as f64;
    Ok((
        spans / elapsed,
        spans / cpu,
        refused.load(Ordering::Relaxed),
    ))
}

/// The same traces over every protocol, one after the other, on one server.
async fn protocol_figures(args: &BenchArgs) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new().prefix("vivace-bench-").tempdir()?;
    let ports = LegacyPorts {
        zipkin: free_port()?,
        jaeger_http: free_port()?,
        jaeger_grpc: free_port()?,
    };
    let receivers = format!(
        "    zipkin:\n      endpoint: 127.0.0.1:{}\n    jaeger:\n      protocols:\n        thrift_http:\n          endpoint: 127.0.0.1:{}\n        grpc:\n          endpoint: 127.0.0.1:{}\n",
        ports.zipkin, ports.jaeger_http, ports.jaeger_grpc
    );
    let server = Server::start_with(scratch.path(), &args.wal_fsync, &receivers)?;
    println!(
        "vivace bench --protocols: {} spans per protocol, {} connections, {} traces x {SPANS_PER_TRACE} spans per request, wal_fsync={}",
        args.spans, args.connections, args.traces_per_request(), args.wal_fsync
    );
    let mut baseline = None;
    for protocol in Protocol::ALL {
        let (wall, per_cpu, refused) = ingest_protocol(&server, &ports, protocol, args).await?;
        let relative = per_cpu / *baseline.get_or_insert(per_cpu);
        println!(
            "ingest {:<20} {wall:>10.0} spans/s wall, {per_cpu:>10.0} spans per server CPU-second ({relative:>4.2} x OTLP protobuf; {refused} requests refused)",
            protocol.name()
        );
    }
    server.terminate()
}

/// Runs the benchmark and prints its figures (`--lifecycle` and `--compaction` are
/// `lifecycle::run` and `compaction::run`, which the command line calls instead: they build on
/// this module).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.protocols {
        return protocol_figures(&args).await;
    }
    if args.otlp_metrics_only {
        otlp_metrics_figures();
        return Ok(());
    }
    if args.search {
        let shape = crate::bench::search::Shape::parse(&args.search_shape, &args.search_block)?;
        return crate::bench::search::run(
            shape,
            args.spans,
            args.search_runs.max(1),
            args.search_only.as_deref(),
        )
        .await;
    }
    wal_figures().await?;
    if args.wal_only {
        return Ok(());
    }
    let scratch = tempfile::Builder::new().prefix("vivace-bench-").tempdir()?;
    let server = Server::start(scratch.path(), &args.wal_fsync)?;
    println!("vivace bench: {} spans, {} connections per protocol, {} traces x {SPANS_PER_TRACE} spans per request, wal_fsync={}", args.spans, args.connections, args.traces_per_request(), args.wal_fsync);
    println!(
        "machine: {} cores (client load runs on the same machine)",
        std::thread::available_parallelism().map_or(1, |cores| cores.get())
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "rss idle (empty store):            {:>10.1} MB",
        server.rss_bytes() as f64 / 1e6
    );

    let half = args.spans / 2;
    let (http_rate, http_per_core, http_peak, http_refused) =
        ingest(&server, &args, false, half).await?;
    println!("ingest OTLP/HTTP protobuf:         {http_rate:>10.0} spans/s wall, {http_per_core:>10.0} spans per server CPU-second ({http_refused} requests refused with 429)");
    let (grpc_rate, grpc_per_core, grpc_peak, grpc_refused) =
        ingest(&server, &args, true, args.spans - half).await?;
    println!("ingest OTLP/gRPC:                  {grpc_rate:>10.0} spans/s wall, {grpc_per_core:>10.0} spans per server CPU-second ({grpc_refused} requests refused with 429)");
    println!(
        "rss peak under load:               {:>10.1} MB",
        http_peak.max(grpc_peak) as f64 / 1e6
    );

    let (p50, p99, missing) = lookup_latencies(&server, args.lookups).await?;
    println!("trace by ID, head/WAL + blocks:    p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  ({missing} of {} not found)", args.lookups);

    let (http, grpc, otlp_http, config) = (
        server.http,
        server.grpc,
        server.otlp_http,
        server.config.clone(),
    );
    server.terminate()?;
    let blocks = directory_bytes(&scratch.path().join("blocks"));
    let stored_spans = IDS.lock().len() as u64 * SPANS_PER_TRACE as u64;
    println!("bytes on disk after flush:         {:>10.1} bytes/span ({} MB of blocks for {stored_spans} spans)", blocks as f64 / stored_spans.max(1) as f64, blocks / 1_000_000);

    let server = Server::spawn(config, http, grpc, otlp_http)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "rss idle after restart:            {:>10.1} MB",
        server.rss_bytes() as f64 / 1e6
    );
    let (p50, p99, missing) = lookup_latencies(&server, args.lookups).await?;
    println!("trace by ID from blocks:           p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  ({missing} of {} not found)", args.lookups);
    server.terminate()?;
    Ok(())
}
