//! Fault injection (Envoy's `envoy.filters.http.fault` subset): delay a share of a
//! route's requests, abort a share with a status, send a share of responses at a limited
//! rate. Sans-IO: [`Fault::decide`] says which faults one request gets, from its headers,
//! the cluster it goes to, whether its client may control faults, the faults active now
//! and random draws; the connection sleeps, answers or paces ([`Pacer`]) as told.
//!
//! Decisions (Envoy's `fault_filter.cc` where its docs are silent):
//! - A request gets faults only when every `headers` matcher holds and, with
//!   `upstream_clusters`, it is routed to one of them. Each fault draws on its own.
//! - A fault with no fixed value is header-controlled: `x-envoy-fault-delay-request`
//!   (milliseconds), `x-envoy-fault-abort-request` (a status in 200..=599),
//!   `x-envoy-fault-throughput-response` (KiB/s, above 0). A missing or invalid value
//!   means no fault. The `...-percentage` header of a header-controlled fault replaces
//!   the numerator, capped by the configured one, over the configured denominator.
//! - Headers count only from a trusted client (the caller decides: Envoy listeners'
//!   internal requests, native listeners' `trusted_proxies`); Envoy itself does not
//!   check, and does not strip the headers either, so ringway forwards them as they are.
//! - `max_active`: when that many faulted requests are in progress, a request that
//!   would get a fault gets none (counted as an overflow). The caller counts per worker
//!   and listener; Envoy counts per filter, process-wide.
//! - Delay and abort may both apply: the request is delayed, then answered.

use std::cell::OnceCell;
use std::time::{Duration, Instant};

use crate::{
    config::resilience::{FaultPolicy, Fraction},
    filter::value_match::Value,
    local_reply::{LocalReplies, Reply},
};

/// Envoy's header names.
pub const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
pub const DELAY_PERCENTAGE_HEADER: &str = "x-envoy-fault-delay-request-percentage";
pub const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
pub const ABORT_PERCENTAGE_HEADER: &str = "x-envoy-fault-abort-request-percentage";
pub const RATE_HEADER: &str = "x-envoy-fault-throughput-response";
pub const RATE_PERCENTAGE_HEADER: &str = "x-envoy-fault-throughput-response-percentage";

/// The body of an abort, as Envoy writes it.
pub const ABORT_BODY: &str = "fault filter abort";

/// A route's fault policy, compiled once per worker.
#[derive(Debug)]
pub struct Fault {
    /// `(fixed delay or None for header-controlled, share)`.
    delay: Option<(Option<Duration>, Fraction)>,
    abort: Option<(Option<u16>, Fraction)>,
    /// KiB/s.
    rate: Option<(Option<u64>, Fraction)>,
    /// The reply of a fixed abort status, rendered once.
    abort_reply: Option<Reply>,
    /// Replies for statuses a header chose, by status - 200, each rendered on first
    /// use (the table itself too): the connection holds a reference, not a reply.
    header_replies: OnceCell<Box<[OnceCell<Reply>]>>,
    headers: Box<[(Box<str>, Value)]>,
    clusters: Box<[Box<str>]>,
    max_active: Option<u32>,
}

/// The faults one request gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Injection {
    pub delay: Option<Duration>,
    pub abort: Option<u16>,
    /// Bytes per second.
    pub rate: Option<u64>,
}

impl Injection {
    /// Whether no fault applies.
    pub fn is_none(&self) -> bool {
        *self == Injection::default()
    }
}

/// What [`Fault::decide`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No fault for this request.
    Pass,
    /// Some fault would apply, but `max_active` faults are in progress.
    Overflow,
    Inject(Injection),
}

/// What a request carries, as the decision reads it.
pub struct Request<'a> {
    /// A header's first value.
    pub header: &'a dyn Fn(&str) -> Option<&'a [u8]>,
    /// The cluster the request is routed to.
    pub cluster: &'a str,
    /// Whether the client may control faults by headers.
    pub trusted: bool,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("cluster", &self.cluster)
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

impl Fault {
    /// Compiles `policy`; a fixed abort's reply in the listener's profile (`replies`;
    /// `None`: ringway's).
    pub fn compile(policy: &FaultPolicy, replies: Option<&LocalReplies>) -> Fault {
        let abort_reply = policy
            .abort
            .and_then(|a| a.status)
            .map(|status| reply(status, replies));
        Fault {
            delay: policy.delay.map(|d| (d.fixed, d.fraction)),
            abort: policy.abort.map(|a| (a.status, a.fraction)),
            rate: policy.response_rate.map(|r| (r.kibps, r.fraction)),
            abort_reply,
            header_replies: OnceCell::new(),
            headers: policy
                .headers
                .iter()
                .map(|h| (h.name.as_str().into(), Value::compile(&h.value)))
                .collect(),
            clusters: policy
                .upstream_clusters
                .iter()
                .map(|c| c.as_str().into())
                .collect(),
            max_active: policy.max_active,
        }
    }

    /// Whether some fault takes its value from request headers (the caller then finds
    /// out whether the client is trusted).
    pub fn header_controlled(&self) -> bool {
        matches!(self.delay, Some((None, _)))
            || matches!(self.abort, Some((None, _)))
            || matches!(self.rate, Some((None, _)))
    }

    /// The faults `request` gets, with `active` faulted requests in progress (as the
    /// caller counts them) and `draw` giving uniform random numbers.
    pub fn decide(
        &self,
        request: &Request<'_>,
        active: u32,
        draw: &mut dyn FnMut() -> u64,
    ) -> Decision {
        let header = request.header;
        if !self.clusters.is_empty() && !self.clusters.iter().any(|c| **c == *request.cluster) {
            return Decision::Pass;
        }
        if !self.headers.iter().all(|(name, v)| v.test(header(name))) {
            return Decision::Pass;
        }
        let trusted = request.trusted;
        let delay = self.delay.and_then(|(fixed, share)| {
            let value = match fixed {
                Some(d) => d,
                None => Duration::from_millis(from_header(trusted, header(DELAY_HEADER))?),
            };
            let share = share_of(
                fixed.is_none(),
                trusted,
                share,
                header(DELAY_PERCENTAGE_HEADER),
            );
            share.hits(draw()).then_some(value)
        });
        let abort = self.abort.and_then(|(fixed, share)| {
            let status = match fixed {
                Some(s) => s,
                None => u16::try_from(from_header(trusted, header(ABORT_HEADER))?)
                    .ok()
                    .filter(|s| (200..600).contains(s))?,
            };
            let share = share_of(
                fixed.is_none(),
                trusted,
                share,
                header(ABORT_PERCENTAGE_HEADER),
            );
            share.hits(draw()).then_some(status)
        });
        let rate = self.rate.and_then(|(fixed, share)| {
            let kibps = match fixed {
                Some(k) => k,
                None => from_header(trusted, header(RATE_HEADER)).filter(|k| *k > 0)?,
            };
            let share = share_of(
                fixed.is_none(),
                trusted,
                share,
                header(RATE_PERCENTAGE_HEADER),
            );
            share.hits(draw()).then_some(kibps.saturating_mul(1024))
        });
        let injection = Injection { delay, abort, rate };
        if injection.is_none() {
            Decision::Pass
        } else if self.max_active.is_some_and(|max| active >= max) {
            Decision::Overflow
        } else {
            Decision::Inject(injection)
        }
    }

    /// The reply for an abort with `status` (200..=599): rendered at compile time for a
    /// fixed status, else on its first use (a header-chosen status; allocates once per
    /// status and worker).
    pub fn abort_reply(&self, status: u16, replies: &LocalReplies) -> &Reply {
        if let Some(r) = self.abort_reply.as_ref().filter(|r| r.status() == status) {
            return r;
        }
        let table = self
            .header_replies
            .get_or_init(|| (200..600).map(|_| OnceCell::new()).collect());
        // `decide` and the decoders keep statuses in 200..=599; clamped rather than panic.
        let index = usize::from(status.clamp(200, 599) - 200);
        table[index].get_or_init(|| reply(status, Some(replies)))
    }
}

fn reply(status: u16, replies: Option<&LocalReplies>) -> Reply {
    match replies {
        Some(replies) => replies.custom(status, ABORT_BODY),
        None => Reply::new(status, "text/plain", format!("{ABORT_BODY}\n").as_bytes()),
    }
}

/// A header's value as a decimal number, only from a trusted client.
fn from_header(trusted: bool, value: Option<&[u8]>) -> Option<u64> {
    let value = value.filter(|_| trusted)?.trim_ascii();
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The share of a fault: a header-controlled one's percentage header (trusted) replaces
/// the numerator, capped by the configured one.
fn share_of(controlled: bool, trusted: bool, share: Fraction, header: Option<&[u8]>) -> Fraction {
    match (controlled, from_header(trusted, header)) {
        (true, Some(n)) => Fraction {
            numerator: u32::try_from(n).unwrap_or(u32::MAX).min(share.numerator),
            denominator: share.denominator,
        },
        _ => share,
    }
}

/// Paces a response to a rate: the bytes written never exceed the rate times the time
/// since the first write (bursts are one write: the pacing is per write, not per byte).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pacer {
    /// Bytes per second; 0: not paced.
    rate: u64,
    start: Option<Instant>,
}

impl Pacer {
    pub fn new(bytes_per_second: u64) -> Pacer {
        Pacer {
            rate: bytes_per_second,
            start: None,
        }
    }

    /// Whether responses are paced.
    pub fn is_on(&self) -> bool {
        self.rate > 0
    }

    /// How long to wait before the write that brings the bytes sent to `total`; the
    /// first call starts the clock.
    pub fn wait(&mut self, total: u64, now: Instant) -> Option<Duration> {
        if self.rate == 0 {
            return None;
        }
        let start = *self.start.get_or_insert(now);
        let due = Duration::from_secs_f64(total as f64 / self.rate as f64);
        due.checked_sub(now.saturating_duration_since(start))
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resilience::{FaultAbort, FaultDelay, FaultRate};
    use crate::config::{HeaderMatch, ValueMatch};

    const HALF: Fraction = Fraction {
        numerator: 50,
        denominator: 100,
    };

    fn decide(fault: &Fault, headers: &[(&str, &str)], trusted: bool, draws: &[u64]) -> Decision {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        };
        let mut draws = draws.iter().copied().chain(std::iter::repeat(0));
        let request = Request {
            header: &header,
            cluster: "backend",
            trusted,
        };
        fault.decide(&request, 0, &mut || draws.next().unwrap_or(0))
    }

    fn policy() -> FaultPolicy {
        FaultPolicy {
            delay: Some(FaultDelay {
                fixed: Some(Duration::from_millis(200)),
                fraction: Fraction::ALL,
            }),
            abort: Some(FaultAbort {
                status: Some(503),
                fraction: HALF,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fixed_faults_apply_to_their_share() {
        let fault = Fault::compile(&policy(), None);
        // Draws: delay first, then abort (49 % 100 is in the 50 %, 50 is not).
        let both = Injection {
            delay: Some(Duration::from_millis(200)),
            abort: Some(503),
            rate: None,
        };
        assert_eq!(decide(&fault, &[], false, &[0, 49]), Decision::Inject(both));
        let delay_only = Injection {
            abort: None,
            ..both
        };
        assert_eq!(
            decide(&fault, &[], false, &[7, 50]),
            Decision::Inject(delay_only)
        );
        let reply = fault.abort_reply(503, &LocalReplies::ringway());
        assert_eq!(reply.status(), 503);
    }

    #[test]
    fn matchers_and_clusters_limit_the_requests() {
        let mut p = policy();
        p.headers = vec![HeaderMatch {
            name: "x-chaos".into(),
            value: ValueMatch::Exact("on".into()),
        }];
        let fault = Fault::compile(&p, None);
        assert_eq!(decide(&fault, &[], false, &[]), Decision::Pass);
        assert!(matches!(
            decide(&fault, &[("x-chaos", "on")], false, &[]),
            Decision::Inject(_)
        ));
        p.headers.clear();
        p.upstream_clusters = vec!["other".into()];
        assert_eq!(
            decide(&Fault::compile(&p, None), &[], false, &[]),
            Decision::Pass
        );
        p.upstream_clusters.push("backend".into());
        assert!(matches!(
            decide(&Fault::compile(&p, None), &[], false, &[]),
            Decision::Inject(_)
        ));
    }

    #[test]
    fn header_controlled_faults_need_a_trusted_client() {
        let p = FaultPolicy {
            delay: Some(FaultDelay {
                fixed: None,
                fraction: Fraction::ALL,
            }),
            abort: Some(FaultAbort {
                status: None,
                fraction: Fraction::ALL,
            }),
            response_rate: Some(FaultRate {
                kibps: None,
                fraction: Fraction::ALL,
            }),
            ..Default::default()
        };
        let fault = Fault::compile(&p, None);
        assert!(fault.header_controlled());
        let headers = [
            (DELAY_HEADER, "150"),
            (ABORT_HEADER, "429"),
            (RATE_HEADER, "8"),
        ];
        let all = Injection {
            delay: Some(Duration::from_millis(150)),
            abort: Some(429),
            rate: Some(8192),
        };
        assert_eq!(decide(&fault, &headers, true, &[]), Decision::Inject(all));
        assert_eq!(decide(&fault, &headers, false, &[]), Decision::Pass);
        // No header, or an invalid value: no fault.
        assert_eq!(decide(&fault, &[], true, &[]), Decision::Pass);
        let invalid = [
            (ABORT_HEADER, "600"),
            (DELAY_HEADER, "x"),
            (RATE_HEADER, "0"),
        ];
        assert_eq!(decide(&fault, &invalid, true, &[]), Decision::Pass);
        // Fixed faults ignore the headers.
        let fixed = Fault::compile(&policy(), None);
        assert!(!fixed.header_controlled());
        let Decision::Inject(got) = decide(&fixed, &headers, true, &[0, 0]) else {
            panic!("no fault");
        };
        assert_eq!(got.abort, Some(503));
    }

    #[test]
    fn a_percentage_header_lowers_the_share_only() {
        let p = FaultPolicy {
            abort: Some(FaultAbort {
                status: None,
                fraction: HALF,
            }),
            ..Default::default()
        };
        let fault = Fault::compile(&p, None);
        let with = |pct: &'static str| [(ABORT_HEADER, "503"), (ABORT_PERCENTAGE_HEADER, pct)];
        // 10 of 100: draw 9 hits, 10 does not.
        assert!(matches!(
            decide(&fault, &with("10"), true, &[9]),
            Decision::Inject(_)
        ));
        assert_eq!(decide(&fault, &with("10"), true, &[10]), Decision::Pass);
        // 90 is capped at the configured 50.
        assert_eq!(decide(&fault, &with("90"), true, &[60]), Decision::Pass);
    }

    #[test]
    fn max_active_overflows() {
        let mut p = policy();
        p.max_active = Some(2);
        let fault = Fault::compile(&p, None);
        let header = |_: &str| None;
        let request = Request {
            header: &header,
            cluster: "backend",
            trusted: false,
        };
        assert!(matches!(
            fault.decide(&request, 1, &mut || 0),
            Decision::Inject(_)
        ));
        assert_eq!(fault.decide(&request, 2, &mut || 0), Decision::Overflow);
    }

    #[test]
    fn the_pacer_keeps_bytes_under_the_rate() {
        let mut pacer = Pacer::new(1000);
        let t0 = Instant::now();
        // The first 500 bytes are due at 0.5 s.
        assert_eq!(pacer.wait(500, t0), Some(Duration::from_millis(500)));
        assert_eq!(pacer.wait(500, t0 + Duration::from_millis(600)), None);
        assert_eq!(
            pacer.wait(1000, t0 + Duration::from_millis(600)),
            Some(Duration::from_millis(400))
        );
        assert_eq!(Pacer::default().wait(1 << 30, t0), None);
    }
}
