//! What the generator checks and reads about its own process: the io_uring and
//! locked-memory preconditions of glommio, and its CPU time.
//!
//! Everything is read from /proc or probed by building a ring, so this module needs no
//! `unsafe` (getrlimit/getrusage would). /proc reports CPU time in USER_HZ ticks, which
//! Linux fixes at 100 per second for userspace on every architecture: 10 ms resolution,
//! fine over a measured phase of seconds.

use std::time::Duration;

use ringway::config::DriverChoice;

/// glommio refuses to start below this much lockable memory (its `MIN_MEMLOCK_LIMIT`).
pub const MIN_MEMLOCK: u64 = 512 * 1024;

/// The soft RLIMIT_MEMLOCK in bytes from /proc/self/limits; `None` means unlimited.
pub fn memlock_limit() -> Result<Option<u64>, String> {
    let limits = std::fs::read_to_string("/proc/self/limits")
        .map_err(|e| format!("cannot read /proc/self/limits: {e}"))?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .ok_or("no \"Max locked memory\" line in /proc/self/limits")?;
    let soft = line
        .trim_start_matches("Max locked memory")
        .split_whitespace()
        .next()
        .ok_or("empty \"Max locked memory\" line in /proc/self/limits")?;
    if soft == "unlimited" {
        return Ok(None);
    }
    soft.parse()
        .map(Some)
        .map_err(|_| format!("unreadable locked-memory limit {soft:?}"))
}

/// Fails with the fix when glommio cannot run: no io_uring, or too little locked memory.
pub fn check_glommio_preconditions() -> Result<(), String> {
    if let Some(limit) = memlock_limit()? {
        if limit < MIN_MEMLOCK {
            return Err(format!(
                "the locked-memory limit (RLIMIT_MEMLOCK) is {} KiB; the generator's runtime \
                 (glommio, on io_uring) needs at least {} KiB. Raise it with `ulimit -l 512` \
                 (or `ulimit -l unlimited`) in the shell that starts ringway-load; for a \
                 service, LimitMEMLOCK= (systemd), `--ulimit memlock=-1` (docker), or a \
                 memlock line in /etc/security/limits.conf",
                limit / 1024,
                MIN_MEMLOCK / 1024
            ));
        }
    }
    ringway::driver::resolve(DriverChoice::IoUring).map_err(|e| {
        format!(
            "{e}. The generator runs on glommio, which needs io_uring (Linux 5.8+, not \
             blocked by seccomp as in Docker's default profile, sysctl \
             kernel.io_uring_disabled=0). `ringway-load serve` works without it (epoll)"
        )
    })?;
    Ok(())
}

/// This process's user and system CPU time so far.
pub fn cpu_times() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields after its ')' are fixed.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let tick = |t: u64| Duration::from_millis(t * 10);
    Some((tick(utime), tick(stime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_limits_and_cpu() {
        assert!(memlock_limit().is_ok());
        let (user, system) = cpu_times().unwrap();
        assert!(user + system < Duration::from_secs(3600));
    }
}
