//! `ringway-load compare`: what a proxy costs, against the direct path and against nginx
//! and HAProxy, in three regimes.
//!
//! 1. **Saturated cost**: closed loop, 32 connections, the proxy alone on its core: its
//!    own CPU per request (utime+stime of its process tree over the measured phase) and
//!    the requests/s it sustains.
//! 2. **Hop cost at a fixed rate**: open loop, 16 connections at `--hop-rate` (11k/s), the
//!    whole machine's busy CPU per request (/proc/stat) minus the direct path's: what
//!    the hop costs in total, kernel and loopback included, at a load every target holds.
//! 3. **Added latency**: one connection at a moderate fixed rate with everything on one
//!    core (no cross-core wakeups): p50..p99.9 through the proxy minus direct.
//! 4. **Memory**: idle resident set with two workers, bytes per idle keep-alive
//!    connection (10,000 of them), and the resident set a minute after a burst.
//! 5. **Start to ready**: spawn to the first ready answer, median of several starts.
//!
//! nginx and HAProxy are installed with apt-get when missing (as root, where apt-get
//! exists; `--no-install` opts out); a peer that still cannot run is skipped with the
//! reason.
//!
//! Targets run one after another and alternate within each repetition (direct, ringway,
//! …, direct, ringway, …), so drift of a noisy machine spreads over all of them; each
//! measurement starts its proxy fresh and stops it after. The generator is this binary's
//! `run --json`, a child process pinned like the others, and its JSON is kept in
//! `--out DIR` with one HTML page plotting every target. Modules: `targets` (start, stop,
//! configs), `cpu` (/proc sampling), `summary` (tables, page), `memory` (regimes 4 and
//! 5), `install` (the peers' packages).

pub mod cpu;
pub mod install;
pub mod memory;
pub mod summary;
pub mod targets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Args;

use crate::cli::parse_duration;
use summary::Measurement;
use targets::{Running, Setup, Target};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The ringway binary [default: `ringway` next to this binary, else on PATH].
    #[arg(long, value_name = "PATH")]
    pub ringway: Option<PathBuf>,
    /// A second ringway binary, measured as the targets `baseline` and `baseline-epoll`
    /// (add them to --targets): the build before a change, so before and after are
    /// measured side by side in one run.
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
    /// A ringway config to use instead of the generated one (its listener must proxy to
    /// the upstream); needs --ringway-addr.
    #[arg(long, value_name = "FILE", requires = "ringway_addr")]
    pub ringway_config: Option<PathBuf>,
    /// The listener address in --ringway-config.
    #[arg(long, value_name = "ADDR")]
    pub ringway_addr: Option<SocketAddr>,
    /// A config for the `baseline` targets instead of --ringway-config (the same binary
    /// given as --baseline measures one feature against the plain route, side by side:
    /// a route with a JWT here, the plain route there); needs --baseline-addr.
    #[arg(long, value_name = "FILE", requires = "baseline_addr")]
    pub baseline_config: Option<PathBuf>,
    /// The listener address in --baseline-config.
    #[arg(long, value_name = "ADDR")]
    pub baseline_addr: Option<SocketAddr>,
    /// A request header every generator run sends, "name: value" (repeatable): a token
    /// or an API key for a route that requires one.
    #[arg(long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Use this upstream instead of starting `ringway-load serve`.
    #[arg(long, value_name = "ADDR")]
    pub upstream: Option<SocketAddr>,
    /// Targets, in the order they alternate; nginx and haproxy are installed when missing
    /// (see --no-install), else skipped with a note. Two L4 forwarders mark the floor
    /// (regimes 1-3 only): `haproxy-tcp`, HAProxy as a bare TCP forwarder (what the
    /// hop-cost target is set by), and `uring-forward`, one on raw io_uring with
    /// multishot receive, a provided buffer ring and fixed files (`ringway-load forward`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,ringway,ringway-epoll,nginx,haproxy,haproxy-tcp,uring-forward"
    )]
    pub targets: Vec<String>,
    /// Regimes to run: 1 saturated, 2 hop cost, 3 added latency, 4 memory, 5 start to
    /// ready (4 and 5 skip the direct path).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    pub regimes: Vec<u8>,
    /// Do not install missing nginx/HAProxy (by default, as root with apt-get:
    /// `apt-get update && apt-get install -y nginx haproxy`).
    #[arg(long)]
    pub no_install: bool,
    /// Results: every run's JSON, compare.html, the tables (summary.md), latency.svg.
    #[arg(long, value_name = "DIR", default_value = "compare-results")]
    pub out: PathBuf,
    /// Short mode for tests: 1 s runs, 1 repetition, short warmup; regime 4 with 500 idle
    /// connections, 100 in the burst for 1 s, 2 s wait; 3 starts in regime 5.
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of every (regime, target) [default: 3, --quick: 1].
    #[arg(long)]
    pub repetitions: Option<usize>,
    /// Measured time per run [default: 5s, --quick: 1s].
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Unrecorded warmup per run [default: 1s, --quick: 200ms].
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Connections of regime 1 (closed loop).
    #[arg(long, default_value_t = 32)]
    pub saturated_connections: usize,
    /// Regimes 1-3: close each client connection after this many requests (1: a new
    /// connection per request, what clients that do not reuse connections cost); by
    /// default connections are kept alive.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests_per_conn: Option<u64>,
    /// Requests/s of regime 2 (open loop), over all its connections.
    #[arg(long, default_value_t = 11_000)]
    pub hop_rate: u64,
    /// Regime 2 opens this many new connections per second, one request each, instead
    /// of keep-alive requests at --hop-rate: with TLS targets, the CPU per handshake at a
    /// rate below saturation.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub conn_rate: Option<u64>,
    /// TLS targets: the generator resumes sessions (tickets) instead of a full handshake
    /// per connection; the summary counts resumed handshakes.
    #[arg(long)]
    pub tls_resume: bool,
    /// Connections of regime 2.
    #[arg(long, default_value_t = 16)]
    pub hop_connections: usize,
    /// Requests/s of regime 3 (one connection).
    #[arg(long, default_value_t = 2_000)]
    pub latency_rate: u64,
    /// Response body size of the started upstream (19 bytes: the performance issue's
    /// "small GET"; ignored with --upstream).
    #[arg(long, default_value_t = 19)]
    pub body_size: usize,
    /// CPUs of the proxy in regimes 1-2 (taskset list) [default: the second CPU].
    #[arg(long, value_name = "LIST")]
    pub proxy_cpus: Option<String>,
    /// CPUs of the generator in regimes 1-2 [default: the first CPU; the third when
    /// there are three or more].
    #[arg(long, value_name = "LIST")]
    pub load_cpus: Option<String>,
    /// CPUs of the upstream in regimes 1-2 [default: the first CPU].
    #[arg(long, value_name = "LIST")]
    pub upstream_cpus: Option<String>,
    /// The one CPU everything shares in regime 3 [default: the first CPU].
    #[arg(long, value_name = "LIST")]
    pub latency_cpus: Option<String>,
    /// Regime 4: idle keep-alive connections held open [default: 10000, --quick: 500].
    #[arg(long)]
    pub idle_connections: Option<usize>,
    /// Regime 4: connections of the burst [default: 1000, --quick: 100].
    #[arg(long)]
    pub burst_connections: Option<usize>,
    /// Regime 4: how long the burst runs [default: 3s, --quick: 1s].
    #[arg(long, value_parser = parse_duration)]
    pub burst: Option<Duration>,
    /// Regime 4: request body of the burst's requests (POST) in bytes; 0 sends GETs.
    #[arg(long, default_value_t = 0)]
    pub burst_body_size: usize,
    /// Regime 4: pause before each idle measurement, long enough for a proxy to settle
    /// (ringway's sweep gives a quiet worker's memory back within two seconds) [default:
    /// 3s, --quick: 500ms].
    #[arg(long, value_parser = parse_duration)]
    pub settle: Option<Duration>,
    /// Regime 4: time after the burst before RSS is compared with idle [default: 60s,
    /// --quick: 2s].
    #[arg(long, value_parser = parse_duration)]
    pub recovery_wait: Option<Duration>,
    /// Regime 5: starts per target [default: 9, --quick: 3].
    #[arg(long)]
    pub start_runs: Option<usize>,
    /// nginx binary.
    #[arg(long, default_value = "nginx")]
    pub nginx: PathBuf,
    /// HAProxy binary.
    #[arg(long, default_value = "haproxy")]
    pub haproxy: PathBuf,
}

/// The measurement regimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    Saturated,
    Hop,
    Latency,
    Memory,
    Start,
}

impl Regime {
    pub fn title(self) -> &'static str {
        match self {
            Regime::Saturated => "1. Saturated cost",
            Regime::Hop => "2. Hop cost at a fixed rate",
            Regime::Latency => "3. Added latency",
            Regime::Memory => "4. Memory",
            Regime::Start => "5. Start to ready",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Regime::Saturated => "saturated",
            Regime::Hop => "hop",
            Regime::Latency => "latency",
            Regime::Memory => "memory",
            Regime::Start => "start",
        }
    }

    fn from_number(n: u8) -> Option<Regime> {
        match n {
            1 => Some(Regime::Saturated),
            2 => Some(Regime::Hop),
            3 => Some(Regime::Latency),
            4 => Some(Regime::Memory),
            5 => Some(Regime::Start),
            _ => None,
        }
    }
}

/// Where each part runs (taskset CPU lists); `None` where pinning is off.
#[derive(Debug, Clone)]
struct Placement {
    upstream: Option<String>,
    load: Option<String>,
    proxy: Option<String>,
    latency: Option<String>,
}

fn placement(args: &CompareArgs, taskset: bool) -> Placement {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    cpus.sort_unstable();
    let cpu = |i: usize| cpus.get(i).or(cpus.first()).map(usize::to_string);
    let pick = |given: &Option<String>, default: Option<String>| {
        if taskset {
            given.clone().or(default)
        } else {
            None
        }
    };
    Placement {
        upstream: pick(&args.upstream_cpus, cpu(0)),
        load: pick(
            &args.load_cpus,
            if cpus.len() >= 3 { cpu(2) } else { cpu(0) },
        ),
        proxy: pick(&args.proxy_cpus, cpu(1)),
        latency: pick(&args.latency_cpus, cpu(0)),
    }
}

fn default_ringway() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("ringway")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("ringway"))
}

/// Runs the comparison and prints its tables.
pub fn compare(args: CompareArgs) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    if let Some(bad) = args
        .regimes
        .iter()
        .find(|&&r| Regime::from_number(r).is_none())
    {
        return Err(format!("unknown regime {bad} (1 to 5)"));
    }
    let reps = args
        .repetitions
        .unwrap_or(if args.quick { 1 } else { 3 })
        .max(1);
    let duration = args.duration.unwrap_or(if args.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    });
    let warmup = args.warmup.unwrap_or(if args.quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    });
    let taskset = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !taskset {
        eprintln!("compare: taskset not found: nothing is pinned");
    }
    let place = placement(&args, taskset);
    std::fs::create_dir_all(args.out.join("runs"))
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let work = std::env::temp_dir().join(format!("ringway-compare-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;

    let mut setup = Setup {
        upstream: "127.0.0.1:0".parse().map_err(|_| "bad address")?,
        ringway: args.ringway.clone().unwrap_or_else(default_ringway),
        baseline: args.baseline.clone(),
        ringway_config: args.ringway_config.clone().zip(args.ringway_addr),
        baseline_config: args.baseline_config.clone().zip(args.baseline_addr),
        headers: args.headers.clone(),
        nginx: args.nginx.clone(),
        haproxy: args.haproxy.clone(),
        dir: work.clone(),
        taskset,
        tls_files: None,
    };
    let mut wanted = Vec::new();
    for name in &args.targets {
        wanted.push(Target::parse(name)?);
    }
    if wanted.iter().any(|t| t.is_tls()) {
        setup.tls_files = Some(targets::make_certificate(&work)?);
    }
    install::install_missing(&wanted, &setup, !args.no_install);
    let mut targets = Vec::new();
    for (t, name) in wanted.into_iter().zip(&args.targets) {
        match targets::unavailable(t, &setup) {
            Some(reason) => eprintln!("compare: skipping {name}: {reason}"),
            None => targets.push(t),
        }
    }
    if !targets.contains(&Target::Direct) {
        targets.insert(0, Target::Direct);
    }

    // The upstream: given, or `serve` started here (and stopped at the end).
    let upstream = match args.upstream {
        Some(addr) => {
            setup.upstream = addr;
            None
        }
        None => {
            let port = targets::free_port()?;
            setup.upstream = SocketAddr::from(([127, 0, 0, 1], port));
            Some(start_upstream(
                &setup,
                &exe,
                place.upstream.as_deref(),
                args.body_size,
            )?)
        }
    };
    let upstream_pid = upstream.as_ref().and_then(Running::pid);
    let result = run_all(
        &args,
        &exe,
        &setup,
        &place,
        &targets,
        upstream_pid,
        reps,
        duration,
        warmup,
    );
    if let Some(up) = upstream {
        up.stop();
    }
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// `ringway-load serve` as a child, one worker, pinned.
fn start_upstream(
    setup: &Setup,
    exe: &Path,
    cpus: Option<&str>,
    body_size: usize,
) -> Result<Running, String> {
    let mut c = targets::pinned(setup, cpus, exe);
    c.args(["serve", "--workers", "1", "--body-size"])
        .arg(body_size.to_string())
        .arg("--listen")
        .arg(setup.upstream.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = c
        .spawn()
        .map_err(|e| format!("cannot start the upstream: {e}"))?;
    let running = Running::from_child(Target::Direct, setup.upstream, child);
    for _ in 0..250 {
        if targets::get_ok(setup.upstream, "/") {
            return Ok(running);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    running.stop();
    Err(format!("the upstream did not answer on {}", setup.upstream))
}

/// Moves a running process (all its threads) to `cpus`.
fn repin(pid: u32, cpus: Option<&str>) {
    if let Some(cpus) = cpus {
        let _ = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[allow(clippy::too_many_arguments)]
fn run_all(
    args: &CompareArgs,
    exe: &Path,
    setup: &Setup,
    place: &Placement,
    targets: &[Target],
    upstream_pid: Option<u32>,
    reps: usize,
    duration: Duration,
    warmup: Duration,
) -> Result<(), String> {
    let regimes: Vec<Regime> = args
        .regimes
        .iter()
        .filter_map(|&r| Regime::from_number(r))
        .collect();
    let mut sections = Vec::new();
    let mut others = Vec::new();
    let mut markdown = String::new();
    for regime in regimes {
        let (connections, rate, load, proxy) = match regime {
            Regime::Saturated => (args.saturated_connections, None, &place.load, &place.proxy),
            Regime::Hop => (
                args.hop_connections,
                Some(args.conn_rate.unwrap_or(args.hop_rate)),
                &place.load,
                &place.proxy,
            ),
            Regime::Latency => (1, Some(args.latency_rate), &place.latency, &place.latency),
            Regime::Memory | Regime::Start => {
                // An L4 forwarder holds an upstream connection per idle client
                // connection: its memory is not comparable, and it is not measured here.
                let proxies: Vec<Target> = targets
                    .iter()
                    .copied()
                    .filter(|t| {
                        ![Target::Direct, Target::HaproxyTcp, Target::UringForward].contains(t)
                    })
                    .collect();
                let (description, headers, rows) = if regime == Regime::Memory {
                    run_memory(args, exe, setup, &proxies, reps)
                } else {
                    run_start(args, setup, &proxies)
                };
                let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
                let table = summary::markdown(&headers, &rows);
                let text = format!("### {}\n\n{description}\n\n{table}\n", regime.title());
                println!("{text}");
                markdown.push_str(&text);
                others.push(summary::Section {
                    title: regime.title().to_string(),
                    description,
                    headers: headers.iter().map(|h| h.to_string()).collect(),
                    rows,
                });
                continue;
            }
        };
        if let Some(pid) = upstream_pid {
            let cpus = if regime == Regime::Latency {
                &place.latency
            } else {
                &place.upstream
            };
            repin(pid, cpus.as_deref());
        }
        let description = format!(
            "{}, {connections} connection(s){}, {:.1} s measured after {:.1} s warmup, {reps} \
             repetition(s); generator on CPUs {}, proxy on CPUs {}, upstream on CPUs {}",
            match (rate, args.conn_rate.filter(|_| regime == Regime::Hop)) {
                (_, Some(r)) => format!(
                    "open loop at {r} new connections/s, one request each{}",
                    if args.tls_resume {
                        ", TLS sessions resumed"
                    } else {
                        ", full TLS handshakes"
                    }
                ),
                (Some(r), None) => format!("open loop at {r} requests/s"),
                (None, None) => "closed loop".into(),
            },
            match args.requests_per_conn {
                Some(n) => format!(" each closed after {n} request(s)"),
                None => String::new(),
            },
            duration.as_secs_f64(),
            warmup.as_secs_f64(),
            load.as_deref().unwrap_or("any"),
            proxy.as_deref().unwrap_or("any"),
            if regime == Regime::Latency {
                place.latency.as_deref()
            } else {
                place.upstream.as_deref()
            }
            .unwrap_or("any"),
        );
        eprintln!("compare: {}: {description}", regime.title());
        let mut ms = Vec::new();
        for rep in 0..reps {
            for &target in targets {
                let json = args.out.join("runs").join(format!(
                    "{}-{}-{rep}.json",
                    regime.slug(),
                    target.name()
                ));
                let running = match targets::start(target, setup, proxy.as_deref()) {
                    Ok(running) => running,
                    Err(e) => {
                        // One proxy failing must not lose the others' measurements.
                        eprintln!("compare:   {} #{rep}: skipped: {e}", target.name());
                        continue;
                    }
                };
                let m = measure(
                    exe,
                    setup,
                    &running,
                    load.as_deref(),
                    Shape {
                        connections,
                        rate,
                        requests_per_conn: match args.conn_rate {
                            Some(_) if regime == Regime::Hop => Some(1),
                            _ => args.requests_per_conn,
                        },
                        duration,
                        warmup,
                        tls_resume: args.tls_resume,
                    },
                    rep,
                    (&json, regime == Regime::Latency),
                );
                running.stop();
                let m = m?;
                eprintln!(
                    "compare:   {} #{rep}: {:.0} requests/s, p50 {}, p99.9 {}, {} errors",
                    target.name(),
                    m.rate,
                    crate::report::fmt_us(m.latency.value_at_percentile(50.0) as f64),
                    crate::report::fmt_us(m.latency.value_at_percentile(99.9) as f64),
                    m.errors
                );
                ms.push(m);
            }
        }
        let (headers, rows) = summary::table_rows(regime, &ms);
        let table = summary::markdown(&headers, &rows);
        let text = format!("### {}\n\n{description}\n\n{table}\n", regime.title());
        println!("{text}");
        markdown.push_str(&text);
        if regime == Regime::Latency || !args.regimes.contains(&3) {
            // (Regimes 4 and 5 have no latency to plot.)
            let svg =
                summary::latency_plot(&ms, &format!("{}: latency by percentile", regime.title()));
            crate::output::write_file(&args.out.join("latency.svg"), svg.as_bytes())?;
        }
        sections.push((regime, description, ms));
    }
    let setup_rows = vec![
        ("upstream".to_string(), setup.upstream.to_string()),
        ("ringway".into(), setup.ringway.display().to_string()),
        (
            "CPUs".into(),
            std::thread::available_parallelism().map_or("?".into(), |n| n.to_string()),
        ),
        (
            "targets".into(),
            targets
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    crate::output::write_file(
        &args.out.join("compare.html"),
        summary::page(&sections, &others, &setup_rows).as_bytes(),
    )?;
    crate::output::write_file(&args.out.join("summary.md"), markdown.as_bytes())?;
    eprintln!("compare: results in {}", args.out.display());
    Ok(())
}

/// Regime 4 over every proxy, alternating, `reps` times: (description, headers, rows).
fn run_memory(
    args: &CompareArgs,
    exe: &Path,
    setup: &Setup,
    proxies: &[Target],
    reps: usize,
) -> (String, Vec<String>, Vec<Vec<String>>) {
    let mut plan = memory::MemoryPlan {
        idle_connections: args
            .idle_connections
            .unwrap_or(if args.quick { 500 } else { 10_000 }),
        burst_connections: args
            .burst_connections
            .unwrap_or(if args.quick { 100 } else { 1000 }),
        burst: args.burst.unwrap_or(if args.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(3)
        }),
        burst_body_size: args.burst_body_size,
        settle: args.settle.unwrap_or(if args.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3)
        }),
        recovery_wait: args.recovery_wait.unwrap_or(if args.quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(60)
        }),
        open_files: 1024,
    };
    // This process holds every idle connection and the proxies (its children) inherit its
    // limits: each needs a descriptor per connection and one per upstream connection.
    // Past the hard limit only root may go (HAProxy will not start below what its
    // `maxconn` needs).
    let want = 2 * (plan.idle_connections + plan.burst_connections) as u64 + 4096;
    let files = match ringway::process::ensure_nofile_limit(want) {
        Ok(l) => l.now,
        Err(e) => {
            eprintln!("compare: {e}");
            ringway::process::raise_nofile_limit().map_or(1024, |l| l.now)
        }
    };
    let room = usize::try_from(files)
        .unwrap_or(usize::MAX)
        .saturating_sub(256);
    if plan.idle_connections > room {
        eprintln!(
            "compare: the open-file limit ({files}, raised to the hard limit) leaves room for {room} \
             idle connections, not {}; measuring with {room}",
            plan.idle_connections
        );
        plan.idle_connections = room;
    }
    plan.open_files = files;
    let cap = plan.profile().max_connections;
    if cap < plan.idle_connections + 1024 {
        eprintln!(
            "compare: the open-file limit ({files}) caps nginx's worker_connections and \
             HAProxy's maxconn at {cap}"
        );
    }
    let mut description = format!("{}, {reps} repetition(s)", plan.description());
    eprintln!("compare: {}: {description}", Regime::Memory.title());
    let mut ms = Vec::new();
    for rep in 0..reps {
        for &target in proxies {
            let json = args
                .out
                .join("runs")
                .join(format!("memory-burst-{}-{rep}.json", target.name()));
            match memory::measure(exe, setup, target, &plan, &json) {
                Ok(m) => {
                    eprintln!(
                        "compare:   {} #{rep}: idle {} KiB, {:.0} B per idle connection, {} \
                         KiB {:.0} s after the burst ({:+.1}%)",
                        target.name(),
                        m.idle.rss_kib,
                        m.per_connection(),
                        m.after_burst.rss_kib,
                        plan.recovery_wait.as_secs_f64(),
                        m.recovery() * 100.0
                    );
                    ms.push(m);
                }
                Err(e) => eprintln!("compare:   {} #{rep}: skipped: {e}", target.name()),
            }
        }
    }
    if ms.iter().any(|m| m.connections < plan.idle_connections) {
        description.push_str(" (fewer idle connections where the table says so)");
    }
    let (headers, rows) = memory::memory_rows(&ms, plan.burst, plan.recovery_wait);
    (description, headers, rows)
}

/// Regime 5: every proxy started `--start-runs` times, alternating.
fn run_start(
    args: &CompareArgs,
    setup: &Setup,
    proxies: &[Target],
) -> (String, Vec<String>, Vec<Vec<String>>) {
    let runs = args
        .start_runs
        .unwrap_or(if args.quick { 3 } else { 9 })
        .max(1);
    let profile = targets::Profile {
        workers: 2,
        max_connections: 4096,
        quickstart: true,
    };
    let description = format!(
        "2 workers each (ringway on config/quickstart.yaml), unpinned; spawn to the first \
         ready answer, polled every 250 µs; {runs} starts per target, alternating"
    );
    eprintln!("compare: {}: {description}", Regime::Start.title());
    let mut times = Vec::new();
    for run in 0..runs {
        for &target in proxies {
            match memory::time_start(setup, target, &profile) {
                Ok((took, probe)) => {
                    eprintln!(
                        "compare:   {} #{run}: ready after {:.1} ms",
                        target.name(),
                        took.as_secs_f64() * 1e3
                    );
                    times.push((target, took, probe));
                }
                Err(e) => eprintln!("compare:   {} #{run}: skipped: {e}", target.name()),
            }
        }
    }
    let (headers, rows) = memory::start_rows(&times);
    (description, headers, rows)
}

/// The load one measurement puts on a target.
#[derive(Debug, Clone, Copy)]
struct Shape {
    connections: usize,
    /// Open loop at this many requests/s; closed loop without.
    rate: Option<u64>,
    /// Each client connection closes after this many requests (kept alive without).
    requests_per_conn: Option<u64>,
    duration: Duration,
    warmup: Duration,
    /// TLS targets: resume sessions.
    tls_resume: bool,
}

/// One measurement: the generator as a child, the CPU sampler around it.
fn measure(
    exe: &Path,
    setup: &Setup,
    running: &Running,
    load_cpus: Option<&str>,
    shape: Shape,
    repetition: usize,
    (json, from_actual_send): (&Path, bool),
) -> Result<Measurement, String> {
    let Shape {
        connections,
        rate,
        requests_per_conn,
        duration,
        warmup,
        tls_resume,
    } = shape;
    let pids = running.pid().map(cpu::process_tree).unwrap_or_default();
    let threads = load_cpus.map_or(1, |l| l.split(',').count().max(1));
    let mut c = targets::pinned(setup, load_cpus, exe);
    c.args(["run", "-q", "-t", &threads.to_string()])
        .args(["-c", &connections.to_string()])
        .args(["-d", &format!("{}ms", duration.as_millis())])
        .args(["--warmup", &format!("{}ms", warmup.as_millis())])
        .arg("--json")
        .arg(json);
    for header in &setup.headers {
        c.args(["-H", header]);
    }
    if running.target.is_tls() {
        c.arg("-k");
        if tls_resume {
            c.arg("--tls-resume");
        }
        c.arg(format!("https://{}/", running.addr));
    } else {
        c.arg(format!("http://{}/", running.addr));
    }
    if let Some(rate) = rate {
        c.args(["-R", &rate.to_string()]);
    }
    if let Some(n) = requests_per_conn {
        c.args(["--requests-per-conn", &n.to_string()]);
    }
    let sampler = cpu::Sampler::start(pids.clone());
    let out = c
        .output()
        .map_err(|e| format!("cannot start the generator: {e}"))?;
    let samples = sampler.stop();
    if !out.status.success() {
        return Err(format!(
            "the generator failed against {}: {}",
            running.target.name(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(json)
        .map_err(|e| format!("cannot read {}: {e}", json.display()))?;
    let r = crate::output::fortio::from_json(&text)?;
    let x = &r.ringway_load;
    // Regime 3 (one connection at a moderate rate) has no queueing for coordinated-
    // omission correction to catch, while the open-loop pacer's 1 ms timer ticks would
    // add up to a millisecond of scheduling slack to every corrected sample: there the
    // latency from the actual send is the hop's latency.
    let latency = if from_actual_send {
        crate::output::fortio::decode(&x.hdr.uncorrected)?
    } else {
        crate::output::fortio::decode(&x.hdr.latency)?
    };
    let n = x.completed.max(1) as f64;
    let cpu = cpu::cpu_between(&samples, x.measure_start, x.measure_end);
    if running.target.is_tls() && tls_resume {
        eprintln!(
            "compare:   {}: {} of {} handshakes resumed",
            running.target.name(),
            x.tls_resumed,
            x.connections_opened
        );
    }
    Ok(Measurement {
        target: running.target,
        repetition,
        rate: r.actual_qps,
        errors: r.errors_duration_histogram.count,
        latency,
        proxy_cpu_us: cpu.filter(|_| !pids.is_empty()).map(|c| c.tree / n),
        proxy_system_us: cpu.filter(|_| !pids.is_empty()).map(|c| c.tree_system / n),
        machine_cpu_us: cpu.map(|c| c.machine / n),
        json: json.to_path_buf(),
    })
}
