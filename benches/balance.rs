//! What one balancing decision costs a worker: `Picker::pick` over 100 healthy endpoints
//! in one priority and one locality (the fast path: no priority draw), per policy.
//!
//! - `least_request_p2c`: equal weights, two random choices compared by in-flight requests
//!   (read through the `active` callback from a per-worker array, as the worker will).
//! - `maglev_random_hash`: a 65537-slot table, each pick with a different request hash
//!   (drawn ahead from a precomputed sequence, so the bench measures the lookup, not the
//!   hashing of a header).
//! - `round_robin`: equal weights (a rotating index); `round_robin_weighted`: weights 1..=4
//!   (smooth weighted round robin: a pass over the 100 scores, as the per-worker balancer
//!   before issue 21 did for every cluster).
//! - `ring_hash_random_hash`: Envoy's default ring sizes (min 1024: 1,100 entries over 100
//!   hosts), a binary search per pick.
//! - `least_request_edf`: weights 1..=4: the earliest-deadline schedule.
//! - `failover_round_robin`: two priorities at 70/30 (a random draw first).
//!
//! The budget (issue 21): at most 50 ns per pick for least request and Maglev.
//! Run: `cargo bench --bench balance -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::balance::{HostInput, Picker, Plan, PlanSettings, Policy, Usability};

const HOSTS: usize = 100;

fn keys() -> Vec<String> {
    (0..HOSTS)
        .map(|i| format!("10.0.{}.{}:8080", i / 200, i % 200 + 1))
        .collect()
}

fn inputs<'a>(keys: &'a [String], weight: impl Fn(usize) -> u32) -> Vec<HostInput<'a>> {
    keys.iter()
        .enumerate()
        .map(|(i, key)| HostInput {
            weight: weight(i),
            priority: 0,
            locality: 0,
            key,
            usability: Usability::Healthy,
        })
        .collect()
}

fn settings(policy: Policy) -> PlanSettings {
    PlanSettings {
        policy,
        ..PlanSettings::default()
    }
}

fn bench_pick(c: &mut Criterion, name: &str, plan: &Plan, hashed: bool) {
    let mut picker = Picker::new(plan, 0x5eed);
    let mut rng = fastrand::Rng::with_seed(42);
    let hashes: Vec<u64> = (0..4096).map(|_| rng.u64(..)).collect();
    // The worker's in-flight counts, varied so that least request has something to compare.
    let active: Vec<u32> = (0..HOSTS).map(|_| rng.u32(..8)).collect();
    let active = |i: usize| active.get(i).copied().unwrap_or(0);
    let mut at = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            let hash = if hashed {
                at = (at + 1) & 4095;
                Some(hashes[at])
            } else {
                None
            };
            black_box(picker.pick(black_box(plan), hash, &active))
        })
    });
}

fn benches(c: &mut Criterion) {
    let keys = keys();
    let equal = inputs(&keys, |_| 1);
    let weighted = inputs(&keys, |i| (i % 4) as u32 + 1);

    let least = Policy::LeastRequest {
        choice_count: 2,
        active_request_bias: 1.0,
    };
    bench_pick(
        c,
        "least_request_p2c",
        &Plan::build(&equal, &settings(least.clone())),
        false,
    );
    let maglev = Plan::build(&equal, &settings(Policy::Maglev { table_size: 65537 }));
    bench_pick(c, "maglev_random_hash", &maglev, true);
    bench_pick(
        c,
        "round_robin",
        &Plan::build(&equal, &settings(Policy::RoundRobin)),
        false,
    );
    bench_pick(
        c,
        "round_robin_weighted",
        &Plan::build(&weighted, &settings(Policy::RoundRobin)),
        false,
    );
    let ring = Policy::RingHash {
        min_ring_size: 1024,
        max_ring_size: 8_388_608,
    };
    bench_pick(
        c,
        "ring_hash_random_hash",
        &Plan::build(&equal, &settings(ring)),
        true,
    );
    bench_pick(
        c,
        "least_request_edf",
        &Plan::build(&weighted, &settings(least)),
        false,
    );

    // Two priorities at 70/30: P0 half healthy.
    let mut failover = inputs(&keys, |_| 1);
    for (i, h) in failover.iter_mut().enumerate() {
        h.priority = u32::from(i >= 50);
        if i < 25 {
            h.usability = Usability::Unhealthy;
        }
    }
    let failover = Plan::build(&failover, &settings(Policy::RoundRobin));
    assert_eq!(failover.priority_loads(), [70, 30]);
    bench_pick(c, "failover_round_robin", &failover, false);
}

criterion_group!(balance, benches);
criterion_main!(balance);
