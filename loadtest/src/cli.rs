//! The command line: `ringway-load run [OPTIONS] URL...` and `ringway-load serve ...`.
//!
//! Flag names follow wrk and wrk2 where they have one (`-c`, `-t`, `-d`, `-R`, `-H`), so
//! a wrk2 command line mostly works unchanged. Parsing only checks and converts; the
//! engine gets a [`RunParams`] and the server a [`ServeOptions`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringway::config::DriverChoice;

use crate::http::{check_method, parse_header_arg, RequestSpec, Url};
use crate::output::Outputs;
use crate::run::{Pin, RunParams};
use crate::serve::ServeOptions;

#[derive(Debug, Parser)]
#[command(
    name = "ringway-load",
    version,
    about = "HTTP/1.1 load generator (closed loop like wrk, open loop like wrk2) and its bundled upstream"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load one or more URLs and print the latency spectrum, rate and errors.
    Run(Box<RunArgs>),
    /// Answer every request with a fixed response (an upstream to measure against).
    Serve(ServeArgs),
    /// Measure proxies against the direct path: ringway (io_uring and epoll), nginx and
    /// HAProxy when installed; three regimes, alternating targets, medians and spread.
    Compare(Box<crate::compare::CompareArgs>),
    /// Forward TCP to an upstream on raw io_uring (multishot accept and receive, a
    /// provided buffer ring, fixed files): the floor under any proxy on this machine,
    /// measured by `compare --targets uring-forward`.
    Forward(ForwardArgs),
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Address to listen on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where every connection is forwarded.
    #[arg(long)]
    pub upstream: SocketAddr,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PinArg {
    /// Pin only when the affinity mask has exactly as many CPUs as threads.
    Auto,
    /// Pin to the CPUs of the affinity mask, in order.
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DriverArg {
    Auto,
    #[value(name = "io_uring")]
    IoUring,
    Epoll,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Target URLs (http[s]://host[:port]/path); several rotate request by request.
    #[arg(required = true)]
    pub urls: Vec<String>,
    /// Connections to keep open, spread over the threads.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub connections: usize,
    /// Generator threads, one runtime (io_uring) each [default: CPUs available, at most -c].
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Measured duration (e.g. 10s, 500ms, 1m).
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Open loop: this many requests per second over all connections, on a fixed
    /// timeline (each connection rate/c, staggered). When the generator falls behind the
    /// timeline (slow answers, or a generator that cannot keep up) it catches up by
    /// sending each next request as soon as the previous answer arrives; latency is
    /// measured from each request's intended send time, which corrects coordinated
    /// omission, and the "late start" line shows how far behind it ran. Without -R: closed
    /// loop (each connection sends when its answer arrives, like wrk).
    #[arg(short = 'R', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: Option<u64>,
    /// Run this long first without recording (connections warm, caches filled).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Per-request timeout (counted as a timeout error; the connection is closed).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Request method.
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,
    /// Extra header, "name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Send a body of this many bytes with each request.
    #[arg(long, default_value_t = 0)]
    pub body_size: usize,
    /// Open a new connection for every request.
    #[arg(long, conflicts_with = "requests_per_conn")]
    pub new_conn: bool,
    /// Close each connection after this many requests.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests_per_conn: Option<u64>,
    /// Connection-rate mode: open this many new connections per second, one request
    /// each (open loop at this rate with a new connection per request; latency includes
    /// the connect).
    #[arg(long, conflicts_with_all = ["rate", "requests_per_conn"], value_parser = clap::value_parser!(u64).range(1..))]
    pub conn_rate: Option<u64>,
    /// Pin generator threads to CPUs.
    #[arg(long, value_enum, default_value = "auto")]
    pub pin: PinArg,
    /// I/O driver of the generator threads: io_uring where the kernel allows it, else
    /// epoll.
    #[arg(long, value_enum, default_value = "auto")]
    pub driver: DriverArg,
    /// https: accept any server certificate (test certificates). Handshakes still do
    /// the same work.
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// https: also trust the certificates in this PEM file (repeatable).
    #[arg(long = "cacert", value_name = "FILE")]
    pub ca_files: Vec<std::path::PathBuf>,
    /// https: resume TLS sessions with the tickets servers give (default: a full
    /// handshake on every connection); the report counts resumed handshakes.
    #[arg(long)]
    pub tls_resume: bool,
    /// No progress line on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the result as Fortio's JSON (plus ringway-load's extras) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one interval per second) to FILE.
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Write a self-contained HTML report (plots, summary, parameters) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the latency-by-percentile plot as SVG to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

impl RunArgs {
    /// The output files asked for.
    pub fn outputs(&self) -> Outputs {
        Outputs {
            json: self.json.clone(),
            hdr_log: self.hdr_log.clone(),
            html: self.html.clone(),
            svg: self.svg.clone(),
        }
    }

    /// Checks and converts into engine parameters.
    pub fn into_params(self) -> Result<RunParams, String> {
        let urls = self
            .urls
            .iter()
            .map(|u| Url::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        check_method(&self.method)?;
        let headers = self
            .headers
            .iter()
            .map(|h| parse_header_arg(h))
            .collect::<Result<Vec<_>, _>>()?;
        if self.connections == 0 {
            return Err("-c must be at least 1".into());
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = self.threads.unwrap_or(cores).clamp(1, self.connections);
        let (rate, requests_per_connection) = match self.conn_rate {
            Some(n) => (Some(n), Some(1)),
            None if self.new_conn => (self.rate, Some(1)),
            None => (self.rate, self.requests_per_conn),
        };
        Ok(RunParams {
            urls,
            request: RequestSpec {
                method: self.method,
                headers,
                body_size: self.body_size,
            },
            connections: self.connections,
            threads,
            rate,
            duration: self.duration,
            warmup: self.warmup,
            timeout: self.timeout,
            requests_per_connection,
            pin: match self.pin {
                PinArg::Auto => Pin::Auto,
                PinArg::On => Pin::On,
                PinArg::Off => Pin::Off,
            },
            progress: !self.quiet,
            driver: driver_choice(self.driver),
            tls: crate::run::TlsOptions {
                insecure: self.insecure,
                ca_files: self.ca_files,
                resume: self.tls_resume,
            },
        })
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Response body size in bytes.
    #[arg(long, default_value_t = 0)]
    pub body_size: usize,
    /// Send the body chunked (one chunk and the last chunk).
    #[arg(long)]
    pub chunked: bool,
    /// Hold every answer this long (e.g. 1ms).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub delay: Duration,
    /// Worker threads, one SO_REUSEPORT socket each.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// I/O driver: io_uring where the kernel allows it, else epoll.
    #[arg(long, value_enum, default_value = "auto")]
    pub driver: DriverArg,
    /// Stall once, this long after start: answers due in the window wait for its end.
    #[arg(long, value_parser = parse_duration, requires = "stall_for")]
    pub stall_at: Option<Duration>,
    /// Length of the stall.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub stall_for: Duration,
}

impl ServeArgs {
    pub fn into_options(self) -> ServeOptions {
        ServeOptions {
            listen: self.listen,
            body_size: self.body_size,
            chunked: self.chunked,
            delay: self.delay,
            workers: self.workers.max(1),
            driver: driver_choice(self.driver),
            stall_at: self.stall_at,
            stall_for: self.stall_for,
        }
    }
}

fn driver_choice(arg: DriverArg) -> DriverChoice {
    match arg {
        DriverArg::Auto => DriverChoice::Auto,
        DriverArg::IoUring => DriverChoice::IoUring,
        DriverArg::Epoll => DriverChoice::Epoll,
    }
}

/// `10s`, `500ms`, `250us`, `2m`, `1.5s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use us, ms, s, m, h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn run_command_line() {
        let cli = Cli::try_parse_from([
            "ringway-load",
            "run",
            "-c",
            "4",
            "-R",
            "1000",
            "-H",
            "x-a: b",
            "--new-conn",
            "http://127.0.0.1:1/",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let p = args.into_params().unwrap();
        assert_eq!(p.connections, 4);
        assert_eq!(p.rate, Some(1000));
        assert_eq!(p.requests_per_connection, Some(1));
        assert_eq!(p.request.headers, vec![("x-a".into(), "b".into())]);
    }
}
