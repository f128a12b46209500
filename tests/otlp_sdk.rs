//! A real OpenTelemetry SDK (Python, OTLP gRPC and HTTP exporters, gzip) sends
//! traces; `/api/v2/traces/{id}` returns every span with all resource, scope and span
//! attributes, events, links and status intact, in JSON and in protobuf, and so does v1.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use serde_json::{json, Value};

use common::{run_python, Vivace};

#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

/// One span in a form both the SDK's record and vivace's answers can be put in.
fn canonical_from_json(body: &Value) -> BTreeMap<String, Value> {
    let decode_id = |text: &Value| -> String {
        text.as_str()
            .map(|encoded| {
                hex::encode(
                    base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .unwrap(),
                )
            })
            .unwrap_or_default()
    };
    let kinds = [
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ];
    let codes = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
    let mut spans = BTreeMap::new();
    for batch in body["resourceSpans"]
        .as_array()
        .or(body["batches"].as_array())
        .expect("resource spans")
    {
        let resource = json_attributes(&batch["resource"]["attributes"]);
        for scope_batch in batch["scopeSpans"].as_array().unwrap() {
            let scope = json!({"name": scope_batch["scope"]["name"], "version": scope_batch["scope"]["version"]});
            for span in scope_batch["spans"].as_array().unwrap() {
                assert!(
                    span.get("status").is_some(),
                    "every span carries status (Grafana needs it)"
                );
                let kind = kinds
                    .iter()
                    .position(|name| span["kind"] == *name)
                    .unwrap_or(0);
                let code = codes
                    .iter()
                    .position(|name| span["status"]["code"] == *name)
                    .unwrap_or(0);
                let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
                let events: Vec<Value> = span["events"].as_array().cloned().unwrap_or_default().iter().map(|event| json!({
                    "name": event["name"], "time": event["timeUnixNano"].as_str().unwrap().parse::<u64>().unwrap(),
                    "attributes": json_attributes(&event["attributes"])})).collect();
                let links: Vec<Value> = span["links"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|link| {
                        json!({
                    "trace_id": decode_id(&link["traceId"]), "span_id": decode_id(&link["spanId"]),
                    "attributes": json_attributes(&link["attributes"])})
                    })
                    .collect();
                let view = json!({
                    "span_id": decode_id(&span["spanId"]),
                    "parent_span_id": decode_id(&span["parentSpanId"]),
                    "name": span["name"],
                    "kind": kind,
                    "start": start,
                    "end": span["endTimeUnixNano"].as_str().unwrap().parse::<u64>().unwrap(),
                    "attributes": json_attributes(&span["attributes"]),
                    "resource": resource,
                    "scope": scope,
                    "status": {"code": code, "message": span["status"]["message"].as_str().unwrap_or("")},
                    "events": events,
                    "links": links,
                });
                spans.insert(view["span_id"].as_str().unwrap().to_string(), view);
            }
        }
    }
    spans
}

fn json_value(value: &Value) -> Value {
    if let Some(text) = value.get("stringValue") {
        return text.clone();
    }
    if let Some(number) = value.get("intValue") {
        return json!(number.as_str().unwrap().parse::<i64>().unwrap());
    }
    if let Some(number) = value.get("doubleValue") {
        return json!(number.as_f64().unwrap());
    }
    if let Some(flag) = value.get("boolValue") {
        return flag.clone();
    }
    if let Some(array) = value.get("arrayValue") {
        return Value::Array(
            array["values"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(json_value)
                .collect(),
        );
    }
    panic!("unexpected attribute value {value}");
}

fn json_attributes(list: &Value) -> Value {
    let map: BTreeMap<String, Value> = list
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|item| {
            (
                item["key"].as_str().unwrap().to_string(),
                json_value(&item["value"]),
            )
        })
        .collect();
    serde_json::to_value(map).unwrap()
}

fn proto_value(value: &AnyValue) -> Value {
    match value.value.as_ref().expect("typed value") {
        any_value::Value::StringValue(text) => json!(text),
        any_value::Value::IntValue(number) => json!(number),
        any_value::Value::DoubleValue(number) => json!(number),
        any_value::Value::BoolValue(flag) => json!(flag),
        any_value::Value::ArrayValue(array) => {
            Value::Array(array.values.iter().map(proto_value).collect())
        }
        other => panic!("unexpected value {other:?}"),
    }
}

/// The protobuf answer converted to the same JSON shape, so one canonical form serves both.
fn proto_as_json(trace: &TracesData) -> Value {
    let attributes = |list: &[opentelemetry_proto::tonic::common::v1::KeyValue]| -> Value {
        Value::Array(list.iter().map(|item| json!({"key": item.key, "value": any_value_json(item.value.as_ref().unwrap())})).collect())
    };
    fn any_value_json(value: &AnyValue) -> Value {
        match proto_value(value) {
            Value::String(text) => json!({"stringValue": text}),
            Value::Bool(flag) => json!({"boolValue": flag}),
            Value::Number(number) if matches!(value.value, Some(any_value::Value::IntValue(_))) => {
                json!({"intValue": number.to_string()})
            }
            Value::Number(number) => json!({"doubleValue": number}),
            Value::Array(_) => {
                let Some(any_value::Value::ArrayValue(array)) = &value.value else {
                    unreachable!()
                };
                json!({"arrayValue": {"values": array.values.iter().map(any_value_json).collect::<Vec<_>>()}})
            }
            other => panic!("{other}"),
        }
    }
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let kinds = [
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ];
    let codes = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
    let batches: Vec<Value> = trace.resource_spans.iter().map(|batch| {
        let resource = batch.resource.as_ref().expect("every batch has a resource");
        json!({
            "resource": {"attributes": attributes(&resource.attributes)},
            "scopeSpans": batch.scope_spans.iter().map(|scope_batch| {
                let scope = scope_batch.scope.as_ref().expect("every scope batch has a scope");
                json!({
                    "scope": {"name": scope.name, "version": scope.version},
                    "spans": scope_batch.spans.iter().map(|span| {
                        let status = span.status.as_ref().expect("every span has a status");
                        json!({
                            "spanId": b64(&span.span_id), "parentSpanId": b64(&span.parent_span_id), "name": span.name,
                            "kind": kinds[span.kind as usize],
                            "startTimeUnixNano": span.start_time_unix_nano.to_string(), "endTimeUnixNano": span.end_time_unix_nano.to_string(),
                            "attributes": attributes(&span.attributes),
                            "status": {"code": codes[status.code as usize], "message": status.message},
                            "events": span.events.iter().map(|event| json!({"name": event.name, "timeUnixNano": event.time_unix_nano.to_string(), "attributes": attributes(&event.attributes)})).collect::<Vec<_>>(),
                            "links": span.links.iter().map(|link| json!({"traceId": b64(&link.trace_id), "spanId": b64(&link.span_id), "attributes": attributes(&link.attributes)})).collect::<Vec<_>>(),
                        })
                    }).collect::<Vec<_>>(),
                })
            }).collect::<Vec<_>>(),
        })
    }).collect();
    json!({ "resourceSpans": batches })
}

fn expected_spans(spans: &[Value]) -> BTreeMap<String, Value> {
    spans
        .iter()
        .map(|span| (span["span_id"].as_str().unwrap().to_string(), span.clone()))
        .collect()
}

async fn send_and_check(vivace: &Vivace, protocol: &str, endpoint: &str) {
    let out = vivace.data.join(format!("expected-{protocol}.json"));
    let service = format!("sdk-{protocol}");
    run_python(
        "otel_send.py",
        &[
            "--protocol",
            protocol,
            "--endpoint",
            endpoint,
            "--traces",
            "12",
            "--out",
            out.to_str().unwrap(),
            "--service",
            &service,
        ],
    );
    let expected: BTreeMap<String, Vec<Value>> =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(expected.len(), 12);
    let client = reqwest::Client::new();
    for (trace_id, spans) in &expected {
        let want = expected_spans(spans);
        assert_eq!(want.len(), 4, "the SDK script makes four spans per trace");

        let v2: Value = client
            .get(vivace.url(&format!("/api/v2/traces/{trace_id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            canonical_from_json(&v2["trace"]),
            want,
            "v2 JSON of {trace_id} over {protocol}"
        );

        let v1: Value = client
            .get(vivace.url(&format!("/api/traces/{trace_id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            canonical_from_json(&v1),
            want,
            "v1 JSON of {trace_id} over {protocol}"
        );

        let response = client
            .get(vivace.url(&format!("/api/v2/traces/{trace_id}")))
            .header("Accept", "application/protobuf")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-type"], "application/protobuf");
        let decoded = TraceByIdResponse::decode(response.bytes().await.unwrap()).unwrap();
        let trace = decoded.trace.expect("v2 protobuf always carries trace");
        assert_eq!(
            canonical_from_json(&proto_as_json(&trace)),
            want,
            "v2 protobuf of {trace_id} over {protocol}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_traces_round_trip_over_grpc_and_http() {
    let vivace = Vivace::start("");
    send_and_check(
        &vivace,
        "grpc",
        &format!("127.0.0.1:{}", vivace.ports.otlp_grpc),
    )
    .await;
    send_and_check(&vivace, "http", &vivace.otlp_http_url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_traces_survive_flush_to_blocks_and_restart() {
    // Short periods so every trace is cut and flushed into a vParquet4 block within seconds.
    let yaml = "ingester:\n  trace_idle_period: 1s\n  max_block_duration: 2s\n  flush_check_period: 200ms\n  wal_path: WAL\n";
    let data = tempfile::Builder::new()
        .prefix("vivace-test-")
        .tempdir()
        .unwrap()
        .keep();
    let yaml = yaml.replace("WAL", data.join("wal").to_str().unwrap());
    let mut vivace = Vivace::start_in(&data, common::Ports::pick(), &yaml);
    send_and_check(&vivace, "http", &vivace.otlp_http_url()).await;
    // Wait until a block with meta.json exists, then restart and read back from blocks.
    let blocks = data.join("blocks").join("single-tenant");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let metas = std::fs::read_dir(&blocks)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.path().join("meta.json").exists())
                    .count()
            })
            .unwrap_or(0);
        if metas > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no block flushed within 60s; log:\n{}",
            vivace.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    vivace.terminate();
    vivace.restart();
    let client = reqwest::Client::new();
    let expected: BTreeMap<String, Vec<Value>> =
        serde_json::from_slice(&std::fs::read(data.join("expected-http.json")).unwrap()).unwrap();
    for (trace_id, spans) in &expected {
        let v2: Value = client
            .get(vivace.url(&format!("/api/v2/traces/{trace_id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            canonical_from_json(&v2["trace"]),
            expected_spans(spans),
            "v2 JSON of {trace_id} after flush and restart"
        );
    }
}
