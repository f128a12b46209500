//! BYTE_ARRAY columns read as dictionary codes. Parquet's own column reader hands every value
//! out as a reference-counted slice of its page, two atomic operations per value; a full scan
//! of the span attributes' keys and string values spent more time there than anywhere else.
//! Read page by page here, a dictionary-encoded value is a `u32` into the chunk's dictionary,
//! and a reader compares keys once per dictionary entry instead of once per value.
//!
//! Only chunks whose pages are all dictionary-encoded or PLAIN, with RLE levels, are read this
//! way (see [`readable`]); the others keep Parquet's reader.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::file::metadata::ColumnChunkMetaData;

use super::dremel::LeafColumn;
use super::VParquetError;

/// The most entries (levels) one page may declare; more is a malformed file, refused before
/// anything is allocated for it.
const MAX_PAGE_ENTRIES: usize = 1 << 24;

/// A BYTE_ARRAY leaf's values as codes: below `dictionary.len()` an entry of the chunk's
/// dictionary, above it a value of a PLAIN page, kept in `plain`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodedBytes {
    /// The chunk's dictionary (shared by every batch read from it).
    pub dictionary: Arc<[Bytes]>,
    /// Values of PLAIN pages, in order.
    pub plain: Vec<Bytes>,
    /// One per value.
    pub codes: Vec<u32>,
}

impl CodedBytes {
    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// The `index`th value.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let code = *self.codes.get(index)? as usize;
        match self.dictionary.get(code) {
            Some(value) => Some(value),
            None => self
                .plain
                .get(code - self.dictionary.len())
                .map(|value| &value[..]),
        }
    }

    /// The `index`th value's dictionary entry, if it is one (not a PLAIN page's value).
    pub fn dictionary_code(&self, index: usize) -> Option<usize> {
        let code = *self.codes.get(index)? as usize;
        (code < self.dictionary.len()).then_some(code)
    }

    pub fn clear(&mut self) {
        self.plain.clear();
        self.codes.clear();
    }
}

/// Whether a chunk can be read as codes: BYTE_ARRAY values, dictionary-encoded or PLAIN, and
/// RLE levels.
pub fn readable(chunk: &ColumnChunkMetaData) -> bool {
    chunk.column_type() == PhysicalType::BYTE_ARRAY
        && chunk.encodings().all(|encoding| {
            matches!(
                encoding,
                Encoding::PLAIN
                    | Encoding::PLAIN_DICTIONARY
                    | Encoding::RLE_DICTIONARY
                    | Encoding::RLE
            )
        })
}

fn malformed(what: impl Into<String>) -> VParquetError {
    VParquetError::Malformed(what.into())
}

/// Reads one chunk's rows as codes, page by page, continuing where the last read stopped.
pub struct CodedReader {
    pages: Box<dyn PageReader>,
    leaf: usize,
    max_def: i16,
    max_rep: i16,
    dictionary: Arc<[Bytes]>,
    /// The current page, decoded: its levels (empty when the leaf has none) and its values
    /// (codes; PLAIN values are `dictionary.len()` plus their index in `page_plain`).
    rep: Vec<i16>,
    def: Vec<i16>,
    entries: usize,
    values: Vec<u32>,
    page_plain: Vec<Bytes>,
    /// Where in the current page the next read starts.
    entry: usize,
    value: usize,
}

impl CodedReader {
    pub fn new(pages: Box<dyn PageReader>, leaf: usize, max_def: i16, max_rep: i16) -> Self {
        CodedReader {
            pages,
            leaf,
            max_def,
            max_rep,
            dictionary: Arc::from(Vec::new()),
            rep: Vec::new(),
            def: Vec::new(),
            entries: 0,
            values: Vec::new(),
            page_plain: Vec::new(),
            entry: 0,
            value: 0,
        }
    }

    /// An empty column to read into, with room for `entries` level entries.
    pub fn empty_column(&self, entries: usize) -> LeafColumn {
        LeafColumn {
            values: super::dremel::LeafValues::Coded(CodedBytes {
                dictionary: Arc::clone(&self.dictionary),
                plain: Vec::new(),
                codes: Vec::with_capacity(entries),
            }),
            def_levels: Vec::with_capacity(entries),
            rep_levels: Vec::with_capacity(entries),
        }
    }

    /// Appends `count` rows, after skipping `skip`, to `column` (made by
    /// [`CodedReader::empty_column`]); levels as Parquet's reader gives them (none for a leaf
    /// without), completed by `finish_levels`.
    pub fn read_into(
        &mut self,
        skip: usize,
        count: usize,
        column: &mut LeafColumn,
    ) -> Result<(), VParquetError> {
        let leaf = self.leaf;
        let super::dremel::LeafValues::Coded(out) = &mut column.values else {
            return Err(malformed(format!(
                "leaf {leaf} is read as codes into another type"
            )));
        };
        let wanted = skip + count;
        // Rows begun so far in this call; the entry that would begin row `wanted + 1` stays.
        let mut begun = 0usize;
        loop {
            if self.entry == self.entries && !self.next_page()? {
                break;
            }
            // The entries of this page the call takes: up to the start of row `wanted + 1`,
            // emitted from the start of row `skip + 1` on.
            let start = self.entry;
            let mut end = start;
            let mut first_out = if begun > skip { start } else { self.entries };
            while end < self.entries {
                if self.max_rep == 0 || self.rep[end] == 0 {
                    if begun == wanted {
                        break;
                    }
                    begun += 1;
                    if begun == skip + 1 {
                        first_out = end;
                    }
                }
                end += 1;
            }
            let first_out = first_out.min(end);
            let defined = |levels: &[i16], max: i16, range: std::ops::Range<usize>| {
                if max == 0 {
                    range.len()
                } else {
                    levels[range].iter().filter(|level| **level == max).count()
                }
            };
            self.value += defined(&self.def, self.max_def, start..first_out);
            if self.max_def > 0 {
                column
                    .def_levels
                    .extend_from_slice(&self.def[first_out..end]);
            }
            if self.max_rep > 0 {
                column
                    .rep_levels
                    .extend_from_slice(&self.rep[first_out..end]);
            }
            let taken = defined(&self.def, self.max_def, first_out..end);
            let codes = &self.values[self.value..self.value + taken];
            if self.page_plain.is_empty() {
                self.adopt_dictionary(out)?;
                out.codes.extend_from_slice(codes);
            } else {
                for &code in codes {
                    let code = self.recode(code, out)?;
                    out.codes.push(code);
                }
            }
            self.value += taken;
            self.entry = end;
            if end < self.entries {
                break;
            }
        }
        if !Arc::ptr_eq(&out.dictionary, &self.dictionary) && out.codes.is_empty() {
            out.dictionary = Arc::clone(&self.dictionary);
        }
        if begun != wanted {
            return Err(malformed(format!(
                "column {leaf} ended after {} of {count} rows",
                begun.saturating_sub(skip)
            )));
        }
        Ok(())
    }

    /// Makes the output's codes point into this chunk's dictionary (a spare column may come
    /// from another chunk, and the dictionary page is read with the first data page).
    fn adopt_dictionary(&self, out: &mut CodedBytes) -> Result<(), VParquetError> {
        if Arc::ptr_eq(&out.dictionary, &self.dictionary) {
            return Ok(());
        }
        if !out.codes.is_empty() {
            return Err(malformed(format!(
                "column {} has a second dictionary",
                self.leaf
            )));
        }
        out.dictionary = Arc::clone(&self.dictionary);
        Ok(())
    }

    /// A page's code as the output's code: dictionary codes as they are, PLAIN values moved
    /// into the output's own list.
    fn recode(&self, code: u32, out: &mut CodedBytes) -> Result<u32, VParquetError> {
        let dictionary = self.dictionary.len();
        if (code as usize) < dictionary {
            self.adopt_dictionary(out)?;
            return Ok(code);
        }
        let value = self
            .page_plain
            .get(code as usize - dictionary)
            .ok_or_else(|| malformed("a PLAIN value index past its page"))?;
        out.plain.push(value.clone());
        u32::try_from(out.dictionary.len() + out.plain.len() - 1)
            .map_err(|_| malformed("too many values in one read"))
    }

    /// Decodes the next data page (taking a dictionary page on the way); `false` at the end.
    fn next_page(&mut self) -> Result<bool, VParquetError> {
        loop {
            let Some(page) = self.pages.get_next_page()? else {
                return Ok(false);
            };
            let (buf, entries, encoding, rep_bytes, def_bytes, values_at) = match page {
                Page::DictionaryPage {
                    buf,
                    num_values,
                    encoding,
                    ..
                } => {
                    if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                        return Err(malformed(format!("a {encoding} dictionary page")));
                    }
                    let count = checked_entries(num_values)?;
                    let mut dictionary = Vec::with_capacity(count);
                    plain_values(&buf, count, &mut dictionary)?;
                    self.dictionary = Arc::from(dictionary);
                    continue;
                }
                Page::DataPage {
                    buf,
                    num_values,
                    encoding,
                    def_level_encoding,
                    rep_level_encoding,
                    ..
                } => {
                    let mut offset = 0usize;
                    let mut prefixed = |max: i16, level_encoding: Encoding| {
                        if max == 0 {
                            return Ok(0..0);
                        }
                        if level_encoding != Encoding::RLE {
                            return Err(malformed(format!("{level_encoding} levels")));
                        }
                        let length = buf
                            .get(offset..offset + 4)
                            .map(|bytes| {
                                u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
                            })
                            .ok_or_else(|| malformed("a page ends inside its levels"))?
                            as usize;
                        let start = offset + 4;
                        offset = start + length;
                        Ok(start..offset)
                    };
                    let rep_bytes = prefixed(self.max_rep, rep_level_encoding)?;
                    let def_bytes = prefixed(self.max_def, def_level_encoding)?;
                    (buf, num_values, encoding, rep_bytes, def_bytes, offset)
                }
                Page::DataPageV2 {
                    buf,
                    num_values,
                    encoding,
                    def_levels_byte_len,
                    rep_levels_byte_len,
                    ..
                } => {
                    let rep_end = rep_levels_byte_len as usize;
                    let def_end = rep_end + def_levels_byte_len as usize;
                    (
                        buf,
                        num_values,
                        encoding,
                        0..rep_end,
                        rep_end..def_end,
                        def_end,
                    )
                }
            };
            let entries = checked_entries(entries)?;
            let part = |range: std::ops::Range<usize>| {
                buf.get(range)
                    .ok_or_else(|| malformed("a page's levels run past its end"))
            };
            self.rep.clear();
            self.def.clear();
            if self.max_rep > 0 {
                levels(part(rep_bytes)?, self.max_rep, entries, &mut self.rep)?;
            }
            if self.max_def > 0 {
                levels(part(def_bytes)?, self.max_def, entries, &mut self.def)?;
            }
            let defined = if self.max_def == 0 {
                entries
            } else {
                self.def
                    .iter()
                    .filter(|level| **level == self.max_def)
                    .count()
            };
            if values_at > buf.len() {
                return Err(malformed("a page's values start past its end"));
            }
            let values = buf.slice(values_at..);
            self.values.clear();
            self.page_plain.clear();
            match encoding {
                Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                    if defined > 0 {
                        let (&width, indices) = values[..]
                            .split_first()
                            .ok_or_else(|| malformed("a dictionary page without indices"))?;
                        let dictionary = self.dictionary.len();
                        hybrid(indices, width, defined, &mut self.values, |code| code)?;
                        if self.values.iter().any(|code| *code as usize >= dictionary) {
                            return Err(malformed("a dictionary index past the dictionary"));
                        }
                    }
                }
                Encoding::PLAIN => {
                    plain_values(&values, defined, &mut self.page_plain)?;
                    let base = u32::try_from(self.dictionary.len())
                        .map_err(|_| malformed("a dictionary past u32"))?;
                    self.values
                        .extend((0..defined as u32).map(|index| base + index));
                }
                other => return Err(malformed(format!("{other} values"))),
            }
            self.entries = entries;
            self.entry = 0;
            self.value = 0;
            if entries > 0 {
                return Ok(true);
            }
        }
    }
}

fn checked_entries(declared: u32) -> Result<usize, VParquetError> {
    let entries = declared as usize;
    if entries > MAX_PAGE_ENTRIES {
        return Err(malformed(format!(
            "a page declares {entries} entries, more than {MAX_PAGE_ENTRIES}"
        )));
    }
    Ok(entries)
}

/// `count` PLAIN byte arrays (a little-endian `u32` length, then the bytes), as slices of `buf`.
fn plain_values(buf: &Bytes, count: usize, out: &mut Vec<Bytes>) -> Result<(), VParquetError> {
    let mut offset = 0usize;
    for _ in 0..count {
        let length = buf
            .get(offset..offset + 4)
            .map(|bytes| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
            .ok_or_else(|| malformed("a PLAIN value runs past its page"))?;
        let start = offset + 4;
        let end = start
            .checked_add(length)
            .filter(|end| *end <= buf.len())
            .ok_or_else(|| malformed("a PLAIN value runs past its page"))?;
        out.push(buf.slice(start..end));
        offset = end;
    }
    Ok(())
}

/// `entries` levels of at most `max`, RLE/bit-packed hybrid encoded in `bytes`.
fn levels(bytes: &[u8], max: i16, entries: usize, out: &mut Vec<i16>) -> Result<(), VParquetError> {
    let width = (16 - (max as u16).leading_zeros()) as u8;
    out.reserve(entries);
    // Levels fit their width (at most 15 bits here), so the cast keeps them.
    hybrid(bytes, width, entries, out, |level| level as i16)?;
    if out.iter().any(|level| *level > max) {
        return Err(malformed(format!("a level above its maximum {max}")));
    }
    Ok(())
}

/// Decodes `count` values of `width` bits from Parquet's RLE/bit-packed hybrid encoding,
/// appending each as `convert` makes it.
fn hybrid<T: Copy>(
    mut bytes: &[u8],
    width: u8,
    count: usize,
    out: &mut Vec<T>,
    convert: impl Fn(u32) -> T,
) -> Result<(), VParquetError> {
    if width > 32 {
        return Err(malformed(format!("values of {width} bits")));
    }
    let mut left = count;
    while left > 0 {
        let header = uleb128(&mut bytes)?;
        if header & 1 == 0 {
            // A run of one value, stored in whole bytes.
            let run = usize::try_from(header >> 1).unwrap_or(usize::MAX).min(left);
            let byte_count = (width as usize).div_ceil(8);
            let stored = bytes
                .get(..byte_count)
                .ok_or_else(|| malformed("an RLE run past its page"))?;
            let value = stored
                .iter()
                .rev()
                .fold(0u32, |value, byte| (value << 8) | u32::from(*byte));
            bytes = &bytes[byte_count..];
            if run == 0 {
                return Err(malformed("an empty RLE run"));
            }
            out.resize(out.len() + run, convert(value));
            left -= run;
        } else {
            // Groups of eight values, packed least significant bit first.
            let groups = usize::try_from(header >> 1).unwrap_or(usize::MAX);
            if groups == 0 {
                return Err(malformed("an empty bit-packed run"));
            }
            let values = groups.saturating_mul(8).min(left);
            let width = width as usize;
            // The bytes the wanted values occupy (the rest of the last group is padding).
            let needed = (values * width).div_ceil(8);
            let packed = bytes
                .get(..needed)
                .ok_or_else(|| malformed("a bit-packed run past its page"))?;
            let mask = if width == 32 {
                u64::from(u32::MAX)
            } else {
                (1u64 << width) - 1
            };
            out.reserve(values);
            for index in 0..values {
                let bit = index * width;
                let byte = bit / 8;
                // Eight bytes from `byte` (fewer at the end), little-endian.
                let word = match packed.get(byte..byte + 8) {
                    Some(window) => u64::from_le_bytes(window.try_into().unwrap_or([0; 8])),
                    None => packed[byte.min(packed.len())..]
                        .iter()
                        .rev()
                        .fold(0u64, |word, byte| (word << 8) | u64::from(*byte)),
                };
                out.push(convert(((word >> (bit % 8)) & mask) as u32));
            }
            let consumed = groups.saturating_mul(width).min(bytes.len());
            bytes = &bytes[consumed..];
            left -= values;
        }
    }
    Ok(())
}

fn uleb128(bytes: &mut &[u8]) -> Result<u64, VParquetError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes
            .split_first()
            .ok_or_else(|| malformed("a run header past its page"))?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("a run header too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tempodb::vparquet4::dremel::LeafValues;
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::{WriterProperties, WriterVersion};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    /// A file of one repeated, optional BYTE_ARRAY leaf (max repetition 1, definition 2):
    /// rows of zero to three entries, some null, values from a small set first and then all
    /// distinct, so that the dictionary fills up and later pages fall back to PLAIN; small
    /// pages, so that reads cross many page boundaries. `fallback`: the encoding of the pages
    /// after the dictionary fills (the writer's default if `None`).
    fn file(version: WriterVersion, fallback: Option<Encoding>) -> Bytes {
        let schema = Arc::new(
            parse_message_type("message m { repeated group a { optional binary v (UTF8); } }")
                .unwrap(),
        );
        let mut builder = WriterProperties::builder()
            .set_writer_version(version)
            .set_dictionary_page_size_limit(512)
            .set_data_page_row_count_limit(37)
            .set_write_batch_size(16);
        if let Some(encoding) = fallback {
            builder = builder.set_encoding(encoding);
        }
        let properties = Arc::new(builder.build());
        let mut buffer = Vec::new();
        let mut writer = SerializedFileWriter::new(&mut buffer, schema, properties).unwrap();
        let mut row_group = writer.next_row_group().unwrap();
        let mut column = row_group.next_column().unwrap().unwrap();
        let (mut values, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
        for row in 0..3000u32 {
            let entries = row % 4;
            if entries == 0 {
                def.push(0);
                rep.push(0);
            }
            for entry in 0..entries {
                rep.push(i16::from(entry > 0));
                if (row + entry) % 5 == 0 {
                    def.push(1);
                    continue;
                }
                def.push(2);
                let text = if row < 1500 {
                    format!("key-{}", (row * 7 + entry) % 40)
                } else {
                    format!("distinct-value-{row}-{entry}")
                };
                values.push(ByteArray::from(text.as_str()));
            }
        }
        column
            .typed::<ByteArrayType>()
            .write_batch(&values, Some(&def), Some(&rep))
            .unwrap();
        column.close().unwrap();
        row_group.close().unwrap();
        writer.close().unwrap();
        Bytes::from(buffer)
    }

    #[test]
    fn coded_reads_equal_parquets_reads_across_pages_skips_and_plain_fallback() {
        let runs = [(0, 1), (3, 100), (0, 333), (250, 700), (1, 1), (0, 1611)];
        let mut compared = 0;
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            let reader = SerializedFileReader::new(file(version, Some(Encoding::PLAIN))).unwrap();
            let row_group = reader.get_row_group(0).unwrap();
            let encodings: Vec<_> = row_group.metadata().column(0).encodings().collect();
            assert!(
                readable(row_group.metadata().column(0)),
                "{version:?} {encodings:?}"
            );
            let mut coded = CodedReader::new(row_group.get_column_page_reader(0).unwrap(), 0, 2, 1);
            let mut values = row_group.get_column_reader(0).unwrap();
            let mut saw_plain = false;
            for (skip, count) in runs {
                let expected =
                    crate::tempodb::vparquet4::read_from(&mut values, 0, skip, count, 0).unwrap();
                let mut got = coded.empty_column(0);
                coded.read_into(skip, count, &mut got).unwrap();
                crate::tempodb::vparquet4::finish_levels(&mut got);
                assert_eq!(
                    got.def_levels, expected.def_levels,
                    "{version:?} {skip}+{count}"
                );
                assert_eq!(
                    got.rep_levels, expected.rep_levels,
                    "{version:?} {skip}+{count}"
                );
                let (LeafValues::Coded(got), LeafValues::Bytes(expected)) =
                    (&got.values, &expected.values)
                else {
                    panic!("unexpected value types");
                };
                saw_plain |= !got.plain.is_empty();
                let got: Vec<&[u8]> = (0..got.len())
                    .map(|index| got.get(index).unwrap())
                    .collect();
                let expected: Vec<&[u8]> = expected.iter().map(ByteArray::data).collect();
                assert_eq!(got, expected, "{version:?} {skip}+{count}");
                compared += 1;
            }
            assert!(saw_plain, "{version:?}: no page fell back to PLAIN");
            // Past the last row: an error, not a panic.
            let mut past = coded.empty_column(0);
            assert!(coded.read_into(0, 1, &mut past).is_err());
        }
        assert_eq!(compared, 2 * runs.len());
        // Version 2's own fallback is DELTA_BYTE_ARRAY, which is left to Parquet's reader.
        let reader = SerializedFileReader::new(file(WriterVersion::PARQUET_2_0, None)).unwrap();
        assert!(!readable(
            reader.get_row_group(0).unwrap().metadata().column(0)
        ));
    }

    #[test]
    fn hybrid_decodes_runs_and_bit_packed_groups() {
        // A run of five 3s (width 2), then one group of eight bit-packed values 0..8 (width 3).
        let mut values = Vec::new();
        hybrid(&[5 << 1, 3], 2, 5, &mut values, |value| value).unwrap();
        assert_eq!(values, vec![3; 5]);
        // 0..8 at 3 bits, LSB first: 0b10_001_000, 0b1_100_011_0, 0b111_110_10.
        let packed = [1 << 1 | 1, 0b1000_1000, 0b1100_0110, 0b1111_1010];
        values.clear();
        hybrid(&packed, 3, 8, &mut values, |value| value).unwrap();
        assert_eq!(values, (0..8).collect::<Vec<u32>>());
        // Fewer wanted than the group holds: the padding is ignored.
        values.clear();
        hybrid(&packed, 3, 6, &mut values, |value| value).unwrap();
        assert_eq!(values, (0..6).collect::<Vec<u32>>());
        // Truncated input is an error, not a panic.
        assert!(hybrid(&[5 << 1], 2, 5, &mut values, |value| value).is_err());
        assert!(hybrid(&[], 2, 1, &mut values, |value| value).is_err());
        assert!(hybrid(&[1 << 1 | 1], 3, 8, &mut values, |value| value).is_err());
    }
}
