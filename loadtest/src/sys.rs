//! What the generator reads about its own process: its CPU time.
//!
//! Read from /proc, so this module needs no `unsafe` (getrusage would). /proc reports CPU time in USER_HZ ticks, which
//! Linux fixes at 100 per second for userspace on every architecture: 10 ms resolution,
//! fine over a measured phase of seconds.

use std::time::Duration;

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
        let (user, system) = cpu_times().unwrap();
        assert!(user + system < Duration::from_secs(3600));
    }
}
