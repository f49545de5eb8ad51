//! Request body limits through the filter chain's body hook, both drivers: a route's
//! `max_request_body` replaces the listener's (larger or smaller), a declared length over
//! it is refused before anything goes upstream, and a chunked body is refused when its
//! payload passes the limit as it streams (the upstream's connection is closed, since it
//! saw part of the body).

mod common;

use std::{
    io::{BufReader, Write},
    net::SocketAddr,
    time::Duration,
};

use common::{upstream::Upstream, *};

fn start(driver: &str, endpoint: &str) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        format!(
            r#"workers: 1
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    max_request_body: 1KiB
    routes:
      - match: {{ prefix: /uploads/ }}
        cluster: up
        max_request_body: 64KiB
      - match: {{ prefix: /tiny/ }}
        cluster: up
        max_request_body: 10
        request_headers_to_add:
          - {{ name: x-route, value: tiny }}
      - match: {{ prefix: / }}
        cluster: up
clusters:
  - name: up
    endpoints: ["{endpoint}"]
"#
        )
    })
}

fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Response {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    exchange(addr, &raw)
}

fn post_chunked(addr: SocketAddr, path: &str, body: &[u8], piece: usize) -> Response {
    let mut conn = connect(addr).unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    for part in body.chunks(piece) {
        // Pieces written apart, so the limit is met while the body streams.
        let mut chunk = format!("{:x}\r\n", part.len()).into_bytes();
        chunk.extend_from_slice(part);
        chunk.extend_from_slice(b"\r\n");
        if conn.write_all(&chunk).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = conn.write_all(b"0\r\n\r\n");
    read_response(&mut BufReader::new(conn), false).unwrap()
}

#[test]
fn a_routes_limit_replaces_the_listeners_in_both_directions() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(driver, &up.endpoint());
        // The listener's 1 KiB on a route without its own.
        assert_eq!(post(addr, "/other", &[b'a'; 1024]).status, 200, "{driver}");
        assert_eq!(up.next_seen().body.len(), 1024);
        assert_eq!(post(addr, "/other", &[b'a'; 1025]).status, 413, "{driver}");
        // Larger on /uploads/.
        assert_eq!(
            post(addr, "/uploads/x", &[b'a'; 50_000]).status,
            200,
            "{driver}"
        );
        assert_eq!(up.next_seen().body.len(), 50_000);
        let refused = post(addr, "/uploads/x", &[b'a'; 65_537]);
        assert_eq!(refused.status, 413, "{driver}");
        // Refused from the head: the body is not waited for (none is sent here).
        let started = std::time::Instant::now();
        let r = exchange(
            addr,
            b"POST /tiny/x HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n",
        );
        assert_eq!(r.status, 413, "{driver}");
        assert_eq!(r.header("connection"), Some("close"), "{driver}");
        assert!(started.elapsed() < Duration::from_secs(2), "{driver}");
        // Smaller on /tiny/, beside the route's header edits.
        assert_eq!(post(addr, "/tiny/x", b"0123456789").status, 200, "{driver}");
        let seen = up.next_seen();
        assert_eq!(seen.header("x-route").as_deref(), Some("tiny"));
        assert_eq!(
            post(addr, "/tiny/x", b"0123456789A").status,
            413,
            "{driver}"
        );
        // None of the refused requests reached the upstream.
        assert!(
            up.seen.recv_timeout(Duration::from_millis(200)).is_err(),
            "{driver}: a refused request was forwarded"
        );
    }
}

#[test]
fn a_chunked_body_is_refused_as_it_passes_the_limit() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (rw, addr) = start(driver, &up.endpoint());
        let ok = post_chunked(addr, "/uploads/c", &[b'b'; 60_000], 4096);
        assert_eq!(ok.status, 200, "{driver}");
        assert_eq!(up.next_seen().body.len(), 60_000);
        let big = post_chunked(addr, "/uploads/c", &[b'b'; 200_000], 4096);
        assert_eq!(big.status, 413, "{driver}");
        assert_eq!(big.header("connection"), Some("close"), "{driver}");
        let small = post_chunked(addr, "/tiny/c", b"0123456789AB", 3);
        assert_eq!(small.status, 413, "{driver}");
        let four = rw.wait_for_stat("http.public.downstream_rq_4xx", 2);
        assert_eq!(four, 2, "{driver}");
        // Envoy's counts: refused for size, answered before the request was whole.
        let stats = rw.stats();
        for name in [
            "http.public.downstream_rq_too_large",
            "http.public.downstream_rq_response_before_rq_complete",
        ] {
            assert_eq!(stats[name], 2, "{driver}: {name}");
        }
        // The upstream saw at most part of each refused body (as it streamed, before the
        // limit was passed), and its connection was not reused.
        assert_eq!(post(addr, "/uploads/d", b"after").status, 200, "{driver}");
        loop {
            let seen = up.next_seen();
            if seen.body == b"after" {
                break;
            }
            assert!(
                seen.body.len() < 200_000,
                "{driver}: a refused body went through"
            );
        }
    }
}

#[test]
fn a_direct_response_route_refuses_a_body_limit_by_name() {
    let config = String::from(
        "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200 }\n        max_request_body: 1KiB\n",
    );
    let stderr = refused_config(&config);
    assert!(
        stderr.contains("max_request_body") && stderr.contains("only to routes with a `cluster`"),
        "{stderr}"
    );
    assert!(stderr.contains(":7:"), "line of the field: {stderr}");
}
