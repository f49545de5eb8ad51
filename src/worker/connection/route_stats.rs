//! Per-route and per-virtual-cluster stats of the current request (`stats::route`).
//!
//! At routing the connection notes which cells the request counts into (the route's
//! own, and its virtual host's class, matched there and only on a host that has
//! classes); forwarding marks the request forwarded and counts the final upstream
//! response; `complete` counts the rest once and forgets the cells. A route without
//! stats costs an `Option` check at each of those points; nothing allocates.

use std::time::Duration;

use crate::{
    access_log::ResponseFlags,
    router::{HeaderLookup, Route},
    stats::route::{RequestEnd, RouteCells},
};

use super::Connection;

/// The cells the current request counts into, and what forwarding saw of it.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RouteCounting<'l> {
    route: Option<&'l RouteCells>,
    vcluster: Option<&'l RouteCells>,
    forwarded: bool,
    answered: bool,
    /// Request body bytes received (the head is counted from its length).
    pub body_received: u64,
}

impl<'l> RouteCounting<'l> {
    /// The cells of a request routed to `route` (none: no route, or one without stats).
    #[inline]
    pub fn begin<H: HeaderLookup + ?Sized>(route: Option<&'l Route>, headers: &H) -> Self {
        let Some(stats) = route.and_then(|r| r.stats.as_deref()) else {
            return RouteCounting::default();
        };
        RouteCounting {
            route: stats.route.as_ref(),
            vcluster: stats.vclusters.as_deref().and_then(|v| v.classify(headers)),
            ..RouteCounting::default()
        }
    }

    fn cells(&self) -> impl Iterator<Item = &'l RouteCells> {
        self.route.into_iter().chain(self.vcluster)
    }

    /// The request is being forwarded (`upstream_rq_total`).
    #[inline]
    pub fn forwarding(&mut self) {
        self.forwarded = true;
    }

    /// The final upstream response: its code and the time from routing to its end.
    #[inline]
    pub fn upstream_response(&mut self, status: u16, elapsed: Duration) {
        self.answered = true;
        for cells in self.cells() {
            cells.upstream_response(status, elapsed);
        }
    }
}

impl Connection<'_> {
    /// Counts the finished request into its route's and virtual cluster's stats
    /// (`complete` calls it once per request) and forgets them.
    #[inline]
    pub(super) fn count_route_request(&mut self, status: u16, sent: u64, flags: ResponseFlags) {
        let counting = std::mem::take(&mut self.route_stats);
        if counting.route.is_none() && counting.vcluster.is_none() {
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
        let forwarded = counting.forwarded;
        let retry_flags = self.retry.flags;
        let end = RequestEnd {
            status,
            bytes: (self.request.head_len as u64 + counting.body_received, sent),
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
            cells.request(&end, counting.answered);
        }
    }
}
