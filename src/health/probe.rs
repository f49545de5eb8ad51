//! The blocking probes: one active check of one host, bounded by the check's
//! `timeout`. They run on the prober threads (`service.rs`), never on the scheduler,
//! a worker or the control thread.
//!
//! Envoy's checks (health_check.proto, arch_overview/upstream/health_checking):
//!
//! - HTTP: a request with the configured method (default GET) and path, `Host` set to
//!   `host` or else the cluster's name, `user-agent: Envoy/HC`, the added headers and
//!   without the removed ones. The check passes when the status is in
//!   `expected_statuses` (default 200 only; ranges are half-open) and then is degraded
//!   when the answer carries `x-envoy-degraded`. A status outside the expected ranges
//!   fails: counted towards `unhealthy_threshold` when it is in `retriable_statuses`,
//!   else at once; with `x-envoy-immediate-health-check-fail` the host is also excluded.
//!   TCP endpoints use the project's blocking client (`crate::fetch`, https with the
//!   cluster's TLS configuration when it has one, the server name being the check's
//!   host); Unix socket endpoints get the same request over a `UnixStream`, read with
//!   `httparse` (plain HTTP only, a connection per check).
//! - TCP: connect; then, when `send` is set, write it; then, when `receive` is set, read
//!   until every blob is found, in order but not necessarily contiguous (Envoy's "fuzzy"
//!   match).
//!
//! Connections (`reuse_connection`, default true as in Envoy): each host's
//! [`CheckConnection`] travels with its check to the prober thread and back, so the
//! host's checks go over one connection: an HTTP check's over keep-alive
//! (`fetch::send_kept`, kept with no idle limit of ringway's own; closed when the
//! server says `connection: close`, and after a failure to connect, a timeout or a
//! malformed answer), a TCP check's after a pass. A kept connection on which anything
//! arrived while idle (the server closed it, or sent stray bytes) is not used; one that
//! the server closes just as the check goes out is replaced once, within the check's
//! timeout. A TCP check keeps its connection only when it sends something and expects
//! an answer: one with nothing to `receive` only tests that a connection opens (it
//! opens one every time, as Envoy's does), and one that expects bytes without sending
//! any reads a server's greeting, which comes once per connection (Envoy would wait
//! for it again on the kept connection and time out). A kept connection is used only
//! while it goes to the check's address.
//! - Failures to connect, resets, early closes and malformed answers are network
//!   failures; no answer within `timeout` is a timeout (Envoy's NETWORK and
//!   NETWORK_TIMEOUT).
//!
//! `remove_headers` can drop `user-agent` and the added headers; the blocking client
//! always sends its own `accept` and sends `user-agent: ringway/<version>` when none is
//! given.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checker::Outcome;
use super::{HealthCheck, HealthCheckKind, HttpCheck, TcpCheck};
use crate::config::Address;
use crate::fetch::{self, FetchErrorKind, Method};

/// What a probe found, and a few words on why (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub detail: String,
}

impl Report {
    fn new(outcome: Outcome, detail: impl Into<String>) -> Report {
        Report {
            outcome,
            detail: detail.into(),
        }
    }
}

/// The response header that takes a host out of rotation at once.
pub const IMMEDIATE_FAIL: &str = "x-envoy-immediate-health-check-fail";
/// The response header that marks a passing host degraded.
pub const DEGRADED: &str = "x-envoy-degraded";
/// The user agent Envoy's HTTP checks send.
pub const USER_AGENT: &str = "Envoy/HC";

/// The largest TCP answer searched for the expected blobs, and the largest HTTP head
/// read from a Unix socket.
const MAX_READ: usize = 64 * 1024;

/// One host's check connection, kept from one check to the next (module note).
#[derive(Debug, Default)]
pub struct CheckConnection {
    /// An HTTP check's idle keep-alive connection (made on first use).
    http: Option<fetch::Kept>,
    /// A TCP check's connection, after a pass.
    tcp: Option<Stream>,
}

impl CheckConnection {
    /// Whether a connection is kept (for tests).
    pub fn holds_one(&self) -> bool {
        self.tcp.is_some() || self.http.as_ref().is_some_and(fetch::Kept::holds_one)
    }
}

/// Checks `address` (the check's port already applied) of cluster `cluster` once.
/// Blocks for up to the check's `timeout`.
/// `tls`: the client configuration and the server name to send and verify (`None`:
/// the address). `connection`: the host's kept connection, used and left for the next
/// check when the check reuses connections, else emptied.
pub fn probe(
    check: &HealthCheck,
    cluster: &str,
    address: &Address,
    tls: Option<(&Arc<rustls::ClientConfig>, Option<&str>)>,
    connection: &mut CheckConnection,
) -> Report {
    if !check.reuse_connection {
        *connection = CheckConnection::default();
    }
    let reuse = check.reuse_connection;
    let deadline = Deadline::after(check.timeout);
    match &check.kind {
        HealthCheckKind::Http(http) => match address {
            Address::Tcp(addr) => {
                connection.tcp = None;
                let kept = reuse.then(|| {
                    &mut *connection
                        .http
                        .get_or_insert_with(|| fetch::Kept::idle_for(Duration::MAX))
                });
                http_tcp(http, cluster, *addr, tls, (check.timeout, kept))
            }
            Address::Unix(_) => {
                *connection = CheckConnection::default();
                http_unix(http, cluster, address, &deadline)
            }
        },
        HealthCheckKind::Tcp(tcp) => {
            // What an earlier check of another kind kept (a reload changed it) goes.
            connection.http = None;
            // Kept only for a check that sends something and expects an answer: a
            // connect-only check tests connecting, and a server's greeting (expected
            // with nothing sent) comes once per connection, not once per check.
            let keeps = reuse && !tcp.send.is_empty() && !tcp.receive.is_empty();
            if !keeps {
                connection.tcp = None;
            }
            tcp_check(
                tcp,
                address,
                &deadline,
                keeps.then_some(&mut connection.tcp),
            )
        }
    }
}

/// Whether `status` is in one of the half-open ranges.
pub fn in_ranges(ranges: &[(u16, u16)], status: u16) -> bool {
    ranges
        .iter()
        .any(|&(start, end)| start <= status && status < end)
}

/// The result of an HTTP answer: its status and whether each header was present.
pub fn classify(http: &HttpCheck, status: u16, immediate: bool, degraded: bool) -> Report {
    let expected: &[(u16, u16)] = if http.expected_statuses.is_empty() {
        &[(200, 201)]
    } else {
        &http.expected_statuses
    };
    if in_ranges(expected, status) {
        let detail = if degraded {
            format!("status {status}, degraded")
        } else {
            format!("status {status}")
        };
        return Report::new(Outcome::Passed { degraded }, detail);
    }
    let retriable = in_ranges(&http.retriable_statuses, status);
    let detail = match (immediate, retriable) {
        (true, _) => format!("status {status} with {IMMEDIATE_FAIL}"),
        (false, true) => format!("status {status} (retriable)"),
        (false, false) => format!("status {status}"),
    };
    Report::new(
        Outcome::Failed {
            retriable,
            immediate,
        },
        detail,
    )
}

/// The request's headers: Host, user agent, the added ones, less the removed ones.
/// An added header replaces a default of the same name.
pub fn request_headers(http: &HttpCheck, cluster: &str) -> Vec<(String, String)> {
    let host = http.host.clone().unwrap_or_else(|| cluster.to_owned());
    let mut headers = vec![
        ("host".to_owned(), host),
        ("user-agent".to_owned(), USER_AGENT.to_owned()),
    ];
    for (name, value) in &http.request_headers {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name) || !is_default(n));
        headers.push((name.clone(), value.clone()));
    }
    headers.retain(|(n, _)| {
        !http
            .remove_headers
            .iter()
            .any(|r| r.eq_ignore_ascii_case(n))
    });
    headers
}

fn is_default(name: &str) -> bool {
    name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("user-agent")
}

fn method(name: &str) -> Option<Method> {
    Some(match name.to_ascii_uppercase().as_str() {
        "GET" | "" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        _ => return None,
    })
}

fn path(http: &HttpCheck) -> String {
    if http.path.starts_with('/') {
        http.path.clone()
    } else {
        format!("/{}", http.path)
    }
}

fn http_tcp(
    http: &HttpCheck,
    cluster: &str,
    addr: SocketAddr,
    tls: Option<(&Arc<rustls::ClientConfig>, Option<&str>)>,
    (timeout, kept): (Duration, Option<&mut fetch::Kept>),
) -> Report {
    let Some(method) = method(&http.method) else {
        return Report::new(
            Outcome::Network,
            format!("method {:?} is not one the checker sends", http.method),
        );
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}{}", path(http));
    let headers = request_headers(http, cluster);
    // The name the workers send to this endpoint, not the check's Host (Envoy takes
    // the transport socket's `sni`); without one the address, as in the URL.
    let server_name = tls.and_then(|(_, name)| name.map(str::to_owned));
    let request = fetch::Request {
        connect_to: Some(vec![addr]),
        tls: tls.map(|(config, _)| Arc::clone(config)),
        server_name,
        timeout,
        headers,
        ..fetch::Request::new(&url)
    };
    let sent = match kept {
        Some(kept) => fetch::send_kept(method, None, &request, kept),
        None => fetch::send(method, None, &request),
    };
    match sent {
        Ok(response) => classify(
            http,
            response.status,
            response.header(IMMEDIATE_FAIL).is_some(),
            response.header(DEGRADED).is_some(),
        ),
        Err(e) if e.kind() == FetchErrorKind::Timeout => Report::new(Outcome::Timeout, e.cause()),
        Err(e) => Report::new(Outcome::Network, e.cause()),
    }
}

/// The same request over a Unix socket, answered head only.
fn http_unix(http: &HttpCheck, cluster: &str, address: &Address, deadline: &Deadline) -> Report {
    let method = if http.method.is_empty() {
        "GET".to_owned()
    } else {
        http.method.to_ascii_uppercase()
    };
    let mut head = format!("{method} {} HTTP/1.1\r\n", path(http));
    for (name, value) in request_headers(http, cluster) {
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Report::new(
                Outcome::Network,
                format!("header {name:?} has a line break"),
            );
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut stream = match connect(address, deadline) {
        Ok(stream) => stream,
        Err(report) => return report,
    };
    if let Err(report) = write_all(&mut stream, head.as_bytes(), deadline) {
        return report;
    }
    let mut buf = Vec::with_capacity(1024);
    loop {
        // (status, immediate fail, degraded, head length) once a head is complete.
        let parsed = {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buf) {
                Ok(httparse::Status::Complete(end)) => {
                    let has = |name: &str| {
                        response
                            .headers
                            .iter()
                            .any(|h| h.name.eq_ignore_ascii_case(name))
                    };
                    Some((
                        response.code.unwrap_or(0),
                        has(IMMEDIATE_FAIL),
                        has(DEGRADED),
                        end,
                    ))
                }
                Ok(httparse::Status::Partial) => None,
                Err(e) => return Report::new(Outcome::Network, format!("malformed answer: {e}")),
            }
        };
        match parsed {
            // Interim answers come before the final one.
            Some((status, _, _, end)) if (100..200).contains(&status) && status != 101 => {
                buf.drain(..end);
                continue;
            }
            Some((status, immediate, degraded, _)) => {
                return classify(http, status, immediate, degraded)
            }
            None => {}
        }
        if buf.len() >= MAX_READ {
            return Report::new(Outcome::Network, "answer head too large");
        }
        match read_some(&mut stream, &mut buf, deadline) {
            Ok(0) => return Report::new(Outcome::Network, "closed before answering"),
            Ok(_) => {}
            Err(report) => return report,
        }
    }
}

/// A TCP check; `kept`: the host's kept connection when the check reuses one (it
/// expects bytes), taken when fit and put back after a pass.
fn tcp_check(
    tcp: &TcpCheck,
    address: &Address,
    deadline: &Deadline,
    mut kept: Option<&mut Option<Stream>>,
) -> Report {
    // Fit: still going to the check's address (a reload may have moved the check
    // port while a check was out) and quiet.
    let reused = kept
        .as_deref_mut()
        .and_then(Option::take)
        .filter(|s| s.goes_to(address) && s.is_quiet());
    // A pass: the stream is kept for the next check, when the check keeps one.
    let passed = |stream: Stream, kept: Option<&mut Option<Stream>>| {
        if let Some(slot) = kept {
            *slot = Some(stream);
        }
        Report::new(
            Outcome::Passed { degraded: false },
            "expected bytes received",
        )
    };
    if let Some(stream) = reused {
        match tcp_exchange(tcp, stream, deadline) {
            Ok(stream) => return passed(stream, kept),
            // Closed under the check before answering: once more, on a new connection.
            Err((_, true)) => {}
            Err((report, false)) => return report,
        }
    }
    let stream = match connect(address, deadline) {
        Ok(stream) => stream,
        Err(report) => return report,
    };
    if tcp.receive.is_empty() {
        if !tcp.send.is_empty() {
            let mut stream = stream;
            if let Err(report) = write_all(&mut stream, &tcp.send, deadline) {
                return report;
            }
        }
        return Report::new(Outcome::Passed { degraded: false }, "connected");
    }
    match tcp_exchange(tcp, stream, deadline) {
        Ok(stream) => passed(stream, kept),
        Err((report, _)) => report,
    }
}

/// Writes `send` and reads until every `receive` blob is found; the stream back after
/// a pass, else the failure and whether the connection closed (or reset) before any
/// byte of an answer.
fn tcp_exchange(
    tcp: &TcpCheck,
    mut stream: Stream,
    deadline: &Deadline,
) -> Result<Stream, (Report, bool)> {
    if !tcp.send.is_empty() {
        write_all(&mut stream, &tcp.send, deadline).map_err(|report| {
            let closed = matches!(report.outcome, Outcome::Network);
            (report, closed)
        })?;
    }
    let mut buf = Vec::with_capacity(256);
    loop {
        if fuzzy_match(&tcp.receive, &buf) {
            return Ok(stream);
        }
        if buf.len() >= MAX_READ {
            return Err((
                Report::new(Outcome::Network, "expected bytes not in the first 64 KiB"),
                false,
            ));
        }
        match read_some(&mut stream, &mut buf, deadline) {
            Ok(0) => {
                let report = Report::new(Outcome::Network, "closed before the expected bytes");
                return Err((report, buf.is_empty()));
            }
            Ok(_) => {}
            Err(report) => {
                let closed = buf.is_empty() && matches!(report.outcome, Outcome::Network);
                return Err((report, closed));
            }
        }
    }
}

/// Whether every blob occurs in `data`, in order, each after the previous one.
pub fn fuzzy_match(blobs: &[Vec<u8>], data: &[u8]) -> bool {
    let mut from = 0;
    for blob in blobs {
        if blob.is_empty() {
            continue;
        }
        let rest = data.get(from..).unwrap_or_default();
        match memchr::memmem::find(rest, blob) {
            Some(at) => from += at + blob.len(),
            None => return false,
        }
    }
    true
}

/// The end of one check.
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    fn after(timeout: Duration) -> Deadline {
        let now = Instant::now();
        Deadline(now.checked_add(timeout).unwrap_or(now))
    }

    /// The time left, or a timeout report.
    fn left(&self, doing: &str) -> Result<Duration, Report> {
        match self.0.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(Report::new(Outcome::Timeout, format!("timed out {doing}"))),
        }
    }

    fn io_error(&self, e: &io::Error, doing: &str) -> Report {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Report::new(Outcome::Timeout, format!("timed out {doing}"))
            }
            _ => Report::new(Outcome::Network, format!("{doing}: {e}")),
        }
    }
}

/// A connected stream of either family.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Stream {
    /// Whether the connection goes to `address`.
    fn goes_to(&self, address: &Address) -> bool {
        match (self, address) {
            (Stream::Tcp(s), Address::Tcp(addr)) => s.peer_addr().is_ok_and(|p| p == *addr),
            (Stream::Unix(s), Address::Unix(path)) => s
                .peer_addr()
                .is_ok_and(|p| p.as_pathname() == Some(path.as_path())),
            _ => false,
        }
    }

    /// Whether a kept connection is still fit for a check: nothing arrived on it while
    /// it was idle (a non-blocking peek: a close, a reset or stray bytes all make it
    /// unfit).
    fn is_quiet(&self) -> bool {
        let sock = match self {
            Stream::Tcp(s) => socket2::SockRef::from(s),
            Stream::Unix(s) => socket2::SockRef::from(s),
        };
        if sock.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        let quiet = matches!(sock.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        sock.set_nonblocking(false).is_ok() && quiet
    }

    fn set_timeouts(&self, left: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))
            }
            Stream::Unix(s) => {
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn connect(address: &Address, deadline: &Deadline) -> Result<Stream, Report> {
    let left = deadline.left("connecting")?;
    match address {
        Address::Tcp(addr) => TcpStream::connect_timeout(addr, left)
            .map(Stream::Tcp)
            .map_err(|e| deadline.io_error(&e, "connecting")),
        Address::Unix(path) => {
            // std's UnixStream::connect has no timeout; socket2's does.
            let connect = || -> io::Result<std::os::unix::net::UnixStream> {
                let socket =
                    socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
                socket.connect_timeout(&socket2::SockAddr::unix(path)?, left)?;
                Ok(socket.into())
            };
            connect()
                .map(Stream::Unix)
                .map_err(|e| deadline.io_error(&e, "connecting"))
        }
    }
}

fn write_all(stream: &mut Stream, mut data: &[u8], deadline: &Deadline) -> Result<(), Report> {
    while !data.is_empty() {
        let left = deadline.left("sending")?;
        stream
            .set_timeouts(left)
            .map_err(|e| deadline.io_error(&e, "sending"))?;
        match stream.write(data) {
            Ok(0) => return Err(Report::new(Outcome::Network, "closed while sending")),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(deadline.io_error(&e, "sending")),
        }
    }
    Ok(())
}

/// Reads what is there (at least one byte, or 0 at the end) into `buf`.
fn read_some(stream: &mut Stream, buf: &mut Vec<u8>, deadline: &Deadline) -> Result<usize, Report> {
    loop {
        let left = deadline.left("waiting for the answer")?;
        stream
            .set_timeouts(left)
            .map_err(|e| deadline.io_error(&e, "waiting for the answer"))?;
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(deadline.io_error(&e, "waiting for the answer")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    use super::*;
    use crate::health::checker::tests::check;

    fn http_check(path: &str) -> HttpCheck {
        HttpCheck {
            host: None,
            path: path.to_owned(),
            method: "GET".to_owned(),
            expected_statuses: vec![(200, 201)],
            retriable_statuses: Vec::new(),
            request_headers: Vec::new(),
            remove_headers: Vec::new(),
        }
    }

    /// A tiny HTTP responder: answers each connection by what `answer` returns for the
    /// request head (None: never answer, holding the connection). Sends the request
    /// heads it saw to the returned channel.
    pub(crate) fn responder(
        answer: impl Fn(&str) -> Option<String> + Send + 'static,
    ) -> (SocketAddr, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut head = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let reply = answer(&head);
                if tx.send(head).is_err() {
                    return;
                }
                match reply {
                    Some(reply) => {
                        let _ = conn.write_all(reply.as_bytes());
                    }
                    None => held.push(conn),
                }
            }
        });
        (addr, rx)
    }

    pub(crate) fn answer(status: u16, extra: &str) -> String {
        format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n{extra}\r\nok")
    }

    /// One check on a connection of its own.
    fn run(check: &HealthCheck, addr: SocketAddr) -> Report {
        probe(
            check,
            "api",
            &Address::Tcp(addr),
            None,
            &mut CheckConnection::default(),
        )
    }

    /// A keep-alive server counting its connections: each request head (HTTP) or each
    /// `PING` (TCP) is answered by `answer`, on the connection it came on, until the
    /// client closes it or `answer` says `None` (then the server closes it).
    fn keep_alive_server(
        http: bool,
        answer: impl Fn(usize) -> Option<&'static [u8]> + Send + Sync + 'static,
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let (counted, answer) = (Arc::clone(&connections), Arc::new(answer));
        let served = Arc::new(AtomicUsize::new(0));
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let (answer, served) = (Arc::clone(&answer), Arc::clone(&served));
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut chunk = [0u8; 512];
                    loop {
                        let end: &[u8] = if http { b"\r\n\r\n" } else { b"PING" };
                        while let Some(at) = memchr::memmem::find(&seen, end) {
                            seen.drain(..at + end.len());
                            let n = served.fetch_add(1, Ordering::SeqCst);
                            match answer(n) {
                                Some(reply) => conn.write_all(reply).unwrap(),
                                None => return,
                            }
                        }
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (addr, connections)
    }

    /// Three checks of `c` against a keep-alive server answering `reply`: each passes
    /// and keeps its connection, one connection for all.
    fn three_checks_on_one_connection(c: &HealthCheck, http: bool, reply: &'static [u8]) {
        let (addr, connections) = keep_alive_server(http, move |_| Some(reply));
        let target = Address::Tcp(addr);
        let mut kept = CheckConnection::default();
        for _ in 0..3 {
            let report = probe(c, "api", &target, None, &mut kept);
            assert!(report.outcome.passed(), "{report:?}");
            assert!(kept.holds_one());
        }
        let connections = connections.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(connections, 1, "one connection for three checks");
    }

    /// `n` checks of `c` against `addr` with `kept`: each passes and leaves no
    /// connection kept (whatever `kept` held before).
    fn checks_keeping_none(
        c: &HealthCheck,
        addr: SocketAddr,
        n: usize,
        kept: &mut CheckConnection,
    ) {
        for i in 0..n {
            let report = probe(c, "api", &Address::Tcp(addr), None, kept);
            assert!(report.outcome.passed(), "check {i}: {report:?}");
            assert!(!kept.holds_one(), "check {i}");
        }
    }

    #[test]
    fn checks_reuse_the_hosts_connection_unless_told_not_to() {
        use std::sync::atomic::Ordering;
        const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let mut c = check(1, 1);
        c.kind = HealthCheckKind::Http(http_check("/healthz"));
        three_checks_on_one_connection(&c, true, OK);

        // `reuse_connection: false`: a connection per check, none kept.
        c.reuse_connection = false;
        let (addr, connections) = keep_alive_server(true, |_| Some(OK));
        checks_keeping_none(&c, addr, 3, &mut CheckConnection::default());
        assert_eq!(connections.load(Ordering::SeqCst), 3);

        // A server that says `connection: close`, then one that closes the connection
        // instead of answering a third request on it: every check still passes, on a
        // new connection when the kept one is gone (closed under the request: sent
        // once more).
        c.reuse_connection = true;
        let (addr, connections) = keep_alive_server(true, |_| {
            Some(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
        });
        checks_keeping_none(&c, addr, 2, &mut CheckConnection::default());
        assert_eq!(connections.load(Ordering::SeqCst), 2);
        let (addr, connections) = keep_alive_server(true, |n| (n % 3 != 2).then_some(OK));
        let target = Address::Tcp(addr);
        let mut kept = CheckConnection::default();
        for i in 0..4 {
            let report = probe(&c, "api", &target, None, &mut kept);
            assert!(report.outcome.passed(), "check {i}: {report:?}");
            thread::sleep(Duration::from_millis(20));
        }
        // Checks 0 and 1 on the first connection; the server drops it at the third,
        // which goes again on a second connection, kept for the fourth.
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    /// A TCP check that sends `PING` and expects `PONG` (one that keeps its connection).
    fn ping_pong_check() -> HealthCheck {
        let mut c = check(1, 1);
        c.kind = HealthCheckKind::Tcp(TcpCheck {
            send: b"PING".to_vec(),
            receive: vec![b"PONG".to_vec()],
        });
        c
    }

    #[test]
    fn tcp_checks_that_expect_bytes_reuse_the_connection_and_connect_only_ones_do_not() {
        use std::sync::atomic::Ordering;
        let mut c = ping_pong_check();
        three_checks_on_one_connection(&c, false, b"PONG");
        // The server closes the connection under the second check: it goes once more,
        // on a new connection.
        let (addr, connections) = keep_alive_server(false, |n| (n != 1).then_some(&b"PONG"[..]));
        let target = Address::Tcp(addr);
        let mut kept = CheckConnection::default();
        for i in 0..3 {
            let report = probe(&c, "api", &target, None, &mut kept);
            assert!(report.outcome.passed(), "check {i}: {report:?}");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 2);
        // A wrong answer fails the check and drops the connection.
        let (addr, connections) =
            keep_alive_server(false, |n| Some(if n == 1 { b"NOPE" } else { b"PONG" }));
        let target = Address::Tcp(addr);
        let mut kept = CheckConnection::default();
        c.timeout = Duration::from_millis(200);
        assert!(probe(&c, "api", &target, None, &mut kept).outcome.passed());
        assert!(!probe(&c, "api", &target, None, &mut kept).outcome.passed());
        assert!(!kept.holds_one());
        assert!(probe(&c, "api", &target, None, &mut kept).outcome.passed());
        assert_eq!(connections.load(Ordering::SeqCst), 2);
        // Connect only: a connection every time, none kept.
        c.kind = HealthCheckKind::Tcp(TcpCheck::default());
        let (addr, connections) = keep_alive_server(false, |_| Some(b"PONG"));
        checks_keeping_none(&c, addr, 3, &mut kept);
        assert!(wait_for(|| connections.load(Ordering::SeqCst) == 3));
    }

    #[test]
    fn a_kept_tcp_connection_serves_only_its_own_address_and_greetings_are_not_kept() {
        use std::sync::atomic::Ordering;
        let mut c = ping_pong_check();
        // A check moved to another address (a reload changed the check port while
        // the connection was kept) connects there.
        let (a, a_connections) = keep_alive_server(false, |_| Some(b"PONG"));
        let (b, b_connections) = keep_alive_server(false, |_| Some(b"PONG"));
        let mut kept = CheckConnection::default();
        assert!(probe(&c, "api", &Address::Tcp(a), None, &mut kept)
            .outcome
            .passed());
        assert!(probe(&c, "api", &Address::Tcp(b), None, &mut kept)
            .outcome
            .passed());
        assert!(probe(&c, "api", &Address::Tcp(b), None, &mut kept)
            .outcome
            .passed());
        assert_eq!(a_connections.load(Ordering::SeqCst), 1);
        assert_eq!(b_connections.load(Ordering::SeqCst), 1);

        // A greeting expected with nothing sent comes once per connection: every
        // check connects and passes.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let mut held = Vec::new();
            for mut conn in listener.incoming().flatten() {
                let _ = conn.write_all(b"220 ready\r\n");
                held.push(conn);
            }
        });
        c.kind = HealthCheckKind::Tcp(TcpCheck {
            send: Vec::new(),
            receive: vec![b"220".to_vec()],
        });
        c.timeout = Duration::from_millis(300);
        for i in 0..3 {
            let report = probe(&c, "api", &Address::Tcp(addr), None, &mut kept);
            assert!(report.outcome.passed(), "check {i}: {report:?}");
            assert!(!kept.holds_one());
        }
    }

    /// Waits up to 2 s for `done`.
    fn wait_for(done: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if done() {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        done()
    }

    #[test]
    fn http_checks_send_envoys_request_and_read_the_status() {
        let (addr, heads) = responder(|head| {
            Some(if head.starts_with("GET /healthz ") {
                answer(200, "")
            } else if head.starts_with("HEAD /degraded ") {
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-envoy-degraded: 1\r\n\r\n".to_owned()
            } else if head.starts_with("GET /busy ") {
                answer(503, "")
            } else {
                answer(503, "x-envoy-immediate-health-check-fail: true\r\n")
            })
        });
        let mut c = check(1, 1);
        let mut http = http_check("/healthz");
        http.request_headers = vec![("x-probe".into(), "1".into())];
        c.kind = HealthCheckKind::Http(http.clone());
        let report = run(&c, addr);
        assert_eq!(
            report.outcome,
            Outcome::Passed { degraded: false },
            "{report:?}"
        );
        let head = heads.recv().unwrap().to_ascii_lowercase();
        assert!(head.contains("host: api\r\n"), "{head}");
        assert!(head.contains("user-agent: envoy/hc\r\n"), "{head}");
        assert!(head.contains("x-probe: 1\r\n"), "{head}");

        let mut degraded = http_check("/degraded");
        degraded.method = "HEAD".into();
        degraded.host = Some("api.internal:8080".into());
        c.kind = HealthCheckKind::Http(degraded);
        assert_eq!(run(&c, addr).outcome, Outcome::Passed { degraded: true });
        assert!(heads
            .recv()
            .unwrap()
            .contains("host: api.internal:8080\r\n"));

        let mut busy = http_check("/busy");
        c.kind = HealthCheckKind::Http(busy.clone());
        assert_eq!(
            run(&c, addr).outcome,
            Outcome::Failed {
                retriable: false,
                immediate: false
            }
        );
        busy.retriable_statuses = vec![(500, 600)];
        c.kind = HealthCheckKind::Http(busy);
        assert_eq!(
            run(&c, addr).outcome,
            Outcome::Failed {
                retriable: true,
                immediate: false
            }
        );
        c.kind = HealthCheckKind::Http(http_check("/leaving"));
        let report = run(&c, addr);
        assert_eq!(
            report.outcome,
            Outcome::Failed {
                retriable: false,
                immediate: true
            },
            "{report:?}"
        );
    }

    #[test]
    fn a_hanging_http_endpoint_times_out_and_a_closed_port_is_a_network_failure() {
        let (addr, _heads) = responder(|_| None);
        let mut c = check(1, 1);
        c.timeout = Duration::from_millis(200);
        c.kind = HealthCheckKind::Http(http_check("/"));
        let started = Instant::now();
        let report = run(&c, addr);
        assert_eq!(report.outcome, Outcome::Timeout, "{report:?}");
        assert!(started.elapsed() < Duration::from_secs(2));

        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(run(&c, closed).outcome, Outcome::Network);
    }

    #[test]
    fn tcp_checks_connect_send_and_find_the_blobs_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut got = [0u8; 4];
                if conn.read_exact(&mut got).is_err() {
                    continue;
                }
                match &got {
                    b"PING" => {
                        let _ = conn.write_all(b"xxPO");
                        thread::sleep(Duration::from_millis(20));
                        let _ = conn.write_all(b"NG..OK");
                    }
                    b"HANG" => thread::sleep(Duration::from_secs(2)),
                    _ => {}
                }
            }
        });
        let mut c = check(1, 1);
        c.timeout = Duration::from_millis(300);
        let tcp = |send: &[u8], receive: &[&[u8]]| {
            HealthCheckKind::Tcp(TcpCheck {
                send: send.to_vec(),
                receive: receive.iter().map(|b| b.to_vec()).collect(),
            })
        };
        c.kind = tcp(b"", &[]);
        // Connect only: the listener reads 4 bytes that never come, which is fine.
        assert_eq!(run(&c, addr).outcome, Outcome::Passed { degraded: false });
        c.kind = tcp(b"PING", &[b"PONG", b"OK"]);
        let report = run(&c, addr);
        assert_eq!(
            report.outcome,
            Outcome::Passed { degraded: false },
            "{report:?}"
        );
        c.kind = tcp(b"PING", &[b"OK", b"PONG"]);
        assert_eq!(
            run(&c, addr).outcome,
            Outcome::Network,
            "order matters, then EOF"
        );
        c.kind = tcp(b"HANG", &[b"PONG"]);
        assert_eq!(run(&c, addr).outcome, Outcome::Timeout);
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        c.kind = tcp(b"", &[]);
        assert_eq!(run(&c, closed).outcome, Outcome::Network);
    }

    #[test]
    fn unix_socket_endpoints_get_http_and_tcp_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hc.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let status = if text.contains("host: api\r\n") {
                    204
                } else {
                    500
                };
                let _ = conn.write_all(
                    format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 {status} X\r\n\r\n").as_bytes(),
                );
            }
        });
        let address = Address::Unix(path);
        let mut c = check(1, 1);
        let mut http = http_check("healthz");
        http.expected_statuses = vec![(200, 300)];
        c.kind = HealthCheckKind::Http(http);
        let report = probe(&c, "api", &address, None, &mut CheckConnection::default());
        assert_eq!(
            report.outcome,
            Outcome::Passed { degraded: false },
            "{report:?}"
        );
        c.kind = HealthCheckKind::Tcp(TcpCheck {
            send: Vec::new(),
            receive: Vec::new(),
        });
        assert_eq!(
            probe(&c, "api", &address, None, &mut CheckConnection::default()).outcome,
            Outcome::Passed { degraded: false }
        );
        let gone = Address::Unix(dir.path().join("none.sock"));
        let report = probe(&c, "api", &gone, None, &mut CheckConnection::default());
        assert_eq!(report.outcome, Outcome::Network);
    }

    #[test]
    fn headers_statuses_and_matching_helpers() {
        let mut http = http_check("/");
        http.request_headers = vec![("Host".into(), "other".into()), ("x-a".into(), "1".into())];
        http.remove_headers = vec!["User-Agent".into()];
        assert_eq!(
            request_headers(&http, "api"),
            [
                ("Host".to_owned(), "other".to_owned()),
                ("x-a".to_owned(), "1".to_owned())
            ]
        );
        assert!(in_ranges(&[(200, 300)], 299));
        assert!(!in_ranges(&[(200, 300)], 300));
        assert_eq!(
            classify(&http_check("/"), 201, false, false).outcome,
            Outcome::Failed {
                retriable: false,
                immediate: false
            }
        );
        let mut defaulted = http_check("/");
        defaulted.expected_statuses.clear();
        assert!(classify(&defaulted, 200, false, false).outcome.passed());
        assert!(fuzzy_match(
            &[b"ab".to_vec(), b"cd".to_vec()],
            b"xxabyycdzz"
        ));
        assert!(!fuzzy_match(
            &[b"cd".to_vec(), b"ab".to_vec()],
            b"xxabyycdzz"
        ));
        assert!(!fuzzy_match(&[b"abc".to_vec(), b"c".to_vec()], b"abc"));
    }
}
