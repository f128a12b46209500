//! TraceQL conformance against the data lifted from Tempo's tests
//! (`../shared/conformance/traceql/`, see its README). Library level: no server.
//!
//! Every file is read; per-file pass counts are printed; everything must pass except the
//! cases listed in `KNOWN_DEVIATIONS`, each with the reason vivace differs on purpose.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use vivace::traceql::lexer::{tokenize, TokenKind};
use vivace::traceql::rewrite::{apply_default_rewrites, or_to_in};
use vivace::traceql::*;

/// Cases where vivace deliberately differs from the data: `(file, query, why)`.
const KNOWN_DEVIATIONS: &[(&str, &str, &str)] = &[];

fn data_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/traceql"
    ));
    assert!(
        dir.is_dir(),
        "conformance data not found at {}; it lives in the shared folder beside the worktree",
        dir.display()
    );
    dir
}

fn read_json(name: &str) -> Value {
    let path = data_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{name} is not JSON: {error}"))
}

/// How many cases each file must yield, so that a renamed key in the data (read as an empty
/// list) fails instead of passing on zero cases.
const EXPECTED_CASES: &[(&str, usize)] = &[
    ("binop_cases.json", 20),
    ("eval_cases.json (parse only)", 144),
    ("lexer_cases.json", 124),
    ("parse_cases.json", 660),
    ("static_value_cases.json", 65),
    ("test_examples.json[parse_fails]", 87),
    ("test_examples.json[unsupported]", 22),
    ("test_examples.json[valid]", 284),
    ("test_examples.json[validate_fails]", 70),
];

/// Collects results per file and the failures that are not known deviations.
#[derive(Default)]
struct Report {
    counts: BTreeMap<String, (usize, usize)>,
    failures: Vec<String>,
    deviations_seen: Vec<String>,
}

impl Report {
    fn record(&mut self, file: &str, query: &str, outcome: Result<(), String>) {
        let entry = self.counts.entry(file.to_string()).or_default();
        entry.1 += 1;
        match outcome {
            Ok(()) => entry.0 += 1,
            Err(why) => {
                let known = KNOWN_DEVIATIONS
                    .iter()
                    .any(|(f, q, _)| *f == file && *q == query);
                if known {
                    self.deviations_seen.push(format!("{file}: {query}"));
                } else {
                    self.failures.push(format!("{file}: {query:?}: {why}"));
                }
            }
        }
    }

    fn finish(self) {
        for (file, (passed, total)) in &self.counts {
            eprintln!("{file}: {passed}/{total} passed");
        }
        let compared: Vec<(&str, usize)> = self
            .counts
            .iter()
            .map(|(file, (_, total))| (file.as_str(), *total))
            .collect();
        assert_eq!(
            compared, EXPECTED_CASES,
            "cases compared per file differ from the data's (a renamed key reads as no cases)"
        );
        for deviation in &self.deviations_seen {
            eprintln!("known deviation: {deviation}");
        }
        if !self.failures.is_empty() {
            for failure in &self.failures {
                eprintln!("FAIL {failure}");
            }
            panic!("{} conformance failures", self.failures.len());
        }
    }
}

// ---- the data's JSON encoding of values and trees ----------------------------------------

fn static_json(value: &Static) -> Value {
    let float = |v: f64| {
        if v.is_nan() {
            json!("NaN")
        } else if v.is_infinite() {
            json!(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            json!(v)
        }
    };
    let (kind, value) = match value {
        Static::Nil => ("nil", Value::Null),
        Static::Int(v) => ("int", json!(v)),
        Static::Float(v) => ("float", float(*v)),
        Static::String(v) => ("string", json!(v)),
        Static::Bool(v) => ("bool", json!(v)),
        Static::Duration(v) => ("duration", json!(v)),
        Static::Status(v) => ("status", json!(v.as_str())),
        Static::Kind(v) => ("kind", json!(v.as_str())),
        Static::IntArray(v) => ("int[]", json!(v)),
        Static::FloatArray(v) => (
            "float[]",
            Value::Array(v.iter().map(|x| float(*x)).collect()),
        ),
        Static::StringArray(v) => ("string[]", json!(v)),
        Static::BoolArray(v) => ("bool[]", json!(v)),
    };
    json!({"type": kind, "value": value})
}

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
        "status" => {
            Static::Status(Status::from_keyword(v.as_str().unwrap_or_default()).expect("status"))
        }
        "kind" => Static::Kind(Kind::from_keyword(v.as_str().unwrap_or_default()).expect("kind")),
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

fn attr_json(attribute: &Attribute) -> Value {
    json!({
        "scope": attribute.scope.as_str(),
        "parent": attribute.parent,
        "name": attribute.name,
        "intrinsic": attribute.intrinsic.map(|i| i.canonical_name()),
    })
}

fn field_json(expr: &FieldExpr) -> Value {
    match expr {
        FieldExpr::Static(value) => json!({"static": static_json(value)}),
        FieldExpr::Attribute(attribute) => json!({"attr": attr_json(attribute)}),
        FieldExpr::Binary { op, lhs, rhs } => json!({
            "kind": "binary", "op": op.as_str(), "lhs": field_json(lhs), "rhs": field_json(rhs)
        }),
        FieldExpr::Unary { op, expr } => {
            let op = match op {
                UnaryOp::Neg => "-",
                UnaryOp::Not => "!",
                UnaryOp::Exists => "exists",
                UnaryOp::NotExists => "not_exists",
            };
            json!({"kind": "unary", "op": op, "expr": field_json(expr)})
        }
    }
}

fn aggregate_json(aggregate: &Aggregate) -> Value {
    json!({
        "kind": "aggregate",
        "fn": aggregate.func.as_str(),
        "expr": aggregate.expr.as_ref().map(field_json),
    })
}

fn scalar_json(expr: &ScalarExpr) -> Value {
    match expr {
        ScalarExpr::Static(value) => json!({"static": static_json(value)}),
        ScalarExpr::Aggregate(aggregate) => aggregate_json(aggregate),
        ScalarExpr::Op { op, lhs, rhs } => json!({
            "kind": "scalar_op", "op": op.as_str(), "lhs": scalar_json(lhs), "rhs": scalar_json(rhs)
        }),
        ScalarExpr::Pipeline(pipeline) => pipeline_json(pipeline),
    }
}

fn spanset_json(expr: &SpansetExpr) -> Value {
    match expr {
        SpansetExpr::Filter(field) => json!({"kind": "filter", "expr": field_json(field)}),
        SpansetExpr::Op { op, lhs, rhs } => json!({
            "kind": "spanset_op", "op": op.as_str(), "lhs": spanset_json(lhs), "rhs": spanset_json(rhs)
        }),
        SpansetExpr::Pipeline(pipeline) => pipeline_json(pipeline),
    }
}

fn pipeline_json(pipeline: &Pipeline) -> Value {
    let elements: Vec<Value> = pipeline
        .stages
        .iter()
        .map(|stage| match stage {
            Stage::Spanset(expr) => spanset_json(expr),
            Stage::ScalarFilter(filter) => json!({
                "kind": "scalar_filter", "op": filter.op.as_str(),
                "lhs": scalar_json(&filter.lhs), "rhs": scalar_json(&filter.rhs)
            }),
            Stage::GroupBy(expr) => json!({"kind": "by", "expr": field_json(expr)}),
            Stage::Coalesce => json!({"kind": "coalesce"}),
            Stage::Select(attributes) => json!({
                "kind": "select",
                "attrs": attributes.iter().map(|a| json!({"attr": attr_json(a)})).collect::<Vec<_>>()
            }),
            Stage::Aggregate(aggregate) => aggregate_json(aggregate),
        })
        .collect();
    json!({"kind": "pipeline", "elements": elements})
}

fn metrics_fn_json(function: &MetricsFunction) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("kind".into(), json!("metrics_fn"));
    object.insert("fn".into(), json!(function.aggregate.name()));
    match &function.aggregate {
        MetricsAggregate::Rate | MetricsAggregate::CountOverTime => {}
        MetricsAggregate::MinOverTime(a)
        | MetricsAggregate::MaxOverTime(a)
        | MetricsAggregate::AvgOverTime(a)
        | MetricsAggregate::SumOverTime(a)
        | MetricsAggregate::HistogramOverTime(a) => {
            object.insert("attr".into(), json!({"attr": attr_json(a)}));
        }
        MetricsAggregate::QuantileOverTime(a, quantiles) => {
            object.insert("attr".into(), json!({"attr": attr_json(a)}));
            object.insert("quantiles".into(), json!(quantiles));
        }
        MetricsAggregate::Compare {
            filter,
            top_n,
            start,
            end,
        } => {
            object.insert(
                "filter".into(),
                json!({"kind": "filter", "expr": field_json(filter)}),
            );
            object.insert("topN".into(), json!(top_n));
            object.insert("start".into(), json!(start));
            object.insert("end".into(), json!(end));
        }
    }
    object.insert(
        "by".into(),
        Value::Array(
            function
                .by
                .iter()
                .map(|a| json!({"attr": attr_json(a)}))
                .collect(),
        ),
    );
    Value::Object(object)
}

fn second_stage_json(ops: &[SecondStageOp]) -> Value {
    Value::Array(
        ops.iter()
            .map(|op| match op {
                SecondStageOp::TopK(k) => json!({"kind": "topk", "k": k}),
                SecondStageOp::BottomK(k) => json!({"kind": "bottomk", "k": k}),
                SecondStageOp::Filter { op, value } => {
                    json!({"kind": "metrics_filter", "op": op.as_str(), "value": value})
                }
                SecondStageOp::Scalar {
                    op,
                    value,
                    scalar_on_left,
                } => json!({
                    "kind": "scalar_op", "op": op.as_str(), "value": value,
                    "scalar_on_left": scalar_on_left
                }),
            })
            .collect(),
    )
}

fn metrics_json(metrics: &MetricsExpr) -> Value {
    let (mut object, second_stage) = match metrics {
        MetricsExpr::Query {
            pipeline,
            function,
            second_stage,
        } => (
            json!({"kind": "metrics_query", "pipeline": pipeline_json(pipeline),
                   "metrics": metrics_fn_json(function)}),
            second_stage,
        ),
        MetricsExpr::Math {
            op,
            lhs,
            rhs,
            second_stage,
        } => (
            json!({"kind": "metrics_math", "op": op.as_str(),
                   "lhs": metrics_json(lhs), "rhs": metrics_json(rhs)}),
            second_stage,
        ),
    };
    if !second_stage.is_empty() {
        object["second_stage"] = second_stage_json(second_stage);
    }
    object
}

fn query_json(query: &Query) -> Value {
    let mut object = match &query.root {
        RootExpr::Pipeline(pipeline) => {
            json!({"kind": "query", "pipeline": pipeline_json(pipeline)})
        }
        RootExpr::Metrics(metrics) => metrics_json(metrics),
    };
    if !query.hints.is_empty() {
        object["hints"] = Value::Array(
            query
                .hints
                .iter()
                .map(|h| json!({"name": h.name, "value": {"static": static_json(&h.value)}}))
                .collect(),
        );
    }
    object
}

/// JSON equality with numbers compared by value (`10` and `10.0` are the same number).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// `parse(q).to_string()` must parse back to the same tree.
fn round_trips(query: &Query) -> Result<(), String> {
    let text = query.to_string();
    let reparsed =
        parse(&text).map_err(|e| format!("canonical {text:?} does not re-parse: {e}"))?;
    if reparsed != *query {
        return Err(format!("canonical {text:?} re-parses to a different tree"));
    }
    Ok(())
}

// ---- the files ---------------------------------------------------------------------------

fn check_lexer(report: &mut Report) {
    let data = read_json("lexer_cases.json");
    let file = "lexer_cases.json";
    for case in data["token_sequences"].as_array().into_iter().flatten() {
        let input = case["input"].as_str().unwrap_or_default();
        let expected: Vec<String> = case["tokens"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        let outcome = match tokenize(input) {
            Ok(tokens) => {
                let names: Vec<String> = tokens
                    .iter()
                    .filter(|t| t.kind != TokenKind::Eof)
                    .map(|t| t.kind.grammar_name())
                    .collect();
                if names == expected {
                    Ok(())
                } else {
                    Err(format!("tokens {names:?}, expected {expected:?}"))
                }
            }
            Err(error) => Err(error.to_string()),
        };
        report.record(file, input, outcome);
    }
    for case in data["durations"].as_array().into_iter().flatten() {
        let input = case["input"].as_str().unwrap_or_default();
        let expected = case["nanos"].as_i64();
        let outcome = match tokenize(input).map(|t| t.first().map(|t| t.kind.clone())) {
            Ok(Some(TokenKind::Duration(nanos))) if Some(nanos) == expected => Ok(()),
            other => Err(format!("got {other:?}, expected {expected:?}ns")),
        };
        report.record(file, input, outcome);
    }
}

fn check_parse_case(case: &Value) -> Result<(), String> {
    let query = case["query"].as_str().unwrap_or_default();
    let expect = &case["expect"];
    let ok = expect["ok"].as_bool().unwrap_or(false);
    if let Some(identifier) = expect.get("identifier") {
        let parsed = parse_identifier(query).map_err(|e| e.to_string())?;
        let got = attr_json(&parsed);
        return if json_eq(&got, identifier) {
            Ok(())
        } else {
            Err(format!("identifier {got}, expected {identifier}"))
        };
    }
    if expect.get("identifier_error").is_some() {
        return match parse_identifier(query) {
            Ok(attribute) => Err(format!("parsed as identifier {attribute}")),
            Err(_) => Ok(()),
        };
    }
    if !ok {
        return match parse(query) {
            Ok(parsed) => Err(format!("parsed, expected a parse error: {parsed}")),
            Err(_) => Ok(()),
        };
    }
    let mut parsed = parse(query).map_err(|e| e.to_string())?;
    if let Some(after) = expect.get("string_after_rewrites") {
        let count = or_to_in(&mut parsed);
        let text = parsed.to_string();
        if Some(text.as_str()) != after.as_str() {
            return Err(format!("rewritten to {text:?}, expected {after}"));
        }
        let expected_count = expect["rewrite_count"].as_u64().unwrap_or(0) as usize;
        if count != expected_count {
            return Err(format!("{count} rewrites, expected {expected_count}"));
        }
        return Ok(());
    }
    round_trips(&parsed)?;
    if let Some(ast) = expect.get("ast") {
        let got = query_json(&parsed);
        if !json_eq(&got, ast) {
            return Err(format!("tree {got}\n expected {ast}"));
        }
    }
    if let Some(expected) = expect.get("string") {
        // TestParseRewrites rows parse with Tempo's default rewrites on.
        let rewrites_on = case["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("TestParseRewrites"));
        if rewrites_on {
            apply_default_rewrites(&mut parsed);
        }
        let text = parsed.to_string();
        if Some(text.as_str()) != expected.as_str() {
            return Err(format!("string {text:?}, expected {expected}"));
        }
    }
    Ok(())
}

fn check_parse_cases(report: &mut Report) {
    let data = read_json("parse_cases.json");
    for case in data["cases"].as_array().into_iter().flatten() {
        let query = case["query"].as_str().unwrap_or_default();
        report.record("parse_cases.json", query, check_parse_case(case));
    }
}

fn check_example(category: &str, query: &str) -> Result<(), String> {
    let parsed = parse(query);
    match category {
        "parse_fails" => match parsed {
            Ok(tree) => Err(format!("parsed, expected a parse error: {tree}")),
            Err(_) => Ok(()),
        },
        "valid" => {
            let tree = parsed.map_err(|e| e.to_string())?;
            validate(&tree).map_err(|e| format!("validation: {e}"))?;
            round_trips(&tree)
        }
        "validate_fails" => {
            let tree = parsed.map_err(|e| e.to_string())?;
            match validate(&tree) {
                Ok(()) => Err("validated, expected a validation error".into()),
                Err(e) if e.is_unsupported() => Err(format!("refused as unsupported: {e}")),
                Err(_) => Ok(()),
            }
        }
        "unsupported" => {
            let tree = parsed.map_err(|e| e.to_string())?;
            round_trips(&tree)?;
            match validate(&tree) {
                Err(e) if e.is_unsupported() => Ok(()),
                Err(e) => Err(format!("invalid rather than unsupported: {e}")),
                Ok(()) => Err("validated, expected unsupported".into()),
            }
        }
        other => Err(format!("unknown category {other}")),
    }
}

fn check_examples(report: &mut Report) {
    let data = read_json("test_examples.json");
    // The YAML is Tempo's original; the JSON must hold the same lists.
    let yaml_path = data_dir().join("test_examples.yaml");
    let yaml_text = std::fs::read_to_string(&yaml_path).expect("test_examples.yaml is readable");
    let yaml: BTreeMap<String, Option<Vec<String>>> =
        serde_yaml::from_str(&yaml_text).expect("test_examples.yaml parses");
    for category in ["valid", "parse_fails", "validate_fails", "unsupported"] {
        let from_yaml = yaml.get(category).cloned().flatten().unwrap_or_default();
        let from_json: Vec<String> = data[category]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| q.as_str().map(String::from))
            .collect();
        assert_eq!(
            from_yaml, from_json,
            "test_examples.yaml and .json differ in {category}"
        );
        for query in &from_json {
            let file = format!("test_examples.json[{category}]");
            report.record(&file, query, check_example(category, query));
        }
    }
}

fn check_binops(report: &mut Report) {
    let data = read_json("binop_cases.json");
    for case in data["cases"].as_array().into_iter().flatten() {
        let symbol = case["op"].as_str().unwrap_or_default();
        let lhs = static_from_json(&case["lhs"]);
        let rhs = static_from_json(&case["rhs"]);
        let label = format!("{} {symbol} {}", case["lhs"], case["rhs"]);
        let outcome = (|| {
            let op = BinaryOp::from_symbol(symbol).ok_or(format!("unknown operator {symbol}"))?;
            let mut pairs = vec![(lhs.clone(), rhs.clone())];
            if case["symmetric"].as_bool().unwrap_or(false) {
                pairs.push((rhs.clone(), lhs.clone()));
            }
            for (a, b) in pairs {
                let result = Static::binary_op(op, &a, &b);
                if case.get("expect_error").is_some_and(|e| !e.is_null()) {
                    if result.is_ok() {
                        return Err(format!("{result:?}, expected an error"));
                    }
                    continue;
                }
                let expected = static_from_json(&case["expected"]);
                if result != Ok(expected.clone()) {
                    return Err(format!("{result:?}, expected {expected:?}"));
                }
            }
            Ok(())
        })();
        report.record("binop_cases.json", &label, outcome);
    }
}

fn check_static_values(report: &mut Report) {
    let data = read_json("static_value_cases.json");
    for case in data["cases"].as_array().into_iter().flatten() {
        let lhs = static_from_json(&case["lhs"]);
        let rhs = static_from_json(&case["rhs"]);
        let label = format!("{} {} {}", case["check"], case["lhs"], case["rhs"]);
        let outcome = match case["check"].as_str() {
            Some("equals") => {
                let got = match (
                    lhs.equals(&rhs),
                    rhs.equals(&lhs),
                    lhs.not_equals(&rhs),
                    rhs.not_equals(&lhs),
                ) {
                    (true, true, false, false) => "equal",
                    (false, false, true, true) => "not_equal",
                    (false, false, false, false) => "nil_both_false",
                    _ => "inconsistent",
                };
                if Some(got) == case["expect"].as_str() {
                    Ok(())
                } else {
                    Err(format!("{got}, expected {}", case["expect"]))
                }
            }
            Some("compare") => {
                let expected = match case["expect"].as_i64() {
                    Some(-1) => Ordering::Less,
                    Some(0) => Ordering::Equal,
                    _ => Ordering::Greater,
                };
                let forward = lhs.compare(&rhs);
                let backward = rhs.compare(&lhs);
                if forward == Some(expected) && backward == Some(expected.reverse()) {
                    Ok(())
                } else {
                    Err(format!("{forward:?}/{backward:?}, expected {expected:?}"))
                }
            }
            other => Err(format!("unknown check {other:?}")),
        };
        report.record("static_value_cases.json", &label, outcome);
    }
}

/// The engine cases need the evaluator; until it exists only their queries are checked: each
/// must parse, and its canonical string must round-trip.
fn check_eval_queries(report: &mut Report) {
    let data = read_json("eval_cases.json");
    for case in data["cases"].as_array().into_iter().flatten() {
        let query = case["query"].as_str().unwrap_or_default();
        let outcome = parse(query)
            .map_err(|e| e.to_string())
            .and_then(|tree| round_trips(&tree));
        report.record("eval_cases.json (parse only)", query, outcome);
    }
}

/// Grafana's editor grammar is deliberately lenient (template variables, its own precedence),
/// so its corpus is informational: the count of queries Tempo's grammar also accepts is
/// printed, never asserted.
fn report_lezer_corpus() {
    let path = data_dir().join("lezer_traceql_expression_tests.txt");
    let text = std::fs::read_to_string(&path).expect("lezer corpus is readable");
    let mut total = 0;
    let mut accepted = 0;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.starts_with("# ") {
            continue;
        }
        let mut query = Vec::new();
        while let Some(next) = lines.next_if(|l| *l != "==>") {
            query.push(next);
        }
        total += 1;
        if parse(query.join("\n").trim()).is_ok() {
            accepted += 1;
        }
    }
    eprintln!("lezer_traceql_expression_tests.txt: {accepted}/{total} accepted by Tempo's grammar (informational)");
}

#[test]
fn tempo_suite_traceql_conformance() {
    let mut report = Report::default();
    check_lexer(&mut report);
    check_parse_cases(&mut report);
    check_examples(&mut report);
    check_binops(&mut report);
    check_static_values(&mut report);
    check_eval_queries(&mut report);
    report_lezer_corpus();
    report.finish();
}
