//! The load-balancing engine: which member of a cluster gets the next request.
//!
//! Sans-IO and split in two, like Envoy's thread-aware balancers:
//!
//! - [`Plan`] is built off the workers (the control thread) from the members, their health
//!   and the cluster's settings, whenever one of those changes. It holds everything that
//!   does not change per request: the load of each priority ([`priority`]), which priority
//!   is in panic, the localities' effective weights ([`locality`]), the candidate lists and
//!   the ring hash ([`ring`]) or Maglev ([`maglev`]) tables. It is immutable, `Send + Sync`,
//!   and shared by every worker behind an `Arc`; building may allocate freely.
//! - [`Picker`] is one worker's mutable state over one plan: its random numbers (seeded per
//!   worker), round-robin positions ([`wrr`]) and least-request schedules ([`least`]).
//!   `Picker::pick` never allocates and takes no lock: workers share nothing on the request
//!   path.
//!
//! A pick follows Envoy's three steps (docs: load_balancing/locality_weight): choose a
//! priority (by a draw from 1..=100 against the priority loads, or by the request's hash for
//! the hash policies), then, with locality-weighted balancing, a locality inside it, then a
//! host with the cluster's policy. A priority in panic balances over all of its
//! non-excluded hosts, ignoring health and localities.
//!
//! Hosts' [`Usability`]:
//! - `Healthy`: balanced over normally.
//! - `Degraded`: Envoy's degraded hosts: count towards their priority's availability like
//!   a lower priority would, and get load only when the healthy hosts of every priority
//!   cannot take it all (docs: load_balancing/degraded).
//! - `Unhealthy`: picked only in panic.
//! - `Excluded`: left out of every ratio (docs: load_balancing/excluded) and never picked.
//!   Envoy still balances over excluded hosts in panic; ringway does not, so that a draining
//!   or immediately-failed host (what `Excluded` marks) gets nothing, and a cluster of
//!   excluded hosts only answers "no healthy upstream" (see [`Plan::is_empty`]).

mod hash;
mod least;
mod locality;
mod maglev;
mod picker;
mod plan;
mod priority;
mod ring;
mod wrr;

#[cfg(test)]
pub(crate) mod fixtures {
    //! Hosts for the hash tables' tests.

    /// `n` distinct `ip:port` keys: `{net}.{i / 250}.{i % 250}:{port}`.
    pub fn keys(net: &str, port: u16, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("{net}.{}.{}:{port}", i / 250, i % 250))
            .collect()
    }

    /// Every key with an equal share: `(member, key, share)`.
    pub fn equal(keys: &[String]) -> Vec<(u32, &str, f64)> {
        let share = 1.0 / keys.len() as f64;
        keys.iter()
            .enumerate()
            .map(|(i, k)| (i as u32, k.as_str(), share))
            .collect()
    }
}

pub use hash::{combine, hash_bytes};
pub use picker::Picker;
pub use plan::{HashTableStats, Plan};

/// How a host may take traffic, from its health flags (see the module note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usability {
    Healthy,
    Degraded,
    Unhealthy,
    Excluded,
}

/// One member of a cluster as the plan sees it. Members are numbered by their position in
/// the slice given to [`Plan::build`]; picks answer that index.
#[derive(Debug, Clone, Copy)]
pub struct HostInput<'a> {
    /// Load-balancing weight; 0 counts as 1 (Envoy requires at least 1).
    pub weight: u32,
    /// 0 is the highest priority. Values above [`MAX_PRIORITY`] count as `MAX_PRIORITY`.
    pub priority: u32,
    /// An index into [`PlanSettings::locality_weights`].
    pub locality: u32,
    /// What ring hash and Maglev hash: the address as `ip:port` text, as Envoy hashes it.
    pub key: &'a str,
    pub usability: Usability,
}

/// The policy that picks a host inside the chosen priority (and locality): the config's
/// own type (the engine needs nothing else from it).
pub use crate::config::LbPolicy as Policy;

/// A cluster's balancing settings, as the plan needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    pub policy: Policy,
    /// Percent, 0..=100 (rounded to a whole percent, as Envoy does); 0 disables panic.
    pub panic_threshold: f64,
    /// Percent: 140 is Envoy's default factor of 1.4.
    pub overprovisioning_factor: u32,
    /// Envoy's `locality_weighted_lb_config`: pick a locality by weight first.
    pub locality_weighted: bool,
    /// Each locality's weight, by [`HostInput::locality`]. A locality without an entry (or
    /// with 0) gets no traffic when `locality_weighted` is on, as in Envoy.
    pub locality_weights: Vec<u32>,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            policy: Policy::RoundRobin,
            panic_threshold: 50.0,
            overprovisioning_factor: 140,
            locality_weighted: false,
            locality_weights: Vec::new(),
        }
    }
}

/// The lowest priority a plan keeps apart (Envoy allows 0..=128); bounds the plan's size
/// whatever the input says.
pub const MAX_PRIORITY: u32 = 128;

#[cfg(test)]
mod tests;
