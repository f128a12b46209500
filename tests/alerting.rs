//! Alert-to-trace end to end with the files of `deploy/`: Debian's Prometheus 2.42 scrapes
//! vivace with `deploy/prometheus/red_slo_rules.yml` (the rule file itself; only addresses and
//! intervals of the configs are changed for the test), Alertmanager 0.25 posts its webhook to
//! vivace, an error burst on one service fires `ServiceErrorBudgetFastBurn`, and
//! `/api/alerts` lists the alert with traces that resolve on vivace and are erroring or slow
//! traces of that service. The same Prometheus then answers every PromQL expression of the
//! dashboards in `dashboards/`, and vivace parses every TraceQL query in them.
//! Also: `promtool check config|rules`, `promtool test rules` and `amtool check-config` on
//! `deploy/`, and the vivace configs of `deploy/` load.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Vivace;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use serde_json::Value;
use vivace::model::string_attribute as attribute;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const AMTOOL: &str = "/usr/bin/amtool";
/// Server spans of the burst that fail take this long; the others 20 ms.
const SLOW_MS: u64 = 600;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn require(binary: &str, package: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing; install it with: apt-get update && apt-get install -y {package}"
    );
}

/// Runs a tool and asserts it succeeds, showing its output otherwise.
fn run_ok(program: &str, args: &[&str], directory: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(directory)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{text}"
    );
    text
}

#[test]
fn deploy_files_pass_promtool_amtool_and_vivace() {
    require(PROMTOOL, "prometheus");
    require(AMTOOL, "prometheus-alertmanager");
    let prometheus_dir = repo("deploy/prometheus");
    let checked = run_ok(
        PROMTOOL,
        &["check", "config", "prometheus.yml"],
        &prometheus_dir,
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    let rules = run_ok(
        PROMTOOL,
        &["check", "rules", "red_slo_rules.yml"],
        &prometheus_dir,
    );
    assert!(rules.contains("SUCCESS"), "{rules}");
    let mut tests: Vec<PathBuf> = std::fs::read_dir(&prometheus_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with("_test.yml"))
        .collect();
    tests.sort();
    assert!(!tests.is_empty(), "deploy/prometheus has no *_test.yml");
    for test in &tests {
        let output = run_ok(
            PROMTOOL,
            &["test", "rules", &test.to_string_lossy()],
            &prometheus_dir,
        );
        assert!(output.contains("SUCCESS"), "{output}");
    }
    let alertmanager = run_ok(
        AMTOOL,
        &["check-config", "alertmanager/alertmanager.yml"],
        &repo("deploy"),
    );
    assert!(alertmanager.contains("SUCCESS"), "{alertmanager}");

    // The vivace config of the image and compose loads.
    vivace::config::Config::load(Some(&repo("deploy/vivace.yaml")), Vec::new())
        .expect("deploy/vivace.yaml is a valid vivace config");
    // deploy/kubernetes/vivace.yaml (ConfigMap, probes, security, memory): tests/kubernetes.rs.

    // compose.yaml: the four services, and every file it mounts exists.
    let compose: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo("deploy/compose.yaml")).unwrap())
            .unwrap();
    for service in ["vivace", "prometheus", "alertmanager", "grafana"] {
        let volumes = compose["services"][service]["volumes"].as_array().unwrap();
        for volume in volumes {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(
                    repo("deploy").join(source).exists(),
                    "compose.yaml mounts {source}, which does not exist"
                );
            }
        }
    }
    let dockerfile = std::fs::read_to_string(repo("deploy/Dockerfile")).unwrap();
    for needed in ["USER 10001", "HEALTHCHECK", "/ready", "VOLUME"] {
        assert!(dockerfile.contains(needed), "Dockerfile lacks {needed}");
    }
}

/// A child process killed on drop, with its log in a temporary directory.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    name: &'static str,
}

impl Server {
    fn start(name: &'static str, program: &str, args: Vec<String>, port: u16) -> Server {
        let dir = tempfile::Builder::new()
            .prefix(&format!("vivace-{name}-"))
            .tempdir()
            .unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let args: Vec<String> = args
            .into_iter()
            .map(|arg| arg.replace("{dir}", &dir.path().display().to_string()))
            .collect();
        let child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("start {program}: {error}"));
        let mut server = Server {
            child,
            port,
            dir,
            name,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", server.log());
            }
            if matches!(common::blocking_get(&server.url("/-/ready")), Ok((200, _))) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready within 60s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        format!(
            "--- {} log ---\n{}",
            self.name,
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn yaml_file(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `deploy/prometheus/prometheus.yml` with test addresses and 1 s intervals; the rule files it
/// names are used as they are.
fn prometheus_config(vivace: &Vivace, alertmanager_port: u16) -> String {
    let mut config = common::prometheus::deploy_config(vivace.ports.http);
    config["global"]["external_labels"]["vivace_url"] = vivace.url("").into();
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] =
        vec![serde_yaml::Value::from(format!(
            "127.0.0.1:{alertmanager_port}"
        ))]
        .into();
    serde_yaml::to_string(&config).unwrap()
}

/// `deploy/alertmanager/alertmanager.yml` with vivace's test address and short waits.
fn alertmanager_config(vivace: &Vivace) -> String {
    let mut config = yaml_file(&repo("deploy/alertmanager/alertmanager.yml"));
    config["route"]["group_wait"] = "1s".into();
    config["route"]["group_interval"] = "2s".into();
    let url = config["receivers"][0]["webhook_configs"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let path = url.split_once("3200").unwrap().1;
    config["receivers"][0]["webhook_configs"][0]["url"] = vivace.url(path).into();
    serde_yaml::to_string(&config).unwrap()
}

fn resource_spans(service: &str, span: Span) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![attribute("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// One request: a frontend client span calling a checkout server span; failing ones are slow
/// and have status error.
fn request(trace_id: [u8; 16], failing: bool) -> Vec<ResourceSpans> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let duration = if failing { SLOW_MS } else { 20 } * 1_000_000;
    let status = failing.then(|| Status {
        code: StatusCode::Error as i32,
        message: "payment declined".into(),
    });
    let client = Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![1; 8],
        name: "POST /checkout".into(),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: now - duration - 2_000_000,
        end_time_unix_nano: now,
        status: status.clone(),
        ..Default::default()
    };
    let server = Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![2; 8],
        parent_span_id: vec![1; 8],
        name: "POST /checkout".into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: now - duration - 1_000_000,
        end_time_unix_nano: now - 1_000_000,
        status,
        ..Default::default()
    };
    vec![
        resource_spans("frontend", client),
        resource_spans("checkout", server),
    ]
}

/// Sends `count` requests, `failing` of them failing; returns the failing trace IDs.
async fn send_requests(
    client: &reqwest::Client,
    vivace: &Vivace,
    count: usize,
    failing: usize,
) -> Vec<String> {
    let mut resource_spans = Vec::new();
    let mut failing_ids = Vec::new();
    for index in 0..count {
        let trace_id: [u8; 16] = rand_id();
        let fails = index < failing;
        if fails {
            failing_ids.push(hex::encode(trace_id));
        }
        resource_spans.extend(request(trace_id, fails));
    }
    let body = ExportTraceServiceRequest { resource_spans }.encode_to_vec();
    vivace.push_otlp(client, body).await;
    failing_ids
}

fn rand_id() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&stamp.to_be_bytes());
    id[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id
}

/// Spans of a `/api/v2/traces` answer as (service, kind, status code name, duration ms).
fn trace_spans(body: &Value) -> Vec<(String, String, String, u64)> {
    let mut spans = Vec::new();
    for batch in body["trace"]["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let service = batch["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|attribute| attribute["key"] == "service.name")
            .and_then(|attribute| attribute["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_string();
        for scope in batch["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let number = |key: &str| {
                    span[key]
                        .as_str()
                        .and_then(|text| text.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                let duration =
                    (number("endTimeUnixNano") - number("startTimeUnixNano")) / 1_000_000;
                spans.push((
                    service.clone(),
                    span["kind"].as_str().unwrap_or_default().to_string(),
                    span["status"]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    duration,
                ));
            }
        }
    }
    spans
}

#[tokio::test(flavor = "multi_thread")]
async fn error_burst_fires_an_alert_that_links_to_its_traces() {
    require(PROMETHEUS, "prometheus");
    require(ALERTMANAGER, "prometheus-alertmanager");
    let prometheus_port = common::free_port();
    let alertmanager_port = common::free_port();
    let data = tempfile::Builder::new()
        .prefix("vivace-test-")
        .tempdir()
        .unwrap()
        .keep();
    let mut vivace = Vivace::start_in(
        &data,
        common::Ports::pick(),
        &format!(
            "prometheus:\n  url: http://127.0.0.1:{prometheus_port}\n\
alerts:\n  path: {}\n  external_url: http://vivace.example\n",
            data.join("alerts.json").display()
        ),
    );

    let alertmanager_dir = tempfile::tempdir().unwrap();
    let alertmanager_yml = alertmanager_dir.path().join("alertmanager.yml");
    std::fs::write(&alertmanager_yml, alertmanager_config(&vivace)).unwrap();
    let alertmanager = Server::start(
        "alertmanager",
        ALERTMANAGER,
        vec![
            format!("--config.file={}", alertmanager_yml.display()),
            "--storage.path={dir}/data".into(),
            format!("--web.listen-address=127.0.0.1:{alertmanager_port}"),
            // No gossip: nothing listens beyond loopback.
            "--cluster.listen-address=".into(),
        ],
        alertmanager_port,
    );
    let prometheus_dir = tempfile::tempdir().unwrap();
    let prometheus_yml = prometheus_dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_yml,
        prometheus_config(&vivace, alertmanager_port),
    )
    .unwrap();
    let prometheus = Server::start(
        "prometheus",
        PROMETHEUS,
        vec![
            "--enable-feature=exemplar-storage".into(),
            "--web.enable-remote-write-receiver".into(),
            "--storage.tsdb.path={dir}/data".into(),
            format!("--config.file={}", prometheus_yml.display()),
            format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        ],
        prometheus_port,
    );
    let logs = |vivace: &Vivace| {
        format!(
            "{}\n{}\n--- vivace log ---\n{}",
            prometheus.log(),
            alertmanager.log(),
            vivace.log_text()
        )
    };

    // Traffic keeps flowing (counters must rise between scrapes); half of checkout's requests
    // fail, so its error budget burns and the page fires.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut failing_ids = Vec::new();
    let burst_started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    let alert = loop {
        failing_ids.extend(send_requests(&client, &vivace, 10, 5).await);
        let body: Value = client
            .get(vivace.url("/api/alerts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = body["alerts"].as_array().and_then(|alerts| {
            alerts
                .iter()
                .find(|alert| {
                    alert["labels"]["alertname"] == "ServiceErrorBudgetFastBurn"
                        && !alert["resolvedAt"].as_str().unwrap_or_default().is_empty()
                })
                .cloned()
        });
        if let Some(alert) = found {
            eprintln!(
                "alert listed with its traces {:?} after the burst started",
                burst_started.elapsed()
            );
            break alert;
        }
        assert!(
            Instant::now() < deadline,
            "no resolved ServiceErrorBudgetFastBurn alert in /api/alerts after 180s: {body}\n{}",
            logs(&vivace)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // The alert as Alertmanager sent it, with the rule's link to vivace.
    assert_eq!(alert["status"], "firing", "{alert}");
    assert_eq!(alert["labels"]["service"], "checkout", "{alert}");
    assert_eq!(alert["labels"]["severity"], "page", "{alert}");
    let fingerprint = alert["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(
        alert["url"],
        format!("http://vivace.example/alerts/{fingerprint}")
    );
    let link = alert["annotations"]["vivace"].as_str().unwrap().to_string();
    assert_eq!(
        link,
        vivace.url("/api/alerts/open?alertname=ServiceErrorBudgetFastBurn&service=checkout")
    );
    let redirect = client.get(&link).send().await.unwrap();
    assert_eq!(redirect.status(), 303);
    assert_eq!(
        redirect.headers()["location"],
        format!("/alerts/{fingerprint}").as_str()
    );

    // Before an alert's notification arrives, the link opens a search for its traces.
    let early = client
        .get(vivace.url("/api/alerts/open?alertname=ServiceErrorBudgetFastBurn&service=payments"))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 303);
    let location = early.headers()["location"].to_str().unwrap().to_string();
    let query = reqwest::Url::parse(&vivace.url(&location))
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == "q")
        .map(|(_, value)| value.to_string());
    assert_eq!(
        query.as_deref(),
        Some(r#"{ resource.service.name = "payments" && status = error }"#),
        "{location}"
    );
    let no_labels = client
        .get(vivace.url("/api/alerts/open"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_labels.status(), 400);

    // Its traces: they resolve on vivace and are erroring or slow traces of checkout; the
    // exemplars Prometheus holds for the alerting series are among them.
    let traces = alert["traces"].as_array().unwrap();
    assert!(
        !traces.is_empty(),
        "no traces for {alert}\n{}",
        logs(&vivace)
    );
    eprintln!("traces of the alert: {traces:?}");
    let reasons: Vec<&str> = traces
        .iter()
        .map(|trace| trace["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"exemplar"), "no exemplar trace: {alert}");
    for trace in traces {
        let trace_id = trace["traceId"].as_str().unwrap();
        assert_eq!(trace_id.len(), 32, "{trace}");
        let response = client
            .get(vivace.url(&format!("/api/v2/traces/{trace_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "trace {trace_id} does not resolve");
        let body: Value = response.json().await.unwrap();
        let checkout: Vec<_> = trace_spans(&body)
            .into_iter()
            .filter(|(service, kind, _, _)| service == "checkout" && kind == "SPAN_KIND_SERVER")
            .collect();
        assert!(
            !checkout.is_empty(),
            "{trace_id} has no checkout span: {body}"
        );
        let erroring_or_slow = checkout
            .iter()
            .any(|(_, _, status, duration)| status == "STATUS_CODE_ERROR" || *duration >= SLOW_MS);
        assert!(
            erroring_or_slow,
            "{trace} is neither erroring nor slow: {body}"
        );
        assert!(
            failing_ids.iter().any(|id| id == trace_id),
            "{trace_id} is not one of the failing requests sent"
        );
        assert_eq!(trace["rootServiceName"], "frontend", "{trace}");
        assert_eq!(trace["rootTraceName"], "POST /checkout", "{trace}");
        assert!(trace["durationMs"].as_u64().unwrap() >= SLOW_MS, "{trace}");
    }
    let one: Value = client
        .get(vivace.url(&format!("/api/alerts/{fingerprint}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["fingerprint"], fingerprint.as_str());
    let missing = client
        .get(vivace.url("/api/alerts/0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The notifications Alertmanager 0.25 sent in the lab, firing then resolved: one alert
    // whose status and end follow the latest notification.
    let captured = include_str!("../src/alerts/testdata/webhook_payloads_captured.jsonl");
    for line in captured.lines() {
        let body = serde_json::from_str::<Value>(line).unwrap()["body"].to_string();
        let response = client
            .post(vivace.url("/api/alerts/webhook"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let lab: Value = client
        .get(vivace.url("/api/alerts/e0dd9954c6bb033a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lab["status"], "resolved", "{lab}");
    assert_eq!(lab["endsAt"], "2026-11-22T00:02:44.932Z", "{lab}");
    let listed: Value = client
        .get(vivace.url("/api/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fingerprints: Vec<&str> = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| alert["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(
        fingerprints[0], "e0dd9954c6bb033a",
        "newest first: {fingerprints:?}"
    );
    assert!(fingerprints.contains(&fingerprint.as_str()));

    // Bad payloads are refused naming the field.
    let bad = client
        .post(vivace.url("/api/alerts/webhook"))
        .header("Content-Type", "application/json")
        .body(r#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"soon"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let message = bad.text().await.unwrap();
    assert!(message.contains("alerts[0].startsAt"), "{message}");

    // Dashboards: every PromQL expression answers with data from this Prometheus, every
    // TraceQL query parses in vivace.
    check_dashboard_queries(&client, &prometheus, &vivace).await;

    // A restart keeps the alerts and their traces (the file in the data directory).
    let before: Value = client
        .get(vivace.url(&format!("/api/alerts/{fingerprint}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    vivace.restart();
    let after: Value = client
        .get(vivace.url(&format!("/api/alerts/{fingerprint}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["traces"], after["traces"]);
    assert_eq!(before["startsAt"], after["startsAt"]);
}

/// Replaces Grafana's variables with values this test's data has.
fn substitute(query: &str) -> String {
    query
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$service", "checkout")
        .replace("$server", "checkout")
}

async fn check_dashboard_queries(client: &reqwest::Client, prometheus: &Server, vivace: &Vivace) {
    let mut promql = Vec::new();
    let mut traceql = Vec::new();
    for entry in std::fs::read_dir(repo("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        // Variables `label_values(metric, label)` need the metric with that label.
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let definition = variable["definition"].as_str().unwrap_or_default();
            if let Some(inner) = definition
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
            {
                let (metric, label) = inner.split_once(',').unwrap();
                promql.push((
                    path.clone(),
                    variable["name"].clone(),
                    format!("group by ({}) ({})", label.trim(), metric.trim()),
                ));
            }
        }
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    promql.push((path.clone(), panel["title"].clone(), expr.to_string()));
                }
                if target["queryType"] == "traceql" {
                    traceql.push((path.clone(), target["query"].as_str().unwrap().to_string()));
                }
            }
        }
    }
    // The Tempo datasource's trace-to-metrics queries, with the span's service as the tags.
    let provisioning = repo("provisioning/datasources/vivace.yaml");
    let datasources: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&provisioning).unwrap()).unwrap();
    for datasource in datasources["datasources"].as_array().unwrap() {
        for query in datasource["jsonData"]["tracesToMetrics"]["queries"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let expr = query["query"]
                .as_str()
                .unwrap()
                .replace("$$__tags", "service=\"checkout\"");
            promql.push((provisioning.clone(), query["name"].clone(), expr));
        }
    }
    assert!(promql.len() >= 15, "{promql:?}");
    assert!(!traceql.is_empty());
    for (path, title, expr) in &promql {
        let query = substitute(expr);
        // Scrapes every second: the first attempt may come before a series' second sample.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = reqwest::Url::parse_with_params(
                &prometheus.url("/api/v1/query"),
                [("query", query.as_str())],
            )
            .unwrap();
            let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            assert_eq!(
                body["status"],
                "success",
                "{} panel {title}: {query} does not parse or run: {body}",
                path.display()
            );
            let has_data = body["data"]["result"].as_array().is_some_and(|result| {
                result
                    .iter()
                    .any(|series| series["value"][1].as_str() != Some("NaN"))
            });
            if has_data {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} panel {title}: {query} returns no data: {body}",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    for (path, query) in &traceql {
        let query = substitute(query);
        let url =
            reqwest::Url::parse_with_params(&vivace.url("/api/search"), [("q", query.as_str())])
                .unwrap();
        let response = client.get(url).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 200, "{}: {query}: {body}", path.display());
        assert!(
            body["traces"]
                .as_array()
                .is_some_and(|traces| !traces.is_empty()),
            "{}: {query} finds no trace",
            path.display()
        );
    }
}

/// With multi-tenancy, a notification's tenant is `?tenant=` on the webhook URL (Alertmanager
/// cannot send headers); its alerts resolve to that tenant's traces only and are listed to
/// that tenant only. Without `prometheus.url`, traces come from search alone.
#[tokio::test(flavor = "multi_thread")]
async fn alerts_belong_to_the_tenant_of_their_webhook() {
    let vivace = Vivace::start("multitenancy_enabled: true\n");
    let client = reqwest::Client::new();
    // Failing checkout requests in tenant a only.
    let mut resource_spans = Vec::new();
    let mut failing = Vec::new();
    for _ in 0..3 {
        let id = rand_id();
        failing.push(hex::encode(id));
        resource_spans.extend(request(id, true));
    }
    let response = client
        .post(format!("{}/v1/traces", vivace.otlp_http_url()))
        .header("Content-Type", "application/x-protobuf")
        .header("X-Scope-OrgID", "a")
        .body(ExportTraceServiceRequest { resource_spans }.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let now = chrono::Utc::now();
    let payload = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "vivace",
        "groupKey": "{}:{alertname=\"ServiceHighErrorRatio\"}",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "ServiceHighErrorRatio", "service": "checkout", "severity": "warning"},
            "annotations": {"summary": "checkout fails"},
            "startsAt": now.to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph"
        }]
    });
    let unauthenticated = client
        .post(vivace.url("/api/alerts/webhook"))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let accepted = client
        .post(vivace.url("/api/alerts/webhook?tenant=a"))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);

    let list = |tenant: &'static str| {
        let client = client.clone();
        let url = vivace.url("/api/alerts");
        async move {
            client
                .get(url)
                .header("X-Scope-OrgID", tenant)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        let body = list("a").await;
        let alert = body["alerts"][0].clone();
        if !alert["resolvedAt"].as_str().unwrap_or_default().is_empty() {
            break alert;
        }
        assert!(Instant::now() < deadline, "not resolved after 30s: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Computed from the labels as Alertmanager would, since the payload had none.
    assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(
        alert["url"],
        format!("/alerts/{}", alert["fingerprint"].as_str().unwrap())
    );
    let mut found: Vec<String> = alert["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trace| {
            assert_eq!(trace["reason"], "error", "{trace}");
            trace["traceId"].as_str().unwrap().to_string()
        })
        .collect();
    found.sort();
    failing.sort();
    assert_eq!(found, failing);
    assert_eq!(list("b").await["alerts"], serde_json::json!([]));
    let no_tenant = client.get(vivace.url("/api/alerts")).send().await.unwrap();
    assert_eq!(no_tenant.status(), 401);
}
