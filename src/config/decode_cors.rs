//! `cors` on a listener or a route (Envoy's `CorsPolicy`, with lists where Envoy takes
//! comma-separated strings; both are accepted).
//!
//! `allow_origin` items are an exact origin (`https://app.example.com`, or `*` for any)
//! or one of `{exact|prefix|suffix|contains|regex: ...}` (Envoy's `StringMatcher`). Method
//! and header names are tokens; `max_age` is a duration (Envoy's string of seconds is
//! accepted too).

use super::error::Diagnostics;
use super::fields::{duration, list, optional_bool, token_byte};
use super::model::{CorsPolicy, OriginMatch};
use super::node::Node;
use super::pattern::anchored_regex;

const CORS_KEYS: &[&str] = &[
    "allow_origin",
    "allow_methods",
    "allow_headers",
    "expose_headers",
    "max_age",
    "allow_credentials",
];
const MATCH_KEYS: &[&str] = &["exact", "prefix", "suffix", "contains", "regex"];

/// A `cors` map.
pub(super) fn policy(node: &Node<'_>, diag: &mut Diagnostics) -> Option<CorsPolicy> {
    let map = node.map(diag, CORS_KEYS)?;
    let allow_origins = map
        .field(diag, "allow_origin")
        .and_then(|n| list(&n, diag, origin));
    if let (Some(origins), Some(n)) = (&allow_origins, map.optional("allow_origin")) {
        if origins.is_empty() {
            n.error(diag, "`allow_origin` needs at least one origin");
            return None;
        }
    }
    let tokens = |key: &str, diag: &mut Diagnostics| match map.optional(key) {
        Some(n) => token_list(&n, diag),
        None => Some(Vec::new()),
    };
    let allow_methods = tokens("allow_methods", diag);
    let allow_headers = tokens("allow_headers", diag);
    let expose_headers = tokens("expose_headers", diag);
    let max_age = match map.optional("max_age") {
        Some(n) => match n.peek_str().and_then(|s| s.parse::<u64>().ok()) {
            // Envoy's form: a string of seconds.
            Some(secs) => Some(Some(std::time::Duration::from_secs(secs))),
            None => duration(&n, diag).map(Some),
        },
        None => Some(None),
    };
    let allow_credentials = optional_bool(&map, "allow_credentials", false, diag);
    Some(CorsPolicy {
        allow_origins: allow_origins?,
        allow_methods: allow_methods?,
        allow_headers: allow_headers?,
        expose_headers: expose_headers?,
        max_age: max_age?,
        allow_credentials: allow_credentials?,
    })
}

fn origin(node: &Node<'_>, diag: &mut Diagnostics) -> Option<OriginMatch> {
    if let Some(text) = node.peek_str() {
        return field_value(node, text, diag).map(|t| OriginMatch::Exact(t.to_owned()));
    }
    let map = node.map(diag, MATCH_KEYS)?;
    let given: Vec<_> = MATCH_KEYS
        .iter()
        .filter_map(|k| map.optional(k).map(|n| (*k, n)))
        .collect();
    let [(kind, n)] = given.as_slice() else {
        map.error(
            diag,
            "an origin matcher has exactly one of `exact`, `prefix`, `suffix`, `contains` or \
             `regex`",
        );
        return None;
    };
    let text = n.str(diag)?;
    if *kind == "regex" {
        if let Err(message) = anchored_regex(text) {
            n.error(diag, format!("invalid regex {text:?}: {message}"));
            return None;
        }
        return Some(OriginMatch::Regex(text.to_owned()));
    }
    let text = field_value(n, text, diag)?.to_owned();
    Some(match *kind {
        "exact" => OriginMatch::Exact(text),
        "prefix" => OriginMatch::Prefix(text),
        "suffix" => OriginMatch::Suffix(text),
        _ => OriginMatch::Contains(text),
    })
}

/// A list of tokens, or Envoy's comma-separated string of them.
fn token_list(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<String>> {
    let items: Vec<String> = match node.peek_str() {
        Some(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        None => list(node, diag, |item, diag| item.str(diag).map(str::to_owned))?,
    };
    if let Some(bad) = items
        .iter()
        .find(|t| t.is_empty() || !t.bytes().all(token_byte))
    {
        node.error(
            diag,
            format!("{bad:?} is not a method or header name (an HTTP token)"),
        );
        return None;
    }
    Some(items)
}

fn field_value<'a>(node: &Node<'_>, text: &'a str, diag: &mut Diagnostics) -> Option<&'a str> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
        node.error(
            diag,
            format!("{text:?} is not an origin (printable ASCII without spaces)"),
        );
        return None;
    }
    Some(text)
}
