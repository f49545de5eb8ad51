//! A load client that never retries, so that any lost request shows: std threads doing
//! sequential keep-alive requests; a connect error (a refusal), an I/O error, a reset or
//! a non-200 is a failure. A response with `connection: close` ends the connection; the
//! client then reconnects (`Reconnect`) or stops (`StopOnClose`, for drains). Each client
//! paces itself (`PACE`) so that tests beside it on a small machine keep their CPU.

use std::{
    io::{BufReader, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{connect, read_response};

/// Pause between a client's requests.
const PACE: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnClose {
    Reconnect,
    StopOnClose,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: u64,
    pub failures: Vec<String>,
    pub refused: u64,
    /// The response bodies in order, each run of equal bodies kept once.
    pub bodies: Vec<String>,
    /// Whether the last response said `connection: close`.
    pub last_closed: bool,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Outcome>>,
    /// Responses each client has read so far.
    progress: Vec<Arc<AtomicUsize>>,
}

impl Load {
    /// Starts `clients` threads sending `GET path` with `headers` to `addr`.
    pub fn start(
        addr: SocketAddr,
        clients: usize,
        path: &str,
        headers: &str,
        mode: OnClose,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let progress: Vec<Arc<AtomicUsize>> = (0..clients)
            .map(|_| Arc::new(AtomicUsize::new(0)))
            .collect();
        let threads = progress
            .iter()
            .map(|done| {
                let stop = Arc::clone(&stop);
                let done = Arc::clone(done);
                let request = format!("GET {path} HTTP/1.1\r\nHost: load\r\n{headers}\r\n");
                std::thread::spawn(move || client(addr, &request, &stop, mode, &done))
            })
            .collect();
        Load {
            stop,
            threads,
            progress,
        }
    }

    /// Waits until every client has read at least `n` responses (a slow machine must not
    /// turn "each client is mid-request" into a guess about timing).
    pub fn wait_until_each_has(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.progress.iter().any(|p| p.load(Ordering::Relaxed) < n) {
            assert!(Instant::now() < deadline, "load clients made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the clients (each finishes its request in flight) and collects outcomes.
    pub fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().expect("load client panicked"))
            .collect()
    }
}

fn client(
    addr: SocketAddr,
    request: &str,
    stop: &AtomicBool,
    mode: OnClose,
    done: &AtomicUsize,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::Relaxed) {
        let reader = match &mut conn {
            Some(reader) => reader,
            None => match connect(addr) {
                Ok(stream) => conn.insert(BufReader::new(stream)),
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        outcome.refused += 1;
                    }
                    outcome.failures.push(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let sent = reader.get_mut().write_all(request.as_bytes());
        let response = sent.and_then(|()| read_response(reader, false));
        match response {
            Ok(r) => {
                done.fetch_add(1, Ordering::Relaxed);
                let closed = r
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if r.status == 200 {
                    outcome.ok += 1;
                } else {
                    outcome.failures.push(format!("status {}", r.status));
                }
                let body = String::from_utf8_lossy(&r.body);
                if outcome.bodies.last().map(String::as_str) != Some(&*body) {
                    outcome.bodies.push(body.into_owned());
                }
                outcome.last_closed = closed;
                if closed {
                    conn = None;
                    if mode == OnClose::StopOnClose {
                        break;
                    }
                }
                // A steady pace rather than flat out: on a 2-core CI machine the clients
                // must leave CPU to ringway (and to tests running beside them).
                std::thread::sleep(PACE);
            }
            Err(e) => {
                outcome.failures.push(format!("request: {e}"));
                conn = None;
            }
        }
    }
    outcome
}
