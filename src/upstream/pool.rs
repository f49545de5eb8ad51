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

use super::conn::UpstreamConn;
use crate::{
    buffers::LowWater,
    config::{EndpointAddress, PoolSettings},
};

#[derive(Debug)]
struct Idle {
    conn: UpstreamConn,
    expires: Instant,
}

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
    address: EndpointAddress,
    /// `address` as text, formatted once (access log lines name the endpoint).
    address_text: Box<str>,
    idle: RefCell<Vec<Idle>>,
    /// Idle connections not needed since the previous sweep.
    idle_low_water: LowWater,
    /// `max_idle_per_endpoint` of the last request returned (pools outlive snapshots).
    keep_idle: Cell<usize>,
    open: Cell<usize>,
    waiters: RefCell<VecDeque<Rc<Waiter>>>,
}

/// Why no connection could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl EndpointPool {
    /// An empty pool for `address`.
    pub fn new(address: EndpointAddress) -> Rc<Self> {
        Rc::new(EndpointPool {
            address_text: address.to_string().into(),
            address,
            idle: RefCell::new(Vec::new()),
            idle_low_water: LowWater::default(),
            keep_idle: Cell::new(PoolSettings::default().max_idle_per_endpoint),
            open: Cell::new(0),
            waiters: RefCell::new(VecDeque::new()),
        })
    }

    /// The endpoint's address.
    pub fn address(&self) -> &EndpointAddress {
        &self.address
    }

    /// The endpoint's address as text.
    pub fn address_text(&self) -> &str {
        &self.address_text
    }

    /// Connections open now (busy, idle or connecting).
    pub fn open(&self) -> usize {
        self.open.get()
    }

    /// Idle connections held now.
    pub fn idle(&self) -> usize {
        self.idle.borrow().len()
    }

    /// A pooled connection if one is idle, else permission to connect, waiting in the
    /// queue if the endpoint is at its connection limit.
    pub async fn checkout(self: &Rc<Self>, settings: &PoolSettings) -> Result<Lease, Overflow> {
        if let Some(conn) = self.pop_idle(Instant::now()) {
            return Ok(self.lease(Some(conn), settings));
        }
        if self.open.get() < settings.max_connections_per_endpoint {
            self.open.set(self.open.get() + 1);
            return Ok(self.lease(None, settings));
        }
        let live_waiters = self
            .waiters
            .borrow()
            .iter()
            .filter(|w| !w.cancelled.get())
            .count();
        if live_waiters >= settings.max_pending {
            return Err(Overflow);
        }
        let waiter = Rc::new(Waiter::default());
        self.waiters.borrow_mut().push_back(Rc::clone(&waiter));
        let grant = Wait(CancelOnDrop {
            waiter: Some(waiter),
            pool: Rc::clone(self),
        })
        .await;
        Ok(match grant {
            Grant::Conn(conn) => self.lease(Some(conn), settings),
            Grant::Connect => self.lease(None, settings),
        })
    }

    /// Like [`EndpointPool::checkout`], but never an idle connection: for the retry of
    /// a request whose pooled connection turned out to be closed by the origin.
    pub async fn checkout_fresh(
        self: &Rc<Self>,
        settings: &PoolSettings,
    ) -> Result<Lease, Overflow> {
        if self.open.get() < settings.max_connections_per_endpoint {
            self.open.set(self.open.get() + 1);
            return Ok(self.lease(None, settings));
        }
        // At the limit: wait like any other request (a pooled one may be handed over).
        self.checkout(settings).await
    }

    fn lease(self: &Rc<Self>, conn: Option<UpstreamConn>, settings: &PoolSettings) -> Lease {
        Lease {
            reused: conn.is_some(),
            conn,
            pool: Rc::clone(self),
            settings: *settings,
            released: false,
        }
    }

    fn pop_idle(&self, now: Instant) -> Option<UpstreamConn> {
        let mut idle = self.idle.borrow_mut();
        let mut found = None;
        while let Some(entry) = idle.pop() {
            if entry.expires > now {
                found = Some(entry.conn);
                break;
            }
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
                return Some(w);
            }
        }
        None
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
        idle.push(Idle {
            conn,
            expires: Instant::now() + ttl,
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
        idle.retain(|entry| entry.expires > now);
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
    pool: Rc<EndpointPool>,
    settings: PoolSettings,
    released: bool,
}

impl Lease {
    /// The pool's endpoint.
    pub fn address(&self) -> &EndpointAddress {
        self.pool.address()
    }

    /// Returns the connection to the pool: call only after the response was read to its
    /// end and the connection may be reused. `keep_alive` is the origin's
    /// `Keep-Alive: timeout=`, if it sent one.
    pub fn release(mut self, keep_alive: Option<Duration>) {
        if let Some(conn) = self.conn.take() {
            self.released = true;
            self.pool.put_back(conn, &self.settings, keep_alive);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
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
