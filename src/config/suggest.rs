//! "Did you mean ...?" hints for misspelt keys and names.
//!
//! Design: Jaro-Winkler similarity, because config typos are mostly a dropped, doubled or
//! swapped letter in short identifiers (`adress`, `clustr`, `orderz`), which it scores high,
//! and it rewards a shared prefix, which is how people misremember names (`timeout` vs
//! `time_out`). The threshold is set so that unrelated words of similar length do not
//! produce a confusing hint; a wrong suggestion is worse than none.

/// Candidates must score at least this (1.0 is identical).
const THRESHOLD: f64 = 0.8;

/// The candidate closest to `input`, if any is close enough.
pub(crate) fn closest<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(input, candidate);
        // Strictly greater: on a tie the first candidate (in declaration order) wins.
        if score >= THRESHOLD && best.is_none_or(|(top, _)| score > top) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// `"; did you mean `x`?"`, or nothing when there is no close candidate.
pub(crate) fn did_you_mean<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    match closest(input, candidates) {
        Some(candidate) => format!("; did you mean `{candidate}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["name", "address", "routes", "http1", "idle_timeout"];

    #[test]
    fn close_typos_are_suggested() {
        assert_eq!(closest("adress", KEYS.iter().copied()), Some("address"));
        assert_eq!(closest("route", KEYS.iter().copied()), Some("routes"));
        assert_eq!(closest("nmae", KEYS.iter().copied()), Some("name"));
        assert_eq!(
            closest("idle_timout", KEYS.iter().copied()),
            Some("idle_timeout")
        );
        assert_eq!(closest("http", KEYS.iter().copied()), Some("http1"));
        assert_eq!(closest("orderz", ["orders", "users"]), Some("orders"));
    }

    #[test]
    fn unrelated_words_are_not() {
        assert_eq!(closest("banana", KEYS.iter().copied()), None);
        assert_eq!(closest("x", KEYS.iter().copied()), None);
        assert_eq!(closest("", KEYS.iter().copied()), None);
        assert_eq!(closest("payments", ["orders", "users"]), None);
        assert_eq!(closest("anything", []), None);
    }

    #[test]
    fn hint_text() {
        assert_eq!(
            did_you_mean("adress", KEYS.iter().copied()),
            "; did you mean `address`?"
        );
        assert_eq!(did_you_mean("zzz", KEYS.iter().copied()), "");
    }
}
