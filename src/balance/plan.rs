//! A cluster's balancing plan: everything about a pick that only changes when the members,
//! their health or the settings do (see the `balance` module note).
//!
//! The plan resolves Envoy's priority choice ahead of time into 100 targets, one per
//! percent of the draw (`draw ∈ 0..100` goes to the first priority whose cumulative healthy
//! load exceeds it, then on through the degraded loads). A target is what the pick then
//! balances over: one candidate list ("source"), or a locality set whose weighted choice
//! yields a source; a priority in panic has a single source of all its non-excluded hosts.
//! When all 100 targets are the same (one priority, healthy, the usual case) the picker
//! skips the draw: a round-robin pick then costs what the old per-worker balancer did.

use super::locality::{effective_weight, hash_shares};
use super::maglev::Maglev;
use super::priority::{self, Counts};
use super::ring::Ring;
use super::{HostInput, PlanSettings, Policy, Usability, MAX_PRIORITY};

/// Where one percent of the priority draw goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Nothing can be picked (e.g. nothing is healthy and panic is disabled).
    Nothing,
    /// Balance over one source; `panic` marks a priority in panic (for the stats).
    Source { id: u32, panic: bool },
    /// Pick a locality of this set first.
    Localities { id: u32 },
}

/// One list of candidates and what a pick over it needs.
#[derive(Debug)]
pub(crate) struct Source {
    /// Member indices (positions in the hosts given to `Plan::build`).
    pub members: Box<[u32]>,
    /// The members' weights (each at least 1) and their sum, for the weighted policies.
    pub weights: Box<[i64]>,
    pub total: i64,
    /// Every weight is the same: round robin and least request need no schedule.
    pub equal: bool,
    pub table: Table,
}

/// The hash policies' lookup structure of a source.
#[derive(Debug)]
pub(crate) enum Table {
    None,
    Ring(Ring),
    Maglev(Maglev),
}

/// The localities of one priority's healthy (or degraded) hosts and their effective weights.
#[derive(Debug)]
pub(crate) struct LocalitySet {
    pub sources: Box<[u32]>,
    pub weights: Box<[i64]>,
    pub total: i64,
}

/// The immutable balancing plan of one cluster. Build it off the workers; share it.
#[derive(Debug)]
pub struct Plan {
    pub(crate) id: u64,
    pub(crate) policy: Policy,
    pub(crate) targets: Box<[Target]>,
    /// Set when every target is the same: no draw needed.
    pub(crate) fixed: Option<Target>,
    /// Set when every pick is this one member (one endpoint, or one that can be
    /// picked, outside panic): no policy runs at all.
    pub(crate) only: Option<u32>,
    pub(crate) sources: Vec<Source>,
    pub(crate) localities: Vec<LocalitySet>,
    healthy_loads: Vec<u32>,
    degraded_loads: Vec<u32>,
    panic: Vec<bool>,
    members: usize,
    healthy: usize,
    degraded: usize,
    excluded: usize,
}

/// The size of a hash policy's tables (Envoy's `ring_hash_lb.*` / `maglev_lb.*` gauges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashTableStats {
    /// Entries of the largest table (ring entries, or Maglev slots).
    pub size: u64,
    /// The fewest and most entries any host got, over every table of the plan.
    pub min_per_host: u64,
    pub max_per_host: u64,
}

impl Plan {
    /// The plan of `hosts` (member `i` is `hosts[i]`) under `settings`.
    pub fn build(hosts: &[HostInput<'_>], settings: &PlanSettings) -> Plan {
        let priority_of = |h: &HostInput<'_>| h.priority.min(MAX_PRIORITY) as usize;
        let levels = hosts.iter().map(|h| priority_of(h) + 1).max().unwrap_or(0);
        let mut counts = vec![Counts::default(); levels];
        for h in hosts {
            let c = &mut counts[priority_of(h)];
            match h.usability {
                Usability::Excluded => continue,
                Usability::Healthy => c.healthy += 1,
                Usability::Degraded => c.degraded += 1,
                Usability::Unhealthy => {}
            }
            c.total += 1;
        }
        let threshold = settings.panic_threshold.clamp(0.0, 100.0).round() as u32;
        let loads = priority::loads(&counts, settings.overprovisioning_factor, threshold);

        let mut builder = Builder {
            hosts,
            settings,
            sources: Vec::new(),
            localities: Vec::new(),
        };
        // Per priority: the target of its healthy share and of its degraded share.
        let mut per_level = Vec::with_capacity(levels);
        for (p, &panic) in loads.panic.iter().enumerate() {
            let in_level = |u: fn(Usability) -> bool| -> Vec<u32> {
                (0..hosts.len() as u32)
                    .filter(|&i| {
                        let h = &hosts[i as usize];
                        priority_of(h) == p && u(h.usability)
                    })
                    .collect()
            };
            if panic {
                let all = in_level(|u| u != Usability::Excluded);
                let target = builder.panic(all);
                per_level.push((target, target));
            } else {
                let healthy = builder.tier(p, in_level(|u| u == Usability::Healthy));
                let degraded = builder.tier(p, in_level(|u| u == Usability::Degraded));
                per_level.push((healthy, degraded));
            }
        }

        let mut targets = Vec::with_capacity(100);
        for draw in 0..100u32 {
            let mut cumulative = 0;
            let mut found = Target::Nothing;
            let healthy = loads.healthy.iter().map(|&l| (l, true));
            let degraded = loads.degraded.iter().map(|&l| (l, false));
            for (p, (load, is_healthy)) in healthy.enumerate().chain(degraded.enumerate()) {
                cumulative += load;
                if draw < cumulative {
                    let (h, d) = per_level[p];
                    found = if is_healthy { h } else { d };
                    break;
                }
            }
            targets.push(found);
        }
        let fixed = targets
            .iter()
            .all(|t| Some(t) == targets.first())
            .then(|| targets.first().copied().unwrap_or(Target::Nothing));

        let only = match fixed {
            Some(Target::Source { id, panic: false }) => builder
                .sources
                .get(id as usize)
                .filter(|s| s.members.len() == 1)
                .and_then(|s| s.members.first().copied()),
            _ => None,
        };

        Plan {
            only,
            // Plans are told apart by a random number (no shared counter: workers and
            // control threads share no read-modify-write), so that a picker given another
            // plan than its own starts over instead of indexing a different layout.
            id: fastrand::u64(..),
            policy: settings.policy.clone(),
            targets: targets.into_boxed_slice(),
            fixed,
            sources: builder.sources,
            localities: builder.localities,
            healthy_loads: loads.healthy,
            degraded_loads: loads.degraded,
            panic: loads.panic,
            members: hosts.len(),
            healthy: hosts
                .iter()
                .filter(|h| h.usability == Usability::Healthy)
                .count(),
            degraded: hosts
                .iter()
                .filter(|h| h.usability == Usability::Degraded)
                .count(),
            excluded: hosts
                .iter()
                .filter(|h| h.usability == Usability::Excluded)
                .count(),
        }
    }

    /// Each priority's share of the load going to healthy hosts (percent). With the
    /// degraded loads it sums to 100 (or every entry is 0 when there are no members).
    pub fn priority_loads(&self) -> &[u32] {
        &self.healthy_loads
    }

    /// Each priority's share of the load going to degraded hosts (percent).
    pub fn degraded_loads(&self) -> &[u32] {
        &self.degraded_loads
    }

    /// Whether `priority` is in panic (balances over all its hosts); false past the last.
    pub fn in_panic(&self, priority: usize) -> bool {
        self.panic.get(priority).copied().unwrap_or(false)
    }

    /// Nothing can be picked: no members, all excluded, or nothing healthy with panic off.
    pub fn is_empty(&self) -> bool {
        self.fixed == Some(Target::Nothing)
    }

    /// The number of members the plan was built over (pick answers are below it).
    pub fn members(&self) -> usize {
        self.members
    }

    /// Members marked `Healthy`.
    pub fn healthy_count(&self) -> usize {
        self.healthy
    }

    /// Members marked `Degraded`.
    pub fn degraded_count(&self) -> usize {
        self.degraded
    }

    /// Members marked `Excluded`.
    pub fn excluded_count(&self) -> usize {
        self.excluded
    }

    /// The number of priority levels (the highest priority given, plus one).
    pub fn priorities(&self) -> usize {
        self.healthy_loads.len()
    }

    /// The policy the plan picks with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The sizes of the ring hash or Maglev tables; None for the other policies or when
    /// no table was built.
    pub fn hash_table_stats(&self) -> Option<HashTableStats> {
        let mut stats: Option<HashTableStats> = None;
        for source in &self.sources {
            let (size, (min, max)) = match &source.table {
                Table::None => continue,
                Table::Ring(r) => (r.len() as u64, r.per_host()),
                Table::Maglev(m) => (m.len() as u64, m.per_host()),
            };
            let s = stats.get_or_insert(HashTableStats {
                size,
                min_per_host: min,
                max_per_host: max,
            });
            s.size = s.size.max(size);
            s.min_per_host = s.min_per_host.min(min);
            s.max_per_host = s.max_per_host.max(max);
        }
        stats
    }
}

struct Builder<'h, 'a> {
    hosts: &'h [HostInput<'a>],
    settings: &'h PlanSettings,
    sources: Vec<Source>,
    localities: Vec<LocalitySet>,
}

impl Builder<'_, '_> {
    fn weight(&self, member: u32) -> i64 {
        i64::from(self.hosts[member as usize].weight.max(1))
    }

    fn locality_weight(&self, member: u32) -> u32 {
        let locality = self.hosts[member as usize].locality as usize;
        self.settings
            .locality_weights
            .get(locality)
            .copied()
            .unwrap_or(0)
    }

    /// One source over `members` (hash tables weighted by host weight alone).
    fn flat(&mut self, members: Vec<u32>, panic: bool) -> Target {
        if members.is_empty() {
            return Target::Nothing;
        }
        let shares = if self.settings.policy.is_hashing() {
            let total: i64 = members.iter().map(|&m| self.weight(m)).sum();
            members
                .iter()
                .map(|&m| self.weight(m) as f64 / total as f64)
                .collect()
        } else {
            Vec::new()
        };
        let id = self.source(members, &shares);
        Target::Source { id, panic }
    }

    /// The target of a priority in panic: all its non-excluded hosts, localities ignored
    /// except in the hash policies' shares (Envoy builds their panic tables over the hosts
    /// per locality too).
    fn panic(&mut self, members: Vec<u32>) -> Target {
        if !members.is_empty()
            && self.settings.locality_weighted
            && self.settings.policy.is_hashing()
        {
            let id = self.locality_hashed(members);
            return Target::Source { id, panic: true };
        }
        self.flat(members, true)
    }

    /// A hash policy's source whose shares fold in the locality weights.
    fn locality_hashed(&mut self, members: Vec<u32>) -> u32 {
        let triples: Vec<(u32, u32, u32)> = members
            .iter()
            .map(|&m| {
                let h = &self.hosts[m as usize];
                (self.locality_weight(m), h.weight, h.locality)
            })
            .collect();
        let shares = hash_shares(&triples);
        self.source(members, &shares)
    }

    /// The target of one priority's healthy (or degraded) hosts: localities first when
    /// locality-weighted, else one source.
    fn tier(&mut self, priority: usize, members: Vec<u32>) -> Target {
        if members.is_empty() || !self.settings.locality_weighted {
            return self.flat(members, false);
        }
        if self.settings.policy.is_hashing() {
            let id = self.locality_hashed(members);
            return Target::Source { id, panic: false };
        }
        // Group by locality, in order of first appearance.
        let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
        for &m in &members {
            let locality = self.hosts[m as usize].locality;
            match groups.iter_mut().find(|g| g.0 == locality) {
                Some(g) => g.1.push(m),
                None => groups.push((locality, vec![m])),
            }
        }
        let factor = self.settings.overprovisioning_factor;
        let mut weighted = Vec::new();
        for (locality, group) in groups {
            // The locality's non-excluded hosts in this priority: the denominator.
            let hosts = self
                .hosts
                .iter()
                .filter(|h| {
                    h.priority.min(MAX_PRIORITY) as usize == priority
                        && h.locality == locality
                        && h.usability != Usability::Excluded
                })
                .count() as u64;
            let weight = self.locality_weight(group[0]);
            let effective = effective_weight(weight, group.len() as u64, hosts, factor);
            if effective > 0 {
                weighted.push((group, effective as i64));
            }
        }
        if weighted.is_empty() {
            // No locality carries weight: Envoy then balances over the hosts directly.
            return self.flat(members, false);
        }
        let mut sources = Vec::with_capacity(weighted.len());
        let mut weights = Vec::with_capacity(weighted.len());
        for (group, effective) in weighted {
            sources.push(self.source(group, &[]));
            weights.push(effective);
        }
        let id = self.localities.len() as u32;
        self.localities.push(LocalitySet {
            total: weights.iter().sum(),
            sources: sources.into_boxed_slice(),
            weights: weights.into_boxed_slice(),
        });
        Target::Localities { id }
    }

    /// Adds a source; `shares` (one per member) is only read by the hash policies.
    fn source(&mut self, members: Vec<u32>, shares: &[f64]) -> u32 {
        let weights: Box<[i64]> = members.iter().map(|&m| self.weight(m)).collect();
        let table = match self.settings.policy {
            Policy::RingHash {
                min_ring_size,
                max_ring_size,
            } => Table::Ring(Ring::build(
                &self.keyed(&members, shares),
                min_ring_size,
                max_ring_size,
            )),
            Policy::Maglev { table_size } => {
                Table::Maglev(Maglev::build(&self.keyed(&members, shares), table_size))
            }
            _ => Table::None,
        };
        let id = self.sources.len() as u32;
        self.sources.push(Source {
            equal: weights.windows(2).all(|w| w[0] == w[1]),
            total: weights.iter().sum(),
            weights,
            members: members.into_boxed_slice(),
            table,
        });
        id
    }

    fn keyed<'k>(&'k self, members: &[u32], shares: &[f64]) -> Vec<(u32, &'k str, f64)> {
        members
            .iter()
            .zip(shares)
            .map(|(&m, &s)| (m, self.hosts[m as usize].key, s))
            .collect()
    }
}
