//! The S3 backend against a real S3-protocol server (moto's standalone server, started here on
//! 127.0.0.1): write a block, find its traces, and find them again from a second store that
//! only knows the bucket.
//!
//! Needs moto: `python3 -m pip install 'moto[server]'` (the test-suite script installs it).
//! `VIVACE_TEST_PYTHON` selects the Python interpreter (default `python3`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use vivace::model::{Trace, TraceId};
use vivace::tempodb::backend::{BackendKind, S3Config};
use vivace::tempodb::{StorageConfig, Store};

const INSTALL_HINT: &str = "install it with: python3 -m pip install 'moto[server]'";

/// The moto server process; killed (by its own PID) when the test ends, pass or fail.
struct MotoServer {
    child: Child,
    port: u16,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("VIVACE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

async fn start_moto() -> MotoServer {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import moto.server, flask, flask_cors"])
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {python} ({error}); the S3 test needs Python with moto: {INSTALL_HINT}"
            )
        });
    assert!(
        probe.status.success(),
        "the S3 test needs the moto server, which {python} cannot import ({}); {INSTALL_HINT}",
        String::from_utf8_lossy(&probe.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
    );

    let port = free_port();
    let mut child = Command::new(&python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start moto with {python}: {error}; {INSTALL_HINT}"));
    // Drain moto's request log so the pipe never fills and blocks it; keep the tail for errors.
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || for _line in BufReader::new(stderr).lines() {});
    let server = MotoServer { child, port };

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(format!("http://127.0.0.1:{port}/")).send().await {
            if response.status().is_success() {
                return server;
            }
        }
        assert!(
            Instant::now() < deadline,
            "moto did not answer on 127.0.0.1:{port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn s3_config(port: u16, bucket: &str) -> StorageConfig {
    StorageConfig {
        backend: BackendKind::S3,
        s3: S3Config {
            bucket: bucket.to_string(),
            endpoint: format!("127.0.0.1:{port}"),
            region: "us-east-1".to_string(),
            access_key: "test-access-key".to_string(),
            secret_key: "test-secret-key".to_string(),
            prefix: "vivace/blocks".to_string(),
            insecure: true,
            forcepathstyle: true,
        },
        // Small shards, so the block has several bloom objects to write and read.
        bloom_filter_shard_size_bytes: 8,
        ..StorageConfig::default()
    }
}

fn string_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn make_trace(id: &TraceId, spans: u64) -> Trace {
    let start = 1_700_000_000_000_000_000u64;
    let spans = (0..spans)
        .map(|index| Span {
            trace_id: id.as_bytes().to_vec(),
            span_id: (index + 1).to_be_bytes().to_vec(),
            name: format!("GET /items/{index}"),
            kind: 2,
            start_time_unix_nano: start + index * 1_000_000,
            end_time_unix_nano: start + index * 1_000_000 + 250_000,
            attributes: vec![string_value("http.request.method", "GET")],
            ..Default::default()
        })
        .collect();
    Trace {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_value("service.name", "shop")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn span_count(trace: &Trace) -> usize {
    trace
        .resource_spans
        .iter()
        .flat_map(|batch| &batch.scope_spans)
        .map(|scope| scope.spans.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_writes_finds_and_polls_blocks() {
    let moto = start_moto().await;
    let bucket = "vivace-test";
    let created = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{}/{bucket}", moto.port))
        .send()
        .await
        .expect("create the bucket");
    assert!(
        created.status().is_success(),
        "creating the bucket failed: {}",
        created.status()
    );

    let config = s3_config(moto.port, bucket);
    let writer = Store::open(config.clone())
        .await
        .expect("open the store on S3");
    assert!(writer.tenants().is_empty());

    let traces: Vec<(TraceId, Trace)> = (1..=25u64)
        .map(|value| {
            let id = TraceId::parse_hex(&format!("{value:x}0000000000000000000000cafe"))
                .expect("valid id");
            (id, make_trace(&id, value % 4 + 1))
        })
        .collect();
    let meta = writer
        .write_block("shop-tenant", traces.clone())
        .await
        .expect("write a block to S3");
    assert_eq!(meta.total_objects, 25);
    assert!(meta.bloom_shards > 1);
    for (id, trace) in &traces {
        let found = writer
            .find_trace_by_id("shop-tenant", id, None)
            .await
            .expect("lookup")
            .expect("trace found");
        assert_eq!(span_count(&found), span_count(trace), "trace {id}");
    }

    // The keys are Tempo's, under the configured prefix.
    let listing = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/{bucket}?list-type=2&prefix=vivace/blocks/shop-tenant/",
            moto.port
        ))
        .send()
        .await
        .expect("list the bucket")
        .text()
        .await
        .expect("listing body");
    for object in ["data.parquet", "bloom-0", "index", "meta.json"] {
        let key = format!("vivace/blocks/shop-tenant/{}/{object}", meta.block_id);
        assert!(
            listing.contains(&key),
            "{key} is missing from the bucket listing:\n{listing}"
        );
    }

    // A second store sees the block after a poll, with nothing but the bucket in common.
    let reader = Store::open(config).await.expect("open a second store");
    assert_eq!(reader.blocks("shop-tenant").len(), 1);
    let second = writer
        .write_block("shop-tenant", vec![traces[0].clone()])
        .await
        .expect("write a second block");
    reader.poll().await.expect("poll S3");
    let listed: Vec<_> = reader
        .blocks("shop-tenant")
        .into_iter()
        .map(|block| block.block_id)
        .collect();
    assert!(
        listed.contains(&second.block_id) && listed.contains(&meta.block_id),
        "{listed:?}"
    );
    for (id, trace) in &traces {
        let found = reader
            .find_trace_by_id("shop-tenant", id, None)
            .await
            .expect("lookup")
            .expect("trace found");
        assert_eq!(
            span_count(&found),
            span_count(trace),
            "trace {id} after poll"
        );
    }
    let stats = reader.stats().snapshot();
    assert!(
        stats.bloom_skips > 0,
        "the second block's bloom rules most traces out: {stats:?}"
    );
}

const GOLDEN_BLOCK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tempo-blocks/generated-by-tempo-v3.0.3/vParquet4/single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10"
);
const GOLDEN_TRACE_IDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tempo-blocks/generated-by-tempo-v3.0.3/trace_ids.txt"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_reads_a_block_tempo_wrote() {
    let moto = start_moto().await;
    let bucket = "tempo-bucket";
    let client = reqwest::Client::new();
    let created = client
        .put(format!("http://127.0.0.1:{}/{bucket}", moto.port))
        .send()
        .await
        .expect("create the bucket");
    assert!(
        created.status().is_success(),
        "creating the bucket failed: {}",
        created.status()
    );
    let entries = std::fs::read_dir(GOLDEN_BLOCK).unwrap_or_else(|error| {
        panic!("golden block {GOLDEN_BLOCK} is missing ({error}); see tests/data/README.md")
    });
    for entry in entries {
        let entry = entry.expect("directory entry");
        let name = entry.file_name().to_string_lossy().to_string();
        let key =
            format!("vivace/blocks/single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10/{name}");
        let uploaded = client
            .put(format!("http://127.0.0.1:{}/{bucket}/{key}", moto.port))
            .body(std::fs::read(entry.path()).expect("read golden object"))
            .send()
            .await
            .expect("upload golden object");
        assert!(
            uploaded.status().is_success(),
            "uploading {key} failed: {}",
            uploaded.status()
        );
    }

    let store = Store::open(s3_config(moto.port, bucket))
        .await
        .expect("open the store on S3");
    assert_eq!(store.blocks("single-tenant").len(), 1);
    let ids: Vec<TraceId> = std::fs::read_to_string(GOLDEN_TRACE_IDS)
        .expect("golden trace ids")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| TraceId::parse_hex(line.trim()).expect("valid golden id"))
        .collect();
    assert_eq!(ids.len(), 133);
    let started = Instant::now();
    for id in &ids {
        let trace = store
            .find_trace_by_id("single-tenant", id, None)
            .await
            .expect("lookup");
        assert!(
            trace.is_some_and(|trace| span_count(&trace) > 0),
            "trace {id} of Tempo's block not found on S3"
        );
    }
    let elapsed = started.elapsed();
    let stats = store.stats().snapshot();
    assert_eq!(
        stats.footer_cache_misses, 1,
        "the footer is fetched once: {stats:?}"
    );
    eprintln!(
        "S3 (moto): 133 lookups of Tempo's block in {elapsed:?} ({:?} each), {} data requests",
        elapsed / 133,
        stats.data_requests
    );
}
