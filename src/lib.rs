//! ringway: a thread-per-core reverse proxy on io_uring.
//!
//! The crate is layered so that imports only run downwards (ARCHITECTURE.md):
//!
//! ```text
//! main -> control -> worker -> connection -> {http1, router, local_reply, stats}
//!                                          -> {snapshot, config}
//! ```
//!
//! `http1` and `config` import no runtime: they are pure functions and state machines
//! over byte slices and parsed values, unit-tested and fuzzed in isolation.

pub mod access_log;
#[cfg(feature = "alloc-count")]
pub mod alloc_count;
pub mod allocator;
pub mod auth;
pub mod balance;
pub mod buffers;
pub mod clock;
pub mod config;
pub mod control;
pub mod cpus;
pub mod discovery;
pub mod driver;
pub mod error;
pub mod fetch;
pub mod filter;
pub mod flow;
pub mod forwarding;
pub mod forwarding_envoy;
pub mod health;
mod hex;
pub mod http1;
pub mod limit;
pub mod listen;
pub mod local_reply;
pub mod peer;
pub mod process;
pub mod proxy_protocol;
pub mod ratelimit;
pub mod resilience;
pub mod router;
pub mod snapshot;
pub mod stats;
pub mod tls;
pub mod trace;
pub mod upstream;
pub mod worker;
