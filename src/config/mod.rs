//! One YAML config file with environment overrides and documented defaults.
//!
//! Keys follow Tempo's names where Tempo has one, so a Tempo user recognises them. Unknown keys
//! are an error naming the key. Any key can be overridden from the environment:
//! `VIVACE_<SECTION>__<KEY>=value` (sections joined by a double underscore, case-insensitive),
//! e.g. `VIVACE_SERVER__HTTP_LISTEN_PORT=3300` or `VIVACE_STORAGE__TRACE__BACKEND=s3`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::alerts::AlertsConfig;
use crate::distributor::DistributorConfig;
use crate::generator::GeneratorConfig;
use crate::ingester::IngesterConfig;
use crate::tempodb::{CompactorConfig, StorageConfig};

/// The documented defaults; `vivace config defaults` prints this text.
pub const DEFAULTS_YAML: &str = include_str!("defaults.yaml");

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "VIVACE_";

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
    /// Address the HTTP API and UI listen on. `127.0.0.1` keeps vivace private to this
    /// machine; the container image sets `0.0.0.0`.
    pub http_listen_address: String,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_listen_address: "127.0.0.1".to_string(),
            http_listen_port: 3200,
            grpc_listen_port: 9095,
            log_level: "info".to_string(),
            auth: Default::default(),
            tls: Default::default(),
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
            let scalar: serde_yaml::Value = serde_yaml::from_str(&value)
                .unwrap_or_else(|_| serde_yaml::Value::String(value.clone()));
            set_path(&mut tree, &keys, scalar)
                .map_err(|reason| ConfigError::Environment { name, reason })?;
        }
        let config: Config =
            serde_path_to_error::deserialize(tree).map_err(|error| ConfigError::Invalid {
                key: error.path().to_string(),
                reason: error.inner().to_string(),
            })?;
        config.validate()?;
        Ok(config)
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
        if self.server.auth.enabled()
            && self
                .distributor
                .receivers
                .jaeger
                .protocols
                .thrift_compact
                .enabled
        {
            return Err(ConfigError::Invalid {
                key: "distributor.receivers.jaeger.protocols.thrift_compact".into(),
                reason: "the Jaeger UDP agent protocol cannot carry credentials, so it cannot \
                         listen while server.auth is on; send to thrift_http or grpc with a token"
                    .into(),
            });
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
}
