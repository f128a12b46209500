//! What users run from `deploy/`, where they put it.
//!
//! The container image without a container engine: the same binary run the way
//! `deploy/Dockerfile` runs it (its ENV, ENTRYPOINT and CMD parsed from the file, container paths
//! mapped to the files its COPY lines take from the repository), reached on every port from the
//! machine's non-loopback address, with its baked config and with `docker run vivace --demo`.
//! Compose's wiring: applications' OTLP metrics reach Prometheus once, with their exemplars;
//! ports published on loopback; Prometheus and Alertmanager at the versions the tests run.
//! Loki clients' default port, 3100.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::prometheus::Prometheus;
use common::{blocking_get, free_port, Vivace};
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()))
}

/// The runtime stage of `deploy/Dockerfile`, as a container engine would run it.
#[derive(Debug, Default)]
struct Image {
    environment: Vec<(String, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    /// Container path → repository path, from `COPY <repo path> <container path>`.
    copies: BTreeMap<String, PathBuf>,
    /// Container path of the binary the build stage copies in (`COPY --from=build`).
    binary: String,
    exposed: BTreeSet<u16>,
}

/// Parses the last stage of `deploy/Dockerfile` (continuation lines joined, comments skipped).
fn image() -> Image {
    let text = std::fs::read_to_string(repo("deploy/Dockerfile")).unwrap();
    let joined = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let mut image = Image::default();
    for line in joined.lines() {
        let line = line.trim();
        let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match instruction {
            // Each stage starts afresh; only the last one is the image.
            "FROM" => image = Image::default(),
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (name, value) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("ENV {rest}: use the NAME=value form"));
                    image.environment.push((name.into(), value.into()));
                }
            }
            "ENTRYPOINT" => {
                image.entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in exec form")
            }
            "CMD" => image.cmd = serde_json::from_str(rest).expect("CMD in exec form"),
            "EXPOSE" => {
                image.exposed = rest
                    .split_whitespace()
                    .map(|port| port.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
                    .collect()
            }
            "COPY" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                if parts[0].starts_with("--from=") {
                    image.binary = parts[parts.len() - 1].to_string();
                } else {
                    image
                        .copies
                        .insert(parts[parts.len() - 1].to_string(), repo(parts[0]));
                }
            }
            _ => {}
        }
    }
    assert!(
        !image.entrypoint.is_empty(),
        "the Dockerfile has no ENTRYPOINT"
    );
    image
}

impl Image {
    /// A container path replaced by the repository file the image holds there.
    fn host_path(&self, value: &str) -> String {
        match self.copies.get(value) {
            Some(path) => path.display().to_string(),
            None => value.to_string(),
        }
    }

    /// Starts vivace as `docker run vivace [arguments]` would (no arguments: the CMD), with the
    /// image's environment plus `extra` (the test's data directory and ports), and waits for
    /// `/ready` on `ready_port`.
    fn run(&self, arguments: Option<&[&str]>, extra: &[(String, String)], ready_port: u16) -> Run {
        assert_eq!(
            self.entrypoint[0], self.binary,
            "the ENTRYPOINT runs the binary built into the image"
        );
        let mut command_line: Vec<String> = self.entrypoint[1..].to_vec();
        match arguments {
            Some(arguments) => command_line.extend(arguments.iter().map(|a| a.to_string())),
            None => command_line.extend(self.cmd.iter().cloned()),
        }
        let data = tempfile::Builder::new()
            .prefix("vivace-image-")
            .tempdir()
            .unwrap();
        let log = data.path().join("vivace.log");
        let child = Command::new(env!("CARGO_BIN_EXE_vivace"))
            .args(command_line.iter().map(|argument| self.host_path(argument)))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(
                self.environment
                    .iter()
                    .map(|(name, value)| (name.clone(), self.host_path(value))),
            )
            .envs(extra.iter().cloned())
            .envs(data_environment(data.path()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start vivace");
        let mut run = Run {
            child,
            log,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = format!("http://127.0.0.1:{ready_port}/ready");
        loop {
            if let Ok(Some(status)) = run.child.try_wait() {
                panic!("vivace exited ({status}):\n{}", run.log_text());
            }
            if matches!(blocking_get(&ready), Ok((200, _))) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "vivace not ready within 60s:\n{}",
                run.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The image keeps its state under /var/lib/vivace; tests use a temporary directory instead.
fn data_environment(data: &Path) -> Vec<(String, String)> {
    vec![
        (
            "VIVACE_INGESTER__WAL_PATH".into(),
            data.join("wal").display().to_string(),
        ),
        (
            "VIVACE_STORAGE__TRACE__LOCAL__PATH".into(),
            data.join("blocks").display().to_string(),
        ),
        (
            "VIVACE_ALERTS__PATH".into(),
            data.join("alerts.json").display().to_string(),
        ),
    ]
}

/// A vivace process run as the image runs it; killed on drop.
struct Run {
    child: Child,
    log: PathBuf,
    _data: tempfile::TempDir,
}

impl Run {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The machine's first non-loopback IPv4 address (`hostname -I`, else the source address of a
/// UDP socket connected towards a public address, which sends nothing). Under CI=true a machine
/// without one fails the test; elsewhere too, since nothing else can show the image reachable.
fn outside_address() -> Ipv4Addr {
    let from_hostname = Command::new("hostname")
        .arg("-I")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).to_string())
        .unwrap_or_default();
    let candidate = from_hostname
        .split_whitespace()
        .filter_map(|word| word.parse::<Ipv4Addr>().ok())
        .find(|address| !address.is_loopback() && !address.is_unspecified())
        .or_else(|| {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.connect("192.0.2.1:9").ok()?;
            match socket.local_addr().ok()?.ip() {
                IpAddr::V4(address) if !address.is_loopback() && !address.is_unspecified() => {
                    Some(address)
                }
                _ => None,
            }
        });
    candidate.unwrap_or_else(|| {
        panic!(
            "this machine has no non-loopback IPv4 address (hostname -I said {from_hostname:?}), \
             so nothing can show the image reachable from outside (CI={:?})",
            std::env::var("CI").ok()
        )
    })
}

fn connects(address: Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::new(IpAddr::V4(address), port),
        Duration::from_secs(2),
    )
    .is_ok()
}

/// The listeners of one image run, each on a free port given through the environment with a
/// loopback host, so only the image's own setting can make it reachable from outside.
struct Listeners {
    http: u16,
    grpc: u16,
    otlp_grpc: u16,
    otlp_http: u16,
    loki: u16,
    zipkin: u16,
    jaeger_thrift_http: u16,
    jaeger_grpc: u16,
}

impl Listeners {
    fn pick() -> Listeners {
        Listeners {
            http: free_port(),
            grpc: free_port(),
            otlp_grpc: free_port(),
            otlp_http: free_port(),
            loki: free_port(),
            zipkin: free_port(),
            jaeger_thrift_http: free_port(),
            jaeger_grpc: free_port(),
        }
    }

    fn environment(&self) -> Vec<(String, String)> {
        let endpoint = |port: u16| format!("127.0.0.1:{port}");
        [
            ("VIVACE_SERVER__HTTP_LISTEN_PORT", self.http.to_string()),
            ("VIVACE_SERVER__GRPC_LISTEN_PORT", self.grpc.to_string()),
            ("VIVACE_LOGS__LOKI_LISTEN_PORT", self.loki.to_string()),
            (
                "VIVACE_DISTRIBUTOR__RECEIVERS__OTLP__PROTOCOLS__GRPC__ENDPOINT",
                endpoint(self.otlp_grpc),
            ),
            (
                "VIVACE_DISTRIBUTOR__RECEIVERS__OTLP__PROTOCOLS__HTTP__ENDPOINT",
                endpoint(self.otlp_http),
            ),
            (
                "VIVACE_DISTRIBUTOR__RECEIVERS__ZIPKIN__ENDPOINT",
                endpoint(self.zipkin),
            ),
            (
                "VIVACE_DISTRIBUTOR__RECEIVERS__JAEGER__PROTOCOLS__THRIFT_HTTP__ENDPOINT",
                endpoint(self.jaeger_thrift_http),
            ),
            (
                "VIVACE_DISTRIBUTOR__RECEIVERS__JAEGER__PROTOCOLS__GRPC__ENDPOINT",
                endpoint(self.jaeger_grpc),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }

    fn named(&self) -> Vec<(&'static str, u16)> {
        vec![
            ("HTTP API and UI", self.http),
            ("gRPC", self.grpc),
            ("OTLP gRPC", self.otlp_grpc),
            ("OTLP HTTP", self.otlp_http),
            ("Loki API", self.loki),
            ("Zipkin", self.zipkin),
            ("Jaeger thrift_http", self.jaeger_thrift_http),
            ("Jaeger gRPC", self.jaeger_grpc),
        ]
    }
}

/// Every listener answers on the machine's outside address; a loopback-only listener does not
/// (the control: on this machine, binding 127.0.0.1 really is unreachable from there).
fn assert_reachable_from_outside(run: &Run, listeners: &Listeners) {
    let outside = outside_address();
    let control = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let control_port = control.local_addr().unwrap().port();
    assert!(
        !connects(outside, control_port),
        "{outside} reaches a loopback-only listener: this machine cannot tell them apart"
    );
    for (name, port) in listeners.named() {
        assert!(
            connects(outside, port),
            "{name} (port {port}) is not reachable on {outside}:\n{}",
            run.log_text()
        );
    }
    let (status, body) = blocking_get(&format!("http://{outside}:{}/ready", listeners.http))
        .expect("GET /ready from outside");
    assert_eq!(status, 200, "{body}");
    let (status, body) = blocking_get(&format!("http://{outside}:{}/ready", listeners.loki))
        .expect("GET the Loki port's /ready from outside");
    assert_eq!(status, 200, "{body}");
}

/// The ports the image exposes are those of the listeners its baked config turns on.
#[test]
fn the_image_exposes_the_ports_its_config_listens_on() {
    let image = image();
    let config_path = image.host_path(
        &image
            .environment
            .iter()
            .find(|(name, _)| name == "VIVACE_CONFIG_FILE")
            .map(|(_, value)| value.clone())
            .expect("the image names its config in VIVACE_CONFIG_FILE, so --demo alone keeps it"),
    );
    let environment: Vec<(String, String)> = image
        .environment
        .iter()
        .filter(|(name, _)| name != "VIVACE_CONFIG_FILE")
        .cloned()
        .collect();
    let (config, _) =
        vivace::config::Config::load_with_cgroup(Some(Path::new(&config_path)), environment, None)
            .expect("the baked config loads with the image's environment");
    let port_of = |endpoint: &str| -> u16 { endpoint.rsplit(':').next().unwrap().parse().unwrap() };
    let otlp = &config.distributor.receivers.otlp.protocols;
    let expected = BTreeSet::from([
        config.server.http_listen_port,
        config.server.grpc_listen_port,
        port_of(&otlp.grpc.endpoint),
        port_of(&otlp.http.endpoint),
        config.logs.loki_listen_port,
    ]);
    assert_eq!(image.exposed, expected, "EXPOSE in deploy/Dockerfile");
    assert_eq!(config.server.http_listen_address, "0.0.0.0");
    assert!(otlp.grpc.endpoint.starts_with("0.0.0.0:"));
    // Standalone: nothing in the baked config names a container of compose.
    let baked = std::fs::read_to_string(&config_path).unwrap();
    for compose_host in ["prometheus:", "grafana:", "alertmanager:", "vivace:"] {
        assert!(
            !baked.contains(&format!("//{compose_host}")),
            "{config_path} names compose's {compose_host}, unreachable from a standalone container"
        );
    }
    assert_eq!(config.prometheus.url, "");
}

/// `docker run vivace`: the CMD with the baked config.
#[test]
fn the_image_as_built_listens_on_every_interface() {
    let image = image();
    let listeners = Listeners::pick();
    let run = image.run(None, &listeners.environment(), listeners.http);
    assert_reachable_from_outside(&run, &listeners);
}

/// `docker run vivace --demo`: the arguments replace the CMD, yet the image still listens on
/// every interface with its baked config, its service pages work without compose's Prometheus,
/// and the demo's log links open the UI's trace page.
#[test]
fn docker_run_vivace_demo_is_reachable_and_links_to_the_ui() {
    let image = image();
    let listeners = Listeners::pick();
    let run = image.run(Some(&["--demo"]), &listeners.environment(), listeners.http);
    assert_reachable_from_outside(&run, &listeners);

    let link = regex::Regex::new(r"demo trace: (https?://[^\s/]+)/trace/([0-9a-f]{32})").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (base, trace_id) = loop {
        let log = run.log_text();
        if let Some(found) = link.captures(&log) {
            break (found[1].to_string(), found[2].to_string());
        }
        assert!(
            Instant::now() < deadline,
            "no demo trace link to the UI's /trace/<id> within 30 s:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(base, format!("http://localhost:{}", listeners.http));
    let trace_page = format!("http://127.0.0.1:{}/trace/{trace_id}", listeners.http);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = blocking_get(&trace_page).expect("GET the trace page");
        if status == 200 && body.contains("<html") {
            break;
        }
        assert!(Instant::now() < deadline, "{trace_page}: {status}\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Standalone, the service pages chart vivace's own TraceQL metrics: their Prometheus
    // queries are not sent to a compose host that does not exist here (a 502 on every chart).
    let base = format!("http://127.0.0.1:{}", listeners.http);
    let (status, body) = blocking_get(&format!("{base}/services/frontend")).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = blocking_get(&format!("{base}/api/ui/prom/query?query=up")).unwrap();
    assert_eq!(
        (status, body.contains("prometheus.url is not set")),
        (404, true),
        "{body}"
    );
}

fn compose() -> serde_yaml::Value {
    yaml(&repo("deploy/compose.yaml"))
}

/// `X.Y.Z` from a `--version` line such as `prometheus, version 2.42.0+ds (branch: ...)`.
fn installed_version(program: &str) -> String {
    let output = Command::new(program)
        .arg("--version")
        .output()
        .unwrap_or_else(|error| {
            panic!("{program} is missing ({error}); tests/run.sh installs it from Debian")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let version = regex::Regex::new(r"version (\d+\.\d+\.\d+)").unwrap();
    version
        .captures(&text)
        .map(|found| found[1].to_string())
        .unwrap_or_else(|| panic!("{program} --version: {text}"))
}

#[test]
fn compose_publishes_on_loopback_runs_the_tested_versions_and_serves_loki_on_3100() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    for (name, service) in services {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().expect("ports as strings");
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name:?} publishes {port} on every interface of the host; vivace and Grafana \
                 run without authentication in compose"
            );
        }
    }
    for (service, program, image) in [
        ("prometheus", "/usr/bin/prometheus", "prom/prometheus"),
        (
            "alertmanager",
            "/usr/bin/prometheus-alertmanager",
            "prom/alertmanager",
        ),
    ] {
        let expected = format!("{image}:v{}", installed_version(program));
        assert_eq!(
            compose["services"][service]["image"].as_str(),
            Some(expected.as_str()),
            "compose runs the {service} the tests run"
        );
    }
    // Loki's port: published, and where Grafana's Loki datasource points.
    let loki_port = vivace::config::Config::default().logs.loki_listen_port;
    assert_eq!(loki_port, 3100);
    let published: Vec<&str> = compose["services"]["vivace"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|port| port.as_str())
        .collect();
    assert!(
        published.contains(&format!("127.0.0.1:{loki_port}:{loki_port}").as_str()),
        "{published:?}"
    );
    let datasources = yaml(&repo("provisioning/datasources/vivace.yaml"));
    let loki = datasources["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|datasource| datasource["type"] == "loki")
        .expect("a Loki datasource");
    assert_eq!(
        loki["url"].as_str(),
        Some(format!("http://vivace:{loki_port}").as_str())
    );
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `deploy/prometheus/prometheus.yml` with test addresses and 1 s intervals.
fn prometheus_config(vivace_port: u16) -> String {
    let mut config = common::prometheus::deploy_config(vivace_port);
    // No Alertmanager in this test.
    if let Some(root) = config.as_mapping_mut() {
        root.remove("alerting");
    }
    serde_yaml::to_string(&config).unwrap()
}

/// Compose's vivace (the image's environment, compose's `environment` with compose's host names
/// turned into the test's addresses) and Prometheus (deploy/prometheus/prometheus.yml): the
/// Python SDK's metrics arrive once, by remote write, with exemplars that open its traces; the
/// generator's series arrive once, by scrape.
#[tokio::test(flavor = "multi_thread")]
async fn compose_sends_application_metrics_to_prometheus_once_with_exemplars() {
    let image = image();
    let listeners = Listeners::pick();
    let prometheus_port = free_port();
    let prometheus = Prometheus::start_on(prometheus_port, &prometheus_config(listeners.http));
    let compose = compose();
    let mut environment = listeners.environment();
    let compose_environment = compose["services"]["vivace"]["environment"]
        .as_mapping()
        .expect("compose gives vivace an environment mapping");
    for (name, value) in compose_environment {
        let value = value
            .as_str()
            .expect("string values")
            .replace("http://prometheus:9090", &prometheus.url(""));
        environment.push((name.as_str().unwrap().to_string(), value));
    }
    // Were the generator's series remote-written too, they would show within a second.
    environment.push((
        "VIVACE_METRICS_GENERATOR__REMOTE_WRITE_INTERVAL".into(),
        "1s".into(),
    ));
    let run = image.run(None, &environment, listeners.http);
    assert!(!run.log_text().contains("go nowhere"), "{}", run.log_text());

    let output = common::run_python(
        "otel_metrics.py",
        &[
            "--protocol",
            "http",
            "--endpoint",
            &format!("http://127.0.0.1:{}", listeners.otlp_http),
            "--service",
            "web",
        ],
    );
    let parsed: Value = serde_json::from_str(output.trim()).expect("client output is JSON");
    let mut trace_ids: Vec<String> = parsed["trace_ids"]
        .as_array()
        .expect("trace_ids")
        .iter()
        .filter_map(|id| id.as_str().map(str::to_string))
        .collect();
    trace_ids.sort();

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let exemplar_ids = loop {
        let now = now_s();
        let url = reqwest::Url::parse_with_params(
            &prometheus.url("/api/v1/query_exemplars"),
            [
                (
                    "query",
                    "app_request_duration_milliseconds_bucket{job=\"shop/web\"}".to_string(),
                ),
                ("start", (now - 600).to_string()),
                ("end", (now + 600).to_string()),
            ],
        )
        .unwrap();
        let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        let mut ids: Vec<String> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
            .filter_map(|exemplar| exemplar["labels"]["trace_id"].as_str())
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        if ids.len() == trace_ids.len() {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "no exemplars of the application's histogram in Prometheus after 60 s: {body}\n\
             --- prometheus ---\n{}\n--- vivace ---\n{}",
            prometheus.log(),
            run.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(exemplar_ids, trace_ids);
    for trace_id in &exemplar_ids {
        let (status, _) = blocking_get(&format!(
            "http://127.0.0.1:{}/api/v2/traces/{trace_id}",
            listeners.http
        ))
        .unwrap();
        assert_eq!(status, 200, "exemplar trace {trace_id} opens on vivace");
    }
    // One series per label set: the counter arrived by one path only.
    let orders = prometheus
        .query_vector(&client, "app_orders_total{job=\"shop/web\"}")
        .await
        .unwrap();
    assert_eq!(orders, vec![5.0], "app_orders_total in Prometheus");

    // The generator's series come from the scrape (job="vivace") and from nowhere else.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scraped = prometheus
            .query_vector(
                &client,
                "traces_spanmetrics_calls_total{job=\"vivace\",service=\"web\"}",
            )
            .await
            .unwrap();
        if !scraped.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the generator's series were not scraped:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let written = prometheus
        .query_vector(&client, "traces_spanmetrics_calls_total{job!=\"vivace\"}")
        .await
        .unwrap();
    assert!(
        written.is_empty(),
        "the generator's series also arrived by remote write: {written:?}"
    );
}

/// Waits until nothing listens on 127.0.0.1:`port` (another vivace of an earlier test may still
/// be stopping); every other test passes its own Loki port, so nothing else should take it.
fn wait_until_free(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "127.0.0.1:{port} stayed taken for 60 s; something else on this machine holds it \
             (ss -ltnp 'sport = :{port}')"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Promtail, Alloy and Grafana's Loki datasource send to and read from :3100 unless told
/// otherwise; vivace answers there by default, as Loki does.
#[tokio::test(flavor = "multi_thread")]
async fn loki_push_and_query_work_on_3100_by_default() {
    const LOKI_DEFAULT_PORT: u16 = 3100;
    wait_until_free(LOKI_DEFAULT_PORT);
    // null removes the harness's own port: vivace's default applies.
    let vivace = Vivace::start("logs:\n  loki_listen_port: null\n");
    let loki = format!("http://127.0.0.1:{LOKI_DEFAULT_PORT}");
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let push = serde_json::json!({
        "streams": [{
            "stream": {"service_name": "cart", "job": "promtail"},
            "values": [[now_ns.to_string(), "cart checkout failed trace_id=4bf92f3577b34da6a3ce929d0e0e4736"]]
        }]
    });
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{loki}/loki/api/v1/push"))
        .json(&push)
        .send()
        .await
        .unwrap_or_else(|error| panic!("no Loki API on {loki}: {error}\n{}", vivace.log_text()));
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let start = now_ns - 60_000_000_000;
    let end = now_ns + 60_000_000_000;
    let url = reqwest::Url::parse_with_params(
        &format!("{loki}/loki/api/v1/query_range"),
        [
            (
                "query",
                "{service_name=\"cart\"} |= \"checkout failed\"".to_string(),
            ),
            ("start", start.to_string()),
            ("end", end.to_string()),
        ],
    )
    .unwrap();
    let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "success", "{body}");
    let lines: Vec<&str> = body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|stream| stream["values"].as_array().into_iter().flatten())
        .filter_map(|value| value[1].as_str())
        .collect();
    assert_eq!(
        lines,
        ["cart checkout failed trace_id=4bf92f3577b34da6a3ce929d0e0e4736"],
        "{body}"
    );
    let (status, _) = blocking_get(&format!("{loki}/ready")).unwrap();
    assert_eq!(status, 200);
}

/// The image ships `cargo build --release`: stripped, without debug information (about 190 MB
/// with it); the symbols live in the `profiling` profile, which inherits release.
#[test]
fn the_release_profile_ships_a_stripped_binary_and_profiling_keeps_symbols() {
    let manifest = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
    let profile = |name: &str| -> BTreeMap<String, String> {
        let header = format!("[profile.{name}]");
        let start = manifest
            .find(&header)
            .unwrap_or_else(|| panic!("Cargo.toml has no {header}"));
        manifest[start + header.len()..]
            .lines()
            .skip(1)
            .take_while(|line| !line.starts_with('['))
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
            .collect()
    };
    let release = profile("release");
    assert_eq!(release.get("strip").map(String::as_str), Some("true"));
    assert_eq!(release.get("debug").map(String::as_str), Some("false"));
    let profiling = profile("profiling");
    assert_eq!(
        profiling.get("inherits").map(String::as_str),
        Some("\"release\"")
    );
    assert_eq!(profiling.get("strip").map(String::as_str), Some("false"));
    assert_ne!(profiling.get("debug").map(String::as_str), Some("false"));
    let dockerfile = std::fs::read_to_string(repo("deploy/Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release"));
}
