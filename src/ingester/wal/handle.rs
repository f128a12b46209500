//! A running write-ahead log: the one front that the ingester and the log store both use to
//! open a directory (lock, replay, start the writer), to log a push against a byte budget, to
//! run the commands of a cut (rotate, carry over, delete before) and to stop the writer.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::{
    lock_dir, payload_len, replay, start_writer, Append, AppendTarget, ReplayReport, WalCommand,
    WalCounters, WalRecord, WriterOptions, MAX_RECORD_PAYLOAD_BYTES,
};
use crate::ingester::push::{OverloadReason, PushError};
use crate::model::TraceId;

/// Why a write-ahead log could not be opened: the step that failed and the I/O error.
#[derive(Debug)]
pub(crate) struct OpenError {
    /// What was being done, e.g. "lock the directory of the logs wal".
    pub action: String,
    pub source: io::Error,
}

/// The byte budget of a push: the limit it is checked against and that limit's config name
/// (named in a refusal).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub limit: u64,
    pub limit_name: &'static str,
}

impl Budget {
    /// `limit` bytes, named `limit_name` in refusals.
    pub fn new(limit: u64, limit_name: &'static str) -> Budget {
        Budget { limit, limit_name }
    }
}

/// One write-ahead log directory with its writer thread running.
pub(crate) struct Wal {
    /// `None` once stopped; pushes `try_send` under the read lock.
    sender: RwLock<Option<SyncSender<WalCommand>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    target: Arc<dyn AppendTarget>,
    counters: Arc<WalCounters>,
    queue_capacity: usize,
    /// What every push is checked against.
    budget: Budget,
    stopping: AtomicBool,
    /// "wal" or "logs wal": how messages name this log.
    name: &'static str,
}

impl Wal {
    /// Blocking start-up: creates and locks `dir`, replays its records in order through
    /// `replay_record`, then starts the writer, which hands acknowledged appends to `target`.
    /// Errors name the step and the log ("lock the directory of the logs wal").
    pub fn open(
        name: &'static str,
        dir: &Path,
        options: WriterOptions,
        budget: Budget,
        target: Arc<dyn AppendTarget>,
        replay_record: impl FnMut(WalRecord),
    ) -> Result<(Wal, ReplayReport), OpenError> {
        let failed = |step: &str| {
            let action = format!("{step} the {name}");
            move |source: io::Error| OpenError { action, source }
        };
        std::fs::create_dir_all(dir).map_err(failed("create the directory of"))?;
        let lock_file = lock_dir(dir).map_err(failed("lock the directory of"))?;
        let report = replay(dir, replay_record).map_err(failed("replay"))?;
        let counters = Arc::new(WalCounters::default());
        let queue_capacity = options.queue_capacity;
        let (sender, thread) = start_writer(
            dir,
            lock_file,
            report.segment_sizes.clone(),
            options,
            Arc::clone(&counters),
            Arc::clone(&target),
        )
        .map_err(failed("start the writer of"))?;
        let wal = Wal {
            sender: RwLock::new(Some(sender)),
            writer_thread: Mutex::new(Some(thread)),
            target,
            counters,
            queue_capacity,
            budget,
            stopping: AtomicBool::new(false),
            name,
        };
        Ok((wal, report))
    }

    /// The writer's counters (bytes written, segments, syncs, failures).
    pub fn counters(&self) -> &WalCounters {
        &self.counters
    }

    /// Logs one push of `pieces` that will hold `reserved_bytes` in memory: checks the record
    /// and the reservation against their limits (the budget given at open), reserves, and
    /// returns once the writer made it durable and handed it to the target. A refused push
    /// reserves nothing.
    pub async fn append(
        &self,
        tenant: &str,
        pieces: Vec<(TraceId, Bytes)>,
        reserved_bytes: u64,
    ) -> Result<(), PushError> {
        let budget = self.budget;
        let record_bytes = payload_len(tenant, &pieces) as u64;
        if record_bytes > MAX_RECORD_PAYLOAD_BYTES as u64 {
            return Err(PushError::TooLarge {
                bytes: record_bytes,
                limit_name: "wal record",
                limit: MAX_RECORD_PAYLOAD_BYTES as u64,
            });
        }
        if reserved_bytes > budget.limit {
            return Err(PushError::TooLarge {
                bytes: reserved_bytes,
                limit_name: budget.limit_name,
                limit: budget.limit,
            });
        }
        if let Err(in_use) = self.target.reserve(reserved_bytes, budget.limit) {
            let reason = OverloadReason::HeadFull {
                limit: budget.limit,
                in_use,
                needed: reserved_bytes,
            };
            return Err(PushError::Overloaded { reason });
        }
        let (ack, acknowledged) = oneshot::channel();
        let append = Append {
            tenant: tenant.to_string(),
            pieces,
            reserved_bytes,
            ack,
        };
        let sent = match self.sender.read().as_ref() {
            Some(sender) => sender.try_send(WalCommand::Append(append)),
            None => Err(TrySendError::Disconnected(WalCommand::Append(append))),
        };
        if let Err(error) = sent {
            self.target.release(reserved_bytes);
            return Err(match error {
                TrySendError::Full(_) => PushError::Overloaded {
                    reason: OverloadReason::WalQueueFull {
                        capacity: self.queue_capacity,
                    },
                },
                TrySendError::Disconnected(_) if self.stopping.load(Ordering::Acquire) => {
                    PushError::ShuttingDown
                }
                TrySendError::Disconnected(_) => PushError::Wal(io::Error::other(format!(
                    "the {} writer has stopped",
                    self.name
                ))),
            });
        }
        // From here the writer owns the reservation: it becomes head bytes or is released.
        match acknowledged.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(PushError::Wal(error)),
            Err(_) => Err(PushError::Wal(io::Error::other(format!(
                "the {} writer stopped before writing the push",
                self.name
            )))),
        }
    }

    /// Syncs and starts a new segment; answers its sequence. Every append acknowledged before
    /// is in an older segment and in the target.
    pub async fn rotate(&self) -> io::Result<u64> {
        self.request(|ack| WalCommand::Rotate { ack }).await
    }

    /// Re-logs `records`, already in memory, into the current segment.
    pub async fn carry_over(&self, records: Vec<WalRecord>) -> io::Result<()> {
        self.request(|ack| WalCommand::CarryOver { records, ack })
            .await
    }

    /// Deletes the segments older than `sequence`; answers how many.
    pub async fn delete_before(&self, sequence: u64) -> io::Result<usize> {
        self.request(|ack| WalCommand::DeleteBefore { sequence, ack })
            .await
    }

    /// Sends a control command to the writer and waits for its answer.
    async fn request<T: Send + 'static>(
        &self,
        make_command: impl FnOnce(oneshot::Sender<io::Result<T>>) -> WalCommand,
    ) -> io::Result<T> {
        let stopped = || io::Error::other(format!("the {} writer has stopped", self.name));
        let sender = self.sender.read().clone().ok_or_else(stopped)?;
        let (ack, answer) = oneshot::channel();
        let command = make_command(ack);
        // The queue may be full of pushes: wait for room on a blocking thread.
        tokio::task::spawn_blocking(move || sender.send(command))
            .await
            .map_err(|error| io::Error::other(error.to_string()))?
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Stops the writer after what is queued and waits for it; answers false when the writer
    /// thread panicked.
    pub async fn stop(&self) -> bool {
        self.stopping.store(true, Ordering::Release);
        // Dropping the only sender ends the writer after what is queued.
        let sender = self.sender.write().take();
        drop(sender);
        let thread = self.writer_thread.lock().take();
        match thread {
            Some(thread) => matches!(
                tokio::task::spawn_blocking(move || thread.join()).await,
                Ok(Ok(()))
            ),
            None => true,
        }
    }
}

impl Drop for Wal {
    /// Without a stop (a test's simulated crash, or a panic unwinding), end the writer and wait
    /// for it, so the directory lock is free when this returns. The wait is at most one batch
    /// write.
    fn drop(&mut self) {
        let sender = self.sender.get_mut().take();
        drop(sender);
        if let Some(thread) = self.writer_thread.get_mut().take() {
            let _ = thread.join();
        }
    }
}

/// Reserves `amount` of the bytes counted in `in_use` unless that would pass `limit`; answers
/// the bytes in use when refusing.
pub(crate) fn reserve_bytes(in_use: &AtomicU64, amount: u64, limit: u64) -> Result<(), u64> {
    in_use
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bytes| {
            bytes.checked_add(amount).filter(|total| *total <= limit)
        })
        .map(|_| ())
}

/// Gives back `amount` of the bytes counted in `in_use`.
pub(crate) fn release_bytes(in_use: &AtomicU64, amount: u64) {
    // Saturating so an accounting bug shows as a wrong stat, never as a wrapped budget.
    let _ = in_use.fetch_update(Ordering::AcqRel, Ordering::Acquire, |bytes| {
        Some(bytes.saturating_sub(amount))
    });
}

/// Counts a push's outcome: `by` into `accepted` when it was acknowledged, one into `refused`
/// when a limit refused it (a failed write or a shutdown is neither).
pub(crate) fn count_outcome(
    outcome: Result<(), PushError>,
    accepted: &AtomicU64,
    by: u64,
    refused: &AtomicU64,
) -> Result<(), PushError> {
    match &outcome {
        Ok(()) => {
            accepted.fetch_add(by, Ordering::Relaxed);
        }
        Err(error) if error.is_refusal() => {
            refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%error, "push refused");
        }
        Err(_) => {}
    }
    outcome
}
