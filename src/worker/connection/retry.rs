//! One request's retries: its plan, the attempt it is on, and the checks that let an
//! attempt be repeated (`crate::resilience` decides whether an outcome is worth it; this
//! module adds what only the worker knows: retries left, the cluster's retry breaker or
//! budget, the time left, and the request's own headers).
//!
//! A retry is decided before anything of the attempt's response reaches the client:
//! for a response, between reading its head and forwarding it (`exchange`), so that a
//! 503 worth retrying is never seen by the client and one not retried (retries used up,
//! breaker open, no time left) is forwarded as it came. The plan lives in the
//! connection, reset per request, so that the response side can read it without a
//! parameter through every layer.

use std::time::Duration;

use crate::{
    access_log::ResponseFlags,
    config::resilience::RetryOn,
    resilience::{
        backoff,
        retry::{AttemptEnd, Controls, Plan, RetryRules, Verdict},
        retry_after,
    },
    router::Route,
    stats::names::cluster as cx,
    upstream::{
        breakers::{Permit, Resource},
        ClusterSnapshot,
    },
};

use super::Connection;

/// The retry state of the current request.
#[derive(Debug, Default)]
pub(super) struct RetryState {
    /// `None`: no retry policy applies (only the stale-connection retry).
    pub plan: Option<Plan>,
    /// The attempt under way, from 1.
    pub attempt: u32,
    /// Flags the retry decisions add to the request's access-log line (`URX`, `UO`).
    pub flags: ResponseFlags,
    /// The wait before the next attempt, once one is decided.
    pub backoff: Duration,
    /// The unit of the retry breaker the attempt under way holds, if it is a retry.
    pub permit: Option<Permit>,
    /// Whether the request may be sent again whole (its body is held, or it has none).
    pub replayable: bool,
    pub idempotent: bool,
    /// The request hedges on its per-try timeout (`hedge`).
    pub hedging: bool,
    /// The answer came on an earlier attempt's connection (a hedge's), which is not the
    /// current lease's to pool.
    pub foreign_winner: bool,
}

/// Endpoints tried by a request, for the previous-hosts predicate (the last few).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tried([usize; 4]);

impl Tried {
    pub fn add(&mut self, host: &crate::upstream::Host) {
        self.0.rotate_right(1);
        self.0[0] = host.pool.as_ref() as *const _ as usize;
    }

    pub fn has(&self, host: &crate::upstream::Host) -> bool {
        let key = host.pool.as_ref() as *const _ as usize;
        self.0.contains(&key)
    }
}

impl Connection<'_> {
    /// Sets up the request's retry plan: the route's policy with the trusted request
    /// controls applied (`x-envoy-retry-on`, `x-envoy-max-retries`,
    /// `x-envoy-upstream-rq-per-try-timeout-ms`, `x-envoy-hedge-on-per-try-timeout`),
    /// and `x-envoy-upstream-rq-timeout-ms`'s route timeout, if sent.
    pub(super) fn plan_retries(
        &mut self,
        head_len: usize,
        route: &Route,
        idempotent: bool,
    ) -> Option<Duration> {
        let rules = route.resilience.as_deref().and_then(|r| r.retry.as_deref());
        let (controls, route_timeout) = self.trusted_controls(head_len);
        let head = &self.buf[self.start..self.start + head_len];
        let request = &self.request;
        let allowed = rules.is_none_or(|r| r.request_allowed(&|name| request.header(head, name)));
        self.retry = RetryState {
            plan: if allowed {
                RetryRules::for_request(rules, &controls)
            } else {
                None
            },
            attempt: 1,
            flags: ResponseFlags::NONE,
            backoff: Duration::ZERO,
            permit: None,
            replayable: false,
            idempotent,
            hedging: false,
            foreign_winner: false,
        };
        route_timeout
    }

    /// Removes the request's own `x-envoy-attempt-count` and
    /// `x-envoy-expected-rq-timeout-ms`: ringway writes them per attempt.
    pub(super) fn remove_attempt_headers(&mut self, head_len: usize) {
        let head = &self.buf[self.start..self.start + head_len];
        for (index, h) in self.request.headers.iter().enumerate() {
            if h.is(head, "x-envoy-attempt-count") || h.is(head, "x-envoy-expected-rq-timeout-ms") {
                self.request.overlay.remove(index);
            }
        }
    }

    /// Whether the attempt that failed with `e` is repeated (`decide_retry`); counts
    /// per-try timeouts.
    pub(super) fn retry_error(
        &mut self,
        cluster: &ClusterSnapshot,
        route: &Route,
        (e, reused): (&crate::error::Error, bool),
        left: Duration,
    ) -> bool {
        use crate::error::ErrorKind;
        if self.retry.plan.is_none() || e.response_started {
            return false;
        }
        let end = match e.kind {
            ErrorKind::ConnectFailed | ErrorKind::ConnectTimeout => AttemptEnd::ConnectFailure,
            ErrorKind::UpstreamReset => AttemptEnd::Reset {
                written: e.request_written,
                reused,
            },
            ErrorKind::PerTryTimeout => {
                cluster.stats.get(cx::UPSTREAM_RQ_PER_TRY_TIMEOUT).inc();
                AttemptEnd::PerTryTimeout {
                    written: e.request_written,
                }
            }
            _ => return false,
        };
        self.decide_retry(cluster, route, &end, (None, left))
    }

    /// The endpoint of the next attempt. Not by the request's hash, which names the
    /// endpoint that just failed; with the previous-hosts predicate, up to
    /// `host_selection_attempts` picks look for one not tried yet.
    pub(super) fn next_host(
        &self,
        cluster: &ClusterSnapshot,
        route: &Route,
        tried: &Tried,
    ) -> Option<std::rc::Rc<crate::upstream::Host>> {
        let rules = route
            .resilience
            .as_deref()
            .and_then(|r| r.retry.as_deref())
            .filter(|r| r.other_host);
        let picks = rules.map_or(1, |r| r.host_selection_attempts.max(1));
        let mut next = cluster.pick(None);
        for _ in 1..picks {
            match &next {
                Some(host) if tried.has(host) => next = cluster.pick(None),
                _ => break,
            }
        }
        next
    }

    /// The `x-envoy-*` request controls, in one pass over the head, when the peer may
    /// send them: on Envoy listeners, an internal one (the connection manager stage
    /// removed them from the others, as Envoy does); on native listeners, a peer within
    /// `trusted_proxies`. Also returns `x-envoy-upstream-rq-timeout-ms`'s timeout.
    fn trusted_controls(&self, head_len: usize) -> (Controls, Option<Duration>) {
        let mut controls = Controls::default();
        let l = self.listener;
        let trusted = l.proxy.envoy.is_some()
            || self
                .peer
                .ip()
                .is_some_and(|ip| l.proxy.trusted_proxies.cidrs.iter().any(|c| c.contains(ip)));
        if !trusted {
            return (controls, None);
        }
        let head = &self.buf[self.start..self.start + head_len];
        let mut timeout = None;
        for (index, h) in self.request.headers.iter().enumerate() {
            let name = h.name(head);
            if name.len() < 8
                || !name[..8].eq_ignore_ascii_case(b"x-envoy-")
                || self.request.overlay.is_removed(index)
            {
                continue;
            }
            let value = h.value(head);
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            let rest = &name[8..];
            if rest.eq_ignore_ascii_case(b"retry-on") {
                if let Ok(list) = std::str::from_utf8(value) {
                    // Unknown names are ignored, as Envoy does with this header.
                    for name in list.split(',') {
                        if let Some(on) = RetryOn::named(name.trim()) {
                            controls.retry_on = controls.retry_on | on;
                        }
                    }
                }
            } else if rest.eq_ignore_ascii_case(b"max-retries") {
                controls.max_retries = number().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            } else if rest.eq_ignore_ascii_case(b"hedge-on-per-try-timeout") {
                controls.hedge = crate::resilience::retry::boolean(value);
            } else if rest.eq_ignore_ascii_case(b"upstream-rq-per-try-timeout-ms") {
                controls.per_try_timeout = number().filter(|&n| n > 0).map(Duration::from_millis);
            } else if rest.eq_ignore_ascii_case(b"upstream-rq-timeout-ms") {
                timeout = number().map(|ms| {
                    if ms == 0 {
                        crate::config::NO_TIMEOUT
                    } else {
                        Duration::from_millis(ms)
                    }
                });
            }
        }
        (controls, timeout)
    }

    /// Whether the attempt that ended as `end` is repeated: the plan's conditions, then
    /// the retries left (`URX` when used up), the time left, and the cluster's retry
    /// breaker or budget (`UO` when it says no). On yes, the retry is counted, its
    /// back-off chosen (`hint`: what the upstream asked for) and its permit held.
    pub(super) fn decide_retry(
        &mut self,
        cluster: &ClusterSnapshot,
        route: &Route,
        end: &AttemptEnd<'_>,
        (hint, left): (Option<Duration>, Duration),
    ) -> bool {
        self.worth_retrying(route, end) && self.start_retry(cluster, route, (hint, left))
    }

    /// The plan's conditions and the method rule say `end` is worth another attempt,
    /// retries left or not, and the request can be sent again whole.
    pub(super) fn worth_retrying(&self, route: &Route, end: &AttemptEnd<'_>) -> bool {
        let Some(plan) = self.retry.plan else {
            return false;
        };
        let rules = route.resilience.as_deref().and_then(|r| r.retry.as_deref());
        // Judged as if retries were left, so that a used-up plan still tells `URX`.
        let probe = Plan {
            retries_left: 1,
            ..plan
        };
        if probe.judge(rules, end, self.retry.idempotent) == Verdict::Final {
            return false;
        }
        !end.written() || self.retry.replayable
    }

    /// The checks after the conditions: retries left, time, breaker or budget.
    pub(super) fn start_retry(
        &mut self,
        cluster: &ClusterSnapshot,
        route: &Route,
        (hint, left): (Option<Duration>, Duration),
    ) -> bool {
        let Some(plan) = self.retry.plan else {
            return false;
        };
        let rules = route.resilience.as_deref().and_then(|r| r.retry.as_deref());
        if plan.retries_left == 0 {
            cluster
                .stats
                .get(cx::UPSTREAM_RQ_RETRY_LIMIT_EXCEEDED)
                .inc();
            self.retry.flags |= ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED;
            return false;
        }
        let backoff = match hint {
            Some(wait) => wait,
            None => {
                let retry = self.retry.attempt;
                let policy = rules.map(|r| r.backoff).unwrap_or_default();
                backoff::delay(&policy, retry, self.worker.random_u64())
            }
        };
        // The route timeout bounds the attempts and their waits together.
        if backoff >= left {
            return false;
        }
        let priority = route
            .resilience
            .as_deref()
            .map_or(0, |r| r.priority as usize);
        // The previous retry's unit goes back before this one is asked for.
        self.retry.permit = None;
        let Some(permit) = cluster.breakers[priority].try_permit(Resource::Retry) else {
            cluster.stats.get(cx::UPSTREAM_RQ_RETRY_OVERFLOW).inc();
            self.retry.flags |= ResponseFlags::UPSTREAM_OVERFLOW;
            return false;
        };
        self.retry.permit = Some(permit);
        self.retry.backoff = backoff;
        self.retry.plan = Some(Plan {
            retries_left: plan.retries_left - 1,
            ..plan
        });
        self.retry.attempt += 1;
        cluster.stats.get(cx::UPSTREAM_RQ_RETRY).inc();
        cluster
            .stats
            .get(if hint.is_some() {
                cx::UPSTREAM_RQ_RETRY_BACKOFF_RATELIMITED
            } else {
                cx::UPSTREAM_RQ_RETRY_BACKOFF_EXPONENTIAL
            })
            .inc();
        true
    }

    /// For a response head just read (`self.response`, in `head`): whether the retry
    /// policy repeats it instead of forwarding it. `left`: the time the route has left.
    #[inline(never)]
    pub(super) fn retry_response(
        &mut self,
        cluster: &ClusterSnapshot,
        route: &Route,
        head: &[u8],
        deadline: &crate::worker::deadline::Deadline<'_>,
    ) -> bool {
        let response = &self.response;
        let get = |name: &str| response.header(head, name);
        let end = AttemptEnd::Response {
            status: response.status,
            headers: &get,
        };
        let rules = route.resilience.as_deref().and_then(|r| r.retry.as_deref());
        if !self.worth_retrying(route, &end) {
            return false;
        }
        let hint = match rules.and_then(|r| r.rate_limited.as_ref()) {
            Some(limited) => {
                match retry_after::wait(limited, &get, self.worker.clock.unix_seconds()) {
                    // Longer than the policy allows: this answer is final.
                    Some(wait) if retry_after::exceeds(limited, wait) => return false,
                    found => found,
                }
            }
            None => None,
        };
        self.start_retry(cluster, route, (hint, deadline.left()))
    }
}

/// Whether an answer with `status` could be retried by `plan` at all: below 400 only a
/// header or status-code condition can (the cheap test every answer passes through).
#[inline]
pub(super) fn may_retry(plan: &Plan, status: u16) -> bool {
    status >= 400
        || plan
            .retry_on
            .intersects(RetryOn::RETRIABLE_HEADERS | RetryOn::RETRIABLE_STATUS_CODES)
}
