//! Request-path normalisation before routing, so that a route guarding `/admin/` sees
//! every spelling of `/admin/` (`/x/../admin/`, `/%2e%2e/admin/`, `//admin/`).
//!
//! Input: the path part of a request target (`/p?q`; the query is split off and returned
//! untouched). Output: the normalised path, either borrowed from the input (fast path) or
//! written into a caller-owned scratch `Vec` that is reused across requests, so steady
//! state allocates nothing. Steps, in order:
//!
//! 1. Reject raw control bytes (NUL included), `#` (a fragment is never sent, RFC 9112
//!    3.2.1), `%00`, and malformed escapes (`%zz`, a truncated `%`): 400.
//! 2. Percent-escapes: unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded (RFC 3986
//!    6.2.2.2), so `%2e` is a dot; the rest keep their escape with upper-case hex
//!    (6.2.2.1). `%2F` / `%5C` follow [`EscapedSlashes`]: `keep` leaves them escaped
//!    (data, not a separator), `reject` answers 400, `unescape` turns both into `/`
//!    *before* step 3, so they can then take part in dot-segment removal.
//! 3. Dot segments are removed (RFC 3986 5.2.4); `..` never climbs above the root.
//! 4. With `merge_slashes`, runs of `/` collapse to one.
//!
//! Fast path: a path without `%`, without `/.` and (when merging) without `//` is already
//! normal, and is returned borrowed after one scan. The result is idempotent: normalising
//! it again changes nothing. Paths are case-sensitive; non-ASCII bytes pass through.
//! The target must start with `/`, or be exactly `*` (OPTIONS), which passes unchanged;
//! absolute-form targets are the codec's business: it hands over their path part, and
//! an empty path part is `/`.

use crate::config::{EscapedSlashes, PathNormalization};

/// Why a target cannot be routed; the caller answers 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not `/…` and not `*`.
    NotOriginForm,
    /// A control byte, `#`, or `%00`.
    ForbiddenByte,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// `%2F` / `%5C` under `escaped_slashes: reject`.
    EscapedSlash,
}

/// A normalised target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// The path to route on (and later to forward).
    pub path: &'a [u8],
    /// What followed the first `?`, without the `?`; empty when none.
    pub query: &'a [u8],
    /// Whether `path` differs from the input's path (then it lives in the scratch buffer
    /// and an upstream request must be rewritten with it).
    pub changed: bool,
}

/// Normalises `target` under `policy`, using `scratch` (cleared first) when it must copy.
pub fn normalize<'a>(
    target: &'a [u8],
    policy: &PathNormalization,
    scratch: &'a mut Vec<u8>,
) -> Result<Normalized<'a>, Rejection> {
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &b""[..]),
    };
    if query.iter().any(|&b| is_forbidden(b)) {
        return Err(Rejection::ForbiddenByte);
    }
    if path.is_empty() {
        // The codec hands over the path part of an absolute-form target, which may be
        // empty (`GET http://a HTTP/1.1`): that means `/` (RFC 9112 3.2.2, RFC 3986
        // 6.2.3).
        return Ok(Normalized {
            path: b"/",
            query,
            changed: true,
        });
    }
    if path == b"*" {
        return Ok(Normalized {
            path,
            query,
            changed: false,
        });
    }
    if path.first() != Some(&b'/') {
        return Err(Rejection::NotOriginForm);
    }
    let mut clean = true;
    let mut previous = 0u8;
    for &b in path {
        if is_forbidden(b) {
            return Err(Rejection::ForbiddenByte);
        }
        if b == b'%'
            || (previous == b'/' && b == b'.')
            || (policy.merge_slashes && previous == b'/' && b == b'/')
        {
            clean = false;
        }
        previous = b;
    }
    if clean {
        return Ok(Normalized {
            path,
            query,
            changed: false,
        });
    }
    scratch.clear();
    decode_escapes(path, policy.escaped_slashes, scratch)?;
    remove_dot_segments(scratch, policy.merge_slashes);
    let changed = scratch.as_slice() != path;
    Ok(Normalized {
        path: scratch.as_slice(),
        query,
        changed,
    })
}

/// Raw bytes that never belong in a path or query.
fn is_forbidden(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'#'
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Step 2: copies `path` into `out`, decoding or canonicalising each escape.
fn decode_escapes(
    path: &[u8],
    slashes: EscapedSlashes,
    out: &mut Vec<u8>,
) -> Result<(), Rejection> {
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            path.get(i + 1).copied().and_then(hex),
            path.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(Rejection::BadEscape);
        };
        let decoded = hi << 4 | lo;
        i += 3;
        match decoded {
            0 => return Err(Rejection::ForbiddenByte),
            b'/' | b'\\' => match slashes {
                EscapedSlashes::Reject => return Err(Rejection::EscapedSlash),
                EscapedSlashes::Unescape => out.push(b'/'),
                EscapedSlashes::Keep => push_escape(out, decoded),
            },
            d if is_unreserved(d) => out.push(d),
            d => push_escape(out, d),
        }
    }
    Ok(())
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
}

/// Steps 3 and 4, in place. `buf` starts with `/`. The output is a sequence of `/seg`
/// items written at `w`, never ahead of the segment being read, so copying forward in
/// the same buffer is safe.
fn remove_dot_segments(buf: &mut Vec<u8>, merge_slashes: bool) {
    let len = buf.len();
    let mut w = 0;
    let mut r = 1; // start of the current segment, just after its `/`
    loop {
        let end = buf[r..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(len, |p| r + p);
        let last = end == len;
        match &buf[r..end] {
            b"." => {}
            b".." => w = buf[..w].iter().rposition(|&b| b == b'/').unwrap_or(0),
            b"" if merge_slashes && !last => {}
            _ => {
                buf.copy_within(r - 1..end, w);
                w += end - (r - 1);
            }
        }
        if last {
            // A path ending in `.` or `..` names a directory: it keeps a trailing slash,
            // as in RFC 3986 (`/a/b/..` -> `/a/`); an empty result is the root.
            if w == 0 || matches!(&buf[r..end], b"." | b"..") {
                buf[w] = b'/';
                w += 1;
            }
            break;
        }
        r = end + 1;
    }
    buf.truncate(w);
}

#[cfg(test)]
mod tests;
