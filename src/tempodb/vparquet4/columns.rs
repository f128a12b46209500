//! Span fields read straight from their columns ([`SpanColumns`]), for queries that need a
//! few intrinsics per span and nothing that relates spans: the filtered read's decode phase
//! reads these leaves for the passing rows and walks their repetition and definition levels
//! to place every value at its span, its resource and its trace, assembling nothing.

use std::sync::OnceLock;

use parquet::file::metadata::RowGroupMetaData;

use super::dremel::{LeafColumn, LeafValues};
use super::VParquetError;
use crate::model::TraceId;
use crate::traceql::columns::{SpanColumns, SpanField, SpanFields};

const SPAN: &str = "rs.list.element.ss.list.element.Spans.list.element.";

/// Definition level of a present span in a required span-level leaf (rs, ss and Spans lists).
const SPAN_DEFINED: i16 = 3;
/// Definition level from which a span-level entry belongs to a present resource.
const RESOURCE_DEFINED: i16 = 1;

/// Leaf positions of the columns [`SpanColumns`] reads.
#[derive(Debug)]
struct Leaves {
    trace_id: usize,
    start: usize,
    duration: usize,
    name: usize,
    kind: usize,
    status: usize,
    status_message: usize,
    span_id: usize,
    service_name: usize,
}

fn leaves() -> &'static Leaves {
    static LEAVES: OnceLock<Leaves> = OnceLock::new();
    LEAVES.get_or_init(|| {
        let descriptor = super::schema::schema_descriptor();
        let find = |path: &str| {
            descriptor
                .columns()
                .iter()
                .position(|column| column.path().string() == path)
                .unwrap_or_else(|| panic!("vParquet4 schema lacks {path}"))
        };
        Leaves {
            trace_id: find("TraceID"),
            start: find(&format!("{SPAN}StartTimeUnixNano")),
            duration: find(&format!("{SPAN}DurationNano")),
            name: find(&format!("{SPAN}Name")),
            kind: find(&format!("{SPAN}Kind")),
            status: find(&format!("{SPAN}StatusCode")),
            status_message: find(&format!("{SPAN}StatusMessage")),
            span_id: find(&format!("{SPAN}SpanID")),
            service_name: find("rs.list.element.Resource.ServiceName"),
        }
    })
}

/// Which leaves reading `fields` takes (the trace ID and span start always).
pub(super) fn leaves_read(fields: &SpanFields) -> Vec<usize> {
    let leaves = leaves();
    let mut read = vec![leaves.trace_id, leaves.start];
    for field in fields {
        read.push(match field {
            SpanField::Duration => leaves.duration,
            SpanField::Name => leaves.name,
            SpanField::Status => leaves.status,
            SpanField::StatusMessage => leaves.status_message,
            SpanField::Kind => leaves.kind,
            SpanField::SpanId => leaves.span_id,
            SpanField::ServiceName => leaves.service_name,
        });
    }
    read
}

/// Whether `fields` read from this row group's columns alone are what the spans hold. The
/// service name is the one that can live elsewhere: a resource whose `service.name` is not
/// a non-empty string keeps it among the generic attributes and its `ServiceName` is "", so a
/// row group whose minimum `ServiceName` is "" (or unknown) is decoded as traces instead.
pub(super) fn columns_suffice(row_group: &RowGroupMetaData, fields: &SpanFields) -> bool {
    if !fields.contains(&SpanField::ServiceName) {
        return true;
    }
    let column = row_group.column(leaves().service_name);
    column
        .statistics()
        .and_then(|statistics| statistics.min_bytes_opt())
        .is_some_and(|min| !min.is_empty())
}

fn malformed(what: impl Into<String>) -> VParquetError {
    VParquetError::Malformed(what.into())
}

fn int64s<'a>(column: &'a LeafColumn, what: &str) -> Result<&'a [i64], VParquetError> {
    match &column.values {
        LeafValues::Int64(values) => Ok(values),
        _ => Err(malformed(format!("{what} is not an INT64 column"))),
    }
}

fn byte_arrays<'a>(
    column: &'a LeafColumn,
    what: &str,
) -> Result<&'a [parquet::data_type::ByteArray], VParquetError> {
    match &column.values {
        LeafValues::Bytes(values) => Ok(values),
        _ => Err(malformed(format!("{what} is not a BYTE_ARRAY column"))),
    }
}

fn text(value: &parquet::data_type::ByteArray, what: &str) -> Result<String, VParquetError> {
    String::from_utf8(value.data().to_vec()).map_err(|_| malformed(format!("{what} is not UTF-8")))
}

/// Builds the spans of the rows `rows` (row numbers, ascending, as read) of which `keep`
/// says which to return, from the leaves read for them (`columns[leaf]`, unread leaves
/// empty).
pub(super) fn span_columns(
    fields: &SpanFields,
    columns: &[LeafColumn],
    rows: &[usize],
    keep: &[bool],
) -> Result<SpanColumns, VParquetError> {
    let leaves = leaves();
    let trace_ids = byte_arrays(&columns[leaves.trace_id], "TraceID")?;
    if trace_ids.len() != rows.len() {
        return Err(malformed(format!(
            "TraceID has {} values for {} rows",
            trace_ids.len(),
            rows.len()
        )));
    }
    let start_column = &columns[leaves.start];
    let starts = int64s(start_column, "StartTimeUnixNano")?;
    let spans_defined = start_column
        .def_levels
        .iter()
        .filter(|level| **level == SPAN_DEFINED)
        .count();
    if spans_defined != starts.len() {
        return Err(malformed(
            "StartTimeUnixNano levels disagree with its values",
        ));
    }
    let wants = |field| fields.contains(&field);
    // Every other span-level leaf is REQUIRED too: one value per span, in the same order.
    let span_values = |leaf: usize, what: &str| -> Result<(), VParquetError> {
        let count = match &columns[leaf].values {
            LeafValues::Int64(values) => values.len(),
            LeafValues::Bytes(values) => values.len(),
            _ => return Err(malformed(format!("{what} has an unexpected type"))),
        };
        if count != starts.len() {
            return Err(malformed(format!(
                "{what} has {count} values for {} spans",
                starts.len()
            )));
        }
        Ok(())
    };
    let durations = if wants(SpanField::Duration) {
        span_values(leaves.duration, "DurationNano")?;
        int64s(&columns[leaves.duration], "DurationNano")?
    } else {
        &[]
    };
    let names = if wants(SpanField::Name) {
        span_values(leaves.name, "Name")?;
        byte_arrays(&columns[leaves.name], "Name")?
    } else {
        &[]
    };
    let kinds = if wants(SpanField::Kind) {
        span_values(leaves.kind, "Kind")?;
        int64s(&columns[leaves.kind], "Kind")?
    } else {
        &[]
    };
    let statuses = if wants(SpanField::Status) {
        span_values(leaves.status, "StatusCode")?;
        int64s(&columns[leaves.status], "StatusCode")?
    } else {
        &[]
    };
    let messages = if wants(SpanField::StatusMessage) {
        span_values(leaves.status_message, "StatusMessage")?;
        byte_arrays(&columns[leaves.status_message], "StatusMessage")?
    } else {
        &[]
    };
    let span_ids = if wants(SpanField::SpanId) {
        span_values(leaves.span_id, "SpanID")?;
        byte_arrays(&columns[leaves.span_id], "SpanID")?
    } else {
        &[]
    };

    let mut out = SpanColumns::default();
    if wants(SpanField::ServiceName) {
        // One REQUIRED value per resource, in the order the span walk below meets them.
        for value in byte_arrays(&columns[leaves.service_name], "ServiceName")? {
            out.service_name.push(text(value, "ServiceName")?);
        }
    }
    let mut row_position: Option<usize> = None;
    let mut resource: Option<usize> = None;
    let mut span = 0usize;
    let mut keeping = false;
    for (&repetition, &definition) in start_column.rep_levels.iter().zip(&start_column.def_levels) {
        if repetition == 0 {
            let position = row_position.map_or(0, |p| p + 1);
            row_position = Some(position);
            let row = *rows
                .get(position)
                .ok_or_else(|| malformed("span levels run past the rows read"))?;
            keeping = keep.get(row).copied().unwrap_or(false);
            if keeping {
                let id = trace_ids[position].data();
                let id: [u8; 16] = id
                    .try_into()
                    .map_err(|_| malformed(format!("trace ID of {} bytes", id.len())))?;
                out.trace_ids.push(TraceId(id));
                out.trace_starts.push(out.start.len());
            }
        }
        if repetition <= 1 && definition >= RESOURCE_DEFINED {
            resource = Some(resource.map_or(0, |r| r + 1));
        }
        if definition != SPAN_DEFINED {
            continue;
        }
        let at = span;
        span += 1;
        if !keeping {
            continue;
        }
        out.start.push(starts[at] as u64);
        if let Some(duration) = durations.get(at) {
            out.duration.push(*duration as u64);
        }
        if let Some(name) = names.get(at) {
            out.name.push(text(name, "Name")?);
        }
        if let Some(kind) = kinds.get(at) {
            out.kind.push(*kind);
        }
        if let Some(status) = statuses.get(at) {
            out.status.push(*status);
        }
        if let Some(message) = messages.get(at) {
            out.status_message.push(text(message, "StatusMessage")?);
        }
        if let Some(id) = span_ids.get(at) {
            out.span_id.push(id.data().to_vec());
        }
        if wants(SpanField::ServiceName) {
            let index = resource.ok_or_else(|| malformed("a span outside any resource"))?;
            if index >= out.service_name.len() {
                return Err(malformed(
                    "more resources in the spans than ServiceName values",
                ));
            }
            out.resource_of_span.push(index);
        }
    }
    if row_position.map_or(0, |p| p + 1) != rows.len() {
        return Err(malformed("span levels end before the rows read"));
    }
    out.trace_starts.push(out.start.len());
    Ok(out)
}
