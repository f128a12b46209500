//! Tail sampling end to end: traces over OTLP/HTTP that fail, are slow, match a drop or keep
//! rule, or are plain (baseline 0); once cut, exactly the kept ones are in the blocks (trace by
//! ID and search), span metrics still count every span, and the sampling counters say why.
//! Late spans of a cut trace follow the trace's first decision.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Vivace;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::Value;
use vivace::model::string_attribute as attribute;

const CONFIG: &str = r#"
ingester:
  trace_idle_period: 500ms
  max_block_duration: 1s
  flush_check_period: 100ms
  complete_block_timeout: 0s
  sampling:
    enabled: true
    keep_errors: true
    latency_threshold: 2s
    baseline_ratio: 0.0
    rules:
      - query: '{ span.http.route = "/health" }'
        ratio: 0.0
      - query: '{ resource.service.name = "vip" }'
        ratio: 1.0
"#;

/// What one test trace looks like.
struct Shape {
    service: &'static str,
    route: &'static str,
    error: bool,
    duration_ms: u64,
    spans: u8,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A trace ID whose first byte is never 0, so its trimmed hex (search answers) is its full hex.
fn trace_id(index: u8) -> Vec<u8> {
    let mut id = vec![0xa0 | (index & 0x0f); 16];
    id[15] = index;
    id
}

/// The spans of `shape`, span IDs starting at `first_span`; the first span carries the
/// route, the error and the whole duration.
fn spans(id: &[u8], shape: &Shape, first_span: u8) -> ResourceSpans {
    let end = now_ns();
    let start = end - shape.duration_ms * 1_000_000;
    let spans = (0..shape.spans)
        .map(|offset| {
            let span_number = first_span + offset;
            let is_first = offset == 0;
            Span {
                trace_id: id.to_vec(),
                span_id: vec![span_number; 8],
                parent_span_id: if is_first && first_span == 1 {
                    Vec::new()
                } else {
                    vec![1; 8]
                },
                name: format!("GET {}", shape.route),
                start_time_unix_nano: if is_first { start } else { end - 1_000_000 },
                end_time_unix_nano: end,
                attributes: vec![attribute("http.route", shape.route)],
                status: (is_first && shape.error).then(|| Status {
                    code: status::StatusCode::Error as i32,
                    message: "boom".into(),
                }),
                ..Default::default()
            }
        })
        .collect();
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![attribute("service.name", shape.service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn send(vivace: &Vivace, resource_spans: Vec<ResourceSpans>) {
    let request = ExportTraceServiceRequest { resource_spans };
    let response = reqwest::Client::new()
        .post(format!("{}/v1/traces", vivace.otlp_http_url()))
        .header("Content-Type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

async fn get(vivace: &Vivace, path: &str) -> (u16, String) {
    let response = reqwest::get(vivace.url(path)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Samples of every series of `name` on `/metrics`, keyed by their label text.
async fn metric_series(vivace: &Vivace, name: &str) -> BTreeMap<String, f64> {
    let (_, body) = get(vivace, "/metrics").await;
    body.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?;
            if !(labels.is_empty() || labels.starts_with('{')) {
                return None;
            }
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn sampling_counter(vivace: &Vivace, name: &str, decision: &str, reason: &str) -> f64 {
    let key = format!("{{decision=\"{decision}\",reason=\"{reason}\"}}");
    metric_series(vivace, name)
        .await
        .get(&key)
        .copied()
        .unwrap_or(0.0)
}

async fn decided_traces(vivace: &Vivace) -> f64 {
    metric_series(vivace, "vivace_sampling_traces_total")
        .await
        .values()
        .sum()
}

/// Polls until `count` trace pieces have been decided and the head holds nothing.
async fn wait_until_decided(vivace: &Vivace, count: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let decided = decided_traces(vivace).await;
        let live = metric_series(vivace, "vivace_ingester_live_traces").await;
        let completed = metric_series(vivace, "vivace_ingester_completed_traces").await;
        let flushing = metric_series(vivace, "vivace_ingester_flushing_traces").await;
        let in_head: f64 = [live, completed, flushing]
            .iter()
            .flat_map(|series| series.values())
            .sum();
        if decided >= count && in_head == 0.0 {
            assert_eq!(decided, count, "more decisions than trace pieces sent");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} trace pieces not decided within 60s ({decided} so far); log:\n{}",
            vivace.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Span count of a stored trace, or `None` on 404.
async fn stored_spans(vivace: &Vivace, id: &[u8]) -> Option<usize> {
    let (status, body) = get(vivace, &format!("/api/v2/traces/{}", hex::encode(id))).await;
    match status {
        404 => None,
        200 => {
            let json: Value = serde_json::from_str(&body).unwrap();
            let count = json["trace"]["resourceSpans"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|batch| batch["scopeSpans"].as_array().unwrap())
                .map(|scope| scope["spans"].as_array().unwrap().len())
                .sum();
            Some(count)
        }
        other => panic!("trace by ID answered {other}: {body}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_sampled_traces_reach_blocks_while_span_metrics_see_every_span() {
    let vivace = Vivace::start(CONFIG);
    let shapes = [
        // (index, shape, kept)
        (
            1,
            Shape {
                service: "shop",
                route: "/checkout",
                error: true,
                duration_ms: 10,
                spans: 2,
            },
            true,
        ),
        (
            2,
            Shape {
                service: "shop",
                route: "/search",
                error: false,
                duration_ms: 3000,
                spans: 2,
            },
            true,
        ),
        // A failing health check: the drop rule comes before keep_errors.
        (
            3,
            Shape {
                service: "shop",
                route: "/health",
                error: true,
                duration_ms: 10,
                spans: 2,
            },
            false,
        ),
        (
            4,
            Shape {
                service: "vip",
                route: "/cart",
                error: false,
                duration_ms: 10,
                spans: 2,
            },
            true,
        ),
        (
            5,
            Shape {
                service: "shop",
                route: "/cart",
                error: false,
                duration_ms: 10,
                spans: 2,
            },
            false,
        ),
        (
            6,
            Shape {
                service: "shop",
                route: "/cart",
                error: false,
                duration_ms: 1999,
                spans: 3,
            },
            false,
        ),
        (
            7,
            Shape {
                service: "shop",
                route: "/pay",
                error: true,
                duration_ms: 5,
                spans: 1,
            },
            true,
        ),
        (
            8,
            Shape {
                service: "shop",
                route: "/pay",
                error: false,
                duration_ms: 5,
                spans: 1,
            },
            false,
        ),
    ];
    let batches = shapes
        .iter()
        .map(|(index, shape, _)| spans(&trace_id(*index), shape, 1))
        .collect();
    send(&vivace, batches).await;
    let mut spans_sent: usize = shapes
        .iter()
        .map(|(_, shape, _)| shape.spans as usize)
        .sum();
    wait_until_decided(&vivace, shapes.len() as f64).await;

    // Late spans, each after its trace was cut: 7 was kept for an error and keeps its plain
    // late span; 8 was dropped by the baseline and drops its late span despite its error.
    let late_plain = Shape {
        service: "shop",
        route: "/pay",
        error: false,
        duration_ms: 1,
        spans: 1,
    };
    let late_error = Shape {
        error: true,
        ..late_plain
    };
    send(
        &vivace,
        vec![
            spans(&trace_id(7), &late_plain, 9),
            spans(&trace_id(8), &late_error, 9),
        ],
    )
    .await;
    spans_sent += 2;
    wait_until_decided(&vivace, shapes.len() as f64 + 2.0).await;

    for (index, shape, kept) in &shapes {
        let expected_spans = shape.spans as usize + usize::from(*index == 7);
        let stored = stored_spans(&vivace, &trace_id(*index)).await;
        assert_eq!(
            stored,
            kept.then_some(expected_spans),
            "trace {index} ({} {})",
            shape.service,
            shape.route
        );
    }
    // With a window, search reads the blocks (without one, only the head).
    let now_s = now_ns() / 1_000_000_000;
    let search = format!(
        "/api/search?q=%7B%7D&limit=100&start={}&end={}",
        now_s - 3600,
        now_s + 60
    );
    let (status, body) = get(&vivace, &search).await;
    assert_eq!(status, 200, "{body}");
    let found: BTreeSet<String> = serde_json::from_str::<Value>(&body).unwrap()["traces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|trace| trace["traceID"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = shapes
        .iter()
        .filter(|(_, _, kept)| *kept)
        .map(|(index, _, _)| hex::encode(trace_id(*index)))
        .collect();
    assert_eq!(found, expected, "{body}");

    // Span metrics come from the distributor, before sampling: every span counts.
    let calls: f64 = metric_series(&vivace, "traces_spanmetrics_calls_total")
        .await
        .values()
        .sum();
    assert_eq!(calls, spans_sent as f64);

    let expected_traces = [
        ("kept", "error", 3.0),
        ("kept", "latency", 1.0),
        ("kept", "rule", 1.0),
        ("kept", "baseline", 0.0),
        ("dropped", "rule", 1.0),
        ("dropped", "baseline", 4.0),
        ("dropped", "error", 0.0),
        ("dropped", "latency", 0.0),
    ];
    let expected_spans = [
        ("kept", "error", 4.0),
        ("kept", "latency", 2.0),
        ("kept", "rule", 2.0),
        ("dropped", "rule", 2.0),
        ("dropped", "baseline", 7.0),
    ];
    for (decision, reason, count) in expected_traces {
        assert_eq!(
            sampling_counter(&vivace, "vivace_sampling_traces_total", decision, reason).await,
            count,
            "traces {decision} for {reason}"
        );
    }
    for (decision, reason, count) in expected_spans {
        assert_eq!(
            sampling_counter(&vivace, "vivace_sampling_spans_total", decision, reason).await,
            count,
            "spans {decision} for {reason}"
        );
    }
}

#[test]
fn an_invalid_rule_query_stops_startup_naming_the_key() {
    let data = tempfile::tempdir().unwrap();
    let config = common::write_config(
        data.path(),
        common::Ports::pick(),
        "ingester:\n  sampling:\n    enabled: true\n    rules:\n      - query: '{ span.http.route = }'\n        ratio: 0.0\n",
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vivace"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ingester.sampling.rules[0].query: invalid TraceQL query"),
        "{stderr}"
    );
}
