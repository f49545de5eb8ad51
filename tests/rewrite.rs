//! Rewrites and redirects through the real binary, both drivers: the upstream sees
//! exactly the rewritten request line and Host, and clients get Envoy's `location` for
//! every redirect code (curl follows one end to end).

mod common;

use std::net::SocketAddr;

use common::{upstream::Upstream, *};

fn start(driver: &str, endpoint: &str) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        format!(
            r#"workers: 1
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: /api/ }}
        cluster: up
        prefix_rewrite: /v2/
      - match: {{ path: /exact }}
        cluster: up
        prefix_rewrite: /elsewhere
        host_rewrite_literal: backend.internal
      - match: {{ regex: "/service/[^/]+/.*" }}
        cluster: up
        regex_rewrite: {{ pattern: "^/service/([^/]+)(/.*)$", substitution: "\\2/instance/\\1" }}
        host_rewrite_header: x-target-host
      - match: {{ template: "/shop/{{tenant}}/orders/{{rest=**}}" }}
        cluster: up
        template_rewrite: "/v2/orders/{{rest}}/tenant/{{tenant}}"
      - match: {{ template: "/users/*/profile" }}
        cluster: up
      - match: {{ prefix: /by-endpoint/ }}
        cluster: up
        auto_host_rewrite: true
      - match: {{ prefix: /secure/ }}
        redirect: {{ https_redirect: true }}
      - match: {{ prefix: /r301/ }}
        redirect: {{ host_redirect: new.example.com, port_redirect: 8443, path_redirect: "/landing?from=old" }}
      - match: {{ prefix: /r302/ }}
        redirect: {{ prefix_rewrite: /moved/, response_code: FOUND, strip_query: true }}
      - match: {{ prefix: /r303/ }}
        redirect: {{ response_code: 303, regex_rewrite: {{ pattern: "r303", substitution: "see" }} }}
      - match: {{ prefix: /r307/ }}
        redirect: {{ response_code: TEMPORARY_REDIRECT, scheme_redirect: ftp }}
      - match: {{ prefix: /r308/ }}
        redirect: {{ response_code: 308, prefix_rewrite: /api/ }}
      - match: {{ prefix: / }}
        cluster: up
clusters:
  - name: up
    endpoints: ["{endpoint}"]
"#
        )
    })
}

#[test]
fn the_upstream_sees_the_rewritten_target_and_host() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        let ask = |raw: &str| exchange(addr, raw.as_bytes());

        assert_eq!(
            ask("GET /api/orders/7?x=1 HTTP/1.1\r\nHost: a.com\r\n\r\n").status,
            200
        );
        let seen = up.next_seen();
        assert_eq!(
            seen.request_line(),
            "GET /v2/orders/7?x=1 HTTP/1.1",
            "{driver}"
        );
        assert_eq!(seen.header("host").as_deref(), Some("a.com"));
        assert_eq!(
            seen.header("x-envoy-original-path").as_deref(),
            Some("/api/orders/7?x=1"),
            "{driver}"
        );

        // Normalised first: dot segments are gone before the prefix is replaced.
        ask("GET /api/a/../b HTTP/1.1\r\nHost: a.com\r\n\r\n");
        assert_eq!(
            up.next_seen().request_line(),
            "GET /v2/b HTTP/1.1",
            "{driver}"
        );

        // An exact match is replaced whole; a literal Host.
        ask("GET /exact HTTP/1.1\r\nHost: a.com\r\n\r\n");
        let seen = up.next_seen();
        assert_eq!(seen.request_line(), "GET /elsewhere HTTP/1.1", "{driver}");
        assert_eq!(seen.header("host").as_deref(), Some("backend.internal"));

        // Regex groups; Host from a request header, and unchanged without it.
        ask("GET /service/foo/v1/api HTTP/1.1\r\nHost: a.com\r\nX-Target-Host: svc.local\r\n\r\n");
        let seen = up.next_seen();
        assert_eq!(
            seen.request_line(),
            "GET /v1/api/instance/foo HTTP/1.1",
            "{driver}"
        );
        assert_eq!(seen.header("host").as_deref(), Some("svc.local"));
        ask("GET /service/bar/x HTTP/1.1\r\nHost: a.com\r\n\r\n");
        let seen = up.next_seen();
        assert_eq!(
            seen.request_line(),
            "GET /x/instance/bar HTTP/1.1",
            "{driver}"
        );
        assert_eq!(seen.header("host").as_deref(), Some("a.com"));

        // Path templates: variables into a template rewrite; `*` is one segment.
        ask("GET /shop/acme/orders/7/items?x=1 HTTP/1.1\r\nHost: a.com\r\n\r\n");
        let seen = up.next_seen();
        assert_eq!(
            seen.request_line(),
            "GET /v2/orders/7/items/tenant/acme?x=1 HTTP/1.1",
            "{driver}"
        );
        assert_eq!(
            seen.header("x-envoy-original-path").as_deref(),
            Some("/shop/acme/orders/7/items?x=1")
        );
        ask("GET /users/ann/profile HTTP/1.1\r\nHost: a.com\r\n\r\n");
        assert_eq!(
            up.next_seen().request_line(),
            "GET /users/ann/profile HTTP/1.1"
        );
        // `/shop/acme/orders/**` needs the slash after `orders`; `*` is not two segments.
        ask("GET /shop/acme/orders HTTP/1.1\r\nHost: a.com\r\n\r\n");
        assert_eq!(
            up.next_seen().request_line(),
            "GET /shop/acme/orders HTTP/1.1"
        );
        ask("GET /users/a/b/profile HTTP/1.1\r\nHost: a.com\r\n\r\n");
        assert_eq!(
            up.next_seen().request_line(),
            "GET /users/a/b/profile HTTP/1.1"
        );

        // The endpoint's address as Host.
        ask("GET /by-endpoint/z HTTP/1.1\r\nHost: a.com\r\n\r\n");
        let seen = up.next_seen();
        assert_eq!(seen.header("host"), Some(up.addr.to_string()), "{driver}");
        assert_eq!(seen.request_line(), "GET /by-endpoint/z HTTP/1.1");

        // No rewrite: no x-envoy-original-path, and a client's own is passed as sent.
        ask("GET /plain HTTP/1.1\r\nHost: a.com\r\n\r\n");
        assert_eq!(up.next_seen().header("x-envoy-original-path"), None);
    }
}

#[test]
fn every_redirect_code_carries_envoys_location() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (rw, addr) = start(driver, &up.endpoint());
        let redirect = |raw: &str| {
            let r = exchange(addr, raw.as_bytes());
            let location = r.header("location").unwrap_or("").to_owned();
            assert_eq!(r.header("content-length"), Some("0"), "{driver}: {raw}");
            assert!(r.body.is_empty());
            (r.status, location)
        };
        assert_eq!(
            redirect("GET /secure/x?q=1 HTTP/1.1\r\nHost: a.com:443\r\n\r\n"),
            (301, "https://a.com/secure/x?q=1".to_owned())
        );
        assert_eq!(
            redirect("GET /secure/x HTTP/1.1\r\nHost: a.com:8080\r\n\r\n"),
            (301, "https://a.com:8080/secure/x".to_owned())
        );
        assert_eq!(
            redirect("GET /r301/old?q=1 HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            (
                301,
                "http://new.example.com:8443/landing?from=old".to_owned()
            )
        );
        assert_eq!(
            redirect("GET /r302/page?q=1 HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            (302, "http://a.com/moved/page".to_owned())
        );
        assert_eq!(
            redirect("POST /r303/form HTTP/1.1\r\nHost: a.com\r\nContent-Length: 3\r\n\r\nabc"),
            (303, "http://a.com/see/form".to_owned())
        );
        assert_eq!(
            redirect("GET /r307/f HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            (307, "ftp://a.com/r307/f".to_owned())
        );
        assert_eq!(
            redirect("GET /r308/x HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            (308, "http://a.com/api/x".to_owned())
        );
        // HTTP/1.0 without Host: a relative location.
        assert_eq!(
            redirect("GET /r308/x HTTP/1.0\r\n\r\n"),
            (308, "/api/x".to_owned())
        );
        assert_eq!(
            rw.wait_for_stat("http.public.rq_redirect", 8),
            8,
            "{driver}"
        );
        let three = rw.wait_for_stat("http.public.downstream_rq_3xx", 8);
        assert_eq!(three, 8, "{driver}");
        // Nothing reached the upstream.
        assert!(up
            .seen
            .recv_timeout(std::time::Duration::from_millis(100))
            .is_err());
    }
}

#[test]
fn curl_follows_a_redirect_to_the_rewritten_upstream() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP curl_follows_a_redirect_to_the_rewritten_upstream: curl is not installed");
        return;
    }
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-L",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{num_redirects} %{url_effective}",
            ])
            .arg(format!("http://{addr}/r308/orders"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text,
            format!("200 1 http://{addr}/api/orders"),
            "{driver}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(up.next_seen().request_line(), "GET /v2/orders HTTP/1.1");
    }
}

#[test]
fn rewrite_mistakes_are_refused_by_name() {
    let check = |route: &str, expect: &str| {
        let yaml = format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ prefix: / }}\n{route}clusters:\n  - name: c\n    endpoints: [127.0.0.1:9]\n"
        );
        let stderr = refused_config(&yaml);
        assert!(stderr.contains(expect), "{route}: {stderr}");
    };
    check(
        "        direct_response: { status: 200 }\n        prefix_rewrite: /x\n",
        "`prefix_rewrite` applies only to routes with a `cluster`",
    );
    check(
        "        cluster: c\n        prefix_rewrite: /x\n        regex_rewrite: { pattern: a, substitution: b }\n",
        "at most one of `prefix_rewrite` or `regex_rewrite`",
    );
    check(
        "        cluster: c\n        regex_rewrite: { pattern: \"(a)\", substitution: \"\\\\2\" }\n",
        "capture group the pattern does not have",
    );
    check(
        "        cluster: c\n        prefix_rewrite: x\n",
        "must start with `/`",
    );
    check(
        "        cluster: c\n        host_rewrite_literal: a\n        auto_host_rewrite: true\n",
        "at most one of `host_rewrite_literal`",
    );
    check(
        "        redirect: { response_code: 200 }\n",
        "expected a redirect status",
    );
    check(
        "        redirect: { path_redirect: /a, prefix_rewrite: /b }\n",
        "at most one of `path_redirect`",
    );
    check(
        "        cluster: c\n        redirect: { https_redirect: true }\n",
        "exactly one of `cluster`, `weighted_clusters`, `direct_response` or `redirect`",
    );
    check(
        "        redirect: { host_redirect: \"a b\" }\n",
        "is not a host",
    );
    check(
        "        cluster: c\n        template_rewrite: /x/{id}\n",
        "needs a `match.template`",
    );
}
