//! Random queries over the blocks Tempo wrote itself (the small golden block in `tests/data`
//! and, in a `tempo_suite_` test, the team library's large one-row-group block): filtered
//! reads find what whole reads find, and TraceQL metrics read from columns equal the row
//! evaluator's over decoded traces. Queries are built from the values each block holds, so
//! most conditions match something.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use proptest::prelude::*;

use super::tests::{matches, metrics_both_ways_in, spanset_of};
use crate::model::{Trace, TraceId};
use crate::tempodb::meta::{BlockMeta, DedicatedColumn};
use crate::tempodb::vparquet4::{pushdown, read_metadata, read_traces};
use crate::traceql::metrics::MetricsRequest;
use crate::traceql::parse_and_validate;
use crate::traceql::search::CompiledSearch;

/// One golden block, read whole once, with the values its queries are built from.
struct Golden {
    name: &'static str,
    data: Bytes,
    dedicated: Vec<DedicatedColumn>,
    traces: Vec<(TraceId, Trace)>,
    /// `[start, end]` of the block's spans, Unix ns.
    window: (u64, u64),
    services: Vec<String>,
    names: Vec<String>,
    /// Span attributes with a string value: (key, value).
    strings: Vec<(String, String)>,
    /// Span attributes with an integer value: (key, value).
    ints: Vec<(String, i64)>,
}

fn load(name: &'static str, dir: &Path) -> Golden {
    let data = Bytes::from(
        std::fs::read(dir.join("data.parquet"))
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display())),
    );
    let meta = BlockMeta::from_json(&std::fs::read(dir.join("meta.json")).expect("meta.json"))
        .expect("golden meta parses");
    let traces = read_traces(data.clone(), &meta.dedicated_columns).expect("golden reads");
    let (mut services, mut names) = (BTreeSet::new(), BTreeSet::new());
    let (mut strings, mut ints) = (BTreeSet::new(), BTreeSet::new());
    let mut window = (u64::MAX, 0u64);
    for (_, trace) in &traces {
        for batch in &trace.resource_spans {
            for attribute in batch.resource.iter().flat_map(|r| &r.attributes) {
                if let Some(AnyValueKind::StringValue(value)) =
                    attribute.value.as_ref().and_then(|v| v.value.as_ref())
                {
                    if attribute.key == "service.name" {
                        services.insert(value.clone());
                    }
                }
            }
            for span in batch.scope_spans.iter().flat_map(|s| &s.spans) {
                names.insert(span.name.clone());
                window.0 = window.0.min(span.start_time_unix_nano);
                window.1 = window.1.max(span.end_time_unix_nano);
                for attribute in &span.attributes {
                    match attribute.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(AnyValueKind::StringValue(value)) if value.len() < 40 => {
                            strings.insert((attribute.key.clone(), value.clone()));
                        }
                        Some(AnyValueKind::IntValue(value)) => {
                            ints.insert((attribute.key.clone(), *value));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    let keep = |set: BTreeSet<(String, String)>| -> Vec<(String, String)> {
        // At most a few values per key, so every key is drawn.
        let mut per_key: std::collections::BTreeMap<String, usize> = Default::default();
        set.into_iter()
            .filter(|(key, _)| {
                let seen = per_key.entry(key.clone()).or_default();
                *seen += 1;
                *seen <= 3
            })
            .collect()
    };
    let ints: Vec<(String, i64)> = {
        let mut per_key: std::collections::BTreeMap<String, usize> = Default::default();
        ints.into_iter()
            .filter(|(key, _)| {
                let seen = per_key.entry(key.clone()).or_default();
                *seen += 1;
                *seen <= 3
            })
            .collect()
    };
    Golden {
        name,
        data,
        dedicated: meta.dedicated_columns,
        traces,
        window,
        services: services.into_iter().collect(),
        names: names.into_iter().collect(),
        strings: keep(strings),
        ints,
    }
}

/// The single directory below `dir` (a block's UUID folder).
fn only_child(dir: &Path) -> PathBuf {
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    assert_eq!(children.len(), 1, "{}: one block expected", dir.display());
    children.pop().expect("one child")
}

/// The small golden block, in `tests/data`.
fn small() -> &'static Golden {
    static SMALL: OnceLock<Golden> = OnceLock::new();
    SMALL.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        load(
            "small",
            &only_child(
                &root.join(
                    "tests/data/tempo-blocks/generated-by-tempo-v3.0.3/vParquet4/single-tenant",
                ),
            ),
        )
    })
}

/// The large block Tempo wrote and compacted (40,900 traces in one row group), from the team
/// library beside the clone: read only by `tempo_suite_` tests, which `tests/run.sh` skips
/// when the library is missing and fails on under CI.
fn large() -> &'static Golden {
    static LARGE: OnceLock<Golden> = OnceLock::new();
    LARGE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        load(
            "large",
            &only_child(&root.join("../shared/golden/tempo-blocks/large/single-tenant")),
        )
    })
}

/// One condition from a block's own values.
fn condition(golden: &'static Golden) -> BoxedStrategy<String> {
    let mut options: Vec<BoxedStrategy<String>> = vec![
        prop::sample::select(golden.services.clone())
            .prop_map(|service| format!("resource.service.name = \"{service}\""))
            .boxed(),
        prop::sample::select(golden.services.clone())
            .prop_map(|service| format!("resource.service.name != \"{service}\""))
            .boxed(),
        prop::sample::select(golden.names.clone())
            .prop_map(|name| format!("name = \"{}\"", name.replace('"', "\\\"")))
            .boxed(),
        prop_oneof![Just("> 1ms"), Just("< 5ms"), Just(">= 50ms"), Just("> 2s")]
            .prop_map(|d| format!("duration {d}"))
            .boxed(),
        prop_oneof![Just("error"), Just("ok"), Just("unset")]
            .prop_map(|s| format!("status = {s}"))
            .boxed(),
        prop_oneof![Just("server"), Just("client"), Just("internal")]
            .prop_map(|k| format!("kind = {k}"))
            .boxed(),
    ];
    if !golden.strings.is_empty() {
        options.push(
            prop::sample::select(golden.strings.clone())
                .prop_map(|(key, value)| format!("span.{key} = \"{}\"", value.replace('"', "\\\"")))
                .boxed(),
        );
    }
    if !golden.ints.is_empty() {
        options.push(
            prop::sample::select(golden.ints.clone())
                .prop_map(|(key, value)| format!("span.{key} = {value}"))
                .boxed(),
        );
        options.push(
            prop::sample::select(golden.ints.clone())
                .prop_map(|(key, value)| format!("span.{key} >= {value}"))
                .boxed(),
        );
    }
    prop::strategy::Union::new(options).boxed()
}

fn spanset_filter(golden: &'static Golden) -> BoxedStrategy<String> {
    prop::collection::vec(
        (condition(golden), prop_oneof![Just("&&"), Just("||")]),
        1..3,
    )
    .prop_map(|parts| spanset_of(&parts))
    .boxed()
}

fn search_query(golden: &'static Golden) -> BoxedStrategy<String> {
    (
        spanset_filter(golden),
        prop::option::of((
            prop_oneof![
                Just("&&"),
                Just("||"),
                Just(">>"),
                Just(">"),
                Just("~"),
                Just("!>>")
            ],
            spanset_filter(golden),
        )),
    )
        .prop_map(|(lhs, rhs)| match rhs {
            Some((op, rhs)) => format!("{lhs} {op} {rhs}"),
            None => lhs,
        })
        .boxed()
}

fn metrics_query(golden: &'static Golden) -> BoxedStrategy<String> {
    let function = prop_oneof![
        Just("rate()"),
        Just("count_over_time()"),
        Just("max_over_time(duration)"),
        Just("quantile_over_time(duration, .5, .99)"),
        Just("histogram_over_time(duration)"),
    ];
    let mut by: Vec<BoxedStrategy<String>> = vec![
        Just(String::new()).boxed(),
        Just(" by (resource.service.name)".to_string()).boxed(),
        Just(" by (name)".to_string()).boxed(),
        Just(" by (kind, status)".to_string()).boxed(),
    ];
    if !golden.strings.is_empty() {
        by.push(
            prop::sample::select(golden.strings.clone())
                .prop_map(|(key, _)| format!(" by (span.{key})"))
                .boxed(),
        );
    }
    (
        prop_oneof![Just("{ }".to_string()), spanset_filter(golden)],
        function,
        prop::strategy::Union::new(by),
    )
        .prop_map(|(filter, function, by)| format!("{filter} | {function}{by}"))
        .boxed()
}

/// Filtered reads of `golden` for `query` find the traces a whole read finds.
fn check_search(golden: &Golden, query: &str) -> Result<(), TestCaseError> {
    let compiled = CompiledSearch::new(parse_and_validate(query).expect("valid query")).unwrap();
    let metadata = read_metadata(&golden.data).expect("golden metadata");
    let (read, _) = pushdown::read_traces_filtered(
        golden.data.clone(),
        &metadata,
        &golden.dedicated,
        &compiled.prefilter(),
        &compiled.needs(),
    )
    .expect("filtered read");
    prop_assert_eq!(
        matches(&read, query),
        matches(&golden.traces, query),
        "{} block: {}",
        golden.name,
        query
    );
    Ok(())
}

/// Metrics of `query` over `golden` from columns equal those from decoded traces.
fn check_metrics(golden: &Golden, query: &str) -> Result<(), TestCaseError> {
    let (start, end) = golden.window;
    let step = ((end - start) / 10).max(1);
    let request = MetricsRequest::range(start - 1, end + 1, step, 100).expect("request");
    let (by_traces, by_columns, _) =
        metrics_both_ways_in(&golden.data, &golden.dedicated, query, request);
    prop_assert_eq!(
        &by_columns.series,
        &by_traces.series,
        "{} block: {}",
        golden.name,
        query
    );
    prop_assert_eq!(&by_columns.partial, &by_traces.partial);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The small golden block: random searches and metrics queries of its own values.
    #[test]
    fn small_golden_block_reads_the_same_filtered_and_as_columns(
        searches in prop::collection::vec(search_query(small()), 1..5),
        metrics in prop::collection::vec(metrics_query(small()), 1..4),
    ) {
        let golden = small();
        for query in &searches {
            check_search(golden, query)?;
        }
        for query in &metrics {
            check_metrics(golden, query)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// The large golden block (40,900 traces in one row group): fewer cases, as each reads
    /// the whole block.
    #[test]
    fn tempo_suite_large_block_reads_the_same_filtered_and_as_columns(
        search in search_query(large()),
        metrics in metrics_query(large()),
    ) {
        let golden = large();
        prop_assert_eq!(golden.traces.len(), 40_900);
        check_search(golden, &search)?;
        check_metrics(golden, &metrics)?;
    }
}

#[test]
fn the_small_golden_block_offers_values_to_build_queries_from() {
    let golden = small();
    assert!(!golden.traces.is_empty());
    assert!(!golden.services.is_empty());
    assert!(!golden.names.is_empty());
    assert!(!golden.strings.is_empty());
}
