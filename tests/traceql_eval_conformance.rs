//! The engine cases of Tempo's tests (`../shared/conformance/traceql/eval_cases.json`) run
//! through vivace's evaluator over in-memory spans, resolving attributes like Tempo's test
//! double. Prints the pass count; everything must pass except `KNOWN_DEVIATIONS`.

use serde_json::{json, Value};
use vivace::traceql::eval::{Evaluator, NestedSet, SpanView, Spanset, StructuralMode};
use vivace::traceql::rewrite::apply_default_rewrites;
use vivace::traceql::*;

/// `(query, why)`: cases where vivace deliberately differs from the data.
const KNOWN_DEVIATIONS: &[(&str, &str)] = &[];

fn static_from_json(value: &Value) -> Static {
    let v = &value["value"];
    let float = |x: &Value| match x {
        Value::String(s) if s == "NaN" => f64::NAN,
        Value::String(s) if s == "+Inf" => f64::INFINITY,
        Value::String(s) if s == "-Inf" => f64::NEG_INFINITY,
        other => other.as_f64().unwrap_or(f64::NAN),
    };
    let list = |x: &Value| x.as_array().cloned().unwrap_or_default();
    match value["type"].as_str().unwrap_or_default() {
        "int" => Static::Int(v.as_i64().unwrap_or_default()),
        "float" => Static::Float(float(v)),
        "string" => Static::String(v.as_str().unwrap_or_default().to_string()),
        "bool" => Static::Bool(v.as_bool().unwrap_or_default()),
        "duration" => Static::Duration(v.as_i64().unwrap_or_default()),
        "status" => Static::Status(Status::from_keyword(v.as_str().unwrap()).expect("status")),
        "kind" => Static::Kind(Kind::from_keyword(v.as_str().unwrap()).expect("kind")),
        "nil" => Static::Nil,
        "int[]" => Static::IntArray(list(v).iter().filter_map(Value::as_i64).collect()),
        "float[]" => Static::FloatArray(list(v).iter().map(float).collect()),
        "string[]" => Static::StringArray(
            list(v)
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
        ),
        "bool[]" => Static::BoolArray(list(v).iter().filter_map(Value::as_bool).collect()),
        other => panic!("unknown value type {other}"),
    }
}

/// A span of the test double: attributes keyed by the data's attribute encoding.
struct MockSpan {
    json: Value,
    attributes: Vec<(Value, Static)>,
    nested: NestedSet,
}

fn attr_key(attr: &Attribute) -> Value {
    json!({
        "scope": attr.scope.as_str(),
        "parent": attr.parent,
        "name": attr.name,
        "intrinsic": attr.intrinsic.map(|i| i.canonical_name()),
    })
}

impl MockSpan {
    fn lookup(&self, key: &Value) -> Option<Static> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

impl SpanView for MockSpan {
    fn value(&self, attr: &Attribute, _event: usize, _link: usize) -> Static {
        let key = attr_key(attr);
        if let Some(value) = self.lookup(&key) {
            return value;
        }
        if attr.scope == AttributeScope::None && attr.intrinsic.is_none() {
            for scope in ["span", "resource"] {
                let mut scoped = key.clone();
                scoped["scope"] = json!(scope);
                if let Some(value) = self.lookup(&scoped) {
                    return value;
                }
            }
        }
        Static::Nil
    }

    fn nested_set(&self) -> NestedSet {
        self.nested
    }
}

fn mock_span(json: &Value) -> MockSpan {
    let nested = &json["nested_set"];
    MockSpan {
        json: json.clone(),
        attributes: json["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| (a["attr"].clone(), static_from_json(&a["value"])))
            .collect(),
        nested: NestedSet {
            parent: nested["parent"].as_i64().unwrap_or_default(),
            left: nested["left"].as_i64().unwrap_or_default(),
            right: nested["right"].as_i64().unwrap_or_default(),
        },
    }
}

/// A spanset as a comparable value: sorted span contents, sorted metadata.
fn canonical_expected(set: &Value) -> String {
    let mut spans: Vec<String> = set["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s.to_string())
        .collect();
    spans.sort();
    let mut attrs: Vec<String> = set["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}={:?}", a["name"], static_from_json(&a["value"])))
        .collect();
    attrs.sort();
    format!("{spans:?} {attrs:?}")
}

fn canonical_actual(set: &Spanset, spans: &[MockSpan]) -> String {
    let mut contents: Vec<String> = set
        .spans
        .iter()
        .map(|&i| spans[i].json.to_string())
        .collect();
    contents.sort();
    let mut attrs: Vec<String> = set
        .attributes
        .iter()
        .map(|(name, value)| format!("{}={value:?}", json!(name)))
        .collect();
    attrs.sort();
    format!("{contents:?} {attrs:?}")
}

fn run_case(case: &Value) -> Result<(), String> {
    let query = case["query"].as_str().unwrap_or_default();
    let mut parsed = parse(query).map_err(|e| format!("parse: {e}"))?;
    apply_default_rewrites(&mut parsed);
    let RootExpr::Pipeline(pipeline) = &parsed.root else {
        return Err("not a spanset pipeline".into());
    };
    let mut spans = Vec::new();
    let mut input = Vec::new();
    for set in case["input"].as_array().into_iter().flatten() {
        if set.is_null() {
            continue;
        }
        let mut indices = Vec::new();
        for span in set["spans"].as_array().into_iter().flatten() {
            indices.push(spans.len());
            spans.push(mock_span(span));
        }
        input.push(Spanset {
            spans: indices,
            ..Spanset::default()
        });
    }
    let mode = if case["structural_mock_semantics"].as_bool() == Some(true) {
        StructuralMode::Mock
    } else {
        StructuralMode::Real
    };
    let result = Evaluator::new(mode).eval_pipeline(pipeline, input, &spans);
    if case["expect_error"].as_bool() == Some(true) {
        return match result {
            Err(_) => Ok(()),
            Ok(out) => Err(format!("expected an error, got {} spansets", out.len())),
        };
    }
    let output = result.map_err(|e| format!("evaluation error: {e}"))?;
    let mut expected: Vec<String> = case["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_null())
        .map(canonical_expected)
        .collect();
    let mut actual: Vec<String> = output.iter().map(|s| canonical_actual(s, &spans)).collect();
    expected.sort();
    actual.sort();
    if expected != actual {
        return Err(format!("expected {expected:#?}\n got {actual:#?}"));
    }
    Ok(())
}

/// Cases in `eval_cases.json`.
const EXPECTED_CASES: usize = 144;

#[test]
fn tempo_suite_eval_cases_conform() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/traceql/eval_cases.json"
    );
    let text = std::fs::read_to_string(path).expect("eval_cases.json beside the worktree");
    let data: Value = serde_json::from_str(&text).expect("JSON");
    let cases = data["cases"].as_array().expect("cases");
    // A renamed or emptied list must fail, not pass on zero cases.
    assert_eq!(cases.len(), EXPECTED_CASES, "cases in eval_cases.json");
    let (mut passed, mut failures, mut deviations) = (0, Vec::new(), Vec::new());
    for case in cases {
        let query = case["query"].as_str().unwrap_or_default();
        match run_case(case) {
            Ok(()) => passed += 1,
            Err(why) => {
                if let Some((_, reason)) = KNOWN_DEVIATIONS.iter().find(|(q, _)| *q == query) {
                    deviations.push(format!("{query}: {reason}"));
                } else {
                    failures.push(format!("{} {query}: {why}", case["source"]));
                }
            }
        }
    }
    eprintln!("eval_cases.json: {passed}/{} passed", cases.len());
    assert_eq!(
        passed + deviations.len() + failures.len(),
        EXPECTED_CASES,
        "every case was run"
    );
    for deviation in &deviations {
        eprintln!("known deviation: {deviation}");
    }
    for failure in &failures {
        eprintln!("FAIL {failure}");
    }
    assert!(failures.is_empty(), "{} eval failures", failures.len());
}
