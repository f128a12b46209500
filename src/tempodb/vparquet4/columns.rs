//! Span fields read straight from their columns ([`SpanColumns`]), for queries that need a
//! few intrinsics per span and nothing that relates spans: the filtered read's decode phase
//! reads these leaves for the passing rows and walks their repetition and definition levels
//! to place every value at its span, its resource and its trace, assembling nothing.

use std::sync::OnceLock;

use parquet::file::metadata::RowGroupMetaData;

use super::dremel::{LeafColumn, LeafValues};
use super::row::DedicatedMapping;
use super::VParquetError;
use crate::model::TraceId;
use crate::traceql::columns::{Coded, CodedBuilder, SpanColumns, SpanField, SpanFields, NIL_CODE};

const SPAN: &str = "rs.list.element.ss.list.element.Spans.list.element.";

/// Definition level of a present span in a required span-level leaf (rs, ss and Spans lists).
const SPAN_DEFINED: i16 = 3;
/// Definition level from which a span-level entry belongs to a present resource.
const RESOURCE_DEFINED: i16 = 1;
/// Definition level of a present element of a span's generic attribute list.
const ATTRIBUTE_DEFINED: i16 = 4;
/// Definition level of a present value in one of an attribute's value lists.
const ATTRIBUTE_VALUE_DEFINED: i16 = 5;
/// Repetition level of a second value in an attribute's value list (an array).
const ATTRIBUTE_VALUE_REPEATED: i16 = 5;
/// Definition level of a present value in an optional span-level column (`HttpMethod`,
/// `DedicatedAttributes.StringNN`, …).
const SPAN_OPTIONAL_DEFINED: i16 = 4;

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
    attribute: AttributeLeaves,
    http_method: usize,
    http_url: usize,
    http_status_code: usize,
    /// `DedicatedAttributes.String01..String10` of spans.
    dedicated: Vec<usize>,
}

/// The leaves of a span's generic attribute list.
#[derive(Debug)]
struct AttributeLeaves {
    key: usize,
    is_array: usize,
    strings: usize,
    ints: usize,
    doubles: usize,
    bools: usize,
    unsupported: usize,
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
            attribute: AttributeLeaves {
                key: find(&format!("{SPAN}Attrs.list.element.Key")),
                is_array: find(&format!("{SPAN}Attrs.list.element.IsArray")),
                strings: find(&format!("{SPAN}Attrs.list.element.Value.list.element")),
                ints: find(&format!("{SPAN}Attrs.list.element.ValueInt.list.element")),
                doubles: find(&format!(
                    "{SPAN}Attrs.list.element.ValueDouble.list.element"
                )),
                bools: find(&format!("{SPAN}Attrs.list.element.ValueBool.list.element")),
                unsupported: find(&format!("{SPAN}Attrs.list.element.ValueUnsupported")),
            },
            http_method: find(&format!("{SPAN}HttpMethod")),
            http_url: find(&format!("{SPAN}HttpUrl")),
            http_status_code: find(&format!("{SPAN}HttpStatusCode")),
            dedicated: (1..=10)
                .map(|slot| find(&format!("{SPAN}DedicatedAttributes.String{slot:02}")))
                .collect(),
        }
    })
}

/// The span-level column of its own that holds attribute `name` in this block, if any (its
/// values there are strings, or integers for `http.status_code`). Values of other types stay
/// in the generic list.
fn own_column(name: &str, mapping: &DedicatedMapping) -> Option<usize> {
    let leaves = leaves();
    match name {
        "http.method" => Some(leaves.http_method),
        "http.url" => Some(leaves.http_url),
        "http.status_code" => Some(leaves.http_status_code),
        _ => mapping
            .span
            .iter()
            .position(|dedicated| dedicated == name)
            .and_then(|slot| leaves.dedicated.get(slot).copied()),
    }
}

/// [`own_column`] when it holds strings (every one but `HttpStatusCode`'s).
fn own_string_column(name: &str, mapping: &DedicatedMapping) -> Option<usize> {
    own_column(name, mapping).filter(|leaf| *leaf != leaves().http_status_code)
}

/// Whether the span attributes of `fields` are all read for their strings only: then the
/// integer, float and boolean value lists are neither read nor walked.
fn strings_only(fields: &SpanFields) -> bool {
    !fields
        .iter()
        .any(|field| matches!(field, SpanField::SpanAttribute(_)))
}

/// A span whose first attribute entry of a name holds a value that is not a string, when only
/// strings are read: nil, but no later entry of the name replaces it.
const TAKEN_NOT_STRING: u32 = u32::MAX;

/// Which leaves reading `fields` takes (the trace ID and span start always).
pub(super) fn leaves_read(fields: &SpanFields, mapping: &DedicatedMapping) -> Vec<usize> {
    let leaves = leaves();
    let mut read = vec![leaves.trace_id, leaves.start];
    let strings_only = strings_only(fields);
    for field in fields {
        match field {
            SpanField::Duration => read.push(leaves.duration),
            SpanField::Name => read.push(leaves.name),
            SpanField::Status => read.push(leaves.status),
            SpanField::StatusMessage => read.push(leaves.status_message),
            SpanField::Kind => read.push(leaves.kind),
            SpanField::SpanId => read.push(leaves.span_id),
            SpanField::ServiceName => read.push(leaves.service_name),
            SpanField::SpanAttribute(name) => {
                let attribute = &leaves.attribute;
                read.extend([
                    attribute.key,
                    attribute.strings,
                    attribute.ints,
                    attribute.doubles,
                    attribute.bools,
                ]);
                read.extend(own_column(name, mapping));
            }
            // Beside an attribute read whole, the lists are walked whole anyway.
            SpanField::SpanAttributeStrings(name) if !strings_only => {
                let attribute = &leaves.attribute;
                read.extend([
                    attribute.key,
                    attribute.strings,
                    attribute.ints,
                    attribute.doubles,
                    attribute.bools,
                ]);
                read.extend(own_column(name, mapping));
            }
            SpanField::SpanAttributeStrings(name) => {
                read.extend([leaves.attribute.key, leaves.attribute.strings]);
                read.extend(own_string_column(name, mapping));
            }
        }
    }
    read.sort_unstable();
    read.dedup();
    read
}

/// Whether `fields` read from this row group's columns alone are what the spans hold. The
/// service name is the one that can live elsewhere: a resource whose `service.name` is not
/// a non-empty string keeps it among the generic attributes and its `ServiceName` is "", so a
/// row group whose minimum `ServiceName` is "" (or unknown) is decoded as traces instead.
///
/// Span attributes read from columns are scalars: a row group whose statistics do not show
/// that no attribute is an array (`IsArray` never true) and none keeps its value as JSON
/// (`ValueUnsupported` always null) is decoded as traces too.
pub(super) fn columns_suffice(row_group: &RowGroupMetaData, fields: &SpanFields) -> bool {
    let leaves = leaves();
    if fields.contains(&SpanField::ServiceName) {
        let named = row_group
            .column(leaves.service_name)
            .statistics()
            .and_then(|statistics| statistics.min_bytes_opt())
            .is_some_and(|min| !min.is_empty());
        if !named {
            return false;
        }
    }
    if fields.iter().any(|field| field.span_attribute().is_some()) {
        let no_arrays = match row_group.column(leaves.attribute.is_array).statistics() {
            Some(parquet::file::statistics::Statistics::Boolean(statistics)) => {
                statistics.max_opt() == Some(&false)
                    || statistics.null_count_opt().is_some_and(|nulls| {
                        nulls == row_group.column(leaves.attribute.is_array).num_values() as u64
                    })
            }
            _ => false,
        };
        let unsupported = row_group.column(leaves.attribute.unsupported);
        let no_json = unsupported
            .statistics()
            .and_then(|statistics| statistics.null_count_opt())
            .is_some_and(|nulls| nulls == unsupported.num_values() as u64);
        if !(no_arrays && no_json) {
            return false;
        }
    }
    true
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

/// Whether the span columns take `leaf` read as dictionary codes (see `coded`): the span
/// attributes' keys and string values, the largest byte columns a span read goes through.
pub(super) fn reads_coded(leaf: usize) -> bool {
    let attribute = &leaves().attribute;
    leaf == attribute.key || leaf == attribute.strings
}

/// A BYTE_ARRAY leaf's values, as Parquet's reader gives them or as codes.
enum Texts<'a> {
    Arrays(&'a [parquet::data_type::ByteArray]),
    Coded(&'a super::coded::CodedBytes),
}

impl Texts<'_> {
    fn get(&self, index: usize) -> Option<&[u8]> {
        match self {
            Texts::Arrays(values) => values.get(index).map(|value| value.data()),
            Texts::Coded(values) => values.get(index),
        }
    }

    /// The value's dictionary entry, when it is read as one.
    fn dictionary_code(&self, index: usize) -> Option<usize> {
        match self {
            Texts::Arrays(_) => None,
            Texts::Coded(values) => values.dictionary_code(index),
        }
    }

    /// Entries of the dictionary its codes point into (0 when not read as codes).
    fn dictionary_len(&self) -> usize {
        match self {
            Texts::Arrays(_) => 0,
            Texts::Coded(values) => values.dictionary.len(),
        }
    }
}

fn texts<'a>(column: &'a LeafColumn, what: &str) -> Result<Texts<'a>, VParquetError> {
    match &column.values {
        LeafValues::Bytes(values) => Ok(Texts::Arrays(values)),
        LeafValues::Coded(values) => Ok(Texts::Coded(values)),
        _ => Err(malformed(format!("{what} is not a BYTE_ARRAY column"))),
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

/// Builds the spans of the rows `rows` (row numbers, ascending, as read) of which `keep`
/// says which to return, from the leaves read for them (`columns[leaf]`, unread leaves
/// empty).
pub(super) fn span_columns(
    fields: &SpanFields,
    mapping: &DedicatedMapping,
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

    let attribute_names: Vec<&str> = fields
        .iter()
        .filter_map(SpanField::span_attribute)
        .collect();
    let mut attribute_values = span_attributes(
        &attribute_names,
        strings_only(fields),
        mapping,
        columns,
        starts.len(),
    )?;
    let mut attribute_codes: Vec<Vec<u32>> = vec![Vec::new(); attribute_names.len()];

    let mut out = SpanColumns::new();
    let services_wanted = wants(SpanField::ServiceName);
    let mut name_codes = CodedBuilder::default();
    let mut message_codes = CodedBuilder::default();
    if wants(SpanField::ServiceName) {
        // One REQUIRED value per resource, in the order the span walk below meets them.
        let mut services = CodedBuilder::default();
        for value in byte_arrays(&columns[leaves.service_name], "ServiceName")? {
            services
                .push_str(value.data())
                .map_err(|_| malformed("ServiceName is not UTF-8"))?;
        }
        out.service_name = services.finish();
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
            name_codes
                .push_str(name.data())
                .map_err(|_| malformed("Name is not UTF-8"))?;
        }
        if let Some(kind) = kinds.get(at) {
            out.kind.push(*kind);
        }
        if let Some(status) = statuses.get(at) {
            out.status.push(*status);
        }
        if let Some(message) = messages.get(at) {
            message_codes
                .push_str(message.data())
                .map_err(|_| malformed("StatusMessage is not UTF-8"))?;
        }
        if let Some(id) = span_ids.get(at) {
            out.span_id_bytes.extend_from_slice(id.data());
            out.span_id_ends.push(out.span_id_bytes.len());
        }
        for (codes, read) in attribute_codes.iter_mut().zip(&attribute_values) {
            codes.push(read.codes[at]);
        }
        if services_wanted {
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
    out.name = name_codes.finish();
    out.status_message = message_codes.finish();
    out.span_attributes = attribute_names
        .iter()
        .zip(attribute_values.iter_mut())
        .zip(attribute_codes)
        .map(|((name, read), codes)| {
            let values = std::mem::take(&mut read.values);
            (name.to_string(), Coded { values, codes })
        })
        .collect();
    Ok(out)
}

/// Walks one of an attribute's value lists (`Value`, `ValueInt`, …) in step with the `Key`
/// column: every present attribute has one entry in each list, holding a value or not.
struct ValueSlots<'a> {
    column: &'a LeafColumn,
    entry: usize,
    value: usize,
}

impl<'a> ValueSlots<'a> {
    fn new(column: &'a LeafColumn) -> ValueSlots<'a> {
        ValueSlots {
            column,
            entry: 0,
            value: 0,
        }
    }

    /// The next attribute's first value (its index among the column's values), if it has one.
    fn next_attribute(&mut self) -> Result<Option<usize>, VParquetError> {
        let (rep, def) = (&self.column.rep_levels, &self.column.def_levels);
        // Entries of spans (or resources, scopes) without attributes hold none.
        while def.get(self.entry).is_some_and(|d| *d < ATTRIBUTE_DEFINED) {
            self.entry += 1;
        }
        let Some(&level) = def.get(self.entry) else {
            return Err(malformed("an attribute value list ends before the keys"));
        };
        let first = (level == ATTRIBUTE_VALUE_DEFINED).then_some(self.value);
        if first.is_some() {
            self.value += 1;
        }
        self.entry += 1;
        // Further values of an array belong to the same attribute.
        while rep
            .get(self.entry)
            .is_some_and(|r| *r == ATTRIBUTE_VALUE_REPEATED)
        {
            if def[self.entry] == ATTRIBUTE_VALUE_DEFINED {
                self.value += 1;
            }
            self.entry += 1;
        }
        Ok(first)
    }
}

/// For each of `names`, every span's value of that span attribute (nil where the span has
/// none), in the order of the span-level columns' spans. A span's attributes read as the
/// block's rows do: the generic list first, then the columns of their own (`HttpMethod`,
/// `HttpUrl`, `HttpStatusCode`, the block's dedicated columns); the first present value of a
/// name wins. With `strings_only`, only the string values are read (the other value lists
/// were not), and other values read as nil.
fn span_attributes(
    names: &[&str],
    strings_only: bool,
    mapping: &DedicatedMapping,
    columns: &[LeafColumn],
    span_count: usize,
) -> Result<Vec<Coded>, VParquetError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let leaves = &leaves().attribute;
    let mut builders: Vec<CodedBuilder> = names.iter().map(|_| CodedBuilder::default()).collect();
    let mut codes = vec![vec![NIL_CODE; span_count]; names.len()];

    let key_column = &columns[leaves.key];
    let keys = texts(key_column, "Attrs Key")?;
    let strings = texts(&columns[leaves.strings], "Attrs Value")?;
    // Which name a key is, once per dictionary entry rather than once per attribute.
    let mut wanted_by_code: Vec<Option<Option<usize>>> = vec![None; keys.dictionary_len()];
    let (ints, doubles, bools): (&[i64], &[f64], &[bool]) = if strings_only {
        (&[], &[], &[])
    } else {
        (
            int64s(&columns[leaves.ints], "Attrs ValueInt")?,
            match &columns[leaves.doubles].values {
                LeafValues::Double(values) => values.as_slice(),
                _ => return Err(malformed("Attrs ValueDouble is not a DOUBLE column")),
            },
            match &columns[leaves.bools].values {
                LeafValues::Bool(values) => values.as_slice(),
                _ => return Err(malformed("Attrs ValueBool is not a BOOLEAN column")),
            },
        )
    };
    let mut string_slots = ValueSlots::new(&columns[leaves.strings]);
    // The other value lists, walked in step with the keys unless only strings are read.
    let mut other_slots = (!strings_only).then(|| {
        [
            ValueSlots::new(&columns[leaves.ints]),
            ValueSlots::new(&columns[leaves.doubles]),
            ValueSlots::new(&columns[leaves.bools]),
        ]
    });
    let mut span: Option<usize> = None;
    let mut key_value = 0usize;
    for (&rep, &def) in key_column.rep_levels.iter().zip(&key_column.def_levels) {
        if def >= SPAN_DEFINED && rep <= SPAN_DEFINED {
            span = Some(span.map_or(0, |s| s + 1));
        }
        if def < ATTRIBUTE_DEFINED {
            continue;
        }
        let key = keys
            .get(key_value)
            .ok_or_else(|| malformed("Attrs Key levels run past its values"))?;
        key_value += 1;
        let string = string_slots.next_attribute()?;
        let (int, double, boolean) = match &mut other_slots {
            Some([ints, doubles, bools]) => (
                ints.next_attribute()?,
                doubles.next_attribute()?,
                bools.next_attribute()?,
            ),
            None => (None, None, None),
        };
        let position = || names.iter().position(|name| name.as_bytes() == key);
        let wanted = match keys.dictionary_code(key_value - 1) {
            Some(code) => *wanted_by_code[code].get_or_insert_with(position),
            None => position(),
        };
        let Some(wanted) = wanted else {
            continue;
        };
        let at = span.ok_or_else(|| malformed("an attribute outside any span"))?;
        let slot = codes[wanted]
            .get_mut(at)
            .ok_or_else(|| malformed("more spans in Attrs than in StartTimeUnixNano"))?;
        if *slot != NIL_CODE {
            continue;
        }
        let builder = &mut builders[wanted];
        *slot = if let Some(index) = string {
            let bytes = strings.get(index).ok_or_else(|| malformed("Attrs Value"))?;
            builder
                .code_str(bytes)
                .map_err(|_| malformed("Attrs Value is not UTF-8"))?
        } else if let Some(index) = int {
            builder.code_int(*ints.get(index).ok_or_else(|| malformed("Attrs ValueInt"))?)
        } else if let Some(index) = double {
            builder.code_float(
                *doubles
                    .get(index)
                    .ok_or_else(|| malformed("Attrs ValueDouble"))?,
            )
        } else if let Some(index) = boolean {
            builder.code_bool(
                *bools
                    .get(index)
                    .ok_or_else(|| malformed("Attrs ValueBool"))?,
            )
        } else if strings_only {
            // Another type (unread): the span's first entry of the name decides, as when
            // every type is read, and it is no string.
            TAKEN_NOT_STRING
        } else {
            NIL_CODE
        };
    }
    if span.map_or(0, |s| s + 1) != span_count {
        return Err(malformed("Attrs levels disagree with the spans"));
    }

    for (wanted, name) in names.iter().enumerate() {
        let own = match strings_only {
            true => own_string_column(name, mapping),
            false => own_column(name, mapping),
        };
        let Some(leaf) = own else {
            continue;
        };
        let column = &columns[leaf];
        let mut span = 0usize;
        let mut value = 0usize;
        for &def in &column.def_levels {
            if def < SPAN_DEFINED {
                continue;
            }
            if def == SPAN_OPTIONAL_DEFINED {
                let slot = codes[wanted]
                    .get_mut(span)
                    .ok_or_else(|| malformed("more spans in a span column than spans"))?;
                let builder = &mut builders[wanted];
                let read = match &column.values {
                    LeafValues::Bytes(texts) => texts
                        .get(value)
                        .map(|bytes| {
                            builder
                                .code_str(bytes.data())
                                .map_err(|_| malformed("a span column value is not UTF-8"))
                        })
                        .transpose()?,
                    LeafValues::Int64(numbers) => numbers.get(value).map(|n| builder.code_int(*n)),
                    _ => return Err(malformed("a span column of an unexpected type")),
                }
                .ok_or_else(|| malformed("span column levels run past its values"))?;
                value += 1;
                if *slot == NIL_CODE {
                    *slot = read;
                }
            }
            span += 1;
        }
        if span != span_count {
            return Err(malformed("a span column disagrees with the spans"));
        }
    }
    for code in codes.iter_mut().flatten() {
        if *code == TAKEN_NOT_STRING {
            *code = NIL_CODE;
        }
    }
    Ok(builders
        .into_iter()
        .zip(codes)
        .map(|(builder, codes)| Coded {
            values: builder.finish().values,
            codes,
        })
        .collect())
}
