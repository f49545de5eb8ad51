//! The real binary serving direct responses through several workers, under both drivers.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

fn start(driver: &str) -> (Ringway, SocketAddr) {
    let (port, admin) = (free_port(), free_port());
    let rw = Ringway::start(&direct_config(port, admin), admin, &["--driver", driver]);
    (rw, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn direct_responses_are_served_by_more_than_one_worker() {
    for driver in drivers() {
        let (rw, addr) = start(driver);
        // New connections spread over the SO_REUSEPORT group by 4-tuple hash; with 64
        // of them, all landing on one of two workers has probability 2^-63.
        for _ in 0..64 {
            let r = get(addr, "/healthz").unwrap();
            assert_eq!(r.status, 200, "{driver}");
            assert_eq!(r.body, b"ok\n", "{driver}");
            assert_eq!(r.header("content-type"), Some("text/plain"));
        }
        let stats = rw.stats();
        let w0 = stats["listener.public.worker_0.downstream_cx_total"];
        let w1 = stats["listener.public.worker_1.downstream_cx_total"];
        assert!(
            w0 > 0 && w1 > 0,
            "{driver}: one worker took every connection ({w0}, {w1})"
        );
        assert_eq!(w0 + w1, 64, "{driver}");
        assert_eq!(
            stats["http.public.worker_0.downstream_rq_total"]
                + stats["http.public.worker_1.downstream_rq_total"],
            64
        );
        assert_eq!(stats["server.concurrency"], 2);
        assert_eq!(
            stats["server.driver_io_uring"],
            u64::from(driver == "io_uring"),
            "{driver}"
        );
    }
}

#[test]
fn stats_count_exactly_the_requests_sent() {
    for driver in drivers() {
        let (rw, addr) = start(driver);
        let mut conn = connect(addr).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        for i in 0..30 {
            let path = match i % 3 {
                0 => "/healthz",
                1 => "/nowhere",
                _ => "/teapot/x?y=1",
            };
            write!(conn, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let r = read_response(&mut reader, false).unwrap();
            let expected = [200, 404, 418][i % 3];
            assert_eq!(r.status, expected, "{driver} {path}");
        }
        // A route to a cluster answers 503 until proxying exists.
        write!(conn, "GET /api/orders/1 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut reader, false).unwrap().status, 503);
        drop((conn, reader));

        let deadline = Instant::now() + Duration::from_secs(5);
        let stats = loop {
            let stats = rw.stats();
            if stats["listener.public.downstream_cx_active"] == 0 || Instant::now() > deadline {
                break stats;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(stats["http.public.downstream_rq_total"], 31, "{driver}");
        assert_eq!(stats["http.public.downstream_rq_2xx"], 10, "{driver}");
        assert_eq!(stats["http.public.downstream_rq_4xx"], 20, "{driver}");
        assert_eq!(stats["http.public.downstream_rq_5xx"], 1, "{driver}");
        assert_eq!(stats["http.public.no_route"], 10, "{driver}");
        assert_eq!(stats["http.public.rq_direct_response"], 20, "{driver}");
        assert_eq!(stats["listener.public.downstream_cx_total"], 1, "{driver}");
        assert_eq!(stats["listener.public.downstream_cx_active"], 0, "{driver}");
        assert_eq!(
            stats["listener.public.downstream_cx_destroy"], 1,
            "{driver}"
        );
        assert_eq!(stats["server.live"], 1);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for driver in drivers() {
        let (_rw, addr) = start(driver);
        let mut conn = connect(addr).unwrap();
        let burst = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
                     POST /teapot HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
                     HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
                     GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        conn.write_all(burst.as_bytes()).unwrap();
        let mut reader = BufReader::new(conn);
        let a = read_response(&mut reader, false).unwrap();
        let b = read_response(&mut reader, false).unwrap();
        let c = read_response(&mut reader, true).unwrap();
        let d = read_response(&mut reader, false).unwrap();
        assert_eq!(
            (a.status, b.status, c.status, d.status),
            (200, 418, 200, 404),
            "{driver}"
        );
        assert_eq!(b.body, b"short and stout\n");
        assert_eq!(c.header("content-length"), Some("3"));
        assert_eq!(d.header("connection"), Some("close"));
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{driver}: bytes after the last response");
    }
}

/// Between requests a connection first waits with a read in flight, then (after about
/// 100 ms of quiet) cancels it and waits for readability: requests sent just before, at
/// and after that switch, including one split across it, are all answered.
#[test]
fn requests_around_the_switch_to_a_cold_wait_are_answered() {
    for driver in drivers() {
        let (_rw, addr) = start(driver);
        let conn = connect(addr).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        let request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
        for gap_ms in [0u64, 90, 97, 100, 103, 110, 150, 300] {
            std::thread::sleep(Duration::from_millis(gap_ms));
            conn.write_all(request).unwrap();
            let r = read_response(&mut reader, false).unwrap();
            assert_eq!(r.status, 200, "{driver}: after {gap_ms} ms");
        }
        for split_at_ms in [95u64, 99, 101] {
            std::thread::sleep(Duration::from_millis(split_at_ms));
            conn.write_all(&request[..10]).unwrap();
            std::thread::sleep(Duration::from_millis(10));
            conn.write_all(&request[10..]).unwrap();
            let r = read_response(&mut reader, false).unwrap();
            assert_eq!(r.status, 200, "{driver}: split at {split_at_ms} ms");
        }
    }
}

#[test]
fn a_bad_request_gets_400_and_a_closed_connection() {
    for driver in drivers() {
        let (rw, addr) = start(driver);
        let mut conn = connect(addr).unwrap();
        conn.write_all(
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        )
        .unwrap();
        let mut reader = BufReader::new(conn);
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!(r.status, 400, "{driver}");
        assert_eq!(r.header("connection"), Some("close"));
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            rw.stats()["http.public.downstream_cx_protocol_error"],
            1,
            "{driver}"
        );
    }
}

#[test]
fn a_slow_head_gets_408() {
    for driver in drivers() {
        let (port, admin) = (free_port(), free_port());
        let yaml = direct_config(port, admin).replace(
            "    address:",
            "    header_read_timeout: 300ms\n    address:",
        );
        let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
        let mut conn = connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
        let started = Instant::now();
        let r = read_response(&mut BufReader::new(conn), false).unwrap();
        assert_eq!(r.status, 408, "{driver}");
        assert!(started.elapsed() >= Duration::from_millis(250), "{driver}");
        assert_eq!(rw.stats()["http.public.downstream_rq_header_timeout"], 1);
    }
}
