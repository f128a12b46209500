//! Searches and TraceQL metrics queries that run while the ingester cuts blocks and the
//! compactor merges them never miss or duplicate a trace: every answer holds each pushed
//! trace exactly once and counts each of its spans once, whether the trace is in memory, in
//! a block being written, in a block being compacted or in the merged block.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

use common::Vivace;

const SPANS_PER_TRACE: u64 = 4;
const TRACES_PER_REQUEST: u64 = 25;
const REQUESTS: u64 = 40;
const TRACES: u64 = TRACES_PER_REQUEST * REQUESTS;
/// Rounds of concurrent queries; each round runs one search and one metrics query.
const ROUNDS: usize = 30;

fn trace_id(number: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0] = 0x5c;
    id[8..].copy_from_slice(&number.to_be_bytes());
    id
}

fn request(first: u64, base_ns: u64) -> Vec<u8> {
    let mut spans = Vec::new();
    for number in first..first + TRACES_PER_REQUEST {
        let id = trace_id(number);
        for index in 0..SPANS_PER_TRACE {
            let mut span_id = (number << 8 | index).to_be_bytes().to_vec();
            span_id[0] = 0x11;
            spans.push(Span {
                trace_id: id.to_vec(),
                span_id,
                name: format!("op-{index}"),
                kind: 2,
                start_time_unix_nano: base_ns + number * 1_000_000 + index,
                end_time_unix_nano: base_ns + number * 1_000_000 + 5_000_000,
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("churn".into())),
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
    }
    .encode_to_vec()
}

/// How many files named `name` lie under `folder`.
fn count_files(folder: &std::path::Path, name: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                count_files(&path, name)
            } else {
                usize::from(path.file_name().is_some_and(|file| file == name))
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_over_a_changing_bucket_see_every_trace_once() {
    // Traces complete quickly and are cut into many small blocks, which the compactor keeps
    // merging; flushed traces leave memory soon after their block is written.
    let vivace = Vivace::start(
        "ingester:\n  trace_idle_period: 200ms\n  flush_check_period: 100ms\n  max_block_bytes: 20000\n  complete_block_timeout: 300ms\n  max_block_duration: 1s\ncompactor:\n  compaction_cycle: 300ms\n  compacted_block_retention: 1h\n",
    );
    let client = reqwest::Client::new();
    let base_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 60_000_000_000;
    for chunk in 0..REQUESTS {
        let response = client
            .post(format!("{}/v1/traces", vivace.otlp_http_url()))
            .header("Content-Type", "application/x-protobuf")
            .body(request(chunk * TRACES_PER_REQUEST, base_ns))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let start = base_ns / 1_000_000_000 - 10;
    let end = base_ns / 1_000_000_000 + 120;
    let search = reqwest::Url::parse_with_params(
        &vivace.url("/api/search"),
        &[
            ("q", "{ resource.service.name = \"churn\" }".to_string()),
            ("limit", (TRACES * 2).to_string()),
            ("spss", "1".to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
        ],
    )
    .unwrap();
    let metrics = reqwest::Url::parse_with_params(
        &vivace.url("/api/metrics/query"),
        &[
            (
                "q",
                "{ resource.service.name = \"churn\" } | count_over_time()".to_string(),
            ),
            ("start", start.to_string()),
            ("end", end.to_string()),
        ],
    )
    .unwrap();

    let started = Instant::now();
    let mut rounds = 0;
    let mut saw_blocks = false;
    let mut saw_compaction = false;
    // Complete traces sealed into head segments, read as columns until their block is written.
    let mut saw_segments = false;
    while rounds < ROUNDS || !(saw_blocks && saw_compaction && saw_segments) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no head segment, block cut or compaction seen in 120 s (segments {saw_segments}, \
             blocks {saw_blocks}, compaction {saw_compaction})"
        );
        let (search_answer, metrics_answer) = tokio::join!(
            client.get(search.clone()).send(),
            client.get(metrics.clone()).send()
        );
        let body: Value = search_answer.unwrap().json().await.unwrap();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for trace in body["traces"].as_array().unwrap() {
            *seen
                .entry(trace["traceID"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let duplicated: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
        assert!(
            duplicated.is_empty(),
            "round {rounds}: duplicated {duplicated:?}"
        );
        assert_eq!(
            seen.len() as u64,
            TRACES,
            "round {rounds}: search found {} of {TRACES} traces",
            seen.len()
        );
        let body: Value = metrics_answer.unwrap().json().await.unwrap();
        let counted: f64 = body["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| series["value"].as_f64().unwrap())
            .sum();
        assert_eq!(
            counted,
            (TRACES * SPANS_PER_TRACE) as f64,
            "round {rounds}: metrics counted {counted} spans: {body}"
        );
        saw_segments |= head_segments_built(&client, &vivace).await > 0;
        saw_blocks |= count_files(&vivace.data, "meta.json") > 0;
        saw_compaction |= count_files(&vivace.data, "meta.compacted.json") > 0;
        rounds += 1;
    }
    assert!(rounds >= ROUNDS);
}

/// `vivace_ingester_head_segments_built_total` from `/metrics`.
async fn head_segments_built(client: &reqwest::Client, vivace: &Vivace) -> u64 {
    let text = client
        .get(vivace.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    common::sample_value(&text, "vivace_ingester_head_segments_built_total")
        .expect("/metrics has vivace_ingester_head_segments_built_total") as u64
}
