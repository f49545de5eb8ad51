//! What the resilience engine costs a request, and what a process-wide limit costs
//! under contention (issue 22).
//!
//! - `request/plan_judge_breaker`: one request on a route with a retry policy
//!   (`5xx,reset,connect-failure`, 3 retries) whose breakers never trip: the plan from
//!   the policy and the (absent) request controls, `max_requests` acquired from the
//!   worker's `LocalLimit`, the verdict on a 200 answer, the unit released. Budget
//!   (issue 22): at most 50 ns.
//! - `request/judge_503_retry`: the verdict on a 503 plus the retry breaker
//!   (`max_retries`) and the retry budget check: the cost of deciding a retry.
//! - `contention/{threads}/{kind}`: N threads (2, and `available_parallelism`) each
//!   doing acquire + release in a loop on one limit, ns per pair per thread:
//!   - `shared_atomic`: Envoy's way, a `fetch_add` + `fetch_sub` on one shared
//!     AtomicU32 per pair (the line bounces between cores);
//!   - `leased`: `LocalLimit` leasing batches from a `SharedLimit` at Envoy's default
//!     1024 (batch 1024 / (64 × N));
//!   - `exact_cas`: `LocalLimit` in exact mode (a limit below 64 × N: batch 0), a
//!     compare-and-swap on the shared count per acquire and per release;
//!   - `thread_local`: a plain per-thread counter, the floor.
//!
//! Run: `cargo bench --bench resilience -- --warm-up-time 1 --measurement-time 3`
//! (add a filter, e.g. `contention`, to run one group).

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::config::resilience::{RetryBudget, RetryOn, RetryPolicy};
use ringway::resilience::breaker::{LocalLimit, SharedLimit};
use ringway::resilience::budget;
use ringway::resilience::retry::{AttemptEnd, Controls, RetryRules, Verdict};

fn no_header(_: &str) -> Option<&'static [u8]> {
    None
}

fn request(c: &mut Criterion) {
    let mut policy =
        RetryPolicy::new(RetryOn::parse_list("5xx,reset,connect-failure").unwrap_or(RetryOn::NONE));
    policy.num_retries = 3;
    let rules = RetryRules::compile(&policy);
    let requests = LocalLimit::new(SharedLimit::new(1024, 2));
    let retries = LocalLimit::new(SharedLimit::new(3, 2));
    let retry_budget = RetryBudget::default();
    let mut group = c.benchmark_group("request");
    group.bench_function("plan_judge_breaker", |b| {
        b.iter(|| {
            let controls = Controls::default();
            let plan = RetryRules::for_request(Some(black_box(&rules)), black_box(&controls));
            let admitted = requests.try_acquire();
            let end = AttemptEnd::Response {
                status: black_box(200),
                headers: &no_header,
            };
            let verdict = plan.map(|p| p.judge(Some(&rules), &end, black_box(true)));
            requests.release();
            black_box((admitted, verdict))
        })
    });
    group.bench_function("judge_503_retry", |b| {
        b.iter(|| {
            let plan = RetryRules::for_request(Some(black_box(&rules)), &Controls::default());
            let admitted = requests.try_acquire();
            let end = AttemptEnd::Response {
                status: black_box(503),
                headers: &no_header,
            };
            let verdict = plan.map(|p| p.judge(Some(&rules), &end, black_box(true)));
            let retry = verdict == Some(Verdict::Retry)
                && budget::allows(&retry_budget, 2, black_box(10), black_box(0))
                && retries.try_acquire();
            if retry {
                retries.release();
            }
            requests.release();
            black_box((admitted, retry))
        })
    });
    group.finish();
}

/// Runs `op` `iters` times on each of `threads` threads started together; the time of
/// the slowest thread (per-thread ns per op = time / iters).
fn on_threads<S: Send>(
    threads: usize,
    iters: u64,
    state: impl Fn() -> S + Sync,
    op: impl Fn(&S) + Sync,
) -> Duration {
    let go = AtomicBool::new(false);
    let ready = AtomicU32::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let s = state();
                    ready.fetch_add(1, Ordering::SeqCst);
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    let start = Instant::now();
                    for _ in 0..iters {
                        op(&s);
                    }
                    start.elapsed()
                })
            })
            .collect();
        while ready.load(Ordering::SeqCst) < threads as u32 {
            std::hint::spin_loop();
        }
        go.store(true, Ordering::Release);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    })
}

fn contention(c: &mut Criterion) {
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut counts = vec![2];
    if parallelism != 2 {
        counts.push(parallelism);
    }
    let mut group = c.benchmark_group("contention");
    for threads in counts {
        let shared_atomic = AtomicU32::new(0);
        group.bench_function(format!("{threads}/shared_atomic"), |b| {
            b.iter_custom(|iters| {
                on_threads(
                    threads,
                    iters,
                    || (),
                    |_| {
                        // Envoy's pattern: add, compare, and give back (on release, or
                        // at once when over the limit).
                        black_box(shared_atomic.fetch_add(1, Ordering::Relaxed) < 1024);
                        shared_atomic.fetch_sub(1, Ordering::Relaxed);
                    },
                )
            })
        });
        // Envoy's default limit (batch 1024 / (64 × N)), and one below 64 × N (batch 0).
        for (kind, limit) in [("leased", 1024), ("exact_cas", 16)] {
            let shared = SharedLimit::new(limit, threads);
            group.bench_function(format!("{threads}/{kind}"), |b| {
                b.iter_custom(|iters| {
                    on_threads(
                        threads,
                        iters,
                        || LocalLimit::new(shared.clone()),
                        |local| {
                            if black_box(local.try_acquire()) {
                                local.release();
                            }
                        },
                    )
                })
            });
        }
        group.bench_function(format!("{threads}/thread_local"), |b| {
            b.iter_custom(|iters| {
                on_threads(
                    threads,
                    iters,
                    || Cell::new(0u32),
                    |count| {
                        let before = count.get();
                        if black_box(before) < 1024 {
                            count.set(before + 1);
                            count.set(black_box(count.get()) - 1);
                        }
                    },
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, request, contention);
criterion_main!(benches);
