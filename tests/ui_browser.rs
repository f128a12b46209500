//! The built-in web UI end to end: the real binary with `--demo` on free ports, its pages and
//! assets over HTTP (content types, ETags, gzip, the service-graph and Prometheus-proxy
//! endpoints), and a headless Debian chromium driven by playwright-core (`tests/ui/run.mjs`)
//! walking every page as a user would. `tests/run.sh` installs chromium and the npm package.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{blocking_get, write_config, Ports};

/// vivace with `--demo`, killed when dropped.
struct DemoVivace {
    child: Child,
    ports: Ports,
    data: PathBuf,
}

impl DemoVivace {
    /// Ports are picked again (three tries) when another process took one first.
    fn start(extra_yaml: &str) -> DemoVivace {
        let data = tempfile::Builder::new()
            .prefix("vivace-ui-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let yaml = format!(
            "ingester:\n  wal_path: {}\nstorage:\n  trace:\n    backend: local\n    local:\n      path: {}\n{extra_yaml}",
            data.join("wal").display(),
            data.join("blocks").display()
        );
        for attempt in 1..=3 {
            let ports = Ports::pick();
            let config = write_config(&data, ports, &yaml);
            let log = std::fs::File::create(data.join("vivace.log")).expect("log file");
            let child = Command::new(env!("CARGO_BIN_EXE_vivace"))
                .args(["serve", "--demo", "--config"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start vivace");
            let mut vivace = DemoVivace {
                child,
                ports,
                data: data.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(status)) = vivace.child.try_wait() {
                    let log = vivace.log();
                    if attempt < 3 && common::lost_a_port(&log) {
                        break;
                    }
                    panic!("vivace exited with {status} before it was ready; log:\n{log}");
                }
                if let Ok((200, _)) = blocking_get(&vivace.url("/ready")) {
                    return vivace;
                }
                assert!(
                    Instant::now() < deadline,
                    "/ready did not answer within 60 s; log:\n{}",
                    vivace.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            // Keep the directory for the next try: the process has exited, nothing to drop.
            std::mem::forget(vivace);
        }
        unreachable!("the last try either returns or panics")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.http)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("vivace.log")).unwrap_or_default()
    }

    /// Polls `path` until it answers 200 with a body `accept` likes (60 s at most).
    fn wait_for(&self, path: &str, accept: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, body)) = blocking_get(&self.url(path)) {
                if accept(&body) {
                    return body;
                }
            }

            assert!(
                Instant::now() < deadline,
                "{path} did not answer as expected within 60 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for DemoVivace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

fn client() -> reqwest::Client {
    // No automatic decompression: the tests look at Content-Encoding themselves.
    reqwest::Client::builder()
        .no_gzip()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_and_assets_are_served_with_types_etags_and_gzip() {
    let vivace = tokio::task::spawn_blocking(|| DemoVivace::start(""))
        .await
        .unwrap();
    let http = client();

    let root = http.get(vivace.url("/")).send().await.unwrap();
    assert!(
        root.status().is_redirection(),
        "/ answered {}",
        root.status()
    );
    assert_eq!(root.headers()["location"], "/search");

    for path in [
        "/search?q=%7B%7D",
        "/trace/0123456789abcdef0123456789abcdef",
        "/services",
        "/services/checkout",
        "/graph",
        "/alerts",
        "/alerts/a1b2c3d4e5f60718",
    ] {
        let response = http.get(vivace.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains("<nav aria-label=\"Main\">"), "{path}: {body}");
        assert!(
            body.contains("/static/app.css?v="),
            "{path}: no versioned CSS"
        );
    }
    // Escaping: a service name with markup is shown as text.
    let body = http
        .get(vivace.url("/services/%3Cscript%3Ex"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("&#60;script&#62;x") || body.contains("&lt;script&gt;x"));
    assert!(!body.contains("<script>x"));

    let bad = http.get(vivace.url("/trace/not-hex")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("hex"));

    // Static files: type, ETag revalidation, gzip, long caching only for versioned URLs.
    let page = http
        .get(vivace.url("/search"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a module script in the page")
        .to_string();
    assert!(script.starts_with("/static/search.js?v="), "{script}");
    let versioned = http
        .get(vivace.url(&script))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(versioned.status(), 200);
    assert_eq!(
        versioned.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(versioned.headers()["content-encoding"], "gzip");
    assert!(versioned.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let etag = versioned.headers()["etag"].clone();
    let plain = http
        .get(vivace.url("/static/common.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.headers()["cache-control"], "no-cache");
    let common_etag = plain.headers()["etag"].clone();
    let revalidated = http
        .get(vivace.url("/static/common.js"))
        .header("if-none-match", common_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_ne!(etag, revalidated.headers()["etag"]);
    let css = http
        .get(vivace.url("/static/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let missing = http
        .get(vivace.url("/static/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Tempo's API is untouched by the UI's routes.
    let tags = http
        .get(vivace.url("/api/v2/search/tags"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status(), 200);
    assert_eq!(
        http.get(vivace.url("/api/nothing-here"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // The service graph from the generator: the demo's calls, databases and messaging.
    let graph = tokio::task::spawn_blocking(move || {
        // Rates are counted from the oldest sample in the window: wait until the edge the
        // checks below read has had requests since then, not only the graph's shape.
        let body = vivace.wait_for("/api/ui/service-graph?since=300", |body| {
            let Ok(graph) = serde_json::from_str::<serde_json::Value>(body) else {
                return false;
            };
            let catalog_requests = graph["edges"].as_array().and_then(|edges| {
                edges
                    .iter()
                    .find(|edge| edge["client"] == "frontend" && edge["server"] == "catalog")
                    .and_then(|edge| edge["requests"].as_f64())
            });
            body.contains("\"fulfillment\"")
                && body.contains("\"card-gateway\"")
                && catalog_requests.is_some_and(|requests| requests > 0.0)
        });
        (vivace, body)
    })
    .await
    .unwrap();
    let (vivace, body) = graph;
    let graph: serde_json::Value = serde_json::from_str(&body).unwrap();
    let edges = graph["edges"].as_array().unwrap();
    let edge = |client: &str, server: &str| {
        edges
            .iter()
            .find(|edge| edge["client"] == client && edge["server"] == server)
            .unwrap_or_else(|| panic!("no edge {client} → {server} in {body}"))
    };
    assert_eq!(edge("frontend", "checkout")["connectionType"], "");
    assert_eq!(edge("catalog", "postgresql")["connectionType"], "database");
    assert_eq!(
        edge("checkout", "fulfillment")["connectionType"],
        "messaging_system"
    );
    assert!(edge("frontend", "catalog")["requests"].as_f64().unwrap() > 0.0);
    let traces = edge("frontend", "catalog")["traces"].as_array().unwrap();
    assert!(!traces.is_empty(), "no exemplar traces on an edge");
    let trace_id = traces[0].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);
    let trace = http
        .get(vivace.url(&format!("/api/v2/traces/{trace_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(trace.status(), 200, "an edge's exemplar trace is stored");
    let bad_since = http
        .get(vivace.url("/api/ui/service-graph?since=soon"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_since.status(), 400);
    assert!(bad_since.text().await.unwrap().contains("since"));

    // Without prometheus.url the proxy says so instead of guessing.
    let proxy = http
        .get(vivace.url("/api/ui/prom/query_range?query=up"))
        .send()
        .await
        .unwrap();
    assert_eq!(proxy.status(), 404);
    assert!(proxy.text().await.unwrap().contains("prometheus.url"));
}

/// A stand-in Prometheus: answers every query with a fixed matrix and records the query.
async fn fake_prometheus() -> (String, std::sync::Arc<parking_lot::Mutex<Vec<String>>>) {
    use axum::extract::RawQuery;
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let app = axum::Router::new().route(
        "/api/v1/{endpoint}",
        axum::routing::get(
            move |axum::extract::Path(endpoint): axum::extract::Path<String>,
                  RawQuery(query): RawQuery| {
                let recorded = recorded.clone();
                async move {
                    recorded
                        .lock()
                        .push(format!("{endpoint}?{}", query.unwrap_or_default()));
                    axum::Json(serde_json::json!({"status":"success","data":{"resultType":"matrix","result":[]}}))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_proxy_forwards_queries_to_the_configured_prometheus() {
    let (url, seen) = fake_prometheus().await;
    let vivace = tokio::task::spawn_blocking(move || {
        DemoVivace::start(&format!(
            "prometheus:\n  url: {url}/\nui:\n  grafana_url: http://grafana.example:3000/\n  grafana_datasource_uid: vivace-tempo\n"
        ))
    })
    .await
    .unwrap();
    let http = client();
    let page = http
        .get(vivace.url("/services/checkout"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-prometheus=\"true\""));
    assert!(page.contains("data-grafana-url=\"http://grafana.example:3000\""));
    assert!(page.contains("data-grafana-datasource=\"vivace-tempo\""));
    let answer = http
        .get(vivace.url(
            "/api/ui/prom/query_range?query=sum(rate(traces_spanmetrics_calls_total%5B5m%5D))&start=1&end=2&step=15",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["resultType"], "matrix");
    assert_eq!(
        seen.lock().as_slice(),
        ["query_range?query=sum(rate(traces_spanmetrics_calls_total%5B5m%5D))&start=1&end=2&step=15"]
    );
    let refused = http
        .get(vivace.url("/api/ui/prom/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    drop(vivace);
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The checks in tests/ui/run.mjs (three data routes and twenty-one page checks).
const UI_CHECKS: usize = 24;

#[test]
fn browser_walks_every_page_against_the_demo_load() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: tests/run.sh installs Debian's chromium (apt-get install chromium)"
    );
    assert!(
        repository()
            .join("tests/ui/node_modules/playwright-core")
            .is_dir(),
        "tests/ui/node_modules is missing: tests/run.sh runs `npm ci` in tests/ui"
    );
    let vivace = DemoVivace::start("");
    // Data for every page: demo traces searchable, and service-graph edges generated.
    vivace.wait_for(
        "/api/search?q=%7Bresource.service.name%3D%22frontend%22%7D&limit=5",
        |body| body.contains("rootServiceName"),
    );
    vivace.wait_for("/api/ui/service-graph", |body| {
        body.contains("\"checkout\"") && body.contains("\"payments\"")
    });
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let output = Command::new("node")
        .arg(repository().join("tests/ui/run.mjs"))
        .arg(vivace.url(""))
        .arg(&screenshots)
        .arg(format!("http://127.0.0.1:{}", vivace.ports.otlp_http))
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node tests/ui/run.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "browser tests failed ({}):\n{stdout}\n{stderr}\nvivace log:\n{}",
        output.status,
        vivace.log()
    );
    // Every check ran and passed: none may be skipped or left out.
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("{UI_CHECKS} passed, 0 failed"),
        "summary line of tests/ui/run.mjs"
    );
    assert!(
        !stdout.contains("\nskip "),
        "a check was skipped:\n{stdout}"
    );
    assert!(
        stdout.contains("ok   trace: a 10,000-span trace renders"),
        "the 10,000-span trace check did not run:\n{stdout}"
    );
    assert!(
        stdout
            .contains("ok   services: the list shows the rate, error rate and p99 that were sent"),
        "the services figures check did not run:\n{stdout}"
    );
    for name in [
        "search",
        "trace",
        "trace-flame",
        "trace-logs",
        "trace-logs-with-data",
        "service",
        "exemplar-trace",
        "graph",
        "alerts",
        "alert",
        "services",
        "service-probe",
        "trace-10000-spans",
    ] {
        assert!(
            screenshots.join(format!("{name}.png")).is_file(),
            "no screenshot {name}.png in {}",
            screenshots.display()
        );
    }
}

/// Serves `files` on a free port of 127.0.0.1: a web page's own origin, other than vivace's.
async fn page_origin(files: std::sync::Arc<std::collections::HashMap<String, Vec<u8>>>) -> String {
    let app = axum::Router::new().route(
        "/{file}",
        axum::routing::get(
            move |axum::extract::Path(file): axum::extract::Path<String>| {
                let files = files.clone();
                async move {
                    let content_type = if file.ends_with(".js") {
                        "text/javascript"
                    } else {
                        "text/html; charset=utf-8"
                    };
                    match files.get(&file) {
                        Some(body) => (
                            axum::http::StatusCode::OK,
                            [(axum::http::header::CONTENT_TYPE, content_type)],
                            body.clone(),
                        ),
                        None => (
                            axum::http::StatusCode::NOT_FOUND,
                            [(axum::http::header::CONTENT_TYPE, "text/plain")],
                            b"not found".to_vec(),
                        ),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// The CORS answer headers of `response` as (allow-origin, allow-headers).
fn cors_headers(response: &reqwest::Response) -> (Option<String>, Option<String>) {
    let text = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap_or_default().to_string())
    };
    (
        text("access-control-allow-origin"),
        text("access-control-allow-headers"),
    )
}

async fn preflight(
    http: &reqwest::Client,
    otlp: &str,
    origin: &str,
    headers: &str,
) -> reqwest::Response {
    http.request(reqwest::Method::OPTIONS, format!("{otlp}/v1/traces"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

/// Trace IDs `tenant` finds for spans of `service`.
async fn traces_of(
    http: &reqwest::Client,
    vivace: &common::Vivace,
    tenant: &str,
    service: &str,
) -> Vec<String> {
    // `{ resource.service.name = "<service>" }`, percent-encoded (service names are plain).
    let query = format!("%7B%20resource.service.name%20%3D%20%22{service}%22%20%7D");
    let answer = http
        .get(vivace.url(&format!("/api/search?q={query}&limit=20")))
        .header("x-scope-orgid", tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "search for {service}");
    let body: serde_json::Value = answer.json().await.unwrap();
    body["traces"]
        .as_array()
        .map(|traces| {
            traces
                .iter()
                .filter_map(|trace| trace["traceID"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A web page on another origin exports spans with the OpenTelemetry JS web SDK in chromium:
/// from an allowed origin they arrive (preflight answered, X-Scope-OrgID allowed); from an
/// origin not listed the browser gets no CORS grant and the export fails without sending.
#[tokio::test(flavor = "multi_thread")]
async fn browser_pages_export_over_otlp_http_only_from_allowed_origins() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: tests/run.sh installs Debian's chromium (apt-get install chromium)"
    );
    let ui = repository().join("tests/ui");
    for package in [
        "playwright-core",
        "esbuild",
        "@opentelemetry/sdk-trace-web",
        "@opentelemetry/exporter-trace-otlp-http",
    ] {
        assert!(
            ui.join("node_modules").join(package).is_dir(),
            "tests/ui/node_modules/{package} is missing: tests/run.sh runs `npm ci` in tests/ui"
        );
    }
    // The page's script: the SDK bundled as a web application would ship it.
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir.path().join("otel.js");
    let built = Command::new(ui.join("node_modules/.bin/esbuild"))
        .arg(ui.join("otlp_page.js"))
        .args([
            "--bundle",
            "--format=esm",
            "--platform=browser",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", bundle.display()))
        .output()
        .expect("run esbuild");
    assert!(
        built.status.success(),
        "esbuild failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let files = std::sync::Arc::new(std::collections::HashMap::from([
        ("otel.js".to_string(), std::fs::read(&bundle).unwrap()),
        (
            "index.html".to_string(),
            b"<!doctype html><title>shop</title><script type=\"module\" src=\"/otel.js\"></script>"
                .to_vec(),
        ),
    ]));
    let allowed_origin = page_origin(files.clone()).await;
    let denied_origin = page_origin(files).await;

    let yaml = format!(
        "multitenancy_enabled: true\ndistributor:\n  receivers:\n    otlp:\n      protocols:\n        http:\n          cors:\n            allowed_origins: [\"{allowed_origin}\", \"https://*.example.com\"]\n            allowed_headers: [X-Scope-OrgID]\n"
    );
    let vivace = tokio::task::spawn_blocking(move || common::Vivace::start(&yaml))
        .await
        .unwrap();
    let otlp = vivace.otlp_http_url();
    let http = client();

    // The headers themselves, as a browser would ask.
    let granted = preflight(&http, &otlp, &allowed_origin, "content-type,x-scope-orgid").await;
    assert_eq!(granted.status(), 204);
    let (origin, headers) = cors_headers(&granted);
    assert_eq!(origin.as_deref(), Some(allowed_origin.as_str()));
    assert_eq!(headers.as_deref(), Some("content-type,x-scope-orgid"));
    assert_eq!(granted.headers()["access-control-allow-methods"], "POST");
    let wildcard = preflight(&http, &otlp, "https://shop.example.com", "content-type").await;
    assert_eq!(
        cors_headers(&wildcard).0.as_deref(),
        Some("https://shop.example.com")
    );
    for (origin, headers) in [
        (denied_origin.as_str(), "content-type,x-scope-orgid"),
        ("https://example.com", "content-type"),
        (allowed_origin.as_str(), "content-type,authorization"),
    ] {
        let refused = preflight(&http, &otlp, origin, headers).await;
        assert_eq!(
            cors_headers(&refused),
            (None, None),
            "preflight from {origin} asking for {headers}"
        );
    }
    let body = r#"{"resourceSpans":[]}"#;
    for (origin, expected) in [
        (allowed_origin.as_str(), Some(allowed_origin.clone())),
        (denied_origin.as_str(), None),
    ] {
        let answer = http
            .post(format!("{otlp}/v1/traces"))
            .header("origin", origin)
            .header("content-type", "application/json")
            .header("x-scope-orgid", "browser-team")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(cors_headers(&answer).0, expected, "POST from {origin}");
    }

    // A real browser with the real SDK.
    let script = ui.join("otlp_browser.mjs");
    let pages = [
        format!("{allowed_origin}/index.html=browser-allowed"),
        format!("{denied_origin}/index.html=browser-denied"),
    ];
    let otlp_for_node = otlp.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(otlp_for_node)
            .arg("browser-team")
            .args(pages)
            .env("CHROMIUM", chromium)
            .output()
            .expect("run node tests/ui/otlp_browser.mjs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "otlp_browser.mjs failed:\n{stdout}\n{stderr}\nvivace log:\n{}",
        vivace.log_text()
    );
    assert!(
        stdout.contains(&format!(
            "export browser-allowed code=0 origin={allowed_origin}"
        )),
        "the allowed page's export did not succeed:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "export browser-denied code=1 origin={denied_origin}"
        )),
        "the denied page's export did not fail:\n{stdout}"
    );

    // The allowed page's span is stored for the tenant it named; the denied page sent nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let found = traces_of(&http, &vivace, "browser-team", "browser-allowed").await;
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(found.len(), 1, "the browser's trace was not found");
    let trace = http
        .get(vivace.url(&format!("/api/v2/traces/{}", found[0])))
        .header("x-scope-orgid", "browser-team")
        .send()
        .await
        .unwrap();
    assert_eq!(trace.status(), 200);
    let trace_text = trace.text().await.unwrap();
    assert!(trace_text.contains("checkout click"), "{trace_text}");
    assert!(
        traces_of(&http, &vivace, "browser-team", "browser-denied")
            .await
            .is_empty(),
        "spans from the denied origin were stored"
    );
}

/// With `server.auth` on, a preflight (which never carries credentials) is still answered for
/// an allowed origin, and the 401 of an export without a token carries the CORS grant, so the
/// page's SDK can read why it failed.
#[tokio::test(flavor = "multi_thread")]
async fn cors_preflights_are_answered_before_authentication() {
    let yaml = "server:\n  auth:\n    bearer_tokens: [cors-test-token]\ndistributor:\n  receivers:\n    otlp:\n      protocols:\n        http:\n          cors:\n            allowed_origins: [\"https://*.example.com\"]\n            allowed_headers: [Authorization]\n";
    let vivace = tokio::task::spawn_blocking(move || {
        let mut vivace = common::Vivace::start_unready(yaml);
        let ready = vivace.url("/ready");
        vivace.wait_until(|| matches!(blocking_get(&ready), Ok((200, _))));
        vivace
    })
    .await
    .unwrap();
    let otlp = vivace.otlp_http_url();
    let http = client();
    let granted = preflight(
        &http,
        &otlp,
        "https://app.example.com",
        "authorization,content-type",
    )
    .await;
    assert_eq!(granted.status(), 204);
    assert_eq!(
        cors_headers(&granted),
        (
            Some("https://app.example.com".to_string()),
            Some("authorization,content-type".to_string())
        )
    );
    let unauthenticated = http
        .post(format!("{otlp}/v1/traces"))
        .header("origin", "https://app.example.com")
        .header("content-type", "application/json")
        .body(r#"{"resourceSpans":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        cors_headers(&unauthenticated).0.as_deref(),
        Some("https://app.example.com")
    );
    let authenticated = http
        .post(format!("{otlp}/v1/traces"))
        .header("origin", "https://app.example.com")
        .header("authorization", "Bearer cors-test-token")
        .header("content-type", "application/json")
        .body(r#"{"resourceSpans":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(authenticated.status(), 200);
    // Without an Origin nothing changes: no CORS headers, auth as before.
    let plain = http
        .request(reqwest::Method::OPTIONS, format!("{otlp}/v1/traces"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert_eq!(cors_headers(&plain), (None, None));
}

/// The services endpoints read the span metrics of the tenant the UI's requests name.
#[tokio::test(flavor = "multi_thread")]
async fn services_figures_are_per_tenant() {
    let vivace =
        tokio::task::spawn_blocking(|| common::Vivace::start("multitenancy_enabled: true\n"))
            .await
            .unwrap();
    let http = client();
    let otlp = vivace.otlp_http_url();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    for (tenant, service, spans) in [("team-a", "shop-a", 30u32), ("team-b", "shop-b", 10)] {
        let spans: Vec<serde_json::Value> = (0..spans)
            .map(|index| {
                serde_json::json!({
                    "traceId": format!("{:032x}", u128::from(index) + 1),
                    "spanId": format!("{:016x}", u64::from(index) + 1),
                    "name": "GET /", "kind": 2,
                    "startTimeUnixNano": (now - 20_000_000).to_string(),
                    "endTimeUnixNano": now.to_string(),
                    "status": if index % 5 == 0 { serde_json::json!({"code": 2}) } else { serde_json::json!({}) },
                })
            })
            .collect();
        let body = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": spans}],
        }]});
        let pushed = http
            .post(format!("{otlp}/v1/traces"))
            .header("x-scope-orgid", tenant)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(pushed.status(), 200, "{tenant}");
    }
    let services_of = |tenant: &'static str| {
        let request = http
            .get(vivace.url("/api/ui/services?since=900"))
            .header("x-scope-orgid", tenant);
        async move {
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 200, "{tenant}");
            answer.json::<serde_json::Value>().await.unwrap()
        }
    };
    // The generator consumes asynchronously: poll until team-a's 30 calls are counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    let team_a = loop {
        let body = services_of("team-a").await;
        if body["services"][0]["requests"] == 30.0 || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|one| one["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&team_a), ["shop-a"], "{team_a}");
    assert_eq!(team_a["services"][0]["requests"], 30.0);
    assert_eq!(team_a["services"][0]["errorRatio"], 0.2);
    let team_b = loop {
        let body = services_of("team-b").await;
        if body["services"][0]["requests"] == 10.0 || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(names(&team_b), ["shop-b"], "{team_b}");
    let page = http
        .get(vivace.url("/api/ui/services/shop-a?since=900"))
        .header("x-scope-orgid", "team-b")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(page["known"], false, "team-b sees team-a's service: {page}");
    let anonymous = http
        .get(vivace.url("/api/ui/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
