//! Pooled upstream connections the origin has given up on, through the real binary under
//! both drivers: a request must not be sent on a connection the origin closed, or on
//! which it sent something unasked (a 408 before closing), while it sat idle.

mod common;

use std::{
    io::{BufReader, Read, Write},
    net::SocketAddr,
    sync::atomic::Ordering,
    time::Duration,
};

use common::{
    scripted::{Exchange, Scripted, Then},
    *,
};

/// Reads the request's Content-Length body and answers 200 `ok`, keeping the connection;
/// then, after `after`, sends `parting` (if any) and closes, as an origin whose
/// keep-alive timeout passed does.
fn answer_then_close(ex: &mut Exchange<'_>, after: Duration, parting: &[u8]) -> Then {
    let length = ex
        .head
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length: ")
                .or_else(|| l.strip_prefix("Content-Length: "))
        })
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if ex.reader.read_exact(&mut body).is_err() {
        return Then::Close;
    }
    ex.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    std::thread::sleep(after);
    ex.send(parting);
    Then::Close
}

fn start(driver: &str, upstream: SocketAddr) -> (Ringway, SocketAddr) {
    let (port, admin) = (free_port(), free_port());
    let yaml = echo_config(1, port, admin, &upstream.to_string(), "");
    let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
    (rw, ([127, 0, 0, 1], port).into())
}

fn post(addr: SocketAddr) -> Response {
    let mut conn = connect(addr).unwrap();
    conn.write_all(b"POST /svc/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    read_response(&mut BufReader::new(conn), false).unwrap()
}

#[test]
fn a_post_never_goes_out_on_a_connection_the_origin_closed() {
    for parting in [
        &b""[..],
        b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
    ] {
        let up =
            Scripted::start(move |ex| answer_then_close(ex, Duration::from_millis(200), parting));
        for driver in drivers() {
            let (rw, addr) = start(driver, up.addr);
            for round in 0..3 {
                let r = post(addr);
                assert_eq!(
                    r.status,
                    200,
                    "{driver} round {round}, parting {:?}",
                    String::from_utf8_lossy(parting)
                );
                assert_eq!(r.body, b"ok");
                // Past the origin's close of the connection just used.
                std::thread::sleep(Duration::from_millis(500));
            }
            let stats = rw.stats();
            assert_eq!(stats["cluster.echo.upstream_rq_5xx"], 0, "{driver}");
        }
    }
}

/// A cluster's `pool.max_requests_per_connection`: each upstream connection serves that
/// many responses and is then closed by ringway, not kept; the next request opens a new
/// one. Five requests with a cap of two take three connections, two of them closed for
/// the cap (`upstream_cx_max_requests`).
#[test]
fn an_upstream_connection_is_closed_after_its_request_cap() {
    for driver in drivers() {
        let up = Scripted::start(|ex| {
            ex.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
            Then::Next
        });
        let (port, admin) = (free_port(), free_port());
        let pool = "    pool: { max_requests_per_connection: 2 }\n";
        let yaml = echo_config(1, port, admin, &up.addr.to_string(), pool);
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut client = BufReader::new(connect(addr).unwrap());
        for round in 0..5 {
            client
                .get_mut()
                .write_all(b"GET /svc/x HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let r = read_response(&mut client, false).unwrap();
            assert_eq!(
                (r.status, &r.body[..]),
                (200, &b"ok"[..]),
                "{driver} {round}"
            );
        }
        let opened = up.connections.load(Ordering::SeqCst);
        assert_eq!(opened, 3, "{driver}: connections the upstream accepted");
        let stats = rw.stats();
        assert_eq!(
            stats["cluster.echo.upstream_cx_max_requests"], 2,
            "{driver}"
        );
        assert_eq!(stats["cluster.echo.upstream_cx_total"], 3, "{driver}");
        assert_eq!(stats["cluster.echo.upstream_rq_total"], 5, "{driver}");
        // Closed by ringway: both capped connections, as local closes.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while up.closed.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(up.closed.load(Ordering::SeqCst) >= 2, "{driver}");
        let stats = rw.stats();
        assert_eq!(
            stats["cluster.echo.upstream_cx_destroy_local"], 2,
            "{driver}"
        );
        // Envoy's `upstream_rq_per_cx`: a count per closed connection, 2 and 2.
        let prometheus = get(rw.admin, "/stats?format=prometheus").unwrap();
        let text = String::from_utf8(prometheus.body).unwrap();
        for line in [
            "envoy_cluster_upstream_rq_per_cx_count{envoy_cluster_name=\"echo\"} 2\n",
            "envoy_cluster_upstream_rq_per_cx_sum{envoy_cluster_name=\"echo\"} 4\n",
            "envoy_cluster_upstream_rq_per_cx_bucket{envoy_cluster_name=\"echo\",le=\"1\"} 0\n",
            "envoy_cluster_upstream_rq_per_cx_bucket{envoy_cluster_name=\"echo\",le=\"5\"} 2\n",
        ] {
            assert!(text.contains(line), "{driver}: {line}{text}");
        }
    }
}
