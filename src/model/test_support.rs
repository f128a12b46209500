//! Traces for unit tests.

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::{Trace, TraceId};

/// A trace holding one span per entry of `span_numbers` (span ID and times follow the number).
pub fn trace_with_spans(trace_id: TraceId, span_numbers: &[u64]) -> Trace {
    let spans = span_numbers
        .iter()
        .map(|span_number| Span {
            trace_id: trace_id.0.to_vec(),
            span_id: (span_number + 1).to_be_bytes().to_vec(),
            name: format!("span {span_number}"),
            start_time_unix_nano: 1_000 + span_number,
            end_time_unix_nano: 2_000 + span_number,
            ..Default::default()
        })
        .collect();
    Trace {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// How many spans a trace holds.
pub fn span_count(trace: &Trace) -> usize {
    trace
        .resource_spans
        .iter()
        .flat_map(|batch| &batch.scope_spans)
        .map(|scope| scope.spans.len())
        .sum()
}
