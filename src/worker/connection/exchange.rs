//! One attempt at an exchange: connect if needed, send the request, relay the response.
//!
//! - **Heads** go out in one write with the body bytes that came with them, so a small
//!   request or response costs one write each way.
//! - **Early answers.** While a request body is still streaming up, a read of the
//!   response is armed on the connection's read half: an upstream that answers before it
//!   has read the body (a 401 or 413 to a large upload, a 417) is heard at once. Its final
//!   response is forwarded, the rest of the body is not sent, and both connections close
//!   after it (the client's with a lingering close). Interim responses that arrive then
//!   are relayed once the body is up. With `expect_continue: forward`, the upstream's
//!   `100 Continue` (or its final answer) is awaited before the body, and relayed to the
//!   client, which is waiting for it; a client that sends its body anyway is served too.
//! - **Responses** are re-headed (`HTTP/1.1`, hop-by-hop fields removed, `date` added when
//!   missing, `connection: close` when ringway closes) and streamed to the client one
//!   chunk at a time, the upstream chunk itself lent to the kernel (zero copy), no more
//!   than the client's credit allows; chunked bodies are re-framed.
//! - The connection goes back to the pool only when the response was read to its end.

use std::time::{Duration, Instant};

use monoio::{
    buf::{IoBuf, IoBufMut},
    io::{AsyncReadRent, AsyncWriteRentExt, CancelableAsyncReadRent, Canceller},
};

use super::{
    body::{reframe, RequestBody},
    outcome::{Forwarded, Next},
    retry, Connection,
};
use crate::worker::{deadline::Deadline, stop::Stop};
use crate::{
    error::{Cause, Error, ErrorKind, Side},
    filter::{
        stages::{self, Delivery},
        Chain, ResponseHead,
    },
    flow::{Credit, OneChunk},
    http1::{self, HeadScanner, ResponseFraming, Version},
    proxy_protocol,
    router::Route,
    stats::names::{cluster as cx, host as hx, http as rq},
    upstream::{
        conn::{Closer, ConnectError, ReadHalf, UpstreamConn},
        pool::Lease,
        ClusterSnapshot,
    },
};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the response left behind.
pub(super) struct Finished {
    pub(super) forwarded: Forwarded,
    /// The upstream connection may go back to the pool.
    pub(super) reusable: bool,
    /// The origin's `Keep-Alive: timeout=`.
    pub(super) keep_alive: Option<Duration>,
}

/// What the upstream had said when the request body was up.
enum Sent {
    /// Nothing final yet: read the response as usual.
    Body,
    /// A final response arrived before the body was all sent: it is in the response
    /// buffer; forward it, then close both connections.
    AnsweredEarly,
}

impl Connection<'_> {
    /// One attempt: connect if needed, send the request, relay the response. A hedging
    /// request races its attempts still out for the response (`super::hedge`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn exchange(
        &mut self,
        lease: &mut Lease,
        (cluster, route): (&ClusterSnapshot, &Route),
        out: &mut Vec<u8>,
        body: &mut RequestBody,
        (deadline, route_timeout): (&mut Deadline<'_>, Duration),
        answer_continue: bool,
        (stop, chain): (&Stop, &Chain),
    ) -> Result<Finished, Error> {
        if lease.conn.is_none() {
            let timeout = cluster.connect_timeout.min(deadline.try_left());
            let connecting = Instant::now();
            let host = self.upstream.clone();
            // Counted as the connection is made, whether it then opens or not (Envoy's
            // pool counts a client when it creates it: a failed connect is in the
            // total and in `upstream_cx_connect_fail`).
            cluster.count_connect_start(host.as_deref());
            let connected = match &cluster.tls {
                None => UpstreamConn::connect(lease.address(), timeout).await,
                Some((Ok(connector), _)) => {
                    let tls = (connector, lease.hostname());
                    Box::pin(UpstreamConn::connect_tls(lease.address(), timeout, tls)).await
                }
                Some((Err(_), _)) => {
                    cluster.count_connect_failure(host.as_deref(), Closer::Local);
                    return Err(Error::new(ErrorKind::ConnectFailed, Side::Upstream));
                }
            };
            if let Err(e) = &connected {
                cluster.count_connect_failure(host.as_deref(), e.closer());
            }
            match connected {
                Ok(mut conn) => {
                    cluster.connect_ms.record(connecting.elapsed());
                    if let Some(tls) = conn.tls_negotiated() {
                        cluster.stats.get(cx::SSL_HANDSHAKE).inc();
                        if tls.resumed {
                            cluster.stats.get(cx::SSL_SESSION_REUSED).inc();
                        }
                    }
                    if let Some(host) = &host {
                        conn.count_active(host);
                    }
                    conn.hold(lease.permit.take());
                    if let Some(version) = cluster.proxy_protocol {
                        self.send_proxy_header(&mut conn, version, deadline).await?;
                    }
                    lease.conn = Some(conn);
                }
                Err(ConnectError::Timeout) => {
                    // A timeout is a connect failure too, as in Envoy.
                    cluster.stats.get(cx::UPSTREAM_CX_CONNECT_TIMEOUT).inc();
                    return Err(Error::new(ErrorKind::ConnectTimeout, Side::Upstream));
                }
                Err(ConnectError::Tls(e)) => {
                    use crate::tls::server::HandshakeFailure;
                    tracing::debug!(upstream = %lease.address(), error = %e, "upstream TLS handshake failed");
                    cluster
                        .stats
                        .get(match HandshakeFailure::of(&e) {
                            HandshakeFailure::ClientCert => cx::SSL_FAIL_VERIFY_ERROR,
                            HandshakeFailure::ClientSan => cx::SSL_FAIL_VERIFY_SAN,
                            _ => cx::SSL_CONNECTION_ERROR,
                        })
                        .inc();
                    let error = Error::new(ErrorKind::ConnectFailed, Side::Upstream);
                    return Err(error.because(Cause::of_error(&e)));
                }
                Err(ConnectError::Io(e)) => {
                    let error = Error::new(ErrorKind::ConnectFailed, Side::Upstream);
                    return Err(error.because(Cause::of_error(&e)));
                }
            }
        }
        let Some(conn) = lease.conn.as_mut() else {
            return Err(Error::new(ErrorKind::ConnectFailed, Side::Upstream));
        };
        // The attempt has its connection: Envoy's pool counts the request here
        // (`attachStreamToClient`, then the route's in `onPoolReady`), and its tracer
        // writes the context into the request's headers, which the access log prints.
        cluster.stats.get(cx::UPSTREAM_RQ_TOTAL).inc();
        conn.request_started();
        if let Some(host) = &self.upstream {
            host.count(hx::RQ_TOTAL);
        }
        self.route_stats.attempt();
        if self.trace.on {
            self.trace_injected_for_log();
        }

        // The head and the buffered body. A write error here is taken as "not written":
        // a stale pooled connection fails its first write (EPIPE/ECONNRESET) before the
        // origin could have seen anything.
        let (result, back) = match deadline.within(conn.write_all(std::mem::take(out))).await {
            Ok(r) => r,
            Err(expired) => return Err(deadline.error(expired, false, false)),
        };
        *out = back;
        if let Err(e) = result {
            return Err(Error::upstream_reset(false, false, Cause::of_error(&e)));
        }
        if let RequestBody::Held(n) = *body {
            self.write_buffered(&mut conn.split().1, n, deadline)
                .await?;
        }

        // A hedging request races its attempts out for the first good head (`hedge`);
        // the winner's connection is then in `lease` and its head in `ubuf`.
        let mut ubuf = if self.retry.hedging {
            self.race_hedged(lease, (cluster, route), deadline).await?
        } else {
            self.worker.bufs.take()
        };
        let Some(conn) = lease.conn.as_mut() else {
            return Err(Error::new(ErrorKind::ConnectFailed, Side::Upstream));
        };
        let sent = if matches!(body, RequestBody::Length(_) | RequestBody::Chunked(_)) {
            self.send_body(
                conn,
                (body, chain),
                out,
                &mut ubuf,
                deadline,
                answer_continue,
            )
            .await
        } else {
            Ok(Sent::Body)
        };
        let result = match sent {
            Ok(sent) => {
                deadline.request_complete(route_timeout);
                let early = matches!(sent, Sent::AnsweredEarly);
                // The client's body is all in (and up), unless the answer came first.
                self.request_whole = !early;
                self.relay_response(
                    conn,
                    &mut ubuf,
                    out,
                    deadline,
                    answer_continue,
                    (early, stop, chain, (cluster, route)),
                )
                .await
            }
            Err(e) => Err(e),
        };
        self.worker.bufs.give(ubuf);
        result
    }

    /// Opens a new upstream connection with a PROXY protocol header naming this
    /// connection's client (from a PROXY header it sent, or its peer) and the address it
    /// connected to. Only for clusters with `proxy_protocol`, whose connections are then
    /// never reused by another client's request (see `forward`).
    async fn send_proxy_header(
        &mut self,
        conn: &mut UpstreamConn,
        version: u8,
        deadline: &mut Deadline<'_>,
    ) -> Result<(), Error> {
        let local = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(
            self.stream.raw_fd(),
        )
        .ok()
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| std::net::SocketAddr::V4((*v4).into()))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| std::net::SocketAddr::V6((*v6).into()))
                })
        });
        let mut header = Vec::with_capacity(64);
        match (self.peer.ip(), local) {
            (Some(ip), Some(local)) => {
                let source = std::net::SocketAddr::new(ip, self.peer_port);
                match version {
                    1 => proxy_protocol::write_v1(source, local, &mut header),
                    _ => proxy_protocol::write_v2(source, local, &mut header),
                }
            }
            // A Unix-socket client has no address to tell.
            _ if version == 1 => header.extend_from_slice(b"PROXY UNKNOWN\r\n"),
            _ => proxy_protocol::write_v2_local(&mut header),
        }
        let (result, _) = match deadline.within(conn.write_all(header)).await {
            Ok(done) => done,
            Err(expired) => return Err(deadline.error(expired, false, false)),
        };
        result.map(|_| ()).map_err(|e| {
            let error = Error::new(ErrorKind::ConnectFailed, Side::Upstream);
            error.because(Cause::of_error(&e))
        })
    }

    /// Streams the rest of the request body up while a read of the response is armed,
    /// so that an answer that comes before the body is all sent is heard. Whatever the
    /// upstream sent by the time the body is up is left in `ubuf`.
    async fn send_body(
        &mut self,
        conn: &mut UpstreamConn,
        (body, chain): (&mut RequestBody, &Chain),
        out: &mut Vec<u8>,
        ubuf: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
        answer_continue: bool,
    ) -> Result<Sent, Error> {
        let (mut upstream_read, mut upstream_write) = conn.split();
        if answer_continue {
            let (result, _) = match deadline.within(self.stream.write_all(CONTINUE)).await {
                Ok(r) => r,
                Err(expired) => return Err(deadline.error(expired, true, false)),
            };
            if let Err(e) = result {
                return Err(Error::client_gone(true, false, Cause::of_error(&e)));
            }
            // Envoy charges the 100 its connection manager sends itself.
            self.charge_response(100);
        } else if self.request.expect_continue && self.start == self.buf.len() {
            // `expect_continue: forward`: the client waits for the upstream's 100 before
            // it sends the body, so the body cannot be waited for first. Boxed: this wait
            // is the largest state of an exchange and rare, and every connection's task
            // is as large as its largest state (one allocation on this path instead of
            // 340 bytes on every connection).
            let wait = Box::pin(self.await_continue(&mut upstream_read, ubuf, deadline));
            match wait.await? {
                Sent::AnsweredEarly => return Ok(Sent::AnsweredEarly),
                Sent::Body => {}
            }
        }
        let limits = &self.listener.limits;
        let mut watch = std::pin::pin!(watch_response(&mut upstream_read, ubuf, limits));
        let early = {
            let mut pump = std::pin::pin!(self.pump_request_body(
                &mut upstream_write,
                (body, chain),
                out,
                deadline
            ));
            monoio::select! {
                // The pump first: when the body's last write and the answer complete in
                // the same turn of the event loop (io_uring reaps both at once), the
                // answer came after the body, not early; a random pick would call it
                // early and close a connection that should stay open.
                biased;
                pumped = &mut pump => {
                    pumped?;
                    false
                }
                watched = &mut watch => {
                    watched?;
                    true
                }
            }
            // An unfinished pump is dropped here, with whatever it had in flight.
        };
        if !early {
            // The body is up; the watch goes on as the read of the response head (the
            // pump bounded the wait so far; from here the deadline does).
            return match deadline.within(&mut watch).await {
                Ok(watched) => watched.map(|()| Sent::Body),
                Err(expired) => Err(deadline.error(expired, true, false)),
            };
        }
        // Answered before the body was all sent: the rest is not sent, and the client
        // connection is closed after the answer, so its buffer only needs to be sane
        // (the pump's buffers went with its cancelled operations).
        self.start = 0;
        self.buf.clear();
        if out.capacity() == 0 {
            *out = self.worker.bufs.take();
        }
        Ok(Sent::AnsweredEarly)
    }

    /// Writes `out` (a response head, with whatever body came with it) to the client
    /// within the deadline, gives the chunk back in `out`, and counts the bytes sent.
    async fn send_to_client(
        &mut self,
        out: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
    ) -> Result<u64, Error> {
        let sent = out.len() as u64;
        let (result, back) = match deadline
            .within(self.stream.write_all(std::mem::take(out)))
            .await
        {
            Ok(done) => done,
            Err(expired) => return Err(deadline.error(expired, true, true)),
        };
        *out = back;
        if let Err(e) = result {
            return Err(Error::client_gone(true, true, Cause::of_error(&e)));
        }
        let stats = &self.listener.http_stats;
        stats.get(rq::DOWNSTREAM_CX_TX_BYTES_TOTAL).add(sent);
        Ok(sent)
    }

    /// `expect_continue: forward`, before the body: waits for the upstream's first
    /// response (relaying a 100 to the client, then returning for the body; a final
    /// answer is forwarded instead of the body) or for the client to send its body
    /// anyway, as clients do after a second.
    async fn await_continue(
        &mut self,
        upstream: &mut ReadHalf<'_>,
        ubuf: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
    ) -> Result<Sent, Error> {
        let method = self.request.method;
        let limits = &self.listener.limits;
        loop {
            // A cancellable read: if the client speaks first, the read is cancelled and
            // its outcome still taken, so bytes that raced the cancel are kept.
            let canceller = Canceller::new();
            let len = ubuf.len();
            if len == ubuf.capacity() {
                ubuf.reserve(crate::buffers::CHUNK);
            }
            let read =
                upstream.cancelable_read(std::mem::take(ubuf).slice_mut(len..), canceller.handle());
            let mut read = std::pin::pin!(read);
            let waited = deadline
                .within(async {
                    monoio::select! {
                        done = &mut read => Some(done),
                        _ = self.stream.readable(false) => None,
                    }
                })
                .await;
            let (result, slice) = match waited {
                Err(expired) => return Err(deadline.error(expired, true, false)),
                Ok(Some(done)) => done,
                Ok(None) => {
                    canceller.cancel();
                    let (result, slice) = read.await;
                    *ubuf = slice.into_inner();
                    return match result {
                        Ok(0) => Err(Error::upstream_reset(true, false, Cause::Closed)),
                        Ok(_) if final_head_in(ubuf, limits)? => Ok(Sent::AnsweredEarly),
                        _ => Ok(Sent::Body),
                    };
                }
            };
            *ubuf = slice.into_inner();
            match result {
                Ok(n) if n > 0 => {}
                _ => return Err(Error::upstream_reset(true, false, Cause::of(&result))),
            }
            if final_head_in(ubuf, limits)? {
                return Ok(Sent::AnsweredEarly);
            }
            // Relay the interim responses that are complete (the 100 among them); the
            // client sends its body once it has the 100.
            let mut relayed = false;
            while let Ok(Some(head_len)) = HeadScanner::new().scan(ubuf, limits) {
                http1::parse_response(&ubuf[..head_len], method, limits, &mut self.response)
                    .map_err(|_| Error::bad_response(false))?;
                self.relay_interim(ubuf, head_len, deadline).await?;
                ubuf.drain(..head_len);
                relayed = true;
            }
            if relayed {
                return Ok(Sent::Body);
            }
        }
    }

    /// Sends the interim response whose head is `ubuf[..head_len]` (parsed into
    /// `self.response`) to the client, unless it must not see it.
    async fn relay_interim(
        &mut self,
        ubuf: &[u8],
        head_len: usize,
        deadline: &mut Deadline<'_>,
    ) -> Result<(), Error> {
        // An HTTP/1.0 client must never see an interim response (RFC 9110 15.2): it
        // would take it for the answer.
        if self.request.version == Version::Http10 {
            return Ok(());
        }
        // Interim responses are rare: their own buffer keeps `out` (the request, for a
        // retry) intact.
        let mut interim = Vec::with_capacity(head_len + 16);
        write_status_line(&self.response, ubuf, &mut interim);
        self.response.append_fields(ubuf, &mut interim);
        let (result, _) = match deadline.within(self.stream.write_all(interim)).await {
            Ok(done) => done,
            Err(expired) => return Err(deadline.error(expired, true, false)),
        };
        result.map_err(|e| Error::client_gone(true, false, Cause::of_error(&e)))?;
        // Charged as Envoy's `encode1xxHeaders` charges one: its class and a completed
        // request, before the final response is charged again.
        self.charge_response(self.response.status);
        Ok(())
    }

    /// Reads the response (relaying or dropping 1xx) and forwards it to the client.
    /// `ubuf` may already hold its first bytes.
    async fn relay_response(
        &mut self,
        conn: &mut UpstreamConn,
        ubuf: &mut Vec<u8>,
        out: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
        answer_continue: bool,
        (early, stop, chain, (cluster, route)): (bool, &Stop, &Chain, (&ClusterSnapshot, &Route)),
    ) -> Result<Finished, Error> {
        let l = self.listener;
        let head_len = loop {
            let head_len = read_upstream_head(conn, ubuf, &l.limits, deadline).await?;
            http1::parse_response(
                &ubuf[..head_len],
                self.request.method,
                &l.limits,
                &mut self.response,
            )
            .map_err(|_| Error::bad_response(false))?;
            match self.response.status {
                101 if self.upgrading => {
                    return self
                        .switch_protocols(ubuf, head_len, out, deadline, chain)
                        .await
                }
                // Without an allowed upgrade ringway stripped Upgrade: never asked for.
                101 => return Err(Error::bad_response(false)),
                100 if answer_continue => {}
                100..=199 => self.relay_interim(ubuf, head_len, deadline).await?,
                _ => break head_len,
            }
            ubuf.drain(..head_len);
        };
        if self.response.ends_connection {
            cluster.stats.get(cx::UPSTREAM_CX_CLOSE_NOTIFY).inc();
        }
        // The retry policy sees the answer before the client does (`retry`); most
        // answers are ruled out by their status alone.
        let status = self.response.status;
        let judged = !early
            && self
                .retry
                .plan
                .is_some_and(|p| retry::may_retry(&p, status));
        if judged && self.retry_response(cluster, route, &ubuf[..head_len], deadline) {
            cluster.charge_retried(status);
            return Err(Error {
                request_written: true,
                ..Error::new(ErrorKind::RetriedResponse, Side::Upstream)
            });
        }
        if route
            .resilience
            .as_deref()
            .is_some_and(|r| r.attempt_count.response)
        {
            self.attempt_count_line();
        }
        self.send_response(conn, ubuf, head_len, out, deadline, (early, stop, chain))
            .await
    }

    /// Envoy's `x-envoy-attempt-count` on the response (`include_attempt_count_in_response`).
    #[inline(never)]
    fn attempt_count_line(&mut self) {
        use std::io::Write;
        let lines = &mut self.filters.reply_lines;
        let _ = write!(lines, "x-envoy-attempt-count: {}\r\n", self.retry.attempt);
    }

    /// Relays a `101 Switching Protocols` answering an allowed upgrade: its head (with
    /// `connection: upgrade` and its `upgrade`, which are hop-by-hop yet what the switch
    /// is about), and whatever the upstream sent after it, which already belongs to the
    /// new protocol. The connection then becomes a tunnel (`super::super::tunnel`).
    async fn switch_protocols(
        &mut self,
        ubuf: &[u8],
        head_len: usize,
        out: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
        chain: &Chain,
    ) -> Result<Finished, Error> {
        let head = &ubuf[..head_len];
        let protocol = self.response.header(head, "upgrade");
        self.response.strip_hop_by_hop(head);
        self.response.overlay.add_line(b"connection: upgrade\r\n");
        if let Some(protocol) = protocol {
            // Checked by the response parser.
            self.response.overlay.add_unchecked(b"upgrade", protocol);
        }
        if chain.edits_responses() {
            let head_view = &mut ResponseHead::new(&mut self.response, head);
            chain.on_response(head_view, &mut self.filters);
        }
        self.write_response_head(head, (false, false), deadline, out);
        out.extend_from_slice(&ubuf[head_len..]);
        let sent = self.send_to_client(out, deadline).await?;
        Ok(Finished {
            forwarded: Forwarded {
                next: Next::Tunnel,
                status: 101,
                sent,
            },
            reusable: false,
            keep_alive: None,
        })
    }

    /// Sends the final response head and streams its body.
    /// Writes the client's response head into `out`: the status line, then the fixed
    /// response stage (`stages::downstream_response`) with how the body is delivered
    /// (`chunked`, `close`). Not async, so none of its locals lives in the task.
    fn write_response_head(
        &mut self,
        head: &[u8],
        (chunked, close): (bool, bool),
        deadline: &Deadline<'_>,
        out: &mut Vec<u8>,
    ) {
        let delivery = Delivery {
            chunked,
            close,
            upstream_service_time: self.upstream_service_time(deadline),
        };
        let date_line = self.worker.clock.date_line();
        out.clear();
        write_status_line(&self.response, head, out);
        let proxy = &self.listener.proxy;
        stages::downstream_response(&mut self.response, head, delivery, &date_line, proxy, out);
        self.head_sent = out.len() as u64;
        if let Some(log) = &mut self.log {
            log.capture_response(out);
        }
    }

    /// Envoy's `x-envoy-upstream-service-time` for the response head now read: recorded
    /// for the access log, and returned when the listener adds Envoy's headers.
    fn upstream_service_time(&mut self, deadline: &Deadline<'_>) -> Option<Duration> {
        // The clock is read only when something prints it.
        let logged = self.log.as_ref().is_some_and(|log| log.is_envoy_format());
        if !self.listener.proxy.envoy_headers && !logged {
            return None;
        }
        let elapsed = deadline.since_request_complete()?;
        if let Some(log) = &mut self.log {
            log.upstream_service_time(elapsed);
        }
        self.listener.proxy.envoy_headers.then_some(elapsed)
    }

    async fn send_response(
        &mut self,
        conn: &mut UpstreamConn,
        ubuf: &mut Vec<u8>,
        head_len: usize,
        out: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
        (early, stop, chain): (bool, &Stop, &Chain),
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
        // An early answer leaves the rest of the request body unread on both sides.
        let close = early
            || !self.request.keep_alive
            || old_client
            || framing == ResponseFraming::CloseDelimited
            || self.aged();
        let close = super::drain_closes(l, stop) || close;
        // The route's response-side filters, then the fixed response stage (`filter`).
        if chain.edits_responses() {
            if let Some(upstream) = &self.upstream {
                let address = &mut self.filters.upstream;
                address.clear();
                address.extend_from_slice(upstream.pool.address_text().as_bytes());
            }
            let head_view = &mut ResponseHead::new(&mut self.response, head);
            chain.on_response(head_view, &mut self.filters);
        }
        if !self.filters.reply_lines.is_empty() {
            self.drop_replaced_response_fields(head);
            self.add_reply_lines();
        }
        self.trace_response_head(head);
        if self
            .upstream
            .as_ref()
            .is_some_and(|h| h.checked_in.is_some())
        {
            self.immediate_health_check_fail(head);
        }
        let chunked = framing == ResponseFraming::Chunked && !raw_chunks;
        self.write_response_head(head, (chunked, close), deadline, out);
        let keep_alive = keep_alive_timeout(self.response.header(head, "keep-alive"));

        // Body bytes that came with the head go out in the same write, as far as they fit.
        let mut pos = head_len;
        let mut remaining = 0u64;
        // A chunked body's framing written (sizes, line ends, trailers): not counted as
        // body bytes sent, as Envoy counts the payload.
        let mut chunk_framing = 0u64;
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
                let before = out.len();
                let (consumed, finished) = reframe(
                    decoder,
                    &ubuf[pos..],
                    out,
                    raw_chunks,
                    (&mut payload, &mut |_, _| {}),
                )
                .map_err(|_| Error::bad_response(false))?;
                pos += consumed;
                chunk_framing += (out.len() - before) as u64 - payload;
                finished
            }
            ResponseFraming::CloseDelimited => {
                let copy = (ubuf.len() - pos).min(room);
                out.extend_from_slice(&ubuf[pos..pos + copy]);
                pos += copy;
                false
            }
        };
        self.pace(out.len() as u64).await;
        let mut sent = self.send_to_client(out, deadline).await?;

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
                    Ok(0) if framing == ResponseFraming::CloseDelimited => {
                        // The endpoint ended the body by closing: its close.
                        conn.closing(Closer::Remote, false);
                        break;
                    }
                    Ok(0) | Err(_) => {
                        return Err(Error::upstream_reset(true, true, Cause::of(&result)))
                    }
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
                    let (consumed, finished) = reframe(
                        decoder,
                        &ubuf[..],
                        out,
                        raw_chunks,
                        (&mut payload, &mut |_, _| {}),
                    )
                    .map_err(|_| Error::bad_response(true))?;
                    pos = consumed;
                    done = finished;
                    chunk_framing += out.len() as u64 - payload;
                    0
                }
            };
            progress = pos > 0;
            let next = if to_client > 0 { to_client } else { out.len() };
            self.pace(sent + next as u64).await;
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
                Err(e) => return Err(Error::client_gone(true, true, Cause::of_error(&e))),
            }
        }
        let leftover = pos < ubuf.len();
        if early {
            // Answered before the request was all sent: closed with it unfinished.
            conn.closing(Closer::Local, true);
        }
        let reusable = !early
            && framing != ResponseFraming::CloseDelimited
            && self.response.keep_alive
            && !leftover;
        Ok(Finished {
            forwarded: Forwarded {
                next: if close { Next::Close } else { Next::KeepAlive },
                status,
                sent: sent.saturating_sub(chunk_framing),
            },
            reusable,
            keep_alive,
        })
    }
}

/// Reads from the upstream into `ubuf` until it holds a complete final response head
/// (interim ones before it stay there, to be relayed). Armed while the request body
/// streams up, it hears an early answer; once the body is up, it is the read of the
/// response head.
pub(super) async fn watch_response(
    upstream: &mut ReadHalf<'_>,
    ubuf: &mut Vec<u8>,
    limits: &http1::Limits,
) -> Result<(), Error> {
    loop {
        if final_head_in(ubuf, limits)? {
            return Ok(());
        }
        let len = ubuf.len();
        if len == ubuf.capacity() {
            ubuf.reserve(crate::buffers::CHUNK);
        }
        let (result, slice) = upstream.read(std::mem::take(ubuf).slice_mut(len..)).await;
        *ubuf = slice.into_inner();
        match result {
            Ok(n) if n > 0 => {}
            _ => return Err(Error::upstream_reset(true, false, Cause::of(&result))),
        }
    }
}

/// Whether `buf` holds a complete final (non-1xx) response head, after any complete
/// interim ones. Only the status codes are read here (a head that does not look like a
/// response counts as final, so that the full parse that follows reports it); nothing is
/// allocated.
pub(super) fn final_head_in(buf: &[u8], limits: &http1::Limits) -> Result<bool, Error> {
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        match HeadScanner::new().scan(rest, limits) {
            Ok(Some(head_len)) => {
                // `HTTP/1.x NNN ...`, possibly after empty lines.
                let line = rest
                    .iter()
                    .position(|&b| b != b'\r' && b != b'\n')
                    .unwrap_or(0);
                let interim = rest.get(line..line + 12).is_some_and(|l| {
                    l.starts_with(b"HTTP/1.") && l[8] == b' ' && l[9] == b'1' && &l[9..12] != b"101"
                });
                if !interim {
                    return Ok(true);
                }
                at += head_len;
            }
            Ok(None) => return Ok(false),
            Err(_) => return Err(Error::bad_response(false)),
        }
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
                Err(_) => return Err(Error::bad_response(false)),
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
            Ok(0) | Err(_) => return Err(Error::upstream_reset(true, false, Cause::of(&result))),
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

/// The origin's `Keep-Alive: timeout=N`, less a second of margin so that ringway stops
/// using the connection before the origin closes it.
fn keep_alive_timeout(value: Option<&[u8]>) -> Option<Duration> {
    let secs = http1::header::keep_alive_timeout(value?)?;
    Some(Duration::from_secs(secs.saturating_sub(1)))
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
    fn only_a_final_head_counts_as_an_early_answer() {
        let limits = http1::Limits::default();
        let ok = |raw: &[u8]| final_head_in(raw, &limits).unwrap();
        assert!(!ok(b""));
        assert!(!ok(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(!ok(
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 40"
        ));
        assert!(ok(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 No\r\n\r\n"));
        assert!(ok(b"HTTP/1.1 413 Too Large\r\ncontent-length: 0\r\n\r\n"));
        // A 101 or something unparsable counts as final: the full parse reports it.
        assert!(ok(b"HTTP/1.1 101 Switching\r\n\r\n"));
        assert!(ok(b"HTTP/1.1 abc\r\n\r\n"));
    }
}
