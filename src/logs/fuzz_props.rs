//! A short fuzz-like pass over the Loki push decoders that runs with the normal test suite:
//! random bytes and byte-level mutations of the `fuzz/corpus/loki/` seeds must give rows or a
//! clear error, never a panic. The long run is the `loki` target in `fuzz/`.

use proptest::prelude::*;

use crate::receiver::fuzz_props::mutate;
use crate::receiver::loki::decode::{loki_json_rows, loki_proto_rows, loki_snappy_decompress};

/// Valid snappy-compressed `logproto.PushRequest`s and JSON pushes from the fuzz corpus.
const SEEDS: &[&[u8]] = &[
    include_bytes!("../../fuzz/corpus/loki/push_one_stream.snappy-pb"),
    include_bytes!("../../fuzz/corpus/loki/push_two_streams.snappy-pb"),
    include_bytes!("../../fuzz/corpus/loki/push_bare.pb"),
    include_bytes!("../../fuzz/corpus/loki/push.json"),
    include_bytes!("../../fuzz/corpus/loki/push_selector_labels.json"),
];

/// The decompression limit the fuzz target uses (the receiver uses `max_request_bytes`).
const LIMIT: usize = 4 << 20;

/// Decodes as the Loki push endpoint does, every way the bytes could be meant.
fn check_loki(bytes: &[u8]) {
    if let Ok(raw) = loki_snappy_decompress(bytes, LIMIT) {
        let _ = loki_proto_rows(&raw, 0);
    }
    let _ = loki_proto_rows(bytes, 0);
    let _ = loki_json_rows(bytes, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_the_loki_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_loki(&bytes);
    }

    #[test]
    fn mutated_loki_pushes_never_panic(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        check_loki(&mutate(SEEDS[seed], &edits));
    }

    /// Mutations of the protobuf inside a valid snappy frame, which random snappy bytes
    /// rarely reach.
    #[test]
    fn mutated_protobuf_inside_snappy_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let raw = loki_snappy_decompress(SEEDS[0], LIMIT).unwrap_or_default();
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&mutate(&raw, &edits))
            .unwrap_or_default();
        check_loki(&compressed);
    }
}

#[test]
fn seeds_decode_and_edge_cases_are_refused() {
    let rows = |bytes: &[u8]| -> usize {
        if let Ok(raw) = loki_snappy_decompress(bytes, LIMIT) {
            if let Ok(rows) = loki_proto_rows(&raw, 0) {
                return rows.len();
            }
        }
        if let Ok(rows) = loki_proto_rows(bytes, 0) {
            return rows.len();
        }
        loki_json_rows(bytes, 0).map(|rows| rows.len()).unwrap_or(0)
    };
    let counts: Vec<usize> = SEEDS.iter().map(|seed| rows(seed)).collect();
    assert_eq!(counts, vec![2, 2, 2, 2, 1]);
    let huge = include_bytes!("../../fuzz/corpus/loki/snappy_huge_length.bin");
    let error = loki_snappy_decompress(huge, LIMIT).unwrap_err();
    assert!(error.to_string().contains("4294967296"), "{error}");
    let bad_labels = include_bytes!("../../fuzz/corpus/loki/push_bad_labels.snappy-pb");
    let raw = loki_snappy_decompress(bad_labels, LIMIT).unwrap();
    let error = loki_proto_rows(&raw, 0).unwrap_err();
    assert!(error.contains("streams[0]"), "{error}");
    let bad_value = include_bytes!("../../fuzz/corpus/loki/push_bad_value.json");
    assert!(loki_json_rows(bad_value, 0).is_err());
    let empty = include_bytes!("../../fuzz/corpus/loki/push_empty.json");
    assert_eq!(loki_json_rows(empty, 0).map(|rows| rows.len()), Ok(0));
}
