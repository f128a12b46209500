//! The metrics-generator end to end: spans over OTLP/HTTP, a scrape of `/metrics` as Prometheus
//! 2.42 asks for it (OpenMetrics), span-metric and service-graph series with exemplars whose
//! trace IDs resolve through Tempo's trace-by-ID API.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Vivace;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message;
use vivace::model::string_attribute as attribute;

/// The `Accept` header Prometheus 2.42 sends (reference/metrics-generator.md §5).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![attribute("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Finds `traceID="…"` exemplars on lines starting with `prefix`.
fn exemplar_trace_ids(body: &str, prefix: &str) -> Vec<String> {
    body.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.split_once(" # {traceID=\"").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once('"').map(|(id, _)| id.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scrape_finds_span_metrics_and_service_graph_with_exemplars() {
    let vivace = Vivace::start("");
    let client = reqwest::Client::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let trace_id: Vec<u8> = (1..=16).collect();
    let frontend_span = Span {
        trace_id: trace_id.clone(),
        span_id: vec![1, 1, 1, 1, 1, 1, 1, 1],
        name: "GET /checkout".into(),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: now - 400_000_000,
        end_time_unix_nano: now - 50_000_000,
        ..Default::default()
    };
    let checkout_span = Span {
        trace_id: trace_id.clone(),
        span_id: vec![2, 2, 2, 2, 2, 2, 2, 2],
        parent_span_id: vec![1, 1, 1, 1, 1, 1, 1, 1],
        name: "GET /checkout".into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: now - 390_000_000,
        end_time_unix_nano: now - 60_000_000,
        ..Default::default()
    };
    let database_span = Span {
        trace_id: trace_id.clone(),
        span_id: vec![3, 3, 3, 3, 3, 3, 3, 3],
        parent_span_id: vec![2, 2, 2, 2, 2, 2, 2, 2],
        name: "SELECT orders".into(),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: now - 300_000_000,
        end_time_unix_nano: now - 280_000_000,
        attributes: vec![
            attribute("db.system", "postgresql"),
            attribute("server.address", "orders-db"),
        ],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("frontend", vec![frontend_span]),
            resource_spans("checkout", vec![checkout_span, database_span]),
        ],
    };
    let response = client
        .post(format!("{}/v1/traces", vivace.otlp_http_url()))
        .header("Content-Type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // The generator works off the write path; poll until its series appear.
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let response = client
            .get(vivace.url("/metrics"))
            .header("Accept", PROMETHEUS_ACCEPT)
            .send()
            .await
            .unwrap();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.text().await.unwrap();
        if body.contains("traces_service_graph_request_total{client=\"checkout\"") {
            assert!(
                content_type.starts_with("application/openmetrics-text; version=1.0.0"),
                "{content_type}"
            );
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "generator series missing after 20s:\n{body}\nlog:\n{}",
            vivace.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.ends_with("# EOF\n"), "{body}");
    // The appliance's own metrics are in the same scrape, named as OpenMetrics wants.
    assert!(
        body.contains("# TYPE tempo_distributor_spans_received counter"),
        "{body}"
    );
    assert!(
        body.contains("tempo_metrics_generator_spans_received_total 3"),
        "{body}"
    );
    for line in [
        "traces_spanmetrics_calls_total{service=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"GET /checkout\",status_code=\"STATUS_CODE_UNSET\"} 1",
        "traces_spanmetrics_calls_total{service=\"frontend\",span_kind=\"SPAN_KIND_CLIENT\",span_name=\"GET /checkout\",status_code=\"STATUS_CODE_UNSET\"} 1",
        "traces_service_graph_request_total{client=\"frontend\",server=\"checkout\"} 1",
        "traces_service_graph_request_total{client=\"checkout\",connection_type=\"database\",server=\"orders-db\"} 1",
    ] {
        assert!(body.lines().any(|candidate| candidate == line), "missing {line} in\n{body}");
    }

    let span_exemplars = exemplar_trace_ids(&body, "traces_spanmetrics_latency_bucket{");
    let graph_exemplars =
        exemplar_trace_ids(&body, "traces_service_graph_request_server_seconds_bucket{");
    assert_eq!(span_exemplars.len(), 3, "{body}");
    assert_eq!(graph_exemplars.len(), 2, "{body}");
    let expected = hex::encode(&trace_id);
    for exemplar in span_exemplars.iter().chain(&graph_exemplars) {
        // Tempo drops leading zeros; a lookup left-pads to 32 digits.
        let padded = format!("{exemplar:0>32}");
        assert_eq!(padded, expected);
        let response = client
            .get(vivace.url(&format!("/api/v2/traces/{padded}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "trace {padded} not found");
        let trace: serde_json::Value = response.json().await.unwrap();
        let spans = common::canonical_spans(&trace["trace"]);
        assert_eq!(spans.len(), 3, "{trace}");
    }

    // A classic scrape gets the 0.0.4 text without exemplars.
    let classic = client
        .get(vivace.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        classic.contains("traces_spanmetrics_calls_total{"),
        "{classic}"
    );
    assert!(!classic.contains(" # {"), "{classic}");
    assert!(!classic.contains("# EOF"), "{classic}");
}
