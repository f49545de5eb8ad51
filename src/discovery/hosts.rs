//! The hosts file (`/etc/hosts`), for names resolved with their TTL (`ttl`).
//!
//! Design: getaddrinfo consults the hosts file before DNS (nsswitch's usual `files dns`),
//! so the TTL-aware lookup does too, or a name pinned there would resolve differently
//! with `respect_dns_ttl`. The format is small (an address, then its names, `#` starts a
//! comment) and no maintained crate parses just it (hickory's parser lives in the
//! tokio-bound resolver), so it is read here, tolerantly as the C library does: a line
//! whose first field is not an address is skipped. The file is read at every lookup (it
//! is small, and an edit then applies at the next refresh, as with getaddrinfo).

use std::net::IpAddr;

/// The addresses the hosts file `text` gives `name`, in the file's order, without
/// repeats. Names compare without case and without a trailing dot.
pub fn addresses(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next().and_then(parse_ip) else {
            continue;
        };
        let named = fields.any(|alias| {
            alias
                .strip_suffix('.')
                .unwrap_or(alias)
                .eq_ignore_ascii_case(name)
        });
        if named && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

/// An address field; a zone index (`fe80::1%eth0`) is dropped, since an endpoint's
/// address has none.
fn parse_ip(field: &str) -> Option<IpAddr> {
    field.split('%').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_comments_and_case() {
        let text = "# comment line\n\
                    127.0.0.1\tlocalhost\n\
                    ::1 localhost ip6-localhost   # trailing comment\n\
                    10.0.0.5 Orders.Internal orders  # the orders service\n\
                    10.0.0.6 orders.internal.\n\
                    10.0.0.5 orders.internal\n\
                    not-an-ip orders.internal\n\
                    fe80::1%eth0 linklocal\n\
                    # 10.9.9.9 orders.internal\n";
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            addresses(text, "orders.internal"),
            [ip("10.0.0.5"), ip("10.0.0.6")]
        );
        assert_eq!(addresses(text, "ORDERS"), [ip("10.0.0.5")]);
        assert_eq!(
            addresses(text, "orders.internal."),
            addresses(text, "orders.internal")
        );
        assert_eq!(addresses(text, "localhost"), [ip("127.0.0.1"), ip("::1")]);
        assert_eq!(addresses(text, "linklocal"), [ip("fe80::1")]);
        assert!(addresses(text, "comment").is_empty());
        assert!(addresses(text, "missing").is_empty());
        assert!(addresses("", "localhost").is_empty());
    }
}
