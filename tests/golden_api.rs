//! The recorded answers of a real Tempo v3.0.3 (tests/data/tempo-api) replayed against
//! vivace: the dataset goes in over OTLP/HTTP JSON, then every trace-by-ID request (v1 JSON,
//! v1 protobuf, v2 JSON, v2 protobuf, short and upper-case IDs, start/end) and the misc and
//! error requests are asked again and compared by content.

mod common;

use base64::Engine;
use prost::Message;
use serde_json::Value;

use common::{canonical_spans, test_data, Vivace};
use vivace::model::Trace;

#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<Trace>,
}

fn proto_trace_as_json(trace: &Trace) -> Value {
    vivace::api::trace_json::trace_v2(trace, 0)["trace"].clone()
}

async fn replay(vivace: &Vivace, case: &Value) -> (u16, String, Vec<u8>) {
    let request = &case["request"];
    let mut url = vivace.url(request["path"].as_str().unwrap());
    let query: Vec<String> = request["query"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            format!(
                "{}={}",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            )
        })
        .collect();
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let mut builder = reqwest::Client::new().get(url);
    for (name, value) in request["headers"].as_object().unwrap() {
        builder = builder.header(name.as_str(), value.as_str().unwrap());
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

fn golden_cases(folder: &str) -> Vec<Value> {
    let mut paths: Vec<_> = std::fs::read_dir(test_data(&format!("tempo-api/{folder}")))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
        .collect()
}

fn check_trace_case(case: &Value, status: u16, content_type: &str, body: &[u8]) {
    let name = case["name"].as_str().unwrap();
    assert_eq!(status, case["status"].as_u64().unwrap() as u16, "{name}");
    assert_eq!(
        content_type,
        case["headers"]["content-type"].as_str().unwrap(),
        "{name}"
    );
    let (ours, golden) = if case["body_encoding"] == "base64" {
        let golden_bytes = base64::engine::general_purpose::STANDARD
            .decode(case["body"].as_str().unwrap())
            .unwrap();
        if name.starts_with("trace-v1") {
            (
                proto_trace_as_json(&Trace::decode(body).unwrap()),
                proto_trace_as_json(&Trace::decode(golden_bytes.as_slice()).unwrap()),
            )
        } else {
            let ours = TraceByIdResponse::decode(body)
                .unwrap()
                .trace
                .expect("trace is always set");
            let golden = TraceByIdResponse::decode(golden_bytes.as_slice())
                .unwrap()
                .trace
                .unwrap_or_default();
            (proto_trace_as_json(&ours), proto_trace_as_json(&golden))
        }
    } else {
        let ours: Value = serde_json::from_slice(body).unwrap();
        let golden = &case["body"];
        if name.starts_with("trace-v1") {
            (ours, golden.clone())
        } else {
            assert!(
                ours.get("metrics").is_some(),
                "{name}: v2 JSON carries metrics"
            );
            (ours["trace"].clone(), golden["trace"].clone())
        }
    };
    let golden_spans = canonical_spans(&golden);
    assert!(!golden_spans.is_empty(), "{name}: golden has spans");
    assert_eq!(canonical_spans(&ours), golden_spans, "{name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_by_id_matches_tempo() {
    let vivace = Vivace::start("");
    common::load_dataset(&vivace).await;
    let mut compared = 0;
    for case in golden_cases("traces") {
        let (status, content_type, body) = replay(&vivace, &case).await;
        check_trace_case(&case, status, &content_type, &body);
        compared += 1;
    }
    assert_eq!(
        compared, 184,
        "every recorded trace-by-ID request was replayed"
    );

    for case in golden_cases("misc") {
        let (status, content_type, body) = replay(&vivace, &case).await;
        let name = case["name"].as_str().unwrap();
        assert_eq!(status, case["status"].as_u64().unwrap() as u16, "{name}");
        assert_eq!(
            content_type,
            case["headers"]["content-type"].as_str().unwrap(),
            "{name}"
        );
        if name == "buildinfo" {
            let ours: Value = serde_json::from_slice(&body).unwrap();
            let keys: Vec<_> = ours.as_object().unwrap().keys().cloned().collect();
            let golden_keys: Vec<_> = case["body"].as_object().unwrap().keys().cloned().collect();
            assert_eq!(keys, golden_keys);
            let version = ours["version"].as_str().unwrap().trim_start_matches('v');
            let major: u32 = version.split('.').next().unwrap().parse().unwrap();
            assert!(
                major >= 3,
                "Grafana gates features on a Tempo version >= 2.7"
            );
        } else {
            assert_eq!(
                String::from_utf8_lossy(&body),
                case["body"].as_str().unwrap(),
                "{name}"
            );
        }
    }

    for case in golden_cases("errors") {
        let name = case["name"].as_str().unwrap();
        if !name.starts_with("trace-") {
            continue; // search and metrics errors belong to the TraceQL issue
        }
        let (status, _, body) = replay(&vivace, &case).await;
        if name.contains("404") {
            // Tempo 3.0.3 answers an unknown v2 trace with 200 and an empty trace; vivace
            // answers 404 with an empty body on both versions, as Grafana expects of Tempo's
            // documented API (it then reports "trace not found").
            assert_eq!(status, 404, "{name}");
            assert!(body.is_empty(), "{name}");
        } else {
            assert_eq!(status, case["status"].as_u64().unwrap() as u16, "{name}");
            assert_eq!(
                String::from_utf8_lossy(&body),
                case["body"].as_str().unwrap(),
                "{name}"
            );
        }
    }
}

/// Reading Tempo's blocks through the API: vivace pointed at a bucket holding a block Tempo
/// v3.0.3 wrote answers every one of its 133 traces, in JSON and protobuf.
#[tokio::test(flavor = "multi_thread")]
async fn serves_blocks_tempo_wrote() {
    let vivace = common::start_over_tempo_block();
    let ids = std::fs::read_to_string(test_data(
        "tempo-blocks/generated-by-tempo-v3.0.3/trace_ids.txt",
    ))
    .unwrap();
    let client = reqwest::Client::new();
    let mut found = 0;
    for id in ids.split_whitespace() {
        let body: Value = client
            .get(vivace.url(&format!("/api/v2/traces/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let spans = canonical_spans(&body["trace"]);
        assert!(!spans.is_empty(), "trace {id} has spans");
        for span in spans.values() {
            let wanted = format!("{id:0>32}");
            let trace_id = hex::encode(
                base64::engine::general_purpose::STANDARD
                    .decode(span["traceId"].as_str().unwrap())
                    .unwrap(),
            );
            assert_eq!(trace_id, wanted, "span of trace {id} carries its trace ID");
            assert!(span.get("status").is_some());
        }
        let response = client
            .get(vivace.url(&format!("/api/v2/traces/{id}")))
            .header("Accept", "application/protobuf")
            .send()
            .await
            .unwrap();
        let decoded = TraceByIdResponse::decode(response.bytes().await.unwrap()).unwrap();
        assert_eq!(
            canonical_spans(&proto_trace_as_json(&decoded.trace.unwrap())),
            spans,
            "protobuf and JSON agree for {id}"
        );
        found += 1;
    }
    assert_eq!(found, 133);
}
