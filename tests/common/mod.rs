//! Starts the real `vivace` binary on free loopback ports with a temporary data directory.
#![allow(dead_code)]

pub mod prometheus;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a file under `tests/data` (Tempo's recorded answers and blocks, see its README),
/// failing clearly when it is missing.
pub fn test_data(path: &str) -> PathBuf {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path);
    assert!(file.exists(), "test data {} is missing", file.display());
    file
}

/// A loopback port nothing listens on, below the kernel's ephemeral range (32768 and up on
/// Linux) so that no outgoing connection of a client in the same test can take it as its local
/// port before the server binds it. Each call in a process gets a different port; the start is
/// spread by process ID so concurrent test binaries rarely meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7_919)) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN)
}

/// True when a log says a listener could not bind because its port was taken.
pub fn lost_a_port(log: &str) -> bool {
    log.contains("Address already in use")
}

/// The ports one vivace instance listens on.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub http: u16,
    pub otlp_grpc: u16,
    pub otlp_http: u16,
    /// The streaming gRPC API (`server.grpc_listen_port`).
    pub grpc: u16,
    /// The Loki API's own port (`logs.loki_listen_port`); never the default 3100, which
    /// several instances running at once would fight over.
    pub loki: u16,
}

impl Ports {
    pub fn pick() -> Ports {
        Ports {
            http: free_port(),
            otlp_grpc: free_port(),
            otlp_http: free_port(),
            grpc: free_port(),
            loki: free_port(),
        }
    }
}

/// A running vivace process; killed when dropped.
pub struct Vivace {
    pub child: Child,
    pub data: PathBuf,
    pub ports: Ports,
    pub extra_yaml: String,
    pub log: PathBuf,
}

/// Writes the config for `ports` and `data`, deep-merged with `extra_yaml` (which wins; a key
/// set to null there is removed, so vivace's own default applies).
pub fn write_config(data: &Path, ports: Ports, extra_yaml: &str) -> PathBuf {
    let base = format!(
        "server:\n  http_listen_port: {http}\n  grpc_listen_port: {grpc_api}\n  log_level: info\n\
distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          enabled: true\n          endpoint: 127.0.0.1:{grpc}\n        http:\n          enabled: true\n          endpoint: 127.0.0.1:{otlp_http}\n\
ingester:\n  wal_path: {wal}\n\
storage:\n  trace:\n    backend: local\n    local:\n      path: {blocks}\n\
alerts:\n  path: {alerts}\n\
logs:\n  loki_listen_port: {loki}\n",
        http = ports.http,
        grpc = ports.otlp_grpc,
        otlp_http = ports.otlp_http,
        grpc_api = ports.grpc,
        loki = ports.loki,
        wal = data.join("wal").display(),
        blocks = data.join("blocks").display(),
        alerts = data.join("alerts.json").display(),
    );
    let mut config: serde_yaml::Value = serde_yaml::from_str(&base).expect("base config");
    if !extra_yaml.trim().is_empty() {
        let extra: serde_yaml::Value =
            serde_yaml::from_str(extra_yaml).expect("extra config is YAML");
        merge(&mut config, extra);
    }
    let path = data.join("vivace.yaml");
    std::fs::write(
        &path,
        serde_yaml::to_string(&config).expect("config as YAML"),
    )
    .expect("write config");
    path
}

fn merge(base: &mut serde_yaml::Value, extra: serde_yaml::Value) {
    match (base, extra) {
        (serde_yaml::Value::Mapping(base), serde_yaml::Value::Mapping(extra)) => {
            for (key, value) in extra {
                if value.is_null() {
                    base.remove(&key);
                    continue;
                }
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, extra) => *base = extra,
    }
}

impl Vivace {
    /// Starts vivace in a fresh temporary directory and waits until `/ready` answers 200.
    /// `extra_yaml` adds sections; `ingester` and `storage` default to paths in the directory.
    /// Ports are picked again (three tries) when another process took one first.
    pub fn start(extra_yaml: &str) -> Vivace {
        let data = tempfile::Builder::new()
            .prefix("vivace-test-")
            .tempdir()
            .expect("tempdir")
            .keep();
        for _ in 0..2 {
            let ports = Ports::pick();
            let (child, log) = spawn(&data, ports, extra_yaml);
            let mut vivace = Vivace {
                child,
                data: data.clone(),
                ports,
                extra_yaml: extra_yaml.to_string(),
                log,
            };
            match vivace.poll_ready() {
                Ok(()) => return vivace,
                Err(log) if lost_a_port(&log) => {
                    // Dropping would delete the directory the next try uses.
                    let _ = vivace.child.wait();
                    std::mem::forget(vivace);
                }
                Err(log) => panic!("vivace exited before it was ready; log:\n{log}"),
            }
        }
        Vivace::start_in(&data, Ports::pick(), extra_yaml)
    }

    /// Starts vivace with these extra environment variables, in a fresh temporary directory,
    /// and waits until `/ready` answers 200.
    pub fn start_with_environment(extra_yaml: &str, environment: &[(&str, &str)]) -> Vivace {
        let data = tempfile::Builder::new()
            .prefix("vivace-test-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let ports = Ports::pick();
        let (child, log) = spawn_with(&data, ports, extra_yaml, environment);
        let mut vivace = Vivace {
            child,
            data,
            ports,
            extra_yaml: extra_yaml.to_string(),
            log,
        };
        vivace.wait_ready();
        vivace
    }

    /// Starts vivace on an existing data directory (a restart).
    pub fn start_in(data: &Path, ports: Ports, extra_yaml: &str) -> Vivace {
        let (child, log) = spawn(data, ports, extra_yaml);
        let mut vivace = Vivace {
            child,
            data: data.to_path_buf(),
            ports,
            extra_yaml: extra_yaml.to_string(),
            log,
        };
        vivace.wait_ready();
        vivace
    }

    /// Starts vivace without waiting for a plain-HTTP `/ready` (with TLS on, say); follow with
    /// [`Vivace::wait_until`].
    pub fn start_unready(extra_yaml: &str) -> Vivace {
        let data = tempfile::Builder::new()
            .prefix("vivace-test-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let ports = Ports::pick();
        let (child, log) = spawn(&data, ports, extra_yaml);
        Vivace {
            child,
            data,
            ports,
            extra_yaml: extra_yaml.to_string(),
            log,
        }
    }

    fn wait_ready(&mut self) {
        if let Err(log) = self.poll_ready() {
            panic!("vivace exited before it was ready; log:\n{log}");
        }
    }

    /// Waits (60 s at most) until `/ready` answers 200; `Err(log)` when the process exited.
    fn poll_ready(&mut self) -> Result<(), String> {
        let url = format!("http://127.0.0.1:{}/ready", self.ports.http);
        self.poll_until(|| matches!(blocking_get(&url), Ok((200, _))))
    }

    /// Polls `ready` until it holds, failing with the log if vivace exits or 60s pass.
    pub fn wait_until(&mut self, ready: impl FnMut() -> bool) {
        if let Err(log) = self.poll_until(ready) {
            panic!("vivace exited before it was ready; log:\n{log}");
        }
    }

    /// Polls `ready` until it holds (60 s at most); `Err(log)` when the process exited.
    fn poll_until(&mut self, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("(exit {status})\n{}", self.log_text()));
            }
            if ready() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "vivace not ready within 60s; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.ports.http, path)
    }

    pub fn otlp_http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_http)
    }

    /// Posts an encoded `ExportTraceServiceRequest` to OTLP/HTTP, which must be accepted.
    pub async fn push_otlp(&self, client: &reqwest::Client, body: Vec<u8>) {
        let response = client
            .post(format!("{}/v1/traces", self.otlp_http_url()))
            .header("Content-Type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    pub fn otlp_grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_grpc)
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "vivace did not stop within 60s of SIGTERM; log:\n{}",
            self.log_text()
        );
    }

    /// Kills (SIGKILL) and starts again on the same data directory and ports.
    pub fn restart(&mut self) {
        self.kill9();
        let (child, log) = spawn(&self.data, self.ports, &self.extra_yaml);
        self.child = child;
        self.log = log;
        self.wait_ready();
    }
}

impl Drop for Vivace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() && std::env::var_os("VIVACE_KEEP_TEST_DATA").is_none() {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

fn spawn(data: &Path, ports: Ports, extra_yaml: &str) -> (Child, PathBuf) {
    spawn_with(data, ports, extra_yaml, &[])
}

fn spawn_with(
    data: &Path,
    ports: Ports,
    extra_yaml: &str,
    environment: &[(&str, &str)],
) -> (Child, PathBuf) {
    let mut yaml = extra_yaml.to_string();
    if !yaml.contains("ingester:") {
        yaml.push_str(&format!(
            "ingester:\n  wal_path: {}\n",
            data.join("wal").display()
        ));
    }
    if !yaml.contains("storage:") {
        yaml.push_str(&format!(
            "storage:\n  trace:\n    backend: local\n    local:\n      path: {}\n",
            data.join("blocks").display()
        ));
    }
    let config = write_config(data, ports, &yaml);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    let log = data.join(format!("vivace-{stamp}.log"));
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_vivace"))
        .args(["serve", "--config"])
        .arg(&config)
        .envs(environment.iter().copied())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start vivace");
    (child, log)
}

/// The block Tempo v3.0.3 wrote, its time range as Unix seconds around it (the block covers
/// 2022-07-04T11:11:09Z..11:11:35Z).
pub const TEMPO_BLOCK_WINDOW: (u32, u32) = (1_656_933_000, 1_656_933_600);

/// Starts vivace over a bucket holding only the block Tempo v3.0.3 wrote
/// (`tests/data/tempo-blocks`). The compactor is off: retention would expire a 2022 block.
pub fn start_over_tempo_block() -> Vivace {
    let data = tempfile::Builder::new()
        .prefix("vivace-tempo-bucket-")
        .tempdir()
        .expect("tempdir")
        .keep();
    copy_tree(
        &test_data("tempo-blocks/generated-by-tempo-v3.0.3/vParquet4"),
        &data.join("blocks"),
    );
    Vivace::start_in(&data, Ports::pick(), "compactor:\n  enabled: false\n")
}

/// The value of one series (`name{labels}` exactly as exposed) in a Prometheus text exposition.
pub fn sample_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// A minimal blocking HTTP GET (status, body) for readiness polls, without an async runtime.
pub fn blocking_get(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("http only"))?;
    let (host, path) = rest
        .split_once('/')
        .map(|(host, path)| (host, format!("/{path}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Runs a Python script from tests/clients, failing with install instructions when the
/// OpenTelemetry SDK is missing.
pub fn run_python(script: &str, args: &[&str]) -> String {
    run_python_with_environment(script, args, &[])
}

/// [`run_python`] with extra environment variables (OTEL_RESOURCE_ATTRIBUTES, say).
pub fn run_python_with_environment(
    script: &str,
    args: &[&str],
    environment: &[(&str, &str)],
) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let output = Command::new("python3")
        .arg(&path)
        .args(args)
        .envs(environment.iter().copied())
        .output()
        .expect("python3 must be installed");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    if stderr.contains("ModuleNotFoundError") {
        panic!("a Python client library is missing; run .ci/run (or `python3 -m pip install -r tests/clients/requirements.txt`):\n{stderr}");
    }
    assert!(output.status.success(), "{script} failed:\n{stderr}");
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Spans of a trace JSON body (`resourceSpans` or v1 `batches`) keyed by span ID, with the
/// resource and scope folded into each span and attribute lists turned into maps, so the
/// order of batches and attributes (which Tempo does not keep) is ignored.
pub fn canonical_spans(
    body: &serde_json::Value,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    use serde_json::Value;
    fn attribute_map(list: Option<&Value>) -> Value {
        let map: std::collections::BTreeMap<String, Value> = list
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|item| {
                (
                    item["key"].as_str().unwrap_or_default().to_string(),
                    item["value"].clone(),
                )
            })
            .collect();
        serde_json::to_value(map).unwrap_or_default()
    }
    let batches = body.get("resourceSpans").or_else(|| body.get("batches"));
    let mut spans = std::collections::BTreeMap::new();
    for batch in batches.and_then(Value::as_array).into_iter().flatten() {
        let resource = attribute_map(batch["resource"].get("attributes"));
        for scope_batch in batch["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope_batch["spans"].as_array().into_iter().flatten() {
                let mut span = span.clone();
                let attributes = attribute_map(span.get("attributes"));
                let Some(object) = span.as_object_mut() else {
                    continue;
                };
                object.insert("attributes".into(), attributes);
                object.insert("resource".into(), resource.clone());
                object.insert("scope".into(), scope_batch["scope"].clone());
                for event in object
                    .get_mut("events")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    let attributes = attribute_map(event.get("attributes"));
                    if let Some(event) = event.as_object_mut() {
                        event.insert("attributes".into(), attributes);
                    }
                }
                for link in object
                    .get_mut("links")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    let attributes = attribute_map(link.get("attributes"));
                    if let Some(link) = link.as_object_mut() {
                        link.insert("attributes".into(), attributes);
                    }
                }
                let key = span["spanId"].as_str().unwrap_or_default().to_string();
                spans.insert(key, span);
            }
        }
    }
    spans
}

/// Posts the golden dataset (`tests/data/tempo-api/dataset`) over OTLP/HTTP JSON.
pub async fn load_dataset(vivace: &Vivace) {
    let client = reqwest::Client::new();
    let mut batches: Vec<_> = std::fs::read_dir(test_data("tempo-api/dataset"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("batch-")
        })
        .collect();
    batches.sort();
    for batch in batches {
        let response = client
            .post(format!("{}/v1/traces", vivace.otlp_http_url()))
            .header("Content-Type", "application/json")
            .body(std::fs::read(&batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", batch.display());
    }
}

/// Copies a directory tree (e.g. a Tempo-written bucket into a test's data directory).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Calls a server-streaming gRPC method of vivace on `port` (h2c) with a raw prost codec,
/// naming `tenant` in `x-scope-orgid` if given; all messages, or the status. Requests of any
/// size are sent, so tests can exceed the server's decoding limit.
pub async fn stream_rpc<Req, Resp>(
    port: u16,
    method: &'static str,
    request: Req,
    tenant: Option<&str>,
) -> Result<Vec<Resp>, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connect over HTTP/2");
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(request);
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-scope-orgid", tenant.parse().unwrap());
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    let mut stream = grpc
        .server_streaming(
            request,
            path,
            tonic_prost::ProstCodec::<Req, Resp>::default(),
        )
        .await?
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}
