//! A Parquet [`ChunkReader`] over `data.parquet` in object storage, for the synchronous
//! Parquet reader running on a blocking thread.
//!
//! Request economy matters more than bytes on S3-like stores (each GET costs ~10–50 ms): the
//! footer region (`footerSize + 8` bytes, known from meta.json) is fetched once per block and
//! cached by the store, small files are fetched whole on first use, and other reads fetch a
//! read-ahead window so a page header and its page, or neighbouring column chunks, come from
//! one request.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::Mutex;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

/// Parquet files end in a u32 footer length and this magic.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";
const FOOTER_TRAILER_BYTES: u64 = 8;

/// How much a read that misses the cache fetches at least.
const READ_AHEAD_BYTES: u64 = 1024 * 1024;
/// Files up to this size are fetched whole on the first read outside the footer.
const WHOLE_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes of read-ahead windows one reader keeps; the newest window is always kept.
const MAX_WINDOW_BYTES: usize = 16 * 1024 * 1024;
/// When meta.json has no footer size, the first tail read fetches this much.
const TAIL_GUESS_BYTES: u64 = 64 * 1024;

/// Why `data.parquet` could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The object store failed (including the object not existing).
    #[error(transparent)]
    Store(#[from] object_store::Error),
    /// The bytes are not a Parquet file, or disagree with meta.json.
    #[error("{0}")]
    Corrupt(String),
}

/// The last bytes of a Parquet file: footer metadata, its length and the magic.
#[derive(Clone, Debug)]
pub struct FooterTail {
    /// Offset of `bytes` in the file.
    pub start: u64,
    /// The bytes from `start` to the end of the file.
    pub bytes: Bytes,
}

impl FooterTail {
    /// Bytes held, for cache accounting.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Fetches and checks the footer region of a Parquet object of `size` bytes. `footer_size` is
/// meta.json's `footerSize`; 0 (old blocks) means "find out from the file".
pub async fn fetch_footer_tail(
    store: &dyn ObjectStore,
    path: &Path,
    size: u64,
    footer_size: u32,
) -> Result<(FooterTail, u64), OpenError> {
    if size < FOOTER_TRAILER_BYTES + 4 {
        return Err(OpenError::Corrupt(format!(
            "{path}: {size} bytes is too small for a parquet file"
        )));
    }
    let mut requests = 0;
    let guess = if footer_size > 0 {
        u64::from(footer_size) + FOOTER_TRAILER_BYTES
    } else {
        TAIL_GUESS_BYTES.min(size)
    };
    if guess > size {
        return Err(OpenError::Corrupt(format!(
            "{path}: footerSize {footer_size} exceeds the object size {size}"
        )));
    }
    let mut start = size - guess;
    let mut bytes = store.get_range(path, start..size).await?;
    requests += 1;
    let actual_footer = read_trailer(path, &bytes, size)?;
    if footer_size > 0 && actual_footer != footer_size {
        return Err(OpenError::Corrupt(format!(
            "{path}: footer is {actual_footer} bytes but meta.json says footerSize {footer_size}"
        )));
    }
    let needed = u64::from(actual_footer) + FOOTER_TRAILER_BYTES;
    if needed > size {
        return Err(OpenError::Corrupt(format!(
            "{path}: footer length {actual_footer} exceeds the object size {size}"
        )));
    }
    if needed > bytes.len() as u64 {
        start = size - needed;
        bytes = store.get_range(path, start..size).await?;
        requests += 1;
    } else {
        let skip = bytes.len() - needed as usize;
        bytes = bytes.slice(skip..);
        start = size - needed;
    }
    Ok((FooterTail { start, bytes }, requests))
}

fn read_trailer(path: &Path, tail: &Bytes, size: u64) -> Result<u32, OpenError> {
    if tail.len() < FOOTER_TRAILER_BYTES as usize {
        return Err(OpenError::Corrupt(format!(
            "{path}: short read of the footer ({} of {size} bytes)",
            tail.len()
        )));
    }
    let trailer = &tail[tail.len() - FOOTER_TRAILER_BYTES as usize..];
    if &trailer[4..] != PARQUET_MAGIC {
        return Err(OpenError::Corrupt(format!(
            "{path}: does not end in the parquet magic PAR1"
        )));
    }
    Ok(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]))
}

/// Reads `data.parquet` through ranged GETs, for one lookup on one blocking thread.
///
/// Its reads call `Handle::block_on`, so it must be used from a blocking thread
/// (`spawn_blocking`), never from async code.
#[derive(Clone)]
pub struct ObjectChunkReader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    runtime: tokio::runtime::Handle,
    tail: FooterTail,
    windows: Mutex<Vec<Window>>,
    requests: AtomicU64,
    /// Set when a read found the object gone, so the caller can tell "deleted" from "corrupt"
    /// through the Parquet reader's opaque errors.
    missing: AtomicBool,
}

struct Window {
    start: u64,
    bytes: Bytes,
}

impl ObjectChunkReader {
    /// A reader of the `size`-byte object at `path`, with its footer region already fetched.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        size: u64,
        tail: FooterTail,
        runtime: tokio::runtime::Handle,
    ) -> ObjectChunkReader {
        ObjectChunkReader {
            inner: Arc::new(ReaderInner {
                store,
                path,
                size,
                runtime,
                tail,
                windows: Mutex::new(Vec::new()),
                requests: AtomicU64::new(0),
                missing: AtomicBool::new(false),
            }),
        }
    }

    /// Requests this reader has sent so far (the footer fetch not included).
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Whether a read found the object deleted.
    pub fn object_missing(&self) -> bool {
        self.inner.missing.load(Ordering::Relaxed)
    }

    /// Reads `length` bytes at `start`. `read_ahead` widens the fetch to a window for
    /// sequential readers (page headers of unknown length); exact reads (whole pages located
    /// through the offset index) fetch just what was asked, so a lookup that touches one page
    /// per column does not pull a megabyte per column.
    fn read_range(
        &self,
        start: u64,
        length: usize,
        read_ahead: bool,
    ) -> parquet::errors::Result<Bytes> {
        let inner = &self.inner;
        let end = start
            .checked_add(length as u64)
            .filter(|end| *end <= inner.size)
            .ok_or_else(|| {
                ParquetError::EOF(format!(
                    "{}: range {start}+{length} is beyond {} bytes",
                    inner.path, inner.size
                ))
            })?;
        if start >= inner.tail.start {
            let offset = (start - inner.tail.start) as usize;
            return Ok(inner.tail.bytes.slice(offset..offset + length));
        }
        if let Some(bytes) = self.cached(start, end) {
            return Ok(bytes);
        }
        let fetch_end = if inner.size <= WHOLE_FILE_BYTES {
            inner.tail.start.max(end)
        } else {
            // Stop at the cached footer unless the read itself reaches into it.
            let ahead = if read_ahead { READ_AHEAD_BYTES } else { 0 };
            let wanted = end.max(start.saturating_add(ahead));
            if end <= inner.tail.start {
                wanted.min(inner.tail.start)
            } else {
                wanted.min(inner.size)
            }
        };
        let fetch_start = if inner.size <= WHOLE_FILE_BYTES {
            0
        } else {
            start
        };
        let fetched = inner
            .runtime
            .block_on(inner.store.get_range(&inner.path, fetch_start..fetch_end))
            .map_err(|error| {
                if matches!(error, object_store::Error::NotFound { .. }) {
                    inner.missing.store(true, Ordering::Relaxed);
                }
                ParquetError::External(Box::new(error))
            })?;
        inner.requests.fetch_add(1, Ordering::Relaxed);
        if (fetched.len() as u64) != fetch_end - fetch_start {
            return Err(ParquetError::EOF(format!(
                "{}: short read, {} of {} bytes at {fetch_start}",
                inner.path,
                fetched.len(),
                fetch_end - fetch_start
            )));
        }
        let offset = (start - fetch_start) as usize;
        let requested = fetched.slice(offset..offset + length);
        self.remember(Window {
            start: fetch_start,
            bytes: fetched,
        });
        Ok(requested)
    }

    fn cached(&self, start: u64, end: u64) -> Option<Bytes> {
        let windows = self.inner.windows.lock();
        windows.iter().rev().find_map(|window| {
            let window_end = window.start + window.bytes.len() as u64;
            (window.start <= start && end <= window_end).then(|| {
                window
                    .bytes
                    .slice((start - window.start) as usize..(end - window.start) as usize)
            })
        })
    }

    fn remember(&self, window: Window) {
        let mut windows = self.inner.windows.lock();
        windows.push(window);
        let mut held: usize = windows.iter().map(|window| window.bytes.len()).sum();
        while held > MAX_WINDOW_BYTES && windows.len() > 1 {
            held -= windows.remove(0).bytes.len();
        }
    }
}

impl Length for ObjectChunkReader {
    fn len(&self) -> u64 {
        self.inner.size
    }
}

impl ChunkReader for ObjectChunkReader {
    type T = ObjectRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<ObjectRead> {
        if start > self.inner.size {
            return Err(ParquetError::EOF(format!(
                "{}: offset {start} is beyond {} bytes",
                self.inner.path, self.inner.size
            )));
        }
        Ok(ObjectRead {
            reader: self.clone(),
            position: start,
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.read_range(start, length, false)
    }
}

/// A `Read` from an offset of the object, served from the reader's windows; Parquet uses it
/// to decode page headers of unknown length.
pub struct ObjectRead {
    reader: ObjectChunkReader,
    position: u64,
}

impl Read for ObjectRead {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let remaining = self.reader.inner.size.saturating_sub(self.position);
        let length = (buffer.len() as u64).min(remaining) as usize;
        if length == 0 {
            return Ok(0);
        }
        let bytes = self
            .reader
            .read_range(self.position, length, true)
            .map_err(std::io::Error::other)?;
        buffer[..length].copy_from_slice(&bytes);
        self.position += length as u64;
        Ok(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    const TEMPO_DATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tempo-blocks/generated-by-tempo-v3.0.3/vParquet4/single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10/data.parquet"
    );

    async fn golden_in_memory() -> (Arc<dyn ObjectStore>, Path, u64) {
        let data = std::fs::read(TEMPO_DATA).unwrap_or_else(|error| {
            panic!("golden file {TEMPO_DATA} is missing ({error}); see tests/data/README.md")
        });
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("single-tenant/b27b0e53-66a0-4505-afd6-434ae3cd4a10/data.parquet");
        let size = data.len() as u64;
        store.put(&path, PutPayload::from(data)).await.unwrap();
        (store, path, size)
    }

    #[tokio::test]
    async fn reads_tempos_parquet_with_few_requests() {
        let (store, path, size) = golden_in_memory().await;
        let (tail, tail_requests) = fetch_footer_tail(store.as_ref(), &path, size, 19546)
            .await
            .unwrap();
        assert_eq!(tail_requests, 1);
        assert_eq!(tail.bytes.len(), 19546 + 8);
        let reader =
            ObjectChunkReader::new(store, path, size, tail, tokio::runtime::Handle::current());
        let counting = reader.clone();
        let rows = tokio::task::spawn_blocking(move || {
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let file = SerializedFileReader::new(reader).unwrap();
            assert_eq!(file.metadata().num_row_groups(), 1);
            let rows: Result<Vec<_>, _> = file.get_row_iter(None).unwrap().collect();
            rows.unwrap().len()
        })
        .await
        .unwrap();
        assert_eq!(rows, 133);
        // A 92 KB file is fetched whole once; the footer came from the cache.
        assert_eq!(counting.request_count(), 1);
    }

    #[tokio::test]
    async fn finds_the_footer_without_footer_size_and_checks_it() {
        let (store, path, size) = golden_in_memory().await;
        let (tail, _) = fetch_footer_tail(store.as_ref(), &path, size, 0)
            .await
            .unwrap();
        assert_eq!(tail.start, size - 19546 - 8);
        let wrong = fetch_footer_tail(store.as_ref(), &path, size, 1234)
            .await
            .unwrap_err();
        assert!(wrong.to_string().contains("footerSize 1234"), "{wrong}");
        let missing = fetch_footer_tail(store.as_ref(), &Path::from("nope"), size, 1)
            .await
            .unwrap_err();
        assert!(matches!(
            missing,
            OpenError::Store(object_store::Error::NotFound { .. })
        ));
        let not_parquet = Path::from("text");
        store
            .put(
                &not_parquet,
                PutPayload::from_static(b"hello, this is not parquet"),
            )
            .await
            .unwrap();
        assert!(fetch_footer_tail(store.as_ref(), &not_parquet, 26, 0)
            .await
            .unwrap_err()
            .to_string()
            .contains("PAR1"));
    }

    #[tokio::test]
    async fn large_files_are_read_in_windows() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("big");
        let size = 6 * 1024 * 1024u64;
        let content: Vec<u8> = (0..size).map(|offset| (offset % 251) as u8).collect();
        store
            .put(&path, PutPayload::from(content.clone()))
            .await
            .unwrap();
        let tail = FooterTail {
            start: size - 100,
            bytes: Bytes::copy_from_slice(&content[size as usize - 100..]),
        };
        let reader =
            ObjectChunkReader::new(store, path, size, tail, tokio::runtime::Handle::current());
        let probe = reader.clone();
        tokio::task::spawn_blocking(move || {
            // Exact reads fetch just their range.
            assert_eq!(&reader.get_bytes(10, 5).unwrap()[..], &content[10..15]);
            assert_eq!(
                &reader.get_bytes(500_000, 1000).unwrap()[..],
                &content[500_000..501_000]
            );
            assert_eq!(reader.request_count(), 2);
            // A sequential read fetches a read-ahead window that later reads are served from.
            let mut header = [0u8; 64];
            reader
                .get_read(900_000)
                .unwrap()
                .read_exact(&mut header)
                .unwrap();
            assert_eq!(&header[..], &content[900_000..900_064]);
            assert_eq!(
                &reader.get_bytes(1_000_000, 100).unwrap()[..],
                &content[1_000_000..1_000_100]
            );
            assert_eq!(
                reader.request_count(),
                3,
                "served from the read-ahead window"
            );
            assert_eq!(
                &reader.get_bytes(size - 50, 50).unwrap()[..],
                &content[size as usize - 50..]
            );
            assert_eq!(reader.request_count(), 3, "the footer is cached");
            assert!(reader.get_bytes(size - 10, 20).is_err());
            // This read crosses the end of the window that began at 900 000.
            let window_end = 900_000 + READ_AHEAD_BYTES as usize;
            let straddling = reader.get_bytes(window_end as u64 - 10, 20).unwrap();
            assert_eq!(&straddling[..], &content[window_end - 10..window_end + 10]);
            assert_eq!(reader.request_count(), 4);
        })
        .await
        .unwrap();
        assert_eq!(probe.request_count(), 4);
    }
}
