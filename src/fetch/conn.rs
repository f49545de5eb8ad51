//! The blocking transport under a fetch: name resolution, connecting to each address in
//! turn, the TLS handshake, and reads and writes, every step bounded by what is left of
//! the exchange's one deadline.
//!
//! Deadlines: std sockets only know per-call timeouts, so each blocking call (connect,
//! one `read`/`write`, one TLS record read or write) is given the time left until the
//! deadline, never more. rustls is driven by hand (`read_tls`/`write_tls`/
//! `process_new_packets`) rather than through `StreamOwned`'s loops for that reason: a
//! loop inside one call could block once per record with the full timeout each time.
//! getaddrinfo has no timeout at all, so a name is resolved on a short-lived thread and
//! waited for with the time left; a hung resolver then delays only that thread.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::{Failure, FetchErrorKind};

/// The end of the whole exchange, and how long it was allowed (for messages).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    pub(super) fn after(total: Duration) -> Deadline {
        let now = Instant::now();
        Deadline {
            at: now
                .checked_add(total)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            total,
        }
    }

    /// The time left, or a timeout naming what was being waited for.
    pub(super) fn left(&self, doing: &str) -> Result<Duration, Failure> {
        match self.at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(self.expired(doing)),
        }
    }

    pub(super) fn expired(&self, doing: &str) -> Failure {
        Failure::new(
            FetchErrorKind::Timeout,
            format!("no result within {:?} ({doing})", self.total),
        )
    }

    /// An I/O error of a socket call: a timeout when the socket's timeout (the time
    /// left) ran out, else `kind`.
    pub(super) fn io_error(&self, e: &io::Error, kind: FetchErrorKind, doing: &str) -> Failure {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.expired(doing),
            _ => Failure::new(kind, format!("{doing}: {e}")),
        }
    }
}

/// The addresses of `host`, resolved by the system (getaddrinfo) on a thread of its own
/// so that the deadline holds even when the resolver hangs.
pub(super) fn resolve(
    host: &str,
    port: u16,
    deadline: &Deadline,
) -> Result<Vec<SocketAddr>, Failure> {
    let doing = format!("resolving {host}");
    let left = deadline.left(&doing)?;
    let (tx, rx) = mpsc::sync_channel(1);
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("ringway-fetch-dns".to_owned())
        .spawn(move || {
            let found = (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<_>>);
            // The caller may have given up; nobody to tell then.
            let _ = tx.send(found);
        })
        .map_err(|e| {
            Failure::new(
                FetchErrorKind::Resolve,
                format!("{doing}: cannot start a thread: {e}"),
            )
        })?;
    match rx.recv_timeout(left) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(Failure::new(
            FetchErrorKind::Resolve,
            format!("{doing}: no addresses"),
        )),
        Ok(Err(e)) => Err(Failure::new(
            FetchErrorKind::Resolve,
            format!("{doing}: {e}"),
        )),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(deadline.expired(&doing)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Failure::new(
            FetchErrorKind::Resolve,
            format!("{doing}: the lookup thread ended without an answer"),
        )),
    }
}

/// Connects to the first of `addrs` that accepts. Each address gets an equal share of
/// the time left (the last one all of it), so one address that drops packets cannot
/// use up the time of those after it; a refused connection costs nothing.
pub(super) fn connect(addrs: &[SocketAddr], deadline: &Deadline) -> Result<TcpStream, Failure> {
    let mut failures = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let doing = format!("connecting to {addr}");
        let left = deadline.left(&doing)?;
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        match TcpStream::connect_timeout(addr, share.max(Duration::from_millis(1)).min(left)) {
            Ok(stream) => {
                // One write per request head; nothing to coalesce.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    if failures.is_empty() {
        return Err(Failure::new(
            FetchErrorKind::Connect,
            "no address to connect to".to_owned(),
        ));
    }
    deadline.left("connecting")?;
    Err(Failure::new(FetchErrorKind::Connect, failures.join("; ")))
}

/// The configuration for `https` URLs given no configuration of their own: the
/// system's trusted roots (rustls-native-certs) with ringway's crypto provider, built
/// once per process. A failure is not kept: the next fetch tries again (roots may be
/// installed later).
pub(super) fn system_config() -> Result<Arc<ClientConfig>, Failure> {
    static SYSTEM: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = SYSTEM.get() {
        return Ok(Arc::clone(config));
    }
    let fail = |why: String| Failure::new(FetchErrorKind::Tls, why);
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none installed".to_owned(), ToString::to_string);
        return Err(fail(format!(
            "no system CA certificates to verify the server with ({why})"
        )));
    }
    let config = ClientConfig::builder_with_provider(Arc::new(crate::config::tls::provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::clone(SYSTEM.get_or_init(|| Arc::new(config))))
}

/// A connection, plain or TLS, whose every call honours the deadline.
#[derive(Debug)]
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<(ClientConnection, TcpStream)>),
}

impl Stream {
    /// Runs the TLS handshake over `tcp`, verifying the server as `name`.
    pub(super) fn tls(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: &str,
        deadline: &Deadline,
    ) -> Result<Stream, Failure> {
        let tls_fail = |why: String| Failure::new(FetchErrorKind::Tls, why);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|e| tls_fail(format!("server name {name:?}: {e}")))?;
        let conn = ClientConnection::new(config, server_name)
            .map_err(|e| tls_fail(format!("cannot start TLS: {e}")))?;
        let mut pair = Box::new((conn, tcp));
        let (conn, sock) = &mut *pair;
        let doing = "the TLS handshake";
        while conn.is_handshaking() {
            if conn.wants_write() {
                sock.set_write_timeout(Some(deadline.left(doing)?))
                    .map_err(|e| deadline.io_error(&e, FetchErrorKind::Io, doing))?;
                conn.write_tls(sock)
                    .map_err(|e| deadline.io_error(&e, FetchErrorKind::Tls, doing))?;
                continue;
            }
            sock.set_read_timeout(Some(deadline.left(doing)?))
                .map_err(|e| deadline.io_error(&e, FetchErrorKind::Io, doing))?;
            let n = conn
                .read_tls(sock)
                .map_err(|e| deadline.io_error(&e, FetchErrorKind::Tls, doing))?;
            if n == 0 {
                return Err(tls_fail(
                    "the server closed the connection during the TLS handshake".to_owned(),
                ));
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the server why (the alert rustls queued), as far as it listens.
                let _ = conn.write_tls(sock);
                return Err(tls_fail(e.to_string()));
            }
        }
        if let Some(alpn) = conn.alpn_protocol() {
            if alpn != b"http/1.1" {
                return Err(Failure::new(
                    FetchErrorKind::Protocol,
                    format!(
                        "the server chose ALPN {:?}; only HTTP/1.1 is spoken",
                        String::from_utf8_lossy(alpn)
                    ),
                ));
            }
        }
        Ok(Stream::Tls(pair))
    }

    /// Whether an idle kept connection is still fit for a request: nothing arrived on it
    /// (a non-blocking peek: the server closing it, a 408 or any stray byte all make it
    /// unfit) and, over TLS, the session holds nothing unread.
    pub(super) fn is_quiet(&mut self) -> bool {
        let sock = match self {
            Stream::Plain(sock) => &*sock,
            Stream::Tls(pair) => {
                let (conn, sock) = &mut **pair;
                let clean = conn
                    .process_new_packets()
                    .is_ok_and(|s| s.plaintext_bytes_to_read() == 0 && !s.peer_has_closed());
                if !clean {
                    return false;
                }
                &*sock
            }
        };
        if sock.set_nonblocking(true).is_err() {
            return false;
        }
        let quiet =
            matches!(sock.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        sock.set_nonblocking(false).is_ok() && quiet
    }

    /// The address the connection goes to.
    pub(super) fn peer(&self) -> Option<SocketAddr> {
        match self {
            Stream::Plain(sock) => sock.peer_addr().ok(),
            Stream::Tls(pair) => pair.1.peer_addr().ok(),
        }
    }

    /// Writes all of `data` (and, for TLS, everything rustls has to send).
    pub(super) fn write_all(
        &mut self,
        mut data: &[u8],
        deadline: &Deadline,
    ) -> Result<(), Failure> {
        let doing = "sending the request";
        let io = |e: &io::Error| deadline.io_error(e, FetchErrorKind::Io, doing);
        match self {
            Stream::Plain(sock) => {
                while !data.is_empty() {
                    sock.set_write_timeout(Some(deadline.left(doing)?))
                        .map_err(|e| io(&e))?;
                    match sock.write(data) {
                        Ok(0) => return Err(io(&io::ErrorKind::WriteZero.into())),
                        Ok(n) => data = data.get(n..).unwrap_or_default(),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io(&e)),
                    }
                }
            }
            Stream::Tls(pair) => {
                let (conn, sock) = &mut **pair;
                loop {
                    if !data.is_empty() {
                        // Buffers as much plaintext as rustls takes (it bounds its buffer).
                        let n = conn.writer().write(data).map_err(|e| io(&e))?;
                        data = data.get(n..).unwrap_or_default();
                    }
                    if !conn.wants_write() {
                        if data.is_empty() {
                            break;
                        }
                        // rustls took nothing and has nothing to send: never spin.
                        return Err(io(&io::ErrorKind::WriteZero.into()));
                    }
                    sock.set_write_timeout(Some(deadline.left(doing)?))
                        .map_err(|e| io(&e))?;
                    match conn.write_tls(sock) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io(&e)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads some bytes into `buf`: `Ok(0)` when the server closed the connection
    /// properly. A TLS connection closed without `close_notify` is an error: the data
    /// may have been cut by an attacker (RFC 8446 6.1), and every caller that reads up
    /// to the close needs the whole of it.
    pub(super) fn read(
        &mut self,
        buf: &mut [u8],
        deadline: &Deadline,
        doing: &str,
    ) -> Result<usize, Failure> {
        let io = |e: &io::Error| deadline.io_error(e, FetchErrorKind::Io, doing);
        match self {
            Stream::Plain(sock) => loop {
                sock.set_read_timeout(Some(deadline.left(doing)?))
                    .map_err(|e| io(&e))?;
                match sock.read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(&e)),
                }
            },
            Stream::Tls(pair) => {
                let (conn, sock) = &mut **pair;
                loop {
                    match conn.reader().read(buf) {
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            return Err(Failure::new(
                                FetchErrorKind::Protocol,
                                format!("{doing}: the server closed the TLS connection without close_notify (the data may be cut short)"),
                            ))
                        }
                        Err(e) => return Err(io(&e)),
                    }
                    // Key updates and the like: send what rustls has to send first.
                    while conn.wants_write() {
                        sock.set_write_timeout(Some(deadline.left(doing)?))
                            .map_err(|e| io(&e))?;
                        conn.write_tls(sock).map_err(|e| io(&e))?;
                    }
                    sock.set_read_timeout(Some(deadline.left(doing)?))
                        .map_err(|e| io(&e))?;
                    match conn.read_tls(sock) {
                        // EOF: rustls notes it; the reader reports it next turn.
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io(&e)),
                    }
                    if let Err(e) = conn.process_new_packets() {
                        let _ = conn.write_tls(sock);
                        return Err(Failure::new(FetchErrorKind::Tls, format!("{doing}: {e}")));
                    }
                }
            }
        }
    }
}
