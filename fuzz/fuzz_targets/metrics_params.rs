//! `/api/metrics/query_range` and `/api/metrics/query` parameters (`q`, `start`, `end`,
//! `since`, `step`, `exemplars`) as an arbitrary query string, through the handlers' own
//! planning (`plan_range`, `plan_instant`) and the evaluation state a query allocates first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vivace::api::fuzz_props::{check_metrics_params, query_params};

fuzz_target!(|data: &[u8]| {
    check_metrics_params(&query_params(data));
});
