//! The short form (top-level `routes` with `path` and `upstream`): what it expands to,
//! what it refuses, and the real binary serving it.

mod common;

use std::path::Path;

use common::{drivers, free_port, get, run_ringway, upstream::Upstream, write_config, Ringway};
use ringway::config::Config;

fn errors(text: &str) -> Vec<String> {
    Config::parse(text, Path::new("gateway.yaml"))
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn validate_prints_the_one_full_form_a_short_form_means() {
    let short = "\
admin: 127.0.0.1:9901
routes:
  - path: /api/orders/**
    upstream: order-service
  - path: /api/customers/{id}
    upstream: customer-service:8080
    methods: [GET, PUT]
  - path: /healthz
    upstream: 127.0.0.1:9001
  - path: /api/orders-v2/**
    upstream: order-service:80
";
    let file = write_config(short);
    let out = run_ringway(&["--mode", "validate"], &file.path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        printed,
        r#"listeners:
  - name: default
    address: "0.0.0.0:8080"
    routes:
      - match: { template: "/api/orders/**" }
        cluster: "order-service"
      - match: { template: "/api/customers/{id}", methods: ["GET", "PUT"] }
        cluster: "customer-service_8080"
      - match: { path: "/healthz" }
        cluster: "127.0.0.1_9001"
      - match: { template: "/api/orders-v2/**" }
        cluster: "order-service"
clusters:
  - name: "order-service"
    endpoints: ["order-service:80"]
  - name: "customer-service_8080"
    endpoints: ["customer-service:8080"]
  - name: "127.0.0.1_9001"
    endpoints: ["127.0.0.1:9001"]
"#
    );
    // The printed form, with the file's other keys, is the same config.
    let full = format!("admin: 127.0.0.1:9901\n{printed}");
    let from_short = Config::parse(short, Path::new("a.yaml")).unwrap();
    let from_full = Config::parse(&full, Path::new("a.yaml")).unwrap();
    assert_eq!(from_short.listeners, from_full.listeners);
    assert_eq!(from_short.clusters, from_full.clusters);
    assert_eq!(from_short.admin, from_full.admin);
    assert_eq!(from_full.expansion, None);

    // A full-form file prints nothing but the verdict.
    let out = run_ringway(&["--mode", "validate"], &write_config(&full).path);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn an_upstream_may_name_a_cluster_of_the_file() {
    let config = Config::parse(
        "listen: 127.0.0.1:8081\nroutes:\n  - path: /**\n    upstream: backend\nclusters:\n  - name: backend\n    endpoints: [10.0.0.1:80]\n    connect_timeout: 1s\n",
        Path::new("a.yaml"),
    )
    .unwrap();
    assert_eq!(config.clusters.len(), 1);
    assert_eq!(config.listeners[0].address.to_string(), "127.0.0.1:8081");
    assert!(config.expansion.unwrap().contains("cluster: \"backend\""));
}

#[test]
fn short_form_mistakes_are_named_where_they_are_written() {
    let text = "\
routes:
  - path: /api/orders/**
    upstream: order-service
    auth: jwt
    rate_limit: 100/min
  - path: /api/{a}/{a}
    upstream: -bad-
    rate_limit: 100/week
  - path: api
    upstream: a:b:c
  - upstream: x
    cors: {}
";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:4:11: routes[0].auth: `jwt` needs a JWT provider in `auth.jwt_providers` (there is none)",
            "gateway.yaml:6:11: routes[1].path: \"/api/{a}/{a}\": variable \"a\" appears twice",
            "gateway.yaml:8:17: routes[1].rate_limit: invalid rate \"100/week\": expected `N/s`, `N/min`, `N/h`, `N/day` or `N/<duration>`, e.g. `100/min` or `2/5s`",
            "gateway.yaml:9:11: routes[2].path: a path starts with `/`, e.g. `/api`",
            "gateway.yaml:11:5: routes[3]: missing required key `path`",
            "gateway.yaml:12:5: routes[3].cors: unknown key `cors`",
        ]
    );
    // The upstream is checked once the clusters are known.
    assert_eq!(
        errors("routes:\n  - path: /\n    upstream: -bad-\n"),
        ["gateway.yaml:3:15: routes[0].upstream: invalid host name in \"-bad-\": a label cannot start or end with `-` (nor is it the name of a cluster in `clusters`)"]
    );
    assert_eq!(
        errors("routes:\n  - path: /\n    upstream: a:9\nclusters:\n  - name: a_9\n    endpoints: [10.0.0.1:80]\n"),
        ["gateway.yaml:3:15: routes[0].upstream: upstream \"a:9\" would be cluster \"a_9\", which the file's `clusters` already define; name that cluster here instead"]
    );
    // The short form and the full form do not mix.
    let mixed = errors(
        "listeners:\n  - name: l\n    address: 127.0.0.1:80\n    routes: [{ match: { prefix: / }, direct_response: { status: 200 } }]\nroutes:\n  - path: /\n    upstream: a\n",
    );
    assert_eq!(
        mixed,
        ["gateway.yaml:6:3: routes: top-level `routes` is the short form, for a file without `listeners`; move these routes into a listener's `routes`"]
    );
    let listen = errors(
        "listen: 127.0.0.1:80\nlisteners:\n  - name: l\n    address: 127.0.0.1:80\n    routes: [{ match: { prefix: / }, direct_response: { status: 200 } }]\n",
    );
    assert_eq!(
        listen,
        ["gateway.yaml:1:9: listen: `listen` is the short form's listener address; it needs top-level `routes` (with `listeners`, each listener has its `address`)"]
    );
}

#[test]
fn a_short_rate_limit_is_the_full_forms() {
    use ringway::config::ratelimit::{Bucket, KeyPart, LimitKey};
    let short = "\
routes:
  - path: /api/orders/**
    upstream: order-service
    rate_limit: 100/min
  - path: /api/customers/{id}
    upstream: customer-service
    rate_limit: [ { rate: 10/s, burst: 20, key: { header: x-tenant } }, 1000/h ]
";
    let config = Config::parse(short, Path::new("gateway.yaml")).unwrap();
    let expansion = config.expansion.as_deref().unwrap();
    assert!(expansion.contains(
        "      - match: { template: \"/api/orders/**\" }\n        cluster: \"order-service\"\n        rate_limit: \"100/min\"\n"
    ));
    assert!(expansion.contains(
        "        rate_limit: [{ rate: \"10/s\", burst: 20, key: { header: \"x-tenant\" } }, \"1000/h\"]\n"
    ));
    let routes = &config.listeners[0].routes;
    // `100/min`: 100 tokens a minute, burst 100, one bucket per client address.
    let orders = &routes[0].rate_limit.as_ref().unwrap().limits;
    assert_eq!(orders.len(), 1);
    assert_eq!(
        orders[0].bucket,
        Bucket {
            tokens: 100,
            per: std::time::Duration::from_secs(60),
            burst: 100
        }
    );
    assert_eq!(orders[0].key, LimitKey::Parts(vec![KeyPart::Client]));
    assert_eq!(orders[0].id, "default/api_orders");
    let customers = &routes[1].rate_limit.as_ref().unwrap().limits;
    let ids: Vec<&str> = customers.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        ids,
        ["default/api_customers_id", "default/api_customers_id.1"]
    );
    assert_eq!(customers[0].bucket.burst, 20);
    // The printed form means the same.
    let full = Config::parse(expansion, Path::new("full.yaml")).unwrap();
    assert_eq!(full.listeners, config.listeners);
}

#[test]
fn the_short_form_serves_with_the_meaning_it_has() {
    let upstream = Upstream::start(false);
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let yaml = format!(
            "admin: 127.0.0.1:{admin}\nworkers: 2\nlisten: 127.0.0.1:{port}\nroutes:\n  - path: /api/orders/**\n    upstream: localhost:{up}\n  - path: /healthz\n    upstream: {addr}\n",
            up = upstream.addr.port(),
            addr = upstream.addr,
        );
        let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = ([127, 0, 0, 1], port).into();
        // `localhost` is a name: a strict DNS cluster, resolved off the workers.
        assert_eq!(get(addr, "/api/orders/42/items").unwrap().status, 200);
        assert_eq!(
            upstream.next_seen().request_line(),
            "GET /api/orders/42/items HTTP/1.1"
        );
        // `**` needs a segment after the prefix (Envoy's uri_template).
        assert_eq!(get(addr, "/api/orders").unwrap().status, 404, "{driver}");
        // A path without wildcards is exact.
        assert_eq!(get(addr, "/healthz").unwrap().status, 200);
        upstream.next_seen();
        assert_eq!(get(addr, "/healthz/x").unwrap().status, 404);
    }
}
