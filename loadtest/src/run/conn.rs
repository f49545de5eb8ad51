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
//! Per request the hot path writes a pre-rendered request (a shared `Bytes`), reads into
//! the connection's reused buffer and parses in place: no allocation. Reads and writes
//! are io_uring operations (monoio): a read that finds no data waits inside the kernel
//! and completes with the data, with no readiness poll followed by a second system call.
//! The timeout is one timer per request around the whole exchange (write, read; connect
//! and TLS handshake when the connection is new), so a server that trickles bytes cannot
//! stretch it; monoio's timer wheel makes it cheap (an entry in a wheel, no system call).
//!
//! A request counts in the results if its due time is in the measured phase and its
//! answer (or error) came before the end; requests still in flight at the end are
//! dropped uncounted, as wrk does, so a run's end never waits on a slow server.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::schedule::Schedule;
use super::tls::TlsStream;
use super::Counts;
use crate::histo::Histograms;
use crate::http::{Malformed, Parse, Response, ResponseParser, MAX_HEAD};

/// Initial read buffer; grows (to hold a large head) up to `MAX_HEAD` plus this.
const READ_BUF: usize = 16 * 1024;

/// What one thread records.
#[derive(Debug, Default)]
pub struct ThreadStats {
    pub histograms: Histograms,
    pub counts: Counts,
    /// The first error message of each kind (connect, timeout, read, write, malformed).
    pub first_errors: [Option<String>; 5],
}

/// One URL as a connection sees it.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Some` for https: the name the certificate must carry (and SNI).
    pub tls: Option<ServerName<'static>>,
    pub keep_alive: Bytes,
    pub close: Bytes,
    pub is_head: bool,
    /// URLs with the same key (address, scheme, host) can share a connection.
    pub key: usize,
}

/// What a thread's connection tasks share (read-only except `stats`).
#[derive(Debug)]
pub struct ThreadCtx {
    pub targets: Rc<[Target]>,
    /// Set when a target is https.
    pub tls: Option<Arc<ClientConfig>>,
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

/// Why a request failed, with the cause for the summary's first-error lines.
#[derive(Debug)]
enum Failure {
    Connect(io::Error),
    Write(io::Error),
    Read(io::Error),
    Malformed(Malformed),
}

/// Runs connection number `index` (of the whole run) until the end of the run.
pub async fn drive(ctx: Rc<ThreadCtx>, index: u64) {
    let mut conn = Conn::default();
    let mut schedule = ctx
        .rate
        .map(|rate| Schedule::new(ctx.start, rate, ctx.connections, index));
    let mut url = index as usize % ctx.targets.len().max(1);
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
        let Some(target) = ctx.targets.get(url) else {
            break;
        };
        url = (url + 1) % ctx.targets.len();
        let last = ctx
            .requests_per_connection
            .is_some_and(|n| conn.served + 1 >= n);

        let sent = Instant::now();
        let outcome = monoio::time::timeout(ctx.timeout, conn.exchange(target, last, &ctx)).await;
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
                    if class == 1 {
                        let us = (done - due).as_micros().min(u128::from(u64::MAX)) as u64;
                        stats.histograms.success.saturating_record(us);
                    }
                    let since = done.saturating_duration_since(ctx.measure_start);
                    stats.histograms.intervals.record(since, done - due);
                }
            }
            Ok(Err(failure)) => {
                conn.close();
                if counted {
                    let errors = &mut stats.counts.errors;
                    let (slot, text) = match &failure {
                        Failure::Connect(e) => {
                            errors.connect += 1;
                            (0, e as &dyn std::fmt::Display)
                        }
                        Failure::Read(e) => {
                            errors.read += 1;
                            (2, e as &dyn std::fmt::Display)
                        }
                        Failure::Write(e) => {
                            errors.write += 1;
                            (3, e as &dyn std::fmt::Display)
                        }
                        Failure::Malformed(e) => {
                            errors.malformed += 1;
                            (4, e as &dyn std::fmt::Display)
                        }
                    };
                    if stats.first_errors[slot].is_none() {
                        stats.first_errors[slot] = Some(text.to_string());
                    }
                }
            }
            Err(_timed_out) => {
                conn.close();
                if counted {
                    stats.counts.errors.timeout += 1;
                    if stats.first_errors[1].is_none() {
                        stats.first_errors[1] =
                            Some(format!("no complete answer within {:?}", ctx.timeout));
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        monoio::time::sleep(at - now).await;
    }
}

/// An open connection: plain TCP or TLS over it.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    async fn connect(target: &Target, ctx: &ThreadCtx) -> io::Result<Stream> {
        let tcp = TcpStream::connect_addr(target.addr).await?;
        // Small requests must not wait for Nagle; failing to set it only costs speed.
        let _ = tcp.set_nodelay(true);
        match (&target.tls, &ctx.tls) {
            (Some(name), Some(config)) => {
                let tls = TlsStream::handshake(tcp, Arc::clone(config), name.clone()).await?;
                Ok(Stream::Tls(Box::new(tls)))
            }
            _ => Ok(Stream::Plain(tcp)),
        }
    }

    async fn write_all(&mut self, bytes: &Bytes) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.write_all(bytes.clone()).await.0.map(|_| ()),
            Stream::Tls(tls) => tls.write_all(bytes).await,
        }
    }

    /// Reads into `buf[at..]` (the whole buffer is initialised); 0 at the end.
    async fn read(&mut self, buf: Vec<u8>, at: usize) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Stream::Plain(tcp) => {
                let len = buf.len();
                let (result, slice) = tcp.read(buf.slice_mut(at..len)).await;
                (result, slice.into_inner())
            }
            Stream::Tls(tls) => tls.read(buf, at).await,
        }
    }
}

/// A connection's socket and read state; the socket is opened on demand.
#[derive(Debug)]
struct Conn {
    /// The stream and the key of the target it was opened for.
    stream: Option<(Stream, usize)>,
    served: u64,
    /// Fully initialised; empty after an exchange was cut off mid-read (the read owned
    /// it), and then replaced at the next exchange.
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
        target: &Target,
        last: bool,
        ctx: &ThreadCtx,
    ) -> Result<Response, Failure> {
        if self.stream.as_ref().is_some_and(|(_, k)| *k != target.key) {
            // Rotating to a URL on another address: this connection cannot carry it.
            self.close();
        }
        if self.buf.len() < READ_BUF {
            self.buf = vec![0; READ_BUF];
        }
        if self.stream.is_none() {
            let stream = Stream::connect(target, ctx)
                .await
                .map_err(Failure::Connect)?;
            let resumed = matches!(&stream, Stream::Tls(t) if t.resumed());
            self.stream = Some((stream, target.key));
            let counts = &mut ctx.stats.borrow_mut().counts;
            counts.connections_opened += 1;
            counts.tls_resumed += u64::from(resumed);
        }
        let Some((stream, _)) = self.stream.as_mut() else {
            return Err(Failure::Connect(io::ErrorKind::NotConnected.into()));
        };
        let bytes = if last {
            &target.close
        } else {
            &target.keep_alive
        };
        stream.write_all(bytes).await.map_err(Failure::Write)?;
        loop {
            if self.end > self.start {
                match self
                    .parser
                    .parse(&self.buf[self.start..self.end], target.is_head)
                {
                    Err(e) => return Err(Failure::Malformed(e)),
                    Ok(Parse::Partial { consumed }) => self.start += consumed,
                    Ok(Parse::Complete { consumed, response }) => {
                        self.start += consumed;
                        if self.start != self.end {
                            // Bytes nobody asked for: the server is out of step.
                            return Err(Failure::Malformed(Malformed(
                                "bytes after the response, before the next request",
                            )));
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
            let buf = std::mem::take(&mut self.buf);
            let (result, buf) = stream.read(buf, self.end).await;
            self.buf = buf;
            let n = result.map_err(Failure::Read)?;
            if n == 0 {
                return self.parser.eof().ok_or_else(|| {
                    Failure::Read(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection before the answer was complete",
                    ))
                });
            }
            self.end += n;
        }
    }
}
