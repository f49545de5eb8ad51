//! `ringway-load forward` end to end: the bundled upstream behind the raw io_uring
//! forwarder, real sockets. Keep-alive requests, bodies larger than a provided buffer,
//! half-closed clients that still get their answer, and every descriptor given back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn spawn(args: &[String]) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_ringway-load"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads one response with a Content-Length body; returns (head, body length).
fn read_response(s: &mut TcpStream) -> (String, usize) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "closed inside a head: {buf:?}"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    (head, length)
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn forwards_keep_alive_large_bodies_and_half_closes_and_frees_every_descriptor() {
    if let Err(why) = ringway_load::forward::probe() {
        println!("skipping: `forward` cannot run on this kernel: {why}");
        return;
    }
    let upstream = free_addr();
    let _serve = spawn(&[
        "serve".into(),
        "--listen".into(),
        upstream.to_string(),
        "--body-size".into(),
        "19".into(),
    ]);
    wait_listening(upstream);
    let listen = free_addr();
    let forward = spawn(&[
        "forward".into(),
        "--listen".into(),
        listen.to_string(),
        "--upstream".into(),
        upstream.to_string(),
    ]);
    wait_listening(listen);
    std::thread::sleep(Duration::from_millis(100));
    let idle = open_descriptors(forward.0.id());

    // Keep-alive: many requests on one connection, answers in order.
    let mut s = TcpStream::connect(listen).unwrap();
    for _ in 0..200 {
        s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
        let (head, length) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(length, 19);
    }

    // A body of many provided buffers (16 KiB each), in both directions' worth of
    // sends: the upstream reads all of it before answering.
    let body = vec![b'b'; 1 << 20];
    s.write_all(
        format!(
            "POST / HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(s);

    // Clients that send a request and shut their writing down at once still get the
    // whole answer, then the end of the stream.
    for _ in 0..50 {
        let mut s = TcpStream::connect(listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with(&"x".repeat(19)),
            "{text}"
        );
    }

    // Every connection's two descriptors are closed once both sides have ended.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = open_descriptors(forward.0.id());
        if now <= idle {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{now} descriptors open, {idle} when idle"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
