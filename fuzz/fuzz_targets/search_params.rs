//! `/api/search` parameters (`q`, `tags`, `limit`, `spss`, `start`, `end`, `minDuration`,
//! `maxDuration`, legacy `name=value` tags) as an arbitrary query string, through the
//! handler's own validation and compilation (`prepare`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vivace::api::fuzz_props::{check_search_params, query_params};

fuzz_target!(|data: &[u8]| {
    check_search_params(&query_params(data));
});
