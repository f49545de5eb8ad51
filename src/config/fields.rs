//! Decoders shared by the config's sections: lists, names, durations, sizes, counts and
//! choices, and the [`Marks`] they leave for the checks that span sections. Each section
//! module (`decode`, `decode_proxy`, `decode_log`, `decode_headers`) imports from here,
//! and none imports another.

use std::net::SocketAddr;
use std::time::Duration;

use super::addr::check_name;
use super::error::Diagnostics;
use super::model::Address;
use super::node::{Map, Node};
use super::suggest;
use super::units::{parse_duration, parse_size};

/// Nodes kept for the checks that span sections (see `validate`).
#[derive(Debug, Default)]
pub(crate) struct Marks<'a> {
    pub admin: Option<(SocketAddr, Node<'a>)>,
    pub listener_names: Vec<(&'a str, Node<'a>)>,
    pub listener_addresses: Vec<(Address, Node<'a>)>,
    pub cluster_names: Vec<(&'a str, Node<'a>)>,
    /// Each route's (and remote JWKS's) `cluster` value.
    pub cluster_refs: Vec<(&'a str, Node<'a>)>,
    /// The config file's directory: relative file names in it are read from there.
    pub base_dir: std::path::PathBuf,
    /// What routes' `auth` may name, from the top-level `auth` (decoded before the
    /// listeners); `None` while that section is too broken to say, so that its names
    /// are not also reported as unknown at every route.
    pub auth: Option<AuthMarks>,
    /// The explicit rate-limit `name`s of the listener being read (its own and its
    /// routes'), checked for repeats once it is read (`decode_ratelimit::unique_names`).
    pub rate_limit_names: Vec<(&'a str, Node<'a>)>,
    /// Every listener's `tracing` key, checked against the top-level `tracing` once the
    /// file is read (`decode_observability::check_listeners`).
    pub listener_tracing: Vec<Node<'a>>,
    /// The `tracing` keys of the routes of the listener being read, refused when the
    /// listener has no tracing (`decode_observability::check_routes`).
    pub route_tracing: Vec<Node<'a>>,
}

/// The names a native `auth` requirement may use, and the listeners' CORS preflight
/// bypass (see `decode_auth`).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthMarks {
    /// The JWT providers' names, in order.
    pub jwt_providers: Vec<String>,
    /// Whether `auth.api_keys` is configured.
    pub api_keys: bool,
    pub bypass_cors_preflight: bool,
}

/// An optional count of connections, at least 1 (`Some(None)` when absent).
pub(super) fn optional_count(
    map: &Map<'_>,
    key: &str,
    diag: &mut Diagnostics,
) -> Option<Option<u64>> {
    optional_count_of(map, key, "a number of connections", diag)
}

/// An optional count of `what` (named in its error), at least 1 and at most 2³²
/// (`Some(None)` when absent).
pub(super) fn optional_count_of(
    map: &Map<'_>,
    key: &str,
    what: &str,
    diag: &mut Diagnostics,
) -> Option<Option<u64>> {
    match map.optional(key) {
        Some(n) => n
            .int_in(diag, what, 1..=i64::from(u32::MAX))
            .and_then(|n| u64::try_from(n).ok())
            .map(Some),
        None => Some(None),
    }
}

/// Decodes every item (reporting each failure) and succeeds only if all did.
pub(super) fn list<'a, T>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    mut item: impl FnMut(&Node<'a>, &mut Diagnostics) -> Option<T>,
) -> Option<Vec<T>> {
    let items = node.seq(diag)?;
    let decoded: Vec<Option<T>> = items.iter().map(|n| item(n, diag)).collect();
    decoded.into_iter().collect()
}

pub(super) fn non_empty_list<'a, T>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    what: &str,
    item: impl FnMut(&Node<'a>, &mut Diagnostics) -> Option<T>,
) -> Option<Vec<T>> {
    let items = list(node, diag, item)?;
    if items.is_empty() {
        node.error(diag, format!("at least one {what} is required"));
        return None;
    }
    Some(items)
}

/// One of a fixed set of words, with a did-you-mean hint when it is close to one.
pub(super) fn choice<T: Clone>(
    node: &Node<'_>,
    diag: &mut Diagnostics,
    choices: &[(&str, T)],
) -> Option<T> {
    let words = choices
        .iter()
        .map(|(word, _)| format!("`{word}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(text) = node.peek_str() else {
        node.wrong_type(diag, &format!("one of {words}"));
        return None;
    };
    if let Some((_, value)) = choices.iter().find(|(word, _)| *word == text) {
        return Some(value.clone());
    }
    let hint = suggest::did_you_mean(text, choices.iter().map(|(word, _)| *word));
    node.error(
        diag,
        format!("unknown value {text:?}: expected one of {words}{hint}"),
    );
    None
}

/// The section's required `name`, recorded in `names` for the uniqueness check that
/// `validate` runs once the whole file is read.
pub(super) fn marked_name<'a>(
    map: &Map<'a>,
    diag: &mut Diagnostics,
    names: &mut Vec<(&'a str, Node<'a>)>,
) -> Option<&'a str> {
    let node = map.field(diag, "name")?;
    let name = name(&node, diag)?;
    names.push((name, node));
    Some(name)
}

pub(super) fn name<'a>(node: &Node<'a>, diag: &mut Diagnostics) -> Option<&'a str> {
    let text = node.str(diag)?;
    match check_name(text) {
        Ok(()) => Some(text),
        Err(message) => {
            node.error(diag, message);
            None
        }
    }
}

/// A duration that must be non-zero: every configured duration is a timeout, and a zero
/// timeout would fire before any work is done.
pub(super) fn duration(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Duration> {
    let text = node.scalar_text(diag, "a duration such as `2s`")?;
    match parse_duration(&text) {
        Ok(d) if d.is_zero() => {
            node.error(diag, "duration must be greater than zero");
            None
        }
        Ok(d) => Some(d),
        Err(message) => {
            node.error(diag, message);
            None
        }
    }
}

pub(super) fn optional_duration(
    map: &Map<'_>,
    key: &str,
    default: Duration,
    diag: &mut Diagnostics,
) -> Option<Duration> {
    match map.optional(key) {
        Some(node) => duration(&node, diag),
        None => Some(default),
    }
}

/// A non-zero byte size that fits in `usize`.
pub(super) fn size(node: &Node<'_>, diag: &mut Diagnostics) -> Option<usize> {
    let text = node.scalar_text(diag, "a size such as `64KiB` or a number of bytes")?;
    let bytes = match parse_size(&text) {
        Ok(bytes) => bytes,
        Err(message) => {
            node.error(diag, message);
            return None;
        }
    };
    match usize::try_from(bytes) {
        Ok(0) => {
            node.error(diag, "size must be at least 1 byte");
            None
        }
        Ok(bytes) => Some(bytes),
        Err(_) => {
            node.error(diag, format!("size `{text}` is too large"));
            None
        }
    }
}

/// A byte of an HTTP token (a field or method name, RFC 9110 5.6.2).
pub(super) fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An optional `true`/`false`, `default` when absent.
pub(super) fn optional_bool(
    map: &Map<'_>,
    key: &str,
    default: bool,
    diag: &mut Diagnostics,
) -> Option<bool> {
    let Some(n) = map.optional(key) else {
        return Some(default);
    };
    let value = n.peek_bool();
    if value.is_none() {
        n.wrong_type(diag, "true or false");
    }
    value
}

/// Which of `keys` the mapping has, in `keys` order.
pub(super) fn given<'a>(map: &Map<'a>, keys: &[&'static str]) -> Vec<(&'static str, Node<'a>)> {
    keys.iter()
        .filter_map(|k| map.optional(k).map(|n| (*k, n)))
        .collect()
}

/// The one of `keys` the mapping has; with none or several, `message` is the error,
/// except when it has none and keys outside `known` (those have their errors already).
pub(super) fn exactly_one<'a>(
    (node, map): (&Node<'a>, &Map<'a>),
    (keys, known): (&[&'static str], &[&str]),
    diag: &mut Diagnostics,
    message: &str,
) -> Option<(&'static str, Node<'a>)> {
    let mut given = given(map, keys);
    if given.len() == 1 {
        return given.pop();
    }
    if !(given.is_empty() && has_unknown_keys(node, known)) {
        map.error(diag, message);
    }
    None
}

/// Whether a mapping has keys outside `known`: those have their errors already, and
/// "needs one of" would only repeat them.
pub(super) fn has_unknown_keys(node: &Node<'_>, known: &[&str]) -> bool {
    let mut scratch = Diagnostics::new(std::path::Path::new(""));
    node.entries(&mut scratch)
        .is_some_and(|e| e.iter().any(|(k, _, _)| !known.contains(k)))
}
