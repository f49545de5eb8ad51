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
        }
    }

    pub fn test(&self, found: Option<&[u8]>) -> bool {
        match (self, found) {
            (Value::Present(want), found) => *want == found.is_some(),
            (_, None) => false,
            (Value::Exact(e), Some(v)) => v == &e[..],
            (Value::Prefix(p), Some(v)) => v.starts_with(p),
            (Value::Regex(r), Some(v)) => r.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}
