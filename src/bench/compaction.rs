//! `vivace bench --compaction`: the memory and CPU of merging blocks. Writes `--spans`
//! generated spans as `--compaction-blocks` blocks in a scratch bucket, then compacts them all
//! into one in a fresh process (`--compaction-input`), so that the figures are the merge's
//! alone and not what the writing left in the allocator. Prints the input and output sizes,
//! wall and CPU time, and the compacting process's RSS before, at peak and the growth.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use crate::bench::search::{current_rss, peak_rss, reset_peak_rss, write_generated_blocks, TENANT};
use crate::bench::BenchArgs;
use crate::tempodb::backend::{BackendKind, LocalConfig};
use crate::tempodb::{CompactorConfig, StorageConfig, Store};

/// The store of the bench's bucket folder.
async fn open_store(blocks: &Path) -> anyhow::Result<Arc<Store>> {
    let config = StorageConfig {
        backend: BackendKind::Local,
        local: LocalConfig {
            path: blocks.to_path_buf(),
        },
        ..StorageConfig::default()
    };
    Ok(Arc::new(
        Store::open(config).await.context("opening the store")?,
    ))
}

/// Writes the input blocks, then runs the compaction in a child process of `binary` (this
/// one, or `--server-binary` for an older build) and prints what it reports.
pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(input) = &args.compaction_input {
        return compact(input).await;
    }
    let blocks = args.compaction_blocks.max(2) as u64;
    let scratch = tempfile::Builder::new()
        .prefix("vivace-bench-compaction-")
        .tempdir()?;
    let bucket = scratch.path().join("blocks");
    let store = open_store(&bucket).await?;
    let started = Instant::now();
    let written = write_generated_blocks(&store, args.spans, args.spans.div_ceil(blocks)).await?;
    let metas = store.blocks(TENANT);
    println!(
        "vivace bench --compaction: {} blocks, {} spans, {:.1} MB of data.parquet (largest {:.1} MB), written in {:.1} s",
        metas.len(),
        written.spans,
        written.bytes as f64 / 1e6,
        metas.iter().map(|meta| meta.size).max().unwrap_or(0) as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    drop(store);
    let binary = match &args.server_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe().context("finding this binary")?,
    };
    let output = tokio::process::Command::new(&binary)
        .arg("bench")
        .arg("--compaction")
        .arg("--compaction-input")
        .arg(&bucket)
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    anyhow::ensure!(
        output.status.success(),
        "the compaction process failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// This process's user + system CPU time.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |time: libc::timeval| {
        Duration::from_secs(time.tv_sec as u64) + Duration::from_micros(time.tv_usec as u64)
    };
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The child: compacts every block under `bucket` into one and prints the figures.
async fn compact(bucket: &Path) -> anyhow::Result<()> {
    let store = open_store(bucket).await?;
    let inputs = store.blocks(TENANT);
    let input_bytes: u64 = inputs.iter().map(|meta| meta.size).sum();
    let input_traces: i64 = inputs.iter().map(|meta| meta.total_objects).sum();
    let config = CompactorConfig {
        compaction_window: Duration::from_secs(365 * 24 * 3600),
        max_input_blocks: inputs.len().max(2),
        max_input_bytes: input_bytes.saturating_mul(2),
        max_compaction_objects: u64::MAX,
        block_retention: Duration::from_secs(100 * 365 * 24 * 3600),
        ..CompactorConfig::default()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    reset_peak_rss();
    let rss_before = current_rss();
    let cpu_before = cpu_time();
    let started = Instant::now();
    let outcome = store
        .compaction_cycle(&config, SystemTime::now())
        .await
        .context("compacting")?;
    let wall = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let peak = peak_rss();
    let outputs = store.blocks(TENANT);
    let output_bytes: u64 = outputs.iter().map(|meta| meta.size).sum();
    println!(
        "compaction: {} inputs ({:.1} MB, {input_traces} traces) -> {} blocks ({:.1} MB); {outcome:?}",
        inputs.len(),
        input_bytes as f64 / 1e6,
        outputs.len(),
        output_bytes as f64 / 1e6
    );
    println!(
        "compaction: wall {:.1} s, cpu {:.1} s ({:.0} input MB per CPU-second)",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        input_bytes as f64 / 1e6 / cpu.as_secs_f64().max(1e-9)
    );
    println!(
        "compaction: rss before {:.1} MB, peak {:.1} MB, growth {:.1} MB",
        rss_before as f64 / 1e6,
        peak as f64 / 1e6,
        peak.saturating_sub(rss_before) as f64 / 1e6
    );
    Ok(())
}
