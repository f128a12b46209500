//! Tag names and tag values over the same data a search sees.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::model::{Trace, TraceId};
use crate::tempodb::store::BlockDecode;
use crate::traceql::ast::Attribute;
use crate::traceql::prefilter::{Needs, TraceFilter};
use crate::traceql::tags::{collect_tag_names, collect_tag_values, TagFilter, TagScope, TagValue};

use super::scan::{Querier, QuerierError};

impl Querier {
    /// Attribute names per scope over the same data a search with `window` sees (the head
    /// only when `window` is `None`, as Tempo), on spans matching `filter`; at most `limit`
    /// names per scope.
    pub async fn tag_names(
        &self,
        tenants: &[String],
        scopes: Vec<TagScope>,
        filter: TagFilter,
        window: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<TagNamesOutcome, QuerierError> {
        let prefilter = filter.prefilter();
        let visit = move |outcome: &mut TagNamesOutcome, traces: &[(TraceId, Trace)]| {
            let pairs = traces.iter().map(|(id, trace)| (id, trace));
            for (scope, found) in collect_tag_names(pairs, &scopes, &filter, window, limit) {
                let known = outcome.names.entry(scope).or_default();
                for name in found {
                    if known.len() >= limit {
                        break;
                    }
                    known.insert(name);
                }
            }
            Ok(true)
        };
        let (mut outcome, inspected_bytes) = self
            .scan_traces_for_tags(
                tenants,
                prefilter,
                window,
                TagNamesOutcome::default(),
                visit,
            )
            .await?;
        outcome.inspected_bytes = inspected_bytes;
        Ok(outcome)
    }

    /// Distinct typed values of `attribute` over the same data a search with `window` sees,
    /// on spans matching `filter`; at most `limit` values.
    pub async fn tag_values(
        &self,
        tenants: &[String],
        attribute: Attribute,
        filter: TagFilter,
        window: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<TagValuesOutcome, QuerierError> {
        let prefilter = filter.prefilter();
        let visit = move |(outcome, seen): &mut (TagValuesOutcome, HashSet<TagValue>),
                          traces: &[(TraceId, Trace)]| {
            let pairs = traces.iter().map(|(id, trace)| (id, trace));
            for value in collect_tag_values(pairs, &attribute, &filter, window, limit) {
                if outcome.values.len() >= limit {
                    break;
                }
                if seen.insert(value.clone()) {
                    outcome.values.push(value);
                }
            }
            Ok(outcome.values.len() < limit)
        };
        let state = (TagValuesOutcome::default(), HashSet::new());
        let ((mut outcome, _), inspected_bytes) = self
            .scan_traces_for_tags(tenants, prefilter, window, state, visit)
            .await?;
        outcome.inspected_bytes = inspected_bytes;
        Ok(outcome)
    }

    /// Feeds `visit` the whole decoded traces a search with `window` sees, less those
    /// `prefilter` rules out, batch by batch until it answers `false`; answers the final state
    /// and the encoded bytes of every batch visited (what tag reads report as inspected).
    async fn scan_traces_for_tags<S, F>(
        &self,
        tenants: &[String],
        prefilter: TraceFilter,
        window: Option<(u64, u64)>,
        state: S,
        visit: F,
    ) -> Result<(S, u64), QuerierError>
    where
        S: Send + 'static,
        F: Fn(&mut S, &[(TraceId, Trace)]) -> Result<bool, QuerierError> + Send + Sync + 'static,
    {
        let plan = self.plan(tenants, window);
        let ((state, inspected_bytes), _) = self
            .scan(
                plan,
                Some(prefilter),
                BlockDecode::Traces(Needs::ALL),
                (state, 0u64),
                move |(state, inspected_bytes), batch| {
                    *inspected_bytes += encoded_bytes(&batch.traces);
                    visit(state, &batch.traces)
                },
            )
            .await?;
        Ok((state, inspected_bytes))
    }
}

/// Protobuf bytes of `traces`, what a read reports as inspected.
fn encoded_bytes(traces: &[(TraceId, Trace)]) -> u64 {
    traces
        .iter()
        .map(|(_, trace)| prost::Message::encoded_len(trace) as u64)
        .sum()
}

/// Tag names found, per scope.
#[derive(Debug, Default)]
pub struct TagNamesOutcome {
    /// Names per scope (scopes without names may be absent).
    pub names: BTreeMap<TagScope, BTreeSet<String>>,
    /// Encoded bytes read.
    pub inspected_bytes: u64,
}

/// Tag values found.
#[derive(Debug, Default)]
pub struct TagValuesOutcome {
    /// Distinct typed values, first seen first.
    pub values: Vec<TagValue>,
    /// Encoded bytes read.
    pub inspected_bytes: u64,
}
