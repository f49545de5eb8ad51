//! The load engine: parameters in, a [`RunResult`] out.
//!
//! `engine` starts one monoio runtime per thread and merges what they return;
//! `conn` is one connection's loop (closed or open); `schedule` is the open-loop
//! timeline; `tls` is rustls over the connection's stream for `https://` targets. The result keeps the merged histograms and every count, so reports in other
//! formats (JSON, HDR log, HTML: later issues) come from the same struct.

pub mod conn;
pub mod engine;
pub mod schedule;
pub mod tls;

use std::time::{Duration, SystemTime};

use crate::histo::Histograms;
use crate::http::{RequestSpec, Url};

pub use engine::run;
pub use ringway::config::DriverChoice;
pub use tls::{client_config as tls_client_config, TlsOptions};

/// Whether to pin generator threads to CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pin {
    /// Pin only when the affinity mask has exactly as many CPUs as threads (what
    /// `taskset -c 2,3 ringway-load --threads 2` gives); never onto "the first CPUs".
    #[default]
    Auto,
    /// Pin to the CPUs of the affinity mask, in order.
    On,
    Off,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunParams {
    /// Requests rotate over these (at least one).
    pub urls: Vec<Url>,
    pub request: RequestSpec,
    pub connections: usize,
    pub threads: usize,
    /// Open loop at this many requests per second over all connections; `None` is closed
    /// loop.
    pub rate: Option<u64>,
    pub duration: Duration,
    /// Run, but record nothing, for this long first.
    pub warmup: Duration,
    /// Per request, from its send (connect included when it opens a connection).
    pub timeout: Duration,
    /// Close a connection after this many requests (1: a new connection per request).
    pub requests_per_connection: Option<u64>,
    pub pin: Pin,
    /// Print a progress line each second to stderr.
    pub progress: bool,
    /// The I/O driver of the generator threads: io_uring where the kernel allows it.
    pub driver: DriverChoice,
    /// Certificate checks for `https://` URLs.
    pub tls: TlsOptions,
}

impl RunParams {
    /// Defaults for a closed-loop run against `urls`.
    pub fn new(urls: Vec<Url>) -> RunParams {
        RunParams {
            urls,
            request: RequestSpec {
                method: "GET".into(),
                headers: Vec::new(),
                body_size: 0,
            },
            connections: 8,
            threads: 1,
            rate: None,
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(2),
            requests_per_connection: None,
            pin: Pin::Auto,
            progress: false,
            driver: DriverChoice::Auto,
            tls: TlsOptions::default(),
        }
    }
}

/// Errors by kind. A request counts at most one error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Errors {
    /// The connection could not be opened (refused, unreachable).
    pub connect: u64,
    /// No complete answer within `--timeout`.
    pub timeout: u64,
    /// The connection was reset or closed before the answer was complete.
    pub read: u64,
    /// The request could not be written (reset, broken pipe).
    pub write: u64,
    /// The answer broke HTTP/1.1 framing or syntax.
    pub malformed: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.read + self.write + self.malformed
    }

    pub fn add(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.timeout += other.timeout;
        self.read += other.read;
        self.write += other.write;
        self.malformed += other.malformed;
    }
}

/// Counts of the measured phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Complete responses, any status.
    pub completed: u64,
    /// Responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub status: [u64; 5],
    pub errors: Errors,
    /// Connections opened.
    pub connections_opened: u64,
    /// Of those, TLS connections whose handshake resumed a session (`--tls-resume`).
    pub tls_resumed: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.completed += other.completed;
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a += b;
        }
        self.errors.add(&other.errors);
        self.connections_opened += other.connections_opened;
        self.tls_resumed += other.tls_resumed;
    }
}

/// The generator's own CPU time over the measured phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUsage {
    pub user: Duration,
    pub system: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub params: RunParams,
    /// Wall-clock start of the run (warmup included), of the measured phase, and its end.
    pub started: SystemTime,
    pub measure_started: SystemTime,
    pub ended: SystemTime,
    /// Length of the measured phase.
    pub measured: Duration,
    pub histograms: Histograms,
    pub counts: Counts,
    /// `None` where /proc could not be read.
    pub cpu: Option<CpuUsage>,
    /// How threads were placed, e.g. "pinned to CPUs 2,3" (said in the summary).
    pub placement: String,
    /// The first message of each error kind seen, e.g. `connect: TLS: invalid peer
    /// certificate: UnknownIssuer`.
    pub first_errors: Vec<String>,
}

impl RunResult {
    /// Completed requests per second of the measured phase.
    pub fn rate(&self) -> f64 {
        self.counts.completed as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    /// Generator CPU per completed request, in microseconds: (total, user, system).
    pub fn cpu_per_request_us(&self) -> Option<(f64, f64, f64)> {
        let cpu = self.cpu?;
        let n = self.counts.completed.max(1) as f64;
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
        Some((us(cpu.user + cpu.system), us(cpu.user), us(cpu.system)))
    }
}
