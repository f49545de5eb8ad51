//! The control thread: everything that is not request work.
//!
//! It loads and validates the config, decides the driver and the worker layout, binds
//! every listening socket (so bind errors stop ringway before a worker exists), starts
//! the workers, and then runs its own small runtime (always epoll: nothing here is hot)
//! for the admin listener, signals and the workers' events. Later it also owns reloads,
//! health checks, DNS and xDS. It talks to workers only through bounded queues.

mod admin;
mod signals;

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
    config::{Config, DriverChoice, Workers},
    cpus,
    driver::{self, Driver},
    listen,
    snapshot::{self, StatsHandles},
    stats::StatsStore,
    worker::{self, Command, Event, WorkerSetup},
};
use signals::{Signal, Signals};

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

/// What the control thread's tasks share (all on the control thread).
#[derive(Debug)]
pub struct ControlState {
    server_state: Cell<ServerState>,
    stats: RefCell<StatsStore>,
    started: Instant,
    workers: usize,
    driver: Driver,
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
    if let Some(n) = options.concurrency {
        config.workers = Workers::Count(n);
    }
    if let Some(d) = options.driver {
        config.driver = d;
    }
    let (driver, fallback_note) = driver::resolve(config.driver)?;
    if let Some(note) = fallback_note {
        warn!("{note}");
    }
    let plan = cpus::plan(config.workers, config.pin_workers, &cpus::allowed_cpus());
    info!(workers = plan.count, driver = %driver, "{}", plan.reason);

    // Bind everything before starting anything, so a taken port fails the start cleanly.
    let mut groups = Vec::with_capacity(config.listeners.len());
    for l in &config.listeners {
        let group = listen::bind_group(l.address, plan.count)
            .map_err(|e| format!("listener {} ({}): {e}", l.name, l.address))?;
        groups.push((l.name.clone(), group));
    }
    let admin_socket = match config.admin {
        Some(addr) => Some(bind_admin(addr)?),
        None => None,
    };
    let signals = Signals::install().map_err(|e| format!("installing signal handlers: {e}"))?;

    let mut store = StatsStore::new(plan.count);
    let stats = snapshot::register_stats(&mut store, &config);
    // Opened before any worker starts, so a bad path stops ringway with a clear message.
    let access_log = match &config.access_log {
        Some(log) => Some(AccessLog::start(log, &mut store, plan.count)?),
        None => None,
    };
    let config = Arc::new(config);
    let (events_tx, events_rx) = flume::unbounded();
    let mut commands = Vec::with_capacity(plan.count);
    let mut threads = Vec::with_capacity(plan.count);
    for id in 0..plan.count {
        let (tx, rx) = flume::bounded(COMMAND_QUEUE);
        let sockets = groups
            .iter_mut()
            .filter_map(|(name, group)| Some((name.clone(), group.pop()?)))
            .collect();
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
        };
        threads.push(worker::spawn(setup).map_err(|e| format!("starting worker {id}: {e}"))?);
        commands.push(tx);
    }
    drop(events_tx);

    let state = Rc::new(ControlState {
        server_state: Cell::new(ServerState::PreInitializing),
        stats: RefCell::new(store),
        started,
        workers: plan.count,
        driver,
    });
    let control = Control {
        state,
        commands,
        events: events_rx,
        drain_timeout: options.drain_timeout,
        access_log: access_log.as_ref().map(AccessLog::reopener),
    };
    let code = driver::block_on(Driver::Epoll, control.run(admin_socket, signals, stats))
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

struct Control {
    state: Rc<ControlState>,
    commands: Vec<flume::Sender<Command>>,
    events: flume::Receiver<Event>,
    drain_timeout: Duration,
    /// Asks the access-log writer to reopen its file (SIGUSR1).
    access_log: Option<Reopener>,
}

impl Control {
    async fn run(
        self,
        admin_socket: Option<std::net::TcpListener>,
        signals: Signals,
        _stats: StatsHandles,
    ) -> ExitCode {
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

        let mut ready = 0;
        loop {
            let event = monoio::select! {
                event = self.events.recv_async() => event.ok(),
                signal = signals.next() => {
                    match signal {
                        Signal::Terminate => {
                            info!("termination signal: draining");
                            return self.shutdown_with_signals(ExitCode::SUCCESS, &mut signals).await;
                        }
                        Signal::Reload => warn!("SIGHUP: config reload is not available yet; ignored"),
                        Signal::ReopenLogs => match &self.access_log {
                            Some(log) => {
                                info!("SIGUSR1: reopening the access log");
                                log.reopen();
                            }
                            None => info!("SIGUSR1: no log files to reopen"),
                        },
                    }
                    continue;
                }
            };
            match event {
                Some(Event::Ready(_)) => {
                    ready += 1;
                    if ready == self.commands.len() {
                        self.state.server_state.set(ServerState::Live);
                        let mut line = String::new();
                        let _ = write!(
                            line,
                            "ringway ready in {} ms: {} workers, {}",
                            self.state.started.elapsed().as_millis(),
                            self.state.workers,
                            self.state.driver
                        );
                        info!("{line}");
                    }
                }
                Some(Event::Failed(id, message)) => {
                    error!(worker = id, "worker failed: {message}");
                    return self.shutdown(ExitCode::FAILURE).await;
                }
                Some(Event::Stopped(id)) => {
                    error!(worker = id, "worker stopped unexpectedly");
                    return self.shutdown(ExitCode::FAILURE).await;
                }
                None => return ExitCode::FAILURE,
            }
        }
    }

    /// Drains, but a second termination signal exits at once.
    async fn shutdown_with_signals(
        &self,
        code: ExitCode,
        signals: &mut signals::AsyncSignals,
    ) -> ExitCode {
        monoio::select! {
            code = self.shutdown(code) => code,
            _ = async { while signals.next().await != Signal::Terminate {} } => {
                warn!("second termination signal: exiting now");
                std::process::exit(1);
            }
        }
    }

    /// Tells every worker to stop and waits for all of them.
    async fn shutdown(&self, code: ExitCode) -> ExitCode {
        self.state.server_state.set(ServerState::Draining);
        for tx in &self.commands {
            let _ = tx
                .send_async(Command::Shutdown {
                    drain_timeout: self.drain_timeout,
                })
                .await;
        }
        let mut running = self.commands.len();
        while running > 0 {
            match self.events.recv_async().await {
                Ok(Event::Stopped(_)) | Ok(Event::Failed(..)) => running -= 1,
                Ok(Event::Ready(_)) => {}
                Err(_) => break,
            }
        }
        code
    }
}
