//! What a scan hands its visitor: a [`Batch`] of decoded traces or span columns, with what
//! tells a visitor which of them to count.

use std::sync::Arc;

use crate::model::{Trace, TraceId, TraceIdSet};
use crate::tempodb::vparquet4::pushdown::{Decoded, Held};
use crate::traceql::columns::SpanColumns;

/// Traces handed to a scan's visitor at once, in scan order.
pub(crate) struct Batch {
    pub traces: Vec<(TraceId, Trace)>,
    /// Spans read as columns, when the scan asked blocks for [`BlockDecode::Columns`] (and
    /// the row group's columns sufficed).
    pub columns: Option<SpanColumns>,
    /// The last batch of a job (the head, or one block): progress reports count jobs.
    pub job_done: bool,
    /// Set for a batch of a head segment: the traces of the batch that neither count nor
    /// are judged here. A sealed segment holds parts of traces (every piece of the head is
    /// in exactly one tier), each to be counted except those of the traces the head handed
    /// out whole (with every piece, from any tier) before its segments; a live segment holds
    /// whole copies of live traces, except its stale rows, whose traces moved on.
    pub skip: Option<Arc<TraceIdSet>>,
    /// Counts the batch's traces as held until it is dropped, after its visit.
    _held: Option<Held>,
}

impl Batch {
    /// The empty batch that ends a job.
    pub(super) fn done() -> Batch {
        Batch {
            traces: Vec::new(),
            columns: None,
            job_done: false,
            skip: None,
            _held: None,
        }
        .ending_job()
    }

    fn ending_job(mut self) -> Batch {
        self.job_done = true;
        self
    }

    /// A batch of traces decoded from head pieces.
    pub(super) fn of_traces(traces: Vec<(TraceId, Trace)>, skip: Option<Arc<TraceIdSet>>) -> Batch {
        Batch {
            _held: Some(Held::new(traces.len())),
            traces,
            columns: None,
            job_done: false,
            skip,
        }
    }

    /// A batch of what a block or head segment read decoded.
    pub(super) fn decoded(decoded: Decoded, skip: Option<Arc<TraceIdSet>>) -> Batch {
        let (traces, columns, held) = match decoded {
            Decoded::Traces(traces, held) => (traces, None, held),
            Decoded::Columns(columns, held) => (Vec::new(), Some(*columns), held),
        };
        Batch {
            traces,
            columns,
            job_done: false,
            skip,
            _held: Some(held),
        }
    }

    /// Whether a visitor that counts each span once takes `trace_id` from this batch, noting
    /// it in `seen`: a block's copy of a trace counts only if no earlier batch had it; a
    /// head segment's part or copy counts unless the batch skips it (see [`Batch::skip`]).
    pub fn counts_trace(&self, seen: &mut TraceIdSet, trace_id: TraceId) -> bool {
        match &self.skip {
            Some(skip) => {
                if skip.contains(&trace_id) {
                    return false;
                }
                seen.insert(trace_id);
                true
            }
            None => seen.insert(trace_id),
        }
    }
}
