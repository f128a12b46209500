//! Tempo's `tempopb` messages that the streaming gRPC API (`tempopb.StreamingQuerier`) and
//! the protobuf HTTP answers carry, written by hand as prost structs (we build without
//! protoc). Field numbers and types follow reference/tempo-api.md §2.0 and §3.1; only the
//! fields of the 2025-05 schema Grafana vendors are declared, so none of the newer ones can be
//! sent. `tempopb.common.v1` is OTLP's common package renamed, wire-identical, so the OTLP
//! `KeyValue`/`AnyValue` prost types are used for attributes and labels.

use std::collections::HashMap;

use crate::traceql::{metrics, search};

pub use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

pub use super::traces::{TraceByIdMetrics, TraceByIdResponse};

/// `google.protobuf.Timestamp` (Grafana always sends `RF1After` as the zero time).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `tempopb.SearchRequest`: `start`/`end` are Unix seconds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchRequest {
    /// Legacy tag search (case-insensitive substring match).
    #[prost(map = "string, string", tag = "1")]
    pub tags: HashMap<String, String>,
    #[prost(uint32, tag = "2")]
    pub min_duration_ms: u32,
    #[prost(uint32, tag = "3")]
    pub max_duration_ms: u32,
    #[prost(uint32, tag = "4")]
    pub limit: u32,
    #[prost(uint32, tag = "5")]
    pub start: u32,
    #[prost(uint32, tag = "6")]
    pub end: u32,
    /// TraceQL.
    #[prost(string, tag = "8")]
    pub query: String,
    #[prost(uint32, tag = "9")]
    pub spans_per_span_set: u32,
    /// Deprecated; accepted and ignored.
    #[prost(message, optional, tag = "10")]
    pub rf1_after: Option<Timestamp>,
    /// Accepted and ignored.
    #[prost(string, repeated, tag = "11")]
    pub skip_ast_transformations: Vec<String>,
}

/// `tempopb.SearchResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchResponse {
    #[prost(message, repeated, tag = "1")]
    pub traces: Vec<TraceSearchMetadata>,
    /// Always set on streamed messages: Grafana reads it from every one.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<SearchMetrics>,
}

/// `tempopb.TraceSearchMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceSearchMetadata {
    /// Lowercase hex, leading zeros trimmed.
    #[prost(string, tag = "1")]
    pub trace_id: String,
    #[prost(string, tag = "2")]
    pub root_service_name: String,
    #[prost(string, tag = "3")]
    pub root_trace_name: String,
    #[prost(uint64, tag = "4")]
    pub start_time_unix_nano: u64,
    #[prost(uint32, tag = "5")]
    pub duration_ms: u32,
    /// Deprecated, never sent by vivace (Grafana's trace table would show only it).
    #[prost(message, optional, tag = "6")]
    pub span_set: Option<SpanSet>,
    #[prost(message, repeated, tag = "7")]
    pub span_sets: Vec<SpanSet>,
    #[prost(map = "string, message", tag = "8")]
    pub service_stats: HashMap<String, ServiceStats>,
}

/// `tempopb.ServiceStats`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceStats {
    #[prost(uint32, tag = "1")]
    pub span_count: u32,
    #[prost(uint32, tag = "2")]
    pub error_count: u32,
}

/// `tempopb.SpanSet`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanSet {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<Span>,
    #[prost(uint32, tag = "2")]
    pub matched: u32,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

/// `tempopb.Span` (a search result's span).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 16 lowercase hex characters.
    #[prost(string, tag = "1")]
    pub span_id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(uint64, tag = "3")]
    pub start_time_unix_nano: u64,
    #[prost(uint64, tag = "4")]
    pub duration_nanos: u64,
    #[prost(message, repeated, tag = "5")]
    pub attributes: Vec<KeyValue>,
}

/// `tempopb.SearchMetrics` (2025-05 fields only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchMetrics {
    #[prost(uint32, tag = "1")]
    pub inspected_traces: u32,
    #[prost(uint64, tag = "2")]
    pub inspected_bytes: u64,
    #[prost(uint32, tag = "3")]
    pub total_blocks: u32,
    #[prost(uint32, tag = "4")]
    pub completed_jobs: u32,
    #[prost(uint32, tag = "5")]
    pub total_jobs: u32,
    #[prost(uint64, tag = "6")]
    pub total_block_bytes: u64,
    #[prost(uint64, tag = "7")]
    pub inspected_spans: u64,
}

/// `tempopb.SearchTagsRequest` (`SearchTags`, `SearchTagsV2`): `start`/`end` are Unix
/// seconds; `maxTagsPerScope` 0 means the default limit.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagsRequest {
    #[prost(string, tag = "1")]
    pub scope: String,
    #[prost(uint32, tag = "2")]
    pub start: u32,
    #[prost(uint32, tag = "3")]
    pub end: u32,
    #[prost(uint32, tag = "4")]
    pub max_tags_per_scope: u32,
    /// Accepted and ignored.
    #[prost(uint32, tag = "5")]
    pub stale_value_threshold: u32,
}

/// `tempopb.SearchTagValuesRequest` (`SearchTagValues`, `SearchTagValuesV2`): `query` is the
/// TraceQL filter of the v2 form.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagValuesRequest {
    #[prost(string, tag = "1")]
    pub tag_name: String,
    #[prost(string, tag = "2")]
    pub query: String,
    #[prost(uint32, tag = "3")]
    pub start: u32,
    #[prost(uint32, tag = "4")]
    pub end: u32,
    #[prost(uint32, tag = "5")]
    pub max_tag_values: u32,
    /// Accepted and ignored.
    #[prost(uint32, tag = "6")]
    pub stale_value_threshold: u32,
}

/// `tempopb.MetadataMetrics`, the `metrics` of the tag answers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetadataMetrics {
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
    #[prost(uint32, tag = "2")]
    pub total_jobs: u32,
    #[prost(uint32, tag = "3")]
    pub completed_jobs: u32,
    #[prost(uint32, tag = "4")]
    pub total_blocks: u32,
    #[prost(uint64, tag = "5")]
    pub total_block_bytes: u64,
}

/// `tempopb.SearchTagsResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagsResponse {
    #[prost(string, repeated, tag = "1")]
    pub tag_names: Vec<String>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<MetadataMetrics>,
}

/// `tempopb.SearchTagsV2Scope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagsV2Scope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, repeated, tag = "2")]
    pub tags: Vec<String>,
}

/// `tempopb.SearchTagsV2Response`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagsV2Response {
    #[prost(message, repeated, tag = "1")]
    pub scopes: Vec<SearchTagsV2Scope>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<MetadataMetrics>,
}

/// `tempopb.SearchTagValuesResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagValuesResponse {
    #[prost(string, repeated, tag = "1")]
    pub tag_values: Vec<String>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<MetadataMetrics>,
}

/// `tempopb.TagValue`: `type` is `string`, `int`, `float`, `bool`, `duration`, `keyword`….
#[derive(Clone, PartialEq, prost::Message)]
pub struct TagValue {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `tempopb.SearchTagValuesV2Response`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchTagValuesV2Response {
    #[prost(message, repeated, tag = "1")]
    pub tag_values: Vec<TagValue>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<MetadataMetrics>,
}

/// `tempopb.PartialStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PartialStatus {
    Complete = 0,
    Partial = 1,
}

/// `tempopb.QueryRangeRequest`: `start`/`end`/`step` are Unix nanoseconds; `step` 0 means
/// "pick a default".
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryRangeRequest {
    #[prost(string, tag = "1")]
    pub query: String,
    #[prost(uint64, tag = "2")]
    pub start: u64,
    #[prost(uint64, tag = "3")]
    pub end: u64,
    #[prost(uint64, tag = "4")]
    pub step: u64,
    #[prost(string, tag = "7")]
    pub query_mode: String,
    #[prost(uint32, tag = "16")]
    pub exemplars: u32,
    #[prost(uint32, tag = "17")]
    pub max_series: u32,
    #[prost(bool, optional, tag = "18")]
    pub instant: Option<bool>,
    #[prost(string, repeated, tag = "19")]
    pub skip_ast_transformations: Vec<String>,
}

/// `tempopb.QueryRangeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryRangeResponse {
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<TimeSeries>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<SearchMetrics>,
    #[prost(enumeration = "PartialStatus", tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `tempopb.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Typed labels, keyed by the full attribute expression.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<KeyValue>,
    /// Oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(string, tag = "3")]
    pub prom_labels: String,
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<Exemplar>,
}

/// `tempopb.Sample` (note the field order: value is 1, timestamp 2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp_ms: i64,
}

/// `tempopb.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<KeyValue>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp_ms: i64,
}

/// `tempopb.QueryInstantRequest` (nanoseconds).
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryInstantRequest {
    #[prost(string, tag = "1")]
    pub query: String,
    #[prost(uint64, tag = "2")]
    pub start: u64,
    #[prost(uint64, tag = "3")]
    pub end: u64,
}

/// `tempopb.QueryInstantResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryInstantResponse {
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<InstantSeries>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<SearchMetrics>,
    #[prost(enumeration = "PartialStatus", tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `tempopb.InstantSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstantSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<KeyValue>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(string, tag = "3")]
    pub prom_labels: String,
}

/// The metrics engine's typed labels as `KeyValue`s (a nil value is an empty `AnyValue`, as
/// the JSON API's `{}`).
fn labels(labels: &[metrics::Label]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|label| KeyValue {
            key: label.key.clone(),
            value: Some(AnyValue {
                value: match &label.value {
                    metrics::LabelValue::String(s) => {
                        Some(any_value::Value::StringValue(s.clone()))
                    }
                    metrics::LabelValue::Int(i) => Some(any_value::Value::IntValue(*i)),
                    metrics::LabelValue::Double(d) => Some(any_value::Value::DoubleValue(*d)),
                    metrics::LabelValue::Bool(b) => Some(any_value::Value::BoolValue(*b)),
                    metrics::LabelValue::Nil => None,
                },
            }),
            ..Default::default()
        })
        .collect()
}

/// A metrics query's cost as `SearchMetrics` (one job, as the JSON API reports).
fn query_stats(stats: &metrics::QueryStats) -> SearchMetrics {
    SearchMetrics {
        inspected_traces: stats.inspected_traces,
        inspected_bytes: stats.inspected_bytes,
        total_blocks: stats.total_blocks,
        completed_jobs: 1,
        total_jobs: 1,
        total_block_bytes: 0,
        inspected_spans: stats.inspected_spans,
    }
}

fn partial_status(partial: &Option<String>) -> (i32, String) {
    match partial {
        Some(message) => (PartialStatus::Partial as i32, message.clone()),
        None => (PartialStatus::Complete as i32, String::new()),
    }
}

/// The metrics engine's range answer as `tempopb.QueryRangeResponse`.
pub fn query_range_response(answer: &metrics::QueryRangeResponse) -> QueryRangeResponse {
    let (status, message) = partial_status(&answer.partial);
    QueryRangeResponse {
        series: answer
            .series
            .iter()
            .map(|series| TimeSeries {
                labels: labels(&series.labels),
                samples: series
                    .samples
                    .iter()
                    .map(|sample| Sample {
                        value: sample.value,
                        timestamp_ms: sample.timestamp_ms,
                    })
                    .collect(),
                prom_labels: String::new(),
                exemplars: series
                    .exemplars
                    .iter()
                    .map(|exemplar| Exemplar {
                        labels: labels(&exemplar.labels),
                        value: exemplar.value,
                        timestamp_ms: exemplar.timestamp_ms,
                    })
                    .collect(),
            })
            .collect(),
        metrics: Some(query_stats(&answer.metrics)),
        status,
        message,
    }
}

/// The metrics engine's instant answer as `tempopb.QueryInstantResponse`.
pub fn query_instant_response(answer: &metrics::QueryInstantResponse) -> QueryInstantResponse {
    let (status, message) = partial_status(&answer.partial);
    QueryInstantResponse {
        series: answer
            .series
            .iter()
            .map(|series| InstantSeries {
                labels: labels(&series.labels),
                value: series.value,
                prom_labels: String::new(),
            })
            .collect(),
        metrics: Some(query_stats(&answer.metrics)),
        status,
        message,
    }
}

/// A search answer as `tempopb.TraceSearchMetadata`: the same values `/api/search` renders
/// as JSON ([`search::TraceSearchMetadata::to_json`]).
pub fn trace_search_metadata(found: &search::TraceSearchMetadata) -> TraceSearchMetadata {
    let (span_sets, service_stats) = match &found.matches {
        Some(matches) => (
            matches
                .span_sets
                .iter()
                .map(|set| SpanSet {
                    spans: set
                        .spans
                        .iter()
                        .map(|span| Span {
                            span_id: span.span_id.clone(),
                            name: span.name.clone(),
                            start_time_unix_nano: span.start_time_unix_nano,
                            duration_nanos: span.duration_nanos,
                            attributes: span.key_values(),
                        })
                        .collect(),
                    matched: saturating_u32(set.matched),
                    attributes: set.key_values(),
                })
                .collect(),
            matches
                .service_stats
                .iter()
                .map(|(service, counts)| {
                    let stats = ServiceStats {
                        span_count: saturating_u32(counts.span_count),
                        error_count: saturating_u32(counts.error_count),
                    };
                    (service.clone(), stats)
                })
                .collect(),
        ),
        None => (Vec::new(), HashMap::new()),
    };
    TraceSearchMetadata {
        trace_id: found.trace_id.clone(),
        root_service_name: found.root_service_name.clone(),
        root_trace_name: found.root_trace_name.clone(),
        start_time_unix_nano: found.start_time_unix_nano,
        duration_ms: saturating_u32(found.duration_ms),
        span_set: None,
        span_sets,
        service_stats,
    }
}

/// A count for a `uint32` field: Tempo's types; larger counts (never expected) saturate.
fn saturating_u32(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traceql::search::{SpanMatch, SpanSetMatch, TraceMatches};
    use crate::traceql::static_value::{Kind, Static, Status};
    use prost::Message;
    use serde_json::Value;

    /// A `TraceSearchMetadata` read back from `/api/search`'s JSON: the oracle that shows
    /// both renderings carry the same values.
    fn from_json(json: &Value) -> Result<TraceSearchMetadata, String> {
        let object = json
            .as_object()
            .ok_or_else(|| "a search result is not a JSON object".to_string())?;
        let span_sets = match object.get("spanSets") {
            Some(Value::Array(sets)) => sets.iter().map(span_set).collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        let mut service_stats = HashMap::new();
        if let Some(Value::Object(stats)) = object.get("serviceStats") {
            for (service, counts) in stats {
                service_stats.insert(
                    service.clone(),
                    ServiceStats {
                        span_count: number(counts.get("spanCount"))? as u32,
                        error_count: number(counts.get("errorCount"))? as u32,
                    },
                );
            }
        }
        Ok(TraceSearchMetadata {
            trace_id: text(object.get("traceID")),
            root_service_name: text(object.get("rootServiceName")),
            root_trace_name: text(object.get("rootTraceName")),
            start_time_unix_nano: number(object.get("startTimeUnixNano"))?,
            duration_ms: number(object.get("durationMs"))? as u32,
            span_set: None,
            span_sets,
            service_stats,
        })
    }

    fn span_set(json: &Value) -> Result<SpanSet, String> {
        let spans = match json.get("spans") {
            Some(Value::Array(spans)) => spans.iter().map(span).collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        Ok(SpanSet {
            spans,
            matched: number(json.get("matched"))? as u32,
            attributes: attributes(json.get("attributes"))?,
        })
    }

    fn span(json: &Value) -> Result<Span, String> {
        Ok(Span {
            span_id: text(json.get("spanID")),
            name: text(json.get("name")),
            start_time_unix_nano: number(json.get("startTimeUnixNano"))?,
            duration_nanos: number(json.get("durationNanos"))?,
            attributes: attributes(json.get("attributes"))?,
        })
    }

    fn attributes(json: Option<&Value>) -> Result<Vec<KeyValue>, String> {
        match json {
            Some(Value::Array(items)) => crate::proto::otlp_json::key_values(items, "attributes")
                .map_err(|error| error.to_string()),
            _ => Ok(Vec::new()),
        }
    }

    fn text(json: Option<&Value>) -> String {
        json.and_then(Value::as_str).unwrap_or_default().to_string()
    }

    /// A proto3 JSON integer: a number, or a string for 64-bit fields; absent is 0.
    fn number(json: Option<&Value>) -> Result<u64, String> {
        match json {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| format!("{n} is not an unsigned integer")),
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| format!("{s:?} is not an unsigned integer")),
            Some(other) => Err(format!("{other} is not an unsigned integer")),
        }
    }

    #[test]
    fn search_result_json_becomes_the_same_message() {
        let json = serde_json::json!({
            "traceID": "2f3e", "rootServiceName": "frontend", "rootTraceName": "GET /",
            "startTimeUnixNano": "1700000000000000001", "durationMs": 12,
            "spanSets": [{"spans": [{"spanID": "00000000000000ab", "name": "GET /",
                "startTimeUnixNano": "1700000000000000001", "durationNanos": "12000000",
                "attributes": [{"key": "status", "value": {"stringValue": "error"}},
                               {"key": "http.status_code", "value": {"intValue": "500"}}]}],
                "matched": 3}],
            "serviceStats": {"frontend": {"spanCount": 4, "errorCount": 1}}
        });
        let message = from_json(&json).unwrap();
        assert_eq!(message.trace_id, "2f3e");
        assert_eq!(message.start_time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(message.duration_ms, 12);
        assert_eq!(message.span_sets[0].matched, 3);
        let span = &message.span_sets[0].spans[0];
        assert_eq!(span.duration_nanos, 12_000_000);
        assert_eq!(
            span.attributes[1].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(500))
        );
        assert_eq!(message.service_stats["frontend"].error_count, 1);
        let decoded = TraceSearchMetadata::decode(message.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, message);
    }

    /// A search answer with every kind of listed value, nil included.
    fn rich_answer() -> search::TraceSearchMetadata {
        let span = |id: &str, name: &str, attributes: Vec<(String, Static)>| SpanMatch {
            span_id: id.to_string(),
            name: name.to_string(),
            start_time_unix_nano: 1_700_000_000_000_000_001,
            duration_nanos: 12_000_000,
            attributes,
        };
        let listed = |key: &str, value: Static| (key.to_string(), value);
        search::TraceSearchMetadata {
            trace_id: "2f3e".into(),
            root_service_name: "frontend".into(),
            root_trace_name: "GET /".into(),
            start_time_unix_nano: 1_700_000_000_000_000_001,
            duration_ms: 12,
            matches: Some(TraceMatches {
                span_sets: vec![
                    SpanSetMatch {
                        spans: vec![
                            span(
                                "00000000000000ab",
                                "GET /",
                                vec![
                                    listed("status", Static::Status(Status::Error)),
                                    listed("kind", Static::Kind(Kind::Server)),
                                    listed("http.status_code", Static::Int(500)),
                                    listed("ratio", Static::Float(0.25)),
                                    listed("big", Static::Float(f64::INFINITY)),
                                    listed("cached", Static::Bool(false)),
                                    listed("missing", Static::Nil),
                                    listed("tags", Static::StringArray(vec!["a".into()])),
                                    listed("codes", Static::IntArray(vec![])),
                                    listed("took", Static::Duration(1_500_000)),
                                ],
                            ),
                            span("00000000000000ac", "", Vec::new()),
                        ],
                        matched: 3,
                        attributes: vec![
                            listed("resource.service.name", Static::String("cart".into())),
                            listed("span.missing", Static::Nil),
                        ],
                    },
                    SpanSetMatch {
                        spans: Vec::new(),
                        matched: 0,
                        attributes: Vec::new(),
                    },
                ],
                service_stats: [
                    (
                        "frontend".to_string(),
                        search::ServiceStats {
                            span_count: 4,
                            error_count: 1,
                        },
                    ),
                    (
                        String::new(),
                        search::ServiceStats {
                            span_count: 1,
                            error_count: 0,
                        },
                    ),
                ]
                .into(),
            }),
        }
    }

    #[test]
    fn search_answers_render_the_same_values_as_json_and_protobuf() {
        let mut compared = 0;
        let mut metadata_only = rich_answer();
        metadata_only.matches = None;
        metadata_only.root_trace_name.clear();
        metadata_only.duration_ms = 0;
        for answer in [rich_answer(), metadata_only] {
            let message = trace_search_metadata(&answer);
            assert_eq!(message, from_json(&answer.to_json()).unwrap());
            let decoded = TraceSearchMetadata::decode(message.encode_to_vec().as_slice()).unwrap();
            assert_eq!(decoded, message);
            compared += 1;
        }
        assert_eq!(compared, 2);
        let message = trace_search_metadata(&rich_answer());
        let attributes = &message.span_sets[0].spans[0].attributes;
        assert_eq!(attributes.len(), 10, "nil is listed as \"nil\"");
        assert_eq!(
            message.span_sets[0].attributes.len(),
            1,
            "nil groups are left out"
        );
    }

    #[test]
    fn sample_fields_keep_tempos_numbers() {
        // value = field 1 (fixed64, tag 0x09), timestamp_ms = field 2 (varint, tag 0x10).
        let bytes = Sample {
            value: 1.0,
            timestamp_ms: 5,
        }
        .encode_to_vec();
        assert_eq!(bytes[0], 0x09);
        assert_eq!(bytes[9], 0x10);
    }
}
