//! Per-worker statistics with a single writer per counter.
//!
//! Every counter a worker touches lives in a block that only that worker writes, on cache
//! lines no other worker writes: incrementing is a relaxed load and a relaxed store of the
//! worker's own cell (a plain `mov`/`add`/`mov` on x86), never a locked read-modify-write.
//! Readers (the admin endpoint on the control thread) sum the workers' cells with relaxed
//! loads; a sum may be a few increments stale, which is what monitoring tolerates.
//!
//! Names are fixed when a [`Scope`] is created (on the control thread, at start or reload),
//! so the request path indexes arrays and never formats or hashes a name. Scopes are kept
//! in a [`StatsStore`] under stable names (`listener.public.`), so they survive config
//! reloads that keep the listener.

mod counter;
pub mod histogram;
pub mod names;
pub mod render;
pub mod route;
mod scope;
mod store;
pub mod tags;

pub use counter::Counter;
pub use histogram::{Histogram, WorkerHistogram};
pub use scope::{Kind, Scope, StatDef, WorkerScope};
pub use store::{endpoint_prefix, StatLine, StatsStore, StoreView};
