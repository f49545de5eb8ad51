//! The control thread: everything that is not request work.
//!
//! It loads and validates the config, decides the driver and the worker layout, binds
//! every listening socket (so bind errors stop ringway before a worker exists), starts
//! the workers, and then runs its own small runtime (always epoll: nothing here is hot)
//! for the admin listener, signals, reloads, hot restarts and the workers' events. Later
//! it also owns health checks, DNS and xDS. It talks to workers only through bounded
//! queues.
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
mod hot_restart;
mod reload;
mod signals;
mod sockets;
mod systemd;

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
    /// The config file.
    pub config_path: PathBuf,
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
}

/// The server's state, as `/ready` reports it (Envoy's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Workers are starting.
    PreInitializing,
    /// Serving.
    Live,
    /// Shutting down.
    Draining,
}

impl ServerState {
    /// The name `/ready` answers with.
    pub fn name(self) -> &'static str {
        match self {
            ServerState::PreInitializing => "PRE_INITIALIZING",
            ServerState::Live => "LIVE",
            ServerState::Draining => "DRAINING",
        }
    }

    /// Envoy's `server.state` gauge value.
    fn gauge(self) -> u64 {
        match self {
            ServerState::Live => 0,
            ServerState::Draining => 1,
            ServerState::PreInitializing => 2,
        }
    }
}

/// What an admin request asks of the control loop.
#[derive(Debug)]
pub enum AdminRequest {
    /// Reload the config; the answer is the new version or the error text.
    Reload(flume::Sender<Result<u64, String>>),
    /// Stop accepting on every listener, keep serving.
    DrainListeners,
    /// Drain and exit 0.
    Quit,
}

/// Reload counters (Envoy has no single equivalent; names are ringway's, under `server.`).
#[derive(Debug, Default)]
struct ReloadStats {
    attempts: Cell<u64>,
    successes: Cell<u64>,
    failures: Cell<u64>,
    version: Cell<u64>,
}

/// What the control thread's tasks share (all on the control thread).
#[derive(Debug)]
pub struct ControlState {
    server_state: Cell<ServerState>,
    stats: RefCell<StatsStore>,
    started: Instant,
    workers: usize,
    driver: Driver,
    reloads: ReloadStats,
    /// Admin handlers' requests to the control loop.
    requests: flume::Sender<AdminRequest>,
    /// Set when a successor took the admin socket over: stop serving admin.
    admin_stop: Rc<Stop>,
}

impl ControlState {
    fn render_stats(&self) -> String {
        let extra = [
            ("server.concurrency".to_string(), self.workers as u64),
            (
                "server.driver_io_uring".to_string(),
                u64::from(matches!(self.driver, Driver::IoUring(_))),
            ),
            (
                "server.live".to_string(),
                u64::from(self.server_state.get() == ServerState::Live),
            ),
            ("server.state".to_string(), self.server_state.get().gauge()),
            (
                "server.uptime".to_string(),
                self.started.elapsed().as_secs(),
            ),
            (
                "server.config_version".to_string(),
                self.reloads.version.get(),
            ),
            (
                "server.reload_attempts".to_string(),
                self.reloads.attempts.get(),
            ),
            (
                "server.reload_failures".to_string(),
                self.reloads.failures.get(),
            ),
            (
                "server.reload_successes".to_string(),
                self.reloads.successes.get(),
            ),
        ];
        let mut out = String::with_capacity(4096);
        self.stats.borrow().render_text(&extra, &mut out);
        out
    }
}

/// Runs ringway until it is told to stop; the exit code says how it ended.
pub fn run(options: Options) -> ExitCode {
    let started = Instant::now();
    let config = match Config::load(&options.config_path) {
        Ok(config) => config,
        Err(errors) => {
            // The errors name file, line, column and field; print them as they are.
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    if options.validate_only {
        eprintln!("configuration '{}' OK", options.config_path.display());
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

fn start(mut config: Config, options: Options, started: Instant) -> Result<ExitCode, String> {
    let overrides = reload::Overrides {
        concurrency: options.concurrency,
        driver: options.driver,
    };
    overrides.apply(&mut config);
    // Before any socket exists: every connection is a descriptor (two when proxied).
    let open_files = match process::raise_nofile_limit() {
        Ok(limit) => Some(limit.now),
        Err(e) => {
            warn!("{e}; connections past the soft limit will fail with EMFILE");
            None
        }
    };
    let restart_path = options
        .hot_restart_socket
        .clone()
        .or_else(|| hot_restart::default_path(config.admin));
    // Sockets from a predecessor (hot restart) or from systemd, adopted below by address.
    let (mut inherited, predecessor) = if options.restart_epoch > 0 {
        let path = restart_path
            .as_deref()
            .ok_or("--restart-epoch needs --hot-restart-socket or an admin address")?;
        let (inherited, predecessor) =
            hot_restart::fetch(path, options.restart_epoch).map_err(|e| e.to_string())?;
        (inherited, Some(predecessor))
    } else {
        (systemd::listen_fds(), None)
    };
    let (driver, fallback_note) = driver::resolve(config.driver)?;
    if let Some(note) = fallback_note {
        warn!("{note}");
    }
    let plan = cpus::plan(config.workers, config.pin_workers, &cpus::allowed_cpus());
    info!(workers = plan.count, driver = %driver, open_files, "{}", plan.reason);

    // Bind (or adopt) everything before starting anything, so a taken port fails the
    // start cleanly.
    let mut groups = Vec::with_capacity(config.listeners.len());
    for l in &config.listeners {
        groups.push(Group::open(l, plan.count, &mut inherited)?);
    }
    let admin_socket = match (config.admin, inherited.admin.take()) {
        (Some(_), Some(socket)) => Some(socket),
        (Some(addr), None) => Some(bind_admin(addr)?),
        (None, _) => None,
    };
    inherited.finish();
    let signals = Signals::install().map_err(|e| format!("installing signal handlers: {e}"))?;

    let mut store = StatsStore::new(plan.count);
    let stats = snapshot::register_stats(&mut store, &config);
    #[cfg(feature = "alloc-count")]
    let heap_stats = store.scope("server.", &crate::stats::names::server::DEFS);
    // Opened before any worker starts, so a bad path stops ringway with a clear message.
    let access_log = match &config.access_log {
        Some(log) => Some(AccessLog::start(log, &mut store, plan.count)?),
        None => None,
    };
    let config = Arc::new(config);
    let (events_tx, events_rx) = flume::unbounded();
    let mut commands = Vec::with_capacity(plan.count);
    let mut threads = Vec::with_capacity(plan.count);
    let mut shares: Vec<Vec<(String, std::net::TcpListener)>> =
        (0..plan.count).map(|_| Vec::new()).collect();
    for group in &groups {
        let share = group
            .share(plan.count)
            .map_err(|e| format!("listener {}: {e}", group.name))?;
        for (w, sockets) in share.into_iter().enumerate() {
            shares[w].extend(sockets);
        }
    }
    for (id, sockets) in shares.into_iter().enumerate() {
        let (tx, rx) = flume::bounded(COMMAND_QUEUE);
        let setup = WorkerSetup {
            id,
            driver,
            cpu: plan.cpus.as_ref().map(|c| c[id]),
            config: Arc::clone(&config),
            stats: stats.clone(),
            sockets,
            commands: rx,
            events: events_tx.clone(),
            access_log: access_log.as_ref().map(|log| log.worker_setup(id)),
            #[cfg(feature = "alloc-count")]
            heap_stats: Arc::clone(&heap_stats),
        };
        threads.push(worker::spawn(setup).map_err(|e| format!("starting worker {id}: {e}"))?);
        commands.push(tx);
    }
    drop(events_tx);

    let (requests_tx, requests_rx) = flume::bounded(16);
    let state = Rc::new(ControlState {
        server_state: Cell::new(ServerState::PreInitializing),
        stats: RefCell::new(store),
        started,
        workers: plan.count,
        driver,
        reloads: ReloadStats::default(),
        requests: requests_tx,
        admin_stop: Stop::new(),
    });
    state.reloads.version.set(1);
    let admin_copy = match &admin_socket {
        Some(socket) => Some(
            socket
                .try_clone()
                .map_err(|e| format!("admin socket: {e}"))?,
        ),
        None => None,
    };
    let control = Control {
        state,
        commands,
        events: events_rx,
        requests: requests_rx,
        options,
        overrides,
        config: RefCell::new(config),
        stats_handles: RefCell::new(stats),
        groups: RefCell::new(groups),
        admin_copy: RefCell::new(admin_copy),
        access_log: access_log.as_ref().map(AccessLog::reopener),
        restart_path,
        restart_owner: Cell::new(false),
        predecessor: RefCell::new(predecessor),
        fatal: Cell::new(false),
    };
    let code = driver::block_on(Driver::Epoll, control.run(admin_socket, signals))
        .map_err(|e| format!("control runtime: {e}"))?;
    for thread in threads {
        let _ = thread.join();
    }
    // Workers flushed their last batches before stopping; write them out.
    if let Some(log) = access_log {
        if !log.finish(ACCESS_LOG_EXIT_TIMEOUT) {
            warn!("access log writer still blocked at exit; its queued lines are lost");
        }
    }
    info!("ringway exited");
    Ok(code)
}

fn bind_admin(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let socket = std::net::TcpListener::bind(addr).map_err(|e| format!("admin ({addr}): {e}"))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("admin ({addr}): {e}"))?;
    Ok(socket)
}

/// How long a reload waits for every worker's acknowledgement.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One thing the control loop reacts to.
enum Wake {
    Event(Option<Event>),
    Signal(Signal),
    Admin(AdminRequest),
    Restart(std::os::unix::net::UnixStream),
    /// The successor that took our sockets is ready: drain.
    Handover,
}

struct Control {
    state: Rc<ControlState>,
    commands: Vec<flume::Sender<Command>>,
    events: flume::Receiver<Event>,
    requests: flume::Receiver<AdminRequest>,
    options: Options,
    overrides: reload::Overrides,
    /// The config serving now.
    config: RefCell<Arc<Config>>,
    stats_handles: RefCell<StatsHandles>,
    /// The control thread's copies of every listening socket (see `sockets`).
    groups: RefCell<Vec<Group>>,
    /// The control thread's copy of the admin socket, for a successor.
    admin_copy: RefCell<Option<std::net::TcpListener>>,
    /// Asks the access-log writer to reopen its file (SIGUSR1).
    access_log: Option<Reopener>,
    restart_path: Option<PathBuf>,
    /// Whether this process bound `restart_path` (and so removes it at exit).
    restart_owner: Cell<bool>,
    /// The process whose sockets we took, told to drain once we are ready.
    predecessor: RefCell<Option<Predecessor>>,
    /// A worker failed during a reload: exit after answering.
    fatal: Cell<bool>,
}

impl Control {
    async fn run(self, admin_socket: Option<std::net::TcpListener>, signals: Signals) -> ExitCode {
        if let Some(socket) = admin_socket {
            match monoio::net::TcpListener::from_std(socket) {
                Ok(socket) => {
                    monoio::spawn(admin::serve(socket, Rc::clone(&self.state)));
                }
                Err(e) => {
                    error!("admin listener: {e}");
                    return self.shutdown(ExitCode::FAILURE).await;
                }
            }
        }
        let mut signals = match signals.into_async() {
            Ok(s) => s,
            Err(e) => {
                error!("signals: {e}");
                return self.shutdown(ExitCode::FAILURE).await;
            }
        };
        // A successor connects only after we are ready; until then (and if the
        // hot-restart socket cannot be served) this queue stays empty.
        let (_never_tx, never) = flume::bounded::<std::os::unix::net::UnixStream>(1);
        let mut restarts = never.clone();
        let (handover_tx, handover_rx) = flume::bounded::<()>(1);

        let mut ready = 0;
        loop {
            let wake = monoio::select! {
                event = self.events.recv_async() => Wake::Event(event.ok()),
                signal = signals.next() => Wake::Signal(signal),
                request = self.requests.recv_async() => match request {
                    Ok(request) => Wake::Admin(request),
                    Err(_) => continue,
                },
                stream = restarts.recv_async() => match stream {
                    Ok(stream) => Wake::Restart(stream),
                    Err(_) => {
                        restarts = never.clone();
                        continue;
                    }
                },
                _ = handover_rx.recv_async() => Wake::Handover,
            };
            match wake {
                Wake::Event(Some(Event::Ready(_))) => {
                    ready += 1;
                    if ready == self.commands.len() {
                        if let Some(rx) = self.became_ready() {
                            restarts = rx;
                        }
                    }
                }
                Wake::Event(Some(Event::Applied(..))) => {}
                Wake::Event(Some(Event::Failed(id, message))) => {
                    error!(worker = id, "worker failed: {message}");
                    return self.shutdown(ExitCode::FAILURE).await;
                }
                Wake::Event(Some(Event::Stopped(id))) => {
                    error!(worker = id, "worker stopped unexpectedly");
                    return self.shutdown(ExitCode::FAILURE).await;
                }
                Wake::Event(None) => return ExitCode::FAILURE,
                Wake::Signal(Signal::Terminate) => {
                    info!("termination signal: draining");
                    return self.drain(&mut signals, true).await;
                }
                Wake::Signal(Signal::Reload) => {
                    info!("SIGHUP: reloading the config");
                    let _ = self.reload().await;
                }
                Wake::Signal(Signal::ReopenLogs) => match &self.access_log {
                    Some(log) => {
                        info!("SIGUSR1: reopening the access log");
                        log.reopen();
                    }
                    None => info!("SIGUSR1: no log files to reopen"),
                },
                Wake::Admin(AdminRequest::Reload(reply)) => {
                    let result = self.reload().await;
                    let _ = reply.send(result);
                }
                Wake::Admin(AdminRequest::DrainListeners) => {
                    info!("admin: draining listeners (open connections go on)");
                    self.groups.borrow_mut().clear();
                    self.send_all(|| Command::DrainListeners).await;
                }
                Wake::Admin(AdminRequest::Quit) => {
                    info!("admin: quitquitquit: draining");
                    return self.drain(&mut signals, true).await;
                }
                Wake::Restart(stream) => self.hand_over(stream, handover_tx.clone()),
                Wake::Handover => {
                    info!("hot restart: the new process is ready; draining");
                    // The successor holds every socket (admin included) and serves.
                    self.state.admin_stop.stop();
                    self.admin_copy.borrow_mut().take();
                    self.restart_owner.set(false);
                    return self.drain(&mut signals, false).await;
                }
            }
            if self.fatal.get() {
                return self.shutdown(ExitCode::FAILURE).await;
            }
        }
    }

    /// Every worker is ready: go live, tell a predecessor to drain, be ready for the next
    /// hot restart. Returns the queue of hot-restart connections, when listening.
    fn became_ready(&self) -> Option<flume::Receiver<std::os::unix::net::UnixStream>> {
        self.state.server_state.set(ServerState::Live);
        let mut line = String::new();
        let _ = write!(
            line,
            "ringway ready in {} ms: {} workers, {}, config version {}",
            self.state.started.elapsed().as_millis(),
            self.state.workers,
            self.state.driver,
            self.state.reloads.version.get()
        );
        info!("{line}");
        let predecessor = self.predecessor.borrow_mut().take();
        let successor = predecessor.is_some();
        if let Some(predecessor) = predecessor {
            match predecessor.drain() {
                Ok(()) => info!("hot restart: told the previous process to drain"),
                Err(e) => warn!("hot restart: telling the previous process to drain: {e}"),
            }
        }
        systemd::notify(&format!("READY=1\nMAINPID={}", std::process::id()));
        let path = self.restart_path.as_deref()?;
        match hot_restart::listen(path, successor) {
            Ok(rx) => {
                self.restart_owner.set(true);
                Some(rx)
            }
            Err(e) => {
                warn!(path = %path.display(), "hot restart disabled: {e}");
                None
            }
        }
    }

    /// Hands every socket to a successor; its later `DRAIN` wakes the loop.
    fn hand_over(&self, stream: std::os::unix::net::UnixStream, done: flume::Sender<()>) {
        let result = hot_restart::hand_over(
            stream,
            &self.groups.borrow(),
            self.admin_copy.borrow().as_ref(),
        );
        let stream = match result.and_then(|s| {
            s.set_nonblocking(true)?;
            monoio::net::UnixStream::from_std(s)
        }) {
            Ok(stream) => stream,
            Err(e) => {
                warn!("hot restart: handing over failed: {e}");
                return;
            }
        };
        monoio::spawn(async move {
            use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
            let mut stream = stream;
            let (result, buf) = stream.read(vec![0u8; 64]).await;
            match result {
                Ok(n) if buf[..n].starts_with(b"DRAIN") => {
                    let _ = stream.write_all(b"OK\n".to_vec()).await;
                    let _ = done.send_async(()).await;
                }
                // The successor went away before it was ready: keep serving.
                _ => warn!("hot restart: the new process left before it was ready"),
            }
        });
    }

    /// Reloads the config; the answer is the new version or the error text.
    async fn reload(&self) -> Result<u64, String> {
        let reloads = &self.state.reloads;
        reloads.attempts.set(reloads.attempts.get() + 1);
        let result = self.try_reload().await;
        match &result {
            Ok(version) => {
                reloads.successes.set(reloads.successes.get() + 1);
                info!(version, "config reloaded: version {version}");
            }
            Err(e) => {
                reloads.failures.set(reloads.failures.get() + 1);
                error!(
                    version = reloads.version.get(),
                    "config reload failed; version {} keeps serving:\n{e}",
                    reloads.version.get()
                );
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<u64, String> {
        if self.state.server_state.get() != ServerState::Live {
            return Err("not live (starting or draining); reload refused".into());
        }
        let running = Arc::clone(&self.config.borrow());
        let next = reload::load(&running, self.overrides)?;
        let workers = self.commands.len();
        let plan = sockets::plan(&self.groups.borrow(), &next.listeners, workers)?;
        let stats = snapshot::register_stats(&mut self.state.stats.borrow_mut(), &next);
        let version = self.state.reloads.version.get() + 1;
        // From here on the reload happens. Dropping the old copies first makes a removed
        // listener's last accept pass in its worker the real last one.
        *self.groups.borrow_mut() = plan.groups;
        let next = Arc::new(next);
        for (tx, sockets) in self.commands.iter().zip(plan.sockets) {
            let command = Command::Apply {
                config: Arc::clone(&next),
                stats: stats.clone(),
                version,
                sockets,
            };
            if tx.send_async(command).await.is_err() {
                self.fatal.set(true);
                return Err("a worker is gone".into());
            }
        }
        *self.config.borrow_mut() = next;
        *self.stats_handles.borrow_mut() = stats;
        // `server.config_version` says what every worker serves: publish it once all
        // have applied it (or, on a timeout, once it is the config of record anyway, so
        // the next reload's number is fresh).
        let publish = || self.state.reloads.version.set(version);
        let mut acked = 0;
        let deadline = Instant::now() + APPLY_TIMEOUT;
        while acked < workers {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(event) = monoio::time::timeout(left, self.events.recv_async()).await else {
                publish();
                return Err(format!(
                    "only {acked} of {workers} workers applied version {version} within {APPLY_TIMEOUT:?}"
                ));
            };
            match event {
                Ok(Event::Applied(_, v)) if v == version => acked += 1,
                Ok(Event::Applied(..) | Event::Ready(_)) => {}
                Ok(Event::Failed(id, message)) => {
                    error!(worker = id, "worker failed: {message}");
                    self.fatal.set(true);
                    return Err(format!("worker {id} failed: {message}"));
                }
                Ok(Event::Stopped(_)) | Err(_) => {
                    self.fatal.set(true);
                    return Err("a worker stopped during the reload".into());
                }
            }
        }
        publish();
        Ok(version)
    }

    async fn send_all(&self, command: impl Fn() -> Command) {
        for tx in &self.commands {
            let _ = tx.send_async(command()).await;
        }
    }

    /// Drains and exits 0 (after `--drain-delay-ms` when `delay`); a second termination
    /// signal exits at once.
    async fn drain(&self, signals: &mut AsyncSignals, delay: bool) -> ExitCode {
        self.state.server_state.set(ServerState::Draining);
        systemd::notify("STOPPING=1");
        let drain = async {
            if delay && !self.options.drain_delay.is_zero() {
                info!(
                    "draining: /ready answers 503; accepting for {:?} more",
                    self.options.drain_delay
                );
                monoio::time::sleep(self.options.drain_delay).await;
            }
            self.shutdown(ExitCode::SUCCESS).await
        };
        monoio::select! {
            code = drain => code,
            _ = async { while signals.next().await != Signal::Terminate {} } => {
                warn!("second termination signal: exiting now");
                std::process::exit(1);
            }
        }
    }

    /// Tells every worker to stop and waits for all of them.
    async fn shutdown(&self, code: ExitCode) -> ExitCode {
        self.state.server_state.set(ServerState::Draining);
        // Each worker's close must be its socket's real close (see `sockets`).
        self.groups.borrow_mut().clear();
        let drain_timeout = self.options.drain_timeout;
        self.send_all(|| Command::Shutdown { drain_timeout }).await;
        let mut running = self.commands.len();
        while running > 0 {
            match self.events.recv_async().await {
                Ok(Event::Stopped(_)) | Ok(Event::Failed(..)) => running -= 1,
                Ok(Event::Ready(_)) | Ok(Event::Applied(..)) => {}
                Err(_) => break,
            }
        }
        if self.restart_owner.get() {
            if let Some(path) = &self.restart_path {
                let _ = std::fs::remove_file(path);
            }
        }
        code
    }
}
