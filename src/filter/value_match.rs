//! One compiled test of a header or query value (exact, prefix, anchored regex,
//! presence), shared by route conditions and the filters that match headers (Envoy's
//! rate-limit `header_value_match`), so the two cannot disagree.

use regex::bytes::Regex;

use crate::config::{self, pattern::anchored_regex};

#[derive(Debug, Clone)]
pub enum Value {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    /// `None` never matches (see `compile`).
    Regex(Option<Regex>),
    Present(bool),
    /// `[start, end)`, of a value that reads as an integer.
    Range(i64, i64),
    Inverted(Box<Value>),
    MissingAsEmpty(Box<Value>),
}

impl Value {
    pub fn compile(value: &config::ValueMatch) -> Value {
        match value {
            config::ValueMatch::Exact(s) => Value::Exact(s.as_bytes().into()),
            config::ValueMatch::Prefix(s) => Value::Prefix(s.as_bytes().into()),
            // Checked when the config was read; should it fail here anyway, the condition
            // can never hold (a pattern that matches nothing), which fails closed.
            config::ValueMatch::Regex(p) => Value::Regex(anchored_regex(p).ok()),
            config::ValueMatch::Present(b) => Value::Present(*b),
            config::ValueMatch::Range(start, end) => Value::Range(*start, *end),
            config::ValueMatch::Inverted(inner) => Value::Inverted(Box::new(Value::compile(inner))),
            config::ValueMatch::MissingAsEmpty(inner) => {
                Value::MissingAsEmpty(Box::new(Value::compile(inner)))
            }
        }
    }

    pub fn test(&self, found: Option<&[u8]>) -> bool {
        match (self, found) {
            (Value::Present(want), found) => *want == found.is_some(),
            (Value::MissingAsEmpty(inner), found) => inner.test(Some(found.unwrap_or_default())),
            (_, None) => false,
            (Value::Inverted(inner), found) => !inner.test(found),
            (Value::Range(start, end), Some(v)) => std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim_ascii().parse::<i64>().ok())
                .is_some_and(|n| (*start..*end).contains(&n)),
            (Value::Exact(e), Some(v)) => v == &e[..],
            (Value::Prefix(p), Some(v)) => v.starts_with(p),
            (Value::Regex(r), Some(v)) => r.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::ValueMatch as M;

    /// Envoy's rules: an absent header fails every test but presence, unless it is read
    /// as empty; an inverted test fails on an absent header; a range takes integers.
    #[test]
    fn ranges_inversions_and_missing_headers_follow_envoy() {
        let value = |m: M| Value::compile(&m);
        let range = value(M::Range(0, 10));
        assert!(range.test(Some(b"0")) && range.test(Some(b" 9 ")));
        assert!(!range.test(Some(b"10")) && !range.test(Some(b"-1")));
        assert!(!range.test(Some(b"x")) && !range.test(None));
        let not_exact = value(M::Inverted(Box::new(M::Exact("a".into()))));
        assert!(not_exact.test(Some(b"b")) && !not_exact.test(Some(b"a")));
        assert!(!not_exact.test(None), "absent: no match, inverted or not");
        // Envoy's example: a range, inverted, missing read as empty: matches.
        let example = value(M::MissingAsEmpty(Box::new(M::Inverted(Box::new(
            M::Range(0, 10),
        )))));
        assert!(example.test(None) && example.test(Some(b"11")));
        assert!(!example.test(Some(b"5")));
        let empty = value(M::MissingAsEmpty(Box::new(M::Exact(String::new()))));
        assert!(empty.test(None) && empty.test(Some(b"")) && !empty.test(Some(b"a")));
    }
}
