//! Reads over the head: its sealed segments, read as in-memory blocks (columns, pruning,
//! early stop), answer exactly what the same traces answer when decoded whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::Querier;
use crate::ingester::{BlockSink, Ingester, IngesterConfig, WalFsync};
use crate::model::{Trace, TraceId};
use crate::tempodb::backend::{BackendKind, LocalConfig, StorageConfig};
use crate::tempodb::meta::BlockMeta;
use crate::tempodb::vparquet4;
use crate::tempodb::vparquet4::pushdown::tests::{
    column_metrics_query, query, span_spec, traces_of,
};
use crate::tempodb::Store;
use crate::traceql::parse_and_validate;
use crate::traceql::search::{CompiledSearch, SearchOptions, TraceSearchMetadata};

const TENANT: &str = "single-tenant";

/// The head is never cut into blocks here.
struct NoBlocks;

#[async_trait::async_trait]
impl BlockSink for NoBlocks {
    async fn write_block(
        &self,
        _tenant: &str,
        _traces: Vec<(TraceId, Trace)>,
    ) -> anyhow::Result<BlockMeta> {
        anyhow::bail!("no blocks in this test")
    }
}

/// A querier over an empty store and a fresh ingester.
async fn querier(dir: &std::path::Path) -> (Arc<Ingester>, Querier) {
    let store = Store::open(StorageConfig {
        backend: BackendKind::Local,
        local: LocalConfig {
            path: dir.join("blocks"),
        },
        ..StorageConfig::default()
    })
    .await
    .expect("store opens");
    let ingester = Ingester::open(
        IngesterConfig {
            wal_path: dir.join("wal"),
            wal_fsync: WalFsync::Never,
            ..IngesterConfig::default()
        },
        Arc::new(NoBlocks),
    )
    .await
    .expect("ingester opens");
    let querier = Querier::new(Arc::clone(&ingester), Arc::new(store));
    (ingester, querier)
}

/// Two rounds of the background loop that complete every trace pushed so far and seal them
/// into a segment, then a round of the builder that gives it columns (a trace completes after its idle period; a segment is sealed
/// once the oldest of its traces waited `SEGMENT_AGE`).
async fn seal(ingester: &Ingester, clock: &mut Instant) {
    *clock += Duration::from_secs(11);
    ingester.tick(*clock).await;
    *clock += Duration::from_secs(6);
    ingester.tick(*clock).await;
    ingester.build_segment_columns().await;
}

/// What every search and metrics query answers, in a comparable form. For the traces in
/// `pushed_in_two`, which spans a spanset lists depends on the order of the trace's spans,
/// which combining two pieces changes: only how many matched is compared.
async fn answers(
    querier: &Querier,
    searches: &[String],
    metrics: &[String],
    pushed_in_two: &[String],
) -> Vec<String> {
    let tenants = vec![TENANT.to_string()];
    let mut answers = Vec::new();
    for text in searches {
        let compiled = Arc::new(CompiledSearch::new(parse_and_validate(text).unwrap()).unwrap());
        let mut found = querier
            .search(&tenants, compiled, 1000, SearchOptions::default())
            .await
            .expect("search runs")
            .traces
            .iter()
            .map(TraceSearchMetadata::to_json)
            .collect::<Vec<_>>();
        found.sort_by_key(|trace| trace["traceID"].as_str().unwrap_or_default().to_string());
        for trace in &mut found {
            let id = trace["traceID"].as_str().unwrap_or_default().to_string();
            if !pushed_in_two.contains(&id) {
                continue;
            }
            if let Some(spansets) = trace["spanSets"].as_array_mut() {
                for spanset in spansets {
                    if let Some(spanset) = spanset.as_object_mut() {
                        spanset.remove("spans");
                    }
                }
            }
            if let Some(spanset) = trace.get_mut("spanSet").and_then(|s| s.as_object_mut()) {
                spanset.remove("spans");
            }
        }
        answers.push(format!("{text}: {} traces", found.len()));
        answers.extend(found.iter().map(|trace| format!("{text}: {trace}")));
    }
    let base = 1_700_000_000_000_000_000u64;
    for text in metrics {
        let response = querier
            .metrics_query_range(TENANT, text, base - 2_000, base + 6_000, 1_000)
            .await
            .expect("metrics query runs");
        // Sums of floats differ in their last bits with the order spans are added in.
        answers.push(format!("{text}: partial {:?}", response.partial));
        answers.extend(response.series.iter().map(|series| {
            let samples: Vec<String> = series
                .samples
                .iter()
                .map(|sample| format!("{}={:.9e}", sample.timestamp_ms, sample.value))
                .collect();
            format!("{text}: {:?} {samples:?}", series.labels)
        }));
    }
    answers
}

/// Splits a trace's spans in two pushes: the first `keep` spans, then the rest.
fn halves(trace: &Trace, keep: usize) -> (Trace, Trace) {
    let mut first = trace.clone();
    let mut second = trace.clone();
    first.resource_spans.truncate(keep);
    second
        .resource_spans
        .drain(..keep.min(second.resource_spans.len()));
    (first, second)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random traces pushed into the head in rounds — some sealed into segments with
    /// columns, some live, some with a first part sealed and the rest live, some live or
    /// completed and copied whole into a live segment, some copied and then given their other
    /// half — answer random searches and metrics queries exactly as the same traces do when
    /// they are all live and decoded whole.
    #[test]
    fn head_segments_answer_what_whole_traces_answer(
        specs in prop::collection::vec(prop::collection::vec(span_spec(), 1..5), 4..40),
        rounds in prop::collection::vec(0u8..7, 40),
        searches in prop::collection::vec(query(), 1..4),
        metrics in prop::collection::vec(column_metrics_query(), 1..4),
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        // As a block holds them (identical resources merged), so spans are listed in the
        // same order whichever way a trace is read.
        // A span with one key twice (say two `http.status_code`s, one of which the block
        // schema keeps in a well-known column) reorders them at every block round trip: keep
        // each span's first entry per key, so one round trip gives the block's form for good.
        let mut generated = traces_of(&specs, |_| false);
        for (_, trace) in &mut generated {
            for span in trace
                .resource_spans
                .iter_mut()
                .flat_map(|batch| &mut batch.scope_spans)
                .flat_map(|scope| &mut scope.spans)
            {
                let mut keys = std::collections::HashSet::new();
                span.attributes.retain(|attribute| keys.insert(attribute.key.clone()));
            }
        }
        let encoded = vparquet4::encode(&generated, &[], &vparquet4::WriterOptions::default())
            .expect("traces encode");
        let traces = vparquet4::read_traces(bytes::Bytes::from(encoded.bytes), &[])
            .expect("traces decode");
        prop_assert_eq!(traces.len(), generated.len());
        let compared = runtime.block_on(async {
            let whole_dir = tempfile::tempdir().unwrap();
            let (whole_ingester, whole) = querier(whole_dir.path()).await;
            whole_ingester.push(TENANT, traces.clone()).await.unwrap();

            let split_dir = tempfile::tempdir().unwrap();
            let (ingester, split) = querier(split_dir.path()).await;
            let mut clock = Instant::now();
            // Round 0: sealed first; round 1: sealed second; round 2: first half sealed,
            // second half live; round 3: live; round 4: live, in a live segment; round 5:
            // first half in a live segment, second half live (the row is stale); round 6:
            // completed and waiting, in a live segment.
            let in_round = |round: u8| -> Vec<(TraceId, Trace)> {
                traces
                    .iter()
                    .zip(&rounds)
                    .filter(|(_, r)| **r == round)
                    .map(|(trace, _)| trace.clone())
                    .collect()
            };
            type Halves = (Vec<(TraceId, Trace)>, Vec<(TraceId, Trace)>);
            let halves_of = |round: u8| -> Halves {
                in_round(round)
                    .iter()
                    .map(|(id, trace)| {
                        let (first, second) = halves(trace, trace.resource_spans.len() / 2 + 1);
                        ((*id, first), (*id, second))
                    })
                    .unzip()
            };
            let (first_halves, second_halves) = halves_of(2);
            let (stale_first, stale_second) = halves_of(5);
            // A one-part trace has no second half: its row stays standing.
            let made_stale = stale_second
                .iter()
                .filter(|(_, trace)| !trace.resource_spans.is_empty())
                .count();
            let mut round_zero = in_round(0);
            round_zero.extend(first_halves);
            for (round, batch) in [round_zero, in_round(1)].into_iter().enumerate() {
                if !batch.is_empty() {
                    ingester.push(TENANT, batch).await.unwrap();
                }
                seal(&ingester, &mut clock).await;
                let stats = ingester.stats();
                assert_eq!(stats.live_traces, 0, "round {round} sealed");
            }
            // The live segments, built at moments when the traces are quiet.
            let completed_copied = in_round(6);
            if !completed_copied.is_empty() {
                ingester.push(TENANT, completed_copied).await.unwrap();
            }
            ingester.build_live_segments(clock + Duration::from_secs(2)).await;
            // Completes them; the open ones are sealed only 5 s later.
            clock += Duration::from_secs(13);
            ingester.tick(clock).await;
            let live_copied: Vec<_> = in_round(4)
                .into_iter()
                .chain(stale_first.into_iter().filter(|(_, trace)| !trace.resource_spans.is_empty()))
                .collect();
            if !live_copied.is_empty() {
                ingester.push(TENANT, live_copied).await.unwrap();
            }
            ingester.build_live_segments(clock + Duration::from_secs(2)).await;
            let built = ingester.stats().head_live_segments_built;
            let copied = [4, 5, 6].iter().map(|round| in_round(*round).len()).sum::<usize>();
            assert_eq!(built > 0, copied > 0, "{built} live segments for {copied} traces");
            let live: Vec<_> = second_halves
                .into_iter()
                .chain(stale_second)
                .filter(|(_, trace)| !trace.resource_spans.is_empty())
                .chain(in_round(3))
                .collect();
            if !live.is_empty() {
                ingester.push(TENANT, live).await.unwrap();
            }
            let stats = ingester.stats();
            let sealed = in_round(0).len() + in_round(1).len() + in_round(2).len();
            assert_eq!(
                stats.head_segments > 0,
                sealed > 0,
                "segments: {} for {sealed} sealed traces",
                stats.head_segments
            );
            assert_eq!(stats.head_segment_column_bytes > 0, sealed > 0);
            let standing = in_round(4).len() + in_round(6).len() + in_round(5).len() - made_stale;
            assert_eq!(
                stats.head_live_segments > 0,
                standing > 0,
                "live segments: {} for {standing} traces they stand for",
                stats.head_live_segments
            );

            let pushed_in_two: Vec<String> = in_round(2)
                .iter()
                .chain(&in_round(5))
                .map(|(id, _)| id.to_string())
                .collect();
            let expected = answers(&whole, &searches, &metrics, &pushed_in_two).await;
            let got = answers(&split, &searches, &metrics, &pushed_in_two).await;
            for (got, expected) in got.iter().zip(&expected) {
                assert_eq!(got, expected);
            }
            assert_eq!(got.len(), expected.len());
            searches.len() + metrics.len()
        });
        prop_assert_eq!(compared, searches.len() + metrics.len());
    }
}
