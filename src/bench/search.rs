//! `vivace bench --search`: search over many spans in blocks, in-process. Blocks of a
//! realistic mix (several services, HTTP and database spans, ~1% errors, a few slow traces,
//! rare values for selective queries) are written straight through `Store::write_block` into
//! a scratch directory, then each query of [`QUERIES`] runs several times with the pushdown
//! and with whole-block decoding. It prints p50/p99 latency and spans/s and bytes/s per
//! CPU-second of this process. It never fails on a time; it reports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::{Rng, SeedableRng};

use crate::ingester::{BlockSink, Ingester, IngesterConfig};
use crate::model::{int_attribute, string_attribute, Trace, TraceId};
use crate::querier::Querier;
use crate::tempodb::backend::{BackendKind, LocalConfig, StorageConfig};
use crate::tempodb::meta::BlockMeta;
use crate::tempodb::vparquet4::pushdown::{peak_held_traces, reset_peak_held_traces};
use crate::tempodb::Store;
use crate::traceql::parse_and_validate;
use crate::traceql::search::{CompiledSearch, SearchOptions};

/// The queries measured: (label, TraceQL). Adding a query is one line here.
pub const QUERIES: &[(&str, &str)] = &[
    (
        "selective attribute (rare)",
        r#"{ span.http.status_code = 503 && resource.service.name = "payments" }"#,
    ),
    ("slow spans", "{ duration > 2s }"),
    (
        "structural",
        r#"{ resource.service.name = "frontend" } >> { span.db.system = "postgresql" }"#,
    ),
    ("rare name, regex", r#"{ name =~ "refund.*" }"#),
    ("everything (no pushdown possible)", "{ }"),
];

/// TraceQL metrics queries, run over the whole data set with a one-minute step.
pub const METRICS_QUERIES: &[(&str, &str)] = &[
    (
        "metrics: rate by service",
        "{ } | rate() by (resource.service.name)",
    ),
    (
        "metrics: selective count by service",
        r#"{ span.http.status_code = 503 } | count_over_time() by (resource.service.name)"#,
    ),
];

pub(crate) const TENANT: &str = "single-tenant";
/// Spans per block: a flushed head block of Tempo-like size.
const SPANS_PER_BLOCK: u64 = 500_000;
/// Traces returned per search (Tempo's default limit).
const SEARCH_LIMIT: usize = 20;

const SERVICES: [&str; 8] = [
    "frontend",
    "cart",
    "checkout",
    "payments",
    "inventory",
    "shipping",
    "auth",
    "db-proxy",
];

/// A block sink that is never called: the bench writes blocks itself.
struct NoSink;

#[async_trait]
impl BlockSink for NoSink {
    async fn write_block(
        &self,
        _tenant: &str,
        _traces: Vec<(TraceId, Trace)>,
    ) -> anyhow::Result<BlockMeta> {
        anyhow::bail!("the search bench does not flush its head")
    }
}

/// One trace of about ten spans: a frontend root, service calls, database calls.
fn make_trace(rng: &mut rand::rngs::StdRng, index: u64, base_ns: u64) -> (TraceId, Trace) {
    let mut id = [0u8; 16];
    rng.fill(&mut id[..]);
    let trace_id = TraceId(id);
    let start = base_ns + index * 1_000_000;
    let slow = index % 20_000 == 7;
    let rare_503 = index % 100_000 == 11;
    let refund = index % 50_000 == 3;
    let error = rng.random_ratio(1, 100);
    let mut batches: Vec<ResourceSpans> = Vec::new();
    let span_number = std::cell::Cell::new(0u64);
    let push = |service: &str, span: Span, batches: &mut Vec<ResourceSpans>| {
        if let Some(batch) = batches.iter_mut().find(|batch| {
            batch.resource.as_ref().is_some_and(|resource| {
                resource.attributes.first() == Some(&string_attribute("service.name", service))
            })
        }) {
            batch.scope_spans[0].spans.push(span);
            return;
        }
        batches.push(ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string_attribute("service.name", service),
                    string_attribute("k8s.namespace.name", "prod"),
                    string_attribute("host.name", &format!("node-{}", index % 16)),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry".into(),
                    version: "1.30.0".into(),
                    ..Default::default()
                }),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        });
    };
    let new_span = |parent: Option<u64>, name: String, kind: SpanKind, offset: u64, millis: u64| {
        span_number.set(span_number.get() + 1);
        let span_number = span_number.get();
        Span {
            trace_id: id.to_vec(),
            span_id: (index << 8 | span_number).to_be_bytes().to_vec(),
            parent_span_id: parent
                .map(|p| (index << 8 | p).to_be_bytes().to_vec())
                .unwrap_or_default(),
            name,
            kind: kind as i32,
            start_time_unix_nano: start + offset * 1_000,
            end_time_unix_nano: start + offset * 1_000 + millis * 1_000_000,
            ..Default::default()
        }
    };
    let route = ["/api/cart", "/api/checkout", "/api/products", "/api/login"][(index % 4) as usize];
    let mut root = new_span(
        None,
        format!("GET {route}"),
        SpanKind::Server,
        0,
        if slow { 3_500 } else { 40 },
    );
    root.attributes = vec![
        string_attribute("http.method", "GET"),
        string_attribute("http.route", route),
        int_attribute("http.status_code", if error { 500 } else { 200 }),
    ];
    if error {
        root.status = Some(Status {
            code: 2,
            message: "internal error".into(),
        });
    }
    push("frontend", root, &mut batches);
    // Three downstream services, each with a server span and a database call.
    for call in 0..3u64 {
        let service = SERVICES[1 + ((index + call * 3) % 6) as usize];
        let (service, status_code) = if rare_503 && call == 0 {
            ("payments", 503)
        } else {
            (service, 200)
        };
        let mut client = new_span(
            Some(1),
            format!("POST /{service}"),
            SpanKind::Client,
            10 + call * 100,
            8,
        );
        client.attributes = vec![
            string_attribute("http.method", "POST"),
            int_attribute("http.status_code", status_code),
        ];
        let client_number = span_number.get();
        push("frontend", client, &mut batches);
        let name = if refund && call == 0 {
            "refund payment".to_string()
        } else {
            format!("handle {service}")
        };
        let mut server = new_span(
            Some(client_number),
            name,
            SpanKind::Server,
            12 + call * 100,
            6,
        );
        server.attributes = vec![
            int_attribute("http.status_code", status_code),
            string_attribute("http.route", &format!("/{service}")),
        ];
        let server_number = span_number.get();
        push(service, server, &mut batches);
        let system = if (index + call).is_multiple_of(3) {
            "redis"
        } else {
            "postgresql"
        };
        let mut db = new_span(
            Some(server_number),
            format!("SELECT {service}"),
            SpanKind::Client,
            13 + call * 100,
            if slow && call == 2 { 2_500 } else { 2 },
        );
        db.attributes = vec![
            string_attribute("db.system", system),
            string_attribute(
                "db.statement",
                &format!("SELECT * FROM {service} WHERE id = ?"),
            ),
        ];
        push(service, db, &mut batches);
    }
    (
        trace_id,
        Trace {
            resource_spans: batches,
        },
    )
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// What the search bench reads.
#[derive(Debug, Clone)]
pub enum Shape {
    /// Generated spans in blocks of [`SPANS_PER_BLOCK`]; pushdown against whole-block decoding.
    Blocks,
    /// A bucket folder (`<tenant>/<block id>/`) another writer made, e.g. Tempo's one-row-group
    /// block.
    TempoBlock(PathBuf),
    /// Generated spans in one block (as compaction makes them).
    LargeBlock,
    /// Generated spans pushed into the ingester's memory and complete; no blocks.
    Head,
    /// Generated spans pushed into the ingester's memory, every trace still live (quiet for
    /// a moment, as traces are between their last span and their idle period).
    LiveHead,
}

impl Shape {
    /// `blocks`, `tempo-block` (read from `block_dir`), `large-block`, `head` or `live-head`.
    pub fn parse(name: &str, block_dir: &std::path::Path) -> anyhow::Result<Shape> {
        Ok(match name {
            "blocks" => Shape::Blocks,
            "tempo-block" => Shape::TempoBlock(block_dir.to_path_buf()),
            "large-block" => Shape::LargeBlock,
            "head" => Shape::Head,
            "live-head" => Shape::LiveHead,
            other => anyhow::bail!(
                "unknown --search-shape {other:?}: expected blocks, tempo-block, large-block, head or live-head"
            ),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Shape::Blocks => "blocks",
            Shape::TempoBlock(_) => "tempo-block",
            Shape::LargeBlock => "large-block",
            Shape::Head => "head",
            Shape::LiveHead => "live-head",
        }
    }
}

/// The queries of the issue's side-by-side table with Tempo, over its block
/// (frontend → cart → pricing, redis and postgresql): (label, TraceQL, limit).
pub const TEMPO_BLOCK_QUERIES: &[(&str, &str, usize)] = &[
    (
        "service && redis",
        r#"{ resource.service.name = "pricing" && span.db.system = "redis" }"#,
        20,
    ),
    (
        "structural",
        r#"{ resource.service.name = "frontend" } >> { span.db.system = "redis" }"#,
        20,
    ),
    (
        "route, limit 2000",
        r#"{ span.http.route = "/prices" }"#,
        2000,
    ),
    (
        "no match: status 503",
        "{ span.http.response.status_code = 503 }",
        20,
    ),
    ("no match: regex", r#"{ name =~ "refund.*" }"#, 20),
    ("no match: duration", "{ duration > 10s }", 20),
    ("everything", "{ }", 20),
];

/// A search of the bench: (label, TraceQL, limit).
type SearchQuery = (&'static str, &'static str, usize);

/// The metrics queries of the same table.
pub const TEMPO_BLOCK_METRICS: &[(&str, &str)] = &[
    (
        "metrics: rate by service",
        "{ } | rate() by (resource.service.name)",
    ),
    (
        "metrics: p99 by name",
        "{ kind = server } | quantile_over_time(duration, .99) by (name)",
    ),
    (
        "metrics: redis count",
        r#"{ span.db.system = "redis" } | count_over_time()"#,
    ),
];

/// What a shape holds once prepared: spans, bytes, the time window of its spans.
pub(crate) struct DataSet {
    pub spans: u64,
    pub bytes: u64,
    start_ns: u64,
    end_ns: u64,
}

/// A memory figure of this process from `/proc/self/status` (`VmHWM`, `VmRSS`), bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Peak resident memory of this process since the last [`reset_peak_rss`], bytes.
pub(crate) fn peak_rss() -> u64 {
    status_bytes("VmHWM")
}

/// Starts a new peak-RSS measurement (Linux: writing 5 to clear_refs resets VmHWM).
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Generates traces `range` of the bench's mix on the blocking pool.
async fn generate(
    range: std::ops::Range<u64>,
    base_ns: u64,
) -> anyhow::Result<Vec<(TraceId, Trace)>> {
    Ok(tokio::task::spawn_blocking(move || {
        let mut rng = rand::rngs::StdRng::seed_from_u64(range.start);
        range
            .map(|index| make_trace(&mut rng, index, base_ns))
            .collect::<Vec<_>>()
    })
    .await?)
}

fn span_count(traces: &[(TraceId, Trace)]) -> u64 {
    traces
        .iter()
        .flat_map(|(_, trace)| &trace.resource_spans)
        .flat_map(|batch| &batch.scope_spans)
        .map(|scope| scope.spans.len() as u64)
        .sum()
}

/// Base timestamp of the generated traces (trace `i` starts `i` ms later).
const BASE_NS: u64 = 1_763_780_000_000_000_000;

/// Writes `spans` generated spans as blocks of `spans_per_block`, two at a time (generation
/// on one core, encoding on the other).
pub(crate) async fn write_generated_blocks(
    store: &Arc<Store>,
    spans: u64,
    spans_per_block: u64,
) -> anyhow::Result<DataSet> {
    let traces_total = spans.div_ceil(10);
    let traces_per_block = spans_per_block.div_ceil(10);
    let mut pending = Vec::new();
    let mut written_spans = 0u64;
    let mut block_bytes = 0u64;
    let mut first = 0u64;
    while first < traces_total {
        let last = (first + traces_per_block).min(traces_total);
        let traces = generate(first..last, BASE_NS).await?;
        written_spans += span_count(&traces);
        let store = Arc::clone(store);
        pending.push(tokio::spawn(async move {
            store.write_block(TENANT, traces).await
        }));
        if pending.len() >= 2 {
            let meta = pending.remove(0).await??;
            block_bytes += meta.size;
        }
        first = last;
    }
    for task in pending {
        block_bytes += task.await??.size;
    }
    Ok(DataSet {
        spans: written_spans,
        bytes: block_bytes,
        start_ns: BASE_NS,
        end_ns: BASE_NS + traces_total * 1_000_000 + 60_000_000_000,
    })
}

/// Copies a bucket folder into the store's directory and lists its blocks.
async fn copy_bucket(
    store: &Arc<Store>,
    from: &std::path::Path,
    to: &std::path::Path,
) -> anyhow::Result<DataSet> {
    fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_tree(&entry.path(), &target)?;
            } else {
                std::fs::copy(entry.path(), &target)?;
            }
        }
        Ok(())
    }
    copy_tree(from, to).with_context(|| format!("copying the bucket {}", from.display()))?;
    store.poll().await.context("listing the copied blocks")?;
    let blocks = store.blocks(TENANT);
    anyhow::ensure!(
        !blocks.is_empty(),
        "no block of tenant {TENANT} under {}",
        from.display()
    );
    let nanos = |time: &chrono::DateTime<chrono::Utc>| {
        time.timestamp_nanos_opt().unwrap_or(0).max(0) as u64
    };
    Ok(DataSet {
        spans: 0,
        bytes: blocks.iter().map(|meta| meta.size).sum(),
        start_ns: blocks
            .iter()
            .map(|meta| nanos(&meta.start_time))
            .min()
            .unwrap_or(0),
        end_ns: blocks
            .iter()
            .map(|meta| nanos(&meta.end_time))
            .max()
            .unwrap_or(0)
            + 1_000_000_000,
    })
}

/// Pushes `spans` generated spans into the ingester, 100 traces a push; then, for `live`,
/// lets queries read them as the head would a moment later (quiet live traces copied into
/// live segments), or else completes them and seals them into segments.
async fn fill_head(ingester: &Arc<Ingester>, spans: u64, live: bool) -> anyhow::Result<DataSet> {
    let traces_total = spans.div_ceil(10);
    let mut pushed = 0u64;
    let mut bytes = 0u64;
    let mut first = 0u64;
    while first < traces_total {
        let last = (first + 10_000).min(traces_total);
        let traces = generate(first..last, BASE_NS).await?;
        pushed += span_count(&traces);
        for chunk in traces.chunks(100) {
            bytes += chunk
                .iter()
                .map(|(_, trace)| prost::Message::encoded_len(trace) as u64)
                .sum::<u64>();
            ingester
                .push(TENANT, chunk.to_vec())
                .await
                .map_err(|error| anyhow::anyhow!("pushing into the head: {error}"))?;
        }
        first = last;
    }
    let sealing = Instant::now();
    if live {
        // As the head is two seconds later, while queries read it: every trace quiet, still
        // live, copied into live segments.
        ingester
            .build_live_segments(sealing + Duration::from_secs(2))
            .await;
    } else {
        // As the head is seconds later: every trace idle, complete and sealed into segments
        // whose columns are built (two rounds of the ingester's loop, its clock moved past
        // the idle period and then past the segment age).
        let later = sealing + Duration::from_secs(11);
        ingester.tick(later).await;
        ingester.tick(later + Duration::from_secs(6)).await;
        ingester.build_segment_columns().await;
    }
    let stats = ingester.stats();
    println!(
        "head: {} live traces ({} live segments with {:.1} MB of columns), {} complete in {} segments with {:.1} MB of columns (built in {:.1} s)",
        stats.live_traces,
        stats.head_live_segments,
        stats.head_live_segment_column_bytes as f64 / 1e6,
        stats.completed_traces,
        stats.head_segments,
        stats.head_segment_column_bytes as f64 / 1e6,
        sealing.elapsed().as_secs_f64()
    );
    Ok(DataSet {
        spans: pushed,
        bytes,
        start_ns: BASE_NS,
        end_ns: BASE_NS + traces_total * 1_000_000 + 60_000_000_000,
    })
}

/// Runs the search bench over a shape, `runs` times per query (and mode, for `blocks`).
/// `only`: run just the queries whose label contains it.
pub async fn run(shape: Shape, spans: u64, runs: usize, only: Option<&str>) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("vivace-bench-search-")
        .tempdir()?;
    let blocks_dir = scratch.path().join("blocks");
    let config = StorageConfig {
        backend: BackendKind::Local,
        local: LocalConfig {
            path: blocks_dir.clone(),
        },
        ..StorageConfig::default()
    };
    let store = Arc::new(Store::open(config).await.context("opening the store")?);
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let ingester_config = IngesterConfig {
        wal_path: scratch.path().join("wal"),
        wal_fsync: crate::ingester::WalFsync::Never,
        max_head_bytes: 64 << 30,
        // The head shape is one head: no cut into blocks while it is measured.
        max_block_bytes: 64 << 30,
        ..IngesterConfig::default()
    };
    let ingester = Ingester::open(ingester_config, Arc::new(NoSink))
        .await
        .context("opening an empty ingester")?;

    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let mut data = match &shape {
        Shape::Blocks => write_generated_blocks(&store, spans, SPANS_PER_BLOCK).await?,
        Shape::LargeBlock => write_generated_blocks(&store, spans, spans).await?,
        Shape::TempoBlock(from) => copy_bucket(&store, from, &blocks_dir).await?,
        Shape::Head => fill_head(&ingester, spans, false).await?,
        Shape::LiveHead => fill_head(&ingester, spans, true).await?,
    };
    let blocks = store.blocks(TENANT);
    if data.spans == 0 {
        // A bucket made elsewhere: count its spans with one metrics query.
        let querier = Querier::new(Arc::clone(&ingester), Arc::clone(&store));
        let response = querier
            .metrics_query_range(
                TENANT,
                "{ } | count_over_time()",
                data.start_ns,
                data.end_ns,
                0,
            )
            .await?;
        data.spans = response
            .series
            .iter()
            .flat_map(|series| &series.samples)
            .map(|sample| sample.value as u64)
            .sum();
    }
    println!(
        "vivace bench --search --search-shape {}: {} spans, {} blocks, {:.1} MB ({:.1} B/span), prepared in {:.1} s ({:.1} CPU s); {runs} runs per query, {cores} cores",
        shape.name(),
        data.spans,
        blocks.len(),
        data.bytes as f64 / 1e6,
        data.bytes as f64 / data.spans.max(1) as f64,
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu_before
    );

    let querier = Querier::new(Arc::clone(&ingester), Arc::clone(&store));
    let options = SearchOptions {
        window: Some((0, u64::MAX)),
        ..SearchOptions::default()
    };
    let tenants = vec![TENANT.to_string()];
    let (searches, metrics): (Vec<SearchQuery>, &[(&str, &str)]) = match shape {
        Shape::TempoBlock(_) => (TEMPO_BLOCK_QUERIES.to_vec(), TEMPO_BLOCK_METRICS),
        _ => (
            QUERIES
                .iter()
                .map(|(label, text)| (*label, *text, SEARCH_LIMIT))
                .collect(),
            METRICS_QUERIES,
        ),
    };
    let wanted = |label: &str| only.is_none_or(|text| label.contains(text));
    let searches: Vec<SearchQuery> = searches
        .into_iter()
        .filter(|(label, _, _)| wanted(label))
        .collect();
    let metrics: Vec<(&str, &str)> = metrics
        .iter()
        .copied()
        .filter(|(label, _)| wanted(label))
        .collect();
    let modes: &[bool] = match shape {
        Shape::Blocks => &[false, true],
        _ => &[true],
    };

    println!(
        "decoded: traces decoded by the last run; held: the most decoded traces in memory at once \
         (batches of at most {} traces flow through; a block is never held whole)",
        crate::tempodb::vparquet4::READ_BATCH_ROWS
    );
    println!(
        "{:<36} {:<9} {:>9} {:>9} {:>7} {:>8} {:>7} {:>14} {:>10} {:>10} {:>9}",
        "query",
        "mode",
        "p50 ms",
        "p99 ms",
        "found",
        "decoded",
        "held",
        "spans/s/core",
        "rg skipped",
        "peak RSS",
        "rss+ MB"
    );
    for (label, text, limit) in &searches {
        let compiled = Arc::new(CompiledSearch::new(parse_and_validate(text)?)?);
        for pushdown in modes {
            querier.set_pushdown(*pushdown);
            let mut latencies = Vec::with_capacity(runs);
            let mut cpu = 0.0;
            let mut last = None;
            let rss_before = current_rss();
            reset_peak_rss();
            reset_peak_held_traces();
            for _ in 0..runs {
                let cpu_start = cpu_seconds();
                let started = Instant::now();
                let outcome = querier
                    .search(&tenants, Arc::clone(&compiled), *limit, options)
                    .await?;
                latencies.push(started.elapsed());
                cpu += cpu_seconds() - cpu_start;
                last = Some(outcome);
            }
            let peak = peak_rss();
            let held = peak_held_traces();
            latencies.sort();
            let outcome = last.unwrap_or_default();
            // Spans covered: the whole data set, unless the search stopped at its limit, when
            // only the spans it inspected count.
            let covered = if outcome.traces.len() >= *limit {
                outcome.inspected_spans as f64
            } else {
                data.spans as f64
            };
            println!(
                "{:<36} {:<9} {:>9.1} {:>9.1} {:>7} {:>8} {:>7} {:>14.0} {:>10} {:>8.0}MB {:>9.0}",
                label,
                if *pushdown { "pushdown" } else { "whole" },
                percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
                outcome.traces.len(),
                outcome.pushdown.rows_decoded,
                held,
                covered * runs as f64 / cpu.max(0.001),
                format!(
                    "{}/{}",
                    outcome.pushdown.row_groups_skipped_by_statistics
                        + outcome.pushdown.row_groups_skipped_by_values,
                    outcome.pushdown.row_groups
                ),
                peak as f64 / 1e6,
                peak.saturating_sub(rss_before) as f64 / 1e6,
            );
        }
    }
    for (label, text) in &metrics {
        for pushdown in modes {
            querier.set_pushdown(*pushdown);
            let mut latencies = Vec::with_capacity(runs);
            let mut cpu = 0.0;
            let mut last = None;
            let rss_before = current_rss();
            reset_peak_rss();
            reset_peak_held_traces();
            for _ in 0..runs {
                let cpu_start = cpu_seconds();
                let started = Instant::now();
                let response = querier
                    .metrics_query_range(TENANT, text, data.start_ns, data.end_ns, 60_000_000_000)
                    .await?;
                latencies.push(started.elapsed());
                cpu += cpu_seconds() - cpu_start;
                last = Some(response);
            }
            let peak = peak_rss();
            let held = peak_held_traces();
            latencies.sort();
            let response = last.unwrap_or_default();
            println!(
                "{:<36} {:<9} {:>9.1} {:>9.1} {:>7} {:>8} {:>7} {:>14.0} {:>10} {:>8.0}MB {:>9.0}",
                label,
                if *pushdown { "pushdown" } else { "whole" },
                percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
                response.series.len(),
                response.metrics.inspected_traces,
                held,
                data.spans as f64 * runs as f64 / cpu.max(0.001),
                "-",
                peak as f64 / 1e6,
                peak.saturating_sub(rss_before) as f64 / 1e6,
            );
        }
    }
    querier.set_pushdown(true);
    Ok(())
}

/// Resident memory of this process now, bytes.
pub(crate) fn current_rss() -> u64 {
    status_bytes("VmRSS")
}
