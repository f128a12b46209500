//! Zipkin and Jaeger receivers end to end: the real OpenTelemetry Python exporters (Zipkin JSON,
//! Zipkin protobuf, Jaeger thrift over HTTP and over UDP) send the same spans that the same SDK
//! also sends over OTLP to a second vivace; `/api/v2/traces/{id}` of both must agree on what
//! each protocol can carry. py_zipkin, a Zipkin v1 tracer, sends v1 Thrift and JSON. Bad input
//! on every port is refused and the servers keep serving.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use common::{canonical_spans, free_port, run_python, Vivace};

struct LegacyPorts {
    zipkin: u16,
    jaeger_http: u16,
    jaeger_grpc: u16,
    jaeger_udp: u16,
}

fn start_legacy() -> (Vivace, LegacyPorts) {
    let ports = LegacyPorts {
        zipkin: free_port(),
        jaeger_http: free_port(),
        jaeger_grpc: free_port(),
        jaeger_udp: free_port(),
    };
    let yaml = format!(
        "distributor:\n  receivers:\n    zipkin:\n      enabled: true\n      endpoint: 127.0.0.1:{}\n    jaeger:\n      protocols:\n        thrift_http:\n          enabled: true\n          endpoint: 127.0.0.1:{}\n        grpc:\n          enabled: true\n          endpoint: 127.0.0.1:{}\n        thrift_compact:\n          enabled: true\n          endpoint: 127.0.0.1:{}\n",
        ports.zipkin, ports.jaeger_http, ports.jaeger_grpc, ports.jaeger_udp
    );
    (Vivace::start(&yaml), ports)
}

async fn trace_json(vivace: &Vivace, trace_id: &str) -> Option<Value> {
    let response = reqwest::get(vivace.url(&format!("/api/v2/traces/{trace_id}")))
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    Some(body["trace"].clone())
}

/// Polls until the trace has `spans` spans (UDP and the SDK's exports are asynchronous).
async fn wait_for_trace(vivace: &Vivace, trace_id: &str, spans: usize) -> BTreeMap<String, Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(trace) = trace_json(vivace, trace_id).await {
            let canonical = canonical_spans(&trace);
            if canonical.len() >= spans {
                return canonical;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "trace {trace_id} did not reach {spans} spans; log:\n{}",
            vivace.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn nanos(value: &Value) -> i64 {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// What a legacy protocol turns an OTLP attribute value into, as the Python exporters encode it.
fn projected(protocol: &str, value: &Value) -> Value {
    let zipkin = protocol.starts_with("zipkin");
    if let Some(text) = value.get("stringValue") {
        return json!({ "stringValue": text });
    }
    if let Some(number) = value.get("intValue") {
        return if zipkin {
            json!({ "stringValue": number.as_str().unwrap_or_default() })
        } else {
            value.clone()
        };
    }
    if let Some(number) = value.get("doubleValue") {
        return if zipkin {
            json!({ "stringValue": number.as_f64().unwrap_or_default().to_string() })
        } else {
            value.clone()
        };
    }
    if let Some(flag) = value.get("boolValue") {
        return if zipkin {
            json!({ "stringValue": flag.as_bool().unwrap_or_default().to_string() })
        } else {
            value.clone()
        };
    }
    if let Some(array) = value.get("arrayValue") {
        let items: Vec<String> = array["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["stringValue"].as_str().map(str::to_string))
            .collect();
        let text = if zipkin {
            serde_json::to_string(&items).unwrap_or_default()
        } else {
            let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
            format!("({})", quoted.join(", "))
        };
        return json!({ "stringValue": text });
    }
    value.clone()
}

fn compare(protocol: &str, legacy: &BTreeMap<String, Value>, otlp: &BTreeMap<String, Value>) {
    let zipkin = protocol.starts_with("zipkin");
    assert_eq!(
        legacy.keys().collect::<Vec<_>>(),
        otlp.keys().collect::<Vec<_>>(),
        "{protocol}: span IDs"
    );
    for (span_id, want) in otlp {
        let got = &legacy[span_id];
        let context = format!("{protocol} span {} ({span_id})", want["name"]);
        assert_eq!(got["name"], want["name"], "{context}: name");
        assert_eq!(
            got["parentSpanId"], want["parentSpanId"],
            "{context}: parent"
        );
        let want_kind = match want["kind"].as_str() {
            // Neither protocol has an internal kind on the wire that the Collector maps back,
            // except Jaeger's `span.kind=internal` tag.
            Some("SPAN_KIND_INTERNAL") if zipkin => json!("SPAN_KIND_UNSPECIFIED"),
            _ => want["kind"].clone(),
        };
        let got_kind = if got["kind"].is_null() {
            json!("SPAN_KIND_UNSPECIFIED")
        } else {
            got["kind"].clone()
        };
        assert_eq!(got_kind, want_kind, "{context}: kind");
        for field in ["startTimeUnixNano", "endTimeUnixNano"] {
            let difference = (nanos(&got[field]) - nanos(&want[field])).abs();
            assert!(
                difference <= 1000,
                "{context}: {field} differs by {difference}ns (µs on the wire)"
            );
        }
        assert_eq!(
            got["status"]["code"], want["status"]["code"],
            "{context}: status code"
        );
        if !zipkin {
            assert_eq!(
                got["status"]["message"], want["status"]["message"],
                "{context}: status message"
            );
        }
        assert_eq!(
            got["resource"]["service.name"], want["resource"]["service.name"],
            "{context}: service.name"
        );
        // The Jaeger thrift exporter sends only the service name as its process.
        let resource_keys: &[&str] = if zipkin {
            &["service.version", "deployment.environment"]
        } else {
            &[]
        };
        for key in resource_keys {
            assert_eq!(
                got["resource"][key], want["resource"][key],
                "{context}: resource {key}"
            );
        }
        for (key, value) in want["attributes"].as_object().into_iter().flatten() {
            assert_eq!(
                got["attributes"][key],
                projected(protocol, value),
                "{context}: attribute {key}"
            );
        }
        let allowed_extra: &[&str] = if zipkin {
            // The SDK's Zipkin exporter puts resource and scope into tags; the Collector moves
            // the resource conventions and otel.library.* back, the rest stays on the span.
            &[
                "host.cpu.count",
                "otel.scope.name",
                "otel.scope.version",
                "error",
            ]
        } else {
            &[
                "otel.library.name",
                "otel.library.version",
                "otel.scope.name",
                "otel.scope.version",
            ]
        };
        if !zipkin {
            // The Jaeger thrift exporter sends the resource as span tags, and the Collector's
            // thrift translator keeps span tags on the span.
            for (key, value) in want["resource"].as_object().into_iter().flatten() {
                assert_eq!(
                    got["attributes"][key],
                    projected(protocol, value),
                    "{context}: resource attribute {key} as a span tag"
                );
            }
        }
        for key in got["attributes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, _)| key)
        {
            assert!(
                want["attributes"].get(key).is_some()
                    || allowed_extra.contains(&key.as_str())
                    || (!zipkin && want["resource"].get(key).is_some()),
                "{context}: unexpected attribute {key}: {}",
                got["attributes"]
            );
        }
        if zipkin {
            assert_eq!(
                got["scope"]["name"], "vivace.legacy.test",
                "{context}: scope"
            );
            assert_eq!(got["scope"]["version"], "0.1.0", "{context}: scope version");
        } else {
            assert_eq!(
                got["attributes"]["otel.library.name"]["stringValue"],
                "vivace.legacy.test"
            );
        }
        let want_events = want["events"].as_array().cloned().unwrap_or_default();
        let got_events = got["events"].as_array().cloned().unwrap_or_default();
        assert_eq!(got_events.len(), want_events.len(), "{context}: events");
        for (got_event, want_event) in got_events.iter().zip(&want_events) {
            let difference =
                (nanos(&got_event["timeUnixNano"]) - nanos(&want_event["timeUnixNano"])).abs();
            assert!(difference <= 1000, "{context}: event time");
            if zipkin {
                // The Python exporter writes `{"name": {attributes}}` as the annotation value.
                let name: Value = serde_json::from_str(got_event["name"].as_str().unwrap_or(""))
                    .unwrap_or_default();
                assert!(
                    name.get(want_event["name"].as_str().unwrap_or(""))
                        .is_some(),
                    "{context}: event {name}"
                );
            } else {
                // The Jaeger exporter names the log with a `message` field; the Collector takes
                // the name only from an `event` field, so the name stays a field.
                assert_eq!(
                    got_event["attributes"]["message"]["stringValue"], want_event["name"],
                    "{context}: event name as the message field"
                );
                for (key, value) in want_event["attributes"].as_object().into_iter().flatten() {
                    assert_eq!(
                        got_event["attributes"][key],
                        projected(protocol, value),
                        "{context}: event attribute {key}"
                    );
                }
            }
        }
        let want_links = want["links"].as_array().cloned().unwrap_or_default();
        let got_links = got["links"].as_array().cloned().unwrap_or_default();
        if zipkin {
            assert!(got_links.is_empty(), "{context}: zipkin carries no links");
        } else {
            assert_eq!(got_links.len(), want_links.len(), "{context}: links");
            for (got_link, want_link) in got_links.iter().zip(&want_links) {
                assert_eq!(
                    got_link["traceId"], want_link["traceId"],
                    "{context}: link trace"
                );
                assert_eq!(
                    got_link["spanId"], want_link["spanId"],
                    "{context}: link span"
                );
                assert_eq!(
                    got_link["attributes"]["opentracing.ref_type"]["stringValue"],
                    "follows_from"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_exporters_carry_the_same_spans_as_otlp() {
    let (legacy, ports) = start_legacy();
    let otlp = Vivace::start("");
    let endpoints = [
        (
            "zipkin-json",
            format!("http://127.0.0.1:{}/api/v2/spans", ports.zipkin),
        ),
        (
            "zipkin-proto",
            format!("http://127.0.0.1:{}/api/v2/spans", ports.zipkin),
        ),
        (
            "jaeger-http",
            format!("http://127.0.0.1:{}/api/traces", ports.jaeger_http),
        ),
        ("jaeger-udp", format!("127.0.0.1:{}", ports.jaeger_udp)),
    ];
    for (protocol, endpoint) in endpoints {
        let output = run_python(
            "legacy_send.py",
            &[
                "--protocol",
                protocol,
                "--endpoint",
                &endpoint,
                "--otlp-endpoint",
                &otlp.otlp_http_url(),
                "--traces",
                "3",
                "--service",
                &format!("legacy-{protocol}"),
            ],
        );
        let trace_ids: Vec<&str> = output.lines().filter(|line| line.len() == 32).collect();
        assert_eq!(trace_ids.len(), 3, "{protocol}: {output}");
        for trace_id in trace_ids {
            let want = wait_for_trace(&otlp, trace_id, 4).await;
            let got = wait_for_trace(&legacy, trace_id, 4).await;
            compare(protocol, &got, &want);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_on_every_port_and_servers_keep_serving() {
    let (vivace, ports) = start_legacy();
    let client = reqwest::Client::new();
    let zipkin = format!("http://127.0.0.1:{}/api/v2/spans", ports.zipkin);
    for (content_type, body, needle) in [
        ("application/json", "{not json", "not valid JSON"),
        (
            "application/json",
            r#"[{"traceId":"zz","id":"1"}]"#,
            "$[0].traceId",
        ),
        ("application/x-protobuf", "\u{ff}\u{ff}\u{ff}", "protobuf"),
    ] {
        let response = client
            .post(&zipkin)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        assert!(text.contains(needle), "{text}");
    }
    // Zipkin v1 is served on the same port: an empty list is accepted, a bad body is refused
    // naming v1.
    let zipkin_v1 = format!("http://127.0.0.1:{}/api/v1/spans", ports.zipkin);
    let v1 = client
        .post(&zipkin_v1)
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 202);
    let v1 = client
        .post(&zipkin_v1)
        .header("content-type", "application/x-thrift")
        .body(vec![12u8, 0x7f, 0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 400);
    assert!(v1.text().await.unwrap().contains("v1 thrift"));

    let jaeger = format!("http://127.0.0.1:{}/api/traces", ports.jaeger_http);
    let wrong_type = client
        .post(&jaeger)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 400);
    let garbage = client
        .post(&jaeger)
        .header("content-type", "application/x-thrift")
        .body(vec![15u8, 12, 0x7f, 0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    assert!(garbage.text().await.unwrap().contains("thrift"));

    // gRPC: a malformed PostSpansRequest is INVALID_ARGUMENT (status 3 in the trailers).
    let grpc = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut frame = vec![0u8, 0, 0, 0, 3];
    frame.extend_from_slice(&[0x0a, 0x05, 0xff]);
    let response = grpc
        .post(format!(
            "http://127.0.0.1:{}/jaeger.api_v2.CollectorService/PostSpans",
            ports.jaeger_grpc
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .unwrap();
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .map(|value| value.to_str().unwrap_or("").to_string());
    assert_eq!(
        grpc_status.as_deref(),
        Some("3"),
        "{:?}",
        response.headers()
    );

    // UDP garbage is counted and dropped.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for packet in [&b"garbage"[..], &[0x82, 0x81, 0x00][..], &[][..]] {
        socket
            .send_to(packet, ("127.0.0.1", ports.jaeger_udp))
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = reqwest::get(vivace.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("vivace_receiver_jaeger_udp_packets_total{outcome=\"malformed\"} 3") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "udp garbage not counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every server still answers: a valid empty Zipkin list and an empty Jaeger batch.
    let ok = client
        .post(&zipkin)
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let ok = client
        .post(&jaeger)
        .header("content-type", "application/x-thrift")
        .body(thrift_batch(true, true))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
}

/// A Thrift-binary `jaeger.Batch` with process `shop` and an empty span list, leaving out
/// either required field on request.
fn thrift_batch(with_process: bool, with_spans: bool) -> Vec<u8> {
    let mut body = Vec::new();
    if with_process {
        // Field 1, struct Process { 1: string serviceName = "shop" }.
        body.extend_from_slice(&[12, 0, 1, 11, 0, 1, 0, 0, 0, 4]);
        body.extend_from_slice(b"shop");
        body.push(0);
    }
    if with_spans {
        // Field 2, list<Span> of size 0.
        body.extend_from_slice(&[15, 0, 2, 12, 0, 0, 0, 0]);
    }
    body.push(0);
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jaeger_batch_without_a_required_field_is_refused_naming_it() {
    let (_vivace, ports) = start_legacy();
    let client = reqwest::Client::new();
    let jaeger = format!("http://127.0.0.1:{}/api/traces", ports.jaeger_http);
    let cases = [
        ("an empty struct", vec![0u8], "process"),
        ("no spans", thrift_batch(true, false), "spans"),
        ("no process", thrift_batch(false, true), "process"),
    ];
    for (what, body, missing) in &cases {
        let response = client
            .post(&jaeger)
            .header("content-type", "application/x-thrift")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{what}");
        let text = response.text().await.unwrap();
        assert!(
            text.contains(&format!("required {missing}")),
            "{what}: the refusal names the missing field: {text}"
        );
    }
    assert_eq!(cases.len(), 3);
    let complete = client
        .post(&jaeger)
        .header("content-type", "application/x-thrift")
        .body(thrift_batch(true, true))
        .send()
        .await
        .unwrap();
    assert_eq!(complete.status(), 202);
}

#[test]
fn the_jaeger_udp_agent_and_multitenancy_together_refuse_to_start() {
    let data = tempfile::tempdir().unwrap();
    let config = common::write_config(
        data.path(),
        common::Ports::pick(),
        &format!(
            "multitenancy_enabled: true\ndistributor:\n  receivers:\n    jaeger:\n      protocols:\n        thrift_compact:\n          endpoint: 127.0.0.1:{}\n",
            free_port()
        ),
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vivace"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("distributor.receivers.jaeger.protocols.thrift_compact")
            && stderr.contains("multitenancy_enabled"),
        "the refusal names both settings: {stderr}"
    );
}

/// The Jaeger agent's thrift-binary UDP port (:6832): the same spans as over OTLP.
#[tokio::test(flavor = "multi_thread")]
async fn jaeger_agent_thrift_binary_carries_the_same_spans_as_otlp() {
    let port = free_port();
    let legacy = Vivace::start(&format!(
        "distributor:\n  receivers:\n    jaeger:\n      protocols:\n        thrift_binary:\n          endpoint: 127.0.0.1:{port}\n"
    ));
    let otlp = Vivace::start("");
    let output = run_python(
        "legacy_send.py",
        &[
            "--protocol",
            "jaeger-udp-binary",
            "--endpoint",
            &format!("127.0.0.1:{port}"),
            "--otlp-endpoint",
            &otlp.otlp_http_url(),
            "--traces",
            "3",
            "--service",
            "legacy-jaeger-udp-binary",
        ],
    );
    let trace_ids: Vec<&str> = output.lines().filter(|line| line.len() == 32).collect();
    assert_eq!(trace_ids.len(), 3, "{output}");
    for trace_id in trace_ids {
        let want = wait_for_trace(&otlp, trace_id, 4).await;
        let got = wait_for_trace(&legacy, trace_id, 4).await;
        compare("jaeger-udp-binary", &got, &want);
    }
    let metrics = reqwest::get(legacy.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vivace_receiver_jaeger_udp_packets_total{outcome=\"malformed\"} 0"),
        "{metrics}"
    );
}

/// The string value of attribute `key` of a canonical span (or resource).
fn string_attribute<'a>(attributes: &'a Value, key: &str) -> &'a str {
    attributes[key]["stringValue"].as_str().unwrap_or_default()
}

fn duration_nanos(span: &Value) -> i64 {
    nanos(&span["endTimeUnixNano"]) - nanos(&span["startTimeUnixNano"])
}

/// py_zipkin (Zipkin v1, Thrift by default, and JSON) through `/api/v1/spans` on the Zipkin
/// port: every span comes back with its name, service, kind, parent, tags and duration.
#[tokio::test(flavor = "multi_thread")]
async fn py_zipkin_sends_zipkin_v1_thrift_and_json() {
    let (vivace, ports) = start_legacy();
    let endpoint = format!("http://127.0.0.1:{}/api/v1/spans", ports.zipkin);
    for (encoding, trace_id_bits) in [("V1_THRIFT", "128"), ("V1_JSON", "64")] {
        let service = format!("py-zipkin-{}", encoding.to_ascii_lowercase());
        let output = run_python(
            "zipkin_v1_send.py",
            &[
                "--encoding",
                encoding,
                "--endpoint",
                &endpoint,
                "--service",
                &service,
                "--trace-id-bits",
                trace_id_bits,
            ],
        );
        let sent: Value = serde_json::from_str(output.lines().last().unwrap_or_default())
            .unwrap_or_else(|error| panic!("{encoding}: {error}: {output}"));
        let trace_id = sent["trace_id"].as_str().unwrap_or_default();
        let spans = wait_for_trace(&vivace, trace_id, 4).await;
        let by_name: BTreeMap<&str, &Value> = spans
            .values()
            .map(|span| (span["name"].as_str().unwrap_or_default(), span))
            .collect();
        assert_eq!(
            by_name.keys().copied().collect::<Vec<_>>(),
            ["checkout", "db query", "render", "reserve"],
            "{encoding}"
        );
        let (checkout, query, reserve, render) = (
            by_name["checkout"],
            by_name["db query"],
            by_name["reserve"],
            by_name["render"],
        );
        let inventory = format!("{service}-inventory");
        for (span, want_service, want_kind, want_parent) in [
            (checkout, &service, json!("SPAN_KIND_SERVER"), &Value::Null),
            (
                query,
                &service,
                json!("SPAN_KIND_CLIENT"),
                &checkout["spanId"],
            ),
            (
                reserve,
                &inventory,
                json!("SPAN_KIND_SERVER"),
                &query["spanId"],
            ),
            (render, &service, Value::Null, &checkout["spanId"]),
        ] {
            let context = format!("{encoding} {}", span["name"]);
            assert_eq!(
                string_attribute(&span["resource"], "service.name"),
                want_service,
                "{context}: service"
            );
            assert_eq!(span["kind"], want_kind, "{context}: kind");
            assert_eq!(&span["parentSpanId"], want_parent, "{context}: parent");
        }
        assert_eq!(
            string_attribute(&checkout["attributes"], "http.method"),
            "GET"
        );
        assert_eq!(string_attribute(&render["attributes"], "lc"), "templates");
        for (key, value) in [
            ("db", "orders"),
            ("rows", "3"),
            ("peer.service", "postgres"),
            ("net.peer.ip", "10.0.0.7"),
        ] {
            assert_eq!(
                string_attribute(&query["attributes"], key),
                value,
                "{encoding} {key}"
            );
        }
        assert_eq!(
            query["attributes"]["net.peer.port"],
            json!({ "intValue": "5432" }),
            "{encoding}"
        );
        let events = query["events"].as_array().cloned().unwrap_or_default();
        assert_eq!(events.len(), 1, "{encoding}: {events:?}");
        assert_eq!(events[0]["name"], "retry");
        // Times travel in microseconds: the fixed spans come back to the microsecond.
        let query_start = sent["db_query_start_us"].as_i64().unwrap_or_default() * 1000;
        assert!(
            (nanos(&query["startTimeUnixNano"]) - query_start).abs() <= 1000,
            "{encoding}: db query start"
        );
        assert!(
            (duration_nanos(query) - 50_000_000).abs() <= 1000,
            "{encoding}: db query lasts 50 ms"
        );
        assert!(
            (duration_nanos(render) - 5_000_000).abs() <= 1000,
            "{encoding}: render lasts 5 ms"
        );
        assert!(
            duration_nanos(checkout) >= 20_000_000,
            "{encoding}: checkout"
        );
        // The shared server span has no timestamp or duration: sr to ss gives them.
        assert!(
            duration_nanos(reserve) >= 10_000_000 && nanos(&reserve["startTimeUnixNano"]) > 0,
            "{encoding}: reserve from its sr/ss annotations"
        );
    }
}
