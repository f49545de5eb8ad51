//! PROXY protocol v1 and v2 on a listener, both drivers: the client address from a
//! trusted balancer's header is what the upstream's `x-forwarded-for` says; a missing
//! (when required), malformed, late or untrusted header closes the connection, counted
//! in `listener.<name>.downstream_cx_proxy_proto_error`; `optional` also serves clients
//! that send none.

mod common;

use std::{
    io::{Read, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::{upstream::Upstream, *};

fn start(driver: &str, endpoint: &str, pp: &str) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        format!(
            "admin: 127.0.0.1:{admin}\nlisteners:\n  - name: public\n    address: 127.0.0.1:{port}\n    header_read_timeout: 500ms\n    proxy_protocol: {pp}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: up\nclusters:\n  - name: up\n    endpoints: [\"{endpoint}\"]\n"
        )
    })
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// A v2 header (PROXY, TCP over IPv4), written out by hand from the spec.
fn v2(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

/// Sends `bytes` and returns the response, or `None` when ringway closed the
/// connection without one.
fn send(addr: SocketAddr, bytes: &[u8]) -> Option<Response> {
    let mut conn = connect(addr).unwrap();
    conn.write_all(bytes).unwrap();
    read_response(&mut std::io::BufReader::new(conn), false).ok()
}

#[test]
fn a_trusted_balancers_header_names_the_client() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (rw, addr) = start(
            driver,
            &up.endpoint(),
            "{ mode: required, trusted_sources: [127.0.0.0/8] }",
        );
        let v1 = [&b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 443\r\n"[..], GET].concat();
        assert_eq!(send(addr, &v1).unwrap().status, 200, "{driver}");
        assert_eq!(
            up.next_seen().header("x-forwarded-for").as_deref(),
            Some("203.0.113.7"),
            "{driver}"
        );
        let two = [v2([198, 51, 100, 9], 40000), GET.to_vec()].concat();
        assert_eq!(send(addr, &two).unwrap().status, 200, "{driver}");
        assert_eq!(
            up.next_seen().header("x-forwarded-for").as_deref(),
            Some("198.51.100.9")
        );
        // The header in pieces, then two requests on the connection.
        let mut conn = connect(addr).unwrap();
        conn.write_all(b"PROXY TCP4 203.0.113.8 ").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        conn.write_all(b"127.0.0.1 1 2\r\n").unwrap();
        conn.write_all(&[GET, GET].concat()).unwrap();
        let mut reader = std::io::BufReader::new(conn);
        for _ in 0..2 {
            assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
            assert_eq!(
                up.next_seen().header("x-forwarded-for").as_deref(),
                Some("203.0.113.8")
            );
        }
        // LOCAL (a balancer's health check): no client address; the peer stays.
        let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            send(addr, &[local, GET.to_vec()].concat()).unwrap().status,
            200
        );
        assert_eq!(
            up.next_seen().header("x-forwarded-for").as_deref(),
            Some("127.0.0.1")
        );

        // Missing, malformed, late: closed without an answer.
        assert!(
            send(addr, GET).is_none(),
            "{driver}: a required header was missing"
        );
        assert!(send(
            addr,
            b"PROXY TCP4 1.2.3 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n"
        )
        .is_none());
        let started = Instant::now();
        let mut conn = connect(addr).unwrap();
        conn.write_all(b"PROXY TCP4 ").unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
        assert!(rest.is_empty());
        assert!(started.elapsed() < Duration::from_secs(3), "{driver}");
        assert_eq!(
            rw.wait_for_stat("listener.public.downstream_cx_proxy_proto_error", 3),
            3,
            "{driver}"
        );
        assert!(up.seen.recv_timeout(Duration::from_millis(100)).is_err());
    }
}

#[test]
fn optional_headers_and_untrusted_sources() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (_rw, addr) = start(
            driver,
            &up.endpoint(),
            "{ mode: optional, trusted_sources: [127.0.0.1] }",
        );
        // No header: served with the peer's address.
        assert_eq!(send(addr, GET).unwrap().status, 200, "{driver}");
        assert_eq!(
            up.next_seen().header("x-forwarded-for").as_deref(),
            Some("127.0.0.1")
        );
        let v1 = [&b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 443\r\n"[..], GET].concat();
        assert_eq!(send(addr, &v1).unwrap().status, 200);
        assert_eq!(
            up.next_seen().header("x-forwarded-for").as_deref(),
            Some("203.0.113.7")
        );

        // A header from a peer outside the trusted sources is not taken: required, the
        // connection closes; optional, its bytes are HTTP (and a PROXY line is a 400).
        let (_rw, strict) = start(
            driver,
            &up.endpoint(),
            "{ mode: required, trusted_sources: [10.0.0.0/8] }",
        );
        assert!(send(strict, &v1).is_none(), "{driver}");
        let (_rw, lenient) = start(
            driver,
            &up.endpoint(),
            "{ mode: optional, trusted_sources: [10.0.0.0/8] }",
        );
        assert_eq!(send(lenient, &v1).unwrap().status, 400, "{driver}");
        assert_eq!(send(lenient, GET).unwrap().status, 200);
        up.next_seen();
    }
}

#[test]
fn proxy_protocol_config_mistakes_are_refused() {
    let listener = |pp: &str| {
        format!("listeners:\n  - name: l\n    address: 127.0.0.1:0\n    proxy_protocol: {pp}\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200 }}\n")
    };
    for (pp, expect) in [
        ("{ mode: required }", "trusted_sources"),
        ("{ trusted_sources: [] }", "empty `trusted_sources`"),
        (
            "{ mode: sometimes, trusted_sources: [0.0.0.0/0] }",
            "sometimes",
        ),
        ("{ trusted_sources: [10.0.0.0/99] }", "prefix length"),
    ] {
        let stderr = refused_config(&listener(pp));
        assert!(stderr.contains(expect), "{pp}: {stderr}");
    }
}

/// An upstream that reads a PROXY header (either version) then one request per
/// connection, answering with the header it got (parsed by ringway's own parser, whose
/// unit tests pin it to the spec) and closing.
fn proxy_aware_upstream() -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let header = loop {
                    let Ok(n) = stream.read(&mut chunk) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    match ringway::proxy_protocol::parse(&buf) {
                        Ok(Some((used, h))) => {
                            buf.drain(..used);
                            break h;
                        }
                        Ok(None) => {}
                        Err(_) => {
                            let _ = tx.send("malformed".to_owned());
                            return;
                        }
                    }
                };
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = stream.read(&mut chunk) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let text = format!("{:?} -> {:?}", header.source, header.destination);
                let _ = tx.send(text.clone());
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}",
                    text.len()
                );
            });
        }
    });
    (addr, rx)
}

#[test]
fn a_cluster_sends_its_clients_address_in_a_proxy_header() {
    for driver in drivers() {
        for version in ["v1", "v2"] {
            let (upstream, seen) = proxy_aware_upstream();
            let (_rw, addr) = start_on(driver, |port, admin| {
                format!(
                    "admin: 127.0.0.1:{admin}\nlisteners:\n  - name: public\n    address: 127.0.0.1:{port}\n    proxy_protocol: {{ mode: optional, trusted_sources: [127.0.0.0/8] }}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: up\nclusters:\n  - name: up\n    proxy_protocol: {version}\n    endpoints: [\"{upstream}\"]\n"
                )
            });
            // A direct client: its own address and port, and the listener's address.
            let mut conn = connect(addr).unwrap();
            let client = conn.local_addr().unwrap();
            conn.write_all(GET).unwrap();
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let r = read_response(&mut reader, false).unwrap();
            assert_eq!(r.status, 200, "{driver} {version}");
            let expected = format!("{:?} -> {:?}", Some(client), Some(addr));
            assert_eq!(seen.recv().unwrap(), expected, "{driver} {version}");
            // A second request on the same client connection: a new upstream connection
            // with its own header (the first one is not reused).
            conn.write_all(GET).unwrap();
            assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
            assert_eq!(seen.recv().unwrap(), expected, "{driver} {version}");
            // A client behind a balancer: the address the balancer named is passed on.
            let v1 = [&b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 443\r\n"[..], GET].concat();
            assert_eq!(send(addr, &v1).unwrap().status, 200);
            let expected = format!(
                "{:?} -> {:?}",
                Some(SocketAddr::from(([203, 0, 113, 7], 51000))),
                Some(addr)
            );
            assert_eq!(seen.recv().unwrap(), expected, "{driver} {version}");
        }
    }
}
