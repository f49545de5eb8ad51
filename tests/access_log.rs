//! The access log through the real binary: text and JSON lines, reopening on SIGUSR1,
//! dropping (and counting) lines instead of blocking when the writer is stuck, and
//! config errors. Every serving test runs under both drivers.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// `direct_config` plus an `access_log` section.
fn start(driver: &str, access_log: &str) -> (Ringway, SocketAddr) {
    let (port, admin) = (free_port(), free_port());
    let yaml = format!("{}access_log:\n{access_log}", direct_config(port, admin));
    let rw = Ringway::start(&yaml, admin, &["--driver", driver]);
    (rw, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Sends the raw requests on one connection and reads the answers.
fn exchange(addr: SocketAddr, raw: &str, answers: usize) -> Vec<u16> {
    let mut conn = connect(addr).unwrap();
    conn.write_all(raw.as_bytes()).unwrap();
    let mut reader = BufReader::new(conn);
    (0..answers)
        .map(|_| read_response(&mut reader, false).unwrap().status)
        .collect()
}

const POST: &str = "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn text_lines_record_each_request() {
    for driver in drivers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let section = format!("  path: {}\n  flush_interval: 10ms\n", path.display());
        let (rw, addr) = start(driver, &section);
        let statuses = exchange(
            addr,
            &format!(
                "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n{POST}\
                 GET /nowhere?q=1 HTTP/1.1\r\nHost: t\r\n\r\n\
                 HEAD /api/orders/7 HTTP/1.1\r\nHost: t\r\n\r\n"
            ),
            3,
        );
        assert_eq!(statuses, [200, 200, 404], "{driver}");
        let bad = "GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(exchange(addr, bad, 1), [400], "{driver}");

        let lines = wait_for_lines(&path, 5);
        assert_eq!(lines.len(), 5, "{driver}: {lines:?}");
        let find = |needle: &str| {
            lines
                .iter()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{driver}: no line with {needle:?} in {lines:?}"))
        };
        for line in &lines {
            assert!(
                line.starts_with("[20") && line.as_bytes()[25] == b']',
                "{line}"
            );
            // Only the request routed to a cluster names an upstream.
            if !line.contains("/api/orders/") {
                assert!(line.ends_with(" \"127.0.0.1\" \"-\" public"), "{line}");
            }
        }
        // `[ts] "GET /healthz HTTP/1.1" 200 - <received> <sent> <ms> "client" "-" public`
        let get = find("\"GET /healthz HTTP/1.1\" 200 - ");
        let fields: Vec<&str> = get.split(' ').collect();
        assert_eq!(fields[6], "34", "{get}"); // bytes received: the head
        assert!(fields[7].parse::<u64>().unwrap() > 3, "{get}"); // bytes sent
        assert!(fields[8].parse::<u64>().is_ok(), "{get}"); // duration
        let post = find("\"POST /healthz HTTP/1.1\" 200 - ");
        let received = post.split(' ').nth(6).unwrap();
        assert_eq!(received, POST.len().to_string(), "{post}");
        find("\"GET /nowhere?q=1 HTTP/1.1\" 404 NR ");
        // The cluster's endpoints refuse connections: 503 with Envoy's UF flag, and the
        // endpoint tried.
        let orders = find("\"HEAD /api/orders/7 HTTP/1.1\" 503 UF ");
        assert!(
            orders.ends_with(":9\" public") || orders.ends_with(":10\" public"),
            "{orders}"
        );
        find("\"- - -\" 400 DPE ");

        assert!(rw.terminate().success(), "{driver}");
    }
}

#[test]
fn json_lines_parse_and_carry_every_field() {
    for driver in drivers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.json");
        let section = format!(
            "  path: {}\n  format: json\n  flush_interval: 10ms\n",
            path.display()
        );
        let (rw, addr) = start(driver, &section);
        for target in ["/healthz", "/teapot/%22q%22?a=\\b", "/nowhere"] {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            exchange(addr, &raw, 1);
        }
        let lines = wait_for_lines(&path, 3);
        let objects: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let by_path = |p: &str| {
            objects
                .iter()
                .find(|o| o["path"] == p)
                .unwrap_or_else(|| panic!("{driver}: no {p} in {lines:?}"))
        };
        let teapot = by_path("/teapot/%22q%22?a=\\b");
        assert_eq!(teapot["status"], 418);
        assert_eq!(teapot["method"], "GET");
        assert_eq!(teapot["protocol"], "HTTP/1.1");
        assert_eq!(teapot["response_flags"], "-");
        assert_eq!(teapot["client"], "127.0.0.1");
        assert_eq!(teapot["upstream"], serde_json::Value::Null);
        assert_eq!(teapot["listener"], "public");
        assert!(teapot["bytes_sent"].as_u64().unwrap() > 16);
        assert!(teapot["duration_ms"].is_u64());
        let start = teapot["start_time"].as_str().unwrap();
        assert!(start.len() == 24 && start.ends_with('Z'), "{start}");
        assert_eq!(by_path("/nowhere")["response_flags"], "NR");
        assert_eq!(by_path("/healthz")["status"], 200);
        assert!(rw.terminate().success(), "{driver}");
    }
}

/// Sends `GET target` until a line for it shows in the file at `path` (the writer has
/// reopened it), for up to 5 s.
fn request_until_logged(addr: SocketAddr, path: &Path, target: &str, driver: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert_eq!(get(addr, target).unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(20));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(target) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{driver}: no line for {target} in the new file"
        );
    }
}

#[test]
fn sigusr1_and_reopen_logs_reopen_the_file_after_rotation() {
    for driver in drivers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let rotated = dir.path().join("access.log.1");
        let section = format!("  path: {}\n  flush_interval: 10ms\n", path.display());
        let (rw, addr) = start(driver, &section);
        assert_eq!(get(addr, "/healthz?before").unwrap().status, 200);
        wait_for_lines(&path, 1);
        std::fs::rename(&path, &rotated).unwrap();
        signal(rw.pid(), "USR1");

        // Lines keep going to the renamed file until the writer has reopened.
        request_until_logged(addr, &path, "/healthz?after", driver);
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert!(old.contains("/healthz?before"), "{driver}: {old}");
        assert!(!std::fs::read_to_string(&path).unwrap().contains("?before"));
        assert_eq!(rw.stats()["access_log.reopens"], 1, "{driver}");

        // Envoy's `POST /reopen_logs` does the same.
        let again = dir.path().join("access.log.2");
        std::fs::rename(&path, &again).unwrap();
        assert_eq!(
            post(rw.admin, "/reopen_logs").unwrap().status,
            200,
            "{driver}"
        );
        request_until_logged(addr, &path, "/healthz?admin", driver);
        assert!(std::fs::read_to_string(&again)
            .unwrap()
            .contains("/healthz?after"));
        assert_eq!(rw.stats()["access_log.reopens"], 2, "{driver}");
        assert!(rw.terminate().success(), "{driver}");
    }
}

#[test]
fn a_stuck_writer_drops_lines_instead_of_slowing_requests() {
    const REQUESTS: usize = 3000;
    const CONNECTIONS: usize = 4;
    for driver in drivers() {
        let dir = tempfile::tempdir().unwrap();
        let fifo: PathBuf = dir.path().join("access.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Nobody reads the FIFO, so the writer blocks opening it; small batches fill the
        // queue (8 per worker) quickly.
        let section = format!(
            "  path: {}\n  buffer: 1KiB\n  flush_interval: 10ms\n",
            fifo.display()
        );
        let (rw, addr) = start(driver, &section);
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut conn = connect(addr).unwrap();
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut slowest = Duration::ZERO;
                    for _ in 0..REQUESTS / CONNECTIONS {
                        let sent = Instant::now();
                        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                            .unwrap();
                        let r = read_response(&mut reader, false).unwrap();
                        assert_eq!(r.status, 200);
                        slowest = slowest.max(sent.elapsed());
                    }
                    slowest
                })
            })
            .collect();
        for client in clients {
            let slowest = client.join().unwrap();
            assert!(
                slowest < Duration::from_secs(1),
                "{driver}: a request took {slowest:?}"
            );
        }
        // Let the flush timers hand off (and drop) the last partial batches.
        std::thread::sleep(Duration::from_millis(200));
        let stats = rw.stats();
        let dropped = stats["access_log.dropped_lines"];
        assert!(dropped > 0, "{driver}: nothing dropped");
        assert_eq!(stats["access_log.written_lines"], 0, "{driver}");
        assert_eq!(stats["http.public.downstream_rq_2xx"], REQUESTS as u64);

        // Unblock the writer: what was queued is written, and with the drops it accounts
        // for every request.
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::open(&fifo)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        });
        assert!(rw.terminate().success(), "{driver}");
        let text = reader.join().unwrap();
        let written = text.lines().count() as u64;
        assert!(written > 0, "{driver}");
        assert_eq!(written + dropped, REQUESTS as u64, "{driver}");
    }
}

#[test]
fn config_errors_name_the_field() {
    let yaml = format!(
        "{}access_log:\n  path: /tmp/x.log\n  format: xml\n",
        direct_config(free_port(), free_port())
    );
    let config = write_config(&yaml);
    let out = run_ringway(&["--mode", "validate"], &config.path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            ":19:11: access_log.format: unknown value \"xml\": expected one of `text`, `json`"
        ),
        "{stderr}"
    );

    // The reference config spells out the defaults: they must be the real ones.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference = ringway::config::Config::load(&root.join("config/reference.yaml")).unwrap();
    let log = reference.access_log.expect("reference has an access_log");
    assert_eq!(
        log.path,
        ringway::config::AccessLogPath::File("/var/log/ringway/access.log".into())
    );
    assert_eq!(log.format, ringway::config::AccessLogFormat::Text);
    assert_eq!(log.buffer, ringway::config::AccessLogConfig::DEFAULT_BUFFER);
    assert_eq!(
        log.flush_interval,
        ringway::config::AccessLogConfig::DEFAULT_FLUSH_INTERVAL
    );

    // A file that cannot be opened stops the start with a clear message.
    let (port, admin) = (free_port(), free_port());
    let yaml = format!(
        "{}access_log:\n  path: /nonexistent-dir/access.log\n",
        direct_config(port, admin)
    );
    let config = write_config(&yaml);
    let out = run_ringway(&[], &config.path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("access_log (/nonexistent-dir/access.log): No such file or directory"),
        "{stderr}"
    );
}
