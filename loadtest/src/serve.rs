//! `ringway-load serve`: the bundled upstream, a fixed answer as fast as possible.
//!
//! It must run where io_uring is blocked (the README's quick start uses it), so it is
//! built on ringway's own runtime setup: monoio with the epoll fallback
//! (`ringway::driver`), and one SO_REUSEPORT socket per worker (`ringway::listen`). Each
//! worker is a thread with its own runtime, sockets and pre-rendered answer; nothing is
//! shared on the request path.
//!
//! Pipelining-safe: a connection parses every complete request in its buffer in order,
//! reads and discards each body (Content-Length or chunked, with the shared decoder in
//! `http`), appends one answer per request to an output buffer, and writes the batch in
//! one call. A request that cannot be parsed gets a 400 with `connection: close`.
//!
//! `--delay` holds each batch of answers (one answer per batch without pipelining) for a
//! fixed time. `--stall-at T --stall-for D` makes the whole server stall once: answers
//! due between T and T+D after start are held until T+D, which is what the
//! coordinated-omission test needs. The window is computed from the start instant every
//! worker shares, so the workers need no coordination.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use ringway::config::DriverChoice;

use crate::http::{find_head_end, parse_request_head, ChunkedDecoder, Framing, MAX_HEAD};

/// First read buffer size per connection.
const READ_BUF: usize = 16 * 1024;

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// How `serve` answers.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub body_size: usize,
    pub chunked: bool,
    pub delay: Duration,
    pub workers: usize,
    pub driver: DriverChoice,
    /// Stall once, this long after start…
    pub stall_at: Option<Duration>,
    /// …for this long.
    pub stall_for: Duration,
}

impl ServeOptions {
    pub fn new(listen: SocketAddr) -> ServeOptions {
        ServeOptions {
            listen,
            body_size: 0,
            chunked: false,
            delay: Duration::ZERO,
            workers: 1,
            driver: DriverChoice::Auto,
            stall_at: None,
            stall_for: Duration::ZERO,
        }
    }
}

/// A started server; its workers run until the process exits.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    /// The driver the workers run, and a note when `auto` fell back.
    pub driver: String,
    pub note: Option<String>,
    pub workers: Vec<std::thread::JoinHandle<()>>,
}

/// Binds and starts the workers; returns once they are listening.
pub fn start(opts: ServeOptions) -> Result<Server, String> {
    let (driver, note) = ringway::driver::resolve(opts.driver)?;
    let listeners = ringway::listen::bind_group(opts.listen, opts.workers.max(1))
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listeners[0]
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let stall = opts.stall_at.map(|at| {
        let from = Instant::now() + at;
        (from, from + opts.stall_for)
    });
    let mut workers = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let opts = opts.clone();
        let handle = std::thread::Builder::new()
            .name(format!("serve-{i}"))
            .spawn(move || {
                // Each worker renders its own answer: nothing shared on the request path.
                let reply = Rc::new(Reply::render(&opts));
                let worker = async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    accept_loop(listener, reply, opts.delay, stall).await;
                };
                if let Err(e) = ringway::driver::block_on(driver, worker) {
                    eprintln!("serve worker {i}: cannot start its runtime: {e}");
                }
            })
            .map_err(|e| format!("cannot start worker {i}: {e}"))?;
        workers.push(handle);
    }
    Ok(Server {
        addr,
        driver: driver.to_string(),
        note,
        workers,
    })
}

/// The fixed answer, rendered once per worker.
#[derive(Debug)]
struct Reply {
    keep_alive: Vec<u8>,
    close: Vec<u8>,
}

impl Reply {
    fn render(opts: &ServeOptions) -> Reply {
        let body = vec![b'x'; opts.body_size];
        let render = |extra: &str| {
            let mut out = Vec::new();
            if opts.chunked {
                out.extend_from_slice(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n");
                out.extend_from_slice(extra.as_bytes());
                out.extend_from_slice(b"\r\n");
                if !body.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                    out.extend_from_slice(&body);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            } else {
                out.extend_from_slice(
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n", body.len()).as_bytes(),
                );
                out.extend_from_slice(extra.as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&body);
            }
            out
        };
        Reply {
            keep_alive: render(""),
            close: render("connection: close\r\n"),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    reply: Rc<Reply>,
    delay: Duration,
    stall: Option<(Instant, Instant)>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let reply = Rc::clone(&reply);
                monoio::spawn(async move {
                    let _ = serve_connection(stream, &reply, delay, stall).await;
                });
            }
            Err(_) => {
                // Out of descriptors or a connection reset before accept: back off a
                // little rather than spin.
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Where the parser is in the current request.
#[derive(Debug)]
enum State {
    Head {
        scanned: usize,
    },
    Length {
        remaining: u64,
        keep_alive: bool,
    },
    Chunked {
        decoder: ChunkedDecoder,
        keep_alive: bool,
    },
}

/// Why a connection ends.
#[derive(Debug)]
struct Closed;

async fn serve_connection(
    mut stream: TcpStream,
    reply: &Reply,
    delay: Duration,
    stall: Option<(Instant, Instant)>,
) -> Result<(), Closed> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    let mut start = 0;
    let mut out: Vec<u8> = Vec::with_capacity(reply.keep_alive.len() * 4);
    let mut state = State::Head { scanned: 0 };
    loop {
        // Answer every complete request in the buffer, in order.
        let mut close = false;
        loop {
            let rest = &buf[start..];
            match &mut state {
                State::Head { scanned } => {
                    let Some(end) = find_head_end(rest, *scanned) else {
                        if rest.len() > MAX_HEAD {
                            out.extend_from_slice(BAD_REQUEST);
                            close = true;
                        }
                        *scanned = rest.len();
                        break;
                    };
                    let Ok(head) = parse_request_head(&rest[..end]) else {
                        out.extend_from_slice(BAD_REQUEST);
                        close = true;
                        break;
                    };
                    start += end;
                    state = match head.framing {
                        Framing::Chunked => State::Chunked {
                            decoder: ChunkedDecoder::default(),
                            keep_alive: head.keep_alive,
                        },
                        Framing::Length(n) => State::Length {
                            remaining: n,
                            keep_alive: head.keep_alive,
                        },
                        // parse_request_head never says UntilClose: no framing, no body.
                        Framing::UntilClose => State::Length {
                            remaining: 0,
                            keep_alive: head.keep_alive,
                        },
                    };
                }
                State::Length {
                    remaining,
                    keep_alive,
                } => {
                    let take = (*remaining).min(rest.len() as u64);
                    start += take as usize;
                    *remaining -= take;
                    if *remaining > 0 {
                        break;
                    }
                    let keep_alive = *keep_alive;
                    answer(&mut out, reply, keep_alive);
                    state = State::Head { scanned: 0 };
                    if !keep_alive {
                        close = true;
                        break;
                    }
                }
                State::Chunked {
                    decoder,
                    keep_alive,
                } => {
                    let Ok((used, done)) = decoder.advance(rest) else {
                        out.extend_from_slice(BAD_REQUEST);
                        close = true;
                        break;
                    };
                    start += used;
                    if !done {
                        break;
                    }
                    let keep_alive = *keep_alive;
                    answer(&mut out, reply, keep_alive);
                    state = State::Head { scanned: 0 };
                    if !keep_alive {
                        close = true;
                        break;
                    }
                }
            }
        }
        if !out.is_empty() {
            hold(delay, stall).await;
            let (result, written) = stream.write_all(out).await;
            out = written;
            out.clear();
            result.map_err(|_| Closed)?;
        }
        if close {
            return Ok(());
        }
        // Keep unconsumed bytes at the front so the buffer does not grow with traffic.
        if start == buf.len() {
            buf.clear();
            start = 0;
        } else if start > 0 {
            buf.drain(..start);
            start = 0;
        }
        if buf.len() == buf.capacity() {
            buf.reserve(READ_BUF);
        }
        let len = buf.len();
        let (result, slice) = stream.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        match result {
            Ok(0) | Err(_) => return Err(Closed),
            Ok(_) => {}
        }
    }
}

fn answer(out: &mut Vec<u8>, reply: &Reply, keep_alive: bool) {
    out.extend_from_slice(if keep_alive {
        &reply.keep_alive
    } else {
        &reply.close
    });
}

/// Applies `--delay`, then waits out the stall window if the answer falls in it.
async fn hold(delay: Duration, stall: Option<(Instant, Instant)>) {
    if !delay.is_zero() {
        monoio::time::sleep(delay).await;
    }
    if let Some((from, until)) = stall {
        let now = Instant::now();
        if now >= from && now < until {
            monoio::time::sleep(until - now).await;
        }
    }
}
