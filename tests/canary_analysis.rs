//! Canary gates from traces: the Argo Rollouts AnalysisTemplates in
//! `deploy/kubernetes/argo-rollouts/` judged against a real Prometheus 2.42 that scrapes vivace
//! (configured with the generator dimensions of `deploy/vivace.yaml`) and evaluates the recording
//! rules of `deploy/prometheus/red_by_version_rules.yml`.
//!
//! One service, three versions at once: a stable one, a healthy canary (same latency, no
//! errors) and a faulty canary (an error burst and a latency shift). The templates' queries are
//! run exactly as Argo Rollouts would run them (arguments substituted), and their success and
//! failure conditions evaluated on the returned vector.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::prometheus::Prometheus;
use common::Vivace;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status, ResourceSpans, ScopeSpans};
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use prost::Message;
use serde::Deserialize;

const SERVICE: &str = "checkout";
const ENVIRONMENT: &str = "production";
const STABLE: &str = "1.4.2";
const HEALTHY: &str = "1.5.0";
const FAULTY: &str = "1.6.0";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn templates_path() -> PathBuf {
    repo("deploy/kubernetes/argo-rollouts/analysis-templates.yaml")
}

fn rollout_path() -> PathBuf {
    repo("deploy/kubernetes/argo-rollouts/rollout.yaml")
}

fn rules_path() -> PathBuf {
    repo("deploy/prometheus/red_by_version_rules.yml")
}

/// Every YAML document of a file.
fn documents(path: &Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            serde_yaml::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|document| !document.is_null())
        .collect()
}

/// The `metrics_generator` section of the deploy config, as extra YAML for a test vivace: the
/// test runs with exactly the dimensions a deployment gets.
fn deploy_generator_yaml() -> String {
    let deploy = &documents(&repo("deploy/vivace.yaml"))[0];
    let generator = deploy["metrics_generator"].clone();
    assert!(
        !generator.is_null(),
        "deploy/vivace.yaml has no metrics_generator section"
    );
    let mut root = serde_yaml::Mapping::new();
    root.insert("metrics_generator".into(), generator);
    serde_yaml::to_string(&root).expect("yaml")
}

fn string_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

/// `count` server spans of `version`, the first `errors` of them failed, each taking
/// `latency_ms` plus a little jitter.
fn batch(version: &str, count: usize, errors: usize, latency_ms: u64, round: u64) -> ResourceSpans {
    let end = now_ns();
    let spans = (0..count)
        .map(|i| {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(round * 1_000 + i as u64 + 1).to_be_bytes());
            trace_id[8..].copy_from_slice(&end.to_be_bytes());
            let duration = (latency_ms + (i as u64 % 10)) * 1_000_000;
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                name: "POST /checkout".into(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: end - duration,
                end_time_unix_nano: end,
                status: Some(Status {
                    code: if i < errors {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Unset as i32
                    },
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                string_value("service.name", SERVICE),
                string_value("service.version", version),
                string_value("deployment.environment", ENVIRONMENT),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Sends a few seconds of traffic of the three versions, so Prometheus scrapes the counters
/// rising several times: stable and healthy canary answer in ~40 ms without errors; the faulty
/// canary fails 30% of its requests and takes ~1.5 s.
async fn send_traffic(client: &reqwest::Client, vivace: &Vivace) {
    for round in 0..12u64 {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                batch(STABLE, 20, 0, 40, round),
                batch(HEALTHY, 20, 0, 40, round + 100),
                batch(FAULTY, 20, 6, 1_500, round + 200),
            ],
        };
        let response = client
            .post(format!("{}/v1/traces", vivace.otlp_http_url()))
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .expect("send spans");
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prometheus scraping vivace every second and evaluating the per-version recording rules.
fn start_prometheus(vivace: &Vivace) -> Prometheus {
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
rule_files:\n  - {rules}\n\
scrape_configs:\n  - job_name: vivace\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
        rules = rules_path().display(),
        port = vivace.ports.http,
    );
    Prometheus::start_on(common::free_port(), &config)
}

/// One metric of an AnalysisTemplate, with its arguments substituted.
#[derive(Debug)]
struct Gate {
    template: String,
    metric: String,
    query: String,
    success: String,
    failure: String,
}

/// The AnalysisTemplates' metrics as Argo Rollouts would instantiate them with `args` (the
/// templates' own defaults fill the rest).
fn gates(args: &BTreeMap<&str, &str>) -> Vec<Gate> {
    let mut gates = Vec::new();
    for template in documents(&templates_path()) {
        let name = template["metadata"]["name"].as_str().expect("name");
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for arg in template["spec"]["args"].as_sequence().into_iter().flatten() {
            let arg_name = arg["name"].as_str().expect("arg name").to_string();
            if let Some(value) = args.get(arg_name.as_str()) {
                values.insert(arg_name, value.to_string());
            } else if let Some(value) = arg["value"].as_str() {
                values.insert(arg_name, value.to_string());
            }
        }
        let substitute = |text: &str| {
            let mut out = text.to_string();
            for (key, value) in &values {
                out = out.replace(&format!("{{{{args.{key}}}}}"), value);
            }
            assert!(
                !out.contains("{{"),
                "{name}: an argument is left unset in {out}"
            );
            out
        };
        for metric in template["spec"]["metrics"].as_sequence().expect("metrics") {
            gates.push(Gate {
                template: name.to_string(),
                metric: metric["name"].as_str().expect("metric name").to_string(),
                query: substitute(
                    metric["provider"]["prometheus"]["query"]
                        .as_str()
                        .expect("query"),
                ),
                success: substitute(metric["successCondition"].as_str().expect("success")),
                failure: substitute(metric["failureCondition"].as_str().unwrap_or("false")),
            });
        }
    }
    gates
}

/// What Argo Rollouts decides for one measurement.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Phase {
    Successful,
    Failed,
    Inconclusive,
}

fn judge(gate: &Gate, result: &[f64]) -> Phase {
    let success = condition::evaluate(&gate.success, result)
        .unwrap_or_else(|e| panic!("{}: {e}", gate.success));
    let failure = condition::evaluate(&gate.failure, result)
        .unwrap_or_else(|e| panic!("{}: {e}", gate.failure));
    match (success, failure) {
        (true, false) => Phase::Successful,
        (false, true) => Phase::Failed,
        (false, false) => Phase::Inconclusive,
        (true, true) => panic!("{gate:?}: success and failure both hold for {result:?}"),
    }
}

/// The subset of Argo Rollouts' condition language (antonmedv/expr) the templates use:
/// numbers, `result[i]`, `len(result)`, comparisons, `&&`, `||`, `!`, parentheses; `&&` and
/// `||` short-circuit as in expr, so `len(result) > 0 && result[0] …` is safe on no data.
mod condition {
    enum Expr {
        Number(f64),
        Bool(bool),
        Len,
        Index(usize),
        Not(Box<Expr>),
        And(Box<Expr>, Box<Expr>),
        Or(Box<Expr>, Box<Expr>),
        Compare(String, Box<Expr>, Box<Expr>),
    }

    enum Value {
        Number(f64),
        Bool(bool),
    }

    pub fn evaluate(text: &str, result: &[f64]) -> Result<bool, String> {
        let mut parser = Parser {
            tokens: tokenize(text),
            at: 0,
        };
        let expr = parser.or()?;
        if let Some(token) = parser.tokens.get(parser.at) {
            return Err(format!("unexpected {token:?}"));
        }
        match eval(&expr, result)? {
            Value::Bool(b) => Ok(b),
            Value::Number(_) => Err("condition is not a boolean".into()),
        }
    }

    fn tokenize(text: &str) -> Vec<String> {
        let mut tokens = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let length = ["&&", "||", ">=", "<=", "==", "!="]
                .iter()
                .find(|op| rest.starts_with(*op))
                .map(|op| op.len())
                .or_else(|| {
                    rest.starts_with(['(', ')', '[', ']', '<', '>', '!'])
                        .then_some(1)
                })
                .unwrap_or_else(|| {
                    rest.find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '_'))
                        .unwrap_or(rest.len())
                        .max(1)
                });
            tokens.push(rest[..length].to_string());
            rest = rest[length..].trim_start();
        }
        tokens
    }

    fn bool_of(expr: &Expr, result: &[f64]) -> Result<bool, String> {
        match eval(expr, result)? {
            Value::Bool(b) => Ok(b),
            Value::Number(_) => Err("expected a boolean".into()),
        }
    }

    fn eval(expr: &Expr, result: &[f64]) -> Result<Value, String> {
        Ok(match expr {
            Expr::Number(n) => Value::Number(*n),
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Len => Value::Number(result.len() as f64),
            Expr::Index(i) => Value::Number(
                *result
                    .get(*i)
                    .ok_or_else(|| format!("result[{i}] out of range"))?,
            ),
            Expr::Not(inner) => Value::Bool(!bool_of(inner, result)?),
            Expr::And(a, b) => Value::Bool(bool_of(a, result)? && bool_of(b, result)?),
            Expr::Or(a, b) => Value::Bool(bool_of(a, result)? || bool_of(b, result)?),
            Expr::Compare(op, a, b) => {
                let (Value::Number(a), Value::Number(b)) = (eval(a, result)?, eval(b, result)?)
                else {
                    return Err(format!("{op} needs numbers"));
                };
                Value::Bool(match op.as_str() {
                    ">=" => a >= b,
                    "<=" => a <= b,
                    "==" => a == b,
                    "!=" => a != b,
                    "<" => a < b,
                    _ => a > b,
                })
            }
        })
    }

    struct Parser {
        tokens: Vec<String>,
        at: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<&str> {
            self.tokens.get(self.at).map(String::as_str)
        }
        fn next(&mut self) -> Result<String, String> {
            let token = self.peek().ok_or("unexpected end")?.to_string();
            self.at += 1;
            Ok(token)
        }
        fn expect(&mut self, token: &str) -> Result<(), String> {
            match self.next()? {
                found if found == token => Ok(()),
                found => Err(format!("expected {token}, found {found}")),
            }
        }
        fn or(&mut self) -> Result<Expr, String> {
            let mut left = self.and()?;
            while self.peek() == Some("||") {
                self.at += 1;
                left = Expr::Or(Box::new(left), Box::new(self.and()?));
            }
            Ok(left)
        }
        fn and(&mut self) -> Result<Expr, String> {
            let mut left = self.comparison()?;
            while self.peek() == Some("&&") {
                self.at += 1;
                left = Expr::And(Box::new(left), Box::new(self.comparison()?));
            }
            Ok(left)
        }
        fn comparison(&mut self) -> Result<Expr, String> {
            let left = self.unary()?;
            match self.peek() {
                Some(op) if [">=", "<=", "==", "!=", "<", ">"].contains(&op) => {
                    let op = op.to_string();
                    self.at += 1;
                    Ok(Expr::Compare(op, Box::new(left), Box::new(self.unary()?)))
                }
                _ => Ok(left),
            }
        }
        fn unary(&mut self) -> Result<Expr, String> {
            let token = self.next()?;
            match token.as_str() {
                "!" => Ok(Expr::Not(Box::new(self.unary()?))),
                "(" => {
                    let inner = self.or()?;
                    self.expect(")")?;
                    Ok(inner)
                }
                "len" => {
                    self.expect("(")?;
                    self.expect("result")?;
                    self.expect(")")?;
                    Ok(Expr::Len)
                }
                "result" => {
                    self.expect("[")?;
                    let index = self.next()?.parse().map_err(|_| "bad index")?;
                    self.expect("]")?;
                    Ok(Expr::Index(index))
                }
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                number => number
                    .parse()
                    .map(Expr::Number)
                    .map_err(|_| format!("unexpected {number:?}")),
            }
        }
    }

    #[test]
    fn conditions_short_circuit_and_compare() {
        let ok = |text: &str, result: &[f64]| evaluate(text, result).unwrap();
        assert!(ok("len(result) > 0 && result[0] >= 0.99", &[1.0]));
        assert!(!ok("len(result) > 0 && result[0] >= 0.99", &[0.7]));
        assert!(!ok("len(result) > 0 && result[0] >= 0.99", &[]));
        assert!(ok("len(result) == 0 || result[0] < 1", &[]));
        assert!(ok("!(result[0] > 2) && (result[1] <= 3)", &[1.0, 3.0]));
        assert!(evaluate("result[0] >=", &[1.0]).is_err());
    }
}

/// Polls until Prometheus has scraped vivace once: its target discovery starts scraping a few
/// seconds after start, and traffic sent before that would leave the counters flat.
async fn wait_for_first_scrape(client: &reqwest::Client, prometheus: &Prometheus) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while prometheus
        .query_vector(client, "up{job=\"vivace\"} == 1")
        .await
        != Ok(vec![1.0])
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape vivace within 60 s:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until every version has its success ratio and p99 recorded.
async fn wait_for_recorded_series(client: &reqwest::Client, prometheus: &Prometheus) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut ready = true;
        for record in [
            "service_version:traces_spanmetrics_success_ratio:rate1m",
            "service_version:traces_spanmetrics_latency:p99_1m",
        ] {
            for version in [STABLE, HEALTHY, FAULTY] {
                let query = format!("{record}{{service_version=\"{version}\"}}");
                let values = prometheus.query_vector(client, &query).await;
                ready &= matches!(values, Ok(v) if v.len() == 1 && v[0].is_finite());
            }
        }
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "recording rules produced no series for every version within 90 s:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_pass_a_healthy_canary_and_fail_a_faulty_one() {
    let vivace = Vivace::start(&deploy_generator_yaml());
    let prometheus = start_prometheus(&vivace);
    let client = reqwest::Client::new();
    wait_for_first_scrape(&client, &prometheus).await;
    send_traffic(&client, &vivace).await;
    wait_for_recorded_series(&client, &prometheus).await;

    let mut phases: BTreeMap<(&str, String), Phase> = BTreeMap::new();
    for canary in [HEALTHY, FAULTY] {
        let args = BTreeMap::from([
            ("service", SERVICE),
            ("canary-version", canary),
            ("stable-version", STABLE),
            ("environment", ENVIRONMENT),
        ]);
        for gate in gates(&args) {
            let result = prometheus
                .query_vector(&client, &gate.query)
                .await
                .unwrap_or_else(|e| panic!("{} / {}: {e}", gate.template, gate.metric));
            let phase = judge(&gate, &result);
            println!(
                "canary {canary}: {}/{} result {result:?} -> {phase:?}",
                gate.template, gate.metric
            );
            phases.insert((canary, gate.metric), phase);
        }
    }
    let metrics: BTreeSet<String> = phases.keys().map(|(_, metric)| metric.clone()).collect();
    assert!(
        metrics.len() >= 3,
        "expected success-rate and latency gates, found {metrics:?}"
    );
    for metric in &metrics {
        assert_eq!(
            phases[&(HEALTHY, metric.clone())],
            Phase::Successful,
            "healthy canary must pass {metric}"
        );
        assert_eq!(
            phases[&(FAULTY, metric.clone())],
            Phase::Failed,
            "faulty canary must fail {metric}"
        );
    }
    // A version that never received traffic is neither passed nor failed: the rollout waits.
    let args = BTreeMap::from([
        ("service", SERVICE),
        ("canary-version", "9.9.9"),
        ("stable-version", STABLE),
        ("environment", ENVIRONMENT),
    ]);
    for gate in gates(&args) {
        let result = prometheus
            .query_vector(&client, &gate.query)
            .await
            .expect("query");
        assert_eq!(judge(&gate, &result), Phase::Inconclusive, "{gate:?}");
    }
}

/// Label names a PromQL text matches on or aggregates by, and the metric names it reads.
fn promql_names(query: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let matcher = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*""#).expect("re");
    let grouping = regex::Regex::new(r"\b(?:by|without)\s*\(([^)]*)\)").expect("re");
    let metric = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{").expect("re");
    let mut labels = BTreeSet::new();
    for capture in matcher.captures_iter(query) {
        labels.insert(capture[1].to_string());
    }
    for capture in grouping.captures_iter(query) {
        for label in capture[1].split(',') {
            let label = label.trim();
            if !label.is_empty() {
                labels.insert(label.to_string());
            }
        }
    }
    let metrics = metric
        .captures_iter(query)
        .map(|capture| capture[1].to_string())
        .filter(|name| !["by", "without", "sum", "max", "min", "rate"].contains(&name.as_str()))
        .collect();
    (labels, metrics)
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool (Debian's prometheus package) must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_are_valid_and_query_only_what_vivace_emits() {
    // Argo Rollouts kinds with the fields its controller requires.
    let templates = documents(&templates_path());
    let used = regex::Regex::new(r"\{\{args\.([a-zA-Z0-9-]+)\}\}").expect("re");
    let mut declared: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for template in &templates {
        assert_eq!(template["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(template["kind"], "AnalysisTemplate");
        let name = template["metadata"]["name"]
            .as_str()
            .expect("metadata.name");
        let args: BTreeMap<String, bool> = template["spec"]["args"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|arg| {
                (
                    arg["name"].as_str().expect("arg name").to_string(),
                    arg["value"].is_string(),
                )
            })
            .collect();
        let metrics = template["spec"]["metrics"]
            .as_sequence()
            .expect("spec.metrics");
        assert!(!metrics.is_empty(), "{name}: spec.metrics is empty");
        for metric in metrics {
            assert!(metric["name"].is_string(), "{name}: a metric has no name");
            assert!(
                metric["successCondition"].is_string(),
                "{name}: successCondition"
            );
            let prometheus = &metric["provider"]["prometheus"];
            assert!(prometheus["address"].is_string(), "{name}: address");
            let query = prometheus["query"]
                .as_str()
                .expect("provider.prometheus.query");
            let text = format!(
                "{query} {} {} {}",
                metric["successCondition"].as_str().unwrap_or(""),
                metric["failureCondition"].as_str().unwrap_or(""),
                prometheus["address"].as_str().unwrap_or("")
            );
            for capture in used.captures_iter(&text) {
                assert!(
                    args.contains_key(&capture[1]),
                    "{name}: {{{{args.{}}}}} is not declared",
                    &capture[1]
                );
            }
        }
        declared.insert(name.to_string(), args);
    }
    let rollout = &documents(&rollout_path())[0];
    assert_eq!(rollout["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(rollout["kind"], "Rollout");
    assert!(rollout["spec"]["selector"]["matchLabels"].is_mapping());
    assert!(rollout["spec"]["template"]["spec"]["containers"].is_sequence());
    let steps = rollout["spec"]["strategy"]["canary"]["steps"]
        .as_sequence()
        .expect("spec.strategy.canary.steps");
    let mut analysed = 0;
    for step in steps.iter().filter(|step| step["analysis"].is_mapping()) {
        let passed: BTreeSet<&str> = step["analysis"]["args"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|arg| arg["name"].as_str().expect("arg name"))
            .collect();
        for template in step["analysis"]["templates"]
            .as_sequence()
            .expect("templates")
        {
            let name = template["templateName"].as_str().expect("templateName");
            let args = declared
                .get(name)
                .unwrap_or_else(|| panic!("the Rollout uses {name}, which is not defined"));
            for (arg, has_default) in args {
                assert!(
                    *has_default || passed.contains(arg.as_str()),
                    "{name} needs argument {arg}, which the Rollout does not pass"
                );
            }
            analysed += 1;
        }
    }
    assert!(analysed >= 2, "the Rollout gates no step on analysis");

    // The rules check and pass their unit tests; every template query parses (checked by
    // promtool as the expression of a recording rule).
    promtool(&["check", "rules", rules_path().to_str().expect("path")]);
    let rules_test = rules_path().with_file_name("red_by_version_rules_test.yml");
    promtool(&["test", "rules", rules_test.to_str().expect("path")]);
    let args = BTreeMap::from([
        ("service", SERVICE),
        ("canary-version", HEALTHY),
        ("stable-version", STABLE),
    ]);
    let all_gates = gates(&args);
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut rules = serde_yaml::Mapping::new();
    let records: Vec<serde_yaml::Value> = all_gates
        .iter()
        .enumerate()
        .map(|(i, gate)| {
            let mut rule = serde_yaml::Mapping::new();
            rule.insert("record".into(), format!("template_query:{i}").into());
            rule.insert("expr".into(), gate.query.clone().into());
            rule.into()
        })
        .collect();
    let mut group = serde_yaml::Mapping::new();
    group.insert("name".into(), "template-queries".into());
    group.insert("rules".into(), records.into());
    rules.insert("groups".into(), vec![serde_yaml::Value::from(group)].into());
    let scratch_rules = scratch.path().join("queries.yml");
    std::fs::write(&scratch_rules, serde_yaml::to_string(&rules).expect("yaml")).expect("write");
    promtool(&["check", "rules", scratch_rules.to_str().expect("path")]);

    // Every label and metric the queries use is one vivace emits (raw series) or one the
    // recording rules produce (recorded series keep only their `by` labels).
    let vivace = Vivace::start(&deploy_generator_yaml());
    let client = reqwest::Client::new();
    send_traffic(&client, &vivace).await;
    let exposition = client
        .get(vivace.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let mut emitted_labels = BTreeSet::new();
    let mut emitted_metrics = BTreeSet::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        if let Some((name, rest)) = line.split_once('{') {
            emitted_metrics.insert(name.to_string());
            let (labels, _) = promql_names(&format!("x{{{rest}"));
            emitted_labels.extend(labels);
        }
    }
    let rule_docs = documents(&rules_path());
    let grouping = regex::Regex::new(r"\bby\s*\(([^)]*)\)").expect("re");
    let mut recorded: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in rule_docs[0]["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            let (labels, metrics) = promql_names(expr);
            for label in &labels {
                assert!(
                    emitted_labels.contains(label) || label == "le",
                    "rule {:?} uses label {label}, which vivace does not emit (emits {emitted_labels:?})",
                    rule["record"]
                );
            }
            for metric in metrics {
                assert!(
                    emitted_metrics.contains(&metric),
                    "rule uses {metric}, which vivace does not emit"
                );
            }
            if let Some(record) = rule["record"].as_str() {
                let kept = grouping
                    .captures_iter(expr)
                    .flat_map(|c| {
                        c[1].split(',')
                            .map(|l| l.trim().to_string())
                            .collect::<Vec<_>>()
                    })
                    .filter(|l| l != "le")
                    .collect();
                recorded.insert(record.to_string(), kept);
            }
        }
    }
    for gate in &all_gates {
        let (labels, metrics) = promql_names(&gate.query);
        for metric in metrics {
            let kept = recorded.get(&metric).unwrap_or_else(|| {
                assert!(
                    emitted_metrics.contains(&metric),
                    "{}: {metric} is neither recorded nor emitted by vivace",
                    gate.template
                );
                &emitted_labels
            });
            for label in &labels {
                assert!(
                    kept.contains(label),
                    "{}: label {label} is not on {metric} (has {kept:?})",
                    gate.template
                );
            }
        }
    }
    for label in ["service_version", "deployment_environment"] {
        assert!(
            emitted_labels.contains(label),
            "deploy/vivace.yaml must enable the dimension behind {label}"
        );
    }
}

/// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` of the Rollout's application container,
/// `$(SERVICE_VERSION)` substituted as Kubernetes does.
fn rollout_resource_environment() -> Vec<(String, String)> {
    let rollout = &documents(&rollout_path())[0];
    let container = &rollout["spec"]["template"]["spec"]["containers"][0];
    let variables = container["env"].as_sequence().expect("env");
    let value_of = |name: &str| -> String {
        variables
            .iter()
            .find(|variable| variable["name"] == name)
            .and_then(|variable| variable["value"].as_str())
            .unwrap_or_else(|| panic!("the Rollout's container sets no {name}"))
            .to_string()
    };
    let version = value_of("SERVICE_VERSION");
    vec![
        ("OTEL_SERVICE_NAME".into(), value_of("OTEL_SERVICE_NAME")),
        (
            "OTEL_RESOURCE_ATTRIBUTES".into(),
            value_of("OTEL_RESOURCE_ATTRIBUTES").replace("$(SERVICE_VERSION)", &version),
        ),
    ]
}

/// Semantic conventions 1.27 on: the OpenTelemetry SDK sends only `deployment.environment.name`
/// (as the Rollout's application does). The generator's series carry it, the recording rules
/// record it as the environment, and the gates judge the canary instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_judge_a_service_that_sends_only_deployment_environment_name() {
    let environment = rollout_resource_environment();
    let attributes = &environment[1].1;
    assert!(
        attributes.contains("deployment.environment.name=production")
            && !attributes.contains("deployment.environment="),
        "the Rollout's application sends only the current attribute: {attributes}"
    );
    let service = environment[0].1.clone();
    let version = attributes
        .split(',')
        .find_map(|pair| pair.strip_prefix("service.version="))
        .expect("service.version in OTEL_RESOURCE_ATTRIBUTES")
        .to_string();
    let vivace = Vivace::start(&deploy_generator_yaml());
    let prometheus = start_prometheus(&vivace);
    let client = reqwest::Client::new();
    wait_for_first_scrape(&client, &prometheus).await;

    let environment_refs: Vec<(&str, &str)> = environment
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let endpoint = vivace.otlp_http_url();
    let args = BTreeMap::from([
        ("service", service.as_str()),
        ("canary-version", version.as_str()),
        ("stable-version", version.as_str()),
        ("environment", ENVIRONMENT),
    ]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let success_rate = loop {
        // The real SDK, one batch a round, so the counters rise between scrapes.
        let exported = common::run_python_with_environment(
            "otel_server_spans.py",
            &["--endpoint", &endpoint, "--spans", "20"],
            &environment_refs,
        );
        assert!(
            exported.contains("\"deployment.environment.name\": \"production\"")
                && !exported.contains("\"deployment.environment\":"),
            "the SDK exported {exported}"
        );
        let gate = gates(&args)
            .into_iter()
            .find(|gate| gate.metric == "success-rate")
            .expect("a success-rate gate");
        let result = prometheus
            .query_vector(&client, &gate.query)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", gate.query));
        // A ratio over a window that has not seen the counters rise yet is NaN (0/0): no
        // verdict yet, as Argo would retry; judge once it is a number.
        if !result.is_empty() && result.iter().all(|value| value.is_finite()) {
            break judge(&gate, &result);
        }
        assert!(
            Instant::now() < deadline,
            "the success-rate gate found no series for {service} {version} in {ENVIRONMENT} \
             within 90 s (the environment was not recorded):\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(success_rate, Phase::Successful);
    let (status, exposition) = common::blocking_get(&vivace.url("/metrics")).expect("scrape");
    assert_eq!(status, 200);
    assert!(
        exposition
            .lines()
            .any(|line| line.starts_with("traces_spanmetrics_calls_total{")
                && line.contains("deployment_environment_name=\"production\"")),
        "the generator's series carry the environment:\n{exposition}"
    );
}
