use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;

use super::*;
use crate::ingester::{IngesterConfig, WalFsync};
use crate::logs::logql;

fn row(service: &str, time: u64, trace: u8, body: &str) -> LogRow {
    LogRow {
        timestamp_ns: time,
        observed_ns: time,
        service_name: service.into(),
        severity_text: "INFO".into(),
        severity_number: 9,
        body: body.into(),
        trace_id: vec![trace; 16],
        span_id: vec![trace; 8],
        labels: vec![crate::logs::Label::new("service_name", service)],
        ..Default::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    wal: std::path::PathBuf,
    blocks: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        let blocks = dir.path().join("blocks");
        std::fs::create_dir_all(&blocks).unwrap();
        Fixture {
            _dir: dir,
            wal,
            blocks,
        }
    }

    async fn open(&self) -> Arc<LogStore> {
        let config = LogsConfig {
            wal_path: self.wal.clone(),
            row_group_rows: 4,
            ..LogsConfig::default()
        };
        let ingester = IngesterConfig {
            wal_fsync: WalFsync::Always,
            ..IngesterConfig::default()
        };
        let backend = Arc::new(LocalFileSystem::new_with_prefix(&self.blocks).unwrap());
        LogStore::open_with_backend(config, &ingester, backend, Duration::from_secs(300))
            .await
            .unwrap()
    }
}

fn trace_search(trace: u8) -> LogSearch {
    let mut search = LogSearch::all(1000);
    search.trace_id = Some([trace; 16]);
    search
}

fn bodies(rows: &[LogRow]) -> Vec<&str> {
    rows.iter().map(|row| row.body.as_str()).collect()
}

#[tokio::test]
async fn pushes_survive_a_crash_through_the_wal() {
    let fixture = Fixture::new();
    let store = fixture.open().await;
    store
        .push("t", vec![row("a", 2, 1, "second"), row("b", 1, 1, "first")])
        .await
        .unwrap();
    store
        .push("t", vec![row("a", 3, 2, "other")])
        .await
        .unwrap();
    let found = store.search("t", &trace_search(1)).await.unwrap();
    assert_eq!(bodies(&found), vec!["first", "second"]);
    // A crash: no shutdown, the writer thread is joined by Drop.
    drop(store);
    let store = fixture.open().await;
    assert_eq!(store.counters.replayed_records.load(Ordering::Relaxed), 2);
    let found = store.search("t", &trace_search(1)).await.unwrap();
    assert_eq!(bodies(&found), vec!["first", "second"]);
    assert!(store
        .search("other-tenant", &trace_search(1))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn torn_wal_tail_is_truncated_on_replay() {
    let fixture = Fixture::new();
    let store = fixture.open().await;
    store.push("t", vec![row("a", 1, 1, "kept")]).await.unwrap();
    drop(store);
    let segments = wal::list_segments(&fixture.wal).unwrap();
    let (_, last) = segments.iter().next_back().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    if bytes.is_empty() {
        // The record went to an earlier segment; tear that one.
        let (_, first) = segments.iter().next().unwrap();
        bytes = std::fs::read(first).unwrap();
        std::fs::write(first, &bytes[..bytes.len() - 3]).unwrap();
        let store = fixture.open().await;
        assert!(store
            .search("t", &trace_search(1))
            .await
            .unwrap()
            .is_empty());
        return;
    }
    bytes.extend_from_slice(b"VWL1\x10\x00\x00\x00garbage");
    std::fs::write(last, &bytes).unwrap();
    let store = fixture.open().await;
    assert!(store.counters.wal_truncated_bytes.load(Ordering::Relaxed) > 0);
    assert_eq!(
        bodies(&store.search("t", &trace_search(1)).await.unwrap()),
        vec!["kept"]
    );
}

#[tokio::test]
async fn cut_writes_blocks_then_deletes_wal_and_reads_merge() {
    let fixture = Fixture::new();
    let store = fixture.open().await;
    let mut rows = Vec::new();
    for i in 0..40u64 {
        rows.push(row(
            if i % 2 == 0 { "a" } else { "b" },
            100 + i,
            (i % 5) as u8 + 1,
            &format!("line {i}"),
        ));
    }
    store.push("t", rows).await.unwrap();
    assert!(store.cut("test").await);
    assert_eq!(store.block_count(), 1);
    assert_eq!(store.head_bytes(), 0);
    let disk: u64 = wal::list_segments(&fixture.wal)
        .unwrap()
        .values()
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum();
    assert_eq!(disk, 0, "the WAL holds nothing once the block is written");
    // New rows in the head, old ones in the block: one answer, in time order.
    store
        .push("t", vec![row("a", 1000, 1, "newest")])
        .await
        .unwrap();
    let found = store.search("t", &trace_search(1)).await.unwrap();
    assert_eq!(
        bodies(&found),
        vec![
            "line 0", "line 5", "line 10", "line 15", "line 20", "line 25", "line 30", "line 35",
            "newest"
        ]
    );
    // Service, time and text.
    let mut search = LogSearch::all(3);
    search.service = Some("b".into());
    search.newest_first = true;
    let found = store.search("t", &search).await.unwrap();
    assert_eq!(bodies(&found), vec!["line 39", "line 37", "line 35"]);
    let mut search = LogSearch::all(100);
    search.start_ns = 110;
    search.end_ns = 112;
    search.contains = Some("line 1".into());
    assert_eq!(
        bodies(&store.search("t", &search).await.unwrap()),
        vec!["line 10", "line 11", "line 12"]
    );
    // LogQL over blocks.
    let mut search = LogSearch::all(100);
    search.query =
        Some(logql::parse(r#"{service_name="a"} |~ "line [0-9]$" != "line 4""#).unwrap());
    assert_eq!(
        bodies(&store.search("t", &search).await.unwrap()),
        vec!["line 0", "line 2", "line 6", "line 8"]
    );
    let labels = store.labels("t", 0, u64::MAX, None).await.unwrap();
    assert_eq!(labels, vec!["service_name"]);
    let values = store
        .labels("t", 0, u64::MAX, Some("service_name"))
        .await
        .unwrap();
    assert_eq!(values, vec!["a", "b"]);
    // A restart lists the block from the backend.
    store.shutdown().await;
    drop(store);
    let store = fixture.open().await;
    assert_eq!(
        store.block_count(),
        2,
        "the shutdown cut wrote the head too"
    );
    assert_eq!(store.search("t", &trace_search(1)).await.unwrap().len(), 9);
    // Retention: everything is ancient relative to "now".
    store.apply_retention(u64::MAX).await;
    assert_eq!(store.block_count(), 0);
    assert!(store
        .search("t", &trace_search(1))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn failed_block_writes_keep_rows_readable_and_logged() {
    let fixture = Fixture::new();
    let store = fixture.open().await;
    store.push("t", vec![row("a", 1, 1, "x")]).await.unwrap();
    // Make the block folder unwritable by putting a file where the tenant folder goes.
    std::fs::write(fixture.blocks.join("t"), b"in the way").unwrap();
    assert!(!store.cut("test").await);
    assert_eq!(
        bodies(&store.search("t", &trace_search(1)).await.unwrap()),
        vec!["x"]
    );
    drop(store);
    let store = fixture.open().await;
    assert_eq!(
        bodies(&store.search("t", &trace_search(1)).await.unwrap()),
        vec!["x"],
        "carried over into the new segment"
    );
    std::fs::remove_file(fixture.blocks.join("t")).unwrap();
    assert!(store.cut("retry").await);
    assert_eq!(store.block_count(), 1);
}

#[tokio::test]
async fn head_budget_refuses_pushes() {
    let fixture = Fixture::new();
    let config = LogsConfig {
        wal_path: fixture.wal.clone(),
        max_head_bytes: 1000,
        ..LogsConfig::default()
    };
    let backend = Arc::new(LocalFileSystem::new_with_prefix(&fixture.blocks).unwrap());
    let store = LogStore::open_with_backend(
        config,
        &IngesterConfig::default(),
        backend,
        Duration::from_secs(300),
    )
    .await
    .unwrap();
    let big = row("a", 1, 1, &"x".repeat(2000));
    assert!(matches!(
        store.push("t", vec![big]).await,
        Err(PushError::TooLarge { .. })
    ));
    let mut refused = false;
    for i in 0..20 {
        if let Err(error) = store.push("t", vec![row("a", i, 1, "0123456789")]).await {
            assert!(matches!(error, PushError::Overloaded { .. }));
            refused = true;
            break;
        }
    }
    assert!(refused);
}

#[test]
fn log_root_is_a_sibling_of_the_trace_root() {
    let mut trace = StorageConfig::default();
    assert_eq!(
        log_storage_config(&trace).local.path,
        std::path::PathBuf::from("./data/blocks-logs")
    );
    trace.backend = BackendKind::S3;
    assert_eq!(log_storage_config(&trace).s3.prefix, "vivace-logs");
    trace.s3.prefix = "tempo/".into();
    assert_eq!(log_storage_config(&trace).s3.prefix, "tempo-logs");
}
