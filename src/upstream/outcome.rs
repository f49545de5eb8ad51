//! What a request's outcome tells the outlier detector, counted per worker.
//!
//! Design: Envoy counts consecutive errors per host in one counter all its workers
//! write. Here each worker keeps its own streaks per host ([`Streaks`], in the worker's
//! [`super::Host`]) and tells the detector thread (`health::Reporter`) only when a
//! failure extends a streak still at or below its threshold (then every threshold-th
//! failure), and when a success ends a streak it reported: messages happen on failures
//! only, never per successful request, `threshold` for the first ejection and one per
//! `threshold` failures after. The detector sums the workers' latest streaks and
//! ejects when the sum reaches the threshold (`health::outlier` states the bound).
//!
//! Classification, as Envoy's (`outlier_detection.proto`): a 5xx response extends the
//! 5xx streak, a 502, 503 or 504 also the gateway-failure streak (another 5xx ends that
//! one); a response below 500 ends both. A failure ringway saw itself — connect failure
//! or timeout, a reset, an invalid response, the route timeout — counts as the 503 (504
//! for a timeout) Envoy maps it to, unless `split_external_local_origin_errors`: then it
//! extends the local-origin streak only, and any response ends that streak (the
//! connection worked).

use crate::{
    config::OutlierDetection,
    error::{Error, ErrorKind, Side},
};

/// What a worker tells the outlier detector of one host (`health::Observation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// This worker's current streaks on the host after a failure (each kind counted
    /// as Envoy: 5xx: any 5xx response, or, unless split_external_local_origin_errors,
    /// a local-origin failure; gateway: 502/503/504 or a local-origin failure unless
    /// split; local: connect failure, timeout or reset, when split).
    Failure {
        consecutive_5xx: u32,
        consecutive_gateway: u32,
        consecutive_local: u32,
    },
    /// A success ended a streak this worker had reported.
    Reset,
    /// The upstream's response carried `x-envoy-immediate-health-check-fail`.
    ImmediateFail,
}

/// One worker's consecutive failures of one host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streaks {
    pub consecutive_5xx: u32,
    pub consecutive_gateway: u32,
    pub consecutive_local: u32,
    /// The detector was told of the current streaks (a success must tell it they ended).
    reported: bool,
}

/// What one attempt ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Response(u16),
    /// No answer: connecting failed, the connection broke, or the answer was invalid.
    LocalFailure,
    /// No answer within the route timeout.
    LocalTimeout,
}

impl Outcome {
    /// What a failed attempt tells the detector: nothing when the endpoint is not to
    /// blame (the pool was full, the client went away or sent a bad body).
    pub fn of_error(error: &Error) -> Option<Outcome> {
        match error.kind {
            ErrorKind::ConnectFailed
            | ErrorKind::ConnectTimeout
            | ErrorKind::UpstreamReset
            | ErrorKind::BadResponse => Some(Outcome::LocalFailure),
            ErrorKind::Timeout => Some(Outcome::LocalTimeout),
            ErrorKind::StreamIdleTimeout if error.side == Side::Upstream => {
                Some(Outcome::LocalTimeout)
            }
            _ => None,
        }
    }
}

/// The part of a cluster's outlier detection the workers apply.
#[derive(Debug, Clone, Copy)]
pub struct OutlierPolicy {
    split: bool,
    /// Streaks are reported while at or below these (5xx, gateway, local origin).
    report_up_to: [u32; 3],
}

impl OutlierPolicy {
    pub fn new(config: &OutlierDetection) -> OutlierPolicy {
        OutlierPolicy {
            split: config.split_external_local_origin_errors,
            report_up_to: [
                config.consecutive_5xx,
                config.consecutive_gateway_failure,
                config.consecutive_local_origin_failure,
            ],
        }
    }

    /// Counts `outcome` into `streaks`; returns what the detector must be told, if
    /// anything.
    pub fn observe(&self, streaks: &mut Streaks, outcome: Outcome) -> Option<Observed> {
        let failed = match outcome {
            Outcome::Response(status) if status >= 500 => {
                streaks.consecutive_5xx = streaks.consecutive_5xx.saturating_add(1);
                if matches!(status, 502..=504) {
                    streaks.consecutive_gateway = streaks.consecutive_gateway.saturating_add(1);
                } else {
                    streaks.consecutive_gateway = 0;
                }
                if self.split {
                    streaks.consecutive_local = 0;
                }
                true
            }
            Outcome::Response(_) => {
                let reported = streaks.reported;
                *streaks = Streaks::default();
                return reported.then_some(Observed::Reset);
            }
            Outcome::LocalFailure | Outcome::LocalTimeout if self.split => {
                streaks.consecutive_local = streaks.consecutive_local.saturating_add(1);
                true
            }
            Outcome::LocalFailure | Outcome::LocalTimeout => {
                // Envoy's 503 (504 for a timeout): both a 5xx and a gateway failure.
                streaks.consecutive_5xx = streaks.consecutive_5xx.saturating_add(1);
                streaks.consecutive_gateway = streaks.consecutive_gateway.saturating_add(1);
                true
            }
        };
        debug_assert!(failed);
        let [t5xx, tgw, tlocal] = self.report_up_to;
        // Up to the threshold every failure is told; past it every threshold-th, so a
        // detection that was not enforced (the ejection cap, an `enforcing_*` draw)
        // is tried again after as many failures more, as Envoy's counter does.
        let within = |n: u32, t: u32| n > 0 && (n <= t.max(1) || n % t.max(1) == 0);
        if within(streaks.consecutive_5xx, t5xx)
            || within(streaks.consecutive_gateway, tgw)
            || within(streaks.consecutive_local, tlocal)
        {
            streaks.reported = true;
            return Some(Observed::Failure {
                consecutive_5xx: streaks.consecutive_5xx,
                consecutive_gateway: streaks.consecutive_gateway,
                consecutive_local: streaks.consecutive_local,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(split: bool) -> OutlierPolicy {
        OutlierPolicy::new(&OutlierDetection {
            consecutive_5xx: 3,
            consecutive_gateway_failure: 3,
            consecutive_local_origin_failure: 3,
            split_external_local_origin_errors: split,
            ..OutlierDetection::default()
        })
    }

    fn failure(s: &Streaks) -> (u32, u32, u32) {
        (
            s.consecutive_5xx,
            s.consecutive_gateway,
            s.consecutive_local,
        )
    }

    #[test]
    fn a_5xx_extends_its_streak_and_a_success_ends_it_with_one_message() {
        let p = policy(false);
        let mut s = Streaks::default();
        assert!(
            p.observe(&mut s, Outcome::Response(200)).is_none(),
            "nothing to end"
        );
        assert!(matches!(
            p.observe(&mut s, Outcome::Response(500)),
            Some(Observed::Failure {
                consecutive_5xx: 1,
                consecutive_gateway: 0,
                ..
            })
        ));
        assert!(p.observe(&mut s, Outcome::Response(503)).is_some());
        assert_eq!(failure(&s), (2, 1, 0));
        assert!(matches!(
            p.observe(&mut s, Outcome::Response(404)),
            Some(Observed::Reset)
        ));
        assert_eq!(failure(&s), (0, 0, 0));
        assert!(p.observe(&mut s, Outcome::Response(200)).is_none());
    }

    #[test]
    fn past_the_threshold_every_threshold_th_failure_is_told() {
        let p = policy(false);
        let mut s = Streaks::default();
        let mut sent = Vec::new();
        for _ in 0..10 {
            if p.observe(&mut s, Outcome::Response(502)).is_some() {
                sent.push(s.consecutive_5xx);
            }
        }
        assert_eq!(sent, [1, 2, 3, 6, 9]);
        assert_eq!(failure(&s), (10, 10, 0));
    }

    #[test]
    fn local_failures_count_as_gateway_errors_unless_split() {
        let mut s = Streaks::default();
        policy(false).observe(&mut s, Outcome::LocalFailure);
        policy(false).observe(&mut s, Outcome::LocalTimeout);
        assert_eq!(failure(&s), (2, 2, 0));
        let mut s = Streaks::default();
        let p = policy(true);
        p.observe(&mut s, Outcome::LocalFailure);
        p.observe(&mut s, Outcome::LocalFailure);
        assert_eq!(failure(&s), (0, 0, 2));
        // An answer shows the connection worked: the local streak ends, a 5xx counts.
        p.observe(&mut s, Outcome::Response(500));
        assert_eq!(failure(&s), (1, 0, 0));
    }
}
