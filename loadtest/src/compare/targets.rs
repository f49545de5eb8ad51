//! The things `compare` measures: the direct path to the upstream, ringway (io_uring or
//! epoll driver), a second "baseline" ringway binary (the build before a change, so a
//! change's before and after are measured side by side in one run), nginx and HAProxy,
//! each started as a child process with a generated config (one worker, keep-alive to the
//! upstream, no access log) and stopped after its measurement.
//!
//! `haproxy-tcp` is HAProxy as a bare TCP forwarder (`mode tcp`: one upstream connection
//! per client connection, bytes copied without being parsed). It is the floor the
//! performance issue sets the hop-cost target by ("an L7 proxy as cheap as an L4 one"),
//! so measuring it on the same machine in the same run says how far an HTTP proxy is from
//! that floor here, whatever this machine's wake-ups cost. `uring-forward` is the same on
//! raw io_uring with every feature the issue names (`ringway-load forward`, this binary):
//! the floor for any proxy built on them.
//!
//! Processes are pinned with `taskset` (util-linux) rather than in-process affinity calls:
//! children inherit the mask, nginx's forked worker included, and the printed command is
//! what a person would type to reproduce a run. Stopping sends SIGTERM with the `kill`
//! command (no `unsafe` for a signal) and falls back to SIGKILL.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::io::{Read, Write};

/// A measured path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Direct,
    Ringway,
    RingwayEpoll,
    Baseline,
    BaselineEpoll,
    Nginx,
    Haproxy,
    /// HAProxy in `mode tcp`: the bare L4 forwarder.
    HaproxyTcp,
    /// `ringway-load forward`: an L4 forwarder on raw io_uring.
    UringForward,
    /// ringway terminating TLS (ECDSA P-256 certificate, TLS 1.3 by default).
    RingwayTls,
    /// The baseline binary terminating TLS.
    BaselineTls,
    /// nginx terminating TLS with the same certificate.
    NginxTls,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Ringway => "ringway",
            Target::RingwayEpoll => "ringway-epoll",
            Target::Baseline => "baseline",
            Target::BaselineEpoll => "baseline-epoll",
            Target::Nginx => "nginx",
            Target::Haproxy => "haproxy",
            Target::HaproxyTcp => "haproxy-tcp",
            Target::UringForward => "uring-forward",
            Target::RingwayTls => "ringway-tls",
            Target::BaselineTls => "baseline-tls",
            Target::NginxTls => "nginx-tls",
        }
    }

    /// Whether clients reach it over TLS.
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            Target::RingwayTls | Target::BaselineTls | Target::NginxTls
        )
    }

    pub fn parse(name: &str) -> Result<Target, String> {
        [
            Target::Direct,
            Target::Ringway,
            Target::RingwayEpoll,
            Target::Baseline,
            Target::BaselineEpoll,
            Target::Nginx,
            Target::Haproxy,
            Target::HaproxyTcp,
            Target::UringForward,
            Target::RingwayTls,
            Target::BaselineTls,
            Target::NginxTls,
        ]
        .into_iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| {
            format!(
                "unknown target {name:?} (direct, ringway, ringway-epoll, baseline, \
                 baseline-epoll, nginx, haproxy, haproxy-tcp, uring-forward, ringway-tls, \
                 baseline-tls, nginx-tls)"
            )
        })
    }
}

/// How targets are found and configured.
#[derive(Debug, Clone)]
pub struct Setup {
    pub upstream: SocketAddr,
    pub ringway: PathBuf,
    /// The baseline ringway binary (targets `baseline`, `baseline-epoll`), if given.
    pub baseline: Option<PathBuf>,
    /// A ringway config given by the user, and the listener address in it.
    pub ringway_config: Option<(PathBuf, SocketAddr)>,
    /// The same for the baseline targets (else they use `ringway_config`).
    pub baseline_config: Option<(PathBuf, SocketAddr)>,
    /// Request headers every generator run sends.
    pub headers: Vec<String>,
    pub nginx: PathBuf,
    pub haproxy: PathBuf,
    /// Generated configs and logs go here.
    pub dir: PathBuf,
    /// Whether `taskset` is there to pin with.
    pub taskset: bool,
    /// The TLS targets' certificate and key (made for the run).
    pub tls_files: Option<(PathBuf, PathBuf)>,
}

/// Makes the TLS targets' certificate (ECDSA P-256, for `localhost` and 127.0.0.1,
/// valid for 30 days) in `dir`.
pub fn make_certificate(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("TLS key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| format!("TLS certificate: {e}"))?;
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(86_400)).into();
    params.not_after = (now + Duration::from_secs(30 * 86_400)).into();
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    let (cert_file, key_file) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    std::fs::write(&cert_file, cert.pem()).map_err(|e| format!("{}: {e}", cert_file.display()))?;
    std::fs::write(&key_file, key.serialize_pem())
        .map_err(|e| format!("{}: {e}", key_file.display()))?;
    Ok((cert_file, key_file))
}

/// Whether `program arg` runs and exits 0 (its output discarded).
pub fn works(program: &Path, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `Some(reason)` when the target cannot run here (a proxy not installed).
pub fn unavailable(target: Target, setup: &Setup) -> Option<String> {
    match target {
        Target::Direct => None,
        Target::UringForward => crate::forward::probe().err(),
        Target::Ringway | Target::RingwayEpoll | Target::RingwayTls => {
            (!setup.ringway.exists() && !works(&setup.ringway, "--version")).then(|| {
                format!(
                    "ringway binary {} not found (build it: cargo build --release --workspace, \
                 or pass --ringway PATH)",
                    setup.ringway.display()
                )
            })
        }
        Target::Baseline | Target::BaselineEpoll | Target::BaselineTls => match &setup.baseline {
            None => Some("no --baseline binary given".to_string()),
            Some(path) => {
                (!path.exists()).then(|| format!("baseline binary {} not found", path.display()))
            }
        },
        Target::Nginx | Target::NginxTls => (!works(&setup.nginx, "-v"))
            .then(|| "nginx is not installed (`nginx -v` failed)".to_string()),
        Target::Haproxy | Target::HaproxyTcp => (!works(&setup.haproxy, "-v"))
            .then(|| "HAProxy is not installed (`haproxy -v` failed)".to_string()),
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// `program args…`, under `taskset -c cpus` when pinning.
pub fn pinned(setup: &Setup, cpus: Option<&str>, program: &Path) -> Command {
    match cpus {
        Some(cpus) if setup.taskset => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        _ => Command::new(program),
    }
}

/// How a proxy is configured: the cost regimes measure one worker, the memory and start
/// regimes two (the quickstart shape) with room for 10,000 idle connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Worker processes (nginx), threads (HAProxy) or workers (ringway).
    pub workers: usize,
    /// Connections each proxy must accept at once (nginx's `worker_connections`,
    /// HAProxy's `maxconn`).
    pub max_connections: usize,
    /// ringway: the quickstart config (admin listener, `/healthz`), readiness from
    /// `/ready`; otherwise the one-route bench config, readiness from a proxied GET.
    pub quickstart: bool,
}

impl Profile {
    /// Regimes 1-3: one worker, the bench config.
    pub const BENCH: Profile = Profile {
        workers: 1,
        max_connections: 4096,
        quickstart: false,
    };
}

/// A started proxy (or nothing, for the direct path).
#[derive(Debug)]
pub struct Running {
    pub target: Target,
    /// Where the generator sends its requests.
    pub addr: SocketAddr,
    /// From spawn to the first ready answer (`/ready` 200 on ringway's admin listener,
    /// else a proxied `GET /` 200).
    pub ready_after: Duration,
    /// What answered: `/ready` or `GET /`.
    pub ready_probe: &'static str,
    child: Option<Child>,
}

impl Running {
    /// Wraps an already started child (the upstream).
    pub fn from_child(target: Target, addr: SocketAddr, child: Child) -> Running {
        Running {
            target,
            addr,
            ready_after: Duration::ZERO,
            ready_probe: "GET /",
            child: Some(child),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, a short wait, then SIGKILL.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `config/quickstart.yaml` with its ports moved and `workers` fixed.
fn ringway_quickstart_yaml(workers: usize, port: u16, admin: u16, upstream: SocketAddr) -> String {
    format!(
        "# Generated by ringway-load compare: config/quickstart.yaml, {workers} workers.\n\
         workers: {workers}\nadmin: 127.0.0.1:{admin}\n\
         listeners:\n  - name: public\n    address: 127.0.0.1:{port}\n    routes:\n      \
         - match: {{ path: /healthz }}\n        direct_response: {{ status: 200, body: \"ok\\n\" }}\n      \
         - match: {{ prefix: / }}\n        cluster: backend\n\
         clusters:\n  - name: backend\n    endpoints: [{upstream}]\n"
    )
}

fn ringway_yaml(port: u16, upstream: SocketAddr) -> String {
    format!(
        "# Generated by ringway-load compare: one listener proxying everything.\n\
         workers: 1\n\
         listeners:\n  - name: bench\n    address: 127.0.0.1:{port}\n    routes:\n      \
         - match: {{ prefix: / }}\n        cluster: upstream\n\
         clusters:\n  - name: upstream\n    endpoints: [{upstream}]\n"
    )
}

/// The bench config with TLS on its listener.
fn ringway_tls_yaml(
    workers: usize,
    port: u16,
    upstream: SocketAddr,
    (cert, key): (&Path, &Path),
) -> String {
    format!(
        "# Generated by ringway-load compare: one TLS listener proxying everything.\n\
         workers: {workers}\n\
         listeners:\n  - name: bench\n    address: 127.0.0.1:{port}\n    tls:\n      \
         certificates:\n        - certificate_chain: {}\n          private_key: {}\n    \
         routes:\n      - match: {{ prefix: / }}\n        cluster: upstream\n\
         clusters:\n  - name: upstream\n    endpoints: [{upstream}]\n",
        cert.display(),
        key.display()
    )
}

fn nginx_conf(
    dir: &Path,
    port: u16,
    upstream: SocketAddr,
    profile: &Profile,
    tls: Option<(&Path, &Path)>,
) -> String {
    let d = dir.display();
    // TLS 1.2 and 1.3 with session tickets (nginx's default: its workers share the
    // ticket keys), as ringway's TLS listener.
    let listen = match tls {
        Some((cert, key)) => format!(
            "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    \
             ssl_certificate_key {};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    \
             ssl_session_tickets on;",
            cert.display(),
            key.display()
        ),
        None => format!("listen 127.0.0.1:{port};"),
    };
    let (workers, connections) = (profile.workers, profile.max_connections);
    // Each client connection may hold an upstream one too.
    let files = 2 * connections + 1024;
    format!(
        "# Generated by ringway-load compare: {workers} worker(s), keep-alive both ways, no \
         access log.\n\
         daemon off;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\n\
         worker_rlimit_nofile {files};\nerror_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections {connections}; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n\
           client_body_temp_path {d}/nginx-body;\n  proxy_temp_path {d}/nginx-proxy;\n\
           fastcgi_temp_path {d}/nginx-fastcgi;\n  uwsgi_temp_path {d}/nginx-uwsgi;\n\
           scgi_temp_path {d}/nginx-scgi;\n\
           upstream backend {{ server {upstream}; keepalive 64; keepalive_requests 1000000; }}\n\
           server {{\n    {listen}\n    location / {{\n      \
         proxy_pass http://backend;\n      proxy_http_version 1.1;\n      \
         proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
    )
}

fn haproxy_cfg(port: u16, upstream: SocketAddr, profile: &Profile) -> String {
    let (threads, connections) = (profile.workers, profile.max_connections);
    format!(
        "# Generated by ringway-load compare: {threads} thread(s), keep-alive both ways, no \
         log.\n\
         global\n  nbthread {threads}\n  maxconn {connections}\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  \
         timeout server 60s\n  option http-keep-alive\n  http-reuse always\n\
         frontend bench\n  bind 127.0.0.1:{port}\n  default_backend upstream\n\
         backend upstream\n  server s1 {upstream}\n"
    )
}

/// HAProxy as a bare TCP forwarder: each client connection gets its own upstream
/// connection and bytes pass unparsed.
fn haproxy_tcp_cfg(port: u16, upstream: SocketAddr, profile: &Profile) -> String {
    let (threads, connections) = (profile.workers, profile.max_connections);
    format!(
        "# Generated by ringway-load compare: {threads} thread(s), TCP mode (L4), no log.\n\
         global\n  nbthread {threads}\n  maxconn {connections}\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  \
         timeout server 60s\n\
         frontend bench\n  bind 127.0.0.1:{port}\n  default_backend upstream\n\
         backend upstream\n  server s1 {upstream}\n"
    )
}

/// How often a starting proxy is probed: often enough to time a start of a few
/// milliseconds (a refused connect costs microseconds).
const READY_POLL: Duration = Duration::from_micros(250);

/// Starts `target` (bench profile) pinned to `cpus` and waits until a GET through it
/// answers 200.
pub fn start(target: Target, setup: &Setup, cpus: Option<&str>) -> Result<Running, String> {
    start_with(target, setup, cpus, &Profile::BENCH)
}

/// Starts `target` configured by `profile`, pinned to `cpus`, and waits until it is
/// ready: `/ready` 200 on ringway's admin listener (quickstart profile), else a GET
/// through it answers 200. [`Running::ready_after`] says how long that took from spawn.
pub fn start_with(
    target: Target,
    setup: &Setup,
    cpus: Option<&str>,
    profile: &Profile,
) -> Result<Running, String> {
    let name = target.name();
    let write = |file: &str, text: String| -> Result<PathBuf, String> {
        let path = setup.dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    };
    let log = setup.dir.join(format!("{name}.log"));
    let mut probe = None;
    let (mut command, addr) = match target {
        Target::Direct => {
            return Ok(Running {
                target,
                addr: setup.upstream,
                ready_after: Duration::ZERO,
                ready_probe: "GET /",
                child: None,
            })
        }
        Target::Ringway
        | Target::RingwayEpoll
        | Target::Baseline
        | Target::BaselineEpoll
        | Target::RingwayTls
        | Target::BaselineTls => {
            let given = match target {
                Target::Baseline | Target::BaselineEpoll | Target::BaselineTls => setup
                    .baseline_config
                    .as_ref()
                    .or(setup.ringway_config.as_ref()),
                _ => setup.ringway_config.as_ref(),
            };
            let (config, addr) = match given {
                Some((path, addr)) => (path.clone(), *addr),
                None if target.is_tls() => {
                    let port = free_port()?;
                    let (cert, key) = setup.tls_files.as_ref().ok_or("no TLS certificate")?;
                    let yaml = ringway_tls_yaml(profile.workers, port, setup.upstream, (cert, key));
                    let path = write("ringway-tls.yaml", yaml)?;
                    (path, SocketAddr::from(([127, 0, 0, 1], port)))
                }
                None if profile.quickstart => {
                    let (port, admin) = (free_port()?, free_port()?);
                    let yaml =
                        ringway_quickstart_yaml(profile.workers, port, admin, setup.upstream);
                    let path = write("ringway.yaml", yaml)?;
                    probe = Some(SocketAddr::from(([127, 0, 0, 1], admin)));
                    (path, SocketAddr::from(([127, 0, 0, 1], port)))
                }
                None => {
                    let port = free_port()?;
                    let path = write("ringway.yaml", ringway_yaml(port, setup.upstream))?;
                    (path, SocketAddr::from(([127, 0, 0, 1], port)))
                }
            };
            let binary = match (target, &setup.baseline) {
                (Target::Baseline | Target::BaselineEpoll | Target::BaselineTls, Some(path)) => {
                    path
                }
                _ => &setup.ringway,
            };
            let mut c = pinned(setup, cpus, binary);
            c.arg("-c")
                .arg(config)
                .args(["--log-level", "warn", "--drain-time-s", "1"]);
            if matches!(target, Target::RingwayEpoll | Target::BaselineEpoll) {
                c.args(["--driver", "epoll"]);
            }
            (c, addr)
        }
        Target::Nginx | Target::NginxTls => {
            let port = free_port()?;
            let tls = match (target, &setup.tls_files) {
                (Target::NginxTls, Some((cert, key))) => Some((cert.as_path(), key.as_path())),
                (Target::NginxTls, None) => return Err("no TLS certificate".into()),
                _ => None,
            };
            let conf = write(
                "nginx.conf",
                nginx_conf(&setup.dir, port, setup.upstream, profile, tls),
            )?;
            let mut c = pinned(setup, cpus, &setup.nginx);
            c.arg("-p")
                .arg(&setup.dir)
                .arg("-e")
                .arg(setup.dir.join("nginx-error.log"))
                .arg("-c")
                .arg(conf);
            (c, SocketAddr::from(([127, 0, 0, 1], port)))
        }
        Target::UringForward => {
            let port = free_port()?;
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find this binary for `forward`: {e}"))?;
            let mut c = pinned(setup, cpus, &exe);
            c.arg("forward")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--upstream")
                .arg(setup.upstream.to_string());
            (c, SocketAddr::from(([127, 0, 0, 1], port)))
        }
        Target::Haproxy | Target::HaproxyTcp => {
            let port = free_port()?;
            let cfg = if target == Target::Haproxy {
                write("haproxy.cfg", haproxy_cfg(port, setup.upstream, profile))?
            } else {
                write(
                    "haproxy-tcp.cfg",
                    haproxy_tcp_cfg(port, setup.upstream, profile),
                )?
            };
            let mut c = pinned(setup, cpus, &setup.haproxy);
            c.arg("-db").arg("-f").arg(cfg);
            (c, SocketAddr::from(([127, 0, 0, 1], port)))
        }
    };
    let log_file =
        std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let spawned = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(
            log_file
                .try_clone()
                .map_err(|e| format!("cannot log {name}: {e}"))?,
        )
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let mut running = Running {
        target,
        addr,
        ready_after: Duration::ZERO,
        ready_probe: if probe.is_some() { "/ready" } else { "GET /" },
        child: Some(child),
    };
    let deadline = spawned + Duration::from_secs(10);
    loop {
        let ready = match probe {
            Some(admin) => get_ok(admin, "/ready"),
            None if target.is_tls() => get_ok_tls(addr),
            None => get_ok_with(addr, "/", &setup.headers),
        };
        if ready {
            running.ready_after = spawned.elapsed();
            return Ok(running);
        }
        let exited = running
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if exited.is_some() || Instant::now() > deadline {
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            running.stop();
            let tail: Vec<&str> = output.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "{name} did not answer on {addr} ({}); its output:\n{}",
                if exited.is_some() {
                    "it exited"
                } else {
                    "10 s passed"
                },
                tail.join("\n")
            ));
        }
        std::thread::sleep(READY_POLL);
    }
}

/// One `GET /` over TLS (any certificate) with `connection: close`: did it answer 200?
pub fn get_ok_tls(addr: SocketAddr) -> bool {
    let options = crate::run::TlsOptions {
        insecure: true,
        ..Default::default()
    };
    let Ok(config) = crate::run::tls_client_config(&options) else {
        return false;
    };
    let Ok(tcp) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a valid name");
    let Ok(conn) = rustls::ClientConnection::new(config, name) else {
        return false;
    };
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let request = b"GET / HTTP/1.1\r\nhost: compare\r\nconnection: close\r\n\r\n";
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// One `GET path` with `connection: close`: did it answer 200?
pub fn get_ok(addr: SocketAddr, path: &str) -> bool {
    get_ok_with(addr, path, &[])
}

/// The same with `headers` ("name: value"), the ones every run sends (a token).
pub fn get_ok_with(addr: SocketAddr, path: &str, headers: &[String]) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut extra = String::new();
    for h in headers {
        extra.push_str(h);
        extra.push_str("\r\n");
    }
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: compare\r\n{extra}connection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_configs() {
        assert_eq!(
            Target::parse("ringway-epoll").unwrap(),
            Target::RingwayEpoll
        );
        assert!(Target::parse("envoy").is_err());
        let up: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert!(ringway_yaml(8080, up).contains("workers: 1"));
        let nginx = nginx_conf(Path::new("/tmp/x"), 8080, up, &Profile::BENCH, None);
        assert!(nginx.contains("access_log off;") && nginx.contains("worker_processes 1;"));
        assert!(haproxy_cfg(8080, up, &Profile::BENCH).contains("nbthread 1"));
        assert_eq!(Target::parse("haproxy-tcp").unwrap(), Target::HaproxyTcp);
        let tcp = haproxy_tcp_cfg(8080, up, &Profile::BENCH);
        assert!(
            tcp.contains("mode tcp") && !tcp.contains("mode http"),
            "{tcp}"
        );
        assert!(tcp.contains("server s1 127.0.0.1:9001"), "{tcp}");
        let big = Profile {
            workers: 2,
            max_connections: 12_000,
            quickstart: true,
        };
        let nginx = nginx_conf(Path::new("/tmp/x"), 8080, up, &big, None);
        assert!(nginx.contains("worker_processes 2;"), "{nginx}");
        assert!(nginx.contains("worker_connections 12000;") && nginx.contains("nofile 25024;"));
        let haproxy = haproxy_cfg(8080, up, &big);
        assert!(haproxy.contains("nbthread 2") && haproxy.contains("maxconn 12000"));
        // The quickstart config, ports moved, parses as ringway's own config would.
        let yaml = ringway_quickstart_yaml(2, 8080, 9901, up);
        let quickstart = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/quickstart.yaml"
        ))
        .unwrap();
        for line in [
            "  - name: public",
            "direct_response: { status: 200, body: \"ok\\n\" }",
        ] {
            assert!(yaml.contains(line) && quickstart.contains(line), "{line}");
        }
        let config = ringway::config::Config::parse(&yaml, Path::new("gen.yaml")).unwrap();
        assert_eq!(config.listeners[0].routes.len(), 2);
    }
}
