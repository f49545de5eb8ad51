//! Proxying through the real binary to a real upstream (tests/common/upstream.rs), under
//! both drivers: bodies byte for byte, keep-alive on both sides, the stale-connection
//! retry, pipelining, 100-continue, every local reply and timeout, forwarding headers,
//! and IPv6 and Unix-socket upstreams.

mod common;

use std::{
    io::{BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use common::{upstream::Upstream, *};

struct Proxy {
    rw: Ringway,
    public: SocketAddr,
    trusted: SocketAddr,
}

/// ringway with two listeners in front of `upstream`:
/// - `public`: trusts nobody; routes `/svc/` (15s), `/slow/` (300ms timeout) and `/dead/`
///   (a refused port) to clusters; 404 otherwise;
/// - `trusted`: trusts 127.0.0.0/8, adds via/server, caps bodies at 1KiB.
fn proxy(driver: &str, upstream: &Upstream, extra_listener_keys: &str) -> Proxy {
    let (p1, p2, admin) = (free_port(), free_port(), free_port());
    let dead = free_port();
    let yaml = format!(
        r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{p1}
{extra_listener_keys}    routes:
      - match: {{ path: /healthz }}
        direct_response: {{ status: 200, body: "ok\n" }}
      - match: {{ prefix: /svc/ }}
        cluster: echo
      - match: {{ prefix: /slow/ }}
        cluster: echo
        timeout: 300ms
      - match: {{ prefix: /dead/ }}
        cluster: dead
  - name: trusted
    address: 127.0.0.1:{p2}
    trusted_proxies: {{ cidrs: [127.0.0.0/8] }}
    via: ringway
    server_header: ringway
    max_request_body: 1KiB
    routes:
      - match: {{ prefix: / }}
        cluster: echo
clusters:
  - name: echo
    endpoints: ["{endpoint}"]
  - name: dead
    endpoints: [127.0.0.1:{dead}]
    connect_timeout: 1s
"#,
        endpoint = upstream.endpoint()
    );
    let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
    Proxy {
        rw,
        public: ([127, 0, 0, 1], p1).into(),
        trusted: ([127, 0, 0, 1], p2).into(),
    }
}

fn send(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut conn = connect(addr).unwrap();
    conn.write_all(raw).unwrap();
    read_response(&mut BufReader::new(conn), raw.starts_with(b"HEAD")).unwrap()
}

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in body.chunks(piece.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn bodies_go_through_byte_for_byte_both_ways() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        let mut conn = connect(p.public).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        for (i, size) in [1usize, 100, 16 * 1024 + 1, 1 << 20, 10 << 20]
            .into_iter()
            .enumerate()
        {
            let body = body_of(size);
            // Content-Length request, Content-Length response.
            let mut raw =
                format!("POST /svc/echo HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n")
                    .into_bytes();
            raw.extend_from_slice(&body);
            conn.write_all(&raw).unwrap();
            let r = read_response(&mut reader, false).unwrap();
            assert_eq!(r.status, 200, "{driver} {size}");
            assert!(r.body == body, "{driver}: CL body of {size} bytes differs");
            assert_eq!(up.next_seen().body.len(), size);

            // Chunked request (odd piece sizes), chunked response re-framed.
            let mut raw = b"POST /svc/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nx-respond-chunked: 1\r\n\r\n".to_vec();
            raw.extend_from_slice(&chunked(&body, 1000 + i * 4093));
            conn.write_all(&raw).unwrap();
            let r = read_response(&mut reader, false).unwrap();
            assert_eq!(r.status, 200, "{driver} {size}");
            assert_eq!(r.header("transfer-encoding"), Some("chunked"));
            assert_eq!(r.header("x-trailer"), Some("yes"), "{driver}: trailer kept");
            assert!(
                r.body == body,
                "{driver}: chunked body of {size} bytes differs"
            );
            let seen = up.next_seen();
            assert!(seen.body == body);
            assert_eq!(seen.header("transfer-encoding").as_deref(), Some("chunked"));
        }
        // One client connection, one worker: one upstream connection reused throughout.
        let stats = p.rw.stats();
        assert_eq!(stats["cluster.echo.upstream_cx_total"], 1, "{driver}");
        assert_eq!(stats["cluster.echo.upstream_cx_pool_reuse"], 9, "{driver}");
        assert_eq!(stats["cluster.echo.upstream_rq_2xx"], 10, "{driver}");
    }
}

#[test]
fn keep_alive_holds_the_upstream_connection_count_down() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        for _ in 0..4 {
            let mut conn = connect(p.public).unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            for _ in 0..25 {
                conn.write_all(b"GET /svc/a HTTP/1.1\r\nHost: t\r\n\r\n")
                    .unwrap();
                assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
            }
        }
        // 100 requests over 4 client connections and 2 workers: at most one upstream
        // connection per worker, since requests on a worker never overlap here.
        let opened = up.connections.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (1..=2).contains(&opened),
            "{driver}: {opened} upstream connections"
        );
    }
}

/// `concurrent` client connections each send one request held `delay_ms` by the origin,
/// all at once; every answer must be 200.
fn concurrent_round(addr: SocketAddr, concurrent: usize, delay_ms: u64, driver: &str) {
    let clients: Vec<_> = (0..concurrent)
        .map(|_| {
            std::thread::spawn(move || {
                let raw =
                    format!("GET /svc/r HTTP/1.1\r\nHost: t\r\nx-delay-ms: {delay_ms}\r\n\r\n");
                send(addr, raw.as_bytes()).status
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 200, "{driver}");
    }
}

#[test]
fn a_burst_above_the_idle_cap_keeps_its_upstream_connections_until_it_passes() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (port, admin) = (free_port(), free_port());
        let pool = "    pool: { max_idle_per_endpoint: 2, idle_timeout: 60s }\n";
        let yaml = echo_config(1, port, admin, &up.endpoint(), pool);
        let _rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let opened = || up.connections.load(std::sync::atomic::Ordering::Relaxed);

        // Eight requests at once need eight upstream connections; all go back idle,
        // above the cap of two.
        concurrent_round(addr, 8, 200, driver);
        assert_eq!(opened(), 8, "{driver}");
        // Right after, the next eight reuse them: closing six at the cap would have
        // opened six more.
        concurrent_round(addr, 8, 200, driver);
        assert_eq!(
            opened(),
            8,
            "{driver}: a burst's connections were closed mid-burst"
        );
        // Quiet for two sweeps: the six the cap does not keep are closed, the two kept
        // are reused, six are opened anew.
        std::thread::sleep(Duration::from_millis(3000));
        concurrent_round(addr, 8, 200, driver);
        assert_eq!(
            opened(),
            14,
            "{driver}: idle connections above the cap were kept"
        );
    }
}

#[test]
fn a_request_on_a_connection_the_origin_closed_is_retried() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        let mut conn = connect(p.public).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        // The origin answers, then closes the connection without saying so. The next
        // request comes within 20 ms, before the pool checks connections idle longer
        // (100 ms) with a peek (tests/pool.rs), so it meets the close and is retried.
        conn.write_all(b"GET /svc/1 HTTP/1.1\r\nHost: t\r\nx-close-after: 1\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(20));
        for method in ["GET", "DELETE"] {
            conn.write_all(
                format!("{method} /svc/2 HTTP/1.1\r\nHost: t\r\nx-close-after: 1\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            let r = read_response(&mut reader, false).unwrap();
            assert_eq!(
                r.status, 200,
                "{driver}: {method} after a silent close got {}",
                r.status
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A body that arrives whole with its head but does not fit beside the rewritten
        // head in one write chunk (written from the read buffer) is replayed too.
        let body = body_of(16 * 1024 - 120);
        let mut raw = format!(
            "PUT /svc/3 HTTP/1.1\r\nHost: t\r\nx-close-after: 1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(&body);
        conn.write_all(&raw).unwrap();
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!(r.status, 200, "{driver}: PUT after a silent close");
        assert!(r.body == body, "{driver}: replayed body differs");
        let stats = p.rw.stats();
        assert_eq!(stats["cluster.echo.upstream_rq_retry"], 3, "{driver}");
        assert_eq!(stats["cluster.echo.upstream_rq_5xx"], 0, "{driver}");
    }
}

/// Bodies around the size of one buffer chunk, where the head and body no longer fit in
/// one write and the rest goes out from the read buffer: every byte arrives, in both
/// directions and framings, and a pipelined request after each is still parsed in place.
#[test]
fn bodies_around_a_chunk_boundary_go_through_whole() {
    for driver in drivers() {
        let up = Upstream::start(false);
        // A via header makes the response heads grow too.
        let p = proxy(driver, &up, "    via: a-proxy-with-a-rather-long-name\n");
        let mut conn = connect(p.public).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        for size in (16 * 1024 - 400..16 * 1024 + 100).step_by(37) {
            let body = body_of(size);
            for chunked_response in [false, true] {
                let respond = if chunked_response {
                    "x-respond-chunked: 1\r\n"
                } else {
                    ""
                };
                let mut raw = format!(
                    "POST /svc/b HTTP/1.1\r\nHost: t\r\n{respond}Content-Length: {size}\r\n\r\n"
                )
                .into_bytes();
                raw.extend_from_slice(&body);
                raw.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
                conn.write_all(&raw).unwrap();
                let r = read_response(&mut reader, false).unwrap();
                assert_eq!(r.status, 200, "{driver} {size}");
                assert!(r.body == body, "{driver}: body of {size} bytes differs");
                assert_eq!(up.next_seen().body.len(), size, "{driver}");
                let next = read_response(&mut reader, false).unwrap();
                assert_eq!(next.body, b"ok\n", "{driver} {size}");
            }
            let mut raw =
                b"POST /svc/b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            raw.extend_from_slice(&chunked(&body, 997));
            raw.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
            conn.write_all(&raw).unwrap();
            let r = read_response(&mut reader, false).unwrap();
            assert!(
                r.body == body,
                "{driver}: chunked body of {size} bytes differs"
            );
            assert_eq!(up.next_seen().body.len(), size, "{driver}");
            assert_eq!(read_response(&mut reader, false).unwrap().body, b"ok\n");
        }
    }
}

#[test]
fn pipelined_requests_through_the_proxy_keep_their_order() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        let mut conn = connect(p.public).unwrap();
        conn.write_all(
            b"POST /svc/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none\
              GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
              POST /svc/2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwo\
              HEAD /svc/3 HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .unwrap();
        let mut reader = BufReader::new(conn);
        assert_eq!(read_response(&mut reader, false).unwrap().body, b"one");
        assert_eq!(read_response(&mut reader, false).unwrap().body, b"ok\n");
        assert_eq!(
            read_response(&mut reader, false).unwrap().body,
            b"two",
            "{driver}"
        );
        let head = read_response(&mut reader, true).unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), Some("0"));
    }
}

#[test]
fn expect_continue_is_answered_by_ringway() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        let mut conn = connect(p.public).unwrap();
        conn.write_all(
            b"PUT /svc/x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let interim = read_response(&mut reader, true).unwrap();
        assert_eq!(interim.status, 100, "{driver}");
        conn.write_all(b"hello").unwrap();
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]), "{driver}");
        assert_eq!(
            up.next_seen().header("expect"),
            None,
            "Expect is not forwarded"
        );
        // Envoy charges the 100 its connection manager sends itself, then the answer.
        assert_eq!(p.rw.wait_for_stat("http.public.downstream_rq_2xx", 1), 1);
        let stats = p.rw.stats();
        assert_eq!(stats["http.public.downstream_rq_1xx"], 1, "{driver}");
        assert_eq!(stats["http.public.downstream_rq_completed"], 2, "{driver}");
    }
}

#[test]
fn every_local_reply_has_its_status() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        let get = |path: &str| {
            send(
                p.public,
                format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
            )
        };
        assert_eq!(get("/nowhere").status, 404, "{driver}");
        let refused = get("/dead/x");
        assert_eq!(refused.status, 503, "{driver}");
        assert_eq!(refused.body, b"upstream connect error\n");
        let bad = send(
            p.public,
            b"GET /svc/x HTTP/1.1\r\nHost: t\r\nx-malformed: 1\r\n\r\n",
        );
        assert_eq!(bad.status, 502, "{driver}");
        let started = Instant::now();
        let slow = send(
            p.public,
            b"GET /slow/x HTTP/1.1\r\nHost: t\r\nx-delay-ms: 2000\r\n\r\n",
        );
        assert_eq!(slow.status, 504, "{driver}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{driver}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            send(p.public, b"GET /svc/x HTTP/1.1\r\n\r\n").status,
            400,
            "missing Host"
        );
        let big = send(
            p.trusted,
            b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n",
        );
        assert_eq!(big.status, 413, "{driver}");
        // Refused from its declared length, its body never read: Envoy's two counts.
        let stats = p.rw.stats();
        for name in [
            "http.trusted.downstream_rq_too_large",
            "http.trusted.downstream_rq_response_before_rq_complete",
        ] {
            assert_eq!(stats[name], 1, "{driver}: {name}");
        }
        assert_eq!(stats["http.trusted.downstream_cx_http2_total"], 0);
        let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
        assert_eq!(send(p.public, long.as_bytes()).status, 414, "{driver}");
        let huge = format!(
            "GET /svc/x HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "b".repeat(70_000)
        );
        assert_eq!(send(p.public, huge.as_bytes()).status, 431, "{driver}");
        let stats = p.rw.stats();
        assert_eq!(
            stats["cluster.dead.upstream_cx_connect_fail"], 1,
            "{driver}"
        );
        // The request that waited for it failed with it (Envoy's pending purge).
        let name = "cluster.dead.upstream_rq_pending_failure_eject";
        assert_eq!(stats[name], 1, "{driver}");
        assert_eq!(stats["cluster.echo.max_host_weight"], 1, "{driver}");
        // Envoy counts a connection when it is made, opened or not, and destroyed when
        // it closes, opened or not: total less destroyed is what is active.
        assert_eq!(stats["cluster.dead.upstream_cx_total"], 1, "{driver}");
        assert_eq!(stats["cluster.dead.upstream_cx_destroy"], 1, "{driver}");
        assert_eq!(stats["cluster.dead.upstream_cx_active"], 0, "{driver}");
        // Refused: the endpoint's answer (Envoy's remote close), no request on it yet.
        assert_eq!(
            destroyed(&stats, "dead"),
            [1, 0, 1, 0, 0, 0],
            "{driver}: destroy, _local, _remote, _with_active_rq, its halves"
        );
        assert_eq!(stats["cluster.echo.upstream_rq_timeout"], 1, "{driver}");
        assert_eq!(
            stats["cluster.echo.upstream_cx_protocol_error"], 1,
            "{driver}"
        );
        // The timeout and the bad response: ringway closed both, a request on each.
        assert_eq!(destroyed(&stats, "echo"), [2, 2, 0, 2, 2, 0], "{driver}");
    }
}

#[test]
fn a_connect_that_hangs_times_out_with_503() {
    // A listener whose accept queue is full drops further SYNs, so connects hang.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let blackhole = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = TcpStream::connect_timeout(&blackhole, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    if TcpStream::connect_timeout(&blackhole, Duration::from_millis(300)).is_ok() {
        eprintln!(
            "SKIP a_connect_that_hangs_times_out_with_503: this kernel accepts beyond a full queue"
        );
        return;
    }
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let yaml = format!(
            "admin: 127.0.0.1:{admin}\nlisteners:\n  - name: l\n    address: 127.0.0.1:{port}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: hole\nclusters:\n  - name: hole\n    endpoints: [{blackhole}]\n    connect_timeout: 300ms\n"
        );
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let started = Instant::now();
        let r = send(
            ([127, 0, 0, 1], port).into(),
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!(r.status, 503, "{driver}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{driver}: {took:?}"
        );
        let stats = rw.stats();
        // A timeout is a connect failure too, and the connection is in the total, as
        // in Envoy.
        for name in [
            "cluster.hole.upstream_cx_connect_timeout",
            "cluster.hole.upstream_cx_connect_fail",
            "cluster.hole.upstream_cx_total",
            "cluster.hole.upstream_cx_destroy",
        ] {
            assert_eq!(stats[name], 1, "{driver}: {name}");
        }
        // Ringway gave up on it: a local close (Envoy's connect timer closes it).
        assert_eq!(destroyed(&stats, "hole"), [1, 1, 0, 0, 0, 0], "{driver}");
    }
    drop(fillers);
}

#[test]
fn an_idle_client_connection_is_closed_after_idle_timeout() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "    idle_timeout: 300ms\n");
        let mut conn = connect(p.public).unwrap();
        conn.write_all(b"GET /svc/a HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        let started = Instant::now();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        let took = started.elapsed();
        assert!(rest.is_empty());
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{driver}: {took:?}"
        );
        assert_eq!(
            p.rw.stats()["http.public.downstream_cx_idle_timeout"],
            1,
            "{driver}"
        );
    }
}

#[test]
fn forwarding_headers_follow_the_trust_policy() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        let spoof = b"GET /svc/x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\nX-Request-Id: mine\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n";
        let r = send(p.public, spoof);
        assert_eq!(r.status, 200);
        let seen = up.next_seen();
        assert_eq!(
            seen.header("x-forwarded-for").as_deref(),
            Some("127.0.0.1"),
            "{driver}"
        );
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
        let id = seen.header("x-request-id").unwrap();
        assert!(id != "mine" && id.len() == 36, "{driver}: {id}");
        assert_eq!(
            seen.header("x-hop"),
            None,
            "headers named in Connection are removed"
        );
        assert_eq!(seen.header("connection"), None);
        assert!(seen.head.starts_with("GET /svc/x HTTP/1.1\r\n"));

        let r = send(p.trusted, b"GET /y HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9\r\nX-Request-Id: abc\r\nServer: x\r\n\r\n");
        assert_eq!(r.header("server"), Some("ringway"), "{driver}");
        assert_eq!(r.header("via"), Some("1.1 ringway"));
        let seen = up.next_seen();
        assert_eq!(
            seen.header("x-forwarded-for").as_deref(),
            Some("203.0.113.9, 127.0.0.1"),
            "{driver}"
        );
        assert_eq!(seen.header("x-request-id").as_deref(), Some("abc"));
        assert_eq!(seen.header("via").as_deref(), Some("1.1 ringway"));
    }
}

#[test]
fn dot_segments_are_resolved_before_forwarding() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        let r = send(
            p.public,
            b"GET /x/../svc/%61b?q=1 HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        assert!(
            up.next_seen()
                .head
                .starts_with("GET /svc/ab?q=1 HTTP/1.1\r\n"),
            "{driver}"
        );
    }
}

#[test]
fn an_absolute_form_target_sets_the_forwarded_host() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        let r = send(
            p.public,
            b"GET http://api.example:8080/svc/abs?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        let seen = up.next_seen();
        assert!(
            seen.head.starts_with("GET /svc/abs?x=1 HTTP/1.1\r\n"),
            "{driver}: {}",
            seen.head
        );
        assert_eq!(
            seen.header("host").as_deref(),
            Some("api.example:8080"),
            "{driver}"
        );
    }
}

#[test]
fn a_full_pending_queue_is_answered_503_and_a_waiting_request_is_served() {
    for driver in drivers() {
        let up = Upstream::start(false);
        for (pending, expected) in [(0, 503), (1, 200)] {
            let (port, admin) = (free_port(), free_port());
            let yaml = format!(
                "workers: 1\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: l\n    address: 127.0.0.1:{port}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: one\nclusters:\n  - name: one\n    endpoints: [{}]\n    pool: {{ max_connections_per_endpoint: 1, max_pending: {pending} }}\n",
                up.addr
            );
            let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            // The one connection is busy for 600 ms with the first request.
            let first = std::thread::spawn(move || {
                send(
                    addr,
                    b"GET /a HTTP/1.1\r\nHost: t\r\nx-delay-ms: 600\r\n\r\n",
                )
                .status
            });
            std::thread::sleep(Duration::from_millis(200));
            let second = send(addr, b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(second.status, expected, "{driver}: max_pending {pending}");
            assert_eq!(first.join().unwrap(), 200);
            let overflow = rw.stats()["cluster.one.upstream_rq_pending_overflow"];
            assert_eq!(overflow, u64::from(pending == 0), "{driver}");
        }
    }
}

#[test]
fn ipv6_and_unix_socket_upstreams_work() {
    for driver in drivers() {
        for up in [Upstream::start(true), Upstream::start_unix()] {
            let p = proxy(driver, &up, "");
            let mut raw =
                b"POST /svc/z HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nping".to_vec();
            let r = send(p.public, &raw);
            assert_eq!(
                (r.status, &r.body[..]),
                (200, &b"ping"[..]),
                "{driver} {}",
                up.endpoint()
            );
            raw.clear();
        }
    }
}

/// A cluster's `upstream_cx_destroy` and its splits, in Envoy's order: the total,
/// `_local`, `_remote`, `_with_active_rq`, `_local_with_active_rq`,
/// `_remote_with_active_rq`.
fn destroyed(stats: &std::collections::HashMap<String, u64>, cluster: &str) -> [u64; 6] {
    [
        "",
        "_local",
        "_remote",
        "_with_active_rq",
        "_local_with_active_rq",
        "_remote_with_active_rq",
    ]
    .map(|split| stats[&format!("cluster.{cluster}.upstream_cx_destroy{split}")])
}

/// One worker, one listener routing everything to `cluster` (one endpoint; the
/// cluster's further keys, indented four spaces).
fn one_cluster(
    driver: &str,
    cluster: &str,
    endpoint: &str,
    cluster_keys: &str,
) -> (Ringway, SocketAddr) {
    let (port, admin) = (free_port(), free_port());
    let yaml = format!(
        "workers: 1\nadmin: 127.0.0.1:{admin}\nlisteners:\n  - name: l\n    address: 127.0.0.1:{port}\n    routes:\n      - match: {{ prefix: / }}\n        cluster: {cluster}\nclusters:\n  - name: {cluster}\n    endpoints: [{endpoint}]\n{cluster_keys}"
    );
    let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
    (rw, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// An endpoint that resets the connection with a request on it (before answering, or
/// mid-response) closes it remotely with an active request; a pooled connection closed
/// by ringway's idle timeout is a local close with none.
#[test]
fn upstream_connection_closes_are_counted_by_who_closed_them() {
    use common::faulty::{Faulty, Mode};
    for driver in drivers() {
        let up = Faulty::start("f");
        let pool = "    pool: { idle_timeout: 300ms }\n";
        let (rw, addr) = one_cluster(driver, "f", &up.endpoint(), pool);
        let get = || send(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        up.set(Mode::Drop);
        // A native listener answers a reset 502 (an Envoy listener, 503 as Envoy does).
        assert_eq!(get().status, 502, "{driver}");
        up.set(Mode::Reset);
        // The answer started: the client gets its part, then the connection ends.
        let mut conn = connect(addr).unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut partial = Vec::new();
        let _ = conn.read_to_end(&mut partial);
        assert!(partial.starts_with(b"HTTP/1.1 200"), "{driver}");
        assert_eq!(
            destroyed(&rw.stats(), "f"),
            [2, 0, 2, 2, 0, 2],
            "{driver}: two resets with a request on the connection"
        );
        up.set(Mode::Ok);
        assert_eq!(get().status, 200, "{driver}");
        // Pooled, then closed by the pool's idle timeout.
        let deadline = Instant::now() + Duration::from_secs(5);
        while rw.stats()["cluster.f.upstream_cx_destroy"] < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = rw.stats();
        assert_eq!(destroyed(&stats, "f"), [3, 1, 2, 2, 0, 2], "{driver}");
        assert_eq!(stats["cluster.f.upstream_cx_idle_timeout"], 1, "{driver}");
        // The response cut short by the reset: ringway resets the client's request (and,
        // as in Envoy, its stream hears that reset too), which ends the request before
        // ringway closes the connection: a local close with none open. The router's
        // count of it is Envoy's for gRPC requests only.
        assert_eq!(stats["http.l.downstream_rq_tx_reset"], 1, "{driver}");
        assert_eq!(stats["http.l.downstream_rq_rx_reset"], 1, "{driver}");
        let name = "http.l.rq_reset_after_downstream_response_started";
        assert_eq!(stats[name], 0, "{driver}");
        // The 502 closed its connection too; the last one the client closed.
        assert_eq!(stats["http.l.downstream_cx_destroy_local"], 2, "{driver}");
        assert_eq!(stats["http.l.downstream_cx_destroy_remote"], 1, "{driver}");
        assert_eq!(stats["http.l.downstream_cx_destroy_active_rq"], 0);
        // Its head went out: charged as a 200 (with the 502 and the last 200).
        assert_eq!(stats["http.l.downstream_rq_2xx"], 2, "{driver}");
    }
}

/// A response that asks to end its connection (`Connection: close`) is counted in
/// Envoy's `upstream_cx_close_notify`, and ringway closing it after the response is a
/// local close with no request on it; a kept-alive answer counts neither.
#[test]
fn a_response_that_ends_its_connection_is_counted() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let p = proxy(driver, &up, "");
        let get = |extra: &str| {
            let raw = format!("GET /svc/x HTTP/1.1\r\nHost: t\r\n{extra}\r\n");
            send(p.public, raw.as_bytes()).status
        };
        assert_eq!(get(""), 200, "{driver}");
        assert_eq!(
            get("x-respond-header: connection: close\r\n"),
            200,
            "{driver}"
        );
        let stats = p.rw.stats();
        assert_eq!(
            stats["cluster.echo.upstream_cx_close_notify"], 1,
            "{driver}"
        );
        assert_eq!(destroyed(&stats, "echo"), [1, 1, 0, 0, 0, 0], "{driver}");
    }
}

/// A pooled connection the endpoint closed while it sat idle is found closed when it
/// is next wanted (a peek): Envoy's remote close, with no request on it; the request
/// goes on a fresh connection.
#[test]
fn a_pooled_connection_the_endpoint_closed_is_a_remote_close() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (rw, addr) = one_cluster(driver, "up", &up.endpoint(), "");
        // The answer promises keep-alive; the endpoint closes after it all the same.
        let r = send(
            addr,
            b"GET / HTTP/1.1\r\nHost: t\r\nx-close-after: 1\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(send(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
        let stats = rw.stats();
        assert_eq!(destroyed(&stats, "up"), [1, 0, 1, 0, 0, 0], "{driver}");
        assert_eq!(stats["cluster.up.upstream_cx_close_notify"], 0, "{driver}");
        assert_eq!(stats["cluster.up.upstream_cx_total"], 2, "{driver}");
    }
}

/// Envoy's split of `downstream_cx_destroy`: by who closed the client's connection,
/// and whether a request on it was unanswered; a client leaving mid-request is a
/// `downstream_rq_rx_reset`.
#[test]
fn downstream_connection_closes_are_counted_by_who_closed_them() {
    for driver in drivers() {
        let up = Upstream::start(false);
        let (rw, addr) = one_cluster(driver, "up", &up.endpoint(), "");
        // Answered; the client closes: remote, nothing open. Once at once, once after
        // the connection sat idle a while.
        assert_eq!(send(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
        let mut c = BufReader::new(connect(addr).unwrap());
        c.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut c, false).unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(400));
        drop(c);
        // Answered with `connection: close`: ringway closes, nothing open.
        let r = send(
            addr,
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        // Part of a head, then the client leaves: remote, a request begun.
        let mut c = connect(addr).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(c);
        // A body promised and not sent: remote, the request unanswered.
        let mut c = connect(addr).unwrap();
        c.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(c);
        assert_eq!(rw.wait_for_stat("http.l.downstream_cx_destroy", 5), 5);
        let stats = rw.stats();
        for (split, n) in [
            ("destroy_remote", 4),
            ("destroy_local", 1),
            ("destroy_active_rq", 2),
            ("destroy_remote_active_rq", 2),
            ("destroy_local_active_rq", 0),
        ] {
            let name = format!("http.l.downstream_cx_{split}");
            assert_eq!(stats[&name], n, "{driver}: {name}");
        }
        assert_eq!(stats["http.l.downstream_rq_rx_reset"], 2, "{driver}");
        assert_eq!(stats["http.l.downstream_rq_tx_reset"], 0, "{driver}");
        // Three answers; the two requests cut short are not completed.
        assert_eq!(stats["http.l.downstream_rq_completed"], 3, "{driver}");
        assert_eq!(stats["listener.l.http.l.downstream_rq_completed"], 3);
        assert_eq!(stats["listener.l.http.l.downstream_rq_2xx"], 3, "{driver}");
    }
}

/// Envoy's `upstream_cx_rx_bytes_total` and `upstream_cx_tx_bytes_total`: every byte
/// written to the endpoint and read from it, as they cross.
#[test]
fn upstream_bytes_are_counted_both_ways() {
    use std::net::TcpListener;
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    for driver in drivers() {
        // An endpoint that keeps what it read (one request of a known body) and answers
        // a fixed response.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = std::sync::Arc::clone(&received);
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"\r\n\r\n0123456789") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            seen.store(got.len(), std::sync::atomic::Ordering::SeqCst);
            s.write_all(ANSWER).unwrap();
            // Held open until the test ends.
            let _ = s.read(&mut buf);
        });
        let (rw, addr) = one_cluster(driver, "b", &endpoint, "");
        let r = send(
            addr,
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789",
        );
        assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]), "{driver}");
        let stats = rw.stats();
        let sent = received.load(std::sync::atomic::Ordering::SeqCst) as u64;
        assert!(sent > 60, "{driver}: the endpoint read {sent}");
        assert_eq!(
            stats["cluster.b.upstream_cx_tx_bytes_total"], sent,
            "{driver}"
        );
        let read = stats["cluster.b.upstream_cx_rx_bytes_total"];
        assert_eq!(read, ANSWER.len() as u64, "{driver}");
    }
}
