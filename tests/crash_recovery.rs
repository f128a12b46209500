//! Crash recovery: kill -9 during sustained ingest, restart: every span whose request was
//! acknowledged is returned. Repeated at random moments, with blocks being cut meanwhile.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use parking_lot::Mutex;
use prost::Message;
use rand::Rng;
use serde_json::Value;

use common::Vivace;

const SPANS_PER_TRACE: usize = 10;
const TRACES_PER_REQUEST: usize = 5;

/// Span IDs unique per trace: the span's number, then the first seven bytes of its trace ID.
fn span_id(number: u8, trace_id: &[u8; 16]) -> Vec<u8> {
    let mut id = vec![number];
    id.extend_from_slice(&trace_id[..7]);
    id
}

fn request(traces: &[[u8; 16]]) -> Vec<u8> {
    // Current times: the compactor expires blocks past retention, so old spans would vanish.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let mut spans = Vec::new();
    for trace_id in traces {
        for index in 0..SPANS_PER_TRACE {
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id(index as u8 + 1, trace_id),
                parent_span_id: if index == 0 {
                    Vec::new()
                } else {
                    span_id(1, trace_id)
                },
                name: format!("op-{index}"),
                kind: 2,
                start_time_unix_nano: now + index as u64,
                end_time_unix_nano: now + 100_000_000,
                ..Default::default()
            });
        }
    }
    let service = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("crash-test".into())),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![service],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Sends requests until the server dies; returns the trace IDs whose requests got a 200.
async fn load(url: String, acknowledged: Arc<Mutex<Vec<[u8; 16]>>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut failures = 0;
    while failures < 20 {
        let traces: Vec<[u8; 16]> = (0..TRACES_PER_REQUEST)
            .map(|_| rand::rng().random())
            .collect();
        let result = client
            .post(format!("{url}/v1/traces"))
            .header("Content-Type", "application/x-protobuf")
            .body(request(&traces))
            .send()
            .await;
        match result {
            Ok(response) if response.status() == 200 => {
                acknowledged.lock().extend(traces);
                failures = 0;
                // Sustained, not flat out: the check after each kill reads every trace back.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(response) if response.status() == 429 => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            _ => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn spans_of(client: &reqwest::Client, url: String) -> usize {
    let Ok(response) = client.get(url).send().await else {
        return 0;
    };
    if response.status() != 200 {
        return 0;
    }
    let Ok(body) = response.json::<Value>().await else {
        return 0;
    };
    body["trace"]["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|batch| batch["scopeSpans"].as_array().cloned().unwrap_or_default())
        .map(|scope| scope["spans"].as_array().map_or(0, Vec::len))
        .sum()
}

/// Reads every trace back (eight lookups in flight) and lists those not complete.
async fn missing_spans(vivace: &Vivace, traces: &[[u8; 16]]) -> BTreeMap<String, usize> {
    use futures::StreamExt;
    let client = reqwest::Client::new();
    let lookups = traces.iter().map(|trace_id| {
        let id = hex::encode(trace_id);
        let url = vivace.url(&format!("/api/v2/traces/{id}"));
        let client = client.clone();
        async move { (id, spans_of(&client, url).await) }
    });
    futures::stream::iter(lookups)
        .buffer_unordered(8)
        .filter(|(_, found)| std::future::ready(*found != SPANS_PER_TRACE))
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_spans_survive_kill_9() {
    // Blocks are cut every second so kills also land during flushes and WAL rotation.
    let data = tempfile::Builder::new()
        .prefix("vivace-crash-")
        .tempdir()
        .unwrap()
        .keep();
    let yaml = "ingester:\n  trace_idle_period: 500ms\n  max_block_duration: 1s\n  flush_check_period: 100ms\n";
    let mut vivace = Vivace::start_in(&data, common::Ports::pick(), yaml);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let rounds = 4;
    for round in 0..rounds {
        let loaders: Vec<_> = (0..3)
            .map(|_| tokio::spawn(load(vivace.otlp_http_url(), Arc::clone(&acknowledged))))
            .collect();
        let before = acknowledged.lock().len();
        let delay = rand::rng().random_range(400..2500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        vivace.kill9();
        for loader in loaders {
            let _ = loader.await;
        }
        let sent_this_round = acknowledged.lock().len() - before;
        assert!(
            sent_this_round > 0,
            "round {round}: no request was acknowledged before the kill; log:\n{}",
            vivace.log_text()
        );
        vivace.restart();
        let all: Vec<[u8; 16]> = acknowledged.lock().clone();
        let missing = missing_spans(&vivace, &all).await;
        assert!(
            missing.is_empty(),
            "round {round} (killed after {delay} ms): {} of {} acknowledged traces incomplete, e.g. {:?}; log:\n{}",
            missing.len(),
            all.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            vivace.log_text()
        );
        eprintln!("round {round}: killed after {delay} ms, {sent_this_round} traces acknowledged this round, all {} intact", all.len());
    }
}
