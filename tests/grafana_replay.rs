//! A request-by-request replay of what Grafana's Tempo datasource sends
//! (reference/tempo-api.md §1.1 current plugin, §1.2 older core Grafana), with the headers
//! and parameters Grafana uses, against the real binary holding the golden dataset; each
//! answer is checked the way Grafana's parser reads it:
//! - JSON that Grafana decodes with `jsonpb` (search strictly) against the 2025-05 `tempopb`
//!   field lists: no unknown fields, lowerCamel names, 64-bit integers as strings, 32-bit as
//!   numbers, defaults omitted, no deprecated `spanSet`; JSON proxied raw to the browser (tags)
//!   for its shape;
//! - protobuf with vivace's `tempopb` prost structs plus Grafana's hard requirements on traces
//!   (§2.5: `trace` always set, every ResourceSpans with a `resource` carrying `service.name`,
//!   every ScopeSpans with `scope`, every Span with `status`);
//! - streaming search over gRPC on the HTTP port (h2c), as Grafana dials it.
//!
//! The replayed requests are the one table [`REPLAY`].

mod common;

use std::collections::BTreeSet;

use prost::Message;
use serde_json::Value;
use vivace::api::tempopb::{
    QueryInstantRequest, QueryInstantResponse, QueryRangeRequest, QueryRangeResponse,
    SearchRequest, SearchResponse, Timestamp, TraceByIdResponse,
};
use vivace::model::Trace;

use common::{test_data, Vivace};

/// The tenant configured as the datasource's custom header (`httpHeaderName1: X-Scope-OrgID`).
const TENANT: &str = "grafana-replay";
/// The panel range covering the golden dataset (Unix seconds).
const S: u64 = 1_795_306_680;
const E: u64 = 1_795_307_340;
/// A trace of the dataset, its 32-hex form and a trace whose ID starts with zero bytes.
const TRACE_ID: &str = "f6d3c1758e2b09c11dc2e57b3ce1547b";
const ZERO_PREFIXED: &str = "00000000000000008598134cfdc9851e";
const UNKNOWN_ID: &str = "0123456789abcdef0123456789abcdef";
const USER_AGENT: &str = "Grafana/12.3.0";

/// One request Grafana makes.
enum Call {
    /// `GET path?params` with `Accept` (none when `None`). Placeholders: `{S}`, `{E}`,
    /// `{S-30m}`, `{E+30m}` (time shift), `{ID}`, `{ZERO}`, `{ZERO_TRIMMED}`, `{UNKNOWN}`.
    Get {
        path: &'static str,
        params: &'static [(&'static str, &'static str)],
        accept: Option<&'static str>,
    },
    /// `/tempopb.StreamingQuerier/Search` over h2c on the HTTP port; `window` is the panel
    /// range, or the health check's last 15 minutes when `false`.
    StreamSearch {
        query: &'static str,
        limit: u32,
        spss: u32,
        window: bool,
    },
    /// `MetricsQueryRange` (or `MetricsQueryInstant` when `instant`) over h2c on the HTTP
    /// port, over the panel range in nanoseconds; `step_ns` 0 when the user left step empty.
    StreamMetrics {
        query: &'static str,
        step_ns: u64,
        exemplars: u32,
        instant: bool,
    },
}

/// How Grafana reads the answer.
enum Check {
    /// Status 200, body ignored (`CheckHealth`).
    Ok200,
    /// `/api/status/buildinfo`: JSON with a semver `version` ≥ 2.7.0.
    BuildInfo,
    /// `tempopb.SearchResponse` JSON, strict; at least this many traces; `spansets`: each
    /// trace has `spanSets` (TraceQL; the legacy tag search has none, as in Tempo).
    SearchJson { min_traces: usize, spansets: bool },
    /// `SearchTagsV2Response` JSON (raw to the browser); these `scope.tag`s must be listed.
    TagsV2 { must_have: &'static [&'static str] },
    /// `SearchTagValuesV2Response`; this `(type, value)` must be listed.
    TagValuesV2 {
        must_have: (&'static str, &'static str),
    },
    /// `SearchTagsResponse` (v1, older Grafana's fallback); this name must be listed.
    TagsV1 { must_have: &'static str },
    /// `SearchTagValuesResponse` (v1); this value must be listed.
    TagValuesV1 { must_have: &'static str },
    /// `tempopb.TraceByIDResponse` protobuf with Grafana's requirements; this many spans.
    TraceV2Protobuf { spans: usize },
    /// `tempopb.Trace` protobuf (v1 fallback / older Grafana).
    TraceV1Protobuf { spans: usize },
    /// 404 (v2: Grafana then retries v1; v1: "trace not found").
    NotFound,
    /// gRPC stream: every message has `metrics`, the result equals `/api/search`'s for the
    /// same query and range. `health`: one `Recv` returning a message or EOF is enough.
    Stream { health: bool },
    /// `QueryRangeResponse` JSON (Grafana allows unknown fields here): typed labels, samples,
    /// exemplars with `trace:id`.
    MetricsRangeJson,
    /// `QueryInstantResponse` JSON, strict.
    MetricsInstantJson,
    /// Metrics gRPC stream: every message has `metrics`; the series equal the HTTP API's.
    StreamMetrics,
}

struct Replay {
    /// The Grafana feature and the code that sends it.
    feature: &'static str,
    call: Call,
    check: Check,
}

/// How many requests [`REPLAY`] holds: the replay asserts it ran exactly these.
const REPLAYED_REQUESTS: usize = 30;

/// Every request, in the order a user session would make them.
const REPLAY: &[Replay] = &[
    Replay {
        feature: "Save & test, streaming off (tempo.go: CheckHealth)",
        call: Call::Get {
            path: "/api/echo",
            params: &[],
            accept: None,
        },
        check: Check::Ok200,
    },
    Replay {
        feature: "Save & test, streaming search on: {} over the last 15 min, limit 1",
        call: Call::StreamSearch {
            query: "{}",
            limit: 1,
            spss: 0,
            window: false,
        },
        check: Check::Stream { health: true },
    },
    Replay {
        feature: "Build info (older Grafana 10.2–12.2, gates features on version)",
        call: Call::Get {
            path: "/api/status/buildinfo",
            params: &[],
            accept: None,
        },
        check: Check::BuildInfo,
    },
    Replay {
        feature: "TraceQL search, not streaming (search.go: createSearchRequest)",
        call: Call::Get {
            path: "/api/search",
            params: &[
                ("q", "{ status = error }"),
                ("limit", "20"),
                ("spss", "3"),
                ("start", "{S}"),
                ("end", "{E}"),
            ],
            accept: Some("application/json"),
        },
        check: Check::SearchJson {
            min_traces: 1,
            spansets: true,
        },
    },
    Replay {
        feature: "TraceQL search with select() and structural operator",
        call: Call::Get {
            path: "/api/search",
            params: &[
                (
                    "q",
                    r#"{ resource.service.name = "frontend" } >> { span.db.system = "postgresql" } | select(span.db.statement)"#,
                ),
                ("limit", "20"),
                ("spss", "3"),
                ("start", "{S}"),
                ("end", "{E}"),
            ],
            accept: Some("application/json"),
        },
        check: Check::SearchJson {
            min_traces: 1,
            spansets: true,
        },
    },
    Replay {
        feature: "TraceQL search with by() aggregates (spanset attributes)",
        call: Call::Get {
            path: "/api/search",
            params: &[
                (
                    "q",
                    "{ kind = server } | by(resource.service.name) | count() > 1",
                ),
                ("limit", "20"),
                ("spss", "3"),
                ("start", "{S}"),
                ("end", "{E}"),
            ],
            accept: Some("application/json"),
        },
        check: Check::SearchJson {
            min_traces: 1,
            spansets: true,
        },
    },
    Replay {
        feature: "TraceQL search without a range (older Grafana from the browser)",
        call: Call::Get {
            path: "/api/search",
            params: &[("q", "{}"), ("limit", "20"), ("spss", "3")],
            accept: None,
        },
        check: Check::SearchJson {
            min_traces: 20,
            spansets: true,
        },
    },
    Replay {
        feature: "TraceQL search with no match: metrics only",
        call: Call::Get {
            path: "/api/search",
            params: &[
                ("q", r#"{ name = "no such span" }"#),
                ("limit", "20"),
                ("spss", "3"),
                ("start", "{S}"),
                ("end", "{E}"),
            ],
            accept: Some("application/json"),
        },
        check: Check::SearchJson {
            min_traces: 0,
            spansets: true,
        },
    },
    Replay {
        feature: "Legacy Search tab (older Grafana): tags + durations",
        call: Call::Get {
            path: "/api/search",
            params: &[
                ("tags", "service.name=payments"),
                ("minDuration", "1ms"),
                ("maxDuration", "10s"),
                ("limit", "20"),
                ("start", "{S}"),
                ("end", "{E}"),
            ],
            accept: None,
        },
        check: Check::SearchJson {
            min_traces: 1,
            spansets: false,
        },
    },
    Replay {
        feature: "Tag names, v2 (language_provider.ts: fetchTags → /tags resource)",
        call: Call::Get {
            path: "/api/v2/search/tags",
            params: &[("limit", "5000")],
            accept: None,
        },
        check: Check::TagsV2 {
            must_have: &[
                "resource.service.name",
                "span.http.method",
                "intrinsic.status",
            ],
        },
    },
    Replay {
        feature: "Tag names, v2, one scope",
        call: Call::Get {
            path: "/api/v2/search/tags",
            params: &[("scope", "resource"), ("limit", "5000")],
            accept: None,
        },
        check: Check::TagsV2 {
            must_have: &["resource.service.name"],
        },
    },
    Replay {
        feature: "Tag values, v2 (tempo.go: handleTagValues, raw query incl. tag=)",
        call: Call::Get {
            path: "/api/v2/search/tag/resource.service.name/values",
            params: &[("tag", "resource.service.name"), ("limit", "5000")],
            accept: None,
        },
        check: Check::TagValuesV2 {
            must_have: ("string", "payments"),
        },
    },
    Replay {
        feature: "Tag values, v2, filtered by the editor's query",
        call: Call::Get {
            path: "/api/v2/search/tag/span.http.method/values",
            params: &[
                ("tag", "span.http.method"),
                ("limit", "5000"),
                ("q", r#"{ resource.service.name = "frontend" }"#),
            ],
            accept: None,
        },
        check: Check::TagValuesV2 {
            must_have: ("string", "GET"),
        },
    },
    Replay {
        feature: "Tag values, v2, intrinsic (keywords)",
        call: Call::Get {
            path: "/api/v2/search/tag/status/values",
            params: &[("tag", "status"), ("limit", "5000")],
            accept: None,
        },
        check: Check::TagValuesV2 {
            must_have: ("keyword", "error"),
        },
    },
    Replay {
        feature: "Tag names, v1 (older Grafana's fallback)",
        call: Call::Get {
            path: "/api/search/tags",
            params: &[],
            accept: None,
        },
        check: Check::TagsV1 {
            must_have: "service.name",
        },
    },
    Replay {
        feature: "Tag values, v1 (older Grafana's fallback)",
        call: Call::Get {
            path: "/api/search/tag/service.name/values",
            params: &[],
            accept: None,
        },
        check: Check::TagValuesV1 {
            must_have: "checkout",
        },
    },
    Replay {
        feature: "Trace by ID, v2 protobuf, no range (trace.go, default)",
        call: Call::Get {
            path: "/api/v2/traces/{ID}",
            params: &[],
            accept: Some("application/protobuf"),
        },
        check: Check::TraceV2Protobuf { spans: 5 },
    },
    Replay {
        feature: "Trace by ID, v2 protobuf, time shift on (panel range ± 30m)",
        call: Call::Get {
            path: "/api/v2/traces/{ID}",
            params: &[("start", "{S-30m}"), ("end", "{E+30m}")],
            accept: Some("application/protobuf"),
        },
        check: Check::TraceV2Protobuf { spans: 5 },
    },
    Replay {
        feature: "Trace by ID from a search result's link (leading zeros trimmed)",
        call: Call::Get {
            path: "/api/v2/traces/{ZERO_TRIMMED}",
            params: &[],
            accept: Some("application/protobuf"),
        },
        check: Check::TraceV2Protobuf { spans: 0 },
    },
    Replay {
        feature: "Trace by ID, unknown: v2 answers 404 …",
        call: Call::Get {
            path: "/api/v2/traces/{UNKNOWN}",
            params: &[],
            accept: Some("application/protobuf"),
        },
        check: Check::NotFound,
    },
    Replay {
        feature: "… so Grafana retries v1, which answers 404 too",
        call: Call::Get {
            path: "/api/traces/{UNKNOWN}",
            params: &[],
            accept: Some("application/protobuf"),
        },
        check: Check::NotFound,
    },
    Replay {
        feature: "Trace by ID, v1 protobuf (Grafana before Oct 2024)",
        call: Call::Get {
            path: "/api/traces/{ZERO}",
            params: &[],
            accept: Some("application/protobuf"),
        },
        check: Check::TraceV1Protobuf { spans: 0 },
    },
    Replay {
        feature: "TraceQL search, streaming (search_stream.go) over h2c on the HTTP port",
        call: Call::StreamSearch {
            query: "{ status = error }",
            limit: 20,
            spss: 3,
            window: true,
        },
        check: Check::Stream { health: false },
    },
    Replay {
        feature: "TraceQL search, streaming, with limit 0 (server default 20) and spss 0",
        call: Call::StreamSearch {
            query: "{}",
            limit: 0,
            spss: 0,
            window: true,
        },
        check: Check::Stream { health: false },
    },
    Replay {
        feature: "TraceQL metrics range, not streaming (traceql_query.go: createMetricsQuery)",
        call: Call::Get {
            path: "/api/metrics/query_range",
            params: &[("q", "{ } | rate() by (resource.service.name)"), ("start", "{S}"), ("end", "{E}"), ("step", "30s"), ("exemplars", "10")],
            accept: Some("application/json"),
        },
        check: Check::MetricsRangeJson,
    },
    Replay {
        feature: "TraceQL metrics range, no step (server default)",
        call: Call::Get {
            path: "/api/metrics/query_range",
            params: &[("q", "{ status = error } | count_over_time()"), ("start", "{S}"), ("end", "{E}")],
            accept: Some("application/json"),
        },
        check: Check::MetricsRangeJson,
    },
    Replay {
        feature: "TraceQL metrics instant, not streaming (same builder, path /api/metrics/query)",
        call: Call::Get {
            path: "/api/metrics/query",
            params: &[("q", "{ kind = server } | quantile_over_time(duration, .99) by (resource.service.name)"), ("start", "{S}"), ("end", "{E}")],
            accept: Some("application/json"),
        },
        check: Check::MetricsInstantJson,
    },
    Replay {
        feature: "TraceQL metrics range, streaming (metrics_stream.go), step 0",
        call: Call::StreamMetrics { query: "{ } | rate() by (resource.service.name)", step_ns: 0, exemplars: 10, instant: false },
        check: Check::StreamMetrics,
    },
    Replay {
        feature: "TraceQL metrics range, streaming, step 30s",
        call: Call::StreamMetrics { query: "{ status = error } | count_over_time()", step_ns: 30_000_000_000, exemplars: 0, instant: false },
        check: Check::StreamMetrics,
    },
    Replay {
        feature: "TraceQL metrics instant, streaming (metricsQueryType instant)",
        call: Call::StreamMetrics {
            query: "{ kind = server } | quantile_over_time(duration, .99) by (resource.service.name)",
            step_ns: 0,
            exemplars: 0,
            instant: true,
        },
        check: Check::StreamMetrics,
    },
];

/// A JSON field's kind in `tempopb`'s proto3 JSON.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    U32,
    /// 64-bit: a string of digits.
    I64,
    F64,
    Bool,
    Bytes,
    Msg(&'static str),
    Rep(&'static str),
    RepStr,
    Map(&'static str),
    Enum(&'static [&'static str]),
}

use Kind::*;

/// The 2025-05 `tempopb` messages Grafana decodes (reference §2.0, field lists), by name.
/// `AnyValue` is a oneof: one key, which may hold a default value.
const SCHEMA: &[(&str, &[(&str, Kind)])] = &[
    (
        "SearchResponse",
        &[
            ("traces", Rep("TraceSearchMetadata")),
            ("metrics", Msg("SearchMetrics")),
        ],
    ),
    (
        "TraceSearchMetadata",
        &[
            ("traceID", Str),
            ("rootServiceName", Str),
            ("rootTraceName", Str),
            ("startTimeUnixNano", I64),
            ("durationMs", U32),
            ("spanSet", Msg("SpanSet")),
            ("spanSets", Rep("SpanSet")),
            ("serviceStats", Map("ServiceStats")),
        ],
    ),
    ("ServiceStats", &[("spanCount", U32), ("errorCount", U32)]),
    (
        "SpanSet",
        &[
            ("spans", Rep("Span")),
            ("matched", U32),
            ("attributes", Rep("KeyValue")),
        ],
    ),
    (
        "Span",
        &[
            ("spanID", Str),
            ("name", Str),
            ("startTimeUnixNano", I64),
            ("durationNanos", I64),
            ("attributes", Rep("KeyValue")),
        ],
    ),
    (
        "SearchMetrics",
        &[
            ("inspectedTraces", U32),
            ("inspectedBytes", I64),
            ("totalBlocks", U32),
            ("completedJobs", U32),
            ("totalJobs", U32),
            ("totalBlockBytes", I64),
            ("inspectedSpans", I64),
        ],
    ),
    ("KeyValue", &[("key", Str), ("value", Msg("AnyValue"))]),
    (
        "AnyValue",
        &[
            ("stringValue", Str),
            ("boolValue", Bool),
            ("intValue", I64),
            ("doubleValue", F64),
            ("arrayValue", Msg("ArrayValue")),
            ("kvlistValue", Msg("KeyValueList")),
            ("bytesValue", Bytes),
        ],
    ),
    ("ArrayValue", &[("values", Rep("AnyValue"))]),
    ("KeyValueList", &[("values", Rep("KeyValue"))]),
    (
        "SearchTagsResponse",
        &[("tagNames", RepStr), ("metrics", Msg("MetadataMetrics"))],
    ),
    (
        "SearchTagsV2Response",
        &[
            ("scopes", Rep("SearchTagsV2Scope")),
            ("metrics", Msg("MetadataMetrics")),
        ],
    ),
    ("SearchTagsV2Scope", &[("name", Str), ("tags", RepStr)]),
    (
        "SearchTagValuesResponse",
        &[("tagValues", RepStr), ("metrics", Msg("MetadataMetrics"))],
    ),
    (
        "SearchTagValuesV2Response",
        &[
            ("tagValues", Rep("TagValue")),
            ("metrics", Msg("MetadataMetrics")),
        ],
    ),
    ("TagValue", &[("type", Str), ("value", Str)]),
    (
        "MetadataMetrics",
        &[
            ("inspectedBytes", I64),
            ("totalJobs", U32),
            ("completedJobs", U32),
            ("totalBlocks", U32),
            ("totalBlockBytes", I64),
        ],
    ),
    (
        "QueryRangeResponse",
        &[
            ("series", Rep("TimeSeries")),
            ("metrics", Msg("SearchMetrics")),
            ("status", Enum(&["COMPLETE", "PARTIAL"])),
            ("message", Str),
        ],
    ),
    (
        "TimeSeries",
        &[
            ("labels", Rep("KeyValue")),
            ("samples", Rep("Sample")),
            ("promLabels", Str),
            ("exemplars", Rep("Exemplar")),
        ],
    ),
    ("Sample", &[("timestampMs", I64), ("value", F64)]),
    (
        "Exemplar",
        &[
            ("labels", Rep("KeyValue")),
            ("value", F64),
            ("timestampMs", I64),
        ],
    ),
    (
        "QueryInstantResponse",
        &[
            ("series", Rep("InstantSeries")),
            ("metrics", Msg("SearchMetrics")),
            ("status", Enum(&["COMPLETE", "PARTIAL"])),
            ("message", Str),
        ],
    ),
    (
        "InstantSeries",
        &[
            ("labels", Rep("KeyValue")),
            ("value", F64),
            ("promLabels", Str),
        ],
    ),
];

fn fields_of(message: &str) -> &'static [(&'static str, Kind)] {
    SCHEMA
        .iter()
        .find(|(name, _)| *name == message)
        .map(|(_, fields)| *fields)
        .unwrap_or_else(|| panic!("no schema for {message}"))
}

/// Checks `value` as `message` in proto3 JSON. `strict`: unknown fields are errors (jsonpb
/// without `AllowUnknownFields`) and so are default values Tempo would omit.
fn check_json(value: &Value, message: &str, strict: bool, path: &str, errors: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        errors.push(format!("{path}: {message} is not an object"));
        return;
    };
    let oneof = message == "AnyValue";
    if oneof && object.len() > 1 {
        errors.push(format!("{path}: more than one AnyValue member"));
    }
    for (key, inner) in object {
        let here = format!("{path}.{key}");
        let Some((_, kind)) = fields_of(message).iter().find(|(name, _)| name == key) else {
            if strict {
                errors.push(format!(
                    "{here}: unknown field \"{key}\" in tempopb.{message}"
                ));
            }
            continue;
        };
        let omit_defaults = strict && !oneof;
        let mut fail = |what: &str| errors.push(format!("{here}: {what}, got {inner}"));
        match *kind {
            Str => match inner.as_str() {
                Some("") if omit_defaults => fail("empty string must be omitted"),
                Some(_) => {}
                None => fail("expected a string"),
            },
            U32 => match inner.as_u64() {
                Some(0) if omit_defaults => fail("0 must be omitted"),
                Some(n) if n <= u32::MAX as u64 => {}
                _ => fail("expected a 32-bit integer as a JSON number"),
            },
            I64 => match inner.as_str().map(|s| {
                s.parse::<i64>()
                    .or_else(|_| s.parse::<u64>().map(|n| n as i64))
            }) {
                Some(Ok(0)) if omit_defaults => fail("\"0\" must be omitted"),
                Some(Ok(_)) => {}
                _ => fail("expected a 64-bit integer as a JSON string"),
            },
            F64 => match inner {
                Value::Number(n) if omit_defaults && n.as_f64() == Some(0.0) => {
                    fail("0 must be omitted")
                }
                Value::Number(_) => {}
                Value::String(s) if ["NaN", "Infinity", "-Infinity"].contains(&s.as_str()) => {}
                _ => fail("expected a double"),
            },
            Bool => match inner.as_bool() {
                Some(false) if omit_defaults => fail("false must be omitted"),
                Some(_) => {}
                None => fail("expected a bool"),
            },
            Bytes => {
                use base64::Engine;
                if inner
                    .as_str()
                    .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                    .is_none()
                {
                    fail("expected standard base64");
                }
            }
            Enum(names) => match inner.as_str() {
                Some(name) if omit_defaults && Some(&name) == names.first() => {
                    fail("the zero enum value must be omitted")
                }
                Some(name) if names.contains(&name) => {}
                _ => fail("expected an enum name"),
            },
            RepStr => match inner.as_array() {
                Some(items) if items.is_empty() && omit_defaults => {
                    fail("empty list must be omitted")
                }
                Some(items) if items.iter().all(Value::is_string) => {}
                _ => fail("expected a list of strings"),
            },
            Msg(inner_message) => check_json(inner, inner_message, strict, &here, errors),
            Rep(inner_message) => match inner.as_array() {
                Some(items) => {
                    if items.is_empty() && omit_defaults {
                        errors.push(format!("{here}: empty list must be omitted"));
                    }
                    for (index, item) in items.iter().enumerate() {
                        check_json(
                            item,
                            inner_message,
                            strict,
                            &format!("{here}[{index}]"),
                            errors,
                        );
                    }
                }
                None => errors.push(format!("{here}: expected a list")),
            },
            Map(inner_message) => match inner.as_object() {
                Some(entries) => {
                    for (entry, item) in entries {
                        check_json(
                            item,
                            inner_message,
                            strict,
                            &format!("{here}[{entry}]"),
                            errors,
                        );
                    }
                }
                None => errors.push(format!("{here}: expected a map")),
            },
        }
    }
}

fn schema_errors(value: &Value, message: &str, strict: bool) -> Result<(), String> {
    let mut errors = Vec::new();
    check_json(value, message, strict, "$", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn is_trimmed_hex(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('0')
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// What Grafana's search transform reads: IDs, spansets, metrics.
fn check_search(body: &Value, min_traces: usize, spansets: bool) -> Result<(), String> {
    schema_errors(body, "SearchResponse", true)?;
    if body.get("metrics").is_none() {
        return Err("no metrics object".into());
    }
    let traces = body["traces"].as_array().cloned().unwrap_or_default();
    if traces.len() < min_traces {
        return Err(format!(
            "{} traces, expected at least {min_traces}",
            traces.len()
        ));
    }
    for trace in &traces {
        let id = trace["traceID"].as_str().unwrap_or_default();
        if !is_trimmed_hex(id) {
            return Err(format!(
                "traceID {id:?} is not lowercase hex with leading zeros trimmed"
            ));
        }
        if trace.get("spanSet").is_some() {
            return Err("deprecated spanSet sent: Grafana's table would show only it".into());
        }
        if trace.get("rootServiceName").is_none() {
            return Err(format!("{id}: no rootServiceName"));
        }
        let sets = trace["spanSets"].as_array().cloned().unwrap_or_default();
        if sets.is_empty() && spansets {
            return Err(format!("{id}: no spanSets"));
        }
        for span in sets
            .iter()
            .flat_map(|set| set["spans"].as_array().cloned().unwrap_or_default())
        {
            let span_id = span["spanID"].as_str().unwrap_or_default();
            if span_id.len() != 16
                || !span_id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            {
                return Err(format!("{id}: spanID {span_id:?} is not 16 lowercase hex"));
            }
        }
    }
    Ok(())
}

/// Grafana's `trace_transform.go` requirements on a decoded trace; returns the span count.
fn check_trace(trace: &Trace) -> Result<usize, String> {
    let mut spans = 0;
    if trace.resource_spans.is_empty() {
        return Err("no resourceSpans".into());
    }
    for (index, resource_spans) in trace.resource_spans.iter().enumerate() {
        let Some(resource) = &resource_spans.resource else {
            return Err(format!("resourceSpans[{index}] has no resource"));
        };
        if !resource
            .attributes
            .iter()
            .any(|kv| kv.key == "service.name")
        {
            return Err(format!("resourceSpans[{index}] has no service.name"));
        }
        if resource_spans.scope_spans.is_empty() {
            return Err(format!(
                "resourceSpans[{index}] has no scopeSpans (Grafana skips it)"
            ));
        }
        for scope_spans in &resource_spans.scope_spans {
            if scope_spans.scope.is_none() {
                return Err(format!("resourceSpans[{index}]: a scopeSpans has no scope"));
            }
            for span in &scope_spans.spans {
                if span.status.is_none() {
                    return Err(format!("span {} has no status", hex::encode(&span.span_id)));
                }
                if span.trace_id.len() != 16 || span.span_id.len() != 8 {
                    return Err("trace IDs must be 16 bytes and span IDs 8".into());
                }
                spans += 1;
            }
        }
    }
    if spans == 0 {
        return Err("zero spans: Grafana reports the trace as not found".into());
    }
    Ok(spans)
}

fn expand(text: &str) -> String {
    text.replace("{S-30m}", &(S - 1800).to_string())
        .replace("{E+30m}", &(E + 1800).to_string())
        .replace("{S}", &S.to_string())
        .replace("{E}", &E.to_string())
        .replace("{ID}", TRACE_ID)
        .replace("{ZERO_TRIMMED}", ZERO_PREFIXED.trim_start_matches('0'))
        .replace("{ZERO}", ZERO_PREFIXED)
        .replace("{UNKNOWN}", UNKNOWN_ID)
}

/// Calls a server-streaming method of `tempopb.StreamingQuerier` the way Grafana dials it
/// (host:port of the datasource URL, plaintext h2c for http://, the tenant as metadata).
async fn grpc_stream<Req, Resp>(
    vivace: &Vivace,
    method: &'static str,
    request: Req,
) -> Result<Vec<Resp>, tonic::Status>
where
    Req: Message + Send + Sync + 'static,
    Resp: Message + Default + Send + Sync + 'static,
{
    let channel = tonic::transport::Endpoint::from_shared(vivace.url(""))
        .unwrap()
        .user_agent(USER_AGENT)
        .unwrap()
        .connect()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert("x-scope-orgid", TENANT.parse().unwrap());
    let mut stream = grpc
        .server_streaming(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static(method),
            tonic_prost::ProstCodec::<Req, Resp>::default(),
        )
        .await?
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// Typed labels as the JSON API writes them, to compare the two APIs' series.
fn labels_json(labels: &[vivace::api::tempopb::KeyValue]) -> String {
    use vivace::api::tempopb::any_value::Value as V;
    let items: Vec<Value> = labels
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(V::StringValue(s)) => serde_json::json!({ "stringValue": s }),
                Some(V::IntValue(i)) => serde_json::json!({ "intValue": i.to_string() }),
                Some(V::DoubleValue(d)) => serde_json::json!({ "doubleValue": d }),
                Some(V::BoolValue(b)) => serde_json::json!({ "boolValue": b }),
                _ => serde_json::json!({}),
            };
            serde_json::json!({ "key": kv.key, "value": value })
        })
        .collect();
    Value::Array(items).to_string()
}

async fn http_get(
    vivace: &Vivace,
    path: &str,
    params: &[(String, String)],
    accept: Option<&str>,
) -> (u16, String, bytes::Bytes) {
    let url = reqwest::Url::parse_with_params(&vivace.url(path), params).unwrap();
    let mut request = reqwest::Client::new()
        .get(url)
        .header("User-Agent", USER_AGENT)
        .header("X-Scope-OrgID", TENANT);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    (status, content_type, response.bytes().await.unwrap())
}

fn json_of(content_type: &str, body: &[u8]) -> Result<Value, String> {
    if !content_type.starts_with("application/json") {
        return Err(format!(
            "content-type {content_type:?}, expected application/json"
        ));
    }
    serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))
}

/// Sends one replayed request and checks its answer as Grafana reads it; `Ok` summarises
/// what was found. Each kind of request has its function below.
async fn run(vivace: &Vivace, replay: &Replay) -> Result<String, String> {
    match &replay.call {
        Call::Get {
            path,
            params,
            accept,
        } => run_get(vivace, path, params, *accept, &replay.check).await,
        Call::StreamMetrics {
            query,
            step_ns,
            exemplars,
            instant,
        } => run_stream_metrics(vivace, query, *step_ns, *exemplars, *instant).await,
        Call::StreamSearch {
            query,
            limit,
            spss,
            window,
        } => {
            let search = StreamedSearch {
                query,
                limit: *limit,
                spss: *spss,
                window: *window,
            };
            run_stream_search(vivace, &search, &replay.check).await
        }
    }
}

/// `GET` with the placeholders expanded; a 404 is what [`Check::NotFound`] wants and any
/// other check wants a 200 whose body it reads.
async fn run_get(
    vivace: &Vivace,
    path: &str,
    params: &[(&str, &str)],
    accept: Option<&str>,
    check: &Check,
) -> Result<String, String> {
    let path = expand(path);
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), expand(v)))
        .collect();
    let (status, content_type, body) = http_get(vivace, &path, &params, accept).await;
    let text = String::from_utf8_lossy(&body).to_string();
    if let Check::NotFound = check {
        return if status == 404 {
            Ok("404".into())
        } else {
            Err(format!("status {status}, expected 404: {text}"))
        };
    }
    if status != 200 {
        return Err(format!("status {status}: {text}"));
    }
    check_http_answer(check, &content_type, &body)
}

/// Reads a 200 answer to a `GET` the way `check` says Grafana does.
fn check_http_answer(check: &Check, content_type: &str, body: &[u8]) -> Result<String, String> {
    match check {
        Check::Ok200 => Ok("200".into()),
        Check::BuildInfo => check_build_info(&json_of(content_type, body)?),
        Check::SearchJson {
            min_traces,
            spansets,
        } => {
            let body = json_of(content_type, body)?;
            check_search(&body, *min_traces, *spansets)?;
            Ok(format!(
                "{} traces",
                body["traces"].as_array().map_or(0, Vec::len)
            ))
        }
        Check::TagsV2 { must_have } => check_tags_v2(&json_of(content_type, body)?, must_have),
        Check::TagValuesV2 { must_have } => {
            check_tag_values_v2(&json_of(content_type, body)?, *must_have)
        }
        Check::TagsV1 { must_have } => check_listed(
            &json_of(content_type, body)?,
            ("SearchTagsResponse", "tagNames", "names"),
            must_have,
        ),
        Check::TagValuesV1 { must_have } => check_listed(
            &json_of(content_type, body)?,
            ("SearchTagValuesResponse", "tagValues", "values"),
            must_have,
        ),
        Check::TraceV2Protobuf { spans } => check_trace_v2(content_type, body, *spans),
        Check::TraceV1Protobuf { spans } => {
            expect_protobuf(content_type)?;
            let trace =
                Trace::decode(body).map_err(|error| format!("not a tempopb.Trace: {error}"))?;
            let found = spans_as_expected(&trace, *spans)?;
            Ok(format!("{found} spans"))
        }
        Check::MetricsRangeJson => check_metrics_range(&json_of(content_type, body)?),
        Check::MetricsInstantJson => {
            let body = json_of(content_type, body)?;
            schema_errors(&body, "QueryInstantResponse", true)?;
            let series = body["series"].as_array().map_or(0, Vec::len);
            if series == 0 {
                return Err("no series".into());
            }
            Ok(format!("{series} series"))
        }
        Check::NotFound | Check::Stream { .. } | Check::StreamMetrics => {
            unreachable!("handled above / gRPC only")
        }
    }
}

/// `/api/status/buildinfo`: a semver `version` of at least 2.7.0.
fn check_build_info(body: &Value) -> Result<String, String> {
    let version = body["version"].as_str().unwrap_or_default();
    let parts: Vec<u64> = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| {
            p.parse()
                .map_err(|_| format!("version {version:?} is not semver"))
        })
        .collect::<Result<_, _>>()?;
    if parts.len() != 3 || (parts[0], parts[1]) < (2, 7) {
        return Err(format!("version {version:?} must be semver ≥ 2.7.0"));
    }
    Ok(format!("version {version}"))
}

/// `SearchTagsV2Response`: every `scope.tag` of `must_have` is listed.
fn check_tags_v2(body: &Value, must_have: &[&str]) -> Result<String, String> {
    schema_errors(body, "SearchTagsV2Response", false)?;
    let mut listed = BTreeSet::new();
    for scope in body["scopes"].as_array().into_iter().flatten() {
        for tag in scope["tags"].as_array().into_iter().flatten() {
            listed.insert(format!(
                "{}.{}",
                scope["name"].as_str().unwrap_or(""),
                tag.as_str().unwrap_or("")
            ));
        }
    }
    for tag in must_have {
        if !listed.contains(*tag) {
            return Err(format!(
                "{tag} not listed (Grafana: `Scope for tag … not found`)"
            ));
        }
    }
    Ok(format!("{} scope.tag names", listed.len()))
}

/// `SearchTagValuesV2Response`: the typed value `must_have` is listed.
fn check_tag_values_v2(body: &Value, must_have: (&str, &str)) -> Result<String, String> {
    schema_errors(body, "SearchTagValuesV2Response", false)?;
    let values: Vec<(String, String)> = body["tagValues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["type"].as_str().unwrap_or("").into(),
                v["value"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    if !values
        .iter()
        .any(|(t, v)| (t.as_str(), v.as_str()) == must_have)
    {
        return Err(format!("{must_have:?} not in {values:?}"));
    }
    Ok(format!("{} values", values.len()))
}

/// A v1 tags answer (`SearchTagsResponse` or `SearchTagValuesResponse`): `(message, field,
/// what the summary counts)`; `must_have` is in the array `field`.
fn check_listed(
    body: &Value,
    (message, field, counted): (&str, &str, &str),
    must_have: &str,
) -> Result<String, String> {
    schema_errors(body, message, false)?;
    let listed = body[field].as_array().cloned().unwrap_or_default();
    if !listed.iter().any(|n| n == must_have) {
        return Err(format!("{must_have} not in {listed:?}"));
    }
    Ok(format!("{} {counted}", listed.len()))
}

/// Protobuf answers carry `application/protobuf`.
fn expect_protobuf(content_type: &str) -> Result<(), String> {
    if content_type != "application/protobuf" {
        return Err(format!("content-type {content_type:?}"));
    }
    Ok(())
}

/// Grafana's requirements on a trace, and its span count when `spans` is not 0.
fn spans_as_expected(trace: &Trace, spans: usize) -> Result<usize, String> {
    let found = check_trace(trace)?;
    if spans != 0 && found != spans {
        return Err(format!("{found} spans, expected {spans}"));
    }
    Ok(found)
}

/// `tempopb.TraceByIDResponse`: the trace set, as Grafana requires it, and whole.
fn check_trace_v2(content_type: &str, body: &[u8], spans: usize) -> Result<String, String> {
    expect_protobuf(content_type)?;
    let response = TraceByIdResponse::decode(body)
        .map_err(|error| format!("not a tempopb.TraceByIDResponse: {error}"))?;
    let trace = response
        .trace
        .as_ref()
        .ok_or("trace (field 1) missing: Grafana dereferences it")?;
    let found = spans_as_expected(trace, spans)?;
    if response.status != 0 {
        return Err(format!(
            "status {} (PARTIAL) for a whole trace",
            response.status
        ));
    }
    Ok(format!("{found} spans"))
}

/// `QueryRangeResponse` JSON: series with labels, exemplars Grafana can link to a trace.
fn check_metrics_range(body: &Value) -> Result<String, String> {
    schema_errors(body, "QueryRangeResponse", false)?;
    let series = body["series"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        return Err("no series".into());
    }
    let mut exemplars = 0;
    for one in &series {
        if one["labels"].as_array().is_none_or(Vec::is_empty) {
            return Err(format!("a series without labels: {one}"));
        }
        for exemplar in one["exemplars"].as_array().into_iter().flatten() {
            exemplars += 1;
            let has_trace_id = exemplar["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|l| l["key"] == "trace:id" && l["value"]["stringValue"].is_string());
            if !has_trace_id
                || exemplar.get("value").is_none()
                || exemplar.get("timestampMs").is_none()
            {
                return Err(format!(
                    "an exemplar Grafana drops or cannot link: {exemplar}"
                ));
            }
        }
    }
    Ok(format!("{} series, {exemplars} exemplars", series.len()))
}

/// A message of a `tempopb.StreamingQuerier` stream Grafana reads: the method that sends it,
/// and whether it carries the `metrics` Grafana reads from every message.
trait Streamed: Message + Default + Send + Sync + 'static {
    const METHOD: &'static str;
    fn has_metrics(&self) -> bool;
}

/// Calls the streaming method answering `Resp`; every message must carry `metrics`
/// (`missing` says what breaks in Grafana when one does not).
async fn stream_with_metrics<Req, Resp>(
    vivace: &Vivace,
    request: Req,
    missing: &str,
) -> Result<Vec<Resp>, String>
where
    Req: Message + Send + Sync + 'static,
    Resp: Streamed,
{
    let messages: Vec<Resp> = grpc_stream(vivace, Resp::METHOD, request)
        .await
        .map_err(|status| format!("rpc error: {status:?}"))?;
    if !messages.iter().all(Resp::has_metrics) {
        return Err(missing.into());
    }
    Ok(messages)
}

/// Implements [`Streamed`] for each answer, with the method that streams it.
macro_rules! streamed {
    ($($answer:ty => $method:literal),* $(,)?) => {$(
        impl Streamed for $answer {
            const METHOD: &'static str = $method;
            fn has_metrics(&self) -> bool {
                self.metrics.is_some()
            }
        }
    )*};
}

streamed! {
    SearchResponse => "/tempopb.StreamingQuerier/Search",
    QueryRangeResponse => "/tempopb.StreamingQuerier/MetricsQueryRange",
    QueryInstantResponse => "/tempopb.StreamingQuerier/MetricsQueryInstant",
}

/// Streamed TraceQL metrics over the panel range: the series must equal the HTTP API's for
/// the same query.
async fn run_stream_metrics(
    vivace: &Vivace,
    query: &str,
    step_ns: u64,
    exemplars: u32,
    instant: bool,
) -> Result<String, String> {
    let mut params = vec![
        ("q".to_string(), query.to_string()),
        ("start".to_string(), S.to_string()),
        ("end".to_string(), E.to_string()),
    ];
    let (streamed, messages) = if instant {
        stream_metrics_instant(vivace, query).await?
    } else {
        if step_ns != 0 {
            params.push(("step".into(), format!("{}s", step_ns / 1_000_000_000)));
        }
        if exemplars != 0 {
            params.push(("exemplars".into(), exemplars.to_string()));
        }
        stream_metrics_range(vivace, query, step_ns, exemplars).await?
    };
    let path = if instant {
        "/api/metrics/query"
    } else {
        "/api/metrics/query_range"
    };
    let (_, content_type, body) = http_get(vivace, path, &params, Some("application/json")).await;
    // The series the HTTP API answers, as label lists.
    let http: BTreeSet<String> = json_of(&content_type, &body)?["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["labels"].to_string())
        .collect();
    if streamed.is_empty() || streamed != http {
        return Err(format!(
            "streamed series {streamed:?}, HTTP series {http:?}"
        ));
    }
    Ok(format!("{} series in {messages} messages", streamed.len()))
}

/// Unix seconds as the nanoseconds the gRPC metrics requests take.
fn nanos(seconds: u64) -> u64 {
    seconds * 1_000_000_000
}

/// `MetricsQueryInstant` over the panel range: the series of the last message (Grafana keeps
/// it), and how many messages came.
async fn stream_metrics_instant(
    vivace: &Vivace,
    query: &str,
) -> Result<(BTreeSet<String>, usize), String> {
    let request = QueryInstantRequest {
        query: query.to_string(),
        start: nanos(S),
        end: nanos(E),
    };
    let messages: Vec<QueryInstantResponse> =
        stream_with_metrics(vivace, request, "a message without metrics").await?;
    // Grafana keeps the last instant message.
    let last = messages.last().ok_or("no message")?;
    let labels: BTreeSet<String> = last.series.iter().map(|s| labels_json(&s.labels)).collect();
    Ok((labels, messages.len()))
}

/// `MetricsQueryRange` over the panel range: the series of every message (Grafana merges
/// their frames), and how many messages came.
async fn stream_metrics_range(
    vivace: &Vivace,
    query: &str,
    step_ns: u64,
    exemplars: u32,
) -> Result<(BTreeSet<String>, usize), String> {
    let request = QueryRangeRequest {
        query: query.to_string(),
        start: nanos(S),
        end: nanos(E),
        step: step_ns,
        exemplars,
        ..Default::default()
    };
    let messages: Vec<QueryRangeResponse> =
        stream_with_metrics(vivace, request, "a message without metrics").await?;
    // Grafana merges the frames of every message.
    let labels: BTreeSet<String> = messages
        .iter()
        .flat_map(|m| &m.series)
        .map(|s| labels_json(&s.labels))
        .collect();
    Ok((labels, messages.len()))
}

/// A [`Call::StreamSearch`]'s parameters.
struct StreamedSearch<'a> {
    query: &'a str,
    limit: u32,
    spss: u32,
    window: bool,
}

/// Streaming search: every message has metrics; unless it is the health check, a partial
/// message comes before the final one and the traces equal `/api/search`'s.
async fn run_stream_search(
    vivace: &Vivace,
    search: &StreamedSearch<'_>,
    check: &Check,
) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let (start, end) = if search.window {
        (S as u32, E as u32)
    } else {
        (now - 900, now)
    };
    let request = SearchRequest {
        query: search.query.to_string(),
        limit: search.limit,
        spans_per_span_set: search.spss,
        start,
        end,
        // gogo's non-nullable stdtime: Grafana always sends the zero time.
        rf1_after: Some(Timestamp {
            seconds: -62_135_596_800,
            nanos: 0,
        }),
        ..Default::default()
    };
    let missing = "a message without metrics (the browser's metricsDataFrame throws)";
    let messages: Vec<SearchResponse> = stream_with_metrics(vivace, request, missing).await?;
    if let Check::Stream { health: true } = check {
        return Ok(format!("{} messages", messages.len()));
    }
    if messages.len() < 2 {
        return Err(format!(
            "{} message(s): expected a partial one while scanning, then the final one",
            messages.len()
        ));
    }
    let streamed = streamed_trace_ids(&messages)?;
    let http = searched_trace_ids(vivace, search, start, end).await?;
    if streamed != http {
        return Err(format!(
            "streamed {streamed:?} but /api/search answers {http:?}"
        ));
    }
    Ok(format!(
        "{} traces in {} messages",
        streamed.len(),
        messages.len()
    ))
}

/// The traces of every streamed message, as Grafana gathers them (appended, de-duplicated by
/// trace ID keeping the first seen); each with a trimmed hex ID and no deprecated `spanSet`.
fn streamed_trace_ids(messages: &[SearchResponse]) -> Result<BTreeSet<String>, String> {
    let mut streamed = BTreeSet::new();
    for message in messages {
        for trace in &message.traces {
            if !is_trimmed_hex(&trace.trace_id) || trace.span_set.is_some() {
                return Err(format!(
                    "trace {:?}: bad ID or deprecated spanSet",
                    trace.trace_id
                ));
            }
            streamed.insert(trace.trace_id.clone());
        }
    }
    Ok(streamed)
}

/// The trace IDs `/api/search` answers for the same search over `start..end` (Unix seconds).
async fn searched_trace_ids(
    vivace: &Vivace,
    search: &StreamedSearch<'_>,
    start: u32,
    end: u32,
) -> Result<BTreeSet<String>, String> {
    let mut params = vec![("q".to_string(), search.query.to_string())];
    if search.limit != 0 {
        params.push(("limit".into(), search.limit.to_string()));
    }
    if search.spss != 0 {
        params.push(("spss".into(), search.spss.to_string()));
    }
    params.push(("start".into(), start.to_string()));
    params.push(("end".into(), end.to_string()));
    let (_, content_type, body) =
        http_get(vivace, "/api/search", &params, Some("application/json")).await;
    Ok(json_of(&content_type, &body)?["traces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["traceID"].as_str().unwrap_or_default().to_string())
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn grafana_datasource_requests_replayed() {
    let vivace = Vivace::start("multitenancy_enabled: true\n");
    let client = reqwest::Client::new();
    let mut batches: Vec<_> = std::fs::read_dir(test_data("tempo-api/dataset"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("batch-")
        })
        .collect();
    batches.sort();
    for batch in &batches {
        let response = client
            .post(format!("{}/v1/traces", vivace.otlp_http_url()))
            .header("Content-Type", "application/json")
            .header("X-Scope-OrgID", TENANT)
            .body(std::fs::read(batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut failures = Vec::new();
    let mut ran = 0;
    for replay in REPLAY {
        ran += 1;
        match run(&vivace, replay).await {
            Ok(summary) => println!("ok    {} — {summary}", replay.feature),
            Err(error) => {
                println!("FAIL  {} — {error}", replay.feature);
                failures.push(format!("{}: {error}", replay.feature));
            }
        }
    }
    assert_eq!(
        ran, REPLAYED_REQUESTS,
        "every request of the table is replayed, and the table keeps its {REPLAYED_REQUESTS}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} replayed requests failed:\n{}",
        failures.len(),
        REPLAY.len(),
        failures.join("\n")
    );
}

#[test]
fn the_strict_search_check_catches_what_grafana_rejects() {
    let good = serde_json::json!({"traces": [{"traceID": "2f3e", "rootServiceName": "a",
        "startTimeUnixNano": "1", "spanSets": [{"spans": [{"spanID": "00000000000000ab"}], "matched": 1}]}],
        "metrics": {"inspectedBytes": "12", "completedJobs": 1}});
    check_search(&good, 1, true).unwrap();
    for bad in [
        r#"{"metrics":{"backendReads":"1"}}"#,
        r#"{"metrics":{"inspectedBytes":12}}"#,
        r#"{"metrics":{"completedJobs":"1"}}"#,
        r#"{"metrics":{"totalJobs":0}}"#,
        r#"{"traces":[{"traceID":"002f","spanSets":[{"spans":[{"spanID":"00000000000000ab"}]}]}],"metrics":{}}"#,
        r#"{"traces":[{"traceID":"2f","rootServiceName":"a","spanSet":{},"spanSets":[{}]}],"metrics":{}}"#,
        r#"{"traces":[{"traceID":"2f","rootServiceName":"a","spanSets":[{"spans":[{"spanID":"ab","attributes":[{"key":"k","value":{"intValue":5}}]}]}]}],"metrics":{}}"#,
    ] {
        let value: Value = serde_json::from_str(bad).unwrap();
        assert!(
            check_search(&value, 0, true).is_err(),
            "{bad} must be rejected"
        );
    }
}
