//! A connection to an endpoint: TCP (IPv4, IPv6), a Unix stream socket, or TLS over
//! TCP (`crate::tls`, its handshake run here right after the connect, within the same
//! `connect_timeout`).
//!
//! The socket is split into a read half and a write half when it is opened (monoio's
//! owned halves: one shared cell per connection, allocated once at connect time), so an
//! exchange can keep a read of the response armed while it is still writing the request
//! body: an upstream that answers early (a 401 or 413 to a large upload) is heard at
//! once instead of after a write that never completes. [`UpstreamConn::split`] lends both
//! halves at once; the connection itself reads and writes through them too, so the
//! forwarding code is the same for both kinds of socket.

use std::{io, os::fd::RawFd, time::Duration};

use monoio::{
    buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut},
    io::{
        AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent, OwnedReadHalf,
        OwnedWriteHalf, Splitable,
    },
    net::{TcpStream, UnixStream},
    BufResult,
};

use crate::config::Address;
use crate::stats::WorkerScope;
use crate::tls::stream::{ReadHalf as TlsRead, WriteHalf as TlsWrite};

/// TLS halves over TCP halves. Their read and write futures are boxed where the halves
/// and the connection dispatch to them: they are larger than a socket's, and inline
/// they would enlarge every exchange's future, plaintext ones included.
type TlsHalves = (
    TlsRead<OwnedReadHalf<TcpStream>>,
    TlsWrite<OwnedWriteHalf<TcpStream>>,
);

/// An open upstream connection.
#[derive(Debug)]
pub struct UpstreamConn {
    io: Halves,
    /// The socket, for the idle check's peek (the halves hide it).
    fd: RawFd,
    /// Counts the connection in its host's `cx_active` while it lives.
    active: Option<Active>,
    /// Its unit of the cluster's `max_connections`, given back when it closes.
    permit: Option<super::breakers::Permit>,
}

/// A connection counted in its cluster's `upstream_cx_active` and its host's `cx_active`
/// gauges until dropped (the cells only: holding the host would hold its pool, which
/// holds this connection), and how it is closing ([`UpstreamConn::closing`]).
#[derive(Debug)]
struct Active {
    cells: std::rc::Rc<super::HostCells>,
    opened: std::time::Instant,
    closer: Closer,
    request_in_flight: bool,
    /// Requests sent on it (in the padding after the flags: the connection does not
    /// grow).
    requests: u32,
}

impl Drop for Active {
    fn drop(&mut self) {
        use crate::stats::names::{cluster, host};
        self.cells.cluster.get(cluster::UPSTREAM_CX_ACTIVE).dec();
        count_destroy(&self.cells.cluster, self.closer, self.request_in_flight);
        // Envoy's `upstream_cx_length_ms`: one clock read per upstream connection.
        self.cells.conns.length.record(self.opened.elapsed());
        self.cells
            .conns
            .rq_per_cx
            .record_count(u64::from(self.requests));
        if let Some(stats) = &self.cells.host {
            stats.get(host::CX_ACTIVE).dec();
        }
    }
}

/// Which side closed an upstream connection (Envoy's `LocalClose` and `RemoteClose`):
/// ringway (an idle timeout, a response that ends the connection, a timeout or an
/// error found in the exchange, a drained pool) or the endpoint (it closed or reset
/// the connection, refused it, or ended a response by closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Closer {
    #[default]
    Local,
    Remote,
}

/// Counts a closed connection, opened or not, as Envoy's pool does
/// (`reportUpstreamCxDestroy`, `reportUpstreamCxDestroyActiveRequest`):
/// `upstream_cx_destroy`, its `_local` or `_remote` half, and with a request in flight
/// `_with_active_rq` and its half too.
pub fn count_destroy(stats: &crate::stats::WorkerScope, closer: Closer, request_in_flight: bool) {
    use crate::stats::names::cluster as cx;
    stats.get(cx::UPSTREAM_CX_DESTROY).inc();
    let remote = closer == Closer::Remote;
    stats
        .get(if remote {
            cx::UPSTREAM_CX_DESTROY_REMOTE
        } else {
            cx::UPSTREAM_CX_DESTROY_LOCAL
        })
        .inc();
    if request_in_flight {
        stats.get(cx::UPSTREAM_CX_DESTROY_WITH_ACTIVE_RQ).inc();
        stats
            .get(if remote {
                cx::UPSTREAM_CX_DESTROY_REMOTE_WITH_ACTIVE_RQ
            } else {
                cx::UPSTREAM_CX_DESTROY_LOCAL_WITH_ACTIVE_RQ
            })
            .inc();
    }
}

#[derive(Debug)]
enum Halves {
    Tcp(OwnedReadHalf<TcpStream>, OwnedWriteHalf<TcpStream>),
    Unix(OwnedReadHalf<UnixStream>, OwnedWriteHalf<UnixStream>),
    /// Boxed: only TLS connections carry the session's halves.
    Tls(Box<TlsHalves>),
}

/// The read half of an upstream connection, lent by [`UpstreamConn::split`], with its
/// cluster's cells: the bytes it reads are counted as they arrive
/// (`upstream_cx_rx_bytes_total`).
#[derive(Debug)]
pub struct ReadHalf<'a> {
    io: ReadIo<'a>,
    cells: Option<&'a WorkerScope>,
}

#[derive(Debug)]
enum ReadIo<'a> {
    /// TCP.
    Tcp(&'a mut OwnedReadHalf<TcpStream>),
    /// Unix stream socket.
    Unix(&'a mut OwnedReadHalf<UnixStream>),
    /// TLS over TCP.
    Tls(&'a mut TlsRead<OwnedReadHalf<TcpStream>>),
}

/// The write half of an upstream connection, lent by [`UpstreamConn::split`], with
/// its cluster's cells (`upstream_cx_tx_bytes_total`).
#[derive(Debug)]
pub struct WriteHalf<'a> {
    io: WriteIo<'a>,
    cells: Option<&'a WorkerScope>,
}

#[derive(Debug)]
enum WriteIo<'a> {
    /// TCP.
    Tcp(&'a mut OwnedWriteHalf<TcpStream>),
    /// Unix stream socket.
    Unix(&'a mut OwnedWriteHalf<UnixStream>),
    /// TLS over TCP.
    Tls(&'a mut TlsWrite<OwnedWriteHalf<TcpStream>>),
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The endpoint did not answer within the cluster's `connect_timeout`.
    Timeout,
    /// The kernel said no (refused, unreachable, no such socket file...).
    Io(io::Error),
    /// The TLS handshake failed (the server's certificate did not verify, no common
    /// version, ...).
    Tls(io::Error),
}

impl ConnectError {
    /// The side that ended the connect, as Envoy's events say: a timeout is ringway
    /// giving up (its connect timer's local close); a refusal, reset or unreachable
    /// address is the remote side's answer, and so is a failed TLS handshake (Envoy's
    /// TLS socket closes with `PostIoAction::Close`, a remote close), refused by
    /// either side.
    pub fn closer(&self) -> Closer {
        match self {
            ConnectError::Timeout => Closer::Local,
            ConnectError::Io(_) | ConnectError::Tls(_) => Closer::Remote,
        }
    }
}

impl UpstreamConn {
    /// Counts this connection in its cluster's `upstream_cx_active` and its host's
    /// `cx_active` until it closes.
    /// Holds the cluster's connection permit until the connection closes.
    pub fn hold(&mut self, permit: Option<super::breakers::Permit>) {
        self.permit = permit;
    }

    pub fn count_active(&mut self, host: &super::Host) {
        use crate::stats::names;
        let cells = &host.cells;
        cells.cluster.get(names::cluster::UPSTREAM_CX_ACTIVE).inc();
        if let Some(stats) = &cells.host {
            stats.get(names::host::CX_ACTIVE).inc();
        }
        self.active = Some(Active {
            cells: std::rc::Rc::clone(cells),
            opened: std::time::Instant::now(),
            closer: Closer::Local,
            request_in_flight: false,
            requests: 0,
        });
    }

    /// Counts a request about to be sent on the connection (its cluster's
    /// `upstream_rq_per_cx` when it closes, and `max_requests_per_connection`).
    #[inline]
    pub fn request_started(&mut self) {
        if let Some(active) = &mut self.active {
            active.requests = active.requests.saturating_add(1);
        }
    }

    /// The requests sent on the connection (0 for a connection not counted in its
    /// cluster: none in use).
    pub fn requests(&self) -> u32 {
        self.active.as_ref().map_or(0, |a| a.requests)
    }

    /// Says how the connection is about to close, for its `upstream_cx_destroy_*`
    /// counts when it is dropped: by `closer`, with or without a request in flight on
    /// it. A connection dropped without being told was closed by ringway, idle.
    pub fn closing(&mut self, closer: Closer, request_in_flight: bool) {
        if let Some(active) = &mut self.active {
            active.closer = closer;
            active.request_in_flight = request_in_flight;
        }
    }

    /// Connects and runs the TLS handshake, both within `timeout`. Callers box this
    /// future: the handshake's state would otherwise enlarge every exchange's future,
    /// plaintext ones included.
    pub async fn connect_tls(
        address: &Address,
        timeout: Duration,
        tls: (&crate::tls::client::Connector, Option<&str>),
    ) -> Result<Self, ConnectError> {
        let started = std::time::Instant::now();
        let conn = Self::connect(address, timeout).await?;
        let left = timeout.saturating_sub(started.elapsed());
        conn.into_tls(address, tls, left).await
    }

    /// Runs the TLS handshake on a new TCP connection, within `timeout`.
    async fn into_tls(
        self,
        address: &Address,
        (connector, hostname): (&crate::tls::client::Connector, Option<&str>),
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let conn = self;
        let session = connector
            .session(address, hostname)
            .map_err(|e| ConnectError::Tls(io::Error::other(e)))?;
        let Halves::Tcp(read, write) = conn.io else {
            return Err(ConnectError::Tls(io::Error::other(
                "TLS over a Unix socket",
            )));
        };
        let session = crate::tls::stream::share(session);
        let (mut read, mut write) = (
            TlsRead {
                io: read,
                session: std::rc::Rc::clone(&session),
            },
            TlsWrite { io: write, session },
        );
        let mut joined = crate::tls::stream::Joined(&mut read.io, &mut write.io);
        let handshake = crate::tls::stream::handshake(&mut joined, &read.session);
        match monoio::time::timeout(timeout, handshake).await {
            Ok(Ok(())) => Ok(UpstreamConn {
                io: Halves::Tls(Box::new((read, write))),
                fd: conn.fd,
                active: None,
                permit: None,
            }),
            Ok(Err(e)) => Err(ConnectError::Tls(e)),
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    /// Connects with a deadline. TCP connections get `TCP_NODELAY`: heads and small
    /// bodies must not wait for Nagle.
    pub async fn connect(address: &Address, timeout: Duration) -> Result<Self, ConnectError> {
        let connect = async {
            use std::os::fd::AsRawFd;
            match address {
                Address::Tcp(addr) => {
                    let stream = TcpStream::connect_addr(*addr).await?;
                    stream.set_nodelay(true)?;
                    let fd = stream.as_raw_fd();
                    let (read, write) = stream.into_split();
                    Ok(UpstreamConn {
                        io: Halves::Tcp(read, write),
                        fd,
                        active: None,
                        permit: None,
                    })
                }
                Address::Unix(path) => {
                    let stream = UnixStream::connect(path).await?;
                    let fd = stream.as_raw_fd();
                    let (read, write) = stream.into_split();
                    Ok(UpstreamConn {
                        io: Halves::Unix(read, write),
                        fd,
                        active: None,
                        permit: None,
                    })
                }
            }
        };
        match monoio::time::timeout(timeout, connect).await {
            Ok(result) => result.map_err(ConnectError::Io),
            Err(_) => Err(ConnectError::Timeout),
        }
    }
}

impl UpstreamConn {
    /// Both halves at once: a read and a write may be in flight together.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        let cells = self.active.as_ref().map(|a| &*a.cells.cluster);
        let (read, write) = match &mut self.io {
            Halves::Tcp(r, w) => (ReadIo::Tcp(r), WriteIo::Tcp(w)),
            Halves::Unix(r, w) => (ReadIo::Unix(r), WriteIo::Unix(w)),
            Halves::Tls(halves) => {
                let (r, w) = &mut **halves;
                (ReadIo::Tls(r), WriteIo::Tls(w))
            }
        };
        (ReadHalf { io: read, cells }, WriteHalf { io: write, cells })
    }

    /// Adds one to its cluster's stat `index` (a `names::cluster` constant), when the
    /// connection is counted.
    pub fn count(&self, index: usize) {
        if let Some(active) = &self.active {
            active.cells.cluster.get(index).inc();
        }
    }

    fn cells(&self) -> Option<&WorkerScope> {
        self.active.as_ref().map(|a| &*a.cells.cluster)
    }

    /// On a TLS connection, what its handshake negotiated.
    pub fn tls_negotiated(&self) -> Option<crate::tls::session::Negotiated> {
        match &self.io {
            Halves::Tls(h) => Some(crate::tls::session::Negotiated::of(&h.0.session.borrow())),
            _ => None,
        }
    }

    /// What arrived on an idle connection, by a non-blocking peek: `None`, nothing (it
    /// may be reused); else it is unusable, and the side that ended it, as Envoy's
    /// events tell them apart: the origin closing or resetting it (0 bytes, an error,
    /// a TLS close_notify or a session error) is `Remote`; bytes sent unasked (a 408
    /// before a close, plaintext past the last response) make ringway close it,
    /// `Local`, as Envoy's codec does on data it did not ask for.
    pub fn idle_check(&self) -> Option<Closer> {
        if let Halves::Tls(h) = &self.io {
            match h.0.session.borrow_mut().process_new_packets() {
                Ok(s) if s.peer_has_closed() => return Some(Closer::Remote),
                Ok(s) if s.plaintext_bytes_to_read() > 0 => return Some(Closer::Local),
                Ok(_) => {}
                Err(_) => return Some(Closer::Remote),
            }
        }
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        let mut probe = [0u8; 1];
        match nix::sys::socket::recv(self.fd, &mut probe, flags) {
            Err(nix::errno::Errno::EAGAIN) => None,
            Ok(n) if n > 0 => Some(Closer::Local),
            Ok(_) | Err(_) => Some(Closer::Remote),
        }
    }
}

impl AsyncReadRent for ReadHalf<'_> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = match &mut self.io {
            ReadIo::Tcp(s) => s.read(buf).await,
            ReadIo::Unix(s) => s.read(buf).await,
            ReadIo::Tls(s) => Box::pin(s.read(buf)).await,
        };
        count_bytes(self.cells, RX_BYTES, &r.0);
        r
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = match &mut self.io {
            ReadIo::Tcp(s) => s.readv(buf).await,
            ReadIo::Unix(s) => s.readv(buf).await,
            ReadIo::Tls(s) => Box::pin(s.readv(buf)).await,
        };
        count_bytes(self.cells, RX_BYTES, &r.0);
        r
    }
}

impl CancelableAsyncReadRent for ReadHalf<'_> {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        let r = match &mut self.io {
            ReadIo::Tcp(s) => s.cancelable_read(buf, c).await,
            ReadIo::Unix(s) => s.cancelable_read(buf, c).await,
            ReadIo::Tls(s) => Box::pin(s.cancelable_read(buf, c)).await,
        };
        count_bytes(self.cells, RX_BYTES, &r.0);
        r
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        let r = match &mut self.io {
            ReadIo::Tcp(s) => s.cancelable_readv(buf, c).await,
            ReadIo::Unix(s) => s.cancelable_readv(buf, c).await,
            ReadIo::Tls(s) => Box::pin(s.cancelable_readv(buf, c)).await,
        };
        count_bytes(self.cells, RX_BYTES, &r.0);
        r
    }
}

impl AsyncWriteRent for WriteHalf<'_> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = match &mut self.io {
            WriteIo::Tcp(s) => s.write(buf).await,
            WriteIo::Unix(s) => s.write(buf).await,
            WriteIo::Tls(s) => Box::pin(s.write(buf)).await,
        };
        count_bytes(self.cells, TX_BYTES, &r.0);
        r
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = match &mut self.io {
            WriteIo::Tcp(s) => s.writev(buf).await,
            WriteIo::Unix(s) => s.writev(buf).await,
            WriteIo::Tls(s) => Box::pin(s.writev(buf)).await,
        };
        count_bytes(self.cells, TX_BYTES, &r.0);
        r
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.io {
            WriteIo::Tcp(s) => s.shutdown().await,
            WriteIo::Unix(s) => s.shutdown().await,
            WriteIo::Tls(s) => Box::pin(s.shutdown()).await,
        }
    }
}

/// The cluster's byte counters: what crossed the connection above TLS (Envoy counts
/// the bytes its connection reads and writes through the transport socket).
const RX_BYTES: usize = crate::stats::names::cluster::UPSTREAM_CX_RX_BYTES_TOTAL;
const TX_BYTES: usize = crate::stats::names::cluster::UPSTREAM_CX_TX_BYTES_TOTAL;

#[inline]
fn count_bytes(cells: Option<&WorkerScope>, index: usize, result: &io::Result<usize>) {
    if let (Some(cells), Ok(n)) = (cells, result) {
        cells.get(index).add(*n as u64);
    }
}

// The connection reads and writes through its halves directly (one future layer, as a
// plain stream has), not through `split`, which would add a layer per operation.
impl AsyncReadRent for UpstreamConn {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = match &mut self.io {
            Halves::Tcp(r, _) => r.read(buf).await,
            Halves::Unix(r, _) => r.read(buf).await,
            Halves::Tls(h) => Box::pin(h.0.read(buf)).await,
        };
        count_bytes(self.cells(), RX_BYTES, &r.0);
        r
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = match &mut self.io {
            Halves::Tcp(r, _) => r.readv(buf).await,
            Halves::Unix(r, _) => r.readv(buf).await,
            Halves::Tls(h) => Box::pin(h.0.readv(buf)).await,
        };
        count_bytes(self.cells(), RX_BYTES, &r.0);
        r
    }
}

impl AsyncWriteRent for UpstreamConn {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = match &mut self.io {
            Halves::Tcp(_, w) => w.write(buf).await,
            Halves::Unix(_, w) => w.write(buf).await,
            Halves::Tls(h) => Box::pin(h.1.write(buf)).await,
        };
        count_bytes(self.cells(), TX_BYTES, &r.0);
        r
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = match &mut self.io {
            Halves::Tcp(_, w) => w.writev(buf).await,
            Halves::Unix(_, w) => w.writev(buf).await,
            Halves::Tls(h) => Box::pin(h.1.writev(buf)).await,
        };
        count_bytes(self.cells(), TX_BYTES, &r.0);
        r
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.io {
            Halves::Tcp(_, w) => w.shutdown().await,
            Halves::Unix(_, w) => w.shutdown().await,
            Halves::Tls(h) => Box::pin(h.1.shutdown()).await,
        }
    }
}
