//! Bad input: malformed protobuf, malformed JSON, oversized bodies, bad trace IDs and bad
//! tenant IDs each get a clear 4xx (or gRPC INVALID_ARGUMENT) and the server keeps serving.

mod common;

use std::io::Write;

use common::Vivace;

async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut request = client
        .post(url)
        .header("Content-Type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_payloads_get_clear_client_errors() {
    let vivace =
        Vivace::start("distributor:\n  max_request_bytes: 65536\n  max_inflight_bytes: 1048576\n");
    let client = reqwest::Client::new();
    let traces = format!("{}/v1/traces", vivace.otlp_http_url());

    let (status, body) = post(
        &client,
        &traces,
        "application/x-protobuf",
        vec![0xff, 0xff, 0xff, 0x01, 0x02],
        &[],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("invalid ExportTraceServiceRequest protobuf"),
        "{body}"
    );

    let (status, body) = post(
        &client,
        &traces,
        "application/json",
        b"{\"resourceSpans\": [".to_vec(),
        &[],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not valid JSON"), "{body}");

    let bad_id = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"0102030405060708"}]}]}]}"#;
    let (status, body) = post(&client, &traces, "application/json", bad_id.to_vec(), &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("traceId"),
        "the error names the field: {body}"
    );

    let (status, body) = post(
        &client,
        &traces,
        "application/x-protobuf",
        vec![0u8; 200_000],
        &[],
    )
    .await;
    assert_eq!(status, 413, "{body}");

    let bomb = gzip(&vec![b' '; 10_000_000]);
    let (status, body) = post(
        &client,
        &traces,
        "application/json",
        bomb,
        &[("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(status, 413, "decompressed size is limited too: {body}");

    let (status, body) = post(
        &client,
        &traces,
        "application/json",
        b"not gzip".to_vec(),
        &[("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = post(&client, &traces, "text/plain", b"hello".to_vec(), &[]).await;
    assert_eq!(status, 415, "{body}");

    let response = client
        .get(&traces)
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);

    // Spans with an all-zero trace ID are refused one by one: partial success.
    let zero = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00000000000000000000000000000000","spanId":"0102030405060708","name":"z"},
        {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"ok"}]}]}]}"#;
    let (status, body) = post(&client, &traces, "application/json", zero.to_vec(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1", "{body}");

    for (path, expected_status, expected_text) in [
        (
            "/api/traces/not-a-trace-id",
            400,
            "trace IDs can only contain hex characters: invalid character 'n' at position 1",
        ),
        (
            "/api/v2/traces/0123456789abcdef0123456789abcdef0",
            400,
            "trace IDs can't be larger than 128 bits",
        ),
        ("/api/traces/0123456789abcdef0123456789abcdef", 404, ""),
        ("/api/v2/traces/0123456789abcdef0123456789abcdef", 404, ""),
        (
            "/api/traces/0102030405060708090a0b0c0d0e0f10?start=20&end=10",
            400,
            "http parameter start must be before end. received start=20 end=10",
        ),
        ("/api/nope", 404, "404 page not found"),
    ] {
        let response = client.get(vivace.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected_status, "{path}");
        assert_eq!(
            response.text().await.unwrap().trim_end(),
            expected_text,
            "{path}"
        );
    }

    // The trace that was accepted next to the refused span is readable, short ID forms too.
    let response = client
        .get(vivace.url("/api/traces/102030405060708090a0b0c0d0e0f10"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let ready = client.get(vivace.url("/ready")).send().await.unwrap();
    assert_eq!(
        ready.status().as_u16(),
        200,
        "still serving after bad input"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_required_and_validated_with_multitenancy() {
    let vivace = Vivace::start("multitenancy_enabled: true\n");
    let client = reqwest::Client::new();
    let traces = format!("{}/v1/traces", vivace.otlp_http_url());
    let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"t"}]}]}]}"#;

    let (status, text) = post(&client, &traces, "application/json", body.to_vec(), &[]).await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = post(
        &client,
        &traces,
        "application/json",
        body.to_vec(),
        &[("X-Scope-OrgID", "../evil")],
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("unsupported character '/'"), "{text}");
    let (status, text) = post(
        &client,
        &traces,
        "application/json",
        body.to_vec(),
        &[("X-Scope-OrgID", "team-a")],
    )
    .await;
    assert_eq!(status, 200, "{text}");

    let id = "0102030405060708090a0b0c0d0e0f10";
    let response = client
        .get(vivace.url(&format!("/api/traces/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.text().await.unwrap(), "no org id");
    let response = client
        .get(vivace.url(&format!("/api/traces/{id}")))
        .header("X-Scope-OrgID", "team-b")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404, "tenants are isolated");
    let response = client
        .get(vivace.url(&format!("/api/traces/{id}")))
        .header("X-Scope-OrgID", "team-a")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = client
        .get(vivace.url(&format!("/api/traces/{id}")))
        .header("X-Scope-OrgID", "team-b|team-a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "cross-tenant read with a|b"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_bad_payloads_are_invalid_argument() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    let vivace = Vivace::start("multitenancy_enabled: true\n");
    let channel = tonic::transport::Endpoint::from_shared(vivace.otlp_grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();

    // A raw, malformed protobuf body through the same method path.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0x01]));
    request
        .metadata_mut()
        .insert("x-scope-orgid", "team-a".parse().unwrap());
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let status = grpc
        .unary::<_, bytes::Bytes, _>(request, path, vivace::receiver::ingest::RawCodec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("invalid ExportTraceServiceRequest protobuf"),
        "{status:?}"
    );

    let mut client = TraceServiceClient::new(channel);
    let status = client
        .export(ExportTraceServiceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let mut request = tonic::Request::new(ExportTraceServiceRequest::default());
    request
        .metadata_mut()
        .insert("x-scope-orgid", "a/b".parse().unwrap());
    let status = client.export(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}
