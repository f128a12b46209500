//! 128-bit trace IDs with Tempo's parsing and printing rules (reference/tempo-api.md §5).

use std::fmt;

/// A trace ID as stored in blocks: always 16 bytes, shorter IDs left-padded with zero bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// Why a trace ID was refused; the messages are Tempo's own.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TraceIdError {
    #[error("trace IDs can only contain hex characters: invalid character '{character}' at position {position}")]
    NotHex { character: char, position: usize },
    #[error("trace IDs can't be larger than 128 bits")]
    TooLong,
    #[error("trace ID is empty")]
    Empty,
    #[error("trace ID is all zeros")]
    AllZero,
}

impl TraceId {
    /// Parses a hex trace ID of 1 to 32 characters, upper or lower case; odd lengths get a
    /// leading `0` and short IDs are left-padded to 128 bits, so `12` finds `000…012`.
    pub fn parse_hex(text: &str) -> Result<TraceId, TraceIdError> {
        if text.is_empty() {
            return Err(TraceIdError::Empty);
        }
        for (index, character) in text.chars().enumerate() {
            if !character.is_ascii_hexdigit() {
                return Err(TraceIdError::NotHex {
                    character,
                    position: index + 1,
                });
            }
        }
        if text.len() > 32 {
            return Err(TraceIdError::TooLong);
        }
        let padded = format!("{text:0>32}");
        let mut bytes = [0u8; 16];
        // Both checks above guarantee 32 hex digits here.
        hex::decode_to_slice(padded.as_bytes(), &mut bytes).map_err(|_| TraceIdError::TooLong)?;
        Ok(TraceId(bytes))
    }

    /// Converts the raw bytes of an OTLP span's trace ID: shorter IDs are left-padded, longer
    /// ones keep their last 16 bytes (Tempo's rule), and empty or all-zero IDs are invalid.
    pub fn from_bytes(raw: &[u8]) -> Result<TraceId, TraceIdError> {
        if raw.is_empty() {
            return Err(TraceIdError::Empty);
        }
        let mut bytes = [0u8; 16];
        if raw.len() >= 16 {
            bytes.copy_from_slice(&raw[raw.len() - 16..]);
        } else {
            bytes[16 - raw.len()..].copy_from_slice(raw);
        }
        if bytes == [0u8; 16] {
            return Err(TraceIdError::AllZero);
        }
        Ok(TraceId(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Lowercase hex with leading zeros trimmed, as Tempo prints IDs in search results.
    pub fn to_trimmed_hex(&self) -> String {
        let full = hex::encode(self.0);
        let trimmed = full.trim_start_matches('0');
        trimmed.to_string()
    }

    /// All 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "TraceId({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_tempo_does() {
        let short = TraceId::parse_hex("12").unwrap();
        assert_eq!(short.to_hex(), "00000000000000000000000000000012");
        let sixty_four = TraceId::parse_hex("1234567890abcdef").unwrap();
        assert_eq!(sixty_four.to_hex(), "00000000000000001234567890abcdef");
        let odd = TraceId::parse_hex("234567890abcdef").unwrap();
        assert_eq!(odd.to_hex(), "00000000000000000234567890abcdef");
        let upper = TraceId::parse_hex("ABCDEF").unwrap();
        assert_eq!(upper.to_hex(), "00000000000000000000000000abcdef");
        assert_eq!(
            TraceId::parse_hex("12x4").unwrap_err().to_string(),
            "trace IDs can only contain hex characters: invalid character 'x' at position 3"
        );
        assert_eq!(
            TraceId::parse_hex(&"a".repeat(33)).unwrap_err(),
            TraceIdError::TooLong
        );
    }

    #[test]
    fn prints_trimmed_hex() {
        let id = TraceId::parse_hex("000000000000000000000000000012a0").unwrap();
        assert_eq!(id.to_trimmed_hex(), "12a0");
    }

    #[test]
    fn pads_and_truncates_raw_bytes() {
        let short = TraceId::from_bytes(&[1, 2]).unwrap();
        assert_eq!(short.to_hex(), "00000000000000000000000000000102");
        let long: Vec<u8> = (0u8..20).collect();
        let id = TraceId::from_bytes(&long).unwrap();
        assert_eq!(id.0[0], 4);
        assert_eq!(TraceId::from_bytes(&[0; 16]), Err(TraceIdError::AllZero));
        assert_eq!(TraceId::from_bytes(&[]), Err(TraceIdError::Empty));
    }
}

/// A set of trace IDs hashed by [`FoldHasher`]: IDs are random already, so folding their two
/// halves with a per-process key spreads them as well as SipHash does, for a fraction of its
/// cost (a query remembers every trace it counted).
pub type TraceIdSet = std::collections::HashSet<TraceId, FoldHasherBuilder>;

/// Builds [`FoldHasher`]s keyed once per process.
#[derive(Debug, Clone, Copy)]
pub struct FoldHasherBuilder {
    key: u64,
}

impl Default for FoldHasherBuilder {
    fn default() -> FoldHasherBuilder {
        static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        FoldHasherBuilder {
            key: *KEY.get_or_init(|| rand::random::<u64>() | 1),
        }
    }
}

impl std::hash::BuildHasher for FoldHasherBuilder {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { state: self.key }
    }
}

/// Folds the bytes written into one word, 8 at a time, multiplying by an odd constant: for
/// trace IDs and the short strings of a batch of columns, not for sets an attacker can fill
/// without bound.
#[derive(Debug, Clone, Copy)]
pub struct FoldHasher {
    state: u64,
}

impl std::hash::Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.state = (self.state ^ u64::from_le_bytes(word))
                .rotate_left(29)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, length: usize) {
        self.write(&length.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.state ^ (self.state >> 32)
    }
}
