//! The Grafana files a team copies: every provisioning YAML and dashboard JSON parses, the
//! datasource uids cross-reference (Tempo → Loki/Prometheus, Prometheus exemplars → Tempo,
//! Loki derived fields → Tempo, every dashboard target → a provisioned datasource of its type),
//! every PromQL expression of the dashboards parses (`promtool check rules` on a rule file made
//! of them) and every TraceQL query parses and validates in vivace's TraceQL front end.
//! (tests/alerting.rs runs the same expressions against a live Prometheus and requires data.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn files(directory: &str, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(repo(directory)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(
                &path
                    .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap()
                    .display()
                    .to_string(),
                extensions,
            ));
        } else if extensions
            .iter()
            .any(|extension| path.extension().and_then(|e| e.to_str()) == Some(extension))
        {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()))
}

/// Provisioned datasources by uid → type.
fn datasources() -> BTreeMap<String, (String, Value)> {
    let mut by_uid = BTreeMap::new();
    for path in files("provisioning/datasources", &["yaml", "yml"]) {
        let file = yaml(&path);
        assert_eq!(file["apiVersion"], 1, "{}", path.display());
        for datasource in file["datasources"].as_array().unwrap() {
            let uid = datasource["uid"]
                .as_str()
                .expect("every datasource has a fixed uid");
            let kind = datasource["type"].as_str().unwrap();
            assert!(
                datasource["url"]
                    .as_str()
                    .is_some_and(|url| url.starts_with("http")),
                "{uid} has no URL"
            );
            let previous = by_uid.insert(uid.to_string(), (kind.to_string(), datasource.clone()));
            assert!(previous.is_none(), "uid {uid} provisioned twice");
        }
    }
    by_uid
}

fn assert_points_to(
    datasources: &BTreeMap<String, (String, Value)>,
    uid: &Value,
    kind: &str,
    what: &str,
) {
    let uid = uid
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no datasourceUid"));
    let (actual, _) = datasources
        .get(uid)
        .unwrap_or_else(|| panic!("{what}: uid {uid} is not provisioned"));
    assert_eq!(
        actual, kind,
        "{what}: uid {uid} is a {actual}, not a {kind}"
    );
}

#[test]
fn datasources_cross_reference() {
    let datasources = datasources();
    let kinds: BTreeSet<&str> = datasources
        .values()
        .map(|(kind, _)| kind.as_str())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["loki", "prometheus", "tempo"]));
    for (uid, (kind, datasource)) in &datasources {
        let json = &datasource["jsonData"];
        match kind.as_str() {
            "tempo" => {
                assert_points_to(
                    &datasources,
                    &json["tracesToLogsV2"]["datasourceUid"],
                    "loki",
                    "tracesToLogsV2",
                );
                assert_eq!(json["tracesToLogsV2"]["filterByTraceID"], true);
                assert_points_to(
                    &datasources,
                    &json["tracesToMetrics"]["datasourceUid"],
                    "prometheus",
                    "tracesToMetrics",
                );
                assert_points_to(
                    &datasources,
                    &json["serviceMap"]["datasourceUid"],
                    "prometheus",
                    "serviceMap",
                );
                assert_eq!(json["nodeGraph"]["enabled"], true);
                assert_eq!(json["streamingEnabled"]["search"], true);
                assert_eq!(json["search"]["hide"], false);
                for query in json["tracesToMetrics"]["queries"].as_array().unwrap() {
                    let query = query["query"].as_str().unwrap();
                    assert!(
                        query.contains("$$__tags"),
                        "{query}: $ must be escaped as $$ in provisioning"
                    );
                }
            }
            "prometheus" => {
                let destinations = json["exemplarTraceIdDestinations"].as_array().unwrap();
                for destination in destinations {
                    assert_points_to(
                        &datasources,
                        &destination["datasourceUid"],
                        "tempo",
                        "exemplarTraceIdDestinations",
                    );
                }
                // The labels exemplars carry trace IDs in: the generator's trace_id_label_name
                // and `trace_id`, which OTLP metrics exemplars keep (OTel's Prometheus spec).
                let names: BTreeSet<&str> = destinations
                    .iter()
                    .filter_map(|destination| destination["name"].as_str())
                    .collect();
                let generator_label = vivace::config::Config::default()
                    .metrics_generator
                    .trace_id_label_name;
                assert_eq!(
                    names,
                    BTreeSet::from([generator_label.as_str(), "trace_id"])
                );
            }
            "loki" => {
                for field in json["derivedFields"].as_array().unwrap() {
                    assert_points_to(
                        &datasources,
                        &field["datasourceUid"],
                        "tempo",
                        "derivedFields",
                    );
                    if field["matcherType"] == "regex" {
                        let pattern = field["matcherRegex"].as_str().unwrap();
                        let regex = regex::Regex::new(pattern).unwrap();
                        let line = "payment declined trace_id=4bf92f3577b34da6a3ce929d0e0e4736";
                        let found = regex
                            .captures(line)
                            .and_then(|c| c.get(1))
                            .map(|m| m.as_str());
                        assert_eq!(found, Some("4bf92f3577b34da6a3ce929d0e0e4736"), "{pattern}");
                    }
                }
            }
            other => panic!("{uid}: unexpected type {other}"),
        }
    }
    // The dashboard provider reads the folder compose.yaml mounts the dashboards at.
    let compose = yaml(&repo("deploy/compose.yaml"));
    let grafana_volumes: Vec<String> = compose["services"]["grafana"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for path in files("provisioning/dashboards", &["yaml", "yml"]) {
        let file = yaml(&path);
        for provider in file["providers"].as_array().unwrap() {
            let folder = provider["options"]["path"].as_str().unwrap();
            assert!(
                grafana_volumes.iter().any(|v| v == &format!("../dashboards:{folder}:ro")),
                "provider path {folder} is not where compose.yaml mounts ../dashboards: {grafana_volumes:?}"
            );
        }
    }
    assert!(grafana_volumes
        .iter()
        .any(|v| v == "../provisioning:/etc/grafana/provisioning:ro"));
}

/// Every target of every dashboard: (file, panel title, datasource uid, target).
fn dashboard_targets() -> Vec<(PathBuf, String, String, Value)> {
    let datasources = datasources();
    let mut targets = Vec::new();
    let mut uids = BTreeSet::new();
    let dashboards = files("dashboards", &["json"]);
    assert!(dashboards.len() >= 3, "{dashboards:?}");
    for path in dashboards {
        let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()));
        let uid = dashboard["uid"].as_str().unwrap().to_string();
        assert!(uids.insert(uid.clone()), "dashboard uid {uid} used twice");
        // Grafana 11's schema; older versions are migrated on load.
        assert!(
            dashboard["schemaVersion"].as_u64().unwrap() >= 39,
            "{}",
            path.display()
        );
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            if let Some(uid) = variable["datasource"]["uid"].as_str() {
                assert!(
                    datasources.contains_key(uid),
                    "{}: variable datasource {uid}",
                    path.display()
                );
            }
        }
        let mut ids = BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap().to_string();
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{}: panel id repeated",
                path.display()
            );
            assert!(
                panel["gridPos"]["w"].as_u64().is_some(),
                "{title}: no gridPos"
            );
            let panel_uid = panel["datasource"]["uid"].as_str().unwrap();
            let (panel_kind, _) = datasources.get(panel_uid).unwrap_or_else(|| {
                panic!(
                    "{}: panel {title} uses unprovisioned {panel_uid}",
                    path.display()
                )
            });
            assert_eq!(panel["datasource"]["type"], panel_kind.as_str(), "{title}");
            for target in panel["targets"].as_array().unwrap() {
                let uid = target["datasource"]["uid"]
                    .as_str()
                    .unwrap_or(panel_uid)
                    .to_string();
                let (kind, _) = datasources.get(&uid).unwrap();
                assert_eq!(target["datasource"]["type"], kind.as_str(), "{title}");
                targets.push((path.clone(), title.clone(), uid, target.clone()));
            }
        }
    }
    targets
}

fn substitute(query: &str) -> String {
    query
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$service", "checkout")
        .replace("$server", "checkout")
}

#[test]
fn dashboard_queries_parse() {
    let targets = dashboard_targets();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut promql = 0;
    let mut traceql = 0;
    for (path, title, _, target) in &targets {
        if let Some(expr) = target["expr"].as_str() {
            promql += 1;
            rules.push_str(&format!(
                "      - record: dashboard:expression{promql}\n        expr: {}\n",
                serde_json::to_string(&substitute(expr)).unwrap()
            ));
        }
        if target["queryType"] == "traceql" {
            traceql += 1;
            let query = substitute(target["query"].as_str().unwrap());
            vivace::traceql::parse_and_validate(&query).unwrap_or_else(|error| {
                panic!("{} panel {title}: {query}: {error:?}", path.display())
            });
        }
        if target["queryType"] == "serviceMap" {
            continue;
        }
    }
    assert!(
        promql >= 15 && traceql >= 1,
        "{promql} PromQL, {traceql} TraceQL"
    );
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("dashboards.yml");
    std::fs::write(&file, &rules).unwrap();
    let promtool = "/usr/bin/promtool";
    assert!(
        Path::new(promtool).exists(),
        "{promtool} is missing; install it with: apt-get update && apt-get install -y prometheus"
    );
    let output = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "a dashboard expression does not parse:\n{}{}\n{rules}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Exemplars ride on the latency histograms' `_bucket` series only (the generator writes none
/// on counters, and Prometheus 2.42 keeps them only there): a panel asking for them on another
/// series shows no trace links and costs an exemplar query per refresh.
#[test]
fn exemplars_are_asked_for_only_on_histogram_buckets() {
    let mut with_exemplars = 0;
    for (path, title, _, target) in dashboard_targets() {
        if target["exemplar"] != true {
            continue;
        }
        with_exemplars += 1;
        let expr = target["expr"].as_str().unwrap_or_default();
        assert!(
            expr.contains("_bucket"),
            "{} panel {title:?}: exemplars on for a series that never has any: {expr}",
            path.display()
        );
    }
    assert!(with_exemplars >= 1, "no latency panel shows exemplars");
}
