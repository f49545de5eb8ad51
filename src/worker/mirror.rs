//! Shadow traffic: a copy of a share of a route's requests to other clusters (Envoy's
//! `request_mirror_policies`), fire and forget.
//!
//! `forward` calls [`mirror`] once, when the upstream head is built and the body that
//! arrived with it is known; routes without mirrors pay one emptiness check. For each of
//! the route's mirrors whose share the request's draw hits (one draw from the worker's
//! generator per request, shared by its mirrors as Envoy's `stable_random`), the request
//! as forwarded (head with the overlay applied, Host suffixed `-shadow` before its port
//! as Envoy's `shadowAppendedHost` does, unless `keep_host`; then the body) is copied
//! into one buffer and a task spawned on the same worker sends it over the mirror
//! cluster's own pools and reads the response to its end, discarding it. The client's
//! exchange never waits for, nor learns of, the shadow: the task owns everything it uses
//! (`Rc`s of the snapshot's clusters, the copy), so it may outlive the connection.
//!
//! - **What it costs.** Per mirrored request: the copy (which is also the buffer the
//!   response is read into), the spawned task, and the response's header list
//!   (reserved once at the listener's header limit): 3 allocations on a pooled
//!   connection, plus a connect's when a new one is opened. Requests not mirrored
//!   allocate nothing here.
//! - **Bodies.** Only a body ringway holds in full when the head goes out
//!   (`RequestBody::Complete` or `Held`: no body, or one that arrived with the head) is
//!   mirrored. Envoy also mirrors a streamed body (it tees it to the shadow as it
//!   arrives); ringway does not tee the stream: such a request is not mirrored and is
//!   counted in the mirror cluster's `upstream_rq_shadow_skipped`. Upgrades are never
//!   mirrored.
//! - **Bounds.** At most [`MAX_IN_FLIGHT`] shadow requests per worker are in flight;
//!   past that a mirrored request is skipped and counted the same way, so a slow shadow
//!   cluster cannot make memory grow without bound. Each is limited by the route's
//!   `timeout` (connect, send, response and body together), and the connect by the
//!   cluster's `connect_timeout`. A mirror cluster that speaks PROXY protocol is
//!   skipped too (its header would name the client of a connection the task does not
//!   have).
//! - **Stats.** The shadow is a request to the mirror cluster like any other: its
//!   `upstream_rq_total`, `upstream_rq_active`, `upstream_rq_completed`,
//!   `upstream_rq_<class>`, `upstream_rq_time`, `upstream_rq_timeout`,
//!   `upstream_rq_pending_overflow`, connection and TLS counters, and its hosts'
//!   counters; it holds a unit of the cluster's `max_requests` circuit breaker (default
//!   priority) while under way, and its connections count against `max_connections`. Failures are only counted: nothing is retried, and the outlier detector
//!   is not told (a shadow cluster's health is not the route's).

use std::{cell::Cell, rc::Rc, time::Instant};

use monoio::{
    buf::IoBufMut,
    io::{AsyncReadRent, AsyncWriteRentExt},
};

use crate::{
    allocator::{self, InConnectionHeap},
    http1::{self, ChunkEvent, ChunkedDecoder, HeadScanner, Limits, Method, ResponseFraming},
    router::Route,
    stats::names::{cluster as cx, host as hx},
    upstream::{
        breakers::Resource,
        conn::{Closer, ConnectError, UpstreamConn},
        pool::Lease,
        ClusterSnapshot, Host,
    },
};

/// Shadow requests in flight per worker, past which mirrored requests are skipped.
pub const MAX_IN_FLIGHT: u32 = 1024;

/// Appended to the host part of Host, as Envoy does.
const SUFFIX: &[u8] = b"-shadow";

/// The least room the copy gets, since it becomes the buffer the response is read into.
const MIN_READ: usize = 4096;

thread_local! {
    /// Shadow requests in flight on this worker (a worker is one thread).
    static IN_FLIGHT: Cell<u32> = const { Cell::new(0) };
}

/// One place among the worker's [`MAX_IN_FLIGHT`], given back when dropped.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        IN_FLIGHT.with(|n| {
            (n.get() < MAX_IN_FLIGHT).then(|| {
                n.set(n.get() + 1);
                Slot
            })
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// What one request sends: the request as forwarded so far (`sent`: the upstream head and
/// the body bytes beside it in the write chunk) and the rest of its body when ringway holds
/// all of it (`held`; `None`: the body streams, and the request is not mirrored).
pub(crate) struct Request<'a> {
    pub sent: &'a [u8],
    pub held: Option<&'a [u8]>,
    pub method: Method,
}

/// Sends a copy of `request` to each of `route`'s mirrors whose share `draw` hits.
/// Called by `forward` only for routes with mirrors.
#[inline(never)]
pub(crate) fn mirror(
    route: &Route,
    clusters: &Rc<[ClusterSnapshot]>,
    request: Request<'_>,
    limits: &Limits,
    draw: &dyn Fn() -> u64,
) {
    // One draw per request for all its mirrors, as Envoy's `stable_random` (the stream's
    // id): with two mirrors of one denominator, the smaller share's requests are among
    // the larger's. Not drawn when every mirror takes everything.
    let mut drawn = None;
    for target in route.mirrors.iter() {
        if target.fraction != crate::config::resilience::Fraction::ALL
            && !target.fraction.hits(*drawn.get_or_insert_with(draw))
        {
            continue;
        }
        let Some(cluster) = clusters.get(target.cluster) else {
            continue;
        };
        let slot = match request.held {
            Some(_) if cluster.proxy_protocol.is_none() => Slot::take(),
            _ => None,
        };
        let (Some(slot), Some(held)) = (slot, request.held) else {
            cluster.stats.get(cx::UPSTREAM_RQ_SHADOW_SKIPPED).inc();
            continue;
        };
        let copy = copy_request(request.sent, held, target.keep_host);
        let shadow = Shadow {
            clusters: Rc::clone(clusters),
            index: target.cluster,
            method: request.method,
            limits: *limits,
            timeout: route.timeout,
        };
        // Like a connection's task, it allocates from the connection heap (ARCHITECTURE.md,
        // "Memory").
        let task = InConnectionHeap::new(async move {
            shadow.run(copy).await;
            drop(slot);
        });
        allocator::in_connection_heap(|| monoio::spawn(task));
    }
}

/// The request as forwarded, Host suffixed unless `keep_host`, then the held body.
fn copy_request(sent: &[u8], held: &[u8], keep_host: bool) -> Vec<u8> {
    let size = sent.len() + held.len() + SUFFIX.len();
    let mut copy = Vec::with_capacity(size.max(MIN_READ));
    match (!keep_host).then(|| suffix_at(sent)).flatten() {
        Some(at) => {
            copy.extend_from_slice(&sent[..at]);
            copy.extend_from_slice(SUFFIX);
            copy.extend_from_slice(&sent[at..]);
        }
        None => copy.extend_from_slice(sent),
    }
    copy.extend_from_slice(held);
    copy
}

/// Where `-shadow` goes in `head`'s Host: after the host, before any port (an IPv6
/// literal's colons are inside its brackets). `None` without a Host field or with an
/// empty one.
fn suffix_at(head: &[u8]) -> Option<usize> {
    let mut at = head.iter().position(|&b| b == b'\n')? + 1;
    loop {
        let rest = head.get(at..)?;
        let end = rest.iter().position(|&b| b == b'\n')?;
        let line = &rest[..end];
        if line.is_empty() || line == b"\r" {
            return None;
        }
        if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"host:") {
            let value = line[5..].trim_ascii();
            if value.is_empty() {
                return None;
            }
            // Its offset in `line`, past the name and the whitespace after the colon.
            let start = 5 + (line[5..].len() - line[5..].trim_ascii_start().len());
            let host_end = match value.iter().rposition(|&b| b == b':') {
                Some(colon) if value.iter().rposition(|&b| b == b']') < Some(colon) => colon,
                _ => value.len(),
            };
            return Some(at + start + host_end);
        }
        at += end + 1;
    }
}

/// What a shadow task owns: the snapshot's clusters and what it needs of the request.
struct Shadow {
    clusters: Rc<[ClusterSnapshot]>,
    index: usize,
    method: Method,
    limits: Limits,
    timeout: std::time::Duration,
}

/// How a shadow exchange failed (counted where it happened, except these).
enum Failure {
    /// The response was not valid HTTP/1.1.
    Protocol,
    /// Anything else: connect failure, reset, overflow.
    Other,
}

impl Shadow {
    async fn run(self, request: Vec<u8>) {
        let Some(cluster) = self.clusters.get(self.index) else {
            return;
        };
        let Some(host) = cluster.pick(None) else {
            return;
        };
        let stats = &cluster.stats;
        let started = Instant::now();
        stats.get(cx::UPSTREAM_RQ_TOTAL).inc();
        stats.get(cx::UPSTREAM_RQ_ACTIVE).inc();
        host.count(hx::RQ_TOTAL);
        host.count(hx::RQ_ACTIVE);
        let exchange = self.exchange(cluster, &host, request);
        let outcome = monoio::time::timeout(self.timeout, exchange).await;
        stats.get(cx::UPSTREAM_RQ_ACTIVE).dec();
        host.uncount(hx::RQ_ACTIVE);
        match outcome {
            Ok(Ok(status)) => {
                // A shadow is counted as an external request (Envoy's shadow copies the
                // headers; ringway does not keep the origin's decision for it).
                cluster.record_rq_time(started.elapsed(), false);
                cluster.charge(status, false);
                host.count(if status >= 500 {
                    hx::RQ_ERROR
                } else {
                    hx::RQ_SUCCESS
                });
            }
            Ok(Err(failure)) => {
                if let Failure::Protocol = failure {
                    stats.get(cx::UPSTREAM_CX_PROTOCOL_ERROR).inc();
                }
                host.count(hx::RQ_ERROR);
            }
            Err(_) => {
                stats.get(cx::UPSTREAM_RQ_TIMEOUT).inc();
                host.count(hx::RQ_TIMEOUT);
            }
        }
    }

    /// Sends `request` and reads the response to its end; its status.
    async fn exchange(
        &self,
        cluster: &ClusterSnapshot,
        host: &Rc<Host>,
        request: Vec<u8>,
    ) -> Result<u16, Failure> {
        // A shadow is a request on the mirror cluster: its circuit breakers (default
        // priority) bound it as any other.
        let breakers = &cluster.breakers[0];
        let Some(_request) = breakers.try_permit(Resource::Request) else {
            cluster.stats.get(cx::UPSTREAM_RQ_PENDING_OVERFLOW).inc();
            return Err(Failure::Other);
        };
        let Ok(mut lease) = host.pool.checkout(&cluster.pool, breakers).await else {
            cluster.stats.get(cx::UPSTREAM_RQ_PENDING_OVERFLOW).inc();
            return Err(Failure::Other);
        };
        if lease.reused {
            cluster.stats.get(cx::UPSTREAM_CX_POOL_REUSE).inc();
        }
        if lease.conn.is_none() {
            lease.conn = Some(connect(cluster, host, &lease).await?);
        }
        let conn = lease.conn.as_mut().ok_or(Failure::Other)?;
        conn.request_started();
        // Until the response is read to its end, a close is ringway's with the shadow
        // on the connection (the shadow's timeout drops this future), unless said below.
        conn.closing(Closer::Local, true);
        let talked = self.talk(cluster, conn, request).await;
        match &talked {
            // A failed write or read: the endpoint reset or closed it.
            Err(Failure::Other) => conn.closing(Closer::Remote, true),
            Err(Failure::Protocol) => {}
            // Read to its end: a body ended by the endpoint's close is its close.
            Ok(Talked { ended_by_close, .. }) => {
                let closer = if *ended_by_close {
                    Closer::Remote
                } else {
                    Closer::Local
                };
                conn.closing(closer, false);
            }
        }
        let talked = talked?;
        if talked.reusable {
            lease.release(None);
        }
        Ok(talked.status)
    }

    /// Writes the request on `conn` and reads the response to its end.
    async fn talk(
        &self,
        cluster: &ClusterSnapshot,
        conn: &mut UpstreamConn,
        request: Vec<u8>,
    ) -> Result<Talked, Failure> {
        let (written, mut buf) = conn.write_all(request).await;
        written.map_err(|_| Failure::Other)?;
        buf.clear();
        let mut response = http1::Response::new();
        response.headers.reserve(self.limits.headers());
        // The final response's head (interim ones are dropped).
        let head_len = loop {
            let head_len = read_head(conn, &mut buf, &self.limits).await?;
            http1::parse_response(&buf[..head_len], self.method, &self.limits, &mut response)
                .map_err(|_| Failure::Protocol)?;
            match response.status {
                // Nothing asked to switch protocols.
                101 => return Err(Failure::Protocol),
                100..=199 => {
                    buf.drain(..head_len);
                }
                _ => break head_len,
            }
        };
        if response.ends_connection {
            cluster.stats.get(cx::UPSTREAM_CX_CLOSE_NOTIFY).inc();
        }
        buf.drain(..head_len);
        let clean = discard_body(conn, buf, response.framing, &self.limits).await?;
        Ok(Talked {
            status: response.status,
            reusable: clean && response.keep_alive,
            ended_by_close: response.framing == ResponseFraming::CloseDelimited,
        })
    }
}

/// A shadow's response, read to its end.
struct Talked {
    status: u16,
    /// The connection may go back to the pool.
    reusable: bool,
    /// The body ended with the endpoint's close.
    ended_by_close: bool,
}

/// Opens a connection for `lease`, counted as `forward`'s exchanges count theirs.
async fn connect(
    cluster: &ClusterSnapshot,
    host: &Host,
    lease: &Lease,
) -> Result<UpstreamConn, Failure> {
    let stats = &cluster.stats;
    let connecting = Instant::now();
    let timeout = cluster.connect_timeout;
    cluster.count_connect_start(Some(host));
    let connected = match &cluster.tls {
        None => UpstreamConn::connect(lease.address(), timeout).await,
        Some((Ok(connector), _)) => {
            let tls = (connector, lease.hostname());
            Box::pin(UpstreamConn::connect_tls(lease.address(), timeout, tls)).await
        }
        Some((Err(_), _)) => Err(ConnectError::Tls(std::io::Error::other("no TLS"))),
    };
    match connected {
        Ok(mut conn) => {
            cluster.connect_ms.record(connecting.elapsed());
            if let Some(tls) = conn.tls_negotiated() {
                stats.get(cx::SSL_HANDSHAKE).inc();
                if tls.resumed {
                    stats.get(cx::SSL_SESSION_REUSED).inc();
                }
            }
            conn.count_active(host);
            Ok(conn)
        }
        Err(e) => {
            // A timeout is a connect failure too, as in Envoy.
            if let ConnectError::Timeout = e {
                stats.get(cx::UPSTREAM_CX_CONNECT_TIMEOUT).inc();
            }
            cluster.count_connect_failure(Some(host), e.closer());
            if let ConnectError::Tls(_) = e {
                stats.get(cx::SSL_CONNECTION_ERROR).inc();
            }
            Err(Failure::Other)
        }
    }
}

/// Reads into `buf` until it holds a whole response head; its length.
async fn read_head(
    conn: &mut UpstreamConn,
    buf: &mut Vec<u8>,
    limits: &Limits,
) -> Result<usize, Failure> {
    let mut scanner = HeadScanner::new();
    loop {
        if !buf.is_empty() {
            match scanner.scan(buf, limits) {
                Ok(Some(head_len)) => return Ok(head_len),
                Ok(None) => {}
                Err(_) => return Err(Failure::Protocol),
            }
        }
        read_more(conn, buf).await?;
    }
}

/// One read appended to `buf`; a closed connection is a failure.
async fn read_more(conn: &mut UpstreamConn, buf: &mut Vec<u8>) -> Result<usize, Failure> {
    if buf.len() == buf.capacity() {
        buf.reserve(MIN_READ);
    }
    let len = buf.len();
    let (result, slice) = conn.read(std::mem::take(buf).slice_mut(len..)).await;
    *buf = slice.into_inner();
    match result {
        Ok(0) | Err(_) => Err(Failure::Other),
        Ok(n) => Ok(n),
    }
}

/// Reads and drops the response body (`buf` holds its first bytes). Whether the
/// connection ended exactly at the end of the response (it may then be reused).
async fn discard_body(
    conn: &mut UpstreamConn,
    mut buf: Vec<u8>,
    framing: ResponseFraming,
    limits: &Limits,
) -> Result<bool, Failure> {
    match framing {
        ResponseFraming::None => Ok(buf.is_empty()),
        ResponseFraming::ContentLength(length) => {
            let mut left = length;
            loop {
                let have = buf.len() as u64;
                if have >= left {
                    // Bytes past the body were never asked for.
                    return Ok(have == left);
                }
                left -= have;
                buf.clear();
                read_more(conn, &mut buf).await?;
            }
        }
        ResponseFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(limits);
            loop {
                let mut at = 0;
                while at < buf.len() {
                    let (used, event) =
                        decoder.decode(&buf[at..]).map_err(|_| Failure::Protocol)?;
                    at += used;
                    if let Some(ChunkEvent::Done) = event {
                        return Ok(at == buf.len());
                    }
                }
                if decoder.is_done() {
                    return Ok(true);
                }
                buf.clear();
                read_more(conn, &mut buf).await?;
            }
        }
        ResponseFraming::CloseDelimited => loop {
            buf.clear();
            let len = buf.len();
            let (result, slice) = conn.read(buf.slice_mut(len..)).await;
            buf = slice.into_inner();
            match result {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(_) => return Err(Failure::Other),
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shadowed(head: &str) -> String {
        String::from_utf8(copy_request(head.as_bytes(), b"body", false)).unwrap()
    }

    #[test]
    fn the_suffix_goes_after_the_host_and_before_the_port() {
        let cases = [
            ("example.com", "example.com-shadow"),
            ("example.com:8080", "example.com-shadow:8080"),
            ("10.0.0.1:80", "10.0.0.1-shadow:80"),
            ("[::1]:8080", "[::1]-shadow:8080"),
            ("[::1]", "[::1]-shadow"),
        ];
        for (host, expected) in cases {
            let head = format!("GET / HTTP/1.1\r\nx-a: b\r\nHost:  {host} \r\nx-c: d\r\n\r\n");
            let want =
                format!("GET / HTTP/1.1\r\nx-a: b\r\nHost:  {expected} \r\nx-c: d\r\n\r\nbody");
            assert_eq!(shadowed(&head), want, "{host}");
        }
    }

    #[test]
    fn keep_host_and_heads_without_host_are_copied_as_they_are() {
        let head = "GET / HTTP/1.1\r\nhost: a:1\r\n\r\n";
        let copy = copy_request(head.as_bytes(), b"", true);
        assert_eq!(copy, head.as_bytes());
        assert!(copy.capacity() >= MIN_READ);
        let no_host = "GET / HTTP/1.1\r\nx-host: a\r\n\r\nhost: b";
        assert_eq!(shadowed(no_host), format!("{no_host}body"));
        // A field named like Host in the body is not the head's.
        assert_eq!(suffix_at(b"GET / HTTP/1.1\r\n\r\nhost: x\r\n"), None);
        assert_eq!(suffix_at(b"GET / HTTP/1.1\r\nhost:\r\n\r\n"), None);
    }

    #[test]
    fn slots_are_bounded_and_given_back() {
        let slots: Vec<_> = std::iter::from_fn(Slot::take).take(2000).collect();
        assert_eq!(slots.len(), MAX_IN_FLIGHT as usize);
        assert!(Slot::take().is_none());
        drop(slots);
        assert!(Slot::take().is_some());
    }
}
