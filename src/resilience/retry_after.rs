//! The wait an upstream asks for before a retry (Envoy's `rate_limited_retry_back_off`,
//! `source/common/router/reset_header_parser.cc`; RFC 9110 §10.2.3 `Retry-After`).
//!
//! The reset headers are tried in order; the first that parses gives the wait:
//! - `Seconds`: delta seconds (a decimal integer, spaces around it allowed, as Envoy's
//!   `absl::SimpleAtoi`). For a header named `retry-after` an HTTP-date is also read
//!   (ringway's addition; Envoy reads only integers): the IMF-fixdate form RFC 9110
//!   says senders MUST use (`Sun, 06 Nov 1994 08:49:37 GMT`). The two obsolete forms
//!   (RFC 850, asctime) do not parse, so such a header is skipped.
//! - `UnixTimestamp`: seconds since the epoch, minus `now_unix`.
//!
//! A time in the past (a timestamp or a date before `now_unix`) does not parse, as
//! Envoy does for timestamps: the exponential back-off applies instead of retrying at
//! once, so that an upstream with a slow clock cannot make every client retry in a
//! tight loop. Comparing the wait with `max_interval` is the caller's (past it, the
//! attempt is final), see [`exceeds`].
//!
//! The date is parsed by hand (no date crate in the tree): fixed positions, every
//! field range-checked, days from the civil date by Howard Hinnant's algorithm.

use std::time::Duration;

use crate::access_log::timestamp::days_from_civil;

use crate::config::resilience::{RateLimitedBackoff, ResetFormat};

/// The wait a response asks for: the first reset header that parses (Seconds: delta
/// seconds, or an HTTP-date for `retry-after`; UnixTimestamp: seconds since the epoch,
/// minus `now_unix`). `None`: no header parses (then the exponential back-off applies).
pub fn wait<'h>(
    rules: &RateLimitedBackoff,
    get: &dyn Fn(&str) -> Option<&'h [u8]>,
    now_unix: u64,
) -> Option<Duration> {
    rules.reset_headers.iter().find_map(|header| {
        let value = get(&header.name)?;
        let seconds = match header.format {
            ResetFormat::Seconds => seconds(value).or_else(|| {
                if header.name.eq_ignore_ascii_case("retry-after") {
                    http_date(value)?.checked_sub(now_unix)
                } else {
                    None
                }
            }),
            ResetFormat::UnixTimestamp => seconds(value)?.checked_sub(now_unix),
        }?;
        Some(Duration::from_secs(seconds))
    })
}

/// Whether a wait told by the upstream is longer than the policy accepts (Envoy: the
/// attempt is then final and its answer returned).
pub fn exceeds(rules: &RateLimitedBackoff, wait: Duration) -> bool {
    wait > rules.max_interval
}

fn seconds(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as seconds since the epoch.
fn http_date(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.len() != 29 || &v[3..5] != b", " || &v[25..] != b" GMT" {
        return None;
    }
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let weekday = DAYS.iter().position(|d| *d == &v[0..3])?;
    let punct = |at: usize, b: u8| v[at] == b;
    if !(punct(7, b' ') && punct(11, b' ') && punct(16, b' ') && punct(19, b':') && punct(22, b':'))
    {
        return None;
    }
    let day = digits(&v[5..7])?;
    let month = MONTHS.iter().position(|m| *m == &v[8..11])? as u64 + 1;
    let year = digits(&v[12..16])?;
    let (hour, minute, second) = (
        digits(&v[17..19])?,
        digits(&v[20..22])?,
        digits(&v[23..25])?,
    );
    // 60: a leap second, which RFC 9110's grammar allows.
    if year < 1970
        || day == 0
        || day > month_days(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday (index 3 from Monday); a wrong weekday is a bad date.
    if (days + 3) % 7 != weekday as u64 {
        return None;
    }
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn digits(s: &[u8]) -> Option<u64> {
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

fn month_days(year: u64, month: u64) -> u64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resilience::ResetHeader;

    fn rules(headers: &[(&str, ResetFormat)]) -> RateLimitedBackoff {
        RateLimitedBackoff {
            reset_headers: headers
                .iter()
                .map(|(name, format)| ResetHeader {
                    name: (*name).into(),
                    format: *format,
                })
                .collect(),
            max_interval: Duration::from_secs(300),
        }
    }

    fn wait_for(r: &RateLimitedBackoff, headers: &[(&str, &str)], now: u64) -> Option<Duration> {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        };
        wait(r, &get, now)
    }

    const NOW: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn delta_seconds() {
        let r = rules(&[("retry-after", ResetFormat::Seconds)]);
        let secs = |v| wait_for(&r, &[("retry-after", v)], NOW);
        assert_eq!(secs("120"), Some(Duration::from_secs(120)));
        assert_eq!(secs(" 0 "), Some(Duration::ZERO));
        assert_eq!(secs("-5"), None);
        assert_eq!(secs("1.5"), None);
        assert_eq!(secs(""), None);
        assert_eq!(secs("99999999999999999999999"), None);
    }

    #[test]
    fn http_dates_for_retry_after() {
        assert_eq!(http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(NOW));
        assert_eq!(http_date(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date(b"Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(
            http_date(b"Fri, 01 Jan 2100 00:00:00 GMT"),
            Some(4_102_444_800)
        );
        assert_eq!(
            http_date(b"Mon, 01 Jan 2024 12:00:00 GMT"),
            Some(1_704_110_400)
        );
        let r = rules(&[("retry-after", ResetFormat::Seconds)]);
        let at = |v| wait_for(&r, &[("retry-after", v)], NOW);
        assert_eq!(
            at("Sun, 06 Nov 1994 08:51:37 GMT"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(at("Sun, 06 Nov 1994 08:49:36 GMT"), None, "in the past");
    }

    #[test]
    fn malformed_dates_do_not_parse() {
        for bad in [
            "Mon, 06 Nov 1994 08:49:37 GMT",  // wrong weekday
            "Sun, 06 Nov 1994 08:49:37 UTC",  // not GMT
            "Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
            "Sun Nov  6 08:49:37 1994",       // asctime
            "Sun, 6 Nov 1994 08:49:37 GMT",   // one-digit day
            "Sun, 31 Nov 1994 08:49:37 GMT",  // no such day
            "Mon, 29 Feb 1900 00:00:00 GMT",  // not a leap year
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Xyz 1994 08:49:37 GMT",
            "Sun, 06 Nov 19x4 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun; 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08.49:37 GMT",
            "",
        ] {
            assert_eq!(http_date(bad.as_bytes()), None, "{bad}");
        }
        // Non-UTF-8 bytes anywhere: no panic, no parse.
        assert_eq!(http_date(b"Sun, 06 Nov 1994 08:49:\xff7 GMT"), None);
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:3é GMT".as_bytes()), None);
    }

    #[test]
    fn a_date_counts_only_for_retry_after() {
        let r = rules(&[("x-wait", ResetFormat::Seconds)]);
        let date = "Sun, 06 Nov 1994 08:51:37 GMT";
        assert_eq!(wait_for(&r, &[("x-wait", date)], NOW), None);
    }

    #[test]
    fn unix_timestamps_are_relative_to_now() {
        let r = rules(&[("x-ratelimit-reset", ResetFormat::UnixTimestamp)]);
        let at = |v| wait_for(&r, &[("x-ratelimit-reset", v)], NOW);
        assert_eq!(at("784111807"), Some(Duration::from_secs(30)));
        assert_eq!(at("784111777"), Some(Duration::ZERO));
        assert_eq!(at("784111776"), None, "in the past");
        assert_eq!(at("Sun, 06 Nov 1994 08:51:37 GMT"), None);
    }

    #[test]
    fn the_first_header_that_parses_wins() {
        let r = rules(&[
            ("retry-after", ResetFormat::Seconds),
            ("x-ratelimit-reset", ResetFormat::UnixTimestamp),
        ]);
        let both = [("retry-after", "7"), ("x-ratelimit-reset", "784111807")];
        assert_eq!(wait_for(&r, &both, NOW), Some(Duration::from_secs(7)));
        let bad_first = [("retry-after", "soon"), ("x-ratelimit-reset", "784111807")];
        assert_eq!(wait_for(&r, &bad_first, NOW), Some(Duration::from_secs(30)));
        assert_eq!(wait_for(&r, &[], NOW), None);
        assert_eq!(wait_for(&rules(&[]), &both, NOW), None);
    }

    #[test]
    fn exceeds_compares_with_max_interval() {
        let r = rules(&[]);
        assert!(!exceeds(&r, Duration::from_secs(300)));
        assert!(exceeds(&r, Duration::from_secs(301)));
    }
}
