//! Loki push bodies: JSON `{"streams":[…]}` (optionally gzip) or snappy-compressed protobuf
//! `logproto.PushRequest` ([`crate::proto::loki`]), each entry a [`LogRow`] with the trace and
//! span IDs found in its structured metadata, labels or line.

use axum::body::Bytes;
use axum::http::HeaderMap;
use prost::Message;
use serde_json::Value;

use crate::distributor::DistributorError;
use crate::logs::logql::{self, parse_trace_id, MatchOp};
use crate::logs::{level_of, severity_number_of, Label, LogRow};
use crate::proto::loki as proto;
use crate::receiver::ingest::{decompress_request, media_type, now_ns, Encodings};

/// A trace or span ID in a line: `traceID=<hex>`, `trace_id=<hex>`, `traceId=<hex>` (also with
/// `:` or quotes, as logfmt and JSON lines write them).
fn id_in_line(line: &str, keys: &[&str]) -> Option<String> {
    for key in keys {
        let mut search = line;
        while let Some(position) = search.find(key) {
            let rest = &search[position + key.len()..];
            let rest = rest.trim_start_matches(['"', '\'']);
            let rest = rest.trim_start();
            if let Some(value) = rest.strip_prefix(['=', ':']) {
                let value = value.trim_start().trim_start_matches(['"', '\'']);
                let hex: String = value
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .collect();
                if !hex.is_empty() {
                    return Some(hex);
                }
            }
            search = &search[position + key.len()..];
        }
    }
    None
}

const TRACE_KEYS: [&str; 4] = ["trace_id", "traceID", "traceId", "traceid"];
const SPAN_KEYS: [&str; 4] = ["span_id", "spanID", "spanId", "spanid"];

/// One Loki entry as a row: stream labels, line, structured metadata.
pub fn loki_row(
    labels: &[Label],
    timestamp_ns: u64,
    line: String,
    metadata: Vec<Label>,
    now_ns: u64,
) -> LogRow {
    let find = |names: &[&str]| {
        names.iter().find_map(|name| {
            metadata
                .iter()
                .chain(labels.iter())
                .find(|label| label.name == *name)
                .map(|label| label.value.clone())
        })
    };
    let trace_hex = find(&TRACE_KEYS).or_else(|| id_in_line(&line, &TRACE_KEYS));
    let trace_id = trace_hex
        .as_deref()
        .and_then(parse_trace_id)
        .map(|id| id.to_vec())
        .unwrap_or_default();
    let span_id = find(&SPAN_KEYS)
        .or_else(|| id_in_line(&line, &SPAN_KEYS))
        .filter(|hex| hex.len() <= 16)
        .and_then(|hex| {
            let mut id = [0u8; 8];
            hex::decode_to_slice(format!("{hex:0>16}"), &mut id).ok()?;
            Some(id.to_vec())
        })
        .unwrap_or_default();
    let service_name = ["service_name", "service", "app", "job"]
        .iter()
        .find_map(|name| labels.iter().find(|label| label.name == *name))
        .map_or_else(
            || "unknown_service".to_string(),
            |label| label.value.clone(),
        );
    let severity_text =
        find(&["level", "severity", "detected_level", "severity_text"]).unwrap_or_default();
    let severity_number = severity_number_of(&severity_text);
    let mut labels = labels.to_vec();
    if !labels.iter().any(|label| label.name == "service_name") {
        labels.push(Label::new("service_name", service_name.clone()));
    }
    labels.sort();
    LogRow {
        timestamp_ns,
        observed_ns: now_ns,
        service_name,
        severity_text,
        severity_number,
        body: line,
        trace_id,
        span_id,
        attributes: metadata,
        resource_attributes: Vec::new(),
        labels,
    }
}

fn stream_labels(text: &str, position: &str) -> Result<Vec<Label>, String> {
    let matchers = logql::parse_selector(text)
        .map_err(|error| format!("{position}: invalid stream labels {text:?}: {error}"))?;
    let mut labels = Vec::new();
    for matcher in matchers {
        if matcher.op != MatchOp::Equal {
            return Err(format!(
                "{position}: stream labels must use `=`, found {text:?}"
            ));
        }
        labels.push(Label::new(matcher.name, matcher.value));
    }
    Ok(labels)
}

/// Rows of a Loki protobuf push (already snappy-decompressed).
pub fn loki_proto_rows(body: &[u8], now_ns: u64) -> Result<Vec<LogRow>, String> {
    let request = proto::PushRequest::decode(body)
        .map_err(|error| format!("invalid logproto.PushRequest protobuf: {error}"))?;
    let mut rows = Vec::new();
    for (index, stream) in request.streams.into_iter().enumerate() {
        let labels = stream_labels(&stream.labels, &format!("streams[{index}]"))?;
        for entry in stream.entries {
            let timestamp = entry.timestamp.map_or(now_ns, |ts| {
                (ts.seconds.max(0) as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(ts.nanos.max(0) as u64)
            });
            let metadata = entry
                .structured_metadata
                .into_iter()
                .map(|pair| Label::new(pair.name, pair.value))
                .collect();
            rows.push(loki_row(&labels, timestamp, entry.line, metadata, now_ns));
        }
    }
    Ok(rows)
}

/// Rows of a Loki JSON push: `{"streams":[{"stream":{…},"values":[["<ns>","line",{…}]]}]}`.
pub fn loki_json_rows(body: &[u8], now_ns: u64) -> Result<Vec<LogRow>, String> {
    let root: Value =
        serde_json::from_slice(body).map_err(|error| format!("invalid JSON push body: {error}"))?;
    let streams = root
        .get("streams")
        .and_then(Value::as_array)
        .ok_or("push body needs a \"streams\" array")?;
    let mut rows = Vec::new();
    for (index, stream) in streams.iter().enumerate() {
        let position = format!("streams[{index}]");
        let labels_value = stream
            .get("stream")
            .or_else(|| stream.get("labels"))
            .ok_or_else(|| format!("{position}: needs a \"stream\" object"))?;
        let mut labels = match labels_value {
            Value::Object(map) => map
                .iter()
                .map(|(name, value)| match value {
                    Value::String(text) => Ok(Label::new(name.clone(), text.clone())),
                    _ => Err(format!(
                        "{position}.stream.{name}: label values must be strings"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Value::String(text) => stream_labels(text, &position)?,
            _ => return Err(format!("{position}.stream: expected an object")),
        };
        labels.sort();
        let values = stream
            .get("values")
            .or_else(|| stream.get("entries"))
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{position}: needs a \"values\" array"))?;
        for (value_index, value) in values.iter().enumerate() {
            let at = format!("{position}.values[{value_index}]");
            let items = value
                .as_array()
                .filter(|items| items.len() == 2 || items.len() == 3)
                .ok_or_else(|| {
                    format!("{at}: expected [\"<unix ns>\", \"<line>\"(, {{metadata}})]")
                })?;
            let timestamp = match &items[0] {
                Value::String(text) => text.parse::<u64>().ok(),
                Value::Number(number) => number.as_u64(),
                _ => None,
            }
            .ok_or_else(|| format!("{at}[0]: expected a Unix nanosecond timestamp string"))?;
            let line = items[1]
                .as_str()
                .ok_or_else(|| format!("{at}[1]: expected the log line as a string"))?
                .to_string();
            let metadata = match items.get(2) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Object(map)) => map
                    .iter()
                    .map(|(name, value)| match value {
                        Value::String(text) => Ok(Label::new(name.clone(), text.clone())),
                        _ => Err(format!(
                            "{at}[2].{name}: structured metadata values must be strings"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(format!("{at}[2]: expected a structured metadata object")),
            };
            rows.push(loki_row(&labels, timestamp, line, metadata, now_ns));
        }
    }
    Ok(rows)
}

/// Decompresses a Loki protobuf push (snappy block format), refusing one that would
/// decompress to more than `limit` bytes before allocating for it.
pub fn loki_snappy_decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, DistributorError> {
    let length = snap::raw::decompress_len(body)
        .map_err(|error| DistributorError::BadRequest(format!("invalid snappy body: {error}")))?;
    if length > limit {
        return Err(DistributorError::TooLarge {
            size: length,
            limit,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| DistributorError::BadRequest(format!("invalid snappy body: {error}")))
}

/// Decodes a Loki push body by content type: JSON (optionally gzip) or snappy protobuf, each
/// bounded by `limit` bytes once decompressed.
pub fn loki_rows(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Vec<LogRow>, DistributorError> {
    let now = now_ns();
    match media_type(headers).as_str() {
        "application/json" => {
            let body = decompress_request(headers, Encodings::Gzip, body, limit)?;
            loki_json_rows(&body, now).map_err(DistributorError::BadRequest)
        }
        "" | "application/x-protobuf" | "application/protobuf" => {
            let raw = loki_snappy_decompress(&body, limit)?;
            loki_proto_rows(&raw, now).map_err(DistributorError::BadRequest)
        }
        other => Err(DistributorError::BadRequest(format!(
            "unsupported content type {other:?}: use application/json or application/x-protobuf (snappy)"
        ))),
    }
}

/// Level label for Loki rows whose stream carries none, used by the query API.
pub fn display_level(row: &LogRow) -> String {
    level_of(&row.severity_text, row.severity_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_json_push_with_trace_ids() {
        let body = br#"{"streams":[{"stream":{"service_name":"api","level":"warn"},"values":[
            ["1700000000000000001","GET /x traceID=0af7651916cd43dd8448eb211c80319c done"],
            ["1700000000000000002","plain",{"trace_id":"00000000000000000000000000000abc","span_id":"b7ad6b7169203331"}]]}]}"#;
        let rows = loki_json_rows(body, 7).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            hex::encode(&rows[0].trace_id),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(rows[0].severity_number, 13);
        assert_eq!(
            hex::encode(&rows[1].trace_id),
            "00000000000000000000000000000abc"
        );
        assert_eq!(hex::encode(&rows[1].span_id), "b7ad6b7169203331");
        assert_eq!(rows[1].attributes.len(), 2);
        for bad in [
            &b"{"[..],
            br#"{"streams":{}}"#,
            br#"{"streams":[{"values":[]}]}"#,
            br#"{"streams":[{"stream":{"a":"b"},"values":[["x","line"]]}]}"#,
            br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#,
            br#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#,
        ] {
            assert!(
                loki_json_rows(bad, 0).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn loki_protobuf_push() {
        let request = proto::PushRequest {
            streams: vec![proto::StreamAdapter {
                labels: r#"{job="checkout", level="error"}"#.into(),
                entries: vec![proto::EntryAdapter {
                    timestamp: Some(proto::Timestamp {
                        seconds: 2,
                        nanos: 3,
                    }),
                    line: "trace_id=abc failed".into(),
                    ..Default::default()
                }],
                hash: 0,
            }],
        };
        let rows = loki_proto_rows(&request.encode_to_vec(), 0).unwrap();
        assert_eq!(rows[0].timestamp_ns, 2_000_000_003);
        assert_eq!(rows[0].service_name, "checkout");
        assert_eq!(rows[0].label("service_name"), Some("checkout"));
        assert_eq!(
            hex::encode(&rows[0].trace_id),
            "00000000000000000000000000000abc"
        );
        assert!(loki_proto_rows(b"\xff\xff\xff", 0).is_err());
        let mut bad = request;
        bad.streams[0].labels = "job=x".into();
        assert!(loki_proto_rows(&bad.encode_to_vec(), 0).is_err());
    }
}
