//! Route filter chains through the real binary under both drivers: header edits of a
//! listener and of a route on the request, the response and ringway's own replies, in
//! the documented order.

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
    request_headers_to_add:
      - {{ name: x-listener, value: l }}
    response_headers_to_add:
      - {{ name: x-listener-response, value: l }}
    routes:
      - match: {{ path: /direct }}
        direct_response: {{ status: 200, body: "ok\n" }}
        response_headers_to_add:
          - {{ name: x-direct, value: d }}
      - match: {{ prefix: /edited/ }}
        cluster: up
        request_headers_to_add:
          - {{ name: x-route, value: r }}
          - {{ name: x-tenant, value: acme, append: false }}
          - {{ name: x-multi, value: "2" }}
        request_headers_to_remove: [x-drop]
        response_headers_to_add:
          - {{ name: x-served-by, value: ringway }}
        response_headers_to_remove: [x-upstream]
      - match: {{ prefix: / }}
        cluster: up
clusters:
  - name: up
    endpoints: ["{endpoint}"]
"#
        )
    })
}

fn values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[test]
fn listener_and_route_header_edits_apply_in_order() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        let r = exchange(
            addr,
            b"GET /edited/x HTTP/1.1\r\nHost: t\r\nX-Drop: secret\r\nX-Tenant: evil\r\nX-Tenant: worse\r\nX-Multi: 1\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        let seen = up.next_seen();
        assert_eq!(values(&seen.head, "x-drop"), Vec::<&str>::new(), "{driver}");
        assert_eq!(values(&seen.head, "x-tenant"), ["acme"], "{driver}");
        assert_eq!(values(&seen.head, "x-multi"), ["1", "2"], "{driver}");
        assert_eq!(values(&seen.head, "x-listener"), ["l"], "{driver}");
        assert_eq!(values(&seen.head, "x-route"), ["r"], "{driver}");
        // The listener's edits run first, then the route's.
        let at = |name: &str| {
            seen.head
                .to_ascii_lowercase()
                .find(&format!("\r\n{name}:"))
                .unwrap()
        };
        assert!(at("x-listener") < at("x-route"), "{driver}: {}", seen.head);
        // The forwarding headers (the fixed stage) are still there.
        assert_eq!(
            values(&seen.head, "x-forwarded-for"),
            ["127.0.0.1"],
            "{driver}"
        );
        // Response side: the upstream's x-upstream removed, additions of both levels.
        assert_eq!(r.header("x-upstream"), None, "{driver}");
        assert_eq!(r.header("x-served-by"), Some("ringway"), "{driver}");
        assert_eq!(r.header("x-listener-response"), Some("l"), "{driver}");
        assert!(r.header("date").is_some(), "{driver}");

        // A route without edits of its own still gets the listener's.
        let r = exchange(addr, b"GET /other HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(
            values(&up.next_seen().head, "x-listener"),
            ["l"],
            "{driver}"
        );
        assert_eq!(r.header("x-upstream"), Some("echo"), "{driver}");
        assert_eq!(r.header("x-listener-response"), Some("l"), "{driver}");

        // ringway's own answers get the response additions of their route.
        let r = exchange(addr, b"GET /direct HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-direct"), Some("d"), "{driver}");
        assert_eq!(r.header("x-listener-response"), Some("l"), "{driver}");
        assert_eq!(r.body, b"ok\n");
    }
}

/// Envoy's conditional additions (`append_action`): `add_if_absent` adds only when no
/// field of the name is there, `overwrite_if_exists` replaces only when one is; on the
/// request, on the upstream's response and on ringway's own answers.
#[test]
fn conditional_header_additions_look_for_their_field() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let endpoint = up.endpoint();
        let (_rw, addr) = start_on(driver, |port, admin| {
            format!(
                r#"admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ path: /direct }}
        direct_response: {{ status: 200, body: "ok\n" }}
        response_headers_to_add:
          - {{ name: content-type, value: forced/type, append_action: add_if_absent }}
          - {{ name: x-absent, value: a, append_action: add_if_absent }}
      - match: {{ prefix: / }}
        cluster: up
        request_headers_to_add:
          - {{ name: x-default, value: ringway, append_action: add_if_absent }}
          - {{ name: x-scrub, value: scrubbed, append_action: overwrite_if_exists }}
          - {{ name: x-then, value: first, append_action: add_if_absent }}
          - {{ name: x-then, value: second, append_action: add_if_absent }}
        response_headers_to_add:
          - {{ name: x-upstream, value: replaced, append_action: overwrite_if_exists }}
          - {{ name: x-missing, value: none, append_action: overwrite_if_exists }}
          - {{ name: x-upstream, value: again, append_action: add_if_absent }}
clusters:
  - name: up
    endpoints: ["{endpoint}"]
"#
            )
        });
        // Neither field sent: the default is added, nothing is scrubbed; the second
        // `x-then` sees the first (added before it).
        let r = exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200, "{driver}");
        let seen = up.next_seen();
        assert_eq!(values(&seen.head, "x-default"), ["ringway"], "{driver}");
        assert_eq!(
            values(&seen.head, "x-scrub"),
            Vec::<&str>::new(),
            "{driver}"
        );
        assert_eq!(values(&seen.head, "x-then"), ["first"], "{driver}");
        // The upstream's `x-upstream: echo` replaced; nothing made up for the missing.
        assert_eq!(r.header("x-upstream"), Some("replaced"), "{driver}");
        assert_eq!(r.header("x-missing"), None, "{driver}");
        // Both sent: the client's default kept, its scrubbed field replaced (all of it).
        let r = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Default: client\r\nX-Scrub: a\r\nX-Scrub: b\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        let seen = up.next_seen();
        assert_eq!(values(&seen.head, "x-default"), ["client"], "{driver}");
        assert_eq!(values(&seen.head, "x-scrub"), ["scrubbed"], "{driver}");
        // ringway's own answer: its content type kept, an absent field added.
        let r = exchange(addr, b"GET /direct HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200, "{driver}");
        assert_ne!(r.header("content-type"), Some("forced/type"), "{driver}");
        assert_eq!(r.header("x-absent"), Some("a"), "{driver}");
        assert_eq!(r.body, b"ok\n", "{driver}");
    }
}

#[test]
fn hide_upstream_identity_removes_what_names_the_upstreams_software() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let endpoint = up.endpoint();
        let (_rw, addr) = start_on(driver, |port, admin| {
            format!(
                "admin: 127.0.0.1:{admin}\nlisteners:\n  - name: public\n    address: 127.0.0.1:{port}\n    hide_upstream_identity: true\n    routes:\n      - match: {{ prefix: / }}\n        cluster: up\nclusters:\n  - name: up\n    endpoints: [\"{endpoint}\"]\n"
            )
        });
        for (field, name) in [
            ("Server: gunicorn/20.1", "server"),
            ("X-Powered-By: Express", "x-powered-by"),
            ("X-AspNet-Version: 4.0.30319", "x-aspnet-version"),
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Respond-Header: {field}\r\n\r\n");
            let r = exchange(addr, raw.as_bytes());
            assert_eq!(r.status, 200, "{driver}");
            assert_eq!(r.header(name), None, "{driver}: {field}");
            // Other fields of the upstream stay.
            assert_eq!(r.header("x-upstream"), Some("echo"));
            up.next_seen();
        }
    }
}

#[test]
fn header_values_with_variables_are_rendered_per_message() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let endpoint = up.endpoint();
        let (_rw, addr) = start_on(driver, |port, admin| {
            format!(
                r#"admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ path: /direct }}
        direct_response: {{ status: 200, body: "ok" }}
        response_headers_to_add:
          - {{ name: x-protocol, value: "%PROTOCOL%" }}
      - name: catch-all
        match: {{ prefix: / }}
        cluster: up
        request_headers_to_add:
          - {{ name: x-route-name, value: "route=%ROUTE_NAME%" }}
          - {{ name: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" }}
          - {{ name: x-client-port, value: "%DOWNSTREAM_REMOTE_ADDRESS%" }}
          - {{ name: x-tenant, value: "t-%REQ(X-Tenant)%-%REQ(x-missing)%", append: false }}
          - {{ name: x-started, value: "%START_TIME%" }}
          - {{ name: x-literal, value: "100%% sure" }}
        response_headers_to_add:
          - {{ name: x-upstream-address, value: "%UPSTREAM_REMOTE_ADDRESS%" }}
          - {{ name: x-code, value: "%RESPONSE_CODE% via %PROTOCOL%" }}
clusters:
  - name: up
    endpoints: ["{endpoint}"]
"#
            )
        });
        let r = exchange(
            addr,
            b"GET /x HTTP/1.1\r\nHost: t\r\nX-Tenant: acme\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        let seen = up.next_seen();
        assert_eq!(
            seen.header("x-client").as_deref(),
            Some("127.0.0.1"),
            "{driver}"
        );
        assert_eq!(seen.header("x-tenant").as_deref(), Some("t-acme-"));
        assert_eq!(
            seen.header("x-route-name").as_deref(),
            Some("route=catch-all")
        );
        assert_eq!(seen.header("x-literal").as_deref(), Some("100% sure"));
        let started = seen.header("x-started").unwrap_or_default();
        assert!(
            started.len() == 24 && started.ends_with('Z') && started.as_bytes()[10] == b'T',
            "{driver}: {started}"
        );
        assert_eq!(r.header("x-upstream-address"), Some(endpoint.as_str()));
        assert_eq!(r.header("x-code"), Some("200 via HTTP/1.1"));
        let r = exchange(addr, b"GET /direct HTTP/1.0\r\n\r\n");
        assert_eq!(r.header("x-protocol"), Some("HTTP/1.0"), "{driver}");
    }
    for (value, says) in [
        ("%NOPE%", "unknown variable %NOPE%"),
        ("%DOWNSTREAM_LOCAL_ADDRESS%", "not supported yet"),
        ("50%", "does not end"),
    ] {
        let stderr = refused_config(&format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200 }}\n        response_headers_to_add:\n          - {{ name: x-a, value: \"{value}\" }}\n"
        ));
        assert!(stderr.contains(says), "{value}: {stderr}");
    }
}
