//! WebSocket and Upgrade through the real binary, both drivers: a real WebSocket client
//! and server (Python's `websockets`, tests/websocket/peer.py) talk through ringway,
//! with text, a 1 MiB binary message, a fragmented message, many messages in flight, and
//! a close from either side; an upgrade the upstream refuses leaves the connection HTTP;
//! a route that does not allow the upgrade answers 403 (as Envoy does); `h2c` is served
//! as plain HTTP/1.1.

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{upstream::Upstream, *};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/websocket/peer.py");

/// Whether `python3` has `websockets`, installing it with pip when it does not.
fn websockets_available() -> bool {
    python_module("websockets", "websockets")
}

/// The Python echo server, killed when dropped.
struct Server(Child);

impl Server {
    fn start(port: u16) -> Server {
        let mut child = Command::new("python3")
            .arg(PEER)
            .arg("server")
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(driver: &str, ws_port: u16, http: &str) -> (Ringway, SocketAddr) {
    start_on(driver, |port, admin| {
        format!(
            r#"workers: 2
admin: 127.0.0.1:{admin}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: /ws }}
        cluster: ws
      - match: {{ prefix: /no-upgrades }}
        cluster: http
        upgrades: []
      - match: {{ prefix: / }}
        cluster: http
clusters:
  - name: ws
    endpoints: ["127.0.0.1:{ws_port}"]
  - name: http
    endpoints: ["{http}"]
"#
        )
    })
}

#[test]
fn a_websocket_client_and_server_talk_through_ringway() {
    if !websockets_available() {
        eprintln!("SKIP a_websocket_client_and_server_talk_through_ringway: python3 has no `websockets` and pip could not install it");
        return;
    }
    for driver in drivers() {
        let ws_port = free_port();
        let _server = Server::start(ws_port);
        let http = Upstream::start(false);
        let (rw, addr) = start(driver, ws_port, &http.endpoint());
        let out = Command::new("python3")
            .arg(PEER)
            .arg("client")
            .arg(format!("ws://{addr}/ws/echo"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{driver}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for check in [
            "text ok",
            "large binary ok",
            "fragmented ok",
            "pipelined ok",
            "client close ok",
            "server close ok",
        ] {
            assert!(
                stdout.contains(check),
                "{driver}: {check} missing: {stdout}"
            );
        }
        assert_eq!(
            rw.wait_for_stat("http.public.downstream_cx_upgrades_total", 2),
            2,
            "{driver}"
        );
        assert_eq!(
            rw.wait_for_stat("http.public.downstream_cx_upgrades_active", 0),
            0,
            "{driver}: a tunnel outlived both its ends"
        );
        let rx = rw.stats()["http.public.downstream_cx_rx_bytes_total"];
        assert!(rx > 1 << 20, "{driver}: tunnel bytes not counted ({rx})");
    }
}

const HANDSHAKE: &str = "Host: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

#[test]
fn upgrades_that_are_refused_or_not_allowed_stay_http() {
    for driver in drivers() {
        let http = Upstream::start(false);
        let (rw, addr) = start(driver, 9, &http.endpoint());
        // The upstream answers 200 (not 101): an ordinary response, and the connection
        // goes on as HTTP/1.1.
        let mut conn = connect(addr).unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        write!(conn, "GET /chat HTTP/1.1\r\n{HANDSHAKE}").unwrap();
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        let seen = http.next_seen();
        assert_eq!(
            seen.header("upgrade").as_deref(),
            Some("websocket"),
            "{driver}"
        );
        assert_eq!(seen.header("connection").as_deref(), Some("upgrade"));
        conn.write_all(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        assert!(http.next_seen().head.starts_with("GET /after"));

        // A route that allows no upgrade: 403, never forwarded.
        let r = exchange(
            addr,
            format!("GET /no-upgrades HTTP/1.1\r\n{HANDSHAKE}").as_bytes(),
        );
        assert_eq!(r.status, 403, "{driver}");
        assert_eq!(
            rw.wait_for_stat("http.public.downstream_rq_ws_on_non_ws_route", 1),
            1
        );

        // h2c (curl --http2 on http://): served as HTTP/1.1, the offer removed.
        let r = exchange(
            addr,
            b"GET /h2c HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver}");
        let seen = http.next_seen();
        assert_eq!(seen.header("upgrade"), None, "{driver}: {}", seen.head);
        assert_eq!(seen.header("http2-settings"), None);
        assert!(
            http.seen.recv_timeout(Duration::from_millis(100)).is_err(),
            "{driver}: the refused upgrade was forwarded"
        );
    }
}

#[test]
fn an_idle_tunnel_is_closed_after_the_stream_idle_timeout() {
    for driver in drivers() {
        // An upstream that switches protocols and then says nothing.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ws_port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                        line.clear();
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly",
                    );
                    std::thread::sleep(Duration::from_secs(10));
                });
            }
        });
        let (rw, addr) = start_on(driver, |port, admin| {
            format!(
                "admin: 127.0.0.1:{admin}\nlisteners:\n  - name: public\n    address: 127.0.0.1:{port}\n    stream_idle_timeout: 500ms\n    routes:\n      - match: {{ prefix: / }}\n        cluster: ws\nclusters:\n  - name: ws\n    endpoints: [\"127.0.0.1:{ws_port}\"]\n"
            )
        });
        let mut conn = connect(addr).unwrap();
        write!(conn, "GET /ws HTTP/1.1\r\n{HANDSHAKE}").unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 101"), "{driver}: {status}");
        // The head, then the bytes the upstream sent after it.
        let mut line = String::new();
        let mut fields = Vec::new();
        while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            fields.push(line.trim().to_ascii_lowercase());
            line.clear();
        }
        assert!(
            fields.contains(&"upgrade: websocket".to_owned()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"connection: upgrade".to_owned()),
            "{fields:?}"
        );
        let mut early = [0u8; 5];
        std::io::Read::read_exact(&mut reader, &mut early).unwrap();
        assert_eq!(&early, b"early");
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut rest);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
            "{driver}: closed after {waited:?}"
        );
        assert_eq!(
            rw.wait_for_stat("http.public.downstream_cx_upgrades_active", 0),
            0
        );
        // Closed by its idle timeout, as Envoy's stream idle timeout ends an upgraded
        // stream: it resets the stream (its response began), then closes.
        assert_eq!(rw.wait_for_stat("http.public.downstream_cx_destroy", 1), 1);
        let stats = rw.stats();
        for (name, n) in [
            ("downstream_cx_destroy_local", 1),
            ("downstream_cx_destroy_local_active_rq", 0),
            ("downstream_rq_tx_reset", 1),
            ("downstream_rq_rx_reset", 1),
        ] {
            assert_eq!(stats[&format!("http.public.{name}")], n, "{driver}: {name}");
        }
    }
}
