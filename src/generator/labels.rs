//! Label names and values as Tempo builds them (reference/metrics-generator.md §1.3–§1.5):
//! attribute values as text, sanitised names, and sorted label sets.

use std::fmt::Write;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

/// A finished label set: sorted by name (byte-wise), no empty values, no repeated names.
pub type Labels = Vec<(String, String)>;

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the label names Prometheus accepts.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    match characters.next() {
        Some(first) if first.is_ascii_alphabetic() || first == '_' => {}
        _ => return false,
    }
    characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

/// Prometheus' `SanitizeLabelName`: every character outside `[a-zA-Z0-9_]` becomes `_`. A
/// leading digit is left as is, as in Tempo.
pub fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '_' {
                character
            } else {
                '_'
            }
        })
        .collect()
}

/// A label value in Go's `FormatFloat(v, 'f', -1, 64)` form: shortest round-trip decimal, never
/// in exponent form. Rust's `Display` gives that for finite values.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{value}")
    }
}

/// An attribute value as label text: arrays as `[a b]` without separators (`[ab]`), key-value
/// lists as `{k:v}`, as Tempo's `StringifyAnyValue`.
pub fn any_value_text(value: &AnyValue) -> String {
    let mut text = String::new();
    write_any_value(value, &mut text);
    text
}

fn write_any_value(value: &AnyValue, out: &mut String) {
    match &value.value {
        // Profiles-only dictionary references never appear in trace attributes.
        None | Some(any_value::Value::StringValueStrindex(_)) => {}
        Some(any_value::Value::StringValue(text)) => out.push_str(text),
        Some(any_value::Value::BoolValue(flag)) => {
            out.push_str(if *flag { "true" } else { "false" })
        }
        Some(any_value::Value::IntValue(number)) => {
            let _ = write!(out, "{number}");
        }
        Some(any_value::Value::DoubleValue(number)) => out.push_str(&format_float(*number)),
        Some(any_value::Value::BytesValue(bytes)) => out.push_str(&hex::encode(bytes)),
        Some(any_value::Value::ArrayValue(array)) => {
            out.push('[');
            for element in &array.values {
                write_any_value(element, out);
            }
            out.push(']');
        }
        Some(any_value::Value::KvlistValue(list)) => {
            out.push('{');
            for pair in &list.values {
                out.push_str(&pair.key);
                out.push(':');
                if let Some(inner) = &pair.value {
                    write_any_value(inner, out);
                }
            }
            out.push('}');
        }
    }
}

/// The value of `key` among `attributes`, if present.
pub fn find_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref())
}

/// A dimension's value: resource attributes first, then span attributes (Tempo's order).
pub fn lookup_dimension(resource: &[KeyValue], span: &[KeyValue], key: &str) -> Option<String> {
    find_attribute(resource, key)
        .or_else(|| find_attribute(span, key))
        .map(any_value_text)
}

/// A string attribute's text, for keys that are names (`service.name`, `peer.service`).
pub fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    find_attribute(attributes, key).map(any_value_text)
}

/// A trace ID as Tempo writes it in exemplars: lowercase hex without leading zeros.
pub fn trace_id_text(trace_id: &[u8]) -> String {
    let full = hex::encode(trace_id);
    let trimmed = full.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Collects labels for one update; `finish` applies Tempo's rules.
#[derive(Default)]
pub struct LabelsBuilder {
    pairs: Vec<(String, String)>,
}

/// Why a label set was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LabelsError {
    /// Cutting a name or value to its length limit split a UTF-8 character (Tempo drops these).
    InvalidUtf8,
}

impl LabelsBuilder {
    /// An empty builder with room for `capacity` labels.
    pub fn with_capacity(capacity: usize) -> LabelsBuilder {
        LabelsBuilder {
            pairs: Vec::with_capacity(capacity),
        }
    }

    /// Adds a label; an empty value is dropped when finished, a repeated name keeps the last.
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((name.into(), value.into()));
    }

    /// Sorts by name, keeps the last of repeated names, drops empty values and cuts names and
    /// values to their byte limits.
    pub fn finish(
        mut self,
        max_name_length: usize,
        max_value_length: usize,
    ) -> Result<Labels, LabelsError> {
        // A stable sort keeps the order of insertion among equal names, so the last one added
        // is the last of its run.
        self.pairs.sort_by(|left, right| left.0.cmp(&right.0));
        let mut labels: Labels = Vec::with_capacity(self.pairs.len());
        for (name, value) in self.pairs {
            match labels.last_mut() {
                Some(last) if last.0 == name => last.1 = value,
                _ => labels.push((name, value)),
            }
        }
        labels.retain(|(_, value)| !value.is_empty());
        for (name, value) in labels.iter_mut() {
            truncate_bytes(name, max_name_length)?;
            truncate_bytes(value, max_value_length)?;
        }
        Ok(labels)
    }
}

fn truncate_bytes(text: &mut String, limit: usize) -> Result<(), LabelsError> {
    if text.len() <= limit {
        return Ok(());
    }
    // Tempo cuts by bytes; a cut inside a character leaves invalid UTF-8, which it refuses.
    if !text.is_char_boundary(limit) {
        return Err(LabelsError::InvalidUtf8);
    }
    text.truncate(limit);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn value(inner: any_value::Value) -> AnyValue {
        AnyValue { value: Some(inner) }
    }

    #[test]
    fn names_are_sanitised_like_prometheus() {
        assert_eq!(sanitize_label_name("http.route"), "http_route");
        assert_eq!(sanitize_label_name("k8s.pod.name"), "k8s_pod_name");
        assert_eq!(sanitize_label_name("1st-try"), "1st_try");
        assert_eq!(sanitize_label_name("é"), "_");
        assert!(is_valid_label_name("traceID"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a.b"));
    }

    #[test]
    fn values_are_stringified_like_tempo() {
        assert_eq!(format_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(1e-7), "0.0000001");
        assert_eq!(format_float(2.0), "2");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        let array = value(any_value::Value::ArrayValue(ArrayValue {
            values: vec![
                value(any_value::Value::StringValue("a".into())),
                value(any_value::Value::IntValue(1)),
                value(any_value::Value::BoolValue(true)),
            ],
        }));
        assert_eq!(any_value_text(&array), "[a1true]");
        let list = value(any_value::Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: Some(value(any_value::Value::DoubleValue(1.5))),
                ..Default::default()
            }],
        }));
        assert_eq!(any_value_text(&list), "{k:1.5}");
    }

    #[test]
    fn trace_ids_lose_leading_zeros() {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&[0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36]);
        assert_eq!(trace_id_text(&id), "a3ce929d0e0e4736");
    }

    #[test]
    fn label_sets_are_sorted_deduplicated_and_cut() {
        let mut builder = LabelsBuilder::default();
        builder.add("service", "a");
        builder.add("__name__x", "1");
        builder.add("Zed", "z");
        builder.add("empty", "");
        builder.add("service", "b");
        let labels = builder.finish(1024, 3).unwrap();
        assert_eq!(
            labels,
            vec![
                ("Zed".to_string(), "z".to_string()),
                ("__name__x".to_string(), "1".to_string()),
                ("service".to_string(), "b".to_string()),
            ]
        );
        let mut long = LabelsBuilder::default();
        long.add("a", "abcdef");
        assert_eq!(long.finish(1024, 3).unwrap()[0].1, "abc");
        let mut split = LabelsBuilder::default();
        split.add("a", "aé");
        assert_eq!(split.finish(1024, 2), Err(LabelsError::InvalidUtf8));
    }
}
