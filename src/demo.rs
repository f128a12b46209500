//! `vivace --demo`: a steady, small load of realistic traces (a shop: frontend → checkout →
//! payments/inventory → database) pushed through the distributor like any client's, so a
//! newcomer sees traces, errors and latency at once. About ten traces a second.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::distributor::{Distributor, SINGLE_TENANT};
use crate::model::{int_attribute, string_attribute};

const TRACES_PER_SECOND: u64 = 10;

/// Builds spans of one trace, service by service.
struct TraceBuilder {
    trace_id: Vec<u8>,
    batches: Vec<ResourceSpans>,
}

impl TraceBuilder {
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        service: &str,
        parent: &[u8],
        name: &str,
        kind: SpanKind,
        start: u64,
        duration: u64,
        attributes: Vec<KeyValue>,
        error: Option<&str>,
    ) -> Vec<u8> {
        let span_id = rand::rng().random::<[u8; 8]>().to_vec();
        let status = match error {
            Some(message) => Status {
                code: StatusCode::Error as i32,
                message: message.into(),
            },
            None => Status::default(),
        };
        let span = Span {
            trace_id: self.trace_id.clone(),
            span_id: span_id.clone(),
            parent_span_id: parent.to_vec(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes,
            status: Some(status),
            ..Default::default()
        };
        let position = self.batches.iter().position(|batch| {
            batch.resource.as_ref().is_some_and(|resource| {
                resource.attributes[0] == string_attribute("service.name", service)
            })
        });
        let batch = match position {
            Some(position) => &mut self.batches[position],
            None => {
                self.batches.push(ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            string_attribute("service.name", service),
                            string_attribute("deployment.environment", "demo"),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "vivace.demo".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                });
                let last = self.batches.len() - 1;
                &mut self.batches[last]
            }
        };
        batch.scope_spans[0].spans.push(span);
        span_id
    }
}

fn one_trace(now: u64) -> Vec<ResourceSpans> {
    let mut rng = rand::rng();
    let mut builder = TraceBuilder {
        trace_id: rng.random::<[u8; 16]>().to_vec(),
        batches: Vec::new(),
    };
    let checkout = rng.random_bool(0.4);
    let failed = rng.random_bool(0.05);
    let slow = rng.random_bool(0.03);
    let ms = 1_000_000u64;
    let total = rng.random_range(20..120) * ms + if slow { 900 * ms } else { 0 };
    let start = now - total - 50 * ms;
    let (route, method) = if checkout {
        ("/api/checkout", "POST")
    } else {
        ("/api/products", "GET")
    };
    let status_code = if failed { 500 } else { 200 };
    let root = builder.span(
        "frontend",
        &[],
        &format!("{method} {route}"),
        SpanKind::Server,
        start,
        total,
        vec![
            string_attribute("http.request.method", method),
            string_attribute("http.route", route),
            int_attribute("http.response.status_code", status_code),
        ],
        failed.then_some("internal server error"),
    );
    let downstream = if checkout { "checkout" } else { "inventory" };
    let call_start = start + 2 * ms;
    let call_duration = total - 4 * ms;
    let client = builder.span(
        "frontend",
        &root,
        &format!("{method} /{downstream}"),
        SpanKind::Client,
        call_start,
        call_duration,
        vec![
            string_attribute("http.request.method", method),
            string_attribute("server.address", downstream),
            string_attribute("peer.service", downstream),
            int_attribute("http.response.status_code", status_code),
        ],
        failed.then_some("upstream failed"),
    );
    let server = builder.span(
        downstream,
        &client,
        &format!("{method} /{downstream}"),
        SpanKind::Server,
        call_start + ms,
        call_duration - 2 * ms,
        vec![
            string_attribute("http.request.method", method),
            string_attribute("http.route", &format!("/{downstream}")),
            int_attribute("http.response.status_code", status_code),
        ],
        failed.then_some("handler failed"),
    );
    let query_duration = (call_duration - 4 * ms) / 2;
    builder.span(
        downstream,
        &server,
        "SELECT shop.items",
        SpanKind::Client,
        call_start + 2 * ms,
        query_duration,
        vec![
            string_attribute("db.system", "postgresql"),
            string_attribute("db.name", "shop"),
            string_attribute("db.statement", "SELECT * FROM items WHERE id = $1"),
            string_attribute("server.address", "postgres"),
        ],
        None,
    );
    if checkout {
        let pay_client = builder.span(
            "checkout",
            &server,
            "POST /charge",
            SpanKind::Client,
            call_start + 3 * ms + query_duration,
            query_duration,
            vec![
                string_attribute("http.request.method", "POST"),
                string_attribute("server.address", "payments"),
                string_attribute("peer.service", "payments"),
            ],
            failed.then_some("payment declined"),
        );
        builder.span(
            "payments",
            &pay_client,
            "POST /charge",
            SpanKind::Server,
            call_start + 4 * ms + query_duration,
            query_duration.saturating_sub(2 * ms).max(ms),
            vec![
                string_attribute("http.request.method", "POST"),
                string_attribute("http.route", "/charge"),
                string_attribute("payment.provider", "demo-card"),
            ],
            failed.then_some("card declined"),
        );
    }
    builder.batches
}

/// Pushes demo traces until `stop` is cancelled, logging a link to one of them every ten
/// seconds so there is a trace to open straight away.
pub async fn run(
    distributor: Arc<Distributor>,
    api_base_url: String,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / TRACES_PER_SECOND));
    tracing::info!(traces_per_second = TRACES_PER_SECOND, "demo load running");
    let mut sent: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0);
        let trace = one_trace(now);
        let trace_id = hex::encode(&trace[0].scope_spans[0].spans[0].trace_id);
        push_trace_logs(&distributor, &trace).await;
        match distributor.push(SINGLE_TENANT, trace).await {
            Ok(_) if sent.is_multiple_of(10 * TRACES_PER_SECOND) => {
                tracing::info!("demo trace: {api_base_url}/api/v2/traces/{trace_id}");
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "demo trace refused"),
        }
        sent += 1;
    }
}

/// The log lines the demo's services would write for one trace: a line when each span starts
/// and ends (with the trace and span IDs, as an SDK's log bridge records them), and the error
/// at ERROR for failed spans.
fn trace_logs(trace: &[ResourceSpans]) -> Vec<crate::logs::LogRow> {
    use crate::logs::{otlp_stream_labels, Label, LogRow};
    let mut rows = Vec::new();
    for batch in trace {
        let resource_attributes: Vec<Label> = batch
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .map(|kv| {
                let value = kv
                    .value
                    .as_ref()
                    .map_or_else(String::new, crate::logs::receiver::any_value_text);
                Label::new(kv.key.clone(), value)
            })
            .collect();
        let service = resource_attributes
            .iter()
            .find(|label| label.name == "service.name")
            .map_or_else(String::new, |label| label.value.clone());
        for span in batch.scope_spans.iter().flat_map(|scope| &scope.spans) {
            let failed = span
                .status
                .as_ref()
                .is_some_and(|status| status.code == StatusCode::Error as i32);
            let duration_ms = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano)
                / 1_000_000;
            let mut lines = vec![(
                span.start_time_unix_nano,
                "INFO",
                9,
                format!("{} started", span.name),
            )];
            if failed {
                let message = span
                    .status
                    .as_ref()
                    .map_or("", |status| status.message.as_str());
                lines.push((
                    span.end_time_unix_nano,
                    "ERROR",
                    17,
                    format!("{} failed after {duration_ms}ms: {message}", span.name),
                ));
            } else {
                lines.push((
                    span.end_time_unix_nano,
                    "INFO",
                    9,
                    format!("{} finished in {duration_ms}ms", span.name),
                ));
            }
            for (time, severity, number, body) in lines {
                let mut row = LogRow {
                    timestamp_ns: time,
                    observed_ns: time,
                    service_name: service.clone(),
                    severity_text: severity.into(),
                    severity_number: number,
                    body,
                    trace_id: span.trace_id.clone(),
                    span_id: span.span_id.clone(),
                    attributes: vec![Label::new("span.name", span.name.clone())],
                    resource_attributes: resource_attributes.clone(),
                    labels: Vec::new(),
                };
                row.labels = otlp_stream_labels(&row);
                rows.push(row);
            }
        }
    }
    rows
}

/// Pushes the trace's log lines through the log store, as the logs receivers do.
async fn push_trace_logs(distributor: &Distributor, trace: &[ResourceSpans]) {
    if distributor.logs().is_none() {
        return;
    }
    let rows = trace_logs(trace);
    if let Err(error) = crate::logs::receiver::push_rows(distributor, SINGLE_TENANT, rows).await {
        tracing::debug!(%error, "demo logs refused");
    }
}

#[cfg(test)]
mod logs_tests {
    use super::*;

    #[test]
    fn every_span_logs_and_errors_log_at_error() {
        for _ in 0..50 {
            let trace = one_trace(1_700_000_000_000_000_000);
            let spans: Vec<&Span> = trace
                .iter()
                .flat_map(|b| &b.scope_spans)
                .flat_map(|s| &s.spans)
                .collect();
            let rows = trace_logs(&trace);
            assert_eq!(rows.len(), spans.len() * 2);
            assert!(rows
                .iter()
                .all(|row| row.trace_id == spans[0].trace_id && row.span_id.len() == 8));
            let errors = spans
                .iter()
                .filter(|span| {
                    span.status
                        .as_ref()
                        .is_some_and(|s| s.code == StatusCode::Error as i32)
                })
                .count();
            assert_eq!(
                rows.iter()
                    .filter(|row| row.severity_text == "ERROR")
                    .count(),
                errors
            );
        }
    }
}
