//! Pushdown tests: what a filtered read skips on a small written block (counters), the
//! Tempo-written golden block, and equivalence with whole-block decoding for random queries
//! over random blocks.

use std::collections::BTreeSet;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;

use super::*;
use crate::tempodb::meta::DedicatedColumn;
use crate::tempodb::vparquet4::{encode, pushdown, read_metadata, read_traces, WriterOptions};
use crate::traceql::eval::{Evaluator, StructuralMode};
use crate::traceql::parse_and_validate;
use crate::traceql::search::{CompiledSearch, SearchOptions};

fn kv(key: &str, value: AnyValueKind) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, AnyValueKind::StringValue(value.to_string()))
}

pub(crate) fn id(n: u64) -> TraceId {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    bytes[0] = 0x20;
    TraceId(bytes)
}

/// What one generated span carries.
#[derive(Debug, Clone)]
pub(crate) struct SpanSpec {
    service: u8,
    name: u8,
    kind: i32,
    status: i32,
    duration_ms: u64,
    attributes: Vec<(u8, AttrValue)>,
    child: bool,
}

#[derive(Debug, Clone)]
enum AttrValue {
    Str(u8),
    Int(i64),
    Float(f64),
    Bool(bool),
}

pub(crate) fn build_trace(trace_id: TraceId, spans: &[SpanSpec]) -> Trace {
    let mut resource_spans: Vec<ResourceSpans> = Vec::new();
    for (index, spec) in spans.iter().enumerate() {
        let start = 1_700_000_000_000_000_000 + index as u64 * 1_000;
        let attributes = spec
            .attributes
            .iter()
            .map(|(key, value)| {
                let key = ATTRIBUTE_KEYS[*key as usize % ATTRIBUTE_KEYS.len()];
                match value {
                    AttrValue::Str(v) => text(key, VALUES[*v as usize % VALUES.len()]),
                    AttrValue::Int(v) => kv(key, AnyValueKind::IntValue(*v)),
                    AttrValue::Float(v) => kv(key, AnyValueKind::DoubleValue(*v)),
                    AttrValue::Bool(v) => kv(key, AnyValueKind::BoolValue(*v)),
                }
            })
            .collect();
        let span = Span {
            trace_id: trace_id.as_bytes().to_vec(),
            span_id: (index as u64 + 1).to_be_bytes().to_vec(),
            parent_span_id: if index > 0 && spec.child {
                1u64.to_be_bytes().to_vec()
            } else if index > 0 {
                (index as u64).to_be_bytes().to_vec()
            } else {
                Vec::new()
            },
            name: NAMES[spec.name as usize % NAMES.len()].to_string(),
            kind: spec.kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + spec.duration_ms * 1_000_000,
            attributes,
            status: Some(Status {
                code: spec.status,
                message: String::new(),
            }),
            ..Default::default()
        };
        let service = SERVICES[spec.service as usize % SERVICES.len()];
        resource_spans.push(ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service), text("team", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            schema_url: String::new(),
        });
    }
    Trace { resource_spans }
}

const SERVICES: [&str; 4] = ["frontend", "payments", "db", "cart"];
const NAMES: [&str; 3] = ["GET /", "POST /pay", "SELECT"];
const ATTRIBUTE_KEYS: [&str; 5] = [
    "http.status_code",
    "http.method",
    "db.system",
    "retries",
    "sampled",
];
const VALUES: [&str; 3] = ["GET", "postgresql", "503"];

fn encode_block(traces: &[(TraceId, Trace)], options: &WriterOptions) -> Bytes {
    Bytes::from(
        encode(traces, &dedicated(), options)
            .expect("block encodes")
            .bytes,
    )
}

fn dedicated() -> Vec<DedicatedColumn> {
    vec![
        DedicatedColumn::new("span", "db.system"),
        DedicatedColumn::new("resource", "team"),
    ]
}

fn filtered(block: &Bytes, query: &str) -> (Vec<(TraceId, Trace)>, pushdown::PushdownStats) {
    let compiled = CompiledSearch::new(parse_and_validate(query).expect("query is valid"))
        .expect("search query");
    let metadata = read_metadata(block).expect("metadata");
    pushdown::read_traces_filtered(
        block.clone(),
        &metadata,
        &dedicated(),
        &compiled.prefilter(),
        &compiled.needs(),
    )
    .expect("filtered read")
}

/// IDs of the traces among `traces` that `query` matches.
pub(crate) fn matches(traces: &[(TraceId, Trace)], query: &str) -> BTreeSet<TraceId> {
    let compiled = CompiledSearch::new(parse_and_validate(query).expect("query is valid"))
        .expect("search query");
    let evaluator = Evaluator::new(StructuralMode::Real);
    traces
        .iter()
        .filter(|(trace_id, trace)| {
            compiled
                .run(&evaluator, trace_id, trace, &SearchOptions::default())
                .expect("query runs")
                .is_some()
        })
        .map(|(trace_id, _)| *trace_id)
        .collect()
}

fn plain_span(service: u8, status_code: i64, duration_ms: u64) -> SpanSpec {
    SpanSpec {
        service,
        name: 0,
        kind: 2,
        status: 0,
        duration_ms,
        attributes: vec![(0, AttrValue::Int(status_code))],
        child: false,
    }
}

/// 4000 traces in a few row groups of several pages each: services `cart` and `payments`
/// in the first 3000, `db` after; one 503 (at 3500), one slow span (at 120).
fn small_block() -> (Vec<(TraceId, Trace)>, Bytes) {
    let traces: Vec<(TraceId, Trace)> = (0..4000u64)
        .map(|n| {
            let service = if n >= 3000 {
                2
            } else if n % 2 == 0 {
                3
            } else {
                1
            };
            let status = if n == 3500 { 503 } else { 200 };
            let duration = if n == 120 { 5_000 } else { 10 };
            let spans = vec![
                plain_span(service, 200, 10),
                plain_span(service, status, duration),
            ];
            (id(n), build_trace(id(n), &spans))
        })
        .collect();
    let options = WriterOptions {
        row_group_size_bytes: 100_000,
        page_size_bytes: 1024,
        page_row_count_limit: 10,
    };
    let block = encode_block(&traces, &options);
    (traces, block)
}

#[test]
fn selective_queries_skip_row_groups_and_pages() {
    let (traces, block) = small_block();

    // `db` lies between the first row groups' min and max service names, but is not in
    // their dictionaries.
    let query = r#"{ resource.service.name = "db" }"#;
    let (read, stats) = filtered(&block, query);
    assert!(stats.row_groups >= 3, "{stats:?}");
    assert_eq!(stats.rows, 4000);
    assert!(stats.row_groups_skipped_by_values >= 2, "{stats:?}");
    assert_eq!(stats.rows_decoded, 1000, "{stats:?}");
    assert_eq!(matches(&read, query), matches(&traces, query));

    // Row groups without a 503 go on the HttpStatusCode statistics; in the one left, pages
    // without one are dropped on the column index.
    let query = r#"{ span.http.status_code = 503 && resource.service.name = "db" }"#;
    let (read, stats) = filtered(&block, query);
    assert_eq!(
        stats.row_groups_skipped_by_statistics,
        stats.row_groups - 1,
        "{stats:?}"
    );
    assert!(stats.pages_skipped > 0, "{stats:?}");
    assert!(stats.rows_tested < 1000, "{stats:?}");
    assert_eq!(stats.rows_decoded, 1, "{stats:?}");
    let read_ids: Vec<TraceId> = read.iter().map(|(trace_id, _)| *trace_id).collect();
    assert_eq!(read_ids, vec![id(3500)]);
    assert_eq!(matches(&read, query), matches(&traces, query));

    let (read, stats) = filtered(&block, "{ duration > 2s }");
    assert_eq!(stats.rows_decoded, 1, "{stats:?}");
    assert_eq!(read[0].0, id(120));

    // A query the pre-filter cannot use decodes everything, as a whole-block read does.
    let (read, stats) = filtered(&block, r#"{ span.http.status_code != 503 }"#);
    assert_eq!(stats.rows_decoded, 4000);
    assert_eq!(stats.pages_skipped, 0);
    assert_eq!(
        stats.row_groups_skipped_by_statistics + stats.row_groups_skipped_by_values,
        0
    );
    assert_eq!(read, read_traces(block.clone(), &dedicated()).unwrap());
}

#[test]
fn tempo_written_golden_block_reads_the_same_filtered() {
    let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
        .join("tempo-blocks/generated-by-tempo-v3.0.3/vParquet4/single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10");
    let data = Bytes::from(std::fs::read(dir.join("data.parquet")).expect("golden data.parquet"));
    let meta = crate::tempodb::meta::BlockMeta::from_json(
        &std::fs::read(dir.join("meta.json")).expect("golden meta.json"),
    )
    .expect("golden meta parses");
    let all = read_traces(data.clone(), &meta.dedicated_columns).expect("golden reads");
    let metadata = read_metadata(&data).expect("golden metadata");
    for query in [
        "{ }",
        "{ duration > 100ms }",
        "{ status = error }",
        "{ kind = server }",
        r#"{ resource.service.name = "frontend" }"#,
        r#"{ name =~ "GET.*" }"#,
        r#"{ span.http.status_code >= 500 }"#,
        r#"{ .http.method = "GET" } >> { }"#,
    ] {
        let compiled = CompiledSearch::new(parse_and_validate(query).unwrap()).unwrap();
        let (read, _) = pushdown::read_traces_filtered(
            data.clone(),
            &metadata,
            &meta.dedicated_columns,
            &compiled.prefilter(),
            &compiled.needs(),
        )
        .unwrap();
        assert_eq!(matches(&read, query), matches(&all, query), "{query}");
    }
}

fn attr_value() -> impl Strategy<Value = AttrValue> {
    prop_oneof![
        (0u8..3).prop_map(AttrValue::Str),
        prop_oneof![Just(200i64), Just(404), Just(503), Just(0), Just(3)].prop_map(AttrValue::Int),
        prop_oneof![Just(0.5f64), Just(503.0), Just(3.0)].prop_map(AttrValue::Float),
        any::<bool>().prop_map(AttrValue::Bool),
    ]
}

pub(crate) fn span_spec() -> impl Strategy<Value = SpanSpec> {
    (
        0u8..4,
        0u8..3,
        0i32..6,
        0i32..3,
        prop_oneof![Just(1u64), Just(50), Just(1_500), Just(3_000)],
        prop::collection::vec((0u8..5, attr_value()), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(service, name, kind, status, duration_ms, attributes, child)| SpanSpec {
                service,
                name,
                kind,
                status,
                duration_ms,
                attributes,
                child,
            },
        )
}

/// One condition of a generated query.
fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        (0usize..4).prop_map(|s| format!("resource.service.name = \"{}\"", SERVICES[s])),
        (0usize..4).prop_map(|s| format!(".team = \"{}\"", SERVICES[s])),
        (0usize..3).prop_map(|n| format!("name = \"{}\"", NAMES[n])),
        Just("name =~ \"(GET|POST).*\"".to_string()),
        (0usize..5, 0usize..3)
            .prop_map(|(k, v)| format!("span.{} = \"{}\"", ATTRIBUTE_KEYS[k], VALUES[v])),
        (
            0usize..5,
            prop_oneof![Just("="), Just(">"), Just("<="), Just(">=")],
            prop_oneof![Just("503"), Just("3"), Just("0.5"), Just("200")]
        )
            .prop_map(|(k, op, v)| format!("span.{} {op} {v}", ATTRIBUTE_KEYS[k])),
        (0usize..5, any::<bool>()).prop_map(|(k, b)| format!(".{} = {b}", ATTRIBUTE_KEYS[k])),
        prop_oneof![Just("> 1s"), Just("< 10ms"), Just("= 50ms"), Just(">= 3s")]
            .prop_map(|d| format!("duration {d}")),
        prop_oneof![Just("error"), Just("ok"), Just("unset")].prop_map(|s| format!("status = {s}")),
        prop_oneof![
            Just("server"),
            Just("client"),
            Just("unspecified"),
            Just("internal")
        ]
        .prop_map(|k| format!("kind = {k}")),
        Just("span.retries != 3".to_string()),
        Just("span.sampled = nil".to_string()),
        (0usize..4).prop_map(|s| format!("rootServiceName = \"{}\"", SERVICES[s])),
    ]
}

/// `{ c1 op c2 … }` from conditions, each with the operator joining it to the one before
/// (the first one's is unused).
pub(crate) fn spanset_of(parts: &[(String, &str)]) -> String {
    let mut text = String::from("{ ");
    for (index, (condition, op)) in parts.iter().enumerate() {
        if index > 0 {
            text.push_str(&format!(" {op} "));
        }
        text.push_str(condition);
    }
    text + " }"
}

fn spanset_filter() -> impl Strategy<Value = String> {
    prop::collection::vec((condition(), prop_oneof![Just("&&"), Just("||")]), 1..4)
        .prop_map(|parts| spanset_of(&parts))
}

pub(crate) fn query() -> impl Strategy<Value = String> {
    (
        spanset_filter(),
        prop::option::of((
            prop_oneof![
                Just("&&"),
                Just("||"),
                Just(">>"),
                Just(">"),
                Just("~"),
                Just("!>>"),
                Just("&>>")
            ],
            spanset_filter(),
        )),
    )
        .prop_map(|(lhs, rhs)| match rhs {
            Some((op, rhs)) => format!("{lhs} {op} {rhs}"),
            None => lhs,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For random queries over random small blocks, searching the filtered read finds the
    /// same traces as searching the whole block.
    #[test]
    fn filtered_reads_find_what_whole_reads_find(
        specs in prop::collection::vec(prop::collection::vec(span_spec(), 1..5), 1..40),
        queries in prop::collection::vec(query(), 1..6),
    ) {
        let traces: Vec<(TraceId, Trace)> = specs
            .iter()
            .enumerate()
            .map(|(n, spans)| (id(n as u64), build_trace(id(n as u64), spans)))
            .collect();
        let options = WriterOptions {
            row_group_size_bytes: 300,
            page_size_bytes: 256,
            page_row_count_limit: 3,
        };
        let block = encode_block(&traces, &options);
        let all = read_traces(block.clone(), &dedicated()).unwrap();
        for query in &queries {
            let (read, _) = filtered(&block, query);
            prop_assert_eq!(matches(&read, query), matches(&all, query), "{}", query);
        }
    }
}

#[test]
fn short_gaps_between_runs_are_read_through() {
    let runs = [(0, 2), (5, 1), (200, 3), (264, 1), (330, 1)];
    assert_eq!(
        super::bridge_gaps(&runs, 64),
        vec![(0, 6), (200, 65), (330, 1)]
    );
    assert_eq!(super::bridge_gaps(&runs, 0), runs.to_vec());
    assert!(super::bridge_gaps(&[], 64).is_empty());
}

#[test]
fn runs_split_after_a_row_count() {
    let runs = [(0, 3), (10, 4), (20, 2)];
    assert_eq!(
        super::split_runs(&runs, 5),
        (vec![(0, 3), (10, 2)], vec![(12, 2), (20, 2)])
    );
    assert_eq!(
        super::split_runs(&runs, 3),
        (vec![(0, 3)], vec![(10, 4), (20, 2)])
    );
    assert_eq!(super::split_runs(&runs, 100), (runs.to_vec(), vec![]));
}

#[test]
fn projected_reads_leave_out_what_the_query_does_not_read() {
    // `retries` and `sampled` sit in the generic attribute list; http.status_code in its
    // well-known column, db.system in a dedicated one.
    let traces: Vec<(TraceId, Trace)> = (0..50u64)
        .map(|n| {
            let mut span = plain_span(1 + (n % 2) as u8, 200, 10);
            span.attributes.extend([
                (2, AttrValue::Str(1)),
                (3, AttrValue::Int(n as i64)),
                (4, AttrValue::Bool(true)),
            ]);
            (id(n), build_trace(id(n), &[span.clone(), span]))
        })
        .collect();
    let block = encode_block(&traces, &WriterOptions::default());
    let metadata = read_metadata(&block).unwrap();
    let read = |needs: &Needs| {
        pushdown::read_traces_filtered(
            block.clone(),
            &metadata,
            &dedicated(),
            &TraceFilter::True,
            needs,
        )
        .unwrap()
        .0
    };
    let whole = read(&Needs::ALL);
    let projected = read(&Needs::NONE);
    assert_eq!(projected.len(), whole.len());
    let spans = |trace: &Trace| -> Vec<(Vec<u8>, String, u64, usize)> {
        trace
            .resource_spans
            .iter()
            .flat_map(|batch| &batch.scope_spans)
            .flat_map(|scope| &scope.spans)
            .map(|span| {
                (
                    span.span_id.clone(),
                    span.name.clone(),
                    span.end_time_unix_nano - span.start_time_unix_nano,
                    span.attributes.len(),
                )
            })
            .collect()
    };
    let services = |trace: &Trace| -> Vec<String> {
        trace
            .resource_spans
            .iter()
            .filter_map(|batch| batch.resource.as_ref())
            .flat_map(|resource| &resource.attributes)
            .filter(|kv| kv.key == "service.name")
            .map(|kv| format!("{:?}", kv.value))
            .collect()
    };
    let mut whole_attributes = 0;
    for ((projected_id, projected_trace), (whole_id, whole_trace)) in projected.iter().zip(&whole) {
        assert_eq!(projected_id, whole_id);
        let (got, expected) = (spans(projected_trace), spans(whole_trace));
        assert_eq!(got.len(), expected.len());
        for (got, expected) in got.iter().zip(&expected) {
            assert_eq!(
                (&got.0, &got.1, got.2),
                (&expected.0, &expected.1, expected.2)
            );
            // Well-known columns (http.status_code here) still come back; the rest does not.
            assert!(got.3 <= expected.3);
            whole_attributes += expected.3 - got.3;
        }
        assert_eq!(services(projected_trace), services(whole_trace));
    }
    // Two generic attributes on each of 100 spans.
    assert_eq!(whole_attributes, 200);
    let with_span_attributes = read(&Needs {
        span_attributes: true,
        ..Needs::NONE
    });
    assert_eq!(with_span_attributes, whole);
}

/// One condition a metrics query can read from span columns alone.
fn column_condition() -> impl Strategy<Value = String> {
    prop_oneof![
        (0usize..4).prop_map(|s| format!("resource.service.name = \"{}\"", SERVICES[s])),
        (0usize..4).prop_map(|s| format!("resource.service.name != \"{}\"", SERVICES[s])),
        (0usize..3).prop_map(|n| format!("name = \"{}\"", NAMES[n])),
        Just("name =~ \"(GET|POST).*\"".to_string()),
        prop_oneof![Just("> 1s"), Just("< 10ms"), Just("= 50ms"), Just(">= 3s")]
            .prop_map(|d| format!("duration {d}")),
        prop_oneof![Just("error"), Just("ok"), Just("unset")].prop_map(|s| format!("status = {s}")),
        prop_oneof![Just("server"), Just("client"), Just("internal")]
            .prop_map(|k| format!("kind = {k}")),
        Just("statusMessage = \"\"".to_string()),
        // Span attributes: generic, well-known columns (http.*) and a dedicated one
        // (db.system), each of several types.
        (0usize..5, 0usize..3)
            .prop_map(|(k, v)| format!("span.{} = \"{}\"", ATTRIBUTE_KEYS[k], VALUES[v])),
        (0usize..5).prop_map(|k| format!("span.{} = 503", ATTRIBUTE_KEYS[k])),
        (0usize..5).prop_map(|k| format!("span.{} > 3.0", ATTRIBUTE_KEYS[k])),
        (0usize..5).prop_map(|k| format!("span.{} = true", ATTRIBUTE_KEYS[k])),
        (0usize..5).prop_map(|k| format!("span.{} != nil", ATTRIBUTE_KEYS[k])),
    ]
}

/// A metrics query every part of which reads span columns.
pub(crate) fn column_metrics_query() -> impl Strategy<Value = String> {
    let filter = prop_oneof![
        Just("{ }".to_string()),
        prop::collection::vec(
            (column_condition(), prop_oneof![Just("&&"), Just("||")]),
            1..3
        )
        .prop_map(|parts| spanset_of(&parts)),
    ];
    let function = prop_oneof![
        Just("rate()"),
        Just("count_over_time()"),
        Just("min_over_time(duration)"),
        Just("max_over_time(duration)"),
        Just("avg_over_time(duration)"),
        Just("sum_over_time(duration)"),
        Just("quantile_over_time(duration, .5, .99)"),
        Just("histogram_over_time(duration)"),
    ];
    let by = prop_oneof![
        Just(""),
        Just(" by (resource.service.name)"),
        Just(" by (name)"),
        Just(" by (kind, status)"),
        Just(" by (resource.service.name, name)"),
        Just(" by (span.db.system)"),
        Just(" by (span.http.status_code, span.sampled)"),
        Just(" by (span.http.method, span.retries)"),
    ];
    (filter, function, by).prop_map(|(filter, function, by)| format!("{filter} | {function}{by}"))
}

/// Both answers of a metrics query: from decoded traces, from span columns, and how many
/// batches came as columns.
pub(crate) type BothWays = (
    crate::traceql::metrics::QueryRangeResponse,
    crate::traceql::metrics::QueryRangeResponse,
    u64,
);

/// Runs `query` over `block` once from decoded traces, once from span columns (traces where a
/// row group's columns do not suffice), and returns both answers.
fn metrics_both_ways(block: &Bytes, query: &str) -> BothWays {
    let base = 1_700_000_000_000_000_000u64;
    let request =
        crate::traceql::metrics::MetricsRequest::range(base - 2_000, base + 6_000, 1_000, 100)
            .unwrap();
    metrics_both_ways_in(block, &dedicated(), query, request)
}

/// [`metrics_both_ways`] over a block with its own dedicated columns and a request of the
/// caller's.
pub(crate) fn metrics_both_ways_in(
    block: &Bytes,
    dedicated_columns: &[DedicatedColumn],
    query: &str,
    request: crate::traceql::metrics::MetricsRequest,
) -> BothWays {
    use crate::traceql::metrics::{CompiledMetrics, MetricsEvaluation};
    let compiled = CompiledMetrics::new(parse_and_validate(query).expect("query is valid"))
        .expect("metrics query");
    let fields = compiled
        .span_fields()
        .unwrap_or_else(|| panic!("{query} reads only span columns"));
    let metadata = read_metadata(block).unwrap();
    let evaluator = Evaluator::new(StructuralMode::Real);

    let mut by_traces = MetricsEvaluation::new(&compiled, request);
    let (traces, _) = pushdown::read_traces_filtered(
        block.clone(),
        &metadata,
        dedicated_columns,
        &TraceFilter::True,
        &Needs::ALL,
    )
    .unwrap();
    for (id, trace) in &traces {
        by_traces.observe_trace(&evaluator, id, trace).unwrap();
    }

    let mut by_columns = MetricsEvaluation::new(&compiled, request);
    let needs = compiled.needs();
    let mut column_batches = 0u64;
    let mut failure = None;
    pushdown::stream_filtered(
        block.clone(),
        &metadata,
        dedicated_columns,
        &TraceFilter::True,
        pushdown::Decode::Columns {
            fields: &fields,
            needs: &needs,
        },
        &mut |batch| {
            let outcome = match batch {
                pushdown::Decoded::Columns(columns, _) => {
                    column_batches += 1;
                    (0..columns.trace_count()).try_for_each(|trace| {
                        let spans: Vec<_> = columns.trace_spans(trace).collect();
                        by_columns.observe_spans(&evaluator, &spans)
                    })
                }
                pushdown::Decoded::Traces(traces, _) => traces
                    .iter()
                    .try_for_each(|(id, trace)| by_columns.observe_trace(&evaluator, id, trace)),
            };
            if let Err(error) = outcome {
                failure = Some(error);
                return false;
            }
            true
        },
    )
    .unwrap();
    assert!(failure.is_none(), "{query}: {failure:?}");
    (by_traces.finish(), by_columns.finish(), column_batches)
}

/// Traces of random spans, numbered in order; those `nameless` picks lose their resources'
/// `service.name`.
pub(crate) fn traces_of(
    specs: &[Vec<SpanSpec>],
    nameless: impl Fn(usize) -> bool,
) -> Vec<(TraceId, Trace)> {
    specs
        .iter()
        .enumerate()
        .map(|(n, spans)| {
            let mut trace = build_trace(id(n as u64), spans);
            if nameless(n) {
                for batch in &mut trace.resource_spans {
                    if let Some(resource) = batch.resource.as_mut() {
                        resource.attributes.retain(|kv| kv.key != "service.name");
                    }
                }
            }
            (id(n as u64), trace)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// TraceQL metrics aggregated straight from span columns equal the row evaluator's
    /// answer over the decoded traces, for random column-only queries over random blocks
    /// (some resources without a service name, whose row groups decode as traces).
    #[test]
    fn metrics_from_columns_equal_metrics_from_traces(
        specs in prop::collection::vec(prop::collection::vec(span_spec(), 1..5), 1..40),
        nameless in prop::collection::vec(any::<bool>(), 40),
        queries in prop::collection::vec(column_metrics_query(), 1..6),
    ) {
        let traces = traces_of(&specs, |n| nameless[n] && n % 7 == 3);
        let options = WriterOptions {
            row_group_size_bytes: 600,
            page_size_bytes: 256,
            page_row_count_limit: 3,
        };
        let block = encode_block(&traces, &options);
        for query in &queries {
            let (by_traces, by_columns, _) = metrics_both_ways(&block, query);
            prop_assert_eq!(&by_columns.series, &by_traces.series, "{}", query);
            prop_assert_eq!(&by_columns.partial, &by_traces.partial, "{}", query);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whole traces put into columns (what the querier does with the head's traces) give the
    /// row evaluator's answer over the same traces, for random column-only queries, in
    /// batches of three traces (so codes of one batch never leak into the next).
    #[test]
    fn metrics_from_traces_put_into_columns_equal_metrics_from_traces(
        specs in prop::collection::vec(prop::collection::vec(span_spec(), 1..5), 1..40),
        nameless in prop::collection::vec(any::<bool>(), 40),
        queries in prop::collection::vec(column_metrics_query(), 1..6),
    ) {
        use crate::traceql::columns::SpanColumns;
        use crate::traceql::metrics::{CompiledMetrics, MetricsEvaluation, MetricsRequest};
        let traces = traces_of(&specs, |n| nameless[n]);
        let base = 1_700_000_000_000_000_000u64;
        let request = MetricsRequest::range(base - 2_000, base + 6_000, 1_000, 100).unwrap();
        let evaluator = Evaluator::new(StructuralMode::Real);
        let mut compared = 0;
        for query in &queries {
            let compiled = CompiledMetrics::new(parse_and_validate(query).unwrap()).unwrap();
            let fields = compiled.span_fields().unwrap();
            let mut by_traces = MetricsEvaluation::new(&compiled, request);
            for (trace_id, trace) in &traces {
                by_traces.observe_trace(&evaluator, trace_id, trace).unwrap();
            }
            let mut by_columns = MetricsEvaluation::new(&compiled, request);
            for chunk in traces.chunks(3) {
                let columns = SpanColumns::from_traces(
                    chunk.iter().map(|(trace_id, trace)| (*trace_id, trace)),
                    &fields,
                );
                prop_assert_eq!(columns.trace_count(), chunk.len());
                for trace in 0..columns.trace_count() {
                    let spans: Vec<_> = columns.trace_spans(trace).collect();
                    by_columns.observe_spans(&evaluator, &spans).unwrap();
                }
            }
            let (by_traces, by_columns) = (by_traces.finish(), by_columns.finish());
            prop_assert_eq!(&by_columns.series, &by_traces.series, "{}", query);
            prop_assert_eq!(&by_columns.partial, &by_traces.partial, "{}", query);
            prop_assert_eq!(by_columns.metrics.inspected_spans, by_traces.metrics.inspected_spans);
            compared += 1;
        }
        prop_assert_eq!(compared, queries.len());
    }
}

#[test]
fn metrics_read_columns_and_match_on_a_fixed_set_of_queries() {
    let (traces, block) = small_block();
    assert!(!traces.is_empty());
    let queries = [
        "{ } | rate() by (resource.service.name)",
        "{ kind = server } | quantile_over_time(duration, .99) by (name)",
        "{ status = unset } | count_over_time() by (resource.service.name, name)",
        "{ duration > 10ms } | avg_over_time(duration) by (kind)",
        "{ } | histogram_over_time(duration)",
        "{ span.http.status_code = 503 } | count_over_time() by (resource.service.name)",
        "{ span.http.status_code >= 200 } | rate() by (span.http.status_code)",
    ];
    let mut compared = 0;
    for query in queries {
        let (by_traces, by_columns, column_batches) = metrics_both_ways(&block, query);
        assert!(column_batches > 0, "{query} read no columns");
        assert!(!by_traces.series.is_empty(), "{query} found no series");
        assert_eq!(by_columns.series, by_traces.series, "{query}");
        compared += 1;
    }
    assert_eq!(compared, 7);
}

#[test]
fn queries_that_relate_spans_are_not_read_from_columns() {
    use crate::traceql::metrics::CompiledMetrics;
    let fields = |query: &str| {
        CompiledMetrics::new(parse_and_validate(query).unwrap())
            .unwrap()
            .span_fields()
    };
    assert!(fields("{ } | rate() by (resource.service.name)").is_some());
    assert!(fields("{ span.db.system = \"redis\" } | rate()").is_some());
    assert!(fields("{ } | rate() by (span.http.route)").is_some());
    assert!(fields("{ .service.name = \"a\" } | rate()").is_none());
    assert!(fields("{ } >> { kind = server } | rate()").is_none());
    assert!(fields("{ rootServiceName = \"a\" } | rate()").is_none());
    assert!(fields("{ } | compare({ status = error })").is_none());
    assert!(fields("{ resource.team = \"a\" } | rate()").is_none());
    assert!(fields("{ span.db.system = \"a\" } | rate() by (.retries)").is_none());
}

#[test]
fn attributes_compared_only_with_strings_read_only_their_strings() {
    use crate::traceql::columns::SpanField;
    use crate::traceql::metrics::CompiledMetrics;
    let attribute_field = |query: &str| {
        CompiledMetrics::new(parse_and_validate(query).unwrap())
            .unwrap()
            .span_fields()
            .unwrap()
            .into_iter()
            .find(|field| field.span_attribute() == Some("db.system"))
            .unwrap()
    };
    let strings = SpanField::SpanAttributeStrings("db.system".into());
    let every_type = SpanField::SpanAttribute("db.system".into());
    let cases = [
        (
            r#"{ span.db.system = "redis" } | count_over_time()"#,
            &strings,
        ),
        (r#"{ span.db.system =~ "re.*" } | rate()"#, &strings),
        (
            r#"{ "redis" = span.db.system && kind = client } | rate()"#,
            &strings,
        ),
        (r#"{ !(span.db.system = "redis") } | rate()"#, &strings),
        (r#"{ span.db.system != "redis" } | rate()"#, &every_type),
        (r#"{ span.db.system = 3 } | rate()"#, &every_type),
        (
            r#"{ span.db.system = "redis" } | rate() by (span.db.system)"#,
            &every_type,
        ),
        (
            r#"{ span.db.system = "a" || span.db.system > 3 } | rate()"#,
            &every_type,
        ),
    ];
    for (query, expected) in &cases {
        assert_eq!(&attribute_field(query), *expected, "{query}");
    }
    assert_eq!(cases.len(), 8);
}

#[test]
fn batches_start_small_and_double_up_to_the_batch_size() {
    let rows: Vec<usize> = (0..5000).collect();
    let full = 1024;
    let sizes: Vec<usize> = growing_batches(&rows, FIRST_BATCH_ROWS, full)
        .map(<[usize]>::len)
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 5000);
    assert_eq!(sizes[0], FIRST_BATCH_ROWS);
    for pair in sizes.windows(2).take(sizes.len().saturating_sub(2)) {
        assert_eq!(pair[1], (pair[0] * 2).min(full), "{sizes:?}");
    }
    assert!(growing_batches::<usize>(&[], FIRST_BATCH_ROWS, full)
        .next()
        .is_none());
}

#[test]
fn a_number_no_plain_page_holds_skips_the_row_group_without_decoding_levels() {
    // Every trace carries the generic integer `retries` (1 or 9) and the double `sampled`
    // (0.5 or 3.0), so a value between them passes every row group's statistics.
    let traces: Vec<(TraceId, Trace)> = (0..600u64)
        .map(|n| {
            let mut span = plain_span(1, 200, 10);
            span.attributes = vec![
                (3, AttrValue::Int(if n % 2 == 0 { 1 } else { 9 })),
                (4, AttrValue::Float(if n % 3 == 0 { 0.5 } else { 3.0 })),
            ];
            (id(n), build_trace(id(n), &[span]))
        })
        .collect();
    let options = WriterOptions {
        row_group_size_bytes: 8_000,
        page_size_bytes: 512,
        page_row_count_limit: 20,
    };
    let block = encode_block(&traces, &options);
    let metadata = read_metadata(&block).unwrap();
    // The generic numbers are PLAIN, without a dictionary, as Tempo writes them.
    let int_leaf = metadata.file_metadata().schema_descr().columns().iter().position(|c| {
        c.path().string() == "rs.list.element.ss.list.element.Spans.list.element.Attrs.list.element.ValueInt.list.element"
    });
    let int_leaf = int_leaf.expect("ValueInt leaf");
    assert!(metadata
        .row_groups()
        .iter()
        .all(|group| group.column(int_leaf).dictionary_page_offset().is_none()));

    let mut compared = 0;
    for (query, found) in [
        ("{ span.retries = 5 }", 0),
        ("{ span.retries > 9 }", 0),
        ("{ span.sampled = 1.5 }", 0),
        ("{ span.retries = 9 }", 300),
        ("{ span.sampled < 1 }", 200),
    ] {
        let (read, stats) = filtered(&block, query);
        assert!(stats.row_groups > 3, "{stats:?}");
        assert_eq!(matches(&read, query), matches(&traces, query), "{query}");
        assert_eq!(matches(&read, query).len(), found, "{query}");
        if found == 0 {
            assert_eq!(
                stats.row_groups_skipped_by_statistics + stats.row_groups_skipped_by_values,
                stats.row_groups,
                "{query}: {stats:?}"
            );
            assert_eq!(stats.rows_tested, 0, "{query}: {stats:?}");
        } else {
            assert_eq!(stats.row_groups_skipped_by_values, 0, "{query}: {stats:?}");
        }
        compared += 1;
    }
    assert_eq!(compared, 5);
}
