//! Block-level tests: the schema against the golden text, the Tempo-written golden block, and
//! write → read round trips (fixed cases and a property test).

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use parquet::basic::{Compression, Encoding, PageType, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;
use prost::Message;

use super::dremel::{Assembler, SchemaNode, Value};
use super::row::{self, DedicatedMapping};
use super::*;
use crate::model::rebatch;

const GOLDEN_BLOCK: &str = "tempo-blocks/generated-by-tempo-v3.0.3/vParquet4/single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10";

/// A file under `tests/data` (Tempo's golden blocks, see its README).
fn test_data(relative: &str) -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(relative);
    assert!(path.exists(), "golden file {} is missing", path.display());
    path
}

fn read_test_data(relative: &str) -> Vec<u8> {
    let path = test_data(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn golden_dedicated() -> Vec<DedicatedColumn> {
    let meta = read_test_data(&format!("{GOLDEN_BLOCK}/meta.json"));
    crate::tempodb::meta::BlockMeta::from_json(&meta)
        .expect("golden meta.json parses")
        .dedicated_columns
}

fn normalized_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.trim().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

fn string_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn kv(key: &str, value: AnyValueKind) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn trace_id(n: u64) -> TraceId {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    bytes[0] = 0x10;
    TraceId(bytes)
}

/// A trace touching most columns: well-known, dedicated, every attribute type, events, links.
fn sample_trace(id: TraceId, seed: u64, span_count: usize) -> Trace {
    let resource = Resource {
        attributes: vec![
            string_value("service.name", &format!("svc-{}", seed % 3)),
            string_value("k8s.pod.name", "pod-1"),
            string_value("ip", "10.0.0.1"),
            kv("host.cores", AnyValueKind::IntValue(8)),
        ],
        dropped_attributes_count: 1,
        ..Default::default()
    };
    let mut spans = Vec::new();
    for index in 0..span_count {
        let start = 1_700_000_000_000_000_000 + seed * 1_000 + index as u64 * 10;
        spans.push(Span {
            trace_id: id.as_bytes().to_vec(),
            span_id: ((seed << 16) + index as u64 + 1).to_be_bytes().to_vec(),
            parent_span_id: if index == 0 {
                Vec::new()
            } else {
                ((seed << 16) + 1).to_be_bytes().to_vec()
            },
            name: format!("op-{}", index % 4),
            kind: (index % 6) as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 500 + index as u64,
            attributes: vec![
                string_value("http.method", "GET"),
                string_value("http.url", "/api/x"),
                kv("http.status_code", AnyValueKind::IntValue(200)),
                string_value("instance", &format!("i-{index}")),
                kv("ratio", AnyValueKind::DoubleValue(0.25)),
                kv("ok", AnyValueKind::BoolValue(index % 2 == 0)),
                kv(
                    "tags",
                    AnyValueKind::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(AnyValueKind::StringValue("a".into())),
                            },
                            AnyValue {
                                value: Some(AnyValueKind::StringValue("b".into())),
                            },
                        ],
                    }),
                ),
                kv("blob", AnyValueKind::BytesValue(vec![0, 1, 2])),
            ],
            events: vec![Event {
                time_unix_nano: start + 5,
                name: "log".into(),
                attributes: vec![kv("n", AnyValueKind::IntValue(index as i64))],
                dropped_attributes_count: 0,
            }],
            status: Some(Status {
                code: if index == 1 { 2 } else { 0 },
                message: String::new(),
            }),
            ..Default::default()
        });
    }
    Trace {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn sample_traces(count: u64, span_count: usize) -> Vec<(TraceId, Trace)> {
    (0..count)
        .map(|n| (trace_id(n), sample_trace(trace_id(n), n, span_count)))
        .collect()
}

fn sample_dedicated() -> Vec<DedicatedColumn> {
    vec![
        DedicatedColumn::new("resource", "ip"),
        DedicatedColumn::new("span", "instance"),
    ]
}

fn sort_attributes(attributes: &mut [KeyValue]) {
    for attribute in attributes.iter_mut() {
        attribute.key_strindex = 0;
        if attribute.value.is_none() {
            attribute.value = Some(AnyValue { value: None });
        }
    }
    attributes.sort_by_cached_key(|attribute| {
        (
            attribute.key.clone(),
            attribute.value.as_ref().map(|value| value.encode_to_vec()),
        )
    });
}

/// What vParquet4 keeps of a trace: no schema URLs, span/link flags or entity refs; absent
/// resource/scope/status become empty ones; attribute order within a level is not kept; spans
/// carry the row's trace ID; resource and scope batches are merged (`model::rebatch`).
fn canonical(id: &TraceId, trace: &Trace) -> Trace {
    let mut trace = trace.clone();
    for batch in &mut trace.resource_spans {
        batch.schema_url.clear();
        let resource = batch.resource.get_or_insert_with(Resource::default);
        resource.entity_refs.clear();
        sort_attributes(&mut resource.attributes);
        for scope_batch in &mut batch.scope_spans {
            scope_batch.schema_url.clear();
            let scope = scope_batch
                .scope
                .get_or_insert_with(InstrumentationScope::default);
            sort_attributes(&mut scope.attributes);
            for span in &mut scope_batch.spans {
                span.trace_id = id.as_bytes().to_vec();
                span.flags = 0;
                span.status.get_or_insert_with(Status::default);
                sort_attributes(&mut span.attributes);
                for event in &mut span.events {
                    sort_attributes(&mut event.attributes);
                }
                for link in &mut span.links {
                    link.flags = 0;
                    sort_attributes(&mut link.attributes);
                }
            }
        }
    }
    rebatch(trace)
}

fn assert_round_trip(
    traces: &[(TraceId, Trace)],
    dedicated: &[DedicatedColumn],
    options: &WriterOptions,
) -> EncodedData {
    let encoded = encode(traces, dedicated, options).expect("encode");
    let bytes = Bytes::from(encoded.bytes.clone());
    let read = read_traces(bytes.clone(), dedicated).expect("read_traces");
    assert_eq!(read.len(), traces.len());
    for ((id, trace), (read_id, read_trace)) in traces.iter().zip(&read) {
        assert_eq!(id, read_id);
        assert_eq!(
            canonical(id, read_trace),
            canonical(id, trace),
            "trace {id} differs after read_traces"
        );
        let found = find_trace(bytes.clone(), id, dedicated)
            .expect("find_trace")
            .expect("trace is found");
        assert_eq!(
            &found, read_trace,
            "find_trace and read_traces differ for {id}"
        );
    }
    encoded
}

#[test]
fn schema_constant_matches_golden_text() {
    let golden =
        String::from_utf8(read_test_data("tempo-blocks/schemas/vParquet4.schema.txt")).unwrap();
    assert_eq!(
        normalized_lines(schema::SCHEMA_TEXT),
        normalized_lines(&golden)
    );
    assert_eq!(
        schema::schema_descriptor().num_columns(),
        schema::LEAF_COUNT
    );
}

#[test]
fn written_file_schema_and_leaves_match_golden() {
    let encoded = encode(
        &sample_traces(3, 2),
        &sample_dedicated(),
        &WriterOptions::default(),
    )
    .unwrap();
    let file = SerializedFileReader::new(Bytes::from(encoded.bytes)).unwrap();
    let mut printed = Vec::new();
    parquet::schema::printer::print_schema(&mut printed, file.metadata().file_metadata().schema());
    let golden =
        String::from_utf8(read_test_data("tempo-blocks/schemas/vParquet4.schema.txt")).unwrap();
    let printed_lines = normalized_lines(&String::from_utf8(printed).unwrap());
    let golden_lines = normalized_lines(&golden);
    assert_eq!(printed_lines.len(), golden_lines.len());
    for (index, (printed, golden)) in printed_lines.iter().zip(&golden_lines).enumerate() {
        assert_eq!(printed, golden, "schema line {index} differs");
    }

    // Every leaf: path, physical type and max levels as in the golden leaf table.
    let table = String::from_utf8(read_test_data(
        "tempo-blocks/schemas/vParquet4.leaf-columns.md",
    ))
    .unwrap();
    let rows: Vec<Vec<String>> = table
        .lines()
        .filter(|line| {
            line.starts_with("| ") && line.chars().nth(2).is_some_and(|c| c.is_ascii_digit())
        })
        .map(|line| {
            line.split('|')
                .map(|cell| cell.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 103);
    let descriptor = file.metadata().file_metadata().schema_descr();
    assert_eq!(descriptor.num_columns(), 103);
    for row in rows {
        let index: usize = row[1].parse().unwrap();
        let column = descriptor.column(index);
        assert_eq!(column.path().string(), row[2], "leaf {index} path");
        assert_eq!(
            column.physical_type().to_string(),
            row[3],
            "leaf {index} type"
        );
        assert_eq!(
            column.max_def_level().to_string(),
            row[5],
            "leaf {index} max def"
        );
        assert_eq!(
            column.max_rep_level().to_string(),
            row[6],
            "leaf {index} max rep"
        );
    }
}

fn data_encodings(encodings: &[Encoding]) -> BTreeSet<String> {
    // RLE is the level encoding (and a data encoding only for booleans, which we never use).
    encodings
        .iter()
        .filter(|encoding| **encoding != Encoding::RLE)
        .map(|encoding| format!("{encoding:?}"))
        .collect()
}

#[test]
fn column_settings_match_tempo_written_golden_chunks() {
    let golden = Bytes::from(read_test_data(&format!("{GOLDEN_BLOCK}/data.parquet")));
    let file = SerializedFileReader::new(golden).unwrap();
    let row_group = file.metadata().row_group(0);
    for column in row_group.columns() {
        let path = column.column_path().string();
        let settings = schema::column_settings(&path, column.column_type());
        assert_eq!(
            settings.compression,
            column.compression(),
            "codec of {path}"
        );
        let tempo = data_encodings(&column.encodings().collect::<Vec<_>>());
        let expected: BTreeSet<String> = match settings.encoding {
            None => ["PLAIN", "RLE_DICTIONARY"]
                .iter()
                .map(|name| name.to_string())
                .collect(),
            Some(encoding) => [format!("{encoding:?}")].into_iter().collect(),
        };
        assert_eq!(tempo, expected, "encodings of {path}");
    }
}

#[test]
fn written_chunks_follow_tempo_layout_and_the_two_traps() {
    let options = WriterOptions {
        page_size_bytes: 2048,
        ..WriterOptions::default()
    };
    let encoded = encode(&sample_traces(300, 4), &sample_dedicated(), &options).unwrap();
    let options = ReadOptionsBuilder::new().with_page_index().build();
    let file = SerializedFileReader::new_with_options(Bytes::from(encoded.bytes), options).unwrap();
    let metadata = file.metadata();
    let page_index = metadata.page_index().expect("page index read");
    assert!(page_index.has_column_indexes(), "column index written");
    assert!(page_index.has_offset_indexes(), "offset index written");
    let row_group_index = metadata.page_index_for_row_group(0);
    for (column, chunk) in metadata.row_group(0).columns().iter().enumerate() {
        assert!(
            row_group_index.offset_index(column).is_some(),
            "offset index of leaf {column}"
        );
        // The parquet crate leaves out the column index of a repeated chunk with an all-null
        // page (it compares records with null levels); only pruning speed depends on it.
        let has_values = chunk
            .statistics()
            .is_some_and(|statistics| statistics.min_bytes_opt().is_some());
        if has_values {
            assert!(
                row_group_index.column_index(column).is_some(),
                "column index of leaf {column}"
            );
        }
    }
    let mut most_data_pages = 0;
    for (leaf, column) in metadata.row_group(0).columns().iter().enumerate() {
        let path = column.column_path().string();
        let settings = schema::column_settings(&path, column.column_type());
        let codec = match settings.compression {
            Compression::SNAPPY => Compression::SNAPPY,
            _ => Compression::UNCOMPRESSED,
        };
        assert_eq!(column.compression(), codec, "codec of {path}");
        let row_group = file.get_row_group(0).unwrap();
        let pages = row_group.get_column_page_reader(leaf).unwrap();
        let mut data_pages = 0;
        for page in pages {
            let page = page.unwrap();
            match page.page_type() {
                PageType::DICTIONARY_PAGE => {
                    assert!(
                        settings.encoding.is_none(),
                        "{path} must have no dictionary"
                    );
                    assert_eq!(page.encoding(), Encoding::PLAIN);
                }
                PageType::DATA_PAGE_V2 => {
                    data_pages += 1;
                    match settings.encoding {
                        // No fallback: every data page of a dictionary column is dictionary-encoded.
                        None => assert_eq!(page.encoding(), Encoding::RLE_DICTIONARY, "{path}"),
                        Some(encoding) => assert_eq!(page.encoding(), encoding, "{path}"),
                    }
                }
                other => panic!("{path} has a {other:?} page; Tempo expects data page V2"),
            }
        }
        most_data_pages = most_data_pages.max(data_pages);
        if column.column_type() == PhysicalType::BOOLEAN {
            assert_eq!(settings.encoding, Some(Encoding::PLAIN), "{path}");
        }
        assert!(column.statistics().is_some(), "{path} has statistics");
    }
    assert!(
        most_data_pages > 3,
        "small pages split chunks: {most_data_pages}"
    );
}

fn golden_trace_ids() -> Vec<TraceId> {
    let text = String::from_utf8(read_test_data(
        "tempo-blocks/generated-by-tempo-v3.0.3/trace_ids.txt",
    ))
    .unwrap();
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| TraceId::parse_hex(&format!("{:0>32}", line.trim())).unwrap())
        .collect()
}

#[test]
fn reads_every_trace_of_the_tempo_written_golden_block() {
    let data = Bytes::from(read_test_data(&format!("{GOLDEN_BLOCK}/data.parquet")));
    let dedicated = golden_dedicated();
    let traces = read_traces(data.clone(), &dedicated).unwrap();
    let expected: BTreeSet<TraceId> = golden_trace_ids().into_iter().collect();
    assert_eq!(expected.len(), 133);
    let read_ids: Vec<TraceId> = traces.iter().map(|(id, _)| *id).collect();
    assert_eq!(read_ids.iter().copied().collect::<BTreeSet<_>>(), expected);
    assert!(
        read_ids.windows(2).all(|pair| pair[0] < pair[1]),
        "rows are sorted by trace id"
    );

    let mut attribute_kinds = BTreeSet::new();
    let mut dedicated_seen = BTreeSet::new();
    for (id, trace) in &traces {
        let spans: Vec<&Span> = trace
            .resource_spans
            .iter()
            .flat_map(|batch| &batch.scope_spans)
            .flat_map(|scope_batch| &scope_batch.spans)
            .collect();
        assert!(!spans.is_empty(), "trace {id} has spans");
        for batch in &trace.resource_spans {
            let resource = batch.resource.as_ref().unwrap();
            let service = resource
                .attributes
                .iter()
                .find(|attribute| attribute.key == "service.name");
            assert!(
                matches!(service.and_then(|s| s.value.as_ref()).and_then(|v| v.value.as_ref()), Some(AnyValueKind::StringValue(name)) if !name.is_empty()),
                "trace {id} has a resource without service name"
            );
            if resource
                .attributes
                .iter()
                .any(|attribute| attribute.key == "ip")
            {
                dedicated_seen.insert("ip");
            }
        }
        for span in spans {
            assert!(!span.name.is_empty());
            assert_eq!(span.trace_id, id.as_bytes().to_vec());
            assert_eq!(span.span_id.len(), 8);
            assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
            for attribute in &span.attributes {
                if attribute.key == "instance" || attribute.key == "region" {
                    dedicated_seen.insert("span");
                }
                let kind = match attribute
                    .value
                    .as_ref()
                    .and_then(|value| value.value.as_ref())
                {
                    Some(AnyValueKind::StringValue(_)) => "string",
                    Some(AnyValueKind::IntValue(_)) => "int",
                    Some(AnyValueKind::DoubleValue(_)) => "double",
                    Some(AnyValueKind::BoolValue(_)) => "bool",
                    _ => "other",
                };
                attribute_kinds.insert(kind);
            }
        }
    }
    for kind in ["string", "int", "bool"] {
        assert!(
            attribute_kinds.contains(kind),
            "golden spans carry {kind} attributes: {attribute_kinds:?}"
        );
    }
    assert!(
        dedicated_seen.contains("ip") && dedicated_seen.contains("span"),
        "dedicated columns decoded: {dedicated_seen:?}"
    );

    for (id, trace) in &traces {
        let found = find_trace(data.clone(), id, &dedicated).unwrap();
        assert_eq!(found.as_ref(), Some(trace), "find_trace of {id}");
    }
    let absent = TraceId::parse_hex("0123456789abcdef0123456789abcdef").unwrap();
    assert!(!expected.contains(&absent));
    assert_eq!(find_trace(data.clone(), &absent, &dedicated).unwrap(), None);
    assert_eq!(
        find_trace(data, &TraceId([0xff; 16]), &dedicated).unwrap(),
        None
    );
}

/// Raw rows of a file, as value trees.
fn raw_rows(data: Bytes) -> Vec<Value> {
    let file = SerializedFileReader::new(data).unwrap();
    let root = SchemaNode::from_message(&schema());
    let mut rows = Vec::new();
    for index in 0..file.num_row_groups() {
        let row_group = file.get_row_group(index).unwrap();
        let count = row_group.metadata().num_rows() as usize;
        let columns = read_row_range(row_group.as_ref(), 0, count).unwrap();
        let mut assembler = Assembler::new(&root, &columns);
        for _ in 0..count {
            rows.push(assembler.next_record().unwrap());
        }
    }
    rows
}

/// Sorts ServiceStats entries: Tempo writes a Go map, whose order is not part of the format.
fn with_sorted_service_stats(row: &Value) -> Value {
    let mut row = row.clone();
    if let Value::Group(fields) = &mut row {
        if let Some(Value::Group(stats)) = fields.get_mut(7) {
            if let Some(Value::Repeated(entries)) = stats.get_mut(0) {
                entries.sort_by(|left, right| format!("{left:?}").cmp(&format!("{right:?}")));
            }
        }
    }
    row
}

/// The strongest check of the row rules: decoding a Tempo row and encoding it again must give
/// Tempo's row back, including root fields, service stats, nested set, times, and columns.
#[test]
fn rows_rebuilt_from_golden_traces_equal_tempo_rows() {
    let data = Bytes::from(read_test_data(&format!("{GOLDEN_BLOCK}/data.parquet")));
    let dedicated = golden_dedicated();
    let mapping = DedicatedMapping::new(&dedicated);
    let golden_rows = raw_rows(data);
    let mut mismatches = Vec::new();
    for golden_row in &golden_rows {
        let (id, trace) = row::row_to_trace(golden_row, &mapping).unwrap();
        let rebuilt = row::trace_to_row(&id, &trace, &mapping).value;
        let (golden_row, rebuilt) = (
            with_sorted_service_stats(golden_row),
            with_sorted_service_stats(&rebuilt),
        );
        if golden_row != rebuilt {
            mismatches.push(format!(
                "{id}: {}",
                first_difference(&golden_row, &rebuilt, String::new())
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} rows differ, first: {:#?}",
        mismatches.len(),
        golden_rows.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

fn first_difference(golden: &Value, ours: &Value, path: String) -> String {
    match (golden, ours) {
        (Value::Group(left), Value::Group(right))
        | (Value::Repeated(left), Value::Repeated(right))
            if left.len() == right.len() =>
        {
            for (index, (left, right)) in left.iter().zip(right).enumerate() {
                if left != right {
                    return first_difference(left, right, format!("{path}/{index}"));
                }
            }
            format!("{path}: equal")
        }
        _ => format!("{path}: tempo {golden:?} vs ours {ours:?}"),
    }
}

#[test]
fn round_trips_sample_traces() {
    let traces = sample_traces(10, 5);
    let encoded = assert_round_trip(&traces, &sample_dedicated(), &WriterOptions::default());
    assert_eq!(encoded.row_group_count, 1);
    assert_eq!(encoded.trace_count, 10);
    assert_eq!(encoded.last_trace_id_per_row_group, vec![trace_id(9)]);
    let footer_start = encoded.bytes.len() - 8;
    assert_eq!(&encoded.bytes[footer_start + 4..], b"PAR1");
    assert_eq!(
        encoded.footer_size.to_le_bytes(),
        encoded.bytes[footer_start..footer_start + 4]
    );
    assert_eq!(encoded.start_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(
        encoded.end_unix_nano,
        1_700_000_000_000_000_000 + 9_000 + 40 + 504
    );
}

#[test]
fn several_row_groups_and_multi_page_chunks_are_searched() {
    let traces = sample_traces(300, 3);
    let options = WriterOptions {
        row_group_size_bytes: 20_000,
        page_size_bytes: 512,
        page_row_count_limit: 7,
    };
    let encoded = assert_round_trip(&traces, &sample_dedicated(), &options);
    assert!(
        encoded.row_group_count > 3,
        "{} row groups",
        encoded.row_group_count
    );
    assert_eq!(
        encoded.last_trace_id_per_row_group.len(),
        encoded.row_group_count as usize
    );
    assert_eq!(
        encoded.last_trace_id_per_row_group.last(),
        Some(&trace_id(299))
    );

    let options = ReadOptionsBuilder::new().with_page_index().build();
    let file = SerializedFileReader::new_with_options(Bytes::from(encoded.bytes.clone()), options)
        .unwrap();
    let metadata = file.metadata();
    let most_pages = (0..metadata.num_row_groups())
        .flat_map(|row_group| {
            let index = metadata.page_index_for_row_group(row_group);
            (0..schema::LEAF_COUNT).map(move |column| index.num_data_pages(column).unwrap_or(0))
        })
        .max()
        .unwrap();
    assert!(most_pages > 1, "some chunk has several pages");

    let bytes = Bytes::from(encoded.bytes);
    assert_eq!(
        find_trace(bytes.clone(), &trace_id(1_000), &[]).unwrap(),
        None
    );
    assert_eq!(
        find_trace(bytes.clone(), &TraceId([0; 16]), &[]).unwrap(),
        None
    );
    let mut between = trace_id(150).0;
    between[15] = between[15].wrapping_add(0);
    between[9] = 0xff;
    assert_eq!(find_trace(bytes, &TraceId(between), &[]).unwrap(), None);
}

#[test]
fn refuses_unsorted_or_duplicate_ids() {
    let mut traces = sample_traces(3, 1);
    traces.swap(0, 1);
    let error = encode(&traces, &[], &WriterOptions::default()).unwrap_err();
    assert!(
        matches!(error, VParquetError::UnsortedTraces { .. }),
        "{error}"
    );
    let mut duplicated = sample_traces(2, 1);
    duplicated[1].0 = duplicated[0].0;
    assert!(encode(&duplicated, &[], &WriterOptions::default()).is_err());
}

#[test]
fn empty_input_writes_a_readable_file() {
    let encoded = encode(&[], &[], &WriterOptions::default()).unwrap();
    assert_eq!(encoded.row_group_count, 0);
    let bytes = Bytes::from(encoded.bytes);
    assert!(read_traces(bytes.clone(), &[]).unwrap().is_empty());
    assert_eq!(find_trace(bytes, &trace_id(1), &[]).unwrap(), None);
}

#[test]
fn corrupt_or_truncated_files_are_errors_not_panics() {
    let traces = sample_traces(40, 3);
    let encoded = encode(
        &traces,
        &sample_dedicated(),
        &WriterOptions {
            row_group_size_bytes: 3_000,
            page_size_bytes: 1024,
            page_row_count_limit: 100,
        },
    )
    .unwrap();
    let original = encoded.bytes;
    let id = trace_id(17);
    let mut outcomes = 0;
    // Truncations keep the tail (so the footer parses) or cut it (so it does not).
    for cut in [1, 8, 9, 100, original.len() / 2, original.len() - 1] {
        let truncated = Bytes::from(original[..original.len() - cut].to_vec());
        assert!(
            read_traces(truncated.clone(), &[]).is_err(),
            "truncated by {cut}"
        );
        assert!(
            find_trace(truncated, &id, &[]).is_err(),
            "truncated by {cut}"
        );
    }
    // Flipped bytes anywhere: whatever happens must be a result, never a panic.
    let mut state: u64 = 0x9e3779b97f4a7c15;
    for round in 0..300 {
        let mut corrupt = original.clone();
        for _ in 0..(1 + round % 4) {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let position = (state >> 33) as usize % corrupt.len();
            corrupt[position] ^= (state >> 8) as u8 | 1;
        }
        let bytes = Bytes::from(corrupt);
        let read =
            std::panic::catch_unwind(|| read_traces(bytes.clone(), &[]).map(|traces| traces.len()));
        assert!(read.is_ok(), "read_traces panicked in round {round}");
        let found = std::panic::catch_unwind(|| {
            find_trace(bytes.clone(), &id, &[]).map(|trace| trace.is_some())
        });
        assert!(found.is_ok(), "find_trace panicked in round {round}");
        outcomes += 1;
    }
    assert_eq!(outcomes, 300);
    // A parquet file that is not vParquet4 is refused by schema.
    let other = encode_other_schema();
    let error = read_traces(Bytes::from(other), &[]).unwrap_err();
    assert!(matches!(error, VParquetError::SchemaMismatch(_)), "{error}");
}

fn encode_other_schema() -> Vec<u8> {
    let message =
        parquet::schema::parser::parse_message_type("message m { REQUIRED INT64 a; }").unwrap();
    let writer = parquet::file::writer::SerializedFileWriter::new(
        Vec::new(),
        std::sync::Arc::new(message),
        Default::default(),
    )
    .unwrap();
    writer.into_inner().unwrap()
}

#[test]
fn edge_values_round_trip() {
    let id = trace_id(1);
    let span = Span {
        span_id: vec![1; 8],
        // Ends before it starts and an event before the span: Go's uint64 wraparound.
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 10,
        kind: 5,
        events: vec![Event {
            time_unix_nano: 3,
            name: "early".into(),
            ..Default::default()
        }],
        links: vec![Link {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            trace_state: "k=v".into(),
            attributes: vec![string_value("opentracing.ref_type", "follows_from")],
            dropped_attributes_count: 2,
            flags: 1,
        }],
        attributes: vec![
            kv(
                "empty.array",
                AnyValueKind::ArrayValue(ArrayValue { values: vec![] }),
            ),
            kv(
                "ints",
                AnyValueKind::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(AnyValueKind::IntValue(-1)),
                        },
                        AnyValue {
                            value: Some(AnyValueKind::IntValue(i64::MAX)),
                        },
                    ],
                }),
            ),
            kv(
                "kv",
                AnyValueKind::KvlistValue(KeyValueList {
                    values: vec![string_value("inner", "x")],
                }),
            ),
            KeyValue {
                key: "none".into(),
                value: None,
                ..Default::default()
            },
            kv("http.status_code", AnyValueKind::StringValue("200".into())),
            kv("http.method", AnyValueKind::IntValue(3)),
            string_value("http.url", "/a"),
            string_value("http.url", "/b"),
        ],
        dropped_attributes_count: u32::MAX,
        dropped_events_count: 3,
        dropped_links_count: 4,
        status: Some(Status {
            code: 1,
            message: "fine".into(),
        }),
        ..Default::default()
    };
    let trace = Trace {
        resource_spans: vec![
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: vec![span],
                    schema_url: "s".into(),
                }],
                schema_url: "r".into(),
            },
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        string_value("service.name", ""),
                        string_value("cluster", ""),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![],
                schema_url: String::new(),
            },
        ],
    };
    assert_round_trip(&[(id, trace)], &[], &WriterOptions::default());
}

#[test]
fn measures_encode_and_decode_speed() {
    let traces = sample_traces(2_000, 10);
    let spans = 2_000 * 10;
    let started = std::time::Instant::now();
    let encoded = encode(&traces, &sample_dedicated(), &WriterOptions::default()).unwrap();
    let encode_seconds = started.elapsed().as_secs_f64();
    let bytes = Bytes::from(encoded.bytes.clone());
    let started = std::time::Instant::now();
    let read = read_traces(bytes.clone(), &sample_dedicated()).unwrap();
    let decode_seconds = started.elapsed().as_secs_f64();
    assert_eq!(read.len(), traces.len());
    let started = std::time::Instant::now();
    for index in (0..2_000).step_by(100) {
        assert!(
            find_trace(bytes.clone(), &trace_id(index), &sample_dedicated())
                .unwrap()
                .is_some()
        );
    }
    let find_seconds = started.elapsed().as_secs_f64() / 20.0;
    println!(
        "vparquet4: {} traces, {spans} spans: encode {:.0} traces/s ({:.0} spans/s), read_traces {:.0} traces/s, find_trace {:.2} ms, {:.1} bytes/span",
        traces.len(),
        traces.len() as f64 / encode_seconds,
        spans as f64 / encode_seconds,
        traces.len() as f64 / decode_seconds,
        find_seconds * 1_000.0,
        encoded.bytes.len() as f64 / spans as f64
    );
}

mod property {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => proptest::sample::select(vec![
                "service.name", "cluster", "namespace", "k8s.pod.name", "k8s.container.name", "http.method",
                "http.url", "http.status_code", "dedicated.r", "dedicated.s", "dedicated.t", "a", "b",
            ])
            .prop_map(String::from),
            1 => "[a-z.]{0,6}",
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![4 => "[a-zA-Z0-9 /]{0,8}", 1 => "\\PC{0,4}"]
    }

    fn double() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<i32>().prop_map(|n| n as f64 / 8.0),
            Just(f64::MAX),
            Just(-0.5),
            Just(f64::MIN_POSITIVE)
        ]
    }

    fn scalar() -> impl Strategy<Value = AnyValueKind> {
        prop_oneof![
            3 => text().prop_map(AnyValueKind::StringValue),
            1 => any::<i64>().prop_map(AnyValueKind::IntValue),
            1 => double().prop_map(AnyValueKind::DoubleValue),
            1 => any::<bool>().prop_map(AnyValueKind::BoolValue),
        ]
    }

    fn any_value() -> impl Strategy<Value = Option<AnyValue>> {
        let leaf = prop_oneof![
            6 => scalar().prop_map(Some),
            1 => vec(any::<u8>(), 0..5).prop_map(|bytes| Some(AnyValueKind::BytesValue(bytes))),
            1 => Just(None),
        ]
        .prop_map(|value| AnyValue { value });
        let nested = leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                    value: Some(AnyValueKind::ArrayValue(ArrayValue { values }))
                }),
                vec((key(), inner), 0..3).prop_map(|entries| AnyValue {
                    value: Some(AnyValueKind::KvlistValue(KeyValueList {
                        values: entries
                            .into_iter()
                            .map(|(key, value)| KeyValue {
                                key,
                                value: Some(value),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                }),
            ]
        });
        // Homogeneous arrays (typed columns with IsArray) next to everything else.
        let homogeneous = prop_oneof![
            vec(text(), 0..3).prop_map(|values| values
                .into_iter()
                .map(AnyValueKind::StringValue)
                .collect::<Vec<_>>()),
            vec(any::<i64>(), 1..3)
                .prop_map(|values| values.into_iter().map(AnyValueKind::IntValue).collect()),
            vec(double(), 1..3)
                .prop_map(|values| values.into_iter().map(AnyValueKind::DoubleValue).collect()),
            vec(any::<bool>(), 1..3)
                .prop_map(|values| values.into_iter().map(AnyValueKind::BoolValue).collect()),
        ]
        .prop_map(|values| AnyValue {
            value: Some(AnyValueKind::ArrayValue(ArrayValue {
                values: values
                    .into_iter()
                    .map(|value| AnyValue { value: Some(value) })
                    .collect(),
            })),
        });
        prop_oneof![8 => nested.prop_map(Some), 2 => homogeneous.prop_map(Some), 1 => Just(None)]
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        vec((key(), any_value()), 0..5).prop_map(|entries| {
            entries
                .into_iter()
                .map(|(key, value)| KeyValue {
                    key,
                    value,
                    ..Default::default()
                })
                .collect()
        })
    }

    fn span_id() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![4 => (1u8..6).prop_map(|n| vec![n; 8]), 1 => vec(any::<u8>(), 0..9)]
    }

    fn span() -> impl Strategy<Value = Span> {
        let events =
            vec((any::<u64>(), text(), attributes(), any::<u32>()), 0..3).prop_map(|events| {
                events
                    .into_iter()
                    .map(
                        |(time_unix_nano, name, attributes, dropped_attributes_count)| Event {
                            time_unix_nano,
                            name,
                            attributes,
                            dropped_attributes_count,
                        },
                    )
                    .collect::<Vec<_>>()
            });
        let links = vec(
            (
                vec(any::<u8>(), 0..17),
                span_id(),
                text(),
                attributes(),
                any::<u32>(),
                any::<u32>(),
            ),
            0..2,
        )
        .prop_map(|links| {
            links
                .into_iter()
                .map(
                    |(
                        trace_id,
                        span_id,
                        trace_state,
                        attributes,
                        dropped_attributes_count,
                        flags,
                    )| Link {
                        trace_id,
                        span_id,
                        trace_state,
                        attributes,
                        dropped_attributes_count,
                        flags,
                    },
                )
                .collect::<Vec<_>>()
        });
        let status = proptest::option::of((0i32..3, text()))
            .prop_map(|status| status.map(|(code, message)| Status { code, message }));
        (
            (
                span_id(),
                prop_oneof![Just(Vec::new()), span_id()],
                text(),
                0i32..6,
                text(),
                any::<u64>(),
                any::<u64>(),
            ),
            (
                attributes(),
                any::<u32>(),
                events,
                any::<u32>(),
                links,
                any::<u32>(),
                status,
                any::<u32>(),
            ),
        )
            .prop_map(
                |(
                    (
                        span_id,
                        parent_span_id,
                        name,
                        kind,
                        trace_state,
                        start_time_unix_nano,
                        end_time_unix_nano,
                    ),
                    (
                        attributes,
                        dropped_attributes_count,
                        events,
                        dropped_events_count,
                        links,
                        dropped_links_count,
                        status,
                        flags,
                    ),
                )| Span {
                    trace_id: Vec::new(),
                    span_id,
                    trace_state,
                    parent_span_id,
                    flags,
                    name,
                    kind,
                    start_time_unix_nano,
                    end_time_unix_nano,
                    attributes,
                    dropped_attributes_count,
                    events,
                    dropped_events_count,
                    links,
                    dropped_links_count,
                    status,
                },
            )
    }

    fn scope_spans() -> impl Strategy<Value = ScopeSpans> {
        let scope =
            proptest::option::of((text(), text(), attributes(), any::<u32>())).prop_map(|scope| {
                scope.map(|(name, version, attributes, dropped_attributes_count)| {
                    InstrumentationScope {
                        name,
                        version,
                        attributes,
                        dropped_attributes_count,
                    }
                })
            });
        (
            scope,
            vec(span(), 0..4),
            prop_oneof![Just(String::new()), text()],
        )
            .prop_map(|(scope, spans, schema_url)| ScopeSpans {
                scope,
                spans,
                schema_url,
            })
    }

    fn resource_spans() -> impl Strategy<Value = ResourceSpans> {
        let resource = proptest::option::of((attributes(), any::<u32>())).prop_map(|resource| {
            resource.map(|(attributes, dropped_attributes_count)| Resource {
                attributes,
                dropped_attributes_count,
                ..Default::default()
            })
        });
        (
            resource,
            vec(scope_spans(), 0..3),
            prop_oneof![Just(String::new()), text()],
        )
            .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            })
    }

    fn traces() -> impl Strategy<Value = Vec<(TraceId, Trace)>> {
        vec((any::<[u8; 16]>(), vec(resource_spans(), 0..3)), 1..6).prop_map(|mut traces| {
            traces.sort_by_key(|trace| trace.0);
            traces.dedup_by(|left, right| left.0 == right.0);
            traces
                .into_iter()
                .map(|(id, resource_spans)| (TraceId(id), Trace { resource_spans }))
                .collect()
        })
    }

    fn dedicated() -> Vec<DedicatedColumn> {
        vec![
            DedicatedColumn::new("resource", "dedicated.r"),
            DedicatedColumn::new("resource", "cluster"),
            DedicatedColumn::new("span", "http.url"),
            DedicatedColumn::new("span", "dedicated.s"),
            DedicatedColumn::new("event", "dedicated.t"),
            DedicatedColumn {
                value_type: "int".into(),
                ..DedicatedColumn::new("span", "dedicated.t")
            },
            DedicatedColumn::new("span", "a"),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn random_traces_round_trip(traces in traces(), small in any::<bool>()) {
            let options = if small {
                WriterOptions { row_group_size_bytes: 60, page_size_bytes: 64, page_row_count_limit: 2 }
            } else {
                WriterOptions::default()
            };
            assert_round_trip(&traces, &dedicated(), &options);
        }
    }
}

#[test]
fn encoding_owned_traces_writes_the_same_file() {
    let traces = sample_traces(40, 7);
    let dedicated = sample_dedicated();
    let options = WriterOptions {
        row_group_size_bytes: 2_000,
        ..WriterOptions::default()
    };
    let borrowed = encode(&traces, &dedicated, &options).expect("encodes");
    let owned = encode_owned(traces, &dedicated, &options).expect("encodes");
    assert!(borrowed.row_group_count > 1, "several row groups");
    assert_eq!(owned, borrowed);
}
