//! An upstream that fails on demand, for the load-balancing, health-check and outlier
//! tests: it answers, answers 503, hangs, resets mid-response, slows down, dies (its port
//! refuses connections and open connections are reset) and comes back on the same port.
//!
//! Every answer's body is the upstream's name, so a client knows who served it; requests
//! to the health path (`/healthz`) are answered by their own mode and counted apart, so a
//! test can fail the health checks without failing traffic, and the other way round.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

/// How the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the name as body.
    Ok,
    /// This status, with the name as body.
    Status(u16),
    /// 200 with `x-envoy-immediate-health-check-fail: true` (the endpoint drains).
    Draining,
    /// Reads the request and never answers.
    Hang,
    /// Sends a response head promising 100 bytes, a few of them, then resets.
    Reset,
    /// Answers 200 after this delay.
    Slow(Duration),
    /// Reads the request, then resets the connection without a response byte.
    Drop,
    /// 503 with `retry-after: <seconds>`.
    RetryAfter(u16),
    /// 503 after this delay.
    SlowFailure(Duration),
    /// 503 with `x-envoy-ratelimited: true` (an upstream Envoy's rate-limit answer).
    RateLimited,
    /// 200 with `x-retry: yes`.
    Flagged,
}

impl Mode {
    /// As one word, so that test threads share it without a lock.
    fn encode(self) -> u64 {
        let (kind, value) = match self {
            Mode::Ok => (0, 0),
            Mode::Status(status) => (1, u64::from(status)),
            Mode::Draining => (2, 0),
            Mode::Hang => (3, 0),
            Mode::Reset => (4, 0),
            Mode::Slow(delay) => (5, delay.as_millis() as u64),
            Mode::Drop => (6, 0),
            Mode::RetryAfter(seconds) => (7, u64::from(seconds)),
            Mode::SlowFailure(delay) => (8, delay.as_millis() as u64),
            Mode::RateLimited => (9, 0),
            Mode::Flagged => (10, 0),
        };
        kind << 32 | value
    }

    fn decode(word: u64) -> Mode {
        let value = word & 0xffff_ffff;
        match word >> 32 {
            1 => Mode::Status(value as u16),
            2 => Mode::Draining,
            3 => Mode::Hang,
            4 => Mode::Reset,
            5 => Mode::Slow(Duration::from_millis(value)),
            6 => Mode::Drop,
            7 => Mode::RetryAfter(value as u16),
            8 => Mode::SlowFailure(Duration::from_millis(value)),
            9 => Mode::RateLimited,
            10 => Mode::Flagged,
            _ => Mode::Ok,
        }
    }
}

struct Shared {
    name: String,
    mode: AtomicU64,
    health: AtomicU64,
    dead: AtomicBool,
    requests: AtomicUsize,
    checks: AtomicUsize,
    /// Connections accepted.
    connections: AtomicUsize,
    /// Bumped on every kill: connections of an older life close.
    life: AtomicUsize,
    /// Requests still to be answered with `fail_mode` instead of `mode`.
    failures_left: AtomicUsize,
    fail_mode: AtomicU64,
    /// Where each request's head goes, once a test asks (`heads`).
    heads: std::sync::OnceLock<std::sync::mpsc::Sender<String>>,
}

/// A failing-on-demand upstream on 127.0.0.1.
pub struct Faulty {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The path whose requests are health checks.
pub const HEALTH_PATH: &str = "/healthz";

impl Faulty {
    /// Starts answering `Mode::Ok` to everything.
    pub fn start(name: &str) -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind faulty upstream");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            mode: AtomicU64::new(Mode::Ok.encode()),
            health: AtomicU64::new(Mode::Ok.encode()),
            dead: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            checks: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            life: AtomicUsize::new(0),
            failures_left: AtomicUsize::new(0),
            fail_mode: AtomicU64::new(0),
            heads: std::sync::OnceLock::new(),
        });
        spawn_acceptor(listener, Arc::clone(&shared));
        Faulty { addr, shared }
    }

    /// The endpoint as a config writes it.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// How it answers requests other than health checks from now on.
    pub fn set(&self, mode: Mode) {
        self.shared.mode.store(mode.encode(), Ordering::SeqCst);
    }

    /// How it answers health checks from now on.
    pub fn set_health(&self, mode: Mode) {
        self.shared.health.store(mode.encode(), Ordering::SeqCst);
    }

    /// Both at once.
    pub fn set_all(&self, mode: Mode) {
        self.set(mode);
        self.set_health(mode);
    }

    /// Stops listening (connects are refused) and resets every open connection.
    pub fn kill(&self) {
        self.switch().kill();
    }

    /// Listens again on the same port.
    pub fn revive(&self) {
        self.switch().revive();
    }

    /// A handle that kills and revives this upstream from another thread.
    #[allow(dead_code)]
    pub fn switch(&self) -> Switch {
        Switch {
            addr: self.addr,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Kills and revives a [`Faulty`] upstream (dropping it does neither).
pub struct Switch {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Switch {
    /// Refuses connections and resets open ones until revived.
    pub fn kill(&self) {
        self.shared.dead.store(true, Ordering::SeqCst);
        self.shared.life.fetch_add(1, Ordering::SeqCst);
        // The acceptor drops the listener within one poll.
        std::thread::sleep(Duration::from_millis(30));
    }

    /// Listens again on the same port.
    pub fn revive(&self) {
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        self.shared.dead.store(false, Ordering::SeqCst);
        spawn_acceptor(listener, Arc::clone(&self.shared));
    }
}

impl Faulty {
    /// Requests served (health checks apart), whatever the mode.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Health checks received.
    pub fn checks(&self) -> usize {
        self.shared.checks.load(Ordering::SeqCst)
    }

    /// Connections accepted (health checks' and requests').
    #[allow(dead_code)]
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Answers the next `n` requests (health checks aside) with `mode`, then goes on
    /// with its mode.
    #[allow(dead_code)]
    pub fn fail_next(&self, n: usize, mode: Mode) {
        self.shared.fail_mode.store(mode.encode(), Ordering::SeqCst);
        self.shared.failures_left.store(n, Ordering::SeqCst);
    }

    /// Every request head from now on (request line and header lines, health checks
    /// aside), in arrival order.
    #[allow(dead_code)]
    pub fn heads(&self) -> std::sync::mpsc::Receiver<String> {
        let (sender, receiver) = std::sync::mpsc::channel();
        assert!(
            self.shared.heads.set(sender).is_ok(),
            "heads() is called once per upstream"
        );
        receiver
    }

    /// Forgets the counts.
    pub fn reset_counts(&self) {
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.checks.store(0, Ordering::SeqCst);
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.shared.dead.store(true, Ordering::SeqCst);
        self.shared.life.fetch_add(1, Ordering::SeqCst);
    }
}

fn spawn_acceptor(listener: TcpListener, shared: Arc<Shared>) {
    listener.set_nonblocking(true).unwrap();
    let life = shared.life.load(Ordering::SeqCst);
    std::thread::spawn(move || loop {
        if shared.dead.load(Ordering::SeqCst) {
            return;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &shared, life));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    });
}

/// Closes `stream` with a reset (SO_LINGER 0) instead of a FIN.
fn reset(stream: TcpStream) {
    let socket = socket2::Socket::from(stream);
    let _ = socket.set_linger(Some(Duration::ZERO));
}

fn serve(stream: TcpStream, shared: &Shared, life: usize) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut out = stream;
    loop {
        // Wait for a request line, giving up when the upstream dies.
        let mut line = String::new();
        loop {
            if shared.life.load(Ordering::SeqCst) != life {
                return reset(out);
            }
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) if line.ends_with('\n') => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
        let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
        let _ = out.set_read_timeout(Some(Duration::from_secs(5)));
        let mut length = 0usize;
        let mut head = line.clone();
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
            head.push_str(&header);
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let _ = out.set_read_timeout(Some(Duration::from_millis(20)));
        let check = path.starts_with(HEALTH_PATH);
        let mode = if check {
            shared.checks.fetch_add(1, Ordering::SeqCst);
            Mode::decode(shared.health.load(Ordering::SeqCst))
        } else {
            shared.requests.fetch_add(1, Ordering::SeqCst);
            if let Some(heads) = shared.heads.get() {
                let _ = heads.send(head);
            }
            let failing = shared
                .failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                Mode::decode(shared.fail_mode.load(Ordering::SeqCst))
            } else {
                Mode::decode(shared.mode.load(Ordering::SeqCst))
            }
        };
        let name = &shared.name;
        let answer = |status: u16, extra: &str| {
            format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{extra}\r\n{name}",
                name.len()
            )
        };
        let text = match mode {
            Mode::Ok => answer(200, ""),
            Mode::Status(status) => answer(status, ""),
            Mode::Draining => answer(200, "x-envoy-immediate-health-check-fail: true\r\n"),
            Mode::Slow(delay) => {
                std::thread::sleep(delay);
                answer(200, "")
            }
            Mode::Hang => {
                while shared.life.load(Ordering::SeqCst) == life {
                    let mut byte = [0u8; 1];
                    if matches!(reader.read(&mut byte), Ok(0)) {
                        return;
                    }
                }
                return reset(out);
            }
            Mode::Drop => return reset(out),
            Mode::RateLimited => answer(503, "x-envoy-ratelimited: true\r\n"),
            Mode::Flagged => answer(200, "x-retry: yes\r\n"),
            Mode::SlowFailure(delay) => {
                std::thread::sleep(delay);
                answer(503, "")
            }
            Mode::RetryAfter(seconds) => answer(503, &format!("retry-after: {seconds}\r\n")),
            Mode::Reset => {
                let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial");
                let _ = out.flush();
                std::thread::sleep(Duration::from_millis(5));
                return reset(out);
            }
        };
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}
