//! Pieces shared by the Jaeger and Zipkin (v1 and v2) translators: an attribute map with the Collector's
//! `pcommon.Map` semantics (a put on an existing key replaces its value in place) and ID
//! padding.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};

/// Attributes in insertion order with unique keys, like the Collector's `pcommon.Map`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Attributes(Vec<KeyValue>);

impl Attributes {
    /// Sets `key`, replacing an existing value in place.
    pub fn put(&mut self, key: &str, value: Value) {
        let value = Some(AnyValue { value: Some(value) });
        match self.0.iter_mut().find(|pair| pair.key == key) {
            Some(existing) => existing.value = value,
            None => self.0.push(KeyValue {
                key: key.to_string(),
                value,
                ..Default::default()
            }),
        }
    }

    /// Sets a string value.
    pub fn put_str(&mut self, key: &str, value: &str) {
        self.put(key, Value::StringValue(value.to_string()));
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|pair| pair.key == key)
            .and_then(|pair| pair.value.as_ref())
            .and_then(|value| value.value.as_ref())
    }

    /// Whether `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|pair| pair.key == key)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.0.iter().position(|pair| pair.key == key)?;
        self.0.remove(index).value.and_then(|value| value.value)
    }

    /// The attributes as OTLP key/values.
    pub fn into_vec(self) -> Vec<KeyValue> {
        self.0
    }
}

/// The Collector's `pcommon.Value.Str()`: a value rendered as a string (strings as they are).
pub fn value_as_string(value: &Value) -> String {
    match value {
        Value::StringValue(text) => text.clone(),
        Value::BoolValue(flag) => flag.to_string(),
        Value::IntValue(number) => number.to_string(),
        Value::DoubleValue(number) => number.to_string(),
        Value::BytesValue(bytes) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(bytes)
        }
        _ => String::new(),
    }
}

/// A 128-bit trace ID from its two halves; a 64-bit ID gets zero high bytes.
pub fn trace_id_bytes(high: u64, low: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&high.to_be_bytes());
    bytes.extend_from_slice(&low.to_be_bytes());
    bytes
}

/// A span ID; zero means "none" and becomes empty bytes, as in OTLP.
pub fn span_id_bytes(id: u64) -> Vec<u8> {
    if id == 0 {
        Vec::new()
    } else {
        id.to_be_bytes().to_vec()
    }
}

/// The value of `span`'s attribute `key`: how the translators' tests read their output.
#[cfg(test)]
pub(crate) fn span_attribute<'a>(
    span: &'a opentelemetry_proto::tonic::trace::v1::Span,
    key: &str,
) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|pair| pair.key == key)
        .and_then(|pair| pair.value.as_ref())
        .and_then(|value| value.value.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_replaces_in_place_and_remove_returns() {
        let mut attributes = Attributes::default();
        attributes.put_str("a", "1");
        attributes.put_str("b", "2");
        attributes.put_str("a", "3");
        assert_eq!(attributes.get("a"), Some(&Value::StringValue("3".into())));
        assert_eq!(attributes.remove("a"), Some(Value::StringValue("3".into())));
        assert!(!attributes.contains("a"));
        assert_eq!(attributes.into_vec().len(), 1);
    }

    #[test]
    fn ids_pad_and_zero_is_empty() {
        assert_eq!(
            hex::encode(trace_id_bytes(0, 0xabc)),
            "00000000000000000000000000000abc"
        );
        assert!(span_id_bytes(0).is_empty());
        assert_eq!(hex::encode(span_id_bytes(1)), "0000000000000001");
    }
}
