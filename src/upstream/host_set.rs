//! A cluster's endpoints as every worker balances over them: the members, each one's
//! health flags, and the plan the balancer follows (priority loads, panic, localities,
//! hash tables), built together off the workers and shared read-only.
//!
//! Design: whatever changes what a pick may choose — discovery's members, an active
//! health check's verdict, an outlier ejection, a reload — produces a whole new
//! [`HostSet`] on the control thread; building the plan there (a Maglev table is 65,537
//! slots) keeps that work off the request path, and one `Arc` per change reaches every
//! worker by message. A worker never reads health from shared memory: it picks from the
//! last set it was given.

use std::{collections::HashMap, sync::Arc};

use super::{HealthFlags, Member, Members};
use crate::{
    balance::{HostInput, Plan, PlanSettings},
    config::{self, Balancing},
};

/// The host sets of every cluster, by name: what a snapshot is built with.
pub type HostSets = Arc<HashMap<String, Arc<HostSet>>>;

/// A cluster's members, their health, and the plan built from both.
#[derive(Debug)]
pub struct HostSet {
    pub members: Members,
    /// One per member, in its order.
    pub flags: Arc<[HealthFlags]>,
    pub plan: Plan,
}

impl HostSet {
    /// The set of `members` with `flags` (one per member), balanced as `balancing` says.
    pub fn build(members: Members, flags: Arc<[HealthFlags]>, balancing: &Balancing) -> HostSet {
        debug_assert_eq!(members.len(), flags.len());
        // Localities are numbered in order of first appearance; a locality's weight is
        // the one its first member carries (Envoy's is per `LocalityLbEndpoints`; the
        // config refuses two weights for one locality and priority).
        let mut localities: Vec<(u32, &config::Locality)> = Vec::new();
        let mut locality_weights = Vec::new();
        let keys: Vec<String> = members.iter().map(|m| m.address.to_string()).collect();
        let inputs: Vec<HostInput<'_>> = members
            .iter()
            .zip(flags.iter())
            .zip(&keys)
            .map(|((m, f), key)| {
                // A locality's weight is per priority (a locality may weigh differently
                // in a failover priority), so a (priority, locality) pair is one entry.
                let place = (m.priority, &*m.locality);
                let locality = match localities.iter().position(|l| *l == place) {
                    Some(i) => i,
                    None => {
                        localities.push(place);
                        locality_weights.push(m.locality_weight.unwrap_or(1));
                        localities.len() - 1
                    }
                };
                HostInput {
                    weight: m.weight,
                    priority: m.priority,
                    locality: u32::try_from(locality).unwrap_or(u32::MAX),
                    key,
                    usability: f.usability(),
                }
            })
            .collect();
        let settings = PlanSettings {
            policy: balancing.policy.clone(),
            panic_threshold: balancing.panic_threshold,
            overprovisioning_factor: balancing.overprovisioning_factor,
            locality_weighted: balancing.locality_weighted,
            locality_weights,
        };
        let plan = Plan::build(&inputs, &settings);
        HostSet {
            members,
            flags,
            plan,
        }
    }

    /// The set of `members` before any check has run: the health the config declares,
    /// and, when the cluster has an active health check, each endpoint failed until its
    /// first check passes (Envoy's start: a start or reload waits for the first round;
    /// past that wait, unchecked endpoints are balanced over only in panic mode).
    pub fn initial(members: Members, cluster: &config::Cluster) -> HostSet {
        let flags: Arc<[HealthFlags]> = members
            .iter()
            .map(|m| initial_flags(m, cluster.health_check.is_some()))
            .collect();
        HostSet::build(members, flags, &cluster.balancing)
    }

    /// Members whose flags are those of a healthy endpoint.
    pub fn healthy(&self) -> usize {
        self.flags.iter().filter(|f| f.is_healthy()).count()
    }
}

/// A new member's flags: what the config declares, and failed when it is to be checked
/// actively. (Not `PENDING_ACTIVE_HC`, which would exclude it: Envoy sets that only
/// with `ignore_new_hosts_until_first_hc`, which ringway refuses.)
pub fn initial_flags(member: &Member, checked: bool) -> HealthFlags {
    let mut flags = HealthFlags::declared(&member.declared);
    if checked {
        flags.insert(HealthFlags::FAILED_ACTIVE_HC);
    }
    flags
}
