//! The query parameters of `/api/metrics/*` and `/api/search` as hostile input: arbitrary
//! bytes read as a query string go through the same parsing and planning the handlers run
//! ([`plan_range`], [`plan_instant`], [`prepare`]), and what is accepted is checked against the
//! limits (README, "Limits") and, for metrics, turned into the evaluation state a query
//! allocates first. Used by the `metrics_params` and `search_params` cargo-fuzz targets in
//! `fuzz/` and by the short property pass below, which runs with `cargo test`.

use std::collections::HashMap;

use super::metrics::{plan_instant, plan_range};
use super::search::{prepare, MAX_LIMIT, MAX_RANGE_SECONDS, MAX_SPSS};
use crate::traceql::metrics::{
    MetricsEvaluation, MAX_DURATION_NANOS, MAX_EXEMPLARS, MAX_POINTS_PER_SERIES,
};

/// The "now" planning uses, so a run does not depend on the clock (2023-11-14T22:13:20Z).
pub const NOW_NANOS: u64 = 1_700_000_000_000_000_000;

/// Query strings that plan, for seeds (`fuzz/corpus/metrics_params/` holds the same).
pub const METRICS_SEEDS: &[&str] = &[
    "q=%7B%7D%7Crate()&since=1h&step=15",
    "q={}|rate()&since=24h&step=0.000001",
    "q={ .a = 1 } | count_over_time() by (resource.service.name)&start=1699990000&end=1700000000&step=1m",
    "q={}|quantile_over_time(duration, 0.5, 0.9, 0.99)&since=6h&exemplars=100",
    "q={}|histogram_over_time(duration) by (name)&since=30m&step=10s",
    "q={ status = error } | compare({ .x = 1 }, 10)&since=1h",
    "q=({}|rate()) / ({}|count_over_time()) | topk(4000000000)&since=2h&step=5s",
    "query={}|avg_over_time(duration) by (span.http.route)&start=2023-11-14T21:13:20Z&end=2023-11-14T22:13:20Z",
];

/// Query strings that prepare, for seeds (`fuzz/corpus/search_params/` holds the same).
pub const SEARCH_SEEDS: &[&str] = &[
    "q=%7B%7D&limit=20&spss=3",
    "q={ resource.service.name = \"shop\" } %26%26 { .a = 1 }&limit=262144&spss=100&start=1699990000&end=1700000000",
    "tags=service.name%3Dshop%20http.route%3D%22%2Fa%20b%22&minDuration=10ms&maxDuration=2s",
    "service.name=shop&limit=5",
    "q={}|select(.a)&limit=4294967296&spss=4294967296",
    "q={ duration > 1s } | count() > 2&start=1&end=604801",
];

/// Reads a query string as axum's `Query` extractor does: `&`-separated `name=value` pairs,
/// `+` as a space, `%XX` escapes, invalid UTF-8 replaced; a repeated name keeps its last value.
pub fn query_params(bytes: &[u8]) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for pair in bytes.split(|b| *b == b'&').filter(|pair| !pair.is_empty()) {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(index) => (&pair[..index], &pair[index + 1..]),
            None => (pair, &[][..]),
        };
        params.insert(percent_decode(name), percent_decode(value));
    }
    params
}

fn percent_decode(bytes: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                match (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        index += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Plans a range and an instant query from `params`; what plans must respect the limits, and
/// its evaluation state is built and finished (no data), so an over-allocation shows.
pub fn check_metrics_params(params: &HashMap<String, String>) {
    if let Ok(planned) = plan_range(params, NOW_NANOS) {
        let request = planned.request;
        assert!(
            request.intervals() as u64 <= MAX_POINTS_PER_SERIES,
            "{params:?}: {} intervals",
            request.intervals()
        );
        assert!(request.exemplars <= MAX_EXEMPLARS, "{params:?}");
        assert!(
            request.step > 0 && request.end > request.start,
            "{params:?}"
        );
        // Alignment widens the range by at most two steps, each at most the longest range.
        assert!(
            request.end - request.start <= 3 * MAX_DURATION_NANOS,
            "{params:?}: {request:?}"
        );
        let evaluation = MetricsEvaluation::new(&planned.compiled, request);
        let _ = evaluation.finish();
    }
    if let Ok(planned) = plan_instant(params, NOW_NANOS) {
        assert_eq!(planned.request.intervals(), 1, "{params:?}");
        let _ = MetricsEvaluation::new(&planned.compiled, planned.request).finish_instant();
    }
}

/// Prepares a search from `params`; what prepares must respect the limits.
pub fn check_search_params(params: &HashMap<String, String>) {
    if let Ok(prepared) = prepare(params, MAX_RANGE_SECONDS) {
        assert!(
            (1..=MAX_LIMIT).contains(&prepared.limit),
            "{params:?}: limit {}",
            prepared.limit
        );
        let spss = prepared.options.spans_per_spanset;
        assert!((1..=MAX_SPSS).contains(&spss), "{params:?}: spss {spss}");
        if let Some((start, end)) = prepared.options.window {
            assert!(
                end > start && end - start <= MAX_RANGE_SECONDS * 1_000_000_000,
                "{params:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(query: &str) -> HashMap<String, String> {
        query_params(query.as_bytes())
    }

    #[test]
    fn query_strings_decode_as_axum_reads_them() {
        let decoded = params("q=%7B%7D%7Crate()&since=1h&step=0.5&a+b=c%2&empty&x=%zz");
        assert_eq!(decoded["q"], "{}|rate()");
        assert_eq!(decoded["step"], "0.5");
        assert_eq!(decoded["a b"], "c%2");
        assert_eq!(decoded["empty"], "");
        assert_eq!(decoded["x"], "%zz");
        assert_eq!(decoded.len(), 6);
    }

    #[test]
    fn every_seed_plans() {
        let mut ran = 0;
        for seed in METRICS_SEEDS {
            let planned = plan_range(&params(seed), NOW_NANOS);
            // The microsecond-step seed is there to be refused.
            assert_eq!(planned.is_ok(), !seed.contains("0.000001"), "{seed}");
            check_metrics_params(&params(seed));
            ran += 1;
        }
        for seed in SEARCH_SEEDS {
            let prepared = prepare(&params(seed), MAX_RANGE_SECONDS);
            assert_eq!(prepared.is_ok(), !seed.contains("4294967296"), "{seed}");
            check_search_params(&params(seed));
            ran += 1;
        }
        assert_eq!(ran, 14);
    }

    /// Seeds with one byte replaced, inserted or removed, or a random value for a parameter.
    fn mutated(seeds: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
        let names = prop::sample::select(vec![
            "q",
            "query",
            "start",
            "end",
            "since",
            "step",
            "exemplars",
            "limit",
            "spss",
            "minDuration",
            "maxDuration",
            "tags",
        ]);
        prop_oneof![
            (
                prop::sample::select(seeds.to_vec()),
                any::<usize>(),
                any::<u8>(),
                0..3u8
            )
                .prop_map(|(seed, at, byte, how)| {
                    let mut bytes = seed.as_bytes().to_vec();
                    let at = at % (bytes.len() + 1);
                    match how {
                        0 if at < bytes.len() => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        _ => {}
                    }
                    bytes
                }),
            (
                prop::sample::select(seeds.to_vec()),
                names,
                "[-0-9a-z.:+e%]{0,24}"
            )
                .prop_map(|(seed, name, value)| format!("{seed}&{name}={value}").into_bytes()),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn metrics_parameters_plan_within_the_limits(bytes in mutated(METRICS_SEEDS)) {
            check_metrics_params(&query_params(&bytes));
        }

        #[test]
        fn search_parameters_prepare_within_the_limits(bytes in mutated(SEARCH_SEEDS)) {
            check_search_params(&query_params(&bytes));
        }
    }
}
