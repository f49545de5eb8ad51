//! A cluster's circuit breakers: Envoy's process-wide limits of connections, pending
//! requests, requests and retries, per routing priority.
//!
//! Design: each limit is a [`SharedLimit`] kept across reloads (per cluster and
//! priority, in [`LimitRegistry`]), of which each worker leases units in batches through
//! its own [`LocalLimit`] (`resilience::breaker`): the process never holds more units
//! than the limit, and an acquire or release touches only the worker's memory except
//! when a batch moves. A unit is held by a [`Permit`], released when it drops, so every
//! exit of a request (an error, a timeout, the client leaving) gives its units back.
//! Connections carry their permit until they close (idle ones included, as Envoy counts
//! them).
//!
//! Stats (`stats::names::breakers`): a worker sets its `_open` flag when a try is
//! refused and clears it when one succeeds or a unit comes back (a worker that saw a
//! refusal and then no request keeps its flag until its next one); with `track_remaining`, the control
//! thread's cell holds the limit and each worker subtracts the units it uses, so the
//! `remaining_` gauges read the limit minus the process's use.

use std::{
    cell::Cell,
    collections::HashMap,
    rc::Rc,
    sync::{Arc, Weak},
};

use crate::{
    config::resilience::{Priority, RetryBudget, Thresholds},
    resilience::{
        breaker::{LocalLimit, SharedLimit},
        budget,
    },
    stats::{
        names::{breakers as bx, cluster as cx},
        Scope, StatsStore, WorkerScope,
    },
};

/// What a permit holds a unit of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Connection = 0,
    Pending = 1,
    Request = 2,
    Retry = 3,
}

impl Resource {
    fn open_stat(self) -> usize {
        match self {
            Resource::Connection => bx::CX_OPEN,
            Resource::Pending => bx::RQ_PENDING_OPEN,
            Resource::Request => bx::RQ_OPEN,
            Resource::Retry => bx::RQ_RETRY_OPEN,
        }
    }

    fn remaining_stat(self) -> usize {
        match self {
            Resource::Connection => bx::REMAINING_CX,
            Resource::Pending => bx::REMAINING_PENDING,
            Resource::Request => bx::REMAINING_RQ,
            Resource::Retry => bx::REMAINING_RETRIES,
        }
    }
}

/// One cluster's limits at one priority, shared by the workers.
#[derive(Debug)]
pub struct PriorityLimits {
    limits: [Arc<SharedLimit>; 4],
    thresholds: Thresholds,
    stats: Arc<Scope>,
}

/// The limits of every cluster, kept across reloads (in the stats store, which lives as
/// long as the process) so that requests in flight under the old configuration still
/// count against the new one.
#[derive(Debug, Default)]
pub struct LimitRegistry {
    clusters: HashMap<(String, Priority), Weak<PriorityLimits>>,
}

/// The limits of `cluster` at both priorities for `thresholds`: the same shared
/// counters as before when the cluster existed (with the new limits), new ones
/// otherwise.
pub fn register(
    store: &mut StatsStore,
    cluster: &str,
    thresholds: &[Thresholds; 2],
) -> [Arc<PriorityLimits>; 2] {
    let mut registry = std::mem::take(&mut store.breaker_limits);
    let limits = registry.limits(store, cluster, thresholds);
    store.breaker_limits = registry;
    limits
}

impl LimitRegistry {
    fn limits(
        &mut self,
        store: &mut StatsStore,
        cluster: &str,
        thresholds: &[Thresholds; 2],
    ) -> [Arc<PriorityLimits>; 2] {
        self.clusters.retain(|_, weak| weak.strong_count() > 0);
        let workers = store.workers();
        [Priority::Default, Priority::High].map(|priority| {
            let t = &thresholds[priority as usize];
            let values = [
                t.max_connections,
                t.max_pending_requests,
                t.max_requests,
                t.max_retries,
            ];
            let old = self
                .clusters
                .get(&(cluster.to_owned(), priority))
                .and_then(Weak::upgrade);
            let limits = match &old {
                Some(old) => old.limits.clone(),
                None => values.map(|v| SharedLimit::new(v, workers)),
            };
            for (limit, value) in limits.iter().zip(values) {
                limit.set_limit(value);
            }
            let name = match priority {
                Priority::Default => "default",
                Priority::High => "high",
            };
            let prefix = format!("cluster.{cluster}.circuit_breakers.{name}.");
            let defs: &'static [crate::stats::StatDef] = if t.track_remaining {
                &bx::TRACKED_DEFS
            } else {
                &bx::OPEN_DEFS
            };
            let stats = store.scope_with_extra(&prefix, defs, 1);
            if t.track_remaining {
                // The slot after the workers' (`scope_with_extra`): the control thread's.
                let control = stats.for_worker(stats.workers() - 1);
                for (resource, value) in [
                    Resource::Connection,
                    Resource::Pending,
                    Resource::Request,
                    Resource::Retry,
                ]
                .into_iter()
                .zip(values)
                {
                    control.get(resource.remaining_stat()).set(u64::from(value));
                }
            }
            let limits = Arc::new(PriorityLimits {
                limits,
                thresholds: t.clone(),
                stats,
            });
            self.clusters
                .insert((cluster.to_owned(), priority), Arc::downgrade(&limits));
            limits
        })
    }
}

/// A cluster's breakers at one priority on one worker.
#[derive(Debug)]
pub struct WorkerBreakers {
    local: [LocalLimit; 4],
    budget: Option<RetryBudget>,
    workers: usize,
    track_remaining: bool,
    stats: WorkerScope,
    /// This worker's requests and retries in flight on the cluster at this priority
    /// (the retry budget's inputs).
    active_requests: Cell<u32>,
    active_retries: Cell<u32>,
    /// The cluster's stats (`upstream_cx_overflow`, pending counts).
    pub cluster_stats: Rc<WorkerScope>,
    /// Keeps the shared limits alive while this worker's snapshot uses them.
    _shared: Arc<PriorityLimits>,
}

impl WorkerBreakers {
    pub fn new(shared: Arc<PriorityLimits>, worker: usize, cluster_stats: Rc<WorkerScope>) -> Self {
        WorkerBreakers {
            local: shared.limits.clone().map(LocalLimit::new),
            budget: shared.thresholds.retry_budget,
            workers: shared.stats.workers().saturating_sub(1).max(1),
            track_remaining: shared.thresholds.track_remaining,
            stats: shared.stats.for_worker(worker),
            active_requests: Cell::new(0),
            active_retries: Cell::new(0),
            cluster_stats,
            _shared: shared,
        }
    }

    /// One unit of `resource`, or `None` when the process is at its limit (the
    /// resource's `_open` flag is then set on this worker).
    pub fn try_permit(self: &Rc<Self>, resource: Resource) -> Option<Permit> {
        let granted = match (resource, self.budget) {
            // A retry budget replaces max_retries (Envoy's rule).
            (Resource::Retry, Some(budget)) => budget::allows(
                &budget,
                self.workers,
                self.active_requests.get(),
                self.active_retries.get(),
            ),
            _ => self.local[resource as usize].try_acquire(),
        };
        if !granted {
            self.stats.get(resource.open_stat()).set(1);
            return None;
        }
        self.close(resource);
        self.count(resource, true);
        Some(Permit {
            breakers: Rc::clone(self),
            resource,
        })
    }

    /// Counts a request that gave up waiting for a connection (Envoy's
    /// `upstream_rq_cancelled`).
    pub fn count_cancelled(&self) {
        self.cluster_stats.get(cx::UPSTREAM_RQ_CANCELLED).inc();
    }

    fn count(&self, resource: Resource, taken: bool) {
        let active = match resource {
            Resource::Request => Some(&self.active_requests),
            Resource::Retry => Some(&self.active_retries),
            Resource::Pending => {
                let stats = &self.cluster_stats;
                if taken {
                    stats.get(cx::UPSTREAM_RQ_PENDING_TOTAL).inc();
                    stats.get(cx::UPSTREAM_RQ_PENDING_ACTIVE).inc();
                } else {
                    stats.get(cx::UPSTREAM_RQ_PENDING_ACTIVE).dec();
                }
                None
            }
            Resource::Connection => None,
        };
        if let Some(active) = active {
            let now = active.get();
            active.set(if taken {
                now.saturating_add(1)
            } else {
                now.saturating_sub(1)
            });
        }
        if self.track_remaining {
            let cell = self.stats.get(resource.remaining_stat());
            if taken {
                cell.dec();
            } else {
                cell.inc();
            }
        }
    }

    /// This worker's view of the breaker is closed again (a try succeeded or a unit
    /// came back).
    fn close(&self, resource: Resource) {
        let open = self.stats.get(resource.open_stat());
        if open.get() != 0 {
            open.set(0);
        }
    }

    fn release(&self, resource: Resource) {
        if !(resource == Resource::Retry && self.budget.is_some()) {
            self.local[resource as usize].release();
        }
        self.close(resource);
        self.count(resource, false);
    }
}

/// One unit of a breaker's resource, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    breakers: Rc<WorkerBreakers>,
    resource: Resource,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.breakers.release(self.resource);
    }
}

/// Breakers with Envoy's default thresholds for one worker, for tests.
#[cfg(test)]
pub fn for_tests() -> Rc<WorkerBreakers> {
    let mut store = StatsStore::new(1);
    let [limits, _] = register(&mut store, "test", &Default::default());
    let cells = store.scope("cluster.test.", &crate::stats::names::cluster::DEFS);
    Rc::new(WorkerBreakers::new(limits, 0, Rc::new(cells.for_worker(0))))
}
