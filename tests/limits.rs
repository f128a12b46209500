//! Every size or count a request names is checked against a documented limit before anything
//! is allocated for it (README, "Limits"): each row sends the hostile value to the real
//! binary, checks the status and the text naming what was wrong, and checks that the server
//! still serves afterwards. HTTP rows cover the Tempo, Loki, UI, webhook and receiver
//! endpoints; gRPC rows the streaming API and OTLP/gRPC.

mod common;

use std::io::Write;

use common::{free_port, Vivace};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::Code;
use vivace::api::tempopb::{
    QueryInstantRequest, QueryInstantResponse, QueryRangeRequest, QueryRangeResponse,
    SearchRequest, SearchResponse, SearchTagValuesRequest, SearchTagValuesV2Response,
    SearchTagsRequest, SearchTagsV2Response,
};

/// The receivers' request limit of the instance under test (`distributor.max_request_bytes`),
/// small so oversized bodies stay cheap to send.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// `MAX_QUERY_BYTES` of the API plus some.
const LONG_QUERY_BYTES: usize = 128 * 1024 + 100;

/// Which listener a row talks to.
#[derive(Clone, Copy, Debug)]
enum Port {
    Http,
    /// :3200 over a bare TCP connection, for requests an HTTP client refuses to build
    RawHttp,
    OtlpHttp,
    Zipkin,
    JaegerThrift,
}

/// A POST body and its content type (`gzip`: protobuf with `Content-Encoding: gzip`).
type Body = fn() -> (&'static str, Vec<u8>);

/// A path with its query string, fixed or built (for values too long to write out).
enum Target {
    Fixed(&'static str),
    Built(fn() -> String),
}

/// One hostile HTTP request: where it goes, its body if it is a POST, the status expected and
/// a fragment of the answer's text.
struct Row {
    port: Port,
    target: Target,
    body: Option<Body>,
    status: u16,
    says: &'static str,
}

const fn get(path: &'static str, status: u16, says: &'static str) -> Row {
    Row {
        port: Port::Http,
        target: Target::Fixed(path),
        body: None,
        status,
        says,
    }
}

const fn get_built(build: fn() -> String, status: u16, says: &'static str) -> Row {
    Row {
        port: Port::Http,
        target: Target::Built(build),
        body: None,
        status,
        says,
    }
}

const fn post(port: Port, path: &'static str, body: Body, status: u16, says: &'static str) -> Row {
    Row {
        port,
        target: Target::Fixed(path),
        body: Some(body),
        status,
        says,
    }
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else if byte == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A valid query padded with spaces past `MAX_QUERY_BYTES`.
fn long_query() -> String {
    encode(&format!("{{}}{}", " ".repeat(LONG_QUERY_BYTES)))
}

fn long_metrics_query() -> String {
    format!(
        "/api/metrics/query_range?since=1h&q={}%7Crate()",
        long_query()
    )
}

fn quantiles_21() -> String {
    let quantiles = vec!["0.5"; 21].join(",");
    format!(
        "/api/metrics/query_range?since=1h&q={}",
        encode(&format!("{{}} | quantile_over_time(duration, {quantiles})"))
    )
}

fn functions_101() -> String {
    let query = vec!["({} | rate())"; 101].join(" + ");
    format!("/api/metrics/query_range?since=1h&q={}", encode(&query))
}

fn quantiles_20() -> String {
    let quantiles = vec!["0.5"; 20].join(",");
    format!(
        "/api/metrics/query_range?since=1h&q={}",
        encode(&format!("{{}} | quantile_over_time(duration, {quantiles})"))
    )
}

fn functions_100() -> String {
    let query = vec!["({} | rate())"; 100].join(" + ");
    format!("/api/metrics/query_range?since=1h&q={}", encode(&query))
}

/// The longest chains accepted: the trees they build are evaluated, rewritten and dropped
/// recursively, on the server's own stacks.
fn operators_1000_spansets() -> String {
    format!("/api/search?q={}", encode(&vec!["{}"; 1001].join(" && ")))
}

fn operators_1000_fields() -> String {
    // 500 comparisons joined by 499 `||`, then one `&&`: 1,000 operators.
    let conditions = vec![".a = 1"; 500].join(" || ");
    format!(
        "/api/search?q={}",
        encode(&format!("{{ ({conditions}) && true }}"))
    )
}

fn operators_1002() -> String {
    format!("/api/search?q={}", encode(&vec!["{}"; 1003].join(" && ")))
}

fn logfmt_tags_101() -> String {
    let tags: Vec<String> = (0..101).map(|i| format!("t{i}=v")).collect();
    format!("/api/search?tags={}", encode(&tags.join(" ")))
}

fn legacy_tags_101() -> String {
    let tags: Vec<String> = (0..101).map(|i| format!("t{i}=v")).collect();
    format!("/api/search?{}", tags.join("&"))
}

/// An OTLP/HTTP protobuf body past the request limit (its content is never looked at).
fn oversized_protobuf() -> (&'static str, Vec<u8>) {
    ("application/x-protobuf", vec![0u8; MAX_REQUEST_BYTES + 1])
}

/// A small gzip body that inflates past the request limit.
fn gzip_bomb() -> (&'static str, Vec<u8>) {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(&vec![0u8; MAX_REQUEST_BYTES * 16])
        .expect("gzip in memory");
    ("gzip", encoder.finish().expect("gzip in memory"))
}

fn oversized_json() -> (&'static str, Vec<u8>) {
    let mut body = b"[".to_vec();
    body.resize(MAX_REQUEST_BYTES + 1, b' ');
    ("application/json", body)
}

fn oversized_thrift() -> (&'static str, Vec<u8>) {
    ("application/x-thrift", vec![0u8; MAX_REQUEST_BYTES + 1])
}

/// A snappy block whose header claims 1 GiB once decompressed.
fn snappy_huge_length() -> (&'static str, Vec<u8>) {
    (
        "application/x-protobuf",
        vec![0x80, 0x80, 0x80, 0x80, 0x04, 0x00],
    )
}

fn webhook(alerts: usize) -> Vec<u8> {
    let alert = serde_json::json!({
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout"},
        "startsAt": "2026-12-07T10:00:00Z",
    });
    serde_json::to_vec(&serde_json::json!({
        "version": "4",
        "status": "firing",
        "alerts": vec![alert; alerts],
    }))
    .expect("json")
}

fn webhook_1001_alerts() -> (&'static str, Vec<u8>) {
    ("application/json", webhook(1001))
}

fn webhook_over_4_mib() -> (&'static str, Vec<u8>) {
    let mut body = webhook(1);
    body.resize(4 * 1024 * 1024 + 1, b' ');
    ("application/json", body)
}

const ROWS: &[Row] = &[
    // ---- /api/metrics/query_range and /api/metrics/query
    // 86,400 s at a microsecond step is 8.64e10 points; once this aborted the process.
    get(
        "/api/metrics/query_range?q=%7B%7D%7Crate()&since=24h&step=0.000001",
        400,
        "maximum resolution of 11000 points",
    ),
    get(
        "/api/metrics/query_range?q=%7B%7D%7Crate()&since=1h&step=0.3",
        400,
        "maximum resolution of 11000 points",
    ),
    // A step longer than the longest range would stretch the aligned window past it.
    get(
        "/api/metrics/query_range?q=%7B%7D%7Crate()&since=1h&step=1e300",
        400,
        "longer than the longest range, 24h0m0s",
    ),
    get(
        "/api/metrics/query_range?q=%7B%7D%7Crate()&since=1h&step=24h",
        200,
        "{",
    ),
    get(
        "/api/metrics/query_range?q=%7B%7D%7Crate()&since=1h&step=-1",
        400,
        "must be positive",
    ),
    get(
        "/api/metrics/query_range?q=%7B%7D%7Crate()&since=1h&exemplars=99999999999",
        400,
        "invalid exemplars",
    ),
    // Clamped to 100 as Tempo clamps.
    get(
        "/api/metrics/query_range?q=%7B%7D%7Crate()&since=1h&exemplars=4294967295",
        200,
        "{",
    ),
    get(
        "/api/metrics/query_range?q=%7B%7D%7Crate()&since=25h",
        400,
        "exceeds the maximum allowed duration of 24h0m0s",
    ),
    get(
        "/api/metrics/query_range?q=%7B%7D%7Crate()&start=0&end=18446744073709551615",
        400,
        "exceeds the maximum allowed duration of 24h0m0s",
    ),
    get(
        "/api/metrics/query?q=%7B%7D%7Crate()&start=0&end=18446744073709551615",
        400,
        "exceeds the maximum allowed duration of 24h0m0s",
    ),
    // A URI past 64 KiB is refused by the HTTP layer before any handler; TraceQL past 128 KiB
    // can only come over gRPC (rows below).
    Row {
        port: Port::RawHttp,
        target: Target::Built(long_metrics_query),
        body: None,
        status: 414,
        says: "",
    },
    get_built(quantiles_21, 400, "at most 20 quantiles, got 21"),
    get_built(quantiles_20, 200, "{"),
    get_built(functions_101, 400, "101 metrics functions in one query, at most 100"),
    get_built(functions_100, 200, "{"),
    get(
        "/api/metrics/query_range?since=1h&q=%7B%7D%7Crate()%20by%20(.a%2C.b%2C.c%2C.d%2C.e%2C.f)",
        400,
        "more than 5 labels",
    ),
    get(
        "/api/metrics/query_range?since=1h&q=%7B%7D%7Chistogram_over_time(duration)%20by%20(.a%2C.b%2C.c%2C.d%2C.e)",
        400,
        "more than 4 labels",
    ),
    // topk keeps at most k series of those computed: no allocation is sized by k.
    get(
        "/api/metrics/query_range?since=1h&q=%7B%7D%7Crate()%20by%20(name)%7Ctopk(4000000000)",
        200,
        "{",
    ),
    get(
        "/api/metrics/query_range?since=1h&q=%7B%7D%7Ccompare(%7B.a%3D1%7D%2C100000)",
        400,
        "compare() topN must be between 1 and 1000",
    ),
    // ---- /api/search
    get("/api/search?q=%7B%7D&limit=262145", 400, "limit 262145 exceeds max limit of 262144"),
    get("/api/search?q=%7B%7D&limit=0", 400, "invalid limit: must be a positive number"),
    get("/api/search?q=%7B%7D&spss=101", 400, "spans per span set exceeds 100. received 101"),
    get(
        "/api/search?q=%7B%7D&spss=4294967296",
        400,
        "spans per span set exceeds 100. received 4294967296",
    ),
    get(
        "/api/search?q=%7B%7D&start=1&end=700000",
        400,
        "range specified by start and end exceeds 168h0m0s",
    ),
    get("/api/search?q=%7B%7D&start=4294967296&end=4294967297", 400, "invalid start"),
    get("/api/search?q=%7B%7D&minDuration=99999999999h", 400, "invalid minDuration"),
    get(
        "/api/search?q=%7B%7D&minDuration=2s&maxDuration=1s",
        400,
        "invalid maxDuration: must be greater than minDuration",
    ),
    get_built(operators_1002, 400, "more than 1000 operators in one query"),
    get_built(operators_1000_spansets, 200, "{"),
    get_built(operators_1000_fields, 200, "{"),
    get_built(logfmt_tags_101, 400, "invalid tags: 101 tags, at most 100"),
    get_built(legacy_tags_101, 400, "invalid tags: 101 tags, at most 100"),
    // ---- tags
    // No allocation is sized by a tag limit: values are collected until it is reached.
    get("/api/v2/search/tags?limit=4294967295", 200, "scopes"),
    get("/api/search/tags?limit=4294967296", 400, "invalid limit"),
    get("/api/v2/search/tags?scope=everything", 400, "invalid scope: everything"),
    // Not read: vivace keeps no stale-value state.
    get(
        "/api/v2/search/tag/span.x/values?maxStaleValues=99999999999999999999",
        200,
        "tagValues",
    ),
    get(
        "/api/v2/search/tags?start=1&end=700000",
        400,
        "range specified by start and end exceeds 168h0m0s",
    ),
    // ---- trace by ID
    get(
        "/api/v2/traces/0123456789abcdef0123456789abcdef0",
        400,
        "trace IDs can't be larger than 128 bits",
    ),
    get(
        "/api/v2/traces/0123456789abcdef?start=20&end=10",
        400,
        "http parameter start must be before end",
    ),
    // ---- Loki and /api/logs
    get(
        "/loki/api/v1/query_range?query=%7Bservice_name%3D%22a%22%7D&limit=5001",
        400,
        "max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)",
    ),
    get(
        "/loki/api/v1/query?query=%7Bservice_name%3D%22a%22%7D&limit=18446744073709551616",
        400,
        "invalid limit",
    ),
    get(
        "/loki/api/v1/query_range?query=%7Bservice_name%3D%22a%22%7D&since=1h&step=0.001",
        400,
        "exceeded maximum resolution of 11000 points per timeseries",
    ),
    get(
        "/loki/api/v1/query_range?query=%7Bservice_name%3D%22a%22%7D&step=-5",
        400,
        "zero or negative query resolution step widths are not accepted",
    ),
    get(
        "/api/logs?service=a&limit=100000",
        400,
        "max entries limit per query exceeded",
    ),
    post(
        Port::Http,
        "/loki/api/v1/push",
        snappy_huge_length,
        413,
        "",
    ),
    post(Port::Http, "/loki/api/v1/push", oversized_json, 413, ""),
    // ---- UI
    get("/api/ui/service-graph?since=4294967296", 400, "since must be a positive number"),
    // ---- Alertmanager webhook
    post(
        Port::Http,
        "/api/alerts/webhook",
        webhook_1001_alerts,
        400,
        "1001 alerts in one notification, at most 1000",
    ),
    post(
        Port::Http,
        "/api/alerts/webhook",
        webhook_over_4_mib,
        413,
        "length limit exceeded",
    ),
    // ---- receivers (distributor.max_request_bytes = 64 KiB here)
    post(Port::OtlpHttp, "/v1/traces", oversized_protobuf, 413, ""),
    post(Port::OtlpHttp, "/v1/traces", gzip_bomb, 413, ""),
    post(Port::Zipkin, "/api/v2/spans", oversized_json, 413, ""),
    post(Port::JaegerThrift, "/api/traces", oversized_thrift, 413, ""),
];

#[tokio::test(flavor = "multi_thread")]
async fn hostile_sizes_get_4xx_and_the_server_keeps_serving() {
    let (zipkin, jaeger, jaeger_grpc) = (free_port(), free_port(), free_port());
    let vivace = Vivace::start(&format!(
        "distributor:\n  max_request_bytes: {MAX_REQUEST_BYTES}\n  receivers:\n    zipkin:\n      endpoint: 127.0.0.1:{zipkin}\n    jaeger:\n      protocols:\n        thrift_http:\n          endpoint: 127.0.0.1:{jaeger}\n        grpc:\n          endpoint: 127.0.0.1:{jaeger_grpc}\n"
    ));
    let client = reqwest::Client::new();
    let mut ran = 0;
    for row in ROWS {
        let path = match &row.target {
            Target::Fixed(path) => path.to_string(),
            Target::Built(build) => build(),
        };
        let url = match row.port {
            Port::Http | Port::RawHttp => vivace.url(&path),
            Port::OtlpHttp => format!("{}{path}", vivace.otlp_http_url()),
            Port::Zipkin => format!("http://127.0.0.1:{zipkin}{path}"),
            Port::JaegerThrift => format!("http://127.0.0.1:{jaeger}{path}"),
        };
        let request = match row.body {
            None => client.get(&url),
            Some(body) => {
                let (content_type, bytes) = body();
                let request = client.post(&url);
                if content_type == "gzip" {
                    request
                        .header("content-type", "application/x-protobuf")
                        .header("content-encoding", "gzip")
                        .body(bytes)
                } else {
                    request.header("content-type", content_type).body(bytes)
                }
            }
        };
        let label = format!("{:?} {}", row.port, &path[..path.len().min(120)]);
        let (status, text) = if let Port::RawHttp = row.port {
            raw_get(vivace.ports.http, &path)
        } else {
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{label}: {}", e.without_url()));
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        };
        let shown = &text[..text.len().min(300)];
        assert_eq!(status, row.status, "{label}: {shown}");
        assert!(text.contains(row.says), "{label}: {shown}");
        let ready = client.get(vivace.url("/ready")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "after {label}");
        ran += 1;
    }
    assert_eq!(ran, ROWS.len());
    assert_eq!(ran, 53, "HTTP rows in the limits table");

    let ran_grpc = grpc_rows(&vivace, jaeger_grpc).await;
    assert_eq!(ran_grpc, 16, "gRPC rows in the limits table");
}

/// A GET written by hand on a fresh connection: the status and the body (whatever follows the
/// headers).
fn raw_get(port: u16, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {:?}", &answer[..answer.len().min(200)]));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or("");
    (status, body.to_string())
}

/// Calls a server-streaming RPC without a tenant; all messages, or the status.
async fn stream<Req, Resp>(
    port: u16,
    method: &'static str,
    request: Req,
) -> Result<Vec<Resp>, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    common::stream_rpc(port, method, request, None).await
}

/// Checks one gRPC answer: `Ok` when `code` is `Ok`, else that status with `says` in it; then
/// that the server still serves.
async fn expect<T>(
    vivace: &Vivace,
    what: &str,
    answer: Result<T, tonic::Status>,
    code: Code,
    says: &str,
) {
    match answer {
        Ok(_) => assert_eq!(code, Code::Ok, "{what}: answered"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {}", status.message());
            assert!(
                status.message().contains(says),
                "{what}: {}",
                status.message()
            );
        }
    }
    let ready = reqwest::get(vivace.url("/ready")).await.unwrap();
    assert_eq!(ready.status(), 200, "after {what}");
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn grpc_rows(vivace: &Vivace, jaeger_grpc: u16) -> usize {
    const SEARCH: &str = "/tempopb.StreamingQuerier/Search";
    const RANGE: &str = "/tempopb.StreamingQuerier/MetricsQueryRange";
    const INSTANT: &str = "/tempopb.StreamingQuerier/MetricsQueryInstant";
    let port = vivace.ports.grpc;
    let now = now_seconds();
    let now_ns = now * 1_000_000_000;
    let hour_ns = 3600 * 1_000_000_000;
    let long = format!("{{}}{}", " ".repeat(LONG_QUERY_BYTES));
    let mut ran = 0;

    let search = |request: SearchRequest| stream::<_, SearchResponse>(port, SEARCH, request);
    let answer = search(SearchRequest {
        query: "{}".into(),
        limit: 262_145,
        ..Default::default()
    })
    .await;
    expect(
        vivace,
        "Search limit",
        answer,
        Code::InvalidArgument,
        "exceeds max limit of 262144",
    )
    .await;
    ran += 1;
    let answer = search(SearchRequest {
        query: "{}".into(),
        spans_per_span_set: u32::MAX,
        ..Default::default()
    })
    .await;
    expect(
        vivace,
        "Search spss",
        answer,
        Code::InvalidArgument,
        "spans per span set exceeds 100",
    )
    .await;
    ran += 1;
    let answer = search(SearchRequest {
        query: "{}".into(),
        start: 1,
        end: 700_000,
        ..Default::default()
    })
    .await;
    expect(
        vivace,
        "Search range",
        answer,
        Code::InvalidArgument,
        "exceeds 168h0m0s",
    )
    .await;
    ran += 1;
    let answer = search(SearchRequest {
        query: long.clone(),
        ..Default::default()
    })
    .await;
    expect(
        vivace,
        "Search query size",
        answer,
        Code::InvalidArgument,
        "at most 131072",
    )
    .await;
    ran += 1;
    // Past the decoding limit the request is refused before it is buffered whole.
    let answer = search(SearchRequest {
        query: " ".repeat(5 * 1024 * 1024),
        ..Default::default()
    })
    .await;
    expect(
        vivace,
        "Search message size",
        answer,
        Code::OutOfRange,
        "message length too large",
    )
    .await;
    ran += 1;

    let range = |query: &str, step: u64| {
        stream::<_, QueryRangeResponse>(
            port,
            RANGE,
            QueryRangeRequest {
                query: query.to_string(),
                start: now_ns - hour_ns,
                end: now_ns,
                step,
                ..Default::default()
            },
        )
    };
    let answer = range("{} | rate()", 1_000).await;
    expect(
        vivace,
        "MetricsQueryRange step",
        answer,
        Code::InvalidArgument,
        "maximum resolution of 11000 points",
    )
    .await;
    ran += 1;
    // `maxSeries` is not read: the server's 1,000 applies whatever the client asks.
    let answer = stream::<_, QueryRangeResponse>(
        port,
        RANGE,
        QueryRangeRequest {
            query: "{} | rate()".into(),
            start: now_ns - hour_ns,
            end: now_ns,
            max_series: u32::MAX,
            ..Default::default()
        },
    )
    .await;
    expect(vivace, "MetricsQueryRange maxSeries", answer, Code::Ok, "").await;
    ran += 1;
    let answer = range("{} | rate()", u64::MAX).await;
    expect(
        vivace,
        "MetricsQueryRange step u64::MAX",
        answer,
        Code::InvalidArgument,
        "invalid step",
    )
    .await;
    ran += 1;
    let answer = range(&format!("{long} | rate()"), 0).await;
    expect(
        vivace,
        "MetricsQueryRange query size",
        answer,
        Code::InvalidArgument,
        "at most 131072",
    )
    .await;
    ran += 1;
    let quantiles = vec!["0.9"; 21].join(",");
    let answer = range(
        &format!("{{}} | quantile_over_time(duration, {quantiles})"),
        0,
    )
    .await;
    expect(
        vivace,
        "MetricsQueryRange quantiles",
        answer,
        Code::InvalidArgument,
        "at most 20 quantiles",
    )
    .await;
    ran += 1;
    let answer = range(&vec!["({} | rate())"; 101].join(" + "), 0).await;
    expect(
        vivace,
        "MetricsQueryRange functions",
        answer,
        Code::InvalidArgument,
        "at most 100",
    )
    .await;
    ran += 1;
    let answer = stream::<_, QueryInstantResponse>(
        port,
        INSTANT,
        QueryInstantRequest {
            query: "{} | rate()".into(),
            start: 1,
            end: now_ns,
        },
    )
    .await;
    expect(
        vivace,
        "MetricsQueryInstant range",
        answer,
        Code::InvalidArgument,
        "24h0m0s",
    )
    .await;
    ran += 1;

    // Tag limits size no allocation: the largest is answered.
    let answer = stream::<_, SearchTagsV2Response>(
        port,
        "/tempopb.StreamingQuerier/SearchTagsV2",
        SearchTagsRequest {
            max_tags_per_scope: u32::MAX,
            ..Default::default()
        },
    )
    .await;
    expect(vivace, "SearchTagsV2 limit", answer, Code::Ok, "").await;
    ran += 1;
    let answer = stream::<_, SearchTagValuesV2Response>(
        port,
        "/tempopb.StreamingQuerier/SearchTagValuesV2",
        SearchTagValuesRequest {
            tag_name: "span.x".into(),
            query: long,
            max_tag_values: u32::MAX,
            ..Default::default()
        },
    )
    .await;
    expect(
        vivace,
        "SearchTagValuesV2 query size",
        answer,
        Code::InvalidArgument,
        "at most 131072",
    )
    .await;
    ran += 1;

    // The span receivers' gRPC services past the request limit: the length prefix is checked
    // before the message is buffered or decoded, so any message of that size stands in.
    let receivers = [
        (
            vivace.otlp_grpc_url(),
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        ),
        (
            format!("http://127.0.0.1:{jaeger_grpc}"),
            "/jaeger.api_v2.CollectorService/PostSpans",
        ),
    ];
    for (url, method) in receivers {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .expect("connect to a gRPC receiver");
        let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
        grpc.ready().await.unwrap();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![opentelemetry_proto::tonic::trace::v1::ResourceSpans {
                schema_url: "x".repeat(MAX_REQUEST_BYTES + 1),
                ..Default::default()
            }],
        };
        let answer = grpc
            .unary::<_, ExportTraceServiceResponse, _>(
                tonic::Request::new(request),
                tonic::codegen::http::uri::PathAndQuery::from_static(method),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        expect(
            vivace,
            method,
            answer,
            Code::OutOfRange,
            "message length too large",
        )
        .await;
        ran += 1;
    }
    ran
}
