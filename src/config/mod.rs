//! One YAML config file with environment overrides and documented defaults.
//!
//! Keys follow Tempo's names where Tempo has one, so a Tempo user recognises them. Unknown keys
//! are an error naming the key. Any key can be overridden from the environment:
//! `VIVACE_<SECTION>__<KEY>=value` (sections joined by a double underscore, case-insensitive),
//! e.g. `VIVACE_SERVER__HTTP_LISTEN_PORT=3300` or `VIVACE_STORAGE__TRACE__BACKEND=s3`; the
//! top-level scalar keys without a section (`VIVACE_MULTITENANCY_ENABLED`). Other `VIVACE_*`
//! variables are not vivace's: Kubernetes sets `VIVACE_SERVICE_HOST`, `VIVACE_PORT`, … for a
//! Service named `vivace`, so they are ignored (and logged at debug level).

pub mod distributor;
pub mod memory;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use distributor::DistributorConfig;
use memory::{BudgetKey, MemoryBudget, MemoryLimit};

use crate::alerts::AlertsConfig;
use crate::generator::GeneratorConfig;
use crate::ingester::IngesterConfig;
use crate::tempodb::{CompactorConfig, StorageConfig};

/// The documented defaults; `vivace config defaults` prints this text.
pub const DEFAULTS_YAML: &str = include_str!("defaults.yaml");

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "VIVACE_";

/// Top-level keys that are values rather than sections, so `VIVACE_<KEY>` (without a double
/// underscore) sets them.
const TOP_LEVEL_ENV_KEYS: &[&str] = &["multitenancy_enabled"];

/// What loading found besides the config, for the log once logging runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// `VIVACE_*` variables that name no config key (Kubernetes service links, say), ignored.
    pub ignored_environment: Vec<String>,
    /// The memory limit in force and how it was divided; `None` without a limit.
    pub memory_budget: Option<MemoryBudget>,
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// When true, every request must carry `X-Scope-OrgID` naming its tenant (401 without it);
    /// when false, everything belongs to the tenant `single-tenant`, as in Tempo.
    pub multitenancy_enabled: bool,
    /// Listening addresses of the query API and UI.
    pub server: ServerConfig,
    /// Receivers, request limits and back-pressure.
    pub distributor: DistributorConfig,
    /// Write-ahead log, live traces and block cutting.
    pub ingester: IngesterConfig,
    /// Where blocks are stored.
    pub storage: StorageSection,
    /// Merging small blocks and expiring old ones.
    pub compactor: CompactorConfig,
    /// Span metrics and service graphs from every span, served on `/metrics`.
    pub metrics_generator: GeneratorConfig,
    /// Logs: OTLP and Loki push in, Parquet blocks beside the traces, `/api/logs` and the Loki
    /// query API out.
    pub logs: crate::logs::LogsConfig,
    /// The team's Prometheus, read by the UI's service pages and by alert-to-trace resolution.
    pub prometheus: PrometheusConfig,
    /// Alertmanager webhook in, the traces behind each alert out.
    pub alerts: AlertsConfig,
    /// The built-in web UI.
    pub ui: UiConfig,
    /// Per-tenant limits: ingest rate and burst, trace size, attribute length, search range.
    pub overrides: crate::overrides::OverridesConfig,
}

/// The `ui` section: what the web UI links out to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Base URL of the team's Grafana (e.g. `http://grafana:3000`). When set, the trace view
    /// links the trace to Grafana's Explore. Empty: no Grafana links.
    pub grafana_url: String,
    /// UID of the Tempo datasource in that Grafana which reads this vivace.
    pub grafana_datasource_uid: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            grafana_url: String::new(),
            grafana_datasource_uid: "vivace-tempo".into(),
        }
    }
}

/// The `prometheus` section: where vivace reads PromQL series and exemplars from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL of a Prometheus-compatible query API (e.g. `http://127.0.0.1:9090`). When set,
    /// the UI's service pages chart `query_range` series and `query_exemplars` from it, and
    /// alerts are resolved to the exemplar traces of their series. Empty: the UI charts vivace's
    /// own TraceQL metrics over stored spans and alerts use stored traces only.
    pub url: String,
}

/// The `server` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API and UI listen on (also the gRPC and Loki ports). `127.0.0.1` keeps
    /// vivace private to this machine.
    pub http_listen_address: String,
    /// When set (`0.0.0.0`, `::`), every listener binds this address instead of the one in its
    /// own setting: `http_listen_address` (API and UI, gRPC, Loki port) and every receiver
    /// `endpoint` (OTLP, Zipkin, Jaeger), keeping their ports. The container image sets it with
    /// `VIVACE_SERVER__LISTEN_ADDRESS_OVERRIDE=0.0.0.0`, so it is reachable from outside the
    /// container whatever config or arguments it runs with. Empty: each listener's own address.
    pub listen_address_override: String,
    /// Port of the HTTP API (Tempo's API, `/metrics`, `/ready`) and the UI. Tempo's is 3200.
    pub http_listen_port: u16,
    /// Port of the gRPC server (on `http_listen_address`): Tempo's streaming query API
    /// `tempopb.StreamingQuerier`. Tempo's is 9095. The same service is also served over h2c
    /// on `http_listen_port`, which is where Grafana dials it.
    pub grpc_listen_port: u16,
    /// Log filter in `tracing` syntax, e.g. `info` or `vivace=debug,info`. `RUST_LOG` wins.
    pub log_level: String,
    /// Bearer-token and basic authentication on every listener; off while no credential is
    /// configured. `GET`/`HEAD` on `exempt_paths` (default `/ready`, `/metrics`) stay open.
    pub auth: crate::server::AuthConfig,
    /// TLS (PEM certificate and key) on every TCP listener; off while `cert_file` is empty.
    pub tls: crate::server::TlsConfig,
    /// The memory vivace may use: bytes or a size (`512MiB`, `2GiB`); `auto` (the default)
    /// takes the cgroup's (container's) limit when one is set; `none` sets no limit. With a
    /// limit, the head, in-flight, logs, compaction and cache budgets not set explicitly are
    /// shares of it ([`memory::SHARES`]); past them pushes get 429 instead of the process
    /// growing until it is killed.
    pub memory_limit: MemoryLimit,
}

impl ServerConfig {
    /// `http_listen_address` with `port`, as a socket address (IPv6 in brackets).
    pub fn listen_socket_address(&self, port: u16) -> String {
        match self.http_listen_address.parse::<std::net::IpAddr>() {
            Ok(address) => std::net::SocketAddr::new(address, port).to_string(),
            Err(_) => format!("{}:{port}", self.http_listen_address),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_listen_address: "127.0.0.1".to_string(),
            listen_address_override: String::new(),
            http_listen_port: 3200,
            grpc_listen_port: 9095,
            log_level: "info".to_string(),
            auth: Default::default(),
            tls: Default::default(),
            memory_limit: MemoryLimit::Auto,
        }
    }
}

/// The `storage` section; `trace` as in Tempo's `storage.trace`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// The trace block store.
    pub trace: StorageConfig,
}

/// A config that could not be loaded, with the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid YAML: {source}")]
    Yaml {
        path: String,
        source: serde_yaml::Error,
    },
    #[error("invalid config at `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("environment variable {name}: {reason}")]
    Environment { name: String, reason: String },
}

impl Config {
    /// Loads the file (if any), applies `VIVACE_*` overrides from `environment`, and checks
    /// every key.
    pub fn load(
        path: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::load_reporting(path, environment).map(|(config, _)| config)
    }

    /// [`Config::load`], also answering what was ignored on the way and how memory was divided.
    pub fn load_reporting(
        path: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, LoadReport), ConfigError> {
        let cgroup = memory::cgroup_memory_limit(memory::CGROUP_LIMIT_FILES);
        Config::load_with_cgroup(path, environment, cgroup)
    }

    /// [`Config::load_reporting`] with the cgroup's memory limit given (bytes, file).
    pub fn load_with_cgroup(
        path: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
        cgroup: Option<(u64, String)>,
    ) -> Result<(Config, LoadReport), ConfigError> {
        let mut report = LoadReport::default();
        let mut tree = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                let parsed: serde_yaml::Value =
                    serde_yaml::from_str(&text).map_err(|source| ConfigError::Yaml {
                        path: path.display().to_string(),
                        source,
                    })?;
                if parsed.is_null() {
                    serde_yaml::Value::Mapping(Default::default())
                } else {
                    parsed
                }
            }
            None => serde_yaml::Value::Mapping(Default::default()),
        };
        for (name, value) in environment {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let is_top_level_key = TOP_LEVEL_ENV_KEYS
                .iter()
                .any(|key| rest.eq_ignore_ascii_case(key));
            if !rest.contains("__") && !is_top_level_key {
                report.ignored_environment.push(name);
                continue;
            }
            let keys: Vec<String> = rest
                .split("__")
                .map(|part| part.to_ascii_lowercase())
                .collect();
            if keys.iter().any(String::is_empty) {
                return Err(ConfigError::Environment {
                    name,
                    reason: "empty key segment".into(),
                });
            }
            let parsed: serde_yaml::Value = serde_yaml::from_str(&value)
                .unwrap_or_else(|_| serde_yaml::Value::String(value.clone()));
            // Only a value written as a flow collection (`[a, b]`, `{k: v}`) is one: `::` (all
            // IPv6 interfaces) or `a: b` stay the text they are.
            let written_as_collection = value.trim_start().starts_with(['[', '{']);
            let scalar = match parsed {
                serde_yaml::Value::Mapping(_) | serde_yaml::Value::Sequence(_)
                    if !written_as_collection =>
                {
                    serde_yaml::Value::String(value.clone())
                }
                other => other,
            };
            set_path(&mut tree, &keys, scalar)
                .map_err(|reason| ConfigError::Environment { name, reason })?;
        }
        let explicit_budgets: Vec<BudgetKey> = memory::SHARES
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| lookup(&tree, key.path()).is_some())
            .collect();
        let explicit_request_bytes = lookup(&tree, &["distributor", "max_request_bytes"]).is_some();
        let mut config: Config =
            serde_path_to_error::deserialize(tree).map_err(|error| ConfigError::Invalid {
                key: error.path().to_string(),
                reason: error.inner().to_string(),
            })?;
        if let Some((limit, source)) = MemoryBudget::resolve(config.server.memory_limit, cgroup) {
            if source == memory::LimitSource::Configured && limit < memory::MIN_MEMORY_LIMIT {
                return Err(ConfigError::Invalid {
                    key: "server.memory_limit".into(),
                    reason: format!(
                        "{limit} bytes is below the smallest limit, {} bytes (128MiB)",
                        memory::MIN_MEMORY_LIMIT
                    ),
                });
            }
            let budget = MemoryBudget::divide(
                limit,
                source,
                |key| explicit_budgets.contains(&key),
                |key| config.budget(key),
            );
            for part in &budget.parts {
                config.set_budget(part.key, part.bytes);
            }
            // A request larger than the whole in-flight budget could never be admitted.
            if !explicit_request_bytes
                && config.distributor.max_request_bytes > config.distributor.max_inflight_bytes
            {
                config.distributor.max_request_bytes = config.distributor.max_inflight_bytes;
            }
            report.memory_budget = Some(budget);
        }
        config.apply_listen_address_override()?;
        config.validate()?;
        Ok((config, report))
    }

    /// With `server.listen_address_override` set, rewrites the address of every listener to it
    /// (ports kept), so the rest of vivace sees only where each listener really binds.
    fn apply_listen_address_override(&mut self) -> Result<(), ConfigError> {
        let written = self.server.listen_address_override.trim();
        if written.is_empty() {
            return Ok(());
        }
        let address: std::net::IpAddr = written.parse().map_err(|_| ConfigError::Invalid {
            key: "server.listen_address_override".into(),
            reason: format!("{written:?} is not an IP address"),
        })?;
        self.server.http_listen_address = address.to_string();
        let receivers = &mut self.distributor.receivers;
        let jaeger = &mut receivers.jaeger.protocols;
        let endpoints = [
            (
                "distributor.receivers.otlp.protocols.grpc.endpoint",
                &mut receivers.otlp.protocols.grpc.endpoint,
            ),
            (
                "distributor.receivers.otlp.protocols.http.endpoint",
                &mut receivers.otlp.protocols.http.endpoint,
            ),
            (
                "distributor.receivers.zipkin.endpoint",
                &mut receivers.zipkin.endpoint,
            ),
            (
                "distributor.receivers.jaeger.protocols.thrift_http.endpoint",
                &mut jaeger.thrift_http.endpoint,
            ),
            (
                "distributor.receivers.jaeger.protocols.grpc.endpoint",
                &mut jaeger.grpc.endpoint,
            ),
            (
                "distributor.receivers.jaeger.protocols.thrift_compact.endpoint",
                &mut jaeger.thrift_compact.endpoint,
            ),
            (
                "distributor.receivers.jaeger.protocols.thrift_binary.endpoint",
                &mut jaeger.thrift_binary.endpoint,
            ),
        ];
        for (key, endpoint) in endpoints {
            let port = endpoint
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .ok_or_else(|| ConfigError::Invalid {
                    key: key.into(),
                    reason: format!("{endpoint:?} is not address:port"),
                })?;
            *endpoint = std::net::SocketAddr::new(address, port).to_string();
        }
        Ok(())
    }

    /// The value of a key the memory budget sets.
    fn budget(&self, key: BudgetKey) -> u64 {
        match key {
            BudgetKey::HeadBytes => self.ingester.max_head_bytes,
            BudgetKey::InflightBytes => self.distributor.max_inflight_bytes as u64,
            BudgetKey::LogsHeadBytes => self.logs.max_head_bytes,
            BudgetKey::CompactionInputBytes => self.compactor.max_input_bytes,
            BudgetKey::BloomCacheBytes => self.storage.trace.bloom_cache_bytes as u64,
            BudgetKey::FooterCacheBytes => self.storage.trace.footer_cache_bytes as u64,
        }
    }

    fn set_budget(&mut self, key: BudgetKey, bytes: u64) {
        let as_usize = usize::try_from(bytes).unwrap_or(usize::MAX);
        match key {
            BudgetKey::HeadBytes => self.ingester.max_head_bytes = bytes,
            BudgetKey::InflightBytes => self.distributor.max_inflight_bytes = as_usize,
            BudgetKey::LogsHeadBytes => self.logs.max_head_bytes = bytes,
            BudgetKey::CompactionInputBytes => self.compactor.max_input_bytes = bytes,
            BudgetKey::BloomCacheBytes => self.storage.trace.bloom_cache_bytes = as_usize,
            BudgetKey::FooterCacheBytes => self.storage.trace.footer_cache_bytes = as_usize,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self
            .server
            .http_listen_address
            .parse::<std::net::IpAddr>()
            .is_err()
        {
            return Err(ConfigError::Invalid {
                key: "server.http_listen_address".into(),
                reason: format!("{:?} is not an IP address", self.server.http_listen_address),
            });
        }
        self.server
            .auth
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                key: format!("server.auth.{key}"),
                reason,
            })?;
        self.server
            .tls
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                key: format!("server.tls.{key}"),
                reason,
            })?;
        self.distributor
            .receivers
            .otlp
            .protocols
            .http
            .cors
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                key: format!("distributor.receivers.otlp.protocols.http.cors.{key}"),
                reason,
            })?;
        let jaeger = &self.distributor.receivers.jaeger.protocols;
        for (name, agent_port) in [
            ("thrift_compact", &jaeger.thrift_compact),
            ("thrift_binary", &jaeger.thrift_binary),
        ] {
            if !agent_port.enabled {
                continue;
            }
            if self.server.auth.enabled() {
                return Err(ConfigError::Invalid {
                    key: format!("distributor.receivers.jaeger.protocols.{name}"),
                    reason: "the Jaeger UDP agent protocol cannot carry credentials, so it cannot \
                             listen while server.auth is on; send to thrift_http or grpc with a token"
                        .into(),
                });
            }
            if self.multitenancy_enabled {
                return Err(ConfigError::Invalid {
                    key: format!("distributor.receivers.jaeger.protocols.{name}"),
                    reason: "the Jaeger UDP agent protocol cannot carry X-Scope-OrgID, so it cannot \
                             listen while multitenancy_enabled is true (its spans would belong to no \
                             tenant); send to thrift_http or grpc with the header"
                        .into(),
                });
            }
        }
        self.compactor
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                key: format!("compactor.{key}"),
                reason,
            })?;
        self.metrics_generator
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                key: format!("metrics_generator.{key}"),
                reason,
            })?;
        self.alerts
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                key: format!("alerts.{key}"),
                reason,
            })?;
        self.logs
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                key: format!("logs.{key}"),
                reason,
            })?;
        self.overrides
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                key: format!("overrides.{key}"),
                reason,
            })?;
        self.distributor
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                key: format!("distributor.{key}"),
                reason,
            })
    }
}

/// The value at `path` in a YAML tree, if every section on the way is a mapping holding it.
fn lookup<'a>(tree: &'a serde_yaml::Value, path: &[&str]) -> Option<&'a serde_yaml::Value> {
    let mut node = tree;
    for key in path {
        node = node.as_mapping()?.get(*key)?;
    }
    Some(node)
}

fn set_path(
    tree: &mut serde_yaml::Value,
    keys: &[String],
    value: serde_yaml::Value,
) -> Result<(), String> {
    let mut node = tree;
    for (depth, key) in keys.iter().enumerate() {
        if !node.is_mapping() {
            return Err(format!("`{}` is not a section", keys[..depth].join(".")));
        }
        let mapping = node.as_mapping_mut().ok_or("not a mapping")?;
        let yaml_key = serde_yaml::Value::String(key.clone());
        if depth + 1 == keys.len() {
            mapping.insert(yaml_key, value);
            return Ok(());
        }
        node = mapping
            .entry(yaml_key)
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_are_exactly_the_defaults() {
        let documented: serde_yaml::Value = serde_yaml::from_str(DEFAULTS_YAML).unwrap();
        let actual = serde_yaml::to_value(Config::default()).unwrap();
        assert_eq!(
            documented, actual,
            "src/config/defaults.yaml must list every key with its default"
        );
        let parsed: Config = serde_yaml::from_str(DEFAULTS_YAML).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn readme_carries_the_defaults() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        assert!(
            readme.contains(DEFAULTS_YAML.trim()),
            "README.md's configuration section must include src/config/defaults.yaml verbatim"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vivace.yaml");
        std::fs::write(&path, "server:\n  http_listen_port: 3300\n  colour: blue\n").unwrap();
        let error = Config::load(Some(&path), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("server") && error.contains("colour"),
            "{error}"
        );
    }

    #[test]
    fn a_listed_receiver_listens_on_its_default_endpoint_unless_told_otherwise() {
        let config: Config = serde_yaml::from_str(
            "distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: 0.0.0.0:4317\n        http: {}\n    zipkin:\n      endpoint: 0.0.0.0:9411\n    jaeger:\n      protocols:\n        grpc: {}\n        thrift_http:\n          enabled: false\n",
        )
        .unwrap();
        let receivers = &config.distributor.receivers;
        assert!(receivers.otlp.protocols.grpc.enabled);
        assert_eq!(receivers.otlp.protocols.grpc.endpoint, "0.0.0.0:4317");
        assert!(receivers.otlp.protocols.http.enabled);
        assert_eq!(receivers.otlp.protocols.http.endpoint, "127.0.0.1:4318");
        assert!(receivers.zipkin.enabled);
        assert!(receivers.jaeger.protocols.grpc.enabled);
        assert_eq!(receivers.jaeger.protocols.grpc.endpoint, "127.0.0.1:14250");
        assert!(!receivers.jaeger.protocols.thrift_http.enabled);
        assert!(!receivers.jaeger.protocols.thrift_compact.enabled);
        let error = serde_yaml::from_str::<Config>(
            "distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          port: 1\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("port"), "{error}");
    }

    #[test]
    fn environment_overrides_keys() {
        let config = Config::load(
            None,
            vec![
                (
                    "VIVACE_SERVER__HTTP_LISTEN_PORT".to_string(),
                    "3300".to_string(),
                ),
                (
                    "VIVACE_MULTITENANCY_ENABLED".to_string(),
                    "true".to_string(),
                ),
                ("UNRELATED".to_string(), "x".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(config.server.http_listen_port, 3300);
        assert!(config.multitenancy_enabled);
        let error = Config::load(
            None,
            vec![("VIVACE_SERVER__NOPE".to_string(), "1".to_string())],
        )
        .unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn kubernetes_service_variables_are_ignored() {
        // What the kubelet sets in every pod of the namespace for a Service named `vivace`.
        let kubernetes = [
            ("VIVACE_SERVICE_HOST", "10.0.0.1"),
            ("VIVACE_SERVICE_PORT", "3200"),
            ("VIVACE_SERVICE_PORT_HTTP", "3200"),
            ("VIVACE_PORT", "tcp://10.0.0.1:3200"),
            ("VIVACE_PORT_3200_TCP", "tcp://10.0.0.1:3200"),
            ("VIVACE_PORT_3200_TCP_PROTO", "tcp"),
            ("VIVACE_PORT_3200_TCP_PORT", "3200"),
            ("VIVACE_PORT_3200_TCP_ADDR", "10.0.0.1"),
        ];
        let mut environment: Vec<(String, String)> = kubernetes
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        environment.push((
            "VIVACE_SERVER__HTTP_LISTEN_PORT".to_string(),
            "3300".to_string(),
        ));
        environment.push((
            "VIVACE_MULTITENANCY_ENABLED".to_string(),
            "true".to_string(),
        ));
        let (config, report) = Config::load_reporting(None, environment).unwrap();
        assert_eq!(config.server.http_listen_port, 3300);
        assert!(config.multitenancy_enabled);
        let ignored: Vec<&str> = kubernetes.iter().map(|(name, _)| *name).collect();
        assert_eq!(report.ignored_environment, ignored);
    }

    #[test]
    fn memory_limit_divides_into_the_budgets_not_set_explicitly() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vivace.yaml");
        std::fs::write(
            &path,
            "server:\n  memory_limit: 512MiB\ncompactor:\n  max_input_bytes: 1000000\n",
        )
        .unwrap();
        let environment = vec![(
            "VIVACE_STORAGE__TRACE__BLOOM_CACHE_BYTES".to_string(),
            "4096".to_string(),
        )];
        let cgroup = Some((64 << 30, "/sys/fs/cgroup/memory.max".to_string()));
        let (config, report) =
            Config::load_with_cgroup(Some(&path), environment, cgroup.clone()).unwrap();
        let limit: u64 = 512 << 20;
        let share = |key: BudgetKey| {
            memory::SHARES
                .iter()
                .find(|(candidate, _)| *candidate == key)
                .map(|(_, per_mille)| limit / 1000 * per_mille)
                .unwrap()
        };
        assert_eq!(config.ingester.max_head_bytes, share(BudgetKey::HeadBytes));
        assert_eq!(
            config.distributor.max_inflight_bytes as u64,
            share(BudgetKey::InflightBytes)
        );
        assert_eq!(config.logs.max_head_bytes, share(BudgetKey::LogsHeadBytes));
        assert_eq!(
            config.storage.trace.footer_cache_bytes as u64,
            share(BudgetKey::FooterCacheBytes)
        );
        // Set in the file and in the environment: kept.
        assert_eq!(config.compactor.max_input_bytes, 1_000_000);
        assert_eq!(config.storage.trace.bloom_cache_bytes, 4096);
        let budget = report.memory_budget.unwrap();
        assert_eq!(budget.limit, limit);
        assert_eq!(budget.source, memory::LimitSource::Configured);
        let derived: Vec<bool> = budget.parts.iter().map(|part| part.derived).collect();
        assert_eq!(derived, [true, true, true, false, false, true]);

        // auto: the cgroup's limit; none: today's individual defaults.
        let (config, report) = Config::load_with_cgroup(None, Vec::new(), cgroup.clone()).unwrap();
        assert_eq!(report.memory_budget.unwrap().limit, 64 << 30);
        assert_eq!(
            config.ingester.max_head_bytes,
            (64u64 << 30) / 1000 * memory::SHARES[0].1
        );
        let (config, report) = Config::load_with_cgroup(None, Vec::new(), None).unwrap();
        assert_eq!(report.memory_budget, None);
        assert_eq!(config, Config::default());
        let none = vec![(
            "VIVACE_SERVER__MEMORY_LIMIT".to_string(),
            "none".to_string(),
        )];
        let (config, report) = Config::load_with_cgroup(None, none, cgroup).unwrap();
        assert_eq!(report.memory_budget, None);
        assert_eq!(config.ingester.max_head_bytes, 1024 << 20);

        // A small limit lowers the largest request to what in-flight can admit.
        let small = vec![(
            "VIVACE_SERVER__MEMORY_LIMIT".to_string(),
            "128MiB".to_string(),
        )];
        let (config, _) = Config::load_with_cgroup(None, small, None).unwrap();
        assert!(config.distributor.max_request_bytes <= config.distributor.max_inflight_bytes);
        let tiny = vec![(
            "VIVACE_SERVER__MEMORY_LIMIT".to_string(),
            "64MiB".to_string(),
        )];
        let error = Config::load_with_cgroup(None, tiny, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("server.memory_limit"), "{error}");
    }

    #[test]
    fn the_listen_address_override_moves_every_listener_and_keeps_ports() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("vivace.yaml");
        std::fs::write(
            &path,
            "server:\n  http_listen_address: 127.0.0.1\ndistributor:\n  receivers:\n    zipkin:\n      endpoint: 127.0.0.1:9412\n    jaeger:\n      protocols:\n        grpc: {}\n",
        )
        .unwrap();
        let environment = vec![(
            "VIVACE_SERVER__LISTEN_ADDRESS_OVERRIDE".to_string(),
            "0.0.0.0".to_string(),
        )];
        let config = Config::load(Some(&path), environment).unwrap();
        let receivers = &config.distributor.receivers;
        assert_eq!(config.server.http_listen_address, "0.0.0.0");
        assert_eq!(receivers.otlp.protocols.grpc.endpoint, "0.0.0.0:4317");
        assert_eq!(receivers.otlp.protocols.http.endpoint, "0.0.0.0:4318");
        assert_eq!(receivers.zipkin.endpoint, "0.0.0.0:9412");
        assert_eq!(receivers.jaeger.protocols.grpc.endpoint, "0.0.0.0:14250");
        assert_eq!(config.server.listen_socket_address(3100), "0.0.0.0:3100");

        let ipv6 = vec![(
            "VIVACE_SERVER__LISTEN_ADDRESS_OVERRIDE".to_string(),
            "::".to_string(),
        )];
        let config = Config::load(None, ipv6).unwrap();
        assert_eq!(config.server.listen_socket_address(3200), "[::]:3200");
        assert_eq!(
            config.distributor.receivers.otlp.protocols.grpc.endpoint,
            "[::]:4317"
        );

        let bad = vec![(
            "VIVACE_SERVER__LISTEN_ADDRESS_OVERRIDE".to_string(),
            "everywhere".to_string(),
        )];
        let error = Config::load(None, bad).unwrap_err().to_string();
        assert!(error.contains("server.listen_address_override"), "{error}");
    }

    #[test]
    fn the_jaeger_udp_agent_cannot_listen_with_multitenancy() {
        let environment = vec![
            (
                "VIVACE_MULTITENANCY_ENABLED".to_string(),
                "true".to_string(),
            ),
            (
                "VIVACE_DISTRIBUTOR__RECEIVERS__JAEGER__PROTOCOLS__THRIFT_COMPACT__ENABLED"
                    .to_string(),
                "true".to_string(),
            ),
        ];
        let error = Config::load_with_cgroup(None, environment, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("thrift_compact") && error.contains("multitenancy_enabled"),
            "{error}"
        );
    }
}
