//! Process-wide settings made once at start, before any socket or worker exists.
//!
//! **Open files.** Every connection is a descriptor, two when it is proxied. Linux starts
//! processes with a soft `RLIMIT_NOFILE` of 1024 (systemd's default too) and a much
//! higher hard limit; the soft one is meant to be raised by programs that need more (as
//! nginx's `worker_rlimit_nofile` does, and as Envoy's operators do with `ulimit -n`).
//! ringway raises its soft limit to the hard limit (capped by `fs.nr_open`, the most the
//! kernel accepts) so that 10,000 connections never meet `EMFILE` on a default system;
//! the load generator does the same.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};

/// What [`raise_nofile_limit`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before.
    pub before: u64,
    /// The soft limit now.
    pub now: u64,
    /// The hard limit.
    pub hard: u64,
}

/// The most descriptors the kernel lets a process have (`fs.nr_open`).
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most `fs.nr_open`). An error
/// names the limits; the process can go on with what it has.
pub fn raise_nofile_limit() -> Result<NofileLimit, String> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(NOFILE): {e}"))?;
    let target = if hard == RLIM_INFINITY {
        nr_open()
    } else {
        hard.min(nr_open())
    };
    if soft != RLIM_INFINITY && soft < target {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard).map_err(|e| {
            format!(
                "cannot raise the open-file limit from {soft} to {target} (hard limit {hard}): {e}"
            )
        })?;
        return Ok(NofileLimit {
            before: soft,
            now: target,
            hard,
        });
    }
    Ok(NofileLimit {
        before: soft,
        now: soft,
        hard,
    })
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (at most `fs.nr_open`), raising
/// the hard limit too when it is lower, which only a privileged process
/// (`CAP_SYS_RESOURCE`) may do. For the load generator, whose children (the proxies it
/// compares) inherit the limits: HAProxy, for one, sizes its descriptor table from
/// `maxconn` and refuses to start when the hard limit is lower.
pub fn ensure_nofile_limit(want: u64) -> Result<NofileLimit, String> {
    let raised = raise_nofile_limit()?;
    let want = want.min(nr_open());
    if raised.now >= want {
        return Ok(raised);
    }
    setrlimit(Resource::RLIMIT_NOFILE, want, want.max(raised.hard)).map_err(|e| {
        format!(
            "cannot raise the open-file limit to {want} (hard limit {}; raising it needs \
             root or CAP_SYS_RESOURCE): {e}",
            raised.hard
        )
    })?;
    Ok(NofileLimit {
        before: raised.before,
        now: want,
        hard: want.max(raised.hard),
    })
}

/// This machine's host name (Envoy's `%HOSTNAME%`), read once per process.
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        // (Raising from a lowered limit is tested on the binary, tests/cli.rs: lowering
        // it here would starve the other tests of this process.)
        let limit = raise_nofile_limit().unwrap();
        assert!(limit.before <= limit.now);
        assert_eq!(limit.now, limit.hard.min(nr_open()));
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap().0, limit.now);
        assert_eq!(raise_nofile_limit().unwrap().before, limit.now);
        // Asking for no more than there is changes nothing.
        assert_eq!(ensure_nofile_limit(limit.now).unwrap().now, limit.now);
    }
}
