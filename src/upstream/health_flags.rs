//! A host's health flags: why it is not (fully) usable, as Envoy records them.
//!
//! Envoy keeps one bit set per host (`Host::HealthFlag`, source/common/upstream/
//! host_utility.cc) and prints it on `/clusters` as `healthy` when no bit is set, else
//! as `/flag_a/flag_b` in the enum's order. The same bits decide how the balancer may
//! use the host (Envoy's `coarseHealth` and `excludeBasedOnHealthFlag`):
//!
//! - unhealthy: FAILED_ACTIVE_HC, FAILED_OUTLIER_CHECK, FAILED_EDS_HEALTH or
//!   EDS_STATUS_DRAINING is set (only picked in panic mode);
//! - excluded: PENDING_ACTIVE_HC, EXCLUDED_VIA_IMMEDIATE_HC_FAIL or EDS_STATUS_DRAINING
//!   (never picked, and not counted in its priority's size: a host waiting for its
//!   first check, or one that asked to be taken out with
//!   `x-envoy-immediate-health-check-fail`, does not push a priority into panic);
//! - degraded: DEGRADED_ACTIVE_HC or DEGRADED_EDS_HEALTH (used after healthy hosts);
//! - else healthy.
//!
//! Exclusion wins over the rest, then unhealthy, then degraded.

use crate::balance::Usability;

use crate::config::DeclaredHealth;

/// A host's health flags (a bit set; [`HealthFlags::default`] is healthy).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Hash)]
pub struct HealthFlags(u16);

impl HealthFlags {
    /// Failing active health checks (or not yet passed one).
    pub const FAILED_ACTIVE_HC: HealthFlags = HealthFlags(0x1);
    /// Ejected by outlier detection.
    pub const FAILED_OUTLIER_CHECK: HealthFlags = HealthFlags(0x2);
    /// Declared unhealthy by its config (Envoy: EDS `UNHEALTHY`/`TIMEOUT`).
    pub const FAILED_EDS_HEALTH: HealthFlags = HealthFlags(0x4);
    /// Its health check passed with `x-envoy-degraded`.
    pub const DEGRADED_ACTIVE_HC: HealthFlags = HealthFlags(0x8);
    /// Declared degraded by its config.
    pub const DEGRADED_EDS_HEALTH: HealthFlags = HealthFlags(0x10);
    /// Removed by discovery but kept while it passes checks (Envoy; unused by ringway yet).
    pub const PENDING_DYNAMIC_REMOVAL: HealthFlags = HealthFlags(0x20);
    /// Waiting for its first active health check.
    pub const PENDING_ACTIVE_HC: HealthFlags = HealthFlags(0x40);
    /// Answered with `x-envoy-immediate-health-check-fail`.
    pub const EXCLUDED_VIA_IMMEDIATE_HC_FAIL: HealthFlags = HealthFlags(0x80);
    /// Its last active health check timed out (set only with FAILED_ACTIVE_HC).
    pub const ACTIVE_HC_TIMEOUT: HealthFlags = HealthFlags(0x100);
    /// Declared draining by its config.
    pub const EDS_DRAINING: HealthFlags = HealthFlags(0x200);

    /// Envoy's order and names, as `/clusters` prints them.
    const NAMES: [(HealthFlags, &'static str); 10] = [
        (Self::FAILED_ACTIVE_HC, "failed_active_hc"),
        (Self::FAILED_OUTLIER_CHECK, "failed_outlier_check"),
        (Self::FAILED_EDS_HEALTH, "failed_eds_health"),
        (Self::DEGRADED_ACTIVE_HC, "degraded_active_hc"),
        (Self::DEGRADED_EDS_HEALTH, "degraded_eds_health"),
        (Self::PENDING_DYNAMIC_REMOVAL, "pending_dynamic_removal"),
        (Self::PENDING_ACTIVE_HC, "pending_active_hc"),
        (
            Self::EXCLUDED_VIA_IMMEDIATE_HC_FAIL,
            "excluded_via_immediate_hc_fail",
        ),
        (Self::ACTIVE_HC_TIMEOUT, "active_hc_timeout"),
        (Self::EDS_DRAINING, "eds_status_draining"),
    ];

    const UNHEALTHY: u16 = Self::FAILED_ACTIVE_HC.0
        | Self::FAILED_OUTLIER_CHECK.0
        | Self::FAILED_EDS_HEALTH.0
        | Self::EDS_DRAINING.0;
    const EXCLUDED: u16 =
        Self::PENDING_ACTIVE_HC.0 | Self::EXCLUDED_VIA_IMMEDIATE_HC_FAIL.0 | Self::EDS_DRAINING.0;
    const DEGRADED: u16 = Self::DEGRADED_ACTIVE_HC.0 | Self::DEGRADED_EDS_HEALTH.0;

    /// No flag set.
    pub const fn empty() -> HealthFlags {
        HealthFlags(0)
    }

    /// The raw bits (Envoy's values).
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: HealthFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: HealthFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: HealthFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: HealthFlags) {
        self.0 &= !other.0;
    }

    /// Sets or clears the flags of `other`.
    pub fn set(&mut self, other: HealthFlags, on: bool) {
        if on {
            self.insert(other);
        } else {
            self.remove(other);
        }
    }

    /// Both sets' flags.
    #[must_use]
    pub const fn union(self, other: HealthFlags) -> HealthFlags {
        HealthFlags(self.0 | other.0)
    }

    /// No flag that makes the host unhealthy, excluded or degraded.
    pub const fn is_healthy(self) -> bool {
        self.0 & (Self::UNHEALTHY | Self::EXCLUDED | Self::DEGRADED) == 0
    }

    /// How the balancer may use the host (Envoy's rules, in the module note).
    pub fn usability(self) -> Usability {
        if self.0 & Self::EXCLUDED != 0 {
            Usability::Excluded
        } else if self.0 & Self::UNHEALTHY != 0 {
            Usability::Unhealthy
        } else if self.0 & Self::DEGRADED != 0 {
            Usability::Degraded
        } else {
            Usability::Healthy
        }
    }

    /// `healthy`, or the set flags as `/clusters` prints them
    /// (`/failed_active_hc/failed_outlier_check`, in Envoy's order).
    pub fn envoy_text(self) -> String {
        let mut text = String::new();
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                text.push('/');
                text.push_str(name);
            }
        }
        if text.is_empty() {
            text.push_str("healthy");
        }
        text
    }

    /// The flags an endpoint's declared health sets (Envoy's EDS `health_status`:
    /// UNHEALTHY and TIMEOUT fail, DRAINING drains, DEGRADED degrades).
    pub fn declared(d: &DeclaredHealth) -> HealthFlags {
        match d {
            DeclaredHealth::Healthy => HealthFlags::empty(),
            DeclaredHealth::Unhealthy => HealthFlags::FAILED_EDS_HEALTH,
            DeclaredHealth::Draining => HealthFlags::EDS_DRAINING,
            DeclaredHealth::Degraded => HealthFlags::DEGRADED_EDS_HEALTH,
        }
    }
}

impl std::fmt::Display for HealthFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.envoy_text())
    }
}

impl std::ops::BitOr for HealthFlags {
    type Output = HealthFlags;
    fn bitor(self, rhs: HealthFlags) -> HealthFlags {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for HealthFlags {
    fn bitor_assign(&mut self, rhs: HealthFlags) {
        self.insert(rhs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    type F = HealthFlags;

    #[test]
    fn text_is_envoys_in_envoys_order() {
        assert_eq!(F::empty().envoy_text(), "healthy");
        assert_eq!(
            (F::FAILED_OUTLIER_CHECK | F::FAILED_ACTIVE_HC).envoy_text(),
            "/failed_active_hc/failed_outlier_check"
        );
        assert_eq!(
            (F::ACTIVE_HC_TIMEOUT | F::PENDING_ACTIVE_HC | F::FAILED_ACTIVE_HC).to_string(),
            "/failed_active_hc/pending_active_hc/active_hc_timeout"
        );
        assert_eq!(
            (F::EDS_DRAINING | F::EXCLUDED_VIA_IMMEDIATE_HC_FAIL | F::DEGRADED_EDS_HEALTH)
                .envoy_text(),
            "/degraded_eds_health/excluded_via_immediate_hc_fail/eds_status_draining"
        );
        assert_eq!(
            (F::FAILED_EDS_HEALTH | F::DEGRADED_ACTIVE_HC | F::PENDING_DYNAMIC_REMOVAL)
                .envoy_text(),
            "/failed_eds_health/degraded_active_hc/pending_dynamic_removal"
        );
    }

    #[test]
    fn usability_follows_envoys_partition() {
        assert_eq!(F::empty().usability(), Usability::Healthy);
        assert_eq!(F::DEGRADED_ACTIVE_HC.usability(), Usability::Degraded);
        assert_eq!(F::DEGRADED_EDS_HEALTH.usability(), Usability::Degraded);
        assert_eq!(F::FAILED_ACTIVE_HC.usability(), Usability::Unhealthy);
        assert_eq!(
            (F::FAILED_ACTIVE_HC | F::DEGRADED_ACTIVE_HC).usability(),
            Usability::Unhealthy
        );
        assert_eq!(F::FAILED_OUTLIER_CHECK.usability(), Usability::Unhealthy);
        assert_eq!(F::FAILED_EDS_HEALTH.usability(), Usability::Unhealthy);
        assert_eq!(
            (F::FAILED_ACTIVE_HC | F::PENDING_ACTIVE_HC).usability(),
            Usability::Excluded
        );
        assert_eq!(
            (F::FAILED_ACTIVE_HC | F::EXCLUDED_VIA_IMMEDIATE_HC_FAIL).usability(),
            Usability::Excluded
        );
        assert_eq!(F::EDS_DRAINING.usability(), Usability::Excluded);
        assert!(F::empty().is_healthy());
        assert!(!F::DEGRADED_EDS_HEALTH.is_healthy());
        assert!(!F::ACTIVE_HC_TIMEOUT.union(F::FAILED_ACTIVE_HC).is_healthy());
    }

    #[test]
    fn declared_health_maps_to_eds_flags() {
        assert_eq!(F::declared(&DeclaredHealth::Healthy), F::empty());
        assert_eq!(
            F::declared(&DeclaredHealth::Unhealthy),
            F::FAILED_EDS_HEALTH
        );
        assert_eq!(F::declared(&DeclaredHealth::Draining), F::EDS_DRAINING);
        assert_eq!(
            F::declared(&DeclaredHealth::Degraded),
            F::DEGRADED_EDS_HEALTH
        );
    }

    #[test]
    fn set_operations() {
        let mut f = F::empty();
        f.insert(F::FAILED_ACTIVE_HC | F::ACTIVE_HC_TIMEOUT);
        assert!(f.contains(F::FAILED_ACTIVE_HC));
        assert!(!f.contains(F::FAILED_ACTIVE_HC | F::PENDING_ACTIVE_HC));
        assert!(f.intersects(F::FAILED_ACTIVE_HC | F::PENDING_ACTIVE_HC));
        f.remove(F::ACTIVE_HC_TIMEOUT);
        assert_eq!(f, F::FAILED_ACTIVE_HC);
        f.set(F::FAILED_OUTLIER_CHECK, true);
        f.set(F::FAILED_ACTIVE_HC, false);
        assert_eq!(f.bits(), 0x2);
    }
}
