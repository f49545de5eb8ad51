//! Header edits: `request_headers_to_add`, `request_headers_to_remove`,
//! `response_headers_to_add`, `response_headers_to_remove`, on a listener or a route,
//! with Envoy's names and shapes (`{name, value, append}`; `append` defaults to true);
//! values may hold `%VARIABLE%`s (`format`).
//!
//! Fields that carry the message's framing, its connection's management or its routing
//! (`host`, `content-length`, `transfer-encoding`, `connection` and the other hop-by-hop
//! fields, pseudo-headers) are refused by name: editing them would desynchronise ringway
//! from the peer, and Envoy refuses most of them too.

use super::error::Diagnostics;
use super::fields::{choice, list, token_byte};
use super::format::{self, Side};
use super::model::{AddOnlyIf, HeaderAdd, HeaderMutations};
use super::node::{Map, Node};

const ADD_KEYS: &[&str] = &["name", "value", "append", "append_action"];

const PROTECTED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// The four keys of `map`.
pub(super) fn mutations(map: &Map<'_>, diag: &mut Diagnostics) -> Option<HeaderMutations> {
    let adds = |key: &str, side: Side, diag: &mut Diagnostics| match map.optional(key) {
        Some(n) => list(&n, diag, |item, diag| add(item, side, diag)),
        None => Some(Vec::new()),
    };
    let removes = |key: &str, diag: &mut Diagnostics| match map.optional(key) {
        Some(n) => list(&n, diag, |item, diag| {
            field_name(item, diag).map(str::to_owned)
        }),
        None => Some(Vec::new()),
    };
    let request_add = adds("request_headers_to_add", Side::Request, diag);
    let request_remove = removes("request_headers_to_remove", diag);
    let response_add = adds("response_headers_to_add", Side::Response, diag);
    let response_remove = removes("response_headers_to_remove", diag);
    Some(HeaderMutations {
        request_add: request_add?,
        request_remove: request_remove?,
        response_add: response_add?,
        response_remove: response_remove?,
    })
}

fn add(node: &Node<'_>, side: Side, diag: &mut Diagnostics) -> Option<HeaderAdd> {
    let map = node.map(diag, ADD_KEYS)?;
    let name = map.field(diag, "name").and_then(|n| field_name(&n, diag));
    let value = map.field(diag, "value").and_then(|n| {
        let text = n.scalar_text(diag, "a header value")?;
        let ok = text
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80);
        if !ok {
            n.error(
                diag,
                "a header value may not contain control characters (CR, LF, NUL...)",
            );
            return None;
        }
        // `%VARIABLE%`s must be ones ringway fills on this side.
        if let Err(message) = format::parse(text.trim(), side) {
            n.error(diag, message);
            return None;
        }
        Some(text.trim().to_owned())
    });
    let append = match map.optional("append") {
        Some(n) => {
            let value = n.peek_bool();
            if value.is_none() {
                n.wrong_type(diag, "`true` or `false`");
            }
            value
        }
        None => Some(true),
    };
    // Envoy's `append_action`, lowercase; it stands for `append`.
    let action = match map.optional("append_action") {
        Some(n) => {
            if let Some(other) = map.optional("append") {
                other.error(diag, "`append` and `append_action` exclude each other");
            }
            choice(
                &n,
                diag,
                &[
                    ("append_if_exists_or_add", (true, AddOnlyIf::Always)),
                    ("add_if_absent", (true, AddOnlyIf::Absent)),
                    ("overwrite_if_exists_or_add", (false, AddOnlyIf::Always)),
                    ("overwrite_if_exists", (false, AddOnlyIf::Present)),
                ],
            )
        }
        None => append.map(|a| (a, AddOnlyIf::Always)),
    };
    let (append, only_if) = action?;
    Some(HeaderAdd {
        name: name?.to_owned(),
        value: value?,
        append,
        only_if,
    })
}

fn field_name<'a>(node: &Node<'a>, diag: &mut Diagnostics) -> Option<&'a str> {
    let name = node.str(diag)?;
    match check_field_name(name) {
        Ok(()) => Some(name),
        Err(message) => {
            node.error(diag, message);
            None
        }
    }
}

/// Whether `name` may be added or removed: a token, and not one of [`PROTECTED`]
/// (the Envoy loader applies the same rule).
pub(super) fn check_field_name(name: &str) -> Result<(), String> {
    let token = !name.is_empty() && name.bytes().all(token_byte);
    if !token {
        return Err(format!(
            "{name:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    if let Some(p) = PROTECTED.iter().find(|p| p.eq_ignore_ascii_case(name)) {
        return Err(format!(
            "`{p}` cannot be edited: it carries the message's framing, connection or routing"
        ));
    }
    Ok(())
}
