//! Tempo's sharded bloom filter over trace IDs (reference/tempo-block-format.md §7), bit for bit:
//! blocks written here are read by Tempo and blocks Tempo wrote are tested here.
//!
//! Sizing: `m_total = ceil(-n·ln(fp) / ln(2)²)` bits and `k = ceil(ln(2)·m_total / n)` hash
//! functions for `n` expected IDs; the bits are spread over `ceil(m_total / (8·shard_size))`
//! shards (1 to 1000), each exactly `8·shard_size` bits with the same `k`. An ID lives in shard
//! `fnv1_32(id) mod shards`. Inside a shard the bit positions come from two MurmurHash3 x64-128
//! digests (of the ID and of the ID followed by `0x01`), combined by double hashing.
//! A shard is serialised as big-endian u64 words: `m`, `k`, the bitset length in bits (= `m`),
//! then the bitset words.

use std::fmt;

/// Tempo never writes more shards than this, whatever the sizing asks for.
pub const MAX_SHARDS: u32 = 1000;

/// Tempo reads `bloomShards: 0` (blocks from before the field existed) as this many shards.
pub const LEGACY_SHARD_COUNT: u32 = 10;

/// Name of the object holding shard `shard` of a block's bloom filter.
pub fn shard_object_name(shard: u32) -> String {
    format!("bloom-{shard}")
}

/// The shard an ID belongs to: 32-bit FNV-1 (multiply, then xor) of the ID modulo the shard count.
pub fn shard_for(id: &[u8], shard_count: u32) -> u32 {
    let shard_count = shard_count.max(1);
    fnv1_32(id) % shard_count
}

fn fnv1_32(data: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 2_166_136_261;
    const PRIME: u32 = 16_777_619;
    let mut hash = OFFSET_BASIS;
    for byte in data {
        hash = hash.wrapping_mul(PRIME);
        hash ^= u32::from(*byte);
    }
    hash
}

/// Filter parameters for `estimated_objects` IDs at false-positive rate `false_positive`:
/// total bits and number of hash functions, as bits-and-blooms `EstimateParameters` computes them.
fn estimate_parameters(estimated_objects: usize, false_positive: f64) -> (u64, u64) {
    let objects = estimated_objects.max(1) as f64;
    let ln2 = std::f64::consts::LN_2;
    let total_bits = (-objects * false_positive.ln() / (ln2 * ln2)).ceil();
    let total_bits = if total_bits.is_finite() && total_bits >= 1.0 {
        total_bits as u64
    } else {
        1
    };
    let hash_count = (ln2 * total_bits as f64 / objects).ceil();
    let hash_count = if hash_count.is_finite() && hash_count >= 1.0 {
        hash_count as u64
    } else {
        1
    };
    (total_bits, hash_count)
}

/// Number of shards Tempo writes for these settings.
pub fn shard_count_for(
    false_positive: f64,
    shard_size_bytes: usize,
    estimated_objects: usize,
) -> u32 {
    let (total_bits, _) = estimate_parameters(estimated_objects, false_positive);
    let bits_per_shard = (shard_size_bytes.max(1) as u64).saturating_mul(8);
    let shards = total_bits.div_ceil(bits_per_shard);
    shards.clamp(1, u64::from(MAX_SHARDS)) as u32
}

/// The sharded filter of one block while it is being built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardedBloom {
    shards: Vec<BloomShard>,
}

impl ShardedBloom {
    /// An empty filter sized for `estimated_objects` IDs.
    pub fn new(
        false_positive: f64,
        shard_size_bytes: usize,
        estimated_objects: usize,
    ) -> ShardedBloom {
        let (_, hash_count) = estimate_parameters(estimated_objects, false_positive);
        let shard_count = shard_count_for(false_positive, shard_size_bytes, estimated_objects);
        let bits_per_shard = (shard_size_bytes.max(1) as u64).saturating_mul(8);
        let shards = (0..shard_count)
            .map(|_| BloomShard::empty(bits_per_shard, hash_count))
            .collect();
        ShardedBloom { shards }
    }

    /// Adds an ID (the 16 stored bytes of a trace ID).
    pub fn add(&mut self, id: &[u8]) {
        let shard = shard_for(id, self.shard_count()) as usize;
        self.shards[shard].add(id);
    }

    /// Whether the ID may have been added (false positives at the configured rate).
    pub fn test(&self, id: &[u8]) -> bool {
        let shard = shard_for(id, self.shard_count()) as usize;
        self.shards[shard].test(id)
    }

    /// The number of shards, i.e. `bloomShards` of the block's meta.json.
    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    /// The shards in order; shard `i` is stored as object `bloom-i`.
    pub fn shards(&self) -> &[BloomShard] {
        &self.shards
    }

    /// The serialised shards in order, ready to write as `bloom-0 … bloom-(N-1)`.
    pub fn to_shard_bytes(&self) -> Vec<Vec<u8>> {
        self.shards.iter().map(BloomShard::to_bytes).collect()
    }
}

/// Why a `bloom-N` object could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BloomError {
    /// Shorter than its own header says.
    #[error("bloom shard is truncated: {actual} bytes, expected {expected}")]
    Truncated {
        /// Bytes present.
        actual: usize,
        /// Bytes the header announces.
        expected: usize,
    },
    /// Header values no filter could have.
    #[error("bloom shard header is invalid: m={bits} k={hash_count} length={length}")]
    InvalidHeader {
        /// Bits in the filter.
        bits: u64,
        /// Hash functions.
        hash_count: u64,
        /// Bitset length in bits.
        length: u64,
    },
}

/// One shard: a plain bloom filter of `m` bits with `k` hash functions.
#[derive(Clone, PartialEq, Eq)]
pub struct BloomShard {
    bits: u64,
    hash_count: u64,
    words: Vec<u64>,
}

impl fmt::Debug for BloomShard {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("BloomShard")
            .field("bits", &self.bits)
            .field("hash_count", &self.hash_count)
            .finish_non_exhaustive()
    }
}

/// Header words before the bitset: m, k, bitset length.
const HEADER_BYTES: usize = 24;

/// No sane shard is larger than this (Tempo caps shards at 1000 and sizes them in KiB or MiB);
/// the cap keeps a corrupt header from making us allocate gigabytes.
const MAX_SHARD_BITS: u64 = 8 * 1024 * 1024 * 1024;

impl BloomShard {
    fn empty(bits: u64, hash_count: u64) -> BloomShard {
        let bits = bits.max(1);
        BloomShard {
            bits,
            hash_count: hash_count.max(1),
            words: vec![0; bits.div_ceil(64) as usize],
        }
    }

    /// Parses a `bloom-N` object.
    pub fn from_bytes(bytes: &[u8]) -> Result<BloomShard, BloomError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BloomError::Truncated {
                actual: bytes.len(),
                expected: HEADER_BYTES,
            });
        }
        let bits = read_u64_be(bytes, 0);
        let hash_count = read_u64_be(bytes, 8);
        let length = read_u64_be(bytes, 16);
        if bits == 0 || hash_count == 0 || length != bits || bits > MAX_SHARD_BITS {
            return Err(BloomError::InvalidHeader {
                bits,
                hash_count,
                length,
            });
        }
        let word_count = bits.div_ceil(64) as usize;
        let expected = HEADER_BYTES + word_count * 8;
        if bytes.len() < expected {
            return Err(BloomError::Truncated {
                actual: bytes.len(),
                expected,
            });
        }
        let words = (0..word_count)
            .map(|index| read_u64_be(bytes, HEADER_BYTES + index * 8))
            .collect();
        Ok(BloomShard {
            bits,
            hash_count,
            words,
        })
    }

    /// The object bytes: header words then the bitset, all big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.size_bytes());
        bytes.extend_from_slice(&self.bits.to_be_bytes());
        bytes.extend_from_slice(&self.hash_count.to_be_bytes());
        bytes.extend_from_slice(&self.bits.to_be_bytes());
        for word in &self.words {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        bytes
    }

    /// Size of the serialised shard, which is also roughly its size in memory.
    pub fn size_bytes(&self) -> usize {
        HEADER_BYTES + self.words.len() * 8
    }

    /// Bits in this shard (`m`).
    pub fn bit_count(&self) -> u64 {
        self.bits
    }

    /// Hash functions (`k`).
    pub fn hash_count(&self) -> u64 {
        self.hash_count
    }

    /// Sets the ID's `k` bits.
    pub fn add(&mut self, id: &[u8]) {
        let hashes = base_hashes(id);
        for round in 0..self.hash_count {
            let bit = location(&hashes, round) % self.bits;
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// Whether all of the ID's `k` bits are set.
    pub fn test(&self, id: &[u8]) -> bool {
        let hashes = base_hashes(id);
        (0..self.hash_count).all(|round| {
            let bit = location(&hashes, round) % self.bits;
            self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }
}

fn read_u64_be(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_be_bytes(word)
}

/// The four 64-bit hashes double hashing draws from: MurmurHash3 x64-128 of the ID, and of the
/// ID with one `0x01` byte appended.
fn base_hashes(id: &[u8]) -> [u64; 4] {
    let (h0, h1) = murmur3_x64_128(id, 0);
    let mut extended = Vec::with_capacity(id.len() + 1);
    extended.extend_from_slice(id);
    extended.push(1);
    let (h2, h3) = murmur3_x64_128(&extended, 0);
    [h0, h1, h2, h3]
}

/// The `round`-th bit position before reduction modulo `m`.
fn location(hashes: &[u64; 4], round: u64) -> u64 {
    let parity = round % 2;
    let stride_index = 2 + ((round + parity) % 4) / 2;
    hashes[parity as usize].wrapping_add(round.wrapping_mul(hashes[stride_index as usize]))
}

/// MurmurHash3 x64-128 (Austin Appleby's public-domain algorithm), returning the two 64-bit
/// halves `(h1, h2)` in the order the reference implementation emits them.
pub fn murmur3_x64_128(data: &[u8], seed: u64) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;

    let mut h1 = seed;
    let mut h2 = seed;
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let mut k1 = u64::from_le_bytes(block[0..8].try_into().unwrap_or_default());
        let mut k2 = u64::from_le_bytes(block[8..16].try_into().unwrap_or_default());

        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);

        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }

    let tail = blocks.remainder();
    if tail.len() > 8 {
        let mut k2 = 0u64;
        for (index, byte) in tail[8..].iter().enumerate() {
            k2 ^= u64::from(*byte) << (8 * index);
        }
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if !tail.is_empty() {
        let mut k1 = 0u64;
        for (index, byte) in tail.iter().take(8).enumerate() {
            k1 ^= u64::from(*byte) << (8 * index);
        }
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }

    let length = data.len() as u64;
    h1 ^= length;
    h2 ^= length;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

fn fmix64(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^= value >> 33;
    value = value.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    value ^= value >> 33;
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TraceId;

    const BLOOM_GOLDENS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/golden/tempo-blocks/repo-testdata-common-bloom"
    );
    const TEMPO_BLOCK: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tempo-blocks/generated-by-tempo-v3.0.3/vParquet4/single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10"
    );
    const TRACE_IDS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tempo-blocks/generated-by-tempo-v3.0.3/trace_ids.txt"
    );

    fn read_golden(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|error| {
            panic!("golden file {path} is missing ({error}); see tests/data/README.md")
        })
    }

    fn golden_trace_ids() -> Vec<TraceId> {
        let text = String::from_utf8(read_golden(TRACE_IDS)).expect("trace_ids.txt is text");
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| TraceId::parse_hex(line.trim()).expect("golden trace id parses"))
            .collect()
    }

    fn small_id(value: u8) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[15] = value;
        id
    }

    #[test]
    fn murmur3_matches_reference_vectors() {
        // Vectors of the reference C++ implementation (MurmurHash3_x64_128, seed 0).
        assert_eq!(murmur3_x64_128(b"", 0), (0, 0));
        assert_eq!(
            murmur3_x64_128(b"hello", 0),
            (0xcbd8_a7b3_41bd_9b02, 0x5b1e_906a_48ae_1d19)
        );
        assert_eq!(
            murmur3_x64_128(b"The quick brown fox jumps over the lazy dog", 0),
            (0xe34b_bc7b_bc07_1b6c, 0x7a43_3ca9_c49a_9347)
        );
    }

    #[test]
    fn fnv1_is_not_fnv1a() {
        assert_eq!(fnv1_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1_32(b"a"), 0x050c_5d7e);
    }

    #[test]
    fn sizing_matches_tempo() {
        assert_eq!(estimate_parameters(50, 0.01), (480, 7));
        assert_eq!(shard_count_for(0.01, 20, 50), 3);
        // The converter that wrote the golden block: fp 0.99, 1 MiB shards.
        assert_eq!(shard_count_for(0.99, 1024 * 1024, 133), 1);
        assert_eq!(shard_count_for(0.01, 1, 1_000_000), MAX_SHARDS);
    }

    #[test]
    fn tempo_suite_bloom_goldens_regenerate_byte_for_byte() {
        let mut bloom = ShardedBloom::new(0.01, 20, 50);
        for value in 1..=10u8 {
            bloom.add(&small_id(value));
        }
        assert_eq!(bloom.shard_count(), 3);
        for (shard, bytes) in bloom.to_shard_bytes().iter().enumerate() {
            let golden = read_golden(&format!("{BLOOM_GOLDENS}/bloom-{shard}"));
            assert_eq!(bytes, &golden, "bloom-{shard} differs from Tempo's");
            let parsed = BloomShard::from_bytes(&golden).expect("golden shard parses");
            assert_eq!(parsed, bloom.shards()[shard]);
        }
        for value in 1..=10u8 {
            assert!(bloom.test(&small_id(value)));
        }
    }

    #[test]
    fn every_trace_of_the_tempo_block_tests_positive() {
        let shard = BloomShard::from_bytes(&read_golden(&format!("{TEMPO_BLOCK}/bloom-0")))
            .expect("bloom-0 parses");
        assert_eq!(shard.bit_count(), 8 * 1024 * 1024);
        assert_eq!(shard.hash_count(), 1);
        let ids = golden_trace_ids();
        assert_eq!(ids.len(), 133);
        for id in &ids {
            assert_eq!(shard_for(id.as_bytes(), 1), 0);
            assert!(
                shard.test(id.as_bytes()),
                "{id} is in the block but its bloom says no"
            );
        }
        // With 133 of 8 Mi bits set, nearly every absent ID must test negative.
        let absent_positives = (1..=1000u32)
            .map(|value| {
                let mut id = [0xa5u8; 16];
                id[12..].copy_from_slice(&value.to_be_bytes());
                id
            })
            .filter(|id| shard.test(id))
            .count();
        assert!(
            absent_positives <= 5,
            "{absent_positives} of 1000 absent IDs tested positive"
        );
    }

    #[test]
    fn rejects_corrupt_shards() {
        assert!(matches!(
            BloomShard::from_bytes(&[0; 10]),
            Err(BloomError::Truncated { .. })
        ));
        let mut header = Vec::new();
        header.extend_from_slice(&160u64.to_be_bytes());
        header.extend_from_slice(&7u64.to_be_bytes());
        header.extend_from_slice(&160u64.to_be_bytes());
        assert!(matches!(
            BloomShard::from_bytes(&header),
            Err(BloomError::Truncated { expected: 48, .. })
        ));
        header[23] = 1;
        assert!(matches!(
            BloomShard::from_bytes(&header),
            Err(BloomError::InvalidHeader { .. })
        ));
    }

    #[test]
    fn default_shard_is_102424_bytes() {
        let bloom = ShardedBloom::new(0.01, 100 * 1024, 10);
        assert_eq!(bloom.to_shard_bytes()[0].len(), 102_424);
    }
}
