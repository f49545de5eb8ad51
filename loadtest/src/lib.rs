//! ringway-load: the load generator and bundled upstream of ringway.
//!
//! The engine is a library so integration tests (and later report formats) use it
//! directly: build a [`run::RunParams`], call [`run::run`], read the [`run::RunResult`].
//!
//! ```text
//! main -> cli -> run::engine -> run::conn -> {http, histo, run::schedule}
//!             -> serve -> http                (ringway::driver, ringway::listen)
//!             -> report, output::{fortio, hdrlog, html, svg}
//!      -> compare -> (child processes: serve, proxies, `ringway-load run --json`)
//!      -> forward                          (raw io_uring: the floor compare measures)
//! ```
//! `http` (requests, response parser) and `histo` do no I/O.

pub mod cli;
pub mod compare;
pub mod forward;
pub mod histo;
pub mod http;
pub mod intervals;
pub mod output;
pub mod report;
pub mod run;
pub mod serve;
pub mod sys;
