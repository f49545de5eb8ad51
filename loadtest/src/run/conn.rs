//! One connection's loop: send, read the answer, record, repeat.
//!
//! A connection task owns its socket, its read buffer and its response parser; the
//! thread's counters and histograms sit in one `RefCell` shared by the thread's tasks
//! (single-threaded executor: no locks, and no borrow is held across an await).
//!
//! Closed loop sends the next request when the answer arrives. Open loop takes due times
//! from its [`Schedule`]: it sleeps until the next one, or, when behind, sends at once
//! (catching up), and records latency from the due time.
//!
//! Per request the hot path writes a pre-rendered request (a shared slice), reads into
//! the connection's reused buffer and parses in place: no allocation. The timeout is one
//! glommio timer per request around the whole exchange (write, read, connect when the
//! connection is new), so a server that trickles bytes cannot stretch it.
//!
//! A request counts in the results if its due time is in the measured phase and its
//! answer (or error) came before the end; requests still in flight at the end are
//! dropped uncounted, as wrk does, so a run's end never waits on a slow server.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::schedule::Schedule;
use super::Counts;
use crate::histo::Histograms;
use crate::http::{Parse, Rendered, Response, ResponseParser, MAX_HEAD};

/// Initial read buffer; grows (to hold a large head) up to `MAX_HEAD` plus this.
const READ_BUF: usize = 16 * 1024;

/// What one thread records.
#[derive(Debug, Default)]
pub struct ThreadStats {
    pub histograms: Histograms,
    pub counts: Counts,
}

/// What a thread's connection tasks share (read-only except `stats`).
#[derive(Debug)]
pub struct ThreadCtx {
    pub requests: Rc<[Rendered]>,
    pub addrs: Rc<[SocketAddr]>,
    /// Open-loop rate over all connections of the run.
    pub rate: Option<u64>,
    /// All connections of the run (for the open-loop stagger).
    pub connections: u64,
    pub start: Instant,
    pub measure_start: Instant,
    pub end: Instant,
    pub timeout: Duration,
    pub requests_per_connection: Option<u64>,
    pub stats: RefCell<ThreadStats>,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Connect,
    Write,
    Read,
    Malformed,
}

/// Runs connection number `index` (of the whole run) until the end of the run.
pub async fn drive(ctx: Rc<ThreadCtx>, index: u64) {
    let mut conn = Conn::default();
    let mut schedule = ctx
        .rate
        .map(|rate| Schedule::new(ctx.start, rate, ctx.connections, index));
    let mut url = index as usize % ctx.requests.len().max(1);
    sleep_until(ctx.start).await;
    loop {
        let due = match &mut schedule {
            Some(schedule) => {
                let due = schedule.next_due();
                if due >= ctx.end {
                    break;
                }
                sleep_until(due).await;
                due
            }
            None => Instant::now(),
        };
        if Instant::now() >= ctx.end {
            break;
        }
        let (Some(request), Some(&addr)) = (ctx.requests.get(url), ctx.addrs.get(url)) else {
            break;
        };
        url = (url + 1) % ctx.requests.len();
        let last = ctx
            .requests_per_connection
            .is_some_and(|n| conn.served + 1 >= n);

        let sent = Instant::now();
        let outcome = glommio::timer::timeout(ctx.timeout, async {
            Ok(conn.exchange(addr, request, last, &ctx).await)
        })
        .await;
        let done = Instant::now();

        let counted = due >= ctx.measure_start && done <= ctx.end;
        let mut stats = ctx.stats.borrow_mut();
        match outcome {
            Ok(Ok(response)) => {
                conn.served += 1;
                if !response.keep_alive || last {
                    conn.close();
                }
                if counted {
                    stats.counts.completed += 1;
                    let class = usize::from(response.status / 100).clamp(1, 5) - 1;
                    stats.counts.status[class] += 1;
                    stats.histograms.record(
                        done - due,
                        done - sent,
                        sent.saturating_duration_since(due),
                    );
                    let since = done.saturating_duration_since(ctx.measure_start);
                    stats.histograms.intervals.record(since, done - due);
                }
            }
            Ok(Err(failure)) => {
                conn.close();
                if counted {
                    let errors = &mut stats.counts.errors;
                    match failure {
                        Failure::Connect => errors.connect += 1,
                        Failure::Write => errors.write += 1,
                        Failure::Read => errors.read += 1,
                        Failure::Malformed => errors.malformed += 1,
                    }
                }
            }
            Err(_timed_out) => {
                conn.close();
                if counted {
                    stats.counts.errors.timeout += 1;
                }
            }
        }
    }
}

async fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        glommio::timer::sleep(at - now).await;
    }
}

/// A connection's socket and read state; the socket is opened on demand.
#[derive(Debug)]
struct Conn {
    stream: Option<(TcpStream, SocketAddr)>,
    served: u64,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    parser: ResponseParser,
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            stream: None,
            served: 0,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            parser: ResponseParser::new(),
        }
    }
}

impl Conn {
    fn close(&mut self) {
        self.stream = None;
        self.served = 0;
        self.start = 0;
        self.end = 0;
        self.parser.reset();
    }

    async fn exchange(
        &mut self,
        addr: SocketAddr,
        request: &Rendered,
        last: bool,
        ctx: &ThreadCtx,
    ) -> Result<Response, Failure> {
        if self.stream.as_ref().is_some_and(|(_, a)| *a != addr) {
            // Rotating to a URL on another address: this connection cannot carry it.
            self.close();
        }
        if self.stream.is_none() {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|_| Failure::Connect)?;
            // Small requests must not wait for Nagle; failing to set it only costs speed.
            let _ = stream.set_nodelay(true);
            self.stream = Some((stream, addr));
            ctx.stats.borrow_mut().counts.connections_opened += 1;
        }
        let Some((stream, _)) = self.stream.as_mut() else {
            return Err(Failure::Connect);
        };
        let bytes = if last {
            &request.close
        } else {
            &request.keep_alive
        };
        stream.write_all(bytes).await.map_err(|_| Failure::Write)?;
        loop {
            if self.end > self.start {
                match self
                    .parser
                    .parse(&self.buf[self.start..self.end], request.is_head)
                {
                    Err(_) => return Err(Failure::Malformed),
                    Ok(Parse::Partial { consumed }) => self.start += consumed,
                    Ok(Parse::Complete { consumed, response }) => {
                        self.start += consumed;
                        if self.start != self.end {
                            // Bytes nobody asked for: the server is out of step.
                            return Err(Failure::Malformed);
                        }
                        self.start = 0;
                        self.end = 0;
                        return Ok(response);
                    }
                }
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.end == self.buf.len() {
                    // A head longer than the buffer: grow; the parser caps it at MAX_HEAD.
                    let len = (self.buf.len() * 2).min(MAX_HEAD + READ_BUF);
                    self.buf.resize(len, 0);
                }
            }
            let n = stream
                .read(&mut self.buf[self.end..])
                .await
                .map_err(|_| Failure::Read)?;
            if n == 0 {
                return self.parser.eof().ok_or(Failure::Read);
            }
            self.end += n;
        }
    }
}
