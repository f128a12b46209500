//! `GET /api/ui/service-graph?since=<seconds>`: the service graph from the metrics-generator's
//! own `traces_service_graph_*` series. The series are cumulative counters, so rates come from
//! the difference between now and a sample taken about `since` ago (samples are kept every ten
//! seconds for the last hour). Each tenant has its own series and samples: with multi-tenancy
//! the graph is the one of the tenant `X-Scope-OrgID` names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::samples::{EdgeCounts, Sample};
use super::state::UiState;

/// The `q`-th quantile (0..1) of per-bucket counts with Prometheus' linear interpolation.
pub(super) fn quantile(bounds: &[f64], buckets: &[f64], q: f64) -> Option<f64> {
    let total: f64 = buckets.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut seen = 0.0;
    for (index, count) in buckets.iter().enumerate() {
        if seen + count >= rank && *count > 0.0 {
            let lower = if index == 0 { 0.0 } else { bounds[index - 1] };
            let Some(upper) = bounds.get(index) else {
                // +Inf bucket: the highest finite bound is the best answer.
                return bounds.last().copied();
            };
            return Some(lower + (upper - lower) * ((rank - seen) / count));
        }
        seen += count;
    }
    bounds.last().copied()
}

/// The graph's JSON: edges with totals over the window (and rates when a baseline exists) and
/// nodes with their incoming request and error totals.
fn graph_json(now: &Sample, baseline: Option<&Sample>) -> Value {
    let window_seconds = baseline.map(|base| (now.at_ms - base.at_ms) as f64 / 1000.0);
    let mut nodes: BTreeMap<String, (f64, f64, BTreeSet<String>)> = BTreeMap::new();
    let mut edges = Vec::new();
    let mut keys: Vec<_> = now.edges.keys().collect();
    keys.sort();
    for key in keys {
        let current = &now.edges[key];
        let before = baseline.and_then(|base| base.edges.get(key));
        let delta = |pick: fn(&EdgeCounts) -> f64| {
            (pick(current) - before.map(pick).unwrap_or(0.0)).max(0.0)
        };
        let requests = delta(|counts| counts.requests);
        let failed = delta(|counts| counts.failed);
        let seconds_sum = delta(|counts| counts.seconds_sum);
        let seconds_count = delta(|counts| counts.seconds_count);
        let buckets: Vec<f64> = current
            .buckets
            .iter()
            .enumerate()
            .map(|(index, value)| {
                let old = before
                    .and_then(|counts| counts.buckets.get(index))
                    .copied()
                    .unwrap_or(0.0);
                (value - old).max(0.0)
            })
            .collect();
        let (client, server, connection_type) = key;
        let kind = match connection_type.as_str() {
            "database" => "database",
            "messaging_system" => "messaging",
            "virtual_node" => "virtual",
            _ => "service",
        };
        nodes.entry(client.clone()).or_default();
        let node = nodes.entry(server.clone()).or_default();
        node.0 += requests;
        node.1 += failed;
        node.2.insert(kind.to_string());
        let milliseconds = |seconds: Option<f64>| seconds.map(|seconds| seconds * 1000.0);
        edges.push(json!({
            "client": client,
            "server": server,
            "connectionType": connection_type,
            "requests": requests,
            "failed": failed,
            "rate": window_seconds.filter(|window| *window > 0.0).map(|window| requests / window),
            "errorRate": if requests > 0.0 { failed / requests } else { 0.0 },
            "avgMs": milliseconds((seconds_count > 0.0).then(|| seconds_sum / seconds_count)),
            "p50Ms": milliseconds(quantile(&now.bounds, &buckets, 0.5)),
            "p90Ms": milliseconds(quantile(&now.bounds, &buckets, 0.9)),
            "p99Ms": milliseconds(quantile(&now.bounds, &buckets, 0.99)),
            "traces": current.exemplars,
        }));
    }
    let nodes: Vec<Value> = nodes
        .into_iter()
        .map(|(name, (requests, failed, kinds))| {
            // A node reached only over database or messaging edges is drawn as such.
            let kind = if kinds.len() == 1 && !kinds.contains("service") {
                kinds.into_iter().next().unwrap_or_default()
            } else {
                "service".to_string()
            };
            json!({"name": name, "kind": kind, "requests": requests, "failed": failed})
        })
        .collect();
    json!({
        "source": "metrics-generator",
        "windowSeconds": window_seconds,
        "nodes": nodes,
        "edges": edges,
    })
}

pub async fn service_graph(
    State(state): State<Arc<UiState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let since_seconds = match query.get("since").map(|value| value.parse::<u32>()) {
        None => 300,
        Some(Ok(seconds)) if seconds > 0 => seconds,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "since must be a positive number of seconds\n",
            )
                .into_response()
        }
    };
    let tenant = match crate::api::scrape_tenant_of(state.multitenancy_enabled, &headers) {
        Ok(Some(tenant)) => tenant,
        Ok(None) => {
            return (
                StatusCode::UNAUTHORIZED,
                "no org id: the service graph is per tenant, send X-Scope-OrgID\n",
            )
                .into_response()
        }
        Err(error) => return error.into_response(),
    };
    let Some(generator) = state.generator.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "the metrics-generator is not running: no service graph\n",
        )
            .into_response();
    };
    let tenant_for_sample = tenant.clone();
    let now =
        match tokio::task::spawn_blocking(move || Sample::take(&generator, &tenant_for_sample))
            .await
        {
            Ok(sample) => sample,
            Err(error) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading the service graph failed: {error}\n"),
                )
                    .into_response()
            }
        };
    let baseline = state.graph_history.baseline(
        &tenant,
        now.at_ms - i64::from(since_seconds) * 1000,
        now.at_ms,
    );
    let body = graph_json(&now, baseline.as_deref());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: f64, failed: f64, buckets: Vec<f64>) -> EdgeCounts {
        EdgeCounts {
            requests,
            failed,
            seconds_sum: requests * 0.1,
            seconds_count: requests,
            buckets,
            exemplars: vec!["0000000000000000000000000000abcd".into()],
        }
    }

    #[test]
    fn rates_come_from_the_difference_to_the_baseline() {
        let key = (
            "frontend".to_string(),
            "checkout".to_string(),
            String::new(),
        );
        let db = (
            "checkout".to_string(),
            "postgresql".to_string(),
            "database".to_string(),
        );
        let bounds = vec![0.1, 0.2, 0.4];
        let before = Sample {
            at_ms: 0,
            bounds: bounds.clone(),
            edges: HashMap::from([(key.clone(), counts(100.0, 10.0, vec![100.0, 0.0, 0.0, 0.0]))]),
        };
        let now = Sample {
            at_ms: 10_000,
            bounds,
            edges: HashMap::from([
                (key, counts(200.0, 30.0, vec![150.0, 50.0, 0.0, 0.0])),
                (db, counts(5.0, 0.0, vec![5.0, 0.0, 0.0, 0.0])),
            ]),
        };
        let graph = graph_json(&now, Some(&before));
        assert_eq!(graph["windowSeconds"], 10.0);
        let edges = graph["edges"].as_array().unwrap();
        let call = edges
            .iter()
            .find(|edge| edge["server"] == "checkout")
            .unwrap();
        assert_eq!(call["requests"], 100.0);
        assert_eq!(call["rate"], 10.0);
        assert_eq!(call["errorRate"], 0.2);
        // 50 in (0,0.1], 50 in (0.1,0.2]: the median is the first bucket's upper bound.
        assert_eq!(call["p50Ms"], 100.0);
        assert_eq!(call["traces"][0], "0000000000000000000000000000abcd");
        let nodes = graph["nodes"].as_array().unwrap();
        let postgres = nodes
            .iter()
            .find(|node| node["name"] == "postgresql")
            .unwrap();
        assert_eq!(postgres["kind"], "database");
        let frontend = nodes
            .iter()
            .find(|node| node["name"] == "frontend")
            .unwrap();
        assert_eq!(frontend["kind"], "service");
    }

    #[test]
    fn without_a_baseline_totals_are_shown_and_rates_are_null() {
        let key = ("a".to_string(), "b".to_string(), String::new());
        let now = Sample {
            at_ms: 5,
            bounds: vec![1.0],
            edges: HashMap::from([(key, counts(3.0, 0.0, vec![3.0, 0.0]))]),
        };
        let graph = graph_json(&now, None);
        assert!(graph["windowSeconds"].is_null());
        assert_eq!(graph["edges"][0]["requests"], 3.0);
        assert!(graph["edges"][0]["rate"].is_null());
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        assert_eq!(quantile(&[1.0, 2.0], &[0.0, 10.0, 0.0], 0.5), Some(1.5));
        assert_eq!(quantile(&[1.0], &[0.0, 0.0], 0.5), None);
        assert_eq!(quantile(&[1.0, 2.0], &[0.0, 0.0, 4.0], 0.9), Some(2.0));
    }
}
