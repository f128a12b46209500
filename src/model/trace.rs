//! Traces as OTLP resource spans: splitting a request by trace, and combining the pieces of one
//! trace that arrive in several requests or live in several blocks.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};
use prost::Message;

use super::trace_id::TraceId;

/// One trace: Tempo's `tempopb.Trace`, wire-identical to OTLP `TracesData`.
pub type Trace = TracesData;

/// The spans of one request grouped by trace, with what had to be refused.
#[derive(Debug, Default)]
pub struct TraceSplit {
    /// Traces in order of first appearance, each with its own copies of resource and scope.
    pub traces: Vec<(TraceId, Trace)>,
    /// Spans refused for an invalid trace ID.
    pub rejected_spans: u64,
    /// Why the first refused span was refused.
    pub rejection: Option<String>,
}

/// Groups the spans of a request by trace ID; spans with an empty or all-zero trace ID are
/// counted as rejected rather than stored under a made-up ID.
pub fn split_by_trace(resource_spans: Vec<ResourceSpans>) -> TraceSplit {
    let mut split = TraceSplit::default();
    let mut position_of: HashMap<TraceId, usize> = HashMap::new();
    for batch in resource_spans {
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = batch;
        // Per trace, the index of this batch's ResourceSpans inside that trace.
        let mut batch_index_of: HashMap<usize, usize> = HashMap::new();
        for scope_batch in scope_spans {
            let ScopeSpans {
                scope,
                spans,
                schema_url: scope_schema_url,
            } = scope_batch;
            let mut scope_index_of: HashMap<usize, usize> = HashMap::new();
            for span in spans {
                let trace_id = match TraceId::from_bytes(&span.trace_id) {
                    Ok(id) => id,
                    Err(error) => {
                        split.rejected_spans += 1;
                        if split.rejection.is_none() {
                            split.rejection = Some(format!(
                                "span {:?} has an invalid trace id: {error}",
                                span.name
                            ));
                        }
                        continue;
                    }
                };
                let trace_position = *position_of.entry(trace_id).or_insert_with(|| {
                    split.traces.push((trace_id, Trace::default()));
                    split.traces.len() - 1
                });
                let trace = &mut split.traces[trace_position].1;
                let batch_position = *batch_index_of.entry(trace_position).or_insert_with(|| {
                    trace.resource_spans.push(ResourceSpans {
                        resource: resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: schema_url.clone(),
                    });
                    trace.resource_spans.len() - 1
                });
                let target_batch = &mut trace.resource_spans[batch_position];
                let scope_position = *scope_index_of.entry(trace_position).or_insert_with(|| {
                    target_batch.scope_spans.push(ScopeSpans {
                        scope: scope.clone(),
                        spans: Vec::new(),
                        schema_url: scope_schema_url.clone(),
                    });
                    target_batch.scope_spans.len() - 1
                });
                target_batch.scope_spans[scope_position].spans.push(span);
            }
        }
    }
    split
}

/// Combines pieces of one trace: spans seen twice (same span ID and kind) are kept once and
/// resource/scope batches that describe the same resource and scope are merged.
pub fn combine(parts: impl IntoIterator<Item = Trace>) -> Trace {
    let mut seen_spans: HashSet<(Vec<u8>, i32)> = HashSet::new();
    let mut combined: Vec<ResourceSpans> = Vec::new();
    for part in parts {
        for mut batch in part.resource_spans {
            for scope_batch in &mut batch.scope_spans {
                scope_batch
                    .spans
                    .retain(|span| seen_spans.insert((span.span_id.clone(), span.kind)));
            }
            batch
                .scope_spans
                .retain(|scope_batch| !scope_batch.spans.is_empty());
            if !batch.scope_spans.is_empty() {
                combined.push(batch);
            }
        }
    }
    rebatch(Trace {
        resource_spans: combined,
    })
}

/// Merges resource batches with identical resources, and scope batches with identical scopes
/// within a resource, keeping the order in which each first appears.
pub fn rebatch(trace: Trace) -> Trace {
    let mut merged: Vec<ResourceSpans> = Vec::new();
    let mut resource_position: HashMap<Vec<u8>, usize> = HashMap::new();
    for batch in trace.resource_spans {
        let key = resource_key(batch.resource.as_ref(), &batch.schema_url);
        let position = match resource_position.get(&key) {
            Some(position) => *position,
            None => {
                merged.push(ResourceSpans {
                    resource: batch.resource,
                    scope_spans: Vec::new(),
                    schema_url: batch.schema_url,
                });
                resource_position.insert(key, merged.len() - 1);
                merged.len() - 1
            }
        };
        let target = &mut merged[position];
        for scope_batch in batch.scope_spans {
            let scope_key = scope_key(scope_batch.scope.as_ref(), &scope_batch.schema_url);
            let existing = target.scope_spans.iter_mut().find(|candidate| {
                scope_key == self::scope_key(candidate.scope.as_ref(), &candidate.schema_url)
            });
            match existing {
                Some(candidate) => candidate.spans.extend(scope_batch.spans),
                None => target.scope_spans.push(scope_batch),
            }
        }
    }
    Trace {
        resource_spans: merged,
    }
}

fn resource_key(resource: Option<&Resource>, schema_url: &str) -> Vec<u8> {
    let sorted = resource.map(|resource| {
        let mut sorted = resource.clone();
        sorted
            .attributes
            .sort_by(|left, right| left.key.cmp(&right.key));
        sorted
    });
    identity_key(sorted.as_ref(), schema_url)
}

fn scope_key(scope: Option<&InstrumentationScope>, schema_url: &str) -> Vec<u8> {
    let sorted = scope.map(|scope| {
        let mut sorted = scope.clone();
        sorted
            .attributes
            .sort_by(|left, right| left.key.cmp(&right.key));
        sorted
    });
    identity_key(sorted.as_ref(), schema_url)
}

/// Bytes that are equal exactly when two batches describe the same resource or scope.
fn identity_key(message: Option<&impl Message>, schema_url: &str) -> Vec<u8> {
    let mut key = schema_url.as_bytes().to_vec();
    key.push(0);
    if let Some(message) = message {
        key.extend(message.encode_to_vec());
    }
    key
}

/// Earliest span start and latest span end of a trace, in Unix nanoseconds.
pub fn trace_time_range(trace: &Trace) -> Option<(u64, u64)> {
    let mut range: Option<(u64, u64)> = None;
    for batch in &trace.resource_spans {
        for scope_batch in &batch.scope_spans {
            for span in &scope_batch.spans {
                let start = span.start_time_unix_nano;
                let end = span.end_time_unix_nano.max(start);
                range = Some(match range {
                    None => (start, end),
                    Some((low, high)) => (low.min(start), high.max(end)),
                });
            }
        }
    }
    range
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn service(name: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(name.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn span(trace: u8, id: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: format!("s{id}"),
            ..Default::default()
        }
    }

    fn batch(service_name: &str, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: service(service_name),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn splits_by_trace_and_rejects_zero_ids() {
        let mut zero = span(0, 9);
        zero.trace_id = vec![0; 16];
        let split = split_by_trace(vec![batch(
            "a",
            vec![span(1, 1), span(2, 2), span(1, 3), zero],
        )]);
        assert_eq!(split.traces.len(), 2);
        assert_eq!(split.rejected_spans, 1);
        let first = &split.traces[0].1;
        assert_eq!(first.resource_spans.len(), 1);
        assert_eq!(first.resource_spans[0].scope_spans[0].spans.len(), 2);
    }

    #[test]
    fn combine_dedupes_spans_and_merges_batches() {
        let one = Trace {
            resource_spans: vec![batch("a", vec![span(1, 1), span(1, 2)])],
        };
        let two = Trace {
            resource_spans: vec![
                batch("a", vec![span(1, 2), span(1, 3)]),
                batch("b", vec![span(1, 4)]),
            ],
        };
        let combined = combine([one, two]);
        assert_eq!(combined.resource_spans.len(), 2);
        let names: Vec<_> = combined.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(names, ["s1", "s2", "s3"]);
    }
}
