//! Router benchmarks: 1,000 prefix routes plus a few regex routes, matched by the trie
//! router and by a linear scan of the same table, for paths that hit early, late and
//! nothing; path normalisation of a clean and a dirty path; path rewrites (prefix, regex
//! with captures) and a redirect's location.
//!
//! Run: `cargo bench --bench router -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::config::{
    self, DirectResponse, PathNormalization, Route, RouteAction, RouteConditions, RouteMatch,
};
use ringway::router::{
    normalize::normalize,
    rewrite::{self, PathRewrite},
    NoHeaders, RouteInput, Router,
};

fn table() -> Vec<Route> {
    let route = |matcher| Route {
        name: None,
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
        rewrite: Default::default(),
        cors: None,
        upgrades: None,
        idle_timeout: None,
        auth: None,
        authorization: None,
        rate_limit: None,
        hash_policy: Vec::new(),
        retry: None,
        mirrors: Vec::new(),
        fault: None,
        max_stream_duration: None,
        priority: Default::default(),
        attempt_count: Default::default(),
        observe: Default::default(),
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

/// Path rewrites and a redirect's location, into a buffer reused as the connection
/// reuses its target buffer (the routing issue's budget: a rewrite with captures at most
/// 150 ns).
fn rewriting(c: &mut Criterion) {
    let mut out = Vec::with_capacity(256);
    let path = &b"/service/orders/v1/items/12345"[..];
    let prefix = PathRewrite::compile(&config::PathRewrite::Prefix("/v2/".into())).unwrap();
    let regex = PathRewrite::compile(&config::PathRewrite::Regex {
        pattern: "^/service/([^/]+)(/.*)$".into(),
        substitution: "\\2/instance/\\1".into(),
    })
    .unwrap();
    let redirect = rewrite::Redirect::compile(&config::Redirect {
        scheme: Some("https".into()),
        host: None,
        port: None,
        path: Some(config::RedirectPath::Rewrite(config::PathRewrite::Prefix(
            "/new/".into(),
        ))),
        status: 301,
        strip_query: false,
    })
    .unwrap();
    let mut group = c.benchmark_group("rewrite");
    group.bench_function("prefix", |b| {
        b.iter(|| {
            out.clear();
            prefix.apply(black_box(path), 9, &mut out);
            out.len()
        })
    });
    group.bench_function("regex_with_captures", |b| {
        b.iter(|| {
            out.clear();
            regex.apply(black_box(path), path.len(), &mut out);
            out.len()
        })
    });
    let origin = rewrite::Origin {
        scheme: b"http",
        authority: b"api.example.com:443",
        path,
        matched: 9,
        query: b"expand=true",
    };
    group.bench_function("redirect_location", |b| {
        b.iter(|| {
            out.clear();
            redirect.location(black_box(&origin), &mut out);
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, matching, normalising, rewriting);
criterion_main!(benches);
