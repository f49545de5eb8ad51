//! The resilience engine (issue 22): retry decisions, back-off, upstream rate-limit
//! hints, retry budgets and circuit breakers, sans-IO like `crate::balance`.
//!
//! Nothing here does I/O, reads a clock or spawns a task: the connection task
//! (`worker::connection::forward`) asks these functions what to do and does it. Each
//! decision is a pure function of its inputs (the compiled route policy, the request's
//! trusted controls, how an attempt ended, a random draw, the time), so that it is unit
//! tested without sockets and benchmarked alone (`benches/resilience.rs`).
//!
//! - [`retry`]: the route's policy compiled once ([`retry::RetryRules`]), merged with
//!   the trusted request headers into one request's [`retry::Plan`], and the verdict on
//!   each failed attempt (Envoy's `retry_state_impl.cc` semantics).
//! - [`backoff`]: exponential back-off with full jitter.
//! - [`retry_after`]: the wait an upstream asks for (`Retry-After`, reset headers).
//! - [`budget`]: Envoy's retry budget, kept per core.
//! - [`breaker`]: process-wide circuit-breaker limits that workers lease in batches, so
//!   that most acquires and releases touch only the worker's own memory.
//!
//! The one shared state is [`breaker::SharedLimit`] (atomics, no lock); everything else
//! is owned by one worker or immutable.

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod retry;
pub mod retry_after;
