//! Tenant isolation: with multi-tenancy on, tenant A's data is invisible to tenant B on
//! every read endpoint (while it is in memory and after it was flushed to blocks), every
//! tenant endpoint answers 401 without `X-Scope-OrgID`, and bad tenant IDs (`../x`, empty, too
//! long, bad characters) get 400 on every endpoint, ingest included.
//!
//! Adding an endpoint is one entry in `ENDPOINTS`.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::Vivace;

const TENANT_A: &str = "tenant-a";
const TENANT_B: &str = "tenant-b";
/// Appears in tenant A's service name, span name, attribute key and value and alert labels.
const SECRET: &str = "secretofa";
const TRACE_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const FINGERPRINT: &str = "5ec12e7a0f0a0001";
const TRACE_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

/// One endpoint of the API: a GET path (`{trace}` and `{fingerprint}` are filled in), and
/// whether tenant A's own answer must show A's data (proving the endpoint reads something).
struct Endpoint {
    path: &'static str,
    a_sees_secret: bool,
    /// The answer repeats the caller's own parameters (which name A's service): only A's trace
    /// IDs and alert fingerprints count as leaks there.
    echoes_request: bool,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "/api/metrics/query_range?q=%7B%7D%20%7C%20rate()%20by%20(resource.service.name)",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path:
            "/api/metrics/query?q=%7B%7D%20%7C%20count_over_time()%20by%20(resource.service.name)",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/logs?service=secretofa-svc",
        a_sees_secret: false,
        echoes_request: true,
    },
    Endpoint {
        path: "/api/logs?traceID={trace}",
        a_sees_secret: false,
        echoes_request: false,
    },
    Endpoint {
        path: "/loki/api/v1/labels",
        a_sees_secret: false,
        echoes_request: false,
    },
    Endpoint {
        path: "/loki/api/v1/query_range?query=%7Bservice_name%3D%22secretofa-svc%22%7D",
        a_sees_secret: false,
        echoes_request: true,
    },
    Endpoint {
        path: "/api/traces/{trace}",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/v2/traces/{trace}",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/search",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/search?tags=service.name%3Dsecretofa-svc",
        a_sees_secret: true,
        echoes_request: true,
    },
    Endpoint {
        path: "/api/search?q=%7Bresource.service.name%3D%22secretofa-svc%22%7D",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/search?q=%7B%7D",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/search/tags",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/v2/search/tags",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/search/tag/service.name/values",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/search/tag/secretofa.key/values",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/v2/search/tag/resource.service.name/values",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/v2/search/tag/span.secretofa.key/values",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/v2/search/tag/name/values",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/alerts",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/alerts/{fingerprint}",
        a_sees_secret: true,
        echoes_request: false,
    },
    Endpoint {
        path: "/api/alerts/open?alertname=SecretofaDown&service=secretofa-svc",
        a_sees_secret: true,
        echoes_request: true,
    },
];

/// Endpoints for operators that need no tenant: they answer without `X-Scope-OrgID`.
const OPERATIONAL: &[&str] = &["/ready", "/api/echo", "/api/status/buildinfo", "/metrics"];

/// Tenant IDs every endpoint must refuse with 400.
fn bad_tenants() -> Vec<String> {
    vec![
        "../x".into(),
        "..".into(),
        "a/b".into(),
        "a b".into(),
        "a\\b".into(),
        "tenant%2f".into(),
        "x".repeat(151),
        "ok|../x".into(),
    ]
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn trace_json(trace_id: &str, service: &str, name: &str, key: &str, value: &str) -> String {
    let end = now_nanos();
    let start = end - 5_000_000;
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},
"scopeSpans":[{{"spans":[{{"traceId":"{trace_id}","spanId":"0102030405060708","name":"{name}","kind":2,
"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}",
"attributes":[{{"key":"{key}","value":{{"stringValue":"{value}"}}}}],"status":{{"code":2}}}}]}}]}}]}}"#
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GET as `tenant` (no header when `None`): status and body plus any Location header.
async fn get(client: &reqwest::Client, url: &str, tenant: Option<&str>) -> (u16, String) {
    let mut request = client.get(url);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.text().await.unwrap_or_default();
    (status, format!("{location}\n{body}"))
}

async fn push(
    client: &reqwest::Client,
    vivace: &Vivace,
    tenant: Option<&str>,
    body: String,
) -> (u16, String) {
    let mut request = client
        .post(format!("{}/v1/traces", vivace.otlp_http_url()))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

async fn post_webhook(
    client: &reqwest::Client,
    vivace: &Vivace,
    query: &str,
    tenant: Option<&str>,
) -> (u16, String) {
    let payload = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "vivace",
        "groupKey": "{}:{alertname=\"SecretofaDown\"}",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "SecretofaDown", "service": "secretofa-svc"},
            "annotations": {"summary": "secretofa is down"},
            "startsAt": chrono::Utc::now().to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": FINGERPRINT
        }]
    });
    let mut request = client
        .post(vivace.url(&format!("/api/alerts/webhook{query}")))
        .json(&payload);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// The URL path of `path`; searches and tag lookups get a window around now so they also
/// read blocks (without one they read recent data only, as in Tempo).
fn fill(path: &str) -> String {
    let path = path
        .replace("{trace}", TRACE_A)
        .replace("{fingerprint}", FINGERPRINT);
    if !path.contains("/search") {
        return path;
    }
    let now = now_nanos() / 1_000_000_000;
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}start={}&end={}", now - 3600, now + 60)
}

/// Every endpoint: A sees its data, B (and B|other) never sees any of it.
async fn check_isolation(client: &reqwest::Client, vivace: &Vivace, phase: &str) {
    for endpoint in ENDPOINTS {
        let url = vivace.url(&fill(endpoint.path));
        let (status, body) = get(client, &url, Some(TENANT_A)).await;
        assert!(
            status < 400,
            "{phase}: {} as A: {status} {body}",
            endpoint.path
        );
        if endpoint.a_sees_secret {
            assert!(
                body.contains(SECRET) || body.contains(TRACE_A) || body.contains(FINGERPRINT),
                "{phase}: {} as A shows none of A's data: {body}",
                endpoint.path
            );
        }
        for reader in [TENANT_B, "tenant-b|tenant-c"] {
            let (status, body) = get(client, &url, Some(reader)).await;
            assert!(
                status < 500,
                "{phase}: {} as {reader}: {status} {body}",
                endpoint.path
            );
            // A 404 may echo the ID the caller asked for; anything else is a leak.
            let leaks = match (endpoint.echoes_request, status == 404) {
                (true, _) => vec![TRACE_A, FINGERPRINT],
                (false, true) => vec![SECRET],
                (false, false) => vec![SECRET, TRACE_A, FINGERPRINT],
            };
            for leak in leaks {
                assert!(
                    !body.contains(leak),
                    "{phase}: {} as {reader} leaks {leak:?} of tenant A: {status} {body}",
                    endpoint.path
                );
            }
        }
    }
    // B's own trace is readable by B, and not by A.
    let url = vivace.url(&format!("/api/traces/{TRACE_B}"));
    assert_eq!(get(client, &url, Some(TENANT_B)).await.0, 200, "{phase}");
    assert_eq!(get(client, &url, Some(TENANT_A)).await.0, 404, "{phase}");
    let url = vivace.url(&format!("/api/v2/traces/{TRACE_A}"));
    assert_eq!(get(client, &url, Some(TENANT_B)).await.0, 404, "{phase}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_isolated_on_every_endpoint() {
    let mut vivace = Vivace::start("multitenancy_enabled: true\n");
    let client = client();

    // Ingest: 401 without a tenant, 400 for each bad one, 200 for A and B.
    let body_a = trace_json(
        TRACE_A,
        "secretofa-svc",
        "secretofa-op",
        "secretofa.key",
        "secretofa-value",
    );
    let (status, text) = push(&client, &vivace, None, body_a.clone()).await;
    assert_eq!(status, 401, "{text}");
    for bad in bad_tenants() {
        let (status, text) = push(&client, &vivace, Some(&bad), body_a.clone()).await;
        assert_eq!(status, 400, "ingest with tenant {bad:?}: {text}");
    }
    let (status, text) = push(&client, &vivace, Some(TENANT_A), body_a).await;
    assert_eq!(status, 200, "{text}");
    let body_b = trace_json(
        TRACE_B,
        "public-svc",
        "public-op",
        "public.key",
        "public-value",
    );
    let (status, text) = push(&client, &vivace, Some(TENANT_B), body_b).await;
    assert_eq!(status, 200, "{text}");

    // Alerts: the webhook needs a tenant too (header or ?tenant=).
    assert_eq!(post_webhook(&client, &vivace, "", None).await.0, 401);
    for bad in ["..%2Fx", "a%20b", "a%2Fb"] {
        let (status, text) = post_webhook(&client, &vivace, &format!("?tenant={bad}"), None).await;
        assert_eq!(status, 400, "webhook tenant {bad}: {text}");
    }
    let (status, text) = post_webhook(&client, &vivace, "?tenant=tenant-a", None).await;
    assert!(status < 300, "{status} {text}");

    // Every tenant endpoint: 401 without the header, 400 with a bad tenant.
    for endpoint in ENDPOINTS {
        let url = vivace.url(&fill(endpoint.path));
        let (status, body) = get(&client, &url, None).await;
        assert_eq!(
            status, 401,
            "{} without X-Scope-OrgID: {body}",
            endpoint.path
        );
        for bad in bad_tenants() {
            let (status, body) = get(&client, &url, Some(&bad)).await;
            assert_eq!(status, 400, "{} with tenant {bad:?}: {body}", endpoint.path);
        }
        let (status, body) = get(&client, &url, Some("")).await;
        assert_eq!(
            status, 401,
            "{} with an empty tenant: {body}",
            endpoint.path
        );
    }
    for path in OPERATIONAL {
        let (status, body) = get(&client, &vivace.url(path), None).await;
        assert_eq!(
            status, 200,
            "{path} is for operators and needs no tenant: {body}"
        );
    }

    check_isolation(&client, &vivace, "in memory").await;

    // Graceful stop flushes every trace into blocks; afterwards reads come from storage.
    vivace.terminate();
    let data = vivace.data.clone();
    for tenant in [TENANT_A, TENANT_B] {
        assert!(
            data.join("blocks").join(tenant).is_dir(),
            "tenant {tenant} has its own directory of blocks"
        );
    }
    vivace.restart();
    check_isolation(&client, &vivace, "from blocks").await;
}

/// `overrides`: a tenant's rate limit refuses its pushes with Tempo's `RATE_LIMITED` 429
/// while another tenant keeps writing; a too-large trace is refused alone (partial success,
/// `TRACE_TOO_LARGE`); long attributes are cut; a per-tenant search range limit gives 400.
#[tokio::test(flavor = "multi_thread")]
async fn per_tenant_limits_apply() {
    let vivace = Vivace::start(
        r#"
multitenancy_enabled: true
overrides:
  defaults:
    ingestion:
      max_bytes_per_trace: 3000
      max_attribute_bytes: 16
  per_tenant:
    small:
      ingestion:
        rate_limit_bytes: 10
        burst_size_bytes: 2500
      read:
        max_search_duration: 1h
"#,
    );
    let client = client();
    let trace_id = |n: u32| format!("{n:032x}");

    // Rate: "small" has a 2500-byte burst refilled at 10 B/s; "big" keeps the default.
    let mut refused = None;
    for n in 1..=10 {
        let body = trace_json(&trace_id(n), "svc", &"x".repeat(600), "k", "v");
        let (status, text) = push(&client, &vivace, Some("small"), body.clone()).await;
        if status == 429 {
            refused = Some((n, text));
            break;
        }
        assert_eq!(status, 200, "{text}");
        let (status, text) = push(&client, &vivace, Some("big"), body).await;
        assert_eq!(status, 200, "another tenant is not limited: {text}");
    }
    let (n, text) = refused.expect("the small tenant's burst is used up within 10 pushes");
    assert!(n > 1, "the first push fits the burst");
    assert!(
        text.contains("RATE_LIMITED: ingestion rate limit (10 bytes) exceeded while adding")
            && text.contains("for user small"),
        "{text}"
    );
    let body = trace_json(&trace_id(99), "svc", "op", "k", "v");
    assert_eq!(push(&client, &vivace, Some("big"), body).await.0, 200);

    // Trace size: one trace of many spans is refused, the small trace beside it is stored.
    let end = now_nanos();
    let mut spans = Vec::new();
    for span in 1..=60u32 {
        spans.push(format!(
            r#"{{"traceId":"{}","spanId":"{span:016x}","name":"span-{span}","startTimeUnixNano":"{}","endTimeUnixNano":"{end}"}}"#,
            trace_id(1000),
            end - 1000
        ));
    }
    spans.push(format!(
        r#"{{"traceId":"{}","spanId":"0000000000000001","name":"small","startTimeUnixNano":"{}","endTimeUnixNano":"{end}",
"attributes":[{{"key":"long.value","value":{{"stringValue":"{}"}}}}]}}"#,
        trace_id(1001),
        end - 1000,
        "v".repeat(100)
    ));
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    let (status, text) = push(&client, &vivace, Some("big"), body).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("TRACE_TOO_LARGE: max size of trace (3000) exceeded"),
        "{text}"
    );
    assert!(text.contains("60"), "60 spans refused: {text}");
    let (status, _) = get(
        &client,
        &vivace.url(&format!("/api/traces/{}", trace_id(1000))),
        Some("big"),
    )
    .await;
    assert_eq!(status, 404, "the too-large trace is not stored");
    let (status, body) = get(
        &client,
        &vivace.url(&format!("/api/v2/traces/{}", trace_id(1001))),
        Some("big"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("\"{}\"", "v".repeat(16))),
        "value cut to 16 bytes: {body}"
    );
    assert!(!body.contains(&"v".repeat(17)), "{body}");

    // The size limit holds across pushes: pieces of ten spans each fit alone, but the trace
    // they gather into is refused once it would pass 3000 bytes; what was stored stays.
    let mut refused_at = None;
    for piece in 0..10u32 {
        let end = now_nanos();
        let spans: Vec<String> = (1..=10u32)
            .map(|span| {
                format!(
                    r#"{{"traceId":"{}","spanId":"{:016x}","name":"span-{span}","startTimeUnixNano":"{}","endTimeUnixNano":"{end}"}}"#,
                    trace_id(2000),
                    piece * 100 + span,
                    end - 1000
                )
            })
            .collect();
        let body = format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        );
        let (status, text) = push(&client, &vivace, Some("big"), body).await;
        assert_eq!(status, 200, "{text}");
        if text.contains("TRACE_TOO_LARGE") {
            refused_at = Some(piece);
            break;
        }
    }
    let refused_at = refused_at.expect("the gathering trace passes 3000 bytes within 10 pieces");
    assert!(refused_at >= 1, "one piece alone fits");
    let (status, body) = get(
        &client,
        &vivace.url(&format!("/api/v2/traces/{}", trace_id(2000))),
        Some("big"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.matches("\"spanId\"").count(),
        refused_at as usize * 10,
        "the pieces before the refusal are stored: {body}"
    );

    // Search range: "small" may search 1h, others the global 168h.
    let now = now_nanos() / 1_000_000_000;
    let url = vivace.url(&format!("/api/search?start={}&end={now}", now - 7200));
    let (status, body) = get(&client, &url, Some("small")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("range specified by start and end exceeds 1h0m0s"),
        "{body}"
    );
    let (status, body) = get(&client, &url, Some("big")).await;
    assert_eq!(status, 200, "{body}");
    let url = vivace.url(&format!(
        "/api/v2/search/tags?start={}&end={now}",
        now - 7200
    ));
    assert_eq!(get(&client, &url, Some("small")).await.0, 400);

    let (_, metrics) = get(&client, &vivace.url("/metrics"), None).await;
    for line in [
        "tempo_discarded_spans_total{reason=\"rate_limited\"} 1",
        // The 60-span trace, and the ten-span piece refused across pushes.
        "tempo_discarded_spans_total{reason=\"trace_too_large\"} 70",
        "tempo_distributor_attributes_truncated_total{tenant=\"big\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}
