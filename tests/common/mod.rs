//! Test harness: starts the real `ringway` binary on loopback and talks to it with plain
//! TCP clients, so every test exercises the real sockets, threads and drivers.

#![allow(dead_code)]

pub mod collector;
pub mod envoy;
pub mod faulty;
pub mod jwt;
pub mod load;
pub mod pki;
pub mod scripted;
pub mod upstream;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// The drivers every I/O test runs under. io_uring is skipped, with a printed reason,
/// only where the kernel refuses it.
pub fn drivers() -> Vec<&'static str> {
    let mut drivers = vec!["epoll"];
    if io_uring_available() {
        drivers.insert(0, "io_uring");
    } else {
        eprintln!("SKIP io_uring runs: the kernel refuses io_uring here (io_uring_disabled sysctl, seccomp or an old kernel)");
    }
    drivers
}

fn io_uring_available() -> bool {
    ringway::driver::resolve(ringway::config::DriverChoice::IoUring).is_ok()
}

/// A port for ringway to bind: free when checked, never handed to another test of this
/// process, and outside the kernel's ephemeral range, so that nothing else can take it
/// before ringway binds it. (A port from `bind(127.0.0.1:0)` can be handed out again the
/// moment it is dropped, to a parallel test's `free_port`, its upstream or an outgoing
/// connection; that once let a test's `/ready` be answered by another test's ringway.)
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = non_ephemeral_ports();
    let span = u32::from(high - low);
    if span < 1_000 {
        // The ephemeral range covers nearly every port: take one from the kernel.
        return TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port");
    }
    // Start where another test process (running at the same time) is unlikely to be.
    let offset = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + ((offset + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// The larger run of ports below or above `net.ipv4.ip_local_port_range`.
fn non_ephemeral_ports() -> (u16, u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".into());
    let mut bounds = range
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    let (first, last) = (
        bounds.next().unwrap_or(32768),
        bounds.next().unwrap_or(60999),
    );
    const LOWEST: u16 = 10_000;
    if first.saturating_sub(LOWEST) >= u16::MAX - last {
        (LOWEST, first)
    } else {
        (last + 1, u16::MAX)
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringway")
}

/// A config file in a temporary directory.
pub struct ConfigFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn write_config(yaml: &str) -> ConfigFile {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ringway.yaml");
    std::fs::write(&path, yaml).expect("write config");
    ConfigFile { _dir: dir, path }
}

/// Checks `yaml` with `--mode validate`, asserts that it is refused, and returns the
/// errors printed.
pub fn refused_config(yaml: &str) -> String {
    let config = write_config(yaml);
    let out = run_ringway(&["--mode", "validate"], &config.path);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "accepted:\n{yaml}");
    stderr
}

/// Runs `ringway` to completion (for `--mode validate` and start failures).
pub fn run_ringway(args: &[&str], config: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("run ringway")
}

/// A running ringway, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Ringway {
    child: Option<Child>,
    pub admin: SocketAddr,
    _config: ConfigFile,
}

impl Ringway {
    /// Starts ringway on `yaml` (which must set `admin: 127.0.0.1:{admin_port}`) with
    /// extra arguments, and waits until `/ready` answers 200.
    pub fn start(yaml: &str, admin_port: u16, args: &[&str]) -> Ringway {
        Ringway::spawn(yaml, admin_port, args).ready()
    }

    /// Like [`Ringway::start`], with the open-file limits a shell's `ulimit LIMITS` (for
    /// example `-Sn 256`) sets before it becomes ringway.
    pub fn start_with_ulimit(yaml: &str, admin_port: u16, args: &[&str], limits: &str) -> Ringway {
        Ringway::start_after(yaml, admin_port, args, &["sh"], &format!("ulimit {limits}"))
    }

    /// Like [`Ringway::start`], run by `launcher` (e.g. `unshare -Urm sh`) as a shell
    /// that runs `script` and then becomes ringway.
    pub fn start_after(
        yaml: &str,
        admin_port: u16,
        args: &[&str],
        launcher: &[&str],
        script: &str,
    ) -> Ringway {
        let config = write_config(yaml);
        let mut command = Command::new(launcher[0]);
        command
            .args(&launcher[1..])
            .arg("-c")
            .arg(format!(r#"{script} && exec "$@""#))
            .arg("sh")
            .arg(bin());
        Ringway::from_command(command, config, admin_port, args).ready()
    }

    /// Waits until `/ready` answers 200.
    fn ready(mut self) -> Ringway {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = get(self.admin, "/ready") {
                if r.status == 200 {
                    return self;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("ringway exited during start: {status}");
            }
            assert!(Instant::now() < deadline, "ringway not ready within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Starts ringway without waiting for it to be ready.
    pub fn spawn(yaml: &str, admin_port: u16, args: &[&str]) -> Ringway {
        let config = write_config(yaml);
        Ringway::from_command(Command::new(bin()), config, admin_port, args)
    }

    /// Runs `command` (ringway, or something that becomes it) with `args`, the config
    /// and `--log-level warn` unless `args` name a level.
    fn from_command(
        mut command: Command,
        config: ConfigFile,
        admin_port: u16,
        args: &[&str],
    ) -> Ringway {
        command.args(args).arg("-c").arg(&config.path);
        if !args.contains(&"--log-level") {
            command.args(["--log-level", "warn"]);
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .expect("start ringway");
        Ringway {
            child: Some(child),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            _config: config,
        }
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The config file it runs on (rewrite it, then reload).
    pub fn config_path(&self) -> &Path {
        &self._config.path
    }

    /// Waits up to `limit` for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Stats as a map, summed as `/stats` prints them.
    /// One stat's value (0 when absent).
    #[allow(dead_code)]
    pub fn stat(&self, name: &str) -> u64 {
        self.stats().get(name).copied().unwrap_or(0)
    }

    pub fn stats(&self) -> HashMap<String, u64> {
        let r = get(self.admin, "/stats").expect("GET /stats");
        assert_eq!(r.status, 200);
        String::from_utf8_lossy(&r.body)
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// Waits up to 2 s for stat `name` to read `value` (a worker counts a reply after
    /// writing it, so a client can read the reply first), and returns what it reads.
    pub fn wait_for_stat(&self, name: &str, value: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let now = self.stats().get(name).copied().unwrap_or(0);
            if now == value || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        child.wait().expect("wait")
    }
}

impl Drop for Ringway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One POST without a body on a new connection (admin commands).
pub fn post(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    let mut stream = connect(addr)?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n"
    )?;
    read_response(&mut BufReader::new(stream), false)
}

/// Sends `raw` on a new connection and reads one response.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut conn = connect(addr).unwrap();
    conn.write_all(raw).unwrap();
    read_response(&mut BufReader::new(conn), raw.starts_with(b"HEAD")).unwrap()
}

/// Starts ringway on the config `yaml(port, admin)` builds (one listener on `port`, the
/// admin listener on `admin`) under `driver`, and returns it with the listener's address.
pub fn start_on(driver: &str, yaml: impl FnOnce(u16, u16) -> String) -> (Ringway, SocketAddr) {
    let (port, admin) = (free_port(), free_port());
    let rw = Ringway::start(&yaml(port, admin), admin, &["--driver", driver]);
    (rw, ([127, 0, 0, 1], port).into())
}

/// One GET on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    let mut stream = connect(addr)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    read_response(&mut BufReader::new(stream), false)
}

pub fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads one response (Content-Length framed, or to EOF when there is none).
pub fn read_response<R: BufRead>(reader: &mut R, head_request: bool) -> std::io::Result<Response> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((n, v)) = trimmed.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request {
        return Ok(response);
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let n = usize::from_str_radix(size, 16).map_err(std::io::Error::other)?;
            if n == 0 {
                loop {
                    line.clear();
                    reader.read_line(&mut line)?;
                    if line == "\r\n" || line.is_empty() {
                        return Ok(response);
                    }
                    if let Some((n, v)) = line.trim_end().split_once(':') {
                        response
                            .headers
                            .push((n.trim().to_string(), v.trim().to_string()));
                    }
                }
            }
            let start = response.body.len();
            response.body.resize(start + n + 2, 0);
            reader.read_exact(&mut response.body[start..])?;
            response.body.truncate(start + n);
        }
    }
    match response.header("content-length").map(str::parse::<usize>) {
        Some(Ok(n)) => {
            response.body.resize(n, 0);
            reader.read_exact(&mut response.body)?;
        }
        _ => {
            reader.read_to_end(&mut response.body)?;
        }
    }
    Ok(response)
}

/// A config with one listener serving direct responses, plus the admin listener.
pub fn direct_config(port: u16, admin_port: u16) -> String {
    format!(
        r#"workers: 2
admin: 127.0.0.1:{admin_port}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ path: /healthz }}
        direct_response: {{ status: 200, body: "ok\n" }}
      - match: {{ prefix: /api/orders/ }}
        cluster: orders
        timeout: 2s
      - match: {{ prefix: /teapot }}
        direct_response: {{ status: 418, body: "short and stout\n" }}
clusters:
  - name: orders
    endpoints: [127.0.0.1:9, 127.0.0.1:10]
"#
    )
}

/// A config with `workers`, one listener on `port` routing `/svc/` to the cluster `echo`
/// at `endpoint`, and the admin listener; `cluster_keys` (indented lines) go into the
/// cluster.
pub fn echo_config(
    workers: usize,
    port: u16,
    admin_port: u16,
    endpoint: &str,
    cluster_keys: &str,
) -> String {
    format!(
        r#"workers: {workers}
admin: 127.0.0.1:{admin_port}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    routes:
      - match: {{ prefix: /svc/ }}
        cluster: echo
clusters:
  - name: echo
    endpoints: ["{endpoint}"]
{cluster_keys}"#
    )
}

/// Whether `python3` can import `module`, installing `package` with pip when it cannot.
pub fn python_module(module: &str, package: &str) -> bool {
    let has = || {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has() {
        return true;
    }
    let _ = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", package])
        .output();
    has()
}

/// The file's lines once it has at least `n` of them (within 5 s).
pub fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} has {} lines, expected {n}: {text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
