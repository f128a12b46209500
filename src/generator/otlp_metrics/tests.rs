//! The OTLP metrics conversion's unit tests: names, every data type, deltas, staleness, limits.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint,
};

use super::naming::attribute_labels;
use super::staleness::FLAG_NO_RECORDED_VALUE;
use super::{label_name, metric_name, stale_nan, Converter, Kind, STALE_NAN_BITS};
use crate::generator::labels::format_float;
use crate::generator::remote_write::{Exemplar, Label, Sample, TimeSeries};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    summary_data_point::ValueAtQuantile, ExponentialHistogram, Gauge, Histogram, ResourceMetrics,
    ScopeMetrics, Sum, Summary,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

const T0: u64 = 1_700_000_000_000_000_000;
const SECOND: u64 = 1_000_000_000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// One resource (`shop/checkout`, instance `i-1`, region) and scope with `metrics`.
fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.namespace", "shop"),
                    kv("service.instance.id", "i-1"),
                    kv("cloud.region", "eu-1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "app".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn number(time: u64, value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: T0,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn sum(monotonic: bool, temporality: AggregationTemporality, points: Vec<NumberDataPoint>) -> Data {
    Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: temporality as i32,
        is_monotonic: monotonic,
    })
}

/// `name{labels} value @ms` per sample, in output order, without target_info.
fn lines(series: &[TimeSeries]) -> Vec<String> {
    series
        .iter()
        .filter(|entry| entry.labels[0].value != "target_info")
        .map(|entry| {
            let name = &entry
                .labels
                .iter()
                .find(|l| l.name == "__name__")
                .unwrap()
                .value;
            let labels: Vec<String> = entry
                .labels
                .iter()
                .filter(|label| {
                    label.name != "__name__"
                        && !["job", "instance", "otel_scope_name", "otel_scope_version"]
                            .contains(&label.name.as_str())
                })
                .map(|label| format!("{}={:?}", label.name, label.value))
                .collect();
            let sample = &entry.samples[0];
            let value = if sample.value.to_bits() == STALE_NAN_BITS {
                "STALE".to_string()
            } else {
                format_float(sample.value)
            };
            format!(
                "{name}{{{}}} {value} @{}",
                labels.join(","),
                sample.timestamp
            )
        })
        .collect()
}

const MS0: i64 = 1_700_000_000_000;

#[test]
fn names_get_unit_and_type_suffixes_and_sanitised_labels() {
    assert_eq!(
        metric_name("http.server.duration", "ms", Kind::Histogram),
        "http_server_duration_milliseconds"
    );
    assert_eq!(
        metric_name("http.server.request.duration", "s", Kind::Histogram),
        "http_server_request_duration_seconds"
    );
    assert_eq!(
        metric_name("requests", "{request}", Kind::Counter),
        "requests_total"
    );
    assert_eq!(
        metric_name("requests_total", "1", Kind::Counter),
        "requests_total"
    );
    assert_eq!(metric_name("io", "By", Kind::Counter), "io_bytes_total");
    assert_eq!(
        metric_name("io_bytes", "By", Kind::Counter),
        "io_bytes_total"
    );
    assert_eq!(
        metric_name("cpu.utilization", "1", Kind::Gauge),
        "cpu_utilization_ratio"
    );
    assert_eq!(
        metric_name("speed", "m/s", Kind::Gauge),
        "speed_meters_per_second"
    );
    assert_eq!(metric_name("queue-size!", "", Kind::Gauge), "queue_size");
    assert_eq!(metric_name("2xx", "", Kind::Gauge), "_2xx");
    assert_eq!(metric_name("temp", "Cel", Kind::Gauge), "temp_celsius");
    assert_eq!(label_name("http.method"), "http_method");
    assert_eq!(label_name("2xx"), "key_2xx");
    assert_eq!(label_name("_private"), "key_private");
    assert_eq!(label_name("__reserved"), "__reserved");
    let labels = attribute_labels(&[kv("a_b", "2"), kv("a.b", "1"), kv("empty", "")], &[]);
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        vec![("a_b".to_string(), "1;2".to_string())]
    );
}

#[test]
fn counter_carries_job_instance_scope_exemplars_and_target_info() {
    let mut converter = Converter::new(1000);
    let mut point = number(T0 + SECOND, 5.0, vec![kv("http.route", "/pay")]);
    point
        .exemplars
        .push(opentelemetry_proto::tonic::metrics::v1::Exemplar {
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            time_unix_nano: T0 + SECOND / 2,
            value: Some(exemplar::Value::AsDouble(1.0)),
            filtered_attributes: vec![kv("user", "u1")],
        });
    let out = converter.convert(
        &request(vec![metric(
            "payments",
            "{payment}",
            sum(true, AggregationTemporality::Cumulative, vec![point]),
        )]),
        MS0,
    );
    assert_eq!(out.rejected_points, 0);
    assert_eq!(out.series.len(), 2);
    let counter = &out.series[0];
    let names: Vec<(&str, &str)> = counter
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("__name__", "payments_total"),
            ("http_route", "/pay"),
            ("instance", "i-1"),
            ("job", "shop/checkout"),
            ("otel_scope_name", "app"),
            ("otel_scope_version", "1.0"),
        ]
    );
    assert_eq!(
        counter.samples,
        vec![Sample {
            value: 5.0,
            timestamp: MS0 + 1000
        }]
    );
    assert_eq!(
        counter.exemplars,
        vec![Exemplar {
            labels: vec![
                Label {
                    name: "span_id".into(),
                    value: "cd".repeat(8)
                },
                Label {
                    name: "trace_id".into(),
                    value: "ab".repeat(16)
                },
                Label {
                    name: "user".into(),
                    value: "u1".into()
                },
            ],
            value: 1.0,
            timestamp: MS0 + 500,
        }]
    );
    let info = &out.series[1];
    let names: Vec<(&str, &str)> = info
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("__name__", "target_info"),
            ("cloud_region", "eu-1"),
            ("instance", "i-1"),
            ("job", "shop/checkout")
        ]
    );
    assert_eq!(
        info.samples,
        vec![Sample {
            value: 1.0,
            timestamp: MS0 + 1000
        }]
    );
}

#[test]
fn delta_sums_accumulate_and_repeats_are_held_back() {
    let mut converter = Converter::new(1000);
    let send = |converter: &mut Converter, time: u64, value: f64, monotonic: bool| {
        let out = converter.convert(
            &request(vec![metric(
                "jobs",
                "",
                sum(
                    monotonic,
                    AggregationTemporality::Delta,
                    vec![number(time, value, vec![])],
                ),
            )]),
            MS0,
        );
        lines(&out.series)
    };
    assert_eq!(
        send(&mut converter, T0 + SECOND, 3.0, true),
        vec![format!("jobs_total{{}} 3 @{}", MS0 + 1000)]
    );
    assert_eq!(
        send(&mut converter, T0 + 2 * SECOND, 4.0, true),
        vec![format!("jobs_total{{}} 7 @{}", MS0 + 2000)]
    );
    // The same delta again (a retry) is not counted twice.
    assert_eq!(
        send(&mut converter, T0 + 2 * SECOND, 4.0, true),
        Vec::<String>::new()
    );
    assert_eq!(converter.points_held_back, 1);
    // A non-monotonic delta sum (an up-down counter) is an accumulated gauge.
    assert_eq!(
        send(&mut converter, T0 + SECOND, 5.0, false),
        vec![format!("jobs{{}} 5 @{}", MS0 + 1000)]
    );
    assert_eq!(
        send(&mut converter, T0 + 2 * SECOND, -2.0, false),
        vec![format!("jobs{{}} 3 @{}", MS0 + 2000)]
    );
    // Unspecified temporality is refused with a reason.
    let out = converter.convert(
        &request(vec![metric(
            "odd",
            "",
            sum(
                true,
                AggregationTemporality::Unspecified,
                vec![number(T0, 1.0, vec![])],
            ),
        )]),
        MS0,
    );
    assert_eq!(out.rejected_points, 1);
    assert!(out.message.contains("temporality"), "{}", out.message);
}

fn histogram_point(time: u64, bounds: &[f64], counts: &[u64], sum: f64) -> HistogramDataPoint {
    HistogramDataPoint {
        start_time_unix_nano: T0,
        time_unix_nano: time,
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts.to_vec(),
        explicit_bounds: bounds.to_vec(),
        ..Default::default()
    }
}

#[test]
fn histograms_become_classic_buckets_and_deltas_accumulate() {
    let mut converter = Converter::new(1000);
    let send = |converter: &mut Converter,
                point: HistogramDataPoint,
                temporality: AggregationTemporality| {
        let data = Data::Histogram(Histogram {
            data_points: vec![point],
            aggregation_temporality: temporality as i32,
        });
        lines(
            &converter
                .convert(&request(vec![metric("latency", "s", data)]), MS0)
                .series,
        )
    };
    let mut first = histogram_point(T0 + SECOND, &[0.1, 1.0], &[1, 2, 0], 1.5);
    first
        .exemplars
        .push(opentelemetry_proto::tonic::metrics::v1::Exemplar {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            time_unix_nano: T0,
            value: Some(exemplar::Value::AsDouble(0.5)),
            ..Default::default()
        });
    let out = converter.convert(
        &request(vec![metric(
            "latency",
            "s",
            Data::Histogram(Histogram {
                data_points: vec![first],
                aggregation_temporality: AggregationTemporality::Delta as i32,
            }),
        )]),
        MS0,
    );
    let at = MS0 + 1000;
    assert_eq!(
        lines(&out.series),
        vec![
            format!("latency_seconds_bucket{{le=\"0.1\"}} 1 @{at}"),
            format!("latency_seconds_bucket{{le=\"1\"}} 3 @{at}"),
            format!("latency_seconds_bucket{{le=\"+Inf\"}} 3 @{at}"),
            format!("latency_seconds_sum{{}} 1.5 @{at}"),
            format!("latency_seconds_count{{}} 3 @{at}"),
        ]
    );
    // The 0.5 exemplar sits on the le="1" bucket.
    assert!(out.series[0].exemplars.is_empty());
    assert_eq!(out.series[1].exemplars[0].value, 0.5);
    let at = MS0 + 2000;
    assert_eq!(
        send(
            &mut converter,
            histogram_point(T0 + 2 * SECOND, &[0.1, 1.0], &[0, 1, 1], 3.0),
            AggregationTemporality::Delta
        ),
        vec![
            format!("latency_seconds_bucket{{le=\"0.1\"}} 1 @{at}"),
            format!("latency_seconds_bucket{{le=\"1\"}} 4 @{at}"),
            format!("latency_seconds_bucket{{le=\"+Inf\"}} 5 @{at}"),
            format!("latency_seconds_sum{{}} 4.5 @{at}"),
            format!("latency_seconds_count{{}} 5 @{at}"),
        ]
    );
    // New bounds restart the series; the bucket that disappeared gets a stale marker.
    let at = MS0 + 3000;
    assert_eq!(
        send(
            &mut converter,
            histogram_point(T0 + 3 * SECOND, &[1.0], &[2, 0], 1.0),
            AggregationTemporality::Delta
        ),
        vec![
            format!("latency_seconds_bucket{{le=\"0.1\"}} STALE @{at}"),
            format!("latency_seconds_bucket{{le=\"1\"}} 2 @{at}"),
            format!("latency_seconds_bucket{{le=\"+Inf\"}} 2 @{at}"),
            format!("latency_seconds_sum{{}} 1 @{at}"),
            format!("latency_seconds_count{{}} 2 @{at}"),
        ]
    );
    // Mismatched counts and bounds are refused, naming the problem.
    let out = converter.convert(
        &request(vec![metric(
            "bad",
            "",
            Data::Histogram(Histogram {
                data_points: vec![histogram_point(T0, &[1.0], &[1, 2, 3], 1.0)],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        )]),
        MS0,
    );
    assert_eq!(out.rejected_points, 1);
    assert!(
        out.message
            .contains("3 bucket counts for 1 explicit bounds"),
        "{}",
        out.message
    );
}

fn exponential_point(
    time: u64,
    scale: i32,
    positive: (i32, &[u64]),
    negative: (i32, &[u64]),
    zero: u64,
) -> ExponentialHistogramDataPoint {
    let count = positive.1.iter().sum::<u64>() + negative.1.iter().sum::<u64>() + zero;
    ExponentialHistogramDataPoint {
        start_time_unix_nano: T0,
        time_unix_nano: time,
        count,
        sum: Some(10.0),
        scale,
        zero_count: zero,
        positive: Some(Buckets {
            offset: positive.0,
            bucket_counts: positive.1.to_vec(),
        }),
        negative: Some(Buckets {
            offset: negative.0,
            bucket_counts: negative.1.to_vec(),
        }),
        ..Default::default()
    }
}

fn send_exponential(
    converter: &mut Converter,
    point: ExponentialHistogramDataPoint,
    temporality: AggregationTemporality,
) -> Vec<String> {
    let data = Data::ExponentialHistogram(ExponentialHistogram {
        data_points: vec![point],
        aggregation_temporality: temporality as i32,
    });
    lines(
        &converter
            .convert(&request(vec![metric("size", "By", data)]), MS0)
            .series,
    )
}

#[test]
fn exponential_histograms_become_classic_buckets_at_their_boundaries() {
    let mut converter = Converter::new(1000);
    // Scale 0: base 2. Positive index 0 is (1,2], index 1 (2,4]; negative index 0 is
    // [-2,-1); one zero.
    let at = MS0 + 1000;
    assert_eq!(
        send_exponential(
            &mut converter,
            exponential_point(T0 + SECOND, 0, (0, &[1, 2]), (0, &[1]), 1),
            AggregationTemporality::Cumulative
        ),
        vec![
            format!("size_bytes_bucket{{le=\"-1\"}} 1 @{at}"),
            format!("size_bytes_bucket{{le=\"0\"}} 2 @{at}"),
            format!("size_bytes_bucket{{le=\"2\"}} 3 @{at}"),
            format!("size_bytes_bucket{{le=\"4\"}} 5 @{at}"),
            format!("size_bytes_bucket{{le=\"+Inf\"}} 5 @{at}"),
            format!("size_bytes_sum{{}} 10 @{at}"),
            format!("size_bytes_count{{}} 5 @{at}"),
        ]
    );
}

#[test]
fn delta_exponential_histograms_of_different_scales_add_at_the_lower_scale() {
    let mut converter = Converter::new(1000);
    // Scale 1 (base √2): index 0 is (1,√2], index 1 (√2,2]; then a scale-0 delta with two
    // values in (1,2]: together four values in (1,2] at scale 0.
    send_exponential(
        &mut converter,
        exponential_point(T0 + SECOND, 1, (0, &[1, 1]), (0, &[]), 0),
        AggregationTemporality::Delta,
    );
    let at = MS0 + 2000;
    assert_eq!(
        send_exponential(
            &mut converter,
            exponential_point(T0 + 2 * SECOND, 0, (0, &[2]), (0, &[]), 0),
            AggregationTemporality::Delta
        ),
        vec![
            // The √2 bound of scale 1 is gone at scale 0: its series ends.
            format!("size_bytes_bucket{{le=\"1.4142135623730951\"}} STALE @{at}"),
            format!("size_bytes_bucket{{le=\"0\"}} 0 @{at}"),
            format!("size_bytes_bucket{{le=\"2\"}} 4 @{at}"),
            format!("size_bytes_bucket{{le=\"+Inf\"}} 4 @{at}"),
            format!("size_bytes_sum{{}} 20 @{at}"),
            format!("size_bytes_count{{}} 4 @{at}"),
        ]
    );
}

#[test]
fn summaries_and_gauges() {
    let mut converter = Converter::new(1000);
    let summary = Data::Summary(Summary {
        data_points: vec![SummaryDataPoint {
            time_unix_nano: T0 + SECOND,
            count: 4,
            sum: 2.0,
            quantile_values: vec![
                ValueAtQuantile {
                    quantile: 0.5,
                    value: 0.4,
                },
                ValueAtQuantile {
                    quantile: 0.99,
                    value: 0.9,
                },
            ],
            ..Default::default()
        }],
    });
    let gauge = Data::Gauge(Gauge {
        data_points: vec![number(T0 + SECOND, 0.25, vec![kv("cpu", "0")])],
    });
    let out = converter.convert(
        &request(vec![
            metric("rpc.duration", "s", summary),
            metric("cpu.usage", "1", gauge),
        ]),
        MS0,
    );
    let at = MS0 + 1000;
    assert_eq!(
        lines(&out.series),
        vec![
            format!("rpc_duration_seconds{{quantile=\"0.5\"}} 0.4 @{at}"),
            format!("rpc_duration_seconds{{quantile=\"0.99\"}} 0.9 @{at}"),
            format!("rpc_duration_seconds_sum{{}} 2 @{at}"),
            format!("rpc_duration_seconds_count{{}} 4 @{at}"),
            format!("cpu_usage_ratio{{cpu=\"0\"}} 0.25 @{at}"),
        ]
    );
    let mut text = String::new();
    converter.render(&mut text);
    assert!(text.contains("# TYPE cpu_usage_ratio gauge\ncpu_usage_ratio{cpu=\"0\",instance=\"i-1\",job=\"shop/checkout\",otel_scope_name=\"app\",otel_scope_version=\"1.0\"} 0.25\n"), "{text}");
    assert!(
        text.contains("# TYPE rpc_duration_seconds summary\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE target_info gauge\n"), "{text}");
}

#[test]
fn a_series_that_stops_gets_stale_markers_and_is_forgotten() {
    let mut converter = Converter::new(1000);
    let gauge = |time: u64, flags: u32| {
        let mut point = number(time, 1.0, vec![kv("queue", "a")]);
        point.flags = flags;
        request(vec![metric(
            "depth",
            "",
            Data::Gauge(Gauge {
                data_points: vec![point],
            }),
        )])
    };
    converter.convert(&gauge(T0 + SECOND, 0), MS0);
    assert_eq!(converter.active_series(), 2); // depth and target_info
    assert!(converter.sweep(MS0 + 1000, 5000).is_empty());
    let markers = converter.sweep(MS0 + 5000, 5000);
    let mut ended = lines(&markers);
    ended.sort();
    assert_eq!(
        ended,
        vec![format!("depth{{queue=\"a\"}} STALE @{}", MS0 + 5000)]
    );
    assert_eq!(markers.len(), 2, "target_info goes stale too");
    assert_eq!(converter.active_series(), 0);
    assert_eq!(converter.series_stale, 2);
    // A point flagged "no recorded value" ends its series at once.
    converter.convert(&gauge(T0 + 10 * SECOND, 0), MS0 + 10_000);
    let out = converter.convert(
        &gauge(T0 + 11 * SECOND, FLAG_NO_RECORDED_VALUE),
        MS0 + 11_000,
    );
    assert_eq!(
        lines(&out.series),
        vec![format!("depth{{queue=\"a\"}} STALE @{}", MS0 + 11_000)]
    );
}

#[test]
fn max_series_bounds_the_state() {
    let mut converter = Converter::new(3);
    let points: Vec<NumberDataPoint> = (0..5)
        .map(|index| number(T0 + SECOND, 1.0, vec![kv("n", &index.to_string())]))
        .collect();
    let out = converter.convert(
        &request(vec![metric(
            "hits",
            "",
            sum(true, AggregationTemporality::Delta, points),
        )]),
        MS0,
    );
    assert_eq!(out.rejected_points, 2);
    assert!(out.message.contains("max_series"), "{}", out.message);
    assert!(converter.active_series() <= 4);
}

#[test]
fn stale_marker_is_prometheus_stale_nan() {
    assert!(stale_nan().is_nan());
    assert_eq!(stale_nan().to_bits(), 0x7ff0_0000_0000_0002);
}
