//! The active health check of one host: what a result does to its flags, and when the
//! next check is due. Sans-IO: plain values in, plain values out; the probes
//! (`probe.rs`) and the clock (`service.rs`) live elsewhere.
//!
//! Envoy's rules (`HealthCheckerImplBase::ActiveHealthCheckSession`, health_check.proto,
//! arch_overview/upstream/health_checking):
//!
//! - A host of a cluster with a check starts FAILED_ACTIVE_HC | PENDING_ACTIVE_HC and is
//!   checked at once (after a random part of `initial_jitter`, when set).
//! - Success: the unhealthy count resets. A failing host becomes healthy on its very
//!   first check result ("this makes startup faster"), else after `healthy_threshold`
//!   successes in a row; becoming healthy clears ACTIVE_HC_TIMEOUT and
//!   EXCLUDED_VIA_IMMEDIATE_HC_FAIL too. `x-envoy-degraded` sets DEGRADED_ACTIVE_HC, its
//!   absence clears it.
//! - Failure: the healthy count resets. A healthy host becomes FAILED_ACTIVE_HC at once
//!   when the failure is not a network one and not retriable (an HTTP status outside
//!   `expected_statuses` and `retriable_statuses`; a proxy's
//!   `x-envoy-immediate-health-check-fail`), else after `unhealthy_threshold` failures
//!   in a row (connect failures, resets, timeouts, retriable statuses). A timeout of a
//!   failed host sets ACTIVE_HC_TIMEOUT; any other failure clears it.
//! - The first result of any kind clears PENDING_ACTIVE_HC, and counts as a change.
//! - Next check (Envoy's `interval()`): while the cluster has never had traffic,
//!   `no_traffic_healthy_interval` after a success that left the host healthy, else
//!   `no_traffic_interval`; with traffic, after a success `healthy_edge_interval` while
//!   a change is pending (counting up to `healthy_threshold`) else `interval`, after a
//!   failure `unhealthy_edge_interval` while a change is pending else
//!   `unhealthy_interval`. Defaults: `unhealthy_interval` = `interval`,
//!   `unhealthy_edge_interval` = `unhealthy_interval`, `healthy_edge_interval` =
//!   `interval`, `no_traffic_healthy_interval` = `no_traffic_interval`. Envoy's code
//!   uses the edge intervals while a transition is pending, which is what its comments'
//!   example describes; ringway follows the code.
//! - Jitter (Envoy's `intervalWithJitter`, in whole milliseconds): plus a random part
//!   of `interval_jitter_percent` % of the base, plus a random part of
//!   `interval_jitter`; never under 1 ms.

use std::time::Duration;

use super::{HealthCheck, HealthFlags};

/// What one probe of a host found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The check passed; `degraded`: the answer carried `x-envoy-degraded`.
    Passed { degraded: bool },
    /// The host answered, but not as expected (an HTTP status outside the expected
    /// ranges). `retriable`: the status is in `retriable_statuses` (counted towards
    /// `unhealthy_threshold` instead of failing at once). `immediate`: the answer
    /// carried `x-envoy-immediate-health-check-fail`.
    Failed { retriable: bool, immediate: bool },
    /// No usable answer: the connect failed, the connection was reset or closed early,
    /// or the answer was malformed (Envoy's NETWORK failure).
    Network,
    /// No answer within the check's `timeout` (Envoy's NETWORK_TIMEOUT).
    Timeout,
}

impl Outcome {
    /// Envoy's network failure types (counted in `health_check.network_failure`).
    pub fn is_network(self) -> bool {
        matches!(self, Outcome::Network | Outcome::Timeout)
    }

    /// Whether the check passed.
    pub fn passed(self) -> bool {
        matches!(self, Outcome::Passed { .. })
    }
}

/// Whether a result changed the host's health (Envoy's `HealthTransition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed.
    Unchanged,
    /// A change is being counted towards its threshold.
    ChangePending,
    /// The flags changed.
    Changed,
}

/// The flags a new host of a cluster with an active check starts with.
pub const INITIAL: HealthFlags =
    HealthFlags::FAILED_ACTIVE_HC.union(HealthFlags::PENDING_ACTIVE_HC);

/// The flags the active checker owns (the rest are the outlier detector's or declared).
pub const OWNED: HealthFlags = INITIAL
    .union(HealthFlags::ACTIVE_HC_TIMEOUT)
    .union(HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL)
    .union(HealthFlags::DEGRADED_ACTIVE_HC);

/// One host's check counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    num_healthy: u32,
    num_unhealthy: u32,
    first_check: bool,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    /// A host not checked yet.
    pub fn new() -> Session {
        Session {
            num_healthy: 0,
            num_unhealthy: 0,
            first_check: true,
        }
    }

    /// Whether no result came yet.
    pub fn first_check(&self) -> bool {
        self.first_check
    }

    /// Applies a probe's result to `flags`.
    pub fn on_result(
        &mut self,
        flags: &mut HealthFlags,
        outcome: Outcome,
        check: &HealthCheck,
    ) -> Transition {
        match outcome {
            Outcome::Passed { degraded } => self.passed(flags, degraded, check),
            Outcome::Failed {
                retriable,
                immediate,
            } => {
                if immediate {
                    flags.insert(HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL);
                }
                self.failed(flags, outcome, retriable, check)
            }
            Outcome::Network | Outcome::Timeout => self.failed(flags, outcome, false, check),
        }
    }

    /// A proxied response carried `x-envoy-immediate-health-check-fail` (Envoy's
    /// passive failure): the host is excluded and fails at once.
    pub fn on_immediate_fail(
        &mut self,
        flags: &mut HealthFlags,
        check: &HealthCheck,
    ) -> Transition {
        flags.insert(HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL);
        let passive = Outcome::Failed {
            retriable: false,
            immediate: true,
        };
        self.failed(flags, passive, false, check)
    }

    fn passed(
        &mut self,
        flags: &mut HealthFlags,
        degraded: bool,
        check: &HealthCheck,
    ) -> Transition {
        self.num_unhealthy = 0;
        let mut changed = Transition::Unchanged;
        if flags.contains(HealthFlags::FAILED_ACTIVE_HC) {
            self.num_healthy = self.num_healthy.saturating_add(1);
            if self.first_check || self.num_healthy >= check.healthy_threshold {
                flags.remove(
                    HealthFlags::ACTIVE_HC_TIMEOUT
                        | HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL
                        | HealthFlags::FAILED_ACTIVE_HC,
                );
                changed = Transition::Changed;
            } else {
                changed = Transition::ChangePending;
            }
        }
        changed = self.clear_pending(flags, changed);
        if degraded != flags.contains(HealthFlags::DEGRADED_ACTIVE_HC) {
            flags.set(HealthFlags::DEGRADED_ACTIVE_HC, degraded);
            if changed == Transition::Unchanged {
                changed = Transition::Changed;
            }
        }
        self.first_check = false;
        changed
    }

    fn failed(
        &mut self,
        flags: &mut HealthFlags,
        outcome: Outcome,
        retriable: bool,
        check: &HealthCheck,
    ) -> Transition {
        self.num_healthy = 0;
        let mut changed = Transition::Unchanged;
        if !flags.contains(HealthFlags::FAILED_ACTIVE_HC) {
            self.num_unhealthy = self.num_unhealthy.saturating_add(1);
            if (!outcome.is_network() && !retriable)
                || self.num_unhealthy >= check.unhealthy_threshold
            {
                flags.insert(HealthFlags::FAILED_ACTIVE_HC);
                changed = Transition::Changed;
            } else {
                changed = Transition::ChangePending;
            }
        }
        let timed_out =
            outcome == Outcome::Timeout && flags.contains(HealthFlags::FAILED_ACTIVE_HC);
        flags.set(HealthFlags::ACTIVE_HC_TIMEOUT, timed_out);
        changed = self.clear_pending(flags, changed);
        self.first_check = false;
        changed
    }

    fn clear_pending(&mut self, flags: &mut HealthFlags, changed: Transition) -> Transition {
        if flags.contains(HealthFlags::PENDING_ACTIVE_HC) {
            flags.remove(HealthFlags::PENDING_ACTIVE_HC);
            return Transition::Changed;
        }
        changed
    }
}

/// The base time to the next check, before jitter (Envoy's `interval()`).
pub fn base_interval(check: &HealthCheck, passed: bool, t: Transition, traffic: bool) -> Duration {
    let pending = t == Transition::ChangePending;
    if !traffic {
        return match (passed && !pending, check.no_traffic_healthy_interval) {
            (true, Some(healthy)) => healthy,
            _ => check.no_traffic_interval,
        };
    }
    let unhealthy = check.unhealthy_interval.unwrap_or(check.interval);
    match (passed, pending) {
        (true, true) => check.healthy_edge_interval.unwrap_or(check.interval),
        (true, false) => check.interval,
        (false, true) => check.unhealthy_edge_interval.unwrap_or(unhealthy),
        (false, false) => unhealthy,
    }
}

/// The time to the next check: [`base_interval`] with Envoy's jitter.
pub fn next_delay(
    check: &HealthCheck,
    passed: bool,
    t: Transition,
    traffic: bool,
    rng: &mut fastrand::Rng,
) -> Duration {
    with_jitter(
        base_interval(check, passed, t, traffic),
        check.interval_jitter_percent,
        check.interval_jitter,
        rng,
    )
}

/// The delay before a new host's first check: a random part of `initial_jitter`
/// (Envoy checks at once when it is zero).
pub fn initial_delay(check: &HealthCheck, rng: &mut fastrand::Rng) -> Duration {
    if check.initial_jitter.is_zero() {
        return Duration::ZERO;
    }
    with_jitter(Duration::ZERO, 0, check.initial_jitter, rng)
}

/// Envoy's `intervalWithJitter`, in milliseconds: `base` plus a random part of
/// `percent` % of it, plus a random part of `jitter`; at least 1 ms.
pub fn with_jitter(
    base: Duration,
    percent: u32,
    jitter: Duration,
    rng: &mut fastrand::Rng,
) -> Duration {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let mut ms = base_ms;
    let percent_part = u64::from(percent).saturating_mul(base_ms) / 100;
    if percent_part > 0 {
        ms = ms.saturating_add(rng.u64(0..percent_part));
    }
    let jitter_ms = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    if jitter_ms > 0 {
        ms = ms.saturating_add(rng.u64(0..jitter_ms));
    }
    Duration::from_millis(ms.max(1))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::health::{HealthCheckKind, TcpCheck};

    type F = HealthFlags;

    pub(crate) fn check(healthy: u32, unhealthy: u32) -> HealthCheck {
        HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(10),
            interval_jitter: Duration::ZERO,
            interval_jitter_percent: 0,
            initial_jitter: Duration::ZERO,
            unhealthy_threshold: unhealthy,
            healthy_threshold: healthy,
            no_traffic_interval: Duration::from_secs(60),
            no_traffic_healthy_interval: None,
            unhealthy_interval: None,
            unhealthy_edge_interval: None,
            healthy_edge_interval: None,
            always_log_failures: false,
            reuse_connection: true,
            kind: HealthCheckKind::Tcp(TcpCheck {
                send: Vec::new(),
                receive: Vec::new(),
            }),
        }
    }

    const PASS: Outcome = Outcome::Passed { degraded: false };
    const DEGRADED: Outcome = Outcome::Passed { degraded: true };
    const BAD_STATUS: Outcome = Outcome::Failed {
        retriable: false,
        immediate: false,
    };
    const RETRIABLE: Outcome = Outcome::Failed {
        retriable: true,
        immediate: false,
    };
    const IMMEDIATE: Outcome = Outcome::Failed {
        retriable: false,
        immediate: true,
    };
    use Transition::{ChangePending as P, Changed as C, Unchanged as U};

    /// Runs `steps` from a new host; each step: the outcome, the transition and flags
    /// expected after it.
    fn table(check: &HealthCheck, steps: &[(Outcome, Transition, HealthFlags)]) {
        let mut session = Session::new();
        let mut flags = INITIAL;
        for (i, (outcome, transition, expected)) in steps.iter().enumerate() {
            let t = session.on_result(&mut flags, *outcome, check);
            assert_eq!(
                (t, flags),
                (*transition, *expected),
                "step {i}: {outcome:?} -> {flags}"
            );
        }
    }

    #[test]
    fn the_first_success_makes_a_new_host_healthy_whatever_the_threshold() {
        table(
            &check(3, 2),
            &[
                (PASS, C, F::empty()),
                (PASS, U, F::empty()),
                (PASS, U, F::empty()),
            ],
        );
    }

    #[test]
    fn a_first_failure_clears_pending_and_then_healthy_threshold_applies() {
        let failed = F::FAILED_ACTIVE_HC;
        table(
            &check(3, 2),
            &[
                (Outcome::Network, C, failed),
                (PASS, P, failed),
                (PASS, P, failed),
                (PASS, C, F::empty()),
            ],
        );
    }

    #[test]
    fn network_failures_count_to_unhealthy_threshold_and_successes_reset_them() {
        table(
            &check(1, 3),
            &[
                (PASS, C, F::empty()),
                (Outcome::Network, P, F::empty()),
                (Outcome::Timeout, P, F::empty()),
                (PASS, U, F::empty()),
                (Outcome::Network, P, F::empty()),
                (RETRIABLE, P, F::empty()),
                (
                    Outcome::Timeout,
                    C,
                    F::FAILED_ACTIVE_HC | F::ACTIVE_HC_TIMEOUT,
                ),
                (Outcome::Network, U, F::FAILED_ACTIVE_HC),
                (
                    Outcome::Timeout,
                    U,
                    F::FAILED_ACTIVE_HC | F::ACTIVE_HC_TIMEOUT,
                ),
                (PASS, C, F::empty()),
            ],
        );
    }

    #[test]
    fn a_bad_status_fails_at_once_and_failures_reset_the_healthy_count() {
        let failed = F::FAILED_ACTIVE_HC;
        table(
            &check(2, 5),
            &[
                (PASS, C, F::empty()),
                (BAD_STATUS, C, failed),
                (PASS, P, failed),
                (RETRIABLE, U, failed),
                (PASS, P, failed),
                (PASS, C, F::empty()),
            ],
        );
    }

    #[test]
    fn immediate_fail_excludes_until_the_host_passes_again() {
        let excluded = F::FAILED_ACTIVE_HC | F::EXCLUDED_VIA_IMMEDIATE_HC_FAIL;
        table(
            &check(2, 5),
            &[
                (PASS, C, F::empty()),
                (IMMEDIATE, C, excluded),
                (PASS, P, excluded),
                (PASS, C, F::empty()),
            ],
        );
        let mut session = Session::new();
        let mut flags = F::empty();
        session.first_check = false;
        let t = session.on_immediate_fail(&mut flags, &check(1, 3));
        assert_eq!((t, flags), (C, excluded));
    }

    #[test]
    fn degraded_answers_set_and_clear_the_degraded_flag() {
        table(
            &check(1, 1),
            &[
                (DEGRADED, C, F::DEGRADED_ACTIVE_HC),
                (DEGRADED, U, F::DEGRADED_ACTIVE_HC),
                (PASS, C, F::empty()),
            ],
        );
    }

    #[test]
    fn intervals_follow_envoys_table() {
        let secs = Duration::from_secs;
        let mut c = check(2, 2);
        c.interval = secs(10);
        c.no_traffic_interval = secs(60);
        // Defaults: everything is `interval`, or `no_traffic_interval` without traffic.
        for (passed, t) in [
            (true, U),
            (true, P),
            (true, C),
            (false, U),
            (false, P),
            (false, C),
        ] {
            assert_eq!(base_interval(&c, passed, t, true), secs(10));
            assert_eq!(base_interval(&c, passed, t, false), secs(60));
        }
        c.unhealthy_interval = Some(secs(3));
        assert_eq!(
            base_interval(&c, false, P, true),
            secs(3),
            "edge defaults to unhealthy"
        );
        c.unhealthy_edge_interval = Some(secs(1));
        c.healthy_edge_interval = Some(secs(2));
        c.no_traffic_healthy_interval = Some(secs(120));
        let rows = [
            // passed, transition, traffic, expected
            (true, U, true, 10),
            (true, C, true, 10),
            (true, P, true, 2),
            (false, U, true, 3),
            (false, C, true, 3),
            (false, P, true, 1),
            (true, U, false, 120),
            (true, C, false, 120),
            (true, P, false, 60),
            (false, U, false, 60),
            (false, P, false, 60),
        ];
        for (passed, t, traffic, expected) in rows {
            assert_eq!(
                base_interval(&c, passed, t, traffic),
                secs(expected),
                "{passed} {t:?} {traffic}"
            );
        }
    }

    #[test]
    fn jitter_adds_within_envoys_bounds() {
        let mut rng = fastrand::Rng::with_seed(7);
        let base = Duration::from_millis(1000);
        assert_eq!(with_jitter(base, 0, Duration::ZERO, &mut rng), base);
        assert_eq!(
            with_jitter(Duration::ZERO, 0, Duration::ZERO, &mut rng),
            Duration::from_millis(1),
            "never zero"
        );
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let d = with_jitter(base, 10, Duration::from_millis(50), &mut rng);
            assert!(
                d >= base && d < base + Duration::from_millis(100 + 50),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 50, "jitter varies");
        let mut c = check(1, 1);
        assert_eq!(initial_delay(&c, &mut rng), Duration::ZERO);
        c.initial_jitter = Duration::from_millis(200);
        for _ in 0..100 {
            let d = initial_delay(&c, &mut rng);
            assert!(d >= Duration::from_millis(1) && d < Duration::from_millis(200));
        }
        c.interval_jitter_percent = 50;
        for _ in 0..100 {
            let d = next_delay(&c, true, U, true, &mut rng);
            assert!(d >= c.interval && d < c.interval + c.interval / 2, "{d:?}");
        }
    }
}
