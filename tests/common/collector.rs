//! A test span collector: an HTTP/1.1 server on 127.0.0.1:0 (std threads) that records
//! every request it is sent (method, path, headers, body) and answers as told:
//! [`Mode::Normal`] (202 on Zipkin's `/api/v2/spans`, else 200 with an empty body, an
//! empty `ExportTraceServiceResponse`), [`Mode::Slow`] (the same after a sleep: the
//! exporter's timeout and the workers' drops) or [`Mode::Refuse`] (the connection is
//! closed before anything is read). The mode can change while it runs, and applies to
//! the next request, on a kept connection as well. Connections are kept alive, as a
//! real collector's (Go's net/http) are, and counted ([`Collector::connections`]).
//!
//! ```ignore
//! let collector = Collector::start(Mode::Normal);
//! // point a cluster at collector.addr() ...
//! let got = collector.wait_for(1, Duration::from_secs(5));
//! assert_eq!(got[0].header("content-type"), Some("application/x-protobuf"));
//! ```

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How the collector answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer at once.
    Normal,
    /// Sleep this long after reading a request, then answer (and record it).
    Slow(Duration),
    /// Close each connection at once, reading nothing (nothing is recorded).
    Refuse,
}

/// One request the collector received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The mode, shared with the server's threads: `refuse`, and the delay in ms
/// (`u64::MAX`: none).
#[derive(Debug, Default)]
struct Shared {
    refuse: AtomicBool,
    delay_ms: AtomicU64,
    stopped: AtomicBool,
    /// Connections accepted.
    connections: AtomicU64,
}

impl Shared {
    fn set(&self, mode: Mode) {
        self.refuse.store(mode == Mode::Refuse, Relaxed);
        let delay = match mode {
            Mode::Slow(d) => d.as_millis() as u64,
            _ => 0,
        };
        self.delay_ms.store(delay, Relaxed);
    }
}

/// A running collector; stops accepting when dropped.
#[derive(Debug)]
pub struct Collector {
    addr: SocketAddr,
    shared: Arc<Shared>,
    seen: mpsc::Receiver<Recorded>,
    got: RefCell<Vec<Recorded>>,
}

impl Collector {
    /// Starts a collector on 127.0.0.1 (a free port) answering in `mode`.
    pub fn start(mode: Mode) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("collector bind");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        shared.set(mode);
        let (tx, seen) = mpsc::channel();
        let state = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if state.stopped.load(Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                // One writer, this thread: a load and a store.
                let accepted = state.connections.load(Relaxed) + 1;
                state.connections.store(accepted, Relaxed);
                if state.refuse.load(Relaxed) {
                    drop(stream);
                    continue;
                }
                let (tx, state) = (tx.clone(), Arc::clone(&state));
                std::thread::spawn(move || serve(stream, &tx, &state));
            }
        });
        Collector {
            addr,
            shared,
            seen,
            got: RefCell::default(),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes how it answers from the next request on.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.set(mode);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Relaxed)
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        let mut got = self.got.borrow_mut();
        got.extend(self.seen.try_iter());
        got.clone()
    }

    /// The requests once there are at least `n` (all of them), or what there is when
    /// `timeout` passes.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            let left = deadline.saturating_duration_since(Instant::now());
            if got.len() >= n || left.is_zero() {
                return got;
            }
            if let Ok(one) = self.seen.recv_timeout(left) {
                self.got.borrow_mut().push(one);
            }
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, tx: &mpsc::Sender<Recorded>, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    // One request after another, until the client closes or the mode refuses.
    loop {
        if shared.refuse.load(Relaxed) || !serve_one(&mut reader, &mut writer, tx, shared) {
            return;
        }
    }
}

/// Reads and answers one request; false when the connection is done.
fn serve_one(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    tx: &mpsc::Sender<Recorded>,
    shared: &Shared,
) -> bool {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return false;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut field = String::new();
        if reader.read_line(&mut field).unwrap_or(0) == 0 {
            return false;
        }
        let field = field.trim_end_matches(['\r', '\n']);
        if field.is_empty() {
            break;
        }
        if let Some((name, value)) = field.split_once(':') {
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let close = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return false;
    }
    let delay = shared.delay_ms.load(Relaxed);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    let status = if path.starts_with("/api/v2/spans") {
        "202 Accepted"
    } else {
        "200 OK"
    };
    let _ = tx.send(Recorded {
        method,
        path,
        headers,
        body,
    });
    let connection = if close { "connection: close\r\n" } else { "" };
    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n{connection}\r\n");
    writer.write_all(answer.as_bytes()).is_ok() && !close
}
