//! The data model every role shares: trace IDs as Tempo reads and prints them, and traces as
//! OTLP `ResourceSpans` (Tempo's `tempopb.Trace` is wire-identical to OTLP `TracesData`).

mod attributes;
mod trace;
mod trace_id;

#[cfg(test)]
pub mod test_support;

pub use attributes::{int_attribute, string_attribute};
pub use trace::{combine, rebatch, split_by_trace, trace_time_range, Trace, TraceSplit};
pub use trace_id::{FoldHasherBuilder, TraceId, TraceIdError, TraceIdSet};
