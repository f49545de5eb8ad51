//! Request-target forms (RFC 9112 3.2) and authority validation (RFC 3986 3.2).
//!
//! The proxy routes on the authority and path, so both are checked here once, by
//! byte class, rather than trusted: a Host such as `a b` or `evil@good` could
//! otherwise be read differently by the router and by the upstream. Userinfo is
//! rejected (RFC 9110 4.2.4), ports must be 1 to 5 digits up to 65535, and a target
//! may only hold visible ASCII (`#` excluded: fragments are never sent).

use super::span::Span;

/// Where the authority and path of a target are, relative to the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) authority: Option<Span>,
    pub(crate) path: Span,
}

/// Splits `target` (at `span` in the head) by form. `connect`/`options`: the method.
pub(crate) fn parse_target(
    target: &[u8],
    span: Span,
    connect: bool,
    options: bool,
) -> Option<Target> {
    if !target
        .iter()
        .all(|&b| (0x21..=0x7e).contains(&b) && b != b'#')
    {
        return None;
    }
    let at =
        |from: usize, to: usize| Span::new(span.start as usize + from, span.start as usize + to);
    if connect {
        // authority-form only, and the port is required (RFC 9112 3.2.3).
        return (is_authority(target) && has_port(target)).then_some(Target {
            authority: Some(span),
            path: at(0, 0),
        });
    }
    match target.first() {
        Some(b'/') => Some(Target {
            authority: None,
            path: span,
        }),
        Some(b'*') if options && target.len() == 1 => Some(Target {
            authority: None,
            path: span,
        }),
        _ => {
            let rest = strip_scheme(target)?;
            let scheme_len = target.len() - rest.len();
            let auth_len = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            let authority = rest.get(..auth_len)?;
            if authority.is_empty() || !is_authority(authority) {
                return None;
            }
            Some(Target {
                authority: Some(at(scheme_len, scheme_len + auth_len)),
                path: at(scheme_len + auth_len, target.len()),
            })
        }
    }
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if let Some(prefix) = target.get(..scheme.len()) {
            if prefix.eq_ignore_ascii_case(scheme) {
                return target.get(scheme.len()..);
            }
        }
    }
    None
}

/// `host [":" port]` where host is a reg-name, IPv4 address or `[IP-literal]`.
/// The empty string is a valid Host value (RFC 9112 3.2) and is accepted here.
pub(crate) fn is_authority(a: &[u8]) -> bool {
    let (host, port) = match a.first() {
        Some(b'[') => {
            let Some(close) = a.iter().position(|&b| b == b']') else {
                return false;
            };
            let inner = a.get(1..close).unwrap_or_default();
            let ok = !inner.is_empty()
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            if !ok {
                return false;
            }
            match a.get(close + 1..).unwrap_or_default() {
                [] => return true,
                [b':', port @ ..] => return is_port(port),
                _ => return false,
            }
        }
        _ => match a.iter().rposition(|&b| b == b':') {
            Some(colon) => (
                a.get(..colon).unwrap_or_default(),
                Some(a.get(colon + 1..).unwrap_or_default()),
            ),
            None => (a, None),
        },
    };
    if port.is_some() && host.is_empty() {
        return false;
    }
    is_reg_name(host) && port.is_none_or(is_port)
}

fn has_port(a: &[u8]) -> bool {
    match a.iter().rposition(|&b| b == b':') {
        Some(colon) => a.get(colon..).is_some_and(|p| !p.contains(&b']')),
        None => false,
    }
}

fn is_port(p: &[u8]) -> bool {
    (1..=5).contains(&p.len())
        && p.iter().all(u8::is_ascii_digit)
        && p.iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
            <= 65535
}

/// reg-name = *( unreserved / pct-encoded / sub-delims ); IPv4 is a subset. Every
/// request's `Host` goes through this: one table load per byte and no branch, then the
/// byte-wise pass only for a name with a `%` (whose escapes it checks).
fn is_reg_name(h: &[u8]) -> bool {
    let classes = h
        .iter()
        .fold(0u8, |seen, &b| seen | REG_NAME[usize::from(b)]);
    if classes & NOT_REG_NAME != 0 {
        return false;
    }
    classes & PERCENT == 0 || is_reg_name_escaped(h)
}

/// [`REG_NAME`]'s classes (an unreserved or sub-delims byte is 0).
const PERCENT: u8 = 1;
const NOT_REG_NAME: u8 = 2;
const REG_NAME: [u8; 256] = {
    let mut table = [NOT_REG_NAME; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~')
            || matches!(
                c,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            )
        {
            table[b] = 0;
        }
        b += 1;
    }
    table[b'%' as usize] = PERCENT;
    table
};

/// reg-name byte by byte, checking each `%` escape.
fn is_reg_name_escaped(h: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = h.get(i) {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            b'%' => {
                let hex = h.get(i + 1..i + 3);
                if !hex.is_some_and(|x| x.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 2;
            }
            _ => return false,
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(target: &str, connect: bool, options: bool) -> Option<(Option<String>, String)> {
        let span = Span::new(0, target.len());
        let bytes = target.as_bytes();
        parse_target(bytes, span, connect, options).map(|t| {
            let s = |sp: Span| String::from_utf8(sp.get(bytes).to_vec()).unwrap();
            (t.authority.map(s), s(t.path))
        })
    }

    #[test]
    fn forms() {
        assert_eq!(t("/a?b", false, false), Some((None, "/a?b".into())));
        assert_eq!(t("*", false, true), Some((None, "*".into())));
        assert_eq!(t("*", false, false), None);
        assert_eq!(
            t("http://Example.com:8080/x?y", false, false),
            Some((Some("Example.com:8080".into()), "/x?y".into()))
        );
        assert_eq!(
            t("HTTPS://a", false, false),
            Some((Some("a".into()), "".into()))
        );
        assert_eq!(t("ftp://a/", false, false), None);
        assert_eq!(t("http:///x", false, false), None);
        assert_eq!(t("http://u@a/", false, false), None);
        assert_eq!(
            t("a.com:443", true, false),
            Some((Some("a.com:443".into()), "".into()))
        );
        assert_eq!(t("a.com", true, false), None);
        assert_eq!(t("/x#frag", false, false), None);
        assert_eq!(t("/\u{e9}", false, false), None);
    }

    /// The table's verdict is the byte-wise pass's, for every byte and for names with
    /// escapes good and bad.
    #[test]
    fn reg_names_by_table_match_the_byte_wise_pass() {
        for b in 0..=255u8 {
            for name in [vec![b], vec![b'a', b, b'z'], vec![b, b'4', b'1']] {
                assert_eq!(is_reg_name(&name), is_reg_name_escaped(&name), "{name:?}");
            }
        }
        let mut random = fastrand::Rng::with_seed(7);
        let alphabet = b"aZ09-._~!$&'()*+,;=%fF:@/[] \x7f\x80";
        for _ in 0..20_000 {
            let len = random.usize(0..8);
            let name: Vec<u8> = (0..len)
                .map(|_| alphabet[random.usize(..alphabet.len())])
                .collect();
            assert_eq!(is_reg_name(&name), is_reg_name_escaped(&name), "{name:?}");
        }
    }

    #[test]
    fn authorities() {
        for ok in [
            "a",
            "a.b-c_d~",
            "a:1",
            "a:65535",
            "1.2.3.4:80",
            "[::1]",
            "[::1]:8080",
            "",
            "a%20b",
        ] {
            assert!(is_authority(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "a b", "a:", "a:65536", "a:123456", ":80", "a@b", "[::1", "[]", "[::1]x", "a/b", "a%2",
            "a:8x",
        ] {
            assert!(!is_authority(bad.as_bytes()), "{bad}");
        }
    }
}
