//! The TraceQL lexer, parser and validator on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = vivace::traceql::parse_and_validate(query);
    }
});
