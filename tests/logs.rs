//! Logs end to end with the real binary: the OpenTelemetry Python SDK's logs exporter (OTLP
//! HTTP and gRPC) logging inside spans, and Loki pushes (JSON and snappy protobuf) carrying
//! trace IDs, come back from `/api/logs?traceID=` in order — from the head, after kill -9 and
//! restart, and after the head was flushed to blocks; the Loki query API finds them through
//! selectors and line filters; malformed bodies on every logs endpoint get a clear 4xx or
//! INVALID_ARGUMENT and the server keeps serving.

mod common;

use std::path::Path;
use std::time::Duration;

use prost::Message;
use serde_json::{json, Value};

use common::{run_python, Ports, Vivace};
use vivace::proto::loki as loki_proto;

fn logs_yaml(data: &Path) -> String {
    format!(
        "logs:\n  wal_path: {}\n  row_group_rows: 4\n  loki_listen_port: {}\n",
        data.join("logs-wal").display(),
        common::free_port()
    )
}

fn start() -> Vivace {
    let data = tempfile::Builder::new()
        .prefix("vivace-logs-test-")
        .tempdir()
        .unwrap()
        .keep();
    let yaml = logs_yaml(&data);
    Vivace::start_in(&data, Ports::pick(), &yaml)
}

fn loki_port(vivace: &Vivace) -> u16 {
    let text = &vivace.extra_yaml;
    let line = text
        .lines()
        .find(|line| line.contains("loki_listen_port"))
        .unwrap();
    line.rsplit(' ').next().unwrap().trim().parse().unwrap()
}

async fn get_json(url: &str) -> Value {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{url}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn trace_logs(vivace: &Vivace, trace_id: &str) -> Vec<Value> {
    get_json(&vivace.url(&format!("/api/logs?traceID={trace_id}"))).await["logs"]
        .as_array()
        .unwrap()
        .clone()
}

/// (traceId, spanId, body, severityText) of every record.
fn summary(logs: &[Value]) -> Vec<(String, String, String, String)> {
    logs.iter()
        .map(|log| {
            (
                log["traceId"].as_str().unwrap().to_string(),
                log["spanId"].as_str().unwrap().to_string(),
                log["body"].as_str().unwrap().to_string(),
                log["severityText"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

const LOKI_TRACE: &str = "5b8efff798038103d269b633813fc60c";
const LOKI_PROTO_TRACE: &str = "00000000000000000000000000c0ffee";

async fn loki_json_push(url: &str, base_ns: u64) -> reqwest::StatusCode {
    let body = json!({"streams": [{
        "stream": {"service_name": "loki-json", "level": "info"},
        "values": [
            [(base_ns).to_string(), format!("GET /cart traceID={LOKI_TRACE} status=200")],
            [(base_ns + 1000).to_string(), "second line with metadata", {"trace_id": LOKI_TRACE, "span_id": "eee19b7ec3c1b174"}],
        ]
    }]});
    reqwest::Client::new()
        .post(format!("{url}/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

async fn loki_proto_push(url: &str, base_ns: u64) -> reqwest::StatusCode {
    let request = loki_proto::PushRequest {
        streams: vec![loki_proto::StreamAdapter {
            labels: r#"{service_name="loki-proto", level="error"}"#.into(),
            entries: (0..3)
                .map(|i| loki_proto::EntryAdapter {
                    timestamp: Some(loki_proto::Timestamp {
                        seconds: (base_ns / 1_000_000_000) as i64,
                        nanos: (base_ns % 1_000_000_000) as i32 + i,
                    }),
                    line: format!("payment declined attempt {i}"),
                    structured_metadata: vec![loki_proto::LabelPairAdapter {
                        name: "traceID".into(),
                        value: LOKI_PROTO_TRACE.trim_start_matches('0').into(),
                    }],
                    parsed: vec![],
                })
                .collect(),
            hash: 0,
        }],
    };
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    reqwest::Client::new()
        .post(format!("{url}/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(compressed)
        .send()
        .await
        .unwrap()
        .status()
}

async fn wait_for_blocks(vivace: &Vivace) {
    for _ in 0..200 {
        let metrics = reqwest::get(vivace.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let head = metrics
            .lines()
            .find(|line| line.starts_with("vivace_logs_head_bytes "))
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|value| value.parse::<u64>().ok());
        if head == Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the log head was not flushed; log:\n{}", vivace.log_text());
}

type Expected = Vec<Vec<(String, String, String, String)>>;

async fn check(vivace: &Vivace, expected: &Expected, phase: &str) {
    for trace in expected {
        let logs = trace_logs(vivace, &trace[0].0).await;
        assert_eq!(&summary(&logs), trace, "{phase}");
        assert_eq!(logs[0]["serviceName"], "logs-sdk-test", "{phase}");
        assert_eq!(logs[0]["attributes"]["http.route"], "/pay", "{phase}");
        assert_eq!(logs[3]["severityNumber"], 17, "{phase}");
    }
    let loki = summary(&trace_logs(vivace, LOKI_TRACE).await);
    let bodies: Vec<&str> = loki.iter().map(|row| row.2.as_str()).collect();
    assert_eq!(
        bodies,
        vec![
            format!("GET /cart traceID={LOKI_TRACE} status=200").as_str(),
            "second line with metadata"
        ],
        "{phase}"
    );
    assert_eq!(loki[1].1, "eee19b7ec3c1b174", "{phase}");
    let proto = summary(&trace_logs(vivace, LOKI_PROTO_TRACE).await);
    let bodies: Vec<&str> = proto.iter().map(|row| row.2.as_str()).collect();
    assert_eq!(
        bodies,
        vec![
            "payment declined attempt 0",
            "payment declined attempt 1",
            "payment declined attempt 2"
        ],
        "{phase}"
    );
    assert!(proto.iter().all(|row| row.3 == "error"), "{phase}");
    // Unknown trace: 200 and nothing.
    assert!(trace_logs(vivace, "0123456789abcdef0123456789abcdef")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_and_loki_logs_by_trace_id_through_restart_and_blocks() {
    let mut vivace = start();
    let mut expected: Expected = Vec::new();
    for (protocol, endpoint) in [
        ("http", vivace.otlp_http_url()),
        ("grpc", vivace.otlp_grpc_url()),
    ] {
        let output = run_python(
            "otel_logs.py",
            &[
                "--protocol",
                protocol,
                "--endpoint",
                &endpoint,
                "--traces",
                "3",
                "--lines",
                "4",
            ],
        );
        let sent: Vec<Value> = serde_json::from_str(output.trim()).unwrap();
        assert_eq!(sent.len(), 12);
        for chunk in sent.chunks(4) {
            expected.push(
                chunk
                    .iter()
                    .map(|log| {
                        (
                            log["traceId"].as_str().unwrap().to_string(),
                            log["spanId"].as_str().unwrap().to_string(),
                            log["body"].as_str().unwrap().to_string(),
                            log["severityText"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
            );
        }
    }
    let base = now_ns() - 5_000_000_000;
    assert_eq!(loki_json_push(&vivace.url(""), base).await, 204);
    assert_eq!(
        loki_proto_push(&format!("http://127.0.0.1:{}", loki_port(&vivace)), base).await,
        204
    );

    check(&vivace, &expected, "head").await;

    // kill -9 right after the acknowledgements: everything comes back from the WAL.
    vivace.restart();
    check(&vivace, &expected, "after kill -9").await;

    // Flush to blocks: a graceful stop writes the head as blocks; then kill -9 again so
    // the answers can only come from the blocks.
    vivace.terminate();
    vivace.restart();
    let data = vivace.data.clone();
    let blocks_dir = data.join("blocks-logs").join("single-tenant");
    assert!(
        std::fs::read_dir(&blocks_dir).unwrap().count() >= 1,
        "log blocks are written beside the trace blocks, never inside their root"
    );
    for entry in std::fs::read_dir(&blocks_dir).unwrap() {
        let block = entry.unwrap().file_name();
        assert!(
            !data
                .join("blocks")
                .join("single-tenant")
                .join(&block)
                .exists(),
            "a log block must never appear in the trace root"
        );
    }
    wait_for_blocks(&vivace).await;
    check(&vivace, &expected, "from blocks").await;
    vivace.restart();
    check(&vivace, &expected, "from blocks after another kill -9").await;

    // The Loki query API: selectors and line filters.
    let loki = format!("http://127.0.0.1:{}", loki_port(&vivace));
    let query = |q: &str, extra: &str| {
        format!(
            "{loki}/loki/api/v1/query_range?query={}&start={}&end={}{extra}",
            urlencode(q),
            base - 60_000_000_000,
            now_ns() + 60_000_000_000
        )
    };
    let answer = get_json(&query(
        r#"{service_name="loki-proto"} |= "attempt" != "attempt 1""#,
        "&direction=forward",
    ))
    .await;
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["data"]["resultType"], "streams");
    let result = answer["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["stream"]["service_name"], "loki-proto");
    let lines: Vec<&str> = result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value[1].as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        vec!["payment declined attempt 0", "payment declined attempt 2"]
    );
    // Backward (Loki's default) with a limit: the newest first.
    let answer = get_json(&query(
        r#"{service_name=~"loki-.*"} |~ "attempt [0-9]""#,
        "&limit=1",
    ))
    .await;
    let values = answer["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0][1], "payment declined attempt 2");
    // Grafana's trace-to-logs: the trace ID as a line filter finds OTLP records too.
    let sdk_trace = &expected[0][0].0;
    let answer = get_json(&query(
        &format!(r#"{{service_name="logs-sdk-test"}} |= "{sdk_trace}""#),
        "&direction=forward",
    ))
    .await;
    let found: usize = answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stream| stream["values"].as_array().unwrap().len())
        .sum();
    assert_eq!(found, 4);
    let answer = get_json(&query(
        r#"{service_name="logs-sdk-test", level!~"info|error"}"#,
        "",
    ))
    .await;
    assert!(answer["data"]["result"].as_array().unwrap().is_empty());
    let answer = get_json(&query(r#"{service_name="loki-json"} !~ "GET .*""#, "")).await;
    assert_eq!(
        answer["data"]["result"][0]["values"][0][1],
        "second line with metadata"
    );
    // Labels and values, on :3200 as well as the Loki port.
    let labels = get_json(&vivace.url(&format!(
        "/loki/api/v1/labels?start={}",
        base - 60_000_000_000
    )))
    .await;
    let labels: Vec<&str> = labels["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"service_name") && labels.contains(&"level"),
        "{labels:?}"
    );
    let values = get_json(&format!(
        "{loki}/loki/api/v1/label/service_name/values?start={}",
        base - 60_000_000_000
    ))
    .await;
    let values: Vec<&str> = values["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(values, vec!["logs-sdk-test", "loki-json", "loki-proto"]);
    // By service, time and text for the UI: newest first.
    let logs = get_json(&vivace.url(&format!(
        "/api/logs?service=loki-proto&start={}&end={}&q=attempt&limit=2",
        base / 1_000_000_000 - 60,
        now_ns() / 1_000_000_000 + 60
    )))
    .await;
    let bodies: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec!["payment declined attempt 2", "payment declined attempt 1"]
    );
    // Grafana's health check query.
    let health = get_json(&format!(
        "{loki}/loki/api/v1/query?query={}",
        urlencode("vector(1)+vector(1)")
    ))
    .await;
    assert_eq!(health["data"]["result"][0]["value"][1], "2");
}

fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_logs_get_clear_errors_and_the_server_keeps_serving() {
    let vivace = start();
    let client = reqwest::Client::new();
    let otlp = format!("{}/v1/logs", vivace.otlp_http_url());
    let loki = vivace.url("/loki/api/v1/push");
    let cases: Vec<(&str, String, &str, Vec<u8>, &str)> = vec![
        (
            "otlp protobuf",
            otlp.clone(),
            "application/x-protobuf",
            vec![0xff, 0xff, 0xff, 0x01],
            "ExportLogsServiceRequest",
        ),
        (
            "otlp json syntax",
            otlp.clone(),
            "application/json",
            b"{\"resourceLogs\":".to_vec(),
            "not valid JSON",
        ),
        (
            "otlp json shape",
            otlp.clone(),
            "application/json",
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#.to_vec(),
            "traceId",
        ),
        (
            "otlp content type",
            otlp.clone(),
            "text/plain",
            b"hello".to_vec(),
            "content type",
        ),
        (
            "loki json",
            loki.clone(),
            "application/json",
            b"{\"streams\":[{\"stream\":{\"a\":\"b\"},\"values\":[[\"soon\",\"x\"]]}]}".to_vec(),
            "timestamp",
        ),
        (
            "loki json syntax",
            loki.clone(),
            "application/json",
            b"[".to_vec(),
            "invalid JSON",
        ),
        (
            "loki bad snappy",
            loki.clone(),
            "application/x-protobuf",
            b"\xff\xff\xff\xff\xff\xffnot snappy".to_vec(),
            "snappy",
        ),
        (
            "loki bad protobuf",
            loki.clone(),
            "application/x-protobuf",
            snap::raw::Encoder::new()
                .compress_vec(&[0xff, 0xff, 0xff, 0x01])
                .unwrap(),
            "PushRequest",
        ),
        (
            "loki bad labels",
            loki.clone(),
            "application/x-protobuf",
            snap::raw::Encoder::new()
                .compress_vec(
                    &loki_proto::PushRequest {
                        streams: vec![loki_proto::StreamAdapter {
                            labels: "no braces".into(),
                            entries: vec![],
                            hash: 0,
                        }],
                    }
                    .encode_to_vec(),
                )
                .unwrap(),
            "stream labels",
        ),
    ];
    for (name, url, content_type, body, needle) in cases {
        let response = client
            .post(&url)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_client_error(), "{name}: {status} {text}");
        assert!(
            text.contains(needle),
            "{name}: {text:?} should name {needle:?}"
        );
    }
    // OTLP gRPC: a malformed protobuf through LogsService/Export.
    let channel = tonic::transport::Endpoint::from_shared(vivace.otlp_grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<_, bytes::Bytes, _>(
            tonic::Request::new(bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0x01])),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            ),
            vivace::receiver::ingest::RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("ExportLogsServiceRequest"),
        "{status:?}"
    );
    // Bad query parameters and LogQL.
    for (url, needle) in [
        (vivace.url("/api/logs?traceID=nothex"), "traceID"),
        (vivace.url("/api/logs?service=a&start=yesterday"), "start"),
        (vivace.url("/api/logs?limit=-1"), "limit"),
        (
            vivace.url("/loki/api/v1/query_range?query=%7Ba%3D%22b%22%7D%20%7C%20json"),
            "json",
        ),
        (
            vivace.url("/loki/api/v1/query_range?query=nope"),
            "parse error",
        ),
    ] {
        let response = reqwest::get(&url).await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{url}: {text}");
        assert!(text.contains(needle), "{url}: {text}");
    }
    // Still serving: a good push is accepted and readable.
    assert_eq!(loki_json_push(&vivace.url(""), now_ns()).await, 204);
    assert_eq!(trace_logs(&vivace, LOKI_TRACE).await.len(), 2);
}
