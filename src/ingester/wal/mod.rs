//! The write-ahead log: numbered segment files of CRC-framed records, one writer thread doing
//! group commit, and a replay that truncates a torn tail instead of failing.
//!
//! Record format (all integers little-endian):
//!
//! ```text
//! record  := magic "VWL1" (4) | payload_len u32 | crc32 u32 | payload
//!            crc32 = CRC-32 (IEEE) of the 4 payload_len bytes followed by the payload
//! payload := version u8 (=1) | tenant_len u32 | tenant (UTF-8) | piece_count u32 | piece*
//! piece   := trace_id [16] | piece_len u32 | piece (protobuf TracesData holding one trace)
//! ```
//!
//! The length is inside the checksum so that a damaged length is detected rather than
//! followed. A segment is named `<sequence, 20 digits>.wal`; sequences only grow.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::config::WalFsync;
use crate::model::TraceId;
use crate::telemetry::stage::Stage;

mod handle;
pub(crate) use handle::{count_outcome, release_bytes, reserve_bytes, Budget, OpenError, Wal};

/// Marks the start of every record.
pub(crate) const RECORD_MAGIC: [u8; 4] = *b"VWL1";
/// magic + payload length + crc.
pub(crate) const RECORD_HEADER_BYTES: usize = 12;
/// A larger length in a header can only be damage; pushes are far below it.
pub(crate) const MAX_RECORD_PAYLOAD_BYTES: usize = 1 << 30;
const PAYLOAD_VERSION: u8 = 1;
const PIECE_HEADER_BYTES: usize = 16 + 4;
const SEGMENT_SUFFIX: &str = ".wal";
const LOCK_FILE: &str = "LOCK";
/// A group commit writes at most this much before syncing, so one sync's latency stays bounded.
const MAX_COMMIT_BYTES: usize = 32 * 1024 * 1024;
/// Carry-over records are cut at about this size so no single record gets huge.
pub(crate) const CARRY_OVER_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// One logged push or carry-over: a tenant and encoded pieces of its traces.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WalRecord {
    pub tenant: String,
    pub pieces: Vec<(TraceId, Bytes)>,
}

/// Bytes the payload of a record with these pieces takes.
pub(crate) fn payload_len(tenant: &str, pieces: &[(TraceId, Bytes)]) -> usize {
    let pieces_bytes: usize = pieces
        .iter()
        .map(|(_, piece)| PIECE_HEADER_BYTES + piece.len())
        .sum();
    1 + 4 + tenant.len() + 4 + pieces_bytes
}

/// Appends one framed record to `out`. The caller keeps payloads under
/// [`MAX_RECORD_PAYLOAD_BYTES`], so the `u32` lengths cannot overflow.
pub(crate) fn encode_record(tenant: &str, pieces: &[(TraceId, Bytes)], out: &mut Vec<u8>) {
    let length = payload_len(tenant, pieces);
    out.reserve(RECORD_HEADER_BYTES + length);
    out.extend_from_slice(&RECORD_MAGIC);
    let length_bytes = (length as u32).to_le_bytes();
    out.extend_from_slice(&length_bytes);
    let crc_position = out.len();
    out.extend_from_slice(&[0; 4]);
    let payload_start = out.len();
    out.push(PAYLOAD_VERSION);
    out.extend_from_slice(&(tenant.len() as u32).to_le_bytes());
    out.extend_from_slice(tenant.as_bytes());
    out.extend_from_slice(&(pieces.len() as u32).to_le_bytes());
    for (trace_id, piece) in pieces {
        out.extend_from_slice(trace_id.as_bytes());
        out.extend_from_slice(&(piece.len() as u32).to_le_bytes());
        out.extend_from_slice(piece);
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length_bytes);
    hasher.update(&out[payload_start..]);
    out[crc_position..crc_position + 4].copy_from_slice(&hasher.finalize().to_le_bytes());
}

/// Why the bytes at an offset are not a whole, intact record.
#[derive(Debug, PartialEq, Eq)]
enum RecordDamage {
    /// The file ends inside the header or the payload: an interrupted write.
    Incomplete,
    BadMagic,
    ImpossibleLength(usize),
    CrcMismatch,
}

/// Checks the record at `offset` and returns its payload range.
fn check_record(data: &[u8], offset: usize) -> Result<std::ops::Range<usize>, RecordDamage> {
    let rest = &data[offset..];
    if rest.len() < RECORD_HEADER_BYTES {
        return Err(RecordDamage::Incomplete);
    }
    if rest[0..4] != RECORD_MAGIC {
        return Err(RecordDamage::BadMagic);
    }
    let length_bytes: [u8; 4] = [rest[4], rest[5], rest[6], rest[7]];
    let length = u32::from_le_bytes(length_bytes) as usize;
    if length > MAX_RECORD_PAYLOAD_BYTES {
        return Err(RecordDamage::ImpossibleLength(length));
    }
    if rest.len() - RECORD_HEADER_BYTES < length {
        return Err(RecordDamage::Incomplete);
    }
    let stored_crc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
    let payload = &rest[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + length];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length_bytes);
    hasher.update(payload);
    if hasher.finalize() != stored_crc {
        return Err(RecordDamage::CrcMismatch);
    }
    let start = offset + RECORD_HEADER_BYTES;
    Ok(start..start + length)
}

/// Reads a payload whose checksum matched; an error here means a writer bug or an unknown
/// version, never a torn write.
pub(crate) fn decode_payload(payload: &[u8]) -> Result<WalRecord, String> {
    let mut cursor = PayloadCursor {
        data: payload,
        position: 0,
    };
    let version = cursor.take(1)?[0];
    if version != PAYLOAD_VERSION {
        return Err(format!("unknown wal payload version {version}"));
    }
    let tenant_len = cursor.u32()? as usize;
    let tenant = std::str::from_utf8(cursor.take(tenant_len)?)
        .map_err(|error| format!("tenant is not utf-8: {error}"))?
        .to_string();
    let piece_count = cursor.u32()? as usize;
    // Each piece needs at least its header, which bounds the allocation by the payload size.
    let mut pieces = Vec::with_capacity(piece_count.min(payload.len() / PIECE_HEADER_BYTES));
    for _ in 0..piece_count {
        let id_bytes = cursor.take(16)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(id_bytes);
        let piece_len = cursor.u32()? as usize;
        let piece = Bytes::copy_from_slice(cursor.take(piece_len)?);
        pieces.push((TraceId(id), piece));
    }
    if cursor.position != payload.len() {
        return Err(format!(
            "{} unexpected bytes after the last piece",
            payload.len() - cursor.position
        ));
    }
    Ok(WalRecord { tenant, pieces })
}

struct PayloadCursor<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> PayloadCursor<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        let end = self
            .position
            .checked_add(count)
            .filter(|end| *end <= self.data.len());
        match end {
            Some(end) => {
                let slice = &self.data[self.position..end];
                self.position = end;
                Ok(slice)
            }
            None => Err(format!(
                "payload ends at byte {} while reading {count} bytes",
                self.data.len()
            )),
        }
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}{SEGMENT_SUFFIX}"))
}

/// The segments in `dir` by sequence; files that are not segments are left alone.
pub(crate) fn list_segments(dir: &Path) -> io::Result<BTreeMap<u64, PathBuf>> {
    let mut segments = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        match stem.parse::<u64>() {
            Ok(sequence) => {
                segments.insert(sequence, entry.path());
            }
            Err(_) => {
                tracing::warn!(file = %entry.path().display(), "ignoring a .wal file whose name is not a sequence number")
            }
        }
    }
    Ok(segments)
}

/// Takes the exclusive lock on the log directory for the life of the returned file, so two
/// processes never append to one log (a killed process loses the lock with its file handles).
pub(crate) fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "wal directory {} is in use by another process",
                dir.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(error)) => Err(error),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ReplayReport {
    pub segments: u64,
    pub records: u64,
    /// Bytes cut off the end of the last segment (a torn or damaged tail).
    pub truncated_bytes: u64,
    /// Bytes of damaged earlier segments that could not be read.
    pub skipped_bytes: u64,
    /// Records whose checksum matched but whose payload could not be read.
    pub unreadable_records: u64,
    /// Sequence and size of each segment left on disk.
    pub segment_sizes: BTreeMap<u64, u64>,
}

impl ReplayReport {
    /// Stores the records replayed and the bytes truncated into a store's counters.
    pub fn count_into(&self, replayed_records: &AtomicU64, truncated_bytes: &AtomicU64) {
        replayed_records.store(self.records, Ordering::Relaxed);
        truncated_bytes.store(self.truncated_bytes, Ordering::Relaxed);
    }
}

/// Reads every segment in order and hands each intact record to `on_record`. Damage in the
/// last segment is treated as a torn tail and truncated; damage in an earlier segment (which
/// no writer appends to any more) is logged and the rest of that segment skipped.
pub(crate) fn replay(dir: &Path, mut on_record: impl FnMut(WalRecord)) -> io::Result<ReplayReport> {
    let segments = list_segments(dir)?;
    let last_sequence = segments.keys().next_back().copied();
    let mut report = ReplayReport::default();
    for (sequence, path) in &segments {
        let data = fs::read(path)?;
        report.segments += 1;
        let is_last = Some(*sequence) == last_sequence;
        let mut offset = 0usize;
        while offset < data.len() {
            let payload_range = match check_record(&data, offset) {
                Ok(range) => range,
                Err(damage) => {
                    let damaged_bytes = (data.len() - offset) as u64;
                    if is_last {
                        tracing::warn!(segment = %path.display(), offset, truncated_bytes = damaged_bytes, ?damage,
                            "truncating the torn tail of the write-ahead log");
                        let file = OpenOptions::new().write(true).open(path)?;
                        file.set_len(offset as u64)?;
                        file.sync_all()?;
                        report.truncated_bytes += damaged_bytes;
                    } else {
                        tracing::error!(segment = %path.display(), offset, skipped_bytes = damaged_bytes, ?damage,
                            "damaged write-ahead log segment: skipping its remainder");
                        report.skipped_bytes += damaged_bytes;
                    }
                    break;
                }
            };
            let next_offset = payload_range.end;
            match decode_payload(&data[payload_range]) {
                Ok(record) => {
                    report.records += 1;
                    on_record(record);
                }
                Err(problem) => {
                    report.unreadable_records += 1;
                    tracing::error!(segment = %path.display(), offset, %problem, "skipping an unreadable wal record");
                }
            }
            offset = next_offset;
        }
        let size = if is_last {
            offset as u64
        } else {
            data.len() as u64
        };
        report.segment_sizes.insert(*sequence, size);
    }
    Ok(report)
}

/// Counters the writer keeps for the ingester's stats.
#[derive(Debug, Default)]
pub(crate) struct WalCounters {
    pub bytes_written: AtomicU64,
    pub disk_bytes: AtomicU64,
    pub segments: AtomicU64,
    pub syncs: AtomicU64,
    pub write_failures: AtomicU64,
}

/// Where acknowledged appends go: the head, with the byte budget pushes reserve from.
/// `appended` and `append_failed` are called on the writer thread, in log order.
pub(crate) trait AppendTarget: Send + Sync + 'static {
    /// Reserves `amount` bytes for a push unless that would pass `limit`; answers the bytes
    /// in use when refusing.
    fn reserve(&self, amount: u64, limit: u64) -> Result<(), u64>;
    /// Gives back bytes reserved or held.
    fn release(&self, amount: u64);
    /// The append is durable (per the fsync policy); make it visible before it is acknowledged.
    fn appended(&self, tenant: String, pieces: Vec<(TraceId, Bytes)>);
    /// The append failed; give back the memory reserved for it.
    fn append_failed(&self, reserved_bytes: u64) {
        self.release(reserved_bytes);
    }
}

/// A push waiting to be logged.
pub(crate) struct Append {
    pub tenant: String,
    pub pieces: Vec<(TraceId, Bytes)>,
    pub reserved_bytes: u64,
    pub ack: oneshot::Sender<io::Result<()>>,
}

/// What the writer thread is asked to do, in order.
pub(crate) enum WalCommand {
    Append(Append),
    /// Re-logs data already in memory into the current segment and syncs whatever the policy.
    CarryOver {
        records: Vec<WalRecord>,
        ack: oneshot::Sender<io::Result<()>>,
    },
    /// Syncs and starts a new segment; answers its sequence. Every append sent before it is in
    /// an older segment and already handed to the [`AppendTarget`].
    Rotate {
        ack: oneshot::Sender<io::Result<u64>>,
    },
    /// Deletes the segments older than `sequence`; answers how many.
    DeleteBefore {
        sequence: u64,
        ack: oneshot::Sender<io::Result<usize>>,
    },
}

/// Settings of the writer thread.
#[derive(Clone, Debug)]
pub(crate) struct WriterOptions {
    pub fsync: WalFsync,
    pub fsync_interval: Duration,
    pub segment_max_bytes: u64,
    pub queue_capacity: usize,
    /// Fault injection: writes fail with ENOSPC once the segments would hold more than this
    /// many bytes; 0 is off.
    pub disk_full_after_bytes: u64,
}

/// Starts the writer on a new segment after `segment_sizes` (the replayed ones) and returns
/// the sending end of its bounded queue. The thread ends when every sender is dropped.
pub(crate) fn start_writer(
    dir: &Path,
    lock: File,
    segment_sizes: BTreeMap<u64, u64>,
    options: WriterOptions,
    counters: Arc<WalCounters>,
    target: Arc<dyn AppendTarget>,
) -> io::Result<(SyncSender<WalCommand>, JoinHandle<()>)> {
    let next_sequence = segment_sizes.keys().next_back().map_or(1, |last| last + 1);
    counters
        .disk_bytes
        .store(segment_sizes.values().sum(), Ordering::Relaxed);
    let mut writer = SegmentWriter {
        dir: dir.to_path_buf(),
        _lock: lock,
        options: options.clone(),
        file: None,
        sequence: next_sequence,
        offset: 0,
        broken: false,
        unsynced: false,
        last_sync: Instant::now(),
        segment_sizes,
        counters,
    };
    writer.open_segment(next_sequence)?;
    let (sender, receiver) = std::sync::mpsc::sync_channel(options.queue_capacity);
    let thread = std::thread::Builder::new()
        .name("wal-writer".into())
        .spawn(move || run_writer(writer, receiver, target))?;
    Ok((sender, thread))
}

struct SegmentWriter {
    dir: PathBuf,
    /// Held for the writer's life: the directory lock.
    _lock: File,
    options: WriterOptions,
    file: Option<File>,
    sequence: u64,
    /// Bytes of the current segment known to be whole records.
    offset: u64,
    /// The current segment may hold a partial write after `offset` that could not be removed;
    /// nothing more is appended to it.
    broken: bool,
    unsynced: bool,
    last_sync: Instant,
    segment_sizes: BTreeMap<u64, u64>,
    counters: Arc<WalCounters>,
}

impl SegmentWriter {
    fn open_segment(&mut self, sequence: u64) -> io::Result<()> {
        let path = segment_path(&self.dir, sequence);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        // The new name must be durable before anything acknowledged lives only in it.
        sync_dir(&self.dir)?;
        self.file = Some(file);
        self.sequence = sequence;
        self.offset = 0;
        self.broken = false;
        self.unsynced = false;
        self.segment_sizes.insert(sequence, 0);
        self.counters
            .segments
            .store(self.segment_sizes.len() as u64, Ordering::Relaxed);
        tracing::debug!(segment = %path.display(), "started wal segment");
        Ok(())
    }

    fn current_file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("no open wal segment"))
    }

    fn sync(&mut self) -> io::Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        self.current_file()?.sync_data()?;
        self.unsynced = false;
        self.last_sync = Instant::now();
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<u64> {
        if self.broken {
            // Acknowledged records before the damage may still be unsynced (interval, never):
            // try, but a segment known to be damaged must not stop the log from moving on.
            if let Err(error) = self.sync() {
                tracing::error!(sequence = self.sequence, %error, "fsync of a damaged wal segment failed");
            }
        } else {
            self.sync()?;
        }
        let next = self.sequence + 1;
        self.open_segment(next)?;
        Ok(next)
    }

    /// Writes `bytes` as whole records, then syncs if `sync_now`; on failure the segment is cut
    /// back to where it was, so no partial record sits between good ones.
    fn write_records(&mut self, bytes: &[u8], sync_now: bool) -> io::Result<()> {
        if self.broken || (self.offset > 0 && self.offset >= self.options.segment_max_bytes) {
            self.rotate()?;
        }
        let limit = self.options.disk_full_after_bytes;
        if limit > 0
            && self.counters.disk_bytes.load(Ordering::Relaxed) + bytes.len() as u64 > limit
        {
            self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        let start = self.offset;
        let result = self.current_file().and_then(|file| file.write_all(bytes));
        if let Err(error) = result {
            self.rewind_to(start);
            return Err(error);
        }
        self.offset += bytes.len() as u64;
        self.unsynced = true;
        if sync_now {
            if let Err(error) = self.sync() {
                self.rewind_to(start);
                return Err(error);
            }
        }
        self.segment_sizes.insert(self.sequence, self.offset);
        self.counters
            .bytes_written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.counters
            .disk_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn rewind_to(&mut self, offset: u64) {
        self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
        let result = self.current_file().and_then(|file| {
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(())
        });
        self.offset = offset;
        if let Err(error) = result {
            tracing::error!(sequence = self.sequence, %error, "cannot cut a failed wal write back; continuing in a new segment");
            self.broken = true;
        }
    }

    fn sync_if_due(&mut self) {
        if self.unsynced && self.last_sync.elapsed() >= self.options.fsync_interval {
            if let Err(error) = self.sync() {
                tracing::error!(sequence = self.sequence, %error, "periodic wal fsync failed");
            }
        }
    }

    fn delete_before(&mut self, sequence: u64) -> io::Result<usize> {
        let doomed: Vec<u64> = self
            .segment_sizes
            .range(..sequence)
            .map(|(old, _)| *old)
            .filter(|old| *old != self.sequence)
            .collect();
        for old in &doomed {
            let path = segment_path(&self.dir, *old);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
            if let Some(size) = self.segment_sizes.remove(old) {
                self.counters.disk_bytes.fetch_sub(size, Ordering::Relaxed);
            }
        }
        self.counters
            .segments
            .store(self.segment_sizes.len() as u64, Ordering::Relaxed);
        // A deleted segment coming back after power loss would only replay duplicates, but
        // syncing keeps the directory honest.
        sync_dir(&self.dir)?;
        Ok(doomed.len())
    }
}

/// Linux's "No space left on device".
const ENOSPC: i32 = 28;

/// A copy of an I/O error for each waiter of a failed group commit.
fn copy_error(error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), error.to_string())
}

fn run_writer(
    mut writer: SegmentWriter,
    receiver: Receiver<WalCommand>,
    target: Arc<dyn AppendTarget>,
) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut waiting: Vec<Append> = Vec::new();
    loop {
        let waits_for_sync = writer.options.fsync == WalFsync::Interval && writer.unsynced;
        let first = if waits_for_sync {
            let remaining = writer
                .options
                .fsync_interval
                .saturating_sub(writer.last_sync.elapsed());
            match receiver.recv_timeout(remaining) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    writer.sync_if_due();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match receiver.recv() {
                Ok(command) => command,
                Err(_) => break,
            }
        };
        let _wal = Stage::Wal.enter();
        // Group commit: take everything queued meanwhile, bounded by the queue's capacity.
        let mut commands = vec![first];
        while commands.len() < writer.options.queue_capacity {
            match receiver.try_recv() {
                Ok(command) => commands.push(command),
                Err(_) => break,
            }
        }
        for command in commands {
            match command {
                WalCommand::Append(append) => {
                    encode_record(&append.tenant, &append.pieces, &mut buffer);
                    waiting.push(append);
                    if buffer.len() >= MAX_COMMIT_BYTES {
                        commit(&mut writer, &mut buffer, &mut waiting, target.as_ref());
                    }
                }
                WalCommand::CarryOver { records, ack } => {
                    commit(&mut writer, &mut buffer, &mut waiting, target.as_ref());
                    let _ = ack.send(carry_over(&mut writer, &records));
                }
                WalCommand::Rotate { ack } => {
                    commit(&mut writer, &mut buffer, &mut waiting, target.as_ref());
                    let _ = ack.send(writer.rotate());
                }
                WalCommand::DeleteBefore { sequence, ack } => {
                    commit(&mut writer, &mut buffer, &mut waiting, target.as_ref());
                    let _ = ack.send(writer.delete_before(sequence));
                }
            }
        }
        commit(&mut writer, &mut buffer, &mut waiting, target.as_ref());
        if writer.options.fsync == WalFsync::Interval {
            writer.sync_if_due();
        }
    }
    // Every sender is gone: a graceful stop. Sync whatever the policy left unsynced.
    if !writer.broken {
        if let Err(error) = writer.sync() {
            tracing::error!(%error, "final wal fsync failed");
        }
    }
    tracing::debug!(sequence = writer.sequence, "wal writer stopped");
}

/// Re-logs `records` in chunks of bounded size, then syncs whatever the policy: old segments
/// are deleted on the strength of it. A failure part-way leaves whole records only, which
/// replay as harmless duplicates.
fn carry_over(writer: &mut SegmentWriter, records: &[WalRecord]) -> io::Result<()> {
    let mut chunk = Vec::new();
    for record in records {
        encode_record(&record.tenant, &record.pieces, &mut chunk);
        if chunk.len() >= MAX_COMMIT_BYTES {
            writer.write_records(&chunk, false)?;
            chunk.clear();
        }
    }
    writer.write_records(&chunk, true)
}

/// Writes the queued appends as one batch, syncs per policy, makes them visible, acknowledges.
fn commit(
    writer: &mut SegmentWriter,
    buffer: &mut Vec<u8>,
    waiting: &mut Vec<Append>,
    target: &dyn AppendTarget,
) {
    if waiting.is_empty() {
        return;
    }
    let sync_now = writer.options.fsync == WalFsync::Always;
    let result = writer.write_records(buffer, sync_now);
    buffer.clear();
    match result {
        Ok(()) => {
            let _head = Stage::Head.enter();
            for append in waiting.drain(..) {
                target.appended(append.tenant, append.pieces);
                let _ = append.ack.send(Ok(()));
            }
        }
        Err(error) => {
            tracing::error!(%error, pushes = waiting.len(), "wal write failed");
            for append in waiting.drain(..) {
                target.append_failed(append.reserved_bytes);
                let _ = append.ack.send(Err(copy_error(&error)));
            }
        }
    }
    // Keep a burst's buffer from pinning memory for the life of the process.
    if buffer.capacity() > MAX_COMMIT_BYTES * 2 {
        *buffer = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Collect {
        appended: Mutex<Vec<WalRecord>>,
        failed_bytes: AtomicU64,
    }

    impl AppendTarget for Collect {
        fn reserve(&self, _amount: u64, _limit: u64) -> Result<(), u64> {
            Ok(())
        }
        fn release(&self, amount: u64) {
            self.failed_bytes.fetch_add(amount, Ordering::Relaxed);
        }
        fn appended(&self, tenant: String, pieces: Vec<(TraceId, Bytes)>) {
            self.appended.lock().push(WalRecord { tenant, pieces });
        }
    }

    fn record(tenant: &str, seed: u8, piece_count: usize) -> WalRecord {
        let pieces = (0..piece_count)
            .map(|index| {
                let id = TraceId([seed.wrapping_add(index as u8) | 1; 16]);
                let piece = Bytes::from(vec![seed; 10 + index * 7]);
                (id, piece)
            })
            .collect();
        WalRecord {
            tenant: tenant.to_string(),
            pieces,
        }
    }

    fn options(fsync: WalFsync) -> WriterOptions {
        WriterOptions {
            fsync,
            fsync_interval: Duration::from_millis(20),
            segment_max_bytes: 1024 * 1024,
            queue_capacity: 64,
            disk_full_after_bytes: 0,
        }
    }

    /// Appends the records through a real writer thread and stops it.
    fn write_through_writer(dir: &Path, records: &[WalRecord], fsync: WalFsync) -> Arc<Collect> {
        let target = Arc::new(Collect::default());
        let lock = lock_dir(dir).expect("lock");
        let existing = replay(dir, |_| {}).expect("replay").segment_sizes;
        let (sender, thread) = start_writer(
            dir,
            lock,
            existing,
            options(fsync),
            Arc::new(WalCounters::default()),
            target.clone(),
        )
        .expect("writer");
        let mut acks = Vec::new();
        for record in records {
            let (ack, ack_receiver) = oneshot::channel();
            let append = Append {
                tenant: record.tenant.clone(),
                pieces: record.pieces.clone(),
                reserved_bytes: 1,
                ack,
            };
            sender.send(WalCommand::Append(append)).expect("send");
            acks.push(ack_receiver);
        }
        for ack in acks {
            ack.blocking_recv().expect("acknowledged").expect("written");
        }
        drop(sender);
        thread.join().expect("writer thread");
        target
    }

    fn replay_all(dir: &Path) -> (Vec<WalRecord>, ReplayReport) {
        let mut records = Vec::new();
        let report = replay(dir, |record| records.push(record)).expect("replay");
        (records, report)
    }

    #[test]
    fn record_round_trip() {
        let original = record("tenant-a", 3, 4);
        let mut bytes = Vec::new();
        encode_record(&original.tenant, &original.pieces, &mut bytes);
        let range = check_record(&bytes, 0).expect("intact");
        assert_eq!(range.end, bytes.len());
        assert_eq!(decode_payload(&bytes[range]).expect("decodes"), original);
    }

    #[test]
    fn wal_round_trip_through_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records: Vec<WalRecord> = (0..50)
            .map(|seed| record(&format!("t{}", seed % 3), seed, 3))
            .collect();
        let target = write_through_writer(dir.path(), &records, WalFsync::Always);
        assert_eq!(*target.appended.lock(), records);
        let (replayed, report) = replay_all(dir.path());
        assert_eq!(replayed, records);
        assert_eq!(report.truncated_bytes, 0);
        // A second run appends to a new segment; both replay in order.
        let more: Vec<WalRecord> = (50..60).map(|seed| record("t9", seed, 2)).collect();
        write_through_writer(dir.path(), &more, WalFsync::Never);
        let (replayed, report) = replay_all(dir.path());
        assert_eq!(report.segments, 2);
        let expected: Vec<WalRecord> = records.iter().chain(more.iter()).cloned().collect();
        assert_eq!(replayed, expected);
    }

    #[test]
    fn interval_policy_writes_and_replays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records: Vec<WalRecord> = (0..20).map(|seed| record("t", seed, 1)).collect();
        write_through_writer(dir.path(), &records, WalFsync::Interval);
        assert_eq!(replay_all(dir.path()).0, records);
    }

    #[test]
    fn second_writer_on_one_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _held = lock_dir(dir.path()).expect("first lock");
        let error = lock_dir(dir.path()).expect_err("second lock must fail");
        assert!(
            error.to_string().contains("in use by another process"),
            "{error}"
        );
    }

    fn single_segment(dir: &Path) -> PathBuf {
        let segments = list_segments(dir).expect("list");
        assert_eq!(segments.len(), 1);
        segments.into_values().next().expect("one segment")
    }

    #[test]
    fn torn_tail_is_truncated_at_every_offset() {
        let records: Vec<WalRecord> = (0..4).map(|seed| record("t", seed, 2)).collect();
        let mut full = Vec::new();
        for one in &records {
            encode_record(&one.tenant, &one.pieces, &mut full);
        }
        let mut last_record = Vec::new();
        encode_record(&records[3].tenant, &records[3].pieces, &mut last_record);
        let intact_len = full.len() - last_record.len();
        // Every cut inside the last record leaves the first three records and nothing else.
        for cut in intact_len..full.len() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = segment_path(dir.path(), 1);
            fs::write(&path, &full[..cut]).expect("write");
            let (replayed, report) = replay_all(dir.path());
            assert_eq!(replayed, records[..3], "cut at {cut}");
            assert_eq!(report.truncated_bytes, (cut - intact_len) as u64);
            assert_eq!(fs::metadata(&path).expect("stat").len(), intact_len as u64);
        }
    }

    #[test]
    fn garbage_after_the_last_record_is_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records: Vec<WalRecord> = (0..5).map(|seed| record("t", seed, 2)).collect();
        write_through_writer(dir.path(), &records, WalFsync::Always);
        let path = single_segment(dir.path());
        let intact_len = fs::metadata(&path).expect("stat").len();
        let garbage_tails: [Vec<u8>; 3] = [
            vec![0; 4096],
            b"VWL1\xff\xff\x00\x00garbage".to_vec(),
            vec![0xab; 13],
        ];
        for garbage in garbage_tails {
            let mut file = OpenOptions::new().append(true).open(&path).expect("open");
            file.write_all(&garbage).expect("append garbage");
            drop(file);
            let (replayed, report) = replay_all(dir.path());
            assert_eq!(replayed, records);
            assert_eq!(report.truncated_bytes, garbage.len() as u64);
            assert_eq!(fs::metadata(&path).expect("stat").len(), intact_len);
        }
    }

    #[test]
    fn crc_corruption_in_an_earlier_segment_skips_its_remainder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first: Vec<WalRecord> = (0..3).map(|seed| record("t", seed, 2)).collect();
        write_through_writer(dir.path(), &first, WalFsync::Always);
        let second: Vec<WalRecord> = (10..12).map(|seed| record("t", seed, 2)).collect();
        write_through_writer(dir.path(), &second, WalFsync::Always);
        let segments = list_segments(dir.path()).expect("list");
        let first_path = segments.values().next().expect("first segment").clone();
        let mut bytes = fs::read(&first_path).expect("read");
        let mut one = Vec::new();
        encode_record(&first[0].tenant, &first[0].pieces, &mut one);
        // Flip a payload byte of the second record.
        let position = one.len() + RECORD_HEADER_BYTES + 5;
        bytes[position] ^= 0x40;
        fs::write(&first_path, &bytes).expect("write");
        let (replayed, report) = replay_all(dir.path());
        let expected: Vec<WalRecord> = std::iter::once(first[0].clone())
            .chain(second.iter().cloned())
            .collect();
        assert_eq!(replayed, expected);
        assert_eq!(report.skipped_bytes, (bytes.len() - one.len()) as u64);
        assert_eq!(report.truncated_bytes, 0);
        // The earlier segment is left as it was, for inspection.
        assert_eq!(fs::read(&first_path).expect("read").len(), bytes.len());
    }

    #[test]
    fn crc_corruption_in_the_last_segment_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records: Vec<WalRecord> = (0..3).map(|seed| record("t", seed, 2)).collect();
        write_through_writer(dir.path(), &records, WalFsync::Always);
        let path = single_segment(dir.path());
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&path, &bytes).expect("write");
        let (replayed, report) = replay_all(dir.path());
        assert_eq!(replayed, records[..2]);
        assert!(report.truncated_bytes > 0);
    }

    #[test]
    fn rotation_and_deletion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = Arc::new(Collect::default());
        let lock = lock_dir(dir.path()).expect("lock");
        let counters = Arc::new(WalCounters::default());
        let (sender, thread) = start_writer(
            dir.path(),
            lock,
            BTreeMap::new(),
            options(WalFsync::Always),
            counters.clone(),
            target.clone(),
        )
        .expect("writer");
        let (ack, ack_receiver) = oneshot::channel();
        let first = record("t", 1, 1);
        sender
            .send(WalCommand::Append(Append {
                tenant: first.tenant.clone(),
                pieces: first.pieces.clone(),
                reserved_bytes: 0,
                ack,
            }))
            .expect("send");
        let (rotate_ack, rotate_receiver) = oneshot::channel();
        sender
            .send(WalCommand::Rotate { ack: rotate_ack })
            .expect("send");
        ack_receiver.blocking_recv().expect("ack").expect("ok");
        let new_sequence = rotate_receiver
            .blocking_recv()
            .expect("ack")
            .expect("rotated");
        assert_eq!(new_sequence, 2);
        let carried = record("t", 2, 1);
        let (carry_ack, carry_receiver) = oneshot::channel();
        sender
            .send(WalCommand::CarryOver {
                records: vec![carried.clone()],
                ack: carry_ack,
            })
            .expect("send");
        carry_receiver
            .blocking_recv()
            .expect("ack")
            .expect("carried");
        assert_eq!(counters.segments.load(Ordering::Relaxed), 2);
        let (delete_ack, delete_receiver) = oneshot::channel();
        sender
            .send(WalCommand::DeleteBefore {
                sequence: new_sequence,
                ack: delete_ack,
            })
            .expect("send");
        assert_eq!(
            delete_receiver
                .blocking_recv()
                .expect("ack")
                .expect("deleted"),
            1
        );
        assert_eq!(counters.segments.load(Ordering::Relaxed), 1);
        drop(sender);
        thread.join().expect("join");
        // Carried-over records are not handed to the target a second time.
        assert_eq!(target.appended.lock().len(), 1);
        assert_eq!(replay_all(dir.path()).0, vec![carried]);
    }
}
