//! The `ringway` binary: parses the command line (Envoy's flag names where Envoy has
//! one), sets up logging, and hands over to the control thread.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, ValueEnum};
use ringway::{config::DriverChoice, control};

/// mimalloc, with each client connection's allocations in their own heap
/// (`ringway::allocator`).
#[cfg(not(feature = "alloc-count"))]
#[global_allocator]
static GLOBAL: ringway::allocator::Mimalloc = ringway::allocator::Mimalloc;

/// With `alloc-count`, mimalloc behind a wrapper that counts each thread's allocations.
#[cfg(feature = "alloc-count")]
#[global_allocator]
static GLOBAL: ringway::alloc_count::Counting<ringway::allocator::Mimalloc> =
    ringway::alloc_count::Counting(ringway::allocator::Mimalloc);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Serve traffic.
    Serve,
    /// Check the config and exit: 0 when valid, 1 with the errors otherwise.
    Validate,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DriverArg {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    /// io_uring or fail.
    #[value(name = "io_uring")]
    IoUring,
    /// epoll.
    Epoll,
}

/// ringway: a thread-per-core reverse proxy on io_uring.
#[derive(Debug, Parser)]
#[command(name = "ringway", version)]
struct Cli {
    /// The config file (YAML).
    #[arg(short = 'c', long = "config-path", value_name = "FILE")]
    config_path: PathBuf,
    /// What to do with it.
    #[arg(long, value_enum, default_value = "serve")]
    mode: Mode,
    /// Number of workers, overriding the config's `workers`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: Option<u16>,
    /// I/O driver, overriding the config's `driver`.
    #[arg(long, value_enum)]
    driver: Option<DriverArg>,
    /// Log level (trace, debug, info, warn, error), or a tracing filter directive.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    log_level: String,
    /// Seconds a shutdown waits for open connections to finish.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    drain_time_s: u64,
    /// Milliseconds a drain keeps accepting after `/ready` turned 503, so that load
    /// balancers stop sending first.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    drain_delay_ms: u64,
    /// Hot restart: 0 starts fresh; N > 0 takes the listening sockets over from the
    /// running ringway (epoch N-1) and tells it to drain once this one is ready.
    #[arg(long, value_name = "N", default_value_t = 0)]
    restart_epoch: u32,
    /// The Unix socket for hot restarts (default: $XDG_RUNTIME_DIR, else /tmp,
    /// `ringway-<admin port>.sock`).
    #[arg(long, value_name = "PATH")]
    hot_restart_socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    control::run(control::Options {
        config_path: cli.config_path,
        validate_only: matches!(cli.mode, Mode::Validate),
        concurrency: cli.concurrency.map(usize::from),
        driver: cli.driver.map(|d| match d {
            DriverArg::Auto => DriverChoice::Auto,
            DriverArg::IoUring => DriverChoice::IoUring,
            DriverArg::Epoll => DriverChoice::Epoll,
        }),
        drain_timeout: Duration::from_secs(cli.drain_time_s),
        drain_delay: Duration::from_millis(cli.drain_delay_ms),
        restart_epoch: cli.restart_epoch,
        hot_restart_socket: cli.hot_restart_socket,
    })
}
