//! The access log: one line per request, to a file or stdout, as text or JSON.
//!
//! ```text
//! worker 0 ─ record() ─> batch ─┐ try_send (bounded; full = drop + count)
//! worker 1 ─ record() ─> batch ─┼──────────────> writer thread ──> file / stdout
//!                               │ <── emptied Vecs (pool)    ^
//! control thread ── SIGUSR1 ────┘ Wake + flag ───────────────┘ reopen
//! ```
//!
//! Design: formatting happens on the worker, into a per-worker batch (`buffer.rs`), with
//! the line formats in `format.rs` and the timestamp in `timestamp.rs` (both sans-IO and
//! unit-tested). Only the writer thread (`writer.rs`) does blocking I/O, and a worker
//! never waits for it: when it falls behind, lines are dropped and counted in
//! `access_log.dropped_lines`, never requests slowed. Lines of different workers are
//! interleaved batch by batch, so the file is ordered per worker, not globally; each line
//! carries its start time.

mod buffer;
mod entry;
pub mod envoy;
pub mod format;
pub mod timestamp;
mod writer;

pub use buffer::{Batch, WorkerLog, WorkerLogSetup};
pub use entry::{Captured, Details, LogEntry, ResponseFlags, TlsDetails, TraceIds};
pub use writer::{AccessLog, Message, Reopener};
