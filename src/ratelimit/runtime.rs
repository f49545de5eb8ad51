//! Where the buckets live between reloads: the process's pools, by limit id, on the
//! control thread; each worker's shards over them, on the worker.
//!
//! Design: a limit's [`Pool`] is made by the control thread when it registers a config's
//! stats (`snapshot::register_stats`) and handed to every worker with the config, so a
//! reload that keeps a limit (same id, bucket, key and table size) keeps its pool, and
//! with it every key's tokens; a limit that changed starts with full buckets. A worker
//! keeps its [`Shard`] of each pool across snapshots too ([`Shards`]): a new snapshot
//! over the same pool reuses the shard and its leases; a shard whose pool went away is
//! dropped when the last snapshot using it goes, giving its leases back. A timer task per
//! worker gives back leases nobody used for a while ([`Shards::sweep`]), so tokens do not
//! sit stranded on a core a key's traffic left.

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    rc::Rc,
    sync::Arc,
};

use crate::config::{ratelimit::RateLimitPolicy, Config};

use super::{Pool, Shard};

/// The most keys a worker holds leases for, per limit: its memory per limit is bounded
/// whatever `max_keys` says (the pool's table holds the rest).
pub const MAX_SHARD_KEYS: u32 = 1024;

/// The process's pools by limit id and what the pool was made for (the control
/// thread's; kept across reloads).
#[derive(Debug, Default)]
pub struct PoolTable {
    pools: BTreeMap<(Box<str>, String), Arc<Pool>>,
}

impl PoolTable {
    /// The pools of every shared (not per-connection) limit of `config`: the ones kept
    /// where a limit is unchanged, new ones otherwise. A pool no config uses any more is
    /// forgotten once nothing else holds it: a reload that fails after this call leaves
    /// the running config's pools in the table (its snapshots hold them), so a later
    /// reload back to them finds their buckets.
    pub fn register(&mut self, config: &Config) -> HashMap<String, Arc<Pool>> {
        let mut used = HashMap::new();
        let policies = config.listeners.iter().flat_map(|l| {
            l.routes
                .iter()
                .chain(l.virtual_hosts.iter().flat_map(|v| &v.routes))
                .filter_map(|r| r.rate_limit.as_ref())
        });
        for limit in policies.flat_map(|p: &RateLimitPolicy| &p.limits) {
            if limit.per_connection || used.contains_key(&limit.id) {
                continue;
            }
            let max_keys = match &limit.key {
                crate::config::ratelimit::LimitKey::Parts(parts) if parts.is_empty() => 1,
                crate::config::ratelimit::LimitKey::EnvoyDefault => 1,
                _ => limit.max_keys.max(1),
            };
            let signature = format!(
                "{:?}|{:?}|{:?}|{max_keys}",
                limit.bucket, limit.key, limit.plans
            );
            used.insert(limit.id.clone(), self.pool(&limit.id, signature, max_keys));
        }
        for listener in &config.listeners {
            if let Some(rate) = &listener.connection_rate {
                let signature = format!("{:?}|connections", rate.bucket);
                used.insert(rate.id.clone(), self.pool(&rate.id, signature, 1));
            }
        }
        self.pools.retain(|_, pool| Arc::strong_count(pool) > 1);
        used
    }

    fn pool(&mut self, id: &str, signature: String, max_keys: u32) -> Arc<Pool> {
        let pool = self
            .pools
            .entry((id.into(), signature))
            .or_insert_with(|| Arc::new(Pool::new(max_keys)));
        Arc::clone(pool)
    }
}

/// A worker's shards, by limit id, kept across snapshots.
#[derive(Debug, Default)]
pub struct Shards {
    by_id: RefCell<HashMap<Box<str>, Rc<RefCell<Shard>>>>,
}

impl Shards {
    /// The shard over `pool` for the limit `id`: the one kept when it is over this same
    /// pool, a new one otherwise.
    pub fn get(&self, id: &str, pool: &Arc<Pool>, workers: usize) -> Rc<RefCell<Shard>> {
        let mut by_id = self.by_id.borrow_mut();
        if let Some(shard) = by_id.get(id) {
            if Arc::ptr_eq(shard.borrow().pool(), pool) {
                return Rc::clone(shard);
            }
        }
        let capacity = pool.capacity().min(MAX_SHARD_KEYS as usize) as u32;
        let shard = Rc::new(RefCell::new(Shard::new(
            Arc::clone(pool),
            capacity,
            workers,
        )));
        by_id.insert(id.into(), Rc::clone(&shard));
        shard
    }

    /// Forgets the shards of limits the current config no longer has.
    pub fn retain(&self, pools: &HashMap<String, Arc<Pool>>) {
        self.by_id.borrow_mut().retain(|id, shard| {
            pools
                .get(&**id)
                .is_some_and(|p| Arc::ptr_eq(p, shard.borrow().pool()))
        });
    }

    /// Whether the worker has no shard (no rate limit configured).
    pub fn is_empty(&self) -> bool {
        self.by_id.borrow().is_empty()
    }

    /// Gives back leases unused for longer than a lease lives.
    pub fn sweep(&self, now: u64) {
        for shard in self.by_id.borrow().values() {
            if let Ok(mut shard) = shard.try_borrow_mut() {
                shard.sweep(now);
            }
        }
    }
}
