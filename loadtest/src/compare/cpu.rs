//! CPU accounting for `compare`, from /proc: the whole machine's busy time (/proc/stat)
//! and a process tree's time (/proc/<pid>/stat of the proxy and its children: nginx's
//! master forks its worker, whose time the master's own line does not show).
//!
//! A sampler thread reads both every [`PERIOD`] with a wall-clock stamp while a
//! measurement runs; the measured phase is known only afterwards (from the generator's
//! JSON), so its start and end values are interpolated between the neighbouring samples.
//! /proc counts in USER_HZ ticks (100 per second on Linux): 10 ms, fine over seconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Sampling period: small against the measured phase, cheap (two small file reads).
pub const PERIOD: Duration = Duration::from_millis(20);
/// Microseconds per /proc tick.
const TICK_US: f64 = 10_000.0;

/// Busy ticks of the whole machine: user + nice + system + irq + softirq, all CPUs.
pub fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq ...
    Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?)
}

/// (utime, stime) of one process (all its threads), in ticks. The split is the kernel's
/// tick sampling (which mode each tick found the process in): fine over seconds.
pub fn process_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// `pid` and every descendant, found through the parent ids in /proc/*/stat.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((child, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|&&(_, p)| p == parent)
                .map(|&(c, _)| c),
        );
        i += 1;
    }
    tree
}

/// One sample: seconds since the epoch, machine busy ticks, process-tree ticks (user +
/// system, and system alone).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: f64,
    pub machine: u64,
    pub tree: u64,
    pub tree_system: u64,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn sample(pids: &[u32]) -> Sample {
    let (user, system) = pids
        .iter()
        .filter_map(|&p| process_ticks(p))
        .fold((0, 0), |(u, s), (pu, ps)| (u + pu, s + ps));
    Sample {
        at: now(),
        machine: machine_busy_ticks().unwrap_or(0),
        tree: user + system,
        tree_system: system,
    }
}

/// A running sampler; [`Sampler::stop`] returns its samples.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling the machine and the processes `pids`.
    pub fn start(pids: Vec<u32>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut samples = vec![sample(&pids)];
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(PERIOD);
                samples.push(sample(&pids));
            }
            samples
        });
        Sampler { stop, handle }
    }

    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Linear interpolation of a counter at time `t` from the samples.
fn at(samples: &[Sample], t: f64, value: fn(&Sample) -> u64) -> Option<f64> {
    let after = samples.iter().position(|s| s.at >= t)?;
    let b = &samples[after];
    if after == 0 {
        return Some(value(b) as f64);
    }
    let a = &samples[after - 1];
    let span = (b.at - a.at).max(1e-9);
    let (va, vb) = (value(a) as f64, value(b) as f64);
    Some(va + (vb - va) * (t - a.at) / span)
}

/// CPU microseconds spent between `start` and `end` (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spent {
    /// The whole machine's busy time.
    pub machine: f64,
    /// The process tree's user + system time.
    pub tree: f64,
    /// The process tree's system time (the kernel working for it).
    pub tree_system: f64,
}

pub fn cpu_between(samples: &[Sample], start: f64, end: f64) -> Option<Spent> {
    let between = |value: fn(&Sample) -> u64| -> Option<f64> {
        Some((at(samples, end, value)? - at(samples, start, value)?) * TICK_US)
    };
    Some(Spent {
        machine: between(|s| s.machine)?,
        tree: between(|s| s.tree)?,
        tree_system: between(|s| s.tree_system)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_and_interpolates() {
        assert!(machine_busy_ticks().is_some());
        let me = std::process::id();
        assert!(process_ticks(me).is_some());
        assert!(process_tree(me).contains(&me));
        let s = |at, machine, tree| Sample {
            at,
            machine,
            tree,
            tree_system: tree / 5,
        };
        let samples = [s(10.0, 100, 0), s(11.0, 200, 50), s(12.0, 400, 50)];
        let spent = cpu_between(&samples, 10.5, 11.5).unwrap();
        assert!((spent.machine - 150.0 * TICK_US).abs() < 1e-6);
        assert!((spent.tree - 25.0 * TICK_US).abs() < 1e-6);
        assert!((spent.tree_system - 5.0 * TICK_US).abs() < 1e-6);
        assert!(cpu_between(&samples, 10.5, 13.0).is_none());
    }
}
