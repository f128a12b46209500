//! Generator tenants: with multi-tenancy on, the metrics-generator keeps one registry per tenant.
//! Two tenants push spans (and OTLP metrics) of different services over OTLP/HTTP with
//! `X-Scope-OrgID`; then:
//! - `/metrics` scraped as one tenant shows only that tenant's generated and converted series,
//!   and without the header none of either (vivace's own metrics only);
//! - every remote-write request (seen by a small receiver decoding snappy + protobuf with
//!   vivace's own types) holds exactly one tenant's series and carries that tenant's
//!   `X-Scope-OrgID`, replacing the one configured on the target;
//! - two real Prometheus 2.42, each the target of one tenant (`tenants: [..]`), ingest only
//!   their tenant's series;
//! - the UI's service-graph API lists only the caller's tenant's services;
//! - the series limit is per tenant: a tenant past its limit does not push another into the
//!   overflow series, and `overrides.per_tenant` raises one tenant's limit.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::HeaderMap;
use common::prometheus::Prometheus;
use common::Vivace;
use parking_lot::Mutex;
use vivace::generator::remote_write::{decode, WriteRequest};

/// Each tenant's services start with its word; no word appears in the other tenant's data.
const TENANTS: [(&str, &str); 2] = [("tenant-a", "alpha"), ("tenant-b", "bravo")];

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// One trace of `<word>-frontend` calling `<word>-checkout` (a client and a server span).
fn call_json(word: &str, trace_id: &str) -> String {
    let end = now_nanos() - 1_000_000;
    let start = end - 300_000_000;
    let resource = |service: &str, span: String| {
        format!(
            r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{span}]}}]}}"#
        )
    };
    let client = format!(
        r#"{{"traceId":"{trace_id}","spanId":"0000000000000001","name":"GET /{word}","kind":3,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"}}"#
    );
    let server = format!(
        r#"{{"traceId":"{trace_id}","spanId":"0000000000000002","parentSpanId":"0000000000000001","name":"GET /{word}","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}"#,
        start + 10_000_000,
        end - 10_000_000
    );
    format!(
        r#"{{"resourceSpans":[{},{}]}}"#,
        resource(&format!("{word}-frontend"), client),
        resource(&format!("{word}-checkout"), server)
    )
}

/// An OTLP gauge `<word>_queue_depth` from service `<word>-app`.
fn gauge_json(word: &str) -> String {
    serde_json::json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": format!("{word}-app")}}]},
        "scopeMetrics": [{"metrics": [{
            "name": format!("{word}.queue.depth"),
            "gauge": {"dataPoints": [{"timeUnixNano": (now_nanos() - 1_000_000).to_string(), "asInt": "7"}]}
        }]}]
    }]})
    .to_string()
}

async fn post(client: &reqwest::Client, url: String, tenant: &str, body: String) -> (u16, String) {
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Scope-OrgID", tenant)
        .body(body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

async fn get(client: &reqwest::Client, url: &str, tenant: Option<&str>) -> (u16, String) {
    let mut request = client.get(url);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// What the receiver saw: each request's `X-Scope-OrgID` values and its decoded body.
type Received = Arc<Mutex<Vec<(Vec<String>, WriteRequest)>>>;

/// A remote-write receiver on a loopback port: decodes every request with vivace's types.
async fn start_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let handler = {
        let received = Arc::clone(&received);
        move |headers: HeaderMap, body: Bytes| async move {
            let org_ids = headers
                .get_all("x-scope-orgid")
                .iter()
                .map(|value| value.to_str().unwrap_or("<not ascii>").to_string())
                .collect();
            match decode(&body) {
                Ok(request) => {
                    received.lock().push((org_ids, request));
                    axum::http::StatusCode::NO_CONTENT
                }
                Err(_) => axum::http::StatusCode::BAD_REQUEST,
            }
        }
    };
    let app = axum::Router::new().route("/write", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/write"), received)
}

/// Every label value of every series in `request`.
fn label_values(request: &WriteRequest) -> Vec<String> {
    request
        .timeseries
        .iter()
        .flat_map(|series| &series.labels)
        .map(|label| label.value.clone())
        .collect()
}

/// Polls `check` every 250 ms for up to 30 s; panics with `what` and the log otherwise.
async fn eventually<F, Fut>(vivace: &Vivace, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = check().await;
        match outcome {
            Ok(()) => return,
            Err(detail) => assert!(
                Instant::now() < deadline,
                "{what} within 30s: {detail}\nvivace:\n{}",
                vivace.log_text()
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tenant_sees_and_receives_only_its_own_generated_series() {
    let (receiver_url, received) = start_receiver().await;
    let prometheus_a = Prometheus::start();
    let prometheus_b = Prometheus::start();
    let vivace = Vivace::start(&format!(
        r#"
multitenancy_enabled: true
metrics_generator:
  remote_write_interval: 1s
  remote_write:
    - url: {receiver_url}
      headers:
        X-Scope-OrgID: configured
    - url: {}
      tenants: [tenant-a]
    - url: {}
      tenants: [tenant-b]
  otlp_metrics:
    scrape_path: /metrics
"#,
        prometheus_a.url("/api/v1/write"),
        prometheus_b.url("/api/v1/write"),
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    for (index, (tenant, word)) in TENANTS.iter().enumerate() {
        let trace_id = format!("{:032x}", 0xabc0 + index);
        let (status, text) = post(
            &client,
            format!("{}/v1/traces", vivace.otlp_http_url()),
            tenant,
            call_json(word, &trace_id),
        )
        .await;
        assert_eq!(status, 200, "{tenant}: {text}");
        let (status, text) = post(
            &client,
            format!("{}/v1/metrics", vivace.otlp_http_url()),
            tenant,
            gauge_json(word),
        )
        .await;
        assert_eq!(status, 200, "{tenant}: {text}");
    }

    // /metrics as each tenant: its span metrics, service graph and OTLP gauge, nothing of the
    // other tenant's.
    let metrics_url = vivace.url("/metrics");
    for (tenant, word) in TENANTS {
        let other = TENANTS
            .iter()
            .find(|(name, _)| *name != tenant)
            .map(|(_, word)| *word)
            .unwrap();
        let expected = [
            format!(r#"traces_spanmetrics_calls_total{{service="{word}-checkout""#),
            format!(
                r#"traces_service_graph_request_total{{client="{word}-frontend",server="{word}-checkout""#
            ),
            format!(r#"{word}_queue_depth{{job="{word}-app"}} 7"#),
        ];
        eventually(&vivace, &format!("{tenant}'s series on /metrics"), || {
            let client = client.clone();
            let metrics_url = metrics_url.clone();
            let expected = expected.clone();
            async move {
                let (status, body) = get(&client, &metrics_url, Some(tenant)).await;
                match expected.iter().find(|line| !body.contains(line.as_str())) {
                    Some(missing) => Err(format!("{status}: no {missing} in\n{body}")),
                    None if body.contains(other) => {
                        Err(format!("{tenant}'s scrape shows {other}:\n{body}"))
                    }
                    None => Ok(()),
                }
            }
        })
        .await;
    }
    let (status, body) = get(&client, &metrics_url, None).await;
    assert_eq!(status, 200, "{body}");
    for word in [
        "alpha",
        "bravo",
        "traces_spanmetrics",
        "traces_service_graph",
    ] {
        assert!(
            !body.contains(word),
            "/metrics without X-Scope-OrgID shows {word}:\n{body}"
        );
    }
    assert_eq!(
        common::sample_value(&body, "vivace_generator_tenants"),
        Some(2.0),
        "{body}"
    );
    assert!(
        body.contains("tempo_metrics_generator_spans_received_total 4"),
        "own metrics are totals over the tenants:\n{body}"
    );
    let (status, body) = get(&client, &metrics_url, Some("tenant-a|tenant-b")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("several tenants"), "{body}");
    let (status, body) = get(&client, &metrics_url, Some("../x")).await;
    assert_eq!(status, 400, "{body}");

    // The receiver: every request is one tenant's, named by its only X-Scope-OrgID.
    eventually(
        &vivace,
        "remote writes of both tenants' spans and OTLP metrics",
        || {
            let received = Arc::clone(&received);
            async move {
                let values: Vec<String> = received
                    .lock()
                    .iter()
                    .flat_map(|(_, request)| label_values(request))
                    .collect();
                let missing: Vec<String> = TENANTS
                    .iter()
                    .flat_map(|(_, word)| [format!("{word}-checkout"), format!("{word}-app")])
                    .filter(|wanted| !values.contains(wanted))
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("no series with {missing:?} received yet"))
                }
            }
        },
    )
    .await;
    // One real Prometheus per tenant: each ingests its tenant's series and none of the other's.
    for (prometheus, (tenant, word)) in [(&prometheus_a, TENANTS[0]), (&prometheus_b, TENANTS[1])] {
        let query = format!(r#"sum(traces_spanmetrics_calls_total{{service="{word}-checkout"}})"#);
        eventually(
            &vivace,
            &format!("{query} in {tenant}'s Prometheus"),
            || {
                let client = client.clone();
                let query = query.clone();
                async move {
                    match prometheus.query(&client, &query).await {
                        Some(1.0) => Ok(()),
                        value => Err(format!("{value:?}\nprometheus:\n{}", prometheus.log())),
                    }
                }
            },
        )
        .await;
        let gauge = prometheus
            .query(&client, &format!("{word}_queue_depth"))
            .await;
        assert_eq!(gauge, Some(7.0), "{tenant}'s OTLP gauge in its Prometheus");
    }
    // Two more collections go out (each sends one request per tenant to every target, in
    // order per target), so a foreign series sent with the ones above would be stored by now.
    let seen = received.lock().len();
    eventually(&vivace, "two more collections", || {
        let received = Arc::clone(&received);
        async move {
            let now = received.lock().len();
            if now >= seen + 2 * TENANTS.len() {
                Ok(())
            } else {
                Err(format!("{now} requests, waiting for {}", seen + 4))
            }
        }
    })
    .await;
    for (prometheus, (tenant, _), other) in [
        (&prometheus_a, TENANTS[0], TENANTS[1].1),
        (&prometheus_b, TENANTS[1], TENANTS[0].1),
    ] {
        let foreign = format!(
            r#"count({{__name__=~".+", job=~"{other}.*"}} or {{__name__=~".+", service=~"{other}.*"}} or {{__name__=~".+", client=~"{other}.*"}}) or vector(0)"#
        );
        assert_eq!(
            prometheus.query(&client, &foreign).await,
            Some(0.0),
            "{tenant}'s Prometheus holds {other}'s series"
        );
    }

    // The UI's service graph: per tenant, 401 without a tenant.
    let graph_url = vivace.url("/api/ui/service-graph");
    for (tenant, word) in TENANTS {
        let (status, body) = get(&client, &graph_url, Some(tenant)).await;
        assert_eq!(status, 200, "{tenant}: {body}");
        let graph: serde_json::Value = serde_json::from_str(&body).unwrap();
        let nodes: BTreeSet<&str> = graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| node["name"].as_str().unwrap())
            .collect();
        let expected: BTreeSet<String> =
            [format!("{word}-checkout"), format!("{word}-frontend")].into();
        assert_eq!(
            nodes,
            expected.iter().map(String::as_str).collect(),
            "{tenant}: {body}"
        );
    }
    let (status, body) = get(&client, &graph_url, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(&client, &graph_url, Some("a/b")).await;
    assert_eq!(status, 400, "{body}");

    // Every request the receiver got, up to now: one tenant's series under its own header.
    let requests = received.lock().clone();
    let mut checked = 0;
    for (org_ids, request) in &requests {
        assert_eq!(
            org_ids.len(),
            1,
            "one X-Scope-OrgID per request: {org_ids:?}"
        );
        let (tenant, word) = TENANTS
            .iter()
            .find(|(tenant, _)| *tenant == org_ids[0])
            .unwrap_or_else(|| panic!("X-Scope-OrgID {:?} is no tenant", org_ids[0]));
        for value in label_values(request) {
            for (other_tenant, other_word) in TENANTS {
                assert!(
                    other_tenant == *tenant || !value.contains(other_word),
                    "a request of {tenant} carries {other_tenant}'s label value {value:?}"
                );
            }
        }
        assert!(
            label_values(request)
                .iter()
                .any(|value| value.contains(word)),
            "a request of {tenant} without any of its series: {request:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, requests.len());
    assert!(checked >= 2, "{checked} requests checked");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_series_limit_applies_to_each_tenant_apart() {
    // One span label set costs 19 series (calls, size, 14 latency buckets + +Inf, _sum,
    // _count): a limit of 40 holds two label sets.
    let vivace = Vivace::start(
        r#"
multitenancy_enabled: true
metrics_generator:
  processors:
    service_graphs: {enabled: false}
  registry:
    max_active_series: 40
overrides:
  per_tenant:
    big:
      metrics_generator:
        max_active_series: 1000
"#,
    );
    let client = reqwest::Client::new();
    let push = |tenant: &'static str, names: Vec<String>| {
        let client = client.clone();
        let url = format!("{}/v1/traces", vivace.otlp_http_url());
        async move {
            let end = now_nanos() - 1_000_000;
            let spans: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(index, name)| {
                    format!(
                        r#"{{"traceId":"{:032x}","spanId":"{:016x}","name":"{name}","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{end}"}}"#,
                        index + 1,
                        index + 1,
                        end - 5_000_000
                    )
                })
                .collect();
            let body = format!(
                r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{tenant}-svc"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
                spans.join(",")
            );
            let (status, text) = post(&client, url, tenant, body).await;
            assert_eq!(status, 200, "{tenant}: {text}");
        }
    };
    let ten =
        |prefix: &str| -> Vec<String> { (0..10).map(|n| format!("{prefix}-op-{n}")).collect() };
    // The noisy tenant goes first and overflows; the others come after it.
    push("noisy", ten("noisy")).await;
    push("quiet", vec!["quiet-op".to_string()]).await;
    push("big", ten("big")).await;

    let metrics_url = vivace.url("/metrics");
    let scrape = |tenant: &'static str| {
        let client = client.clone();
        let metrics_url = metrics_url.clone();
        async move { get(&client, &metrics_url, Some(tenant)).await.1 }
    };
    eventually(&vivace, "every tenant's series", || {
        let scrape = &scrape;
        async move {
            let (noisy, quiet, big) = (
                scrape("noisy").await,
                scrape("quiet").await,
                scrape("big").await,
            );
            if noisy.contains("metric_overflow=\"true\"")
                && quiet.contains("quiet-op")
                && big.contains("big-op-9")
            {
                Ok(())
            } else {
                Err(format!("noisy:\n{noisy}\nquiet:\n{quiet}\nbig:\n{big}"))
            }
        }
    })
    .await;
    let noisy = scrape("noisy").await;
    let kept = (0..10)
        .filter(|n| {
            noisy.contains(&format!(
                "traces_spanmetrics_latency_count{{service=\"noisy-svc\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"noisy-op-{n}\""
            ))
        })
        .count();
    assert_eq!(
        kept, 2,
        "the noisy tenant's limit holds two label sets:\n{noisy}"
    );
    let quiet = scrape("quiet").await;
    assert!(
        !quiet.contains("metric_overflow"),
        "the quiet tenant is not limited by the noisy one:\n{quiet}"
    );
    let big = scrape("big").await;
    let kept = (0..10)
        .filter(|n| big.contains(&format!("span_name=\"big-op-{n}\"")))
        .count();
    assert_eq!(kept, 10, "the big tenant's own limit holds all ten:\n{big}");
    assert!(!big.contains("metric_overflow"), "{big}");

    let (_, own) = get(&client, &metrics_url, None).await;
    for (series, expected) in [
        (
            "vivace_generator_tenant_active_series{tenant=\"quiet\"}",
            19.0,
        ),
        (
            "vivace_generator_tenant_active_series{tenant=\"big\"}",
            10.0 * 19.0,
        ),
        (
            "vivace_generator_tenant_series_limited_total{tenant=\"quiet\"}",
            0.0,
        ),
        (
            "vivace_generator_tenant_series_limited_total{tenant=\"big\"}",
            0.0,
        ),
    ] {
        assert_eq!(
            common::sample_value(&own, series),
            Some(expected),
            "{series} in\n{own}"
        );
    }
    // At most the limit plus one overflow series per family (19).
    let noisy_active = common::sample_value(
        &own,
        "vivace_generator_tenant_active_series{tenant=\"noisy\"}",
    );
    assert!(
        noisy_active.is_some_and(|active| (38.0..=40.0 + 19.0).contains(&active)),
        "{noisy_active:?} in\n{own}"
    );
    let limited = common::sample_value(
        &own,
        "vivace_generator_tenant_series_limited_total{tenant=\"noisy\"}",
    );
    assert!(
        limited.is_some_and(|limited| limited > 0.0),
        "{limited:?} in\n{own}"
    );
}
