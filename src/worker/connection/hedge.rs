//! Hedged attempts (`hedge_on_per_try_timeout`): when an attempt's per-try timeout
//! passes, it is not abandoned; a retry goes out beside it, and the first good answer of
//! any attempt still out is the one forwarded.
//!
//! Design: while nothing else is out (the common case), an attempt's response head is
//! read in place with a cancelable read. When its per-try timeout passes, that read is
//! cancelled and awaited (an io_uring read dropped in flight would lose what it had
//! read), and the connection and its buffer go to the connection's set of attempts out
//! ([`Outstanding`]): one owned future per attempt reading its head, kept across the
//! attempts of the request so that a later timeout stops waiting without cancelling
//! any of them; the next attempt races them all under the request's deadline. What
//! Envoy's router does, ringway does:
//! - a per-try timeout with retries left (and the budget or breaker allowing) starts a
//!   retry after its back-off; without one, the attempts already out are waited for
//!   until the route timeout (a per-try timeout alone never fails a hedging request);
//! - the first final head wins and the others are closed, except that an answer of an
//!   attempt already hedged that the policy would retry (a 503 under `5xx`), or a reset,
//!   is dropped while another attempt is still out;
//! - the winner's answer goes through the retry policy as any answer does;
//! - `per_try_idle_timeout` still ends an attempt (Envoy resets it, hedging or not);
//! - a hedge is not counted in `upstream_rq_per_try_timeout` (the attempt did not end)
//!   but is a local-origin timeout for outlier detection, and the retry is counted in
//!   `upstream_rq_retry`, as Envoy counts them.
//!
//! Only requests that can be sent again whole hedge (no body, or one held within the
//! route's buffer limit; not `Expect: 100-continue`, not an upgrade); the others keep
//! the plain per-try timeout. The plain path pays one test of a flag. A hedging request
//! whose first attempt answers in time allocates nothing and costs about 1,450
//! instructions more than the same route without `hedge` (monoio's cancelable read
//! registers each operation in a SipHash map, and the head is scanned twice); a hedge
//! allocates one box per attempt in the set (the set itself is kept by the connection).
//! A winner from an earlier attempt is closed after its response instead of going back
//! to the pool (its lease was the earlier attempt's).

use std::{future::Future, pin::Pin, rc::Rc, task::Poll};

use super::{
    exchange::{final_head_in, watch_response},
    Connection,
};
use crate::worker::deadline::{Deadline, Expired};
use monoio::{
    buf::IoBufMut,
    io::{CancelableAsyncReadRent, Canceller},
};

use crate::{
    error::{Cause, Error, ErrorKind, Side},
    http1,
    resilience::retry::AttemptEnd,
    router::Route,
    upstream::{conn::UpstreamConn, pool::Lease, ClusterSnapshot, Host},
};

/// What an attempt's read of its response head left.
struct HeadRead {
    conn: UpstreamConn,
    buf: Vec<u8>,
    result: Result<(), Error>,
}

/// One attempt whose response head is awaited.
struct Entry {
    read: Pin<Box<dyn Future<Output = HeadRead>>>,
    host: Rc<Host>,
    attempt: u32,
    /// A retry went out beside it: its answer is not retried again.
    hedged: bool,
}

/// The attempts of one hedging request still out, newest last (kept by the connection
/// across requests, emptied at each request's end).
#[derive(Default)]
pub(super) struct Outstanding {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Outstanding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outstanding({} attempts)", self.entries.len())
    }
}

impl Outstanding {
    fn add(
        &mut self,
        mut conn: UpstreamConn,
        buf: Vec<u8>,
        limits: http1::Limits,
        (host, attempt): (Rc<Host>, u32),
    ) {
        let read = async move {
            let mut buf = buf;
            let result = {
                let (mut read, _) = conn.split();
                watch_response(&mut read, &mut buf, &limits).await
            };
            HeadRead { conn, buf, result }
        };
        self.entries.push(Entry {
            read: Box::pin(read),
            host,
            attempt,
            hedged: false,
        });
    }

    /// The first attempt whose read ends (taken out of the set).
    async fn next(&mut self) -> (Entry, HeadRead) {
        std::future::poll_fn(|cx| {
            for (i, entry) in self.entries.iter_mut().enumerate() {
                if let Poll::Ready(read) = entry.read.as_mut().poll(cx) {
                    return Poll::Ready((self.entries.remove(i), read));
                }
            }
            Poll::Pending
        })
        .await
    }

    fn hedge_all(&mut self) {
        for entry in &mut self.entries {
            entry.hedged = true;
        }
    }
}

impl Connection<'_> {
    /// The second half of a hedging request's attempt, its request written: the race of
    /// every attempt out for a response head. Returns the winner's buffer (its head
    /// complete), its connection in `lease` and its endpoint in `self.upstream`
    /// (`retry.foreign_winner` when it is an earlier attempt's). `Err(Hedged)`: the
    /// per-try timeout passed and a retry was decided; this attempt stays out.
    pub(super) async fn race_hedged(
        &mut self,
        lease: &mut Lease,
        (cluster, route): (&ClusterSnapshot, &Route),
        deadline: &mut Deadline<'_>,
    ) -> Result<Vec<u8>, Error> {
        let mut buf = self.worker.bufs.take();
        let attempt = self.retry.attempt;
        // The common case, nothing else out: this attempt's head is read in place, and
        // only a per-try timeout moves it into the set (its read cancelled and awaited,
        // so that what it had read stays in `buf`).
        let try_passed = self
            .hedges
            .as_ref()
            .is_none_or(|set| set.entries.is_empty());
        if try_passed {
            let first = match lease.conn.as_mut() {
                Some(conn) => self.read_first_head(conn, &mut buf, deadline).await,
                None => Err(Error::new(ErrorKind::ConnectFailed, Side::Upstream)),
            };
            match first {
                Ok(true) => return Ok(buf),
                Ok(false) => {}
                Err(e) => {
                    self.worker.bufs.give(buf);
                    return Err(e);
                }
            }
        }
        let (Some(conn), Some(host)) = (lease.conn.take(), self.upstream.clone()) else {
            return Err(Error::new(ErrorKind::ConnectFailed, Side::Upstream));
        };
        let mut set = self.hedges.take().unwrap_or_default();
        set.add(conn, buf, self.listener.limits, (host, attempt));
        let won = self
            .race(&mut set, (cluster, route), (deadline, try_passed))
            .await;
        // The others are closed when a winner is found (Envoy resets them).
        if won.is_ok() {
            set.entries.clear();
        }
        self.hedges = Some(set);
        let (entry, read) = won?;
        if entry.attempt != attempt {
            self.upstream = Some(entry.host);
            self.retry.foreign_winner = true;
        }
        lease.conn = Some(read.conn);
        Ok(read.buf)
    }

    /// Reads the first attempt's response head into `buf`, cancelably: `Ok(true)` when
    /// a final head is in, `Ok(false)` when the per-try timeout passed first (the read
    /// cancelled and awaited: bytes that arrived meanwhile are in `buf`).
    async fn read_first_head(
        &mut self,
        conn: &mut UpstreamConn,
        buf: &mut Vec<u8>,
        deadline: &mut Deadline<'_>,
    ) -> Result<bool, Error> {
        let limits = self.listener.limits;
        let (mut read, _) = conn.split();
        loop {
            if final_head_in(buf, &limits)? {
                return Ok(true);
            }
            if buf.len() == buf.capacity() {
                buf.reserve(crate::buffers::CHUNK);
            }
            let len = buf.len();
            let handle = self.canceller.get_or_insert_with(Canceller::new).handle();
            let mut op =
                std::pin::pin!(read.cancelable_read(std::mem::take(buf).slice_mut(len..), handle));
            let (result, expired) = match deadline.within(&mut op).await {
                Ok((result, slice)) => {
                    *buf = slice.into_inner();
                    (result, None)
                }
                Err(expired) => {
                    self.canceller = self.canceller.take().map(Canceller::cancel);
                    let (result, slice) = op.await;
                    *buf = slice.into_inner();
                    (result, Some(expired))
                }
            };
            let cancelled =
                |e: &std::io::Error| e.raw_os_error() == Some(nix::errno::Errno::ECANCELED as i32);
            match &result {
                Ok(n) if *n > 0 => {}
                Err(e) if expired.is_some() && cancelled(e) => {}
                _ => return Err(Error::upstream_reset(true, false, Cause::of(&result))),
            }
            match expired {
                None => {}
                Some(Expired::Try) if deadline.try_limit_passed() => return Ok(false),
                Some(expired) => return Err(deadline.error(expired, true, false)),
            }
        }
    }

    /// Waits for the first attempt of `set` whose head is good (see the module note).
    async fn race(
        &mut self,
        set: &mut Outstanding,
        (cluster, route): (&ClusterSnapshot, &Route),
        (deadline, try_passed): (&mut Deadline<'_>, bool),
    ) -> Result<(Entry, HeadRead), Error> {
        let attempt = self.retry.attempt;
        let mut try_passed = try_passed;
        loop {
            // A timeout that passed in `read_first_head` is handled as one seen here.
            let next = if try_passed {
                try_passed = false;
                Err(Expired::Try)
            } else {
                deadline.within(set.next()).await
            };
            match next {
                // `per_try_idle_timeout`: the attempt ends, hedging or not (Envoy resets
                // it).
                Err(Expired::Try) if !deadline.try_limit_passed() => {
                    set.entries.retain(|e| e.attempt != attempt);
                    return Err(deadline.error(Expired::Try, true, false));
                }
                Err(Expired::Try) => {
                    // Envoy's hedge: a retry whenever one is left, whatever `retry_on`
                    // says of timeouts (nothing was reset).
                    if self.start_retry(cluster, route, (None, deadline.left())) {
                        set.hedge_all();
                        return Err(Error {
                            request_written: true,
                            ..Error::new(ErrorKind::Hedged, Side::Upstream)
                        });
                    }
                    // No retry: the attempts out are waited for, under the route's limits.
                    deadline.start_try(None, None);
                }
                Err(expired) => return Err(deadline.error(expired, true, false)),
                Ok((entry, read)) => {
                    let others = !set.entries.is_empty();
                    match read.result {
                        // A reset while another attempt is out: that one may still answer.
                        Err(_) if others => {}
                        Err(e) => return Err(e),
                        Ok(()) if others && entry.hedged && self.would_retry(route, &read.buf) => {}
                        Ok(()) => return Ok((entry, read)),
                    }
                }
            }
        }
    }

    /// Closes the attempts a hedging request left out (at its end).
    pub(super) fn close_hedges(&mut self) {
        if let Some(set) = &mut self.hedges {
            set.entries.clear();
        }
    }

    /// Whether the retry policy would repeat the answer whose head starts `buf` (an
    /// interim head counts as good: the final one follows it).
    fn would_retry(&mut self, route: &Route, buf: &[u8]) -> bool {
        let limits = &self.listener.limits;
        if http1::parse_response(buf, self.request.method, limits, &mut self.response).is_err() {
            return false;
        }
        let response = &self.response;
        if response.status < 200 {
            return false;
        }
        let get = |name: &str| response.header(buf, name);
        let end = AttemptEnd::Response {
            status: response.status,
            headers: &get,
        };
        self.worth_retrying(route, &end)
    }

    /// Whether this request hedges on its per-try timeout (see the module note).
    pub(super) fn hedging(&self) -> bool {
        self.retry
            .plan
            .is_some_and(|p| p.hedge && p.per_try_timeout.is_some())
            && self.retry.replayable
            && !self.request.expect_continue
            && !self.upgrading
    }
}
