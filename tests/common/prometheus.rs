//! A real Prometheus (Debian's `/usr/bin/prometheus`, 2.42) on a loopback port for end-to-end
//! tests: remote-write receiver and exemplar storage on, its own temporary data directory, killed
//! on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A Prometheus child process on a loopback port, killed on drop.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start() -> Prometheus {
        Prometheus::start_on(super::free_port(), "global:\n  scrape_interval: 15s\n")
    }

    /// Starts Prometheus on `port` with `config` as its configuration file.
    pub fn start_on(port: u16, config_yaml: &str) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing; install it with: apt-get update && apt-get install -y prometheus"
        );
        let dir = tempfile::Builder::new()
            .prefix("vivace-prometheus-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml).expect("write config");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(PROMETHEUS)
            .arg("--web.enable-remote-write-receiver")
            .arg("--enable-feature=exemplar-storage")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", prometheus.log());
            }
            if matches!(
                super::blocking_get(&prometheus.url("/-/ready")),
                Ok((200, _))
            ) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 30s:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The first value of an instant query, if it has one.
    pub async fn query(&self, client: &reqwest::Client, query: &str) -> Option<f64> {
        let url =
            reqwest::Url::parse_with_params(&self.url("/api/v1/query"), [("query", query)]).ok()?;
        let response = client.get(url).send().await.ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// The result vector of an instant query (each series' `metric` labels and `value`);
    /// empty while Prometheus cannot answer.
    pub async fn query_series(
        &self,
        client: &reqwest::Client,
        query: &str,
    ) -> Vec<serde_json::Value> {
        let Ok(url) =
            reqwest::Url::parse_with_params(&self.url("/api/v1/query"), [("query", query)])
        else {
            return Vec::new();
        };
        let Ok(response) = client.get(url).send().await else {
            return Vec::new();
        };
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every value of an instant query's vector result, in Prometheus's order (what Argo
    /// Rollouts' Prometheus provider hands a condition as `result`); an error names what
    /// Prometheus refused (a query that does not parse, say).
    pub async fn query_vector(
        &self,
        client: &reqwest::Client,
        query: &str,
    ) -> Result<Vec<f64>, String> {
        let url = reqwest::Url::parse_with_params(&self.url("/api/v1/query"), [("query", query)])
            .map_err(|error| error.to_string())?;
        let response = client
            .get(url)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let body: serde_json::Value = response.json().await.map_err(|error| error.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{query}: {body}"));
        }
        let Some(result) = body["data"]["result"].as_array() else {
            return Err(format!("{query}: not a vector: {body}"));
        };
        result
            .iter()
            .map(|sample| {
                sample["value"][1]
                    .as_str()
                    .and_then(|value| value.parse().ok())
                    .ok_or_else(|| format!("{query}: bad sample {sample}"))
            })
            .collect()
    }
}

/// `deploy/prometheus/prometheus.yml` as the tests run it: 1 s intervals, the rule files it
/// names at their paths in the repository, and vivace scraped on loopback at `vivace_http_port`
/// (compose's `vivace:3200`).
pub fn deploy_config(vivace_http_port: u16) -> serde_yaml::Value {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = repo.join("deploy/prometheus/prometheus.yml");
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read prometheus.yml"))
            .expect("prometheus.yml is YAML");
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["scrape_timeout"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    let rule_files: Vec<serde_yaml::Value> = config["rule_files"]
        .as_sequence()
        .expect("prometheus.yml names rule files")
        .iter()
        .map(|file| {
            repo.join("deploy/prometheus")
                .join(file.as_str().expect("a rule file path"))
                .display()
                .to_string()
                .into()
        })
        .collect();
    config["rule_files"] = rule_files.into();
    let scrape = &mut config["scrape_configs"][0]["static_configs"][0]["targets"];
    assert_eq!(
        scrape[0], "vivace:3200",
        "compose's Prometheus scrapes vivace"
    );
    *scrape = vec![serde_yaml::Value::from(format!(
        "127.0.0.1:{vivace_http_port}"
    ))]
    .into();
    config
}
