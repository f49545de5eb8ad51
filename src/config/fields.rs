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
    /// Each route's `cluster` value.
    pub cluster_refs: Vec<(&'a str, Node<'a>)>,
    /// The config file's directory: relative file names in it are read from there.
    pub base_dir: std::path::PathBuf,
}

/// An optional count of connections, at least 1 (`Some(None)` when absent).
pub(super) fn optional_count(
    map: &Map<'_>,
    key: &str,
    diag: &mut Diagnostics,
) -> Option<Option<u64>> {
    match map.optional(key) {
        Some(n) => n
            .int_in(diag, "a number of connections", 1..=i64::from(u32::MAX))
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
