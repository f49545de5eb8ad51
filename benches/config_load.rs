//! Loading a config on the control thread: an Envoy bootstrap (the corpus'
//! `envoy-ws.yaml`, and its largest file, which is refused after the whole preparation
//! pass) beside the same routing as a native config, with the descriptor pool already
//! decoded (it is decoded once per process; `first pool decode` is that one-time cost,
//! measured on a fresh pool).
//!
//! Run: `cargo bench --bench config_load -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::config::Config;

const NATIVE: &str = "listeners:\n  - name: l\n    address: 127.0.0.1:10000\n    virtual_hosts:\n      - name: app\n        domains: [\"*\"]\n        routes:\n          - match: { prefix: / }\n            cluster: service_ws\n            upgrades: [websocket]\nclusters:\n  - name: service_ws\n    endpoints: [service-ws:80]\n";

fn bench(c: &mut Criterion) {
    let envoy = std::fs::read_to_string("tests/envoy/corpus/envoy-ws.yaml").expect("corpus");
    let largest =
        std::fs::read_to_string("tests/envoy/corpus/front-proxy_envoy.yaml").expect("corpus");
    let source = Path::new("bench.yaml");
    // Warm the pool, and check both configs load as the benchmark assumes.
    assert!(Config::parse(&envoy, source).is_ok());
    assert!(Config::parse(NATIVE, source).is_ok());
    assert!(Config::parse(&largest, source).is_ok());
    c.bench_function("envoy-ws.yaml (Envoy)", |b| {
        b.iter(|| black_box(Config::parse(black_box(&envoy), source)))
    });
    c.bench_function("front-proxy_envoy.yaml (Envoy, TLS)", |b| {
        b.iter(|| black_box(Config::parse(black_box(&largest), source)))
    });
    c.bench_function("the same routing (native)", |b| {
        b.iter(|| black_box(Config::parse(black_box(NATIVE), source)))
    });
    c.bench_function("first pool decode", |b| {
        b.iter(|| black_box(ringway::config::decode_envoy_schema()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
