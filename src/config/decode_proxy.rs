//! Schema for each listener's forwarding policy (trust, forwarding headers, limits); the
//! clusters it forwards to are `decode_cluster`.
//!
//! Kept apart from `decode.rs` so the core sections stay short; it uses the same helpers
//! and reports errors the same way (file:line:column: path: message, every problem of a
//! section at once).

use super::error::Diagnostics;
use super::fields::{choice, list, optional_bool, size};
use super::model::{Cidr, ExpectContinue, ProxyProtocol, ProxySettings, TrustedProxies};
use super::node::{Map, Node};

const TRUSTED_KEYS: &[&str] = &["hops", "cidrs"];

/// The forwarding keys of a listener (listed in `decode::LISTENER_KEYS`).
pub(super) fn proxy_settings(map: &Map<'_>, diag: &mut Diagnostics) -> Option<ProxySettings> {
    let defaults = ProxySettings::default();
    let trusted_proxies = match map.optional("trusted_proxies") {
        Some(n) => trusted_proxies(&n, diag),
        None => Some(TrustedProxies::default()),
    };
    let request_id = match map.optional("request_id") {
        Some(n) => bool_value(&n, diag),
        None => Some(defaults.request_id),
    };
    let via = header_value_opt(map, "via", diag);
    let server_header = header_value_opt(map, "server_header", diag);
    let hide_upstream_identity = optional_bool(map, "hide_upstream_identity", false, diag);
    let max_request_body = match map.optional("max_request_body") {
        Some(n) => size(&n, diag).map(|s| Some(s as u64)),
        None => Some(None),
    };
    let expect_continue = match map.optional("expect_continue") {
        Some(n) => choice(
            &n,
            diag,
            &[
                ("answer", ExpectContinue::Answer),
                ("forward", ExpectContinue::Forward),
            ],
        ),
        None => Some(defaults.expect_continue),
    };
    let buffer_limit = match map.optional("buffer_limit") {
        Some(n) => size(&n, diag).and_then(|s| {
            if s < 16 * 1024 {
                n.error(diag, "buffer_limit must be at least 16KiB (one read chunk)");
                return None;
            }
            Some(s)
        }),
        None => Some(defaults.buffer_limit),
    };
    Some(ProxySettings {
        trusted_proxies: trusted_proxies?,
        request_id: request_id?,
        via: via?,
        server_header: server_header?,
        // A native listener's `server_header` replaces the upstream's.
        server_header_if_absent: false,
        hide_upstream_identity: hide_upstream_identity?,
        max_request_body: max_request_body?,
        expect_continue: expect_continue?,
        buffer_limit: buffer_limit?,
        envoy_headers: false,
        envoy: None,
    })
}

fn bool_value(node: &Node<'_>, diag: &mut Diagnostics) -> Option<bool> {
    let value = node.peek_bool();
    if value.is_none() {
        node.wrong_type(diag, "true or false");
    }
    value
}

/// An optional header value: printable ASCII, no CR/LF (header injection).
fn header_value_opt(map: &Map<'_>, key: &str, diag: &mut Diagnostics) -> Option<Option<String>> {
    let Some(node) = map.optional(key) else {
        return Some(None);
    };
    let text = node.str(diag)?;
    let valid = !text.trim().is_empty() && text.chars().all(|c| c == ' ' || c.is_ascii_graphic());
    if !valid {
        node.error(
            diag,
            format!("{text:?} is not a valid header value (printable ASCII, not empty)"),
        );
        return None;
    }
    Some(Some(text.to_owned()))
}

/// A listener's `proxy_protocol`: `{mode: required | optional, trusted_sources: [cidr]}`.
/// `trusted_sources` is required: a header from anyone would let any client choose its
/// address (write `0.0.0.0/0` and `::/0` to mean that).
pub(super) fn proxy_protocol(node: &Node<'_>, diag: &mut Diagnostics) -> Option<ProxyProtocol> {
    let map = node.map(diag, &["mode", "trusted_sources"])?;
    let required = match map.optional("mode") {
        Some(n) => choice(&n, diag, &[("required", true), ("optional", false)]),
        None => Some(true),
    };
    let trusted_sources = map.field(diag, "trusted_sources").and_then(|n| {
        let cidrs = list(&n, diag, |item, diag| item.parse_str(diag, parse_cidr))?;
        if cidrs.is_empty() {
            n.error(
                diag,
                "an empty `trusted_sources` would refuse every header; list the load \
                 balancers' networks",
            );
            return None;
        }
        Some(cidrs)
    });
    Some(ProxyProtocol {
        required: required?,
        trusted_sources: trusted_sources?,
    })
}

fn trusted_proxies(node: &Node<'_>, diag: &mut Diagnostics) -> Option<TrustedProxies> {
    let map = node.map(diag, TRUSTED_KEYS)?;
    let hops = match map.optional("hops") {
        Some(n) => n
            .int_in(diag, "a hop count", 0..=16)
            .and_then(|h| u32::try_from(h).ok()),
        None => Some(0),
    };
    let cidrs = match map.optional("cidrs") {
        Some(n) => list(&n, diag, |item, diag| item.parse_str(diag, parse_cidr)),
        None => Some(Vec::new()),
    };
    Some(TrustedProxies {
        hops: hops?,
        cidrs: cidrs?,
    })
}

/// `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128).
pub(super) fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (addr, len) = match text.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (text, None),
    };
    let network: std::net::IpAddr = addr.parse().map_err(|_| {
        format!("invalid network {text:?}: expected e.g. `10.0.0.0/8` or `fd00::/8`")
    })?;
    let max = if network.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        None => max,
        Some(len) => len
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("invalid prefix length in {text:?}: 0..={max}"))?,
    };
    Ok(Cidr {
        network,
        prefix_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_with_and_without_a_length() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().prefix_len, 8);
        assert_eq!(parse_cidr("::1").unwrap().prefix_len, 128);
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("ten/8").is_err());
    }
}
