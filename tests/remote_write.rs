//! The generator's Prometheus remote write against a real Prometheus 2.42 (Debian's
//! `/usr/bin/prometheus`) with the remote-write receiver and exemplar storage on: span metrics,
//! service graphs and a latency quantile are queryable, and the stored exemplars' trace IDs
//! resolve through vivace's trace-by-ID API.
//! Also: Prometheus scraping `/metrics` (OpenMetrics) every second stores exemplars that
//! resolve the same way; and with the remote-write target down, ingest is unaffected, memory
//! stays bounded, and the metrics arrive once Prometheus starts on the target port.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::prometheus::Prometheus;
use common::Vivace;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message;
use vivace::model::string_attribute as attribute;

fn resource_spans(service: &str, span: Span) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![attribute("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A frontend client span and the checkout server span it called, in one trace.
async fn send_call(client: &reqwest::Client, vivace: &Vivace, trace_id: &[u8]) {
    let status = try_send_call(client, vivace, trace_id).await;
    assert_eq!(status, 200);
}

/// Sends the call of [`send_call`] and returns the HTTP status.
async fn try_send_call(client: &reqwest::Client, vivace: &Vivace, trace_id: &[u8]) -> u16 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let client_span = Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![1; 8],
        name: "GET /checkout".into(),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: now - 400_000_000,
        end_time_unix_nano: now - 50_000_000,
        ..Default::default()
    };
    let server_span = Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![2; 8],
        parent_span_id: vec![1; 8],
        name: "GET /checkout".into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: now - 390_000_000,
        end_time_unix_nano: now - 60_000_000,
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("frontend", client_span),
            resource_spans("checkout", server_span),
        ],
    };
    let response = client
        .post(format!("{}/v1/traces", vivace.otlp_http_url()))
        .header("Content-Type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// Polls `query` until it equals `expected`.
async fn wait_for(
    client: &reqwest::Client,
    prometheus: &Prometheus,
    vivace: &Vivace,
    query: &str,
    expected: f64,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = prometheus.query(client, query).await;
        if value == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{query} = {value:?}, expected {expected} within 30s\nprometheus:\n{}\nvivace:\n{}",
            prometheus.log(),
            vivace.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_receives_span_metrics_service_graphs_and_exemplars() {
    let prometheus = Prometheus::start();
    let write_url = prometheus.url("/api/v1/write");
    let vivace = Vivace::start(&format!(
        "metrics_generator:\n  remote_write_interval: 1s\n  remote_write:\n    - url: {write_url}\n      headers:\n        X-Scope-OrgID: test\n"
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let first: Vec<u8> = vec![0xa1; 16];
    let second: Vec<u8> = vec![0xb2; 16];

    send_call(&client, &vivace, &first).await;
    wait_for(
        &client,
        &prometheus,
        &vivace,
        "sum(traces_spanmetrics_calls_total)",
        2.0,
    )
    .await;
    wait_for(
        &client,
        &prometheus,
        &vivace,
        r#"sum(traces_service_graph_request_total{client="frontend",server="checkout"})"#,
        1.0,
    )
    .await;

    // A second call after Prometheus holds the first values, so rate() sees an increase.
    send_call(&client, &vivace, &second).await;
    wait_for(
        &client,
        &prometheus,
        &vivace,
        r#"sum(traces_spanmetrics_calls_total{service="checkout",span_kind="SPAN_KIND_SERVER"})"#,
        2.0,
    )
    .await;
    wait_for(
        &client,
        &prometheus,
        &vivace,
        "sum(traces_spanmetrics_calls_total)",
        4.0,
    )
    .await;
    wait_for(
        &client,
        &prometheus,
        &vivace,
        r#"sum(traces_service_graph_request_total{client="frontend",server="checkout"})"#,
        2.0,
    )
    .await;

    let quantile_query =
        "histogram_quantile(0.5, sum by (le) (rate(traces_spanmetrics_latency_bucket[1m])))";
    let deadline = Instant::now() + Duration::from_secs(30);
    let quantile = loop {
        match prometheus.query(&client, quantile_query).await {
            Some(value) if value.is_finite() => break value,
            value => assert!(
                Instant::now() < deadline,
                "{quantile_query} = {value:?} after 30s"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Both calls took 330-350 ms: the 0.256-0.512 bucket.
    assert!((0.256..=0.512).contains(&quantile), "{quantile}");

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expected: Vec<String> = [&first, &second].iter().map(hex::encode).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let trace_ids = loop {
        let url = reqwest::Url::parse_with_params(
            &prometheus.url("/api/v1/query_exemplars"),
            [
                ("query", "traces_spanmetrics_latency_bucket"),
                ("start", &(now - 600).to_string()),
                ("end", &(now + 600).to_string()),
            ],
        )
        .unwrap();
        let body: serde_json::Value = client.get(url).send().await.unwrap().json().await.unwrap();
        let mut trace_ids: Vec<String> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
            .filter_map(|exemplar| exemplar["labels"]["traceID"].as_str())
            .map(str::to_string)
            .collect();
        trace_ids.sort();
        trace_ids.dedup();
        if trace_ids.len() == 2 {
            break trace_ids;
        }
        assert!(
            Instant::now() < deadline,
            "exemplars after 30s: {body}\nprometheus:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(trace_ids, expected);
    for trace_id in &trace_ids {
        let response = client
            .get(vivace.url(&format!("/api/v2/traces/{trace_id:0>32}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            200,
            "trace {trace_id} not found"
        );
        let trace: serde_json::Value = response.json().await.unwrap();
        assert_eq!(common::canonical_spans(&trace["trace"]).len(), 2, "{trace}");
    }

    // The sender's own counters: samples sent, none refused.
    let metrics = client
        .get(vivace.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |outcome: &str| -> f64 {
        let series = format!(
            "vivace_generator_remote_write_samples_total{{url=\"{write_url}\",outcome=\"{outcome}\"}}"
        );
        common::sample_value(&metrics, &series)
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert!(counter("sent") > 0.0, "{metrics}");
    assert_eq!(counter("failed"), 0.0, "{metrics}");
    assert_eq!(counter("dropped"), 0.0, "{metrics}");
}

/// Distinct `traceID` labels of the exemplars Prometheus holds for the latency histogram over
/// the last and next ten minutes, with the response body.
async fn exemplar_trace_ids(
    client: &reqwest::Client,
    prometheus: &Prometheus,
) -> (Vec<String>, serde_json::Value) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let url = reqwest::Url::parse_with_params(
        &prometheus.url("/api/v1/query_exemplars"),
        [
            ("query", "traces_spanmetrics_latency_bucket"),
            ("start", &(now - 600).to_string()),
            ("end", &(now + 600).to_string()),
        ],
    )
    .unwrap();
    let body: serde_json::Value = match client.get(url).send().await {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let mut trace_ids: Vec<String> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
        .filter_map(|exemplar| exemplar["labels"]["traceID"].as_str())
        .map(str::to_string)
        .collect();
    trace_ids.sort();
    trace_ids.dedup();
    (trace_ids, body)
}

/// Asserts that vivace's trace-by-ID API returns the two spans of `trace_id`.
async fn assert_trace_resolves(client: &reqwest::Client, vivace: &Vivace, trace_id: &str) {
    let response = client
        .get(vivace.url(&format!("/api/v2/traces/{trace_id:0>32}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "trace {trace_id} not found"
    );
    let trace: serde_json::Value = response.json().await.unwrap();
    assert_eq!(common::canonical_spans(&trace["trace"]).len(), 2, "{trace}");
}

/// The value of `vivace_generator_remote_write_samples_total` for `url` and `outcome` on
/// vivace's `/metrics`, or `None` when the series is absent.
async fn remote_write_samples(
    client: &reqwest::Client,
    vivace: &Vivace,
    url: &str,
    outcome: &str,
) -> Option<f64> {
    let metrics = client
        .get(vivace.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!(
        "vivace_generator_remote_write_samples_total{{url=\"{url}\",outcome=\"{outcome}\"}}"
    );
    common::sample_value(&metrics, &series)
}

/// Resident set size of a process in kilobytes, from `/proc/<pid>/status`.
fn vm_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in\n{status}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrape_stores_exemplars_that_resolve_to_traces() {
    let vivace = Vivace::start("");
    let prometheus = Prometheus::start_on(
        common::free_port(),
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
scrape_configs:\n  - job_name: vivace\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            vivace.ports.http
        ),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let first: Vec<u8> = vec![0xc3; 16];
    let second: Vec<u8> = vec![0xd4; 16];
    // A bucket exposes only its latest exemplar, so each call is sent once Prometheus has
    // scraped the exemplar of the one before; Prometheus keeps both.
    let mut expected: Vec<String> = Vec::new();
    let mut trace_ids = Vec::new();
    for (calls, trace_id) in [&first, &second].into_iter().enumerate() {
        send_call(&client, &vivace, trace_id).await;
        expected.push(hex::encode(trace_id));
        wait_for(
            &client,
            &prometheus,
            &vivace,
            "sum(traces_spanmetrics_calls_total)",
            2.0 * (calls + 1) as f64,
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        trace_ids = loop {
            let (trace_ids, body) = exemplar_trace_ids(&client, &prometheus).await;
            if expected.iter().all(|id| trace_ids.contains(id)) {
                break trace_ids;
            }
            assert!(
                Instant::now() < deadline,
                "exemplars after 30s: {body}\nprometheus:\n{}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
    }
    assert_eq!(trace_ids, expected);
    for trace_id in &trace_ids {
        assert_trace_resolves(&client, &vivace, trace_id).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_write_survives_prometheus_down_then_delivers_when_it_is_back() {
    // Nothing listens on this port until Prometheus starts on it below.
    let port = common::free_port();
    let write_url = format!("http://127.0.0.1:{port}/api/v1/write");
    let vivace = Vivace::start(&format!(
        "metrics_generator:\n  remote_write_interval: 1s\n  remote_write_queue_size: 5\n  remote_write:\n    - url: {write_url}\n"
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let rss_before = vm_rss_kb(vivace.child.id());

    // Five calls over about five seconds while the target refuses connections.
    let trace_ids: Vec<Vec<u8>> = (0..5u8).map(|i| vec![0xe0 + i; 16]).collect();
    for trace_id in &trace_ids {
        let started = Instant::now();
        let status = try_send_call(&client, &vivace, trace_id).await;
        assert_eq!(status, 200, "ingest refused while Prometheus is down");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "ingest slowed to {:?} while Prometheus is down",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for trace_id in &trace_ids {
        assert_trace_resolves(&client, &vivace, &hex::encode(trace_id)).await;
    }
    let sent = remote_write_samples(&client, &vivace, &write_url, "sent").await;
    assert!(
        sent.is_none() || sent == Some(0.0),
        "samples sent with nothing listening: {sent:?}"
    );
    let rss_after = vm_rss_kb(vivace.child.id());
    assert!(
        rss_after < 300 * 1024,
        "vivace RSS {rss_after} kB (was {rss_before} kB) with the target down"
    );

    let prometheus = Prometheus::start_on(port, "global:\n  scrape_interval: 15s\n");
    wait_for(
        &client,
        &prometheus,
        &vivace,
        "sum(traces_spanmetrics_calls_total)",
        2.0 * trace_ids.len() as f64,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = remote_write_samples(&client, &vivace, &write_url, "sent").await;
        if sent.is_some_and(|sent| sent > 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sent counter {sent:?} after 30s\nvivace:\n{}",
            vivace.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
