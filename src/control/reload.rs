//! Hot reload, the control thread's half: load, validate, check what may not change,
//! plan the sockets. The workers' half (build a snapshot, swap, acknowledge) is
//! `worker::listeners`.
//!
//! What a reload cannot change, and why it is rejected rather than half-applied:
//! `workers` and `pin_workers` (threads and their CPUs are fixed at start), `driver`
//! (every ring is built at start), `admin` (the admin socket is bound once) and
//! `access_log` (its writer thread and file are opened once). A reload that changes any
//! of them fails with an error naming the field, and the old config keeps serving; use a
//! hot restart (`--restart-epoch`) for those. Command-line overrides (`--concurrency`,
//! `--driver`) are applied to the new config first, as at start.

use crate::config::{Config, DriverChoice, Workers};

/// The command-line overrides, applied to every config loaded.
#[derive(Debug, Clone, Copy)]
pub struct Overrides {
    pub concurrency: Option<usize>,
    pub driver: Option<DriverChoice>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(n) = self.concurrency {
            config.workers = Workers::Count(n);
        }
        if let Some(d) = self.driver {
            config.driver = d;
        }
    }
}

/// Loads the config at `running.source`, with the overrides, and checks it may replace
/// `running`. Errors are the text for the log and the admin answer.
pub fn load(running: &Config, overrides: Overrides) -> Result<Config, String> {
    // A config given only as `--config-yaml` has no file to read again.
    let file = (running.source.as_path() != std::path::Path::new("--config-yaml"))
        .then_some(running.source.as_path());
    let mut next =
        Config::load_with(file, &running.load_options).map_err(|errors| errors.to_string())?;
    overrides.apply(&mut next);
    fixed_fields_unchanged(running, &next)?;
    Ok(next)
}

fn fixed_fields_unchanged(running: &Config, next: &Config) -> Result<(), String> {
    let mut changed = Vec::new();
    if running.workers != next.workers {
        changed.push("workers");
    }
    if running.pin_workers != next.pin_workers {
        changed.push("pin_workers");
    }
    if running.driver != next.driver {
        changed.push("driver");
    }
    if running.admin != next.admin {
        changed.push("admin");
    }
    if running.access_log != next.access_log {
        changed.push("access_log");
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}: {} cannot change on reload (a hot restart can change them); the running config is kept",
        next.source.display(),
        changed.join(", ")
    ))
}
