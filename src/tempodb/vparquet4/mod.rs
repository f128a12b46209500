//! vParquet4 `data.parquet`: Tempo's block data file, written and read in Tempo's exact format
//! (reference/tempo-block-format.md §5–§7, §14). One row per trace, sorted by trace ID; the
//! schema is fixed text because Tempo binds columns by position.
//!
//! Writing: each trace becomes a nested value tree (`row`), a generic Dremel shredder turns the
//! rows of a row group into per-leaf values and levels (`dremel`), and the low-level column
//! writers store them with Tempo's per-column codecs and encodings (`schema`). Reading is the
//! inverse, one row group (or one row) at a time.
//!
//! What a write → read round trip does not keep, because vParquet4 has no column for it:
//! schema URLs, span and link `flags`, resource `entity_refs`, `key_strindex`; attribute order
//! within a level (resource and scope attributes come back sorted, columns first); resource
//! and scope batches that are equal apart from that are merged (`model::rebatch`); an absent
//! resource, scope or status comes back empty; an attribute without a value comes back with an
//! empty `AnyValue`; every span's `trace_id` is the row's 16-byte TraceID.

mod attributes;
mod coded;
mod columns;
mod dremel;
pub mod pushdown;
mod row;
mod schema;
mod stream;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::column::writer::{ColumnWriter, ColumnWriterImpl};
use parquet::data_type::DataType;
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    page_index::RowGroupPageIndex, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader,
    RowGroupMetaData,
};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::ReaderProperties;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::{ChunkReader, FileReader, RowGroupReader};
use parquet::file::serialized_reader::{SerializedFileReader, SerializedRowGroupReader};
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::SchemaDescriptor;

use crate::model::{Trace, TraceId};
use crate::tempodb::meta::DedicatedColumn;
use crate::traceql::prefilter::Needs;
use dremel::{Assembler, LeafColumn, LeafValues, SchemaNode};
use row::DedicatedMapping;

pub use schema::schema;
pub use stream::{BlockEncoder, EncodedFigures, TraceBatches};

/// Tempo's writer settings that shape the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterOptions {
    /// Row groups are cut at the first trace boundary past this many units of Tempo's size
    /// estimate (not bytes; `parquet_row_group_size_bytes`, default 100 000 000).
    pub row_group_size_bytes: usize,
    /// Target size of a data page before compression (parquet-go's 256 KiB buffer).
    pub page_size_bytes: usize,
    /// Most traces (rows) in one data page. A trace-by-ID lookup decodes one page per
    /// column, so small pages keep lookups fast in big row groups; the offset index lets
    /// readers (vivace's and Tempo's) skip every other page without reading it.
    pub page_row_count_limit: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            row_group_size_bytes: 100_000_000,
            page_size_bytes: 256 * 1024,
            page_row_count_limit: 100,
        }
    }
}

/// A complete `data.parquet` and the figures `meta.json` and the `index` object need (read
/// through `Deref`: `encoded.row_group_count`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedData {
    /// The complete data.parquet.
    pub bytes: Vec<u8>,
    pub figures: EncodedFigures,
}

impl std::ops::Deref for EncodedData {
    type Target = EncodedFigures;

    fn deref(&self) -> &EncodedFigures {
        &self.figures
    }
}

/// What went wrong encoding or decoding a vParquet4 file.
#[derive(Debug, thiserror::Error)]
pub enum VParquetError {
    /// `encode` needs rows in Tempo's order: ascending by ID, one row per ID.
    #[error("traces must be sorted by id with unique ids: {previous} is followed by {next}")]
    UnsortedTraces { previous: TraceId, next: TraceId },
    /// The parquet layer failed (truncated or corrupt file, I/O of the chunk reader).
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// The file is parquet but not vParquet4.
    #[error("the file schema is not vParquet4: {0}")]
    SchemaMismatch(String),
    /// Column contents that cannot form a vParquet4 row.
    #[error("malformed vparquet4 data: {0}")]
    Malformed(String),
    /// A `ValueUnsupported` cell that is not protobuf-JSON of an OTLP AnyValue.
    #[error("invalid ValueUnsupported json {text:?}: {problem}")]
    InvalidUnsupportedValue { text: String, problem: String },
    /// A row that does not fit the schema; a bug in the row mapping, never input.
    #[error("internal row shape error: {0}")]
    RowShape(String),
}

impl From<dremel::ShapeError> for VParquetError {
    fn from(error: dremel::ShapeError) -> Self {
        VParquetError::Malformed(error.0)
    }
}

/// Writes `data.parquet` for traces sorted ascending by ID with unique IDs.
/// CPU-heavy: callers run it in `spawn_blocking`.
pub fn encode(
    traces: &[(TraceId, Trace)],
    dedicated: &[DedicatedColumn],
    options: &WriterOptions,
) -> Result<EncodedData, VParquetError> {
    let mut encoder = BlockEncoder::new(Vec::new(), dedicated, options)?;
    for (trace_id, trace) in traces {
        encoder.push_ref(*trace_id, trace)?;
    }
    finish_in_memory(encoder)
}

/// [`encode`] taking the traces: each is turned into its row without a copy and freed once
/// shredded into the columns, so the decoded traces and the columns are not held together.
pub fn encode_owned(
    traces: Vec<(TraceId, Trace)>,
    dedicated: &[DedicatedColumn],
    options: &WriterOptions,
) -> Result<EncodedData, VParquetError> {
    let mut encoder = BlockEncoder::new(Vec::new(), dedicated, options)?;
    for (trace_id, trace) in traces {
        encoder.push(trace_id, trace)?;
    }
    finish_in_memory(encoder)
}

fn finish_in_memory(encoder: BlockEncoder<Vec<u8>>) -> Result<EncodedData, VParquetError> {
    let (bytes, figures) = encoder.finish()?;
    Ok(EncodedData { bytes, figures })
}

/// Tempo's physical layout (§5.3) and the two interop traps (§14): data page V2, BOOLEAN
/// columns PLAIN, dictionaries that never fall back and only where Tempo uses them.
fn writer_properties(descriptor: &SchemaDescriptor, options: &WriterOptions) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_data_page_size_limit(options.page_size_bytes.max(1))
        // Tempo prunes a chunk whose dictionary lacks a value, so a dictionary must hold all.
        .set_dictionary_page_size_limit(usize::MAX)
        .set_data_page_row_count_limit(options.page_row_count_limit.max(1))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_write_page_header_statistics(true)
        // Keep the compressed page even when it is larger, as parquet-go does, rather than
        // relying on readers honouring V2's is_compressed=false.
        .set_data_page_v2_compression_ratio_threshold(f64::MAX);
    for column in descriptor.columns() {
        let path = column.path().string();
        let settings = schema::column_settings(&path, column.physical_type());
        // The path's parts, not the dotted string: ColumnPath::from(&str) is one single part.
        let column_path = column.path().clone();
        builder = builder.set_column_compression(column_path.clone(), settings.compression);
        builder = match settings.encoding {
            None => builder.set_column_dictionary_enabled(column_path, true),
            Some(encoding) => builder
                .set_column_dictionary_enabled(column_path.clone(), false)
                .set_column_encoding(column_path, encoding),
        };
    }
    builder.build()
}

fn write_row_group<W: std::io::Write + Send>(
    writer: &mut SerializedFileWriter<W>,
    descriptor: &SchemaDescriptor,
    columns: &[LeafColumn],
) -> Result<(), VParquetError> {
    let mut row_group = writer.next_row_group()?;
    for (index, column) in columns.iter().enumerate() {
        let description = descriptor.column(index);
        let def_levels = (description.max_def_level() > 0).then_some(column.def_levels.as_slice());
        let rep_levels = (description.max_rep_level() > 0).then_some(column.rep_levels.as_slice());
        let Some(mut column_writer) = row_group.next_column()? else {
            return Err(VParquetError::RowShape(format!(
                "the writer has no column {index}"
            )));
        };
        match (column_writer.untyped(), &column.values) {
            (ColumnWriter::BoolColumnWriter(typed), LeafValues::Bool(values)) => {
                write_typed(typed, values, def_levels, rep_levels)?
            }
            (ColumnWriter::Int32ColumnWriter(typed), LeafValues::Int32(values)) => {
                write_typed(typed, values, def_levels, rep_levels)?
            }
            (ColumnWriter::Int64ColumnWriter(typed), LeafValues::Int64(values)) => {
                write_typed(typed, values, def_levels, rep_levels)?
            }
            (ColumnWriter::DoubleColumnWriter(typed), LeafValues::Double(values)) => {
                write_typed(typed, values, def_levels, rep_levels)?
            }
            (ColumnWriter::ByteArrayColumnWriter(typed), LeafValues::Bytes(values)) => {
                write_typed(typed, values, def_levels, rep_levels)?
            }
            _ => {
                return Err(VParquetError::RowShape(format!(
                    "column {index} has values of the wrong type"
                )))
            }
        }
        column_writer.close()?;
    }
    row_group.close()?;
    Ok(())
}

fn write_typed<T: DataType>(
    writer: &mut ColumnWriterImpl<'_, T>,
    values: &[T::T],
    def_levels: Option<&[i16]>,
    rep_levels: Option<&[i16]>,
) -> Result<(), VParquetError> {
    writer.write_batch(values, def_levels, rep_levels)?;
    Ok(())
}

/// Finds one trace: binary search of row groups by their first TraceID, then of the TraceID
/// column's pages by their minimum (column index), then only that page's IDs are scanned and
/// only the matching row is decoded, one page per column.
pub fn find_trace<R: ChunkReader + 'static>(
    reader: R,
    id: &TraceId,
    dedicated: &[DedicatedColumn],
) -> Result<Option<Trace>, VParquetError> {
    let metadata = read_metadata(&reader)?;
    find_trace_with_metadata(reader, &metadata, id, dedicated)
}

/// Parses a block's footer and page index. Parsing the page index of a large block costs more
/// than the lookup itself, so callers that look up the same block again keep the result.
pub fn read_metadata<R: ChunkReader + 'static>(
    reader: &R,
) -> Result<Arc<ParquetMetaData>, VParquetError> {
    guard_against_panics(|| {
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(reader)?;
        check_metadata(&metadata)?;
        Ok(Arc::new(metadata))
    })
}

/// [`find_trace`] with metadata from [`read_metadata`].
pub fn find_trace_with_metadata<R: ChunkReader + 'static>(
    reader: R,
    metadata: &ParquetMetaData,
    id: &TraceId,
    dedicated: &[DedicatedColumn],
) -> Result<Option<Trace>, VParquetError> {
    guard_against_panics(|| find_trace_unguarded(reader, metadata, id, dedicated))
}

fn find_trace_unguarded<R: ChunkReader + 'static>(
    reader: R,
    metadata: &ParquetMetaData,
    id: &TraceId,
    dedicated: &[DedicatedColumn],
) -> Result<Option<Trace>, VParquetError> {
    let chunk_reader = Arc::new(reader);
    let row_group_count = metadata.num_row_groups();
    let properties = Arc::new(ReaderProperties::builder().build());
    let open_row_group = |index: usize| {
        SerializedRowGroupReader::new(
            Arc::clone(&chunk_reader),
            metadata.row_group(index),
            metadata.page_index_for_row_group(index),
            Arc::clone(&properties),
        )
    };
    // Count the row groups whose first ID is <= id; the trace can only be in the last of them.
    let (mut low, mut high) = (0usize, row_group_count);
    while low < high {
        let middle = low + (high - low) / 2;
        let first = match first_id_from_statistics(metadata.row_group(middle)) {
            Some(first) => Some(first),
            None => first_trace_id(&open_row_group(middle)?)?,
        };
        match first {
            Some(first) if first <= *id => low = middle + 1,
            _ => high = middle,
        }
    }
    let Some(row_group_index) = low.checked_sub(1) else {
        return Ok(None);
    };
    let row_group = open_row_group(row_group_index)?;
    let row_count = usize::try_from(row_group.metadata().num_rows())
        .map_err(|_| VParquetError::Malformed("negative row count".into()))?;
    let (first_row, rows) = candidate_rows(
        &metadata.page_index_for_row_group(row_group_index),
        id,
        row_count,
    );
    let ids = read_leaf(&row_group, 0, first_row, rows)?;
    let LeafValues::Bytes(ids) = ids.values else {
        return Err(VParquetError::SchemaMismatch(
            "TraceID is not a byte array".into(),
        ));
    };
    let Some(position) = ids
        .iter()
        .position(|candidate| candidate.data() == id.as_bytes())
    else {
        return Ok(None);
    };
    let columns = read_row_range(&row_group, first_row + position, 1)?;
    let root = SchemaNode::from_message(&schema());
    let mut assembler = Assembler::new(&root, &columns);
    let row = assembler.next_record()?;
    let (_, trace) = row::row_to_trace(&row, &DedicatedMapping::new(dedicated))?;
    Ok(Some(trace))
}

/// The rows of a row group that can hold `id`: with a TraceID column index (rows are sorted,
/// so page minimums ascend), the rows of the last page whose minimum is <= id; otherwise all.
fn candidate_rows(
    page_index: &RowGroupPageIndex,
    id: &TraceId,
    row_count: usize,
) -> (usize, usize) {
    let (Some(ColumnIndexMetaData::BYTE_ARRAY(column_index)), Some(offset_index)) =
        (page_index.column_index(0), page_index.offset_index(0))
    else {
        return (0, row_count);
    };
    let locations = offset_index.page_locations();
    let page_count = locations.len();
    if page_count == 0 || column_index.min_values_iter().count() != page_count {
        return (0, row_count);
    }
    // Minimums may be truncated by a writer; a truncated minimum is still <= the real one.
    let mut page = 0;
    for (index, minimum) in column_index.min_values_iter().enumerate() {
        match minimum {
            Some(minimum) if minimum <= id.as_bytes().as_slice() => page = index,
            Some(_) => break,
            None => return (0, row_count),
        }
    }
    let start = usize::try_from(locations[page].first_row_index)
        .unwrap_or(0)
        .min(row_count);
    let end = locations
        .get(page + 1)
        .and_then(|next| usize::try_from(next.first_row_index).ok())
        .unwrap_or(row_count)
        .clamp(start, row_count);
    (start, end - start)
}

/// The first TraceID of a row group from its chunk statistics, when the writer kept them.
fn first_id_from_statistics(metadata: &RowGroupMetaData) -> Option<TraceId> {
    if metadata.num_rows() <= 0 {
        return None;
    }
    match metadata.column(0).statistics() {
        Some(Statistics::ByteArray(statistics)) => statistics
            .min_opt()
            .and_then(|minimum| <[u8; 16]>::try_from(minimum.data()).ok())
            .map(TraceId),
        _ => None,
    }
}

/// The first TraceID of a row group read from its first value, for writers that left
/// statistics out. `None` for an empty row group.
fn first_trace_id(row_group: &dyn RowGroupReader) -> Result<Option<TraceId>, VParquetError> {
    if row_group.metadata().num_rows() <= 0 {
        return Ok(None);
    }
    let first = read_leaf(row_group, 0, 0, 1)?;
    match first.values {
        LeafValues::Bytes(values) => Ok(values
            .first()
            .and_then(|value| <[u8; 16]>::try_from(value.data()).ok())
            .map(TraceId)),
        _ => Err(VParquetError::SchemaMismatch(
            "TraceID is not a byte array".into(),
        )),
    }
}

/// Every trace of a block in stored order, decoded a batch of rows at a time (see
/// [`TraceBatches`] to hold only one batch).
pub fn read_traces<R: ChunkReader + 'static>(
    reader: R,
    dedicated: &[DedicatedColumn],
) -> Result<Vec<(TraceId, Trace)>, VParquetError> {
    let mut traces = Vec::new();
    for batch in TraceBatches::new(reader, dedicated)? {
        traces.extend(batch?);
    }
    Ok(traces)
}

/// The assembly tree and which leaf columns to read for a query that `needs` only some
/// optional parts of spans: generic attribute lists, events and links it does not read are
/// left out (assembled as empty lists).
pub(crate) fn projected_schema(needs: &Needs) -> Result<(SchemaNode, Vec<bool>), VParquetError> {
    let root = SchemaNode::from_message(&schema());
    if *needs == Needs::ALL {
        return Ok((root, vec![true; schema::LEAF_COUNT]));
    }
    let skip = |path: &[&str]| match path {
        ["rs", "list", "element", "Resource", "Attrs"] => !needs.resource_attributes,
        ["rs", "list", "element", "ss", "list", "element", "Scope", "Attrs"] => {
            !needs.scope_attributes
        }
        ["rs", "list", "element", "ss", "list", "element", "Spans", "list", "element", field] => {
            match *field {
                "Attrs" => !needs.span_attributes,
                "Events" => !needs.events,
                "Links" => !needs.links,
                _ => false,
            }
        }
        _ => false,
    };
    root.project(&skip, schema::LEAF_COUNT).ok_or_else(|| {
        VParquetError::SchemaMismatch("the projection does not fit the vParquet4 schema".into())
    })
}

/// Rows decoded together by `read_traces`; tiny in tests so batch boundaries are exercised.
pub(crate) const READ_BATCH_ROWS: usize = if cfg!(test) { 7 } else { 1024 };

/// The `parquet` crate asserts on some footer values instead of returning errors; a corrupt
/// file must still be an error, so any panic left inside a read becomes one.
fn guard_against_panics<T>(
    read: impl FnOnce() -> Result<T, VParquetError>,
) -> Result<T, VParquetError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(VParquetError::Malformed(format!(
                "the parquet reader failed on this file: {message}"
            )))
        }
    }
}

/// Checks the schema and the column chunk ranges the parquet crate would otherwise assert on.
fn check_file<R: ChunkReader + 'static>(
    file: &SerializedFileReader<R>,
) -> Result<(), VParquetError> {
    check_metadata(file.metadata())
}

/// Checks the schema and the column chunk ranges of parsed metadata.
fn check_metadata(metadata: &ParquetMetaData) -> Result<(), VParquetError> {
    check_schema(metadata.file_metadata().schema_descr())?;
    for (row_group_index, row_group) in metadata.row_groups().iter().enumerate() {
        if row_group.num_columns() != schema::LEAF_COUNT {
            return Err(VParquetError::Malformed(format!(
                "row group {row_group_index} has {} column chunks",
                row_group.num_columns()
            )));
        }
        for (leaf, column) in row_group.columns().iter().enumerate() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let valid = start >= 0
                && column.data_page_offset() >= 0
                && column.compressed_size() >= 0
                && start.checked_add(column.compressed_size()).is_some();
            if !valid {
                return Err(VParquetError::Malformed(format!(
                    "row group {row_group_index} column {leaf} has an invalid byte range"
                )));
            }
        }
    }
    Ok(())
}

/// Tempo binds columns by position, so a file is only read if every leaf matches ours.
fn check_schema(file_schema: &SchemaDescriptor) -> Result<(), VParquetError> {
    let expected = schema::schema_descriptor();
    if file_schema.num_columns() != expected.num_columns() {
        return Err(VParquetError::SchemaMismatch(format!(
            "{} leaf columns, expected {}",
            file_schema.num_columns(),
            expected.num_columns()
        )));
    }
    for (index, (found, wanted)) in file_schema
        .columns()
        .iter()
        .zip(expected.columns())
        .enumerate()
    {
        let same = found.path() == wanted.path()
            && found.physical_type() == wanted.physical_type()
            && found.max_def_level() == wanted.max_def_level()
            && found.max_rep_level() == wanted.max_rep_level();
        if !same {
            return Err(VParquetError::SchemaMismatch(format!(
                "leaf {index} is {} {} (def {}, rep {}), expected {} {} (def {}, rep {})",
                found.path(),
                found.physical_type(),
                found.max_def_level(),
                found.max_rep_level(),
                wanted.path(),
                wanted.physical_type(),
                wanted.max_def_level(),
                wanted.max_rep_level()
            )));
        }
    }
    Ok(())
}

/// Values and levels of `count` rows starting at row `skip`, for every leaf.
fn read_row_range(
    row_group: &dyn RowGroupReader,
    skip: usize,
    count: usize,
) -> Result<Vec<LeafColumn>, VParquetError> {
    (0..schema::LEAF_COUNT)
        .map(|leaf| read_leaf(row_group, leaf, skip, count))
        .collect()
}

fn read_leaf(
    row_group: &dyn RowGroupReader,
    leaf: usize,
    skip: usize,
    count: usize,
) -> Result<LeafColumn, VParquetError> {
    let mut reader = row_group.get_column_reader(leaf)?;
    let entries = entries_estimate(row_group.metadata(), leaf, count);
    read_from(&mut reader, leaf, skip, count, entries)
}

/// Reads `count` rows after skipping `skip`, continuing where the reader stopped, with room
/// made for `entries` level entries up front (see [`entries_estimate`]).
fn read_from(
    reader: &mut ColumnReader,
    leaf: usize,
    skip: usize,
    count: usize,
    entries: usize,
) -> Result<LeafColumn, VParquetError> {
    let mut column = empty_column(reader, leaf, entries)?;
    read_into(reader, leaf, skip, count, &mut column)?;
    finish_levels(&mut column);
    Ok(column)
}

/// About how many level entries (values and nulls) `rows` rows of `leaf` hold in a row
/// group, from its column chunk's counts: reserving them up front spares growing the
/// buffers (each growth a copy, and fresh pages the kernel must zero).
fn entries_estimate(row_group: &RowGroupMetaData, leaf: usize, rows: usize) -> usize {
    let group_rows = row_group.num_rows().max(1) as u128;
    let entries = row_group.column(leaf).num_values().max(0) as u128;
    // Rounded up, and capped so a lying footer cannot make a huge reservation.
    let estimate = (entries * rows as u128).div_ceil(group_rows);
    usize::try_from(estimate.min(MAX_RESERVED_ENTRIES as u128)).unwrap_or(MAX_RESERVED_ENTRIES)
}

/// The most level entries a read reserves room for up front (more are read as they come).
const MAX_RESERVED_ENTRIES: usize = 1 << 22;

/// An empty column of `reader`'s type with room for `entries` level entries.
fn empty_column(
    reader: &ColumnReader,
    leaf: usize,
    entries: usize,
) -> Result<LeafColumn, VParquetError> {
    let values = match reader {
        ColumnReader::BoolColumnReader(_) => LeafValues::Bool(Vec::with_capacity(entries)),
        ColumnReader::Int32ColumnReader(_) => LeafValues::Int32(Vec::with_capacity(entries)),
        ColumnReader::Int64ColumnReader(_) => LeafValues::Int64(Vec::with_capacity(entries)),
        ColumnReader::DoubleColumnReader(_) => LeafValues::Double(Vec::with_capacity(entries)),
        ColumnReader::ByteArrayColumnReader(_) => LeafValues::Bytes(Vec::with_capacity(entries)),
        _ => {
            return Err(VParquetError::SchemaMismatch(format!(
                "leaf {leaf} has an unexpected physical type"
            )))
        }
    };
    Ok(LeafColumn {
        values,
        def_levels: Vec::with_capacity(entries),
        rep_levels: Vec::with_capacity(entries),
    })
}

/// Appends `count` rows, after skipping `skip`, to `column` (of the reader's type, see
/// [`empty_column`]); [`finish_levels`] completes the levels once every part is in.
fn read_into(
    reader: &mut ColumnReader,
    leaf: usize,
    skip: usize,
    count: usize,
    column: &mut LeafColumn,
) -> Result<(), VParquetError> {
    let (def, rep) = (&mut column.def_levels, &mut column.rep_levels);
    match (reader, &mut column.values) {
        (ColumnReader::BoolColumnReader(typed), LeafValues::Bool(values)) => {
            read_typed(typed, skip, count, leaf, values, def, rep)
        }
        (ColumnReader::Int32ColumnReader(typed), LeafValues::Int32(values)) => {
            read_typed(typed, skip, count, leaf, values, def, rep)
        }
        (ColumnReader::Int64ColumnReader(typed), LeafValues::Int64(values)) => {
            read_typed(typed, skip, count, leaf, values, def, rep)
        }
        (ColumnReader::DoubleColumnReader(typed), LeafValues::Double(values)) => {
            read_typed(typed, skip, count, leaf, values, def, rep)
        }
        (ColumnReader::ByteArrayColumnReader(typed), LeafValues::Bytes(values)) => {
            read_typed(typed, skip, count, leaf, values, def, rep)
        }
        _ => Err(VParquetError::SchemaMismatch(format!(
            "leaf {leaf} is not of the type read so far"
        ))),
    }
}

/// Columns without levels read none, and columns without repetition no repetition levels;
/// the assembler wants one of each per entry everywhere.
fn finish_levels(column: &mut LeafColumn) {
    let values = column.values.len();
    if column.def_levels.is_empty() && column.rep_levels.is_empty() && values > 0 {
        column.def_levels = vec![0; values];
        column.rep_levels = vec![0; values];
    } else if column.rep_levels.len() < column.def_levels.len() {
        column.rep_levels.resize(column.def_levels.len(), 0);
    }
}

fn read_typed<T: DataType>(
    reader: &mut ColumnReaderImpl<T>,
    skip: usize,
    count: usize,
    leaf: usize,
    values: &mut Vec<T::T>,
    def_levels: &mut Vec<i16>,
    rep_levels: &mut Vec<i16>,
) -> Result<(), VParquetError> {
    if skip > 0 {
        let skipped = reader.skip_records(skip)?;
        if skipped != skip {
            return Err(VParquetError::Malformed(format!(
                "column {leaf} has {skipped} rows, needed more than {skip}"
            )));
        }
    }
    let mut records = 0;
    while records < count {
        let (read, _, _) =
            reader.read_records(count - records, Some(def_levels), Some(rep_levels), values)?;
        if read == 0 {
            break;
        }
        records += read;
    }
    if records != count {
        return Err(VParquetError::Malformed(format!(
            "column {leaf} ended after {records} of {count} rows"
        )));
    }
    Ok(())
}
