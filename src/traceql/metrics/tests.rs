//! Exact values of every function over hand-built traces.

use super::*;
use crate::model::string_attribute;
use crate::traceql::parse_and_validate;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};

const S: u64 = 1_000_000_000;
/// The window's start, a multiple of every step used.
const T: u64 = 1_000 * S;

struct SpanSpec {
    service: &'static str,
    start: u64,
    duration: u64,
    code: Option<i64>,
    error: bool,
}

fn spec(service: &'static str, start: u64, duration: u64, code: Option<i64>) -> SpanSpec {
    SpanSpec {
        service,
        start,
        duration,
        code,
        error: false,
    }
}

fn trace(id: u8, specs: &[SpanSpec]) -> (TraceId, Trace) {
    let resource_spans = specs
        .iter()
        .enumerate()
        .map(|(i, s)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", s.service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![id; 16],
                    span_id: vec![0, 0, 0, 0, 0, 0, id, i as u8 + 1],
                    name: format!("op-{}", s.service),
                    start_time_unix_nano: s.start,
                    end_time_unix_nano: s.start + s.duration,
                    attributes: s
                        .code
                        .map(|c| KeyValue {
                            key: "http.status_code".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(c)),
                            }),
                            ..Default::default()
                        })
                        .into_iter()
                        .collect(),
                    status: s.error.then(|| Status {
                        code: status::StatusCode::Error as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    (TraceId([id; 16]), Trace { resource_spans })
}

/// Three traces over `(T−10s, T+60s]` with step 10s.
fn fixture() -> Vec<(TraceId, Trace)> {
    let mut failing = spec("b", T + 15 * S, 100_000_000, None);
    failing.error = true;
    vec![
        trace(
            1,
            &[
                spec("a", T + S, S, Some(200)),
                spec("a", T + 5 * S, 3 * S, Some(500)),
            ],
        ),
        trace(2, &[failing, spec("b", T + 10 * S, 2 * S, None)]),
        // Before the window: never counted.
        trace(3, &[spec("a", T - 30 * S, S, Some(200))]),
        // On the last boundary: in the last interval.
        trace(4, &[spec("a", T + 60 * S, 4 * S, Some(200))]),
    ]
}

fn request(exemplars: usize) -> MetricsRequest {
    MetricsRequest::range(T, T + 60 * S, 10 * S, exemplars).unwrap()
}

fn run_with(query: &str, request: MetricsRequest) -> QueryRangeResponse {
    let compiled = CompiledMetrics::new(parse_and_validate(query).expect(query)).expect(query);
    let mut evaluation = MetricsEvaluation::new(&compiled, request);
    let evaluator = Evaluator::default();
    for (id, trace) in fixture() {
        evaluation
            .observe_trace(&evaluator, &id, &trace)
            .expect(query);
    }
    evaluation.finish()
}

fn run(query: &str) -> QueryRangeResponse {
    run_with(query, request(0))
}

/// Series as (prom labels, [(seconds after T, value)]).
fn points(response: &QueryRangeResponse) -> Vec<(String, Vec<(i64, f64)>)> {
    response
        .series
        .iter()
        .map(|s| {
            (
                s.prom_labels.clone(),
                s.samples
                    .iter()
                    .map(|p| ((p.timestamp_ms - (T / 1_000_000) as i64) / 1000, p.value))
                    .collect(),
            )
        })
        .collect()
}

fn zeros_except(values: &[(i64, f64)]) -> Vec<(i64, f64)> {
    (0..=6)
        .map(|i| {
            let ts = i * 10;
            let v = values
                .iter()
                .find(|(t, _)| *t == ts)
                .map(|(_, v)| *v)
                .unwrap_or(0.0);
            (ts, v)
        })
        .collect()
}

#[test]
fn alignment_prepends_one_step_and_rounds_the_end_up() {
    let r = MetricsRequest::range(T + 3 * S, T + 57 * S, 10 * S, 0).unwrap();
    assert_eq!((r.start, r.end, r.step), (T - 10 * S, T + 60 * S, 10 * S));
    assert_eq!(r.intervals(), 7);
    // Right-closed intervals: T+10s belongs to (T, T+10s], stamped T+10s.
    assert_eq!(r.interval_of(T + 10 * S), Some(1));
    assert_eq!(r.interval_of(T + 10 * S + 1), Some(2));
    assert_eq!(r.interval_of(T - 10 * S), None);
    assert_eq!(r.interval_of(T + 60 * S + 1), None);
    assert_eq!(r.timestamp_ms(1), ((T + 10 * S) / 1_000_000) as i64);
    // Default steps: one hour gives 15s, five minutes 1s, one day 360s.
    assert_eq!(default_step(0, 3600 * S), 15 * S);
    assert_eq!(default_step(0, 300 * S), S);
    assert_eq!(default_step(0, 86_400 * S), 360 * S);
    assert_eq!(default_step(0, 10 * S), S);
}

#[test]
fn steps_giving_more_points_than_a_series_holds_are_refused() {
    // A day at one microsecond would be 8.64e10 intervals: refused, nothing allocated.
    let refused = MetricsRequest::range(T, T + 86_400 * S, 1_000, 0);
    assert!(
        matches!(refused, Err(MetricsError::TooManyPoints { points }) if points > 86_400_000_000)
    );
    // The largest accepted: 11,000 points including the prepended one.
    let largest = MetricsRequest::range(T, T + 10_999 * S, S, 0).unwrap();
    assert_eq!(largest.intervals(), 11_000);
    assert!(MetricsRequest::range(T, T + 11_000 * S, S, 0).is_err());
    // An end near the top of the clock cannot overflow when aligned up.
    assert!(matches!(
        MetricsRequest::range(u64::MAX - 10, u64::MAX - 5, 7 * S, 0),
        Err(MetricsError::RangeOverflow { .. })
    ));
}

#[test]
fn count_over_time_by_service() {
    let response = run("{} | count_over_time() by (resource.service.name)");
    assert_eq!(
        points(&response),
        vec![
            (
                r#"{resource.service.name="a"}"#.to_string(),
                zeros_except(&[(10, 2.0), (60, 1.0)])
            ),
            (
                r#"{resource.service.name="b"}"#.to_string(),
                zeros_except(&[(10, 1.0), (20, 1.0)])
            ),
        ]
    );
    assert_eq!(
        response.series[0].labels,
        vec![Label {
            key: "resource.service.name".into(),
            value: LabelValue::String("a".into())
        }]
    );
}

#[test]
fn rate_without_by_is_named_after_the_function() {
    let response = run("{} | rate()");
    assert_eq!(
        points(&response),
        vec![(
            r#"{__name__="rate"}"#.to_string(),
            zeros_except(&[(10, 0.3), (20, 0.1), (60, 0.1)])
        )]
    );
    assert_eq!(response.series[0].labels[0].key, "__name__");
}

#[test]
fn min_max_sum_avg_over_duration_in_seconds() {
    let series = |q: &str| points(&run(q)).remove(0).1;
    assert_eq!(
        series("{} | min_over_time(duration)"),
        vec![(10, 1.0), (20, 0.1), (60, 4.0)]
    );
    assert_eq!(
        series("{} | max_over_time(duration)"),
        vec![(10, 3.0), (20, 0.1), (60, 4.0)]
    );
    assert_eq!(
        series("{} | sum_over_time(duration)"),
        vec![(10, 6.0), (20, 0.1), (60, 4.0)]
    );
    assert_eq!(
        series("{} | avg_over_time(duration)"),
        vec![(10, 2.0), (20, 0.1), (60, 4.0)]
    );
    // An int attribute; spans without it are skipped, not zero.
    assert_eq!(
        series("{} | avg_over_time(span.http.status_code)"),
        vec![(10, 350.0), (60, 200.0)]
    );
}

#[test]
fn by_drops_nil_labels_and_keeps_a_nil_placeholder() {
    let response = run("{} | count_over_time() by (span.http.status_code, resource.service.name)");
    let got: Vec<(String, Vec<Label>)> = response
        .series
        .iter()
        .map(|s| (s.prom_labels.clone(), s.labels.clone()))
        .collect();
    let label = |k: &str, v: LabelValue| Label {
        key: k.into(),
        value: v,
    };
    assert_eq!(
        got,
        vec![
            (
                r#"{resource.service.name="a", span.http.status_code="200"}"#.to_string(),
                vec![
                    label("span.http.status_code", LabelValue::Int(200)),
                    label("resource.service.name", LabelValue::String("a".into()))
                ]
            ),
            (
                r#"{resource.service.name="a", span.http.status_code="500"}"#.to_string(),
                vec![
                    label("span.http.status_code", LabelValue::Int(500)),
                    label("resource.service.name", LabelValue::String("a".into()))
                ]
            ),
            (
                r#"{resource.service.name="b"}"#.to_string(),
                vec![label(
                    "resource.service.name",
                    LabelValue::String("b".into())
                )]
            ),
        ]
    );
    // All labels nil: the first is kept as the string "nil".
    let response = run("{ resource.service.name = `b` } | count_over_time() by (span.nope)");
    assert_eq!(response.series.len(), 1);
    assert_eq!(
        response.series[0].labels,
        vec![label("span.nope", LabelValue::String("nil".into()))]
    );
    assert_eq!(response.series[0].prom_labels, r#"{span.nope="<nil>"}"#);
}

#[test]
fn log2_quantile_interpolates_exponentially() {
    assert_eq!(log2_quantile(0.5, &[(1.0, 4)]), 2f64.powf(-0.5));
    assert_eq!(log2_quantile(1.0, &[(1.0, 1), (4.0, 1)]), 4.0);
    assert_eq!(log2_quantile(0.5, &[(1.0, 1), (4.0, 1)]), 1.0);
    // 3 of 4 samples: one sample into the second bucket of two → halfway in log space.
    assert_eq!(log2_quantile(0.75, &[(2.0, 2), (8.0, 2)]), 4.0);
    assert_eq!(log2_quantile(0.5, &[]), 0.0);
}

#[test]
fn quantiles_from_power_of_two_buckets_with_a_p_label() {
    let response = run("{} | quantile_over_time(duration, 0.5, 0.9)");
    let b1 = 1_073_741_824.0 / 1e9; // 1s rounds up to 2^30 ns
    let b2 = 2_147_483_648.0 / 1e9; // 2s → 2^31 ns
    let b3 = 4_294_967_296.0 / 1e9; // 3s and 4s → 2^32 ns
    let b01 = 134_217_728.0 / 1e9; // 100ms → 2^27 ns
    assert_eq!(
        points(&response),
        vec![
            (
                r#"{p="0.5"}"#.to_string(),
                vec![(10, b2), (20, b01), (60, b3)]
            ),
            (
                r#"{p="0.9"}"#.to_string(),
                vec![(10, b3), (20, b01), (60, b3)]
            ),
        ]
    );
    assert_eq!(
        response.series[0].labels,
        vec![Label {
            key: "p".into(),
            value: LabelValue::Double(0.5)
        }]
    );
    let _ = b1;
}

#[test]
fn histogram_buckets_in_seconds() {
    let response = run("{ resource.service.name = `a` } | histogram_over_time(duration)");
    type Row = (Vec<Label>, Vec<(i64, f64)>);
    let got: Vec<Row> = response
        .series
        .iter()
        .zip(points(&response))
        .map(|(s, (_, p))| (s.labels.clone(), p))
        .collect();
    let bucket = |b: f64| {
        vec![Label {
            key: "__bucket".into(),
            value: LabelValue::Double(b),
        }]
    };
    assert_eq!(
        got,
        vec![
            (bucket(1.073741824), zeros_except(&[(10, 1.0)])),
            (bucket(4.294967296), zeros_except(&[(10, 1.0), (60, 1.0)])),
        ]
    );
}

#[test]
fn compare_splits_baseline_and_selection() {
    let response = run("{} | compare({ status = error }, 1)");
    let find = |prom: &str| {
        response
            .series
            .iter()
            .find(|s| s.prom_labels == prom)
            .map(|s| {
                s.samples
                    .iter()
                    .map(|p| p.value)
                    .filter(|v| *v != 0.0)
                    .collect::<Vec<_>>()
            })
    };
    assert_eq!(
        find(r#"{__meta_type="selection", resource.service.name="b"}"#),
        Some(vec![1.0])
    );
    // topN=1: only the most frequent baseline value (a: 3 spans) stays, and the overflow is flagged.
    assert_eq!(
        find(r#"{__meta_type="baseline", resource.service.name="a"}"#),
        Some(vec![2.0, 1.0])
    );
    assert_eq!(
        find(r#"{__meta_type="baseline", resource.service.name="b"}"#),
        None
    );
    assert_eq!(
        find(r#"{__meta_error="__too_many_values__", resource.service.name="<nil>"}"#),
        Some(vec![])
    );
    assert_eq!(
        find(r#"{__meta_type="baseline_total", resource.service.name="<nil>"}"#),
        Some(vec![3.0, 1.0])
    );
    assert_eq!(
        find(r#"{__meta_type="selection", status="error"}"#),
        Some(vec![1.0])
    );
    let total = response
        .series
        .iter()
        .find(|s| s.prom_labels == r#"{__meta_type="selection_total", name="<nil>"}"#)
        .unwrap();
    assert_eq!(
        total.labels[1],
        Label {
            key: "name".into(),
            value: LabelValue::Nil
        }
    );
}

#[test]
fn topk_and_bottomk_per_step() {
    let q = "{} | count_over_time() by (resource.service.name)";
    let top = run(&format!("{q} | topk(1)"));
    // At T+20 only b has spans; ties (zeros) go to the first series in label order.
    assert_eq!(
        points(&top),
        vec![
            (
                r#"{resource.service.name="a"}"#.to_string(),
                vec![
                    (-0, 0.0),
                    (10, 2.0),
                    (30, 0.0),
                    (40, 0.0),
                    (50, 0.0),
                    (60, 1.0)
                ]
            ),
            (
                r#"{resource.service.name="b"}"#.to_string(),
                vec![(20, 1.0)]
            ),
        ]
    );
    let bottom = run(&format!("{q} | bottomk(1)"));
    assert_eq!(
        points(&bottom),
        vec![
            (
                r#"{resource.service.name="a"}"#.to_string(),
                vec![(0, 0.0), (20, 0.0), (30, 0.0), (40, 0.0), (50, 0.0)]
            ),
            (
                r#"{resource.service.name="b"}"#.to_string(),
                vec![(10, 1.0), (60, 0.0)]
            ),
        ]
    );
}

#[test]
fn filters_and_arithmetic() {
    let filtered = run("{} | count_over_time() by (resource.service.name) > 1");
    assert_eq!(
        points(&filtered),
        vec![(
            r#"{resource.service.name="a"}"#.to_string(),
            vec![(10, 2.0)]
        )]
    );
    let scaled = run("({} | count_over_time()) * 10");
    assert_eq!(
        points(&scaled).remove(0).1,
        zeros_except(&[(10, 30.0), (20, 10.0), (60, 10.0)])
    );
    // Errors over all: NaN where there are no spans at all (0/0), dropped.
    let ratio = run("({ status = error } | count_over_time()) / ({} | count_over_time())");
    assert_eq!(
        points(&ratio).remove(0).1,
        vec![(10, 0.0), (20, 1.0), (60, 0.0)]
    );
    let by_service = run(
        "({ status = error } | count_over_time() by (resource.service.name)) / ({} | count_over_time() by (resource.service.name))",
    );
    assert_eq!(
        points(&by_service),
        vec![(
            r#"{resource.service.name="b"}"#.to_string(),
            vec![(10, 0.0), (20, 1.0)]
        )]
    );
}

#[test]
fn exemplars_name_their_trace_and_span() {
    let response = run_with(
        "{} | max_over_time(duration) by (resource.service.name)",
        request(10),
    );
    let a = &response.series[0];
    // One exemplar per trace: the first matching span of traces 1 and 4.
    let got: Vec<(Vec<Label>, f64, i64)> = a
        .exemplars
        .iter()
        .map(|e| (e.labels.clone(), e.value, e.timestamp_ms))
        .collect();
    let labels = |trace: &str, span: &str| {
        vec![
            Label {
                key: "trace:id".into(),
                value: LabelValue::String(trace.into()),
            },
            Label {
                key: "span:id".into(),
                value: LabelValue::String(span.into()),
            },
            Label {
                key: "resource.service.name".into(),
                value: LabelValue::String("a".into()),
            },
        ]
    };
    assert_eq!(
        got,
        vec![
            (
                labels(&"01".repeat(16)[1..], "0000000000000101"),
                1.0,
                ((T + S) / 1_000_000) as i64
            ),
            (
                labels(&"04".repeat(16)[1..], "0000000000000401"),
                4.0,
                ((T + 60 * S) / 1_000_000) as i64
            ),
        ]
    );
    // Counting functions give an exemplar its data point's value; 0 exemplars means none.
    let counted = run_with("{} | count_over_time()", request(10));
    let values: Vec<f64> = counted.series[0]
        .exemplars
        .iter()
        .map(|e| e.value)
        .collect();
    assert_eq!(values, vec![3.0, 1.0, 1.0]);
    assert!(run("{} | count_over_time()").series[0].exemplars.is_empty());
    let limited = run_with("{} | count_over_time()", request(1));
    assert_eq!(limited.series[0].exemplars.len(), 1);
}

#[test]
fn instant_query_has_one_value_per_series() {
    let compiled = CompiledMetrics::new(
        parse_and_validate("{} | count_over_time() by (resource.service.name)").unwrap(),
    )
    .unwrap();
    let mut evaluation =
        MetricsEvaluation::new(&compiled, MetricsRequest::instant(T, T + 60 * S, 0));
    for (id, trace) in fixture() {
        evaluation
            .observe_trace(&Evaluator::default(), &id, &trace)
            .unwrap();
    }
    let response = evaluation.finish_instant();
    let got: Vec<(String, f64)> = response
        .series
        .iter()
        .map(|s| (s.prom_labels.clone(), s.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (r#"{resource.service.name="a"}"#.to_string(), 3.0),
            (r#"{resource.service.name="b"}"#.to_string(), 2.0),
        ]
    );
    let json = response.to_json();
    assert_eq!(
        json["series"][0],
        serde_json::json!({"labels":[{"key":"resource.service.name","value":{"stringValue":"a"}}],
            "value":3.0,"promLabels":"{resource.service.name=\"a\"}"})
    );
}

#[test]
fn range_json_is_proto3() {
    let response = run("{} | count_over_time() by (span.http.status_code)");
    let json = response.to_json();
    let first = &json["series"][0];
    assert_eq!(
        first["labels"][0],
        serde_json::json!({"key":"span.http.status_code","value":{"intValue":"200"}})
    );
    // Zero values are omitted, timestamps are strings.
    assert_eq!(
        first["samples"][0],
        serde_json::json!({"timestampMs": (T / 1_000_000).to_string()})
    );
    assert_eq!(json["metrics"]["inspectedTraces"], 4);
    assert!(json.get("status").is_none());
}

#[test]
fn search_queries_are_refused() {
    let error =
        CompiledMetrics::new(parse_and_validate("{ status = error }").unwrap()).unwrap_err();
    assert_eq!(error.to_string(), "not a metrics query");
}
