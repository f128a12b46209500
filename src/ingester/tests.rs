//! Tests of the whole ingester against real files and a recording block sink.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use proptest::prelude::*;

use super::*;

/// A block as the sink received it: tenant and traces.
type RecordedBlock = (String, Vec<(TraceId, Trace)>);

/// Records every block; fails while `failing` is set.
#[derive(Default)]
struct RecordingSink {
    blocks: Mutex<Vec<RecordedBlock>>,
    failing: AtomicBool,
}

#[async_trait]
impl BlockSink for RecordingSink {
    async fn write_block(
        &self,
        tenant: &str,
        traces: Vec<(TraceId, Trace)>,
    ) -> Result<BlockMeta, anyhow::Error> {
        if self.failing.load(Ordering::SeqCst) {
            anyhow::bail!("object store unavailable");
        }
        let meta = placeholder_meta(tenant, &traces);
        self.blocks.lock().push((tenant.to_string(), traces));
        Ok(meta)
    }
}

impl RecordingSink {
    /// Span IDs per trace across every block of `tenant`.
    fn spans_by_trace(&self, tenant: &str) -> BTreeMap<TraceId, BTreeSet<u64>> {
        let mut found: BTreeMap<TraceId, BTreeSet<u64>> = BTreeMap::new();
        for (block_tenant, traces) in self.blocks.lock().iter() {
            if block_tenant != tenant {
                continue;
            }
            for (trace_id, trace) in traces {
                found.entry(*trace_id).or_default().extend(span_ids(trace));
            }
        }
        found
    }

    fn block_count(&self) -> usize {
        self.blocks.lock().len()
    }
}

fn trace_id(number: u8) -> TraceId {
    TraceId([number + 1; 16])
}

/// A trace holding one span per entry of `span_numbers`.
fn trace_with_spans(number: u8, span_numbers: &[u64]) -> (TraceId, Trace) {
    let id = trace_id(number);
    (
        id,
        crate::model::test_support::trace_with_spans(id, span_numbers),
    )
}

fn span_ids(trace: &Trace) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    for batch in &trace.resource_spans {
        for scope_batch in &batch.scope_spans {
            for span in &scope_batch.spans {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&span.span_id);
                ids.insert(u64::from_be_bytes(bytes) - 1);
            }
        }
    }
    ids
}

fn found_spans(ingester: &Ingester, tenant: &str, number: u8) -> BTreeSet<u64> {
    ingester
        .find_trace_by_id(tenant, &trace_id(number))
        .map(|trace| span_ids(&trace))
        .unwrap_or_default()
}

fn test_config(dir: &Path) -> IngesterConfig {
    IngesterConfig {
        wal_path: dir.join("wal"),
        wal_fsync: WalFsync::Always,
        trace_idle_period: Duration::from_secs(10),
        max_block_duration: Duration::from_secs(60),
        complete_block_timeout: Duration::ZERO,
        ..IngesterConfig::default()
    }
}

fn segment_count(config: &IngesterConfig) -> usize {
    wal::list_segments(&config.wal_path)
        .expect("list segments")
        .len()
}

/// Completes every trace idle by then and cuts: two ticks, as the first completion starts the
/// `max_block_duration` clock.
async fn idle_then_cut(ingester: &Ingester) {
    let later = Instant::now() + Duration::from_secs(3600);
    ingester.tick(later).await;
    ingester.tick(later + Duration::from_secs(3600)).await;
}

#[tokio::test]
async fn find_trace_by_id_merges_pieces_pushed_separately() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(RecordingSink::default());
    let ingester = Ingester::open(test_config(dir.path()), sink)
        .await
        .expect("open");
    ingester
        .push("acme", vec![trace_with_spans(1, &[1, 2])])
        .await
        .expect("push");
    ingester
        .push(
            "acme",
            vec![trace_with_spans(1, &[2, 3]), trace_with_spans(2, &[9])],
        )
        .await
        .expect("push");
    assert_eq!(found_spans(&ingester, "acme", 1), BTreeSet::from([1, 2, 3]));
    assert_eq!(found_spans(&ingester, "acme", 2), BTreeSet::from([9]));
    assert!(ingester.find_trace_by_id("acme", &trace_id(7)).is_none());
    assert!(ingester
        .find_trace_by_id("other-tenant", &trace_id(1))
        .is_none());
    let stats = ingester.stats();
    assert_eq!(stats.live_traces, 2);
    assert_eq!(stats.pushes_accepted, 2);
    assert!(stats.wal_syncs >= 1);
    let snapshot = ingester.snapshot("acme");
    assert_eq!(snapshot.len(), 2);
    assert_eq!(ingester.tenants(), vec!["acme".to_string()]);
}

#[tokio::test]
async fn replay_after_drop_without_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config(dir.path());
    {
        let ingester = Ingester::open(config.clone(), Arc::new(RecordingSink::default()))
            .await
            .expect("open");
        for number in 0..20u8 {
            ingester
                .push(
                    "acme",
                    vec![trace_with_spans(
                        number,
                        &[number as u64, 100 + number as u64],
                    )],
                )
                .await
                .expect("push");
        }
        ingester
            .push("globex", vec![trace_with_spans(0, &[7])])
            .await
            .expect("push");
        // Dropped without shutdown: what a crash leaves behind.
    }
    let ingester = Ingester::open(config, Arc::new(RecordingSink::default()))
        .await
        .expect("reopen");
    for number in 0..20u8 {
        assert_eq!(
            found_spans(&ingester, "acme", number),
            BTreeSet::from([number as u64, 100 + number as u64])
        );
    }
    assert_eq!(found_spans(&ingester, "globex", 0), BTreeSet::from([7]));
    assert_eq!(ingester.stats().replayed_records, 21);
}

#[tokio::test]
async fn torn_tail_after_restart_keeps_acknowledged_pushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config(dir.path());
    {
        let ingester = Ingester::open(config.clone(), Arc::new(RecordingSink::default()))
            .await
            .expect("open");
        for number in 0..5u8 {
            ingester
                .push("acme", vec![trace_with_spans(number, &[1])])
                .await
                .expect("push");
        }
    }
    // A half-written record at the end, as a crash in the middle of write() leaves.
    let segments = wal::list_segments(&config.wal_path).expect("list");
    let last = segments.values().next_back().expect("a segment").clone();
    let mut torn = Vec::new();
    let (id, trace) = trace_with_spans(9, &[1]);
    wal::encode_record(
        "acme",
        &[(id, Bytes::from(trace.encode_to_vec()))],
        &mut torn,
    );
    let mut bytes = std::fs::read(&last).expect("read");
    bytes.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(&last, &bytes).expect("write");
    let ingester = Ingester::open(config, Arc::new(RecordingSink::default()))
        .await
        .expect("reopen");
    for number in 0..5u8 {
        assert_eq!(found_spans(&ingester, "acme", number), BTreeSet::from([1]));
    }
    assert!(ingester.find_trace_by_id("acme", &trace_id(9)).is_none());
    assert_eq!(
        ingester.stats().wal_truncated_bytes,
        (torn.len() / 2) as u64
    );
}

#[tokio::test]
async fn idle_cut_writes_a_block_and_deletes_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config(dir.path());
    let sink = Arc::new(RecordingSink::default());
    let ingester = Ingester::open(config.clone(), sink.clone())
        .await
        .expect("open");
    ingester
        .push(
            "acme",
            vec![trace_with_spans(1, &[1, 2]), trace_with_spans(2, &[3])],
        )
        .await
        .expect("push");
    ingester
        .push("globex", vec![trace_with_spans(3, &[4])])
        .await
        .expect("push");
    // Not idle yet: nothing happens.
    ingester.tick(Instant::now()).await;
    assert_eq!(sink.block_count(), 0);
    // Idle: complete, but not yet old enough for a block.
    let later = Instant::now() + Duration::from_secs(11);
    ingester.tick(later).await;
    assert_eq!(ingester.stats().completed_traces, 3);
    assert_eq!(sink.block_count(), 0);
    // Still readable while complete.
    assert_eq!(found_spans(&ingester, "acme", 1), BTreeSet::from([1, 2]));
    ingester.tick(later + config.max_block_duration).await;
    assert_eq!(sink.block_count(), 2, "one block per tenant");
    assert_eq!(
        sink.spans_by_trace("acme"),
        BTreeMap::from([
            (trace_id(1), BTreeSet::from([1, 2])),
            (trace_id(2), BTreeSet::from([3]))
        ])
    );
    let stats = ingester.stats();
    assert_eq!(stats.blocks_flushed, 2);
    assert_eq!(stats.head_bytes, 0);
    assert_eq!(stats.wal_segments, 1);
    assert_eq!(segment_count(&config), 1);
    assert!(ingester.find_trace_by_id("acme", &trace_id(1)).is_none());
    // Nothing flushed comes back after a restart.
    drop(ingester);
    let reopened = Ingester::open(config, sink.clone()).await.expect("reopen");
    assert_eq!(reopened.stats().live_traces, 0);
    assert_eq!(reopened.stats().replayed_records, 0);
}

#[tokio::test]
async fn block_bytes_limit_cuts_without_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = IngesterConfig {
        max_block_bytes: 2_000,
        ..test_config(dir.path())
    };
    let sink = Arc::new(RecordingSink::default());
    let ingester = Ingester::open(config, sink.clone()).await.expect("open");
    for number in 0..30u8 {
        ingester
            .push("acme", vec![trace_with_spans(number, &[1, 2, 3])])
            .await
            .expect("push");
    }
    ingester
        .tick(Instant::now() + Duration::from_secs(11))
        .await;
    assert!(
        sink.block_count() >= 2,
        "split into blocks of about max_block_bytes: {}",
        sink.block_count()
    );
    assert_eq!(sink.spans_by_trace("acme").len(), 30);
}

#[tokio::test]
async fn carry_over_keeps_live_traces_across_cuts_and_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config(dir.path());
    let sink = Arc::new(RecordingSink::default());
    {
        let ingester = Ingester::open(config.clone(), sink.clone())
            .await
            .expect("open");
        ingester
            .push("acme", vec![trace_with_spans(1, &[1])])
            .await
            .expect("push");
        let later = Instant::now() + Duration::from_secs(11);
        ingester.tick(later).await; // trace 1 completes
        ingester
            .push("acme", vec![trace_with_spans(2, &[20])])
            .await
            .expect("push"); // live
        ingester.cut("test", false).await; // 1 flushed, 2 carried over
        assert_eq!(
            sink.spans_by_trace("acme")
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![trace_id(1)]
        );
        ingester
            .push("acme", vec![trace_with_spans(2, &[21])])
            .await
            .expect("push");
        // A second cut with nothing complete still carries trace 2 forward.
        ingester.cut("test", false).await;
        assert_eq!(segment_count(&config), 1);
        assert_eq!(found_spans(&ingester, "acme", 2), BTreeSet::from([20, 21]));
    }
    let ingester = Ingester::open(config.clone(), sink.clone())
        .await
        .expect("reopen");
    assert_eq!(found_spans(&ingester, "acme", 2), BTreeSet::from([20, 21]));
    assert!(
        ingester.find_trace_by_id("acme", &trace_id(1)).is_none(),
        "flushed traces are not replayed"
    );
    // Replay after a carry-over holds each piece once.
    let first = ingester
        .snapshot("acme")
        .into_batches(1, 1)
        .next()
        .expect("a trace");
    assert_eq!(first[0].pieces.len(), 2);
}

#[tokio::test]
async fn failed_block_write_keeps_traces_and_retries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config(dir.path());
    let sink = Arc::new(RecordingSink::default());
    sink.failing.store(true, Ordering::SeqCst);
    {
        let ingester = Ingester::open(config.clone(), sink.clone())
            .await
            .expect("open");
        ingester
            .push("acme", vec![trace_with_spans(1, &[1, 2])])
            .await
            .expect("push");
        idle_then_cut(&ingester).await;
        let stats = ingester.stats();
        assert_eq!(stats.flush_failures, 1);
        assert_eq!(stats.flushing_traces, 1);
        assert_eq!(
            found_spans(&ingester, "acme", 1),
            BTreeSet::from([1, 2]),
            "still readable"
        );
        assert!(stats.head_bytes > 0);
        // The retry waits for its backoff, then succeeds once the store is back.
        ingester.tick(Instant::now()).await;
        assert_eq!(
            ingester.stats().flush_failures,
            1,
            "no retry before the backoff"
        );
        ingester
            .tick(Instant::now() + Duration::from_secs(3600))
            .await;
        assert_eq!(ingester.stats().flush_failures, 2);
        // Crash while the store is still down.
    }
    sink.failing.store(false, Ordering::SeqCst);
    let ingester = Ingester::open(config.clone(), sink.clone())
        .await
        .expect("reopen");
    assert_eq!(
        found_spans(&ingester, "acme", 1),
        BTreeSet::from([1, 2]),
        "unwritten block survives in the wal"
    );
    idle_then_cut(&ingester).await;
    assert_eq!(
        sink.spans_by_trace("acme"),
        BTreeMap::from([(trace_id(1), BTreeSet::from([1, 2]))])
    );
    assert_eq!(ingester.stats().head_bytes, 0);
    assert_eq!(segment_count(&config), 1);
}

#[tokio::test]
async fn retry_after_backoff_writes_the_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Arc::new(RecordingSink::default());
    sink.failing.store(true, Ordering::SeqCst);
    let ingester = Ingester::open(test_config(dir.path()), sink.clone())
        .await
        .expect("open");
    ingester
        .push("acme", vec![trace_with_spans(1, &[1])])
        .await
        .expect("push");
    idle_then_cut(&ingester).await;
    sink.failing.store(false, Ordering::SeqCst);
    ingester
        .tick(Instant::now() + Duration::from_secs(3600))
        .await;
    assert_eq!(sink.block_count(), 1);
    assert_eq!(ingester.stats().flushing_traces, 0);
    assert_eq!(ingester.stats().head_bytes, 0);
}

#[tokio::test]
async fn overload_when_the_head_is_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, sample) = trace_with_spans(1, &[1, 2, 3]);
    let one_push = piece_cost(&Bytes::from(sample.encode_to_vec()));
    let config = IngesterConfig {
        max_head_bytes: one_push * 2,
        ..test_config(dir.path())
    };
    let ingester = Ingester::open(config, Arc::new(RecordingSink::default()))
        .await
        .expect("open");
    ingester
        .push("acme", vec![trace_with_spans(1, &[1, 2, 3])])
        .await
        .expect("first fits");
    ingester
        .push("acme", vec![trace_with_spans(2, &[1, 2, 3])])
        .await
        .expect("second fits");
    let refused = ingester
        .push("acme", vec![trace_with_spans(3, &[1, 2, 3])])
        .await
        .expect_err("head is full");
    assert!(
        matches!(
            refused,
            PushError::Overloaded {
                reason: OverloadReason::HeadFull { .. }
            }
        ),
        "{refused}"
    );
    assert_eq!(refused.http_status(), 429);
    assert!(
        refused
            .to_string()
            .starts_with("ingester overloaded: max_head_bytes limit of "),
        "{refused}"
    );
    let huge = trace_with_spans(4, &(0..200).collect::<Vec<_>>());
    let too_large = ingester
        .push("acme", vec![huge])
        .await
        .expect_err("larger than the head");
    assert_eq!(too_large.http_status(), 413);
    assert!(
        too_large.to_string().contains("max_head_bytes"),
        "{too_large}"
    );
    assert_eq!(ingester.stats().pushes_refused, 2);
    // Once blocks are written the head has room again.
    idle_then_cut(&ingester).await;
    ingester
        .push("acme", vec![trace_with_spans(3, &[1, 2, 3])])
        .await
        .expect("room again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_wal_queue_is_overloaded_not_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = IngesterConfig {
        wal_queue_capacity: 2,
        ..test_config(dir.path())
    };
    let ingester = Ingester::open(config, Arc::new(RecordingSink::default()))
        .await
        .expect("open");
    // Stall the writer: after its first write it waits for the head lock, held by a thread
    // until told to let go.
    let (locked_sender, locked) = std::sync::mpsc::channel::<()>();
    let (release, release_receiver) = std::sync::mpsc::channel::<()>();
    let shared = ingester.shared.clone();
    let holder = std::thread::spawn(move || {
        let _stalled_head = shared.head.lock();
        let _ = locked_sender.send(());
        let _ = release_receiver.recv();
    });
    locked.recv().expect("head locked");
    let mut pushes = Vec::new();
    for number in 0..8u8 {
        let ingester = ingester.clone();
        pushes.push(tokio::spawn(async move {
            ingester
                .push("acme", vec![trace_with_spans(number, &[1])])
                .await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    // Not stats(): it takes the head lock held above.
    while ingester.counters.pushes_refused.load(Ordering::SeqCst) == 0 && Instant::now() < deadline
    {
        tokio::task::yield_now().await;
    }
    release.send(()).expect("release the head");
    holder.join().expect("lock holder");
    let mut refused = 0;
    for push in pushes {
        match push.await.expect("push task") {
            Ok(()) => {}
            Err(error) => {
                assert_eq!(error.http_status(), 429);
                assert_eq!(
                    error.to_string(),
                    "ingester overloaded: wal_queue_capacity limit of 2 pushes waiting for the wal reached"
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "some pushes found the queue full");
    assert!(
        refused <= 6,
        "at least wal_queue_capacity pushes got through: {refused} refused"
    );
    // Refused pushes gave their reservation back.
    let accepted = 8 - refused;
    assert_eq!(ingester.stats().live_traces, accepted as u64);
    let (_, sample) = trace_with_spans(0, &[1]);
    let one_push = piece_cost(&Bytes::from(sample.encode_to_vec()));
    assert_eq!(ingester.stats().head_bytes, one_push * accepted as u64);
}

#[tokio::test]
async fn kept_flushed_traces_stay_readable_and_give_way_under_pressure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, sample) = trace_with_spans(1, &[1, 2, 3]);
    let one_push = piece_cost(&Bytes::from(sample.encode_to_vec()));
    let config = IngesterConfig {
        max_head_bytes: one_push * 2,
        complete_block_timeout: Duration::from_secs(600),
        ..test_config(dir.path())
    };
    let ingester = Ingester::open(config, Arc::new(RecordingSink::default()))
        .await
        .expect("open");
    ingester
        .push("acme", vec![trace_with_spans(1, &[1, 2, 3])])
        .await
        .expect("push");
    ingester
        .push("acme", vec![trace_with_spans(2, &[1, 2, 3])])
        .await
        .expect("push");
    // Complete at 100% of max_head_bytes: the pressure rule cuts at once.
    ingester
        .tick(Instant::now() + Duration::from_secs(11))
        .await;
    assert_eq!(ingester.stats().flushed_traces_kept, 2);
    assert_eq!(found_spans(&ingester, "acme", 1), BTreeSet::from([1, 2, 3]));
    // The head is "full" of flushed traces only: a push evicts them instead of failing.
    ingester
        .push("acme", vec![trace_with_spans(3, &[1, 2, 3])])
        .await
        .expect("evicts kept traces");
    assert_eq!(ingester.stats().flushed_traces_kept, 0);
}

#[tokio::test]
async fn shutdown_flushes_everything_and_refuses_pushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config(dir.path());
    let sink = Arc::new(RecordingSink::default());
    let ingester = Ingester::open(config.clone(), sink.clone())
        .await
        .expect("open");
    let background = ingester.spawn_background();
    for number in 0..10u8 {
        ingester
            .push("acme", vec![trace_with_spans(number, &[1])])
            .await
            .expect("push");
    }
    ingester.shutdown().await;
    background.await.expect("background loop ends");
    assert_eq!(sink.spans_by_trace("acme").len(), 10);
    let refused = ingester
        .push("acme", vec![trace_with_spans(1, &[2])])
        .await
        .expect_err("stopped");
    assert!(matches!(refused, PushError::ShuttingDown));
    assert_eq!(refused.http_status(), 503);
    drop(ingester);
    let reopened = Ingester::open(config, sink).await.expect("reopen");
    assert_eq!(reopened.stats().replayed_records, 0);
}

#[tokio::test]
async fn second_ingester_on_the_same_wal_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config(dir.path());
    let _first = Ingester::open(config.clone(), Arc::new(RecordingSink::default()))
        .await
        .expect("open");
    let second = Ingester::open(config, Arc::new(RecordingSink::default())).await;
    let error = second.err().expect("second open must fail");
    assert!(
        error.to_string().contains("in use by another process"),
        "{error}"
    );
}

#[tokio::test]
async fn concurrent_pushes_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingester = Ingester::open(test_config(dir.path()), Arc::new(RecordingSink::default()))
        .await
        .expect("open");
    let mut tasks = Vec::new();
    for task in 0..16u8 {
        let ingester = ingester.clone();
        tasks.push(tokio::spawn(async move {
            for push in 0..10u64 {
                ingester
                    .push("acme", vec![trace_with_spans(task, &[push])])
                    .await
                    .expect("push");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    for task in 0..16u8 {
        assert_eq!(found_spans(&ingester, "acme", task).len(), 10);
    }
    let stats = ingester.stats();
    assert_eq!(stats.pushes_accepted, 160);
    assert!(stats.wal_syncs <= 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_and_cuts_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = IngesterConfig {
        wal_segment_max_bytes: 8 * 1024,
        ..test_config(dir.path())
    };
    let sink = Arc::new(RecordingSink::default());
    let ingester = Ingester::open(config.clone(), sink.clone())
        .await
        .expect("open");
    let mut pushers = Vec::new();
    for task in 0..8u8 {
        let ingester = ingester.clone();
        pushers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for push in 0..150u64 {
                // Each task spreads over its own traces so traces complete while others grow.
                let number = task * 4 + (push % 4) as u8;
                if ingester
                    .push("acme", vec![trace_with_spans(number, &[push])])
                    .await
                    .is_ok()
                {
                    acknowledged.push((number, push));
                }
            }
            acknowledged
        }));
    }
    // Cut blocks over and over while the pushes run, each time completing everything idle
    // "an hour later", so live traces, cuts and carry-overs interleave with appends.
    let mut round = 0u64;
    while !pushers.iter().all(|pusher| pusher.is_finished()) {
        let later = Instant::now() + Duration::from_secs(3600 * (2 * round + 1));
        ingester.tick(later).await;
        ingester.tick(later + Duration::from_secs(3600)).await;
        round += 1;
        tokio::task::yield_now().await;
    }
    let mut expected: BTreeMap<u8, BTreeSet<u64>> = BTreeMap::new();
    for pusher in pushers {
        for (number, push) in pusher.await.expect("pusher") {
            expected.entry(number).or_default().insert(push);
        }
    }
    assert!(
        sink.block_count() > 1,
        "the cuts ran: {round} rounds, {} blocks",
        sink.block_count()
    );
    drop(ingester);
    let reopened = Ingester::open(config, sink.clone()).await.expect("reopen");
    let in_blocks = sink.spans_by_trace("acme");
    for (number, pushes) in expected {
        let mut found = found_spans(&reopened, "acme", number);
        if let Some(spans) = in_blocks.get(&trace_id(number)) {
            found.extend(spans.iter().copied());
        }
        assert_eq!(found, pushes, "trace {number}");
    }
}

/// One step of a random workload.
#[derive(Debug, Clone)]
enum Step {
    Push {
        tenant: u8,
        trace: u8,
        spans: Vec<u64>,
    },
    /// Complete every trace pushed so far (as if they went idle), without cutting.
    Complete,
    /// Cut blocks of the complete traces, carrying live ones over.
    Cut,
    /// Crash (drop without shutdown) and reopen.
    Restart,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..2u8, 0..6u8, prop::collection::vec(0..40u64, 1..5))
            .prop_map(|(tenant, trace, spans)| Step::Push { tenant, trace, spans }),
        1 => Just(Step::Complete),
        1 => Just(Step::Cut),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Whatever pushes, cuts and crashes happen, after a final replay every acknowledged span
    /// is in a block or in the head.
    #[test]
    fn random_pushes_survive_cuts_and_replay(steps in prop::collection::vec(step_strategy(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = IngesterConfig { wal_fsync: WalFsync::Never, ..test_config(dir.path()) };
            let sink = Arc::new(RecordingSink::default());
            let mut expected: BTreeMap<(u8, u8), BTreeSet<u64>> = BTreeMap::new();
            let mut ingester = Ingester::open(config.clone(), sink.clone()).await.expect("open");
            for step in steps {
                match step {
                    Step::Push { tenant, trace, spans } => {
                        let tenant_name = format!("tenant-{tenant}");
                        ingester.push(&tenant_name, vec![trace_with_spans(trace, &spans)]).await.expect("push");
                        expected.entry((tenant, trace)).or_default().extend(spans);
                    }
                    Step::Complete => ingester.tick(Instant::now() + Duration::from_secs(3600)).await,
                    Step::Cut => {
                        ingester.cut("test", false).await;
                    }
                    Step::Restart => {
                        drop(ingester);
                        ingester = Ingester::open(config.clone(), sink.clone()).await.expect("reopen");
                    }
                }
            }
            drop(ingester);
            let ingester = Ingester::open(config.clone(), sink.clone()).await.expect("final reopen");
            for ((tenant, trace), spans) in expected {
                let tenant_name = format!("tenant-{tenant}");
                let mut found = found_spans(&ingester, &tenant_name, trace);
                if let Some(in_blocks) = sink.spans_by_trace(&tenant_name).get(&trace_id(trace)) {
                    found.extend(in_blocks.iter().copied());
                }
                assert_eq!(found, spans, "tenant {tenant} trace {trace}");
            }
        });
    }
}

/// Environment variable that turns the crash test's re-executed child into the ingesting side.
const CRASH_CHILD_ENV: &str = "VIVACE_INGESTER_CRASH_CHILD";

/// A block sink that makes each block durable as a file (written, synced, renamed), so that
/// what a killed process flushed can be checked after it died.
struct FileSink {
    dir: std::path::PathBuf,
}

#[async_trait]
impl BlockSink for FileSink {
    async fn write_block(
        &self,
        tenant: &str,
        traces: Vec<(TraceId, Trace)>,
    ) -> Result<BlockMeta, anyhow::Error> {
        let meta = placeholder_meta(tenant, &traces);
        let mut bytes = Vec::new();
        for (trace_id, trace) in &traces {
            let encoded = trace.encode_to_vec();
            bytes.extend_from_slice(trace_id.as_bytes());
            bytes.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&encoded);
        }
        let dir = self.dir.clone();
        let name = meta.block_id.to_string();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let temporary = dir.join(format!("{name}.tmp"));
            let mut file = std::fs::File::create(&temporary)?;
            io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, dir.join(format!("{name}.block")))?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await??;
        Ok(meta)
    }
}

/// Span numbers per trace number across every block file in `dir`.
fn spans_in_block_files(dir: &Path) -> BTreeMap<TraceId, BTreeSet<u64>> {
    let mut found: BTreeMap<TraceId, BTreeSet<u64>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("blocks dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|extension| extension.to_str()) != Some("block") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read block");
        let mut offset = 0;
        while offset < bytes.len() {
            let mut id = [0u8; 16];
            id.copy_from_slice(&bytes[offset..offset + 16]);
            let mut length = [0u8; 4];
            length.copy_from_slice(&bytes[offset + 16..offset + 20]);
            let length = u32::from_le_bytes(length) as usize;
            let trace = Trace::decode(&bytes[offset + 20..offset + 20 + length])
                .expect("decode block trace");
            found
                .entry(TraceId(id))
                .or_default()
                .extend(span_ids(&trace));
            offset += 20 + length;
        }
    }
    found
}

/// The trace ID of a crash-test trace number (wider than `trace_id`).
fn crash_trace(number: u64, span: u64) -> (TraceId, Trace) {
    let (_, mut trace) = trace_with_spans(0, &[span]);
    let mut id = [0x77u8; 16];
    id[8..].copy_from_slice(&(number + 1).to_be_bytes());
    for batch in &mut trace.resource_spans {
        for scope_batch in &mut batch.scope_spans {
            for one_span in &mut scope_batch.spans {
                one_span.trace_id = id.to_vec();
            }
        }
    }
    (TraceId(id), trace)
}

fn crash_config(dir: &Path) -> IngesterConfig {
    IngesterConfig {
        wal_path: dir.join("wal"),
        wal_fsync: WalFsync::Always,
        wal_segment_max_bytes: 64 * 1024,
        trace_idle_period: Duration::from_millis(30),
        max_block_duration: Duration::from_millis(100),
        flush_check_period: Duration::from_millis(10),
        complete_block_timeout: Duration::ZERO,
        ..IngesterConfig::default()
    }
}

/// The child: ingest without end, printing each acknowledged span, until killed.
fn run_crash_child(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sink = Arc::new(FileSink {
            dir: dir.join("blocks"),
        });
        let ingester = Ingester::open(crash_config(dir), sink)
            .await
            .expect("child open");
        let _background = ingester.spawn_background();
        let mut tasks = Vec::new();
        for task in 0..4u64 {
            let ingester = ingester.clone();
            tasks.push(tokio::spawn(async move {
                for push in 0u64.. {
                    // Each task cycles through its own 8 traces, so some go idle and get cut
                    // while others keep growing across cuts.
                    let number = task * 1000 + push % 8 + (push / 64) * 8;
                    if ingester
                        .push("acme", vec![crash_trace(number, push)])
                        .await
                        .is_ok()
                    {
                        let mut stdout = io::stdout().lock();
                        let _ = writeln!(stdout, "ack {number} {push}");
                        let _ = stdout.flush();
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}

#[test]
fn kill_nine_during_ingest_loses_nothing_acknowledged() {
    if let Ok(dir) = std::env::var(CRASH_CHILD_ENV) {
        run_crash_child(Path::new(&dir));
        return;
    }
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("blocks")).expect("blocks dir");
    /// Kills the child however this test ends, so no ingesting process outlives it.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "ingester::tests::kill_nine_during_ingest_loses_nothing_acknowledged",
            "--nocapture",
        ])
        .env(CRASH_CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the ingesting child");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("child stdout");
    let mut acknowledged: Vec<(u64, u64)> = Vec::new();
    for line in io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut fields = line
            .strip_prefix("ack ")
            .into_iter()
            .flat_map(|rest| rest.split(' '));
        let number = fields.next().and_then(|field| field.parse::<u64>().ok());
        let push = fields.next().and_then(|field| field.parse::<u64>().ok());
        if let (Some(number), Some(push)) = (number, push) {
            acknowledged.push((number, push));
        }
        // Enough acknowledged pushes that cuts, carry-overs and deletions have happened.
        if acknowledged.len() >= 4000 {
            break;
        }
    }
    // SIGKILL: no destructor, no final sync, no shutdown cut.
    drop(child);
    assert!(
        acknowledged.len() >= 4000,
        "the child stopped early after {} pushes",
        acknowledged.len()
    );
    let blocks_written = std::fs::read_dir(dir.path().join("blocks"))
        .expect("blocks")
        .count();
    assert!(
        blocks_written > 0,
        "the child cut blocks before it was killed"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sink = Arc::new(RecordingSink::default());
    let reopened = runtime
        .block_on(Ingester::open(crash_config(dir.path()), sink))
        .expect("reopen after kill -9");
    let in_blocks = spans_in_block_files(&dir.path().join("blocks"));
    let mut missing = Vec::new();
    for (number, push) in &acknowledged {
        let (trace_id, _) = crash_trace(*number, *push);
        let in_head = reopened
            .find_trace_by_id("acme", &trace_id)
            .is_some_and(|trace| span_ids(&trace).contains(push));
        let in_block = in_blocks
            .get(&trace_id)
            .is_some_and(|spans| spans.contains(push));
        if !in_head && !in_block {
            missing.push((*number, *push));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged spans lost, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test]
async fn sampling_keeps_dropped_traces_out_of_blocks_across_a_crash_and_late_spans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = IngesterConfig {
        sampling: SamplingConfig {
            enabled: true,
            baseline_ratio: 0.0,
            rules: vec![SamplingRule {
                query: r#"{ name = "span 5" }"#.into(),
                ratio: 1.0,
            }],
            ..SamplingConfig::default()
        },
        ..test_config(dir.path())
    };
    let sink = Arc::new(RecordingSink::default());
    sink.failing.store(true, Ordering::SeqCst);
    {
        let ingester = Ingester::open(config.clone(), sink.clone())
            .await
            .expect("open");
        ingester
            .push(
                "acme",
                vec![trace_with_spans(1, &[5]), trace_with_spans(2, &[1])],
            )
            .await
            .expect("push");
        idle_then_cut(&ingester).await;
        assert_eq!(ingester.stats().flush_failures, 1);
        // A failed write counts nothing: the retry will.
        assert_eq!(ingester.stats().sampling, SamplingStats::default());
        // Crash with the batch, dropped trace included, only in the WAL.
    }
    sink.failing.store(false, Ordering::SeqCst);
    let ingester = Ingester::open(config.clone(), sink.clone())
        .await
        .expect("reopen");
    idle_then_cut(&ingester).await;
    assert_eq!(
        sink.spans_by_trace("acme"),
        BTreeMap::from([(trace_id(1), BTreeSet::from([5]))]),
        "the replayed trace 2 is dropped again"
    );
    assert!(ingester.find_trace_by_id("acme", &trace_id(2)).is_none());
    assert_eq!(ingester.stats().head_bytes, 0);
    assert_eq!(segment_count(&config), 1, "the WAL no longer holds trace 2");
    let stats = ingester.stats().sampling;
    assert_eq!((stats.traces[0][0], stats.traces[1][3]), (1, 1));

    // Late pieces follow the first decisions: trace 1's plain span is kept with it, and trace
    // 2 stays dropped although its late span matches the keep rule.
    ingester
        .push(
            "acme",
            vec![trace_with_spans(1, &[7]), trace_with_spans(2, &[5])],
        )
        .await
        .expect("push");
    idle_then_cut(&ingester).await;
    assert_eq!(
        sink.spans_by_trace("acme"),
        BTreeMap::from([(trace_id(1), BTreeSet::from([5, 7]))])
    );
    let stats = ingester.stats().sampling;
    assert_eq!((stats.traces[0][0], stats.traces[1][3]), (2, 2));
    assert_eq!((stats.spans[0][0], stats.spans[1][3]), (2, 2));
}
