//! The built binary: `serve` as a child process, `run` against it, the summary printed.

use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn run_against_serve_prints_a_summary() {
    let bin = env!("CARGO_BIN_EXE_ringway-load");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = Command::new(bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--driver",
            "epoll",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new(bin)
        .args(["run", "-c", "2", "-t", "1", "-d", "1s", "-R", "500"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "99.900%",
        "Detailed Percentile spectrum",
        "Requests/sec",
        "cpu: ",
        "Late start",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in\n{stdout}");
    }
    // Not a terminal: plain progress lines.
    assert!(stderr.contains("[   1s]") || stderr.is_empty(), "{stderr}");
}
