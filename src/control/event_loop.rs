//! The control loop (`Control::run`): signals, admin requests, worker events, reloads,
//! drains and the hot-restart hand-over, on the control thread's own runtime; the
//! lifecycle in the module note of `control`.

use super::*;

/// How long a reload waits for every worker's acknowledgement.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One thing the control loop reacts to.
pub(super) enum Wake {
    Event(Option<Event>),
    Signal(Signal),
    Admin(AdminRequest),
    Restart(std::os::unix::net::UnixStream),
    /// The successor that took our sockets is ready: drain.
    Handover,
    /// DNS discovery resolved a cluster to new members.
    Members(crate::discovery::Update),
    /// The health service changed endpoints' flags.
    Health(crate::health::HealthEvent),
    /// Time for new session-ticket keys.
    RotateTicketKeys,
    /// The JWKS fetcher has an outcome.
    JwtKeys(crate::auth::fetcher::Fetched),
}

pub(super) struct Control {
    pub(super) state: Rc<ControlState>,
    pub(super) commands: Vec<flume::Sender<Command>>,
    pub(super) events: flume::Receiver<Event>,
    pub(super) requests: flume::Receiver<AdminRequest>,
    pub(super) options: Options,
    pub(super) overrides: reload::Overrides,
    /// The config serving now.
    pub(super) config: RefCell<Arc<Config>>,
    pub(super) stats_handles: RefCell<StatsHandles>,
    /// DNS clusters and their members.
    pub(super) dns: RefCell<dns::Dns>,
    /// Every cluster's host set, and the health service.
    pub(super) hosts: RefCell<hosts::Hosts>,
    /// JWT providers' keys.
    pub(super) jwt_keys: RefCell<jwt_keys::JwtKeys>,
    /// The control thread's copies of every listening socket (see `sockets`).
    pub(super) groups: RefCell<Vec<Group>>,
    /// The control thread's copy of the admin socket, for a successor.
    pub(super) admin_copy: RefCell<Option<std::net::TcpListener>>,
    /// Asks the access-log writer to reopen its file (SIGUSR1).
    pub(super) access_log: Option<Reopener>,
    pub(super) restart_path: Option<PathBuf>,
    /// Whether this process bound `restart_path` (and so removes it at exit).
    pub(super) restart_owner: Cell<bool>,
    /// The process whose sockets we took, told to drain once we are ready.
    pub(super) predecessor: RefCell<Option<Predecessor>>,
    /// A worker failed during a reload: exit after answering.
    pub(super) fatal: Cell<bool>,
    /// The certificate watcher's list of files, updated after each reload.
    pub(super) cert_files: flume::Sender<Vec<PathBuf>>,
    /// The session-ticket keys every worker holds a copy of; rotated here.
    pub(super) ticket_keys: RefCell<crate::tls::ticket::TicketKeys>,
    /// Sends each reload's tracers to the span exporter.
    pub(super) exporter: crate::trace::export::Updater,
}

impl Control {
    pub(super) async fn run(
        self,
        admin_socket: Option<std::net::TcpListener>,
        signals: Signals,
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
        // A successor connects only after we are ready; until then (and if the
        // hot-restart socket cannot be served) this queue stays empty.
        let (_never_tx, never) = flume::bounded::<std::os::unix::net::UnixStream>(1);
        let mut restarts = never.clone();
        let (handover_tx, handover_rx) = flume::bounded::<()>(1);
        let updates = self.dns.borrow().updates.clone();
        let verdicts = self.hosts.borrow().events.clone();
        let fetched = self.jwt_keys.borrow().fetched.clone();

        let mut ready = 0;
        let mut rotate_at = Instant::now() + self.ticket_keys.borrow().period();
        loop {
            let wake = monoio::select! {
                _ = monoio::time::sleep_until(rotate_at.into()) => Wake::RotateTicketKeys,
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
                update = updates.recv_async() => match update {
                    Ok(update) => Wake::Members(update),
                    Err(_) => continue,
                },
                event = verdicts.recv_async() => match event {
                    Ok(event) => Wake::Health(event),
                    Err(_) => continue,
                },
                outcome = fetched.recv_async() => match outcome {
                    Ok(outcome) => Wake::JwtKeys(outcome),
                    Err(_) => continue,
                },
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
                Wake::Signal(Signal::ReopenLogs) => self.reopen_logs("SIGUSR1"),
                Wake::Admin(AdminRequest::ReopenLogs) => self.reopen_logs("admin: reopen_logs"),
                Wake::Admin(AdminRequest::Reload(reply)) => {
                    let result = self.reload().await;
                    let _ = reply.send(result);
                }
                Wake::Admin(AdminRequest::DrainListeners) => {
                    info!("admin: draining listeners (open connections go on)");
                    // As Envoy's `stopListeners`: every listener, on every call.
                    let stopped = self.config.borrow().listeners.len();
                    self.state.reloads.count_stopped(stopped);
                    let files = sockets::close(self.groups.take());
                    self.send_all(|| Command::DrainListeners).await;
                    sockets::remove_files(&files);
                }
                Wake::Admin(AdminRequest::Quit) => {
                    info!("admin: quitquitquit: draining");
                    return self.drain(&mut signals, true).await;
                }
                Wake::Members(update) => self.forward_members(update).await,
                Wake::Health(event) => self.forward_health(event).await,
                Wake::RotateTicketKeys => {
                    let mut keys = self.ticket_keys.borrow().clone();
                    match keys.rotate() {
                        Ok(()) => {
                            info!("TLS session-ticket keys rotated");
                            *self.ticket_keys.borrow_mut() = keys.clone();
                            self.send_all(|| Command::TicketKeys(keys.clone())).await;
                        }
                        Err(e) => warn!("rotating session-ticket keys: {e}"),
                    }
                    rotate_at = Instant::now() + self.ticket_keys.borrow().period();
                }
                Wake::JwtKeys(outcome) => {
                    let taken = self.jwt_keys.borrow_mut().take(outcome);
                    if let Some((provider, keys)) = taken {
                        self.send_all(|| Command::JwtKeys {
                            provider: provider.clone(),
                            keys: Arc::clone(&keys),
                        })
                        .await;
                    }
                    self.state
                        .keys_pending
                        .set(self.jwt_keys.borrow().pending());
                }
                Wake::Restart(stream) => self.hand_over(stream, handover_tx.clone()),
                Wake::Handover => {
                    info!("hot restart: the new process is ready; draining");
                    // The successor holds every socket (admin included) and serves.
                    self.state.admin_stop.stop();
                    self.admin_copy.borrow_mut().take();
                    self.restart_owner.set(false);
                    // The successor owns the Unix socket files now.
                    for group in self.groups.borrow_mut().iter_mut() {
                        group.owns_path = false;
                    }
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
        if self.state.server_state.replace(ServerState::Live) != ServerState::Live {
            // Envoy's `server.initialization_time_ms`, once: from the start to serving.
            // Written in worker 0's cells of a histogram no worker records.
            let histogram = self
                .state
                .stats
                .borrow_mut()
                .histogram("server.initialization_time_ms");
            histogram.for_worker(0).record(self.state.started.elapsed());
        }
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
            &self.ticket_keys.borrow(),
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
        // New or changed DNS clusters are resolved before any worker sees the config.
        let pending = self.dns.borrow_mut().watch(&next, &stats)?;
        let deadline = Instant::now() + dns::FIRST_ROUND_TIMEOUT;
        let updates = self.dns.borrow().updates.clone();
        while !self.dns.borrow().answered(&pending) {
            let left = deadline.saturating_duration_since(Instant::now());
            match monoio::time::timeout(left, updates.recv_async()).await {
                Ok(Ok(update)) => self.forward_members(update).await,
                _ => break,
            }
        }
        self.dns.borrow().warn_unanswered(&pending);
        let discovered = self.dns.borrow().discovered();
        self.jwt_keys.borrow_mut().watch(&next, &stats)?;
        let keys = self.jwt_keys.borrow().worker_keys();
        // New clusters with active checks get their first round before any worker
        // balances over them (after the last step that can fail: from here on the
        // health service follows the new config).
        let pending = self.hosts.borrow_mut().apply(
            &next,
            &stats,
            &discovered,
            &mut self.state.stats.borrow_mut(),
        );
        let deadline = Instant::now() + hosts::FIRST_CHECK_TIMEOUT;
        let verdicts = self.hosts.borrow().events.clone();
        while !self.hosts.borrow().warmed(&pending) {
            let left = deadline.saturating_duration_since(Instant::now());
            match monoio::time::timeout(left, verdicts.recv_async()).await {
                Ok(Ok(event)) => {
                    self.hosts.borrow_mut().take(event);
                }
                _ => break,
            }
        }
        self.hosts.borrow().warn_unwarmed(&pending);
        let host_sets = self.hosts.borrow().sets();
        self.state
            .keys_pending
            .set(self.jwt_keys.borrow().pending());
        let version = self.state.reloads.version.get() + 1;
        // From here on the reload happens. Dropping the old copies first makes a removed
        // listener's last accept pass in its worker the real last one.
        *self.state.bound.borrow_mut() = state::bound_addresses(&plan.groups);
        let old = self.groups.replace(plan.groups);
        let gone = sockets::close(
            old.into_iter()
                .filter(|g| !next.listeners.iter().any(|l| l.address == g.address))
                .collect(),
        );
        // Before the workers build their sinks for it: their spans go by the new tracers.
        self.exporter.update(&next, &stats.tracers);
        let next = Arc::new(next);
        for (tx, sockets) in self.commands.iter().zip(plan.sockets) {
            let command = Command::Apply {
                config: Arc::clone(&next),
                stats: Box::new(stats.clone()),
                version,
                sockets,
                hosts: Arc::clone(&host_sets),
                keys: keys.clone(),
            };
            if tx.send_async(command).await.is_err() {
                self.fatal.set(true);
                return Err("a worker is gone".into());
            }
        }
        self.state.config_counts.set(state::config_counts(&next));
        (self.state.reloads).count_changes(Some(&running), &next, workers);
        *self.state.document.borrow_mut() = state::document(&next);
        *self.state.certs.borrow_mut() = crate::config::tls::contexts(&next);
        let _ = self.cert_files.send(cert_watch::files(&next));
        *self.state.clusters.borrow_mut() = self.hosts.borrow().view();
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
        sockets::remove_files(&gone);
        Ok(version)
    }

    /// Takes a DNS update; when it is current, every worker gets the new members.
    async fn forward_members(&self, update: crate::discovery::Update) {
        let accepted = self
            .dns
            .borrow_mut()
            .accept(update, &mut self.state.stats.borrow_mut());
        let Some((cluster, members)) = accepted else {
            return;
        };
        let found = Instant::now();
        let set = self.hosts.borrow_mut().set_members(
            &cluster,
            members,
            &mut self.state.stats.borrow_mut(),
        );
        if let Some(set) = set {
            self.publish_hosts(cluster, set, found).await;
        }
    }

    /// Takes the health service's verdict; when it changes a cluster's host set, every
    /// worker gets the new one.
    async fn forward_health(&self, event: crate::health::HealthEvent) {
        let changed = self.hosts.borrow_mut().take(event);
        if let Some((cluster, set, found)) = changed {
            self.publish_hosts(cluster, set, found).await;
        }
    }

    /// Sends `set` to every worker and shows it in `/clusters`.
    async fn publish_hosts(
        &self,
        cluster: String,
        set: Arc<crate::upstream::HostSet>,
        found: Instant,
    ) {
        if let Some(view) = self
            .state
            .clusters
            .borrow_mut()
            .iter_mut()
            .find(|v| v.name == cluster)
        {
            view.set = Arc::clone(&set);
        }
        self.send_all(|| Command::Hosts {
            cluster: cluster.clone(),
            set: Arc::clone(&set),
            found,
        })
        .await;
    }

    async fn send_all(&self, command: impl Fn() -> Command) {
        for tx in &self.commands {
            let _ = tx.send_async(command()).await;
        }
    }

    /// Asks the access-log writer to reopen its file (SIGUSR1, `POST /reopen_logs`).
    fn reopen_logs(&self, by: &str) {
        match &self.access_log {
            Some(log) => {
                info!("{by}: reopening the access log");
                log.reopen();
            }
            None => info!("{by}: no log files to reopen"),
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
        let files = sockets::close(self.groups.take());
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
        sockets::remove_files(&files);
        if self.restart_owner.get() {
            if let Some(path) = &self.restart_path {
                let _ = std::fs::remove_file(path);
            }
        }
        code
    }
}
