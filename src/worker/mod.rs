//! Workers: one thread per core, each with its own runtime, sockets and snapshot.
//!
//! A worker is started by the control thread with everything it needs (its listening
//! sockets, the validated config, the stats scopes) and from then on shares nothing with
//! other threads except two queues: commands in, events out. The command queue is a
//! bounded flume channel; the worker awaits it as one more task, and the control thread's
//! send wakes the worker's runtime through monoio's cross-thread waker (an eventfd the
//! ring or epoll watches), so a command never interrupts a request and no request ever
//! waits for another thread.
//!
//! Commands: `Apply` (a reload: build a snapshot, swap listener slots, start or stop
//! accept loops, acknowledge with `Applied`), `DrainListeners` (stop accepting, keep
//! serving), `Shutdown` (stop accepting, close connections between requests, wait for
//! them up to the drain timeout, report `Stopped`).

mod accept;
mod connection;
mod deadline;
mod downstream;
mod either;
mod listeners;
mod lookup;
mod mirror;
mod request_log;
mod stop;
mod tls_accept;
mod tunnel;

use std::{cell::Cell, io, rc::Rc, sync::Arc, time::Duration};

use tracing::{error, info, warn};

use crate::{
    access_log::{WorkerLog, WorkerLogSetup},
    buffers::BufPool,
    clock::CoarseClock,
    config::Config,
    cpus::CpuId,
    driver::{self, Driver},
    snapshot::{Snapshot, StatsHandles},
    upstream::{HostSet, HostSets, PoolRegistry},
};
use listeners::Listeners;
pub use stop::Stop;

/// How often a draining worker checks whether its connections have finished.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// How often idle upstream connections past their timeout are closed and read chunks
/// left idle since the previous sweep are freed.
const SWEEP: Duration = Duration::from_secs(1);
/// Idle read chunks a worker keeps for reuse at most (16 KiB each).
const MAX_FREE_CHUNKS: usize = 1024;
/// Idle read chunks a worker keeps when quiet: what one request at a time cycles through.
const IDLE_CHUNKS: usize = 0;

/// What every connection task of a worker shares (on that worker's thread only).
#[derive(Debug)]
pub struct WorkerContext {
    /// Read and write chunks.
    pub bufs: BufPool,
    /// Upstream connection pools, by endpoint; they outlive config snapshots.
    pub pools: PoolRegistry,
    /// Rate limits' shards of leases, by limit id; they outlive config snapshots too.
    pub shards: crate::ratelimit::runtime::Shards,
    /// The `date` header value of the current second, and a coarse `Instant`.
    pub clock: CoarseClock,
    random: std::cell::RefCell<fastrand::Rng>,
    /// The control thread's `/healthcheck/fail` (workers only read it: health checks).
    pub health_failed: Arc<std::sync::atomic::AtomicBool>,
    /// This worker's copy of the session-ticket keys (`tls::ticket`), for the TLS
    /// listeners of the snapshots it builds.
    pub ticket_keys: std::cell::RefCell<crate::tls::ticket::TicketKeys>,
    /// This worker's `server.heap_allocations` cell.
    #[cfg(feature = "alloc-count")]
    heap_allocations: crate::stats::WorkerScope,
    /// This worker's index.
    pub id: usize,
    /// Where failures worth the outlier detector's attention go (`upstream::outcome`).
    pub outlier: crate::health::Reporter,
    /// This worker's span batches, one per tracer (`trace::sink`): configured with
    /// each snapshot, flushed by the clock task. Borrow it only between awaits (the
    /// clock task borrows it too).
    pub spans: std::cell::RefCell<crate::trace::sink::SpanSinks>,
}

impl WorkerContext {
    fn new(
        (id, outlier, trace): (
            usize,
            crate::health::Reporter,
            crate::trace::sink::TraceSetup,
        ),
        health_failed: Arc<std::sync::atomic::AtomicBool>,
        ticket_keys: crate::tls::ticket::TicketKeys,
        #[cfg(feature = "alloc-count")] heap_allocations: crate::stats::WorkerScope,
    ) -> Self {
        WorkerContext {
            id,
            outlier,
            spans: std::cell::RefCell::new(crate::trace::sink::SpanSinks::new(trace)),
            health_failed,
            ticket_keys: std::cell::RefCell::new(ticket_keys),
            bufs: BufPool::new(MAX_FREE_CHUNKS),
            pools: PoolRegistry::default(),
            shards: Default::default(),
            clock: CoarseClock::default(),
            random: std::cell::RefCell::new(fastrand::Rng::new()),
            #[cfg(feature = "alloc-count")]
            heap_allocations,
        }
    }

    /// Publishes this thread's allocation count (feature `alloc-count`; otherwise
    /// nothing): a TLS read and a relaxed store into the worker's own cell, at the end
    /// of every request.
    #[inline]
    pub fn publish_allocations(&self) {
        #[cfg(feature = "alloc-count")]
        self.heap_allocations
            .get(crate::stats::names::server::HEAP_ALLOCATIONS)
            .set(crate::alloc_count::allocations());
    }

    /// A seed for a connection's own random numbers.
    pub fn seed(&self) -> u64 {
        self.random.borrow_mut().u64(..)
    }

    /// A random number (a weighted split's draw).
    #[inline]
    pub fn random_u64(&self) -> u64 {
        self.random.borrow_mut().u64(..)
    }
}

/// What the control thread asks of a worker.
#[derive(Debug)]
pub enum Command {
    /// Build a snapshot of `config` and make it current; start accepting on `sockets`
    /// (this worker's sockets of listeners that are new or moved, by name); stop
    /// accepting on listeners `config` no longer has. Acknowledged with `Applied`.
    Apply {
        /// The validated config.
        config: Arc<Config>,
        /// Its stats scopes (surviving names keep their scopes); boxed, as the largest
        /// part of the rarest command.
        stats: Box<StatsHandles>,
        /// The config version, echoed in `Applied`.
        version: u64,
        /// New sockets, by listener name.
        sockets: Vec<(String, crate::listen::ListenSocket)>,
        /// The host sets of its clusters now.
        hosts: HostSets,
        /// Its JWT providers' keys now.
        keys: crate::auth::runtime::WorkerKeys,
    },
    /// New keys for a JWT provider of the current config (fetched, or its file
    /// changed): its tokens are verified with them from the next request on.
    JwtKeys {
        provider: String,
        keys: Arc<crate::auth::jwt::Jwks>,
    },
    /// A cluster of the current config has a new host set (discovery found new
    /// members, a health check or the outlier detector changed an endpoint's health):
    /// its balancer takes it from the next request on (endpoints that left drain).
    Hosts {
        /// The cluster's name.
        cluster: String,
        set: Arc<HostSet>,
        /// When the change was found, for `cluster_manager.host_update_latency_ms`.
        found: std::time::Instant,
    },
    /// New session-ticket keys (a rotation): TLS listeners seal tickets with the newest
    /// from now on.
    TicketKeys(crate::tls::ticket::TicketKeys),
    /// Stop accepting on every listener; keep serving open connections.
    DrainListeners,
    /// Stop accepting, let open connections finish for up to `drain_timeout`, then exit.
    Shutdown {
        /// The longest time to wait for open connections.
        drain_timeout: Duration,
    },
}

/// What a worker tells the control thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The worker is accepting on all its sockets.
    Ready(usize),
    /// The worker could not start; the process should exit.
    Failed(usize, String),
    /// The worker has finished and its thread is ending.
    Stopped(usize),
    /// The worker serves config `version` (the second field) for new connections.
    Applied(usize, u64),
}

/// Everything a worker starts with.
#[derive(Debug)]
pub struct WorkerSetup {
    /// Index of this worker, `0..workers`; also its stats cell index.
    pub id: usize,
    /// The control thread's `/healthcheck/fail`, for health-check filters.
    pub health_failed: Arc<std::sync::atomic::AtomicBool>,
    /// The driver chosen by the control thread.
    pub driver: Driver,
    /// The CPU to pin to, if pinning.
    pub cpu: Option<CpuId>,
    /// The validated config.
    pub config: Arc<Config>,
    /// The stats scopes, by listener name.
    pub stats: StatsHandles,
    /// The host sets of the config's clusters, as first known.
    pub hosts: HostSets,
    /// Where failures worth the outlier detector's attention go.
    pub outlier: crate::health::Reporter,
    /// `cluster_manager.host_update_latency_ms`: from a health or membership change
    /// being found to this worker balancing with it.
    pub update_latency: Arc<crate::stats::Histogram>,
    /// The config's JWT keys, as first known.
    pub keys: crate::auth::runtime::WorkerKeys,
    /// This worker's sockets of each listener (see `control::sockets`), by listener name.
    pub sockets: Vec<(String, crate::listen::ListenSocket)>,
    /// Commands from the control thread.
    pub commands: flume::Receiver<Command>,
    /// Events to the control thread.
    pub events: flume::Sender<Event>,
    /// The access log's queue and settings, when one is configured.
    pub access_log: Option<WorkerLogSetup>,
    /// The session-ticket keys every worker shares.
    pub ticket_keys: crate::tls::ticket::TicketKeys,
    /// The span exporter's queue, for this worker's span sinks.
    pub trace: crate::trace::sink::TraceSetup,
    /// The `server.` scope, for `heap_allocations`.
    #[cfg(feature = "alloc-count")]
    pub heap_stats: Arc<crate::stats::Scope>,
}

/// Starts a worker thread.
pub fn spawn(setup: WorkerSetup) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ringway-worker-{}", setup.id))
        .spawn(move || run(setup))
}

fn run(setup: WorkerSetup) {
    let (id, events) = (setup.id, setup.events.clone());
    crate::allocator::init();
    if let Some(cpu) = setup.cpu {
        if !core_affinity::set_for_current(cpu) {
            warn!(worker = id, cpu = cpu.id, "could not pin worker to its CPU");
        }
    }
    if let Err(e) = driver::block_on(setup.driver, serve(setup)) {
        let _ = events.send(Event::Failed(id, format!("runtime: {e}")));
    }
}

/// The number of open connections of a worker, so a drain knows when it is done.
#[derive(Debug, Default)]
pub struct Connections {
    open: Cell<usize>,
}

impl Connections {
    /// Counts a connection as open until the guard is dropped.
    pub fn open(self: &Rc<Self>) -> ConnectionGuard {
        self.open.set(self.open.get() + 1);
        ConnectionGuard(Rc::clone(self))
    }

    fn count(&self) -> usize {
        self.open.get()
    }
}

/// Marks one connection as open while it lives.
#[derive(Debug)]
pub struct ConnectionGuard(Rc<Connections>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get().saturating_sub(1));
    }
}

async fn serve(setup: WorkerSetup) {
    let WorkerSetup {
        id,
        config,
        stats,
        hosts,
        keys,
        sockets,
        commands,
        events,
        access_log,
        driver,
        ticket_keys,
        outlier,
        update_latency,
        trace,
        ..
    } = setup;
    let update_latency = update_latency.for_worker(id);
    let context = Rc::new(WorkerContext::new(
        (id, outlier, trace),
        Arc::clone(&setup.health_failed),
        ticket_keys,
        #[cfg(feature = "alloc-count")]
        setup.heap_stats.for_worker(id),
    ));
    let build = |config: &Config,
                 stats: &StatsHandles,
                 hosts: &HostSets,
                 keys: &crate::auth::runtime::WorkerKeys| {
        context.spans.borrow_mut().configure(config, &stats.tracers);
        Snapshot::build(
            config,
            (stats, hosts, keys),
            id,
            (
                &context.pools,
                &context.ticket_keys.borrow(),
                &context.shards,
            ),
            context.seed(),
        )
    };
    let snapshot = build(&config, &stats, &hosts, &keys);
    // The clusters of the current snapshot, where host-set updates land, and its JWT
    // providers, where fetched keys land.
    let mut clusters = Rc::clone(&snapshot.clusters);
    let mut providers = Rc::clone(&snapshot.providers);
    let stop = Stop::new();
    let connections = Rc::new(Connections::default());
    monoio::spawn(sweep(Rc::clone(&context), Rc::clone(&stop)));
    monoio::spawn(sweep_leases(Rc::clone(&context), Rc::clone(&stop)));
    let clock = Rc::clone(&context);
    monoio::spawn(async move {
        clock
            .clock
            .keep_fresh(|| {
                let now = clock.clock.coarse_now();
                clock.spans.borrow_mut().tick(now);
            })
            .await;
    });
    let log = access_log.map(|setup| Rc::new(WorkerLog::new(setup)));
    if let Some(log) = &log {
        monoio::spawn(flush_periodically(Rc::clone(log)));
    }
    let shared = accept::Shared {
        context: Rc::clone(&context),
        stop: Rc::clone(&stop),
        connections: Rc::clone(&connections),
        log: log.clone(),
        epoll: driver == Driver::Epoll,
    };
    let mut listeners = Listeners::default();
    if let Err(e) = listeners.apply(snapshot, sockets, &shared) {
        let _ = events.send(Event::Failed(id, e));
        return;
    }
    let _ = events.send(Event::Ready(id));

    // Commands until Shutdown; a closed queue means the control thread is gone, and the
    // worker stops at once.
    let drain_timeout = loop {
        match commands.recv_async().await {
            Ok(Command::Apply {
                config,
                stats,
                version,
                sockets,
                hosts,
                keys,
            }) => {
                let snapshot = build(&config, &stats, &hosts, &keys);
                clusters = Rc::clone(&snapshot.clusters);
                providers = Rc::clone(&snapshot.providers);
                if let Err(e) = listeners.apply(snapshot, sockets, &shared) {
                    // Only registering a new socket with the runtime can fail here; the
                    // other listeners still took the new config.
                    error!(worker = id, version, "applying config: {e}");
                }
                let _ = events.send(Event::Applied(id, version));
            }
            Ok(Command::Hosts {
                cluster,
                set,
                found,
            }) => {
                if let Some(c) = clusters.iter().find(|c| *c.name == *cluster) {
                    c.set_hosts(set, &context.pools);
                }
                update_latency.record(found.elapsed());
            }
            Ok(Command::JwtKeys { provider, keys }) => providers.set_keys(&provider, keys),
            Ok(Command::TicketKeys(keys)) => {
                listeners.set_ticket_keys(&keys);
                *context.ticket_keys.borrow_mut() = keys;
            }
            Ok(Command::DrainListeners) => listeners.stop_accepting(),
            Ok(Command::Shutdown { drain_timeout }) => break drain_timeout,
            Err(_) => break Duration::ZERO,
        }
    };
    // Both in one step: the accept loops' last pass runs after this, so connections it
    // takes from the backlog see the stop and are served one request with
    // `connection: close`; connections already idle close now.
    listeners.stop_accepting();
    stop.stop();
    let deadline = std::time::Instant::now() + drain_timeout;
    while connections.count() > 0 && std::time::Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL).await;
    }
    if connections.count() > 0 {
        info!(
            worker = id,
            open = connections.count(),
            "drain timeout: closing connections"
        );
    }
    // The last lines go to the writer before the control thread closes its queue, and
    // the last spans to the exporter.
    if let Some(log) = &log {
        log.flush();
    }
    context.spans.borrow_mut().flush();
    let _ = events.send(Event::Stopped(id));
}

/// Once a second until the worker stops: closes expired idle upstream connections, frees
/// the read chunks no connection needed since the previous sweep, and has the allocator
/// give this thread's free pages back (memory comes back after a burst; ARCHITECTURE.md,
/// "Memory").
async fn sweep(context: Rc<WorkerContext>, stop: Rc<Stop>) {
    let mut takes = context.bufs.takes();
    // Whether memory was freed since the last forced collect.
    let mut settled = true;
    loop {
        monoio::select! {
            _ = monoio::time::sleep(SWEEP) => {
                let closed = context.pools.sweep(std::time::Instant::now());
                let trimmed = context.bufs.trim(IDLE_CHUNKS);
                stop.compact();
                let busy = context.bufs.takes() != takes;
                takes = context.bufs.takes();
                if busy {
                    crate::allocator::collect(false);
                    settled = false;
                } else if !settled || closed > 0 || trimmed > 0 {
                    // The first quiet second after activity: give everything back now.
                    crate::allocator::collect(true);
                    settled = true;
                }
            }
            _ = stop.wait() => return,
        }
    }
}

/// Every [`crate::ratelimit::shard::LEASE_LIFETIME_US`] until the worker stops: gives rate-limit
/// leases nobody used for that long back to their pools, so tokens do not sit stranded
/// on this core after a key's traffic moved to another.
async fn sweep_leases(context: Rc<WorkerContext>, stop: Rc<Stop>) {
    let every = Duration::from_micros(crate::ratelimit::shard::LEASE_LIFETIME_US);
    loop {
        // Without rate limits, a check a second (a reload may add some).
        let wait = if context.shards.is_empty() {
            SWEEP
        } else {
            every
        };
        monoio::select! {
            _ = monoio::time::sleep(wait) => {
                context.shards.sweep(crate::ratelimit::now_micros());
            }
            _ = stop.wait() => return,
        }
    }
}

/// Hands partial access-log batches to the writer every `flush_interval`, so lines do not
/// wait for a full batch under low load. Runs until the worker's runtime is dropped, so
/// it also flushes while connections drain.
async fn flush_periodically(log: Rc<WorkerLog>) {
    loop {
        monoio::time::sleep(log.flush_interval()).await;
        log.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle keep-alive connection holds on its worker, besides its socket: the
    /// task (monoio's header and the future of `connection::serve`, which is the
    /// `Connection` plus the largest state any await point keeps). Printed for
    /// docs/performance.md ("Memory per idle connection"); the assertion keeps it from
    /// growing unnoticed.
    #[test]
    fn the_connection_task_stays_small() {
        let config = Config::parse(
            "workers: 1\nlisteners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let mut store = crate::stats::StatsStore::new(1);
        let stats = crate::snapshot::register_stats(&mut store, &config);
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        runtime.block_on(async {
            let keys = crate::tls::ticket::TicketKeys::generate(Duration::from_secs(60)).unwrap();
            let context = WorkerContext::new(
                (
                    0,
                    crate::health::Reporter::detached(),
                    crate::trace::sink::TraceSetup::detached(0, 1),
                ),
                Default::default(),
                keys.clone(),
                #[cfg(feature = "alloc-count")]
                store_scope(),
            );
            let snapshot = Snapshot::build(
                &config,
                (&stats, &Default::default(), &Default::default()),
                0,
                (&context.pools, &keys, &context.shards),
                1,
            );
            let listener = &snapshot.listeners["l"];
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = monoio::net::TcpStream::connect(std_listener.local_addr().unwrap())
                .await
                .unwrap();
            let address = stream.peer_addr().unwrap();
            let peer = (crate::peer::Peer::Ip(address.ip()), address.port());
            let stream = downstream::Downstream::Tcp(stream);
            let stop = Stop::default();
            let future = connection::serve(stream, peer, listener, &context, &stop, None);
            let size = std::mem::size_of_val(&future);
            eprintln!(
                "connection::serve future: {size} bytes; Connection: {} bytes (Request {}, Response {}, ChunkedDecoder {})",
                connection::CONNECTION_SIZE,
                std::mem::size_of::<crate::http1::Request>(),
                std::mem::size_of::<crate::http1::Response>(),
                std::mem::size_of::<crate::http1::ChunkedDecoder>(),
            );
            // 4,864 since issue 23 (the request's trace context; 4,736 after issue 22's
            // retry state, per-try and stream-duration limits and the fault filter's
            // delay; 4,224 before, 4,352 before issue 15; the future grows in steps of its
            // 128-byte alignment). monoio's task cell is the header (24 bytes) and the
            // trailer (a waker), each padded to that alignment, around the future: 128 +
            // 4,864 + 128 = 5,120 bytes, the top of mimalloc's 5 KiB size class (4,097 to
            // 5,120), so a connection costs the memory it did. The next step would cost
            // the 6 KiB class: anything new must be boxed or something else shrunk.
            assert!(size <= 4864, "the connection future grew to {size} bytes");
        });
    }

    #[cfg(feature = "alloc-count")]
    fn store_scope() -> crate::stats::WorkerScope {
        let mut store = crate::stats::StatsStore::new(1);
        store
            .scope("server.", &crate::stats::names::server::DEFS)
            .for_worker(0)
    }
}
