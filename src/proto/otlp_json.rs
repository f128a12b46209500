//! OTLP/JSON decoding (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
//! lowerCamelCase keys (snake_case accepted too), hex trace and span IDs, enums as integers or
//! names, 64-bit integers as strings or numbers, `bytesValue` as base64, unknown keys ignored.
//! Every error names the JSON path that was wrong. Traces and logs are decoded here; every
//! signal (metrics too) shares [`decode_levels`], the resource → scope → item envelope.

use base64::Engine;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
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

/// The error for a value of the wrong JSON type at `path`.
pub(crate) fn wrong_kind<T>(
    path: &str,
    expected: &str,
    found: &Value,
) -> Result<T, JsonDecodeError> {
    fail(
        path,
        format!("expected {expected}, found {}", kind_of(found)),
    )
}

pub(crate) type Object = Map<String, Value>;

// ---------------------------------------------------------------- the envelope of every signal

/// The keys (lowerCamelCase, snake_case) of a signal's three levels, e.g. `resourceSpans`,
/// `scopeSpans`, `spans`.
pub(crate) struct Levels {
    pub resources: (&'static str, &'static str),
    pub scopes: (&'static str, &'static str),
    pub items: (&'static str, &'static str),
}

/// Decodes an export request of any signal: its resource entries, each a resource with scope
/// entries, each a scope with items decoded by `item`; `scope_entry` and `resource_entry` build
/// the signal's own messages from the parts and their schema URLs.
pub(crate) fn decode_levels<Item, ScopeEntry, ResourceEntry>(
    body: &[u8],
    levels: &Levels,
    item: impl Fn(&Value, &str) -> Result<Item, JsonDecodeError>,
    scope_entry: impl Fn(Option<InstrumentationScope>, Vec<Item>, String) -> ScopeEntry,
    resource_entry: impl Fn(Option<Resource>, Vec<ScopeEntry>, String) -> ResourceEntry,
) -> Result<Vec<ResourceEntry>, JsonDecodeError> {
    let root: Value = serde_json::from_slice(body).map_err(|error| JsonDecodeError {
        path: "$".into(),
        reason: format!("not valid JSON: {error}"),
    })?;
    let root = as_object(&root, "$")?;
    let (resources_camel, resources_snake) = levels.resources;
    let (scopes_camel, scopes_snake) = levels.scopes;
    let (items_camel, items_snake) = levels.items;
    items(
        root,
        "$",
        resources_camel,
        resources_snake,
        |value, path| {
            let object = as_object(value, path)?;
            let resource = optional_object(object, path, "resource", "resource", resource_of)?;
            let scopes = items(
                object,
                path,
                scopes_camel,
                scopes_snake,
                |scope_value, scope_path| {
                    let scope_object = as_object(scope_value, scope_path)?;
                    let scope =
                        optional_object(scope_object, scope_path, "scope", "scope", scope_of)?;
                    let decoded = items(scope_object, scope_path, items_camel, items_snake, &item)?;
                    Ok(scope_entry(
                        scope,
                        decoded,
                        schema_url(scope_object, scope_path)?,
                    ))
                },
            )?;
            Ok(resource_entry(resource, scopes, schema_url(object, path)?))
        },
    )
}

/// Defines a signal's `pub fn NAME(body: &[u8]) -> Result<Request, JsonDecodeError>` over
/// [`decode_levels`] from the request's shape: its message and field at each level (the
/// fields' names are the snake_case keys) and the lowerCamelCase keys, e.g.
/// `decode_export_request -> ExportTraceServiceRequest { resource_spans: ResourceSpans {
/// scope_spans: ScopeSpans { spans: span } } } ["resourceSpans", "scopeSpans", "spans"]`.
macro_rules! otlp_json_request {
    (
        $(#[$doc:meta])*
        $name:ident -> $request:ident { $resources:ident: $resource:ident {
            $scopes:ident: $scope:ident { $items:ident: $item:path } } }
        [$resources_camel:literal, $scopes_camel:literal, $items_camel:literal]
    ) => {
        $(#[$doc])*
        pub fn $name(body: &[u8]) -> Result<$request, $crate::proto::otlp_json::JsonDecodeError> {
            let levels = $crate::proto::otlp_json::Levels {
                resources: ($resources_camel, stringify!($resources)),
                scopes: ($scopes_camel, stringify!($scopes)),
                items: ($items_camel, stringify!($items)),
            };
            let $resources = $crate::proto::otlp_json::decode_levels(
                body,
                &levels,
                $item,
                |scope, $items, schema_url| $scope { scope, $items, schema_url },
                |resource, $scopes, schema_url| $resource { resource, $scopes, schema_url },
            )?;
            Ok($request { $resources })
        }
    };
}
pub(crate) use otlp_json_request;

fn resource_of(object: &Object, path: &str) -> Result<Resource, JsonDecodeError> {
    Ok(Resource {
        attributes: attributes(object, path)?,
        dropped_attributes_count: dropped_attributes(object, path)?,
        ..Default::default()
    })
}

fn scope_of(object: &Object, path: &str) -> Result<InstrumentationScope, JsonDecodeError> {
    Ok(InstrumentationScope {
        name: string_field(object, path, "name", "name")?,
        version: string_field(object, path, "version", "version")?,
        attributes: attributes(object, path)?,
        dropped_attributes_count: dropped_attributes(object, path)?,
    })
}

fn schema_url(object: &Object, path: &str) -> Result<String, JsonDecodeError> {
    string_field(object, path, "schemaUrl", "schema_url")
}

fn dropped_attributes(object: &Object, path: &str) -> Result<u32, JsonDecodeError> {
    u32_field(
        object,
        path,
        "droppedAttributesCount",
        "dropped_attributes_count",
    )
}

/// Each element of the array `camel`/`snake`, decoded by `decode` with its path
/// (`{path}.{camel}[index]`); an absent or null array has none.
pub(crate) fn items<T>(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
    mut decode: impl FnMut(&Value, &str) -> Result<T, JsonDecodeError>,
) -> Result<Vec<T>, JsonDecodeError> {
    array_field(object, path, camel, snake)?
        .iter()
        .enumerate()
        .map(|(index, item)| decode(item, &format!("{path}.{camel}[{index}]")))
        .collect()
}

/// The object `camel`/`snake` decoded by `decode` with its path; `None` when absent or null.
pub(crate) fn optional_object<T>(
    object: &Object,
    path: &str,
    camel: &str,
    snake: &str,
    decode: impl FnOnce(&Object, &str) -> Result<T, JsonDecodeError>,
) -> Result<Option<T>, JsonDecodeError> {
    match field(object, camel, snake) {
        Some(value) if !value.is_null() => {
            let inner_path = format!("{path}.{camel}");
            decode(as_object(value, &inner_path)?, &inner_path).map(Some)
        }
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------- traces

otlp_json_request!(
    /// Decodes an `ExportTraceServiceRequest` from OTLP/JSON bytes.
    decode_export_request -> ExportTraceServiceRequest { resource_spans: ResourceSpans {
        scope_spans: ScopeSpans { spans: span } } }
    ["resourceSpans", "scopeSpans", "spans"]
);

fn event(value: &Value, path: &str) -> Result<Event, JsonDecodeError> {
    let object = as_object(value, path)?;
    Ok(Event {
        time_unix_nano: u64_field(object, path, "timeUnixNano", "time_unix_nano")?,
        name: string_field(object, path, "name", "name")?,
        attributes: attributes(object, path)?,
        dropped_attributes_count: dropped_attributes(object, path)?,
    })
}

fn link(value: &Value, path: &str) -> Result<Link, JsonDecodeError> {
    let object = as_object(value, path)?;
    Ok(Link {
        trace_id: hex_field(object, path, "traceId", "trace_id", 16)?,
        span_id: hex_field(object, path, "spanId", "span_id", 8)?,
        trace_state: string_field(object, path, "traceState", "trace_state")?,
        attributes: attributes(object, path)?,
        dropped_attributes_count: dropped_attributes(object, path)?,
        flags: u32_field(object, path, "flags", "flags")?,
    })
}

fn status(object: &Object, path: &str) -> Result<Status, JsonDecodeError> {
    Ok(Status {
        message: string_field(object, path, "message", "message")?,
        code: enum_field(object, path, "code", "code", |name| {
            StatusCode::from_str_name(name).map(|code| code as i32)
        })?,
    })
}

fn span(value: &Value, path: &str) -> Result<Span, JsonDecodeError> {
    let object = as_object(value, path)?;
    let events = items(object, path, "events", "events", event)?;
    let links = items(object, path, "links", "links", link)?;
    let status = optional_object(object, path, "status", "status", status)?;
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
        dropped_attributes_count: dropped_attributes(object, path)?,
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

// ---------------------------------------------------------------- logs

fn log_record(value: &Value, path: &str) -> Result<LogRecord, JsonDecodeError> {
    let record = as_object(value, path)?;
    let body = match field(record, "body", "body") {
        Some(value) if !value.is_null() => Some(any_value(value, &format!("{path}.body"))?),
        _ => None,
    };
    Ok(LogRecord {
        time_unix_nano: u64_field(record, path, "timeUnixNano", "time_unix_nano")?,
        observed_time_unix_nano: u64_field(
            record,
            path,
            "observedTimeUnixNano",
            "observed_time_unix_nano",
        )?,
        severity_number: enum_field(record, path, "severityNumber", "severity_number", |name| {
            SeverityNumber::from_str_name(name).map(|number| number as i32)
        })?,
        severity_text: string_field(record, path, "severityText", "severity_text")?,
        body,
        attributes: attributes(record, path)?,
        dropped_attributes_count: 0,
        flags: u32_field(record, path, "flags", "flags")?,
        trace_id: hex_field(record, path, "traceId", "trace_id", 16)?,
        span_id: hex_field(record, path, "spanId", "span_id", 8)?,
        event_name: string_field(record, path, "eventName", "event_name")?,
    })
}

otlp_json_request!(
    /// Decodes an `ExportLogsServiceRequest` from OTLP/JSON bytes (same rules as traces).
    decode_logs_request -> ExportLogsServiceRequest { resource_logs: ResourceLogs {
        scope_logs: ScopeLogs { log_records: log_record } } }
    ["resourceLogs", "scopeLogs", "logRecords"]
);

// ---------------------------------------------------------------- values

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
                let values = items(array_object, &inner_path, "values", "values", any_value)?;
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
        other => wrong_kind(path, "an object", other),
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
        Some(other) => wrong_kind(&format!("{path}.{camel}"), "an array", other),
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
        Some(other) => wrong_kind(&format!("{path}.{camel}"), "a string", other),
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
        Some(other) => wrong_kind(&field_path, "an integer", other),
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
        Some(other) => wrong_kind(&field_path, "an enum name or number", other),
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
        other => wrong_kind(path, "an integer", other),
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
        other => wrong_kind(path, "a number", other),
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
    encode_partial_success("rejectedSpans", rejected_spans, error_message)
}

/// Encodes an export response of any signal as OTLP/JSON: `{}`, or a `partialSuccess` with
/// the refused count under `rejected_key` (`rejectedSpans`, `rejectedDataPoints`, ...).
pub fn encode_partial_success(rejected_key: &str, rejected: i64, error_message: &str) -> Vec<u8> {
    if rejected == 0 && error_message.is_empty() {
        return b"{}".to_vec();
    }
    serde_json::json!({
        "partialSuccess": { rejected_key: rejected.to_string(), "errorMessage": error_message }
    })
    .to_string()
    .into_bytes()
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
