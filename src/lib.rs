//! vivace: the Grafana tracing stack in one binary. The modules follow Tempo's roles so the
//! data flow reads from the folder names: receiver → distributor → ingester → tempodb →
//! querier → api.

pub mod alerts;
pub mod api;
pub mod app;
pub mod bench;
pub mod config;
pub mod demo;
pub mod distributor;
pub mod generator;
pub mod ingester;
pub mod logs;
pub mod model;
pub mod overrides;
pub mod proto;
pub mod querier;
pub mod receiver;
pub mod server;
pub mod telemetry;
pub mod tempodb;
pub mod tenant;
pub mod traceql;
pub mod ui;
