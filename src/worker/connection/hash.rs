//! A request's hash for ring-hash and Maglev clusters, from the route's hash rules
//! (Envoy's `RouteAction.hash_policy`).
//!
//! Each rule that finds its value contributes xxHash64 of it, folded into the previous
//! ones as Envoy folds them (rotate left one bit, then xor); a `terminal` rule that
//! produced a hash ends the list. No rule producing anything leaves the hash unset and
//! the cluster picks at random, as Envoy does. Values hashed, as Envoy's: a header's
//! value, a cookie's value, the client's IP as text (after the trusted-proxy policy), a
//! query parameter's value. A cookie rule with a `ttl` whose cookie is absent makes one:
//! its value is xxHash64 of the client's `ip:port` in hex (the same for every request of
//! a connection, different behind one NAT), the request is hashed on that value, and the
//! response carries `Set-Cookie: name="value"; Max-Age=ttl; Path=path; HttpOnly`, so the
//! client's next requests land on the same endpoint. Only requests to hashing clusters
//! pay for any of this.

use std::fmt::Write as _;

use super::Connection;
use crate::{
    balance::{combine, hash_bytes},
    config::{HashRule, HashSource},
    http1::Request,
    peer::Peer,
};

impl Connection<'_> {
    /// The hash of the request whose head is `buf[start..start + head_len]` under
    /// `rules`; `None` when no rule found its value. A generated cookie is left in
    /// `self.filters.reply_lines` for the response.
    #[inline(never)]
    pub(super) fn request_hash(&mut self, head_len: usize, rules: &[HashRule]) -> Option<u64> {
        let mut hash = None;
        for rule in rules {
            let head = &self.buf[self.start..self.start + head_len];
            let query = self
                .target
                .splitn(2, |&b| b == b'?')
                .nth(1)
                .unwrap_or_default();
            let parts = (&self.request, head, self.filters.client, query);
            let found = match (source_hash(parts, &rule.source), &rule.source) {
                (Some(found), _) => Some(found),
                (None, HashSource::Cookie { name, ttl, path }) => {
                    ttl.map(|ttl| self.make_cookie(name, ttl, path.as_deref()))
                }
                (None, _) => None,
            };
            if let Some(next) = found {
                hash = Some(combine(hash, next));
                if rule.terminal {
                    break;
                }
            }
        }
        hash
    }

    /// Adds the lines forwarding left for the response (a generated hash cookie) to
    /// the response head being relayed.
    #[cold]
    pub(super) fn add_reply_lines(&mut self) {
        self.response.overlay.add_line(&self.filters.reply_lines);
    }

    /// Envoy's cookie for a client without one: its value is the hash of the client's
    /// `ip:port` in hex; the request is hashed on that value, and the `Set-Cookie` line
    /// waits in `reply_lines` for the response.
    #[cold]
    fn make_cookie(&mut self, name: &str, ttl: std::time::Duration, path: Option<&str>) -> u64 {
        let peer = match self.peer.ip() {
            Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", self.peer_port),
            Some(ip) => format!("{ip}:{}", self.peer_port),
            None => String::from("unix"),
        };
        let value = format!("{:016x}", hash_bytes(peer.as_bytes()));
        let mut line = format!("set-cookie: {name}=\"{value}\"");
        // Whole seconds, as Envoy writes them; under one: a session cookie.
        if ttl.as_secs() != 0 {
            let _ = write!(line, "; Max-Age={}", ttl.as_secs());
        }
        if let Some(path) = path {
            let _ = write!(line, "; Path={path}");
        }
        line.push_str("; HttpOnly\r\n");
        self.filters.reply_lines.extend_from_slice(line.as_bytes());
        hash_bytes(value.as_bytes())
    }
}

/// The hash of a request under `rules` from its parts (the parsed request, its head,
/// the client, the query), making no cookie: a weighted split decides before the
/// endpoint's pick would make one.
#[inline(never)]
pub(super) fn found_hash(parts: Parts<'_>, rules: &[HashRule]) -> Option<u64> {
    let mut hash = None;
    for rule in rules {
        if let Some(next) = source_hash(parts, &rule.source) {
            hash = Some(combine(hash, next));
            if rule.terminal {
                break;
            }
        }
    }
    hash
}

/// What a hash rule reads: the parsed request, its head, the client (after the trust
/// policy) and the query.
pub(super) type Parts<'a> = (&'a Request, &'a [u8], Peer, &'a [u8]);

/// What one rule finds in the request, hashed.
fn source_hash((request, head, client, query): Parts<'_>, source: &HashSource) -> Option<u64> {
    match source {
        HashSource::Header(name) => request.header(head, name).map(hash_bytes),
        HashSource::SourceIp => {
            let ip = client.ip()?;
            // The address as text, written on the stack (no allocation).
            let mut text = [0u8; 48];
            let mut cursor = std::io::Cursor::new(&mut text[..]);
            let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{ip}"));
            let len = usize::try_from(cursor.position()).unwrap_or(0);
            Some(hash_bytes(&text[..len]))
        }
        HashSource::Query(name) => {
            crate::auth::jwt::extract::query_param(query, name).map(hash_bytes)
        }
        HashSource::Cookie { name, .. } => request
            .headers
            .iter()
            .filter(|h| h.is(head, "cookie"))
            .find_map(|h| cookie_value(h.value(head), name.as_bytes()))
            .map(hash_bytes),
    }
}

/// The value of cookie `name` in one `Cookie` header's value (`a=1; b="2"`), without
/// the quotes a quoted value carries.
fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        if &pair[..eq] != name {
            return None;
        }
        let value = &pair[eq + 1..];
        Some(match value {
            [b'"', inner @ .., b'"'] => inner,
            _ => value,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::cookie_value;

    #[test]
    fn cookie_values_are_found_by_exact_name_and_unquoted() {
        let header = b"a=1; sticky=\"abc\"; stickyx=2";
        assert_eq!(cookie_value(header, b"sticky"), Some(&b"abc"[..]));
        assert_eq!(cookie_value(header, b"a"), Some(&b"1"[..]));
        assert_eq!(cookie_value(header, b"stick"), None);
        assert_eq!(cookie_value(b"", b"a"), None);
        assert_eq!(cookie_value(b"x=", b"x"), Some(&b""[..]));
    }
}
