//! What a rate-limit decision costs per core: key extraction (a client address's text
//! hashed with the limit's identity by `KeyHasher`) and the decision, over 100,000 keys
//! drawn with a Zipf(1.1) distribution (a precomputed sequence of 2^20 draws, so the
//! hot keys stay hot and the tail misses the caches as real clients do).
//!
//! - `fast_path`: a high-rate limit (1,000,000/s, burst 10^9: never trips), one worker:
//!   leases of 64, so after the first pass a decision finds a lease in hand and goes to
//!   the pool once per 64 decisions of a key. The budget: at least 20 million
//!   decisions per second.
//! - `leasing_path`: a slow limit with a huge burst (100/s, burst 10^9): batch 1, every
//!   decision leases one token from the pool (one uncontended CAS).
//! - `refused`: a tripped limit (1 per hour, burst 1): every decision is refused by the
//!   shard alone (the pool's next token is an hour away), the path of a flood at twice
//!   the limit.
//! - `key_only`: the key extraction alone, for scale.
//!
//! The clock is simulated (a fixed `now`: leases never expire); reading it is the
//! caller's (once per request, shared by every limit). Each iteration is 1,024
//! decisions; criterion's `thrpt` is decisions per second.
//!
//! Run: `cargo bench --bench ratelimit -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::config::ratelimit::Bucket;
use ringway::ratelimit::{KeyHasher, Pool, Rate, Shard};

const KEYS: usize = 100_000;
const DRAWS: usize = 1 << 20;
const PER_ITER: usize = 1_024;
const LIMIT_ID: u64 = 0x6c69_6d69_7431;
const NOW: u64 = 10_000_000;

/// Distinct IPv4 addresses as text, in random order.
fn addresses(rng: &mut fastrand::Rng) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(KEYS);
    while out.len() < KEYS {
        let ip = rng.u32(..);
        if seen.insert(ip) {
            let [a, b, c, d] = ip.to_be_bytes();
            out.push(format!("{a}.{b}.{c}.{d}"));
        }
    }
    out
}

/// Ranks drawn from Zipf(s) over `KEYS` ranks.
fn zipf(rng: &mut fastrand::Rng, s: f64) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(KEYS);
    let mut total = 0.0;
    for rank in 1..=KEYS {
        total += (rank as f64).powf(-s);
        cdf.push(total);
    }
    (0..DRAWS)
        .map(|_| {
            let u = rng.f64() * total;
            cdf.partition_point(|&c| c < u).min(KEYS - 1) as u32
        })
        .collect()
}

struct Workload {
    addresses: Vec<String>,
    draws: Vec<u32>,
}

#[inline]
fn key_of(address: &str) -> u64 {
    let mut h = KeyHasher::new();
    h.write_u64(LIMIT_ID);
    h.write(address.as_bytes());
    h.finish()
}

fn bucket(tokens: u64, per: Duration, burst: u64) -> Rate {
    Rate::new(&Bucket { tokens, per, burst })
}

fn decisions(c: &mut Criterion, w: &Workload, name: &str, rate: Rate) {
    let pool = Arc::new(Pool::new(KEYS as u32 * 2));
    let mut shard = Shard::new(pool, KEYS as u32 * 2, 1);
    // One pass first: every key seen, leases in hand.
    let mut allowed = 0usize;
    for &d in &w.draws {
        allowed += usize::from(
            shard
                .decide(key_of(&w.addresses[d as usize]), &rate, NOW)
                .allowed,
        );
    }
    eprintln!(
        "{name}: batch {}, {:.1}% of the warm-up pass allowed",
        rate.batch(1),
        100.0 * allowed as f64 / DRAWS as f64
    );
    let mut group = c.benchmark_group("ratelimit");
    group.throughput(Throughput::Elements(PER_ITER as u64));
    let mut at = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut allowed = 0u32;
            for &d in &w.draws[at..at + PER_ITER] {
                let key = key_of(&w.addresses[d as usize]);
                allowed += u32::from(shard.decide(key, &rate, NOW).allowed);
            }
            at = (at + PER_ITER) % DRAWS;
            black_box(allowed)
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let mut rng = fastrand::Rng::with_seed(20);
    let w = Workload {
        addresses: addresses(&mut rng),
        draws: zipf(&mut rng, 1.1),
    };
    let distinct = w
        .draws
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    eprintln!("{DRAWS} draws over {KEYS} keys: {distinct} distinct");

    let mut group = c.benchmark_group("ratelimit");
    group.throughput(Throughput::Elements(PER_ITER as u64));
    let mut at = 0;
    group.bench_function("key_only", |b| {
        b.iter(|| {
            let mut x = 0u64;
            for &d in &w.draws[at..at + PER_ITER] {
                x ^= key_of(&w.addresses[d as usize]);
            }
            at = (at + PER_ITER) % DRAWS;
            black_box(x)
        })
    });
    group.finish();

    decisions(
        c,
        &w,
        "fast_path",
        bucket(1_000_000, Duration::from_secs(1), 1_000_000_000),
    );
    decisions(
        c,
        &w,
        "leasing_path",
        bucket(100, Duration::from_secs(1), 1_000_000_000),
    );
    decisions(c, &w, "refused", bucket(1, Duration::from_secs(3_600), 1));
}

criterion_group!(ratelimit, benches);
criterion_main!(ratelimit);
