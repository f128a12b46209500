//! An application's own metrics over OTLP, end to end: the OpenTelemetry Python SDK sends
//! traces and metrics (counter, up-down counter, histogram with exemplars from active spans,
//! observable gauge) to vivace over OTLP/HTTP and OTLP/gRPC; a real Prometheus 2.42
//! (`/usr/bin/prometheus`, remote-write receiver and exemplar storage on) then answers PromQL
//! with the converted names, values and label sets, and its exemplars' trace IDs resolve on
//! vivace. Also: malformed metric payloads get clear errors on every transport, and with
//! Prometheus down trace ingest goes on.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::prometheus::Prometheus;
use common::Vivace;
use serde_json::Value;

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls `query` until its one series has `expected` as value; returns that series' labels.
async fn wait_for(
    client: &reqwest::Client,
    prometheus: &Prometheus,
    vivace: &Vivace,
    query: &str,
    expected: f64,
) -> serde_json::Map<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let result = prometheus.query_series(client, query).await;
        let value = result.first().and_then(|series| {
            series["value"][1]
                .as_str()
                .and_then(|text| text.parse::<f64>().ok())
        });
        if result.len() == 1 && value == Some(expected) {
            return result[0]["metric"].as_object().cloned().unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "{query} = {result:?}, expected one series = {expected} within 30s\nprometheus:\n{}\nvivace:\n{}",
            prometheus.log(),
            vivace.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn labels(pairs: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), Value::String(value.to_string())))
        .collect()
}

/// Runs the Python application against vivace; returns the histogram spans' trace IDs.
fn run_application(protocol: &str, endpoint: &str, service: &str) -> Vec<String> {
    let output = common::run_python(
        "otel_metrics.py",
        &[
            "--protocol",
            protocol,
            "--endpoint",
            endpoint,
            "--service",
            service,
        ],
    );
    let parsed: Value = serde_json::from_str(output.trim()).expect("client output is JSON");
    let mut ids: Vec<String> = parsed["trace_ids"]
        .as_array()
        .expect("trace_ids")
        .iter()
        .filter_map(|id| id.as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Checks one application's series in Prometheus and that its exemplars open its traces.
async fn check_application(
    client: &reqwest::Client,
    prometheus: &Prometheus,
    vivace: &Vivace,
    service: &str,
    trace_ids: &[String],
) {
    let job = format!("shop/{service}");
    let instance = format!("{service}-1");
    let scope = [
        ("job", job.as_str()),
        ("instance", instance.as_str()),
        ("otel_scope_name", "checkout-app"),
        ("otel_scope_version", "1.2.3"),
    ];
    let with_scope = |name: &str, extra: &[(&str, &str)]| {
        let mut all = vec![("__name__", name)];
        all.extend_from_slice(&scope);
        all.extend_from_slice(extra);
        labels(&all)
    };
    let selector = format!("{{job=\"{job}\"}}");

    // Counter: unit annotation dropped, `_total` added; value 3 + 2.
    let series = wait_for(
        client,
        prometheus,
        vivace,
        &format!("app_orders_total{selector}"),
        5.0,
    )
    .await;
    assert_eq!(
        series,
        with_scope("app_orders_total", &[("method", "card")])
    );
    // Up-down counter: a gauge, 10 - 4.
    let series = wait_for(
        client,
        prometheus,
        vivace,
        &format!("app_queue_depth{selector}"),
        6.0,
    )
    .await;
    assert_eq!(series, with_scope("app_queue_depth", &[]));
    // Observable gauge with its unit word.
    let series = wait_for(
        client,
        prometheus,
        vivace,
        &format!("app_temperature_celsius{selector}"),
        21.5,
    )
    .await;
    assert_eq!(
        series,
        with_scope("app_temperature_celsius", &[("room", "server")])
    );
    // Histogram: classic buckets at the SDK's default bounds, `_sum`, `_count`.
    let histogram = "app_request_duration_milliseconds";
    wait_for(
        client,
        prometheus,
        vivace,
        &format!("{histogram}_count{selector}"),
        3.0,
    )
    .await;
    wait_for(
        client,
        prometheus,
        vivace,
        &format!("{histogram}_sum{selector}"),
        837.0,
    )
    .await;
    let series = wait_for(
        client,
        prometheus,
        vivace,
        &format!("{histogram}_bucket{{job=\"{job}\",le=\"10\"}}"),
        1.0,
    )
    .await;
    assert_eq!(
        series,
        with_scope(
            &format!("{histogram}_bucket"),
            &[("le", "10"), ("route", "/checkout")]
        )
    );
    wait_for(
        client,
        prometheus,
        vivace,
        &format!("{histogram}_bucket{{job=\"{job}\",le=\"50\"}}"),
        2.0,
    )
    .await;
    wait_for(
        client,
        prometheus,
        vivace,
        &format!("{histogram}_bucket{{job=\"{job}\",le=\"+Inf\"}}"),
        3.0,
    )
    .await;
    let quantile = prometheus
        .query_series(
            client,
            &format!("histogram_quantile(0.5, {histogram}_bucket{selector})"),
        )
        .await;
    assert_eq!(quantile.len(), 1, "{quantile:?}");
    // Resource attributes other than the service's identity go to target_info.
    let series = wait_for(
        client,
        prometheus,
        vivace,
        &format!("target_info{selector}"),
        1.0,
    )
    .await;
    assert_eq!(series["deployment_environment"], "test", "{series:?}");
    assert_eq!(series["telemetry_sdk_language"], "python", "{series:?}");
    assert_eq!(series["instance"], instance.as_str(), "{series:?}");
    assert!(!series.contains_key("service_name"), "{series:?}");

    // The histogram's exemplars carry the trace and span IDs of the application's spans...
    let deadline = Instant::now() + Duration::from_secs(30);
    let exemplar_ids = loop {
        let now = now_s();
        let url = reqwest::Url::parse_with_params(
            &prometheus.url("/api/v1/query_exemplars"),
            [
                ("query", format!("{histogram}_bucket{selector}")),
                ("start", (now - 600).to_string()),
                ("end", (now + 600).to_string()),
            ],
        )
        .unwrap();
        let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        let exemplars: Vec<&Value> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
            .collect();
        let mut ids: Vec<String> = exemplars
            .iter()
            .filter_map(|exemplar| exemplar["labels"]["trace_id"].as_str())
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        if ids.len() == trace_ids.len() {
            for exemplar in &exemplars {
                let span_id = exemplar["labels"]["span_id"].as_str().unwrap_or_default();
                assert_eq!(span_id.len(), 16, "{exemplar}");
            }
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "exemplars after 30s: {body}\nprometheus:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(exemplar_ids, trace_ids);
    // ...which resolve on vivace.
    for trace_id in &exemplar_ids {
        let response = client
            .get(vivace.url(&format!("/api/v2/traces/{trace_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "trace {trace_id}");
        let body: Value = response.json().await.unwrap();
        let text = body.to_string();
        assert!(text.contains("GET /checkout"), "{text}");
        assert!(text.contains(service), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_metrics_reach_prometheus_with_exemplars_that_open_traces() {
    let prometheus = Prometheus::start();
    let write_url = prometheus.url("/api/v1/write");
    let vivace = Vivace::start(&format!(
        "metrics_generator:\n  remote_write_interval: 1s\n  remote_write:\n    - url: {write_url}\n  otlp_metrics:\n    scrape_path: /otlp/metrics\n"
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let http_ids = run_application("http", &vivace.otlp_http_url(), "web");
    let grpc_ids = run_application("grpc", &vivace.otlp_grpc_url(), "worker");
    check_application(&client, &prometheus, &vivace, "web", &http_ids).await;
    check_application(&client, &prometheus, &vivace, "worker", &grpc_ids).await;

    // The same series can be scraped from the configured path.
    let (status, text) = common::blocking_get(&vivace.url("/otlp/metrics")).unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE app_orders_total counter\n"), "{text}");
    assert!(
        text.contains(r#"app_orders_total{instance="web-1",job="shop/web",method="card",otel_scope_name="checkout-app",otel_scope_version="1.2.3"} 5"#),
        "{text}"
    );
    // The path's own counters and the shared remote-write counters are on /metrics.
    let (_, own) = common::blocking_get(&vivace.url("/metrics")).unwrap();
    assert!(
        own.contains("vivace_otlp_metrics_data_points_total{outcome=\"accepted\"}"),
        "{own}"
    );
    assert!(
        own.contains("vivace_generator_remote_write_samples_total{url="),
        "{own}"
    );
    assert!(
        !own.contains("app_orders_total"),
        "not on /metrics unless configured"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_json_metrics_are_converted_and_delta_sums_accumulate() {
    let prometheus = Prometheus::start();
    let write_url = prometheus.url("/api/v1/write");
    let vivace = Vivace::start(&format!(
        "metrics_generator:\n  remote_write_interval: 1s\n  remote_write:\n    - url: {write_url}\n  otlp_metrics:\n    scrape_path: /metrics\n"
    ));
    let client = reqwest::Client::new();
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for (offset, value) in [(2_000_000_000u64, 4), (1_000_000_000, 6)] {
        let body = serde_json::json!({"resourceMetrics": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "batch"}}]},
            "scopeMetrics": [{"scope": {"name": "jobs"}, "metrics": [{
                "name": "jobs.done", "unit": "1",
                "sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA", "isMonotonic": true,
                        "dataPoints": [{"timeUnixNano": (now_ns - offset).to_string(), "asInt": value.to_string(),
                                        "attributes": [{"key": "queue", "value": {"stringValue": "q1"}}]}]}
            }]}]
        }]});
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, body.to_string().as_bytes()).unwrap();
        let response = client
            .post(format!("{}/v1/metrics", vivace.otlp_http_url()))
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .body(encoder.finish().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.text().await.unwrap(), "{}");
    }
    let series = wait_for(
        &client,
        &prometheus,
        &vivace,
        r#"jobs_done_total{job="batch"}"#,
        10.0,
    )
    .await;
    assert_eq!(
        series,
        labels(&[
            ("__name__", "jobs_done_total"),
            ("job", "batch"),
            ("otel_scope_name", "jobs"),
            ("queue", "q1")
        ])
    );
    let (_, text) = common::blocking_get(&vivace.url("/metrics")).unwrap();
    assert!(
        text.contains(r#"jobs_done_total{job="batch",otel_scope_name="jobs",queue="q1"} 10"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_metric_payloads_get_clear_errors() {
    let vivace = Vivace::start("");
    let client = reqwest::Client::new();
    let url = format!("{}/v1/metrics", vivace.otlp_http_url());

    let response = client
        .post(&url)
        .header("Content-Type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff, 0x01])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body = response.bytes().await.unwrap();
    let status = <vivace::proto::RpcStatus as prost::Message>::decode(body.as_ref()).unwrap();
    assert_eq!(status.code, tonic::Code::InvalidArgument as i32);
    assert!(
        status
            .message
            .contains("invalid ExportMetricsServiceRequest protobuf"),
        "{}",
        status.message
    );

    let bad_json = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","sum":{"dataPoints":[{"asInt":"many"}]}}]}]}]}"#;
    let response = client
        .post(&url)
        .header("Content-Type", "application/json")
        .body(bad_json)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("$.resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].asInt"),
        "{body}"
    );
    let response = client
        .post(&url)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let response = client
        .post(&url)
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);

    // Semantically invalid points are a partial success naming the reason.
    let invalid = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[{"count":"1","bucketCounts":["1","0","0"],"explicitBounds":[1]}]}}]}]}]}"#;
    let response = client
        .post(&url)
        .header("Content-Type", "application/json")
        .body(invalid)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["partialSuccess"]["rejectedDataPoints"], "1", "{body}");
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("bucket counts"),
        "{body}"
    );

    let channel = tonic::transport::Endpoint::from_shared(vivace.otlp_grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    );
    let status = grpc
        .unary::<_, bytes::Bytes, _>(
            tonic::Request::new(bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0x01])),
            path,
            vivace::receiver::ingest::RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("invalid ExportMetricsServiceRequest protobuf"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_down_does_not_stop_trace_ingest() {
    // Nothing listens on the remote-write port.
    let dead = format!("http://127.0.0.1:{}/api/v1/write", common::free_port());
    let vivace = Vivace::start(&format!(
        "metrics_generator:\n  remote_write_interval: 1s\n  remote_write_queue_size: 2\n  remote_write:\n    - url: {dead}\n"
    ));
    let client = reqwest::Client::new();
    // Several rounds of the application: metrics keep being accepted and queued (bounded),
    // and every trace is stored.
    let mut all_ids = Vec::new();
    for round in 0..3 {
        all_ids.extend(run_application(
            "http",
            &vivace.otlp_http_url(),
            &format!("app{round}"),
        ));
    }
    for trace_id in &all_ids {
        let response = client
            .get(vivace.url(&format!("/api/v2/traces/{trace_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "trace {trace_id}");
    }
    let (_, own) = common::blocking_get(&vivace.url("/metrics")).unwrap();
    let accepted = own
        .lines()
        .find_map(|line| {
            line.strip_prefix("vivace_otlp_metrics_data_points_total{outcome=\"accepted\"} ")
        })
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(accepted >= 12.0, "{own}");
    assert!(
        own.contains("vivace_generator_remote_write_samples_total{url="),
        "{own}"
    );
}
