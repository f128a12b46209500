//! Running on Kubernetes: the variables the kubelet sets for a Service named `vivace` do not
//! stop startup, and `deploy/kubernetes/vivace.yaml` carries the probes, pod security and
//! memory settings a cluster needs.

mod common;

use std::path::{Path, PathBuf};

use common::{blocking_get, Vivace};
use serde_yaml::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The variables every pod in the namespace gets for a Service `vivace` with ports 3200, 9095,
/// 4317 and 4318 (unless the pod sets `enableServiceLinks: false`).
fn service_link_variables() -> Vec<(&'static str, &'static str)> {
    vec![
        ("VIVACE_SERVICE_HOST", "10.0.0.1"),
        ("VIVACE_SERVICE_PORT", "3200"),
        ("VIVACE_SERVICE_PORT_HTTP", "3200"),
        ("VIVACE_SERVICE_PORT_OTLP_GRPC", "4317"),
        ("VIVACE_PORT", "tcp://10.0.0.1:3200"),
        ("VIVACE_PORT_3200_TCP", "tcp://10.0.0.1:3200"),
        ("VIVACE_PORT_3200_TCP_PROTO", "tcp"),
        ("VIVACE_PORT_3200_TCP_PORT", "3200"),
        ("VIVACE_PORT_3200_TCP_ADDR", "10.0.0.1"),
        ("VIVACE_PORT_9095_TCP", "tcp://10.0.0.1:9095"),
        ("VIVACE_PORT_4317_TCP_PORT", "4317"),
        ("VIVACE_PORT_4318_TCP_ADDR", "10.0.0.1"),
    ]
}

#[test]
fn starts_with_kubernetes_service_variables_set() {
    let mut environment = service_link_variables();
    // A real override beside them still applies.
    environment.push(("VIVACE_MULTITENANCY_ENABLED", "true"));
    let vivace =
        Vivace::start_with_environment("server:\n  log_level: vivace=debug,info\n", &environment);
    let (status, body) = blocking_get(&vivace.url("/ready")).unwrap();
    assert_eq!(status, 200, "{body}");
    // Multi-tenancy is on: a search without X-Scope-OrgID is refused.
    let (status, _) = blocking_get(&vivace.url("/api/search?q=%7B%7D")).unwrap();
    assert_eq!(status, 401, "VIVACE_MULTITENANCY_ENABLED=true applied");
    let log = vivace.log_text();
    for (name, _) in service_link_variables() {
        assert!(
            log.contains(name) && log.contains("ignored"),
            "{name} is logged as ignored; log:\n{log}"
        );
    }
}

/// A quantity such as `2Gi` or `512Mi` in bytes.
fn quantity_bytes(quantity: &Value) -> u64 {
    let text = quantity.as_str().expect("a quantity is a string");
    vivace::config::memory::parse_size(text).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn the_manifest_has_probes_restricted_security_and_one_memory_limit() {
    let manifests = std::fs::read_to_string(repo("deploy/kubernetes/vivace.yaml")).unwrap();
    let mut kinds = Vec::new();
    let mut memory_limit_in_config = None;
    let mut container_limit = None;
    let mut run_as_user = None;
    for document in serde_yaml::Deserializer::from_str(&manifests) {
        let document = <Value as serde::Deserialize>::deserialize(document).unwrap();
        let kind = document["kind"].as_str().unwrap().to_string();
        if kind == "ConfigMap" {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("vivace.yaml");
            std::fs::write(&path, document["data"]["vivace.yaml"].as_str().unwrap()).unwrap();
            let (config, report) =
                vivace::config::Config::load_with_cgroup(Some(&path), Vec::new(), None)
                    .expect("the ConfigMap's vivace.yaml is a valid vivace config");
            assert_eq!(config.server.http_listen_address, "0.0.0.0");
            let budget = report
                .memory_budget
                .expect("the ConfigMap sets server.memory_limit");
            memory_limit_in_config = Some(budget.limit);
        }
        if kind == "StatefulSet" {
            let spec = &document["spec"];
            assert_eq!(spec["volumeClaimTemplates"][0]["metadata"]["name"], "data");
            let pod = &spec["template"]["spec"];
            assert_eq!(pod["enableServiceLinks"], false);
            let pod_security = &pod["securityContext"];
            assert_eq!(pod_security["runAsNonRoot"], true);
            assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
            run_as_user = pod_security["runAsUser"].as_u64();
            assert!(
                run_as_user.is_some_and(|user| user > 0),
                "numeric non-root runAsUser"
            );
            let containers = pod["containers"].as_sequence().unwrap();
            assert_eq!(containers.len(), 1);
            let container = &containers[0];

            let image = container["image"].as_str().unwrap();
            assert_eq!(image, "vivace:local", "no public registry by default");
            assert_eq!(container["imagePullPolicy"], "IfNotPresent");

            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                assert_eq!(container[probe]["httpGet"]["path"], "/ready", "{probe}");
            }
            let startup = &container["startupProbe"];
            let startup_seconds = startup["periodSeconds"].as_u64().unwrap()
                * startup["failureThreshold"].as_u64().unwrap();
            assert!(
                startup_seconds >= 600,
                "the startup probe allows {startup_seconds} s for WAL replay; 10 minutes needed"
            );

            let security = &container["securityContext"];
            assert_eq!(security["allowPrivilegeEscalation"], false);
            assert_eq!(security["readOnlyRootFilesystem"], true);
            assert_eq!(security["capabilities"]["drop"][0], "ALL");
            let data_mount = container["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|mount| mount["mountPath"] == "/var/lib/vivace")
                .expect("the data volume is mounted");
            assert_eq!(data_mount["name"], "data");
            assert_ne!(data_mount["readOnly"], true, "the data volume is writable");

            let resources = &container["resources"];
            let limit = quantity_bytes(&resources["limits"]["memory"]);
            assert_eq!(
                quantity_bytes(&resources["requests"]["memory"]),
                limit,
                "memory requested = limit"
            );
            container_limit = Some(limit);
        }
        kinds.push(kind);
    }
    assert_eq!(kinds, ["ConfigMap", "Service", "Service", "StatefulSet"]);
    assert_eq!(
        memory_limit_in_config, container_limit,
        "server.memory_limit in the ConfigMap equals the container's memory limit"
    );

    // The image runs as the same numeric user.
    let dockerfile = std::fs::read_to_string(repo("deploy/Dockerfile")).unwrap();
    let user = run_as_user.unwrap();
    assert!(
        dockerfile.contains(&format!("USER {user}:{user}"))
            && dockerfile.contains(&format!("--uid {user}")),
        "deploy/Dockerfile runs as the numeric user {user} of runAsUser"
    );
}
