//! systemd integration without systemd: readiness and stopping notifications on a
//! datagram socket standing in for `$NOTIFY_SOCKET`, and socket activation with a
//! listening socket passed as descriptor 3 with `LISTEN_FDS`/`LISTEN_PID`, as systemd
//! does (a shell redirect puts it at 3, and `exec` keeps the shell's pid for
//! `LISTEN_PID`).

mod common;

use std::{
    net::{SocketAddr, TcpListener},
    os::unix::net::UnixDatagram,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

fn wait_ready(admin: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(SocketAddr::from(([127, 0, 0, 1], admin)), "/ready")
        .map(|r| r.status)
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "not ready within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("no notification within the timeout: {e}"),
        }
    }
}

/// Kills the child if the test fails before it exits, so no ringway outlives its test.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn readiness_and_stopping_are_notified() {
    for driver in drivers() {
        let dir = tempfile::tempdir().unwrap();
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (port, admin) = (free_port(), free_port());
        let config = write_config(&direct_config(port, admin));
        let mut child = Reap(
            Command::new(bin())
                .args(["--driver", driver, "--log-level", "warn", "-c"])
                .arg(&config.path)
                .env("NOTIFY_SOCKET", &notify_path)
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let ready = receive(&notify);
        assert!(ready.contains("READY=1"), "{driver}: {ready:?}");
        assert!(
            ready.contains(&format!("MAINPID={}", child.0.id())),
            "{driver}: {ready:?}"
        );
        wait_ready(admin);
        signal(child.0.id(), "TERM");
        assert!(receive(&notify).contains("STOPPING=1"), "{driver}");
        assert!(child.0.wait().unwrap().success(), "{driver}");
    }
}

/// Starts ringway as systemd would with `socket` as its one activated socket: the socket
/// is the shell's stdin; `3<&0` moves it to descriptor 3, and `exec` makes ringway the
/// process whose pid `LISTEN_PID` names.
fn activate(socket: std::os::fd::OwnedFd, driver: &str, config: &std::path::Path) -> Reap {
    Reap(
        Command::new("bash")
            .arg("-c")
            .arg(r#"export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" --driver "$1" --log-level warn -c "$2" 3<&0 0</dev/null"#)
            .arg(bin())
            .arg(driver)
            .arg(config)
            .stdin(Stdio::from(socket))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn a_socket_passed_by_socket_activation_is_adopted() {
    for driver in drivers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The same socket, kept here to look at its options once ringway has it.
        let probe = listener.try_clone().unwrap();
        assert!(!socket2::SockRef::from(&probe).nodelay().unwrap());
        let admin = free_port();
        let config = write_config(&direct_config(addr.port(), admin));
        // Were it not adopted, ringway's own bind of the same address would fail ("in
        // use").
        let mut child = activate(std::os::fd::OwnedFd::from(listener), driver, &config.path);
        wait_ready(admin);
        // Accepted sockets inherit TCP_NODELAY from it; ringway sets it on adoption.
        assert!(
            socket2::SockRef::from(&probe).nodelay().unwrap(),
            "{driver}"
        );
        for _ in 0..8 {
            let r = get(addr, "/healthz").unwrap();
            assert_eq!((r.status, &r.body[..]), (200, &b"ok\n"[..]), "{driver}");
        }
        signal(child.0.id(), "TERM");
        assert!(child.0.wait().unwrap().success(), "{driver}");
    }
}

#[test]
fn a_unix_socket_passed_by_socket_activation_is_adopted_and_its_file_left_to_systemd() {
    for driver in drivers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("activated.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let admin = free_port();
        let yaml = format!(
            "admin: 127.0.0.1:{admin}\nlisteners:\n  - name: local\n    address: unix:{}\n    routes:\n      - match: {{ prefix: / }}\n        direct_response: {{ status: 200, body: activated }}\n",
            path.display()
        );
        let config = write_config(&yaml);
        // As above; were the socket not adopted, ringway would find a live socket at the
        // path (this test's) and refuse to start.
        let mut child = activate(std::os::fd::OwnedFd::from(listener), driver, &config.path);
        wait_ready(admin);
        for _ in 0..4 {
            let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            std::io::Write::write_all(&mut stream, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
            let r = read_response(&mut std::io::BufReader::new(stream), false).unwrap();
            assert_eq!(
                (r.status, &r.body[..]),
                (200, &b"activated"[..]),
                "{driver}"
            );
        }
        signal(child.0.id(), "TERM");
        assert!(child.0.wait().unwrap().success(), "{driver}");
        assert!(
            path.exists(),
            "{driver}: the socket unit's file was removed"
        );
    }
}
