//! `vivace bench --lifecycle`: where the CPU and memory of ingest go over a span's whole life,
//! not only the request path. A scratch server (span metrics and service graphs on, the WAL
//! fsynced per `--wal-fsync`, short idle and block periods so the drain ends) takes a fixed
//! OTLP/HTTP load; the bench then waits until every trace is cut, flushed and compacted and
//! prints CPU per span over push + drain, CPU per stage (from the server's
//! `vivace_stage_cpu_seconds_total`) against the process total, peak RSS per phase and per
//! stage, and bytes on disk per span. It reports; it never fails on a figure.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use prost::Message;

use crate::bench::{export_request, free_port, BenchArgs, Server, SPANS_PER_TRACE};
use crate::telemetry::names;
use crate::telemetry::stage::Stage;
use crate::tempodb::compactor::{plan_compactions, CompactorConfig};
use crate::tempodb::meta::BlockMeta;

/// Seconds a trace waits without new spans before it is complete (the bench's config).
const TRACE_IDLE_SECONDS: u64 = 5;
/// Longest a complete trace waits for its block (the bench's config).
const MAX_BLOCK_SECONDS: u64 = 10;
/// How often the compactor runs (the bench's config).
const COMPACTION_CYCLE_SECONDS: u64 = 5;

/// The server's figures read from `/metrics`.
#[derive(Default, Clone)]
struct Scrape {
    values: BTreeMap<String, f64>,
    stage_cpu: BTreeMap<String, f64>,
    stage_peak_rss: BTreeMap<String, f64>,
}

impl Scrape {
    fn value(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or(0.0)
    }
}

async fn scrape(client: &reqwest::Client, server: &Server) -> anyhow::Result<Scrape> {
    let text = client
        .get(format!("http://127.0.0.1:{}/metrics", server.http))
        .send()
        .await?
        .text()
        .await?;
    let lines = text.lines().map(|line| Ok(line.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).context("parsing /metrics")?;
    let mut scrape = Scrape::default();
    for sample in parsed.samples {
        let value = match sample.value {
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => value,
            _ => continue,
        };
        let stage = sample.labels.get("stage").map(str::to_string);
        match (sample.metric.as_str(), stage) {
            (names::STAGE_CPU_SECONDS, Some(stage)) => {
                scrape.stage_cpu.insert(stage, value);
            }
            (names::STAGE_PEAK_RSS, Some(stage)) => {
                scrape.stage_peak_rss.insert(stage, value);
            }
            (name, _) if sample.labels.is_empty() => {
                scrape.values.insert(name.to_string(), value);
            }
            _ => {}
        }
    }
    Ok(scrape)
}

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn peak_rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Samples the server's RSS every 50 ms into the current phase's peak.
struct RssSampler {
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_of(pid)));
        let done = Arc::new(AtomicBool::new(false));
        let task = {
            let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        RssSampler { peak, done, task }
    }

    async fn stop(self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

/// The compactor settings the bench's server runs with.
fn compactor_config() -> CompactorConfig {
    CompactorConfig {
        compaction_cycle: Duration::from_secs(COMPACTION_CYCLE_SECONDS),
        ..CompactorConfig::default()
    }
}

fn start_server(directory: &Path, args: &BenchArgs) -> anyhow::Result<Server> {
    let (http, grpc, otlp_http, grpc_api) =
        (free_port()?, free_port()?, free_port()?, free_port()?);
    let config = directory.join("lifecycle.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  http_listen_port: {http}\n  grpc_listen_port: {grpc_api}\n  log_level: warn\n\
distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          enabled: true\n          endpoint: 127.0.0.1:{grpc}\n        http:\n          enabled: true\n          endpoint: 127.0.0.1:{otlp_http}\n\
ingester:\n  wal_path: {wal}\n  wal_fsync: {fsync}\n  trace_idle_period: {TRACE_IDLE_SECONDS}s\n  max_block_duration: {MAX_BLOCK_SECONDS}s\n  flush_check_period: 1s\n\
storage:\n  trace:\n    backend: local\n    local:\n      path: {blocks}\n\
compactor:\n  compaction_cycle: {COMPACTION_CYCLE_SECONDS}s\n\
metrics_generator:\n  processors:\n    span_metrics:\n      enabled: true\n    service_graphs:\n      enabled: true\n\
overrides:\n  defaults:\n    ingestion:\n      rate_limit_bytes: 0\n",
            wal = directory.join("wal").display(),
            fsync = args.wal_fsync,
            blocks = directory.join("blocks").display(),
        ),
    )?;
    let binary = match &args.server_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()?,
    };
    Server::spawn_binary(&binary, config, http, grpc, otlp_http)
}

/// The live blocks under a local backend's root (folders with a meta.json) and their bytes.
fn live_blocks(root: &Path) -> (Vec<BlockMeta>, u64) {
    let mut metas = Vec::new();
    let mut bytes = 0;
    let Ok(tenants) = std::fs::read_dir(root) else {
        return (metas, bytes);
    };
    for tenant in tenants.filter_map(Result::ok) {
        let Ok(blocks) = std::fs::read_dir(tenant.path()) else {
            continue;
        };
        for block in blocks.filter_map(Result::ok) {
            let Ok(meta_json) = std::fs::read(block.path().join("meta.json")) else {
                continue;
            };
            let Ok(meta) = BlockMeta::from_json(&meta_json) else {
                continue;
            };
            bytes += crate::bench::directory_bytes(&block.path());
            metas.push(meta);
        }
    }
    (metas, bytes)
}

struct PushFigures {
    spans: u64,
    requests: u64,
    refused: u64,
    protobuf_bytes: u64,
}

async fn push(server: &Server, args: &BenchArgs) -> anyhow::Result<PushFigures> {
    let spans = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let protobuf_bytes = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.push_seconds);
    let mut workers = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (spans, requests, refused, protobuf_bytes) = (
            Arc::clone(&spans),
            Arc::clone(&requests),
            Arc::clone(&refused),
            Arc::clone(&protobuf_bytes),
        );
        let (target, traces) = (args.spans, args.traces_per_request());
        let url = format!("http://127.0.0.1:{}/v1/traces", server.otlp_http);
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while spans.load(Ordering::Relaxed) < target && Instant::now() < deadline {
                let (request, ids) = export_request(traces);
                let body = request.encode_to_vec();
                let body_len = body.len() as u64;
                let response = client
                    .post(&url)
                    .header("Content-Type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await?;
                if response.status().is_success() {
                    spans.fetch_add((ids.len() * SPANS_PER_TRACE) as u64, Ordering::Relaxed);
                    requests.fetch_add(1, Ordering::Relaxed);
                    protobuf_bytes.fetch_add(body_len, Ordering::Relaxed);
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
    Ok(PushFigures {
        spans: spans.load(Ordering::Relaxed),
        requests: requests.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        protobuf_bytes: protobuf_bytes.load(Ordering::Relaxed),
    })
}

/// Waits until the head is empty, the generator's queue too, and the compactor has nothing
/// left to merge with the same block set seen twice in a row; false on timeout.
async fn drain(
    client: &reqwest::Client,
    server: &Server,
    blocks_root: &Path,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    let config = compactor_config();
    let mut previous_blocks: Option<Vec<uuid::Uuid>> = None;
    while Instant::now() < deadline {
        // Once a second: a scrape costs the server a few milliseconds of CPU.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let figures = scrape(client, server).await?;
        let in_head = figures.value(names::INGESTER_LIVE_TRACES)
            + figures.value(names::INGESTER_COMPLETED_TRACES)
            + figures.value(names::INGESTER_FLUSHING_TRACES)
            + figures.value(names::GENERATOR_QUEUED_SPANS);
        if in_head > 0.0 {
            previous_blocks = None;
            continue;
        }
        let (metas, _) = live_blocks(blocks_root);
        if !plan_compactions(&metas, &config).is_empty() {
            previous_blocks = None;
            continue;
        }
        let mut ids: Vec<uuid::Uuid> = metas.iter().map(|meta| meta.block_id).collect();
        ids.sort();
        if previous_blocks.as_ref() == Some(&ids) {
            return Ok(true);
        }
        previous_blocks = Some(ids);
    }
    Ok(false)
}

/// Runs the lifecycle benchmark and prints its table.
pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("vivace-lifecycle-")
        .tempdir()?;
    let server = start_server(scratch.path(), args)?;
    let pid = server.pid();
    let client = reqwest::Client::new();
    let binary = args.server_binary.as_ref().map_or_else(
        || "this binary".to_string(),
        |path| path.display().to_string(),
    );
    println!(
        "vivace bench --lifecycle: {binary}; OTLP/HTTP protobuf, {} connections, {} traces x {SPANS_PER_TRACE} spans per request, at most {} spans or {} s; wal_fsync={}; span metrics + service graphs on; trace_idle_period {TRACE_IDLE_SECONDS}s, max_block_duration {MAX_BLOCK_SECONDS}s, compaction_cycle {COMPACTION_CYCLE_SECONDS}s",
        args.connections,
        args.traces_per_request(),
        args.spans,
        args.push_seconds,
        args.wal_fsync
    );
    println!(
        "machine: {} cores (the load generator runs on the same machine)",
        std::thread::available_parallelism().map_or(1, |cores| cores.get())
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_of(pid);
    let before = scrape(&client, &server).await?;
    let cpu_before = server.cpu_seconds();

    let push_started = Instant::now();
    let push_sampler = RssSampler::start(pid);
    let pushed = push(&server, args).await?;
    let push_peak = push_sampler.stop().await;
    let push_wall = push_started.elapsed().as_secs_f64();
    let cpu_after_push = server.cpu_seconds();

    let drain_started = Instant::now();
    let drain_sampler = RssSampler::start(pid);
    let blocks_root = scratch.path().join("blocks");
    let drained = drain(
        &client,
        &server,
        &blocks_root,
        Duration::from_secs(args.drain_timeout_seconds),
    )
    .await?;
    let drain_peak = drain_sampler.stop().await;
    let drain_wall = drain_started.elapsed().as_secs_f64();
    let after = scrape(&client, &server).await?;
    let cpu_after_drain = server.cpu_seconds();
    let overall_peak = peak_rss_of(pid);
    let (metas, block_bytes) = live_blocks(&blocks_root);
    server.terminate()?;

    // The server's own total when it has one (precise, threads that ended included), else
    // /proc's clock ticks.
    let process_cpu = match (
        before.values.get("process_cpu_seconds_total"),
        after.values.get("process_cpu_seconds_total"),
    ) {
        (Some(start), Some(end)) => end - start,
        _ => cpu_after_drain - cpu_before,
    };
    let spans = pushed.spans.max(1) as f64;
    println!(
        "spans accepted:            {:>12} ({} requests, {} refused; {:.1} MB of OTLP protobuf, {:.0} B/span)",
        pushed.spans,
        pushed.requests,
        pushed.refused,
        pushed.protobuf_bytes as f64 / 1e6,
        pushed.protobuf_bytes as f64 / spans
    );
    println!(
        "wall seconds:              push {push_wall:.1}, drain {drain_wall:.1}{}",
        if drained {
            ""
        } else {
            " (drain timed out: work was still pending)"
        }
    );
    println!(
        "CPU-seconds (process):     push {:.2}, drain {:.2}, total {process_cpu:.2}",
        cpu_after_push - cpu_before,
        cpu_after_drain - cpu_after_push
    );
    println!(
        "CPU per span (push+drain): {:>12.2} us",
        process_cpu * 1e6 / spans
    );
    println!(
        "{:<16} {:>10} {:>8} {:>10} {:>14}",
        "stage", "CPU-s", "share", "us/span", "peak RSS MB"
    );
    let mut stage_sum = 0.0;
    for stage in Stage::ALL {
        let label = stage.label();
        match (before.stage_cpu.get(label), after.stage_cpu.get(label)) {
            (Some(start), Some(end)) => {
                let seconds = (end - start).max(0.0);
                stage_sum += seconds;
                let peak = after.stage_peak_rss.get(label).copied().unwrap_or(0.0);
                println!(
                    "{label:<16} {seconds:>10.3} {:>7.1}% {:>10.3} {:>14.1}",
                    100.0 * seconds / process_cpu.max(1e-9),
                    seconds * 1e6 / spans,
                    peak / 1e6
                );
            }
            _ => println!(
                "{label:<16} {:>10} {:>8} {:>10} {:>14}",
                "n/a", "n/a", "n/a", "n/a"
            ),
        }
    }
    let rest = process_cpu - stage_sum;
    println!(
        "{:<16} {rest:>10.3} {:>7.1}% {:>10.3}",
        "unaccounted",
        100.0 * rest / process_cpu.max(1e-9),
        rest * 1e6 / spans
    );
    println!(
        "{:<16} {process_cpu:>10.3} {:>7.1}% {:>10.3}",
        "process",
        100.0,
        process_cpu * 1e6 / spans
    );
    println!(
        "peak RSS MB:               overall {:.1}, idle {:.1}, push {:.1}, drain {:.1}",
        overall_peak as f64 / 1e6,
        idle_rss as f64 / 1e6,
        push_peak as f64 / 1e6,
        drain_peak as f64 / 1e6
    );
    let levels: BTreeMap<u32, usize> = metas.iter().fold(BTreeMap::new(), |mut levels, meta| {
        *levels.entry(meta.compaction_level).or_default() += 1;
        levels
    });
    println!(
        "bytes on disk per span:    {:>12.1} ({:.1} MB in {} live blocks, by compaction level {levels:?})",
        block_bytes as f64 / spans,
        block_bytes as f64 / 1e6,
        metas.len()
    );
    Ok(())
}
