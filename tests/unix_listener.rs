//! Listeners on Unix stream sockets (`address: unix:/path`): served like TCP on both
//! drivers, forwarded without an `x-forwarded-for` entry for the peer, and the socket
//! file's life: a live one refuses a second ringway, a stale one is taken over, a reload
//! without the listener and a shutdown remove it, and a hot restart hands it over.

mod common;

use std::{
    io::{BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use common::{
    drivers, free_port, get, post, read_response, run_ringway, upstream::Upstream, write_config,
    Response, Ringway,
};

fn request(path: &Path, raw: &[u8]) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(raw)?;
    read_response(&mut BufReader::new(stream), false)
}

/// `GET /direct` on a new connection.
fn direct(socket: &Path) -> Response {
    request(socket, b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\n").unwrap()
}

fn reload(rw: &Ringway, driver: &str) {
    let r = post(rw.admin, "/reload").unwrap();
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 200, "{driver}: {body}");
}

fn config(socket: &Path, admin: u16, upstream: &str) -> String {
    format!(
        "admin: 127.0.0.1:{admin}
workers: 2
listeners:
  - name: local
    address: unix:{}
    routes:
      - match: {{ prefix: /direct }}
        direct_response: {{ status: 200, body: \"over unix\" }}
      - match: {{ prefix: / }}
        cluster: app
clusters:
  - name: app
    endpoints: [\"{upstream}\"]
",
        socket.display()
    )
}

#[test]
fn a_unix_socket_listener_serves_and_forwards_without_a_peer_address() {
    for driver in drivers() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ringway.sock");
        let upstream = Upstream::start(false);
        let admin = free_port();
        let rw = Ringway::start(
            &config(&socket, admin, &upstream.endpoint()),
            admin,
            &["--driver", driver],
        );
        let r = request(&socket, b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(r.status, 200, "{driver}");
        assert_eq!(r.body, b"over unix", "{driver}");
        // Keep-alive and pipelining work as on TCP: two requests, one connection.
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream
            .write_all(
                b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\nGET /app HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
            )
            .unwrap();
        let mut reader = BufReader::new(stream);
        assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
        let forwarded = read_response(&mut reader, false).unwrap();
        assert_eq!(forwarded.status, 200, "{driver}");
        let seen = upstream.next_seen();
        // The untrusted peer's claim is dropped and it has no address to add.
        assert_eq!(
            seen.header("x-forwarded-for"),
            None,
            "{driver}: {}",
            seen.head
        );
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
        let stats = rw.stats();
        assert_eq!(stats["listener.local.downstream_cx_total"], 2, "{driver}");
        assert!(rw.terminate().success(), "{driver}");
        assert!(
            !socket.exists(),
            "{driver}: the socket file outlived a shutdown"
        );
    }
}

#[test]
fn a_live_socket_refuses_a_second_ringway_and_a_stale_one_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ringway.sock");
    let admin = free_port();
    let first = Ringway::start(&config(&socket, admin, "127.0.0.1:9"), admin, &[]);
    let other = write_config(&config(&socket, free_port(), "127.0.0.1:9"));
    let out = run_ringway(&[], &other.path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listener local (unix:") && stderr.contains("accepting on this socket"),
        "{stderr}"
    );
    assert!(request(&socket, b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
    drop(first);

    // A file left by a process that died (bound, never accepted, closed).
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let admin = free_port();
    let rw = Ringway::start(&config(&socket, admin, "127.0.0.1:9"), admin, &[]);
    assert_eq!(direct(&socket).status, 200);
    drop(rw);

    // A file that is not a socket is never removed.
    std::fs::write(&socket, b"data").unwrap();
    let out = run_ringway(&[], &other.path);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&socket).unwrap(), b"data");
}

#[test]
fn a_reload_without_the_listener_and_drain_listeners_remove_the_file() {
    for driver in drivers() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ringway.sock");
        let (admin, port) = (free_port(), free_port());
        let tcp = format!(
            "  - name: tcp\n    address: 127.0.0.1:{port}\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200, body: tcp }}\n"
        );
        let both = config(&socket, admin, "127.0.0.1:9")
            .replace("clusters:\n", &format!("{tcp}clusters:\n"));
        let rw = Ringway::start(&both, admin, &["--driver", driver]);
        assert!(socket.exists());
        // The same file across a reload that keeps the listener: nothing rebound.
        reload(&rw, driver);
        assert_eq!(direct(&socket).status, 200);
        let tcp_only = format!("admin: 127.0.0.1:{admin}\nworkers: 2\nlisteners:\n{tcp}");
        std::fs::write(rw.config_path(), tcp_only).unwrap();
        reload(&rw, driver);
        assert!(
            !socket.exists(),
            "{driver}: a removed listener kept its file"
        );
        assert!(UnixStream::connect(&socket).is_err());
        assert_eq!(
            get(([127, 0, 0, 1], port).into(), "/").unwrap().body,
            b"tcp"
        );
        // Back again, then /drain_listeners.
        std::fs::write(rw.config_path(), &both).unwrap();
        reload(&rw, driver);
        assert!(socket.exists());
        assert_eq!(post(rw.admin, "/drain_listeners").unwrap().status, 200);
        let deadline = Instant::now() + Duration::from_secs(5);
        while socket.exists() {
            assert!(Instant::now() < deadline, "{driver}: drained, file kept");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_hot_restart_hands_the_socket_over_and_the_successor_owns_the_file() {
    for driver in drivers() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ringway.sock");
        let restart = dir.path().join("hot-restart.sock");
        let restart = restart.to_str().unwrap();
        let admin = free_port();
        let yaml = config(&socket, admin, "127.0.0.1:9");
        let mut old = Ringway::start(
            &yaml,
            admin,
            &["--driver", driver, "--hot-restart-socket", restart],
        );
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = inode(&socket);
        let new = Ringway::spawn(
            &yaml,
            admin,
            &[
                "--driver",
                driver,
                "--hot-restart-socket",
                restart,
                "--restart-epoch",
                "1",
            ],
        );
        let status = old
            .wait_exit(Duration::from_secs(10))
            .expect("the old process did not exit");
        assert!(status.success(), "{driver}: {status}");
        // The old process left the file to its successor: same socket, still served.
        assert_eq!(inode(&socket), before, "{driver}");
        let r = request(&socket, b"GET /direct HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(r.status, 200, "{driver}");
        assert!(new.terminate().success(), "{driver}");
        assert!(
            !socket.exists(),
            "{driver}: the successor left the file behind"
        );
    }
}
