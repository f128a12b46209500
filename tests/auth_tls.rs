//! `server.auth` and `server.tls` against the real binary with real clients: every TCP
//! listener (API and UI, gRPC API on both ports, OTLP gRPC and HTTP, Zipkin, Jaeger thrift
//! HTTP and gRPC, the Loki port) refuses requests without a configured credential (401 with
//! `WWW-Authenticate`, or gRPC `UNAUTHENTICATED`) and serves them with one; `/ready` and
//! `/metrics` stay open; a browser's basic auth reaches the UI; TLS serves HTTP/1.1 and HTTP/2
//! by ALPN, so the OpenTelemetry SDK's gRPC exporter and a tonic gRPC client work over it; and
//! a misconfiguration stops startup naming its cause.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::json;
use tonic::Code;
use vivace::api::tempopb::{SearchRequest, SearchResponse};

use common::{free_port, run_python, Vivace};

const TOKEN: &str = "tok-3f9c1d7e";

/// Extra ports of the receivers this test turns on.
struct ExtraPorts {
    zipkin: u16,
    jaeger_http: u16,
    jaeger_grpc: u16,
    loki: u16,
}

fn receivers_yaml(ports: &ExtraPorts) -> String {
    format!(
        "distributor:\n  receivers:\n    zipkin:\n      endpoint: 127.0.0.1:{}\n    jaeger:\n      protocols:\n        thrift_http:\n          endpoint: 127.0.0.1:{}\n        grpc:\n          endpoint: 127.0.0.1:{}\nlogs:\n  loki_listen_port: {}\n",
        ports.zipkin, ports.jaeger_http, ports.jaeger_grpc, ports.loki
    )
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn otlp_json(trace_id: &str, name: &str) -> String {
    let now = unix_nanos();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "auth-test"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "0102030405060708", "name": name, "kind": 2,
            "startTimeUnixNano": now.to_string(), "endTimeUnixNano": (now + 1_000_000).to_string()
        }]}]
    }]})
    .to_string()
}

fn otlp_proto(trace_id: &[u8; 16], name: &str) -> ExportTraceServiceRequest {
    let now = unix_nanos();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.to_vec(),
                    span_id: vec![9; 8],
                    name: name.into(),
                    start_time_unix_nano: now,
                    end_time_unix_nano: now + 1_000_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A minimal thrift-binary `jaeger.Batch`: a process with a service name and no spans.
fn jaeger_thrift_batch() -> Vec<u8> {
    let mut body = vec![12, 0, 1, 11, 0, 1, 0, 0, 0, 4];
    body.extend_from_slice(b"jagr");
    body.push(0);
    body.extend_from_slice(&[15, 0, 2, 12, 0, 0, 0, 0, 0]);
    body
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn with_authorization<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

async fn plain_channel(port: u16) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connect over HTTP/2")
}

/// A gRPC channel over TLS that trusts `ca_pem` and insists on `h2` by ALPN.
async fn tls_channel(port: u16, ca_pem: &[u8]) -> tonic::transport::Channel {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::codegen::http::Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let tls = connector.connect(name, tcp).await?;
                if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Err(std::io::Error::other(
                        "the server did not choose h2 by ALPN",
                    ));
                }
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .expect("connect over TLS")
}

/// `tempopb.StreamingQuerier/Search` for `{}`: the messages, or the status.
async fn stream_search(
    channel: tonic::transport::Channel,
    authorization: Option<&str>,
) -> Result<Vec<SearchResponse>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let request = SearchRequest {
        query: "{}".into(),
        limit: 20,
        ..Default::default()
    };
    let codec = tonic_prost::ProstCodec::<SearchRequest, SearchResponse>::default();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/tempopb.StreamingQuerier/Search");
    let mut stream = grpc
        .server_streaming(with_authorization(request, authorization), path, codec)
        .await?
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// `jaeger.api_v2.CollectorService/PostSpans` with an empty batch.
async fn jaeger_post_spans(port: u16, authorization: Option<&str>) -> Result<(), tonic::Status> {
    use vivace::proto::jaeger::{Batch, PostSpansRequest, Process};
    let mut grpc = tonic::client::Grpc::new(plain_channel(port).await);
    grpc.ready().await.unwrap();
    let request = PostSpansRequest {
        batch: Some(Batch {
            process: Some(Process {
                service_name: "jaeger-grpc".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    // The response is an empty message; any prost message decodes it.
    let codec = tonic_prost::ProstCodec::<PostSpansRequest, PostSpansRequest>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/jaeger.api_v2.CollectorService/PostSpans",
    );
    grpc.unary(with_authorization(request, authorization), path, codec)
        .await
        .map(|_| ())
}

async fn otlp_grpc_export(
    channel: tonic::transport::Channel,
    trace_id: &[u8; 16],
    authorization: Option<&str>,
) -> Result<(), tonic::Status> {
    let mut client = TraceServiceClient::new(channel);
    client
        .export(with_authorization(
            otlp_proto(trace_id, "grpc-guarded"),
            authorization,
        ))
        .await
        .map(|_| ())
}

/// Polls `url` with `authorization` until it answers 200; the body.
async fn wait_for_trace(client: &reqwest::Client, url: &str, authorization: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client
            .get(url)
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            return response.text().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{url} still answers {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn challenges(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_token_guards_every_listener() {
    let extra = ExtraPorts {
        zipkin: free_port(),
        jaeger_http: free_port(),
        jaeger_grpc: free_port(),
        loki: free_port(),
    };
    let vivace = Vivace::start(&format!(
        "server:\n  auth:\n    bearer_tokens: [{TOKEN}]\n{}",
        receivers_yaml(&extra)
    ));
    let client = reqwest::Client::new();
    let good = bearer(TOKEN);
    let wrong = bearer("tok-wrong");

    // Health checks and scrapes stay open; everything else on the API port needs the token.
    for path in ["/ready", "/metrics"] {
        let response = client.get(vivace.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let echo = client.get(vivace.url("/api/echo")).send().await.unwrap();
    assert_eq!(echo.status(), 401);

    // OTLP/HTTP: no token, a wrong token, the token.
    let trace_id = "5b8efff798038103d269b633813fc60c";
    let push = |authorization: Option<&str>| {
        let mut request = client
            .post(format!("{}/v1/traces", vivace.otlp_http_url()))
            .header("content-type", "application/json")
            .body(otlp_json(trace_id, "http-guarded"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };
    let refused = push(None).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(challenges(&refused), vec![r#"Bearer realm="vivace""#]);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("authentication required") && text.contains("Bearer"),
        "{text}"
    );
    let refused = push(Some(&wrong)).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("invalid credentials"));
    assert_eq!(push(Some(&good)).await.unwrap().status(), 200);

    // The trace reads back with the token only.
    let trace_url = vivace.url(&format!("/api/v2/traces/{trace_id}"));
    let body = wait_for_trace(&client, &trace_url, &good).await;
    assert!(body.contains("http-guarded"), "{body}");
    let without = client.get(&trace_url).send().await.unwrap();
    assert_eq!(without.status(), 401);
    let logs = client
        .post(format!("{}/v1/logs", vivace.otlp_http_url()))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(logs.status(), 401);

    // OTLP/gRPC with tonic's generated client: metadata `authorization`.
    let grpc_trace = [7u8; 16];
    for authorization in [None, Some(wrong.as_str())] {
        let status = otlp_grpc_export(
            plain_channel(vivace.ports.otlp_grpc).await,
            &grpc_trace,
            authorization,
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    otlp_grpc_export(
        plain_channel(vivace.ports.otlp_grpc).await,
        &grpc_trace,
        Some(&good),
    )
    .await
    .expect("export with the token");
    let body = wait_for_trace(
        &client,
        &vivace.url(&format!("/api/v2/traces/{}", hex::encode(grpc_trace))),
        &good,
    )
    .await;
    assert!(body.contains("grpc-guarded"), "{body}");

    // The streaming query API on the HTTP port (h2c, where Grafana dials it) and the gRPC port.
    for port in [vivace.ports.http, vivace.ports.grpc] {
        let status = stream_search(plain_channel(port).await, None)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "port {port}: {status:?}"
        );
        assert!(
            status.message().contains("authentication required"),
            "{status:?}"
        );
        let messages = stream_search(plain_channel(port).await, Some(&good))
            .await
            .expect("search with the token");
        assert!(!messages.is_empty());
    }

    // Zipkin and Jaeger thrift over HTTP: 401 without, 202 with.
    let zipkin_span = json!([{
        "traceId": "00000000000000000000000000000abc", "id": "0000000000000abc", "name": "zipkin-guarded",
        "timestamp": unix_nanos() / 1000, "duration": 10, "localEndpoint": {"serviceName": "zipkin-test"}
    }])
    .to_string();
    let legacy = [
        (
            format!("http://127.0.0.1:{}/api/v2/spans", extra.zipkin),
            "application/json",
            zipkin_span.into_bytes(),
        ),
        (
            format!("http://127.0.0.1:{}/api/traces", extra.jaeger_http),
            "application/x-thrift",
            jaeger_thrift_batch(),
        ),
    ];
    for (url, content_type, body) in legacy {
        let refused = client
            .post(&url)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{url}");
        let accepted = client
            .post(&url)
            .header("content-type", content_type)
            .header("authorization", &good)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = accepted.status();
        assert_eq!(status, 202, "{url}: {}", accepted.text().await.unwrap());
    }

    // Jaeger gRPC.
    let status = jaeger_post_spans(extra.jaeger_grpc, None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    jaeger_post_spans(extra.jaeger_grpc, Some(&good))
        .await
        .expect("PostSpans with the token");

    // The separate Loki port: its /ready is open, its push is not.
    let loki = format!("http://127.0.0.1:{}", extra.loki);
    let ready = client.get(format!("{loki}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let push = json!({"streams": [{"stream": {"service_name": "loki"}, "values": [[unix_nanos().to_string(), "line"]]}]})
        .to_string();
    let refused = client
        .post(format!("{loki}/loki/api/v1/push"))
        .header("content-type", "application/json")
        .body(push.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let accepted = client
        .post(format!("{loki}/loki/api/v1/push"))
        .header("content-type", "application/json")
        .header("authorization", &good)
        .body(push)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 204);

    // Refusals are counted by reason on /metrics (which stays open to scrapes).
    let metrics = client
        .get(vivace.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |reason: &str| {
        let series = format!("vivace_auth_refused_total{{reason=\"{reason}\"}}");
        common::sample_value(&metrics, &series)
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert!(count("missing") >= 5.0, "{metrics}");
    assert!(count("invalid") >= 1.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_lets_a_browser_into_the_ui_and_tokens_come_from_a_file() {
    let secrets = tempfile::tempdir().unwrap();
    let tokens = secrets.path().join("tokens");
    std::fs::write(&tokens, "# grafana\nfile-token-1\n").unwrap();
    let vivace = Vivace::start(&format!(
        "server:\n  auth:\n    basic_users: [{{username: admin, password: 'pa:ss word'}}]\n    bearer_tokens_file: {}\n",
        tokens.display()
    ));
    let client = reqwest::Client::new();

    let refused = client.get(vivace.url("/search")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // Basic first: the challenge a browser answers with its login prompt.
    let offered = challenges(&refused);
    assert_eq!(offered.len(), 2, "{offered:?}");
    assert!(
        offered[0].starts_with(r#"Basic realm="vivace""#),
        "{offered:?}"
    );

    let admin = basic("admin", "pa:ss word");
    // What a browser sends once the user logged in: the page, its script and its fetches.
    for path in ["/search", "/static/common.js", "/api/search?q=%7B%7D"] {
        let response = client
            .get(vivace.url(path))
            .header("authorization", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let page = client
        .get(vivace.url("/search"))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap();
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    let wrong = client
        .get(vivace.url("/search"))
        .header("authorization", basic("admin", "pa:ss"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let from_file = client
        .get(vivace.url("/api/echo"))
        .header("authorization", bearer("file-token-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(from_file.status(), 200);
}

/// Starts vivace expecting it to exit; its log.
fn startup_failure(extra_yaml: &str) -> String {
    let mut vivace = Vivace::start_unready(extra_yaml);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = vivace.child.try_wait() {
            assert!(!status.success());
            return vivace.log_text();
        }
        assert!(
            Instant::now() < deadline,
            "vivace kept running with {extra_yaml}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn misconfigurations_stop_startup_naming_the_cause() {
    let udp = startup_failure(&format!(
        "server:\n  auth:\n    bearer_tokens: [{TOKEN}]\ndistributor:\n  receivers:\n    jaeger:\n      protocols:\n        thrift_compact:\n          endpoint: 127.0.0.1:{}\n",
        free_port()
    ));
    assert!(
        udp.contains("thrift_compact") && udp.contains("cannot carry credentials"),
        "{udp}"
    );
    let missing_cert = startup_failure(
        "server:\n  tls:\n    cert_file: /nonexistent/vivace-cert.pem\n    key_file: /nonexistent/vivace-key.pem\n",
    );
    assert!(
        missing_cert.contains("/nonexistent/vivace-cert.pem"),
        "{missing_cert}"
    );
    let half_tls = startup_failure("server:\n  tls:\n    cert_file: /tmp/cert.pem\n");
    assert!(half_tls.contains("server.tls.key_file"), "{half_tls}");
    let missing_tokens =
        startup_failure("server:\n  auth:\n    bearer_tokens_file: /nonexistent/vivace-tokens\n");
    assert!(
        missing_tokens.contains("/nonexistent/vivace-tokens"),
        "{missing_tokens}"
    );
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it, made with `openssl`; the
/// CA's PEM, and the certificate and key paths.
fn make_certificate(directory: &std::path::Path) -> (Vec<u8>, String, String) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(directory)
            .output()
            .expect("openssl must be installed");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=vivace test CA",
    ]);
    run(&ca);
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend([
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&request);
    std::fs::write(
        directory.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (
        std::fs::read(directory.join("ca.pem")).unwrap(),
        directory.join("cert.pem").display().to_string(),
        directory.join("key.pem").display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_http1_http2_and_grpc_on_every_port() {
    let directory = tempfile::tempdir().unwrap();
    let (ca_pem, cert_file, key_file) = make_certificate(directory.path());
    let mut vivace = Vivace::start_unready(&format!(
        "server:\n  auth:\n    bearer_tokens: [{TOKEN}]\n  tls:\n    cert_file: {cert_file}\n    key_file: {key_file}\n"
    ));
    let http_port = vivace.ports.http;
    vivace.wait_until(|| std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok());
    let root = reqwest::Certificate::from_pem(&ca_pem).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root.clone())
        .build()
        .unwrap();
    let http1 = reqwest::Client::builder()
        .add_root_certificate(root)
        .http1_only()
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|response| response.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", vivace.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let good = bearer(TOKEN);

    // HTTP/2 by ALPN, HTTP/1.1 for a client that offers only that; auth still applies.
    let echo = client
        .get(format!("{base}/api/echo"))
        .header("authorization", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    assert_eq!(echo.version(), reqwest::Version::HTTP_2);
    let echo = http1
        .get(format!("{base}/api/echo"))
        .header("authorization", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    assert_eq!(echo.version(), reqwest::Version::HTTP_11);
    let refused = client.get(format!("{base}/api/echo")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // Plain text on a TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{http_port}/ready"))
        .send()
        .await;
    assert!(!plain.is_ok_and(|response| response.status() == 200));

    // The OpenTelemetry SDK's exporters over https with the token: gRPC (grpcio needs h2 by
    // ALPN) and HTTP.
    let out = directory.path().join("expected.json");
    let mut sent = Vec::new();
    for (protocol, port) in [
        ("grpc", vivace.ports.otlp_grpc),
        ("http", vivace.ports.otlp_http),
    ] {
        run_python(
            "otel_send.py",
            &[
                "--protocol",
                protocol,
                "--endpoint",
                &format!("https://127.0.0.1:{port}"),
                "--traces",
                "2",
                "--service",
                &format!("tls-{protocol}"),
                "--header",
                &format!("authorization=Bearer {TOKEN}"),
                "--ca-file",
                &directory.path().join("ca.pem").display().to_string(),
                "--out",
                &out.display().to_string(),
            ],
        );
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let ids: Vec<String> = expected.as_object().unwrap().keys().cloned().collect();
        assert_eq!(ids.len(), 2);
        sent.extend(ids.into_iter().map(|id| (protocol, id)));
    }
    for (protocol, trace_id) in &sent {
        let body =
            wait_for_trace(&client, &format!("{base}/api/v2/traces/{trace_id}"), &good).await;
        assert!(body.contains(&format!("tls-{protocol}")), "{body}");
    }

    // tonic over TLS: the streaming querier on both API ports, and an OTLP export.
    for port in [http_port, vivace.ports.grpc] {
        let status = stream_search(tls_channel(port, &ca_pem).await, None)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        let messages = stream_search(tls_channel(port, &ca_pem).await, Some(&good))
            .await
            .expect("search over TLS");
        let found: usize = messages.iter().map(|message| message.traces.len()).sum();
        assert!(found >= sent.len(), "{found} traces of {}", sent.len());
    }
    let trace = [0x42u8; 16];
    otlp_grpc_export(
        tls_channel(vivace.ports.otlp_grpc, &ca_pem).await,
        &trace,
        Some(&good),
    )
    .await
    .expect("OTLP export over TLS");
    let body = wait_for_trace(
        &client,
        &format!("{base}/api/v2/traces/{}", hex::encode(trace)),
        &good,
    )
    .await;
    assert!(body.contains("grpc-guarded"), "{body}");
}
