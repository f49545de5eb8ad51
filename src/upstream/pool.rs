//! A worker's keep-alive pool of connections to one endpoint.
//!
//! Per worker and per endpoint, so checking a connection out or in touches only this
//! thread's memory. The pool counts every connection it has let open (busy, idle or
//! still connecting) against `max_connections_per_endpoint`; past that, requests wait in
//! a bounded FIFO (`max_pending`), and one more is refused (503, Envoy's "upstream
//! overflow"). A connection that comes back is handed straight to the oldest waiter;
//! a connection that closes gives its place to the oldest waiter, who then connects.
//!
//! Idle connections are kept newest-last and reused newest-first: the most recently used
//! connection is the least likely to have been closed by the origin. Each expires after
//! the pool's `idle_timeout`, or sooner when the origin said `Keep-Alive: timeout=N`.
//! Expired connections are dropped when found and by a periodic sweep, so that an
//! endpoint no longer used does not keep sockets open.
//!
//! `max_idle_per_endpoint` bounds what stays idle once load has passed, not what may sit
//! idle for a moment. Closing a returned connection as soon as the idle list is at the
//! cap (nginx's `keepalive N`) churns connections whenever more requests are in flight
//! than the cap: a closed loop of 1,000 clients opened an upstream connection for one
//! request in four that way. So a connection always goes back to the list, and the
//! once-a-second sweep closes, oldest first, the idle connections above the cap that no
//! request needed since the previous sweep (the list's low-water mark, as the buffer pool
//! trims its chunks). A burst keeps its connections while it lasts; within two sweeps of
//! its end the list is back at the cap. Idle connections never exceed open ones, which
//! `max_connections_per_endpoint` bounds.
//!
//! A connection is returned only by an explicit [`Lease::release`] after its response
//! was read to the end; dropping a lease (any error, a timeout, a cancelled request)
//! closes the connection.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use super::{
    breakers::{Permit, Resource, WorkerBreakers},
    conn::UpstreamConn,
};
use crate::{
    buffers::LowWater,
    config::{Address, PoolSettings},
    stats::names::cluster::UPSTREAM_CX_OVERFLOW,
};

#[derive(Debug)]
struct Idle {
    conn: UpstreamConn,
    /// When it came back.
    since: Instant,
    expires: Instant,
}

/// An idle connection unused for longer than this is checked before reuse: a
/// non-blocking peek tells whether the origin closed it or sent something unasked (a
/// 408 before closing). Origins close idle connections after seconds, so a connection
/// reused sooner skips the syscall: under load, reuse is microseconds apart.
const CHECK_IDLE_AFTER: Duration = Duration::from_millis(100);

/// What a waiter is given when a place frees up.
#[derive(Debug)]
enum Grant {
    /// A connection handed over by a finished request.
    Conn(UpstreamConn),
    /// Permission to open a new connection (already counted as open).
    Connect,
}

#[derive(Debug, Default)]
struct Waiter {
    grant: RefCell<Option<Grant>>,
    waker: RefCell<Option<Waker>>,
    cancelled: Cell<bool>,
}

/// The pool of one endpoint on one worker.
#[derive(Debug)]
pub struct EndpointPool {
    address: Address,
    /// The name the address was resolved from, if any.
    hostname: Option<std::sync::Arc<str>>,
    /// `address` as text, formatted once (access log lines name the endpoint).
    address_text: Box<str>,
    idle: RefCell<Vec<Idle>>,
    /// Idle connections not needed since the previous sweep.
    idle_low_water: LowWater,
    /// `max_idle_per_endpoint` of the last request returned (pools outlive snapshots).
    keep_idle: Cell<usize>,
    open: Cell<usize>,
    /// Oldest first. Waiters that gave up stay until they reach the front or the queue
    /// is compacted (when more than half of it has given up), so giving up is O(1)
    /// and the queue stays within twice the live waiters.
    waiters: RefCell<VecDeque<Rc<Waiter>>>,
    /// Waiters still waiting (not given up, not granted).
    live_waiters: Cell<usize>,
    /// Requests holding a lease on this endpoint now (connecting, sending or reading):
    /// per-endpoint state for balancers that weigh load and for outlier detection.
    in_flight: Cell<u32>,
}

/// Counts Envoy's `upstream_rq_cancelled` when dropped holding its cluster's breakers:
/// a wait for a connection that ended before it was granted one.
struct CountCancelled<'a>(Option<&'a Rc<WorkerBreakers>>);

impl Drop for CountCancelled<'_> {
    fn drop(&mut self) {
        if let Some(breakers) = self.0 {
            breakers.count_cancelled();
        }
    }
}

/// Why no connection could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl EndpointPool {
    /// An empty pool for `address` (resolved from `hostname`, if any).
    pub fn new(address: Address, hostname: Option<std::sync::Arc<str>>) -> Rc<Self> {
        Rc::new(EndpointPool {
            address_text: address.to_string().into(),
            address,
            hostname,
            idle: RefCell::new(Vec::new()),
            idle_low_water: LowWater::default(),
            keep_idle: Cell::new(PoolSettings::default().max_idle_per_endpoint),
            open: Cell::new(0),
            waiters: RefCell::new(VecDeque::new()),
            live_waiters: Cell::new(0),
            in_flight: Cell::new(0),
        })
    }

    /// The endpoint's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The name the endpoint was resolved from, or (`auto_sni` pools) the server name
    /// its connections carry.
    pub fn name(&self) -> Option<&std::sync::Arc<str>> {
        self.hostname.as_ref()
    }

    /// The endpoint's address as text.
    pub fn address_text(&self) -> &str {
        &self.address_text
    }

    /// Where the host is in [`Self::address_text`] (`(start, len)`: an IPv6 address
    /// without its brackets, a Unix socket's path without `unix:`) and the port (0 for
    /// a Unix socket): an upstream span's `server.address` and `server.port`, found by
    /// arithmetic on the address, not by reading the text.
    pub fn host_and_port(&self) -> ((u32, u32), u16) {
        let len = self.address_text.len() as u32;
        match &self.address {
            Address::Tcp(addr) => {
                let port = addr.port();
                let digits = port.checked_ilog10().unwrap_or(0) + 1;
                match addr {
                    // `ip:port`
                    std::net::SocketAddr::V4(_) => ((0, len - 1 - digits), port),
                    // `[ip]:port`
                    std::net::SocketAddr::V6(_) => ((1, len - 3 - digits), port),
                }
            }
            Address::Unix(_) => ((5, len.saturating_sub(5)), 0),
        }
    }

    /// The Host a request to this endpoint implies (when the client sent none, or a
    /// route rewrites Host to the endpoint's): the name it was resolved from (as
    /// Envoy's `auto_host_rewrite` sends it), else its `ip:port`, or `localhost` for a
    /// Unix socket.
    pub fn host(&self) -> &str {
        if let Some(name) = &self.hostname {
            return name;
        }
        match self.address {
            Address::Tcp(_) => &self.address_text,
            Address::Unix(_) => "localhost",
        }
    }

    /// Connections open now (busy, idle or connecting).
    pub fn open(&self) -> usize {
        self.open.get()
    }

    /// Requests holding a lease on this endpoint now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.get()
    }

    /// Idle connections held now.
    pub fn idle(&self) -> usize {
        self.idle.borrow().len()
    }

    /// A pooled connection if one is idle, else permission to connect, waiting in the
    /// queue if the endpoint is at its connection limit or the cluster at its
    /// `max_connections` (its circuit breakers, `breakers`).
    pub async fn checkout(
        self: &Rc<Self>,
        settings: &PoolSettings,
        breakers: &Rc<WorkerBreakers>,
    ) -> Result<Lease, Overflow> {
        if let Some(conn) = self.pop_idle(Instant::now()) {
            return Ok(self.lease(Some(conn), settings, None));
        }
        if self.open.get() < settings.max_connections_per_endpoint {
            if let Some(lease) = self.connect_lease(settings, breakers) {
                return Ok(lease);
            }
        }
        self.wait(settings, breakers).await
    }

    /// Permission to open a connection under the cluster's `max_connections`; `None`
    /// when the breaker is open and this pool has connections to wait for. A pool
    /// without any connection opens one anyway (as Envoy's do): its requests could
    /// otherwise wait on connections other endpoints hold.
    fn connect_lease(
        self: &Rc<Self>,
        settings: &PoolSettings,
        breakers: &Rc<WorkerBreakers>,
    ) -> Option<Lease> {
        let permit = breakers.try_permit(Resource::Connection);
        if permit.is_none() {
            breakers.cluster_stats.get(UPSTREAM_CX_OVERFLOW).inc();
            if self.open.get() > 0 {
                return None;
            }
        }
        self.open.set(self.open.get() + 1);
        Some(self.lease(None, settings, permit))
    }

    /// Waits in the queue for a connection or a place (a pending request, counted
    /// against the cluster's `max_pending_requests`).
    async fn wait(
        self: &Rc<Self>,
        settings: &PoolSettings,
        breakers: &Rc<WorkerBreakers>,
    ) -> Result<Lease, Overflow> {
        if self.live_waiters.get() >= settings.max_pending {
            return Err(Overflow);
        }
        let Some(_pending) = breakers.try_permit(Resource::Pending) else {
            return Err(Overflow);
        };
        let waiter = Rc::new(Waiter::default());
        self.waiters.borrow_mut().push_back(Rc::clone(&waiter));
        self.live_waiters.set(self.live_waiters.get() + 1);
        // Dropped before a grant (the route's timeout): counted against the request's
        // cluster, whose breakers these are.
        let mut cancelled = CountCancelled(Some(breakers));
        let grant = Wait(CancelOnDrop {
            waiter: Some(waiter),
            pool: Rc::clone(self),
        })
        .await;
        cancelled.0 = None;
        Ok(match grant {
            Grant::Conn(conn) => self.lease(Some(conn), settings, None),
            // A place freed by a closed connection, whose permit went with it: this one
            // connects with a permit if there is one, else in that place anyway.
            Grant::Connect => {
                let permit = breakers.try_permit(Resource::Connection);
                self.lease(None, settings, permit)
            }
        })
    }

    /// Like [`EndpointPool::checkout`], but never an idle connection: for the retry of
    /// a request whose pooled connection turned out to be closed by the origin.
    pub async fn checkout_fresh(
        self: &Rc<Self>,
        settings: &PoolSettings,
        breakers: &Rc<WorkerBreakers>,
    ) -> Result<Lease, Overflow> {
        if self.open.get() < settings.max_connections_per_endpoint {
            if let Some(lease) = self.connect_lease(settings, breakers) {
                return Ok(lease);
            }
        }
        // At the limit: wait like any other request (a pooled one may be handed over).
        self.checkout(settings, breakers).await
    }

    fn lease(
        self: &Rc<Self>,
        conn: Option<UpstreamConn>,
        settings: &PoolSettings,
        permit: Option<Permit>,
    ) -> Lease {
        self.in_flight.set(self.in_flight.get() + 1);
        Lease {
            reused: conn.is_some(),
            conn,
            permit,
            pool: Rc::clone(self),
            settings: *settings,
            released: false,
        }
    }

    fn pop_idle(&self, now: Instant) -> Option<UpstreamConn> {
        let mut idle = self.idle.borrow_mut();
        let mut found = None;
        while let Some(mut entry) = idle.pop() {
            // Expired: ringway closes it (the default). Else checked when it has been
            // idle a while: the endpoint may have closed it or spoken unasked.
            let ended = if entry.expires <= now {
                entry.conn.count(UPSTREAM_CX_IDLE_TIMEOUT);
                Some(super::conn::Closer::Local)
            } else if now.saturating_duration_since(entry.since) < CHECK_IDLE_AFTER {
                None
            } else {
                entry.conn.idle_check()
            };
            let Some(closer) = ended else {
                found = Some(entry.conn);
                break;
            };
            entry.conn.closing(closer, false);
            self.open.set(self.open.get().saturating_sub(1));
        }
        self.idle_low_water.taken(idle.len());
        found
    }

    /// The next waiter still waiting, if any.
    fn next_waiter(&self) -> Option<Rc<Waiter>> {
        let mut waiters = self.waiters.borrow_mut();
        while let Some(w) = waiters.pop_front() {
            if !w.cancelled.get() {
                self.live_waiters.set(self.live_waiters.get() - 1);
                return Some(w);
            }
        }
        None
    }

    /// A waiter gave up before it was granted anything.
    fn gave_up(&self) {
        let live = self.live_waiters.get().saturating_sub(1);
        self.live_waiters.set(live);
        let mut waiters = self.waiters.borrow_mut();
        if waiters.len() > 2 * live + 8 {
            waiters.retain(|w| !w.cancelled.get());
        }
    }

    /// Entries in the waiting queue, given-up ones included (for tests).
    pub fn queued(&self) -> usize {
        self.waiters.borrow().len()
    }

    fn grant(waiter: &Waiter, grant: Grant) {
        *waiter.grant.borrow_mut() = Some(grant);
        if let Some(waker) = waiter.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Takes back a connection whose response was read to the end.
    fn put_back(&self, conn: UpstreamConn, settings: &PoolSettings, keep_alive: Option<Duration>) {
        if let Some(waiter) = self.next_waiter() {
            return Self::grant(&waiter, Grant::Conn(conn));
        }
        self.keep_idle.set(settings.max_idle_per_endpoint);
        let mut idle = self.idle.borrow_mut();
        let ttl = keep_alive.map_or(settings.idle_timeout, |k| k.min(settings.idle_timeout));
        let now = Instant::now();
        idle.push(Idle {
            conn,
            since: now,
            expires: now + ttl,
        });
    }

    /// A connection closed (or was never opened): its place goes to the oldest waiter.
    fn forget(&self) {
        match self.next_waiter() {
            Some(waiter) => Self::grant(&waiter, Grant::Connect),
            None => self.open.set(self.open.get().saturating_sub(1)),
        }
    }

    /// Once a second: closes the idle connections that expired and those above
    /// `max_idle_per_endpoint` that no request needed since the previous sweep; returns
    /// how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut idle = self.idle.borrow_mut();
        let before = idle.len();
        // Above the cap and unused since the last sweep: the oldest go first.
        let unused = self.idle_low_water.unused(before, self.keep_idle.get());
        idle.drain(..unused);
        idle.retain(|entry| {
            let keep = entry.expires > now;
            if !keep {
                entry.conn.count(UPSTREAM_CX_IDLE_TIMEOUT);
            }
            keep
        });
        let usual = idle.len().max(self.keep_idle.get());
        if idle.capacity() > 2 * usual {
            // A burst's list goes back to its usual size (memory after a burst).
            idle.shrink_to(usual);
        }
        self.idle_low_water.reset(idle.len());
        let closed = before - idle.len();
        self.open.set(self.open.get().saturating_sub(closed));
        closed
    }
}

/// A checked-out place in the pool: a reused connection, or permission to open one.
#[derive(Debug)]
pub struct Lease {
    /// The connection; `None` until the caller connects.
    pub conn: Option<UpstreamConn>,
    /// Whether `conn` came from the idle list (a failure before any response byte may
    /// then be the origin having closed it, and is worth one retry).
    pub reused: bool,
    /// The cluster's connection permit for a connection this lease opens (moved into
    /// the connection once open); `None` for a reused one, which holds its own.
    pub permit: Option<Permit>,
    pool: Rc<EndpointPool>,
    settings: PoolSettings,
    released: bool,
}

impl Lease {
    /// The pool's endpoint.
    pub fn address(&self) -> &Address {
        self.pool.address()
    }

    /// The name the endpoint was resolved from, if any.
    pub fn hostname(&self) -> Option<&str> {
        self.pool.hostname.as_deref()
    }

    /// Returns the connection to the pool: call only after the response was read to its
    /// end and the connection may be reused. `keep_alive` is the origin's
    /// `Keep-Alive: timeout=`, if it sent one.
    pub fn release(mut self, keep_alive: Option<Duration>) {
        if let Some(conn) = self.conn.take() {
            if let Some(max) = self.settings.max_requests_per_connection {
                if u64::from(conn.requests()) >= max {
                    // The cluster's `max_requests_per_connection`: closed by ringway
                    // (Envoy's pool drains it), its place passing on as any closed
                    // connection's does (`Drop`).
                    conn.count(crate::stats::names::cluster::UPSTREAM_CX_MAX_REQUESTS);
                    return;
                }
            }
            self.released = true;
            self.pool.put_back(conn, &self.settings, keep_alive);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool
            .in_flight
            .set(self.pool.in_flight.get().saturating_sub(1));
        if !self.released {
            self.conn = None;
            self.pool.forget();
        }
    }
}

/// Marks the waiter cancelled if the request stops waiting (timeout, client gone). A
/// grant that arrived but was never collected is given back: its connection is closed
/// and its place passes on.
struct CancelOnDrop {
    waiter: Option<Rc<Waiter>>,
    pool: Rc<EndpointPool>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            waiter.cancelled.set(true);
            if waiter.grant.borrow_mut().take().is_some() {
                self.pool.forget();
            } else {
                self.pool.gave_up();
            }
        }
    }
}

struct Wait(CancelOnDrop);

impl Future for Wait {
    type Output = Grant;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Grant> {
        let Some(waiter) = self.0.waiter.as_ref() else {
            return Poll::Pending;
        };
        let granted = waiter.grant.borrow_mut().take();
        if let Some(grant) = granted {
            self.0.waiter = None;
            return Poll::Ready(grant);
        }
        *waiter.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A pooled connection closed for idleness: ringway's `idle_timeout`, or the shorter
/// time the origin's `Keep-Alive: timeout` gave (either way the pool closes a
/// connection that sat unused too long; Envoy's pool has only the first).
const UPSTREAM_CX_IDLE_TIMEOUT: usize = crate::stats::names::cluster::UPSTREAM_CX_IDLE_TIMEOUT;

#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        task::{Context, Waker},
    };

    use super::*;

    fn poll<F: Future>(future: &mut Pin<Box<F>>) -> Poll<F::Output> {
        future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn the_host_and_port_are_found_in_the_address_text() {
        let apart = |address: Address| {
            let pool = EndpointPool::new(address, None);
            let ((at, len), port) = pool.host_and_port();
            let host = &pool.address_text()[at as usize..(at + len) as usize];
            (host.to_owned(), port)
        };
        let v4 = Address::Tcp(([10, 0, 0, 12], 8080).into());
        assert_eq!(apart(v4), ("10.0.0.12".into(), 8080));
        let v4 = Address::Tcp(([127, 0, 0, 1], 9).into());
        assert_eq!(apart(v4), ("127.0.0.1".into(), 9));
        let v6 = Address::Tcp("[2001:db8::1]:65535".parse().unwrap());
        assert_eq!(apart(v6), ("2001:db8::1".into(), 65535));
        let unix = Address::Unix("/run/app.sock".into());
        assert_eq!(apart(unix), ("/run/app.sock".into(), 0));
    }

    #[test]
    fn waiters_that_give_up_leave_the_queue() {
        let pool = EndpointPool::new(Address::Tcp(([127, 0, 0, 1], 1).into()), None);
        let settings = PoolSettings {
            max_connections_per_endpoint: 1,
            max_pending: 2,
            ..PoolSettings::default()
        };
        let breakers = crate::upstream::breakers::for_tests();
        let Poll::Ready(Ok(busy)) = poll(&mut Box::pin(pool.checkout(&settings, &breakers))) else {
            panic!("the first checkout gets permission to connect");
        };
        assert_eq!(pool.in_flight(), 1);
        // A thousand requests that time out while waiting.
        for _ in 0..1000 {
            let mut waiting = Box::pin(pool.checkout(&settings, &breakers));
            assert!(poll(&mut waiting).is_pending());
        }
        assert!(pool.queued() <= 10, "{} entries queued", pool.queued());
        // The queue still takes `max_pending` live waiters and refuses one more.
        let mut first = Box::pin(pool.checkout(&settings, &breakers));
        let mut second = Box::pin(pool.checkout(&settings, &breakers));
        assert!(poll(&mut first).is_pending() && poll(&mut second).is_pending());
        let mut third = Box::pin(pool.checkout(&settings, &breakers));
        assert!(matches!(poll(&mut third), Poll::Ready(Err(Overflow))));
        // A place that frees up goes to the oldest live waiter.
        drop(busy);
        let Poll::Ready(Ok(_granted)) = poll(&mut first) else {
            panic!("the oldest waiter was not granted the place");
        };
        assert!(poll(&mut second).is_pending());
        // Waiting requests are not in flight; the granted one is.
        assert_eq!(pool.in_flight(), 1);
        drop(_granted);
        assert_eq!(pool.in_flight(), 0);
        let Poll::Ready(Ok(second)) = poll(&mut second) else {
            panic!("the next waiter was not granted the place");
        };
        assert_eq!(pool.in_flight(), 1);
        drop(second);
        assert_eq!(pool.in_flight(), 0);
    }
}
