//! Reads only the traces of a block that can pass a [`TraceFilter`], decoding nothing else.
//!
//! The filter is bound to this block's columns (well-known, dedicated and generic attribute
//! columns), then applied in three passes per row group, each cheaper than the next:
//! 1. column chunk statistics (min/max, all-null) and, for fully dictionary-encoded chunks,
//!    the dictionary (for chunks of PLAIN numbers, the values of the data pages, levels
//!    left undecoded): a row group none of whose chunks can hold a wanted value is skipped;
//! 2. the page index (column index min/max and null pages, offset index row ranges): rows
//!    in pages that cannot hold a wanted value are dropped without reading the page;
//! 3. the filter columns of the remaining rows are read and tested row by row.
//!
//! Only the rows left are decoded whole, every column skipping straight to them through the
//! offset index. The binding is conservative like the filter: a value the writer may have
//! put in either a dedicated or a generic column is looked for in both.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock};

use parquet::basic::Encoding;
use parquet::column::page::Page;
use parquet::column::reader::ColumnReader;
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{ChunkReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedRowGroupReader;
use parquet::file::statistics::Statistics;

use super::coded::CodedReader;
use super::columns;
use super::dremel::{Assembler, LeafColumn, LeafValues};
use super::row::{self, DedicatedMapping};
use super::{
    empty_column, entries_estimate, finish_levels, guard_against_panics, read_into, schema,
    VParquetError,
};
use crate::model::{Trace, TraceId};
use crate::tempodb::meta::DedicatedColumn;
use crate::traceql::columns::{SpanColumns, SpanFields};
use crate::traceql::prefilter::{Field, Needs, TraceFilter, ValueTest};

/// What a filtered read skipped and kept, for figures and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushdownStats {
    /// Row groups in the block.
    pub row_groups: u64,
    /// Row groups skipped on column chunk statistics.
    pub row_groups_skipped_by_statistics: u64,
    /// Row groups skipped on their values: a dictionary, or the data pages of a chunk of
    /// PLAIN numbers, holding no wanted value.
    pub row_groups_skipped_by_values: u64,
    /// Filter-column pages dropped on the column index without being read.
    pub pages_skipped: u64,
    /// Rows (traces) in the block.
    pub rows: u64,
    /// Rows whose filter columns were read.
    pub rows_tested: u64,
    /// Rows decoded whole (passed the filter).
    pub rows_decoded: u64,
    /// Batches of decoded traces handed on (at most `READ_BATCH_ROWS` traces each).
    pub batches: u64,
    /// Reads that stopped before their block's end because the reader had enough.
    pub stopped_early: u64,
}

impl PushdownStats {
    /// Adds another read's figures.
    pub fn add(&mut self, other: &PushdownStats) {
        self.row_groups += other.row_groups;
        self.row_groups_skipped_by_statistics += other.row_groups_skipped_by_statistics;
        self.row_groups_skipped_by_values += other.row_groups_skipped_by_values;
        self.pages_skipped += other.pages_skipped;
        self.rows += other.rows;
        self.rows_tested += other.rows_tested;
        self.rows_decoded += other.rows_decoded;
        self.batches += other.batches;
        self.stopped_early += other.stopped_early;
    }
}

/// The filter bound to leaf columns.
#[derive(Debug, Clone)]
enum Bound {
    True,
    False,
    And(Vec<Bound>),
    Or(Vec<Bound>),
    /// Index into the leaf conditions.
    Leaf(usize),
}

/// "Some value of this leaf in the row passes."
#[derive(Debug, Clone)]
struct LeafCondition {
    leaf: usize,
    /// `None`: any non-null value passes.
    test: Option<ValueTest>,
    /// Unsigned columns (durations): a value that is negative as i64 wrapped around in the
    /// writer, and the evaluator may see it differently, so it always passes.
    negative_passes: bool,
}

const SPAN: &str = "rs.list.element.ss.list.element.Spans.list.element.";
const RESOURCE: &str = "rs.list.element.Resource.";

/// Resource attributes with a well-known column, and the column's name.
const RESOURCE_COLUMNS: [(&str, &str); 9] = [
    ("service.name", "ServiceName"),
    ("cluster", "Cluster"),
    ("namespace", "Namespace"),
    ("pod", "Pod"),
    ("container", "Container"),
    ("k8s.cluster.name", "K8sClusterName"),
    ("k8s.namespace.name", "K8sNamespaceName"),
    ("k8s.pod.name", "K8sPodName"),
    ("k8s.container.name", "K8sContainerName"),
];

fn leaf_index(path: &str) -> Option<usize> {
    static INDEX: OnceLock<HashMap<String, usize>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            schema::schema_descriptor()
                .columns()
                .iter()
                .enumerate()
                .map(|(index, column)| (column.path().string(), index))
                .collect()
        })
        .get(path)
        .copied()
}

struct Binder<'a> {
    mapping: &'a DedicatedMapping,
    leaves: Vec<LeafCondition>,
}

impl Binder<'_> {
    fn leaf(&mut self, path: &str, test: Option<ValueTest>, negative_passes: bool) -> Bound {
        let Some(leaf) = leaf_index(path) else {
            // Every path here is in the schema; a missing one keeps everything.
            return Bound::True;
        };
        self.leaves.push(LeafCondition {
            leaf,
            test,
            negative_passes,
        });
        Bound::Leaf(self.leaves.len() - 1)
    }

    fn bind(&mut self, filter: &TraceFilter) -> Bound {
        match filter {
            TraceFilter::True => Bound::True,
            TraceFilter::And(parts) => Bound::And(parts.iter().map(|p| self.bind(p)).collect()),
            TraceFilter::Or(parts) => Bound::Or(parts.iter().map(|p| self.bind(p)).collect()),
            TraceFilter::Cond(condition) => {
                let test = condition.test.clone();
                match &condition.field {
                    Field::TraceId => self.leaf("TraceID", Some(test), false),
                    Field::SpanName => self.leaf(&format!("{SPAN}Name"), Some(test), false),
                    Field::SpanKind => self.leaf(&format!("{SPAN}Kind"), Some(test), false),
                    Field::SpanStatus => self.leaf(&format!("{SPAN}StatusCode"), Some(test), false),
                    Field::SpanDuration => {
                        self.leaf(&format!("{SPAN}DurationNano"), Some(test), true)
                    }
                    Field::SpanAttribute(name) => self.span_attribute(name, test),
                    Field::ResourceAttribute(name) => self.resource_attribute(name, test),
                }
            }
        }
    }

    fn span_attribute(&mut self, name: &str, test: ValueTest) -> Bound {
        let mut alternatives = vec![self.generic(SPAN, name, &test)];
        let is_string = matches!(test, ValueTest::StrIn(_) | ValueTest::StrRegex(_));
        if is_string {
            let column = match name {
                "http.method" => Some("HttpMethod".to_string()),
                "http.url" => Some("HttpUrl".to_string()),
                _ => dedicated_column(&self.mapping.span, name),
            };
            if let Some(column) = column {
                alternatives.push(self.leaf(&format!("{SPAN}{column}"), Some(test.clone()), false));
            }
        }
        if name == "http.status_code" && matches!(test, ValueTest::Num(..)) {
            alternatives.push(self.leaf(&format!("{SPAN}HttpStatusCode"), Some(test), false));
        }
        Bound::Or(alternatives)
    }

    fn resource_attribute(&mut self, name: &str, test: ValueTest) -> Bound {
        let mut alternatives = vec![self.generic(RESOURCE, name, &test)];
        if matches!(test, ValueTest::StrIn(_) | ValueTest::StrRegex(_)) {
            let column = RESOURCE_COLUMNS
                .iter()
                .find(|(attribute, _)| *attribute == name)
                .map(|(_, column)| column.to_string())
                .or_else(|| dedicated_column(&self.mapping.resource, name));
            if let Some(column) = column {
                alternatives.push(self.leaf(&format!("{RESOURCE}{column}"), Some(test), false));
            }
        }
        Bound::Or(alternatives)
    }

    /// The generic attribute list of a scope: the key and a matching value somewhere in the
    /// row, or any value the reader decodes from JSON (`ValueUnsupported`, mixed arrays).
    fn generic(&mut self, scope: &str, name: &str, test: &ValueTest) -> Bound {
        let attrs = format!("{scope}Attrs.list.element.");
        let key = self.leaf(
            &format!("{attrs}Key"),
            Some(ValueTest::StrIn([name.to_string()].into())),
            false,
        );
        let value = match test {
            ValueTest::StrIn(_) | ValueTest::StrRegex(_) => self.leaf(
                &format!("{attrs}Value.list.element"),
                Some(test.clone()),
                false,
            ),
            ValueTest::Num(..) => Bound::Or(vec![
                self.leaf(
                    &format!("{attrs}ValueInt.list.element"),
                    Some(test.clone()),
                    false,
                ),
                self.leaf(
                    &format!("{attrs}ValueDouble.list.element"),
                    Some(test.clone()),
                    false,
                ),
            ]),
            ValueTest::Bool(_) => self.leaf(
                &format!("{attrs}ValueBool.list.element"),
                Some(test.clone()),
                false,
            ),
            ValueTest::BytesIn(_) => Bound::False,
        };
        let unsupported = self.leaf(&format!("{attrs}ValueUnsupported"), None, false);
        Bound::Or(vec![Bound::And(vec![key, value]), unsupported])
    }
}

/// `DedicatedAttributes.StringNN` holding `name`, if this block dedicates one to it.
fn dedicated_column(names: &[String], name: &str) -> Option<String> {
    names
        .iter()
        .position(|dedicated| dedicated == name)
        .map(|slot| format!("DedicatedAttributes.String{:02}", slot + 1))
}

fn eval_bool(bound: &Bound, leaf: &mut dyn FnMut(usize) -> bool) -> bool {
    match bound {
        Bound::True => true,
        Bound::False => false,
        Bound::And(parts) => parts.iter().all(|part| eval_bool(part, leaf)),
        Bound::Or(parts) => parts.iter().any(|part| eval_bool(part, leaf)),
        Bound::Leaf(index) => leaf(*index),
    }
}

fn eval_bits(bound: &Bound, bits: &[Vec<bool>], rows: usize) -> Vec<bool> {
    match bound {
        Bound::True => vec![true; rows],
        Bound::False => vec![false; rows],
        Bound::And(parts) => {
            let mut result = vec![true; rows];
            for part in parts {
                for (kept, part_kept) in result.iter_mut().zip(eval_bits(part, bits, rows)) {
                    *kept &= part_kept;
                }
            }
            result
        }
        Bound::Or(parts) => {
            let mut result = vec![false; rows];
            for part in parts {
                for (kept, part_kept) in result.iter_mut().zip(eval_bits(part, bits, rows)) {
                    *kept |= part_kept;
                }
            }
            result
        }
        Bound::Leaf(index) => bits[*index].clone(),
    }
}

/// Every trace of a block that may pass `filter`, in stored order, and what was skipped.
/// `metadata` must come from [`super::read_metadata`] (footer and page index).
pub fn read_traces_filtered<R: ChunkReader + 'static>(
    reader: R,
    metadata: &ParquetMetaData,
    dedicated: &[DedicatedColumn],
    filter: &TraceFilter,
    needs: &Needs,
) -> Result<(Vec<(TraceId, Trace)>, PushdownStats), VParquetError> {
    let mut traces = Vec::new();
    let stats = stream_filtered(
        reader,
        metadata,
        dedicated,
        filter,
        Decode::Traces(needs),
        &mut |batch| {
            if let Decoded::Traces(batch, _) = batch {
                traces.extend(batch);
            }
            true
        },
    )?;
    Ok((traces, stats))
}

/// What a filtered read decodes of the rows that pass.
#[derive(Debug, Clone, Copy)]
pub enum Decode<'a> {
    /// Whole traces; of the optional parts, only what `needs` names.
    Traces(&'a Needs),
    /// Only these span fields, as columns. A row group whose columns do not hold those
    /// fields on their own (see [`columns::columns_suffice`]) decodes traces with `needs`.
    Columns {
        fields: &'a SpanFields,
        needs: &'a Needs,
    },
}

/// One batch of what a filtered read decoded, in row order, counted as held (see
/// [`Held`]) until dropped.
#[derive(Debug)]
pub enum Decoded {
    Traces(Vec<(TraceId, Trace)>, Held),
    Columns(Box<SpanColumns>, Held),
}

/// Traces decoded for queries and not yet dropped, process-wide.
static HELD_TRACES: AtomicUsize = AtomicUsize::new(0);
/// The most [`HELD_TRACES`] since the last [`reset_peak_held_traces`].
static PEAK_HELD_TRACES: AtomicUsize = AtomicUsize::new(0);

/// A number of decoded traces (whole, or as span columns) that counts as held in memory
/// until this is dropped with the batch holding them: what shows that a query holds a bounded
/// number of decoded batches, never whole blocks (`vivace bench --search` prints the peak).
#[derive(Debug)]
pub struct Held(usize);

impl Held {
    pub fn new(traces: usize) -> Held {
        let now = HELD_TRACES.fetch_add(traces, AtomicOrdering::Relaxed) + traces;
        PEAK_HELD_TRACES.fetch_max(now, AtomicOrdering::Relaxed);
        Held(traces)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD_TRACES.fetch_sub(self.0, AtomicOrdering::Relaxed);
    }
}

/// The most decoded traces held at once since the last reset.
pub fn peak_held_traces() -> usize {
    PEAK_HELD_TRACES.load(AtomicOrdering::Relaxed)
}

/// Starts a new peak from what is held now.
pub fn reset_peak_held_traces() {
    PEAK_HELD_TRACES.store(
        HELD_TRACES.load(AtomicOrdering::Relaxed),
        AtomicOrdering::Relaxed,
    );
}

/// [`read_traces_filtered`] that hands what it decodes to `sink` a batch at a time (at most
/// `READ_BATCH_ROWS` traces, in row order) and stops reading — in the middle of a row group
/// if need be — as soon as `sink` returns `false`. Only one decoded batch exists at a time
/// here.
pub fn stream_filtered<R: ChunkReader + 'static>(
    reader: R,
    metadata: &ParquetMetaData,
    dedicated: &[DedicatedColumn],
    filter: &TraceFilter,
    decode: Decode<'_>,
    sink: &mut dyn FnMut(Decoded) -> bool,
) -> Result<PushdownStats, VParquetError> {
    guard_against_panics(|| {
        read_filtered_unguarded(reader, metadata, dedicated, filter, decode, sink)
    })
}

fn read_filtered_unguarded<R: ChunkReader + 'static>(
    reader: R,
    metadata: &ParquetMetaData,
    dedicated: &[DedicatedColumn],
    filter: &TraceFilter,
    decode: Decode<'_>,
    sink: &mut dyn FnMut(Decoded) -> bool,
) -> Result<PushdownStats, VParquetError> {
    let needs = match decode {
        Decode::Traces(needs) | Decode::Columns { needs, .. } => needs,
    };
    super::check_metadata(metadata)?;
    let mapping = DedicatedMapping::new(dedicated);
    let mut binder = Binder {
        mapping: &mapping,
        leaves: Vec::new(),
    };
    let bound = binder.bind(filter);
    let leaves = binder.leaves;
    let descriptor = metadata.file_metadata().schema_descr();
    let (root, read_leaf) = super::projected_schema(needs)?;
    let chunk_reader = Arc::new(reader);
    let properties = Arc::new(ReaderProperties::builder().build());
    let mut stats = PushdownStats::default();
    // Each leaf's buffers, emptied after every batch and refilled by the next: a full scan
    // allocates them once, not once a batch (fresh memory is memory the kernel must zero).
    let mut spare: Vec<Option<LeafColumn>> = (0..schema::LEAF_COUNT).map(|_| None).collect();
    for row_group_index in 0..metadata.num_row_groups() {
        let row_group_meta = metadata.row_group(row_group_index);
        let row_count = usize::try_from(row_group_meta.num_rows())
            .map_err(|_| VParquetError::Malformed("negative row count".into()))?;
        stats.row_groups += 1;
        stats.rows += row_count as u64;
        if row_count == 0 {
            continue;
        }
        let row_group = SerializedRowGroupReader::new(
            Arc::clone(&chunk_reader),
            row_group_meta,
            metadata.page_index_for_row_group(row_group_index),
            Arc::clone(&properties),
        )?;

        let mut rows = vec![true; row_count];
        if !leaves.is_empty() {
            // 1. Column chunk statistics, then dictionaries (of leaves the statistics allow).
            let chunk_allows: Vec<bool> = leaves
                .iter()
                .map(|condition| chunk_may_match(row_group_meta.column(condition.leaf), condition))
                .collect();
            if !eval_bool(&bound, &mut |index| chunk_allows[index]) {
                stats.row_groups_skipped_by_statistics += 1;
                continue;
            }
            let mut dictionary_allows = Vec::with_capacity(leaves.len());
            for (condition, allowed) in leaves.iter().zip(&chunk_allows) {
                dictionary_allows.push(*allowed && dictionary_may_match(&row_group, condition)?);
            }
            if !eval_bool(&bound, &mut |index| dictionary_allows[index]) {
                stats.row_groups_skipped_by_values += 1;
                continue;
            }
            // 2. The page index.
            let page_index = metadata.page_index_for_row_group(row_group_index);
            let page_bits: Vec<Vec<bool>> = leaves
                .iter()
                .zip(&dictionary_allows)
                .map(|(condition, allowed)| {
                    if !allowed {
                        return vec![false; row_count];
                    }
                    let (bits, skipped) = page_candidates(
                        page_index.column_index(condition.leaf),
                        page_index
                            .offset_index(condition.leaf)
                            .map(|o| o.page_locations()),
                        condition,
                        row_count,
                    );
                    stats.pages_skipped += skipped;
                    bits
                })
                .collect();
            rows = eval_bits(&bound, &page_bits, row_count);
            let candidates = runs_of(&rows);
            if candidates.is_empty() {
                continue;
            }
            // 3. Row by row on the filter columns of the candidate rows: a sample first. When
            // most sampled rows pass, reading the filter columns of the rest would cost more
            // than it saves (the evaluator checks every decoded trace anyway).
            let (sample, rest) = split_runs(&candidates, ROW_TEST_SAMPLE_ROWS);
            let mut filter_readers: HashMap<usize, (LeafReader, usize)> = HashMap::new();
            for condition in &leaves {
                if let std::collections::hash_map::Entry::Vacant(entry) =
                    filter_readers.entry(condition.leaf)
                {
                    let reader = row_group.get_column_reader(condition.leaf)?;
                    entry.insert((LeafReader::Values(reader), 0));
                }
            }
            // Filter columns are read cheapest (smallest chunk) first, each only for the rows
            // the filter may still pass given the columns read so far: a rare value in a
            // small column spares reading a large one (a numeric value before its key).
            let mut cheapest_first: Vec<usize> = filter_readers.keys().copied().collect();
            cheapest_first
                .sort_by_key(|leaf| (row_group_meta.column(*leaf).compressed_size(), *leaf));
            let mut test_runs = |runs: &[(usize, usize)]| -> Result<Vec<bool>, VParquetError> {
                let mut row_bits: Vec<Option<Vec<bool>>> = vec![None; leaves.len()];
                let mut pending: Vec<(usize, usize)> = runs.to_vec();
                let mut may_pass = vec![true; row_count];
                for leaf in &cheapest_first {
                    if pending.is_empty() {
                        break;
                    }
                    let Some((reader, position)) = filter_readers.get_mut(leaf) else {
                        continue;
                    };
                    let entries = |rows| entries_estimate(row_group_meta, *leaf, rows);
                    let column = read_runs(reader, *leaf, &pending, position, &entries, None)?;
                    let row_numbers: Vec<usize> = pending
                        .iter()
                        .flat_map(|(start, count)| *start..start + count)
                        .collect();
                    let max_def = descriptor.column(*leaf).max_def_level();
                    for (index, condition) in leaves.iter().enumerate() {
                        if condition.leaf == *leaf {
                            row_bits[index] = Some(row_matches(
                                &column,
                                max_def,
                                condition,
                                &row_numbers,
                                row_count,
                            )?);
                        }
                    }
                    // Unread columns may still pass: the filter is monotone (AND/OR only).
                    let assumed: Vec<Vec<bool>> = row_bits
                        .iter()
                        .map(|bits| bits.clone().unwrap_or_else(|| vec![true; row_count]))
                        .collect();
                    may_pass = eval_bits(&bound, &assumed, row_count);
                    let mut narrowed = vec![false; row_count];
                    for row in row_numbers {
                        narrowed[row] = may_pass[row];
                    }
                    pending = runs_of(&narrowed);
                }
                Ok(may_pass)
            };
            let sample_rows: usize = sample.iter().map(|(_, count)| count).sum();
            let sample_bits = test_runs(&sample)?;
            stats.rows_tested += sample_rows as u64;
            let sample_passed = sample
                .iter()
                .flat_map(|(start, count)| *start..start + count)
                .filter(|row| sample_bits[*row])
                .count();
            let rest_bits = if rest.is_empty() || sample_passed * 2 > sample_rows {
                None
            } else {
                stats.rows_tested += rest.iter().map(|(_, count)| *count as u64).sum::<u64>();
                Some(test_runs(&rest)?)
            };
            let boundary = rest.first().map_or(row_count, |(start, _)| *start);
            for (row, kept) in rows.iter_mut().enumerate() {
                *kept &= if row < boundary {
                    sample_bits[row]
                } else {
                    rest_bits.as_ref().is_none_or(|bits| bits[row])
                };
            }
        } else {
            stats.rows_tested += row_count as u64;
        }

        // Decode the rows left, a batch at a time, every column skipping to them.
        let selected: Vec<usize> = (0..row_count).filter(|row| rows[*row]).collect();
        if selected.is_empty() {
            continue;
        }
        // Span fields straight from their columns where they suffice, else whole traces.
        let column_fields = match decode {
            Decode::Columns { fields, .. } if columns::columns_suffice(row_group_meta, fields) => {
                Some(fields)
            }
            _ => None,
        };
        let wanted: Vec<bool> = match column_fields {
            Some(fields) => {
                let mut wanted = vec![false; schema::LEAF_COUNT];
                for leaf in columns::leaves_read(fields, &mapping) {
                    wanted[leaf] = true;
                }
                wanted
            }
            None => read_leaf.clone(),
        };
        // When much of the row group is decoded, its column chunks are fetched up front in a
        // few large reads: page by page, tens of columns read in turn would each miss the
        // reader's windows (one request per page on object storage).
        let prefetched;
        let decode_group: &dyn RowGroupReader =
            if selected.len() * PREFETCH_FRACTION_DENOMINATOR >= row_count {
                let ranges: Vec<(u64, u64)> = (0..schema::LEAF_COUNT)
                    .filter(|leaf| wanted[*leaf])
                    .map(|leaf| row_group_meta.column(leaf).byte_range())
                    .collect();
                prefetched = SerializedRowGroupReader::new(
                    Arc::new(Prefetched::fetch(Arc::clone(&chunk_reader), &ranges)?),
                    row_group_meta,
                    metadata.page_index_for_row_group(row_group_index),
                    Arc::clone(&properties),
                )?;
                &prefetched
            } else {
                &row_group
            };
        // Columns the query does not need stay unread: they assemble as empty lists.
        // Where the span columns read most of a row group, the attributes' keys and string
        // values are read as dictionary codes (which decode every page, so not for a few rows).
        let coded =
            column_fields.is_some() && selected.len() * PREFETCH_FRACTION_DENOMINATOR >= row_count;
        let mut readers = (0..schema::LEAF_COUNT)
            .map(|leaf| {
                if !wanted[leaf] {
                    return Ok(None);
                }
                let chunk = row_group_meta.column(leaf);
                if coded && columns::reads_coded(leaf) && super::coded::readable(chunk) {
                    let descriptor = chunk.column_descr();
                    return Ok(Some(LeafReader::Codes(CodedReader::new(
                        decode_group.get_column_page_reader(leaf)?,
                        leaf,
                        descriptor.max_def_level(),
                        descriptor.max_rep_level(),
                    ))));
                }
                Ok::<_, VParquetError>(Some(LeafReader::Values(
                    decode_group.get_column_reader(leaf)?,
                )))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut position = 0usize;
        for batch in growing_batches(&selected, FIRST_BATCH_ROWS, super::READ_BATCH_ROWS) {
            let mut batch_rows = vec![false; row_count];
            for row in batch {
                batch_rows[*row] = true;
            }
            // Short gaps are read and thrown away: skipping a few rows costs about as much as
            // reading them (repeated columns decode their levels either way), and every run
            // costs a call per column.
            let runs = bridge_gaps(&runs_of(&batch_rows), MAX_GAP_ROWS);
            let mut columns = Vec::with_capacity(readers.len());
            let mut next_position = position;
            for (leaf, column_reader) in readers.iter_mut().enumerate() {
                let Some(column_reader) = column_reader else {
                    columns.push(LeafColumn::unread());
                    continue;
                };
                let mut leaf_position = position;
                let entries = |rows| entries_estimate(row_group_meta, leaf, rows);
                columns.push(read_runs(
                    column_reader,
                    leaf,
                    &runs,
                    &mut leaf_position,
                    &entries,
                    spare[leaf].take(),
                )?);
                next_position = leaf_position;
            }
            position = next_position;
            let row_numbers: Vec<usize> = runs
                .iter()
                .flat_map(|(start, count)| *start..start + count)
                .collect();
            let decoded = match column_fields {
                Some(fields) => {
                    let columns = columns::span_columns(
                        fields,
                        &mapping,
                        &columns,
                        &row_numbers,
                        &batch_rows,
                    )?;
                    let held = Held::new(columns.trace_count());
                    Decoded::Columns(Box::new(columns), held)
                }
                None => {
                    let mut assembler = Assembler::new(&root, &columns);
                    let mut traces = Vec::with_capacity(batch.len());
                    for row_number in &row_numbers {
                        let row = assembler.next_record()?;
                        if batch_rows[*row_number] {
                            traces.push(row::row_to_trace(&row, &mapping)?);
                        }
                    }
                    if !assembler.is_done() {
                        return Err(VParquetError::Malformed(format!(
                            "row group {row_group_index} has column data beyond its rows"
                        )));
                    }
                    let held = Held::new(traces.len());
                    Decoded::Traces(traces, held)
                }
            };
            for (leaf, mut column) in columns.into_iter().enumerate() {
                if wanted[leaf] {
                    column.clear();
                    spare[leaf] = Some(column);
                }
            }
            stats.rows_decoded += batch.len() as u64;
            stats.batches += 1;
            if !sink(decoded) {
                stats.stopped_early += 1;
                return Ok(stats);
            }
        }
    }
    Ok(stats)
}

/// Rows decoded in a row group's first batch; each next batch doubles, up to
/// `READ_BATCH_ROWS`. A search whose limit the first rows satisfy stops after decoding a few
/// dozen traces, while a full scan soon reads in full-size batches.
const FIRST_BATCH_ROWS: usize = 64;

/// `items` cut into batches of `first`, twice that, … up to `largest` items: a reader that
/// stops early has decoded little, a full scan soon reads in full-size batches.
pub(crate) fn growing_batches<T>(
    items: &[T],
    first: usize,
    largest: usize,
) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    let mut size = first.clamp(1, largest.max(1));
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (batch, next) = rest.split_at(size.min(rest.len()));
        rest = next;
        size = (size * 2).min(largest.max(1));
        Some(batch)
    })
}

/// Runs `(first row, row count)` of the set entries.
fn runs_of(rows: &[bool]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (row, kept) in rows.iter().enumerate() {
        if !kept {
            continue;
        }
        match runs.last_mut() {
            Some((start, count)) if *start + *count == row => *count += 1,
            _ => runs.push((row, 1)),
        }
    }
    runs
}

/// The decode phase prefetches a row group's column chunks when at least 1/this of its rows
/// are decoded.
const PREFETCH_FRACTION_DENOMINATOR: usize = 16;

/// Ranges of a file fetched ahead of reading (coalesced when close), with the file's reader
/// behind them for anything else.
struct Prefetched<R: ChunkReader> {
    inner: Arc<R>,
    parts: Vec<(u64, bytes::Bytes)>,
}

/// Gap below which two prefetched ranges are fetched as one.
const PREFETCH_COALESCE_BYTES: u64 = 1024 * 1024;

impl<R: ChunkReader> Prefetched<R> {
    /// Fetches `ranges` (start, length), joining those less than a megabyte apart.
    fn fetch(inner: Arc<R>, ranges: &[(u64, u64)]) -> Result<Prefetched<R>, VParquetError> {
        let mut sorted: Vec<(u64, u64)> = ranges
            .iter()
            .filter(|(_, length)| *length > 0)
            .map(|(start, length)| (*start, start + length))
            .collect();
        sorted.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
        for (start, end) in sorted {
            match merged.last_mut() {
                Some((_, last_end)) if start <= *last_end + PREFETCH_COALESCE_BYTES => {
                    *last_end = (*last_end).max(end);
                }
                _ => merged.push((start, end)),
            }
        }
        let mut parts = Vec::with_capacity(merged.len());
        for (start, end) in merged {
            let length = usize::try_from(end - start)
                .map_err(|_| VParquetError::Malformed("column chunk too large".into()))?;
            parts.push((start, inner.get_bytes(start, length)?));
        }
        Ok(Prefetched { inner, parts })
    }

    fn part(&self, start: u64, length: u64) -> Option<bytes::Bytes> {
        self.parts.iter().find_map(|(part_start, bytes)| {
            let offset = start.checked_sub(*part_start)?;
            (offset + length <= bytes.len() as u64)
                .then(|| bytes.slice(offset as usize..(offset + length) as usize))
        })
    }
}

impl<R: ChunkReader> parquet::file::reader::Length for Prefetched<R> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

/// A read from a prefetched range or, outside them, from the file.
enum PrefetchedRead<T> {
    Bytes(bytes::buf::Reader<bytes::Bytes>),
    File(T),
}

impl<T: std::io::Read> std::io::Read for PrefetchedRead<T> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            PrefetchedRead::Bytes(reader) => reader.read(buffer),
            PrefetchedRead::File(reader) => reader.read(buffer),
        }
    }
}

impl<R: ChunkReader> ChunkReader for Prefetched<R> {
    type T = PrefetchedRead<R::T>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        let within = self.parts.iter().find_map(|(part_start, bytes)| {
            let offset = start.checked_sub(*part_start)?;
            (offset < bytes.len() as u64).then(|| bytes.slice(offset as usize..))
        });
        match within {
            Some(rest) => Ok(PrefetchedRead::Bytes(rest.reader())),
            None => Ok(PrefetchedRead::File(self.inner.get_read(start)?)),
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        match self.part(start, length as u64) {
            Some(bytes) => Ok(bytes),
            None => self.inner.get_bytes(start, length),
        }
    }
}

/// Candidate rows whose filter columns are tested before deciding whether testing the rest
/// of the row group pays.
const ROW_TEST_SAMPLE_ROWS: usize = if cfg!(test) { 5 } else { 2048 };

/// Runs of rows: `(first row, row count)`, ascending.
type Runs = Vec<(usize, usize)>;

/// Splits ascending runs after `rows` rows: (the first `rows` rows, the rest).
fn split_runs(runs: &[(usize, usize)], rows: usize) -> (Runs, Runs) {
    let mut first = Vec::new();
    let mut rest = Vec::new();
    let mut left = rows;
    for &(start, count) in runs {
        if left >= count {
            first.push((start, count));
            left -= count;
        } else if left > 0 {
            first.push((start, left));
            rest.push((start + left, count - left));
            left = 0;
        } else {
            rest.push((start, count));
        }
    }
    (first, rest)
}

/// Unselected rows between two runs that are read anyway rather than skipped.
const MAX_GAP_ROWS: usize = 64;

/// Joins runs separated by at most `max_gap` rows.
fn bridge_gaps(runs: &[(usize, usize)], max_gap: usize) -> Vec<(usize, usize)> {
    let mut bridged: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
    for &(start, count) in runs {
        match bridged.last_mut() {
            Some((first, length)) if start - (*first + *length) <= max_gap => {
                *length = start + count - *first;
            }
            _ => bridged.push((start, count)),
        }
    }
    bridged
}

/// A leaf's reader: Parquet's, or one that reads BYTE_ARRAY values as dictionary codes.
/// A few dozen per read, so their sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum LeafReader {
    Values(ColumnReader),
    Codes(CodedReader),
}

impl LeafReader {
    fn empty_column(&self, leaf: usize, entries: usize) -> Result<LeafColumn, VParquetError> {
        match self {
            LeafReader::Values(reader) => empty_column(reader, leaf, entries),
            LeafReader::Codes(reader) => Ok(reader.empty_column(entries)),
        }
    }

    fn read_into(
        &mut self,
        leaf: usize,
        skip: usize,
        count: usize,
        column: &mut LeafColumn,
    ) -> Result<(), VParquetError> {
        match self {
            LeafReader::Values(reader) => read_into(reader, leaf, skip, count, column),
            LeafReader::Codes(reader) => reader.read_into(skip, count, column),
        }
    }
}

/// Reads the rows of `runs` (ascending) from a reader positioned at row `position`, into one
/// column with room made up front for the level entries `entries` estimates for that many
/// rows: `spare`'s buffers (empty) if given and of the reader's type, else new ones.
fn read_runs(
    reader: &mut LeafReader,
    leaf: usize,
    runs: &[(usize, usize)],
    position: &mut usize,
    entries: &dyn Fn(usize) -> usize,
    spare: Option<LeafColumn>,
) -> Result<LeafColumn, VParquetError> {
    if runs.is_empty() {
        return Err(VParquetError::Malformed("no rows to read".to_string()));
    }
    let rows = runs.iter().map(|(_, count)| count).sum();
    let fresh = reader.empty_column(leaf, 0)?;
    let mut column = match spare {
        Some(spare) if spare.values.same_type(&fresh.values) => spare,
        _ => fresh,
    };
    column.reserve(entries(rows));
    for (start, count) in runs {
        let skip = start
            .checked_sub(*position)
            .ok_or_else(|| VParquetError::Malformed("row runs are not ascending".to_string()))?;
        reader.read_into(leaf, skip, *count, &mut column)?;
        *position = start + count;
    }
    finish_levels(&mut column);
    Ok(column)
}

fn value_passes(values: &LeafValues, index: usize, condition: &LeafCondition) -> bool {
    let Some(test) = &condition.test else {
        return true;
    };
    match values {
        LeafValues::Bool(values) => values.get(index).is_some_and(|v| test.boolean(*v)),
        LeafValues::Int32(values) => values
            .get(index)
            .is_some_and(|v| (condition.negative_passes && *v < 0) || test.int(i64::from(*v))),
        LeafValues::Int64(values) => values
            .get(index)
            .is_some_and(|v| (condition.negative_passes && *v < 0) || test.int(*v)),
        LeafValues::Double(values) => values.get(index).is_some_and(|v| test.float(*v)),
        LeafValues::Bytes(values) => values.get(index).is_some_and(|v| test.bytes(v.data())),
        LeafValues::Coded(values) => values.get(index).is_some_and(|v| test.bytes(v)),
    }
}

/// Per row of the row group: does some value of `column` (holding the rows `row_numbers`)
/// pass? Rows not read are false.
fn row_matches(
    column: &LeafColumn,
    max_def: i16,
    condition: &LeafCondition,
    row_numbers: &[usize],
    row_count: usize,
) -> Result<Vec<bool>, VParquetError> {
    let mut bits = vec![false; row_count];
    let mut record: Option<usize> = None;
    let mut value_index = 0usize;
    for (level, def) in column.def_levels.iter().enumerate() {
        let rep = column.rep_levels.get(level).copied().unwrap_or(0);
        if rep == 0 {
            record = Some(record.map_or(0, |r| r + 1));
        }
        if *def == max_def {
            let row = record
                .and_then(|r| row_numbers.get(r))
                .copied()
                .ok_or_else(|| VParquetError::Malformed("column has more rows than read".into()))?;
            if !bits[row] && value_passes(&column.values, value_index, condition) {
                bits[row] = true;
            }
            value_index += 1;
        }
    }
    Ok(bits)
}

/// Whether the chunk's statistics allow a passing value.
fn chunk_may_match(column: &ColumnChunkMetaData, condition: &LeafCondition) -> bool {
    let Some(statistics) = column.statistics() else {
        return true;
    };
    let all_null = statistics
        .null_count_opt()
        .is_some_and(|nulls| nulls as i64 == column.num_values());
    if all_null {
        return false;
    }
    let Some(test) = &condition.test else {
        return true;
    };
    match statistics {
        Statistics::Int64(values) => match (values.min_opt(), values.max_opt()) {
            (Some(min), Some(max)) => int_range_may_match(*min, *max, test, condition),
            _ => true,
        },
        Statistics::Int32(values) => match (values.min_opt(), values.max_opt()) {
            (Some(min), Some(max)) => {
                int_range_may_match(i64::from(*min), i64::from(*max), test, condition)
            }
            _ => true,
        },
        Statistics::Double(values) => match (values.min_opt(), values.max_opt()) {
            (Some(min), Some(max)) => test.float_range(*min, *max),
            _ => true,
        },
        Statistics::ByteArray(_) => {
            match (statistics.min_bytes_opt(), statistics.max_bytes_opt()) {
                (Some(min), Some(max)) => test.bytes_range(min, max),
                _ => true,
            }
        }
        _ => true,
    }
}

fn int_range_may_match(min: i64, max: i64, test: &ValueTest, condition: &LeafCondition) -> bool {
    if condition.negative_passes && (min < 0 || max < 0) {
        return true;
    }
    if min > max {
        return true;
    }
    test.int_range(min, max)
}

/// For a chunk whose data pages are all dictionary-encoded (strings, or integers and doubles
/// under a numeric test): whether some dictionary entry passes. Other chunks may always
/// match.
fn dictionary_may_match(
    row_group: &dyn RowGroupReader,
    condition: &LeafCondition,
) -> Result<bool, VParquetError> {
    let Some(test) = &condition.test else {
        return Ok(true);
    };
    if !matches!(
        test,
        ValueTest::StrIn(_) | ValueTest::StrRegex(_) | ValueTest::Num(..)
    ) {
        return Ok(true);
    }
    let column = row_group.metadata().column(condition.leaf);
    let all_dictionary = column.dictionary_page_offset().is_some()
        && match (
            column.page_encoding_stats_mask(),
            column.page_encoding_stats(),
        ) {
            (Some(mask), _) => {
                mask.is_only(Encoding::RLE_DICTIONARY) || mask.is_only(Encoding::PLAIN_DICTIONARY)
            }
            (None, Some(pages)) => pages.iter().all(|page| {
                page.page_type != parquet::basic::PageType::DATA_PAGE
                    && page.page_type != parquet::basic::PageType::DATA_PAGE_V2
                    || matches!(
                        page.encoding,
                        Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
                    )
            }),
            (None, None) => false,
        };
    if !all_dictionary {
        return plain_values_may_match(row_group, condition, test);
    }
    let mut pages = row_group.get_column_page_reader(condition.leaf)?;
    let Some(Page::DictionaryPage { buf, encoding, .. }) = pages.get_next_page()? else {
        return Ok(true);
    };
    if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
        return Ok(true);
    }
    // PLAIN numbers: fixed-width little-endian values.
    let numbers = |width: usize, passes: &dyn Fn(&[u8]) -> bool| {
        buf.len() % width != 0 || buf.chunks_exact(width).any(passes)
    };
    match column.column_type() {
        parquet::basic::Type::INT64 => {
            return Ok(numbers(8, &|bytes| {
                let value = i64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
                (condition.negative_passes && value < 0) || test.int(value)
            }));
        }
        parquet::basic::Type::INT32 => {
            return Ok(numbers(4, &|bytes| {
                let value = i32::from_le_bytes(bytes.try_into().unwrap_or([0; 4]));
                (condition.negative_passes && value < 0) || test.int(i64::from(value))
            }));
        }
        parquet::basic::Type::DOUBLE => {
            return Ok(numbers(8, &|bytes| {
                test.float(f64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
            }));
        }
        parquet::basic::Type::BYTE_ARRAY => {}
        _ => return Ok(true),
    }
    if matches!(test, ValueTest::Num(..)) {
        return Ok(true);
    }
    // PLAIN byte arrays: a little-endian u32 length, then the bytes.
    let mut rest: &[u8] = &buf;
    while rest.len() >= 4 {
        let length = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(value) = rest.get(4..4 + length) else {
            return Ok(true);
        };
        if test.bytes(value) {
            return Ok(true);
        }
        rest = &rest[4 + length..];
    }
    Ok(false)
}

/// For a numeric test on a chunk of PLAIN-encoded numbers (Tempo writes the generic
/// attributes' `ValueInt` and `ValueDouble` so, without a dictionary): whether some value of
/// its data pages passes. Only the values are looked at, past the levels of each page, and the
/// scan stops at the first value that passes, so a rare number rules a row group out without
/// decoding a level. Any other page or encoding may always match.
fn plain_values_may_match(
    row_group: &dyn RowGroupReader,
    condition: &LeafCondition,
    test: &ValueTest,
) -> Result<bool, VParquetError> {
    if !matches!(test, ValueTest::Num(..)) {
        return Ok(true);
    }
    let column = row_group.metadata().column(condition.leaf);
    let passes: &dyn Fn(&[u8]) -> bool = match column.column_type() {
        parquet::basic::Type::INT64 => &|bytes| {
            let value = i64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
            (condition.negative_passes && value < 0) || test.int(value)
        },
        parquet::basic::Type::INT32 => &|bytes| {
            let value = i32::from_le_bytes(bytes.try_into().unwrap_or([0; 4]));
            (condition.negative_passes && value < 0) || test.int(i64::from(value))
        },
        parquet::basic::Type::DOUBLE => {
            &|bytes| test.float(f64::from_le_bytes(bytes.try_into().unwrap_or([0; 8])))
        }
        _ => return Ok(true),
    };
    let width = if column.column_type() == parquet::basic::Type::INT32 {
        4
    } else {
        8
    };
    let descriptor = column.column_descr();
    let levels = [
        descriptor.max_rep_level() > 0,
        descriptor.max_def_level() > 0,
    ];
    let mut pages = row_group.get_column_page_reader(condition.leaf)?;
    while let Some(page) = pages.get_next_page()? {
        let values: &[u8] = match &page {
            Page::DataPage {
                buf,
                encoding,
                def_level_encoding,
                rep_level_encoding,
                ..
            } => {
                if *encoding != Encoding::PLAIN {
                    return Ok(true);
                }
                // Version 1: each level run is RLE behind its 4-byte length.
                let mut rest: &[u8] = buf;
                for (present, level_encoding) in
                    levels.iter().zip([rep_level_encoding, def_level_encoding])
                {
                    if !present {
                        continue;
                    }
                    if *level_encoding != Encoding::RLE || rest.len() < 4 {
                        return Ok(true);
                    }
                    let length = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let Some(after) = rest.get(4 + length..) else {
                        return Ok(true);
                    };
                    rest = after;
                }
                rest
            }
            Page::DataPageV2 {
                buf,
                encoding,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                if *encoding != Encoding::PLAIN {
                    return Ok(true);
                }
                let levels_length = (*def_levels_byte_len + *rep_levels_byte_len) as usize;
                let Some(values) = buf.get(levels_length..) else {
                    return Ok(true);
                };
                values
            }
            Page::DictionaryPage { .. } => return Ok(true),
        };
        if !values.len().is_multiple_of(width) || values.chunks_exact(width).any(passes) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Rows of pages whose column index allows a passing value, and how many pages it rules
/// out. Without a page index every row is a candidate.
fn page_candidates(
    column_index: Option<&ColumnIndexMetaData>,
    locations: Option<&Vec<parquet::file::page_index::offset_index::PageLocation>>,
    condition: &LeafCondition,
    row_count: usize,
) -> (Vec<bool>, u64) {
    let (Some(column_index), Some(locations)) = (column_index, locations) else {
        return (vec![true; row_count], 0);
    };
    let page_count = locations.len();
    let mut bits = vec![true; row_count];
    let mut skipped = 0;
    for page in 0..page_count {
        let may = page_may_match(column_index, page, condition);
        if may {
            continue;
        }
        skipped += 1;
        let start = usize::try_from(locations[page].first_row_index)
            .unwrap_or(0)
            .min(row_count);
        let end = locations
            .get(page + 1)
            .and_then(|next| usize::try_from(next.first_row_index).ok())
            .unwrap_or(row_count)
            .clamp(start, row_count);
        for bit in &mut bits[start..end] {
            *bit = false;
        }
    }
    (bits, skipped)
}

fn page_may_match(index: &ColumnIndexMetaData, page: usize, condition: &LeafCondition) -> bool {
    // The parquet crate's writer flags a page of a repeated column as all-null when its row
    // count equals its null count, even with values in it; only a definition level histogram
    // without values at the highest level proves a page empty.
    let histogram = match index {
        ColumnIndexMetaData::INT64(index) => index.definition_level_histogram(page),
        ColumnIndexMetaData::INT32(index) => index.definition_level_histogram(page),
        ColumnIndexMetaData::DOUBLE(index) => index.definition_level_histogram(page),
        ColumnIndexMetaData::BOOLEAN(index) => index.definition_level_histogram(page),
        ColumnIndexMetaData::BYTE_ARRAY(index) => index.definition_level_histogram(page),
        _ => None,
    };
    if histogram.is_some_and(|counts| counts.last() == Some(&0)) {
        return false;
    }
    let Some(test) = &condition.test else {
        return true;
    };
    match index {
        ColumnIndexMetaData::INT64(index) => match (index.min_value(page), index.max_value(page)) {
            (Some(min), Some(max)) => int_range_may_match(*min, *max, test, condition),
            _ => true,
        },
        ColumnIndexMetaData::INT32(index) => match (index.min_value(page), index.max_value(page)) {
            (Some(min), Some(max)) => {
                int_range_may_match(i64::from(*min), i64::from(*max), test, condition)
            }
            _ => true,
        },
        ColumnIndexMetaData::DOUBLE(index) => {
            match (index.min_value(page), index.max_value(page)) {
                (Some(min), Some(max)) => test.float_range(*min, *max),
                _ => true,
            }
        }
        ColumnIndexMetaData::BYTE_ARRAY(index) => {
            match (index.min_value(page), index.max_value(page)) {
                (Some(min), Some(max)) => test.bytes_range(min, max),
                _ => true,
            }
        }
        _ => true,
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod golden_tests;
