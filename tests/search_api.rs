//! The recorded `/api/search` answers of a real Tempo v3.0.3 (tests/data/tempo-api)
//! replayed against vivace with the golden dataset loaded over OTLP/HTTP JSON. Compared by
//! content as the golden README says: the set of trace IDs (a truncated answer as a subset of
//! its `__full` companion), the spansets' span IDs and `matched`, never `metrics` values.
//! Every case's result is printed; all must pass except `KNOWN_TEMPO_DEFECTS`, where vivace
//! gives the correct answer and Tempo does not.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use common::{test_data, Vivace};

/// `(case, expected trace count, why)`: Tempo's recorded answer is wrong; vivace must give
/// the semantically correct count instead.
const KNOWN_TEMPO_DEFECTS: &[(&str, usize, &str)] = &[(
    "search-nil-check-is-nil",
    44,
    "Tempo v3.0.3 misses spans for `span.db.system = nil && …` (14 or 15 traces on fresh \
     instances); 44 traces have db-proxy spans without db.system",
)];

fn load_cases(folder: &str) -> BTreeMap<String, Value> {
    let mut cases = BTreeMap::new();
    for entry in std::fs::read_dir(test_data(&format!("tempo-api/{folder}"))).unwrap() {
        let path = entry.unwrap().path();
        let case: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        cases.insert(case["name"].as_str().unwrap().to_string(), case);
    }
    cases
}

async fn replay(vivace: &Vivace, case: &Value) -> (u16, String, Value, String) {
    let request = &case["request"];
    let pairs: Vec<(String, String)> = request["query"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect();
    let url =
        reqwest::Url::parse_with_params(&vivace.url(request["path"].as_str().unwrap()), &pairs)
            .unwrap();
    let response = reqwest::Client::new().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, content_type, json, text)
}

/// Recorded error answers of `/api/search` in `tests/data/tempo-api/errors`.
const SEARCH_ERROR_CASES: usize = 3;

/// Per trace: its spansets as (matched, listed spans). A listed span is its ID, its `name`
/// when the answer shows one, and its attribute list (sorted by key), so that every matched
/// span's attributes are compared exactly.
type Spansets = BTreeMap<String, Vec<(u64, BTreeSet<String>)>>;

fn span_key(span: &Value) -> String {
    let mut attributes: Vec<String> = span["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|attribute| format!("{}={}", attribute["key"], attribute["value"]))
        .collect();
    attributes.sort();
    format!(
        "{} name={} attributes=[{}]",
        span["spanID"].as_str().unwrap_or_default(),
        span.get("name").map_or("-".to_string(), Value::to_string),
        attributes.join(", ")
    )
}

fn spansets(body: &Value) -> Spansets {
    let mut out = Spansets::new();
    for trace in body["traces"].as_array().into_iter().flatten() {
        let id = trace["traceID"].as_str().unwrap_or_default().to_string();
        let mut sets: Vec<(u64, BTreeSet<String>)> = trace["spanSets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|set| {
                let spans = set["spans"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(span_key)
                    .collect();
                (set["matched"].as_u64().unwrap_or(0), spans)
            })
            .collect();
        sets.sort();
        out.insert(id, sets);
    }
    out
}

/// The strict schema of §2.0: no field outside the 2025-05 `SearchResponse`.
fn check_schema(body: &Value) -> Result<(), String> {
    let allowed = |value: &Value, keys: &[&str], what: &str| -> Result<(), String> {
        for key in value.as_object().map(|o| o.keys()).into_iter().flatten() {
            if !keys.contains(&key.as_str()) {
                return Err(format!("unexpected field {key:?} in {what}"));
            }
        }
        Ok(())
    };
    allowed(body, &["traces", "metrics"], "SearchResponse")?;
    if !body["metrics"].is_object() {
        return Err("metrics is missing".into());
    }
    allowed(
        &body["metrics"],
        &[
            "inspectedTraces",
            "inspectedBytes",
            "totalBlocks",
            "completedJobs",
            "totalJobs",
            "totalBlockBytes",
            "inspectedSpans",
        ],
        "SearchMetrics",
    )?;
    for trace in body["traces"].as_array().into_iter().flatten() {
        allowed(
            trace,
            &[
                "traceID",
                "rootServiceName",
                "rootTraceName",
                "startTimeUnixNano",
                "durationMs",
                "spanSets",
                "serviceStats",
            ],
            "TraceSearchMetadata",
        )?;
        if !trace["startTimeUnixNano"].is_string() {
            return Err("startTimeUnixNano must be a string".into());
        }
        for set in trace["spanSets"].as_array().into_iter().flatten() {
            allowed(set, &["spans", "matched", "attributes"], "SpanSet")?;
            for span in set["spans"].as_array().into_iter().flatten() {
                allowed(
                    span,
                    &[
                        "spanID",
                        "name",
                        "startTimeUnixNano",
                        "durationNanos",
                        "attributes",
                    ],
                    "Span",
                )?;
                let id = span["spanID"].as_str().unwrap_or_default();
                let duration = &span["durationNanos"];
                if id.len() != 16 || !(duration.is_string() || duration.is_null()) {
                    return Err(format!("bad span encoding {span}"));
                }
            }
        }
    }
    Ok(())
}

fn compare(
    name: &str,
    golden: &Value,
    full: Option<&Value>,
    ours: &Value,
    spss: usize,
) -> Result<(), String> {
    check_schema(ours)?;
    let golden_sets = spansets(&golden["body"]);
    let our_sets = spansets(ours);
    let our_ids: BTreeSet<&String> = our_sets.keys().collect();
    if let Some((_, expected, _)) = KNOWN_TEMPO_DEFECTS.iter().find(|(n, _, _)| *n == name) {
        return if our_ids.len() == *expected {
            Ok(())
        } else {
            Err(format!("expected {expected} traces, got {}", our_ids.len()))
        };
    }
    let Some(full) = full else {
        let golden_ids: BTreeSet<&String> = golden_sets.keys().collect();
        if our_ids != golden_ids {
            let missing: Vec<_> = golden_ids.difference(&our_ids).collect();
            let extra: Vec<_> = our_ids.difference(&golden_ids).collect();
            return Err(format!(
                "trace IDs differ: missing {missing:?}, extra {extra:?}"
            ));
        }
        for (id, sets) in &golden_sets {
            if our_sets.get(id) != Some(sets) {
                return Err(format!(
                    "trace {id}: spansets {:?}, Tempo {sets:?}",
                    our_sets.get(id)
                ));
            }
        }
        return Ok(());
    };
    // Truncated answer: same number of traces, every one in the full answer, each spanset a
    // truncation of a full one.
    let full_sets = spansets(&full["body"]);
    if our_ids.len() != golden_sets.len() {
        return Err(format!(
            "{} traces, Tempo {}",
            our_ids.len(),
            golden_sets.len()
        ));
    }
    for (id, sets) in &our_sets {
        let Some(candidates) = full_sets.get(id) else {
            return Err(format!("trace {id} is not in the full answer"));
        };
        if sets.len() != candidates.len() {
            return Err(format!(
                "trace {id}: {} spansets, full {}",
                sets.len(),
                candidates.len()
            ));
        }
        for (matched, spans) in sets {
            let fits = candidates.iter().any(|(full_matched, full_spans)| {
                full_matched == matched
                    && spans.is_subset(full_spans)
                    && spans.len() == (*matched as usize).min(spss)
            });
            if !fits {
                return Err(format!(
                    "trace {id}: spanset ({matched}, {spans:?}) fits none of {candidates:?}"
                ));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn search_matches_tempo() {
    let vivace = Vivace::start("");
    common::load_dataset(&vivace).await;
    let cases = load_cases("search");
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, case) in &cases {
        if name.ends_with("__full") {
            continue;
        }
        let full = cases.get(&format!("{name}__full"));
        let (status, content_type, body, text) = replay(&vivace, case).await;
        let spss = case["request"]["query"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == "spss")
            .and_then(|p| p[1].as_str()?.parse().ok())
            .unwrap_or(3);
        let outcome = if status != case["status"].as_u64().unwrap() as u16 {
            Err(format!("status {status}: {text}"))
        } else if content_type != "application/json" {
            Err(format!("content type {content_type}"))
        } else {
            compare(name, case, full, &body, spss)
        };
        compared += 1;
        match outcome {
            Ok(()) => eprintln!("ok   {name}"),
            Err(why) => {
                eprintln!("FAIL {name}: {why}");
                failures.push(name.clone());
            }
        }
    }
    for (name, case) in load_cases("errors") {
        if !name.starts_with("search-") {
            continue;
        }
        let (status, _, _, text) = replay(&vivace, &case).await;
        compared += 1;
        let expected = case["body"].as_str().unwrap_or_default();
        if status == case["status"].as_u64().unwrap() as u16 && text == expected {
            eprintln!("ok   {name}");
        } else {
            eprintln!("FAIL {name}: {status} {text:?}, Tempo {expected:?}");
            failures.push(name);
        }
    }
    eprintln!(
        "search goldens: {}/{compared} passed",
        compared - failures.len()
    );
    assert!(failures.is_empty(), "failed: {failures:?}");
    // 31 recorded searches and the recorded search errors: a renamed folder or key must not
    // pass on fewer.
    assert_eq!(compared, 31 + SEARCH_ERROR_CASES, "recorded cases compared");
}

/// Query parameters, expected status, expected body.
type ParamCase = (&'static [(&'static str, &'static str)], u16, &'static str);

#[tokio::test(flavor = "multi_thread")]
async fn search_parameter_errors() {
    let vivace = Vivace::start("");
    let client = reqwest::Client::new();
    let cases: &[ParamCase] = &[
        (
            &[("q", "{}"), ("limit", "0")],
            400,
            "invalid limit: must be a positive number",
        ),
        (
            &[("q", "{}"), ("spss", "101")],
            400,
            "spans per span set exceeds 100. received 101",
        ),
        (
            &[("q", "{}"), ("tags", "a=b")],
            400,
            "invalid request: can't specify tags and q in the same query",
        ),
        (
            &[("q", "{}")],
            200,
            r#"{"metrics":{"completedJobs":1,"totalJobs":1}}"#,
        ),
    ];
    for (query, status, body) in cases {
        let url =
            reqwest::Url::parse_with_params(&vivace.url("/api/search"), query.iter()).unwrap();
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "{query:?}");
        assert_eq!(response.text().await.unwrap(), *body, "{query:?}");
    }
}

/// Search reads blocks: vivace pointed at a bucket holding a block Tempo v3.0.3 wrote finds
/// all 133 of its traces for `{}` over the block's time range, and honours `limit`.
#[tokio::test(flavor = "multi_thread")]
async fn search_reads_blocks_tempo_wrote() {
    let vivace = common::start_over_tempo_block();
    let expected: BTreeSet<String> = std::fs::read_to_string(test_data(
        "tempo-blocks/generated-by-tempo-v3.0.3/trace_ids.txt",
    ))
    .unwrap()
    .split_whitespace()
    .map(|id| id.trim_start_matches('0').to_string())
    .collect();
    // The block covers 2022-07-04T11:11:09Z..11:11:35Z.
    let window = [("start", "1656933000"), ("end", "1656933600")];
    let search = |extra: Vec<(&'static str, &'static str)>| {
        let mut params: Vec<(&str, &str)> = window.to_vec();
        params.extend(extra);
        let url = reqwest::Url::parse_with_params(&vivace.url("/api/search"), &params).unwrap();
        async move {
            let response = reqwest::get(url).await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let all = search(vec![("q", "{}"), ("limit", "1000"), ("spss", "1")]).await;
    let found: BTreeSet<String> = spansets(&all).into_keys().collect();
    assert_eq!(found, expected, "every trace of the block is found");
    check_schema(&all).unwrap();
    let limited = search(vec![("q", "{}"), ("limit", "10")]).await;
    assert_eq!(spansets(&limited).len(), 10, "limit is honoured");
    let none = search(vec![("q", "{ name = \"no such span\" }")]).await;
    assert!(
        none.get("traces").is_none(),
        "no traces field when nothing matched"
    );
}
