//! The cluster stats the health thread writes: Envoy's `health_check.*` and
//! `outlier_detection.*` (names from Envoy's `ALL_HEALTH_CHECKER_STATS` and
//! `ALL_OUTLIER_DETECTION_STATS`; the deprecated `ejections_total`,
//! `ejections_success_rate` and `ejections_consecutive_5xx` are left out), plus
//! ringway's `outlier_detection.detection_latency_us`.
//!
//! [`Watched::stats`](super::Watched) is a scope (prefix `cluster.<name>.`) whose
//! definitions are exactly [`DEFS`]; the health thread is its only writer (one cell
//! block: worker index 0 of a one-worker scope, or any block reserved for it), so
//! counters are plain single-writer cells like every other stat.

use crate::stats::{Kind, StatDef};

const fn counter(name: &'static str) -> StatDef {
    StatDef {
        name,
        kind: Kind::Counter,
        per_worker: false,
        any: false,
    }
}

const fn gauge(name: &'static str) -> StatDef {
    StatDef {
        name,
        kind: Kind::Gauge,
        per_worker: false,
        any: false,
    }
}

/// Checks started.
pub const HC_ATTEMPT: usize = 0;
/// Checks passed.
pub const HC_SUCCESS: usize = 1;
/// Checks failed, whatever the reason (network and passive failures included).
pub const HC_FAILURE: usize = 2;
/// Failures reported by the proxy (`x-envoy-immediate-health-check-fail` on a response).
pub const HC_PASSIVE_FAILURE: usize = 3;
/// Failures to connect, resets and timeouts.
pub const HC_NETWORK_FAILURE: usize = 4;
/// Envoy's service-name verification count; ringway does not verify (always 0).
pub const HC_VERIFY_CLUSTER: usize = 5;
/// Hosts not failing active checks now (gauge).
pub const HC_HEALTHY: usize = 6;
/// Hosts whose check passed with `x-envoy-degraded` (gauge).
pub const HC_DEGRADED: usize = 7;
/// Hosts ejected now (gauge).
pub const OD_EJECTIONS_ACTIVE: usize = 8;
/// Ejections refused by `max_ejection_percent`.
pub const OD_EJECTIONS_OVERFLOW: usize = 9;
/// Ejections carried out, every kind.
pub const OD_EJECTIONS_ENFORCED_TOTAL: usize = 10;
/// Per kind: detected (whether or not enforced), then enforced.
pub const OD_DETECTED_CONSECUTIVE_5XX: usize = 11;
pub const OD_ENFORCED_CONSECUTIVE_5XX: usize = 12;
pub const OD_DETECTED_CONSECUTIVE_GATEWAY_FAILURE: usize = 13;
pub const OD_ENFORCED_CONSECUTIVE_GATEWAY_FAILURE: usize = 14;
pub const OD_DETECTED_CONSECUTIVE_LOCAL_ORIGIN_FAILURE: usize = 15;
pub const OD_ENFORCED_CONSECUTIVE_LOCAL_ORIGIN_FAILURE: usize = 16;
pub const OD_DETECTED_SUCCESS_RATE: usize = 17;
pub const OD_ENFORCED_SUCCESS_RATE: usize = 18;
pub const OD_DETECTED_FAILURE_PERCENTAGE: usize = 19;
pub const OD_ENFORCED_FAILURE_PERCENTAGE: usize = 20;
pub const OD_DETECTED_LOCAL_ORIGIN_SUCCESS_RATE: usize = 21;
pub const OD_ENFORCED_LOCAL_ORIGIN_SUCCESS_RATE: usize = 22;
pub const OD_DETECTED_LOCAL_ORIGIN_FAILURE_PERCENTAGE: usize = 23;
pub const OD_ENFORCED_LOCAL_ORIGIN_FAILURE_PERCENTAGE: usize = 24;
/// ringway's own (gauge): the last consecutive-error ejection's time from the
/// worker's observation to the flags event leaving the health thread, in µs.
pub const OD_DETECTION_LATENCY_US: usize = 25;

/// The definitions, in index order.
pub static DEFS: [StatDef; 26] = [
    counter("health_check.attempt"),
    counter("health_check.success"),
    counter("health_check.failure"),
    counter("health_check.passive_failure"),
    counter("health_check.network_failure"),
    counter("health_check.verify_cluster"),
    gauge("health_check.healthy"),
    gauge("health_check.degraded"),
    gauge("outlier_detection.ejections_active"),
    counter("outlier_detection.ejections_overflow"),
    counter("outlier_detection.ejections_enforced_total"),
    counter("outlier_detection.ejections_detected_consecutive_5xx"),
    counter("outlier_detection.ejections_enforced_consecutive_5xx"),
    counter("outlier_detection.ejections_detected_consecutive_gateway_failure"),
    counter("outlier_detection.ejections_enforced_consecutive_gateway_failure"),
    counter("outlier_detection.ejections_detected_consecutive_local_origin_failure"),
    counter("outlier_detection.ejections_enforced_consecutive_local_origin_failure"),
    counter("outlier_detection.ejections_detected_success_rate"),
    counter("outlier_detection.ejections_enforced_success_rate"),
    counter("outlier_detection.ejections_detected_failure_percentage"),
    counter("outlier_detection.ejections_enforced_failure_percentage"),
    counter("outlier_detection.ejections_detected_local_origin_success_rate"),
    counter("outlier_detection.ejections_enforced_local_origin_success_rate"),
    counter("outlier_detection.ejections_detected_local_origin_failure_percentage"),
    counter("outlier_detection.ejections_enforced_local_origin_failure_percentage"),
    gauge("outlier_detection.detection_latency_us"),
];

/// The design's name for the same array (the lead splices it into the cluster scope).
pub use self::DEFS as HEALTH_DEFS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_name_their_stats() {
        assert_eq!(DEFS[HC_ATTEMPT].name, "health_check.attempt");
        assert_eq!(DEFS[HC_DEGRADED].name, "health_check.degraded");
        assert_eq!(
            DEFS[OD_EJECTIONS_ACTIVE].name,
            "outlier_detection.ejections_active"
        );
        assert_eq!(
            DEFS[OD_ENFORCED_LOCAL_ORIGIN_FAILURE_PERCENTAGE].name,
            "outlier_detection.ejections_enforced_local_origin_failure_percentage"
        );
        assert_eq!(
            DEFS[OD_DETECTION_LATENCY_US].name,
            "outlier_detection.detection_latency_us"
        );
        assert_eq!(DEFS.len(), OD_DETECTION_LATENCY_US + 1);
        assert!(std::ptr::eq(&HEALTH_DEFS, &DEFS));
        let mut names: Vec<_> = DEFS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DEFS.len());
    }
}
