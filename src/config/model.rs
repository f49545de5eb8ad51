//! The decoded, validated configuration: plain data the rest of ringway reads.
//!
//! Design: these types carry no positions and no YAML; by the time a `Config` exists every
//! cross-reference has been checked (each route's cluster exists, names are unique), so
//! consumers can index by name without handling "not found". Defaults live here as
//! constants next to the field they belong to, so the reference config, the docs and the
//! code cannot drift apart silently (a test parses `config/reference.yaml`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (`<inline>` or whatever the caller passed for strings).
    pub source: PathBuf,
    pub workers: Workers,
    pub pin_workers: PinWorkers,
    pub driver: DriverChoice,
    /// The admin (stats, health) listener; `None` when the key is absent.
    pub admin: Option<SocketAddr>,
    /// At least one.
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    /// The access log; `None` when the key is absent (no access log).
    pub access_log: Option<AccessLogConfig>,
}

impl Config {
    /// The cluster with this name. Every `RouteAction::Cluster` in a loaded config resolves.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// How many worker threads (one per core) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workers {
    /// One per available CPU.
    #[default]
    Auto,
    /// Exactly this many, 1..=[`Workers::MAX`].
    Count(usize),
}

impl Workers {
    /// Upper bound for an explicit count; more is a typo, not a machine.
    pub const MAX: usize = 1024;
}

/// Whether to pin each worker thread to its own core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinWorkers {
    /// Pin when there are at least as many cores available as workers.
    #[default]
    Auto,
    On,
    Off,
}

/// Which I/O driver the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, else epoll.
    #[default]
    Auto,
    IoUring,
    Epoll,
}

/// A socket that accepts HTTP/1.1 and routes requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Unique; `[A-Za-z0-9_.-]+` (used in stat names).
    pub name: String,
    pub address: SocketAddr,
    /// First match wins, in file order.
    pub routes: Vec<Route>,
    pub http1: Http1Settings,
    /// Time allowed to receive a complete request head.
    pub header_read_timeout: Duration,
    /// A client connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
}

impl Listener {
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
}

/// HTTP/1.1 parser limits for one listener, all in bytes except `max_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http1Settings {
    pub max_request_line: usize,
    /// The whole head: request line plus header fields.
    pub max_request_head: usize,
    /// Number of header fields.
    pub max_headers: usize,
    pub max_chunk_extension: usize,
    pub max_trailer_section: usize,
}

impl Http1Settings {
    /// Upper bound for `max_headers`: far above any real client, low enough to keep
    /// per-request header tables small.
    pub const MAX_HEADERS_LIMIT: usize = 10_000;
}

impl Default for Http1Settings {
    fn default() -> Self {
        Http1Settings {
            max_request_line: 8 * 1024,
            max_request_head: 60 * 1024,
            max_headers: 100,
            max_chunk_extension: 16 * 1024,
            max_trailer_section: 16 * 1024,
        }
    }
}

/// One routing rule: which requests, and what to do with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// Upstream request timeout; only used by `RouteAction::Cluster`.
    pub timeout: Duration,
}

impl Route {
    /// Envoy's route timeout default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
}

/// Request-path matcher; both forms start with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// The path starts with this string.
    Prefix(String),
    /// The path (without query) equals this string.
    Path(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    /// Proxy to the named cluster (guaranteed to exist in `Config::clusters`).
    Cluster(String),
    /// Answer from the proxy itself.
    DirectResponse(DirectResponse),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    /// 200..=599.
    pub status: u16,
    pub body: bytes::Bytes,
    /// `Content-Type` header value; checked to be a valid header value.
    pub content_type: String,
}

impl DirectResponse {
    pub const DEFAULT_CONTENT_TYPE: &'static str = "text/plain";
}

/// A named group of upstream endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Unique; `[A-Za-z0-9_.-]+`.
    pub name: String,
    /// Non-empty.
    pub endpoints: Vec<Endpoint>,
}

/// One upstream address. A struct, not a bare `SocketAddr`, so weights and unix paths can
/// be added without changing every consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: SocketAddr,
}

/// Where and how the access log is written (one line per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub path: AccessLogPath,
    pub format: AccessLogFormat,
    /// Bytes a worker collects before handing a batch to the writer thread.
    pub buffer: usize,
    /// A worker hands off a partial batch at least this often.
    pub flush_interval: Duration,
}

impl AccessLogConfig {
    pub const DEFAULT_BUFFER: usize = 64 * 1024;
    /// Upper bound for `buffer`: each worker may have several batches in flight, so a
    /// larger value is memory spent on lines that are only late.
    pub const MAX_BUFFER: usize = 16 * 1024 * 1024;
    pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
}

/// The access log's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogPath {
    /// `-`: the process's standard output.
    Stdout,
    /// A file, opened for appending (created if missing) and reopened on SIGUSR1.
    File(PathBuf),
}

/// The access log's line format (see `access_log::format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// Envoy-like text line.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
