//! TraceQL metrics (range and instant queries) over the head and the blocks, from span
//! columns when the query reads only columns of their own, else from decoded traces.

use std::sync::Arc;
use std::time::Instant;

use crate::model::{trace_time_range, TraceId, TraceIdSet};
use crate::tempodb::store::BlockDecode;
use crate::traceql::columns::SpanColumns;
use crate::traceql::eval::{Evaluator, StructuralMode};
use crate::traceql::metrics::{
    CompiledMetrics, MetricsEvaluation, MetricsRequest, QueryInstantResponse, QueryRangeResponse,
};
use crate::traceql::prefilter::TraceFilter;

use super::scan::{Querier, QuerierError};

impl Querier {
    /// Runs a TraceQL metrics query over the head and every block overlapping the request's
    /// window, in every given tenant. Each trace is evaluated once (the first copy seen: the
    /// head's, or the newest block's); spans count in the interval holding their start. CPU work runs on the blocking pool through `scan`.
    pub async fn query_range(
        &self,
        tenants: &[String],
        query: Arc<CompiledMetrics>,
        request: MetricsRequest,
    ) -> Result<QueryRangeResponse, QuerierError> {
        Ok(self.run_metrics(tenants, query, request).await?.finish())
    }

    /// [`query_range`](Self::query_range) as an instant query: one value per series over
    /// `(request.start, request.end]`.
    pub async fn query_instant(
        &self,
        tenants: &[String],
        query: Arc<CompiledMetrics>,
        request: MetricsRequest,
    ) -> Result<QueryInstantResponse, QuerierError> {
        Ok(self
            .run_metrics(tenants, query, request)
            .await?
            .finish_instant())
    }

    /// Parses, validates and runs a metrics range query for one tenant, without HTTP: the
    /// entry point for benchmarks. `start`/`end` are Unix ns, `step` ns (0: Tempo's default).
    pub async fn metrics_query_range(
        &self,
        tenant: &str,
        query: &str,
        start: u64,
        end: u64,
        step: u64,
    ) -> Result<QueryRangeResponse, QuerierError> {
        let parsed = crate::traceql::parse_and_validate(query)
            .map_err(|error| QuerierError::Evaluation(error.to_string()))?;
        let compiled = CompiledMetrics::new(parsed)
            .map_err(|error| QuerierError::Evaluation(error.to_string()))?;
        let request = MetricsRequest::range(start, end, step, 0)
            .map_err(|error| QuerierError::Evaluation(error.to_string()))?;
        self.query_range(&[tenant.to_string()], Arc::new(compiled), request)
            .await
    }

    async fn run_metrics(
        &self,
        tenants: &[String],
        query: Arc<CompiledMetrics>,
        request: MetricsRequest,
    ) -> Result<MetricsEvaluation, QuerierError> {
        let started = Instant::now();
        let plan = self.plan(tenants, Some((request.start, request.end)));
        let mut evaluation = MetricsEvaluation::new(&query, request);
        evaluation.stats.total_blocks = plan.blocks.len() as u32;
        let state = MetricsState {
            evaluation,
            seen: TraceIdSet::default(),
        };
        // The one place metrics read traces: only traces some pipeline of the query could
        // match are decoded.
        let filter = query
            .pipelines()
            .into_iter()
            .map(TraceFilter::from_pipeline)
            .reduce(TraceFilter::or)
            .unwrap_or(TraceFilter::True);
        // Queries that read only span fields with columns of their own (and relate no spans)
        // aggregate straight from those columns; the others from decoded traces.
        let needs = query.needs();
        let columnar = self.pushdown_enabled();
        let fields = query.span_fields().filter(|_| columnar);
        // Traces that come whole (the head's, or a row group that cannot be read as columns)
        // are put into the same columns when the query reads columns: one fast path for all.
        let whole_as_columns = fields.clone();
        let decode = match fields {
            Some(fields) => BlockDecode::Columns { fields, needs },
            None => BlockDecode::Traces(needs),
        };
        let (state, _) = self
            .scan(plan, Some(filter), decode, state, move |state, batch| {
                let evaluator = Evaluator::new(StructuralMode::Real);
                let (from, to) = state.evaluation.window();
                if let Some(columns) = &batch.columns {
                    observe_columns(&mut state.evaluation, &evaluator, columns, |trace_id| {
                        batch.counts_trace(&mut state.seen, trace_id)
                    })?;
                }
                let mut whole = Vec::new();
                for (id, trace) in &batch.traces {
                    if !batch.counts_trace(&mut state.seen, *id) {
                        continue;
                    }
                    state.evaluation.stats.inspected_bytes +=
                        prost::Message::encoded_len(trace) as u64;
                    // Spans of a trace that ends before or starts after the window never count.
                    if let Some((start, end)) = trace_time_range(trace) {
                        if end < from || start > to {
                            continue;
                        }
                    }
                    match &whole_as_columns {
                        Some(_) => whole.push((*id, trace)),
                        None => state
                            .evaluation
                            .observe_trace(&evaluator, id, trace)
                            .map_err(|error| QuerierError::Evaluation(error.to_string()))?,
                    }
                }
                let from_whole = whole_as_columns
                    .as_ref()
                    .filter(|_| !whole.is_empty())
                    .map(|fields| SpanColumns::from_traces(whole, fields));
                if let Some(columns) = &from_whole {
                    // Counted when they were taken into `whole` above.
                    observe_columns(&mut state.evaluation, &evaluator, columns, |_| true)?;
                }
                Ok(true)
            })
            .await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            traces = state.evaluation.stats.inspected_traces,
            "metrics query evaluated"
        );
        Ok(state.evaluation)
    }
}

/// Feeds `evaluation` the spans of each trace of `columns` that `counts` takes (by its ID), a
/// trace at a time.
fn observe_columns(
    evaluation: &mut MetricsEvaluation,
    evaluator: &Evaluator,
    columns: &SpanColumns,
    mut counts: impl FnMut(TraceId) -> bool,
) -> Result<(), QuerierError> {
    // One buffer for every trace of the batch, so spans are not allocated trace by trace.
    let mut spans = Vec::new();
    for trace in 0..columns.trace_count() {
        if !counts(columns.trace_ids[trace]) {
            continue;
        }
        spans.clear();
        spans.extend(columns.trace_spans(trace));
        evaluation
            .observe_spans(evaluator, &spans)
            .map_err(|error| QuerierError::Evaluation(error.to_string()))?;
    }
    Ok(())
}

/// A metrics query's progress, carried from batch to batch.
struct MetricsState {
    evaluation: MetricsEvaluation,
    /// Traces already evaluated (a trace in the head and in a block counts once).
    seen: TraceIdSet,
}
