//! Upstreams on one worker: clusters, their balancers, and keep-alive pools.
//!
//! Two steps, kept apart so that HTTP/2 can share a connection between requests behind
//! the same calls: [`ClusterSnapshot::pick`] names an endpoint, whose
//! [`pool::EndpointPool`] is the home of everything known per endpoint (idle connections,
//! open and in-flight counts now; health and outlier ejection next); then
//! [`pool::EndpointPool::checkout`] gets a stream to it (an exclusive HTTP/1.1
//! [`pool::Lease`] today).
//!
//! Pools outlive config snapshots: they live in the worker's [`PoolRegistry`], keyed by
//! endpoint address, and a snapshot's [`ClusterSnapshot`] holds `Rc`s to the pools of its
//! endpoints. A reload that keeps an endpoint keeps its idle connections. Balancer state is
//! per snapshot and per worker.

pub mod balancer;
pub mod conn;
pub mod pool;

use std::{cell::RefCell, collections::HashMap, rc::Rc, sync::Arc, time::Duration};

use crate::{
    config::{self, Address, PoolSettings},
    stats::{Scope, WorkerScope},
};
use balancer::WeightedRoundRobin;
use pool::EndpointPool;

/// A worker's pools, by endpoint address.
#[derive(Debug, Default)]
pub struct PoolRegistry {
    pools: RefCell<HashMap<Address, Rc<EndpointPool>>>,
}

impl PoolRegistry {
    /// The pool of `address`, created on first use.
    pub fn get(&self, address: &Address) -> Rc<EndpointPool> {
        Rc::clone(
            self.pools
                .borrow_mut()
                .entry(address.clone())
                .or_insert_with(|| EndpointPool::new(address.clone())),
        )
    }

    /// Closes expired idle connections, and those above each pool's cap that were not
    /// needed since the previous sweep, of every pool; returns how many.
    pub fn sweep(&self, now: std::time::Instant) -> usize {
        self.pools
            .borrow()
            .values()
            .map(|pool| pool.sweep(now))
            .sum()
    }
}

/// One cluster, compiled for one worker.
#[derive(Debug)]
pub struct ClusterSnapshot {
    /// The cluster's name.
    pub name: Box<str>,
    endpoints: Vec<Rc<EndpointPool>>,
    balancer: WeightedRoundRobin,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Pool limits.
    pub pool: PoolSettings,
    /// This worker's `cluster.<name>.` cells.
    pub stats: WorkerScope,
    /// PROXY protocol version sent first on every connection (its connections are then
    /// not reused: each carries one client's address).
    pub proxy_protocol: Option<u8>,
}

impl ClusterSnapshot {
    /// Compiles `cluster` for a worker; `skip` (random per worker) staggers the balancers.
    pub fn build(
        cluster: &config::Cluster,
        registry: &PoolRegistry,
        stats: &Arc<Scope>,
        worker: usize,
        skip: u64,
    ) -> Self {
        let weights: Vec<u32> = cluster.endpoints.iter().map(|e| e.weight).collect();
        ClusterSnapshot {
            name: cluster.name.as_str().into(),
            endpoints: cluster
                .endpoints
                .iter()
                .map(|e| registry.get(&e.address))
                .collect(),
            balancer: WeightedRoundRobin::new(&weights, skip),
            connect_timeout: cluster.connect_timeout,
            pool: cluster.pool,
            stats: stats.for_worker(worker),
            proxy_protocol: cluster.proxy_protocol,
        }
    }

    /// The endpoint for the next request.
    pub fn pick(&self) -> Option<&Rc<EndpointPool>> {
        self.endpoints.get(self.balancer.pick())
    }
}
