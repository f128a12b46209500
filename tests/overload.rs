//! Overload under one memory budget. Several OTLP/HTTP and
//! OTLP/gRPC clients send as fast as they can for a bounded time against vivace given only
//! `server.memory_limit: 512MiB` (as a container's limit would be), from which the head,
//! in-flight, logs, compaction and cache budgets derive. vivace answers some pushes with 429 /
//! RESOURCE_EXHAUSTED, its resident memory stays under the limit, and every acknowledged trace
//! is readable afterwards, also after a kill -9 and restart.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Vivace;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// How long the clients blast.
const BLAST: Duration = Duration::from_secs(10);
const HTTP_CLIENTS: u32 = 8;
const GRPC_CLIENTS: u32 = 4;
const SPANS_PER_REQUEST: u32 = 40;
/// The memory limit given to vivace, which its resident memory must stay under.
const RSS_LIMIT_KIB: u64 = 512 * 1024;

const CONFIG: &str = r#"
server:
  memory_limit: 512MiB
distributor:
  max_request_bytes: 524288
ingester:
  trace_idle_period: 1s
  max_block_duration: 3s
  flush_check_period: 200ms
  complete_block_timeout: 2s
overrides:
  defaults:
    ingestion:
      rate_limit_bytes: 0
"#;

fn request(client: u32, sequence: u32) -> (String, ExportTraceServiceRequest) {
    let mut trace_id = [0u8; 16];
    trace_id[..4].copy_from_slice(&client.to_be_bytes());
    trace_id[4..8].copy_from_slice(&sequence.to_be_bytes());
    trace_id[15] = 1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans = (0..SPANS_PER_REQUEST)
        .map(|n| Span {
            trace_id: trace_id.to_vec(),
            span_id: (u64::from(n) + 1).to_be_bytes().to_vec(),
            name: format!("overload-{n}"),
            start_time_unix_nano: now - 1_000_000,
            end_time_unix_nano: now,
            attributes: vec![KeyValue {
                key: "payload".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("p".repeat(1000))),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("overload".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (hex::encode(trace_id), request)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[derive(Default)]
struct Tally {
    acknowledged: Mutex<Vec<String>>,
    refused: AtomicU64,
    /// Refusals naming a memory budget (head or in-flight bytes).
    refused_for_memory: AtomicU64,
}

impl Tally {
    fn refused(&self, message: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if message.contains("max_head_bytes") || message.contains("max_inflight_bytes") {
            self.refused_for_memory.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn http_client(url: String, client: u32, tally: Arc<Tally>, deadline: Instant) {
    let http = reqwest::Client::new();
    let mut sequence = 0;
    while Instant::now() < deadline {
        sequence += 1;
        let (trace_id, request) = request(client, sequence);
        let Ok(response) = http
            .post(&url)
            .header("Content-Type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
        else {
            continue;
        };
        match response.status().as_u16() {
            200 => tally.acknowledged.lock().unwrap().push(trace_id),
            429 | 503 => tally.refused(&response.text().await.unwrap_or_default()),
            other => panic!("unexpected {other}: {:?}", response.text().await),
        }
    }
}

async fn grpc_client(url: String, client: u32, tally: Arc<Tally>, deadline: Instant) {
    let mut grpc = TraceServiceClient::connect(url).await.unwrap();
    let mut sequence = 0;
    while Instant::now() < deadline {
        sequence += 1;
        let (trace_id, request) = request(client, sequence);
        match grpc.export(request).await {
            Ok(_) => tally.acknowledged.lock().unwrap().push(trace_id),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                ) =>
            {
                tally.refused(status.message());
            }
            Err(status) => panic!("unexpected gRPC status {status:?}"),
        }
    }
}

/// Reads every trace ID; returns those not found with all their spans.
async fn missing(vivace: &Vivace, ids: &[String]) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut missing = Vec::new();
    for chunk in ids.chunks(16) {
        let lookups = chunk.iter().map(|id| {
            let client = client.clone();
            let url = vivace.url(&format!("/api/v2/traces/{id}"));
            async move {
                let response = client.get(url).send().await.ok()?;
                if response.status() != 200 {
                    return None;
                }
                let body = response.text().await.ok()?;
                (body.matches("overload-").count() == SPANS_PER_REQUEST as usize).then_some(())
            }
        });
        let results = futures::future::join_all(lookups).await;
        for (id, result) in chunk.iter().zip(results) {
            if result.is_none() {
                missing.push(id.clone());
            }
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_refuses_with_429_keeps_memory_bounded_and_loses_nothing_acknowledged() {
    let mut vivace = Vivace::start(CONFIG);
    let pid = vivace.child.id();
    let baseline = rss_kib(pid).unwrap_or(0);
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop_sampling);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = rss_kib(pid) {
                    peak = peak.max(rss);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + BLAST;
    let mut tasks = Vec::new();
    for client in 0..HTTP_CLIENTS {
        let url = format!("{}/v1/traces", vivace.otlp_http_url());
        tasks.push(tokio::spawn(http_client(
            url,
            client,
            Arc::clone(&tally),
            deadline,
        )));
    }
    for client in HTTP_CLIENTS..HTTP_CLIENTS + GRPC_CLIENTS {
        tasks.push(tokio::spawn(grpc_client(
            vivace.otlp_grpc_url(),
            client,
            Arc::clone(&tally),
            deadline,
        )));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    stop_sampling.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();

    let acknowledged = tally.acknowledged.lock().unwrap().clone();
    let refused = tally.refused.load(Ordering::Relaxed);
    let refused_for_memory = tally.refused_for_memory.load(Ordering::Relaxed);
    let unique: HashSet<&String> = acknowledged.iter().collect();
    assert_eq!(unique.len(), acknowledged.len());
    eprintln!(
        "overload: {} acknowledged, {refused} refused ({refused_for_memory} naming a memory budget) in {elapsed:?}; RSS baseline {baseline} KiB, peak {peak} KiB",
        acknowledged.len()
    );
    let log = vivace.log_text();
    assert!(
        log.contains("memory budget") && log.contains("ingester.max_head_bytes"),
        "the budgets derived from server.memory_limit are logged:\n{log}"
    );
    assert!(
        refused > 0,
        "sending at several times capacity gets 429 / RESOURCE_EXHAUSTED"
    );
    assert!(
        refused_for_memory > 0,
        "some refusals come from the memory budgets derived from server.memory_limit"
    );
    assert!(
        !acknowledged.is_empty(),
        "some pushes are accepted under overload"
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "RSS peaked at {peak} KiB, over the bound of {RSS_LIMIT_KIB} KiB"
    );

    let lost = missing(&vivace, &acknowledged).await;
    assert!(
        lost.is_empty(),
        "{} acknowledged traces unreadable, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    vivace.restart();
    let lost = missing(&vivace, &acknowledged).await;
    assert!(
        lost.is_empty(),
        "{} acknowledged traces lost over kill -9, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}
