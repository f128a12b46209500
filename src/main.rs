//! The `vivace` binary: `vivace` / `vivace serve [--config FILE] [--demo]` runs everything;
//! `vivace config defaults` prints the documented default configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use vivace::config::{Config, DEFAULTS_YAML};

/// mimalloc instead of glibc's malloc: a span's life allocates per value (decoding, encoding,
/// compaction), and glibc's malloc and free were about a third of that CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "vivace",
    version,
    about = "The Grafana tracing stack in one binary",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a command, vivace serves with these arguments.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run vivace (the default when no command is given).
    Serve(ServeArgs),
    /// Measure ingest throughput, bytes per span, trace-by-ID latency and memory.
    Bench(vivace::bench::BenchArgs),
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// YAML config file; without it the embedded defaults apply (see `vivace config defaults`).
    #[arg(long, short = 'c', env = "VIVACE_CONFIG_FILE")]
    config: Option<PathBuf>,
    /// Also generate a small, steady demo load of realistic traces so there is something to see.
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the full default configuration, every key documented.
    Defaults,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Config {
            command: ConfigCommand::Defaults,
        } => {
            print!("{DEFAULTS_YAML}");
            ExitCode::SUCCESS
        }
        Command::Bench(args) => {
            vivace::app::init_logging("warn");
            let Some(runtime) = runtime() else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(async {
                if args.lifecycle {
                    vivace::bench::lifecycle::run(&args).await
                } else if args.compaction {
                    vivace::bench::compaction::run(&args).await
                } else {
                    vivace::bench::run(args).await
                }
            }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("vivace bench: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let environment = std::env::vars().filter(|(name, _)| name != "VIVACE_CONFIG_FILE");
            let (config, report) = match Config::load_reporting(args.config.as_deref(), environment)
            {
                Ok(loaded) => loaded,
                Err(error) => {
                    eprintln!("vivace: {error}");
                    return ExitCode::from(2);
                }
            };
            vivace::app::init_logging(&config.server.log_level);
            match &report.memory_budget {
                Some(budget) => {
                    for part in &budget.parts {
                        tracing::info!(
                            key = %part.key.name(),
                            bytes = part.bytes,
                            from = if part.derived { "memory_limit" } else { "explicit" },
                            "memory budget"
                        );
                    }
                    tracing::info!(limit = budget.limit, source = %budget.source, "memory limit");
                }
                None => tracing::info!(
                    "no memory limit (server.memory_limit unset and no cgroup limit); budgets are their individual settings"
                ),
            }
            for name in &report.ignored_environment {
                tracing::debug!(variable = %name, "environment variable names no config key; ignored (config overrides are VIVACE_<SECTION>__<KEY>)");
            }
            let Some(runtime) = runtime() else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(vivace::app::run(config, args.demo)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    eprintln!("vivace: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("vivace: cannot start the async runtime: {error}");
            None
        }
    }
}
