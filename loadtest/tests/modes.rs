//! Closed loop, connection modes, chunked answers and error classification, each a short
//! run. The bad upstreams are tiny std::net servers written here.
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use ringway_load::http::Url;

const SHORT: Duration = Duration::from_millis(500);

#[test]
fn closed_loop_keeps_connections_alive() {
    let url = common::serve(|_| {});
    let r = ringway_load::run::run(common::params(url, 4, SHORT)).unwrap();
    assert!(r.counts.completed > 100, "{}", r.counts.completed);
    assert_eq!(r.counts.errors.total(), 0);
    assert_eq!(r.counts.connections_opened, 4);
    assert_eq!(r.histograms.latency.len(), r.counts.completed);
}

#[test]
fn new_connection_per_request() {
    let url = common::serve(|_| {});
    let mut p = common::params(url, 2, SHORT);
    p.requests_per_connection = Some(1);
    let r = ringway_load::run::run(p).unwrap();
    assert!(r.counts.completed > 20, "{}", r.counts.completed);
    assert_eq!(r.counts.errors.total(), 0);
    // Every counted request opened its own connection (plus the ones cut at the end).
    assert!(r.counts.connections_opened >= r.counts.completed);
}

#[test]
fn requests_per_connection_limit() {
    let url = common::serve(|_| {});
    let mut p = common::params(url, 1, SHORT);
    p.requests_per_connection = Some(10);
    let r = ringway_load::run::run(p).unwrap();
    assert_eq!(r.counts.errors.total(), 0);
    let per_conn = r.counts.completed as f64 / r.counts.connections_opened as f64;
    assert!((9.0..=10.0).contains(&per_conn), "{per_conn}");
}

#[test]
fn chunked_answers_with_a_post_body_and_headers() {
    let url = common::serve(|o| {
        o.chunked = true;
        o.body_size = 1000;
    });
    let mut p = common::params(url, 2, SHORT);
    p.request.method = "POST".into();
    p.request.body_size = 3000;
    p.request.headers = vec![("x-test".into(), "1".into())];
    let r = ringway_load::run::run(p).unwrap();
    assert!(r.counts.completed > 50, "{}", r.counts.completed);
    assert_eq!(r.counts.errors.total(), 0);
}

#[test]
fn connection_refused_is_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let r = ringway_load::run::run(common::params(url, 1, Duration::from_millis(200))).unwrap();
    assert!(r.counts.errors.connect > 0);
    assert_eq!(r.counts.completed, 0);
    assert_eq!(r.counts.errors.total(), r.counts.errors.connect);
}

/// A server that answers every request head with `answer` and then closes.
fn bad_server(answer: &'static [u8]) -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || answer_once(&mut stream, answer));
        }
    });
    Url::parse(&format!("http://{addr}/")).unwrap()
}

fn answer_once(stream: &mut TcpStream, answer: &[u8]) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&byte[..n]),
        }
    }
    let _ = stream.write_all(answer);
}

#[test]
fn close_mid_response_is_a_read_error() {
    let url = bad_server(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
    let r = ringway_load::run::run(common::params(url, 1, Duration::from_millis(300))).unwrap();
    assert!(r.counts.errors.read > 0, "{:?}", r.counts);
    assert_eq!(r.counts.completed, 0);
    assert_eq!(r.counts.errors.total(), r.counts.errors.read);
}

#[test]
fn malformed_response_is_counted() {
    let url = bad_server(b"HTTP/1.1 2OO OK\r\ncontent-length: 0\r\n\r\n");
    let r = ringway_load::run::run(common::params(url, 1, Duration::from_millis(300))).unwrap();
    assert!(r.counts.errors.malformed > 0, "{:?}", r.counts);
    assert_eq!(r.counts.completed, 0);
    assert_eq!(r.counts.errors.total(), r.counts.errors.malformed);
}

#[test]
fn timeout_is_counted() {
    // Accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let url = Url::parse(&format!("http://{addr}/")).unwrap();
    let mut p = common::params(url, 1, Duration::from_millis(500));
    p.timeout = Duration::from_millis(100);
    let r = ringway_load::run::run(p).unwrap();
    assert!(r.counts.errors.timeout >= 3, "{:?}", r.counts);
    assert_eq!(r.counts.completed, 0);
}

#[test]
fn status_classes_are_counted() {
    let url =
        bad_server(b"HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let r = ringway_load::run::run(common::params(url, 1, Duration::from_millis(300))).unwrap();
    assert!(r.counts.status[4] > 0, "{:?}", r.counts);
    assert_eq!(r.counts.status[4], r.counts.completed);
    assert_eq!(r.counts.errors.total(), 0);
}

#[test]
fn epoll_driver_runs_the_same_loop() {
    let url = common::serve(|_| {});
    let mut p = common::params(url, 2, SHORT);
    p.driver = ringway_load::run::DriverChoice::Epoll;
    let r = ringway_load::run::run(p).unwrap();
    assert!(r.counts.completed > 100, "{}", r.counts.completed);
    assert_eq!(r.counts.errors.total(), 0);
    assert!(r.placement.contains("epoll"), "{}", r.placement);
}
