//! One worker's picks over a plan.
//!
//! The picker owns what changes per pick: the worker's random numbers, the round-robin
//! position of each candidate list and locality set, and the least-request schedules. All
//! of it is allocated by [`Picker::new`] (once per plan change); [`Picker::pick`] only
//! reads the plan and updates these in place.
//!
//! A pick: the hash policies take the request's hash (or a random one, as Envoy does when
//! the request has none); the priority is chosen by `hash % 100` for them and by a random
//! draw for the others (skipped when the plan has a single target); a locality set picks a
//! locality by smooth weighted round robin; then the policy picks within the list:
//! - round robin: a rotating index when the weights are equal (from a random start), smooth
//!   weighted round robin otherwise;
//! - least request: power of `choice_count` choices when the weights are equal, the
//!   earliest-deadline schedule over `weight / (active + 1)^bias` otherwise;
//! - random: uniform over the list, weights ignored (Envoy's random balancer);
//! - ring hash / Maglev: the table's owner of the hash.

use super::least::{self, Edf};
use super::plan::{Plan, Table, Target};
use super::wrr::Smooth;
use super::Policy;

/// One worker's balancing state for one plan. Not shared: each worker has its own.
#[derive(Debug)]
pub struct Picker {
    plan_id: u64,
    rng: fastrand::Rng,
    sources: Box<[State]>,
    localities: Box<[Smooth]>,
    panicked: bool,
}

/// The per-source state a policy needs.
#[derive(Debug)]
enum State {
    /// Random, hash policies, and equal-weight least request.
    None,
    /// Equal-weight round robin: the next index.
    Next(usize),
    /// Weighted round robin.
    Smooth(Smooth),
    /// Weighted least request.
    Edf(Edf),
}

impl Picker {
    /// A picker for `plan`, its random numbers seeded by `seed` (draw one per worker so that
    /// workers start at different points). Allocates; call once per plan, not per request.
    pub fn new(plan: &Plan, seed: u64) -> Picker {
        let mut rng = fastrand::Rng::with_seed(seed);
        let sources = plan
            .sources
            .iter()
            .map(|s| match plan.policy {
                Policy::RoundRobin if s.equal => State::Next(rng.usize(..s.members.len().max(1))),
                Policy::RoundRobin => State::Smooth(Smooth::new(&s.weights, s.total, rng.u64(..))),
                Policy::LeastRequest { .. } if !s.equal => {
                    State::Edf(Edf::new(&s.weights, &mut rng))
                }
                _ => State::None,
            })
            .collect();
        let localities = plan
            .localities
            .iter()
            .map(|l| Smooth::new(&l.weights, l.total, rng.u64(..)))
            .collect();
        Picker {
            plan_id: plan.id,
            rng,
            sources,
            localities,
            panicked: false,
        }
    }

    /// A member index, or None when nothing can be picked. `hash`: the request's hash for
    /// ring hash and Maglev (None: a random one, as Envoy). `active(i)`: this worker's
    /// in-flight requests to member `i` (least request). Never allocates (unless given a
    /// plan other than its own, when it starts over on that plan).
    #[inline]
    pub fn pick(
        &mut self,
        plan: &Plan,
        hash: Option<u64>,
        active: &dyn Fn(usize) -> u32,
    ) -> Option<usize> {
        if self.plan_id != plan.id {
            *self = Picker::new(plan, self.rng.u64(..));
        }
        if let Some(member) = plan.only {
            self.panicked = false;
            return Some(member as usize);
        }
        let hashing = plan.policy.is_hashing();
        let hash = if hashing {
            hash.unwrap_or_else(|| self.rng.u64(..))
        } else {
            0
        };
        let target = match plan.fixed {
            Some(target) => target,
            None => {
                let draw = if hashing {
                    (hash % 100) as usize
                } else {
                    self.rng.usize(..100)
                };
                plan.targets.get(draw).copied().unwrap_or(Target::Nothing)
            }
        };
        let source = match target {
            Target::Nothing => {
                self.panicked = false;
                return None;
            }
            Target::Source { id, panic } => {
                self.panicked = panic;
                id as usize
            }
            Target::Localities { id } => {
                self.panicked = false;
                let set = plan.localities.get(id as usize)?;
                let state = self.localities.get_mut(id as usize)?;
                let at = state.pick(&set.weights, set.total);
                *set.sources.get(at)? as usize
            }
        };
        self.pick_in(plan, source, hash, active)
    }

    /// Whether the last pick balanced over a priority in panic (Envoy counts those picks as
    /// `lb_healthy_panic`).
    pub fn panicked(&self) -> bool {
        self.panicked
    }

    #[inline]
    fn pick_in(
        &mut self,
        plan: &Plan,
        source: usize,
        hash: u64,
        active: &dyn Fn(usize) -> u32,
    ) -> Option<usize> {
        let s = plan.sources.get(source)?;
        let len = s.members.len();
        if len == 0 {
            return None;
        }
        let at = match (&plan.policy, self.sources.get_mut(source)?) {
            (Policy::RingHash { .. } | Policy::Maglev { .. }, _) => {
                let member = match &s.table {
                    Table::Ring(ring) => ring.lookup(hash),
                    Table::Maglev(maglev) => maglev.lookup(hash),
                    Table::None => None,
                };
                return member.map(|m| m as usize);
            }
            (_, State::Next(next)) => {
                let at = if *next < len { *next } else { 0 };
                *next = if at + 1 >= len { 0 } else { at + 1 };
                at
            }
            (_, State::Smooth(state)) => state.pick(&s.weights, s.total),
            (
                Policy::LeastRequest {
                    active_request_bias,
                    ..
                },
                State::Edf(edf),
            ) => edf.pick(&s.weights, &s.members, *active_request_bias, active)?,
            (Policy::LeastRequest { choice_count, .. }, _) => {
                least::choose(&mut self.rng, &s.members, *choice_count, active)?
            }
            _ => self.rng.usize(..len),
        };
        s.members.get(at).map(|&m| m as usize)
    }
}
