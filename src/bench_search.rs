//! `vivace bench --search`: search over many spans in blocks, in-process. Blocks of a
//! realistic mix (several services, HTTP and database spans, ~1% errors, a few slow traces,
//! rare values for selective queries) are written straight through `Store::write_block` into
//! a scratch directory, then each query of [`QUERIES`] runs several times with the pushdown
//! and with whole-block decoding. It prints p50/p99 latency and spans/s and bytes/s per
//! CPU-second of this process. It never fails on a time; it reports.

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

const TENANT: &str = "single-tenant";
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

/// Runs the search bench over `spans` spans, `runs` times per query and mode.
pub async fn run(spans: u64, runs: usize) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("vivace-bench-search-")
        .tempdir()?;
    let config = StorageConfig {
        backend: BackendKind::Local,
        local: LocalConfig {
            path: scratch.path().join("blocks"),
        },
        ..StorageConfig::default()
    };
    let store = Arc::new(Store::open(config).await.context("opening the store")?);
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    println!("vivace bench --search: {spans} spans in blocks of {SPANS_PER_BLOCK}, {runs} runs per query, {cores} cores");

    // Generate and write blocks, two at a time (generation on one, encoding on the other).
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let traces_total = spans.div_ceil(10);
    let traces_per_block = SPANS_PER_BLOCK / 10;
    let base_ns = 1_763_780_000_000_000_000u64;
    let mut pending = Vec::new();
    let mut written_spans = 0u64;
    let mut block_bytes = 0u64;
    let mut first = 0u64;
    while first < traces_total {
        let last = (first + traces_per_block).min(traces_total);
        let range = first..last;
        let traces = tokio::task::spawn_blocking(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(range.start);
            range
                .map(|index| make_trace(&mut rng, index, base_ns))
                .collect::<Vec<_>>()
        })
        .await?;
        written_spans += traces
            .iter()
            .flat_map(|(_, trace)| &trace.resource_spans)
            .flat_map(|batch| &batch.scope_spans)
            .map(|scope| scope.spans.len() as u64)
            .sum::<u64>();
        let store = Arc::clone(&store);
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
    let blocks = store.blocks(TENANT);
    println!(
        "wrote {} blocks, {written_spans} spans, {:.1} MB ({:.1} B/span) in {:.1} s ({:.1} CPU s)",
        blocks.len(),
        block_bytes as f64 / 1e6,
        block_bytes as f64 / written_spans.max(1) as f64,
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu_before
    );

    let ingester_config = IngesterConfig {
        wal_path: scratch.path().join("wal"),
        ..IngesterConfig::default()
    };
    let ingester = Ingester::open(ingester_config, Arc::new(NoSink))
        .await
        .context("opening an empty ingester")?;
    let querier = Querier::new(Arc::clone(&ingester), Arc::clone(&store));
    let options = SearchOptions {
        window: Some((0, u64::MAX)),
        ..SearchOptions::default()
    };
    let tenants = vec![TENANT.to_string()];

    println!(
        "{:<36} {:<9} {:>9} {:>9} {:>7} {:>8} {:>14} {:>12} {:>10}",
        "query",
        "mode",
        "p50 ms",
        "p99 ms",
        "found",
        "decoded",
        "spans/s/core",
        "MB/s/core",
        "rg skipped"
    );
    for (label, text) in QUERIES {
        let compiled = Arc::new(CompiledSearch::new(parse_and_validate(text)?)?);
        for pushdown in [false, true] {
            querier.set_pushdown(pushdown);
            let mut latencies = Vec::with_capacity(runs);
            let mut cpu = 0.0;
            let mut last = None;
            for _ in 0..runs {
                let cpu_start = cpu_seconds();
                let started = Instant::now();
                let outcome = querier
                    .search(&tenants, Arc::clone(&compiled), SEARCH_LIMIT, options)
                    .await?;
                latencies.push(started.elapsed());
                cpu += cpu_seconds() - cpu_start;
                last = Some(outcome);
            }
            latencies.sort();
            let outcome = last.unwrap_or_default();
            // Throughput over the spans and bytes the query covered (the whole data set,
            // unless it stopped early at the limit), per CPU-second of this process.
            let covered = if outcome.traces.len() >= SEARCH_LIMIT {
                outcome.pushdown.rows as f64 / traces_total as f64
            } else {
                1.0
            };
            let per_cpu = |amount: f64| amount * covered * runs as f64 / cpu.max(0.01);
            println!(
                "{:<36} {:<9} {:>9.1} {:>9.1} {:>7} {:>8} {:>14.0} {:>12.1} {:>10}",
                label,
                if pushdown { "pushdown" } else { "whole" },
                percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
                outcome.traces.len(),
                outcome.pushdown.rows_decoded,
                per_cpu(written_spans as f64),
                per_cpu(block_bytes as f64) / 1e6,
                format!(
                    "{}/{}",
                    outcome.pushdown.row_groups_skipped_by_statistics
                        + outcome.pushdown.row_groups_skipped_by_dictionary,
                    outcome.pushdown.row_groups
                ),
            );
        }
    }
    let (start, end) = (base_ns, base_ns + traces_total * 1_000_000 + 60_000_000_000);
    for (label, text) in METRICS_QUERIES {
        for pushdown in [false, true] {
            querier.set_pushdown(pushdown);
            let mut latencies = Vec::with_capacity(runs);
            let mut cpu = 0.0;
            let mut last = None;
            for _ in 0..runs {
                let cpu_start = cpu_seconds();
                let started = Instant::now();
                let response = querier
                    .metrics_query_range(TENANT, text, start, end, 60_000_000_000)
                    .await?;
                latencies.push(started.elapsed());
                cpu += cpu_seconds() - cpu_start;
                last = Some(response);
            }
            latencies.sort();
            let response = last.unwrap_or_default();
            let per_cpu = |amount: f64| amount * runs as f64 / cpu.max(0.01);
            println!(
                "{:<36} {:<9} {:>9.1} {:>9.1} {:>7} {:>8} {:>14.0} {:>12.1} {:>10}",
                label,
                if pushdown { "pushdown" } else { "whole" },
                percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&latencies, 0.99).as_secs_f64() * 1e3,
                response.series.len(),
                response.metrics.inspected_traces,
                per_cpu(written_spans as f64),
                per_cpu(block_bytes as f64) / 1e6,
                "-",
            );
        }
    }
    querier.set_pushdown(true);
    Ok(())
}
