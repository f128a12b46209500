//! Loki push bodies: snappy-compressed protobuf `logproto.PushRequest`, the bare protobuf, and
//! JSON, to log rows (label selectors parsed, trace and span IDs found in lines and metadata).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vivace::receiver::loki::decode::{loki_json_rows, loki_proto_rows, loki_snappy_decompress};

/// The receiver's limit is `distributor.max_request_bytes`; a smaller one keeps runs fast.
const DECOMPRESSED_LIMIT: usize = 4 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = loki_snappy_decompress(data, DECOMPRESSED_LIMIT) {
        let _ = loki_proto_rows(&raw, 0);
    }
    let _ = loki_proto_rows(data, 0);
    let _ = loki_json_rows(data, 0);
});
