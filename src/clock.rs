//! A worker's coarse clock: the `Date` header of the current second, and an `Instant`
//! of the same step.
//!
//! RFC 9110 6.6.1: an origin with a clock sends `Date`, and a proxy adds one to a
//! response that arrives without. Formatting a date per request would read the clock and
//! format a calendar date a few hundred thousand times a second for 86,400 distinct
//! values a day, so each worker keeps the current value in a [`CoarseClock`], refreshed
//! by a timer task of its own at every second boundary ([`CoarseClock::keep_fresh`]); a
//! request copies the 37-byte `date: ...\r\n` line. The same tick gives the request
//! path a time for marking progress (the stream idle timeout) without reading the
//! clock, and an anchor pairing a monotonic instant with Unix time, so that a span's
//! Unix timestamps come from instants the request path read anyway
//! ([`CoarseClock::anchor`]) instead of reading the wall clock again. Formatting is
//! IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 5.6.7), from the calendar
//! arithmetic the access log already uses.

use std::{
    cell::Cell,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::access_log::timestamp::civil_from_days;

/// How often the clock is refreshed: [`CoarseClock::coarse_now`] is at most this (and a
/// timer's lateness) behind.
pub const TICK: Duration = Duration::from_secs(1);

/// Length of an IMF-fixdate.
pub const LEN: usize = 29;

/// Length of a whole `date: <IMF-fixdate>\r\n` line.
pub const LINE_LEN: usize = 6 + LEN + 2;

/// A worker's current `Date` value and coarse instant.
#[derive(Debug)]
pub struct CoarseClock {
    /// `date: <IMF-fixdate>\r\n`: a request copies the whole line in one piece.
    line: Cell<[u8; LINE_LEN]>,
    now: Cell<Instant>,
    /// Unix nanoseconds at `now` (read together at each tick).
    unix_ns: Cell<u64>,
}

impl Default for CoarseClock {
    fn default() -> Self {
        let wall = SystemTime::now();
        CoarseClock {
            line: Cell::new(date_line(wall)),
            now: Cell::new(Instant::now()),
            unix_ns: Cell::new(unix_nanos(wall)),
        }
    }
}

impl CoarseClock {
    /// The whole `date: ...\r\n` header line for the current second.
    #[inline]
    pub fn date_line(&self) -> [u8; LINE_LEN] {
        self.line.get()
    }

    /// The time at the last tick: at most a second (and a timer's lateness) behind.
    #[inline]
    pub fn coarse_now(&self) -> Instant {
        self.now.get()
    }

    /// Seconds since the Unix epoch at the last tick.
    #[inline]
    pub fn unix_seconds(&self) -> u64 {
        self.unix_ns.get() / 1_000_000_000
    }

    /// The last tick's instant and Unix time, to map instants onto Unix time with
    /// ([`UnixAnchor::unix_ns`]).
    #[inline]
    pub fn anchor(&self) -> UnixAnchor {
        UnixAnchor {
            at: self.now.get(),
            unix_ns: self.unix_ns.get(),
        }
    }

    /// Reads the clock.
    pub fn refresh(&self) {
        // Read together: they are the Unix anchor.
        let (now, instant) = (SystemTime::now(), Instant::now());
        self.line.set(date_line(now));
        self.now.set(instant);
        self.unix_ns.set(unix_nanos(now));
    }

    /// Refreshes the value just after every second boundary, for as long as the
    /// worker's runtime runs (a draining worker still answers), calling `each` after
    /// each refresh (the worker's once-a-second chores: span batches' flush).
    pub async fn keep_fresh(&self, mut each: impl FnMut()) {
        loop {
            let now = SystemTime::now();
            let into_second = now
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            // A millisecond past the boundary, so the clock has surely turned.
            let wait = Duration::from_nanos(1_001_000_000 - u64::from(into_second));
            monoio::time::sleep(wait).await;
            self.refresh();
            each();
        }
    }
}

/// An instant and the Unix time read with it.
#[derive(Debug, Clone, Copy)]
pub struct UnixAnchor {
    at: Instant,
    unix_ns: u64,
}

impl UnixAnchor {
    /// `at` in Unix nanoseconds: the anchor's Unix time plus the monotonic time since
    /// (or less the time before). Within a second of a fresh anchor this is the wall
    /// clock, unless the wall clock was stepped since; two instants mapped through one
    /// anchor differ by exactly their own difference. A subtraction, not a clock read.
    #[inline]
    pub fn unix_ns(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.at) {
            Some(after) => self
                .unix_ns
                .saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX)),
            None => self.unix_ns.saturating_sub(
                u64::try_from(self.at.duration_since(at).as_nanos()).unwrap_or(u64::MAX),
            ),
        }
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `time` as a whole `date: <IMF-fixdate>\r\n` header line.
pub fn date_line(time: SystemTime) -> [u8; LINE_LEN] {
    let mut line = [0u8; LINE_LEN];
    line[..6].copy_from_slice(b"date: ");
    line[6..6 + LEN].copy_from_slice(&imf_fixdate(time));
    line[6 + LEN..].copy_from_slice(b"\r\n");
    line
}

/// `time` as an IMF-fixdate (`Sat, 05 Dec 2026 00:06:55 GMT`). Times before 1970 (a
/// clock set wrong) give the epoch; a header is no place to fail.
pub fn imf_fixdate(time: SystemTime) -> [u8; LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[(days % 7) as usize];
    let month = MONTHS[usize::from(month.clamp(1, 12) - 1)];
    let year = year.min(9999);
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut out = [0u8; LEN];
    let mut at = 0;
    let mut put = |part: &[u8]| {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    };
    put(weekday);
    put(b", ");
    put(&two(u64::from(day)));
    put(b" ");
    put(month);
    put(b" ");
    put(&two(year / 100));
    put(&two(year % 100));
    put(b" ");
    put(&two(of_day / 3600));
    put(b":");
    put(&two(of_day / 60 % 60));
    put(b":");
    put(&two(of_day % 60));
    put(b" GMT");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> String {
        String::from_utf8(imf_fixdate(UNIX_EPOCH + Duration::from_secs(secs)).to_vec()).unwrap()
    }

    /// Instants after and before the anchor map onto Unix time around the wall clock,
    /// and their differences are the instants' own.
    #[test]
    fn instants_map_onto_unix_time() {
        let clock = CoarseClock::default();
        let anchor = clock.coarse_now();
        let map = clock.anchor();
        let wall = unix_nanos(SystemTime::now());
        let at = map.unix_ns(anchor);
        assert!(at <= wall && wall - at < 1_000_000_000, "{at} {wall}");
        let later = anchor + Duration::from_micros(1_500);
        assert_eq!(map.unix_ns(later) - at, 1_500_000);
        if let Some(earlier) = anchor.checked_sub(Duration::from_millis(3)) {
            assert_eq!(at - map.unix_ns(earlier), 3_000_000);
        }
        let now = Instant::now();
        let read = unix_nanos(SystemTime::now());
        let mapped = map.unix_ns(now);
        assert!(mapped.abs_diff(read) < 50_000_000, "{mapped} {read}");
    }

    #[test]
    fn known_instants() {
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110's example.
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        // `date -u -d 2026-12-05T00:06:55 +%s`
        assert_eq!(at(1_796_429_215), "Sat, 05 Dec 2026 00:06:55 GMT");
        assert_eq!(at(253_402_300_799), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn matches_httpdate_for_every_weekday_and_month() {
        // A day in each month of a leap year and of a plain year, at varying times.
        for day in (0..800u64).step_by(17) {
            let secs = 1_700_000_000 + day * 86_400 + day * 3_607;
            let ours = at(secs);
            let system = std::process::Command::new("date")
                .args([
                    "-u",
                    "-d",
                    &format!("@{secs}"),
                    "+%a, %d %b %Y %H:%M:%S GMT",
                ])
                .env("LC_ALL", "C")
                .output();
            match system {
                Ok(out) if out.status.success() => {
                    assert_eq!(ours, String::from_utf8_lossy(&out.stdout).trim(), "{secs}");
                }
                _ => {
                    eprintln!("SKIP comparing with date(1): not available");
                    return;
                }
            }
        }
    }

    #[test]
    fn the_cached_value_is_the_current_second() {
        let header = CoarseClock::default();
        let now = at(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs());
        let cached = String::from_utf8(header.date_line()[6..6 + LEN].to_vec()).unwrap();
        // Both are taken within the same second, or the next one.
        assert_eq!(cached.len(), LEN);
        assert_eq!(cached[..17], now[..17]);
    }
}
