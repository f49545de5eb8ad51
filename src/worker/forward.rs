//! Forwarding one request to a cluster and relaying the response.
//!
//! The exchange, in order: pick an endpoint (weighted round robin), take a pooled
//! connection or connect, send the head and the body bytes already received in one
//! write, stream the rest of the body, read the response head (relaying 1xx), send it
//! on, stream the response body, and give the connection back to the pool only when the
//! response was read to its end.
//!
//! - **Heads** are rebuilt into the connection's write chunk: ringway's own request or
//!   status line (`HTTP/1.1`, the normalised path), then the received header lines as
//!   spans of the read buffer with the overlay's changes (hop-by-hop fields removed,
//!   forwarding headers added). The body bytes that arrived with the head go in the same
//!   write, so a small request or response costs one write each way.
//! - **The write chunk never grows**: body bytes are copied into it only while they fit
//!   (a re-framed chunked body only as far as its new framing fits too); the rest stays
//!   in the read buffer and goes out from there, before anything more is read. A grown
//!   chunk would be a reallocation, and the pool would drop it and allocate a fresh one
//!   for the next request: two allocations per large body.
//! - **Bodies** stream through one chunk per direction: read, then write the slice that
//!   was read (the chunk is lent to the kernel and comes back; payload bytes are not
//!   copied). One write is in flight per direction and reading resumes only when it
//!   completes, which is the backpressure. Chunked bodies are always re-framed (new size
//!   lines, extensions dropped, trailers only when valid), so their payload is copied
//!   into the write chunk next to the size lines.
//! - **Retry**: a request that fails on a reused connection before any response byte is
//!   sent once more on a fresh connection when it is idempotent or never reached the
//!   upstream, and its body is still held (`error::Error::retryable`).
//! - **Timeouts**: the route timeout bounds the exchange from the end of the request head
//!   (504 before the response starts, a closed connection after); the cluster's connect
//!   timeout bounds connecting (503).

use std::time::{Duration, Instant};

use monoio::{
    buf::{IoBuf, IoBufMut},
    io::{AsyncReadRent, AsyncWriteRentExt},
};

use super::{connection::Connection, deadline::Deadline, stop::Stop};
use crate::{
    config::ExpectContinue,
    error::{Cause, Error, ErrorKind, Side},
    flow::{Credit, OneChunk},
    forwarding,
    http1::{
        self, BodyFraming, ChunkEvent, ChunkedDecoder, ChunkedEncoder, HeadScanner, Method,
        ResponseFraming, Version,
    },
    stats::names::{cluster as cx, http as rq},
    upstream::{
        conn::{ConnectError, UpstreamConn},
        pool::Lease,
        ClusterSnapshot,
    },
};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How the client connection goes on after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close: the response said `connection: close`, or its end is the connection's.
    Close,
}

/// A completed exchange.
#[derive(Debug, Clone, Copy)]
pub(super) struct Forwarded {
    pub next: Next,
    pub status: u16,
    /// Bytes sent to the client (head and body).
    pub sent: u64,
}

/// Where the request body stands.
#[derive(Debug)]
enum RequestBody {
    /// Fully in the write chunk (or there is none).
    Complete,
    /// All of it arrived, but the last `n` bytes did not fit in the write chunk: they
    /// wait in the read buffer at `start` and are written after the chunk on every
    /// attempt (so the request can still be replayed), and consumed when the exchange
    /// is over.
    Held(usize),
    /// Bytes still to come from the client (some may be in the read buffer already).
    Length(u64),
    /// More chunks to come from the client (decoded by the connection's
    /// `request_decoder`); payload forwarded so far.
    Chunked(u64),
}

/// What the response left behind.
struct Finished {
    forwarded: Forwarded,
    /// The upstream connection may go back to the pool.
    reusable: bool,
    /// The origin's `Keep-Alive: timeout=`.
    keep_alive: Option<Duration>,
}

fn upstream_reset(written: bool, started: bool, cause: Cause) -> Error {
    Error {
        request_written: written,
        response_started: started,
        ..Error::new(ErrorKind::UpstreamReset, Side::Upstream)
    }
    .because(cause)
}

fn client_gone(written: bool, started: bool, cause: Cause) -> Error {
    Error {
        request_written: written,
        response_started: started,
        ..Error::new(ErrorKind::ClientGone, Side::Client)
    }
    .because(cause)
}

impl Connection<'_> {
    /// Forwards the request whose head is `buf[start..start + head_len]` to `cluster`,
    /// with `self.target` as the request target. On success the request and its body
    /// are consumed from the buffer.
    pub(super) async fn forward(
        &mut self,
        head_len: usize,
        route_timeout: Duration,
        cluster: &ClusterSnapshot,
        stop: &Stop,
    ) -> Result<Forwarded, Error> {
        let l = self.listener;
        if let (Some(max), BodyFraming::ContentLength(n)) =
            (l.proxy.max_request_body, self.request.framing)
        {
            if n > max {
                return Err(Error::new(ErrorKind::RequestTooLarge, Side::Client));
            }
        }
        let idempotent = matches!(
            self.request.method,
            Method::Get
                | Method::Head
                | Method::Options
                | Method::Trace
                | Method::Put
                | Method::Delete
        );
        let answer_continue =
            self.request.expect_continue && l.proxy.expect_continue == ExpectContinue::Answer;

        // The first endpoint is picked before the head is built: a request without Host
        // (HTTP/1.0) is sent with the one its endpoint implies.
        let Some(mut picked) = cluster.pick() else {
            self.start += head_len;
            return Err(Error::new(ErrorKind::NoHealthyUpstream, Side::Upstream));
        };
        // The upstream head, and whatever body arrived with it, in one write chunk.
        let mut out = self.worker.bufs.take();
        self.build_request_head(head_len, answer_continue, picked.host(), &mut out);
        self.start += head_len;
        let mut body = match self.buffered_request_body(&mut out) {
            Ok(body) => body,
            Err(e) => {
                self.worker.bufs.give(out);
                return Err(e);
            }
        };
        let replayable = matches!(body, RequestBody::Complete | RequestBody::Held(_));
        // The route timeout runs from the end of the request; until then only the
        // optional request timeout (and, throughout, the stream idle timeout) applies.
        let now = Instant::now();
        let (at, receiving) = if replayable {
            (Some(now + route_timeout), false)
        } else {
            (l.request_timeout.map(|t| now + t), true)
        };
        let clock = &self.worker.clock;
        let idle = l.stream_idle_timeout;
        let first = Deadline::first_check(at, idle, now);
        let timer = std::pin::pin!(monoio::time::sleep_until(first.into()));
        let mut deadline = Deadline::new(now, at, receiving, idle, clock, timer);
        let deadline = &mut deadline;

        let mut retried = false;
        let result = loop {
            let pool = picked;
            self.upstream = Some(std::rc::Rc::clone(pool));
            let lease = match deadline.within(pool.checkout(&cluster.pool)).await {
                Err(expired) => break Err(deadline.error(expired, false, false)),
                Ok(Err(_overflow)) => {
                    cluster.stats.get(cx::UPSTREAM_RQ_PENDING_OVERFLOW).inc();
                    break Err(Error::new(ErrorKind::Overflow, Side::Upstream));
                }
                Ok(Ok(lease)) => lease,
            };
            // A retry must not land on another pooled connection that may be stale too.
            let mut lease = if retried && lease.reused {
                drop(lease);
                match deadline.within(pool.checkout_fresh(&cluster.pool)).await {
                    Err(expired) => break Err(deadline.error(expired, false, false)),
                    Ok(Err(_)) => break Err(Error::new(ErrorKind::Overflow, Side::Upstream)),
                    Ok(Ok(lease)) => lease,
                }
            } else {
                lease
            };
            let reused = lease.reused;
            cluster.stats.get(cx::UPSTREAM_RQ_TOTAL).inc();
            if reused {
                cluster.stats.get(cx::UPSTREAM_CX_POOL_REUSE).inc();
            }
            let outcome = self
                .exchange(
                    &mut lease,
                    cluster,
                    &mut out,
                    &mut body,
                    (deadline, route_timeout),
                    answer_continue,
                    stop,
                )
                .await;
            match outcome {
                Ok(finished) => {
                    cluster
                        .stats
                        .get(cx::status_class(finished.forwarded.status))
                        .inc();
                    if finished.reusable {
                        lease.release(finished.keep_alive);
                    }
                    break Ok(finished.forwarded);
                }
                Err(e) if !retried && e.retryable(reused, idempotent, replayable) => {
                    cluster.stats.get(cx::UPSTREAM_RQ_RETRY).inc();
                    retried = true;
                    match cluster.pick() {
                        Some(next) => picked = next,
                        None => {
                            break Err(Error::new(ErrorKind::NoHealthyUpstream, Side::Upstream))
                        }
                    }
                }
                Err(e) => {
                    match e.kind {
                        ErrorKind::Timeout => cluster.stats.get(cx::UPSTREAM_RQ_TIMEOUT).inc(),
                        ErrorKind::BadResponse => {
                            cluster.stats.get(cx::UPSTREAM_CX_PROTOCOL_ERROR).inc()
                        }
                        _ => {}
                    }
                    break Err(e);
                }
            }
        };
        if let RequestBody::Held(n) = body {
            self.start += n;
            self.count_received(n as u64);
        }
        self.worker.bufs.give(out);
        result
    }

    /// Writes ringway's request line (`HTTP/1.1`, the routed target) and the received
    /// header lines with the overlay applied into `out`.
    fn build_request_head(
        &mut self,
        head_len: usize,
        answer_continue: bool,
        implied_host: &str,
        out: &mut Vec<u8>,
    ) {
        let l = self.listener;
        let head = &self.buf[self.start..self.start + head_len];
        let request = &mut self.request;
        request.strip_hop_by_hop(head);
        self.client_ip = forwarding::apply(
            request,
            head,
            self.peer.ip(),
            &self.peer_text,
            &l.proxy,
            &mut self.random,
            &mut self.scratch,
        );
        if answer_continue {
            for (index, header) in request.headers.iter().enumerate() {
                if header.is(head, "expect") {
                    request.overlay.remove(index);
                }
            }
        }
        // An absolute-form target's authority overrides Host (RFC 9112 3.2.2); the
        // upstream gets an origin-form target, so Host must carry that authority.
        if let Some(authority) = request.host.map(|h| h.get(head)) {
            for (index, header) in request.headers.iter().enumerate() {
                if header.is(head, "host") && header.value(head) != authority {
                    let _ = request.overlay.replace(index, b"host", authority);
                }
            }
        }
        if request.host.is_none() {
            // HTTP/1.0 without Host: ringway speaks HTTP/1.1 upstream, where Host is
            // required (RFC 9112 3.2), so it sends the authority of the endpoint.
            let _ = request.overlay.add(b"host", implied_host.as_bytes());
        }
        if request.framing == BodyFraming::Chunked {
            // Transfer-Encoding is hop-by-hop and was removed: the body is re-framed.
            let _ = request.overlay.add(b"transfer-encoding", b"chunked");
        }
        out.clear();
        out.extend_from_slice(request.method_span.get(head));
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        request.append_fields(head, out);
    }

    /// Moves the body bytes that arrived with the head into `out` (re-framing a chunked
    /// body), and says what is still to come.
    fn buffered_request_body(&mut self, out: &mut Vec<u8>) -> Result<RequestBody, Error> {
        match self.request.framing {
            BodyFraming::None | BodyFraming::ContentLength(0) => Ok(RequestBody::Complete),
            BodyFraming::ContentLength(length) => {
                let available = self.buf.len() - self.start;
                let take = usize::try_from(length).map_or(available, |n| n.min(available));
                let copy = take.min(out.capacity() - out.len());
                out.extend_from_slice(&self.buf[self.start..self.start + copy]);
                self.start += copy;
                self.count_received(copy as u64);
                let remaining = length - copy as u64;
                Ok(if remaining == 0 {
                    RequestBody::Complete
                } else if remaining == (take - copy) as u64 {
                    RequestBody::Held(take - copy)
                } else {
                    RequestBody::Length(remaining)
                })
            }
            BodyFraming::Chunked => {
                let decoder = &mut self.request_decoder;
                decoder.reset();
                let mut payload = 0;
                let (consumed, done) =
                    reframe(decoder, &self.buf[self.start..], out, false, &mut payload).map_err(
                        |e| Error::new(ErrorKind::BadRequestBody(e.status()), Side::Client),
                    )?;
                self.start += consumed;
                self.count_received(consumed as u64);
                self.check_body_size(payload)?;
                Ok(if done {
                    RequestBody::Complete
                } else {
                    RequestBody::Chunked(payload)
                })
            }
        }
    }

    fn check_body_size(&self, payload: u64) -> Result<(), Error> {
        match self.listener.proxy.max_request_body {
            Some(max) if payload > max => Err(Error::new(ErrorKind::RequestTooLarge, Side::Client)),
            _ => Ok(()),
        }
    }

    /// One attempt: connect if needed, send the request, relay the response.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &mut self,
        lease: &mut Lease,
        cluster: &ClusterSnapshot,
        out: &mut Vec<u8>,
        body: &mut RequestBody,
        (deadline, route_timeout): (&mut Deadline<'_>, Duration),
        answer_continue: bool,
        stop: &Stop,
    ) -> Result<Finished, Error> {
        if lease.conn.is_none() {
            let timeout = cluster.connect_timeout.min(deadline.left());
            match UpstreamConn::connect(lease.address(), timeout).await {
                Ok(conn) => {
                    cluster.stats.get(cx::UPSTREAM_CX_TOTAL).inc();
                    lease.conn = Some(conn);
                }
                Err(ConnectError::Timeout) => {
                    cluster.stats.get(cx::UPSTREAM_CX_CONNECT_TIMEOUT).inc();
                    return Err(Error::new(ErrorKind::ConnectTimeout, Side::Upstream));
                }
                Err(ConnectError::Io(e)) => {
                    cluster.stats.get(cx::UPSTREAM_CX_CONNECT_FAIL).inc();
                    let error = Error::new(ErrorKind::ConnectFailed, Side::Upstream);
                    return Err(error.because(Cause::of_error(&e)));
                }
            }
        }
        let Some(conn) = lease.conn.as_mut() else {
            return Err(Error::new(ErrorKind::ConnectFailed, Side::Upstream));
        };

        // The head and the buffered body. A write error here is taken as "not written":
        // a stale pooled connection fails its first write (EPIPE/ECONNRESET) before the
        // origin could have seen anything.
        let (result, back) = match deadline.within(conn.write_all(std::mem::take(out))).await {
            Ok(r) => r,
            Err(expired) => return Err(deadline.error(expired, false, false)),
        };
        *out = back;
        if let Err(e) = result {
            return Err(upstream_reset(false, false, Cause::of_error(&e)));
        }
        if let RequestBody::Held(n) = *body {
            self.write_buffered(conn, n, deadline).await?;
        }

        if matches!(body, RequestBody::Length(_) | RequestBody::Chunked(_)) {
            if answer_continue {
                let (result, _) = match deadline.within(self.stream.write_all(CONTINUE)).await {
                    Ok(r) => r,
                    Err(expired) => return Err(deadline.error(expired, true, false)),
                };
                if let Err(e) = result {
                    return Err(client_gone(true, false, Cause::of_error(&e)));
                }
            }
            self.pump_request_body(conn, body, out, deadline).await?;
        }
        deadline.request_complete(route_timeout);
        self.relay_response(conn, out, deadline, answer_continue, stop)
            .await
    }

    /// Writes the `n` body bytes at `buf[start..]` to the upstream, leaving them there.
    /// Zero copy: the read chunk itself goes to the kernel for the write.
    async fn write_buffered(
        &mut self,
        conn: &mut UpstreamConn,
        n: usize,
        deadline: &mut Deadline<'_>,
    ) -> Result<(), Error> {
        let chunk = std::mem::take(&mut self.buf);
        let slice = chunk.slice(self.start..self.start + n);
        let (result, slice) = match deadline.within(conn.write_all(slice)).await {
            Ok(done) => done,
            Err(expired) => {
                // The buffer stays with the cancelled write; the connection closes.
                self.start = 0;
                return Err(deadline.error(expired, true, false));
            }
        };
        self.buf = slice.into_inner();
        result.map_err(|e| upstream_reset(true, false, Cause::of_error(&e)))?;
        Ok(())
    }

    /// Streams the rest of the request body from the client to the upstream.
    async fn pump_request_body(
        &mut self,
        conn: &mut UpstreamConn,
        body: &mut RequestBody,
        out: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
    ) -> Result<(), Error> {
        loop {
            // Bytes left in the read buffer (they did not fit in the write chunk) go first.
            let buffered = self.start < self.buf.len();
            match body {
                RequestBody::Complete | RequestBody::Held(_) => return Ok(()),
                RequestBody::Length(remaining) => {
                    if !buffered {
                        self.read_body(deadline).await?;
                    }
                    let available = self.buf.len() - self.start;
                    let take = usize::try_from(*remaining).map_or(available, |r| r.min(available));
                    self.write_buffered(conn, take, deadline).await?;
                    self.start += take;
                    self.count_received(take as u64);
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        *body = RequestBody::Complete;
                    }
                }
                RequestBody::Chunked(payload) => {
                    if !buffered {
                        self.read_body(deadline).await?;
                    }
                    out.clear();
                    let decoder = &mut self.request_decoder;
                    let (consumed, done) =
                        reframe(decoder, &self.buf[self.start..], out, false, payload).map_err(
                            |e| Error {
                                request_written: true,
                                ..Error::new(ErrorKind::BadRequestBody(e.status()), Side::Client)
                            },
                        )?;
                    self.start += consumed;
                    self.count_received(consumed as u64);
                    let payload = *payload;
                    if let Err(e) = self.check_body_size(payload) {
                        return Err(Error {
                            request_written: true,
                            ..e
                        });
                    }
                    if !out.is_empty() {
                        let write = deadline.within(conn.write_all(std::mem::take(out)));
                        let (result, back) = match write.await {
                            Ok(done) => done,
                            Err(expired) => return Err(deadline.error(expired, true, false)),
                        };
                        *out = back;
                        if let Err(e) = result {
                            return Err(upstream_reset(true, false, Cause::of_error(&e)));
                        }
                    }
                    if done {
                        *body = RequestBody::Complete;
                    }
                }
            }
        }
    }

    /// Reads the response (relaying or dropping 1xx) and forwards it to the client.
    async fn relay_response(
        &mut self,
        conn: &mut UpstreamConn,
        out: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
        answer_continue: bool,
        stop: &Stop,
    ) -> Result<Finished, Error> {
        let l = self.listener;
        let mut ubuf = self.worker.bufs.take();
        let result = async {
            let head_len = loop {
                let head_len = read_upstream_head(conn, &mut ubuf, &l.limits, deadline).await?;
                http1::parse_response(
                    &ubuf[..head_len],
                    self.request.method,
                    &l.limits,
                    &mut self.response,
                )
                .map_err(|_| Error {
                    request_written: true,
                    ..Error::new(ErrorKind::BadResponse, Side::Upstream)
                })?;
                match self.response.status {
                    // ringway strips Upgrade, so a switch of protocols was never asked for.
                    101 => {
                        return Err(Error {
                            request_written: true,
                            ..Error::new(ErrorKind::BadResponse, Side::Upstream)
                        })
                    }
                    100 if answer_continue => {}
                    // An HTTP/1.0 client must never see an interim response (RFC 9110
                    // 15.2): it would take it for the answer.
                    100..=199 if self.request.version == Version::Http10 => {}
                    100..=199 => {
                        // Interim responses are rare: their own buffer keeps `out` (the
                        // request, for a retry) intact.
                        let mut interim = Vec::with_capacity(head_len + 16);
                        write_status_line(&self.response, &ubuf, &mut interim);
                        self.response.append_fields(&ubuf, &mut interim);
                        let (result, _) =
                            match deadline.within(self.stream.write_all(interim)).await {
                                Ok(done) => done,
                                Err(expired) => return Err(deadline.error(expired, true, false)),
                            };
                        if let Err(e) = result {
                            return Err(client_gone(true, false, Cause::of_error(&e)));
                        }
                    }
                    _ => break head_len,
                }
                ubuf.drain(..head_len);
            };
            self.send_response(conn, &mut ubuf, head_len, out, deadline, stop)
                .await
        }
        .await;
        self.worker.bufs.give(ubuf);
        result
    }

    /// Sends the final response head and streams its body.
    async fn send_response(
        &mut self,
        conn: &mut UpstreamConn,
        ubuf: &mut Vec<u8>,
        head_len: usize,
        out: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
        stop: &Stop,
    ) -> Result<Finished, Error> {
        let l = self.listener;
        let status = self.response.status;
        let head = &ubuf[..head_len];
        self.response.strip_hop_by_hop(head);
        let framing = self.response.framing;
        let old_client = self.request.version == Version::Http10;
        // An HTTP/1.0 client cannot read chunked framing: it gets the payload and the
        // end of the connection marks the end of the body.
        let raw_chunks = framing == ResponseFraming::Chunked && old_client;
        let close = !self.request.keep_alive
            || old_client
            || stop.is_stopped()
            || l.is_retired()
            || framing == ResponseFraming::CloseDelimited;
        {
            let overlay = &mut self.response.overlay;
            if framing == ResponseFraming::Chunked && !raw_chunks {
                let _ = overlay.add(b"transfer-encoding", b"chunked");
            }
            if close {
                let _ = overlay.add(b"connection", b"close");
            }
            if !self.response.has_date {
                overlay.add_valid(b"date", &self.worker.clock.date());
            }
            if let Some(server) = &l.proxy.server_header {
                for (index, header) in self.response.headers.iter().enumerate() {
                    if header.is(head, "server") {
                        overlay.remove(index);
                    }
                }
                let _ = overlay.add(b"server", server.as_bytes());
            }
            if let Some(via) = &l.proxy.via {
                self.scratch.clear();
                self.scratch.push_str("1.1 ");
                self.scratch.push_str(via);
                let _ = overlay.add(b"via", self.scratch.as_bytes());
            }
        }
        out.clear();
        write_status_line(&self.response, head, out);
        self.response.append_fields(head, out);
        let keep_alive = keep_alive_timeout(self.response.header(head, "keep-alive"));

        // Body bytes that came with the head go out in the same write, as far as they fit.
        let mut pos = head_len;
        let mut remaining = 0u64;
        let room = out.capacity().saturating_sub(out.len());
        let mut done = match framing {
            ResponseFraming::None => true,
            ResponseFraming::ContentLength(n) => {
                let available = ubuf.len() - pos;
                let take = usize::try_from(n).map_or(available, |n| n.min(available));
                let copy = take.min(room);
                out.extend_from_slice(&ubuf[pos..pos + copy]);
                pos += copy;
                remaining = n - copy as u64;
                remaining == 0
            }
            ResponseFraming::Chunked => {
                let decoder = &mut self.response_decoder;
                decoder.reset();
                let mut payload = 0;
                let (consumed, finished) =
                    reframe(decoder, &ubuf[pos..], out, raw_chunks, &mut payload)
                        .map_err(|_| bad_response_body(false))?;
                pos += consumed;
                finished
            }
            ResponseFraming::CloseDelimited => {
                let copy = (ubuf.len() - pos).min(room);
                out.extend_from_slice(&ubuf[pos..pos + copy]);
                pos += copy;
                false
            }
        };
        let mut sent = out.len() as u64;
        let (result, back) = match deadline
            .within(self.stream.write_all(std::mem::take(out)))
            .await
        {
            Ok(done) => done,
            Err(expired) => return Err(deadline.error(expired, true, true)),
        };
        *out = back;
        if let Err(e) = result {
            return Err(client_gone(true, true, Cause::of_error(&e)));
        }
        l.http_stats.get(rq::DOWNSTREAM_CX_TX_BYTES_TOTAL).add(sent);

        // The rest of the body, one read at a time, no more than the client's credit
        // allows (HTTP/1.1: one chunk per write). Bytes still buffered (they did not fit
        // in the last write) go out before anything more is read; should a round
        // consume nothing, the next one reads after what is there.
        let mut credit = OneChunk;
        let mut progress = true;
        while !done {
            ubuf.drain(..pos);
            pos = 0;
            if ubuf.is_empty() || !progress {
                if ubuf.len() == ubuf.capacity() {
                    ubuf.reserve(crate::buffers::CHUNK);
                }
                let len = ubuf.len();
                let end = ubuf.capacity().min(len + credit.available().max(1));
                let read = deadline
                    .within(conn.read(std::mem::take(ubuf).slice_mut(len..end)))
                    .await;
                let (result, slice) = match read {
                    Ok(done) => done,
                    Err(expired) => return Err(deadline.error(expired, true, true)),
                };
                *ubuf = slice.into_inner();
                match result {
                    Ok(0) if framing == ResponseFraming::CloseDelimited => break,
                    Ok(0) | Err(_) => return Err(upstream_reset(true, true, Cause::of(&result))),
                    Ok(_) => {}
                }
            }
            let to_client = match framing {
                ResponseFraming::ContentLength(_) => {
                    let take = usize::try_from(remaining).map_or(ubuf.len(), |r| r.min(ubuf.len()));
                    remaining -= take as u64;
                    done = remaining == 0;
                    pos = take;
                    take
                }
                ResponseFraming::CloseDelimited => {
                    pos = ubuf.len();
                    pos
                }
                _ => {
                    out.clear();
                    let mut payload = 0;
                    let decoder = &mut self.response_decoder;
                    let (consumed, finished) =
                        reframe(decoder, &ubuf[..], out, raw_chunks, &mut payload)
                            .map_err(|_| bad_response_body(true))?;
                    pos = consumed;
                    done = finished;
                    0
                }
            };
            progress = pos > 0;
            let write = if to_client > 0 {
                // Zero copy: the upstream chunk itself goes to the client.
                let slice = std::mem::take(ubuf).slice(..to_client);
                let (result, slice) = match deadline.within(self.stream.write_all(slice)).await {
                    Ok(done) => done,
                    Err(expired) => return Err(deadline.error(expired, true, true)),
                };
                *ubuf = slice.into_inner();
                result.map(|_| to_client)
            } else if !out.is_empty() {
                let write = deadline.within(self.stream.write_all(std::mem::take(out)));
                let (result, back) = match write.await {
                    Ok(done) => done,
                    Err(expired) => return Err(deadline.error(expired, true, true)),
                };
                *out = back;
                result
            } else {
                Ok(0)
            };
            match write {
                Ok(n) => {
                    credit.consume(n);
                    sent += n as u64;
                    l.http_stats
                        .get(rq::DOWNSTREAM_CX_TX_BYTES_TOTAL)
                        .add(n as u64);
                }
                Err(e) => return Err(client_gone(true, true, Cause::of_error(&e))),
            }
        }
        let leftover = pos < ubuf.len();
        let reusable =
            framing != ResponseFraming::CloseDelimited && self.response.keep_alive && !leftover;
        Ok(Finished {
            forwarded: Forwarded {
                next: if close { Next::Close } else { Next::KeepAlive },
                status,
                sent,
            },
            reusable,
            keep_alive,
        })
    }
}

fn bad_response_body(started: bool) -> Error {
    Error {
        request_written: true,
        response_started: started,
        ..Error::new(ErrorKind::BadResponse, Side::Upstream)
    }
}

/// Reads from the upstream until `buf` holds a complete response head.
async fn read_upstream_head(
    conn: &mut UpstreamConn,
    buf: &mut Vec<u8>,
    limits: &http1::Limits,
    deadline: &mut Deadline<'_>,
) -> Result<usize, Error> {
    let mut scanner = HeadScanner::new();
    loop {
        if !buf.is_empty() {
            match scanner.scan(buf, limits) {
                Ok(Some(head_len)) => return Ok(head_len),
                Ok(None) => {}
                Err(_) => {
                    return Err(Error {
                        request_written: true,
                        ..Error::new(ErrorKind::BadResponse, Side::Upstream)
                    })
                }
            }
        }
        if buf.len() == buf.capacity() {
            buf.reserve(crate::buffers::CHUNK);
        }
        let len = buf.len();
        let read = deadline
            .within(conn.read(std::mem::take(buf).slice_mut(len..)))
            .await;
        let (result, slice) = match read {
            Ok(done) => done,
            Err(expired) => return Err(deadline.error(expired, true, false)),
        };
        *buf = slice.into_inner();
        match result {
            Ok(0) | Err(_) => return Err(upstream_reset(true, false, Cause::of(&result))),
            Ok(_) => {}
        }
    }
}

/// `HTTP/1.1` and the upstream's status code and reason: a proxy sends its own version.
fn write_status_line(response: &http1::Response, head: &[u8], out: &mut Vec<u8>) {
    let line = response.status_line().get(head);
    out.extend_from_slice(b"HTTP/1.1");
    // The codec checked the line is `HTTP/d.d SP ...`.
    out.extend_from_slice(line.get(8..).unwrap_or(b" 502 \r\n"));
}

/// What re-framing adds to one data piece: its size line (at most 16 hex digits and
/// CRLF) and the CRLF after the data.
const PIECE_FRAMING: usize = 18 + ChunkedEncoder::CHUNK_END.len();

/// Decodes chunked bytes from `input`, appending either re-framed chunks or (with
/// `raw`) the bare payload to `out`, as far as `out` has room: the decoder is fed at
/// most the room less [`PIECE_FRAMING`] at a time and yields at most one data piece per
/// call, so `out` does not grow (it can only when trailers that came in earlier reads
/// are written at the end, which is rare). Returns the bytes consumed (fewer than
/// `input.len()` only when the body ended or `out` is full) and whether the body ended;
/// adds the payload size to `payload`.
fn reframe(
    decoder: &mut ChunkedDecoder,
    input: &[u8],
    out: &mut Vec<u8>,
    raw: bool,
    payload: &mut u64,
) -> Result<(usize, bool), http1::ParseError> {
    if out.is_empty() && out.capacity() <= PIECE_FRAMING {
        // Never the case with a pool chunk; room for progress all the same.
        out.reserve(crate::buffers::CHUNK);
    }
    let mut pos = 0;
    loop {
        let room = out.capacity() - out.len();
        let window = input.len().min(pos + room.saturating_sub(PIECE_FRAMING));
        let (consumed, event) = decoder.decode(&input[pos..window])?;
        match event {
            Some(ChunkEvent::Data(range)) => {
                let data = &input[pos + range.start..pos + range.end];
                *payload += data.len() as u64;
                if !raw {
                    out.extend_from_slice(ChunkedEncoder::size_line(data.len() as u64).as_ref());
                }
                out.extend_from_slice(data);
                if !raw {
                    out.extend_from_slice(ChunkedEncoder::CHUNK_END);
                }
            }
            Some(ChunkEvent::Trailers) => {}
            Some(ChunkEvent::Done) => {
                if !raw {
                    out.extend_from_slice(ChunkedEncoder::LAST_CHUNK);
                    out.extend_from_slice(decoder.trailers());
                    out.extend_from_slice(ChunkedEncoder::END);
                }
                return Ok((pos + consumed, true));
            }
            None if consumed == 0 => return Ok((pos, false)),
            None => {}
        }
        pos += consumed;
    }
}

/// The origin's `Keep-Alive: timeout=N`, less a second of margin so that ringway stops
/// using the connection before the origin closes it.
fn keep_alive_timeout(value: Option<&[u8]>) -> Option<Duration> {
    let value = std::str::from_utf8(value?).ok()?;
    value.split(',').find_map(|param| {
        let (name, secs) = param.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("timeout") {
            return None;
        }
        let secs: u64 = secs.trim().parse().ok()?;
        Some(Duration::from_secs(secs.saturating_sub(1)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_timeouts_leave_a_margin() {
        assert_eq!(
            keep_alive_timeout(Some(b"timeout=5, max=100")),
            Some(Duration::from_secs(4))
        );
        assert_eq!(keep_alive_timeout(Some(b"max=100")), None);
        assert_eq!(keep_alive_timeout(Some(b"timeout=x")), None);
        assert_eq!(keep_alive_timeout(None), None);
    }

    #[test]
    fn reframing_never_grows_the_write_chunk() {
        let limits = http1::Limits::default();
        let mut wire = Vec::new();
        for (i, len) in [100usize, 3000, 1, 70].into_iter().enumerate() {
            wire.extend_from_slice(format!("{len:x};e=1\r\n").as_bytes());
            wire.extend(std::iter::repeat_n(b'a' + i as u8, len));
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\nX-T: 1\r\n\r\nNEXT");
        let payload_in = crate::http1::fuzzing::decode_all(&wire, wire.len(), &limits).unwrap();
        for capacity in [PIECE_FRAMING + 1, 64, 500, 4096] {
            let mut d = ChunkedDecoder::new(&limits);
            let mut out = Vec::with_capacity(capacity);
            // A head already in the chunk leaves less room for the first round.
            out.extend_from_slice(&[b'h'; 10][..10.min(capacity / 2)]);
            let mut all = Vec::new();
            let (mut pos, mut payload, mut done) = (0, 0, false);
            while !done {
                let (consumed, finished) =
                    reframe(&mut d, &wire[pos..], &mut out, false, &mut payload).unwrap();
                assert_eq!(out.capacity(), capacity, "the chunk grew");
                assert!(consumed > 0 || finished || !out.is_empty());
                pos += consumed;
                done = finished;
                all.extend_from_slice(&out);
                out.clear();
            }
            assert_eq!(&wire[pos..], b"NEXT", "capacity {capacity}");
            let head = 10.min(capacity / 2);
            let decoded = crate::http1::fuzzing::decode_all(&all[head..], 7, &limits).unwrap();
            assert_eq!(decoded.0, payload_in.0, "capacity {capacity}");
            assert_eq!(decoded.1, b"X-T: 1\r\n");
            assert_eq!(payload, 3171);
        }
    }

    #[test]
    fn chunked_bodies_are_reframed_or_unwrapped() {
        let limits = http1::Limits::default();
        let wire = b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut out = Vec::new();
        let mut payload = 0;
        let mut d = ChunkedDecoder::new(&limits);
        let (consumed, done) = reframe(&mut d, wire, &mut out, false, &mut payload).unwrap();
        assert!(done);
        assert_eq!(&wire[consumed..], b"NEXT");
        assert_eq!(out, b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n");
        assert_eq!(payload, 5);
        let mut raw = Vec::new();
        let mut d = ChunkedDecoder::new(&limits);
        reframe(&mut d, wire, &mut raw, true, &mut payload).unwrap();
        assert_eq!(raw, b"abcde");
        // Split input: nothing is lost between calls.
        let mut out = Vec::new();
        let mut d = ChunkedDecoder::new(&limits);
        let (a, done_a) = reframe(&mut d, &wire[..6], &mut out, false, &mut payload).unwrap();
        assert!(!done_a);
        let (_, done_b) = reframe(&mut d, &wire[a..], &mut out, false, &mut payload).unwrap();
        assert!(done_b);
        assert_eq!(out, b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n");
    }
}
