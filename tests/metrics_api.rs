//! TraceQL metrics end to end: the real binary answers `/api/metrics/query_range` and
//! `/api/metrics/query` over the golden dataset in the head, after a flush to blocks and a
//! restart, and over blocks Tempo v3.0.3 wrote. Expected values are computed here from the
//! spans themselves (the dataset files, or trace-by-ID answers), not by the engine.

mod common;

use std::collections::BTreeMap;

use serde_json::Value;

use common::{test_data, Vivace};

const S: u64 = 1_000_000_000;
/// The golden requests' window around the dataset (base_ns − 60 s … + 300 s).
const START: u64 = 1_795_306_680;
const END: u64 = 1_795_307_040;
const STEP: u64 = 60;

/// One span of the dataset: service, start (ns), duration (ns), error status, trace ID.
#[derive(Debug, Clone)]
struct SpanFact {
    service: String,
    start: u64,
    duration: u64,
    error: bool,
    trace_id: String,
}

fn string_attribute(attributes: &Value, key: &str) -> Option<String> {
    attributes
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)?
        .get("value")?
        .get("stringValue")?
        .as_str()
        .map(str::to_string)
}

fn number(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_u64().unwrap_or(0),
    }
}

/// Spans of OTLP/JSON `resourceSpans` (dataset files) or v1 `batches` (trace-by-ID).
fn span_facts(batches: &Value, trace_id: Option<&str>) -> Vec<SpanFact> {
    let mut out = Vec::new();
    for batch in batches.as_array().unwrap() {
        let service =
            string_attribute(&batch["resource"]["attributes"], "service.name").unwrap_or_default();
        for scope in batch["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let start = number(&span["startTimeUnixNano"]);
                let end = number(&span["endTimeUnixNano"]);
                let code = &span["status"]["code"];
                let error = code == 2 || code == "STATUS_CODE_ERROR";
                let id = match trace_id {
                    Some(id) => id.to_string(),
                    None => span["traceId"].as_str().unwrap().to_string(),
                };
                out.push(SpanFact {
                    service: service.clone(),
                    start,
                    duration: end.saturating_sub(start),
                    error,
                    trace_id: id.trim_start_matches('0').to_string(),
                });
            }
        }
    }
    out
}

fn dataset_spans() -> Vec<SpanFact> {
    let mut spans = Vec::new();
    for entry in std::fs::read_dir(test_data("tempo-api/dataset")).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("batch-")
        {
            continue;
        }
        let body: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        spans.extend(span_facts(&body["resourceSpans"], None));
    }
    assert_eq!(spans.len(), 460);
    spans
}

/// Tempo's alignment of a range request (seconds in, ns out): start down to the step minus
/// one step, end up to the step.
fn aligned(start: u64, end: u64, step: u64) -> (u64, u64) {
    let start = (start - start % step - step) * S;
    let end = end.div_ceil(step) * step * S;
    (start, end)
}

/// Expected range samples: per service, timestamp (ms) of the right-closed interval holding
/// each span's start → count.
fn expected_counts(
    spans: &[SpanFact],
    keep: impl Fn(&SpanFact) -> bool,
) -> BTreeMap<String, BTreeMap<i64, f64>> {
    let (start, end) = aligned(START, END, STEP);
    let step = STEP * S;
    let mut out: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for span in spans.iter().filter(|s| keep(s)) {
        if span.start <= start || span.start > end {
            continue;
        }
        let interval = (span.start - start - 1) / step;
        let ts = ((start + (interval + 1) * step) / 1_000_000) as i64;
        *out.entry(span.service.clone())
            .or_default()
            .entry(ts)
            .or_default() += 1.0;
    }
    out
}

async fn get(vivace: &Vivace, path: &str, params: &[(&str, String)]) -> (u16, String) {
    let url = reqwest::Url::parse_with_params(&vivace.url(path), params).unwrap();
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn query_range(vivace: &Vivace, q: &str, extra: &[(&str, String)]) -> Value {
    let mut params = vec![
        ("q", q.to_string()),
        ("start", START.to_string()),
        ("end", END.to_string()),
        ("step", format!("{STEP}s")),
    ];
    params.extend(extra.iter().cloned());
    let (status, body) = get(vivace, "/api/metrics/query_range", &params).await;
    assert_eq!(status, 200, "{q}: {body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    check_range_schema(&json);
    json
}

async fn query_instant(vivace: &Vivace, q: &str, start: u64, end: u64) -> Value {
    let params = [
        ("q", q.to_string()),
        ("start", start.to_string()),
        ("end", end.to_string()),
    ];
    let (status, body) = get(vivace, "/api/metrics/query", &params).await;
    assert_eq!(status, 200, "{q}: {body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    // Grafana parses the instant answer strictly: only the 2025-05 schema's fields.
    for key in json.as_object().unwrap().keys() {
        assert!(
            ["series", "metrics", "status", "message"].contains(&key.as_str()),
            "{key}"
        );
    }
    for series in json["series"].as_array().into_iter().flatten() {
        for key in series.as_object().unwrap().keys() {
            assert!(["labels", "value"].contains(&key.as_str()), "{key}");
        }
    }
    json
}

fn check_range_schema(json: &Value) {
    for key in json.as_object().unwrap().keys() {
        assert!(
            ["series", "metrics", "status", "message"].contains(&key.as_str()),
            "{key}"
        );
    }
    for series in json["series"].as_array().into_iter().flatten() {
        for key in series.as_object().unwrap().keys() {
            assert!(
                ["labels", "samples", "exemplars"].contains(&key.as_str()),
                "{key}"
            );
        }
        for sample in series["samples"].as_array().unwrap() {
            assert!(sample["timestampMs"].is_string(), "int64 as a string");
        }
    }
}

/// Range answer as service → timestamp → value (absent value = 0, proto3).
fn by_service(json: &Value) -> BTreeMap<String, BTreeMap<i64, f64>> {
    let mut out = BTreeMap::new();
    for series in json["series"].as_array().into_iter().flatten() {
        let labels = series["labels"].as_array().unwrap();
        assert_eq!(labels.len(), 1, "{series}");
        assert_eq!(labels[0]["key"], "resource.service.name");
        let service = labels[0]["value"]["stringValue"]
            .as_str()
            .unwrap()
            .to_string();
        let points: BTreeMap<i64, f64> = series["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["timestampMs"].as_str().unwrap().parse().unwrap(),
                    p["value"].as_f64().unwrap_or(0.0),
                )
            })
            .filter(|(_, v)| *v != 0.0)
            .collect();
        out.insert(service, points);
    }
    out
}

fn instant_by_service(json: &Value) -> BTreeMap<String, f64> {
    json["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["labels"][0]["value"]["stringValue"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s["value"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

/// The checks every copy of the dataset (head, blocks) must pass.
async fn check_dataset(vivace: &Vivace, spans: &[SpanFact]) -> Value {
    let counts = query_range(
        vivace,
        "{} | count_over_time() by (resource.service.name)",
        &[],
    )
    .await;
    assert_eq!(by_service(&counts), expected_counts(spans, |_| true));
    assert_eq!(by_service(&counts).len(), 5, "five services");

    let rate = query_range(vivace, "{ } | rate() by (resource.service.name)", &[]).await;
    let expected_rate: BTreeMap<String, BTreeMap<i64, f64>> = expected_counts(spans, |_| true)
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.into_iter().map(|(t, c)| (t, c / STEP as f64)).collect(),
            )
        })
        .collect();
    assert_eq!(by_service(&rate), expected_rate);

    let errors = query_range(
        vivace,
        "{ status = error } | count_over_time() by (resource.service.name)",
        &[],
    )
    .await;
    assert_eq!(by_service(&errors), expected_counts(spans, |s| s.error));

    // Instant: one value over (start, end], no alignment.
    let (start, end) = (START * S, END * S);
    let in_window = |s: &&SpanFact| s.start > start && s.start <= end;
    let mut expected_max: BTreeMap<String, f64> = BTreeMap::new();
    let mut expected_total: BTreeMap<String, f64> = BTreeMap::new();
    for span in spans.iter().filter(in_window) {
        let max = expected_max.entry(span.service.clone()).or_insert(0.0);
        *max = max.max(span.duration as f64 / 1e9);
        *expected_total.entry(span.service.clone()).or_default() += 1.0;
    }
    let max = query_instant(
        vivace,
        "{} | max_over_time(duration) by (resource.service.name)",
        START,
        END,
    )
    .await;
    assert_eq!(instant_by_service(&max), expected_max);
    let total = query_instant(
        vivace,
        "{} | count_over_time() by (resource.service.name)",
        START,
        END,
    )
    .await;
    assert_eq!(instant_by_service(&total), expected_total);

    // Exemplars: at most the asked number, each naming a trace of the dataset.
    let with_exemplars = query_range(vivace, "{} | rate()", &[("exemplars", "5".into())]).await;
    let exemplars = with_exemplars["series"][0]["exemplars"].as_array().unwrap();
    assert!(
        !exemplars.is_empty() && exemplars.len() <= 5,
        "{exemplars:?}"
    );
    for exemplar in exemplars {
        let trace = exemplar["labels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["key"] == "trace:id")
            .and_then(|l| l["value"]["stringValue"].as_str())
            .unwrap();
        assert!(spans.iter().any(|s| s.trace_id == trace), "{trace}");
        assert!(exemplar["value"].as_f64().unwrap() > 0.0);
        assert!(
            exemplar["timestampMs"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
                > 0
        );
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_over_the_head_match_the_dataset() {
    let vivace = Vivace::start("");
    common::load_dataset(&vivace).await;
    let spans = dataset_spans();
    check_dataset(&vivace, &spans).await;

    // The golden error answers of Tempo v3.0.3.
    for name in ["metrics-malformed", "metrics-not-a-metrics-query"] {
        let case: Value = serde_json::from_slice(
            &std::fs::read(test_data(&format!("tempo-api/errors/{name}.json"))).unwrap(),
        )
        .unwrap();
        let params: Vec<(&str, String)> = case["request"]["query"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap(), p[1].as_str().unwrap().to_string()))
            .collect();
        let (status, body) = get(&vivace, case["request"]["path"].as_str().unwrap(), &params).await;
        assert_eq!(status, case["status"].as_u64().unwrap() as u16, "{name}");
        assert_eq!(body, case["body"].as_str().unwrap(), "{name}");
    }
    let (status, body) = get(
        &vivace,
        "/api/metrics/query_range",
        &[
            ("q", "{} | rate()".into()),
            ("start", "1700000000".into()),
            ("end", "1700200000".into()),
        ],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "metrics query time range exceeds the maximum allowed duration of 24h0m0s"
        )
    );
    let (status, _) = get(
        &vivace,
        "/api/metrics/query_range",
        &[("q", "{} | rate()".into()), ("step", "-1".into())],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_after_flush_and_restart_read_blocks() {
    let data = tempfile::Builder::new()
        .prefix("vivace-metrics-")
        .tempdir()
        .unwrap()
        .keep();
    let yaml = format!(
        "ingester:\n  trace_idle_period: 1s\n  max_block_duration: 2s\n  flush_check_period: 200ms\n  wal_path: {}\n",
        data.join("wal").display()
    );
    let mut vivace = Vivace::start_in(&data, common::Ports::pick(), &yaml);
    common::load_dataset(&vivace).await;
    let blocks = data.join("blocks").join("single-tenant");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let metas = std::fs::read_dir(&blocks)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.path().join("meta.json").exists())
                    .count()
            })
            .unwrap_or(0);
        if metas > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no block flushed within 60s; log:\n{}",
            vivace.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    vivace.terminate();
    vivace.restart();
    let counts = check_dataset(&vivace, &dataset_spans()).await;
    assert!(
        counts["metrics"]["totalBlocks"].as_u64().unwrap_or(0) >= 1,
        "blocks were read: {}",
        counts["metrics"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_over_blocks_tempo_wrote() {
    let vivace = common::start_over_tempo_block();
    let ids = std::fs::read_to_string(test_data(
        "tempo-blocks/generated-by-tempo-v3.0.3/trace_ids.txt",
    ))
    .unwrap();
    let client = reqwest::Client::new();
    let mut spans = Vec::new();
    for id in ids.split_whitespace() {
        let trace: Value = client
            .get(vivace.url(&format!("/api/traces/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        spans.extend(span_facts(&trace["batches"], Some(id)));
    }
    assert!(!spans.is_empty());
    // The block covers 2022-07-04T11:11:09Z..11:11:35Z.
    let (start, end) = common::TEMPO_BLOCK_WINDOW;
    let (start, end) = (u64::from(start), u64::from(end));
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for span in &spans {
        if span.start > start * S && span.start <= end * S {
            *expected.entry(span.service.clone()).or_default() += 1.0;
        }
    }
    let total = query_instant(
        &vivace,
        "{} | count_over_time() by (resource.service.name)",
        start,
        end,
    )
    .await;
    assert_eq!(instant_by_service(&total), expected);
    assert_eq!(total["metrics"]["totalBlocks"], 1);
    // The range form sums to the same totals.
    let (status, body) = get(
        &vivace,
        "/api/metrics/query_range",
        &[
            (
                "q",
                "{} | count_over_time() by (resource.service.name)".into(),
            ),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", "10s".into()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let range: Value = serde_json::from_str(&body).unwrap();
    let sums: BTreeMap<String, f64> = by_service(&range)
        .into_iter()
        .map(|(k, v)| (k, v.values().sum()))
        .collect();
    assert_eq!(sums, expected);
}
