//! Hand-built traces through the generator, with the exact series they must produce.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;

use super::config::GeneratorConfig;
use super::exposition::{self, Format};
use super::GeneratorState;
use crate::model::{int_attribute, string_attribute};

/// Arrival time of every test request: 2023-11-14T22:13:20Z.
const NOW_MS: i64 = 1_700_000_000_000;
const NOW_NS: u64 = NOW_MS as u64 * 1_000_000;

fn trace_id(number: u8) -> Vec<u8> {
    let mut id = vec![0u8; 16];
    id[0] = 0x4b;
    id[15] = number;
    id
}

fn span_id(number: u8) -> Vec<u8> {
    if number == 0 {
        Vec::new()
    } else {
        vec![0, 0, 0, 0, 0, 0, 0, number]
    }
}

struct SpanSpec {
    trace: u8,
    id: u8,
    parent: u8,
    kind: SpanKind,
    name: &'static str,
    /// Start, in ms before NOW.
    start_before_ms: u64,
    duration_ms: u64,
    error: bool,
    attributes: Vec<KeyValue>,
}

fn span(spec: SpanSpec) -> Span {
    let start = NOW_NS - spec.start_before_ms * 1_000_000;
    Span {
        trace_id: trace_id(spec.trace),
        span_id: span_id(spec.id),
        parent_span_id: span_id(spec.parent),
        name: spec.name.into(),
        kind: spec.kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + spec.duration_ms * 1_000_000,
        attributes: spec.attributes,
        status: spec.error.then(|| Status {
            code: 2,
            message: "boom".into(),
        }),
        ..Default::default()
    }
}

fn simple(
    trace: u8,
    id: u8,
    parent: u8,
    kind: SpanKind,
    name: &'static str,
    duration_ms: u64,
) -> SpanSpec {
    SpanSpec {
        trace,
        id,
        parent,
        kind,
        name,
        start_before_ms: 1_000,
        duration_ms,
        error: false,
        attributes: Vec::new(),
    }
}

fn batch(resource: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn service(name: &str) -> Vec<KeyValue> {
    vec![string_attribute("service.name", name)]
}

fn double_attribute(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn config(yaml: &str) -> GeneratorConfig {
    let config: GeneratorConfig = serde_yaml::from_str(yaml).expect("generator config");
    config.validate().expect("valid generator config");
    config
}

fn render(state: &GeneratorState, format: Format) -> String {
    let mut text = String::new();
    state.render(format, &mut text);
    text
}

#[track_caller]
fn assert_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|candidate| candidate == line),
        "missing line\n  {line}\nin\n{text}"
    );
}

#[track_caller]
fn assert_no_series(text: &str, prefix: &str) {
    assert!(
        !text.lines().any(|line| line.starts_with(prefix)),
        "unexpected series {prefix} in\n{text}"
    );
}

const CART: &str = "service=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"GET /cart\"";

#[test]
fn span_metrics_pin_names_labels_and_values() {
    let mut state =
        GeneratorState::new(config("processors: {service_graphs: {enabled: false}}")).unwrap();
    let ok = span(simple(1, 1, 0, SpanKind::Server, "GET /cart", 300));
    let failed = span(SpanSpec {
        error: true,
        ..simple(2, 1, 0, SpanKind::Server, "GET /cart", 20_000)
    });
    let internal = span(simple(1, 2, 1, SpanKind::Internal, "render", 1));
    let sizes = (
        ok.encoded_len(),
        failed.encoded_len(),
        internal.encoded_len(),
    );
    let outcome = state.consume(
        "single-tenant",
        &[batch(service("checkout"), vec![ok, failed, internal])],
        NOW_MS,
    );
    assert_eq!(outcome.spans, 3);
    let text = render(&state, Format::Prometheus);
    assert_line(&text, "# TYPE traces_spanmetrics_calls_total counter");
    assert_line(
        &text,
        &format!("traces_spanmetrics_calls_total{{{CART},status_code=\"STATUS_CODE_UNSET\"}} 1"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_calls_total{{{CART},status_code=\"STATUS_CODE_ERROR\"}} 1"),
    );
    assert_line(&text, "traces_spanmetrics_calls_total{service=\"checkout\",span_kind=\"SPAN_KIND_INTERNAL\",span_name=\"render\",status_code=\"STATUS_CODE_UNSET\"} 1");
    let unset = format!("{CART},status_code=\"STATUS_CODE_UNSET\"");
    assert_line(&text, "# TYPE traces_spanmetrics_latency histogram");
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_bucket{{{unset},le=\"0.002\"}} 0"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_bucket{{{unset},le=\"0.256\"}} 0"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_bucket{{{unset},le=\"0.512\"}} 1"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_bucket{{{unset},le=\"16.384\"}} 1"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_bucket{{{unset},le=\"+Inf\"}} 1"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_sum{{{unset}}} 0.3"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_count{{{unset}}} 1"),
    );
    let error = format!("{CART},status_code=\"STATUS_CODE_ERROR\"");
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_bucket{{{error},le=\"16.384\"}} 0"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_bucket{{{error},le=\"+Inf\"}} 1"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_size_total{{{unset}}} {}", sizes.0),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_size_total{{{error}}} {}", sizes.1),
    );
    // 17 series per histogram label set: 15 buckets, _sum and _count; 3 label sets.
    assert_eq!(state.registry().stats().active_series, 3 * (17 + 2));
    assert_no_series(&text, "traces_target_info");
}

#[test]
fn dimensions_are_sanitised_and_looked_up_resource_first() {
    let mut state = GeneratorState::new(config(
        "processors:\n  service_graphs: {enabled: false}\n  span_metrics:\n    dimensions: [http.route, deployment.environment, status.code, missing.attribute]\n    intrinsic_dimensions: {span_name: false, status_message: true}\n    dimension_mappings: [{name: peer.addr, source_labels: [net.peer.name, net.peer.port, absent], join: ':'}]\n",
    ))
    .unwrap();
    let mut resource = service("checkout");
    resource.push(string_attribute("deployment.environment", "prod"));
    let spec = SpanSpec {
        error: true,
        attributes: vec![
            string_attribute("http.route", "/cart/{id}"),
            string_attribute("deployment.environment", "hidden-by-resource"),
            int_attribute("status.code", 503),
            string_attribute("net.peer.name", "cart-db"),
            int_attribute("net.peer.port", 5432),
        ],
        ..simple(1, 1, 0, SpanKind::Server, "GET /cart/42", 5)
    };
    state.consume(
        "single-tenant",
        &[batch(resource, vec![span(spec)])],
        NOW_MS,
    );
    let text = render(&state, Format::Prometheus);
    assert_line(
        &text,
        "traces_spanmetrics_calls_total{__status_code=\"503\",deployment_environment=\"prod\",http_route=\"/cart/{id}\",peer_addr=\"cart-db:5432\",service=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",status_code=\"STATUS_CODE_ERROR\",status_message=\"boom\"} 1",
    );
}

#[test]
fn target_info_carries_resource_attributes() {
    let mut state = GeneratorState::new(config(
        "processors:\n  service_graphs: {enabled: false}\n  span_metrics:\n    enable_target_info: true\n    target_info_excluded_dimensions: [process.pid]\n",
    ))
    .unwrap();
    let resource = vec![
        string_attribute("service.name", "checkout"),
        string_attribute("service.namespace", "shop"),
        string_attribute("service.instance.id", "pod-1"),
        string_attribute("k8s.pod.name", "checkout-7d9"),
        string_attribute("job", "clash"),
        int_attribute("process.pid", 42),
        string_attribute("3d.model", "skipped"),
    ];
    state.consume(
        "single-tenant",
        &[batch(
            resource,
            vec![span(simple(1, 1, 0, SpanKind::Server, "GET /", 5))],
        )],
        NOW_MS,
    );
    let text = render(&state, Format::Prometheus);
    assert_line(&text, "# TYPE traces_target_info gauge");
    assert_line(
        &text,
        "traces_target_info{__job=\"clash\",instance=\"pod-1\",job=\"shop/checkout\",k8s_pod_name=\"checkout-7d9\"} 1",
    );
    assert_line(
        &text,
        "traces_spanmetrics_calls_total{instance=\"pod-1\",job=\"shop/checkout\",service=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"GET /\",status_code=\"STATUS_CODE_UNSET\"} 1",
    );
}

#[test]
fn filter_policies_slack_and_multiplier() {
    let mut state = GeneratorState::new(config(
        "processors:\n  service_graphs: {enabled: false}\n  span_metrics:\n    span_multiplier_key: sampling.ratio\n    filter_policies:\n    - include: {match_type: strict, attributes: [{key: kind, value: SPAN_KIND_SERVER}]}\n    - exclude: {match_type: regex, attributes: [{key: span.http.route, value: \"^/health\"}]}\n",
    ))
    .unwrap();
    let sampled = SpanSpec {
        attributes: vec![double_attribute("sampling.ratio", 0.25)],
        ..simple(1, 1, 0, SpanKind::Server, "GET /a", 100)
    };
    let health = SpanSpec {
        attributes: vec![string_attribute("http.route", "/healthz")],
        ..simple(2, 1, 0, SpanKind::Server, "GET /healthz", 1)
    };
    let client = simple(3, 1, 0, SpanKind::Client, "call", 1);
    let too_old = SpanSpec {
        start_before_ms: 120_000,
        ..simple(4, 1, 0, SpanKind::Server, "GET /a", 1)
    };
    let outcome = state.consume(
        "single-tenant",
        &[batch(
            service("api"),
            vec![span(sampled), span(health), span(client), span(too_old)],
        )],
        NOW_MS,
    );
    assert_eq!(outcome.filtered, 2);
    assert_eq!(outcome.outside_slack, 1);
    let text = render(&state, Format::Prometheus);
    let labels = "service=\"api\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"GET /a\",status_code=\"STATUS_CODE_UNSET\"";
    assert_line(
        &text,
        &format!("traces_spanmetrics_calls_total{{{labels}}} 4"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_count{{{labels}}} 4"),
    );
    assert_line(
        &text,
        &format!("traces_spanmetrics_latency_sum{{{labels}}} 0.4"),
    );
    assert_no_series(
        &text,
        "traces_spanmetrics_calls_total{service=\"api\",span_kind=\"SPAN_KIND_CLIENT\"",
    );
    assert!(!text.contains("healthz"), "{text}");
}

fn graph_state(extra: &str) -> GeneratorState {
    GeneratorState::new(config(&format!(
        "processors:\n  span_metrics: {{enabled: false}}\n  service_graphs:\n    wait: 10s\n{extra}"
    )))
    .unwrap()
}

#[test]
fn client_and_server_spans_pair_into_an_edge() {
    let mut state = graph_state("    dimensions: [deployment.environment]\n");
    let client = span(SpanSpec {
        attributes: vec![string_attribute("deployment.environment", "prod")],
        ..simple(7, 1, 0, SpanKind::Client, "GET /cart", 300)
    });
    let server = span(SpanSpec {
        error: true,
        ..simple(7, 2, 1, SpanKind::Server, "GET /cart", 150)
    });
    // The server half arrives first and waits for the client half.
    state.consume(
        "single-tenant",
        &[batch(service("cart"), vec![server])],
        NOW_MS,
    );
    assert_no_series(
        &render(&state, Format::Prometheus),
        "traces_service_graph_request_total{",
    );
    state.consume(
        "single-tenant",
        &[batch(service("frontend"), vec![client])],
        NOW_MS,
    );
    let text = render(&state, Format::Prometheus);
    let edge = "client=\"frontend\",deployment_environment=\"prod\",server=\"cart\"";
    assert_line(
        &text,
        &format!("traces_service_graph_request_total{{{edge}}} 1"),
    );
    assert_line(
        &text,
        &format!("traces_service_graph_request_failed_total{{{edge}}} 1"),
    );
    assert_line(
        &text,
        &format!("traces_service_graph_request_server_seconds_bucket{{{edge},le=\"0.1\"}} 0"),
    );
    assert_line(
        &text,
        &format!("traces_service_graph_request_server_seconds_bucket{{{edge},le=\"0.2\"}} 1"),
    );
    assert_line(
        &text,
        &format!("traces_service_graph_request_server_seconds_sum{{{edge}}} 0.15"),
    );
    assert_line(
        &text,
        &format!("traces_service_graph_request_client_seconds_bucket{{{edge},le=\"0.2\"}} 0"),
    );
    assert_line(
        &text,
        &format!("traces_service_graph_request_client_seconds_bucket{{{edge},le=\"0.4\"}} 1"),
    );
    assert_line(
        &text,
        &format!("traces_service_graph_request_client_seconds_count{{{edge}}} 1"),
    );
    let openmetrics = render(&state, Format::OpenMetrics);
    assert_line(
        &openmetrics,
        &format!("traces_service_graph_request_server_seconds_bucket{{{edge},le=\"0.2\"}} 1 # {{traceID=\"4b000000000000000000000000000007\"}} 0.15 1700000000.000"),
    );
    // Completed edges leave the store, so nothing expires later.
    state.expire_edges(NOW_MS + 60_000);
    assert_no_series(
        &render(&state, Format::Prometheus),
        "traces_service_graph_unpaired_spans_total",
    );
}

#[test]
fn database_calls_are_complete_at_once() {
    let mut state = graph_state("");
    let by_address = span(SpanSpec {
        attributes: vec![
            string_attribute("db.system", "postgresql"),
            string_attribute("network.peer.address", "10.0.0.5"),
            int_attribute("network.peer.port", 5432),
        ],
        ..simple(1, 1, 0, SpanKind::Client, "SELECT", 30)
    });
    let by_name = span(SpanSpec {
        error: true,
        attributes: vec![string_attribute("db.name", "orders")],
        ..simple(2, 1, 0, SpanKind::Client, "SELECT", 30)
    });
    let by_peer = span(SpanSpec {
        attributes: vec![
            string_attribute("db.system", "redis"),
            string_attribute("peer.service", "cache"),
            string_attribute("server.address", "redis.local"),
        ],
        ..simple(3, 1, 0, SpanKind::Client, "GET", 30)
    });
    state.consume(
        "single-tenant",
        &[batch(service("orders"), vec![by_address, by_name, by_peer])],
        NOW_MS,
    );
    let text = render(&state, Format::Prometheus);
    assert_line(&text, "traces_service_graph_request_total{client=\"orders\",connection_type=\"database\",server=\"10.0.0.5:5432\"} 1");
    assert_line(&text, "traces_service_graph_request_failed_total{client=\"orders\",connection_type=\"database\",server=\"orders\"} 1");
    assert_line(&text, "traces_service_graph_request_total{client=\"orders\",connection_type=\"database\",server=\"cache\"} 1");
    // The database's latency is the client's.
    assert_line(&text, "traces_service_graph_request_server_seconds_sum{client=\"orders\",connection_type=\"database\",server=\"cache\"} 0.03");
}

#[test]
fn producer_and_consumer_make_a_messaging_edge() {
    let mut state = graph_state("    enable_messaging_system_latency_histogram: true\n");
    let producer = span(SpanSpec {
        start_before_ms: 2_000,
        ..simple(5, 1, 0, SpanKind::Producer, "publish", 10)
    });
    // The consumer starts 1.49 s after the producer ended.
    let consumer = span(SpanSpec {
        start_before_ms: 500,
        ..simple(5, 2, 1, SpanKind::Consumer, "process", 20)
    });
    state.consume(
        "single-tenant",
        &[batch(service("orders"), vec![producer])],
        NOW_MS,
    );
    state.consume(
        "single-tenant",
        &[batch(service("billing"), vec![consumer])],
        NOW_MS,
    );
    let text = render(&state, Format::Prometheus);
    let edge = "client=\"orders\",connection_type=\"messaging_system\",server=\"billing\"";
    assert_line(
        &text,
        &format!("traces_service_graph_request_total{{{edge}}} 1"),
    );
    assert_line(
        &text,
        &format!(
            "traces_service_graph_request_messaging_system_seconds_bucket{{{edge},le=\"0.8\"}} 0"
        ),
    );
    assert_line(
        &text,
        &format!(
            "traces_service_graph_request_messaging_system_seconds_bucket{{{edge},le=\"1.6\"}} 1"
        ),
    );
    assert_line(
        &text,
        &format!("traces_service_graph_request_messaging_system_seconds_sum{{{edge}}} 1.49"),
    );
}

#[test]
fn expired_half_edges_become_virtual_nodes_or_unpaired() {
    let mut state = graph_state("    enable_virtual_node_label: true\n");
    let root_server = span(simple(1, 1, 0, SpanKind::Server, "GET /", 50));
    let root_server_with_peer = span(SpanSpec {
        attributes: vec![string_attribute("peer.service", "load-balancer")],
        ..simple(2, 1, 0, SpanKind::Server, "GET /", 50)
    });
    let client_to_peer = span(SpanSpec {
        attributes: vec![string_attribute("peer.service", "payments-api")],
        ..simple(3, 1, 0, SpanKind::Client, "POST /pay", 250)
    });
    let orphan_server = span(simple(4, 2, 1, SpanKind::Server, "GET /x", 5));
    let orphan_client = span(simple(5, 1, 0, SpanKind::Client, "GET /y", 5));
    state.consume(
        "single-tenant",
        &[batch(
            service("shop"),
            vec![
                root_server,
                root_server_with_peer,
                client_to_peer,
                orphan_server,
                orphan_client,
            ],
        )],
        NOW_MS,
    );
    // Nothing before `wait` has passed.
    state.expire_edges(NOW_MS + 9_999);
    assert_no_series(
        &render(&state, Format::Prometheus),
        "traces_service_graph_request_total{",
    );
    state.expire_edges(NOW_MS + 10_000);
    let text = render(&state, Format::Prometheus);
    assert_line(&text, "traces_service_graph_request_total{client=\"user\",connection_type=\"virtual_node\",server=\"shop\",virtual_node=\"client\"} 1");
    assert_line(&text, "traces_service_graph_request_total{client=\"load-balancer\",connection_type=\"virtual_node\",server=\"shop\",virtual_node=\"client\"} 1");
    assert_line(&text, "traces_service_graph_request_total{client=\"shop\",connection_type=\"virtual_node\",server=\"payments-api\",virtual_node=\"server\"} 1");
    // The missing side's latency is 0: the lowest bucket.
    assert_line(&text, "traces_service_graph_request_server_seconds_bucket{client=\"shop\",connection_type=\"virtual_node\",server=\"payments-api\",virtual_node=\"server\",le=\"0.1\"} 1");
    assert_line(
        &text,
        "traces_service_graph_unpaired_spans_total{server=\"shop\"} 1",
    );
    assert_line(
        &text,
        "traces_service_graph_unpaired_spans_total{client=\"shop\"} 1",
    );
    let stats = state.service_graphs.as_ref().unwrap().stats();
    assert_eq!(stats.expired_edges, 5);
}

#[test]
fn a_full_store_drops_new_half_edges() {
    let mut state = graph_state("    max_items: 2\n");
    let spans = (1..=4)
        .map(|number| span(simple(number, 1, 0, SpanKind::Client, "call", 5)))
        .collect();
    state.consume("single-tenant", &[batch(service("a"), spans)], NOW_MS);
    let server = span(simple(9, 2, 1, SpanKind::Server, "serve", 5));
    state.consume(
        "single-tenant",
        &[batch(service("b"), vec![server])],
        NOW_MS,
    );
    let text = render(&state, Format::Prometheus);
    assert_line(
        &text,
        "traces_service_graph_dropped_spans_total{client=\"a\"} 2",
    );
    assert_line(
        &text,
        "traces_service_graph_dropped_spans_total{server=\"b\"} 1",
    );
    assert_eq!(
        state.service_graphs.as_ref().unwrap().stats().dropped_spans,
        3
    );
}

#[test]
fn the_series_limit_folds_new_series_into_overflow() {
    // One span-metrics label set costs 1 + 17 + 1 = 19 series, so two fit in 38.
    let mut state = GeneratorState::new(config(
        "processors: {service_graphs: {enabled: false}}\nregistry: {max_active_series: 38}\n",
    ))
    .unwrap();
    let spans = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(index, name)| span(simple(index as u8 + 1, 1, 0, SpanKind::Server, name, 5)))
        .collect();
    state.consume("single-tenant", &[batch(service("svc"), spans)], NOW_MS);
    let text = render(&state, Format::Prometheus);
    assert_line(&text, "traces_spanmetrics_calls_total{service=\"svc\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"a\",status_code=\"STATUS_CODE_UNSET\"} 1");
    assert_line(&text, "traces_spanmetrics_calls_total{service=\"svc\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"b\",status_code=\"STATUS_CODE_UNSET\"} 1");
    assert_line(
        &text,
        "traces_spanmetrics_calls_total{metric_overflow=\"true\"} 2",
    );
    assert_line(
        &text,
        "traces_spanmetrics_latency_count{metric_overflow=\"true\"} 2",
    );
    assert_no_series(&text, "traces_spanmetrics_calls_total{service=\"svc\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"c\"");
    assert!(state.registry().stats().series_limited >= 2);
}

#[test]
fn tenants_have_their_own_series_and_limits_and_idle_ones_are_dropped() {
    use super::Tenants;
    use crate::overrides::OverridesConfig;
    let overrides: OverridesConfig =
        serde_yaml::from_str("per_tenant: {big: {metrics_generator: {max_active_series: 1000}}}")
            .unwrap();
    let tenants = Tenants::new(
        config(
            "processors: {service_graphs: {enabled: false}}\nregistry: {max_active_series: 38, stale_duration: 1m}\n",
        ),
        std::sync::Arc::new(overrides),
    )
    .unwrap();
    assert_eq!(tenants.max_active_series("noisy"), 38);
    assert_eq!(tenants.max_active_series("big"), 1000);
    let spans = |count: u8| -> Vec<Span> {
        (1..=count)
            .map(|n| {
                span(simple(
                    n,
                    1,
                    0,
                    SpanKind::Server,
                    ["a", "b", "c", "d"][usize::from(n - 1)],
                    5,
                ))
            })
            .collect()
    };
    tenants.consume("noisy", &[batch(service("noisy-svc"), spans(4))], NOW_MS);
    tenants.consume("quiet", &[batch(service("quiet-svc"), spans(1))], NOW_MS);
    tenants.consume("big", &[batch(service("big-svc"), spans(4))], NOW_MS);
    assert_eq!(tenants.names(), vec!["big", "noisy", "quiet"]);
    let text = |tenant: &str| {
        let mut out = String::new();
        tenants.render(tenant, Format::Prometheus, &mut out);
        out
    };
    let noisy = text("noisy");
    assert_line(
        &noisy,
        "traces_spanmetrics_calls_total{metric_overflow=\"true\"} 2",
    );
    assert!(
        !noisy.contains("quiet-svc") && !noisy.contains("big-svc"),
        "{noisy}"
    );
    let quiet = text("quiet");
    assert!(!quiet.contains("metric_overflow"), "{quiet}");
    assert!(!quiet.contains("noisy-svc"), "{quiet}");
    assert_line(&quiet, "traces_spanmetrics_calls_total{service=\"quiet-svc\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"a\",status_code=\"STATUS_CODE_UNSET\"} 1");
    let big = text("big");
    assert!(!big.contains("metric_overflow"), "{big}");
    assert_line(&big, "traces_spanmetrics_calls_total{service=\"big-svc\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"d\",status_code=\"STATUS_CODE_UNSET\"} 1");
    assert_eq!(text("nobody"), "");

    let (per_tenant, total) = tenants.stats();
    assert_eq!(per_tenant.len(), 3);
    let limited_before = total.registry.series_limited;
    assert!(limited_before >= 2);
    assert_eq!(
        total.registry.active_series,
        per_tenant
            .iter()
            .map(|(_, stats)| stats.registry.active_series)
            .sum::<u64>()
    );
    // Everything goes stale: the tenants are dropped, their counters stay in the totals.
    tenants.remove_stale(NOW_MS + 60_000);
    assert!(tenants.names().is_empty());
    let (per_tenant, total) = tenants.stats();
    assert!(per_tenant.is_empty());
    assert_eq!(total.registry.active_series, 0);
    assert_eq!(total.registry.series_limited, limited_before);
    // A dropped tenant starts afresh on its next spans.
    tenants.consume("quiet", &[batch(service("quiet-svc"), spans(1))], NOW_MS);
    assert!(text("quiet").contains("quiet-svc"));
    assert_eq!(tenants.names(), vec!["quiet"]);
}

#[test]
fn stale_series_disappear_from_the_exposition() {
    let mut state = GeneratorState::new(config(
        "processors: {service_graphs: {enabled: false}}\nregistry: {stale_duration: 1m}\n",
    ))
    .unwrap();
    state.consume(
        "single-tenant",
        &[batch(
            service("svc"),
            vec![span(simple(1, 1, 0, SpanKind::Server, "x", 5))],
        )],
        NOW_MS,
    );
    assert_eq!(state.remove_stale(NOW_MS + 59_000), 0);
    assert_eq!(state.remove_stale(NOW_MS + 60_000), 3);
    assert_eq!(render(&state, Format::Prometheus), "");
    assert_eq!(state.registry().stats().active_series, 0);
}

/// One OpenMetrics sample line: name, labels, value, optional timestamp, optional exemplar
/// `# {labels} value [timestamp]` (OpenMetrics 1.0 ABNF, simplified to what Prometheus reads).
fn openmetrics_sample_regex() -> regex::Regex {
    let label = r#"[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*""#;
    let labels = format!(r"\{{(?:{label}(?:,{label})*)?\}}");
    let number = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|Inf)|NaN)";
    regex::Regex::new(&format!(
        r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:{labels})? {number}(?: {number})?(?P<exemplar> # {labels} {number}(?: {number})?)?$"
    ))
    .unwrap()
}

/// Checks an OpenMetrics body the way Prometheus 2.42 reads it: sample syntax, families not
/// split, exemplars only on `_bucket`/`_total`, and `# EOF` last.
fn check_openmetrics(text: &str) -> usize {
    let sample = openmetrics_sample_regex();
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
    let mut exemplars = 0;
    let mut families_seen = std::collections::HashSet::new();
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap();
            assert!(
                families_seen.insert(family.to_string()),
                "family {family} split"
            );
            if kind == "counter" {
                assert!(
                    !family.ends_with("_total"),
                    "counter family {family} keeps _total"
                );
            }
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let captures = sample
            .captures(line)
            .unwrap_or_else(|| panic!("not an OpenMetrics sample: {line}"));
        if captures.name("exemplar").is_some() {
            exemplars += 1;
            let name = &captures["name"];
            assert!(
                name.ends_with("_bucket") || name.ends_with("_total"),
                "Prometheus 2.42 refuses an exemplar on {name}"
            );
        }
    }
    exemplars
}

#[test]
fn openmetrics_matches_the_lab_example() {
    let example_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lab/om_example.txt");
    let example = std::fs::read_to_string(example_path).expect("tests/data/lab/om_example.txt");
    // The grammar accepts what a real Prometheus 2.42 scraped, exemplars included.
    assert_eq!(check_openmetrics(&example), 2);

    let mut state = GeneratorState::new(GeneratorConfig::default()).unwrap();
    let client = span(simple(1, 1, 0, SpanKind::Client, "GET \"/cart\"\n", 300));
    let server = span(simple(1, 2, 1, SpanKind::Server, "GET /cart", 200));
    state.consume(
        "single-tenant",
        &[batch(service("checkout"), vec![client])],
        NOW_MS,
    );
    state.consume(
        "single-tenant",
        &[batch(service("cart"), vec![server])],
        NOW_MS,
    );
    let mut body = String::new();
    exposition::prometheus_to_openmetrics(
        "# HELP tempo_distributor_spans_received_total Spans.\n# TYPE tempo_distributor_spans_received_total counter\ntempo_distributor_spans_received_total{tenant=\"single-tenant\"} 2\n",
        &mut body,
    );
    state.render(Format::OpenMetrics, &mut body);
    exposition::finish_openmetrics(&mut body);
    // Span metrics (2 latency series) and the service graph (client and server histograms).
    assert_eq!(check_openmetrics(&body), 4, "{body}");
    assert_line(&body, "# TYPE tempo_distributor_spans_received counter");
    assert_line(&body, "# TYPE traces_spanmetrics_calls counter");
    assert_line(&body, "# TYPE traces_service_graph_request counter");
    assert_line(&body, "# TYPE traces_spanmetrics_latency histogram");
    assert_line(
        &body,
        "traces_spanmetrics_latency_bucket{service=\"cart\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"GET /cart\",status_code=\"STATUS_CODE_UNSET\",le=\"0.256\"} 1 # {traceID=\"4b000000000000000000000000000001\"} 0.2 1700000000.000",
    );
    // Label values are escaped.
    assert!(
        body.contains("span_name=\"GET \\\"/cart\\\"\\n\""),
        "{body}"
    );
    // Counters, _sum and _count never carry exemplars.
    for line in body.lines().filter(|line| line.contains(" # {")) {
        assert!(line.contains("_bucket{"), "{line}");
    }
}

#[test]
fn prometheus_text_has_no_exemplars_and_parses() {
    let mut state = GeneratorState::new(GeneratorConfig::default()).unwrap();
    let server = span(simple(1, 2, 0, SpanKind::Server, "GET /", 200));
    state.consume(
        "single-tenant",
        &[batch(service("web"), vec![server])],
        NOW_MS,
    );
    state.expire_edges(NOW_MS + 10_000);
    let text = render(&state, Format::Prometheus);
    assert!(!text.contains(" # {"), "{text}");
    assert!(!text.contains("# EOF"), "{text}");
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).unwrap();
    let calls = scrape
        .samples
        .iter()
        .find(|sample| sample.metric == "traces_spanmetrics_calls_total")
        .expect("calls series");
    assert_eq!(calls.labels.get("service"), Some("web"));
    assert_eq!(calls.labels.get("span_kind"), Some("SPAN_KIND_SERVER"));
    assert!(matches!(calls.value, prometheus_parse::Value::Counter(value) if value == 1.0));
    let edge = scrape
        .samples
        .iter()
        .find(|sample| sample.metric == "traces_service_graph_request_total")
        .expect("edge series");
    assert_eq!(edge.labels.get("client"), Some("user"));
    assert_eq!(edge.labels.get("connection_type"), Some("virtual_node"));
    let latency = scrape
        .samples
        .iter()
        .find(|sample| sample.metric == "traces_spanmetrics_latency")
        .expect("latency histogram");
    let prometheus_parse::Value::Histogram(buckets) = &latency.value else {
        panic!("latency is not a histogram: {:?}", latency.value);
    };
    assert_eq!(buckets.len(), 15);
}

#[test]
fn the_accept_header_picks_the_format() {
    let prometheus_242 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(
        exposition::negotiate(Some(prometheus_242)),
        Format::OpenMetrics
    );
    assert_eq!(
        exposition::negotiate(Some("application/openmetrics-text")),
        Format::OpenMetrics
    );
    assert_eq!(
        exposition::negotiate(Some("text/plain;version=0.0.4")),
        Format::Prometheus
    );
    assert_eq!(
        exposition::negotiate(Some("text/plain,application/openmetrics-text;q=0.5")),
        Format::Prometheus
    );
    assert_eq!(exposition::negotiate(Some("*/*")), Format::Prometheus);
    assert_eq!(exposition::negotiate(None), Format::Prometheus);
}

/// Generator cost per span with both processors on: 200 requests of 10 traces, each a
/// client→server pair plus a database call and an internal span, over 10 services and 20
/// span names. It checks the series a realistic mix produces and prints the cost per span;
/// for a figure worth quoting run it in release:
/// `cargo test --release --lib generator_cost_per_span -- --nocapture`.
#[test]
fn generator_cost_per_span() {
    let mut state = GeneratorState::new(config(
        "processors: {span_metrics: {dimensions: [http.route]}}",
    ))
    .unwrap();
    let names = ["GET /a", "GET /b", "POST /c", "PUT /d", "GET /e"];
    let mut requests = Vec::new();
    let mut trace = 0u32;
    for request in 0..200u32 {
        let mut batches = Vec::new();
        for _ in 0..10 {
            trace += 1;
            let mut trace_id = vec![0x4bu8; 16];
            trace_id[12..].copy_from_slice(&trace.to_be_bytes());
            let client_service = format!("svc-{}", trace % 10);
            let server_service = format!("svc-{}", (trace + 1) % 10);
            let name = names[(trace % 5) as usize];
            let with_trace = |mut span: Span| {
                span.trace_id = trace_id.clone();
                span.attributes.push(string_attribute("http.route", name));
                span
            };
            let client = with_trace(span(simple(0, 1, 0, SpanKind::Client, name, 30)));
            let server = with_trace(span(simple(0, 2, 1, SpanKind::Server, name, 20)));
            let internal = with_trace(span(simple(0, 3, 2, SpanKind::Internal, "render", 2)));
            let database = with_trace(span(SpanSpec {
                attributes: vec![string_attribute("db.system", "postgresql")],
                ..simple(0, 4, 2, SpanKind::Client, "SELECT", 5)
            }));
            batches.push(batch(service(&client_service), vec![client]));
            batches.push(batch(
                service(&server_service),
                vec![server, internal, database],
            ));
        }
        let _ = request;
        requests.push(batches);
    }
    let spans = requests.len() as u64 * 40;
    let started = std::time::Instant::now();
    for batches in &requests {
        state.consume("single-tenant", batches, NOW_MS);
    }
    let elapsed = started.elapsed();
    let mut text = String::new();
    let render_started = std::time::Instant::now();
    state.render(Format::OpenMetrics, &mut text);
    let render_elapsed = render_started.elapsed();
    println!(
        "generator: {spans} spans in {elapsed:?} = {} ns/span; {} series rendered ({} bytes) in {render_elapsed:?}",
        elapsed.as_nanos() / u128::from(spans),
        state.registry().stats().active_series,
        text.len()
    );
    // Ten services calling each other with five routes, plus one database edge per caller.
    assert!(
        text.contains("traces_spanmetrics_calls_total{"),
        "span metrics rendered"
    );
    assert!(
        text.contains("connection_type=\"database\""),
        "database edges rendered"
    );
    assert!(state.registry().stats().active_series > 100);
}
