//! The control thread: everything that is not request work.
//!
//! It loads and validates the config, decides the driver and the worker layout, binds
//! every listening socket (so bind errors stop ringway before a worker exists), starts
//! the workers, and then runs its own small runtime (always epoll: nothing here is hot)
//! for the admin listener, signals, reloads, hot restarts and the workers' events. It
//! keeps DNS discovery's results (`dns`); later it also owns health checks and xDS. It talks to workers only through bounded
//! queues.
//!
//! Files: `start` (the start sequence up to the control loop), `event_loop` (the control
//! loop, `Control::run`), `state` (what the control thread's tasks share, and `/stats`),
//! `admin` (the admin listener), `dns` (DNS discovery's control side), `reload`, `sockets`, `hot_restart`, `systemd`,
//! `adopt` and `signals`.
//!
//! Lifecycle, in one place (`Control::run`):
//!
//! - **Reload** (SIGHUP, `POST /reload`): `reload::load` validates the file and the
//!   fields that cannot change; `sockets::plan` keeps groups whose address survives and
//!   binds new ones; every worker gets `Apply` with the new version and acknowledges;
//!   the reload succeeds when all have. Any failure before `Apply` changes nothing.
//! - **Drain** (SIGTERM/SIGINT, `POST /quitquitquit`): `/ready` turns 503 `DRAINING`,
//!   `--drain-delay-ms` passes (load balancers see the 503 and move traffic) while
//!   everything still serves, the control thread drops its socket copies, workers get
//!   `Shutdown` (last accept pass, close idle connections, wait up to
//!   `--drain-time-s`), exit 0. A second signal exits at once.
//! - **Hot restart** (`hot_restart`): a successor fetches every listening socket; when
//!   it is ready it says `DRAIN`, and this process drains without the delay (the
//!   successor already serves) and exits 0.

mod admin;
mod adopt;
mod cert_watch;
mod dns;
mod event_loop;
mod hosts;
mod hot_restart;
mod jwt_keys;
mod reload;
mod signals;
mod sockets;
mod start;
mod state;
mod systemd;

use event_loop::Control;
use start::start;
use state::ReloadStats;
pub use state::{AdminRequest, ControlState, ServerState};

use std::{
    cell::{Cell, RefCell},
    fmt::Write,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::{error, info, warn};

use crate::{
    access_log::{AccessLog, Reopener},
    config::{Config, DriverChoice},
    cpus,
    driver::{self, Driver},
    process,
    snapshot::{self, StatsHandles},
    stats::StatsStore,
    worker::{self, Command, Event, Stop, WorkerSetup},
};
use hot_restart::Predecessor;
use signals::{AsyncSignals, Signal, Signals};
use sockets::Group;

/// Capacity of each worker's command queue. Commands are rare (shutdown, reload); a full
/// queue means a worker is stuck, and the control thread then waits rather than grow it.
const COMMAND_QUEUE: usize = 16;
/// How long an exit waits for the access-log writer to write what is queued. Bounded, so
/// a writer stuck on a pipe nobody reads cannot keep the process alive.
const ACCESS_LOG_EXIT_TIMEOUT: Duration = Duration::from_secs(3);

/// How to run, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file (`None`: the whole config is `load_options.config_yaml`).
    pub config_path: Option<PathBuf>,
    /// Envoy's `--config-yaml` and `--allow-unknown-static-fields`.
    pub load_options: crate::config::LoadOptions,
    /// Only validate the config and exit.
    pub validate_only: bool,
    /// Overrides the config's `workers`.
    pub concurrency: Option<usize>,
    /// Overrides the config's `driver`.
    pub driver: Option<DriverChoice>,
    /// How long a shutdown waits for open connections.
    pub drain_timeout: Duration,
    /// How long a drain keeps accepting after `/ready` turned 503.
    pub drain_delay: Duration,
    /// 0: a fresh start; N > 0: take the sockets over from the running epoch N-1.
    pub restart_epoch: u32,
    /// The hot-restart socket (default: derived from the admin port).
    pub hot_restart_socket: Option<PathBuf>,
    /// Do not listen for a hot-restart successor.
    pub disable_hot_restart: bool,
    /// Where to write the admin address once bound.
    pub admin_address_path: Option<PathBuf>,
    /// `--log-level` as given.
    pub log_level: String,
    /// Sets the log level at run time (`/logging`).
    pub log_control: LogControl,
    /// `--base-id` (tolerated).
    pub base_id: u64,
    /// Envoy's flags that are accepted and echoed by `/server_info`.
    pub tolerated: EnvoyFlags,
}

/// Envoy command-line flags ringway accepts for orchestrators that pass them; their
/// values are echoed in `/server_info` (docs/operations.md says what each does here).
#[derive(Debug, Clone, Default)]
pub struct EnvoyFlags {
    pub use_dynamic_base_id: bool,
    pub local_address_ip_version: String,
    pub component_log_level: String,
    pub log_format: String,
    pub log_path: String,
    pub service_cluster: String,
    pub service_node: String,
    pub service_zone: String,
    pub drain_strategy: String,
    pub file_flush_interval_ms: u64,
    pub parent_shutdown_time: Duration,
    pub cpuset_threads: bool,
    pub enable_core_dump: bool,
    pub disable_hot_restart: bool,
}

/// Sets the process's log level (a level name or a tracing directive); `/logging`
/// calls it. Without one (tests, embedders), setting fails with a message.
#[derive(Clone, Default)]
pub struct LogControl(Option<Arc<SetLevel>>);

/// Sets the log level from a level name or directive.
type SetLevel = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl LogControl {
    /// A control that calls `set`.
    pub fn new(set: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) -> Self {
        LogControl(Some(Arc::new(set)))
    }

    /// Sets the level.
    pub fn set(&self, level: &str) -> Result<(), String> {
        match &self.0 {
            Some(set) => set(level),
            None => Err("the log level cannot be changed in this process".into()),
        }
    }
}

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogControl")
    }
}

/// The version string: `/server_info`'s `version` and `--version`.
pub fn version() -> String {
    admin::version()
}

/// Which binaries can hot-restart each other (the socket handover's protocol, see
/// `hot_restart`), or `disabled` with `--disable-hot-restart`, as Envoy says:
/// `--hot-restart-version`, `GET /hot_restart_version` and `/server_info`'s
/// `hot_restart_version`, compared by tooling before a hot restart.
pub fn hot_restart_version(disabled: bool) -> &'static str {
    if disabled {
        "disabled"
    } else {
        "ringway.1"
    }
}

/// Runs ringway until it is told to stop; the exit code says how it ended.
pub fn run(options: Options) -> ExitCode {
    let started = Instant::now();
    let config = match Config::load_with(options.config_path.as_deref(), &options.load_options) {
        Ok(config) => config,
        Err(errors) => {
            // The errors name file, line, column and field; print them as they are.
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    if options.validate_only {
        // The short form is printed as the full form it means (on stdout, so it can be
        // saved as a config of its own).
        if let Some(expansion) = &config.expansion {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(expansion.as_bytes());
        }
        eprintln!("configuration '{}' OK", config.source.display());
        return ExitCode::SUCCESS;
    }
    match start(config, options, started) {
        Ok(code) => code,
        Err(message) => {
            error!("{message}");
            eprintln!("ringway: {message}");
            ExitCode::FAILURE
        }
    }
}
