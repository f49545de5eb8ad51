//! Route options through the real binary, both drivers: method conditions (`methods`,
//! and Envoy's `:method` pseudo-header), a direct response's body from a file (Envoy's
//! `DataSource`), and a route's `idle_timeout` replacing the listener's
//! `stream_idle_timeout`.

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{upstream::Upstream, *};

fn start(driver: &str, endpoint: &str, body_file: &str) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        format!(
            r#"admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: /items, methods: [GET, HEAD] }}
        direct_response: {{ status: 200, body: "read" }}
      - match: {{ prefix: /items, headers: [{{ name: ":method", exact: DELETE }}] }}
        direct_response: {{ status: 200, body: "delete" }}
      - match: {{ prefix: /items }}
        direct_response: {{ status: 405, body: "other" }}
      - match: {{ path: /page }}
        direct_response:
          status: 200
          content_type: text/html
          body: {{ filename: "{body_file}" }}
      - match: {{ prefix: /impatient }}
        cluster: up
        idle_timeout: 300ms
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
fn methods_bodies_from_files_and_route_idle_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    std::fs::write(&page, "<h1>from a file</h1>\n").unwrap();
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint(), page.to_str().unwrap());
        let ask = |method: &str, path: &str| {
            let r = exchange(
                addr,
                format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            );
            (r.status, String::from_utf8_lossy(&r.body).into_owned())
        };
        assert_eq!(ask("GET", "/items/1"), (200, "read".into()), "{driver}");
        assert_eq!(ask("DELETE", "/items/1"), (200, "delete".into()));
        assert_eq!(ask("POST", "/items/1"), (405, "other".into()));
        let r = exchange(addr, b"GET /page HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.body, b"<h1>from a file</h1>\n", "{driver}");
        assert_eq!(r.header("content-type"), Some("text/html"));

        // The upstream answers after 2 s: too slow for the route's 300 ms idle timeout
        // (which fires within a second of it: the idle check is coarse), fine under the
        // listener's (60 s).
        let started = Instant::now();
        let r = exchange(
            addr,
            b"GET /impatient HTTP/1.1\r\nHost: t\r\nX-Delay-Ms: 2000\r\n\r\n",
        );
        assert_ne!(r.status, 200, "{driver}");
        assert!(started.elapsed() < Duration::from_millis(1900), "{driver}");
        up.next_seen();
        let r = exchange(
            addr,
            b"GET /patient HTTP/1.1\r\nHost: t\r\nX-Delay-Ms: 2000\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
    }
}

#[test]
fn a_body_file_is_read_from_the_config_files_directory_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.txt"),
        "hello from beside the config\n",
    )
    .unwrap();
    let yaml = "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200, body: { filename: hello.txt } }\n";
    let path = dir.path().join("ringway.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = ringway::config::Config::load(&path).unwrap();
    let ringway::config::RouteAction::DirectResponse(d) = &config.listeners[0].routes[0].action
    else {
        panic!("a direct response")
    };
    assert_eq!(&d.body[..], b"hello from beside the config\n");

    let stderr = refused_config(&yaml.replace("hello.txt", "missing.txt"));
    assert!(
        stderr.contains("cannot read") && stderr.contains("missing.txt"),
        "{stderr}"
    );
    let stderr = refused_config(&yaml.replace(
        "{ filename: hello.txt }",
        "{ filename: a, inline_string: b }",
    ));
    assert!(
        stderr.contains("one of `inline_string` or `filename`"),
        "{stderr}"
    );
    let stderr = refused_config(&yaml.replace(
        "direct_response: { status: 200, body: { filename: hello.txt } }",
        "direct_response: { status: 200 }\n        idle_timeout: 1s",
    ));
    assert!(
        stderr.contains("`idle_timeout` applies only to routes with a `cluster`"),
        "{stderr}"
    );
    let stderr = refused_config(
        "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: { prefix: /, methods: [] }\n        direct_response: { status: 200 }\n",
    );
    assert!(stderr.contains("empty `methods`"), "{stderr}");
}
