//! Outlier detection of one cluster: which hosts to eject, and when to take them back.
//! Sans-IO: the health thread feeds it the workers' reports and each member's request
//! counts, with the time; it answers with ejections and unejections.
//!
//! Envoy's rules (arch_overview/upstream/outlier, outlier_detection.proto,
//! `Outlier::DetectorImpl`):
//!
//! - Consecutive errors eject at once. 5xx: any 5xx answer and, unless
//!   `split_external_local_origin_errors`, a local-origin failure (connect failure,
//!   timeout, reset; Envoy maps them to 503/504); gateway failure: 502/503/504 and the
//!   same local-origin failures; local origin (only with the split): connect failures,
//!   timeouts, resets. Checked in Envoy's order (gateway, then 5xx, then local origin); a
//!   detection counts `ejections_detected_*` and resets that streak whether or not it is
//!   enforced; a threshold of 0 never fires (Envoy counts with `==`).
//! - Every `interval`: hosts whose ejection time has passed come back (their streaks
//!   reset); success rate and failure percentage are evaluated over the interval's
//!   requests of the hosts not ejected; then the ejection multiplier of each host that
//!   is not ejected and came back at least `interval` ago decays by one.
//! - Success rate: hosts with at least `success_rate_request_volume` requests; with at
//!   least `success_rate_minimum_hosts` of them, hosts below
//!   `mean - stdev * success_rate_stdev_factor / 1000` are ejected (population stdev).
//!   Failure percentage: hosts with at least `failure_percentage_request_volume`
//!   requests; with at least `failure_percentage_minimum_hosts` of them, hosts whose
//!   failure percentage is at least `failure_percentage_threshold` are ejected. With
//!   the split, both run a second time over local-origin results (`enforcing_local_*`).
//! - Ejecting: allowed when `100 * (ejected + 1) / hosts <= max_ejection_percent`, or
//!   when none is ejected and `always_eject_one_host` (else `ejections_overflow`);
//!   then enforced with probability `enforcing_*` percent. Ejection time:
//!   `min(base_ejection_time * multiplier, max_ejection_time) + jitter` where the
//!   multiplier grows by one per ejection while `multiplier * base < max + base`, and
//!   jitter is drawn per ejection from `0..=max_ejection_time_jitter` (whole ms).
//! - `successful_active_health_check_uneject_host`: a passing active check of a host
//!   that is not failing active checks brings it back at once.
//!
//! Request counts. Envoy's success-rate monitors count each response as it happens;
//! ringway reads the per-interval deltas of each member's host stats (summed over
//! workers), which count the same requests: success = `rq_success`, external failures
//! = `rq_error` (5xx and failures without an answer) + `rq_timeout`. With the split:
//! external = `rq_success` + (`rq_error` - `cx_connect_fail`); local origin: failures =
//! `cx_connect_fail` + `rq_timeout` out of every attempt.
//!
//! Per-core observation. Envoy keeps one streak per host, shared by its workers: any
//! success resets it. ringway's workers share nothing, so each keeps its own streak
//! and reports it after each failure (and `Reset` when a success ends it); the
//! detector sums the latest streak of every worker. For a host that fails every
//! request the sum is Envoy's streak exactly, and ejection comes after the same N
//! failures. For a host that fails intermittently, the sum counts failures since each
//! worker's own last success, which is never less than the global streak (every
//! worker's last success is at or before the last success anywhere): ringway ejects
//! no later than Envoy, and earlier when failures interleave with successes on other
//! workers. Simulated (requests spread round robin over W workers, each failing
//! independently with probability p, `consecutive_5xx: 5`), mean requests until
//! ejection, ringway vs Envoy:
//!
//! | p    | W = 2          | W = 4          | W = 8           | W = 16          |
//! |------|----------------|----------------|-----------------|-----------------|
//! | 0.5  | 26 vs 61       | 15 vs 61       | 11 vs 61        | 10 vs 61        |
//! | 0.2  | 893 vs 4,542   | 244 vs 4,542   | 65 vs 4,542     | 35 vs 4,542     |
//! | 0.1  | 20,921 vs 98k  | 4,168 vs 98k   | 951 vs 98k      | 190 vs 98k      |
//!
//! So with many workers an intermittently failing host is ejected far sooner than in
//! Envoy; success rate and failure percentage (interval based, over summed stats) are
//! unaffected. A failing host is never ejected later, and never after more failures.

use std::time::{Duration, Instant};

use super::stats as st;
use super::{Observed, OutlierDetection};
use crate::stats::WorkerScope;

/// Why a host was ejected (Envoy's `OutlierEjectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
    SuccessRate,
    LocalOriginSuccessRate,
    FailurePercentage,
    LocalOriginFailurePercentage,
}

impl Kind {
    /// Envoy's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Consecutive5xx => "consecutive_5xx",
            Kind::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Kind::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
            Kind::SuccessRate => "success_rate",
            Kind::LocalOriginSuccessRate => "local_origin_success_rate",
            Kind::FailurePercentage => "failure_percentage",
            Kind::LocalOriginFailurePercentage => "local_origin_failure_percentage",
        }
    }

    fn stats(self) -> (usize, usize) {
        match self {
            Kind::Consecutive5xx => (
                st::OD_DETECTED_CONSECUTIVE_5XX,
                st::OD_ENFORCED_CONSECUTIVE_5XX,
            ),
            Kind::ConsecutiveGatewayFailure => (
                st::OD_DETECTED_CONSECUTIVE_GATEWAY_FAILURE,
                st::OD_ENFORCED_CONSECUTIVE_GATEWAY_FAILURE,
            ),
            Kind::ConsecutiveLocalOriginFailure => (
                st::OD_DETECTED_CONSECUTIVE_LOCAL_ORIGIN_FAILURE,
                st::OD_ENFORCED_CONSECUTIVE_LOCAL_ORIGIN_FAILURE,
            ),
            Kind::SuccessRate => (st::OD_DETECTED_SUCCESS_RATE, st::OD_ENFORCED_SUCCESS_RATE),
            Kind::LocalOriginSuccessRate => (
                st::OD_DETECTED_LOCAL_ORIGIN_SUCCESS_RATE,
                st::OD_ENFORCED_LOCAL_ORIGIN_SUCCESS_RATE,
            ),
            Kind::FailurePercentage => (
                st::OD_DETECTED_FAILURE_PERCENTAGE,
                st::OD_ENFORCED_FAILURE_PERCENTAGE,
            ),
            Kind::LocalOriginFailurePercentage => (
                st::OD_DETECTED_LOCAL_ORIGIN_FAILURE_PERCENTAGE,
                st::OD_ENFORCED_LOCAL_ORIGIN_FAILURE_PERCENTAGE,
            ),
        }
    }

    fn enforcing(self, c: &OutlierDetection) -> u32 {
        match self {
            Kind::Consecutive5xx => c.enforcing_consecutive_5xx,
            Kind::ConsecutiveGatewayFailure => c.enforcing_consecutive_gateway_failure,
            Kind::ConsecutiveLocalOriginFailure => c.enforcing_consecutive_local_origin_failure,
            Kind::SuccessRate => c.enforcing_success_rate,
            Kind::LocalOriginSuccessRate => c.enforcing_local_origin_success_rate,
            Kind::FailurePercentage => c.enforcing_failure_percentage,
            Kind::LocalOriginFailurePercentage => c.enforcing_failure_percentage_local_origin,
        }
    }

    /// Whether this kind of ejection is based on consecutive errors (reported by
    /// workers, acted on at once).
    pub fn is_consecutive(self) -> bool {
        matches!(
            self,
            Kind::Consecutive5xx
                | Kind::ConsecutiveGatewayFailure
                | Kind::ConsecutiveLocalOriginFailure
        )
    }
}

/// A host's cumulative request counts: its host stats summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `rq_success`: answered below 500.
    pub success: u64,
    /// `rq_error`: a 5xx answer, or no answer (timeouts apart).
    pub error: u64,
    /// `rq_timeout`.
    pub timeout: u64,
    /// `cx_connect_fail`.
    pub connect_fail: u64,
}

impl Counts {
    fn since(self, before: Counts) -> Counts {
        Counts {
            success: self.success.saturating_sub(before.success),
            error: self.error.saturating_sub(before.error),
            timeout: self.timeout.saturating_sub(before.timeout),
            connect_fail: self.connect_fail.saturating_sub(before.connect_fail),
        }
    }

    /// (successes, requests) as the external-origin monitor sees them.
    fn external(self, split: bool) -> (u64, u64) {
        if split {
            let answered_errors = self.error.saturating_sub(self.connect_fail);
            (self.success, self.success.saturating_add(answered_errors))
        } else {
            let failures = self.error.saturating_add(self.timeout);
            (self.success, self.success.saturating_add(failures))
        }
    }

    /// (successes, attempts) as the local-origin monitor sees them.
    fn local(self) -> (u64, u64) {
        let attempts = self
            .success
            .saturating_add(self.error)
            .saturating_add(self.timeout);
        let failures = self.connect_fail.saturating_add(self.timeout);
        (attempts.saturating_sub(failures), attempts)
    }
}

/// 5xx, gateway failure, local origin.
const KINDS: usize = 3;

/// One worker's latest streaks on a host, and what a detection already consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Streak {
    last: [u32; KINDS],
    base: [u32; KINDS],
}

/// One host's outlier state (kept across reloads while its address stays).
#[derive(Debug, Clone, Default)]
pub struct HostOutlier {
    streaks: Vec<Streak>,
    ejected_at: Option<Instant>,
    multiplier: u32,
    jitter: Duration,
    last_unejection: Option<Instant>,
    num_ejections: u32,
    last_counts: Option<Counts>,
}

impl HostOutlier {
    /// Whether the host is ejected now.
    pub fn is_ejected(&self) -> bool {
        self.ejected_at.is_some()
    }

    /// How many times it was ejected.
    pub fn num_ejections(&self) -> u32 {
        self.num_ejections
    }

    /// The ejection-time multiplier now.
    pub fn multiplier(&self) -> u32 {
        self.multiplier
    }

    /// The sum over workers of the unconsumed streaks of kind `k`.
    fn sum(&self, k: usize) -> u32 {
        self.streaks
            .iter()
            .map(|s| s.last[k].saturating_sub(s.base[k]))
            .fold(0, u32::saturating_add)
    }

    /// A detection (or an unejection) consumed the streaks of kind `k`.
    fn consume(&mut self, k: usize) {
        for s in &mut self.streaks {
            s.base[k] = s.last[k];
        }
    }

    fn consume_all(&mut self) {
        for k in 0..KINDS {
            self.consume(k);
        }
    }

    fn record(&mut self, worker: usize, now: [u32; KINDS]) {
        if self.streaks.len() <= worker {
            self.streaks.resize(worker + 1, Streak::default());
        }
        let s = &mut self.streaks[worker];
        for (k, value) in now.into_iter().enumerate() {
            // A streak that went down restarted (a success or another kind of failure
            // ended it on that worker), so nothing of it was consumed yet.
            if value < s.last[k] || value < s.base[k] {
                s.base[k] = 0;
            }
            s.last[k] = value;
        }
    }
}

/// What changed for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Ejected(Kind),
    Unejected,
}

/// A cluster's detector: its config and random draws (enforcement, jitter).
#[derive(Debug)]
pub struct Detector {
    config: OutlierDetection,
    rng: fastrand::Rng,
}

impl Detector {
    pub fn new(config: OutlierDetection, rng: fastrand::Rng) -> Detector {
        Detector { config, rng }
    }

    pub fn config(&self) -> &OutlierDetection {
        &self.config
    }

    /// Takes a new config (a reload); hosts keep their state.
    pub fn set_config(&mut self, config: OutlierDetection) {
        self.config = config;
    }

    /// A worker's report on host `i`. Returns the kind of ejection it caused.
    pub fn observe(
        &mut self,
        hosts: &mut [HostOutlier],
        i: usize,
        worker: usize,
        what: &Observed,
        now: Instant,
        stats: Option<&WorkerScope>,
    ) -> Option<Kind> {
        let host = hosts.get_mut(i)?;
        match *what {
            Observed::Reset => {
                host.record(worker, [0; KINDS]);
                return None;
            }
            Observed::ImmediateFail => return None,
            Observed::Failure {
                consecutive_5xx,
                consecutive_gateway,
                consecutive_local,
            } => host.record(
                worker,
                [consecutive_5xx, consecutive_gateway, consecutive_local],
            ),
        }
        if host.is_ejected() {
            return None;
        }
        let c = &self.config;
        let mut checks = vec![
            (
                1,
                c.consecutive_gateway_failure,
                Kind::ConsecutiveGatewayFailure,
            ),
            (0, c.consecutive_5xx, Kind::Consecutive5xx),
        ];
        if c.split_external_local_origin_errors {
            checks.push((
                2,
                c.consecutive_local_origin_failure,
                Kind::ConsecutiveLocalOriginFailure,
            ));
        }
        for (k, threshold, kind) in checks {
            if threshold == 0 || hosts[i].sum(k) < threshold {
                continue;
            }
            count(stats, kind.stats().0);
            let ejected = self.eject(hosts, i, kind, now, stats);
            hosts[i].consume(k);
            if ejected {
                return Some(kind);
            }
        }
        None
    }

    /// An active check of host `i` passed and left it not failing active checks.
    /// Returns whether that brought it back.
    pub fn active_check_passed(
        &mut self,
        hosts: &mut [HostOutlier],
        i: usize,
        now: Instant,
        stats: Option<&WorkerScope>,
    ) -> bool {
        if !self.config.successful_active_health_check_uneject_host
            || !hosts.get(i).is_some_and(HostOutlier::is_ejected)
        {
            return false;
        }
        uneject(&mut hosts[i], now);
        set_active(hosts, stats);
        true
    }

    /// The interval's work (see the module note). `counts[i]` are host `i`'s
    /// cumulative counts now (`None`: no stats, no data).
    pub fn tick(
        &mut self,
        hosts: &mut [HostOutlier],
        counts: &[Option<Counts>],
        now: Instant,
        stats: Option<&WorkerScope>,
    ) -> Vec<(usize, Change)> {
        let mut changes = Vec::new();
        let (base, max) = (
            self.config.base_ejection_time,
            self.config.max_ejection_time,
        );
        for (i, host) in hosts.iter_mut().enumerate() {
            let Some(at) = host.ejected_at else { continue };
            let time = base.saturating_mul(host.multiplier).min(max) + host.jitter;
            if now.saturating_duration_since(at) >= time {
                uneject(host, now);
                changes.push((i, Change::Unejected));
            }
        }
        set_active(hosts, stats);

        // This interval's requests per host.
        let deltas: Vec<Option<Counts>> = hosts
            .iter_mut()
            .enumerate()
            .map(|(i, host)| {
                let current = counts.get(i).copied().flatten()?;
                let before = host.last_counts.replace(current)?;
                Some(current.since(before))
            })
            .collect();
        let split = self.config.split_external_local_origin_errors;
        let external: Vec<Option<(u64, u64)>> = deltas
            .iter()
            .map(|d| d.map(|d| d.external(split)))
            .collect();
        self.rates(hosts, &external, false, now, stats, &mut changes);
        if split {
            let local: Vec<Option<(u64, u64)>> =
                deltas.iter().map(|d| d.map(Counts::local)).collect();
            self.rates(hosts, &local, true, now, stats, &mut changes);
        }

        let interval = self.config.interval;
        for host in hosts.iter_mut().filter(|h| !h.is_ejected()) {
            if host
                .last_unejection
                .is_some_and(|at| now.saturating_duration_since(at) >= interval)
            {
                host.multiplier = host.multiplier.saturating_sub(1);
            }
        }
        changes
    }

    /// Success rate and failure percentage over `(successes, requests)` per host.
    fn rates(
        &mut self,
        hosts: &mut [HostOutlier],
        volumes: &[Option<(u64, u64)>],
        local: bool,
        now: Instant,
        stats: Option<&WorkerScope>,
        changes: &mut Vec<(usize, Change)>,
    ) {
        let c = &self.config;
        let n = hosts.len() as u64;
        let (sr_min, fp_min) = (
            u64::from(c.success_rate_minimum_hosts),
            u64::from(c.failure_percentage_minimum_hosts),
        );
        if n < sr_min && n < fp_min {
            return;
        }
        let (sr_volume, fp_volume) = (
            u64::from(c.success_rate_request_volume),
            u64::from(c.failure_percentage_request_volume),
        );
        let mut sr_hosts = Vec::new();
        let mut fp_hosts = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            if host.is_ejected() {
                continue;
            }
            let Some(Some((success, total))) = volumes.get(i).copied() else {
                continue;
            };
            if total == 0 {
                continue;
            }
            let rate = success as f64 * 100.0 / total as f64;
            if total >= sr_volume {
                sr_hosts.push((i, rate));
            }
            if total >= fp_volume {
                fp_hosts.push((i, rate));
            }
        }
        let (sr_kind, fp_kind) = if local {
            (
                Kind::LocalOriginSuccessRate,
                Kind::LocalOriginFailurePercentage,
            )
        } else {
            (Kind::SuccessRate, Kind::FailurePercentage)
        };
        if !sr_hosts.is_empty() && sr_hosts.len() as u64 >= sr_min {
            let threshold = success_rate_threshold(
                &sr_hosts.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
                f64::from(c.success_rate_stdev_factor) / 1000.0,
            );
            for &(i, rate) in &sr_hosts {
                if rate < threshold {
                    self.detected(hosts, i, sr_kind, now, stats, changes);
                }
            }
        }
        let c = &self.config;
        if !fp_hosts.is_empty() && fp_hosts.len() as u64 >= fp_min {
            let threshold = f64::from(c.failure_percentage_threshold);
            for &(i, rate) in &fp_hosts {
                if 100.0 - rate >= threshold {
                    self.detected(hosts, i, fp_kind, now, stats, changes);
                }
            }
        }
    }

    fn detected(
        &mut self,
        hosts: &mut [HostOutlier],
        i: usize,
        kind: Kind,
        now: Instant,
        stats: Option<&WorkerScope>,
        changes: &mut Vec<(usize, Change)>,
    ) {
        // Success rate may already have ejected it this interval.
        if hosts[i].is_ejected() {
            return;
        }
        count(stats, kind.stats().0);
        if self.eject(hosts, i, kind, now, stats) {
            changes.push((i, Change::Ejected(kind)));
        }
    }

    /// Envoy's `ejectHost`: the max_ejection_percent cap, then enforcement.
    fn eject(
        &mut self,
        hosts: &mut [HostOutlier],
        i: usize,
        kind: Kind,
        now: Instant,
        stats: Option<&WorkerScope>,
    ) -> bool {
        let c = &self.config;
        let active = hosts.iter().filter(|h| h.is_ejected()).count();
        let percent = 100.0 * (active + 1) as f64 / hosts.len().max(1) as f64;
        let allowed = percent <= f64::from(c.max_ejection_percent.min(100))
            || (c.always_eject_one_host && active == 0);
        if !allowed {
            count(stats, st::OD_EJECTIONS_OVERFLOW);
            return false;
        }
        if self.rng.u32(0..100) >= kind.enforcing(c) {
            return false;
        }
        let jitter_ms = u64::try_from(c.max_ejection_time_jitter.as_millis()).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(self.rng.u64(0..=jitter_ms));
        let (base, max) = (c.base_ejection_time, c.max_ejection_time);
        let host = &mut hosts[i];
        host.ejected_at = Some(now);
        host.num_ejections = host.num_ejections.saturating_add(1);
        host.jitter = jitter;
        if base.saturating_mul(host.multiplier) < max.saturating_add(base) {
            host.multiplier = host.multiplier.saturating_add(1);
        }
        count(stats, st::OD_EJECTIONS_ENFORCED_TOTAL);
        count(stats, kind.stats().1);
        set_active(hosts, stats);
        true
    }
}

/// Envoy's `successRateEjectionThreshold`: mean - factor x population stdev.
pub fn success_rate_threshold(rates: &[f64], factor: f64) -> f64 {
    let n = rates.len().max(1) as f64;
    let mean = rates.iter().sum::<f64>() / n;
    let variance = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    mean - factor * variance.sqrt()
}

fn uneject(host: &mut HostOutlier, now: Instant) {
    host.ejected_at = None;
    host.last_unejection = Some(now);
    // Envoy resets the streaks so that a few new errors do not eject it again.
    host.consume_all();
}

fn set_active(hosts: &[HostOutlier], stats: Option<&WorkerScope>) {
    if let Some(stats) = stats {
        let active = hosts.iter().filter(|h| h.is_ejected()).count();
        stats.get(st::OD_EJECTIONS_ACTIVE).set(active as u64);
    }
}

fn count(stats: Option<&WorkerScope>, index: usize) {
    if let Some(stats) = stats {
        stats.get(index).inc();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stats::Scope;

    fn failure(c5xx: u32, gateway: u32, local: u32) -> Observed {
        Observed::Failure {
            consecutive_5xx: c5xx,
            consecutive_gateway: gateway,
            consecutive_local: local,
        }
    }

    fn scope() -> (Arc<Scope>, WorkerScope) {
        let scope = Arc::new(Scope::new("cluster.t.", &st::DEFS, 1));
        let w = scope.for_worker(0);
        (scope, w)
    }

    fn detector(config: OutlierDetection) -> Detector {
        Detector::new(config, fastrand::Rng::with_seed(1))
    }

    fn all_eject() -> OutlierDetection {
        OutlierDetection {
            max_ejection_percent: 100,
            ..OutlierDetection::default()
        }
    }

    #[test]
    fn consecutive_5xx_sums_the_streaks_of_two_workers() {
        let (scope, w) = scope();
        let mut d = detector(all_eject());
        let mut hosts = vec![HostOutlier::default(); 2];
        let t = Instant::now();
        let obs = |d: &mut Detector, hosts: &mut Vec<HostOutlier>, worker, what| {
            d.observe(hosts, 0, worker, &what, t, Some(&w))
        };
        assert_eq!(obs(&mut d, &mut hosts, 0, failure(1, 0, 0)), None);
        assert_eq!(obs(&mut d, &mut hosts, 1, failure(1, 1, 0)), None);
        assert_eq!(obs(&mut d, &mut hosts, 0, failure(2, 0, 0)), None);
        assert_eq!(obs(&mut d, &mut hosts, 1, failure(2, 2, 0)), None);
        // 2 + 3 = 5: ejected by the fifth failure, whichever worker saw it.
        assert_eq!(
            obs(&mut d, &mut hosts, 0, failure(3, 0, 0)),
            Some(Kind::Consecutive5xx)
        );
        assert!(hosts[0].is_ejected());
        assert_eq!(scope.sum(st::OD_DETECTED_CONSECUTIVE_5XX), 1);
        assert_eq!(scope.sum(st::OD_ENFORCED_CONSECUTIVE_5XX), 1);
        assert_eq!(scope.sum(st::OD_EJECTIONS_ENFORCED_TOTAL), 1);
        assert_eq!(scope.sum(st::OD_EJECTIONS_ACTIVE), 1);
    }

    #[test]
    fn a_reset_zeroes_only_that_workers_streak_and_detection_consumes_streaks() {
        let mut d = detector(all_eject());
        let mut hosts = vec![HostOutlier::default(); 2];
        let t = Instant::now();
        for n in 1..=4 {
            d.observe(&mut hosts, 0, 0, &failure(n, 0, 0), t, None);
        }
        d.observe(&mut hosts, 0, 0, &Observed::Reset, t, None);
        assert_eq!(hosts[0].sum(0), 0);
        for n in 1..=2 {
            d.observe(&mut hosts, 0, 1, &failure(n, 0, 0), t, None);
        }
        d.observe(&mut hosts, 0, 0, &failure(1, 0, 0), t, None);
        d.observe(&mut hosts, 0, 0, &failure(2, 0, 0), t, None);
        assert_eq!(hosts[0].sum(0), 4);
        d.observe(&mut hosts, 0, 1, &Observed::Reset, t, None);
        assert_eq!(hosts[0].sum(0), 2, "worker 0's streak stands");
        // Not enforced: detected, streak consumed, and the next failures count anew.
        let mut d = detector(OutlierDetection {
            enforcing_consecutive_5xx: 0,
            ..all_eject()
        });
        let (scope, w) = scope();
        let mut hosts = vec![HostOutlier::default(); 2];
        for n in 1..=5 {
            assert_eq!(
                d.observe(&mut hosts, 0, 0, &failure(n, 0, 0), t, Some(&w)),
                None
            );
        }
        assert_eq!(scope.sum(st::OD_DETECTED_CONSECUTIVE_5XX), 1);
        assert_eq!(scope.sum(st::OD_ENFORCED_CONSECUTIVE_5XX), 0);
        assert_eq!(hosts[0].sum(0), 0);
        for n in 6..=9 {
            d.observe(&mut hosts, 0, 0, &failure(n, 0, 0), t, Some(&w));
        }
        assert_eq!(scope.sum(st::OD_DETECTED_CONSECUTIVE_5XX), 1);
        d.observe(&mut hosts, 0, 0, &failure(10, 0, 0), t, Some(&w));
        assert_eq!(scope.sum(st::OD_DETECTED_CONSECUTIVE_5XX), 2);
    }

    #[test]
    fn gateway_failures_are_checked_first_and_local_origin_only_with_the_split() {
        let t = Instant::now();
        let mut d = detector(OutlierDetection {
            enforcing_consecutive_gateway_failure: 100,
            ..all_eject()
        });
        let mut hosts = vec![HostOutlier::default(); 1];
        for n in 1..5 {
            d.observe(&mut hosts, 0, 0, &failure(n, n, 0), t, None);
        }
        assert_eq!(
            d.observe(&mut hosts, 0, 0, &failure(5, 5, 0), t, None),
            Some(Kind::ConsecutiveGatewayFailure)
        );
        // Envoy's default: gateway failures detected but not enforced, then 5xx ejects.
        let (scope, w) = scope();
        let mut d = detector(all_eject());
        let mut hosts = vec![HostOutlier::default(); 1];
        for n in 1..5 {
            d.observe(&mut hosts, 0, 0, &failure(n, n, 0), t, Some(&w));
        }
        assert_eq!(
            d.observe(&mut hosts, 0, 0, &failure(5, 5, 0), t, Some(&w)),
            Some(Kind::Consecutive5xx)
        );
        assert_eq!(scope.sum(st::OD_DETECTED_CONSECUTIVE_GATEWAY_FAILURE), 1);
        assert_eq!(scope.sum(st::OD_ENFORCED_CONSECUTIVE_GATEWAY_FAILURE), 0);
        // Local origin counts only with the split.
        let mut d = detector(all_eject());
        let mut hosts = vec![HostOutlier::default(); 1];
        for n in 1..=6 {
            assert_eq!(
                d.observe(&mut hosts, 0, 0, &failure(0, 0, n), t, None),
                None
            );
        }
        let mut d = detector(OutlierDetection {
            split_external_local_origin_errors: true,
            ..all_eject()
        });
        let mut hosts = vec![HostOutlier::default(); 1];
        for n in 1..5 {
            d.observe(&mut hosts, 0, 0, &failure(0, 0, n), t, None);
        }
        assert_eq!(
            d.observe(&mut hosts, 0, 0, &failure(0, 0, 5), t, None),
            Some(Kind::ConsecutiveLocalOriginFailure)
        );
    }

    #[test]
    fn max_ejection_percent_follows_envoys_rule() {
        let t = Instant::now();
        let eject5 = |d: &mut Detector, hosts: &mut Vec<HostOutlier>, i, w: &WorkerScope| {
            let mut got = None;
            for n in 1..=5 {
                got = d.observe(hosts, i, 0, &failure(n, 0, 0), t, Some(w));
            }
            got
        };
        // Envoy's default 10%: with 3 hosts one ejection is 33% > 10%: overflow.
        let (scope, w) = scope();
        let mut d = detector(OutlierDetection::default());
        let mut hosts = vec![HostOutlier::default(); 3];
        assert_eq!(eject5(&mut d, &mut hosts, 0, &w), None);
        assert_eq!(scope.sum(st::OD_EJECTIONS_OVERFLOW), 1);
        // always_eject_one_host lets the first one go.
        let mut d = detector(OutlierDetection {
            always_eject_one_host: true,
            ..OutlierDetection::default()
        });
        assert!(eject5(&mut d, &mut hosts, 0, &w).is_some());
        assert_eq!(eject5(&mut d, &mut hosts, 1, &w), None);
        // 50% of 4 hosts: two may be ejected, not three.
        let mut d = detector(OutlierDetection {
            max_ejection_percent: 50,
            ..OutlierDetection::default()
        });
        let mut hosts = vec![HostOutlier::default(); 4];
        assert!(eject5(&mut d, &mut hosts, 0, &w).is_some());
        assert!(eject5(&mut d, &mut hosts, 1, &w).is_some());
        assert_eq!(eject5(&mut d, &mut hosts, 2, &w), None);
        assert_eq!(scope.sum(st::OD_EJECTIONS_ACTIVE), 2);
    }

    #[test]
    fn ejection_time_grows_is_capped_and_decays() {
        let secs = Duration::from_secs;
        let config = OutlierDetection {
            base_ejection_time: secs(10),
            max_ejection_time: secs(30),
            interval: secs(1),
            ..all_eject()
        };
        let mut d = detector(config);
        let mut hosts = vec![HostOutlier::default(); 1];
        let start = Instant::now();
        let mut now = start;
        let eject = |d: &mut Detector, hosts: &mut Vec<HostOutlier>, now| {
            for n in 1..=5 {
                d.observe(hosts, 0, 0, &failure(n, 0, 0), now, None);
            }
            assert!(hosts[0].is_ejected());
        };
        // Ejected for 10s, 20s, 30s, then 30s (capped); the multiplier stops at 4.
        for (round, (expected, multiplier)) in [(10, 1), (20, 2), (30, 3), (30, 4), (30, 4)]
            .into_iter()
            .enumerate()
        {
            eject(&mut d, &mut hosts, now);
            assert_eq!(hosts[0].multiplier(), multiplier, "round {round}");
            let back = d.tick(
                &mut hosts,
                &[None],
                now + secs(expected) - Duration::from_millis(1),
                None,
            );
            assert!(back.is_empty(), "round {round}: back early");
            now += secs(expected);
            let back = d.tick(&mut hosts, &[None], now, None);
            assert_eq!(back, [(0, Change::Unejected)], "round {round}");
        }
        assert_eq!(hosts[0].num_ejections(), 5);
        // Each interval not ejected (counted from the unejection) takes one off.
        d.tick(&mut hosts, &[None], now, None);
        assert_eq!(
            hosts[0].multiplier(),
            4,
            "not yet an interval since it came back"
        );
        for expected in [3, 2, 1, 0, 0] {
            now += secs(1);
            d.tick(&mut hosts, &[None], now, None);
            assert_eq!(hosts[0].multiplier(), expected);
        }
        eject(&mut d, &mut hosts, now);
        assert!(d.tick(&mut hosts, &[None], now + secs(9), None).is_empty());
        assert_eq!(d.tick(&mut hosts, &[None], now + secs(10), None).len(), 1);
    }

    #[test]
    fn jitter_extends_the_ejection_and_an_active_check_brings_a_host_back() {
        let secs = Duration::from_secs;
        let mut d = detector(OutlierDetection {
            base_ejection_time: secs(10),
            max_ejection_time_jitter: secs(5),
            ..all_eject()
        });
        let now = Instant::now();
        let mut hosts = vec![HostOutlier::default(); 1];
        for n in 1..=5 {
            d.observe(&mut hosts, 0, 0, &failure(n, 0, 0), now, None);
        }
        let jitter = hosts[0].jitter;
        assert!(jitter <= secs(5));
        assert!(d
            .tick(
                &mut hosts,
                &[None],
                now + secs(10) + jitter - Duration::from_millis(1),
                None
            )
            .is_empty());
        assert!(d.active_check_passed(&mut hosts, 0, now, None));
        assert!(!hosts[0].is_ejected());
        assert_eq!(hosts[0].sum(0), 0, "streaks reset on unejection");
        let mut d = detector(OutlierDetection {
            successful_active_health_check_uneject_host: false,
            ..all_eject()
        });
        for n in 6..=10 {
            d.observe(&mut hosts, 0, 0, &failure(n, 0, 0), now, None);
        }
        assert!(hosts[0].is_ejected());
        assert!(!d.active_check_passed(&mut hosts, 0, now, None));
    }

    #[test]
    fn success_rate_threshold_is_envoys_example() {
        // Envoy's comment: {50, 100, 100, 100, 100}: mean 90, stdev 20.
        let t = success_rate_threshold(&[50.0, 100.0, 100.0, 100.0, 100.0], 1.9);
        assert!((t - 52.0).abs() < 1e-9, "{t}");
    }

    fn counts(success: u64, error: u64) -> Option<Counts> {
        Some(Counts {
            success,
            error,
            ..Counts::default()
        })
    }

    /// Two ticks: a baseline, then `volumes` (successes, errors) per host.
    fn interval(
        config: OutlierDetection,
        volumes: &[(u64, u64)],
    ) -> (Vec<(usize, Change)>, Arc<Scope>) {
        let (scope, w) = scope();
        let mut d = detector(config);
        let mut hosts = vec![HostOutlier::default(); volumes.len()];
        let now = Instant::now();
        let zero: Vec<_> = volumes.iter().map(|_| counts(0, 0)).collect();
        assert!(d.tick(&mut hosts, &zero, now, Some(&w)).is_empty());
        let later: Vec<_> = volumes.iter().map(|&(s, e)| counts(s, e)).collect();
        let changes = d.tick(&mut hosts, &later, now + Duration::from_secs(10), Some(&w));
        (changes, scope)
    }

    #[test]
    fn success_rate_ejects_below_mean_minus_stdev_with_envoys_minimums() {
        let ejected = |i| (i, Change::Ejected(Kind::SuccessRate));
        let five = [(100, 0), (100, 0), (100, 0), (100, 0), (50, 50)];
        let (changes, scope) = interval(all_eject(), &five);
        assert_eq!(changes, [ejected(4)]);
        assert_eq!(scope.sum(st::OD_DETECTED_SUCCESS_RATE), 1);
        assert_eq!(scope.sum(st::OD_ENFORCED_SUCCESS_RATE), 1);
        // Four hosts: below success_rate_minimum_hosts (5).
        assert!(interval(all_eject(), &five[1..]).0.is_empty());
        // 99 requests: below success_rate_request_volume (100); the host with too few
        // requests does not count towards the minimum either.
        let mut low = five;
        low[4] = (49, 50);
        assert!(interval(all_eject(), &low).0.is_empty());
        low[4] = (50, 50);
        low[0] = (99, 0);
        assert!(interval(all_eject(), &low).0.is_empty());
        // Spread out: mean 95, stdev 4.47; 1.9 stdev is 86.5 (none), 1.0 is 90.5.
        let spread = [(100, 0), (100, 0), (90, 10), (90, 10), (95, 5)];
        assert!(interval(all_eject(), &spread).0.is_empty());
        let tight = OutlierDetection {
            success_rate_stdev_factor: 1000,
            ..all_eject()
        };
        assert_eq!(interval(tight, &spread).0, [ejected(2), ejected(3)]);
    }

    #[test]
    fn failure_percentage_ejects_at_the_threshold_when_enforced() {
        let config = OutlierDetection {
            enforcing_failure_percentage: 100,
            enforcing_success_rate: 0,
            ..all_eject()
        };
        // 85% failures over 100 requests: at the threshold; 84% not.
        let volumes = [(100, 0), (100, 0), (100, 0), (100, 0), (15, 85), (16, 84)];
        let (changes, scope) = interval(config.clone(), &volumes);
        assert_eq!(changes, [(4, Change::Ejected(Kind::FailurePercentage))]);
        assert_eq!(scope.sum(st::OD_DETECTED_FAILURE_PERCENTAGE), 1);
        // 49 requests: below failure_percentage_request_volume (50).
        let small = [(50, 0), (50, 0), (50, 0), (50, 0), (7, 42)];
        assert!(interval(config.clone(), &small).0.is_empty());
        let enough = [(50, 0), (50, 0), (50, 0), (50, 0), (7, 43)];
        assert_eq!(interval(config.clone(), &enough).0.len(), 1);
        // Envoy's default enforcing_failure_percentage is 0: detected only.
        let (changes, scope) = interval(all_eject(), &[(0, 50); 5]);
        assert!(changes.is_empty());
        assert_eq!(scope.sum(st::OD_DETECTED_FAILURE_PERCENTAGE), 5);
    }

    #[test]
    fn counts_split_external_and_local_origin() {
        let c = Counts {
            success: 80,
            error: 15,
            timeout: 5,
            connect_fail: 10,
        };
        assert_eq!(c.external(false), (80, 100));
        assert_eq!(c.external(true), (80, 85));
        assert_eq!(c.local(), (85, 100));
        let before = Counts { success: 100, ..c };
        assert_eq!(c.since(before).success, 0, "saturates");
    }
}
