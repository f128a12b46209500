//! Where ingest CPU goes: thread CPU time charged to the lifecycle stage of a span (decode,
//! distributor, generator, WAL, head, block encode, bloom/index, compaction, upload), and the
//! peak RSS seen while each stage was at work.
//!
//! A stage is entered per request or per batch, never per span: [`Stage::run`] around a
//! synchronous piece of work, [`Stage::within`] around a future (charged for the CPU of its
//! polls only, so time spent waiting costs nothing). Stages nest: entering a stage pauses the
//! one running on the thread, so each CPU nanosecond is charged to exactly one stage, the
//! innermost. The clock is `CLOCK_THREAD_CPUTIME_ID`, read twice per entry (a system call of
//! well under a microsecond), which at request granularity is a few nanoseconds per span.
//!
//! Work handed to another thread (`spawn_blocking`, the WAL writer, the generator thread)
//! enters its own stage there; what no stage covers shows as the unaccounted rest
//! (process CPU minus the stages' sum).

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// A step of a span's life after it reaches vivace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Reading an export request: HTTP/gRPC body, gzip, protobuf or JSON decoding, the answer.
    Decode,
    /// Tenant limits, attribute truncation, the split by trace, the generator's copy.
    Distributor,
    /// Span metrics and service graphs on the generator thread.
    Generator,
    /// WAL record encoding, writes and fsyncs.
    Wal,
    /// Making appended traces visible in the head, sweeping idle traces, cutting, and decoding
    /// a cut's pieces for its block.
    Head,
    /// Building the columns of sealed head segments (decoding their pieces, encoding an
    /// in-memory vParquet4 file), so queries read recent traces as blocks.
    HeadColumns,
    /// Parquet encoding of a cut block (combining its trace pieces included).
    BlockEncode,
    /// The bloom filter and row-group index of a cut block.
    BloomIndex,
    /// Reading, merging and re-encoding blocks in the compactor (its uploads are `upload`).
    Compaction,
    /// Object store writes of blocks (the async side; a local backend's file writes run on
    /// object_store's blocking threads and fall in the unaccounted rest).
    Upload,
}

impl Stage {
    /// Every stage, in lifecycle order.
    pub const ALL: [Stage; 10] = [
        Stage::Decode,
        Stage::Distributor,
        Stage::Generator,
        Stage::Wal,
        Stage::Head,
        Stage::HeadColumns,
        Stage::BlockEncode,
        Stage::BloomIndex,
        Stage::Compaction,
        Stage::Upload,
    ];

    /// The `stage` label value.
    pub const fn label(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Distributor => "distributor",
            Stage::Generator => "generator",
            Stage::Wal => "wal",
            Stage::Head => "head",
            Stage::HeadColumns => "head_columns",
            Stage::BlockEncode => "block_encode",
            Stage::BloomIndex => "bloom_index",
            Stage::Compaction => "compaction",
            Stage::Upload => "upload",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }

    /// Runs `work` on this thread, charging its CPU time to this stage.
    pub fn run<T>(self, work: impl FnOnce() -> T) -> T {
        let _entered = self.enter();
        work()
    }

    /// Charges the CPU time of `future`'s polls to this stage.
    pub fn within<F: Future>(self, future: F) -> InStage<F> {
        InStage {
            stage: self,
            future: Box::pin(future),
            started: false,
        }
    }

    /// Charges this thread's CPU time to this stage until the guard drops. The guard is not
    /// `Send`, so it cannot be held across an `.await` of a `Send` future.
    pub fn enter(self) -> StageGuard {
        let now = thread_cpu_ns();
        let outer = CURRENT.with(|current| current.replace(Some((self, now))));
        if let Some((outer_stage, since)) = outer {
            charge(outer_stage, now.saturating_sub(since));
        }
        ACTIVE[self.index()].fetch_add(1, Ordering::Relaxed);
        StageGuard {
            stage: self,
            outer: outer.map(|(outer_stage, _)| outer_stage),
            _not_send: PhantomData,
        }
    }
}

/// Restores the outer stage (if any) when dropped; see [`Stage::enter`].
pub struct StageGuard {
    stage: Stage,
    outer: Option<Stage>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for StageGuard {
    fn drop(&mut self) {
        let now = thread_cpu_ns();
        let restored = self.outer.map(|outer_stage| (outer_stage, now));
        let ending = CURRENT.with(|current| current.replace(restored));
        if let Some((stage, since)) = ending {
            charge(stage, now.saturating_sub(since));
        }
        ACTIVE[self.stage.index()].fetch_sub(1, Ordering::Relaxed);
    }
}

/// A future whose polls are charged to a stage; see [`Stage::within`]. It counts as at work
/// (for the peak RSS of its stage) from its first poll until it completes or is dropped.
pub struct InStage<F> {
    stage: Stage,
    // Boxed so the wrapper is `Unpin` without unsafe pin projection: one allocation per
    // request or batch.
    future: Pin<Box<F>>,
    started: bool,
}

impl<F: Future> Future for InStage<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if !this.started {
            this.started = true;
            IN_FLIGHT[this.stage.index()].fetch_add(1, Ordering::Relaxed);
        }
        let polled = {
            let _entered = this.stage.enter();
            this.future.as_mut().poll(context)
        };
        if polled.is_ready() {
            this.started = false;
            IN_FLIGHT[this.stage.index()].fetch_sub(1, Ordering::Relaxed);
        }
        polled
    }
}

impl<F> Drop for InStage<F> {
    fn drop(&mut self) {
        if self.started {
            IN_FLIGHT[self.stage.index()].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

thread_local! {
    /// The stage running on this thread and the thread CPU clock when it (re)started.
    static CURRENT: Cell<Option<(Stage, u64)>> = const { Cell::new(None) };
}

const STAGES: usize = Stage::ALL.len();

/// CPU nanoseconds charged per stage since start.
static CPU_NS: [AtomicU64; STAGES] = [const { AtomicU64::new(0) }; STAGES];
/// Stage guards alive (synchronous work inside the stage right now).
static ACTIVE: [AtomicI64; STAGES] = [const { AtomicI64::new(0) }; STAGES];
/// Stage futures started and not finished (the stage's work is under way, maybe waiting).
static IN_FLIGHT: [AtomicI64; STAGES] = [const { AtomicI64::new(0) }; STAGES];
/// Highest RSS sampled while the stage was at work.
static PEAK_RSS: [AtomicU64; STAGES] = [const { AtomicU64::new(0) }; STAGES];

fn charge(stage: Stage, nanoseconds: u64) {
    CPU_NS[stage.index()].fetch_add(nanoseconds, Ordering::Relaxed);
    #[cfg(test)]
    tests::CHARGED_HERE.with(|charged| charged.borrow_mut()[stage.index()] += nanoseconds);
}

/// This thread's CPU time in nanoseconds (0 if the clock cannot be read).
pub fn thread_cpu_ns() -> u64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable timespec; the call only writes into it.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if status != 0 {
        return 0;
    }
    (time.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(time.tv_nsec as u64)
}

/// CPU seconds charged to `stage` since start.
pub fn cpu_seconds(stage: Stage) -> f64 {
    CPU_NS[stage.index()].load(Ordering::Relaxed) as f64 / 1e9
}

/// Highest RSS sampled while `stage` was at work (0 before the sampler saw it at work).
pub fn peak_rss_bytes(stage: Stage) -> u64 {
    PEAK_RSS[stage.index()].load(Ordering::Relaxed)
}

/// This process's resident set size now, from `/proc/self/statm` (0 where unavailable).
pub fn current_rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages.saturating_mul(u64::try_from(page_size).unwrap_or(4096))
}

/// Records the RSS now against every stage at work now.
pub fn sample_rss() {
    let rss = current_rss_bytes();
    for stage in Stage::ALL {
        let index = stage.index();
        let at_work = ACTIVE[index].load(Ordering::Relaxed) > 0
            || IN_FLIGHT[index].load(Ordering::Relaxed) > 0;
        if at_work {
            PEAK_RSS[index].fetch_max(rss, Ordering::Relaxed);
        }
    }
}

/// How often the RSS sampler looks.
pub const RSS_SAMPLE_PERIOD: Duration = Duration::from_millis(50);

/// Starts the thread that samples RSS every [`RSS_SAMPLE_PERIOD`] for the stages' peaks; it
/// reads one small proc file per round and lives as long as the process.
pub fn start_rss_sampler() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("vivace-rss-sampler".into())
        .spawn(|| loop {
            sample_rss();
            std::thread::sleep(RSS_SAMPLE_PERIOD);
        })
        .map(|_| ())
}

/// User + system CPU seconds of the whole process since start, threads that ended included
/// (`getrusage`, microsecond precision; 0 where unavailable).
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; the call only writes into it.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// `vivace_stage_cpu_seconds_total{stage}` and `vivace_stage_peak_rss_bytes{stage}`, plus the
/// process total they are read against (`process_cpu_seconds_total`).
pub fn render(out: &mut String) {
    use std::fmt::Write;
    // Written here rather than with telemetry's helpers: the stages are a leaf every role
    // records into, so this module reaches up to nothing.
    let _ = writeln!(
        out,
        "# HELP {PROCESS_CPU_SECONDS} User and system CPU seconds of the whole process."
    );
    let _ = writeln!(out, "# TYPE {PROCESS_CPU_SECONDS} counter");
    let _ = writeln!(out, "{PROCESS_CPU_SECONDS} {}", process_cpu_seconds());
    let _ = writeln!(
        out,
        "# HELP {STAGE_CPU_SECONDS} Thread CPU seconds spent in each stage of ingest (decode, distributor, generator, wal, head, block_encode, bloom_index, compaction, upload); the rest of the process CPU is unaccounted."
    );
    let _ = writeln!(out, "# TYPE {STAGE_CPU_SECONDS} counter");
    for stage in Stage::ALL {
        let _ = writeln!(
            out,
            "{STAGE_CPU_SECONDS}{{stage=\"{}\"}} {}",
            stage.label(),
            cpu_seconds(stage)
        );
    }
    let _ = writeln!(
        out,
        "# HELP {STAGE_PEAK_RSS} Highest resident set size sampled (every 50 ms) while the stage was at work."
    );
    let _ = writeln!(out, "# TYPE {STAGE_PEAK_RSS} gauge");
    for stage in Stage::ALL {
        let _ = writeln!(
            out,
            "{STAGE_PEAK_RSS}{{stage=\"{}\"}} {}",
            stage.label(),
            peak_rss_bytes(stage)
        );
    }
}

/// User + system CPU seconds of the process (counter; the Prometheus clients' name).
pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds_total";
/// Thread CPU seconds per ingest stage (counter, label `stage`).
pub const STAGE_CPU_SECONDS: &str = "vivace_stage_cpu_seconds_total";
/// Peak RSS sampled while a stage was at work (gauge, label `stage`).
pub const STAGE_PEAK_RSS: &str = "vivace_stage_peak_rss_bytes";

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// What this test thread charged, so tests running in parallel do not disturb the
        /// figures a test checks.
        pub(super) static CHARGED_HERE: RefCell<[u64; STAGES]> = const { RefCell::new([0; STAGES]) };
    }

    fn charged_here(stage: Stage) -> u64 {
        CHARGED_HERE.with(|charged| charged.borrow()[stage.index()])
    }

    fn burn(rounds: u64) -> u64 {
        let mut sum = 0u64;
        for round in 0..rounds {
            sum = sum.wrapping_add(std::hint::black_box(round).wrapping_mul(round));
        }
        sum
    }

    #[test]
    fn nested_stages_charge_the_innermost_once() {
        let before_outer = charged_here(Stage::Upload);
        let before_inner = charged_here(Stage::BloomIndex);
        let thread_before = thread_cpu_ns();
        Stage::Upload.run(|| {
            burn(2_000_000);
            Stage::BloomIndex.run(|| burn(2_000_000));
            burn(2_000_000);
        });
        let thread_spent = thread_cpu_ns() - thread_before;
        let outer = charged_here(Stage::Upload) - before_outer;
        let inner = charged_here(Stage::BloomIndex) - before_inner;
        assert!(outer > 0 && inner > 0, "outer {outer} inner {inner}");
        assert!(
            outer + inner <= thread_spent,
            "{outer} + {inner} > {thread_spent}"
        );
        assert!(CURRENT.with(Cell::get).is_none());
    }

    #[test]
    fn a_future_is_charged_for_its_polls_and_restores_the_outer_stage() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let before = charged_here(Stage::Compaction);
        let answer = runtime.block_on(Stage::Compaction.within(async {
            burn(1_000_000);
            tokio::task::yield_now().await;
            assert_eq!(
                CURRENT.with(Cell::get).map(|(stage, _)| stage),
                Some(Stage::Compaction)
            );
            burn(1_000_000)
        }));
        std::hint::black_box(answer);
        assert!(charged_here(Stage::Compaction) > before);
        assert!(CURRENT.with(Cell::get).is_none());
    }

    #[test]
    fn renders_every_stage() {
        let mut text = String::new();
        render(&mut text);
        for stage in Stage::ALL {
            assert!(
                text.contains(&format!(
                    "vivace_stage_cpu_seconds_total{{stage=\"{}\"}}",
                    stage.label()
                )),
                "{text}"
            );
        }
        let lines = text.lines().map(|line| Ok(line.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("parses");
        assert_eq!(scrape.samples.len(), 1 + 2 * Stage::ALL.len());
    }
}
