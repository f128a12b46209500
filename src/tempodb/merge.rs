//! Streaming compaction's merge: the traces of several blocks, each read a batch at a time in
//! ascending ID order, merged by a k-way merge into one ascending stream, with the pieces of a
//! trace found in several blocks combined (spans de-duplicated). Memory holds one batch per
//! input, never a whole block.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::vparquet4::VParquetError;
use crate::model::{combine, Trace, TraceId};

/// One input: its batches and the traces of the current batch not merged yet.
struct Input<B> {
    batches: B,
    current: std::vec::IntoIter<(TraceId, Trace)>,
}

impl<B> Input<B>
where
    B: Iterator<Item = Result<Vec<(TraceId, Trace)>, VParquetError>>,
{
    /// The next trace, reading the next batch when the current one is used up.
    fn next_trace(&mut self) -> Result<Option<(TraceId, Trace)>, VParquetError> {
        loop {
            if let Some(trace) = self.current.next() {
                return Ok(Some(trace));
            }
            match self.batches.next() {
                Some(batch) => self.current = batch?.into_iter(),
                None => return Ok(None),
            }
        }
    }
}

/// The merged stream of traces: ascending, one item per trace ID.
pub(crate) struct MergedTraces<B> {
    inputs: Vec<Input<B>>,
    /// The next trace of each input not used up, smallest ID on top (ties: lower input first).
    heads: BinaryHeap<Reverse<(TraceId, usize)>>,
    /// The trace each input's entry in `heads` stands for.
    waiting: Vec<Option<Trace>>,
    /// The previous ID each input gave, to refuse an input out of order.
    previous: Vec<Option<TraceId>>,
}

/// What stops a merge: an input that cannot be read, or one not in ascending ID order.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MergeError {
    #[error("input {input}: {source}")]
    Read {
        input: usize,
        #[source]
        source: VParquetError,
    },
    #[error("input {input} is not sorted by trace id: {previous} is followed by {next}")]
    Unsorted {
        input: usize,
        previous: TraceId,
        next: TraceId,
    },
}

impl MergeError {
    /// Which input the error is about.
    pub fn input(&self) -> usize {
        match self {
            MergeError::Read { input, .. } | MergeError::Unsorted { input, .. } => *input,
        }
    }
}

impl<B> MergedTraces<B>
where
    B: Iterator<Item = Result<Vec<(TraceId, Trace)>, VParquetError>>,
{
    /// Starts the merge: reads the first batch of every input.
    pub fn new(inputs: Vec<B>) -> Result<Self, MergeError> {
        let count = inputs.len();
        let mut merged = MergedTraces {
            inputs: inputs
                .into_iter()
                .map(|batches| Input {
                    batches,
                    current: Vec::new().into_iter(),
                })
                .collect(),
            heads: BinaryHeap::with_capacity(count),
            waiting: (0..count).map(|_| None).collect(),
            previous: vec![None; count],
        };
        for input in 0..count {
            merged.advance(input)?;
        }
        Ok(merged)
    }

    /// Puts the next trace of `input` on the heap, if it has one.
    fn advance(&mut self, input: usize) -> Result<(), MergeError> {
        let next = self.inputs[input]
            .next_trace()
            .map_err(|source| MergeError::Read { input, source })?;
        let Some((trace_id, trace)) = next else {
            return Ok(());
        };
        if let Some(previous) = self.previous[input] {
            if previous >= trace_id {
                return Err(MergeError::Unsorted {
                    input,
                    previous,
                    next: trace_id,
                });
            }
        }
        self.previous[input] = Some(trace_id);
        self.waiting[input] = Some(trace);
        self.heads.push(Reverse((trace_id, input)));
        Ok(())
    }

    /// The next trace ID and its trace, every input's piece combined.
    fn next_merged(&mut self) -> Result<Option<(TraceId, Trace)>, MergeError> {
        let Some(Reverse((trace_id, input))) = self.heads.pop() else {
            return Ok(None);
        };
        let mut pieces: Vec<Trace> = self.waiting[input].take().into_iter().collect();
        self.advance(input)?;
        while let Some(Reverse((next_id, next_input))) = self.heads.peek().copied() {
            if next_id != trace_id {
                break;
            }
            self.heads.pop();
            pieces.extend(self.waiting[next_input].take());
            self.advance(next_input)?;
        }
        let trace = match pieces.len() {
            1 => pieces.pop().unwrap_or_default(),
            _ => combine(pieces),
        };
        Ok(Some((trace_id, trace)))
    }
}

impl<B> Iterator for MergedTraces<B>
where
    B: Iterator<Item = Result<Vec<(TraceId, Trace)>, VParquetError>>,
{
    type Item = Result<(TraceId, Trace), MergeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_merged().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::{span_count, trace_with_spans};

    fn batches(
        traces: Vec<(TraceId, Trace)>,
        batch: usize,
    ) -> std::vec::IntoIter<Result<Vec<(TraceId, Trace)>, VParquetError>> {
        traces
            .chunks(batch)
            .map(|chunk| Ok(chunk.to_vec()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn id(byte: u8) -> TraceId {
        TraceId([byte; 16])
    }

    #[test]
    fn merges_inputs_by_id_and_combines_shared_traces() {
        let first = vec![
            (id(1), trace_with_spans(id(1), &[1])),
            (id(3), trace_with_spans(id(3), &[1, 2])),
            (id(5), trace_with_spans(id(5), &[1])),
        ];
        let second = vec![
            (id(2), trace_with_spans(id(2), &[1])),
            (id(3), trace_with_spans(id(3), &[2, 3])),
        ];
        let third = vec![(id(3), trace_with_spans(id(3), &[4]))];
        let merged: Vec<(TraceId, Trace)> = MergedTraces::new(vec![
            batches(first, 2),
            batches(second, 1),
            batches(third, 5),
        ])
        .expect("merge starts")
        .collect::<Result<_, _>>()
        .expect("merge runs");
        let ids: Vec<TraceId> = merged.iter().map(|(trace_id, _)| *trace_id).collect();
        assert_eq!(ids, vec![id(1), id(2), id(3), id(5)]);
        // Span 2 of trace 3 is in two inputs: once in the merged trace.
        assert_eq!(span_count(&merged[2].1), 4);
    }

    #[test]
    fn refuses_an_input_out_of_order() {
        let unsorted = vec![
            (id(4), trace_with_spans(id(4), &[1])),
            (id(2), trace_with_spans(id(2), &[1])),
        ];
        let result: Result<Vec<_>, _> =
            MergedTraces::new(vec![batches(unsorted, 1)]).and_then(|merged| merged.collect());
        assert!(matches!(result, Err(MergeError::Unsorted { input: 0, .. })));
    }

    #[test]
    fn reports_an_unreadable_input() {
        let failing = vec![Err(VParquetError::Malformed("torn page".into()))].into_iter();
        let result: Result<Vec<_>, _> =
            MergedTraces::new(vec![failing]).and_then(|merged| merged.collect());
        assert!(matches!(result, Err(MergeError::Read { input: 0, .. })));
    }
}
