//! ringway: a thread-per-core reverse proxy on io_uring.
//!
//! The crate is layered so that imports only run downwards (ARCHITECTURE.md):
//!
//! ```text
//! main -> control -> worker -> connection -> {http1, router, stats} -> {buffers, config}
//! ```
//!
//! `http1` and `config` import no runtime: they are pure functions and state machines
//! over byte slices and parsed values, unit-tested and fuzzed in isolation.

pub mod config;
pub mod http1;
