//! The generic attribute element (`Attrs.list.element`) and `ValueUnsupported`, the
//! protobuf-JSON text of an OTLP `AnyValue` that has no typed column (spec §5.4).

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use serde_json::{Map, Number, Value as Json};

use super::dremel::Value;
use super::row::{list, list_elements};
use super::VParquetError;

/// The `Attrs.list.element` group of one attribute.
pub fn attribute_value(attribute: &KeyValue) -> Value {
    let mut strings = Vec::new();
    let mut ints = Vec::new();
    let mut doubles = Vec::new();
    let mut bools = Vec::new();
    let mut is_array = false;
    let mut unsupported = Value::Null;
    let kind = attribute
        .value
        .as_ref()
        .and_then(|value| value.value.as_ref());
    match kind {
        Some(AnyValueKind::StringValue(text)) => {
            strings.push(Value::Bytes(text.as_bytes().to_vec()))
        }
        Some(AnyValueKind::IntValue(number)) => ints.push(Value::Int64(*number)),
        Some(AnyValueKind::DoubleValue(number)) => doubles.push(Value::Double(*number)),
        Some(AnyValueKind::BoolValue(flag)) => bools.push(Value::Bool(*flag)),
        Some(AnyValueKind::ArrayValue(array)) if homogeneous_scalars(array) => {
            is_array = true;
            for element in &array.values {
                match &element.value {
                    Some(AnyValueKind::StringValue(text)) => {
                        strings.push(Value::Bytes(text.as_bytes().to_vec()))
                    }
                    Some(AnyValueKind::IntValue(number)) => ints.push(Value::Int64(*number)),
                    Some(AnyValueKind::DoubleValue(number)) => doubles.push(Value::Double(*number)),
                    Some(AnyValueKind::BoolValue(flag)) => bools.push(Value::Bool(*flag)),
                    _ => {}
                }
            }
        }
        _ => {
            let empty = AnyValue { value: None };
            let value = attribute.value.as_ref().unwrap_or(&empty);
            unsupported = Value::Bytes(any_value_to_json(value).to_string().into_bytes());
        }
    }
    Value::Group(vec![
        Value::Bytes(attribute.key.as_bytes().to_vec()),
        Value::Bool(is_array),
        list(strings),
        list(ints),
        list(doubles),
        list(bools),
        unsupported,
    ])
}

/// An empty array, or an array whose elements all hold the same scalar type.
fn homogeneous_scalars(array: &ArrayValue) -> bool {
    let mut kinds = array.values.iter().map(|element| match &element.value {
        Some(AnyValueKind::StringValue(_)) => 1,
        Some(AnyValueKind::IntValue(_)) => 2,
        Some(AnyValueKind::DoubleValue(_)) => 3,
        Some(AnyValueKind::BoolValue(_)) => 4,
        _ => 0,
    });
    match kinds.next() {
        None => true,
        Some(0) => false,
        Some(first) => kinds.all(|kind| kind == first),
    }
}

/// The attribute an `Attrs.list.element` group describes.
pub fn attribute_from_value(element: &Value) -> Result<KeyValue, VParquetError> {
    let key = element.field(0)?.as_string()?;
    let is_array = element.field(1)?.as_bool()?;
    let strings = list_elements(element.field(2)?)?;
    let ints = list_elements(element.field(3)?)?;
    let doubles = list_elements(element.field(4)?)?;
    let bools = list_elements(element.field(5)?)?;
    let unsupported = element.field(6)?;
    let value = if !matches!(unsupported, Value::Null) {
        let text = unsupported.as_string()?;
        let json: Json = serde_json::from_str(&text).map_err(|error| {
            VParquetError::InvalidUnsupportedValue {
                text: text.clone(),
                problem: error.to_string(),
            }
        })?;
        any_value_from_json(&json)
            .map_err(|problem| VParquetError::InvalidUnsupportedValue { text, problem })?
    } else {
        let mut values = Vec::new();
        for element in strings {
            values.push(AnyValueKind::StringValue(element.as_string()?));
        }
        for element in ints {
            values.push(AnyValueKind::IntValue(element.as_i64()?));
        }
        for element in doubles {
            values.push(AnyValueKind::DoubleValue(element.as_f64()?));
        }
        for element in bools {
            values.push(AnyValueKind::BoolValue(element.as_bool()?));
        }
        if is_array {
            let values = values
                .into_iter()
                .map(|value| AnyValue { value: Some(value) })
                .collect();
            AnyValue {
                value: Some(AnyValueKind::ArrayValue(ArrayValue { values })),
            }
        } else {
            // A scalar has exactly one value; none at all can only come from another writer.
            AnyValue {
                value: values.into_iter().next(),
            }
        }
    };
    Ok(KeyValue {
        key,
        value: Some(value),
        ..Default::default()
    })
}

/// Protobuf-JSON (proto3 canonical JSON, as Go's jsonpb writes it) of an `AnyValue`: camelCase
/// oneof names, int64 as a decimal string, bytes as standard base64, empty fields omitted.
pub fn any_value_to_json(value: &AnyValue) -> Json {
    let mut object = Map::new();
    match &value.value {
        None => {}
        Some(AnyValueKind::StringValue(text)) => {
            object.insert("stringValue".into(), Json::String(text.clone()));
        }
        Some(AnyValueKind::BoolValue(flag)) => {
            object.insert("boolValue".into(), Json::Bool(*flag));
        }
        Some(AnyValueKind::IntValue(number)) => {
            object.insert("intValue".into(), Json::String(number.to_string()));
        }
        Some(AnyValueKind::DoubleValue(number)) => {
            object.insert("doubleValue".into(), double_to_json(*number));
        }
        Some(AnyValueKind::ArrayValue(array)) => {
            let mut inner = Map::new();
            if !array.values.is_empty() {
                inner.insert(
                    "values".into(),
                    Json::Array(array.values.iter().map(any_value_to_json).collect()),
                );
            }
            object.insert("arrayValue".into(), Json::Object(inner));
        }
        Some(AnyValueKind::KvlistValue(list)) => {
            let mut inner = Map::new();
            if !list.values.is_empty() {
                let entries = list.values.iter().map(key_value_to_json).collect();
                inner.insert("values".into(), Json::Array(entries));
            }
            object.insert("kvlistValue".into(), Json::Object(inner));
        }
        Some(AnyValueKind::BytesValue(bytes)) => {
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            object.insert("bytesValue".into(), Json::String(text));
        }
        Some(AnyValueKind::StringValueStrindex(index)) => {
            object.insert(
                "stringValueStrindex".into(),
                Json::Number(Number::from(*index)),
            );
        }
    }
    Json::Object(object)
}

fn key_value_to_json(entry: &KeyValue) -> Json {
    let mut object = Map::new();
    if !entry.key.is_empty() {
        object.insert("key".into(), Json::String(entry.key.clone()));
    }
    if let Some(value) = &entry.value {
        object.insert("value".into(), any_value_to_json(value));
    }
    Json::Object(object)
}

fn double_to_json(number: f64) -> Json {
    match Number::from_f64(number) {
        Some(finite) => Json::Number(finite),
        // Non-finite doubles have no JSON number form; proto3 JSON spells them as strings.
        None if number.is_nan() => Json::String("NaN".into()),
        None if number > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

/// Parses protobuf-JSON of an `AnyValue`, accepting what proto3 JSON parsers accept
/// (camelCase or snake_case names, int64 as string or number, non-finite doubles as strings).
pub fn any_value_from_json(json: &Json) -> Result<AnyValue, String> {
    let object = json
        .as_object()
        .ok_or("an AnyValue must be a json object")?;
    let mut value = None;
    for (name, field) in object {
        let kind = match name.as_str() {
            "stringValue" | "string_value" => AnyValueKind::StringValue(
                field
                    .as_str()
                    .ok_or("stringValue must be a string")?
                    .to_string(),
            ),
            "boolValue" | "bool_value" => {
                AnyValueKind::BoolValue(field.as_bool().ok_or("boolValue must be a boolean")?)
            }
            "intValue" | "int_value" => AnyValueKind::IntValue(json_i64(field)?),
            "doubleValue" | "double_value" => AnyValueKind::DoubleValue(json_f64(field)?),
            "arrayValue" | "array_value" => {
                let values = json_values(field)?
                    .iter()
                    .map(any_value_from_json)
                    .collect::<Result<Vec<_>, _>>()?;
                AnyValueKind::ArrayValue(ArrayValue { values })
            }
            "kvlistValue" | "kvlist_value" => {
                let values = json_values(field)?
                    .iter()
                    .map(key_value_from_json)
                    .collect::<Result<Vec<_>, _>>()?;
                AnyValueKind::KvlistValue(KeyValueList { values })
            }
            "bytesValue" | "bytes_value" => {
                let text = field.as_str().ok_or("bytesValue must be a string")?;
                AnyValueKind::BytesValue(decode_base64(text)?)
            }
            "stringValueStrindex" | "string_value_strindex" => {
                let index = json_i64(field)?;
                AnyValueKind::StringValueStrindex(
                    i32::try_from(index).map_err(|_| "stringValueStrindex out of range")?,
                )
            }
            other => return Err(format!("unknown AnyValue field {other:?}")),
        };
        if value.replace(kind).is_some() {
            return Err("an AnyValue holds more than one value".into());
        }
    }
    Ok(AnyValue { value })
}

fn key_value_from_json(json: &Json) -> Result<KeyValue, String> {
    let object = json.as_object().ok_or("a KeyValue must be a json object")?;
    let key = match object.get("key") {
        None => String::new(),
        Some(key) => key.as_str().ok_or("key must be a string")?.to_string(),
    };
    let value = match object.get("value") {
        None | Some(Json::Null) => None,
        Some(value) => Some(any_value_from_json(value)?),
    };
    Ok(KeyValue {
        key,
        value,
        ..Default::default()
    })
}

fn json_values(field: &Json) -> Result<Vec<Json>, String> {
    let object = field
        .as_object()
        .ok_or("array/kvlist value must be a json object")?;
    match object.get("values") {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(values)) => Ok(values.clone()),
        Some(_) => Err("values must be a json array".into()),
    }
}

fn json_i64(field: &Json) -> Result<i64, String> {
    match field {
        Json::String(text) => text.parse().map_err(|_| format!("invalid int64 {text:?}")),
        Json::Number(number) => number
            .as_i64()
            .ok_or_else(|| format!("invalid int64 {number}")),
        _ => Err("int64 must be a string or a number".into()),
    }
}

fn json_f64(field: &Json) -> Result<f64, String> {
    match field {
        Json::Number(number) => number
            .as_f64()
            .ok_or_else(|| format!("invalid double {number}")),
        Json::String(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| format!("invalid double {other:?}")),
        },
        _ => Err("double must be a number or a string".into()),
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    // proto3 JSON parsers accept both alphabets, padded or not.
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| format!("invalid base64 {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(kind: AnyValueKind) -> AnyValue {
        AnyValue { value: Some(kind) }
    }

    #[test]
    fn writes_proto3_json() {
        let kvlist = any(AnyValueKind::KvlistValue(KeyValueList {
            values: vec![
                KeyValue {
                    key: "a".into(),
                    value: Some(any(AnyValueKind::IntValue(5))),
                    ..Default::default()
                },
                KeyValue {
                    key: "b".into(),
                    value: Some(any(AnyValueKind::BytesValue(vec![1, 2, 255]))),
                    ..Default::default()
                },
            ],
        }));
        assert_eq!(
            any_value_to_json(&kvlist).to_string(),
            r#"{"kvlistValue":{"values":[{"key":"a","value":{"intValue":"5"}},{"key":"b","value":{"bytesValue":"AQL/"}}]}}"#
        );
        assert_eq!(
            any_value_to_json(&AnyValue { value: None }).to_string(),
            "{}"
        );
        let empty_array = any(AnyValueKind::ArrayValue(ArrayValue { values: vec![] }));
        assert_eq!(
            any_value_to_json(&empty_array).to_string(),
            r#"{"arrayValue":{}}"#
        );
        assert_eq!(
            any_value_to_json(&any(AnyValueKind::DoubleValue(f64::INFINITY))).to_string(),
            r#"{"doubleValue":"Infinity"}"#
        );
    }

    #[test]
    fn json_round_trips_and_accepts_variants() {
        let mixed = any(AnyValueKind::ArrayValue(ArrayValue {
            values: vec![
                any(AnyValueKind::StringValue("x".into())),
                any(AnyValueKind::IntValue(-7)),
                any(AnyValueKind::DoubleValue(0.5)),
                AnyValue { value: None },
                any(AnyValueKind::KvlistValue(KeyValueList { values: vec![] })),
            ],
        }));
        let json = any_value_to_json(&mixed);
        assert_eq!(any_value_from_json(&json).unwrap(), mixed);
        let loose: Json = serde_json::from_str(r#"{"int_value": 12}"#).unwrap();
        assert_eq!(
            any_value_from_json(&loose).unwrap(),
            any(AnyValueKind::IntValue(12))
        );
        let bad: Json = serde_json::from_str(r#"{"intValue":"x"}"#).unwrap();
        assert!(any_value_from_json(&bad).is_err());
        let two: Json = serde_json::from_str(r#"{"intValue":"1","boolValue":true}"#).unwrap();
        assert!(any_value_from_json(&two).is_err());
    }
}
