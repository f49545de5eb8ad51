//! Finding a token in a request: a header value after a prefix, a query parameter, a
//! cookie; and removing a query parameter before the request goes upstream.
//!
//! Design: functions over byte slices that return sub-slices of their input, so the
//! cached request path finds its token without allocating. They follow Envoy's
//! jwt_authn extractor: a header's prefix may appear anywhere in the value (Envoy uses
//! `find`), the token starts at the first base64url character after it, and a query
//! parameter's value is the first one of that name. Two choices of ours: the prefix is
//! compared ASCII case-insensitively (`Bearer` is an RFC 7235 auth-scheme, which is
//! case-insensitive; Envoy compares it as written), and the query value is taken raw,
//! not percent-decoded: a JWT is base64url and dots, which need no escaping.

/// The token in a header value: what follows `prefix` (compared ignoring ASCII case,
/// found anywhere in the value as Envoy finds it), from its first base64url character
/// (or dot) to the end, trailing whitespace trimmed. With an empty prefix, the whole
/// value trimmed. `None` when the prefix is not there: no token in this header.
pub fn from_header_value<'a>(value: &'a [u8], prefix: &str) -> Option<&'a [u8]> {
    let value = value.trim_ascii();
    let prefix = prefix.as_bytes();
    if prefix.is_empty() {
        return Some(value);
    }
    let start = if starts_with_ignore_case(value, prefix) {
        prefix.len()
    } else {
        value
            .windows(prefix.len())
            .position(|w| w.eq_ignore_ascii_case(prefix))?
            + prefix.len()
    };
    let rest = &value[start..];
    let token_start = rest
        .iter()
        .position(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        .unwrap_or(rest.len());
    Some(rest[token_start..].trim_ascii_end())
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The raw value of the first `name=value` pair of a query string (the part after
/// `?`, without it); a bare `name` has the empty value.
pub fn query_param<'a>(query: &'a [u8], name: &str) -> Option<&'a [u8]> {
    query.split(|b| *b == b'&').find_map(|pair| {
        let (key, value) = split_once(pair, b'=');
        (key == name.as_bytes()).then_some(value)
    })
}

/// `(before, after)` the first `separator`; `after` is empty when there is none.
fn split_once(bytes: &[u8], separator: u8) -> (&[u8], &[u8]) {
    match bytes.iter().position(|b| *b == separator) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}

/// The value of the first cookie called `name` in a `Cookie` header value
/// (`a=1; b=2`), without surrounding double quotes.
pub fn cookie<'a>(cookie_header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    cookie_header.split(|b| *b == b';').find_map(|pair| {
        let (key, value) = split_once(pair.trim_ascii(), b'=');
        if key.trim_ascii_end() != name.as_bytes() {
            return None;
        }
        let value = value.trim_ascii_start();
        Some(match value {
            [b'"', inner @ .., b'"'] => inner,
            _ => value,
        })
    })
}

/// Removes every `name` pair from the query of a request target (`/path?a=1&name=x`),
/// in place; the `?` goes too when no pair is left. A target without a query is left
/// as it is.
pub fn remove_query_param(target: &mut Vec<u8>, name: &str) {
    let Some(question) = target.iter().position(|b| *b == b'?') else {
        return;
    };
    let end = target.len();
    let mut read = question + 1;
    let mut write = question + 1;
    let mut kept = false;
    let mut removed = false;
    while read <= end {
        let pair_end = target[read..]
            .iter()
            .position(|b| *b == b'&')
            .map_or(end, |i| read + i);
        let (key, _) = split_once(&target[read..pair_end], b'=');
        if key == name.as_bytes() {
            removed = true;
        } else {
            if kept {
                target[write] = b'&';
                write += 1;
            }
            target.copy_within(read..pair_end, write);
            write += pair_end - read;
            kept = true;
        }
        read = pair_end + 1;
    }
    if removed {
        target.truncate(if kept { write } else { question });
    }
}
