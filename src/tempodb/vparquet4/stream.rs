//! Streaming `data.parquet`: [`TraceBatches`] reads a block's traces a batch of rows at a time
//! and [`BlockEncoder`] writes traces one by one, cutting row groups as it goes, into any
//! `Write` sink. Neither holds more than one row group's columns (the encoder) or one batch of
//! decoded traces (the reader), so a compaction's memory does not grow with its blocks.

use std::io::Write;
use std::sync::Arc;

use parquet::column::reader::ColumnReader;
use parquet::file::reader::{ChunkReader, FileReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::SchemaDescriptor;

use super::dremel::{self, Assembler, LeafColumn, SchemaNode};
use super::row::{self, DedicatedMapping};
use super::{
    check_file, entries_estimate, guard_against_panics, read_from, schema, write_row_group,
    writer_properties, VParquetError, WriterOptions, READ_BATCH_ROWS,
};
use crate::model::{Trace, TraceId};
use crate::tempodb::meta::DedicatedColumn;

/// A block's traces in stored order (ascending ID), as batches of at most [`READ_BATCH_ROWS`].
pub struct TraceBatches<R: ChunkReader + 'static> {
    file: SerializedFileReader<R>,
    mapping: DedicatedMapping,
    root: SchemaNode,
    /// The row group being read, its rows and the rows already read.
    row_group: usize,
    row_group_rows: usize,
    rows_read: usize,
    /// One reader per leaf of the current row group; empty before the first and after the
    /// last.
    readers: Vec<ColumnReader>,
    failed: bool,
}

impl<R: ChunkReader + 'static> TraceBatches<R> {
    /// Opens `reader` as a vParquet4 file; checks its schema and column ranges.
    pub fn new(reader: R, dedicated: &[DedicatedColumn]) -> Result<Self, VParquetError> {
        guard_against_panics(|| {
            let file = SerializedFileReader::new(reader)?;
            check_file(&file)?;
            Ok(TraceBatches {
                file,
                mapping: DedicatedMapping::new(dedicated),
                root: SchemaNode::from_message(&schema()),
                row_group: 0,
                row_group_rows: 0,
                rows_read: 0,
                readers: Vec::new(),
                failed: false,
            })
        })
    }

    /// The next batch, or `None` after the last row.
    fn next_batch(&mut self) -> Result<Option<Vec<(TraceId, Trace)>>, VParquetError> {
        while self.rows_read == self.row_group_rows {
            if !self.readers.is_empty() {
                self.readers.clear();
                self.row_group += 1;
            }
            if self.row_group >= self.file.num_row_groups() {
                return Ok(None);
            }
            let row_group = self.file.get_row_group(self.row_group)?;
            self.row_group_rows = usize::try_from(row_group.metadata().num_rows())
                .map_err(|_| VParquetError::Malformed("negative row count".into()))?;
            self.rows_read = 0;
            self.readers = (0..schema::LEAF_COUNT)
                .map(|leaf| row_group.get_column_reader(leaf))
                .collect::<Result<Vec<_>, _>>()?;
        }
        let batch = (self.row_group_rows - self.rows_read).min(READ_BATCH_ROWS);
        let metadata = self.file.metadata().row_group(self.row_group);
        let columns = self
            .readers
            .iter_mut()
            .enumerate()
            .map(|(leaf, reader)| {
                let entries = entries_estimate(metadata, leaf, batch);
                read_from(reader, leaf, 0, batch, entries)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut assembler = Assembler::new(&self.root, &columns);
        let mut traces = Vec::with_capacity(batch);
        for _ in 0..batch {
            let row = assembler.next_record()?;
            traces.push(row::row_to_trace(&row, &self.mapping)?);
        }
        if !assembler.is_done() {
            return Err(VParquetError::Malformed(format!(
                "row group {} has column data beyond its rows",
                self.row_group
            )));
        }
        self.rows_read += batch;
        Ok(Some(traces))
    }
}

impl<R: ChunkReader + 'static> Iterator for TraceBatches<R> {
    type Item = Result<Vec<(TraceId, Trace)>, VParquetError>;

    /// A damaged file ends the iteration after its error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let batch = guard_against_panics(|| self.next_batch());
        if batch.is_err() {
            self.failed = true;
        }
        batch.transpose()
    }
}

/// What a finished `data.parquet` holds, for `meta.json` and the `index` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFigures {
    /// Parquet footer length (`footerSize`).
    pub footer_size: u32,
    /// Number of row groups (`totalRecords`).
    pub row_group_count: u32,
    /// Last trace ID of each row group, for the `index` object.
    pub last_trace_id_per_row_group: Vec<TraceId>,
    /// Smallest trace start over all traces (Unix nanoseconds); 0 without traces.
    pub start_unix_nano: u64,
    /// Largest trace end over all traces (Unix nanoseconds).
    pub end_unix_nano: u64,
    /// Number of rows (`totalObjects`).
    pub trace_count: usize,
    /// Bytes written to the sink: the file's size.
    pub size: u64,
}

/// Writes `data.parquet` trace by trace into `W`. Traces must come in ascending ID order with
/// unique IDs. CPU-heavy: callers run it off the async runtime.
pub struct BlockEncoder<W: Write + Send> {
    writer: SerializedFileWriter<Counted<W>>,
    root: SchemaNode,
    descriptor: Arc<SchemaDescriptor>,
    mapping: DedicatedMapping,
    row_group_size_bytes: usize,
    /// The row group being gathered, and its size in Tempo's estimate units.
    columns: Vec<LeafColumn>,
    estimate: usize,
    rows_in_group: usize,
    previous: Option<TraceId>,
    figures: EncodedFigures,
}

impl<W: Write + Send> BlockEncoder<W> {
    /// Starts a file in `sink` with Tempo's layout and `dedicated` columns.
    pub fn new(
        sink: W,
        dedicated: &[DedicatedColumn],
        options: &WriterOptions,
    ) -> Result<Self, VParquetError> {
        let root = SchemaNode::from_message(&schema());
        let descriptor = schema::schema_descriptor();
        let properties = Arc::new(writer_properties(&descriptor, options));
        let counted = Counted {
            inner: sink,
            written: 0,
            tail: Vec::with_capacity(8),
        };
        let writer = SerializedFileWriter::new(counted, schema(), properties)?;
        let columns = dremel::empty_columns(&root)?;
        Ok(BlockEncoder {
            writer,
            root,
            descriptor,
            mapping: DedicatedMapping::new(dedicated),
            row_group_size_bytes: options.row_group_size_bytes,
            columns,
            estimate: 0,
            rows_in_group: 0,
            previous: None,
            figures: EncodedFigures {
                footer_size: 0,
                row_group_count: 0,
                last_trace_id_per_row_group: Vec::new(),
                start_unix_nano: u64::MAX,
                end_unix_nano: 0,
                trace_count: 0,
                size: 0,
            },
        })
    }

    /// Adds one trace; a row group is written once it passes `row_group_size_bytes`.
    pub fn push(&mut self, trace_id: TraceId, trace: Trace) -> Result<(), VParquetError> {
        let row = row::trace_to_row_owned(&trace_id, trace, &self.mapping);
        self.push_row(trace_id, row)
    }

    /// Adds one trace without taking it.
    pub(crate) fn push_ref(
        &mut self,
        trace_id: TraceId,
        trace: &Trace,
    ) -> Result<(), VParquetError> {
        let row = row::trace_to_row(&trace_id, trace, &self.mapping);
        self.push_row(trace_id, row)
    }

    fn push_row(&mut self, trace_id: TraceId, row: row::Row) -> Result<(), VParquetError> {
        if let Some(previous) = self.previous {
            if previous >= trace_id {
                return Err(VParquetError::UnsortedTraces {
                    previous,
                    next: trace_id,
                });
            }
        }
        self.previous = Some(trace_id);
        let figures = &mut self.figures;
        figures.start_unix_nano = figures.start_unix_nano.min(row.start_unix_nano);
        figures.end_unix_nano = figures.end_unix_nano.max(row.end_unix_nano);
        figures.trace_count += 1;
        dremel::shred_record(&self.root, row.value, &mut self.columns)
            .map_err(|error| VParquetError::RowShape(error.0))?;
        self.estimate = self.estimate.saturating_add(row.estimated_size);
        self.rows_in_group += 1;
        if self.estimate > self.row_group_size_bytes {
            self.cut_row_group(trace_id)?;
        }
        Ok(())
    }

    fn cut_row_group(&mut self, last_id: TraceId) -> Result<(), VParquetError> {
        write_row_group(&mut self.writer, &self.descriptor, &self.columns)?;
        self.figures.last_trace_id_per_row_group.push(last_id);
        self.figures.row_group_count += 1;
        for column in &mut self.columns {
            column.clear();
        }
        self.estimate = 0;
        self.rows_in_group = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; hands back the sink and the figures.
    pub fn finish(mut self) -> Result<(W, EncodedFigures), VParquetError> {
        if self.rows_in_group > 0 {
            let last_id = self.previous.ok_or_else(|| {
                VParquetError::RowShape("a row group without a last trace".into())
            })?;
            self.cut_row_group(last_id)?;
        }
        let counted = self.writer.into_inner()?;
        let mut figures = self.figures;
        if figures.trace_count == 0 {
            figures.start_unix_nano = 0;
        }
        figures.size = counted.written;
        figures.footer_size = footer_size(&counted.tail)?;
        Ok((counted.inner, figures))
    }
}

/// The footer length from a file's last 8 bytes (`<len u32 LE>PAR1`).
fn footer_size(tail: &[u8]) -> Result<u32, VParquetError> {
    let [a, b, c, d, ..] = tail else {
        return Err(VParquetError::Malformed(
            "file shorter than a parquet footer".into(),
        ));
    };
    Ok(u32::from_le_bytes([*a, *b, *c, *d]))
}

/// A sink that counts what passes and keeps the last 8 bytes (the footer length and magic).
struct Counted<W: Write> {
    inner: W,
    written: u64,
    tail: Vec<u8>,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buffer)?;
        let accepted = &buffer[..written];
        self.written += written as u64;
        self.tail
            .extend_from_slice(&accepted[accepted.len().saturating_sub(8)..]);
        let excess = self.tail.len().saturating_sub(8);
        self.tail.drain(..excess);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
