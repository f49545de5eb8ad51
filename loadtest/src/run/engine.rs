//! Starts the generator threads, shows progress, merges their results.
//!
//! One monoio runtime per thread (io_uring with `SINGLE_ISSUER | DEFER_TASKRUN` through
//! `ringway::driver`, epoll where io_uring is refused), each with its share of the
//! connections (connection `i` goes to thread `i % threads`) and its own histograms and
//! counters: no state is shared between threads while the run goes. Each thread returns
//! its [`ThreadStats`] through its join handle; the main thread merges them. Once a
//! second each thread also sends a snapshot (counts and a clone of its latency histogram)
//! over a channel for the progress line; that is the only cross-thread traffic.
//!
//! All threads share one timeline: the run starts a little after the threads are
//! spawned (so thread start-up is not counted as lateness), the warmup runs unrecorded,
//! and the measured phase ends at the same instant for every thread. The main thread
//! samples the process's CPU time at the start and the end of the measured phase.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;

use super::conn::{drive, Target, ThreadCtx, ThreadStats};
use super::{Counts, CpuUsage, Pin, RunParams, RunResult};
use crate::histo::Histograms;
use crate::http::render;
use crate::report;

/// Time given to threads to start before the timeline begins.
const STARTUP: Duration = Duration::from_millis(100);
/// The progress line for second `n` waits this long for every thread's snapshot.
const PROGRESS_GRACE: Duration = Duration::from_millis(50);

/// A thread's progress, sent once a second.
#[derive(Debug)]
pub struct Snapshot {
    pub thread: usize,
    pub counts: Counts,
    pub latency: Histogram<u64>,
}

/// Runs the load described by `params` and returns the merged result.
pub fn run(params: RunParams) -> Result<RunResult, String> {
    if params.urls.is_empty() {
        return Err("no URL to load".into());
    }
    if params.connections == 0 {
        return Err("at least one connection is needed".into());
    }
    if params.rate == Some(0) {
        return Err("the rate must be at least 1 request per second".into());
    }
    let (driver, note) = ringway::driver::resolve(params.driver)?;

    let threads = params.threads.clamp(1, params.connections);
    let (cpus, mut placement) = plan_cpus(params.pin, threads);
    placement.push_str(&format!(", {driver}"));
    if let Some(note) = note {
        placement.push_str(&format!(" ({note})"));
    }
    let tls = if params.urls.iter().any(|u| u.tls) {
        Some(super::tls::client_config(&params.tls)?)
    } else {
        None
    };
    let mut targets: Vec<Target> = Vec::with_capacity(params.urls.len());
    for (i, url) in params.urls.iter().enumerate() {
        let rendered = render(url, &params.request);
        let name = if url.tls {
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| format!("{}: {e} (TLS server name)", url.host))?;
            Some(name)
        } else {
            None
        };
        let same =
            |u: &crate::http::Url| u.addr == url.addr && u.tls == url.tls && u.host == url.host;
        let key = params.urls[..i].iter().position(same).unwrap_or(i);
        targets.push(Target {
            addr: url.addr,
            tls: name,
            keep_alive: Bytes::from(rendered.keep_alive),
            close: Bytes::from(rendered.close),
            is_head: rendered.is_head,
            key,
        });
    }

    let started = SystemTime::now();
    let start = Instant::now() + STARTUP;
    let measure_start = start + params.warmup;
    let end = measure_start + params.duration;
    let (tx, rx) = mpsc::channel::<Snapshot>();

    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let cpu = cpus.as_ref().map(|cpus| cpus[t % cpus.len()]);
        let mine: Vec<u64> = (t..params.connections)
            .step_by(threads)
            .map(|i| i as u64)
            .collect();
        let (targets, tls) = (targets.clone(), tls.clone());
        let (rate, connections) = (params.rate, params.connections as u64);
        let (timeout, rpc) = (params.timeout, params.requests_per_connection);
        let tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("ringway-load-{t}"))
            .spawn(move || {
                if let Some(id) = cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                ringway::driver::block_on(driver, async move {
                    let ctx = Rc::new(ThreadCtx {
                        targets: targets.into(),
                        tls,
                        rate,
                        connections,
                        start,
                        measure_start,
                        end,
                        timeout,
                        requests_per_connection: rpc,
                        stats: RefCell::new(ThreadStats::default()),
                    });
                    thread_main(ctx, mine, t, tx).await
                })
            })
            .map_err(|e| format!("cannot start generator thread {t}: {e}"))?;
        handles.push(handle);
    }
    drop(tx);

    let cpu = watch(&params, &rx, threads, start, measure_start, end);

    let mut histograms = Histograms::default();
    let mut counts = Counts::default();
    let mut first: [Option<String>; 5] = Default::default();
    for (t, handle) in handles.into_iter().enumerate() {
        let stats = handle
            .join()
            .map_err(|_| format!("generator thread {t} panicked"))?
            .map_err(|e| format!("generator thread {t} failed: {e}"))?;
        histograms.merge(&stats.histograms);
        counts.add(&stats.counts);
        for (slot, message) in first.iter_mut().zip(stats.first_errors) {
            if slot.is_none() {
                *slot = message;
            }
        }
    }
    let first_errors = ["connect", "timeout", "read", "write", "malformed"]
        .iter()
        .zip(first)
        .filter_map(|(kind, m)| m.map(|m| format!("{kind}: {m}")))
        .collect();
    Ok(RunResult {
        measure_started: started + STARTUP + params.warmup,
        ended: started + STARTUP + params.warmup + params.duration,
        started,
        measured: params.duration,
        params,
        histograms,
        counts,
        cpu,
        placement,
        first_errors,
    })
}

/// Decides pinning like ringway's workers: automatic pinning only when the affinity mask
/// has exactly as many CPUs as threads, so two generators on one machine never pile onto
/// the same first CPUs.
fn plan_cpus(pin: Pin, threads: usize) -> (Option<Vec<usize>>, String) {
    let mut allowed: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    allowed.sort_unstable();
    let list = |cpus: &[usize]| {
        cpus.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    match pin {
        Pin::Off => (None, format!("{threads} threads, not pinned (--pin off)")),
        Pin::Auto if allowed.len() == threads => {
            let s = format!("{threads} threads pinned to CPUs {}", list(&allowed));
            (Some(allowed), s)
        }
        Pin::Auto => (
            None,
            format!(
                "{threads} threads, not pinned ({} CPUs in the affinity mask)",
                allowed.len()
            ),
        ),
        Pin::On if allowed.is_empty() => (
            None,
            format!("{threads} threads, not pinned (affinity mask unreadable)"),
        ),
        Pin::On => {
            let cpus: Vec<usize> = (0..threads).map(|i| allowed[i % allowed.len()]).collect();
            let s = format!("{threads} threads pinned to CPUs {}", list(&cpus));
            (Some(cpus), s)
        }
    }
}

/// One generator thread: its connections, its progress ticks, until the end.
async fn thread_main(
    ctx: Rc<ThreadCtx>,
    connections: Vec<u64>,
    thread: usize,
    tx: mpsc::Sender<Snapshot>,
) -> ThreadStats {
    for i in connections {
        monoio::spawn(drive(Rc::clone(&ctx), i));
    }
    {
        let ctx = Rc::clone(&ctx);
        monoio::spawn(async move {
            let mut next = ctx.start;
            loop {
                next += Duration::from_secs(1);
                let now = Instant::now();
                if next > now {
                    monoio::time::sleep(next - now).await;
                }
                let stats = ctx.stats.borrow();
                let snapshot = Snapshot {
                    thread,
                    counts: stats.counts,
                    latency: stats.histograms.latency.clone(),
                };
                drop(stats);
                if tx.send(snapshot).is_err() || next >= ctx.end {
                    break;
                }
            }
        });
    }
    let now = Instant::now();
    if ctx.end > now {
        monoio::time::sleep(ctx.end - now).await;
    }
    // Requests still in flight are dropped uncounted (see conn.rs): the runtime drops
    // the connection tasks when this future returns.
    let stats = std::mem::take(&mut *ctx.stats.borrow_mut());
    stats
}

/// The main thread during the run: progress lines and the CPU samples.
fn watch(
    params: &RunParams,
    rx: &mpsc::Receiver<Snapshot>,
    threads: usize,
    start: Instant,
    measure_start: Instant,
    end: Instant,
) -> Option<CpuUsage> {
    let mut latest: Vec<Option<Snapshot>> = (0..threads).map(|_| None).collect();
    let mut cpu_start = None;
    let mut next_line = start + Duration::from_secs(1);
    let mut last_completed = 0;
    let mut progress = report::Progress::new(params.progress);
    loop {
        let now = Instant::now();
        if cpu_start.is_none() && now >= measure_start {
            cpu_start = crate::sys::cpu_times();
        }
        if now >= end {
            break;
        }
        let mut wake = (next_line + PROGRESS_GRACE).min(end);
        if cpu_start.is_none() {
            wake = wake.min(measure_start);
        }
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(snapshot) => {
                let t = snapshot.thread;
                if let Some(slot) = latest.get_mut(t) {
                    *slot = Some(snapshot);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Every thread ended early (start-up failure); join reports why.
                std::thread::sleep(end.saturating_duration_since(Instant::now()));
            }
        }
        if Instant::now() >= next_line + PROGRESS_GRACE {
            let mut counts = Counts::default();
            let mut latency = crate::histo::new_histogram();
            for s in latest.iter().flatten() {
                counts.add(&s.counts);
                let _ = latency.add(&s.latency);
            }
            let elapsed = next_line - start;
            let warming = next_line <= measure_start;
            let in_last_second = counts.completed.saturating_sub(last_completed);
            progress.line(elapsed, in_last_second, &counts, &latency, warming);
            last_completed = counts.completed;
            next_line += Duration::from_secs(1);
        }
    }
    progress.finish();
    let (u1, s1) = crate::sys::cpu_times()?;
    let (u0, s0) = cpu_start?;
    Some(CpuUsage {
        user: u1.saturating_sub(u0),
        system: s1.saturating_sub(s0),
    })
}
