//! vivace: the Grafana tracing stack in one binary. The modules follow Tempo's roles so the
//! data flow reads from the folder names: receiver → distributor → ingester → tempodb →
//! querier → api.

pub mod ingester;
pub mod model;
pub mod tempodb;
