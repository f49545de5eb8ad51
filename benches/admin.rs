//! The admin scrape: every stat (and the 210 latency histograms) of a process with 100
//! clusters, 10 listeners and 2 workers collected from the store and rendered as Envoy's text and Prometheus formats
//! (tag extraction included). The budget: a `/stats/prometheus` scrape of 100
//! clusters and 2 workers in at most 10 ms. Runs on the control thread, never on a
//! worker.
//!
//! Run: `cargo bench --bench admin -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::stats::{names, render, tags::TagExtractors, Histogram, StatsStore};

fn store() -> StatsStore {
    let mut store = StatsStore::new(2);
    for c in 0..100 {
        let scope =
            store.scope_with_extra(&format!("cluster.service-{c}."), &names::cluster::DEFS, 1);
        scope
            .for_worker(0)
            .get(names::cluster::UPSTREAM_RQ_TOTAL)
            .add(c);
        for h in ["upstream_rq_time", "upstream_cx_connect_ms"] {
            let histogram = store.histogram(&format!("cluster.service-{c}.{h}"));
            histogram
                .for_worker(1)
                .record(std::time::Duration::from_micros(c * 997));
        }
    }
    for l in 0..10 {
        store.scope(&format!("listener.listener-{l}."), &names::listener::DEFS);
        store.scope(&format!("http.listener-{l}."), &names::http::DEFS);
        store.histogram(&format!("http.listener-{l}.downstream_rq_time"));
    }
    store
}

fn scrape(c: &mut Criterion) {
    let store = store();
    let tags = TagExtractors::envoy_defaults();
    let lines = store.lines(Vec::new());
    eprintln!("{} stats", lines.len());
    let mut group = c.benchmark_group("admin");
    group.bench_function("collect + text, 100 clusters, 2 workers", |b| {
        b.iter(|| {
            let mut out = String::new();
            render::text(&store.lines(Vec::new()), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("collect + prometheus, 100 clusters, 2 workers", |b| {
        b.iter(|| {
            let mut out = String::new();
            let view = store.view();
            render::prometheus(&view.lines(Vec::new()), &view.histograms(), &tags, &mut out);
            black_box(out.len())
        })
    });
    // The first scrape also builds the extractors and compiles the regexes it needs.
    group.bench_function("first prometheus scrape, 100 clusters, 2 workers", |b| {
        b.iter(|| {
            let tags = TagExtractors::envoy_defaults();
            let mut out = String::new();
            let view = store.view();
            render::prometheus(&view.lines(Vec::new()), &view.histograms(), &tags, &mut out);
            black_box(out.len())
        })
    });
    group.finish();

    // What a proxied request pays: its start read at the first byte, `upstream_rq_time`
    // and `downstream_rq_time` each recorded with a clock read (the budget: at
    // most 100 ns per request).
    let downstream = std::sync::Arc::new(Histogram::new("http.l.downstream_rq_time", 1));
    let upstream = std::sync::Arc::new(Histogram::new("cluster.c.upstream_rq_time", 1));
    let (downstream, upstream) = (downstream.for_worker(0), upstream.for_worker(0));
    let mut group = c.benchmark_group("histogram");
    group.bench_function("per request: three clock reads, two records", |b| {
        b.iter(|| {
            let start = std::time::Instant::now();
            upstream.record(black_box(start.elapsed()));
            downstream.record(black_box(start.elapsed()));
        })
    });
    group.bench_function("one record", |b| {
        b.iter(|| upstream.record(black_box(std::time::Duration::from_micros(1234))))
    });
    group.finish();
}

criterion_group!(benches, scrape);
criterion_main!(benches);
