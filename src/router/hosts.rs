//! Virtual hosts: which of a listener's route tables serves a request's authority.
//!
//! Envoy's search order over `domains`: an exact name first, then suffix wildcards
//! (`*.example.com`, `*-api.example.com`; longest first; the wildcard never matches the
//! empty string), then prefix wildcards (`api.*`; longest first), then `*`. Names are
//! compared ASCII-case-insensitively. A domain without a port matches the authority with
//! any port or none (`example.com` serves `example.com:8080`); one with a port matches
//! only that port. (Envoy compares the port as part of the value unless told to strip
//! it; a native config that wants that names the port.) No match: no route (404).
//!
//! Cost: one pass over the exact names, then the wildcards, per request; a listener
//! with only `routes` has a single `*` host and pays one branch.

/// A compiled domain list, each pattern naming the index of its virtual host.
#[derive(Debug, Clone, Default)]
pub struct HostTable {
    exact: Vec<(Box<[u8]>, usize)>,
    /// Suffixes (without the `*`), longest first.
    suffix: Vec<(Box<[u8]>, usize)>,
    /// Prefixes (without the `*`), longest first.
    prefix: Vec<(Box<[u8]>, usize)>,
    any: Option<usize>,
}

impl HostTable {
    /// Adds virtual host `index`'s `domains` (validated, lower case).
    pub fn add(&mut self, index: usize, domains: &[String]) {
        for domain in domains {
            let d = domain.as_bytes();
            if d == b"*" {
                self.any.get_or_insert(index);
            } else if let Some(rest) = d.strip_prefix(b"*") {
                self.suffix.push((rest.into(), index));
            } else if let Some(rest) = d.strip_suffix(b"*") {
                self.prefix.push((rest.into(), index));
            } else {
                self.exact.push((d.into(), index));
            }
        }
        // Stable: among equal lengths the earlier host wins.
        self.suffix.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        self.prefix.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// The virtual host serving `authority` (`host[:port]`, as received).
    pub fn find(&self, authority: &[u8]) -> Option<usize> {
        if self.exact.is_empty() && self.suffix.is_empty() && self.prefix.is_empty() {
            return self.any;
        }
        let host = strip_port(authority);
        let same = |pattern: &[u8], value: &[u8]| pattern.eq_ignore_ascii_case(value);
        // A pattern with a port is compared with the whole authority, one without with
        // the host alone.
        let subject = |pattern: &[u8]| {
            if has_port(pattern) {
                authority
            } else {
                host
            }
        };
        if let Some((_, i)) = self.exact.iter().find(|(d, _)| same(d, subject(d))) {
            return Some(*i);
        }
        let found = self.suffix.iter().find(|(s, _)| {
            let value = subject(s);
            value.len() > s.len() && same(s, &value[value.len() - s.len()..])
        });
        if let Some((_, i)) = found {
            return Some(*i);
        }
        let found = self.prefix.iter().find(|(p, _)| {
            let value = subject(p);
            value.len() > p.len() && same(p, &value[..p.len()])
        });
        found.map(|(_, i)| *i).or(self.any)
    }
}

/// Whether a domain pattern ends in `:port`.
fn has_port(pattern: &[u8]) -> bool {
    strip_port(pattern).len() != pattern.len()
}

/// `host:port` without `:port` (`[v6]:port` too).
fn strip_port(authority: &[u8]) -> &[u8] {
    split_port(authority).map_or(authority, |(host, _)| host)
}

/// `host:port` split at the port's colon (`[v6]:port` too); `None` without a port (the
/// colons of a bare `[v6]` are not one).
pub(super) fn split_port(authority: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = authority.iter().rposition(|&b| b == b':')?;
    let (host, port) = (&authority[..colon], &authority[colon + 1..]);
    let bracketed = host.first() == Some(&b'[') && host.last() != Some(&b']');
    (port.iter().all(u8::is_ascii_digit) && !bracketed).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(hosts: &[&[&str]]) -> HostTable {
        let mut t = HostTable::default();
        for (i, domains) in hosts.iter().enumerate() {
            let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
            t.add(i, &domains);
        }
        t
    }

    #[test]
    fn envoys_search_order() {
        let t = table(&[
            &["*"],
            &["*.example.com"],
            &["*.api.example.com"],
            &["api.example.com"],
            &["api.*"],
            &["internal:8080"],
        ]);
        let find = |a: &str| t.find(a.as_bytes());
        assert_eq!(find("api.example.com"), Some(3), "exact first");
        assert_eq!(find("API.Example.COM:443"), Some(3), "case, any port");
        assert_eq!(find("v1.api.example.com"), Some(2), "longest suffix");
        assert_eq!(find("www.example.com"), Some(1));
        assert_eq!(
            find("example.com"),
            Some(0),
            "a wildcard never matches empty"
        );
        assert_eq!(find("api.other.org"), Some(4), "prefix after suffix");
        assert_eq!(find("internal:8080"), Some(5), "a port in the pattern");
        assert_eq!(find("internal:9090"), Some(0));
        assert_eq!(find("internal"), Some(0));
        assert_eq!(find(""), Some(0));
        assert_eq!(find("[::1]:80"), Some(0));
        let strict = table(&[&["a.com"]]);
        assert_eq!(strict.find(b"b.com"), None, "no `*`: no host");
        assert_eq!(strict.find(b"a.com:1"), Some(0));
    }

    #[test]
    fn ports_and_brackets() {
        assert_eq!(strip_port(b"a.com:80"), b"a.com");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
        assert_eq!(strip_port(b"[::1]"), b"[::1]");
        assert_eq!(strip_port(b"a.com"), b"a.com");
    }
}
