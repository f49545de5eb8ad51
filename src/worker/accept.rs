//! A worker's accept loop for one listener socket.
//!
//! The loop waits until the socket is readable (an io_uring poll, or epoll readiness),
//! then accepts with non-blocking `accept4` until the backlog is empty. Two reasons for
//! not keeping an accept operation in flight instead:
//!
//! - **Stopping loses nothing.** A drain or reload sets the listener's stop signal; the
//!   loop then makes one last pass that takes every connection already queued, and only
//!   then closes its socket. An in-flight io_uring accept cancelled at that moment could
//!   complete in the kernel while being dropped, and that connection would be lost; a
//!   cancelled poll owns nothing.
//! - **Batching.** Under load one wake-up accepts every queued connection.
//!
//! With epoll the wait is monoio's accept operation instead of its readability check.
//! Our own `accept4` calls bypass monoio, so its readiness flag for the listener stays set
//! after they drain the backlog, and `readable(false)` then re-checks with a `poll(2)`
//! before every wait and after every wake-up. monoio's epoll accept is a readiness wait
//! plus an `accept4` made when the task runs: it clears the flag on EAGAIN, and dropped
//! while waiting (the stop) it owns nothing, so the last pass still loses nothing. Two
//! syscalls fewer per wake-up; with io_uring, where that accept would be in the kernel,
//! the poll stays.
//!
//! Each accepted connection is a task on this worker holding the listener snapshot read
//! from the slot *at accept time*: a reload swaps the slot, so new connections get the new
//! rules while open ones finish on the snapshot they started with.

use std::{cell::RefCell, io, rc::Rc};

use monoio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tracing::{debug, warn};

use super::{connection, downstream::Downstream, stop::Stop, Connections, WorkerContext};
use crate::allocator::{self, InConnectionHeap};
use crate::listen::{out_of_resources, ListenSocket, ACCEPT_BACKOFF};
use crate::{
    access_log::WorkerLog,
    peer::Peer,
    snapshot::{ListenerSnapshot, Overflow},
    stats::names::{http as rq, listener as cx},
};

/// The current snapshot of one listener on one worker; a reload replaces the `Rc` inside.
pub type Slot = Rc<RefCell<Rc<ListenerSnapshot>>>;

/// One listening socket, twice: the runtime's handle to wait for readability and a
/// non-blocking std handle (same open socket) to accept with.
#[derive(Debug)]
pub struct Acceptor {
    watch: Watch,
    accept: ListenSocket,
}

/// The runtime's handle of a listening socket.
#[derive(Debug)]
enum Watch {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Acceptor {
    /// Registers `socket` (non-blocking) with the current runtime.
    pub fn new(socket: ListenSocket) -> io::Result<Acceptor> {
        let accept = socket.try_clone()?;
        let watch = match socket {
            ListenSocket::Tcp(s) => {
                s.set_nonblocking(true)?;
                Watch::Tcp(TcpListener::from_std(s)?)
            }
            ListenSocket::Unix(s) => {
                s.set_nonblocking(true)?;
                Watch::Unix(UnixListener::from_std(s)?)
            }
        };
        Ok(Acceptor { watch, accept })
    }
}

impl Watch {
    async fn readable(&self) -> io::Result<()> {
        match self {
            Watch::Tcp(l) => l.readable(false).await,
            Watch::Unix(l) => l.readable(false).await,
        }
    }

    /// monoio's accept (the epoll path, see the module note), registered on this worker.
    async fn accept(&self) -> io::Result<(Downstream, (Peer, u16))> {
        match self {
            Watch::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                Ok((Downstream::Tcp(stream), (Peer::Ip(peer.ip()), peer.port())))
            }
            Watch::Unix(l) => {
                let (stream, _) = l.accept().await?;
                Ok((Downstream::Unix(stream), (Peer::Unix, 0)))
            }
        }
    }
}

/// An accepted socket not yet registered with the runtime.
#[derive(Debug)]
enum Accepted {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Accepted {
    /// Registers the socket with this worker's runtime.
    fn register(self) -> io::Result<Downstream> {
        Ok(match self {
            Accepted::Tcp(s) => Downstream::Tcp(TcpStream::from_std(s)?),
            Accepted::Unix(s) => Downstream::Unix(UnixStream::from_std(s)?),
        })
    }
}

/// Takes one queued connection from `listener`, already non-blocking and close-on-exec
/// (`accept4` sets both, so no `ioctl` follows per connection), with its peer and the
/// peer's port (0 on a Unix socket).
fn accept_one(listener: &ListenSocket) -> io::Result<(Accepted, (Peer, u16))> {
    use nix::sys::socket::SockFlag;
    let flags = (SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC).bits();
    match listener {
        ListenSocket::Tcp(l) => {
            let (socket, peer) = socket2::SockRef::from(l).accept4(flags)?;
            let peer = peer
                .as_socket()
                .ok_or_else(|| io::Error::other("accepted a connection without an IP peer"))?;
            Ok((
                Accepted::Tcp(socket.into()),
                (Peer::Ip(peer.ip()), peer.port()),
            ))
        }
        ListenSocket::Unix(l) => {
            let (socket, _) = socket2::SockRef::from(l).accept4(flags)?;
            Ok((Accepted::Unix(socket.into()), (Peer::Unix, 0)))
        }
    }
}

/// What an accept loop shares with its worker.
#[derive(Debug, Clone)]
pub struct Shared {
    pub context: Rc<WorkerContext>,
    /// The worker's stop: set at shutdown, closes connections between requests.
    pub stop: Rc<Stop>,
    pub connections: Rc<Connections>,
    pub log: Option<Rc<WorkerLog>>,
    /// The worker runs monoio's epoll driver (see the module note on accepting).
    pub epoll: bool,
}

/// Accepts on `acceptor` until `accept_stop` is set, then takes what is queued and closes.
pub async fn accept_loop(acceptor: Acceptor, slot: Slot, accept_stop: Rc<Stop>, shared: Shared) {
    loop {
        // Everything queued now, including (after the stop) the last pass.
        loop {
            match accept_one(&acceptor.accept) {
                // The stream's own allocation belongs to the connection, like its task.
                Ok((stream, peer)) => match allocator::in_connection_heap(|| stream.register()) {
                    Ok(stream) => start_connection(stream, peer, &slot, &shared),
                    Err(e) => debug!(error = %e, "registering an accepted connection failed"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if out_of_resources(&e) => {
                    {
                        let name = &*slot.borrow().name;
                        warn!(listener = name, error = %e, "accept: out of resources; backing off");
                    }
                    monoio::time::sleep(ACCEPT_BACKOFF).await;
                }
                Err(e) => {
                    // ECONNABORTED and the like: that one connection is gone, go on.
                    debug!(listener = &*slot.borrow().name, error = %e, "accept failed");
                }
            }
        }
        if accept_stop.is_stopped() {
            break;
        }
        if shared.epoll {
            // monoio's accepts until one fails or the stop; an error (out of
            // descriptors, say) goes back to the loop above, which meets it again and
            // backs off, and the stop to its last pass.
            loop {
                monoio::select! {
                    // Polled in the connection heap: monoio's accept registers the
                    // socket as it completes, and that block belongs to the connection.
                    accepted = InConnectionHeap::new(acceptor.watch.accept()) => match accepted {
                        Ok((stream, peer)) => start_connection(stream, peer, &slot, &shared),
                        Err(e) => {
                            debug!(listener = &*slot.borrow().name, error = %e, "accept failed");
                            break;
                        }
                    },
                    _ = accept_stop.wait() => break,
                }
            }
            continue;
        }
        monoio::select! {
            ready = acceptor.watch.readable() => {
                if let Err(e) = ready {
                    debug!(listener = &*slot.borrow().name, error = %e, "listener poll failed");
                    monoio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
            _ = accept_stop.wait() => {}
        }
    }
    // Both handles close here; the socket itself closes with its last descriptor (a
    // successor process may hold another one and keep accepting from the same queue).
}

fn start_connection(stream: Downstream, peer: (Peer, u16), slot: &Slot, shared: &Shared) {
    // No TCP_NODELAY here: an accepted socket inherits it from its listener, which
    // `listen` (or, for sockets from systemd, `control::systemd`) set once.
    let listener = Rc::clone(&slot.borrow());
    listener.cx_stats.get(cx::DOWNSTREAM_CX_TOTAL).inc();
    // Over the listener's `connection_rate`: closed at once (Envoy's network
    // `local_ratelimit` closes it the same way), before it counts as open.
    if !listener.admits_connection() {
        listener.cx_stats.get(cx::DOWNSTREAM_CX_DESTROY).inc();
        return drop(stream);
    }
    if let Err(overflow) = listener.admit() {
        // Over a cap: closed at once, as Envoy does; accepted again once others close.
        let counter = match overflow {
            Overflow::Listener => cx::DOWNSTREAM_CX_OVERFLOW,
            Overflow::Global => cx::DOWNSTREAM_GLOBAL_CX_OVERFLOW,
        };
        listener.cx_stats.get(counter).inc();
        listener.cx_stats.get(cx::DOWNSTREAM_CX_DESTROY).inc();
        return drop(stream);
    }
    listener.cx_stats.get(cx::DOWNSTREAM_CX_ACTIVE).inc();
    let http = &listener.http_stats;
    for open in [
        rq::DOWNSTREAM_CX_TOTAL,
        rq::DOWNSTREAM_CX_HTTP1_TOTAL,
        rq::DOWNSTREAM_CX_ACTIVE,
        rq::DOWNSTREAM_CX_HTTP1_ACTIVE,
    ] {
        http.get(open).inc();
    }
    let opened = std::time::Instant::now();
    let guard = shared.connections.open();
    let shared = shared.clone();
    // The task and everything it allocates live in the connection heap, apart from the
    // worker's long-lived objects (ARCHITECTURE.md, "Memory").
    let task = InConnectionHeap::new(async move {
        let log = shared.log.as_deref();
        // A connection whose handshake failed ends with no request, closed by the side
        // `handshake` says.
        let ended = match super::tls_accept::handshake(stream, &listener).await {
            Ok(stream) => {
                let tls = stream.is_tls();
                let context = &shared.context;
                let ended =
                    connection::serve(stream, peer, &listener, context, &shared.stop, log).await;
                if tls {
                    listener.http_stats.get(rq::DOWNSTREAM_CX_SSL_ACTIVE).dec();
                }
                ended
            }
            Err(by_client) => connection::Ended {
                by_client,
                active_rq: false,
            },
        };
        listener.cx_stats.get(cx::DOWNSTREAM_CX_ACTIVE).dec();
        listener.cx_stats.get(cx::DOWNSTREAM_CX_DESTROY).inc();
        let http = &listener.http_stats;
        http.get(rq::DOWNSTREAM_CX_ACTIVE).dec();
        http.get(rq::DOWNSTREAM_CX_HTTP1_ACTIVE).dec();
        http.get(rq::DOWNSTREAM_CX_DESTROY).inc();
        count_destroy(http, ended);
        // Envoy's `downstream_cx_length_ms`, in the listener's and the HTTP scope.
        let length = opened.elapsed();
        listener.cx_length.record(length);
        listener.http_cx_length.record(length);
        listener.release();
        drop(guard);
    });
    allocator::in_connection_heap(|| monoio::spawn(task));
}

/// Envoy's `downstream_cx_destroy_{local,remote}` and, with a request open,
/// `downstream_cx_destroy_active_rq` and its `_local_`/`_remote_` half.
fn count_destroy(http: &crate::stats::WorkerScope, ended: connection::Ended) {
    let (side, side_active) = if ended.by_client {
        (
            rq::DOWNSTREAM_CX_DESTROY_REMOTE,
            rq::DOWNSTREAM_CX_DESTROY_REMOTE_ACTIVE_RQ,
        )
    } else {
        (
            rq::DOWNSTREAM_CX_DESTROY_LOCAL,
            rq::DOWNSTREAM_CX_DESTROY_LOCAL_ACTIVE_RQ,
        )
    };
    http.get(side).inc();
    if ended.active_rq {
        http.get(rq::DOWNSTREAM_CX_DESTROY_ACTIVE_RQ).inc();
        http.get(side_active).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn accepted_connections_are_non_blocking_and_carry_their_peer() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = ListenSocket::Tcp(std_listener);
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, peer) = accept_one(&listener).unwrap();
        let local = client.local_addr().unwrap();
        assert_eq!(peer, (Peer::Ip(local.ip()), local.port()));
        let Accepted::Tcp(mut accepted) = accepted else {
            panic!("a TCP listener accepts TCP connections")
        };
        // Nothing sent yet: on a blocking socket this read would hang.
        let mut byte = [0u8; 1];
        let err = accepted.read(&mut byte).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        client.write_all(b"x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(accepted.read(&mut byte).unwrap(), 1);
        // Nothing else is queued.
        if let ListenSocket::Tcp(l) = &listener {
            l.set_nonblocking(true).unwrap();
        }
        let err = accept_one(&listener).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
