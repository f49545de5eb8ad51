//! Machine-readable and visual outputs of a run, all built from the same [`RunResult`].
//!
//! - [`fortio`]: Fortio's JSON result shape (`--json`), with ringway-load's extras under a
//!   key Fortio ignores; `compare` reads these files back.
//! - [`hdrlog`]: the HdrHistogram interval log (`--hdr-log`), one interval per second.
//! - [`svg`]: the latency-by-percentile and rate-over-time plots, hand-written SVG.
//! - [`html`]: one self-contained page: plots, summary table, parameters (`--html`).
//!
//! [`RunResult`]: crate::run::RunResult

pub mod fortio;
pub mod hdrlog;
pub mod html;
pub mod svg;

use std::path::Path;

use crate::run::RunResult;

/// Where `run` writes its outputs; `None` skips one.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub json: Option<std::path::PathBuf>,
    pub hdr_log: Option<std::path::PathBuf>,
    pub html: Option<std::path::PathBuf>,
    pub svg: Option<std::path::PathBuf>,
}

impl Outputs {
    /// Writes every requested output; the first failure names its file.
    pub fn write(&self, result: &RunResult) -> Result<(), String> {
        if let Some(path) = &self.json {
            write_file(path, fortio::to_json(result)?.as_bytes())?;
        }
        if let Some(path) = &self.hdr_log {
            write_file(path, &hdrlog::to_log(result)?)?;
        }
        if let Some(path) = &self.html {
            write_file(path, html::page(result).as_bytes())?;
        }
        if let Some(path) = &self.svg {
            let series = [svg::Series::from_histogram(
                "latency",
                &result.histograms.latency,
            )];
            write_file(
                path,
                svg::percentile_plot(&series, "Latency by percentile").as_bytes(),
            )?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path`, with the path in the error.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
