//! `vivace --demo`: a steady, small load of realistic traces (a shop: frontend → catalog with a
//! cache and a database, checkout → payments → an external card gateway and a kafka message to
//! fulfillment, recommendations with a slow model reload; errors, slow paths and a canary)
//! pushed through the distributor like any client's, so a newcomer sees traces, errors and
//! latency at once. About ten traces a second.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::distributor::Distributor;
use crate::model::{int_attribute, string_attribute};
use crate::tenant::SINGLE_TENANT;

const TRACES_PER_SECOND: u64 = 10;

const MS: u64 = 1_000_000;

/// The version each service runs; `checkout` has a canary (10% of its traffic, more errors
/// and a slower payment path) so the service page's version comparison has something to show.
fn service_version(service: &str, canary: bool) -> &'static str {
    match service {
        "checkout" if canary => "2.4.0-canary",
        "checkout" => "2.3.1",
        "frontend" => "1.19.0",
        "payments" => "0.9.4",
        "catalog" => "3.2.0",
        "fulfillment" => "1.1.2",
        "recommendations" => "0.4.0",
        _ => "1.0.0",
    }
}

/// Builds spans of one trace, service by service.
struct TraceBuilder {
    trace_id: Vec<u8>,
    batches: Vec<ResourceSpans>,
    /// Whether this trace went through the checkout canary.
    canary: bool,
}

impl TraceBuilder {
    fn new(canary: bool) -> TraceBuilder {
        TraceBuilder {
            trace_id: rand::rng().random::<[u8; 16]>().to_vec(),
            batches: Vec::new(),
            canary,
        }
    }

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
        let (status, events) = match error {
            Some(message) => (
                Status {
                    code: StatusCode::Error as i32,
                    message: message.into(),
                },
                // Errors carry an exception event, as OpenTelemetry SDKs record them.
                vec![Event {
                    time_unix_nano: start + duration.saturating_sub(MS / 2),
                    name: "exception".into(),
                    attributes: vec![
                        string_attribute("exception.type", "DemoError"),
                        string_attribute("exception.message", message),
                    ],
                    dropped_attributes_count: 0,
                }],
            ),
            None => (Status::default(), Vec::new()),
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
            events,
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
                let version = service_version(service, self.canary);
                self.batches.push(ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            string_attribute("service.name", service),
                            string_attribute("service.version", version),
                            string_attribute("deployment.environment", "demo"),
                            string_attribute(
                                "host.name",
                                &format!("{service}-{}", version.len() % 3),
                            ),
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

    /// An HTTP call from `client` to `server`: the client span and the server span under it.
    /// Returns the server span's ID.
    #[allow(clippy::too_many_arguments)]
    fn http_call(
        &mut self,
        parent: &[u8],
        client: &str,
        server: &str,
        method: &str,
        route: &str,
        start: u64,
        duration: u64,
        error: Option<&str>,
    ) -> Vec<u8> {
        let status_code = if error.is_some() { 500 } else { 200 };
        let client_span = self.span(
            client,
            parent,
            &format!("{method} {route}"),
            SpanKind::Client,
            start,
            duration,
            vec![
                string_attribute("http.request.method", method),
                string_attribute("server.address", server),
                string_attribute("peer.service", server),
                string_attribute("url.full", &format!("http://{server}:8080{route}")),
                int_attribute("http.response.status_code", status_code),
            ],
            error.map(|_| "upstream failed"),
        );
        self.span(
            server,
            &client_span,
            &format!("{method} {route}"),
            SpanKind::Server,
            start + MS / 2,
            duration.saturating_sub(MS).max(MS / 2),
            vec![
                string_attribute("http.request.method", method),
                string_attribute("http.route", route),
                int_attribute("http.response.status_code", status_code),
            ],
            error,
        )
    }

    /// A database client span (`db.system`, `db.statement`), drawn as a database node.
    #[allow(clippy::too_many_arguments)]
    fn db_call(
        &mut self,
        service: &str,
        parent: &[u8],
        system: &str,
        database: &str,
        operation: &str,
        statement: &str,
        start: u64,
        duration: u64,
        error: Option<&str>,
    ) -> Vec<u8> {
        self.span(
            service,
            parent,
            &format!("{operation} {database}"),
            SpanKind::Client,
            start,
            duration,
            vec![
                string_attribute("db.system", system),
                string_attribute("db.name", database),
                string_attribute("db.operation", operation),
                string_attribute("db.statement", statement),
                string_attribute("server.address", system),
            ],
            error,
        )
    }
}

/// `GET /api/products`: frontend → catalog → redis cache, on a miss postgres (the slow path).
fn products_trace(builder: &mut TraceBuilder, start: u64) -> u64 {
    let mut rng = rand::rng();
    let miss = rng.random_bool(0.2);
    let failed = rng.random_bool(0.02);
    let slow = rng.random_bool(0.03);
    let db_time = if miss {
        rng.random_range(8..40) * MS
    } else {
        0
    } + if slow { 700 * MS } else { 0 };
    let total = 6 * MS + rng.random_range(2..10) * MS + db_time;
    let error = failed.then_some("catalog unavailable");
    let root = builder.span(
        "frontend",
        &[],
        "GET /api/products",
        SpanKind::Server,
        start,
        total,
        vec![
            string_attribute("http.request.method", "GET"),
            string_attribute("http.route", "/api/products"),
            int_attribute("http.response.status_code", if failed { 503 } else { 200 }),
        ],
        error,
    );
    let catalog = builder.http_call(
        &root,
        "frontend",
        "catalog",
        "GET",
        "/products",
        start + MS,
        total - 2 * MS,
        error,
    );
    builder.db_call(
        "catalog",
        &catalog,
        "redis",
        "cache",
        "GET",
        "GET products:page:1",
        start + 2 * MS,
        MS,
        None,
    );
    if miss || slow {
        builder.db_call(
            "catalog",
            &catalog,
            "postgresql",
            "shop",
            "SELECT",
            "SELECT id, name, price FROM products ORDER BY rank LIMIT 20",
            start + 3 * MS,
            db_time.max(MS),
            error,
        );
        builder.db_call(
            "catalog",
            &catalog,
            "redis",
            "cache",
            "SET",
            "SET products:page:1",
            start + 3 * MS + db_time.max(MS),
            MS / 2,
            None,
        );
    }
    total
}

/// `POST /api/checkout`: frontend → checkout → postgres, payments → card gateway (an
/// uninstrumented peer), then an `orders` message to kafka consumed by fulfillment.
fn checkout_trace(builder: &mut TraceBuilder, start: u64) -> u64 {
    let mut rng = rand::rng();
    let canary = builder.canary;
    let failed = rng.random_bool(if canary { 0.25 } else { 0.04 });
    let slow = rng.random_bool(if canary { 0.2 } else { 0.03 });
    let payment_time = rng.random_range(20..60) * MS + if slow { 1200 * MS } else { 0 };
    let total = 30 * MS + payment_time;
    let error = failed.then_some("payment declined");
    let root = builder.span(
        "frontend",
        &[],
        "POST /api/checkout",
        SpanKind::Server,
        start,
        total,
        vec![
            string_attribute("http.request.method", "POST"),
            string_attribute("http.route", "/api/checkout"),
            int_attribute("http.response.status_code", if failed { 502 } else { 200 }),
        ],
        error.map(|_| "checkout failed"),
    );
    let checkout = builder.http_call(
        &root,
        "frontend",
        "checkout",
        "POST",
        "/checkout",
        start + MS,
        total - 2 * MS,
        error,
    );
    builder.db_call(
        "checkout",
        &checkout,
        "postgresql",
        "shop",
        "SELECT",
        "SELECT quantity FROM stock WHERE item_id = $1 FOR UPDATE",
        start + 2 * MS,
        4 * MS,
        None,
    );
    let payments = builder.http_call(
        &checkout,
        "checkout",
        "payments",
        "POST",
        "/charge",
        start + 7 * MS,
        payment_time + 6 * MS,
        error,
    );
    builder.span(
        "payments",
        &payments,
        "POST card-gateway /v1/charges",
        SpanKind::Client,
        start + 9 * MS,
        payment_time,
        vec![
            string_attribute("http.request.method", "POST"),
            string_attribute("peer.service", "card-gateway"),
            string_attribute("server.address", "gateway.cards.example"),
            string_attribute("payment.provider", "demo-card"),
        ],
        error.map(|_| "card declined"),
    );
    let after_pay = start + 14 * MS + payment_time;
    if failed {
        return total;
    }
    builder.db_call(
        "checkout",
        &checkout,
        "postgresql",
        "shop",
        "INSERT",
        "INSERT INTO orders (id, customer_id, total) VALUES ($1, $2, $3)",
        after_pay,
        5 * MS,
        None,
    );
    let publish = builder.span(
        "checkout",
        &checkout,
        "orders publish",
        SpanKind::Producer,
        after_pay + 6 * MS,
        2 * MS,
        vec![
            string_attribute("messaging.system", "kafka"),
            string_attribute("messaging.destination.name", "orders"),
            string_attribute("messaging.operation", "publish"),
            string_attribute("server.address", "kafka"),
        ],
        None,
    );
    // The consumer runs after the response: the trace outlives its root, as real async work does.
    let consume_start = after_pay + 8 * MS + rng.random_range(2..30) * MS;
    let consume = builder.span(
        "fulfillment",
        &publish,
        "orders process",
        SpanKind::Consumer,
        consume_start,
        12 * MS,
        vec![
            string_attribute("messaging.system", "kafka"),
            string_attribute("messaging.destination.name", "orders"),
            string_attribute("messaging.operation", "process"),
            string_attribute("messaging.kafka.consumer.group", "fulfillment"),
        ],
        None,
    );
    builder.db_call(
        "fulfillment",
        &consume,
        "postgresql",
        "warehouse",
        "UPDATE",
        "UPDATE shipments SET state = 'queued' WHERE order_id = $1",
        consume_start + MS,
        6 * MS,
        None,
    );
    total
}

/// `GET /api/recommendations`: frontend → recommendations with internal work spans; 5% take
/// the slow path of a model reload.
fn recommendations_trace(builder: &mut TraceBuilder, start: u64) -> u64 {
    let mut rng = rand::rng();
    let reload = rng.random_bool(0.05);
    let failed = rng.random_bool(0.03);
    let score_time = rng.random_range(10..40) * MS;
    let load_time = if reload { 600 * MS } else { MS };
    let total = 6 * MS + score_time + load_time;
    let error = failed.then_some("model scoring timed out");
    let root = builder.span(
        "frontend",
        &[],
        "GET /api/recommendations",
        SpanKind::Server,
        start,
        total,
        vec![
            string_attribute("http.request.method", "GET"),
            string_attribute("http.route", "/api/recommendations"),
            int_attribute("http.response.status_code", if failed { 504 } else { 200 }),
        ],
        error,
    );
    let server = builder.http_call(
        &root,
        "frontend",
        "recommendations",
        "GET",
        "/recommendations",
        start + MS,
        total - 2 * MS,
        error,
    );
    builder.span(
        "recommendations",
        &server,
        if reload {
            "reload model"
        } else {
            "load model (cached)"
        },
        SpanKind::Internal,
        start + 2 * MS,
        load_time,
        vec![string_attribute("model.name", "two-tower-v3")],
        None,
    );
    builder.span(
        "recommendations",
        &server,
        "score candidates",
        SpanKind::Internal,
        start + 3 * MS + load_time,
        score_time,
        vec![int_attribute("candidates", rng.random_range(50..500))],
        error,
    );
    total
}

fn one_trace(now: u64) -> Vec<ResourceSpans> {
    let mut rng = rand::rng();
    let mut builder = TraceBuilder::new(rng.random_bool(0.1));
    // Spans end about now: a trace's start is set back by its longest possible duration.
    let start = now - 2_000 * MS;
    match rng.random_range(0..10) {
        0..=4 => products_trace(&mut builder, start),
        5..=7 => checkout_trace(&mut builder, start),
        _ => recommendations_trace(&mut builder, start),
    };
    builder.batches
}

/// Pushes demo traces until `stop` is cancelled, logging a link to one of them every ten
/// seconds so there is a trace to open straight away.
pub async fn run(
    distributor: Arc<Distributor>,
    ui_base_url: String,
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
                // The UI's trace page: people open this link; the JSON API is for programs.
                tracing::info!("demo trace: {ui_base_url}/trace/{trace_id}");
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
                let value = kv.value.as_ref().map_or_else(
                    String::new,
                    crate::receiver::otlp_logs::decode::any_value_text,
                );
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
    if let Err(error) = distributor.push_logs(SINGLE_TENANT, rows).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
        attributes
            .iter()
            .find(|attribute| attribute.key == key)
            .and_then(|attribute| attribute.value.as_ref())
            .and_then(|value| match &value.value {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    text,
                )) => Some(text.clone()),
                _ => None,
            })
    }

    #[test]
    fn the_demo_has_databases_messaging_errors_slow_paths_and_versions() {
        let now = 1_763_780_000_000_000_000;
        let mut services = HashSet::new();
        let mut versions = HashSet::new();
        let mut db_systems = HashSet::new();
        let mut kinds = HashSet::new();
        let (mut errors, mut slow, mut exception_events) = (0, 0, 0);
        for _ in 0..2000 {
            let trace = one_trace(now);
            let trace_id = &trace[0].scope_spans[0].spans[0].trace_id;
            for batch in &trace {
                let resource = &batch.resource.as_ref().unwrap().attributes;
                services.insert(attribute(resource, "service.name").unwrap());
                versions.insert(attribute(resource, "service.version").unwrap());
                for span in &batch.scope_spans[0].spans {
                    assert_eq!(&span.trace_id, trace_id, "one trace ID per trace");
                    assert!(span.end_time_unix_nano <= now, "spans end by now");
                    kinds.insert(span.kind);
                    if let Some(system) = attribute(&span.attributes, "db.system") {
                        assert!(attribute(&span.attributes, "db.statement").is_some());
                        db_systems.insert(system);
                    }
                    if span.status.as_ref().is_some_and(|status| status.code == 2) {
                        errors += 1;
                    }
                    exception_events += span.events.len();
                    if span.parent_span_id.is_empty()
                        && span.end_time_unix_nano - span.start_time_unix_nano > 500_000_000
                    {
                        slow += 1;
                    }
                }
            }
        }
        for service in [
            "frontend",
            "catalog",
            "checkout",
            "payments",
            "fulfillment",
            "recommendations",
        ] {
            assert!(services.contains(service), "no {service} in {services:?}");
        }
        assert!(versions.contains("2.4.0-canary") && versions.contains("2.3.1"));
        assert!(db_systems.contains("postgresql") && db_systems.contains("redis"));
        assert!(
            kinds.contains(&(SpanKind::Producer as i32))
                && kinds.contains(&(SpanKind::Consumer as i32))
        );
        assert!(
            errors > 0 && exception_events > 0 && slow > 0,
            "errors {errors}, slow {slow}"
        );
    }
}
