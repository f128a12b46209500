//! OTLP names as Prometheus names: metric names with their unit and type suffixes, label
//! names, attribute values as label text.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

use crate::generator::labels::{find_attribute, format_float};

/// What a metric becomes, which decides its name's suffixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic sum: a counter, named with `_total`.
    Counter,
    /// A gauge or a non-monotonic sum.
    Gauge,
    /// A histogram, classic or exponential.
    Histogram,
    /// A summary.
    Summary,
    /// `target_info` and `otel_scope_info`: metadata as labels, exposed as a gauge.
    Info,
}

impl Kind {
    /// The `# TYPE` word of the kind in Prometheus text.
    pub(super) fn type_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge | Kind::Info => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// The word for a UCUM unit, per the specification's table; unknown units are kept.
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other => other,
    }
}

/// The word for the unit after `/` (`m/s` → `per_second`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// Splits on everything but ASCII letters, digits and `:`, dropping empty words.
pub(super) fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|word| !word.is_empty())
        .collect()
}

/// The Prometheus name of an OTLP metric: sanitised, the unit appended as words unless already
/// there, `_total` for counters, `_ratio` for gauges of unit `1`.
pub fn metric_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> = words(name).into_iter().map(str::to_string).collect();
    // Annotations in braces carry no unit.
    let mut unit = unit.to_string();
    while let (Some(open), Some(close)) = (unit.find('{'), unit.find('}')) {
        if close < open {
            break;
        }
        unit.replace_range(open..=close, "");
    }
    let unit = unit.trim();
    let (main, per) = match unit.split_once('/') {
        Some((main, per)) => (main.trim(), per.trim()),
        None => (unit, ""),
    };
    let counter = kind == Kind::Counter;
    if counter {
        tokens.retain(|token| token != "total");
    }
    if main == "1" {
        if kind == Kind::Gauge && !tokens.iter().any(|token| token == "ratio") {
            tokens.push("ratio".into());
        }
    } else if !main.is_empty() {
        for word in words(unit_word(main)) {
            if !tokens.iter().any(|token| token == word) {
                tokens.push(word.to_string());
            }
        }
    }
    if !per.is_empty() {
        let per_words = words(per_unit_word(per));
        if !per_words.is_empty() && !tokens.iter().any(|token| token == "per") {
            tokens.push("per".into());
            tokens.extend(per_words.into_iter().map(str::to_string));
        }
    }
    if counter {
        tokens.push("total".into());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A Prometheus label name for an attribute key.
pub fn label_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    out
}

/// An attribute value as label text: strings as they are, other values as JSON.
fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => format_float(*number),
        Some(any_value::Value::BytesValue(bytes)) => hex::encode(bytes),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array
                .values
                .iter()
                .map(|item| serde_json::to_string(&value_text(Some(item))).unwrap_or_default())
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let items: Vec<String> = list
                .values
                .iter()
                .map(|item| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(&item.key).unwrap_or_default(),
                        serde_json::to_string(&value_text(item.value.as_ref())).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        // A string-table reference (profiles only) carries no text of its own.
        Some(_) => String::new(),
    }
}

/// Attributes as sanitised labels; values of keys that sanitise to the same name are joined
/// with `;` in the order of their original keys. Empty values are dropped.
pub(super) fn attribute_labels(attributes: &[KeyValue], skip: &[&str]) -> BTreeMap<String, String> {
    let mut by_key: Vec<(&str, String)> = attributes
        .iter()
        .filter(|attribute| !skip.contains(&attribute.key.as_str()))
        .map(|attribute| (attribute.key.as_str(), value_text(attribute.value.as_ref())))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    by_key.sort_by(|left, right| left.0.cmp(right.0));
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in by_key {
        out.entry(label_name(key))
            .and_modify(|existing| {
                existing.push(';');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// The text of a string attribute (`service.name` and the like); other types have none.
pub(super) fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match find_attribute(attributes, key)?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text.as_str()),
        _ => None,
    }
}
