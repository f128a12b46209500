//! Searches and TraceQL metrics queries that run while the ingester cuts blocks and the
//! compactor merges them never miss or duplicate a trace: every answer holds each pushed
//! trace exactly once and counts each of its spans once, whether the trace is in memory, in
//! a block being written, in a block being compacted or in the merged block. The same holds
//! while live traces are copied into live segments and then receive more spans.

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
    request_spans(first, base_ns, 0..SPANS_PER_TRACE)
}

/// Spans `indexes` of each of the request's traces.
fn request_spans(first: u64, base_ns: u64, indexes: std::ops::Range<u64>) -> Vec<u8> {
    let mut spans = Vec::new();
    for number in first..first + TRACES_PER_REQUEST {
        let id = trace_id(number);
        for index in indexes.clone() {
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
    let (_, search, metrics) = push_churn(&vivace, &client).await;

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
        let (found, counted) = found_and_counted(&client, &search, &metrics).await;
        assert_eq!(
            found, TRACES,
            "round {rounds}: search found {found} of {TRACES} traces"
        );
        assert_eq!(
            counted,
            (TRACES * SPANS_PER_TRACE) as f64,
            "round {rounds}: metrics counted {counted} spans"
        );
        saw_segments |= counter(
            &client,
            &vivace,
            "vivace_ingester_head_segments_built_total",
        )
        .await
            > 0;
        saw_blocks |= count_files(&vivace.data, "meta.json") > 0;
        saw_compaction |= count_files(&vivace.data, "meta.compacted.json") > 0;
        rounds += 1;
    }
    assert!(rounds >= ROUNDS);
}

/// A sample of vivace's own `/metrics`.
async fn counter(client: &reqwest::Client, vivace: &Vivace, name: &str) -> u64 {
    let text = client
        .get(vivace.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    common::sample_value(&text, name).unwrap_or_else(|| panic!("/metrics has {name}")) as u64
}

/// Pushes the `churn` traces, a minute old; answers their base time and the URLs of a search
/// and a metrics query over them.
async fn push_churn(
    vivace: &Vivace,
    client: &reqwest::Client,
) -> (u64, reqwest::Url, reqwest::Url) {
    let base_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 60_000_000_000;
    for chunk in 0..REQUESTS {
        let body = request(chunk * TRACES_PER_REQUEST, base_ns);
        vivace.push_otlp(client, body).await;
    }
    let (search, metrics) = churn_queries(vivace, base_ns);
    (base_ns, search, metrics)
}

/// Search and metrics URLs for the `churn` traces around `base_ns`.
fn churn_queries(vivace: &Vivace, base_ns: u64) -> (reqwest::Url, reqwest::Url) {
    let start = (base_ns / 1_000_000_000 - 10).to_string();
    let end = (base_ns / 1_000_000_000 + 120).to_string();
    let search = reqwest::Url::parse_with_params(
        &vivace.url("/api/search"),
        &[
            ("q", "{ resource.service.name = \"churn\" }"),
            ("limit", &(TRACES * 2).to_string()),
            ("spss", "1"),
            ("start", &start),
            ("end", &end),
        ],
    )
    .unwrap();
    let metrics = reqwest::Url::parse_with_params(
        &vivace.url("/api/metrics/query"),
        &[
            (
                "q",
                "{ resource.service.name = \"churn\" } | count_over_time()",
            ),
            ("start", &start),
            ("end", &end),
        ],
    )
    .unwrap();
    (search, metrics)
}

/// How many distinct traces a search found (asserting none twice) and how many spans the
/// metrics query counted.
async fn found_and_counted(
    client: &reqwest::Client,
    search: &reqwest::Url,
    metrics: &reqwest::Url,
) -> (u64, f64) {
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
    assert!(duplicated.is_empty(), "duplicated {duplicated:?}");
    let body: Value = metrics_answer.unwrap().json().await.unwrap();
    let counted: f64 = body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| series["value"].as_f64().unwrap())
        .sum();
    (seen.len() as u64, counted)
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_see_live_traces_once_while_they_are_copied_into_live_segments() {
    // Traces stay live for a minute: queries read them whole until they are quiet for a
    // second, then from live segments; more spans for half of them make those rows stale.
    let vivace =
        Vivace::start("ingester:\n  trace_idle_period: 60s\n  flush_check_period: 100ms\n");
    let client = reqwest::Client::new();
    let (base_ns, search, metrics) = push_churn(&vivace, &client).await;
    let built = "vivace_ingester_head_live_segments_built_total";
    let mut expected_spans = TRACES * SPANS_PER_TRACE;
    let started = Instant::now();
    let mut rounds = 0;
    // Phase 0: until live segments are built; 1: after more spans for half the traces, until
    // they are copied again; then a last round.
    let mut phase = 0;
    let mut built_before_more = 0;
    while phase < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "phase {phase}: live segments built {} in 60 s",
            counter(&client, &vivace, built).await
        );
        let (found, counted) = found_and_counted(&client, &search, &metrics).await;
        assert_eq!(found, TRACES, "round {rounds}: search found {found} traces");
        assert_eq!(
            counted, expected_spans as f64,
            "round {rounds}: metrics counted {counted} spans"
        );
        rounds += 1;
        let live_segments_built = counter(&client, &vivace, built).await;
        if phase == 0 && live_segments_built > 0 {
            assert_eq!(
                counter(&client, &vivace, "vivace_ingester_live_traces").await,
                TRACES,
                "every trace is still live"
            );
            for chunk in (0..REQUESTS).step_by(2) {
                let more = SPANS_PER_TRACE..SPANS_PER_TRACE + 2;
                let body = request_spans(chunk * TRACES_PER_REQUEST, base_ns, more);
                vivace.push_otlp(&client, body).await;
            }
            expected_spans += REQUESTS.div_ceil(2) * TRACES_PER_REQUEST * 2;
            built_before_more = counter(&client, &vivace, built).await;
            phase = 1;
        } else if phase == 1 && live_segments_built > built_before_more {
            phase = 2;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (found, counted) = found_and_counted(&client, &search, &metrics).await;
    assert_eq!(found, TRACES);
    assert_eq!(counted, expected_spans as f64);
    assert!(rounds >= 3, "{rounds} rounds");
}
