//! What the control thread's tasks share: the server state `/ready` reports, the reload
//! counters, the stats store, and the admin handlers' queue to the control loop; and the
//! rendering of `/stats` from them.

use super::*;

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
    pub(super) fn gauge(self) -> u64 {
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
pub(super) struct ReloadStats {
    pub(super) attempts: Cell<u64>,
    pub(super) successes: Cell<u64>,
    pub(super) failures: Cell<u64>,
    pub(super) version: Cell<u64>,
}

/// What the control thread's tasks share (all on the control thread).
#[derive(Debug)]
pub struct ControlState {
    pub(super) server_state: Cell<ServerState>,
    pub(super) stats: RefCell<StatsStore>,
    pub(super) started: Instant,
    pub(super) workers: usize,
    pub(super) driver: Driver,
    pub(super) reloads: ReloadStats,
    /// Admin handlers' requests to the control loop.
    pub(super) requests: flume::Sender<AdminRequest>,
    /// Set when a successor took the admin socket over: stop serving admin.
    pub(super) admin_stop: Rc<Stop>,
}

impl ControlState {
    pub(super) fn render_stats(&self) -> String {
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
