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
//!
//! Targets run one after another and alternate within each repetition (direct, ringway,
//! …, direct, ringway, …), so drift of a noisy machine spreads over all of them; each
//! measurement starts its proxy fresh and stops it after. The generator is this binary's
//! `run --json`, a child process pinned like the others, and its JSON is kept in
//! `--out DIR` with one HTML page plotting every target. Modules: `targets` (start, stop,
//! configs), `cpu` (/proc sampling), `summary` (tables, page).

pub mod cpu;
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
    /// Use this upstream instead of starting `ringway-load serve`.
    #[arg(long, value_name = "ADDR")]
    pub upstream: Option<SocketAddr>,
    /// Targets, in the order they alternate; nginx and haproxy are skipped with a note
    /// when not installed.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,ringway,ringway-epoll,nginx,haproxy"
    )]
    pub targets: Vec<String>,
    /// Regimes to run: 1 saturated, 2 hop cost, 3 added latency.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub regimes: Vec<u8>,
    /// Results: every run's JSON, compare.html, the tables (summary.md), latency.svg.
    #[arg(long, value_name = "DIR", default_value = "compare-results")]
    pub out: PathBuf,
    /// Short mode for tests: 1 s runs, 1 repetition, short warmup.
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
    /// Requests/s of regime 2 (open loop), over all its connections.
    #[arg(long, default_value_t = 11_000)]
    pub hop_rate: u64,
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
    /// nginx binary.
    #[arg(long, default_value = "nginx")]
    pub nginx: PathBuf,
    /// HAProxy binary.
    #[arg(long, default_value = "haproxy")]
    pub haproxy: PathBuf,
}

/// The three measurement regimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    Saturated,
    Hop,
    Latency,
}

impl Regime {
    pub fn title(self) -> &'static str {
        match self {
            Regime::Saturated => "1. Saturated cost",
            Regime::Hop => "2. Hop cost at a fixed rate",
            Regime::Latency => "3. Added latency",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Regime::Saturated => "saturated",
            Regime::Hop => "hop",
            Regime::Latency => "latency",
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
        nginx: args.nginx.clone(),
        haproxy: args.haproxy.clone(),
        dir: work.clone(),
        taskset,
    };
    let mut targets = Vec::new();
    for name in &args.targets {
        let t = Target::parse(name)?;
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
        if targets::get_ok(setup.upstream) {
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
        .filter_map(|r| match r {
            1 => Some(Regime::Saturated),
            2 => Some(Regime::Hop),
            3 => Some(Regime::Latency),
            _ => None,
        })
        .collect();
    let mut sections = Vec::new();
    let mut markdown = String::new();
    for regime in regimes {
        let (connections, rate, load, proxy) = match regime {
            Regime::Saturated => (args.saturated_connections, None, &place.load, &place.proxy),
            Regime::Hop => (
                args.hop_connections,
                Some(args.hop_rate),
                &place.load,
                &place.proxy,
            ),
            Regime::Latency => (1, Some(args.latency_rate), &place.latency, &place.latency),
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
            "{}, {connections} connection(s), {:.1} s measured after {:.1} s warmup, {reps} \
             repetition(s); generator on CPUs {}, proxy on CPUs {}, upstream on CPUs {}",
            match rate {
                Some(r) => format!("open loop at {r} requests/s"),
                None => "closed loop".into(),
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
                    (connections, rate, duration, warmup),
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
        summary::page(&sections, &setup_rows).as_bytes(),
    )?;
    crate::output::write_file(&args.out.join("summary.md"), markdown.as_bytes())?;
    eprintln!("compare: results in {}", args.out.display());
    Ok(())
}

/// One measurement: the generator as a child, the CPU sampler around it.
fn measure(
    exe: &Path,
    setup: &Setup,
    running: &Running,
    load_cpus: Option<&str>,
    (connections, rate, duration, warmup): (usize, Option<u64>, Duration, Duration),
    repetition: usize,
    (json, from_actual_send): (&Path, bool),
) -> Result<Measurement, String> {
    let pids = running.pid().map(cpu::process_tree).unwrap_or_default();
    let threads = load_cpus.map_or(1, |l| l.split(',').count().max(1));
    let mut c = targets::pinned(setup, load_cpus, exe);
    c.args(["run", "-q", "-t", &threads.to_string()])
        .args(["-c", &connections.to_string()])
        .args(["-d", &format!("{}ms", duration.as_millis())])
        .args(["--warmup", &format!("{}ms", warmup.as_millis())])
        .arg("--json")
        .arg(json)
        .arg(format!("http://{}/", running.addr));
    if let Some(rate) = rate {
        c.args(["-R", &rate.to_string()]);
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
    Ok(Measurement {
        target: running.target,
        repetition,
        rate: r.actual_qps,
        errors: r.errors_duration_histogram.count,
        latency,
        proxy_cpu_us: cpu.filter(|_| !pids.is_empty()).map(|(_, tree)| tree / n),
        machine_cpu_us: cpu.map(|(machine, _)| machine / n),
        json: json.to_path_buf(),
    })
}
