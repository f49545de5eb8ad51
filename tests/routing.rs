//! Routing through the real binary, under both drivers: host, header, query and regex
//! routes with direct responses, and attempts to reach a guarded `/admin/` by spelling
//! its path differently.

mod common;

use std::io::{BufReader, Write};
use std::net::SocketAddr;

use common::*;

fn config(port: u16, admin: u16) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    path_normalization: {{ merge_slashes: true, escaped_slashes: keep }}
    routes:
      - match: {{ prefix: /admin/ }}
        direct_response: {{ status: 403, body: "forbidden\n" }}
      - match: {{ prefix: /, host: api.example.com }}
        direct_response: {{ status: 200, body: "api\n" }}
      - match: {{ prefix: /, host: ["*.example.org"] }}
        direct_response: {{ status: 200, body: "org\n" }}
      - match:
          prefix: /
          headers: [{{ name: x-canary, exact: "1" }}]
        direct_response: {{ status: 200, body: "canary\n" }}
      - match:
          prefix: /
          query: [{{ name: debug, exact: "1" }}]
        direct_response: {{ status: 200, body: "debug\n" }}
      - match: {{ regex: "/users/[0-9]+" }}
        direct_response: {{ status: 200, body: "user\n" }}
      - match: {{ prefix: / }}
        direct_response: {{ status: 200, body: "catch-all\n" }}
  - name: strict
    address: 127.0.0.1:0
    path_normalization: {{ escaped_slashes: reject }}
    routes:
      - match: {{ prefix: / }}
        direct_response: {{ status: 200 }}
"#
    )
}

/// Sends one request with extra header lines on a new connection.
fn request(addr: SocketAddr, target: &str, headers: &str) -> (u16, String) {
    let mut stream = connect(addr).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: test\r\n{headers}\r\n"
    )
    .unwrap();
    let r = read_response(&mut BufReader::new(stream), false).unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn with_host(addr: SocketAddr, target: &str, host: &str) -> (u16, String) {
    let mut stream = connect(addr).unwrap();
    write!(stream, "GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let r = read_response(&mut BufReader::new(stream), false).unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn routes_by_host_header_query_and_regex() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let _rw = Ringway::start(&config(port, admin), admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let body = |r: (u16, String)| {
            assert_eq!(r.0, 200, "{driver}");
            r.1
        };
        assert_eq!(body(with_host(addr, "/x", "API.example.com:8080")), "api\n");
        assert_eq!(body(with_host(addr, "/x", "www.example.org")), "org\n");
        assert_eq!(body(with_host(addr, "/x", "example.org")), "catch-all\n");
        assert_eq!(body(request(addr, "/x", "X-Canary: 1\r\n")), "canary\n");
        assert_eq!(body(request(addr, "/x", "X-Canary: 2\r\n")), "catch-all\n");
        assert_eq!(body(request(addr, "/x?a=b&debug=1", "")), "debug\n");
        assert_eq!(body(request(addr, "/x?debug=10", "")), "catch-all\n");
        assert_eq!(body(request(addr, "/users/42", "")), "user\n");
        assert_eq!(body(request(addr, "/users/42/x", "")), "catch-all\n");
        assert_eq!(body(request(addr, "/users/%34%32", "")), "user\n");
    }
}

#[test]
fn a_guarded_prefix_cannot_be_bypassed() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let rw = Ringway::start(&config(port, admin), admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for target in [
            "/admin/",
            "/admin/users",
            "/x/../admin/",
            "/%2e%2e/admin/",
            "/x/%2E%2e/admin/",
            "/./admin/",
            "//admin/",
            "/admin//",
            "/x//..//admin/",
            "/%61dmin/",
            "/../../admin/",
        ] {
            let (status, body) = request(addr, target, "");
            assert_eq!(
                (status, body.as_str()),
                (403, "forbidden\n"),
                "{driver} {target}"
            );
        }
        // An escaped slash is data under `keep`: not `/admin/`, so not guarded by it.
        assert_eq!(request(addr, "/admin%2Fx", "").0, 200, "{driver}");
        for target in ["/a%zz", "/a%", "/a%00"] {
            assert_eq!(request(addr, target, "").0, 400, "{driver} {target}");
        }
        let stats = rw.stats();
        assert!(
            stats["http.public.downstream_cx_protocol_error"] >= 3,
            "{driver}"
        );
    }
}

#[test]
fn escaped_slashes_can_be_rejected() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        // The strict listener has port 0; find it through a second config instead.
        let yaml = config(port, admin).replace(
            "address: 127.0.0.1:0",
            &format!("address: 127.0.0.1:{}", free_port()),
        );
        let strict: u16 = yaml
            .lines()
            .filter_map(|l| l.trim().strip_prefix("address: 127.0.0.1:"))
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap();
        let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr = SocketAddr::from(([127, 0, 0, 1], strict));
        assert_eq!(request(addr, "/a/b", "").0, 200, "{driver}");
        assert_eq!(request(addr, "/a%2fb", "").0, 400, "{driver}");
        assert_eq!(request(addr, "/a%5Cb", "").0, 400, "{driver}");
    }
}
