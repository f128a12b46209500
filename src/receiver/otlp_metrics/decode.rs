//! OTLP/JSON decoding of `ExportMetricsServiceRequest`, with the rules of [`crate::proto::otlp_json`]:
//! lowerCamelCase keys (snake_case accepted), hex trace and span IDs in exemplars, enums as
//! names or integers, 64-bit integers as strings or numbers, unknown keys ignored. Every error
//! names the JSON path that was wrong.

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, AggregationTemporality, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use prost::Message;
use serde_json::Value;

use crate::receiver::ingest::OtlpEncoding;

use crate::proto::otlp_json::{
    array_field, as_object, attributes, encode_partial_success, enum_field, fail, field, hex_field,
    items, optional_object, otlp_json_request, parse_f64, parse_i64, string_field, u32_field,
    u64_field, wrong_kind, JsonDecodeError, Object,
};

/// An export body in `encoding`; the error names what was wrong.
pub fn decode(encoding: OtlpEncoding, body: &[u8]) -> Result<ExportMetricsServiceRequest, String> {
    match encoding {
        OtlpEncoding::Protobuf => ExportMetricsServiceRequest::decode(body)
            .map_err(|error| format!("invalid ExportMetricsServiceRequest protobuf: {error}")),
        OtlpEncoding::Json => decode_export_request(body).map_err(|error| error.to_string()),
    }
}

/// The export response: partial success when points were refused.
pub fn response_of(rejected: u64, message: String) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: message,
        }),
    }
}

fn metric(value: &Value, path: &str) -> Result<Metric, JsonDecodeError> {
    let object = as_object(value, path)?;
    let mut data = None;
    for (camel, snake) in [
        ("gauge", "gauge"),
        ("sum", "sum"),
        ("histogram", "histogram"),
        ("exponentialHistogram", "exponential_histogram"),
        ("summary", "summary"),
    ] {
        let Some(inner) = field(object, camel, snake).filter(|inner| !inner.is_null()) else {
            continue;
        };
        if data.is_some() {
            return fail(path, "a metric has more than one of gauge, sum, histogram, exponentialHistogram and summary");
        }
        let inner_path = format!("{path}.{camel}");
        let inner = as_object(inner, &inner_path)?;
        data = Some(match camel {
            "gauge" => Data::Gauge(Gauge {
                data_points: points(inner, &inner_path, number_point)?,
            }),
            "sum" => Data::Sum(Sum {
                data_points: points(inner, &inner_path, number_point)?,
                aggregation_temporality: temporality(inner, &inner_path)?,
                is_monotonic: bool_field(inner, &inner_path, "isMonotonic", "is_monotonic")?,
            }),
            "histogram" => Data::Histogram(Histogram {
                data_points: points(inner, &inner_path, histogram_point)?,
                aggregation_temporality: temporality(inner, &inner_path)?,
            }),
            "exponentialHistogram" => Data::ExponentialHistogram(ExponentialHistogram {
                data_points: points(inner, &inner_path, exponential_point)?,
                aggregation_temporality: temporality(inner, &inner_path)?,
            }),
            _ => Data::Summary(Summary {
                data_points: points(inner, &inner_path, summary_point)?,
            }),
        });
    }
    Ok(Metric {
        name: string_field(object, path, "name", "name")?,
        description: string_field(object, path, "description", "description")?,
        unit: string_field(object, path, "unit", "unit")?,
        metadata: Vec::new(),
        data,
    })
}

fn points<T>(
    object: &Object,
    path: &str,
    decode: impl Fn(&Object, &str) -> Result<T, JsonDecodeError>,
) -> Result<Vec<T>, JsonDecodeError> {
    items(
        object,
        path,
        "dataPoints",
        "data_points",
        |item, item_path| decode(as_object(item, item_path)?, item_path),
    )
}

fn temporality(object: &Object, path: &str) -> Result<i32, JsonDecodeError> {
    enum_field(
        object,
        path,
        "aggregationTemporality",
        "aggregation_temporality",
        |name| AggregationTemporality::from_str_name(name).map(|value| value as i32),
    )
}

fn bool_field(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<bool, JsonDecodeError> {
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(other) => wrong_kind(&format!("{path}.{camel}"), "true or false", other),
    }
}

fn f64_field(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<Option<f64>, JsonDecodeError> {
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => parse_f64(value, &format!("{path}.{camel}")).map(Some),
    }
}

fn i32_field(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<i32, JsonDecodeError> {
    let field_path = format!("{path}.{camel}");
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => {
            let number = parse_i64(value, &field_path)?;
            i32::try_from(number)
                .or_else(|_| fail(&field_path, format!("{number} does not fit 32 bits")))
        }
    }
}

fn u64_array(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<Vec<u64>, JsonDecodeError> {
    items(object, path, camel, snake, |item, item_path| {
        let number = match item {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => text.parse::<u64>().ok(),
            _ => None,
        };
        number.map_or_else(
            || {
                fail(
                    item_path,
                    format!("{item} is not an unsigned 64-bit integer"),
                )
            },
            Ok,
        )
    })
}

fn f64_array(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<Vec<f64>, JsonDecodeError> {
    items(object, path, camel, snake, parse_f64)
}

fn exemplars(object: &Object, path: &str) -> Result<Vec<Exemplar>, JsonDecodeError> {
    items(object, path, "exemplars", "exemplars", exemplar)
}

fn exemplar(value: &Value, path: &str) -> Result<Exemplar, JsonDecodeError> {
    let object = as_object(value, path)?;
    let value = number_value(object, path)?.map(|number| match number {
        NumberValue::Double(value) => exemplar::Value::AsDouble(value),
        NumberValue::Int(value) => exemplar::Value::AsInt(value),
    });
    let filtered = array_field(object, path, "filteredAttributes", "filtered_attributes")?;
    Ok(Exemplar {
        filtered_attributes: crate::proto::otlp_json::key_values(
            filtered,
            &format!("{path}.filteredAttributes"),
        )?,
        time_unix_nano: u64_field(object, path, "timeUnixNano", "time_unix_nano")?,
        span_id: hex_field(object, path, "spanId", "span_id", 8)?,
        trace_id: hex_field(object, path, "traceId", "trace_id", 16)?,
        value,
    })
}

/// The value of a number point or an exemplar: `asDouble`, else `asInt`.
enum NumberValue {
    Double(f64),
    Int(i64),
}

fn number_value(object: &Object, path: &str) -> Result<Option<NumberValue>, JsonDecodeError> {
    if let Some(value) = f64_field(object, path, "asDouble", "as_double")? {
        return Ok(Some(NumberValue::Double(value)));
    }
    match field(object, "asInt", "as_int") {
        Some(value) if !value.is_null() => Ok(Some(NumberValue::Int(parse_i64(
            value,
            &format!("{path}.asInt"),
        )?))),
        _ => Ok(None),
    }
}

fn number_point(object: &Object, path: &str) -> Result<NumberDataPoint, JsonDecodeError> {
    let value = number_value(object, path)?.map(|number| match number {
        NumberValue::Double(value) => number_data_point::Value::AsDouble(value),
        NumberValue::Int(value) => number_data_point::Value::AsInt(value),
    });
    Ok(NumberDataPoint {
        attributes: attributes(object, path)?,
        start_time_unix_nano: u64_field(object, path, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(object, path, "timeUnixNano", "time_unix_nano")?,
        exemplars: exemplars(object, path)?,
        flags: u32_field(object, path, "flags", "flags")?,
        value,
    })
}

fn histogram_point(object: &Object, path: &str) -> Result<HistogramDataPoint, JsonDecodeError> {
    Ok(HistogramDataPoint {
        attributes: attributes(object, path)?,
        start_time_unix_nano: u64_field(object, path, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(object, path, "timeUnixNano", "time_unix_nano")?,
        count: u64_field(object, path, "count", "count")?,
        sum: f64_field(object, path, "sum", "sum")?,
        bucket_counts: u64_array(object, path, "bucketCounts", "bucket_counts")?,
        explicit_bounds: f64_array(object, path, "explicitBounds", "explicit_bounds")?,
        exemplars: exemplars(object, path)?,
        flags: u32_field(object, path, "flags", "flags")?,
        min: f64_field(object, path, "min", "min")?,
        max: f64_field(object, path, "max", "max")?,
    })
}

fn buckets(object: &Object, path: &str, camel: &str) -> Result<Option<Buckets>, JsonDecodeError> {
    optional_object(object, path, camel, camel, |inner, inner_path| {
        Ok(Buckets {
            offset: i32_field(inner, inner_path, "offset", "offset")?,
            bucket_counts: u64_array(inner, inner_path, "bucketCounts", "bucket_counts")?,
        })
    })
}

fn exponential_point(
    object: &Object,
    path: &str,
) -> Result<ExponentialHistogramDataPoint, JsonDecodeError> {
    Ok(ExponentialHistogramDataPoint {
        attributes: attributes(object, path)?,
        start_time_unix_nano: u64_field(object, path, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(object, path, "timeUnixNano", "time_unix_nano")?,
        count: u64_field(object, path, "count", "count")?,
        sum: f64_field(object, path, "sum", "sum")?,
        scale: i32_field(object, path, "scale", "scale")?,
        zero_count: u64_field(object, path, "zeroCount", "zero_count")?,
        positive: buckets(object, path, "positive")?,
        negative: buckets(object, path, "negative")?,
        flags: u32_field(object, path, "flags", "flags")?,
        exemplars: exemplars(object, path)?,
        min: f64_field(object, path, "min", "min")?,
        max: f64_field(object, path, "max", "max")?,
        zero_threshold: f64_field(object, path, "zeroThreshold", "zero_threshold")?.unwrap_or(0.0),
    })
}

fn summary_point(object: &Object, path: &str) -> Result<SummaryDataPoint, JsonDecodeError> {
    let quantile_values = items(
        object,
        path,
        "quantileValues",
        "quantile_values",
        |item, item_path| {
            let item = as_object(item, item_path)?;
            Ok(ValueAtQuantile {
                quantile: f64_field(item, item_path, "quantile", "quantile")?.unwrap_or(0.0),
                value: f64_field(item, item_path, "value", "value")?.unwrap_or(0.0),
            })
        },
    )?;
    Ok(SummaryDataPoint {
        attributes: attributes(object, path)?,
        start_time_unix_nano: u64_field(object, path, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: u64_field(object, path, "timeUnixNano", "time_unix_nano")?,
        count: u64_field(object, path, "count", "count")?,
        sum: f64_field(object, path, "sum", "sum")?.unwrap_or(0.0),
        quantile_values,
        flags: u32_field(object, path, "flags", "flags")?,
    })
}

otlp_json_request!(
    /// Decodes an `ExportMetricsServiceRequest` from OTLP/JSON bytes.
    decode_export_request -> ExportMetricsServiceRequest { resource_metrics: ResourceMetrics {
        scope_metrics: ScopeMetrics { metrics: metric } } }
    ["resourceMetrics", "scopeMetrics", "metrics"]
);

/// Encodes an `ExportMetricsServiceResponse` as OTLP/JSON: `{}` or a `partialSuccess`.
pub fn encode_export_response(rejected_data_points: i64, error_message: &str) -> Vec<u8> {
    encode_partial_success("rejectedDataPoints", rejected_data_points, error_message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_kind_decodes_with_otlp_json_rules() {
        let body = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
          "scopeMetrics":[{"scope":{"name":"lib","version":"2"},"metrics":[
            {"name":"g","unit":"1","gauge":{"dataPoints":[{"timeUnixNano":"5","asDouble":"NaN"}]}},
            {"name":"c","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA","isMonotonic":true,
              "dataPoints":[{"timeUnixNano":6,"asInt":"9007199254740993","exemplars":[
                {"timeUnixNano":"4","asDouble":1.5,"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",
                 "filteredAttributes":[{"key":"user","value":{"stringValue":"u"}}]}]}]}},
            {"name":"h","histogram":{"aggregation_temporality":2,"data_points":[{"count":"3","sum":1.5,
              "bucket_counts":["1","2"],"explicit_bounds":[0.5]}]}},
            {"name":"e","exponentialHistogram":{"aggregationTemporality":1,"dataPoints":[{"count":"4","scale":-1,
              "zeroCount":"1","zeroThreshold":0.001,"positive":{"offset":-2,"bucketCounts":["2","1"]},"negative":{"bucketCounts":[]}}]}},
            {"name":"s","summary":{"dataPoints":[{"count":"2","sum":3,"quantileValues":[{"quantile":0.5,"value":1}]}]}}
          ]}]}]}"#;
        let request = decode_export_request(body.as_bytes()).unwrap();
        let scope = &request.resource_metrics[0].scope_metrics[0];
        assert_eq!(scope.scope.as_ref().unwrap().version, "2");
        let data: Vec<&Data> = scope
            .metrics
            .iter()
            .map(|metric| metric.data.as_ref().unwrap())
            .collect();
        let Data::Gauge(gauge) = data[0] else {
            panic!("gauge")
        };
        assert!(
            matches!(gauge.data_points[0].value, Some(number_data_point::Value::AsDouble(value)) if value.is_nan())
        );
        let Data::Sum(sum) = data[1] else {
            panic!("sum")
        };
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        assert!(sum.is_monotonic);
        let point = &sum.data_points[0];
        assert_eq!(
            point.value,
            Some(number_data_point::Value::AsInt(9_007_199_254_740_993))
        );
        let exemplar = &point.exemplars[0];
        assert_eq!(exemplar.trace_id, (1..=16).collect::<Vec<u8>>());
        assert_eq!(exemplar.span_id, (1..=8).collect::<Vec<u8>>());
        assert_eq!(exemplar.value, Some(exemplar::Value::AsDouble(1.5)));
        assert_eq!(exemplar.filtered_attributes[0].key, "user");
        let Data::Histogram(histogram) = data[2] else {
            panic!("histogram")
        };
        assert_eq!(histogram.data_points[0].bucket_counts, vec![1, 2]);
        assert_eq!(histogram.data_points[0].explicit_bounds, vec![0.5]);
        assert_eq!(histogram.data_points[0].sum, Some(1.5));
        let Data::ExponentialHistogram(exponential) = data[3] else {
            panic!("exponential")
        };
        let point = &exponential.data_points[0];
        assert_eq!(
            (point.scale, point.zero_count, point.zero_threshold),
            (-1, 1, 0.001)
        );
        assert_eq!(point.positive.as_ref().unwrap().offset, -2);
        assert_eq!(point.positive.as_ref().unwrap().bucket_counts, vec![2, 1]);
        let Data::Summary(summary) = data[4] else {
            panic!("summary")
        };
        assert_eq!(summary.data_points[0].quantile_values[0].value, 1.0);
    }

    #[test]
    fn errors_name_the_path() {
        let error = decode_export_request(
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"dataPoints":[{"bucketCounts":["x"]}]}}]}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(error.path, "$.resourceMetrics[0].scopeMetrics[0].metrics[0].histogram.dataPoints[0].bucketCounts[0]");
        let error = decode_export_request(
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"c","sum":{"dataPoints":[{"exemplars":[{"traceId":"zz"}]}]}}]}]}]}"#,
        )
        .unwrap_err();
        assert!(error.path.ends_with(".exemplars[0].traceId"), "{error}");
        let error = decode_export_request(
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{},"sum":{}}]}]}]}"#,
        )
        .unwrap_err();
        assert!(error.reason.contains("more than one"), "{error}");
    }
}
