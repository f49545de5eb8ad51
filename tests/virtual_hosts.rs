//! Virtual hosts through the real binary, both drivers: Envoy's domain search order
//! (exact, longest suffix wildcard, longest prefix wildcard, `*`), ports, no default
//! host, and header edits and CORS per host; config mistakes refused by name.

mod common;

use std::net::SocketAddr;

use common::*;

fn start(driver: &str) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        let host = |name: &str, domains: &str, body: &str| {
            format!(
                "      - name: {name}\n        domains: {domains}\n        response_headers_to_add:\n          - {{ name: x-host, value: {name} }}\n        routes:\n          - match: {{ prefix: / }}\n            direct_response: {{ status: 200, body: \"{body}\" }}\n            response_headers_to_add:\n              - {{ name: x-route, value: {name} }}\n"
            )
        };
        format!(
            "workers: 1\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: public\n    address: 127.0.0.1:{port}\n    response_headers_to_add:\n      - {{ name: x-listener, value: l }}\n    virtual_hosts:\n{}{}{}{}{}{}",
            host("fallback", "[\"*\"]", "default"),
            host("wild", "[\"*.example.com\"]", "wild"),
            host("deeper", "[\"*.api.example.com\"]", "deeper"),
            host("exact", "[api.example.com, www.example.org]", "exact"),
            host("prefixed", "[\"api.*\"]", "prefixed"),
            host("ported", "[\"internal:8080\"]", "ported"),
        )
    })
}

fn get_host(addr: SocketAddr, host: &str) -> Response {
    exchange(
        addr,
        format!("GET /x HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
}

#[test]
fn the_host_is_chosen_by_envoys_search_order() {
    for driver in drivers() {
        let (_rw, addr) = start(driver);
        for (host, body) in [
            ("api.example.com", "exact"),
            ("API.Example.com:8443", "exact"),
            ("www.example.org", "exact"),
            ("v2.api.example.com", "deeper"),
            ("shop.example.com", "wild"),
            ("example.com", "default"),
            ("api.other.net", "prefixed"),
            ("internal:8080", "ported"),
            ("internal:9090", "default"),
            ("nothing.test", "default"),
        ] {
            let r = get_host(addr, host);
            assert_eq!(
                String::from_utf8_lossy(&r.body),
                body,
                "{driver}: Host {host}"
            );
        }
        // Header edits: the route's, the host's and the listener's all apply.
        let r = get_host(addr, "api.example.com");
        assert_eq!(r.header("x-route"), Some("exact"));
        assert_eq!(r.header("x-host"), Some("exact"));
        assert_eq!(r.header("x-listener"), Some("l"));
    }
}

#[test]
fn without_a_default_host_an_unknown_authority_has_no_route() {
    for driver in drivers() {
        let (rw, addr) = start_on(driver, |port, admin| {
            format!(
                "admin: 127.0.0.1:{admin}\nlisteners:\n  - name: public\n    address: 127.0.0.1:{port}\n    virtual_hosts:\n      - name: only\n        domains: [a.test]\n        cors:\n          allow_origin: [\"https://ui.a.test\"]\n        routes:\n          - match: {{ prefix: / }}\n            direct_response: {{ status: 200, body: a }}\n"
            )
        });
        assert_eq!(get_host(addr, "a.test").status, 200, "{driver}");
        assert_eq!(get_host(addr, "b.test").status, 404, "{driver}");
        assert_eq!(rw.wait_for_stat("http.public.no_route", 1), 1);
        // The host's CORS policy applies to its routes.
        let r = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: a.test\r\nOrigin: https://ui.a.test\r\n\r\n",
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://ui.a.test")
        );
    }
}

#[test]
fn virtual_host_mistakes_are_refused_by_name() {
    let listener =
        |rest: &str| format!("listeners:\n  - name: l\n    address: 127.0.0.1:0\n{rest}");
    let host = |name: &str, domains: &str| {
        format!("      - name: {name}\n        domains: {domains}\n        routes:\n          - match: {{ prefix: / }}\n            direct_response: {{ status: 200 }}\n")
    };
    let cases = [
        (
            listener(&format!(
                "    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200 }}\n    virtual_hosts:\n{}",
                host("a", "[\"*\"]")
            )),
            "`routes` or `virtual_hosts`, not both",
        ),
        (
            listener(&format!(
                "    virtual_hosts:\n{}{}",
                host("a", "[x.test, \"*\"]"),
                host("b", "[y.test, X.TEST]")
            )),
            "domain \"x.test\" is already served by virtual host 0",
        ),
        (
            listener(&format!(
                "    virtual_hosts:\n{}{}",
                host("a", "[x.test]"),
                host("a", "[y.test]")
            )),
            "duplicate virtual host name \"a\"",
        ),
        (
            listener(&format!("    virtual_hosts:\n{}", host("a", "[\"a.*.b\"]"))),
            "is not a domain",
        ),
        (
            listener(&format!("    virtual_hosts:\n{}", host("a", "[]"))),
            "domain",
        ),
        (listener(""), "a listener needs `routes` or `virtual_hosts`"),
    ];
    for (yaml, expect) in cases {
        let stderr = refused_config(&yaml);
        assert!(stderr.contains(expect), "{yaml}\n{stderr}");
    }
}
