//! A route's conditions beyond the path: host, headers, query parameters, compiled from
//! the config once per worker and tested without allocating.
//!
//! Decisions:
//! - **Host**: the request's authority (Host header, or an absolute-form target's) with
//!   its port and one trailing dot removed, compared ASCII-case-insensitively. `*.b.c`
//!   matches one or more labels before `.b.c`, never `b.c` itself. A route with host
//!   patterns does not match a request without an authority.
//! - **Headers**: tested on the first field of that name (HTTP/1 repeats are rare for
//!   routing headers; `HeaderLookup` may be extended for `get_all`). Values are compared
//!   case-sensitively; `present: false` means no field of that name.
//! - **Query**: parameters are split on `&`, name and value at the first `=` (none: empty
//!   value); both are compared after percent-decoding, on the fly, so `d%65bug=1` is
//!   `debug=1`. `+` is not a space (that is HTML forms, not URIs). The first parameter of
//!   that name decides.

use crate::config;
use crate::filter::value_match::Value;

use super::HeaderLookup;

#[derive(Debug, Clone)]
enum Host {
    Exact(Box<[u8]>),
    /// `.example.com`
    Suffix(Box<[u8]>),
}

/// Whether the connection's verified client certificate (if any) satisfies `m`.
fn client_certificate_matches(
    m: &config::ClientCertMatch,
    client: Option<&crate::tls::identity::PeerIdentity>,
) -> bool {
    let presented = client.is_some();
    if m.presented.is_some_and(|p| p != presented) || m.validated.is_some_and(|v| v != presented) {
        return false;
    }
    use crate::config::tls::SanKind;
    m.subject_alt_names.is_empty()
        || client.is_some_and(|c| {
            let names = c.uris.iter().map(|n| (SanKind::Uri, n));
            let names = names.chain(c.dns.iter().map(|n| (SanKind::Dns, n)));
            names
                .into_iter()
                .any(|(kind, name)| m.subject_alt_names.iter().any(|s| s.matches(kind, name)))
        })
}

/// Compiled conditions of one route.
#[derive(Debug, Clone, Default)]
pub(super) struct Conditions {
    hosts: Vec<Host>,
    methods: Vec<Box<[u8]>>,
    headers: Vec<(Box<str>, Value)>,
    query: Vec<(Box<[u8]>, Value)>,
    client_certificate: Option<config::ClientCertMatch>,
}

impl Conditions {
    pub fn compile(c: &config::RouteConditions) -> Self {
        Conditions {
            hosts: c
                .hosts
                .iter()
                .map(|h| match h {
                    config::HostMatch::Exact(s) => Host::Exact(s.as_bytes().into()),
                    config::HostMatch::Suffix(s) => Host::Suffix(s.as_bytes().into()),
                })
                .collect(),
            methods: c.methods.iter().map(|m| m.as_bytes().into()).collect(),
            headers: c
                .headers
                .iter()
                .map(|h| (h.name.as_str().into(), Value::compile(&h.value)))
                .collect(),
            query: c
                .query
                .iter()
                .map(|q| (q.name.as_bytes().into(), Value::compile(&q.value)))
                .collect(),
            client_certificate: c.client_certificate.clone(),
        }
    }

    /// Whether there are none (the route matches on its path alone).
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.methods.is_empty()
            && self.headers.is_empty()
            && self.query.is_empty()
            && self.client_certificate.is_none()
    }

    pub fn hold<H: HeaderLookup + ?Sized>(&self, host: &[u8], headers: &H, query: &[u8]) -> bool {
        (self.hosts.is_empty() || self.host_matches(host))
            && (self.methods.is_empty()
                || headers
                    .get(":method")
                    .is_some_and(|m| self.methods.iter().any(|x| m == &x[..])))
            && self.headers.iter().all(|(n, v)| v.test(headers.get(n)))
            && self
                .query
                .iter()
                .all(|(n, v)| match (v, query_param(query, n)) {
                    (Value::Exact(e), Some(raw)) => decoded_eq(raw, e),
                    (v, found) => v.test(found),
                })
            && self
                .client_certificate
                .as_ref()
                .is_none_or(|m| client_certificate_matches(m, headers.client_certificate()))
    }

    fn host_matches(&self, authority: &[u8]) -> bool {
        let host = host_of(authority);
        !host.is_empty()
            && self.hosts.iter().any(|pattern| match pattern {
                Host::Exact(e) => host.eq_ignore_ascii_case(e),
                Host::Suffix(s) => {
                    host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
                }
            })
    }
}

/// The host part of an authority: without userinfo (never valid in HTTP, but harmless to
/// drop), port, or a trailing dot; IPv6 literals keep their brackets.
fn host_of(authority: &[u8]) -> &[u8] {
    let a = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if a.first() == Some(&b'[') {
        match a.iter().position(|&b| b == b']') {
            Some(end) => &a[..=end],
            None => a,
        }
    } else {
        match a.iter().rposition(|&b| b == b':') {
            Some(colon) => &a[..colon],
            None => a,
        }
    };
    host.strip_suffix(b".").unwrap_or(host)
}

/// The value of the first query parameter whose decoded name is `name`.
fn query_param<'q>(query: &'q [u8], name: &[u8]) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (n, v) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        (!pair.is_empty() && decoded_eq(n, name)).then_some(v)
    })
}

/// Whether percent-decoding `raw` gives exactly `want`; no buffer needed. A `%` not
/// followed by two hex digits stands for itself.
fn decoded_eq(raw: &[u8], want: &[u8]) -> bool {
    let mut i = 0;
    let mut wanted = want.iter();
    while i < raw.len() {
        let mut b = raw[i];
        i += 1;
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                raw.get(i).and_then(|&h| (h as char).to_digit(16)),
                raw.get(i + 1).and_then(|&l| (l as char).to_digit(16)),
            ) {
                b = (hi * 16 + lo) as u8;
                i += 2;
            }
        }
        if wanted.next() != Some(&b) {
            return false;
        }
    }
    wanted.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_port_and_trailing_dot() {
        assert_eq!(host_of(b"Example.com:8080"), b"Example.com");
        assert_eq!(host_of(b"example.com."), b"example.com");
        assert_eq!(host_of(b"[::1]:80"), b"[::1]");
        assert_eq!(host_of(b"u@h:1"), b"h");
        assert_eq!(host_of(b""), b"");
    }

    #[test]
    fn query_names_and_values_decode() {
        assert_eq!(query_param(b"a=1&debug=2", b"debug"), Some(&b"2"[..]));
        assert_eq!(query_param(b"d%65bug=1", b"debug"), Some(&b"1"[..]));
        assert_eq!(query_param(b"debug", b"debug"), Some(&b""[..]));
        assert_eq!(query_param(b"debugx=1&&", b"debug"), None);
        assert_eq!(query_param(b"", b"debug"), None);
        assert!(decoded_eq(b"a%20b", b"a b"));
        assert!(decoded_eq(b"100%", b"100%"));
        assert!(!decoded_eq(b"ab", b"abc"));
        assert!(!decoded_eq(b"abc", b"ab"));
    }
}
