//! The public shapes of a TraceQL metrics answer, mirroring Tempo's `tempopb`
//! `QueryRangeResponse` / `QueryInstantResponse` field for field, so the HTTP API renders them
//! as proto3 JSON ([`QueryRangeResponse::to_json`]) and the gRPC streaming API can map them
//! one-to-one onto the protobuf messages (`TimeSeries`, `Sample`, `Exemplar`, `KeyValue`,
//! `InstantSeries`, `SearchMetrics`). Plain structs, no logic beyond rendering.

use serde_json::{json, Map, Value};

/// A label value: OTLP `AnyValue` restricted to what TraceQL metrics labels carry.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelValue {
    /// `stringValue` (also durations, status and kind, printed as Tempo does)
    String(String),
    /// `intValue` (int64: a string in JSON)
    Int(i64),
    /// `doubleValue`
    Double(f64),
    /// `boolValue`
    Bool(bool),
    /// No value (`{}` in JSON): the attribute of `compare()` totals and overflow series.
    Nil,
}

/// One label: Tempo's `KeyValue`.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// label name: the full attribute (`resource.service.name`), `__name__`, `p`, `__bucket`, …
    pub key: String,
    /// typed value
    pub value: LabelValue,
}

/// One data point: Tempo's `Sample`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// right edge of the step interval, Unix milliseconds
    pub timestamp_ms: i64,
    /// the value (never NaN: NaN points are dropped)
    pub value: f64,
}

/// A span standing for a data point: Tempo's `Exemplar`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// `trace:id` (hex, leading zeros trimmed), `span:id`, and the span's `by()` values
    pub labels: Vec<Label>,
    /// the span's value (seconds for durations), or the data point's value for counting functions
    pub value: f64,
    /// the span's start, Unix milliseconds
    pub timestamp_ms: i64,
}

/// One series of a range query: Tempo's `TimeSeries`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries {
    /// typed labels, in Tempo's order
    pub labels: Vec<Label>,
    /// data points, oldest first
    pub samples: Vec<Sample>,
    /// exemplars
    pub exemplars: Vec<Exemplar>,
    /// The labels in Prometheus text form (`{resource.service.name="checkout"}`): the series'
    /// key, not sent (Tempo 3.0.3 no longer answers with `promLabels`).
    pub prom_labels: String,
}

/// One series of an instant query: Tempo's `InstantSeries`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSeries {
    /// typed labels
    pub labels: Vec<Label>,
    /// the value over the whole range
    pub value: f64,
    /// Prometheus text form of the labels
    pub prom_labels: String,
}

/// What a query cost: the fields of Tempo's `SearchMetrics` (2025-05 schema) that apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// traces the query ran on
    pub inspected_traces: u32,
    /// encoded bytes read
    pub inspected_bytes: u64,
    /// blocks read
    pub total_blocks: u32,
    /// spans the query ran on
    pub inspected_spans: u64,
}

/// The answer of `/api/metrics/query_range`: Tempo's `QueryRangeResponse`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryRangeResponse {
    /// series, sorted by `prom_labels`
    pub series: Vec<TimeSeries>,
    /// cost
    pub metrics: QueryStats,
    /// `Some(message)` when the answer is partial (`status: PARTIAL`), e.g. too many series
    pub partial: Option<String>,
}

/// The answer of `/api/metrics/query`: Tempo's `QueryInstantResponse`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryInstantResponse {
    /// series, sorted by `prom_labels`
    pub series: Vec<InstantSeries>,
    /// cost
    pub metrics: QueryStats,
    /// `Some(message)` when the answer is partial
    pub partial: Option<String>,
}

fn number(value: f64) -> Value {
    if value.is_nan() {
        json!("NaN")
    } else if value.is_infinite() {
        json!(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(value)
    }
}

impl LabelValue {
    /// proto3 JSON of the `AnyValue`.
    pub fn to_json(&self) -> Value {
        match self {
            LabelValue::String(s) => json!({ "stringValue": s }),
            LabelValue::Int(i) => json!({ "intValue": i.to_string() }),
            LabelValue::Double(f) => json!({ "doubleValue": number(*f) }),
            LabelValue::Bool(b) => json!({ "boolValue": b }),
            LabelValue::Nil => json!({}),
        }
    }
}

fn labels_json(labels: &[Label]) -> Value {
    Value::Array(
        labels
            .iter()
            .map(|l| json!({"key": l.key, "value": l.value.to_json()}))
            .collect(),
    )
}

impl QueryStats {
    /// proto3 JSON of `SearchMetrics` (zero fields omitted, one job).
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        if self.inspected_traces != 0 {
            object.insert("inspectedTraces".into(), json!(self.inspected_traces));
        }
        if self.inspected_bytes != 0 {
            object.insert(
                "inspectedBytes".into(),
                json!(self.inspected_bytes.to_string()),
            );
        }
        if self.total_blocks != 0 {
            object.insert("totalBlocks".into(), json!(self.total_blocks));
        }
        object.insert("completedJobs".into(), json!(1));
        object.insert("totalJobs".into(), json!(1));
        if self.inspected_spans != 0 {
            object.insert(
                "inspectedSpans".into(),
                json!(self.inspected_spans.to_string()),
            );
        }
        Value::Object(object)
    }
}

fn finish(mut body: Map<String, Value>, metrics: &QueryStats, partial: &Option<String>) -> Value {
    body.insert("metrics".into(), metrics.to_json());
    if let Some(message) = partial {
        body.insert("status".into(), json!("PARTIAL"));
        body.insert("message".into(), json!(message));
    }
    Value::Object(body)
}

impl QueryRangeResponse {
    /// proto3 JSON as Tempo's frontend writes it (defaults omitted, int64 as strings).
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        if !self.series.is_empty() {
            let series = self
                .series
                .iter()
                .map(|s| {
                    let mut object = Map::new();
                    if !s.labels.is_empty() {
                        object.insert("labels".into(), labels_json(&s.labels));
                    }
                    if !s.samples.is_empty() {
                        let samples = s
                            .samples
                            .iter()
                            .map(|p| {
                                let mut sample = Map::new();
                                if p.timestamp_ms != 0 {
                                    sample.insert(
                                        "timestampMs".into(),
                                        json!(p.timestamp_ms.to_string()),
                                    );
                                }
                                if p.value != 0.0 {
                                    sample.insert("value".into(), number(p.value));
                                }
                                Value::Object(sample)
                            })
                            .collect();
                        object.insert("samples".into(), Value::Array(samples));
                    }
                    if !s.exemplars.is_empty() {
                        let exemplars = s
                            .exemplars
                            .iter()
                            .map(|e| {
                                let mut exemplar = Map::new();
                                if !e.labels.is_empty() {
                                    exemplar.insert("labels".into(), labels_json(&e.labels));
                                }
                                if e.value != 0.0 {
                                    exemplar.insert("value".into(), number(e.value));
                                }
                                if e.timestamp_ms != 0 {
                                    exemplar.insert(
                                        "timestampMs".into(),
                                        json!(e.timestamp_ms.to_string()),
                                    );
                                }
                                Value::Object(exemplar)
                            })
                            .collect();
                        object.insert("exemplars".into(), Value::Array(exemplars));
                    }
                    Value::Object(object)
                })
                .collect();
            body.insert("series".into(), Value::Array(series));
        }
        finish(body, &self.metrics, &self.partial)
    }
}

impl QueryInstantResponse {
    /// proto3 JSON; only fields of the 2025-05 schema (Grafana parses this strictly).
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        if !self.series.is_empty() {
            let series = self
                .series
                .iter()
                .map(|s| {
                    let mut object = Map::new();
                    if !s.labels.is_empty() {
                        object.insert("labels".into(), labels_json(&s.labels));
                    }
                    if s.value != 0.0 {
                        object.insert("value".into(), number(s.value));
                    }
                    Value::Object(object)
                })
                .collect();
            body.insert("series".into(), Value::Array(series));
        }
        finish(body, &self.metrics, &self.partial)
    }
}
