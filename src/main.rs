//! The `ringway` binary: parses the command line (Envoy's flag names where Envoy has
//! one), sets up logging, and hands over to the control thread.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, ValueEnum};
use ringway::{config::DriverChoice, control};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

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
///
/// Envoy's flags are accepted with Envoy's meaning (docs/operations.md, "Command line"):
/// those ringway acts on, and those that only need to be tolerated where orchestrators
/// pass them (Istio's pilot-agent, Kuma's kuma-dp, Consul), which `/server_info` echoes.
/// An unknown flag is an error naming it, as in Envoy.
#[derive(Debug, Parser)]
#[command(name = "ringway", disable_version_flag = true)]
struct Cli {
    /// The config file (YAML).
    #[arg(short = 'c', long = "config-path", value_name = "FILE")]
    config_path: Option<PathBuf>,
    /// Print the version (Envoy's five-field form) and exit.
    #[arg(long)]
    version: bool,
    /// Print the hot-restart compatibility version and exit (compare it with the
    /// running one's `GET /hot_restart_version` before a hot restart).
    #[arg(long)]
    hot_restart_version: bool,
    /// What to do with it.
    #[arg(long, value_enum, default_value = "serve")]
    mode: Mode,
    /// Number of workers, overriding the config's `workers`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: Option<u16>,
    /// I/O driver, overriding the config's `driver`.
    #[arg(long, value_enum)]
    driver: Option<DriverArg>,
    /// Log level (trace, debug, info, warning or warn, error, critical, off), or a
    /// tracing filter directive.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    log_level: String,
    /// Write logs to this file (appended to) instead of stderr.
    #[arg(long, value_name = "FILE")]
    log_path: Option<PathBuf>,
    /// Seconds a shutdown waits for open connections to finish (Envoy's default is
    /// 600; ringway's is 5).
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
    /// Do not listen for a hot-restart successor.
    #[arg(long)]
    disable_hot_restart: bool,
    /// Write the admin listener's address (`ip:port`) to this file once bound.
    #[arg(long, value_name = "FILE")]
    admin_address_path: Option<PathBuf>,
    /// An Envoy bootstrap (YAML or JSON) merged over the `-c` file's (proto merge:
    /// scalars replace, messages merge, lists append); the whole config without `-c`.
    #[arg(long, value_name = "YAML")]
    config_yaml: Option<String>,
    /// Envoy bootstraps: warn about (and count, `server.static_unknown_fields`) unknown
    /// fields instead of refusing them. Fields ringway knows but does not implement are
    /// refused regardless. (`--allow-unknown-fields`: Envoy's older name for it.)
    #[arg(long, alias = "allow-unknown-fields")]
    allow_unknown_static_fields: bool,
    /// Envoy bootstraps: drop these groups of features ringway does not implement yet,
    /// with a warning each, instead of refusing the config (`stats_sinks`,
    /// `stats_config`, `watchdog`, `overload_manager`; comma-separated; `tracing`,
    /// implemented now, is accepted and drops nothing).
    #[arg(long, value_name = "GROUPS", value_delimiter = ',')]
    accept_degraded: Vec<String>,
    /// Accepted: ringway has no dynamic configuration yet.
    #[arg(long)]
    reject_unknown_dynamic_fields: bool,
    /// Accepted: ringway has no dynamic configuration yet.
    #[arg(long)]
    ignore_unknown_dynamic_fields: bool,
    /// Tolerated (Envoy's shared-memory id for hot restarts; ringway uses a socket).
    #[arg(long, value_name = "N", default_value_t = 0)]
    base_id: u64,
    /// Tolerated (see `--base-id`).
    #[arg(long)]
    use_dynamic_base_id: bool,
    /// Write the base id (`--base-id`, decimal, no line end) to this file at start,
    /// as Envoy does for a supervisor that starts the next epoch with it.
    #[arg(long, value_name = "FILE")]
    base_id_path: Option<PathBuf>,
    /// The node's cluster, echoed in `/server_info`.
    #[arg(long, value_name = "NAME", default_value = "")]
    service_cluster: String,
    /// The node's id, echoed in `/server_info`.
    #[arg(long, value_name = "NAME", default_value = "")]
    service_node: String,
    /// The node's zone, echoed in `/server_info`.
    #[arg(long, value_name = "NAME", default_value = "")]
    service_zone: String,
    /// Tolerated: `v4` or `v6`.
    #[arg(long, value_name = "VERSION", default_value = "v4", value_parser = ["v4", "v6"])]
    local_address_ip_version: String,
    /// Tolerated (ringway's access log flushes every `access_log.flush_interval`).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    file_flush_interval_msec: u64,
    /// Tolerated (ringway's log lines have their own format).
    #[arg(long, value_name = "FORMAT", default_value = "")]
    log_format: String,
    /// Tolerated (ringway has no per-component loggers; use a `--log-level` directive).
    #[arg(long, value_name = "LEVELS", default_value = "")]
    component_log_level: String,
    /// Tolerated: `immediate` or `gradual` (ringway closes idle connections at once and
    /// busy ones after their request).
    #[arg(long, value_name = "STRATEGY", default_value = "gradual", value_parser = ["immediate", "gradual"])]
    drain_strategy: String,
    /// Tolerated (a hot restart's predecessor drains for `--drain-time-s`).
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    parent_shutdown_time_s: u64,
    /// Tolerated (ringway reads the CPU set and the cgroup quota by default).
    #[arg(long)]
    cpuset_threads: bool,
    /// Tolerated.
    #[arg(long)]
    enable_core_dump: bool,
    /// Tolerated.
    #[arg(long)]
    skip_deprecated_logs: bool,
    /// Tolerated (ringway's log lines escape control bytes anyway).
    #[arg(long)]
    log_format_escaped: bool,
    /// Tolerated (no per-file loggers; use a `--log-level` directive).
    #[arg(long)]
    enable_fine_grain_logging: bool,
    /// Tolerated (ringway's workers share no locks to trace).
    #[arg(long)]
    enable_mutex_tracing: bool,
}

/// Envoy's level names, as tracing reads them.
fn log_filter(level: &str) -> String {
    match level {
        "warning" => "warn".into(),
        "critical" => "error".into(),
        other => other.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.hot_restart_version {
        // As Envoy's: on standard error, no line end.
        eprint!("{}", control::hot_restart_version(cli.disable_hot_restart));
        return ExitCode::SUCCESS;
    }
    if cli.version {
        // Envoy's `--version` line, which tools parse (Kuma splits its five fields).
        return print_line(&format!("ringway version: {}", control::version()));
    }
    if cli.config_path.is_none() && cli.config_yaml.is_none() {
        eprintln!("ringway: a config is required: -c FILE or --config-yaml (see --help)");
        return ExitCode::FAILURE;
    }
    if let Some(path) = cli
        .base_id_path
        .as_ref()
        .filter(|_| matches!(cli.mode, Mode::Serve))
    {
        if let Err(e) = std::fs::write(path, cli.base_id.to_string()) {
            eprintln!("ringway: --base-id-path {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(&cli.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, ansi) = match &cli.log_path {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => (BoxMakeWriter::new(std::sync::Arc::new(file)), false),
            Err(e) => {
                eprintln!("ringway: --log-path {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_filter_reloading();
    // `/logging` changes the filter at run time through this handle.
    let handle = logs.reload_handle();
    logs.init();
    let log_control = control::LogControl::new(move |level: &str| {
        let filter = tracing_subscriber::EnvFilter::try_new(log_filter(level))
            .map_err(|e| format!("invalid level {level:?}: {e}"))?;
        handle.reload(filter).map_err(|e| e.to_string())
    });
    control::run(control::Options {
        config_path: cli.config_path,
        load_options: ringway::config::LoadOptions {
            config_yaml: cli.config_yaml,
            allow_unknown_static_fields: cli.allow_unknown_static_fields,
            accept_degraded: cli.accept_degraded,
            service_cluster: cli.service_cluster.clone(),
            service_node: cli.service_node.clone(),
            service_zone: cli.service_zone.clone(),
        },
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
        disable_hot_restart: cli.disable_hot_restart,
        admin_address_path: cli.admin_address_path,
        log_level: cli.log_level,
        log_control,
        base_id: cli.base_id,
        tolerated: control::EnvoyFlags {
            use_dynamic_base_id: cli.use_dynamic_base_id,
            local_address_ip_version: cli.local_address_ip_version,
            component_log_level: cli.component_log_level,
            log_format: cli.log_format,
            log_path: cli
                .log_path
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            service_cluster: cli.service_cluster,
            service_node: cli.service_node,
            service_zone: cli.service_zone,
            drain_strategy: cli.drain_strategy,
            file_flush_interval_ms: cli.file_flush_interval_msec,
            parent_shutdown_time: Duration::from_secs(cli.parent_shutdown_time_s),
            cpuset_threads: cli.cpuset_threads,
            enable_core_dump: cli.enable_core_dump,
            disable_hot_restart: cli.disable_hot_restart,
        },
    })
}

/// Prints `line` on standard output: success unless the write fails.
fn print_line(line: &str) -> ExitCode {
    use std::io::Write as _;
    match writeln!(std::io::stdout(), "{line}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
