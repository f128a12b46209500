//! OTLP/JSON decoding (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
//! lowerCamelCase keys (snake_case accepted too), hex trace and span IDs, enums as integers or
//! names, 64-bit integers as strings or numbers, `bytesValue` as base64, unknown keys ignored.
//! Every error names the JSON path that was wrong.

use base64::Engine;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value};

/// A malformed OTLP/JSON body, with the path of the offending value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid OTLP/JSON at {path}: {reason}")]
pub struct JsonDecodeError {
    pub path: String,
    pub reason: String,
}

pub(crate) fn fail<T>(path: &str, reason: impl Into<String>) -> Result<T, JsonDecodeError> {
    Err(JsonDecodeError {
        path: path.to_string(),
        reason: reason.into(),
    })
}

pub(crate) type Object = Map<String, Value>;

/// Decodes an `ExportTraceServiceRequest` from OTLP/JSON bytes.
pub fn decode_export_request(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonDecodeError> {
    let root: Value = serde_json::from_slice(body).map_err(|error| JsonDecodeError {
        path: "$".into(),
        reason: format!("not valid JSON: {error}"),
    })?;
    let root = as_object(&root, "$")?;
    let mut request = ExportTraceServiceRequest::default();
    for (index, item) in array_field(root, "$", "resourceSpans", "resource_spans")?
        .iter()
        .enumerate()
    {
        let path = format!("$.resourceSpans[{index}]");
        request.resource_spans.push(resource_spans(item, &path)?);
    }
    Ok(request)
}

fn resource_spans(value: &Value, path: &str) -> Result<ResourceSpans, JsonDecodeError> {
    let object = as_object(value, path)?;
    let resource = match field(object, "resource", "resource") {
        Some(resource_value) if !resource_value.is_null() => {
            let resource_path = format!("{path}.resource");
            let resource_object = as_object(resource_value, &resource_path)?;
            Some(Resource {
                attributes: attributes(resource_object, &resource_path)?,
                dropped_attributes_count: u32_field(
                    resource_object,
                    &resource_path,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                )?,
                ..Default::default()
            })
        }
        _ => None,
    };
    let mut scope_spans = Vec::new();
    for (index, item) in array_field(object, path, "scopeSpans", "scope_spans")?
        .iter()
        .enumerate()
    {
        scope_spans.push(scope_spans_of(
            item,
            &format!("{path}.scopeSpans[{index}]"),
        )?);
    }
    Ok(ResourceSpans {
        resource,
        scope_spans,
        schema_url: string_field(object, path, "schemaUrl", "schema_url")?,
    })
}

fn scope_spans_of(value: &Value, path: &str) -> Result<ScopeSpans, JsonDecodeError> {
    let object = as_object(value, path)?;
    let scope = match field(object, "scope", "scope") {
        Some(scope_value) if !scope_value.is_null() => {
            let scope_path = format!("{path}.scope");
            let scope_object = as_object(scope_value, &scope_path)?;
            Some(InstrumentationScope {
                name: string_field(scope_object, &scope_path, "name", "name")?,
                version: string_field(scope_object, &scope_path, "version", "version")?,
                attributes: attributes(scope_object, &scope_path)?,
                dropped_attributes_count: u32_field(
                    scope_object,
                    &scope_path,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                )?,
            })
        }
        _ => None,
    };
    let mut spans = Vec::new();
    for (index, item) in array_field(object, path, "spans", "spans")?
        .iter()
        .enumerate()
    {
        spans.push(span(item, &format!("{path}.spans[{index}]"))?);
    }
    Ok(ScopeSpans {
        scope,
        spans,
        schema_url: string_field(object, path, "schemaUrl", "schema_url")?,
    })
}

fn span(value: &Value, path: &str) -> Result<Span, JsonDecodeError> {
    let object = as_object(value, path)?;
    let mut events = Vec::new();
    for (index, item) in array_field(object, path, "events", "events")?
        .iter()
        .enumerate()
    {
        let event_path = format!("{path}.events[{index}]");
        let event_object = as_object(item, &event_path)?;
        events.push(Event {
            time_unix_nano: u64_field(event_object, &event_path, "timeUnixNano", "time_unix_nano")?,
            name: string_field(event_object, &event_path, "name", "name")?,
            attributes: attributes(event_object, &event_path)?,
            dropped_attributes_count: u32_field(
                event_object,
                &event_path,
                "droppedAttributesCount",
                "dropped_attributes_count",
            )?,
        });
    }
    let mut links = Vec::new();
    for (index, item) in array_field(object, path, "links", "links")?
        .iter()
        .enumerate()
    {
        let link_path = format!("{path}.links[{index}]");
        let link_object = as_object(item, &link_path)?;
        links.push(Link {
            trace_id: hex_field(link_object, &link_path, "traceId", "trace_id", 16)?,
            span_id: hex_field(link_object, &link_path, "spanId", "span_id", 8)?,
            trace_state: string_field(link_object, &link_path, "traceState", "trace_state")?,
            attributes: attributes(link_object, &link_path)?,
            dropped_attributes_count: u32_field(
                link_object,
                &link_path,
                "droppedAttributesCount",
                "dropped_attributes_count",
            )?,
            flags: u32_field(link_object, &link_path, "flags", "flags")?,
        });
    }
    let status = match field(object, "status", "status") {
        Some(status_value) if !status_value.is_null() => {
            let status_path = format!("{path}.status");
            let status_object = as_object(status_value, &status_path)?;
            Some(Status {
                message: string_field(status_object, &status_path, "message", "message")?,
                code: enum_field(status_object, &status_path, "code", "code", |name| {
                    StatusCode::from_str_name(name).map(|code| code as i32)
                })?,
            })
        }
        _ => None,
    };
    Ok(Span {
        trace_id: hex_field(object, path, "traceId", "trace_id", 16)?,
        span_id: hex_field(object, path, "spanId", "span_id", 8)?,
        trace_state: string_field(object, path, "traceState", "trace_state")?,
        parent_span_id: hex_field(object, path, "parentSpanId", "parent_span_id", 8)?,
        flags: u32_field(object, path, "flags", "flags")?,
        name: string_field(object, path, "name", "name")?,
        kind: enum_field(object, path, "kind", "kind", |name| {
            SpanKind::from_str_name(name).map(|kind| kind as i32)
        })?,
        start_time_unix_nano: u64_field(object, path, "startTimeUnixNano", "start_time_unix_nano")?,
        end_time_unix_nano: u64_field(object, path, "endTimeUnixNano", "end_time_unix_nano")?,
        attributes: attributes(object, path)?,
        dropped_attributes_count: u32_field(
            object,
            path,
            "droppedAttributesCount",
            "dropped_attributes_count",
        )?,
        events,
        dropped_events_count: u32_field(
            object,
            path,
            "droppedEventsCount",
            "dropped_events_count",
        )?,
        links,
        dropped_links_count: u32_field(object, path, "droppedLinksCount", "dropped_links_count")?,
        status,
    })
}

pub(crate) fn attributes(object: &Object, path: &str) -> Result<Vec<KeyValue>, JsonDecodeError> {
    key_values(
        array_field(object, path, "attributes", "attributes")?,
        &format!("{path}.attributes"),
    )
}

pub(crate) fn key_values(items: &[Value], path: &str) -> Result<Vec<KeyValue>, JsonDecodeError> {
    let mut result = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        let item_object = as_object(item, &item_path)?;
        let key = string_field(item_object, &item_path, "key", "key")?;
        let value = match field(item_object, "value", "value") {
            Some(value) if !value.is_null() => {
                Some(any_value(value, &format!("{item_path}.value"))?)
            }
            _ => None,
        };
        result.push(KeyValue {
            key,
            value,
            ..Default::default()
        });
    }
    Ok(result)
}

pub(crate) fn any_value(value: &Value, path: &str) -> Result<AnyValue, JsonDecodeError> {
    let object = as_object(value, path)?;
    let mut decoded = None;
    for (key, inner) in object {
        if inner.is_null() {
            continue;
        }
        let inner_path = format!("{path}.{key}");
        let parsed = match key.as_str() {
            "stringValue" | "string_value" => match inner {
                Value::String(text) => any_value::Value::StringValue(text.clone()),
                _ => return fail(&inner_path, "expected a string"),
            },
            "boolValue" | "bool_value" => match inner {
                Value::Bool(flag) => any_value::Value::BoolValue(*flag),
                _ => return fail(&inner_path, "expected true or false"),
            },
            "intValue" | "int_value" => any_value::Value::IntValue(parse_i64(inner, &inner_path)?),
            "doubleValue" | "double_value" => {
                any_value::Value::DoubleValue(parse_f64(inner, &inner_path)?)
            }
            "bytesValue" | "bytes_value" => match inner {
                Value::String(text) => any_value::Value::BytesValue(
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
                        .or_else(|_| fail(&inner_path, "expected base64"))?,
                ),
                _ => return fail(&inner_path, "expected a base64 string"),
            },
            "arrayValue" | "array_value" => {
                let array_object = as_object(inner, &inner_path)?;
                let mut values = Vec::new();
                for (index, element) in array_field(array_object, &inner_path, "values", "values")?
                    .iter()
                    .enumerate()
                {
                    values.push(any_value(
                        element,
                        &format!("{inner_path}.values[{index}]"),
                    )?);
                }
                any_value::Value::ArrayValue(ArrayValue { values })
            }
            "kvlistValue" | "kvlist_value" => {
                let list_object = as_object(inner, &inner_path)?;
                let values = key_values(
                    array_field(list_object, &inner_path, "values", "values")?,
                    &format!("{inner_path}.values"),
                )?;
                any_value::Value::KvlistValue(KeyValueList { values })
            }
            // Unknown keys are ignored, as the OTLP/JSON specification requires.
            _ => continue,
        };
        decoded = Some(parsed);
    }
    Ok(AnyValue { value: decoded })
}

pub(crate) fn field<'a>(object: &'a Object, camel: &str, snake: &str) -> Option<&'a Value> {
    object.get(camel).or_else(|| object.get(snake))
}

pub(crate) fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Object, JsonDecodeError> {
    match value {
        Value::Object(object) => Ok(object),
        other => fail(
            path,
            format!("expected an object, found {}", kind_of(other)),
        ),
    }
}

pub(crate) fn array_field<'a>(
    object: &'a Object,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<&'a [Value], JsonDecodeError> {
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => fail(
            &format!("{path}.{camel}"),
            format!("expected an array, found {}", kind_of(other)),
        ),
    }
}

pub(crate) fn string_field(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<String, JsonDecodeError> {
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => fail(
            &format!("{path}.{camel}"),
            format!("expected a string, found {}", kind_of(other)),
        ),
    }
}

pub(crate) fn hex_field(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
    expected_len: usize,
) -> Result<Vec<u8>, JsonDecodeError> {
    let text = string_field(object, path, camel, snake)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = hex::decode(&text).or_else(|_| {
        fail(
            &format!("{path}.{camel}"),
            format!("{text:?} is not a hex string"),
        )
    })?;
    if bytes.len() != expected_len {
        return fail(
            &format!("{path}.{camel}"),
            format!(
                "{text:?} has {} bytes, expected {expected_len}",
                bytes.len()
            ),
        );
    }
    Ok(bytes)
}

pub(crate) fn u64_field(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<u64, JsonDecodeError> {
    let field_path = format!("{path}.{camel}");
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(number)) => number.as_u64().map_or_else(
            || {
                fail(
                    &field_path,
                    format!("{number} is not an unsigned 64-bit integer"),
                )
            },
            Ok,
        ),
        Some(Value::String(text)) => text.parse::<u64>().or_else(|_| {
            fail(
                &field_path,
                format!("{text:?} is not an unsigned 64-bit integer"),
            )
        }),
        Some(other) => fail(
            &field_path,
            format!("expected an integer, found {}", kind_of(other)),
        ),
    }
}

pub(crate) fn u32_field(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
) -> Result<u32, JsonDecodeError> {
    let value = u64_field(object, path, camel, snake)?;
    u32::try_from(value).or_else(|_| {
        fail(
            &format!("{path}.{camel}"),
            format!("{value} does not fit 32 bits"),
        )
    })
}

pub(crate) fn enum_field(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
    by_name: impl Fn(&str) -> Option<i32>,
) -> Result<i32, JsonDecodeError> {
    let field_path = format!("{path}.{camel}");
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(number)) => number
            .as_i64()
            .and_then(|value| i32::try_from(value).ok())
            .map_or_else(
                || fail(&field_path, format!("{number} is not an enum value")),
                Ok,
            ),
        Some(Value::String(name)) => by_name(name)
            .or_else(|| name.parse::<i32>().ok())
            .map_or_else(
                || fail(&field_path, format!("unknown enum name {name:?}")),
                Ok,
            ),
        Some(other) => fail(
            &field_path,
            format!("expected an enum name or number, found {}", kind_of(other)),
        ),
    }
}

pub(crate) fn parse_i64(value: &Value, path: &str) -> Result<i64, JsonDecodeError> {
    match value {
        Value::Number(number) => number.as_i64().map_or_else(
            || fail(path, format!("{number} is not a 64-bit integer")),
            Ok,
        ),
        Value::String(text) => text
            .parse::<i64>()
            .or_else(|_| fail(path, format!("{text:?} is not a 64-bit integer"))),
        other => fail(
            path,
            format!("expected an integer, found {}", kind_of(other)),
        ),
    }
}

pub(crate) fn parse_f64(value: &Value, path: &str) -> Result<f64, JsonDecodeError> {
    match value {
        Value::Number(number) => number
            .as_f64()
            .map_or_else(|| fail(path, "not a number"), Ok),
        Value::String(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => text
                .parse::<f64>()
                .or_else(|_| fail(path, format!("{text:?} is not a number"))),
        },
        other => fail(path, format!("expected a number, found {}", kind_of(other))),
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Encodes an `ExportTraceServiceResponse` as OTLP/JSON: `{}` or a `partialSuccess`.
pub fn encode_export_response(rejected_spans: i64, error_message: &str) -> Vec<u8> {
    if rejected_spans == 0 && error_message.is_empty() {
        return b"{}".to_vec();
    }
    serde_json::json!({
        "partialSuccess": { "rejectedSpans": rejected_spans.to_string(), "errorMessage": error_message }
    })
    .to_string()
    .into_bytes()
}

// ---------------------------------------------------------------- logs

/// Decodes an `ExportLogsServiceRequest` from OTLP/JSON bytes (same rules as traces).
pub fn decode_logs_request(
    body: &[u8],
) -> Result<
    opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest,
    JsonDecodeError,
> {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let root: Value = serde_json::from_slice(body).map_err(|error| JsonDecodeError {
        path: "$".into(),
        reason: format!("not valid JSON: {error}"),
    })?;
    let root = as_object(&root, "$")?;
    let mut request =
        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::default();
    for (index, item) in array_field(root, "$", "resourceLogs", "resource_logs")?
        .iter()
        .enumerate()
    {
        let path = format!("$.resourceLogs[{index}]");
        let object = as_object(item, &path)?;
        let resource = match field(object, "resource", "resource") {
            Some(value) if !value.is_null() => {
                let resource_path = format!("{path}.resource");
                Some(Resource {
                    attributes: attributes(as_object(value, &resource_path)?, &resource_path)?,
                    ..Default::default()
                })
            }
            _ => None,
        };
        let mut scope_logs = Vec::new();
        for (scope_index, scope_item) in array_field(object, &path, "scopeLogs", "scope_logs")?
            .iter()
            .enumerate()
        {
            let scope_path = format!("{path}.scopeLogs[{scope_index}]");
            let scope_object = as_object(scope_item, &scope_path)?;
            let scope = match field(scope_object, "scope", "scope") {
                Some(value) if !value.is_null() => {
                    let inner_path = format!("{scope_path}.scope");
                    let inner = as_object(value, &inner_path)?;
                    Some(InstrumentationScope {
                        name: string_field(inner, &inner_path, "name", "name")?,
                        version: string_field(inner, &inner_path, "version", "version")?,
                        attributes: attributes(inner, &inner_path)?,
                        dropped_attributes_count: 0,
                    })
                }
                _ => None,
            };
            let mut log_records = Vec::new();
            for (record_index, record_item) in
                array_field(scope_object, &scope_path, "logRecords", "log_records")?
                    .iter()
                    .enumerate()
            {
                let record_path = format!("{scope_path}.logRecords[{record_index}]");
                let record = as_object(record_item, &record_path)?;
                let body = match field(record, "body", "body") {
                    Some(value) if !value.is_null() => {
                        Some(any_value(value, &format!("{record_path}.body"))?)
                    }
                    _ => None,
                };
                log_records.push(LogRecord {
                    time_unix_nano: u64_field(
                        record,
                        &record_path,
                        "timeUnixNano",
                        "time_unix_nano",
                    )?,
                    observed_time_unix_nano: u64_field(
                        record,
                        &record_path,
                        "observedTimeUnixNano",
                        "observed_time_unix_nano",
                    )?,
                    severity_number: enum_field(
                        record,
                        &record_path,
                        "severityNumber",
                        "severity_number",
                        |name| {
                            opentelemetry_proto::tonic::logs::v1::SeverityNumber::from_str_name(
                                name,
                            )
                            .map(|number| number as i32)
                        },
                    )?,
                    severity_text: string_field(
                        record,
                        &record_path,
                        "severityText",
                        "severity_text",
                    )?,
                    body,
                    attributes: attributes(record, &record_path)?,
                    dropped_attributes_count: 0,
                    flags: u32_field(record, &record_path, "flags", "flags")?,
                    trace_id: hex_field(record, &record_path, "traceId", "trace_id", 16)?,
                    span_id: hex_field(record, &record_path, "spanId", "span_id", 8)?,
                    event_name: string_field(record, &record_path, "eventName", "event_name")?,
                });
            }
            scope_logs.push(ScopeLogs {
                scope,
                log_records,
                schema_url: string_field(scope_object, &scope_path, "schemaUrl", "schema_url")?,
            });
        }
        request.resource_logs.push(ResourceLogs {
            resource,
            scope_logs,
            schema_url: string_field(object, &path, "schemaUrl", "schema_url")?,
        });
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_golden_dataset_batch() {
        let dataset = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tempo-api/dataset");
        let entries = std::fs::read_dir(dataset).expect("tests/data/tempo-api/dataset");
        let mut spans = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with("batch-") {
                continue;
            }
            let request = decode_export_request(&std::fs::read(&path).unwrap()).unwrap();
            for batch in &request.resource_spans {
                for scope in &batch.scope_spans {
                    for span in &scope.spans {
                        assert_eq!(span.trace_id.len(), 16);
                        assert_eq!(span.span_id.len(), 8);
                        spans += 1;
                    }
                }
            }
        }
        assert_eq!(spans, 460, "the dataset README says 460 spans");
    }

    #[test]
    fn accepts_enum_names_snake_case_and_numbers() {
        let body = br#"{"resource_spans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090A0B0C0D0E0F10",
            "spanId":"0102030405060708","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":12,"endTimeUnixNano":"13",
            "status":{"code":"STATUS_CODE_ERROR"},"attributes":[{"key":"n","value":{"intValue":7}},
            {"key":"b","value":{"bytesValue":"AQI="}},{"key":"x","value":{"unknownValue":1}}],"unknownField":true}]}]}]}"#;
        let request = decode_export_request(body).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(span.start_time_unix_nano, 12);
        assert_eq!(span.end_time_unix_nano, 13);
        assert_eq!(
            span.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(7))
        );
        assert_eq!(
            span.attributes[1].value.as_ref().unwrap().value,
            Some(any_value::Value::BytesValue(vec![1, 2]))
        );
        assert_eq!(span.attributes[2].value.as_ref().unwrap().value, None);
    }

    #[test]
    fn errors_name_the_path() {
        let error = decode_export_request(
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            error.path,
            "$.resourceSpans[0].scopeSpans[0].spans[0].traceId"
        );
        let error = decode_export_request(
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SIDEWAYS"}]}]}]}"#,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown enum name \"SIDEWAYS\""),
            "{error}"
        );
        let error = decode_export_request(b"{not json").unwrap_err();
        assert_eq!(error.path, "$");
        let error = decode_export_request(br#"{"resourceSpans":{}}"#).unwrap_err();
        assert!(error.to_string().contains("expected an array"), "{error}");
    }
}
