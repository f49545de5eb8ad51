//! `http://` and `https://` URLs, split into what a request needs: the scheme, the host
//! (to resolve, to name in `Host` and to verify a certificate against), the port and
//! the request target.
//!
//! Hand-written because the grammar we accept is small and strict: an absolute URL with
//! an authority, no user info (credentials in URLs end up in logs; a caller sends an
//! `authorization` header instead), a registered name, an IPv4 literal or a bracketed
//! IPv6 literal (no zone), an optional port, and a path and query of visible ASCII only
//! (a space or a control byte would break the request line, so it is refused rather
//! than encoded behind the caller's back). A fragment is dropped: it is never sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// The parts of a URL a request is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// The host as written, without brackets for an IPv6 literal.
    pub host: String,
    /// Set when the host is an address literal (nothing to resolve).
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// Path and query (`/` when the URL has no path).
    pub target: String,
}

impl Url {
    /// Splits `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Url, String> {
        let (scheme_text, rest) = text
            .split_once("://")
            .ok_or("not an absolute URL (expected http://host/path or https://host/path)")?;
        let scheme = if scheme_text.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else if scheme_text.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else {
            return Err(format!(
                "scheme {scheme_text:?} is not supported (only http and https)"
            ));
        };
        // The fragment is the client's own business.
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(
                "credentials in the URL are not supported (send an authorization header)"
                    .to_owned(),
            );
        }
        let (host, ip, port_text) = split_authority(authority)?;
        let port = match port_text {
            None => scheme.default_port(),
            Some(p) => parse_port(p)?,
        };
        if let Some(bad) = target.bytes().find(|&b| !b.is_ascii_graphic()) {
            return Err(format!(
                "the path or query holds byte {bad:#04x}: percent-encode it"
            ));
        }
        let target = match target.as_bytes().first() {
            None => "/".to_owned(),
            Some(b'?') => format!("/{target}"),
            Some(_) => target.to_owned(),
        };
        Ok(Url {
            scheme,
            host: host.to_owned(),
            ip,
            port,
            target,
        })
    }

    /// The `Host` header value: the host (bracketed when IPv6), with the port when it is
    /// not the scheme's default (RFC 9110 7.2).
    pub fn host_header(&self) -> String {
        let host = match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// `host[:port]` or `[v6][:port]`: the host, its address when it is a literal, and the
/// port text when there is one.
fn split_authority(authority: &str) -> Result<(&str, Option<IpAddr>, Option<&str>), String> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (literal, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address without its closing ']'")?;
        let ip: Ipv6Addr = literal
            .parse()
            .map_err(|_| format!("[{literal}] is not an IPv6 address (zones are not supported)"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                format!("unexpected {after:?} after the IPv6 address (expected :port)")
            })?),
        };
        return Ok((literal, Some(IpAddr::V6(ip)), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok((host, Some(IpAddr::V4(ip)), port));
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if let Some(bad) = host.bytes().find(|&b| !valid(b)) {
        let shown = char::from(bad).escape_default();
        return Err(format!(
            "host {host:?} holds {shown:?}: only letters, digits, '-', '.' and '_' (IPv6 in brackets)"
        ));
    }
    Ok((host, None, port))
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(format!("port {text:?} is not a number from 1 to 65535")),
    }
}

/// `url` as errors print it: control and non-ASCII characters escaped, user info
/// replaced by `***` (it is refused, but must not reach a log on the way).
pub fn shown(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url
        .get(after_scheme..)
        .and_then(|rest| rest.find(['/', '?', '#']))
        .map_or(url.len(), |i| after_scheme + i);
    let redacted = match url
        .get(after_scheme..authority_end)
        .and_then(|a| a.rfind('@'))
    {
        Some(at) => format!(
            "{}***{}",
            url.get(..after_scheme).unwrap_or_default(),
            url.get(after_scheme + at..).unwrap_or_default()
        ),
        None => url.to_owned(),
    };
    let mut out = String::with_capacity(redacted.len());
    for c in redacted.chars() {
        if c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        Url::parse(text).expect_err(text)
    }

    #[test]
    fn splits_the_parts() {
        let u = ok("https://idp.example.com/.well-known/jwks.json?v=1#frag");
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.host, "idp.example.com");
        assert_eq!(u.ip, None);
        assert_eq!(u.port, 443);
        assert_eq!(u.target, "/.well-known/jwks.json?v=1");
        assert_eq!(u.host_header(), "idp.example.com");

        let u = ok("HTTP://127.0.0.1:8080");
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(u.port, 8080);
        assert_eq!(u.target, "/");
        assert_eq!(u.host_header(), "127.0.0.1:8080");

        assert_eq!(ok("http://h?x=1").target, "/?x=1");
        assert_eq!(ok("http://h:80/").host_header(), "h");
        assert_eq!(ok("https://h:80/").host_header(), "h:80");
    }

    #[test]
    fn ipv6_literals_are_bracketed() {
        let u = ok("http://[::1]:9000/keys");
        assert_eq!(u.host, "::1");
        assert_eq!(u.ip, Some("::1".parse().unwrap()));
        assert_eq!(u.port, 9000);
        assert_eq!(u.host_header(), "[::1]:9000");
        let u = ok("https://[2001:db8::5]");
        assert_eq!(u.port, 443);
        assert_eq!(u.host_header(), "[2001:db8::5]");
    }

    #[test]
    fn refusals_say_why() {
        assert!(err("ftp://h/").contains("\"ftp\" is not supported"));
        assert!(err("h/path").contains("not an absolute URL"));
        assert!(err("http:///path").contains("no host"));
        assert!(err("http://u:p@h/").contains("credentials"));
        assert!(err("http://[::1/").contains("closing ']'"));
        assert!(err("http://[fe80::1%eth0]/").contains("not an IPv6 address"));
        assert!(err("http://[::1]x/").contains("expected :port"));
        assert!(err("http://h:0/").contains("port \"0\""));
        assert!(err("http://h:65536/").contains("port"));
        assert!(err("http://h:/").contains("port \"\""));
        assert!(err("http://h:+80/").contains("port"));
        assert!(err("http://h o/").contains("host"));
        assert!(err("http://h/a b").contains("0x20"));
        assert!(err("http://h/a\r\nx: y").contains("0x0d"));
        assert!(err("http://h/caf\u{e9}").contains("0xc3"));
    }

    #[test]
    fn shown_hides_credentials_and_escapes() {
        assert_eq!(shown("http://u:secret@h/p"), "http://***@h/p");
        assert_eq!(shown("http://h/p?a@b"), "http://h/p?a@b");
        assert_eq!(shown("http://h/\r\n"), "http://h/\\r\\n");
        assert_eq!(shown("http://h/a'b\"c"), "http://h/a'b\"c");
        assert_eq!(shown("http://h/\u{e9} x"), "http://h/\\u{e9} x");
    }
}
