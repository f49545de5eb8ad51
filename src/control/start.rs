//! Start: load-time decisions (driver, workers, pinning, the open-file limit), binding
//! every listening socket before any worker exists (or adopting them from systemd or a
//! hot-restart predecessor), starting the workers, the access-log writer and the span
//! exporter, then handing over to the control loop (`event_loop`).

use super::*;

pub(super) fn start(
    mut config: Config,
    options: Options,
    started: Instant,
) -> Result<ExitCode, String> {
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
        .or_else(|| hot_restart::default_path(config.admin))
        .filter(|_| !options.disable_hot_restart);
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
    if let (Some(path), Some(socket)) = (&options.admin_address_path, &admin_socket) {
        // The bound address (a port 0 in the config is the real port here), as Envoy's
        // `--admin-address-path` writes it.
        let addr = socket
            .local_addr()
            .map_err(|e| format!("admin address: {e}"))?;
        std::fs::write(path, addr.to_string())
            .map_err(|e| format!("--admin-address-path {}: {e}", path.display()))?;
    }
    // Session-ticket keys: the predecessor's in a hot restart (its clients' tickets stay
    // good), else fresh ones.
    let ticket_keys = match inherited.ticket_keys.take() {
        Some(keys) => keys,
        None => crate::tls::ticket::TicketKeys::generate(
            crate::tls::ticket::TicketKeys::DEFAULT_PERIOD,
        )?,
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
    // The span exporter, always started: the workers hold its queue from their start,
    // and a reload may add tracers (an idle thread costs nothing).
    let exporter = crate::trace::export::Exporter::start(plan.count)
        .map_err(|e| format!("starting the span exporter: {e}"))?;
    exporter.update(&config, &stats.tracers);
    // DNS clusters are resolved once before the workers start (Envoy's cluster
    // warming), on the resolver's threads; the control thread only waits.
    let mut dns = dns::Dns::new();
    let pending = dns.watch(&config, &stats)?;
    dns.wait_first_round(&pending, &mut store);
    let discovered = dns.discovered();
    // Every cluster's host set; clusters with active health checks get one round of
    // checks before the workers start (Envoy's warming), on the health threads.
    let mut hosts = hosts::Hosts::start()?;
    let pending = hosts.apply(&config, &stats, &discovered, &mut store);
    hosts.wait_first_round(&pending);
    let host_sets = hosts.sets();
    let update_latency = store.histogram("cluster_manager.host_update_latency_ms");
    // Remote JWT keys are fetched once before the workers start too, each bounded by
    // its provider's timeout; a provider still without keys then answers 401 (and
    // keeps `/ready` at 503 if it must have keys first) until its fetch succeeds.
    let mut jwt_keys = jwt_keys::JwtKeys::new();
    jwt_keys.watch(&config, &stats)?;
    jwt_keys.wait_first_fetch(&config);
    let worker_keys = jwt_keys.worker_keys();
    let config = Arc::new(config);
    let (events_tx, events_rx) = flume::unbounded();
    let mut commands = Vec::with_capacity(plan.count);
    let mut threads = Vec::with_capacity(plan.count);
    let mut shares: Vec<Vec<(String, crate::listen::ListenSocket)>> =
        (0..plan.count).map(|_| Vec::new()).collect();
    for group in &groups {
        let share = group
            .share(plan.count)
            .map_err(|e| format!("listener {}: {e}", group.name))?;
        for (w, sockets) in share.into_iter().enumerate() {
            shares[w].extend(sockets);
        }
    }
    // `/healthcheck/fail`, shared with the workers' health-check filters.
    let health_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (id, sockets) in shares.into_iter().enumerate() {
        let (tx, rx) = flume::bounded(COMMAND_QUEUE);
        let setup = WorkerSetup {
            id,
            health_failed: Arc::clone(&health_failed),
            driver,
            cpu: plan.cpus.as_ref().map(|c| c[id]),
            config: Arc::clone(&config),
            stats: stats.clone(),
            hosts: Arc::clone(&host_sets),
            outlier: hosts.reporter(),
            update_latency: Arc::clone(&update_latency),
            keys: worker_keys.clone(),
            sockets,
            commands: rx,
            events: events_tx.clone(),
            access_log: access_log.as_ref().map(|log| log.worker_setup(id)),
            ticket_keys: ticket_keys.clone(),
            trace: exporter.worker_setup(id),
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
        options: options.clone(),
        health_failed: Cell::new(false),
        health_shared: Arc::clone(&health_failed),
        counter_offsets: RefCell::default(),
        counters_reset: Cell::new(None),
        tags: Arc::new(crate::stats::tags::TagExtractors::envoy_defaults()),
        config_counts: Cell::new(state::config_counts(&config)),
        document: RefCell::new(state::document(&config)),
        certs: RefCell::new(crate::config::tls::contexts(&config)),
        bound: RefCell::new(state::bound_addresses(&groups)),
        clusters: RefCell::new(hosts.view()),
        log_level: RefCell::new(options.log_level.clone()),
        keys_pending: Cell::new(jwt_keys.pending()),
    });
    state.reloads.version.set(1);
    state.reloads.count_changes(None, &config, plan.count);
    let admin_copy = match &admin_socket {
        Some(socket) => Some(
            socket
                .try_clone()
                .map_err(|e| format!("admin socket: {e}"))?,
        ),
        None => None,
    };
    // Certificate files are watched off the control loop; a change asks it to reload.
    let (cert_files_tx, cert_files_rx) = flume::unbounded();
    cert_watch::spawn(
        cert_watch::files(&config),
        cert_files_rx,
        state.requests.clone(),
    )
    .map_err(|e| format!("starting the certificate watcher: {e}"))?;
    let control = Control {
        cert_files: cert_files_tx,
        state,
        commands,
        events: events_rx,
        requests: requests_rx,
        options,
        overrides,
        config: RefCell::new(config),
        stats_handles: RefCell::new(stats),
        dns: RefCell::new(dns),
        hosts: RefCell::new(hosts),
        jwt_keys: RefCell::new(jwt_keys),
        groups: RefCell::new(groups),
        admin_copy: RefCell::new(admin_copy),
        access_log: access_log.as_ref().map(AccessLog::reopener),
        restart_path,
        restart_owner: Cell::new(false),
        predecessor: RefCell::new(predecessor),
        fatal: Cell::new(false),
        ticket_keys: RefCell::new(ticket_keys),
        exporter: exporter.updater(),
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
    // Workers flushed their last span batches too.
    if !exporter.finish(ACCESS_LOG_EXIT_TIMEOUT) {
        warn!("span exporter still busy at exit; its queued spans are lost");
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
