//! How many workers to run and which CPUs to pin them to.
//!
//! `workers: auto` means the CPUs this process may use: its affinity mask, capped by its
//! cgroup CPU quota (`std::thread::available_parallelism` reads both on Linux). Pinning
//! is automatic only when the affinity mask has exactly as many CPUs as there are
//! workers, which is what `taskset -c 2,3 ringway` or a Kubernetes static-CPU pod gives.
//! With a quota but the whole cpuset (the usual pod), pinning N sidecars to "CPUs 0..n"
//! would pile every sidecar of the node onto the same cores, so auto never does that.

use crate::config::{PinWorkers, Workers};

/// A CPU a worker may be pinned to.
pub type CpuId = core_affinity::CoreId;

/// The decided worker layout.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    /// How many workers to start.
    pub count: usize,
    /// The CPU for each worker, when pinning; `None` when the kernel schedules them.
    pub cpus: Option<Vec<CpuId>>,
    /// Said at start so an operator can see why pinning is on or off.
    pub reason: String,
}

/// The CPUs in this process's affinity mask, in ascending order.
pub fn allowed_cpus() -> Vec<CpuId> {
    let mut ids = core_affinity::get_core_ids().unwrap_or_default();
    ids.sort_by_key(|c| c.id);
    ids
}

/// The number of workers `auto` stands for.
pub fn auto_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Decides the worker count and pinning from the config and the affinity mask.
pub fn plan(workers: Workers, pin: PinWorkers, allowed: &[CpuId]) -> WorkerPlan {
    let count = match workers {
        Workers::Auto => auto_workers(),
        Workers::Count(n) => n.max(1),
    };
    let (cpus, reason) = match pin {
        PinWorkers::Off => (None, "pinning off (pin_workers: false)".to_string()),
        PinWorkers::Auto if allowed.len() == count => (
            Some(allowed.to_vec()),
            format!("pinned: the affinity mask has exactly {count} CPUs"),
        ),
        PinWorkers::Auto => (
            None,
            format!(
                "not pinned: {count} workers, {} CPUs in the affinity mask",
                allowed.len()
            ),
        ),
        PinWorkers::On if allowed.is_empty() => (
            None,
            "not pinned: the affinity mask could not be read".to_string(),
        ),
        PinWorkers::On => (
            Some((0..count).map(|i| allowed[i % allowed.len()]).collect()),
            format!(
                "pinned on request (pin_workers: true) to the first {} of {} allowed CPUs",
                count.min(allowed.len()),
                allowed.len()
            ),
        ),
    };
    WorkerPlan {
        count,
        cpus,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(ids: &[usize]) -> Vec<CpuId> {
        ids.iter().map(|&id| CpuId { id }).collect()
    }

    #[test]
    fn auto_pins_only_when_the_mask_matches_the_worker_count() {
        let mask = cpus(&[2, 3]);
        let p = plan(Workers::Count(2), PinWorkers::Auto, &mask);
        assert_eq!(p.cpus.unwrap(), mask);
        let p = plan(Workers::Count(1), PinWorkers::Auto, &mask);
        assert!(p.cpus.is_none());
        let p = plan(Workers::Count(2), PinWorkers::Off, &mask);
        assert!(p.cpus.is_none());
    }

    #[test]
    fn explicit_pinning_uses_the_mask_not_cpu_zero() {
        let p = plan(Workers::Count(3), PinWorkers::On, &cpus(&[4, 5]));
        let ids: Vec<usize> = p.cpus.unwrap().iter().map(|c| c.id).collect();
        assert_eq!(ids, [4, 5, 4]);
    }

    #[test]
    fn auto_workers_is_at_least_one() {
        assert!(plan(Workers::Auto, PinWorkers::Off, &[]).count >= 1);
    }
}
