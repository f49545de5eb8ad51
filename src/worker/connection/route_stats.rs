//! Per-route and per-virtual-cluster stats of the current request (`stats::route`).
//!
//! At routing the connection notes which stats the request counts into (the route's
//! own, and its virtual host's class, matched there and only on a host that has
//! classes); body bytes are counted as they arrive, forwarding counts the final
//! upstream response, and `complete` counts the rest once and forgets the stats. A route without
//! stats costs an `Option` check at each of those points; nothing allocates.

use std::time::Duration;

use crate::{
    access_log::ResponseFlags,
    router::{stats::RouteCounts, HeaderLookup, Route},
    stats::route::{RequestEnd, RouteCells},
};

use super::{retry::RetryState, Connection};

/// The cells the current request counts into: one pointer (to the route's and its
/// virtual cluster's, paired at compile time), since it lives in every connection's
/// future, whose size is guarded (`worker::tests::the_connection_task_stays_small`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RouteCounting<'l>(Option<&'l RouteCounts>);

impl<'l> RouteCounting<'l> {
    /// The cells of a request routed to `route` (none: no route, or one without stats).
    #[inline]
    pub fn begin<H: HeaderLookup + ?Sized>(route: Option<&'l Route>, headers: &H) -> Self {
        RouteCounting(
            route
                .and_then(|r| r.stats.as_deref())
                .and_then(|stats| stats.counts(headers)),
        )
    }

    fn cells(&self) -> impl Iterator<Item = &'l RouteCells> {
        let counts = self.0;
        let own = counts.and_then(|c| c.route.as_ref());
        own.into_iter()
            .chain(counts.and_then(|c| c.vcluster.as_ref()))
    }

    /// The final upstream response: its code, the time from routing to its end, and
    /// whether it is a retry's success (Envoy's: a retried request whose answer the
    /// policy did not want retried; one forwarded because the retries ran out or the
    /// breaker refused is not).
    #[inline]
    pub fn upstream_response(&self, status: u16, elapsed: Duration, retry: &RetryState) {
        if self.0.is_none() {
            return;
        }
        let flags = retry.flags;
        let retried = retry.attempt > 1
            && !flags.contains(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED)
            && !flags.contains(ResponseFlags::UPSTREAM_OVERFLOW);
        for cells in self.cells() {
            cells.upstream_response(status, elapsed, retried);
        }
    }

    /// A router-made answer charged as the upstream's ([`RouteCells::upstream_abort`]).
    pub fn upstream_abort(&self, status: u16) {
        if self.0.is_none() {
            return;
        }
        for cells in self.cells() {
            cells.upstream_abort(status);
        }
    }

    /// An upstream attempt got its connection ([`RouteCells::attempt`]).
    #[inline]
    pub fn attempt(&self) {
        if self.0.is_none() {
            return;
        }
        for cells in self.cells() {
            cells.attempt();
        }
    }

    /// Request body bytes received, counted as they come.
    #[inline]
    pub fn received(&self, bytes: u64) {
        if self.0.is_none() {
            return;
        }
        for cells in self.cells() {
            cells.received(bytes);
        }
    }
}

impl Connection<'_> {
    /// Counts the finished request into its route's and virtual cluster's stats
    /// (`complete` calls it once per request) and forgets them.
    #[inline]
    pub(super) fn count_route_request(&mut self, status: u16, sent: u64, flags: ResponseFlags) {
        let counting = std::mem::take(&mut self.route_stats);
        if counting.0.is_none() {
            return;
        }
        self.count_route_end(counting, status, sent, flags);
    }

    /// Out of line: only requests with stats get here.
    #[inline(never)]
    fn count_route_end(
        &self,
        counting: RouteCounting<'_>,
        status: u16,
        sent: u64,
        flags: ResponseFlags,
    ) {
        // An attempt was started (`complete` takes the upstream after this).
        let forwarded = self.upstream.is_some();
        let retry_flags = self.retry.flags;
        let end = RequestEnd {
            status,
            // The body was counted as it came (`received`).
            bytes: (self.request.head_len as u64, sent),
            forwarded,
            retries: if forwarded {
                self.retry.attempt.saturating_sub(1)
            } else {
                0
            },
            timeout: forwarded && flags.contains(ResponseFlags::UPSTREAM_REQUEST_TIMEOUT),
            retry_limit_exceeded: forwarded
                && retry_flags.contains(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED),
            retry_overflow: forwarded && retry_flags.contains(ResponseFlags::UPSTREAM_OVERFLOW),
        };
        for cells in counting.cells() {
            cells.request(&end);
        }
    }
}
