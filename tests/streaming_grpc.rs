//! The streaming gRPC API `tempopb.StreamingQuerier` against the real binary, with a
//! real HTTP/2 gRPC client (tonic over the network, messages decoded with vivace's tempopb
//! prost structs), on both the HTTP port (h2c, where Grafana dials it) and the gRPC port:
//! the streamed result equals `/api/search`'s for several queries, with data in the head and
//! in flushed blocks; every message carries `metrics`; partial messages arrive before the
//! final one; bad queries are `InvalidArgument` with the parse error; tenants come from the
//! `x-scope-orgid` metadata. The metrics RPCs equal `/api/metrics/*`, and the four tag RPCs
//! equal `/api/search/tags`, `/api/v2/search/tags` and the two tag-values endpoints for the
//! head, flushed blocks and a block Tempo wrote.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Map, Value};
use tonic::Code;
use vivace::api::tempopb::{
    any_value, AnyValue, SearchRequest, SearchResponse, SearchTagValuesRequest,
    SearchTagValuesResponse, SearchTagValuesV2Response, SearchTagsRequest, SearchTagsResponse,
    SearchTagsV2Response,
};

use common::{stream_rpc as stream_metrics, test_data, Vivace};

/// The golden dataset's time window (Unix seconds), as its recorded searches use.
const START: u32 = 1_795_306_680;
const END: u32 = 1_795_307_340;

/// Queries replayed on both APIs: TraceQL of several kinds and the legacy tag form.
const QUERIES: &[&str] = &[
    "{}",
    "{ status = error }",
    "{ kind = server } | by(resource.service.name) | count() > 1",
    r#"{ span.http.method = "POST" } | select(span.http.route, resource.host.name)"#,
    r#"{ resource.service.name = "frontend" } >> { span.db.system = "postgresql" }"#,
    "{ span.cart.total > 100.5 }",
];

/// Streams a search; the messages in arrival order, or the gRPC status.
async fn stream_search(
    port: u16,
    request: SearchRequest,
    tenant: Option<&str>,
) -> Result<Vec<SearchResponse>, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connect over HTTP/2");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(request);
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-scope-orgid", tenant.parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<SearchRequest, SearchResponse>::default();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/tempopb.StreamingQuerier/Search");
    let mut stream = grpc
        .server_streaming(request, path, codec)
        .await?
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// What Grafana sends (§3.2): the query, limit, spss, the window, `RF1After` as the zero time.
fn grafana_request(query: &str, tags: &[(&str, &str)], window: bool) -> SearchRequest {
    SearchRequest {
        query: query.to_string(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limit: 1000,
        spans_per_span_set: 10,
        start: if window { START } else { 0 },
        end: if window { END } else { 0 },
        rf1_after: Some(vivace::api::tempopb::Timestamp {
            seconds: -62_135_596_800,
            nanos: 0,
        }),
        ..Default::default()
    }
}

async fn http_search(vivace: &Vivace, params: &[(&str, String)], tenant: Option<&str>) -> Value {
    let url = reqwest::Url::parse_with_params(&vivace.url("/api/search"), params).unwrap();
    let mut request = reqwest::Client::new().get(url);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn http_params(query: &str, window: bool) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("q", query.to_string()),
        ("limit", "1000".to_string()),
        ("spss", "10".to_string()),
    ];
    if window {
        params.push(("start", START.to_string()));
        params.push(("end", END.to_string()));
    }
    params
}

/// proto3 JSON of an `AnyValue`, written independently of the server's conversion.
fn any_json(value: &AnyValue) -> Value {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => json!({ "stringValue": s }),
        Some(any_value::Value::BoolValue(b)) => json!({ "boolValue": b }),
        Some(any_value::Value::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(any_value::Value::DoubleValue(d)) => json!({ "doubleValue": d }),
        Some(any_value::Value::BytesValue(b)) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        Some(any_value::Value::ArrayValue(array)) => {
            json!({ "arrayValue": { "values": array.values.iter().map(any_json).collect::<Vec<_>>() } })
        }
        Some(any_value::Value::KvlistValue(list)) => {
            json!({ "kvlistValue": { "values": key_values_json(&list.values) } })
        }
        // Not in Tempo's schema (OTLP profiles' string table): must never be sent.
        Some(other) => json!({ "notInTempoSchema": format!("{other:?}") }),
        None => json!({}),
    }
}

fn key_values_json(items: &[vivace::api::tempopb::KeyValue]) -> Vec<Value> {
    items
        .iter()
        .map(|kv| match &kv.value {
            Some(value) => json!({ "key": kv.key, "value": any_json(value) }),
            None => json!({ "key": kv.key }),
        })
        .collect()
}

/// Inserts `value` unless it is proto3's default (omitted in JSON).
fn put(object: &mut Map<String, Value>, key: &str, value: Value) {
    let default = match &value {
        Value::String(s) => s.is_empty() || s == "0",
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
        Value::Null => true,
    };
    if !default {
        object.insert(key.to_string(), value);
    }
}

/// A streamed trace as `/api/search` would write it (proto3 JSON, defaults omitted).
fn trace_json(trace: &vivace::api::tempopb::TraceSearchMetadata) -> Value {
    let mut object = Map::new();
    put(&mut object, "traceID", json!(trace.trace_id));
    put(
        &mut object,
        "rootServiceName",
        json!(trace.root_service_name),
    );
    put(&mut object, "rootTraceName", json!(trace.root_trace_name));
    put(
        &mut object,
        "startTimeUnixNano",
        json!(trace.start_time_unix_nano.to_string()),
    );
    put(&mut object, "durationMs", json!(trace.duration_ms));
    assert!(
        trace.span_set.is_none(),
        "deprecated spanSet must not be sent"
    );
    let sets: Vec<Value> = trace
        .span_sets
        .iter()
        .map(|set| {
            let mut out = Map::new();
            let spans: Vec<Value> = set
                .spans
                .iter()
                .map(|span| {
                    let mut s = Map::new();
                    put(&mut s, "spanID", json!(span.span_id));
                    put(&mut s, "name", json!(span.name));
                    put(
                        &mut s,
                        "startTimeUnixNano",
                        json!(span.start_time_unix_nano.to_string()),
                    );
                    put(
                        &mut s,
                        "durationNanos",
                        json!(span.duration_nanos.to_string()),
                    );
                    put(
                        &mut s,
                        "attributes",
                        json!(key_values_json(&span.attributes)),
                    );
                    Value::Object(s)
                })
                .collect();
            put(&mut out, "spans", json!(spans));
            put(&mut out, "matched", json!(set.matched));
            put(
                &mut out,
                "attributes",
                json!(key_values_json(&set.attributes)),
            );
            Value::Object(out)
        })
        .collect();
    put(&mut object, "spanSets", json!(sets));
    let mut stats = Map::new();
    for (service, counts) in &trace.service_stats {
        let mut c = Map::new();
        put(&mut c, "spanCount", json!(counts.span_count));
        put(&mut c, "errorCount", json!(counts.error_count));
        stats.insert(service.clone(), Value::Object(c));
    }
    put(&mut object, "serviceStats", Value::Object(stats));
    normalise(Value::Object(object))
}

/// Numbers as f64 so `1` and `1.0` compare equal.
fn normalise(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalise(v))).collect())
        }
        other => other,
    }
}

/// `/api/search`'s traces by ID.
fn http_traces(body: &Value) -> BTreeMap<String, Value> {
    body["traces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["traceID"].as_str().unwrap().to_string(),
                normalise(t.clone()),
            )
        })
        .collect()
}

/// What Grafana shows after the stream: traces de-duplicated by ID keeping the first seen.
fn grafana_view(messages: &[SearchResponse]) -> BTreeMap<String, Value> {
    let mut view = BTreeMap::new();
    for message in messages {
        for trace in &message.traces {
            view.entry(trace.trace_id.clone())
                .or_insert_with(|| trace_json(trace));
        }
    }
    view
}

/// The final full response: the trailing messages whose jobs are all complete.
fn final_traces(messages: &[SearchResponse]) -> BTreeMap<String, Value> {
    let last = messages.last().expect("at least one message");
    let done = last.metrics.clone().unwrap();
    assert_eq!(
        done.completed_jobs, done.total_jobs,
        "the last message is the final one"
    );
    let mut out = BTreeMap::new();
    for message in messages.iter().rev() {
        if message.metrics.as_ref() != Some(&done) {
            break;
        }
        for trace in &message.traces {
            out.insert(trace.trace_id.clone(), trace_json(trace));
        }
    }
    out
}

fn check_messages(messages: &[SearchResponse], what: &str) {
    assert!(
        messages.len() >= 2,
        "{what}: a partial message then the final one, got {}",
        messages.len()
    );
    for (index, message) in messages.iter().enumerate() {
        assert!(
            message.metrics.is_some(),
            "{what}: message {index} has no metrics"
        );
    }
}

async fn compare_all(vivace: &Vivace, window: bool, tenant: Option<&str>) {
    for query in QUERIES {
        let expected = http_traces(&http_search(vivace, &http_params(query, window), tenant).await);
        assert!(
            !expected.is_empty(),
            "{query}: the HTTP search finds traces"
        );
        for (port_name, port) in [("http", vivace.ports.http), ("grpc", vivace.ports.grpc)] {
            let what = format!("{query} on the {port_name} port (window {window})");
            let messages = stream_search(port, grafana_request(query, &[], window), tenant)
                .await
                .unwrap_or_else(|status| panic!("{what}: {status:?}"));
            check_messages(&messages, &what);
            assert_eq!(final_traces(&messages), expected, "{what}: final result");
            assert_eq!(
                grafana_view(&messages),
                expected,
                "{what}: what Grafana shows"
            );
            println!(
                "{what}: {} traces in {} messages, jobs {:?}",
                expected.len(),
                messages.len(),
                messages
                    .iter()
                    .map(|m| {
                        let metrics = m.metrics.clone().unwrap();
                        (m.traces.len(), metrics.completed_jobs, metrics.total_jobs)
                    })
                    .collect::<Vec<_>>()
            );
        }
    }
    // The legacy tag map (SearchRequest.Tags) against `tags=` on HTTP.
    let mut params = vec![
        ("tags", "service.name=payments".to_string()),
        ("limit", "1000".to_string()),
        ("spss", "10".to_string()),
    ];
    if window {
        params.push(("start", START.to_string()));
        params.push(("end", END.to_string()));
    }
    let expected = http_traces(&http_search(vivace, &params, tenant).await);
    assert!(!expected.is_empty());
    let messages = stream_search(
        vivace.ports.http,
        grafana_request("", &[("service.name", "payments")], window),
        tenant,
    )
    .await
    .unwrap();
    assert_eq!(final_traces(&messages), expected, "legacy tags");
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_search_of_the_head_equals_http_search_on_both_ports() {
    let vivace = Vivace::start("");
    common::load_dataset(&vivace).await;
    compare_all(&vivace, false, None).await;
    compare_all(&vivace, true, None).await;

    // Bad input: InvalidArgument with the same text as the HTTP 400.
    let http = reqwest::Client::new()
        .get(vivace.url("/api/search?q=%7B%20span.foo%20%3D%20%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), 400);
    let http_text = http.text().await.unwrap();
    for port in [vivace.ports.http, vivace.ports.grpc] {
        let status = stream_search(port, grafana_request("{ span.foo = }", &[], false), None)
            .await
            .expect_err("a bad query fails");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status
                .message()
                .starts_with("invalid TraceQL query: parse error"),
            "{status:?}"
        );
        assert_eq!(status.message(), http_text.trim_end());
        let status = stream_search(
            port,
            SearchRequest {
                query: "{}".into(),
                spans_per_span_set: 1000,
                ..Default::default()
            },
            None,
        )
        .await
        .expect_err("spss over the maximum fails");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("spans per span set exceeds 100"));
    }

    // Grafana's health check: `{}` over the last 15 minutes with limit 1; one Recv must work.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let messages = stream_search(
        vivace.ports.http,
        SearchRequest {
            query: "{}".into(),
            limit: 1,
            start: now - 900,
            end: now,
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert!(messages.iter().all(|m| m.metrics.is_some()));

    // The JSON API still answers HTTP/1.1 on the same port.
    let (status, body) = common::blocking_get(&vivace.url("/api/echo")).unwrap();
    assert_eq!((status, body.as_str()), (200, "echo\n"));
    // And gRPC methods vivace does not serve answer Unimplemented, not a hang or an HTTP error.
    let unknown = stream_metrics::<SearchRequest, SearchResponse>(
        vivace.ports.http,
        "/tempopb.StreamingQuerier/SpanMetricsSummary",
        SearchRequest::default(),
        None,
    )
    .await
    .expect_err("SpanMetricsSummary is not served");
    assert_eq!(unknown.code(), Code::Unimplemented);

    compare_tags(&vivace, None, None).await;
}

/// A JSON answer of the HTTP API (status 200 asserted).
async fn http_json(
    vivace: &Vivace,
    path: &str,
    params: &[(&str, String)],
    tenant: Option<&str>,
) -> Value {
    let url = reqwest::Url::parse_with_params(&vivace.url(path), params).unwrap();
    let mut request = reqwest::Client::new().get(url);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{path} {params:?}");
    response.json().await.unwrap()
}

fn json_strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every tag RPC on both ports answers what the matching HTTP endpoint answers, in the same
/// order, with `metrics` on the message; `window` is `(start, end)` in Unix seconds.
async fn compare_tags(vivace: &Vivace, window: Option<(u32, u32)>, tenant: Option<&str>) {
    let (start, end) = window.unwrap_or((0, 0));
    let mut window_params: Vec<(&str, String)> = Vec::new();
    if window.is_some() {
        window_params.push(("start", start.to_string()));
        window_params.push(("end", end.to_string()));
    }
    let with = |extra: &[(&'static str, &str)]| {
        let mut params = window_params.clone();
        params.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        params
    };
    let mut checked = 0;
    for port in [vivace.ports.http, vivace.ports.grpc] {
        // SearchTags = /api/search/tags.
        for scope in ["", "span", "resource", "intrinsic"] {
            let http = http_json(
                vivace,
                "/api/search/tags",
                &with(&[("scope", scope)]),
                tenant,
            )
            .await;
            let request = SearchTagsRequest {
                scope: scope.into(),
                start,
                end,
                ..Default::default()
            };
            let messages: Vec<SearchTagsResponse> = stream_metrics(
                port,
                "/tempopb.StreamingQuerier/SearchTags",
                request,
                tenant,
            )
            .await
            .unwrap();
            assert_eq!(messages.len(), 1);
            assert!(messages[0].metrics.is_some());
            assert_eq!(
                messages[0].tag_names,
                json_strings(&http["tagNames"]),
                "SearchTags scope={scope}"
            );
            checked += 1;
        }
        // SearchTagsV2 = /api/v2/search/tags.
        for scope in ["", "span", "resource", "intrinsic", "event"] {
            let http = http_json(
                vivace,
                "/api/v2/search/tags",
                &with(&[("scope", scope)]),
                tenant,
            )
            .await;
            let expected: Vec<(String, Vec<String>)> = http["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap().to_string(),
                        json_strings(&s["tags"]),
                    )
                })
                .collect();
            let request = SearchTagsRequest {
                scope: scope.into(),
                start,
                end,
                ..Default::default()
            };
            let messages: Vec<SearchTagsV2Response> = stream_metrics(
                port,
                "/tempopb.StreamingQuerier/SearchTagsV2",
                request,
                tenant,
            )
            .await
            .unwrap();
            assert_eq!(messages.len(), 1);
            let got: Vec<(String, Vec<String>)> = messages[0]
                .scopes
                .iter()
                .map(|s| (s.name.clone(), s.tags.clone()))
                .collect();
            assert_eq!(got, expected, "SearchTagsV2 scope={scope}");
            if scope.is_empty() {
                assert!(got.len() >= 2, "attribute scopes and intrinsics: {got:?}");
            }
            checked += 1;
        }
        // SearchTagValues = /api/search/tag/{tag}/values.
        for tag in ["service.name", "http.method", "no.such.tag"] {
            let http = http_json(
                vivace,
                &format!("/api/search/tag/{tag}/values"),
                &with(&[]),
                tenant,
            )
            .await;
            let request = SearchTagValuesRequest {
                tag_name: tag.into(),
                start,
                end,
                ..Default::default()
            };
            let messages: Vec<SearchTagValuesResponse> = stream_metrics(
                port,
                "/tempopb.StreamingQuerier/SearchTagValues",
                request,
                tenant,
            )
            .await
            .unwrap();
            assert_eq!(messages.len(), 1);
            // Values come in scan order, which parallel reads do not fix: compared as sets.
            let mut got = messages[0].tag_values.clone();
            let mut expected = json_strings(&http["tagValues"]);
            got.sort();
            expected.sort();
            assert_eq!(got, expected, "SearchTagValues {tag}");
            if tag == "service.name" {
                assert!(
                    !messages[0].tag_values.is_empty(),
                    "service names are found"
                );
            }
            checked += 1;
        }
        // SearchTagValuesV2 = /api/v2/search/tag/{tag}/values, with and without a filter.
        for (tag, query) in [
            ("resource.service.name", ""),
            ("resource.service.name", "{ status = error }"),
            ("span.http.status_code", ""),
            ("name", r#"{ resource.service.name = "frontend" }"#),
            ("status", ""),
            ("span.http.method", "{ span.http.method = "),
        ] {
            let http = http_json(
                vivace,
                &format!("/api/v2/search/tag/{tag}/values"),
                &with(&[("q", query)]),
                tenant,
            )
            .await;
            let mut expected: Vec<(String, String)> = http["tagValues"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v["type"].as_str().unwrap().to_string(),
                        v["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let request = SearchTagValuesRequest {
                tag_name: tag.into(),
                query: query.into(),
                start,
                end,
                ..Default::default()
            };
            let messages: Vec<SearchTagValuesV2Response> = stream_metrics(
                port,
                "/tempopb.StreamingQuerier/SearchTagValuesV2",
                request,
                tenant,
            )
            .await
            .unwrap();
            assert_eq!(messages.len(), 1);
            let mut got: Vec<(String, String)> = messages[0]
                .tag_values
                .iter()
                .map(|v| (v.r#type.clone(), v.value.clone()))
                .collect();
            got.sort();
            expected.sort();
            assert_eq!(got, expected, "SearchTagValuesV2 {tag} q={query}");
            if tag == "resource.service.name" && query.is_empty() {
                assert!(!got.is_empty(), "service names are found");
            }
            checked += 1;
        }
        // A bad tag name: InvalidArgument with the HTTP 400's text.
        let mut http =
            reqwest::Client::new().get(vivace.url("/api/v2/search/tag/app.user.id/values"));
        if let Some(tenant) = tenant {
            http = http.header("X-Scope-OrgID", tenant);
        }
        let http = http.send().await.unwrap();
        assert_eq!(http.status(), 400);
        let text = http.text().await.unwrap();
        let status = stream_metrics::<SearchTagValuesRequest, SearchTagValuesV2Response>(
            port,
            "/tempopb.StreamingQuerier/SearchTagValuesV2",
            SearchTagValuesRequest {
                tag_name: "app.user.id".into(),
                ..Default::default()
            },
            tenant,
        )
        .await
        .expect_err("a bad tag name fails");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), text.trim_end());
        let status = stream_metrics::<SearchTagsRequest, SearchTagsV2Response>(
            port,
            "/tempopb.StreamingQuerier/SearchTagsV2",
            SearchTagsRequest {
                scope: "nonsense".into(),
                ..Default::default()
            },
            tenant,
        )
        .await
        .expect_err("a bad scope fails");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid scope: nonsense");
    }
    assert_eq!(checked, 36);
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_tags_and_metrics_read_a_block_tempo_wrote() {
    let vivace = common::start_over_tempo_block();
    // The block covers 2022-07-04T11:11:09Z..11:11:35Z.
    let (start, end) = common::TEMPO_BLOCK_WINDOW;
    compare_tags(&vivace, Some((start, end)), None).await;
    compare_metrics(&vivace, start, end).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_search_of_flushed_blocks_reports_progress_per_block() {
    // Short periods so the dataset is cut into blocks within seconds.
    let vivace = Vivace::start(
        "ingester:\n  trace_idle_period: 500ms\n  max_block_duration: 1s\n  flush_check_period: 100ms\n",
    );
    common::load_dataset(&vivace).await;
    let blocks = vivace.data.join("blocks").join("single-tenant");
    let deadline = Instant::now() + Duration::from_secs(90);
    // Wait until every trace is in a block: the head-only search finds nothing.
    loop {
        let metas = std::fs::read_dir(&blocks)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.path().join("meta.json").exists())
                    .count()
            })
            .unwrap_or(0);
        let head = http_search(&vivace, &http_params("{}", false), None).await;
        if metas > 0 && head.get("traces").is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dataset not flushed within 90s; log:\n{}",
            vivace.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let body = http_search(&vivace, &http_params("{}", true), None).await;
    let total_blocks = body["metrics"]["totalBlocks"].as_u64().unwrap_or(0);
    assert!(total_blocks >= 1, "{body}");
    compare_all(&vivace, true, None).await;
    compare_tags(&vivace, Some((START, END)), None).await;
    compare_metrics(&vivace, START, END).await;

    let messages = stream_search(vivace.ports.grpc, grafana_request("{}", &[], true), None)
        .await
        .unwrap();
    let first = messages[0].metrics.clone().unwrap();
    // The first message reports the head (one job) before the blocks are read.
    assert_eq!(first.completed_jobs, 1);
    assert_eq!(first.total_jobs as u64, total_blocks + 1);
    assert_eq!(first.total_blocks as u64, total_blocks);
    let last = messages.last().unwrap().metrics.clone().unwrap();
    assert_eq!(last.completed_jobs, last.total_jobs);
    assert!(last.inspected_traces >= 60, "{last:?}");
    assert!(
        last.inspected_bytes > 0 && last.inspected_spans >= 460,
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_search_reads_the_tenants_of_the_metadata() {
    let vivace = Vivace::start("multitenancy_enabled: true\n");
    let client = reqwest::Client::new();
    let mut batches: Vec<_> = std::fs::read_dir(test_data("tempo-api/dataset"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("batch-")
        })
        .collect();
    batches.sort();
    for batch in &batches {
        let response = client
            .post(format!("{}/v1/traces", vivace.otlp_http_url()))
            .header("Content-Type", "application/json")
            .header("X-Scope-OrgID", "team-a")
            .body(std::fs::read(batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    for port in [vivace.ports.http, vivace.ports.grpc] {
        let missing = stream_search(port, grafana_request("{}", &[], false), None)
            .await
            .expect_err("no tenant");
        assert_eq!(missing.code(), Code::InvalidArgument);
        assert_eq!(missing.message(), "no org id");
        let invalid = stream_search(port, grafana_request("{}", &[], false), Some("a/b"))
            .await
            .expect_err("invalid tenant");
        assert_eq!(invalid.code(), Code::InvalidArgument, "{invalid:?}");
        let other = stream_search(port, grafana_request("{}", &[], false), Some("team-b"))
            .await
            .unwrap();
        assert!(
            other.iter().all(|m| m.traces.is_empty()),
            "team-b sees nothing"
        );
        let own: BTreeSet<String> = grafana_view(
            &stream_search(port, grafana_request("{}", &[], false), Some("team-a"))
                .await
                .unwrap(),
        )
        .into_keys()
        .collect();
        assert_eq!(own.len(), 60);
        let both: BTreeSet<String> = grafana_view(
            &stream_search(
                port,
                grafana_request("{}", &[], false),
                Some("team-b|team-a"),
            )
            .await
            .unwrap(),
        )
        .into_keys()
        .collect();
        assert_eq!(both, own, "cross-tenant read");
    }
    compare_all(&vivace, false, Some("team-a")).await;
    compare_tags(&vivace, None, Some("team-a")).await;
    // Another tenant's tag values are not listed.
    let request = SearchTagValuesRequest {
        tag_name: "resource.service.name".into(),
        ..Default::default()
    };
    let other: Vec<SearchTagValuesV2Response> = stream_metrics(
        vivace.ports.grpc,
        "/tempopb.StreamingQuerier/SearchTagValuesV2",
        request,
        Some("team-b"),
    )
    .await
    .unwrap();
    assert!(other[0].tag_values.is_empty(), "{other:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_search_form_treats_unknown_parameters_as_tags() {
    let vivace = Vivace::start("");
    common::load_dataset(&vivace).await;
    let ids = |body: Value| -> BTreeSet<String> { http_traces(&body).into_keys().collect() };
    let legacy = ids(http_search(
        &vivace,
        &[("service.name", "payments".into()), ("limit", "100".into())],
        None,
    )
    .await);
    let tags = ids(http_search(
        &vivace,
        &[
            ("tags", "service.name=payments".into()),
            ("limit", "100".into()),
        ],
        None,
    )
    .await);
    assert!(!legacy.is_empty());
    assert_eq!(legacy, tags);
    let everything = ids(http_search(&vivace, &[("limit", "100".into())], None).await);
    assert!(legacy.len() < everything.len());
    // With `start`/`end` the unknown parameter is not a tag (Tempo's rule).
    let with_window = ids(http_search(
        &vivace,
        &[
            ("service.name", "payments".into()),
            ("limit", "100".into()),
            ("start", START.to_string()),
            ("end", END.to_string()),
        ],
        None,
    )
    .await);
    assert_eq!(with_window.len(), everything.len());
}

/// Equal up to float summation order (the engine adds in scan order).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Series of a range answer as `labels JSON → [(timestampMs, value)]` plus exemplar trace IDs.
type RangeView = BTreeMap<String, (Vec<(i64, f64)>, Vec<String>)>;

fn range_view_of_json(body: &Value) -> RangeView {
    let mut view = RangeView::new();
    for series in body["series"].as_array().into_iter().flatten() {
        let labels = normalise(series["labels"].clone()).to_string();
        let samples = series["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["timestampMs"].as_str().unwrap().parse().unwrap(),
                    s["value"].as_f64().unwrap_or(0.0),
                )
            })
            .collect();
        let exemplars = series["exemplars"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e["labels"].as_array().cloned().unwrap_or_default())
            .filter(|l| l["key"] == "trace:id")
            .map(|l| l["value"]["stringValue"].as_str().unwrap().to_string())
            .collect();
        view.insert(labels, (samples, exemplars));
    }
    view
}

fn range_view_of_messages(messages: &[vivace::api::tempopb::QueryRangeResponse]) -> RangeView {
    let mut view = RangeView::new();
    for message in messages {
        for series in &message.series {
            let labels = normalise(json!(key_values_json(&series.labels))).to_string();
            let samples = series
                .samples
                .iter()
                .map(|s| (s.timestamp_ms, s.value))
                .collect();
            let exemplars = series
                .exemplars
                .iter()
                .flat_map(|e| e.labels.iter())
                .filter(|l| l.key == "trace:id")
                .filter_map(|l| match l.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            assert!(
                view.insert(labels, (samples, exemplars)).is_none(),
                "a series sent twice"
            );
        }
    }
    view
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_metrics_equal_the_http_metrics_api() {
    let vivace = Vivace::start("");
    common::load_dataset(&vivace).await;
    compare_metrics(&vivace, START, END).await;
}

/// `MetricsQueryRange` and `MetricsQueryInstant` on both ports answer what
/// `/api/metrics/query_range` and `/api/metrics/query` answer over `start..end` (seconds).
async fn compare_metrics(vivace: &Vivace, start: u32, end: u32) {
    use vivace::api::tempopb::{
        QueryInstantRequest, QueryInstantResponse, QueryRangeRequest, QueryRangeResponse,
    };
    let nanos = |seconds: u32| seconds as u64 * 1_000_000_000;
    let cases: &[(&str, u64, &str)] = &[
        ("{ } | rate() by (resource.service.name)", 0, ""),
        ("{ status = error } | count_over_time()", 60, "60"),
        (
            "{ kind = server } | quantile_over_time(duration, .9) by (resource.service.name)",
            30,
            "30s",
        ),
    ];
    for (query, step_seconds, step_param) in cases {
        let mut params = vec![
            ("q", query.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("exemplars", "5".to_string()),
        ];
        if !step_param.is_empty() {
            params.push(("step", step_param.to_string()));
        }
        let url = reqwest::Url::parse_with_params(&vivace.url("/api/metrics/query_range"), &params)
            .unwrap();
        let http: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        let expected = range_view_of_json(&http);
        if query.contains("rate()") {
            assert!(!expected.is_empty(), "{query}: {http}");
        }
        for port in [vivace.ports.http, vivace.ports.grpc] {
            let messages: Vec<QueryRangeResponse> = stream_metrics(
                port,
                "/tempopb.StreamingQuerier/MetricsQueryRange",
                QueryRangeRequest {
                    query: query.to_string(),
                    start: nanos(start),
                    end: nanos(end),
                    step: step_seconds * 1_000_000_000,
                    exemplars: 5,
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap_or_else(|status| panic!("{query}: {status:?}"));
            assert!(!messages.is_empty());
            assert!(messages.iter().all(|m| m.metrics.is_some()));
            for exemplar in messages
                .iter()
                .flat_map(|m| &m.series)
                .flat_map(|s| &s.exemplars)
            {
                // Grafana drops exemplars with a zero value or timestamp.
                assert!(
                    exemplar.value != 0.0 && exemplar.timestamp_ms > 0,
                    "{exemplar:?}"
                );
                assert!(exemplar.labels.iter().any(|l| l.key == "trace:id"));
            }
            let got = range_view_of_messages(&messages);
            let keys = |view: &RangeView| view.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(&got), keys(&expected), "{query}: series");
            for (labels, (samples, exemplars)) in &expected {
                let (got_samples, got_exemplars) = &got[labels];
                let differing: Vec<_> = samples
                    .iter()
                    .zip(got_samples)
                    .filter(|(a, b)| a.0 != b.0 || !close(a.1, b.1))
                    .take(3)
                    .collect();
                assert!(
                    differing.is_empty() && samples.len() == got_samples.len(),
                    "{query} {labels}: samples differ (http, grpc): {differing:?}, lengths {} {}",
                    samples.len(),
                    got_samples.len()
                );
                // Which spans become exemplars (and how many per series) is a sample that
                // varies between two runs of the same query: they are checked for shape only.
                let _ = exemplars;
                assert!(got_exemplars
                    .iter()
                    .all(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit())));
            }
        }
        // Instant.
        let url = reqwest::Url::parse_with_params(
            &vivace.url("/api/metrics/query"),
            &[
                ("q", query.to_string()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        )
        .unwrap();
        let http: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        let expected: BTreeMap<String, f64> = http["series"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    normalise(s["labels"].clone()).to_string(),
                    s["value"].as_f64().unwrap_or(0.0),
                )
            })
            .collect();
        for port in [vivace.ports.http, vivace.ports.grpc] {
            let messages: Vec<QueryInstantResponse> = stream_metrics(
                port,
                "/tempopb.StreamingQuerier/MetricsQueryInstant",
                QueryInstantRequest {
                    query: query.to_string(),
                    start: nanos(start),
                    end: nanos(end),
                },
                None,
            )
            .await
            .unwrap();
            assert_eq!(messages.len(), 1, "one complete instant message");
            let got: BTreeMap<String, f64> = messages[0]
                .series
                .iter()
                .map(|s| {
                    (
                        normalise(json!(key_values_json(&s.labels))).to_string(),
                        s.value,
                    )
                })
                .collect();
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "{query} instant"
            );
            for (labels, value) in &expected {
                assert!(
                    close(got[labels], *value),
                    "{query} instant {labels}: {got:?}"
                );
            }
        }
    }
    // Bad input: InvalidArgument with the HTTP 400's text.
    let url = reqwest::Url::parse_with_params(
        &vivace.url("/api/metrics/query_range"),
        &[
            ("q", "{ } | rate("),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
        ],
    )
    .unwrap();
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    let status = stream_metrics::<_, QueryRangeResponse>(
        vivace.ports.http,
        "/tempopb.StreamingQuerier/MetricsQueryRange",
        QueryRangeRequest {
            query: "{ } | rate(".into(),
            start: nanos(start),
            end: nanos(end),
            ..Default::default()
        },
        None,
    )
    .await
    .expect_err("a bad query fails");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), text.trim_end());
    let status = stream_metrics::<_, QueryRangeResponse>(
        vivace.ports.grpc,
        "/tempopb.StreamingQuerier/MetricsQueryRange",
        QueryRangeRequest {
            query: "{ } | rate()".into(),
            start: nanos(start),
            end: nanos(start) + 25 * 3600 * 1_000_000_000,
            ..Default::default()
        },
        None,
    )
    .await
    .expect_err("over 24h fails");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status
        .message()
        .contains("exceeds the maximum allowed duration of 24h0m0s"));
    // A step giving more points than a series holds is refused before anything is allocated
    // (a microsecond step over a day once aborted the process).
    let status = stream_metrics::<_, QueryRangeResponse>(
        vivace.ports.grpc,
        "/tempopb.StreamingQuerier/MetricsQueryRange",
        QueryRangeRequest {
            query: "{ } | rate()".into(),
            start: nanos(start),
            end: nanos(start) + 24 * 3600 * 1_000_000_000,
            step: 1_000,
            ..Default::default()
        },
        None,
    )
    .await
    .expect_err("a microsecond step over a day fails");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("maximum resolution of 11000 points"),
        "{}",
        status.message()
    );
    assert_eq!(
        reqwest::get(vivace.url("/ready")).await.unwrap().status(),
        200
    );
}
