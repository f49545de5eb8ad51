//! Router benchmarks: 1,000 prefix routes plus a few regex routes, matched by the trie
//! router and by a linear scan of the same table, for paths that hit early, late and
//! nothing; and path normalisation of a clean and a dirty path.
//!
//! Run: `cargo bench --bench router -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::config::{
    DirectResponse, PathNormalization, Route, RouteAction, RouteConditions, RouteMatch,
};
use ringway::router::{normalize::normalize, NoHeaders, RouteInput, Router};

fn table() -> Vec<Route> {
    let route = |matcher| Route {
        matcher,
        action: RouteAction::DirectResponse(DirectResponse {
            status: 200,
            body: bytes::Bytes::new(),
            content_type: "text/plain".into(),
        }),
        timeout: Duration::from_secs(15),
        conditions: RouteConditions::default(),
        headers: Default::default(),
        max_request_body: None,
    };
    let mut routes: Vec<Route> = (0..1000)
        .map(|i| route(RouteMatch::Prefix(format!("/svc{i}/"))))
        .collect();
    // A few regexes in the middle of the table, as a real one would have.
    for (at, re) in [
        (500, r"/users/[0-9]+/orders"),
        (600, r"/static/.*\.png"),
        (700, r"/v[0-9]/.*"),
    ] {
        routes.insert(at, route(RouteMatch::Regex(re.into())));
    }
    routes
}

fn matching(c: &mut Criterion) {
    let router = Router::build(&table(), |_| None);
    let cases: [(&str, &[u8]); 3] = [
        ("early", b"/svc3/items/42"),
        ("late", b"/svc998/items/42"),
        ("none", b"/nothing/here/at/all"),
    ];
    let mut group = c.benchmark_group("route_1000");
    for (name, path) in cases {
        let input = RouteInput {
            host: b"example.com",
            path,
            query: b"",
            headers: &NoHeaders,
        };
        assert_eq!(
            router.route(&input).map(|r| r.index),
            router.route_linear(&input).map(|r| r.index)
        );
        group.bench_function(format!("trie/{name}"), |b| {
            b.iter(|| black_box(&router).route(black_box(&input)).map(|r| r.index))
        });
        group.bench_function(format!("linear/{name}"), |b| {
            b.iter(|| {
                black_box(&router)
                    .route_linear(black_box(&input))
                    .map(|r| r.index)
            })
        });
    }
    group.finish();
}

fn normalising(c: &mut Criterion) {
    let policy = PathNormalization {
        merge_slashes: true,
        ..Default::default()
    };
    let mut scratch = Vec::with_capacity(256);
    let mut group = c.benchmark_group("normalize");
    for (name, target) in [
        ("clean", &b"/api/v1/orders/12345/items?expand=true"[..]),
        (
            "dirty",
            &b"/api/v1/./x/../orders//%31%32345/%7eitems/..%2Fz?expand=true"[..],
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                normalize(black_box(target), &policy, &mut scratch)
                    .map(|n| n.path.len())
                    .ok()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matching, normalising);
criterion_main!(benches);
