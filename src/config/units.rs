//! Durations and byte sizes as they are written in the config file.
//!
//! Design: both are a non-negative integer followed directly by a unit, with no space and
//! no fractions (`2s`, `150ms`, `64KiB`). Integers only, because every value we configure is
//! a limit or a timeout where "1.5s" buys nothing and float rounding would make the limit
//! that is enforced differ from the one written. Arithmetic is checked: a value that does not
//! fit is an error, never a wrap-around. The functions return plain `String` messages; the
//! decoder adds the file position and field path.
//!
//! Sizes: binary units (`KiB`, `MiB`, `GiB`) are powers of 1024 and decimal units (`KB`/`kB`,
//! `MB`, `GB`) are powers of 1000, as their names say (IEC 80000-13). A bare number, or the
//! unit `B`, means bytes. Units are case-sensitive so that `mb` (millibits?) is not guessed.

use std::time::Duration;

/// Duration units, longest suffix first so that `ms` is not read as `m` + garbage.
const DURATION_UNITS: &[(&str, Duration)] = &[
    ("ns", Duration::from_nanos(1)),
    ("us", Duration::from_micros(1)),
    ("µs", Duration::from_micros(1)),
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("m", Duration::from_secs(60)),
    ("h", Duration::from_secs(3600)),
];

/// Size units; `B` and a bare number are bytes.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("KB", 1_000),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
];

/// Splits `"150ms"` into `(150, "ms")`. The number is the leading run of ASCII digits.
fn split_number<'t>(text: &'t str, what: &str, example: &str) -> Result<(u64, &'t str), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty {what}; expected e.g. `{example}`"));
    }
    if text.starts_with('-') {
        return Err(format!("{what} cannot be negative: `{text}`"));
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "invalid {what} `{text}`: expected an integer followed by a unit, e.g. `{example}`"
        ));
    }
    // `digits` counts ASCII bytes, so it is a char boundary.
    let (number, unit) = text.split_at(digits);
    let number = number
        .parse::<u64>()
        .map_err(|_| format!("{what} `{text}` is too large"))?;
    Ok((number, unit))
}

/// Parses a duration such as `2s`, `150ms`, `1m`, `500us` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: &str = "`h`, `m`, `s`, `ms`, `us` or `ns`";
    let (number, unit) = split_number(text, "duration", "2s")?;
    if unit.is_empty() {
        return Err(format!(
            "duration `{}` has no unit; write e.g. `{number}s` (units: {UNITS})",
            text.trim()
        ));
    }
    let Some(&(_, scale)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!(
            "invalid duration `{}`: unknown unit `{unit}` (units: {UNITS})",
            text.trim()
        ));
    };
    // u32 is enough for every multiplier (an hour is 3600 s); a count that overflows it
    // cannot produce a sane duration anyway.
    let count = u32::try_from(number);
    let value = count.ok().and_then(|count| scale.checked_mul(count));
    value.ok_or_else(|| format!("duration `{}` is too large", text.trim()))
}

/// Parses a byte size such as `64KiB`, `1MiB`, `1GiB`, `16KB` or a plain `512` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    const UNITS: &str = "`B`, `KiB`, `MiB`, `GiB`, `KB`, `MB` or `GB`";
    let (number, unit) = split_number(text, "size", "64KiB")?;
    let scale = if unit.is_empty() {
        1
    } else {
        match SIZE_UNITS.iter().find(|(name, _)| *name == unit) {
            Some(&(_, scale)) => scale,
            None => {
                return Err(format!(
                    "invalid size `{}`: unknown unit `{unit}` (units: {UNITS})",
                    text.trim()
                ))
            }
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("size `{}` is too large", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("150ms"), Ok(Duration::from_millis(150)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("500µs"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn duration_errors() {
        assert_eq!(
            parse_duration("-2s").unwrap_err(),
            "duration cannot be negative: `-2s`"
        );
        assert_eq!(
            parse_duration("2").unwrap_err(),
            "duration `2` has no unit; write e.g. `2s` (units: `h`, `m`, `s`, `ms`, `us` or `ns`)"
        );
        assert!(parse_duration("2 s")
            .unwrap_err()
            .contains("unknown unit ` s`"));
        assert!(parse_duration("2sec")
            .unwrap_err()
            .contains("unknown unit `sec`"));
        assert!(parse_duration("1.5s")
            .unwrap_err()
            .contains("unknown unit `.5s`"));
        assert!(parse_duration("s")
            .unwrap_err()
            .contains("expected an integer"));
        assert!(parse_duration("").unwrap_err().contains("empty duration"));
        assert!(parse_duration("1m30s").is_err());
    }

    #[test]
    fn duration_overflow() {
        assert_eq!(
            parse_duration("99999999999999999999999s").unwrap_err(),
            "duration `99999999999999999999999s` is too large"
        );
        assert!(parse_duration("5000000000h").is_err());
        // The largest count still fits: u32::MAX hours is about 490,000 years.
        assert!(parse_duration("4294967295h").is_ok());
    }

    #[test]
    fn sizes_binary_and_decimal() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("1GiB"), Ok(1_073_741_824));
        assert_eq!(parse_size("16KB"), Ok(16_000));
        assert_eq!(parse_size("16kB"), Ok(16_000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn size_errors() {
        assert_eq!(
            parse_size("-1KiB").unwrap_err(),
            "size cannot be negative: `-1KiB`"
        );
        assert_eq!(
            parse_size("64kib").unwrap_err(),
            "invalid size `64kib`: unknown unit `kib` (units: `B`, `KiB`, `MiB`, `GiB`, `KB`, `MB` or `GB`)"
        );
        assert!(parse_size("KiB")
            .unwrap_err()
            .contains("expected an integer"));
        assert_eq!(
            parse_size("99999999999GiB").unwrap_err(),
            "size `99999999999GiB` is too large"
        );
        assert!(parse_size("18446744073709551616")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("1.5MiB").is_err());
    }

    #[test]
    fn never_panics_on_odd_text() {
        for text in ["", " ", "µ", "1µ", "9\u{0}", "١٢s", "+1s", "0x10", "1e3"] {
            let _ = parse_duration(text);
            let _ = parse_size(text);
        }
    }
}
