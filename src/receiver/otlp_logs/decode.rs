//! OTLP logs export bodies: protobuf `ExportLogsServiceRequest` or its OTLP/JSON mapping, each
//! record a [`LogRow`] with Loki-style stream labels.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde_json::Value;

use crate::distributor::DistributorError;
use crate::logs::{otlp_stream_labels, Label, LogRow};
use crate::proto::otlp_json;
use crate::receiver::ingest::{now_ns, OtlpEncoding};

/// The rows of an export body in `encoding`.
pub fn decode(encoding: OtlpEncoding, body: &[u8]) -> Result<Vec<LogRow>, DistributorError> {
    let request = match encoding {
        OtlpEncoding::Json => otlp_json::decode_logs_request(body)
            .map_err(|error| DistributorError::BadRequest(error.to_string()))?,
        OtlpEncoding::Protobuf => ExportLogsServiceRequest::decode(body).map_err(|error| {
            DistributorError::BadRequest(format!(
                "invalid ExportLogsServiceRequest protobuf: {error}"
            ))
        })?,
    };
    otlp_rows(request, now_ns()).map_err(DistributorError::BadRequest)
}

/// Text of an OTLP `AnyValue`: strings as they are, other values as JSON.
pub fn any_value_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => hex::encode(bytes),
        Some(_) => any_value_json(value).to_string(),
        None => String::new(),
    }
}

fn any_value_json(value: &AnyValue) -> Value {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => Value::String(text.clone()),
        Some(any_value::Value::BoolValue(flag)) => Value::Bool(*flag),
        Some(any_value::Value::IntValue(number)) => Value::from(*number),
        Some(any_value::Value::DoubleValue(number)) => Value::from(*number),
        Some(any_value::Value::BytesValue(bytes)) => Value::String(hex::encode(bytes)),
        Some(any_value::Value::StringValueStrindex(index)) => Value::from(*index),
        Some(any_value::Value::ArrayValue(array)) => {
            Value::Array(array.values.iter().map(any_value_json).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Value::Object(
            list.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(Value::Null, any_value_json),
                    )
                })
                .collect(),
        ),
        None => Value::Null,
    }
}

fn labels_of(attributes: &[KeyValue]) -> Vec<Label> {
    attributes
        .iter()
        .map(|kv| {
            Label::new(
                kv.key.clone(),
                kv.value.as_ref().map_or_else(String::new, any_value_text),
            )
        })
        .collect()
}

/// The rows of an OTLP export; `now_ns` stands in for missing timestamps. IDs of the wrong
/// length are a bad request, as for spans.
pub fn otlp_rows(request: ExportLogsServiceRequest, now_ns: u64) -> Result<Vec<LogRow>, String> {
    let mut rows = Vec::new();
    for (resource_index, resource_logs) in request.resource_logs.into_iter().enumerate() {
        let resource_attributes = resource_logs
            .resource
            .as_ref()
            .map(|resource| labels_of(&resource.attributes))
            .unwrap_or_default();
        let service_name = resource_attributes
            .iter()
            .find(|label| label.name == "service.name")
            .map_or_else(
                || "unknown_service".to_string(),
                |label| label.value.clone(),
            );
        for scope_logs in resource_logs.scope_logs {
            for record in scope_logs.log_records {
                for (name, id, expected) in [
                    ("trace_id", &record.trace_id, 16),
                    ("span_id", &record.span_id, 8),
                ] {
                    if !id.is_empty() && id.len() != expected {
                        return Err(format!(
                            "resource_logs[{resource_index}]: log record {name} has {} bytes, expected {expected}",
                            id.len()
                        ));
                    }
                }
                let observed = if record.observed_time_unix_nano == 0 {
                    now_ns
                } else {
                    record.observed_time_unix_nano
                };
                let timestamp = if record.time_unix_nano == 0 {
                    observed
                } else {
                    record.time_unix_nano
                };
                let trace_id = if record.trace_id.iter().all(|b| *b == 0) {
                    Vec::new()
                } else {
                    record.trace_id
                };
                let span_id = if record.span_id.iter().all(|b| *b == 0) {
                    Vec::new()
                } else {
                    record.span_id
                };
                let mut row = LogRow {
                    timestamp_ns: timestamp,
                    observed_ns: observed,
                    service_name: service_name.clone(),
                    severity_text: record.severity_text,
                    severity_number: record.severity_number,
                    body: record
                        .body
                        .as_ref()
                        .map_or_else(String::new, any_value_text),
                    trace_id,
                    span_id,
                    attributes: labels_of(&record.attributes),
                    resource_attributes: resource_attributes.clone(),
                    labels: Vec::new(),
                };
                row.labels = otlp_stream_labels(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    #[test]
    fn otlp_records_become_rows_with_loki_labels() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![crate::model::string_attribute("service.name", "payments")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        time_unix_nano: 5,
                        severity_text: "ERROR".into(),
                        severity_number: 17,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("declined".into())),
                        }),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        attributes: vec![crate::model::int_attribute("retry", 2)],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let rows = otlp_rows(request.clone(), 99).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.timestamp_ns, row.observed_ns), (5, 99));
        assert_eq!(row.body, "declined");
        assert_eq!(row.label("service_name"), Some("payments"));
        assert_eq!(row.label("level"), Some("error"));
        assert_eq!(row.attributes, vec![Label::new("retry", "2")]);
        let mut bad = request;
        bad.resource_logs[0].scope_logs[0].log_records[0].trace_id = vec![1; 5];
        assert!(otlp_rows(bad, 0).unwrap_err().contains("trace_id"));
    }
}
