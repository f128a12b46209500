//! Filter policies: which spans a processor looks at (Tempo's `pkg/spanfilter` rules,
//! reference/metrics-generator.md §2.6).

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use regex::Regex;

use super::config::{FilterPolicy, MatchType, PolicyMatch, PolicyTarget, PolicyValue};
use super::labels::{any_value_text, find_attribute};

#[derive(Debug)]
enum Expected {
    Strict(PolicyValue),
    Regex(Regex),
}

#[derive(Debug)]
struct Condition {
    target: PolicyTarget,
    expected: Expected,
}

#[derive(Debug)]
struct Block {
    conditions: Vec<Condition>,
}

/// Compiled filter policies; an empty filter keeps every span.
#[derive(Debug, Default)]
pub struct SpanFilter {
    include: Vec<Block>,
    include_any: Vec<Block>,
    exclude: Vec<Block>,
}

/// `SPAN_KIND_*` name of an OTLP kind number.
pub fn span_kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

/// `STATUS_CODE_*` name of a span's status.
pub fn status_code_name(span: &Span) -> &'static str {
    match span.status.as_ref().map(|status| status.code) {
        Some(1) => "STATUS_CODE_OK",
        Some(2) => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

fn compile_block(block: &PolicyMatch) -> Result<Block, String> {
    let mut conditions = Vec::with_capacity(block.attributes.len());
    for attribute in &block.attributes {
        let target = attribute.target()?;
        let expected = match block.match_type {
            MatchType::Strict => Expected::Strict(attribute.value.clone()),
            MatchType::Regex => Expected::Regex(attribute.regex()?),
        };
        conditions.push(Condition { target, expected });
    }
    Ok(Block { conditions })
}

fn strict_matches(expected: &PolicyValue, actual: &AnyValue) -> bool {
    match (expected, &actual.value) {
        (PolicyValue::String(want), Some(any_value::Value::StringValue(have))) => want == have,
        (PolicyValue::Int(want), Some(any_value::Value::IntValue(have))) => want == have,
        (PolicyValue::Double(want), Some(any_value::Value::DoubleValue(have))) => want == have,
        (PolicyValue::Bool(want), Some(any_value::Value::BoolValue(have))) => want == have,
        // YAML reads `2` as an integer; a double attribute with that value still matches.
        (PolicyValue::Int(want), Some(any_value::Value::DoubleValue(have))) => {
            (*want as f64) == *have
        }
        _ => false,
    }
}

impl Condition {
    fn matches(&self, resource: &[KeyValue], span: &Span) -> bool {
        let intrinsic = |text: &str| match &self.expected {
            Expected::Strict(PolicyValue::String(want)) => want == text,
            Expected::Strict(_) => false,
            Expected::Regex(regex) => regex.is_match(text),
        };
        let attribute = |value: Option<&AnyValue>| match (value, &self.expected) {
            (None, _) => false,
            (Some(value), Expected::Strict(want)) => strict_matches(want, value),
            (Some(value), Expected::Regex(regex)) => regex.is_match(&any_value_text(value)),
        };
        match &self.target {
            PolicyTarget::Name => intrinsic(&span.name),
            PolicyTarget::Status => intrinsic(status_code_name(span)),
            PolicyTarget::Kind => intrinsic(span_kind_name(span.kind)),
            PolicyTarget::Span(key) => attribute(find_attribute(&span.attributes, key)),
            PolicyTarget::Resource(key) => attribute(find_attribute(resource, key)),
        }
    }
}

impl Block {
    fn matches(&self, resource: &[KeyValue], span: &Span) -> bool {
        self.conditions
            .iter()
            .all(|condition| condition.matches(resource, span))
    }
}

impl SpanFilter {
    /// Compiles the policies, refusing unknown keys and invalid regular expressions.
    pub fn new(policies: &[FilterPolicy]) -> Result<SpanFilter, String> {
        let mut filter = SpanFilter::default();
        for policy in policies {
            if let Some(block) = &policy.include {
                filter.include.push(compile_block(block)?);
            }
            if let Some(block) = &policy.include_any {
                filter.include_any.push(compile_block(block)?);
            }
            if let Some(block) = &policy.exclude {
                filter.exclude.push(compile_block(block)?);
            }
        }
        Ok(filter)
    }

    /// Whether the span is kept, in Tempo's order: any exclude drops it, any include_any
    /// keeps it, otherwise every include must match.
    pub fn keep(&self, resource: &[KeyValue], span: &Span) -> bool {
        if self
            .exclude
            .iter()
            .any(|block| block.matches(resource, span))
        {
            return false;
        }
        if self
            .include_any
            .iter()
            .any(|block| block.matches(resource, span))
        {
            return true;
        }
        if !self.include.is_empty() {
            return self
                .include
                .iter()
                .all(|block| block.matches(resource, span));
        }
        self.include_any.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{int_attribute, string_attribute};

    fn policies(yaml: &str) -> SpanFilter {
        let policies: Vec<FilterPolicy> = serde_yaml::from_str(yaml).unwrap();
        SpanFilter::new(&policies).unwrap()
    }

    fn span(name: &str, kind: i32, attributes: Vec<KeyValue>) -> Span {
        Span {
            name: name.into(),
            kind,
            attributes,
            ..Default::default()
        }
    }

    #[test]
    fn policies_follow_tempo_order() {
        let resource = vec![string_attribute("service.name", "auth")];
        let server = span("GET /", 2, vec![string_attribute("http.route", "/health")]);
        let client = span("call", 3, vec![int_attribute("http.status_code", 200)]);

        assert!(SpanFilter::default().keep(&resource, &client));

        let only_servers = policies(
            "- include: {match_type: strict, attributes: [{key: kind, value: SPAN_KIND_SERVER}]}",
        );
        assert!(only_servers.keep(&resource, &server));
        assert!(!only_servers.keep(&resource, &client));

        let no_health = policies(
            "- exclude: {match_type: regex, attributes: [{key: span.http.route, value: \"^/heal\"}]}",
        );
        assert!(!no_health.keep(&resource, &server));
        assert!(no_health.keep(&resource, &client));

        let typed = policies(
            "- include: {match_type: strict, attributes: [{key: span.http.status_code, value: 200}, {key: resource.service.name, value: auth}]}",
        );
        assert!(typed.keep(&resource, &client));
        assert!(!typed.keep(&resource, &server));

        // include_any keeps a span the include blocks would drop; exclude still wins.
        let mixed = policies(
            "- include: {match_type: strict, attributes: [{key: kind, value: SPAN_KIND_SERVER}]}\n\
             - include_any: {match_type: strict, attributes: [{key: name, value: call}]}\n\
             - exclude: {match_type: strict, attributes: [{key: status, value: STATUS_CODE_ERROR}]}",
        );
        assert!(mixed.keep(&resource, &client));
        assert!(mixed.keep(&resource, &server));
        let any_only = policies(
            "- include_any: {match_type: regex, attributes: [{key: name, value: \"^GET\"}]}",
        );
        assert!(any_only.keep(&resource, &server));
        assert!(!any_only.keep(&resource, &client));
    }

    #[test]
    fn bad_policies_are_refused() {
        let unknown: Vec<FilterPolicy> =
            serde_yaml::from_str("- include: {attributes: [{key: event.x, value: a}]}").unwrap();
        assert!(SpanFilter::new(&unknown).unwrap_err().contains("event.x"));
        let regex: Vec<FilterPolicy> = serde_yaml::from_str(
            "- include: {match_type: regex, attributes: [{key: name, value: \"(\"}]}",
        )
        .unwrap();
        assert!(SpanFilter::new(&regex)
            .unwrap_err()
            .contains("invalid regex"));
    }
}
