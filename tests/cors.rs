//! CORS through the real binary, both drivers: preflights answered by ringway (never
//! reaching the upstream), actual requests given the policy's headers, disallowed or
//! absent origins left without any, on forwarded, direct and failed requests, with the
//! listener's policy for routes without their own.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{upstream::Upstream, *};

fn start(driver: &str, endpoint: &str) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        format!(
            r#"workers: 1
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    cors:
      allow_origin: ["https://listener.example"]
    routes:
      - match: {{ prefix: /api/ }}
        cluster: up
        cors:
          allow_origin:
            - https://app.example.com
            - {{ suffix: .partner.example }}
            - {{ regex: "https://[a-z]+\\.dev\\.example" }}
          allow_methods: [GET, PUT, DELETE]
          allow_headers: "content-type, authorization"
          expose_headers: [x-request-id]
          max_age: 10m
          allow_credentials: true
      - match: {{ prefix: /public/ }}
        direct_response: {{ status: 200, body: "hello" }}
        cors:
          allow_origin: ["*"]
      - match: {{ prefix: /dead/ }}
        cluster: dead
      - match: {{ prefix: / }}
        cluster: up
clusters:
  - name: up
    endpoints: ["{endpoint}"]
  - name: dead
    endpoints: ["127.0.0.1:9"]
    connect_timeout: 1s
"#
        )
    })
}

fn cors_fields(r: &Response) -> Vec<(String, String)> {
    let mut fields: Vec<_> = r
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("access-control-") || n == "vary")
        .cloned()
        .collect();
    fields.sort();
    fields
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_preflight_from_an_allowed_origin_is_answered_by_ringway() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (rw, addr) = start(driver, &up.endpoint());
        let r = exchange(
            addr,
            b"OPTIONS /api/orders HTTP/1.1\r\nHost: api\r\nOrigin: https://app.example.com\r\n\
              Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(r.header("content-length"), Some("0"));
        assert_eq!(
            cors_fields(&r),
            pairs(&[
                ("access-control-allow-origin", "https://app.example.com"),
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-methods", "GET,PUT,DELETE"),
                ("access-control-allow-headers", "content-type,authorization"),
                ("access-control-max-age", "600"),
                ("vary", "origin"),
            ]),
            "{driver}"
        );
        // Suffix and regex matchers.
        for origin in ["https://shop.partner.example", "https://abc.dev.example"] {
            let raw = format!(
                "OPTIONS /api/x HTTP/1.1\r\nHost: api\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: GET\r\n\r\n"
            );
            let r = exchange(addr, raw.as_bytes());
            assert_eq!(
                r.header("access-control-allow-origin"),
                Some(origin),
                "{driver}"
            );
        }
        // A preflight on a direct-response route, with the wildcard policy.
        let r = exchange(
            addr,
            b"OPTIONS /public/x HTTP/1.1\r\nHost: api\r\nOrigin: https://anyone.example\r\nAccess-Control-Request-Method: GET\r\n\r\n",
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://anyone.example")
        );
        assert!(r.body.is_empty(), "a preflight has no body");
        // None of them reached the upstream.
        assert!(
            up.seen.recv_timeout(Duration::from_millis(200)).is_err(),
            "{driver}"
        );
        drop(rw);
    }
}

#[test]
fn actual_requests_get_the_policys_headers_and_others_get_none() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        // Allowed: the upstream's own allow-origin is replaced by the policy's.
        let r = exchange(
            addr,
            b"GET /api/orders HTTP/1.1\r\nHost: api\r\nOrigin: https://app.example.com\r\n\
              X-Respond-Header: Access-Control-Allow-Origin: *\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(
            cors_fields(&r),
            pairs(&[
                ("access-control-allow-origin", "https://app.example.com"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-request-id"),
                ("vary", "origin"),
            ]),
            "{driver}"
        );
        assert_eq!(
            up.next_seen().header("origin").as_deref(),
            Some("https://app.example.com")
        );

        // Disallowed origin, no origin: untouched.
        for raw in [
            &b"GET /api/orders HTTP/1.1\r\nHost: api\r\nOrigin: https://evil.example\r\n\r\n"[..],
            b"GET /api/orders HTTP/1.1\r\nHost: api\r\n\r\n",
        ] {
            let r = exchange(addr, raw);
            assert_eq!(r.status, 200);
            assert!(cors_fields(&r).is_empty(), "{driver}: {:?}", r.headers);
            up.next_seen();
        }
        // A disallowed preflight is forwarded like any request (as Envoy does), without
        // CORS headers: the browser refuses it.
        let r = exchange(
            addr,
            b"OPTIONS /api/orders HTTP/1.1\r\nHost: api\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
        );
        assert!(cors_fields(&r).is_empty(), "{driver}");
        assert!(up.next_seen().head.starts_with("OPTIONS /api/orders"));

        // The listener's policy on a route without its own.
        let r = exchange(
            addr,
            b"GET /other HTTP/1.1\r\nHost: api\r\nOrigin: https://listener.example\r\n\r\n",
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://listener.example")
        );
        assert_eq!(r.header("access-control-allow-credentials"), None);
        up.next_seen();
        // ... and not on a route that has its own.
        let r = exchange(
            addr,
            b"GET /api/x HTTP/1.1\r\nHost: api\r\nOrigin: https://listener.example\r\n\r\n",
        );
        assert!(cors_fields(&r).is_empty(), "{driver}");
        up.next_seen();

        // Ringway's own answers carry them too: a direct response, a 503.
        let r = exchange(
            addr,
            b"GET /public/x HTTP/1.1\r\nHost: api\r\nOrigin: https://anyone.example\r\n\r\n",
        );
        assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://anyone.example")
        );
        let r = exchange(
            addr,
            b"GET /dead/x HTTP/1.1\r\nHost: api\r\nOrigin: https://listener.example\r\n\r\n",
        );
        assert_eq!(r.status, 503, "{driver}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://listener.example")
        );
    }
}

#[test]
fn cors_mistakes_are_refused_by_name() {
    let check = |cors: &str, expect: &str| {
        let yaml = format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200 }}\n        cors:\n{cors}"
        );
        let stderr = refused_config(&yaml);
        assert!(stderr.contains(expect), "{cors}: {stderr}");
    };
    check("          allow_methods: [GET]\n", "allow_origin");
    check("          allow_origin: []\n", "at least one origin");
    check(
        "          allow_origin: [{ suffix: a, prefix: b }]\n",
        "exactly one of `exact`",
    );
    check(
        "          allow_origin: [{ regex: \"(\" }]\n",
        "invalid regex",
    );
    check(
        "          allow_origin: [\"*\"]\n          allow_headers: [\"bad header\"]\n",
        "not a method or header name",
    );
    check(
        "          allow_origin: [\"*\"]\n          allow_credential: true\n",
        "allow_credential",
    );
}
