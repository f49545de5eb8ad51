//! Human output: the progress line during the run and the summary after it.
//!
//! The summary follows `wrk2 --latency`: the percentile list, then the detailed
//! spectrum (hdrhistogram's quantile iteration, one tick per half distance, as wrk2
//! prints it), so the two tools' outputs compare side by side. Unlike wrk2 it also
//! prints the uncorrected and late-start percentiles and the generator's own CPU per
//! request, so a run whose generator was the bottleneck says so. Other formats (JSON, HDR
//! log) will be built from the same [`RunResult`].

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::run::{Counts, RunResult};

/// Formats microseconds with a unit that keeps three or four digits.
pub fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// The once-a-second progress line on stderr: rewritten in place on a terminal, one
/// plain line per second otherwise (logs, CI).
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    tty: bool,
    wrote: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            wrote: false,
        }
    }

    /// One line: elapsed time, completions in the last second, errors and p99 so far.
    pub fn line(
        &mut self,
        elapsed: Duration,
        last_second: u64,
        counts: &Counts,
        latency: &Histogram<u64>,
        warming: bool,
    ) {
        if !self.enabled {
            return;
        }
        let p99 = if latency.is_empty() {
            "-".to_string()
        } else {
            fmt_us(latency.value_at_quantile(0.99) as f64)
        };
        let phase = if warming { " (warmup)" } else { "" };
        let line = format!(
            "[{:>4}s]{phase} {last_second} req/s, {} errors, p99 {p99}",
            elapsed.as_secs(),
            counts.errors.total(),
        );
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = if self.tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.wrote = true;
    }

    /// Ends a rewritten line so the summary starts on its own.
    pub fn finish(&mut self) {
        if self.tty && self.wrote {
            eprintln!();
        }
    }
}

/// The percentiles wrk2 lists.
const PERCENTILES: [f64; 8] = [50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0];

fn percentile_list(out: &mut String, h: &Histogram<u64>) {
    for p in PERCENTILES {
        let _ = writeln!(
            out,
            " {p:>7.3}% {:>10}",
            fmt_us(h.value_at_percentile(p) as f64)
        );
    }
}

fn short_percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    [50.0, 99.0, 99.9]
        .iter()
        .map(|&p| format!("p{p} {}", fmt_us(h.value_at_percentile(p) as f64)))
        .chain(std::iter::once(format!("max {}", fmt_us(h.max() as f64))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The detailed spectrum, in milliseconds like wrk2's.
fn spectrum(out: &mut String, h: &Histogram<u64>) {
    let _ = writeln!(out, "  Detailed Percentile spectrum:");
    let _ = writeln!(
        out,
        "       Value   Percentile   TotalCount 1/(1-Percentile)\n"
    );
    let mut total = 0;
    for v in h.iter_quantiles(1) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inverse = if q < 1.0 {
            format!("{:12.2}", 1.0 / (1.0 - q))
        } else {
            "         inf".into()
        };
        let _ = writeln!(
            out,
            "{:12.3} {:12.6} {:12} {inverse}",
            v.value_iterated_to() as f64 / 1e3,
            q,
            total
        );
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1e3,
        h.stdev() / 1e3
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / 1e3,
        h.len()
    );
}

/// The summary printed after a run.
pub fn summary(r: &RunResult) -> String {
    let p = &r.params;
    let mut out = String::new();
    let urls: Vec<String> = p
        .urls
        .iter()
        .map(|u| format!("http://{}{}", u.authority, u.path))
        .collect();
    let _ = writeln!(
        out,
        "Running {:.1}s test @ {}",
        p.duration.as_secs_f64(),
        urls.join(" ")
    );
    let _ = writeln!(out, "  {} connections, {}", p.connections, r.placement);
    match p.rate {
        Some(rate) => {
            let _ = writeln!(
                out,
                "  open loop at {rate} requests/s; latency from each request's intended send \
                 time (corrected for coordinated omission)"
            );
        }
        None => {
            let _ = writeln!(out, "  closed loop; latency from each request's send");
        }
    }
    if let Some(n) = p.requests_per_connection {
        let _ = writeln!(out, "  {n} request(s) per connection");
    }
    if !p.warmup.is_zero() {
        let _ = writeln!(
            out,
            "  after {:.1}s of unrecorded warmup",
            p.warmup.as_secs_f64()
        );
    }
    let h = &r.histograms.latency;
    let _ = writeln!(out);
    if h.is_empty() {
        let _ = writeln!(out, "  no response was recorded");
    } else {
        let _ = writeln!(
            out,
            "  Latency     mean {}  stdev {}  max {}",
            fmt_us(h.mean()),
            fmt_us(h.stdev()),
            fmt_us(h.max() as f64)
        );
        let _ = writeln!(
            out,
            "  Latency Distribution (HdrHistogram - Recorded Latency)"
        );
        percentile_list(&mut out, h);
        let _ = writeln!(out);
        spectrum(&mut out, h);
    }
    let _ = writeln!(out);
    let success = &r.histograms.success;
    if !success.is_empty() {
        // The 2xx answers apart (in a rate-limited run, the allowed requests).
        let _ = writeln!(
            out,
            "  2xx only: {}",
            [50.0, 90.0, 99.0]
                .iter()
                .map(|&q| format!("p{q} {}", fmt_us(success.value_at_percentile(q) as f64)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if p.rate.is_some() {
        let _ = writeln!(
            out,
            "  Uncorrected latency (from actual send): {}",
            short_percentiles(&r.histograms.uncorrected)
        );
        let _ = writeln!(
            out,
            "  Late start (actual - intended send):    {}",
            short_percentiles(&r.histograms.late_start)
        );
    }
    let c = &r.counts;
    let _ = writeln!(
        out,
        "  {} requests in {:.2}s, {} connections opened",
        c.completed,
        r.measured.as_secs_f64(),
        c.connections_opened
    );
    if c.tls_resumed > 0 {
        let share = 100.0 * c.tls_resumed as f64 / c.connections_opened.max(1) as f64;
        let _ = writeln!(
            out,
            "  TLS: {} of {} handshakes resumed ({share:.2}%)",
            c.tls_resumed, c.connections_opened
        );
    }
    let e = &c.errors;
    let _ = writeln!(
        out,
        "  Errors: connect {}, timeout {}, read {}, write {}, malformed {}",
        e.connect, e.timeout, e.read, e.write, e.malformed
    );
    for first in &r.first_errors {
        let _ = writeln!(out, "    first {first}");
    }
    let s = &c.status;
    let _ = writeln!(
        out,
        "  Status: 1xx {}, 2xx {}, 3xx {}, 4xx {}, 5xx {}",
        s[0], s[1], s[2], s[3], s[4]
    );
    match p.rate {
        Some(rate) => {
            let _ = writeln!(
                out,
                "Requests/sec: {:10.2} (target {rate}, {:.2}%)",
                r.rate(),
                r.rate() * 100.0 / rate as f64
            );
        }
        None => {
            let _ = writeln!(out, "Requests/sec: {:10.2}", r.rate());
        }
    }
    match r.cpu_per_request_us() {
        Some((total, user, system)) => {
            let _ = writeln!(
                out,
                "cpu: {total:.2} µs/request (user {user:.2}, system {system:.2})"
            );
        }
        None => {
            let _ = writeln!(out, "cpu: unknown (/proc/self/stat unreadable)");
        }
    }
    out
}
