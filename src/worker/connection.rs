//! One client connection: read a head, route it, answer, repeat.
//!
//! The connection owns one read buffer and one reusable parsed [`Request`]; a keep-alive
//! request in steady state allocates nothing. Heads are found incrementally (only newly
//! read bytes are scanned) and parsed in place; bytes of a following pipelined request
//! stay in the buffer and are parsed next, in order.
//!
//! Timeouts: `idle_timeout` while waiting for the first byte of a request (then the
//! connection just closes), `header_read_timeout` from then until the head is complete
//! (then 408). Waiting for a request also watches the worker's stop signal, so a drain
//! closes idle keep-alive connections between requests, never in the middle of one.
//!
//! Bodies of requests answered locally are read and discarded up to a bound so the
//! connection can stay open; a larger body, or one the client holds back for
//! `Expect: 100-continue`, gets the answer with `connection: close` followed by a
//! lingering close that reads (a bounded amount) until the client is done, so the kernel
//! does not reset the connection over unread bytes and lose the answer.
//!
//! Access log: every answer ringway sends goes through `respond`, which records one line
//! through `log_request` (the one place a line is made; the proxy path calls it too).
//! Without an access log the connection carries `None` and reads no clock.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use monoio::{
    buf::IoBufMut,
    io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt},
    net::TcpStream,
};

use super::{request_log::RequestLog, stop::Stop};
use crate::{
    access_log::{ResponseFlags, WorkerLog},
    http1::{self, BodyFraming, ChunkedDecoder, HeadScanner, Method, Request, Version},
    local_reply::{LocalReplyKind, Reply},
    router::Action,
    snapshot::ListenerSnapshot,
    stats::names::http as rq,
};

/// Size of the first read buffer; heads up to this size take one allocation per connection.
const READ_CHUNK: usize = 16 * 1024;
/// The largest request body (wire bytes) read and discarded to keep a connection open
/// after a local reply.
const MAX_DISCARD: u64 = 64 * 1024;
/// Lingering close: how long and how much to keep reading after the last answer.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Serves one accepted connection until it closes.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    listener: &ListenerSnapshot,
    stop: &Stop,
    log: Option<&WorkerLog>,
) {
    let mut conn = Connection {
        stream,
        buf: Vec::with_capacity(READ_CHUNK),
        start: 0,
        scanner: HeadScanner::new(),
        request: Request::new(),
        listener,
        log: log.map(|log| RequestLog::new(log, peer.ip())),
    };
    conn.run(stop).await;
}

enum Read {
    Bytes,
    Closed,
    TimedOut,
    Stopped,
}

enum Body {
    /// Read to its end; the next request follows in the buffer.
    Consumed,
    /// Not read: answer, then close.
    Left,
    /// The client went away or broke the framing (with the reply to send, if any).
    Failed(Option<LocalReplyKind>),
}

struct Connection<'l> {
    stream: TcpStream,
    /// Bytes received; `buf[start..]` are not yet consumed.
    buf: Vec<u8>,
    start: usize,
    scanner: HeadScanner,
    request: Request,
    listener: &'l ListenerSnapshot,
    /// The access log's per-request state; `None` without an access log.
    log: Option<RequestLog<'l>>,
}

impl Connection<'_> {
    async fn run(&mut self, stop: &Stop) {
        let l = self.listener;
        loop {
            let head_len = match self.read_head(stop).await {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(kind) => return self.fail(kind).await,
            };
            let head = &self.buf[self.start..self.start + head_len];
            self.request.clear();
            if let Err(e) = http1::parse_request(head, &l.limits, &mut self.request) {
                return self.fail(LocalReplyKind::for_status(e.status())).await;
            }
            if let Some(log) = &mut self.log {
                log.parsed(head, &self.request);
            }
            l.http_stats.get(rq::DOWNSTREAM_RQ_TOTAL).inc();
            let (reply, flags) = match l.router.route(self.request.path.get(head)) {
                Some(Action::Direct(reply)) => {
                    l.http_stats.get(rq::RQ_DIRECT_RESPONSE).inc();
                    (reply, ResponseFlags::NONE)
                }
                // Proxying to clusters arrives with the upstream layer.
                Some(Action::Cluster(_)) => (
                    l.replies.get(LocalReplyKind::NoUpstream),
                    ResponseFlags::NO_HEALTHY_UPSTREAM,
                ),
                None => {
                    l.http_stats.get(rq::RQ_NO_ROUTE).inc();
                    (
                        l.replies.get(LocalReplyKind::NoRoute),
                        ResponseFlags::NO_ROUTE,
                    )
                }
            };
            self.start += head_len;

            let mut close = !self.request.keep_alive
                || self.request.version == Version::Http10
                || stop.is_stopped();
            match self.discard_body().await {
                Body::Consumed => {}
                Body::Left => close = true,
                Body::Failed(None) => {
                    // The client left (or stalled) mid-body: nothing was answered.
                    let gone = ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION;
                    return self.log_request(0, 0, None, gone);
                }
                Body::Failed(Some(kind)) => return self.fail(kind).await,
            }
            let head_only = self.request.method == Method::Head;
            if !self.respond(reply, close, head_only, flags).await {
                return;
            }
            if close {
                return self.linger().await;
            }
            self.scanner.reset();
            if self.start == self.buf.len() {
                self.buf.clear();
                self.start = 0;
            }
        }
    }

    /// Waits for a complete head in `buf[start..]`. `Ok(None)`: the connection ended
    /// quietly (closed, idle, or stopped between requests).
    async fn read_head(&mut self, stop: &Stop) -> Result<Option<usize>, LocalReplyKind> {
        let l = self.listener;
        let mut deadline = None;
        loop {
            if self.start < self.buf.len() {
                if let Some(log) = &mut self.log {
                    log.begin();
                }
                match self.scanner.scan(&self.buf[self.start..], &l.limits) {
                    Ok(Some(head_len)) => return Ok(Some(head_len)),
                    Ok(None) => {}
                    Err(e) => return Err(LocalReplyKind::for_status(e.status())),
                }
            }
            let idle = self.start == self.buf.len();
            let timeout = if idle {
                l.idle_timeout
            } else {
                // The head clock starts with its first byte and is not reset by reads.
                let d = *deadline.get_or_insert_with(|| Instant::now() + l.header_read_timeout);
                d.saturating_duration_since(Instant::now())
            };
            match self.read_more(timeout, idle.then_some(stop)).await {
                Read::Bytes => {}
                Read::Closed | Read::Stopped => return Ok(None),
                Read::TimedOut if idle => {
                    l.http_stats.get(rq::DOWNSTREAM_CX_IDLE_TIMEOUT).inc();
                    return Ok(None);
                }
                Read::TimedOut => {
                    l.http_stats.get(rq::DOWNSTREAM_RQ_HEADER_TIMEOUT).inc();
                    return Err(LocalReplyKind::RequestTimeout);
                }
            }
        }
    }

    /// Reads more bytes after `buf[start..]`, moving unconsumed bytes to the front first.
    async fn read_more(&mut self, timeout: Duration, stop: Option<&Stop>) -> Read {
        if self.start > 0 {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.start = 0;
        }
        if self.buf.len() == self.buf.capacity() {
            self.buf.reserve(READ_CHUNK);
        }
        // The buffer is lent to the kernel for the read; on timeout or stop it stays with
        // the cancelled operation, and the connection closes.
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let read = monoio::time::timeout(timeout, self.stream.read(buf.slice_mut(len..)));
        let outcome = match stop {
            Some(stop) => monoio::select! {
                r = read => Some(r),
                _ = stop.wait() => None,
            },
            None => Some(read.await),
        };
        match outcome {
            None => Read::Stopped,
            Some(Err(_elapsed)) => Read::TimedOut,
            Some(Ok((result, slice))) => {
                self.buf = slice.into_inner();
                match result {
                    Ok(0) | Err(_) => Read::Closed,
                    Ok(n) => {
                        let stats = &self.listener.http_stats;
                        stats.get(rq::DOWNSTREAM_CX_RX_BYTES_TOTAL).add(n as u64);
                        Read::Bytes
                    }
                }
            }
        }
    }

    /// Reads and drops the request's body, if it is small enough to be worth it.
    async fn discard_body(&mut self) -> Body {
        let timeout = self.listener.header_read_timeout;
        match self.request.framing {
            BodyFraming::None => Body::Consumed,
            BodyFraming::ContentLength(0) => Body::Consumed,
            BodyFraming::ContentLength(length) => {
                let buffered = (self.buf.len() - self.start) as u64;
                if length > MAX_DISCARD || (self.request.expect_continue && buffered < length) {
                    return Body::Left;
                }
                let mut remaining = length;
                loop {
                    let take = remaining.min((self.buf.len() - self.start) as u64);
                    self.start += take as usize;
                    remaining -= take;
                    if let Some(log) = &mut self.log {
                        log.add_received(take);
                    }
                    if remaining == 0 {
                        return Body::Consumed;
                    }
                    match self.read_more(timeout, None).await {
                        Read::Bytes => {}
                        _ => return Body::Failed(None),
                    }
                }
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new(&self.listener.limits);
                let mut wire = 0u64;
                loop {
                    match decoder.decode(&self.buf[self.start..]) {
                        Ok((consumed, event)) => {
                            self.start += consumed;
                            wire += consumed as u64;
                            if let Some(log) = &mut self.log {
                                log.add_received(consumed as u64);
                            }
                            if decoder.is_done() {
                                return Body::Consumed;
                            }
                            if consumed > 0 || event.is_some() {
                                continue;
                            }
                        }
                        Err(e) => {
                            return Body::Failed(Some(LocalReplyKind::for_status(e.status())))
                        }
                    }
                    if wire > MAX_DISCARD || self.request.expect_continue {
                        return Body::Left;
                    }
                    match self.read_more(timeout, None).await {
                        Read::Bytes => {}
                        _ => return Body::Failed(None),
                    }
                }
            }
        }
    }

    /// Sends a reply and logs the request; false when the connection is gone.
    async fn respond(
        &mut self,
        reply: &Reply,
        close: bool,
        head_only: bool,
        flags: ResponseFlags,
    ) -> bool {
        let stats = &self.listener.http_stats;
        let bytes = reply.bytes(close, head_only);
        let len = bytes.len() as u64;
        let (result, _) = self.stream.write_all(bytes).await;
        stats.get(rq::status_class(reply.status())).inc();
        if result.is_err() {
            let gone = flags | ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION;
            self.log_request(reply.status(), 0, None, gone);
            return false;
        }
        stats.get(rq::DOWNSTREAM_CX_TX_BYTES_TOTAL).add(len);
        self.log_request(reply.status(), len, None, flags);
        true
    }

    /// Records the current request in the access log, if there is one: its status, the
    /// bytes sent to the client, the upstream endpoint that answered, and the flags.
    fn log_request(
        &mut self,
        status: u16,
        bytes_sent: u64,
        upstream: Option<&str>,
        flags: ResponseFlags,
    ) {
        if let Some(log) = &mut self.log {
            log.finish(&self.listener.name, status, bytes_sent, upstream, flags);
        }
    }

    /// Answers a request ringway cannot serve and closes the connection.
    async fn fail(&mut self, kind: LocalReplyKind) {
        let l = self.listener;
        if kind != LocalReplyKind::RequestTimeout {
            l.http_stats.get(rq::DOWNSTREAM_CX_PROTOCOL_ERROR).inc();
        }
        // Everything but a slow head is the client breaking the protocol.
        let flags = if kind == LocalReplyKind::RequestTimeout {
            ResponseFlags::NONE
        } else {
            ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR
        };
        if let Some(log) = &mut self.log {
            log.unparsed((self.buf.len() - self.start) as u64);
        }
        let reply = l.replies.get(kind);
        if self.respond(reply, true, false, flags).await {
            self.linger().await;
        }
    }

    /// Half-closes and reads what the client still sends, for a bounded time and size,
    /// so the kernel does not answer unread bytes with a reset that destroys the reply.
    async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIME;
        let mut total = 0;
        while total < LINGER_BYTES {
            self.buf.clear();
            self.start = 0;
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_more(left, None).await {
                Read::Bytes => total += self.buf.len(),
                _ => return,
            }
        }
    }
}
