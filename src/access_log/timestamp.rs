//! RFC 3339 UTC timestamps with milliseconds, from `SystemTime`, without a date crate.
//!
//! Design: the access log needs exactly one format (`2026-11-21T21:00:00.123Z`), so
//! instead of a date-time dependency this is Howard Hinnant's `civil_from_days`
//! (exact for the proleptic Gregorian calendar, no tables, no loops) plus zero-padded
//! digits appended to the caller's buffer, which allocates nothing once the buffer has
//! room. UTC only: log timestamps that do not change with the host's zone sort and merge
//! across machines. Times before 1970 (a clock set wrong) are printed as the epoch, since
//! a log line is no place to fail.

use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `time` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn append_rfc3339_millis(time: SystemTime, out: &mut Vec<u8>) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    push_padded(out, year, 4);
    out.push(b'-');
    push_padded(out, u64::from(month), 2);
    out.push(b'-');
    push_padded(out, u64::from(day), 2);
    out.push(b'T');
    push_padded(out, of_day / 3600, 2);
    out.push(b':');
    push_padded(out, of_day / 60 % 60, 2);
    out.push(b':');
    push_padded(out, of_day % 60, 2);
    out.push(b'.');
    push_padded(out, u64::from(since.subsec_millis()), 3);
    out.push(b'Z');
}

/// Days from 1970-01-01 to `year-month-day` (Hinnant's `days_from_civil`, the inverse
/// of [`civil_from_days`]; dates before 1970 give 0).
pub fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 {
        year.saturating_sub(1)
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day.saturating_sub(1);
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// Year, month (1..=12) and day (1..=31) of the day `days` after 1970-01-01.
/// Hinnant's algorithm: shift to eras of 400 years starting on March 1st, so leap days
/// fall at the end of a year and every month length follows from one formula.
pub fn civil_from_days(days: u64) -> (u64, u8, u8) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    // month is 1..=12 and day 1..=31 by construction.
    (year, month as u8, day as u8)
}

/// Appends `value` in decimal, zero-padded to at least `width` digits.
pub(super) fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut n = value;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in len..width {
        out.push(b'0');
    }
    out.extend(digits[..len].iter().rev());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, millis: u64) -> String {
        let mut out = Vec::new();
        let time = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        append_rfc3339_millis(time, &mut out);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
        // `date -u -d 2026-11-21T21:00:00 +%s`
        assert_eq!(at(1_795_294_800, 999), "2026-11-21T21:00:00.999Z");
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000Z");
        assert_eq!(at(253_402_300_800, 0), "10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn before_the_epoch_prints_the_epoch() {
        let mut out = Vec::new();
        append_rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5), &mut out);
        assert_eq!(out, b"1970-01-01T00:00:00.000Z");
    }

    /// Walks day by day over four centuries (every leap rule) against a naive calendar.
    #[test]
    fn civil_from_days_matches_a_naive_calendar() {
        let (mut year, mut month, mut day) = (1970u64, 1u8, 1u8);
        for days in 0..(400 * 366) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}
