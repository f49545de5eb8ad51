//! Forwarding one request to a cluster: the retry decision around exchange attempts.
//!
//! Pick an endpoint (weighted round robin), take a pooled connection or permission to
//! connect, build the upstream head once (ringway's request line, the received header
//! lines as spans of the read buffer with the overlay's changes, and the body bytes that
//! arrived with it), and run one attempt ([`super::exchange`]). A request that fails on a
//! reused connection before any response byte is sent once more on a fresh connection
//! when it is idempotent or never reached the upstream, and its body is still held
//! (`error::Error::retryable`). The request body is in [`super::body`]; the limits every
//! wait runs under in [`super::deadline`].

use std::time::Instant;

use crate::trace::context::{self, Formats, Outgoing};
use crate::{filter::RequestHead, router::Route};

use super::{
    body::RequestBody,
    outcome::{Forwarded, Next},
    retry::Tried,
    Connection,
};
use crate::worker::{deadline::Deadline, mirror, stop::Stop};
use crate::{
    config::{ExpectContinue, HostRewrite},
    error::{Error, ErrorKind, Side},
    http1::{BodyFraming, Method},
    stats::names::{cluster as cx, host as hx},
    upstream::{
        breakers::Resource,
        conn::Closer,
        outcome::{Outcome, OutlierPolicy},
        ClusterSnapshot,
    },
};

impl Connection<'_> {
    /// Forwards the request whose head is `buf[start..start + head_len]` to `cluster`,
    /// with `self.target` as the request target. On success the request and its body
    /// are consumed from the buffer.
    pub(super) async fn forward(
        &mut self,
        head_len: usize,
        route: &Route,
        cluster: &ClusterSnapshot,
        stop: &Stop,
    ) -> Result<Forwarded, Error> {
        let l = self.listener;
        l.http_stats.get(crate::stats::names::http::RQ_TOTAL).inc();
        let (route_timeout, chain) = (route.timeout, &route.filters);
        let host_rewrite = route.host_rewrite.as_ref();
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
        let hash = if cluster.hashes && !route.hash_policy.is_empty() {
            self.request_hash(head_len, &route.hash_policy)
        } else {
            None
        };
        let Some(mut picked) = cluster.pick(hash) else {
            cluster.stats.get(cx::UPSTREAM_CX_NONE_HEALTHY).inc();
            self.start += head_len;
            return Err(Error::new(ErrorKind::NoHealthyUpstream, Side::Upstream));
        };
        // `auto_sni`: the server name is the request's host, with a pool per name.
        if cluster.auto_sni {
            if let Some(named) = self.named_host(&picked, self.sni_from_host(head_len), cluster) {
                picked = named;
            }
        }
        let resilience = route.resilience.as_deref();
        // The request controls of trusted peers can ask for retries on any route.
        let route_timeout = if resilience.is_some_and(|r| r.retry.is_some())
            || l.proxy.envoy.is_some()
            || !l.proxy.trusted_proxies.cidrs.is_empty()
        {
            self.plan_retries(head_len, route, idempotent)
                .unwrap_or(route_timeout)
        } else {
            self.retry.plan = None;
            self.retry.attempt = 1;
            self.retry.flags = crate::access_log::ResponseFlags::NONE;
            route_timeout
        };
        let count_attempts = resilience.is_some_and(|r| r.attempt_count.request);
        let expected_timeout = l.proxy.envoy_headers && route_timeout < crate::config::NO_TIMEOUT;
        if count_attempts || expected_timeout {
            // Written per attempt instead of any the request carried.
            self.remove_attempt_headers(head_len);
        }
        // The upstream head, and whatever body arrived with it, in one write chunk.
        let mut out = self.worker.bufs.take();
        self.build_request_head(head_len, (picked.pool.host(), host_rewrite), &mut out);
        // Per-attempt lines go at the end of the head (`attempt_lines`).
        let lines_at = out.len() - 2;
        self.start += head_len;
        // A retrying route holds a body within its limit whole, so that any attempt can
        // send it again (not with `Expect: 100-continue`: that client waits to send it).
        let hold = self
            .retry
            .plan
            .and(resilience.and_then(|r| r.retry.as_deref()));
        if let (Some(rules), BodyFraming::ContentLength(length)) = (hold, self.request.framing) {
            if length <= rules.buffer_limit && !self.request.expect_continue {
                if let Err(e) = self.hold_body(length).await {
                    self.worker.bufs.give(out);
                    return Err(e);
                }
            }
        }
        let mut body = match self.buffered_request_body(&mut out, chain) {
            Ok(body) => body,
            Err(e) => {
                self.worker.bufs.give(out);
                return Err(e);
            }
        };
        let replayable = matches!(body, RequestBody::Complete | RequestBody::Held(_));
        self.retry.replayable = replayable;
        if !replayable && (self.retry.plan.is_some() || !route.mirrors.is_empty()) {
            // Envoy's router gives up retries and shadows for a body past its buffer
            // limit; here, for one not held whole (over the limit, chunked, or awaited
            // with `Expect`).
            cluster.stats.get(cx::RETRY_OR_SHADOW_ABANDONED).inc();
        }
        // Shadow traffic (`worker::mirror`): copies sent and forgotten, before any attempt.
        if !route.mirrors.is_empty() && !self.upgrading {
            let held = match body {
                RequestBody::Complete => Some(&self.buf[..0]),
                RequestBody::Held(n) => Some(&self.buf[self.start..self.start + n]),
                _ => None,
            };
            let (method, draw) = (self.request.method, &|| self.worker.random_u64());
            let request = mirror::Request {
                sent: &out,
                held,
                method,
            };
            mirror::mirror(route, &l.clusters, request, &l.limits, draw);
        }
        // The route timeout runs from the end of the request; until then only the
        // optional request timeout (and, throughout, the stream idle timeout) applies.
        let now = Instant::now();
        let (at, receiving) = if replayable {
            (Some(now + route_timeout), false)
        } else {
            (l.request_timeout.map(|t| now + t), true)
        };
        let clock = &self.worker.clock;
        let idle = route.idle_timeout.unwrap_or(l.stream_idle_timeout);
        // The first attempt's own limit is set with the timer (no re-arming per request).
        let first_try = self.retry.plan.and_then(|p| p.per_try_timeout);
        let first = Deadline::first_check(at, idle, now);
        let first = first_try.map_or(first, |t| first.min(now + t));
        let timer = std::pin::pin!(monoio::time::sleep_until(first.into()));
        let mut deadline = Deadline::new(now, at, receiving, idle, clock, timer);
        let deadline = &mut deadline;
        if let Some(max) = resilience.and_then(|r| r.max_stream_duration) {
            deadline.end_stream_at(self.rq_start.unwrap_or(now) + max);
        }
        let breakers = &cluster.breakers[resilience.map_or(0, |r| r.priority as usize)];
        let mut lines_len = 0;
        let mut tried = Tried::default();
        let mut stale_retried = false;
        self.retry.hedging = self.hedging();
        self.retry.foreign_winner = false;
        let result = loop {
            let pool = &picked.pool;
            self.upstream = Some(std::rc::Rc::clone(&picked));
            tried.add(&picked);
            let per_try = self.retry.plan.map_or((None, None), |p| {
                (p.per_try_timeout, p.per_try_idle_timeout)
            });
            if count_attempts || expected_timeout || self.trace.on {
                let expected = expected_timeout.then(|| {
                    let left = if self.retry.attempt == 1 {
                        route_timeout
                    } else {
                        deadline.left()
                    };
                    per_try.0.map_or(left, |t| t.min(left))
                });
                let attempt = count_attempts.then_some(self.retry.attempt);
                // The trace context, with this attempt's span (`trace`).
                let first = self.retry.attempt == 1 && !stale_retried;
                let context = self.trace_attempt_context(first.then_some(now));
                lines_len = attempt_lines(
                    &mut out,
                    (lines_at, lines_len),
                    (attempt, expected),
                    context,
                );
            }
            if self.retry.attempt == 1 && !stale_retried {
                deadline.start_try_at(now, per_try.0, per_try.1);
            } else {
                deadline.start_try(per_try.0, per_try.1);
            }
            // Envoy's max_requests: every attempt holds a unit while it is under way.
            let Some(_request) = breakers.try_permit(Resource::Request) else {
                cluster.stats.get(cx::UPSTREAM_RQ_PENDING_OVERFLOW).inc();
                break Err(Error::new(ErrorKind::Overflow, Side::Upstream));
            };
            let lease = match deadline
                .within(pool.checkout(&cluster.pool, breakers))
                .await
            {
                Err(expired) => break Err(deadline.error(expired, false, false)),
                Ok(Err(_overflow)) => {
                    cluster.stats.get(cx::UPSTREAM_RQ_PENDING_OVERFLOW).inc();
                    break Err(Error::new(ErrorKind::Overflow, Side::Upstream));
                }
                Ok(Ok(lease)) => lease,
            };
            // A retry must not land on another pooled connection that may be stale too.
            let mut lease = if stale_retried && lease.reused {
                drop(lease);
                match deadline
                    .within(pool.checkout_fresh(&cluster.pool, breakers))
                    .await
                {
                    Err(expired) => break Err(deadline.error(expired, false, false)),
                    Ok(Err(_)) => break Err(Error::new(ErrorKind::Overflow, Side::Upstream)),
                    Ok(Ok(lease)) => lease,
                }
            } else {
                lease
            };
            let reused = lease.reused;
            picked.count(hx::RQ_ACTIVE);
            cluster.stats.get(cx::UPSTREAM_RQ_ACTIVE).inc();
            if reused {
                cluster.stats.get(cx::UPSTREAM_CX_POOL_REUSE).inc();
            }
            // This attempt's number: deciding to retry on its answer (inside the
            // exchange) already counts the next one.
            let number = self.retry.attempt;
            let outcome = self
                .exchange(
                    &mut lease,
                    (cluster, route),
                    &mut out,
                    &mut body,
                    (deadline, route_timeout),
                    answer_continue,
                    (stop, chain),
                )
                .await;
            // The attempt's end: its span's, and on success the request's (below).
            let ended = Instant::now();
            if self.retry.foreign_winner {
                // The answer came from an earlier attempt: its endpoint is counted.
                if let Some(winner) = &self.upstream {
                    picked = std::rc::Rc::clone(winner);
                }
            }
            picked.uncount(hx::RQ_ACTIVE);
            cluster.stats.get(cx::UPSTREAM_RQ_ACTIVE).dec();
            if self.trace.sampled {
                let end = match &outcome {
                    Ok(finished) => (finished.forwarded.status, None),
                    Err(e) if e.kind == ErrorKind::RetriedResponse => (self.response.status, None),
                    Err(e) => (0, Some(e.kind.as_str())),
                };
                let tls = cluster.tls.is_some();
                self.trace_attempt_end((&picked, tls), end, (number, ended));
            }
            let observed = match &outcome {
                Ok(finished) => {
                    let status = finished.forwarded.status;
                    picked.count(if status >= 500 {
                        hx::RQ_ERROR
                    } else {
                        hx::RQ_SUCCESS
                    });
                    Some(Outcome::Response(status))
                }
                // Still out, but a timeout for outlier detection (as Envoy records a
                // hedge: the answer may still come).
                Err(e) if e.kind == ErrorKind::Hedged => Some(Outcome::LocalTimeout),
                Err(e) if e.kind == ErrorKind::RetriedResponse => {
                    picked.count(hx::RQ_ERROR);
                    Some(Outcome::Response(self.response.status))
                }
                Err(e) => {
                    picked.count(if e.kind == ErrorKind::Timeout {
                        hx::RQ_TIMEOUT
                    } else {
                        hx::RQ_ERROR
                    });
                    Outcome::of_error(e)
                }
            };
            if let (Some(policy), Some(observed)) = (&cluster.outlier, observed) {
                self.observe(cluster, &picked, policy, observed);
            }
            if let (Err(e), Some(conn)) = (&outcome, lease.conn.as_mut()) {
                // The connection closes with this attempt's request on it (a hedged
                // attempt, still out, is not this lease's to close): the endpoint's
                // doing when it reset or closed it, else ringway's (a timeout, a bad
                // response, the client gone, a response retried unread).
                if e.kind != ErrorKind::Hedged {
                    let closer = if e.kind == ErrorKind::UpstreamReset {
                        Closer::Remote
                    } else {
                        Closer::Local
                    };
                    conn.closing(closer, true);
                }
            }
            match outcome {
                Ok(finished) => {
                    // From routing to the end of the response (connecting and pool
                    // waits included), as Envoy's `upstream_rq_time`; the response is
                    // written to the client by now, so the same clock reading ends
                    // `downstream_rq_time` too (one read fewer than in `complete`).
                    let end = ended;
                    cluster.record_rq_time(end - now, self.internal);
                    let status = finished.forwarded.status;
                    self.route_stats
                        .upstream_response(status, end - now, &self.retry);
                    if let Some(start) = self.rq_start.take() {
                        l.rq_time.record(end - start);
                    }
                    self.trace_response_end(end);
                    cluster.charge(status, self.internal);
                    if self.retry.attempt > 1 {
                        cluster.stats.get(cx::UPSTREAM_RQ_RETRY_SUCCESS).inc();
                    }
                    if finished.forwarded.next == Next::Tunnel {
                        // The connection leaves the pool for the tunnel.
                        self.upgraded = lease.conn.take().map(Box::new);
                    } else if finished.reusable
                        && cluster.proxy_protocol.is_none()
                        && !self.retry.foreign_winner
                    {
                        // A connection that named one client in its PROXY header is
                        // never lent to another client's request; an earlier hedged
                        // attempt's is not this lease's.
                        lease.release(finished.keep_alive);
                    }
                    break Ok(finished.forwarded);
                }
                // The response side decided it (`exchange`): that answer was not sent.
                // Decided already (`exchange` for an answer, `hedge` for a hedge).
                Err(e) if matches!(e.kind, ErrorKind::RetriedResponse | ErrorKind::Hedged) => {}
                Err(e) if !stale_retried && e.retryable(reused, idempotent, replayable) => {
                    // The origin closed a pooled connection as it was reused: once more
                    // at once, on a fresh one, outside the retry policy.
                    cluster.stats.get(cx::UPSTREAM_RQ_RETRY).inc();
                    stale_retried = true;
                    self.retry.backoff = std::time::Duration::ZERO;
                }
                Err(e) => {
                    if !self.retry_error(cluster, route, (&e, reused), deadline.left()) {
                        match e.kind {
                            ErrorKind::Timeout | ErrorKind::PerTryTimeout => {
                                cluster.stats.get(cx::UPSTREAM_RQ_TIMEOUT).inc()
                            }
                            ErrorKind::BadResponse => {
                                cluster.stats.get(cx::UPSTREAM_CX_PROTOCOL_ERROR).inc()
                            }
                            _ => {}
                        }
                        break Err(e);
                    }
                }
            }
            drop(lease);
            // The attempt's own limits end with it; the back-off runs under the route's.
            deadline.start_try(None, None);
            let wait = self.retry.backoff;
            if !wait.is_zero() {
                if let Err(expired) = deadline.within(monoio::time::sleep(wait)).await {
                    break Err(deadline.error(expired, true, false));
                }
            }
            match self.next_host(cluster, route, &tried) {
                Some(next) => {
                    // `auto_sni`: the same server name on the endpoint retried.
                    let name = picked.pool.name().filter(|_| cluster.auto_sni).cloned();
                    picked = next;
                    if let Some(named) = self.named_host(&picked, name, cluster) {
                        picked = named;
                    }
                }
                None => {
                    cluster.stats.get(cx::UPSTREAM_CX_NONE_HEALTHY).inc();
                    break Err(Error::new(ErrorKind::NoHealthyUpstream, Side::Upstream));
                }
            }
        };
        // The last retry's unit of the retry breaker goes back, and a hedging request's
        // attempts still out are closed.
        self.retry.permit = None;
        if self.retry.hedging {
            self.close_hedges();
        }
        if let RequestBody::Held(n) = body {
            self.start += n;
            self.count_received(n as u64);
        }
        if result.is_err() && cluster.hashes {
            // A hash cookie made for this request goes with an upstream's answer only
            // (as Envoy's), not with ringway's error reply.
            self.filters.reply_lines.clear();
        }
        self.worker.bufs.give(out);
        result
    }

    /// Counts an attempt's outcome into this worker's streaks of its endpoint, and tells
    /// the outlier detector when the streaks say so (`upstream::outcome`).
    #[inline(never)]
    fn observe(
        &self,
        cluster: &ClusterSnapshot,
        host: &crate::upstream::Host,
        policy: &OutlierPolicy,
        outcome: Outcome,
    ) {
        let mut streaks = host.streaks.get();
        let told = policy.observe(&mut streaks, outcome);
        host.streaks.set(streaks);
        if let Some(what) = told {
            self.worker.outlier.report(crate::health::Observation {
                cluster: std::sync::Arc::clone(&cluster.name),
                address: host.pool.address().clone(),
                worker: self.worker.id,
                what,
                at: Instant::now(),
            });
        }
    }

    /// Envoy's `x-envoy-immediate-health-check-fail` on a response from an actively
    /// checked endpoint: the endpoint asks to be taken out of rotation now (it is
    /// draining); the health service fails it without waiting for its next check.
    #[inline(never)]
    pub(super) fn immediate_health_check_fail(&self, head: &[u8]) {
        let Some(host) = &self.upstream else { return };
        let Some(cluster) = &host.checked_in else {
            return;
        };
        if self
            .response
            .header(head, "x-envoy-immediate-health-check-fail")
            .is_none()
        {
            return;
        }
        self.worker.outlier.report(crate::health::Observation {
            cluster: std::sync::Arc::clone(cluster),
            address: host.pool.address().clone(),
            worker: self.worker.id,
            what: crate::health::Observed::ImmediateFail,
            at: Instant::now(),
        });
    }

    /// `host` with the pool of its endpoint for server name `name` (`auto_sni`); `None`
    /// without a name.
    #[inline(never)]
    fn named_host(
        &self,
        host: &std::rc::Rc<crate::upstream::Host>,
        name: Option<std::sync::Arc<str>>,
        cluster: &ClusterSnapshot,
    ) -> Option<std::rc::Rc<crate::upstream::Host>> {
        let name = name?;
        let tls = cluster.tls.as_ref().map(|t| &t.1);
        let pool = self.worker.pools.get_named(host.pool.address(), &name, tls);
        Some(std::rc::Rc::new(crate::upstream::Host {
            pool,
            cells: std::rc::Rc::clone(&host.cells),
            streaks: host.streaks.clone(),
            checked_in: host.checked_in.clone(),
        }))
    }

    /// The request's host without its port, for `auto_sni` (`None` without a host, or
    /// for an IP literal, which SNI cannot carry). Out of line: one allocation, only for
    /// such clusters.
    #[inline(never)]
    fn sni_from_host(&self, head_len: usize) -> Option<std::sync::Arc<str>> {
        let head = &self.buf[self.start..self.start + head_len];
        let authority = self.request.host.map(|h| h.get(head))?;
        let host = match authority.iter().rposition(|&b| b == b':') {
            Some(i) if !authority.ends_with(b"]") => &authority[..i],
            _ => authority,
        };
        let host = std::str::from_utf8(host).ok()?.to_ascii_lowercase();
        if host.is_empty() || host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        Some(host.into())
    }

    /// Writes ringway's request line (`HTTP/1.1`, the routed target) and the received
    /// header lines with the overlay applied (the fixed request stage and the route's
    /// filters already ran; `filter`) into `out`, adding what depends on the endpoint
    /// and the framing.
    fn build_request_head(
        &mut self,
        head_len: usize,
        (endpoint_host, rewrite): (&str, Option<&HostRewrite>),
        out: &mut Vec<u8>,
    ) {
        let head = &self.buf[self.start..self.start + head_len];
        let request = &mut self.request;
        let host = match rewrite {
            Some(HostRewrite::Literal(host)) => Some(host.as_bytes()),
            // Without that header, Host stays as it is (as in Envoy).
            Some(HostRewrite::Header(name)) => request.header(head, name),
            Some(HostRewrite::Endpoint) => Some(endpoint_host.as_bytes()),
            None => None,
        };
        match host {
            Some(host) => RequestHead::new(request, head).set(b"host", host),
            None if request.host.is_none() => {
                // HTTP/1.0 without Host: ringway speaks HTTP/1.1 upstream, where Host is
                // required (RFC 9112 3.2), so it sends the authority of the endpoint.
                let _ = request.overlay.add(b"host", endpoint_host.as_bytes());
            }
            None => {}
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
        // The headers as forwarded (Host rewritten, x-request-id and x-forwarded-for
        // set) are what Envoy's `%REQ(...)%` prints.
        if let Some(log) = &mut self.log {
            log.capture(head, request);
        }
    }
}

/// Writes an attempt's own header lines (`x-envoy-attempt-count`,
/// `x-envoy-expected-rq-timeout-ms`, the trace context) at `at` in `out`, in place of
/// the previous attempt's `len` bytes; returns their length. The context is written
/// straight into its place (its length is known first): no buffer, no allocation.
///
/// The common case, a first attempt with nothing after the head's blank line yet (no
/// body arrived with it), appends: the blank line is cut, the lines and the blank line
/// go on the end, and nothing is zeroed or moved.
fn attempt_lines(
    out: &mut Vec<u8>,
    (at, len): (usize, usize),
    (attempt, expected): (Option<u32>, Option<std::time::Duration>),
    context: Option<(impl OutgoingSource, Formats)>,
) -> usize {
    let envoy = (attempt.is_some() || expected.is_some()).then(|| envoy_lines(attempt, expected));
    let n = envoy.map_or(0, |(_, n)| n);
    if len == 0 && out.len() == at + 2 {
        out.truncate(at);
        if let Some((lines, n)) = envoy {
            out.extend_from_slice(&lines[..n]);
        }
        match context {
            // W3C alone (most listeners): the ids go from the state into the line.
            Some((ctx, Formats::W3C)) => {
                context::append_traceparent_ending_head(&ctx.outgoing(), out);
            }
            Some((ctx, formats)) => {
                context::append_lines_ending_head(&ctx.outgoing(), formats, out)
            }
            None => out.extend_from_slice(b"\r\n"),
        }
        return out.len() - 2 - at;
    }
    let context_len = context.map_or(0, |(ctx, formats)| {
        context::lines_len(&ctx.outgoing(), formats)
    });
    // Moved and copied as slices: `Vec::splice` goes byte by byte through an iterator,
    // which cost a traced request about a thousand instructions.
    let new_len = n + context_len;
    let tail = at + len;
    let end = out.len();
    if new_len > len {
        out.resize(end + new_len - len, 0);
    }
    out.copy_within(tail..end, at + new_len);
    out.truncate(end + new_len - len);
    if let Some((lines, n)) = envoy {
        out[at..at + n].copy_from_slice(&lines[..n]);
    }
    if let Some((ctx, formats)) = context {
        context::write_lines(&ctx.outgoing(), formats, &mut out[at + n..at + new_len]);
    }
    new_len
}

/// What an attempt's trace lines are written from: an [`Outgoing`] context, or the
/// connection's state read where the lines are written (`trace::AttemptContext`).
pub(super) trait OutgoingSource: Copy {
    fn outgoing(self) -> Outgoing;
}

impl OutgoingSource for Outgoing {
    fn outgoing(self) -> Outgoing {
        self
    }
}

/// `x-envoy-attempt-count` and `x-envoy-expected-rq-timeout-ms`, when set, in a buffer
/// on the stack (only requests that carry them build it).
fn envoy_lines(attempt: Option<u32>, expected: Option<std::time::Duration>) -> ([u8; 96], usize) {
    use std::io::Write;
    let mut lines = [0u8; 96];
    let mut cursor = std::io::Cursor::new(&mut lines[..]);
    if let Some(attempt) = attempt {
        let _ = write!(cursor, "x-envoy-attempt-count: {attempt}\r\n");
    }
    if let Some(expected) = expected {
        let ms = u64::try_from(expected.as_millis()).unwrap_or(u64::MAX);
        let _ = write!(cursor, "x-envoy-expected-rq-timeout-ms: {ms}\r\n");
    }
    let n = usize::try_from(cursor.position()).unwrap_or(0);
    (lines, n)
}

#[cfg(test)]
mod tests {
    const NO_CONTEXT: Option<(super::Outgoing, super::Formats)> = None;

    #[test]
    fn attempt_lines_replace_the_previous_attempts() {
        let mut out = b"GET / HTTP/1.1\r\nhost: a\r\n\r\nbody".to_vec();
        let at = out.len() - 4 - 2;
        let len = super::attempt_lines(&mut out, (at, 0), (Some(1), None), NO_CONTEXT);
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nhost: a\r\nx-envoy-attempt-count: 1\r\n\r\nbody"
        );
        let expected = Some(std::time::Duration::from_millis(1500));
        let context = super::Outgoing {
            trace_id: 0x64fe8b2a57d3eff7,
            short_id: true,
            span_id: 0xb7ad6b7169203331,
            parent_id: 0,
            sampled: false,
            debug: false,
        };
        let single = super::Formats::B3_SINGLE;
        let context = Some((context, single));
        let len = super::attempt_lines(&mut out, (at, len), (Some(12), expected), context);
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nhost: a\r\nx-envoy-attempt-count: 12\r\nx-envoy-expected-rq-timeout-ms: 1500\r\nb3: 64fe8b2a57d3eff7-b7ad6b7169203331-0\r\n\r\nbody"
        );
        let len = super::attempt_lines(&mut out, (at, len), (None, None), context);
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nhost: a\r\nb3: 64fe8b2a57d3eff7-b7ad6b7169203331-0\r\n\r\nbody"
        );
        super::attempt_lines(&mut out, (at, len), (None, None), NO_CONTEXT);
        assert_eq!(out, b"GET / HTTP/1.1\r\nhost: a\r\n\r\nbody");
    }

    /// A first attempt with nothing after the head appends; a retry then replaces what
    /// it appended, for each set of formats.
    #[test]
    fn attempt_lines_append_to_a_head_alone() {
        let context = super::Outgoing {
            trace_id: 0x0af7651916cd43dd8448eb211c80319c,
            short_id: false,
            span_id: 0xb7ad6b7169203331,
            parent_id: 0x00f067aa0ba902b7,
            sampled: true,
            debug: false,
        };
        let w3c = super::Formats::W3C;
        let all = super::Formats::new(true, true, true);
        for formats in [w3c, all] {
            let head = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
            let mut out = head.to_vec();
            let at = out.len() - 2;
            let lines = Some((context, formats));
            let len = super::attempt_lines(&mut out, (at, 0), (Some(1), None), lines);
            let mut want = b"GET / HTTP/1.1\r\nhost: a\r\nx-envoy-attempt-count: 1\r\n".to_vec();
            let mut buf = [0u8; crate::trace::context::MAX_LINES];
            let n = crate::trace::context::write_lines(&context, formats, &mut buf);
            want.extend_from_slice(&buf[..n]);
            want.extend_from_slice(b"\r\n");
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&want)
            );
            assert_eq!(len, want.len() - 2 - at);
            if formats == w3c {
                assert!(String::from_utf8_lossy(&out).contains(
                    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"
                ));
            }
            super::attempt_lines(&mut out, (at, len), (None, None), NO_CONTEXT);
            assert_eq!(out, head);
        }
    }
}
