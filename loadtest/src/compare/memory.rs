//! Regimes 4 and 5 of `compare`: what a proxy holds in memory, and how fast it starts.
//!
//! Every proxy runs in the quickstart shape: two workers (ringway: `workers: 2` and
//! `config/quickstart.yaml`'s routes; nginx: two worker processes; HAProxy: two threads),
//! unpinned, in front of the same upstream.
//!
//! 4. **Memory**: the proxy's resident set (VmRSS, summed over its process tree: nginx's
//!    master and workers) and proportional set (Pss from smaps_rollup, which shares the
//!    binary's pages out between nginx's processes) once ready, warmed by a few requests
//!    and settled. Then `--idle-connections` keep-alive connections opened by this
//!    process, each after one request, idle: the growth divided by their number is the
//!    cost of one idle connection. Then, on a fresh start (so that neither phase inherits
//!    the other's memory), idle again and a burst (the generator, closed loop,
//!    `--burst-connections` for `--burst`), sampled every 50 ms for its peak;
//!    `--recovery-wait` (60 s) later the resident set is compared with that idle one.
//! 5. **Start to ready**: from spawning the process to its first ready answer, polled
//!    every 250 µs: ringway's `/ready` 200 on the admin listener; for nginx and HAProxy,
//!    which have no readiness endpoint, a proxied `GET /` answering 200. Median over
//!    `--start-runs` starts, targets alternating.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::summary::{cell, spread};
use super::targets::{self, Profile, Setup, Target};

/// Memory regime settings, resolved from the command line.
#[derive(Debug, Clone)]
pub struct MemoryPlan {
    pub idle_connections: usize,
    pub burst_connections: usize,
    pub burst: Duration,
    /// Request body bytes of the burst's requests (0: GET).
    pub burst_body_size: usize,
    pub settle: Duration,
    pub recovery_wait: Duration,
    /// The open-file limit the proxies inherit.
    pub open_files: u64,
}

impl MemoryPlan {
    /// The proxies' shape: two workers, room for every connection of either phase, as
    /// far as the open-file limit allows HAProxy (which reserves two descriptors per
    /// `maxconn` and will not start otherwise).
    pub fn profile(&self) -> Profile {
        let wanted = self.idle_connections.max(self.burst_connections) + 1024;
        let fit = usize::try_from(self.open_files.saturating_sub(128) / 2).unwrap_or(usize::MAX);
        Profile {
            workers: 2,
            max_connections: wanted.min(fit).max(1024),
            quickstart: true,
        }
    }

    pub fn description(&self) -> String {
        format!(
            "2 workers each (ringway on config/quickstart.yaml), unpinned; RSS/PSS summed over \
             the process tree after warm-up and {:.1} s settle; {} idle keep-alive \
             connections after one request each; then, started afresh, a burst: closed \
             loop, {} connections for {:.1} s{}, RSS measured {:.0} s after it",
            self.settle.as_secs_f64(),
            self.idle_connections,
            self.burst_connections,
            self.burst.as_secs_f64(),
            if self.burst_body_size > 0 {
                format!(", POST with {}-byte bodies", self.burst_body_size)
            } else {
                String::new()
            },
            self.recovery_wait.as_secs_f64(),
        )
    }
}

/// Resident and proportional set sizes of a process tree, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resident {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

fn status_field(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// VmRSS and Pss of `pid` and its descendants.
pub fn resident(pid: u32) -> Resident {
    super::cpu::process_tree(pid)
        .into_iter()
        .fold(Resident::default(), |acc, p| Resident {
            rss_kib: acc.rss_kib + status_field(p, "status", "VmRSS").unwrap_or(0),
            pss_kib: acc.pss_kib + status_field(p, "smaps_rollup", "Pss").unwrap_or(0),
        })
}

/// What one memory measurement gave.
#[derive(Debug, Clone)]
pub struct MemoryMeasurement {
    pub target: Target,
    pub idle: Resident,
    /// Idle connections actually open during the measurement.
    pub connections: usize,
    pub with_connections: Resident,
    /// Idle again, in the fresh start the burst runs on.
    pub burst_idle: Resident,
    pub burst_peak_rss_kib: u64,
    pub burst_requests: u64,
    pub burst_errors: u64,
    pub after_burst: Resident,
}

impl MemoryMeasurement {
    /// Bytes per idle connection.
    pub fn per_connection(&self) -> f64 {
        let delta = self
            .with_connections
            .rss_kib
            .saturating_sub(self.idle.rss_kib);
        delta as f64 * 1024.0 / self.connections.max(1) as f64
    }

    /// Resident set after the burst and the wait, relative to idle before the burst
    /// (0.05 = 5% above).
    pub fn recovery(&self) -> f64 {
        self.after_burst.rss_kib as f64 / self.burst_idle.rss_kib.max(1) as f64 - 1.0
    }
}

/// Reads one response of known framing (Content-Length) to its end.
fn read_response(s: &mut impl Read) -> Result<(), String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("reading a response: {e}"))?;
        if n == 0 {
            return Err("the connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(format!(
                "answered {:?}",
                head.lines().next().unwrap_or_default()
            ));
        }
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return Ok(());
        }
    }
}

/// An idle client connection, plain or TLS (kept open by being held).
pub enum Idle {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Idle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Idle::Plain(s) => s.read(buf),
            Idle::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Idle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Idle::Plain(s) => s.write(buf),
            Idle::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Idle::Plain(s) => s.flush(),
            Idle::Tls(s) => s.flush(),
        }
    }
}

/// Opens `n` keep-alive connections to `addr` (over TLS with `tls`, a full handshake
/// each), each answered once and left idle, 100 in flight at a time. Stops early (with
/// the reason) when the proxy or this process runs out; the caller reports how many it
/// got.
pub fn open_idle(
    addr: SocketAddr,
    n: usize,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> (Vec<Idle>, Option<String>) {
    const IN_FLIGHT: usize = 100;
    let request = b"GET / HTTP/1.1\r\nhost: compare\r\n\r\n";
    let mut open = Vec::with_capacity(n);
    while open.len() < n {
        let mut batch = Vec::with_capacity(IN_FLIGHT);
        for _ in 0..IN_FLIGHT.min(n - open.len()) {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .and_then(|s| {
                    s.set_read_timeout(Some(Duration::from_secs(10)))?;
                    let mut s = match tls {
                        None => Idle::Plain(s),
                        Some(config) => {
                            let name = rustls::pki_types::ServerName::try_from("localhost")
                                .map_err(std::io::Error::other)?;
                            let conn = rustls::ClientConnection::new(config.clone(), name)
                                .map_err(std::io::Error::other)?;
                            Idle::Tls(Box::new(rustls::StreamOwned::new(conn, s)))
                        }
                    };
                    s.write_all(request)?;
                    Ok(s)
                })
                .map_err(|e| format!("connection {}: {e}", open.len() + batch.len() + 1));
            match s {
                Ok(s) => batch.push(s),
                Err(e) => return (open, Some(e)),
            }
        }
        for mut s in batch {
            if let Err(e) = read_response(&mut s) {
                let reason = format!("connection {}: {e}", open.len() + 1);
                return (open, Some(reason));
            }
            open.push(s);
        }
    }
    (open, None)
}

/// A few requests, each on its own connection (so that every worker likely gets one).
fn warm(addr: SocketAddr, tls: bool) {
    for _ in 0..16 {
        let _ = if tls {
            targets::get_ok_tls(addr)
        } else {
            targets::get_ok(addr, "/")
        };
    }
}

/// Runs the burst generator, sampling the proxy's RSS; (peak KiB, requests, errors).
fn burst(
    exe: &Path,
    plan: &MemoryPlan,
    running: &targets::Running,
    pid: u32,
    json: &Path,
) -> Result<(u64, u64, u64), String> {
    let mut c = Command::new(exe);
    c.args(["run", "-q", "-t", "1"])
        .args(["-c", &plan.burst_connections.to_string()])
        .args(["-d", &format!("{}ms", plan.burst.as_millis())])
        .args(["--timeout", "5s"])
        .arg("--json")
        .arg(json);
    if plan.burst_body_size > 0 {
        c.args([
            "-X",
            "POST",
            "--body-size",
            &plan.burst_body_size.to_string(),
        ]);
    }
    if running.target.is_tls() {
        c.arg("-k");
    }
    let scheme = if running.target.is_tls() {
        "https"
    } else {
        "http"
    };
    let mut child = c
        .arg(format!("{scheme}://{}/", running.addr))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the burst generator: {e}"))?;
    let mut peak = 0;
    let status = loop {
        peak = peak.max(resident(pid).rss_kib);
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting for the burst generator: {e}"))?
        {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("the burst generator failed: {err}"));
    }
    let text = std::fs::read_to_string(json)
        .map_err(|e| format!("cannot read {}: {e}", json.display()))?;
    let r = crate::output::fortio::from_json(&text)?;
    Ok((
        peak,
        r.ringway_load.completed,
        r.errors_duration_histogram.count,
    ))
}

/// Starts `target`, warms it and lets it settle; (the running proxy, its pid, idle set).
fn start_idle(
    setup: &Setup,
    target: Target,
    plan: &MemoryPlan,
) -> Result<(targets::Running, u32, Resident), String> {
    let running = targets::start_with(target, setup, None, &plan.profile())?;
    let pid = running.pid().ok_or("no process to measure")?;
    warm(running.addr, target.is_tls());
    std::thread::sleep(plan.settle);
    let idle = resident(pid);
    Ok((running, pid, idle))
}

/// One memory measurement of `target`, from two fresh starts (so that neither phase
/// inherits the other's memory): idle, then the idle connections; idle again, then the
/// burst and the recovery.
pub fn measure(
    exe: &Path,
    setup: &Setup,
    target: Target,
    plan: &MemoryPlan,
    json: &Path,
) -> Result<MemoryMeasurement, String> {
    let (running, pid, idle) = start_idle(setup, target, plan)?;
    let tls = if target.is_tls() {
        let options = crate::run::TlsOptions {
            insecure: true,
            ..Default::default()
        };
        Some(crate::run::tls_client_config(&options)?)
    } else {
        None
    };
    let (conns, stopped) = open_idle(running.addr, plan.idle_connections, tls.as_ref());
    if let Some(reason) = &stopped {
        eprintln!(
            "compare:   {}: {} of {} idle connections opened: {reason}",
            target.name(),
            conns.len(),
            plan.idle_connections
        );
    }
    std::thread::sleep(plan.settle);
    let with_connections = resident(pid);
    let connections = conns.len();
    drop(conns);
    running.stop();

    let (running, pid, burst_idle) = start_idle(setup, target, plan)?;
    let (burst_peak_rss_kib, burst_requests, burst_errors) = burst(exe, plan, &running, pid, json)?;
    eprintln!(
        "compare:   {}: burst done ({burst_requests} requests, {burst_errors} errors); waiting \
         {:.0} s for memory to come back",
        target.name(),
        plan.recovery_wait.as_secs_f64()
    );
    std::thread::sleep(plan.recovery_wait);
    let after_burst = resident(pid);
    running.stop();
    Ok(MemoryMeasurement {
        target,
        idle,
        connections,
        with_connections,
        burst_idle,
        burst_peak_rss_kib,
        burst_requests,
        burst_errors,
        after_burst,
    })
}

fn mb(kib: f64) -> String {
    format!("{:.1}", kib * 1024.0 / 1e6)
}

fn kib(bytes: f64) -> String {
    format!("{:.1}", bytes / 1024.0)
}

fn percent(v: f64) -> String {
    format!("{:+.1}%", v * 100.0)
}

/// The memory table: medians (min–max) per target. `burst` is the burst's length (for
/// its rate), `wait` the time after it.
pub fn memory_rows(
    ms: &[MemoryMeasurement],
    burst: Duration,
    wait: Duration,
) -> (Vec<String>, Vec<Vec<String>>) {
    let headers = vec![
        "target".to_string(),
        "idle RSS MB".into(),
        "idle PSS MB".into(),
        "per idle connection KiB".into(),
        "idle connections".into(),
        "burst requests/s".into(),
        "burst peak RSS MB".into(),
        format!("RSS {:.0} s after burst MB", wait.as_secs_f64()),
        "after burst vs idle".into(),
        "burst errors".into(),
    ];
    let burst_secs = burst.as_secs_f64().max(1e-9);
    let mut rows = Vec::new();
    for target in order(ms.iter().map(|m| m.target)) {
        let mine: Vec<&MemoryMeasurement> = ms.iter().filter(|m| m.target == target).collect();
        let s = |f: &dyn Fn(&MemoryMeasurement) -> f64| {
            spread(&mine.iter().map(|m| f(m)).collect::<Vec<_>>())
        };
        rows.push(vec![
            target.name().to_string(),
            cell(s(&|m| m.idle.rss_kib as f64), &mb),
            cell(s(&|m| m.idle.pss_kib as f64), &mb),
            cell(s(&|m| m.per_connection()), &kib),
            cell(s(&|m| m.connections as f64), &|v| format!("{v:.0}")),
            cell(s(&|m| m.burst_requests as f64 / burst_secs), &|v| {
                format!("{v:.0}")
            }),
            cell(s(&|m| m.burst_peak_rss_kib as f64), &mb),
            cell(s(&|m| m.after_burst.rss_kib as f64), &mb),
            cell(s(&|m| m.recovery()), &percent),
            mine.iter().map(|m| m.burst_errors).sum::<u64>().to_string(),
        ]);
    }
    (headers, rows)
}

/// Targets in first-seen order, once each.
fn order(targets: impl Iterator<Item = Target>) -> Vec<Target> {
    let mut out = Vec::new();
    for t in targets {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// One start: spawn to ready, then stop.
pub fn time_start(
    setup: &Setup,
    target: Target,
    profile: &Profile,
) -> Result<(Duration, &'static str), String> {
    let running = targets::start_with(target, setup, None, profile)?;
    let out = (running.ready_after, running.ready_probe);
    running.stop();
    Ok(out)
}

/// The start table: (target, start to ready in ms, probe).
pub fn start_rows(times: &[(Target, Duration, &'static str)]) -> (Vec<String>, Vec<Vec<String>>) {
    let headers = vec![
        "target".to_string(),
        "start to ready ms".into(),
        "starts".into(),
        "ready when".into(),
    ];
    let rows = order(times.iter().map(|t| t.0))
        .into_iter()
        .map(|target| {
            let mine: Vec<_> = times.iter().filter(|t| t.0 == target).collect();
            let ms: Vec<f64> = mine.iter().map(|t| t.1.as_secs_f64() * 1e3).collect();
            vec![
                target.name().to_string(),
                cell(spread(&ms), &|v| format!("{v:.1}")),
                mine.len().to_string(),
                match mine.first().map(|t| t.2) {
                    Some("/ready") => "/ready 200 (admin)".to_string(),
                    _ => "proxied GET / 200".to_string(),
                },
            ]
        })
        .collect();
    (headers, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_memory_and_computes_the_figures() {
        let me = resident(std::process::id());
        assert!(me.rss_kib > 0 && me.pss_kib > 0, "{me:?}");
        let r = |rss_kib| Resident {
            rss_kib,
            pss_kib: rss_kib,
        };
        let m = MemoryMeasurement {
            target: Target::Ringway,
            idle: r(5000),
            connections: 10_000,
            with_connections: r(5000 + 60_000),
            burst_idle: r(5000),
            burst_peak_rss_kib: 30_000,
            burst_requests: 30_000,
            burst_errors: 0,
            after_burst: r(5250),
        };
        assert!((m.per_connection() - 6144.0).abs() < 1e-9);
        assert!((m.recovery() - 0.05).abs() < 1e-9);
        let (headers, rows) = memory_rows(&[m], Duration::from_secs(3), Duration::from_secs(60));
        assert_eq!(headers[7], "RSS 60 s after burst MB");
        assert_eq!(rows[0][1], "5.1");
        assert_eq!(rows[0][3], "6.0");
        assert_eq!(rows[0][5], "10000");
        assert_eq!(rows[0][8], "+5.0%");
        let (_, rows) = start_rows(&[
            (Target::Ringway, Duration::from_millis(3), "/ready"),
            (Target::Nginx, Duration::from_millis(9), "GET /"),
            (Target::Ringway, Duration::from_millis(5), "/ready"),
        ]);
        assert_eq!(rows[0][1], "4.0 (3.0–5.0)");
        assert_eq!(rows[1][3], "proxied GET / 200");
    }
}
