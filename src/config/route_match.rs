//! Schema of a route's `match` section: the path matcher (`prefix` | `path` | `regex`)
//! and the conditions beside it (`host`, `methods`, `headers`, `query`; a header condition
//! may name the pseudo-headers `:method`, `:authority` and `:path`, as in Envoy).
//!
//! Design: every literal that can never match a request is an error here rather than dead
//! config: paths must start with `/` and hold only request-target characters, host
//! patterns carry no port, header names are tokens. Regexes are compiled once here (to
//! report errors at the pattern) and again by each worker's router; the model keeps the
//! text so it stays plain, comparable data. Host and header names are lower-cased here so
//! the router compares without folding the pattern side per request.

use super::error::Diagnostics;
use super::model::{HeaderMatch, HostMatch, QueryMatch, RouteConditions, RouteMatch, ValueMatch};
use super::node::Node;
use super::pattern::anchored_regex;

const MATCH_KEYS: &[&str] = &[
    "prefix",
    "path",
    "regex",
    "template",
    "host",
    "methods",
    "headers",
    "query",
    "client_certificate",
    "case_sensitive",
];
/// Pseudo-headers a header condition may name (as Envoy's route matchers do).
const PSEUDO_HEADERS: &[&str] = &[":method", ":authority", ":path"];
const HEADER_KEYS: &[&str] = &["name", "exact", "prefix", "regex", "present"];
const QUERY_KEYS: &[&str] = &["name", "exact", "present"];

/// Decodes a `match` mapping.
pub(crate) fn route_match(
    node: &Node<'_>,
    diag: &mut Diagnostics,
) -> Option<(RouteMatch, RouteConditions)> {
    let map = node.map(diag, MATCH_KEYS)?;
    let given: Vec<_> = ["prefix", "path", "regex", "template"]
        .into_iter()
        .filter_map(|key| map.optional(key).map(|n| (key, n)))
        .collect();
    let any_case = match map.optional("case_sensitive") {
        Some(n) => match n.peek_bool() {
            Some(sensitive) => !sensitive,
            None => {
                n.wrong_type(diag, "`true` or `false`");
                return None;
            }
        },
        None => false,
    };
    if any_case && !matches!(given.as_slice(), [("prefix" | "path", _)]) {
        map.error(
            diag,
            "`case_sensitive: false` goes with `prefix` or `path` (a `regex` says its own case: `(?i)`)",
        );
        return None;
    }
    let matcher = match given.as_slice() {
        [("prefix", n)] if any_case => request_path(n, diag).map(RouteMatch::PrefixAnyCase),
        [("path", n)] if any_case => request_path(n, diag).map(RouteMatch::PathAnyCase),
        [("prefix", n)] => request_path(n, diag).map(RouteMatch::Prefix),
        [("path", n)] => request_path(n, diag).map(RouteMatch::Path),
        [("regex", n)] => regex(n, diag).map(RouteMatch::Regex),
        [(_, n)] => {
            let text = n.str(diag)?;
            match crate::config::pattern::template(text) {
                Ok(_) => Some(RouteMatch::Template(text.to_owned())),
                Err(message) => {
                    n.error(diag, message);
                    None
                }
            }
        }
        [] => {
            map.error(
                diag,
                "`match` needs one of `prefix`, `path`, `regex` or `template`",
            );
            None
        }
        _ => {
            map.error(
                diag,
                "`match` has exactly one of `prefix`, `path`, `regex` or `template`, not several",
            );
            None
        }
    };
    let hosts = match map.optional("host") {
        Some(n) => hosts(&n, diag),
        None => Some(Vec::new()),
    };
    let headers = match map.optional("headers") {
        Some(n) => list(&n, diag, header),
        None => Some(Vec::new()),
    };
    let query = match map.optional("query") {
        Some(n) => list(&n, diag, query),
        None => Some(Vec::new()),
    };
    let methods = match map.optional("methods") {
        Some(n) => methods(&n, diag),
        None => Some(Vec::new()),
    };
    let client_certificate = match map.optional("client_certificate") {
        Some(n) => client_certificate(&n, diag).map(Some),
        None => Some(None),
    };
    let conditions = RouteConditions {
        hosts: hosts?,
        methods: methods?,
        headers: headers?,
        query: query?,
        client_certificate: client_certificate?,
    };
    Some((matcher?, conditions))
}

/// A list of header conditions (`headers:` of a match, of a fault).
pub(super) fn headers(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<HeaderMatch>> {
    list(node, diag, header)
}

fn list<'a, T>(
    node: &Node<'a>,
    diag: &mut Diagnostics,
    item: impl Fn(&Node<'a>, &mut Diagnostics) -> Option<T>,
) -> Option<Vec<T>> {
    let items = node.seq(diag)?;
    let decoded: Vec<Option<T>> = items.iter().map(|n| item(n, diag)).collect();
    decoded.into_iter().collect()
}

/// A path or prefix: starts with `/` and holds only what can appear in a request path, so
/// that a route that could never match is an error rather than dead config.
pub(crate) fn request_path(node: &Node<'_>, diag: &mut Diagnostics) -> Option<String> {
    let text = node.str(diag)?;
    if !text.starts_with('/') {
        node.error(diag, format!("{text:?} must start with `/`"));
        return None;
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#'))
    {
        node.error(
            diag,
            format!("{text:?} contains {bad:?}, which cannot appear in a request path"),
        );
        return None;
    }
    Some(text.to_owned())
}

fn regex(node: &Node<'_>, diag: &mut Diagnostics) -> Option<String> {
    let text = node.str(diag)?;
    match anchored_regex(text) {
        Ok(_) => Some(text.to_owned()),
        Err(message) => {
            node.error(diag, message);
            None
        }
    }
}

/// `host`: one pattern or a list of them (any may match).
fn hosts(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<HostMatch>> {
    if node.peek_str().is_some() {
        return host(node, diag).map(|h| vec![h]);
    }
    let hosts = list(node, diag, host)?;
    if hosts.is_empty() {
        node.error(
            diag,
            "an empty `host` list would match nothing; leave `host` out to match any host",
        );
        return None;
    }
    Some(hosts)
}

fn host(node: &Node<'_>, diag: &mut Diagnostics) -> Option<HostMatch> {
    let text = node.str(diag)?;
    let lower = text.to_ascii_lowercase();
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let bracketed = name.starts_with('[') && name.ends_with(']') && name.len() > 2;
    let valid = if bracketed {
        !wildcard
            && name[1..name.len() - 1]
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
    } else {
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    if !valid {
        let why = if name.contains(':') && !bracketed {
            "host patterns have no port (the request's port is ignored)"
        } else if name.contains('*') || wildcard && bracketed {
            "the only wildcard is a leading `*.` (one or more labels)"
        } else {
            "expected a host name, `*.` and a domain, or a bracketed IPv6 address"
        };
        node.error(diag, format!("invalid host {text:?}: {why}"));
        return None;
    }
    Some(if wildcard {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_owned())
    })
}

/// RFC 9110 token characters, which a header name is made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// One header condition (`{name, exact|prefix|regex|present}`); also a retry policy's
/// response and request header conditions.
pub(super) fn header(node: &Node<'_>, diag: &mut Diagnostics) -> Option<HeaderMatch> {
    let map = node.map(diag, HEADER_KEYS)?;
    let name = map.field(diag, "name").and_then(|n| {
        let text = n.str(diag)?;
        if !is_token(text) && !PSEUDO_HEADERS.contains(&text) {
            n.error(
                diag,
                format!(
                    "{text:?} is not a valid header name (a token, or one of {PSEUDO_HEADERS:?})"
                ),
            );
            return None;
        }
        Some(text.to_ascii_lowercase())
    });
    let value = value_match(&map, node, diag, &["exact", "prefix", "regex", "present"]);
    Some(HeaderMatch {
        name: name?,
        value: value?,
    })
}

/// `methods`: one or more method names (tokens; case-sensitive, as methods are).
pub(super) fn methods(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<String>> {
    let names = list(node, diag, |item, diag| {
        let text = item.str(diag)?;
        if !is_token(text) {
            item.error(diag, format!("{text:?} is not a method name (a token)"));
            return None;
        }
        Some(text.to_owned())
    })?;
    if names.is_empty() {
        node.error(
            diag,
            "an empty `methods` list would match nothing; leave it out to match any method",
        );
        return None;
    }
    Some(names)
}

fn query(node: &Node<'_>, diag: &mut Diagnostics) -> Option<QueryMatch> {
    let map = node.map(diag, QUERY_KEYS)?;
    let name = map.field(diag, "name").and_then(|n| {
        let text = n.str(diag)?;
        if text.is_empty() {
            n.error(diag, "a query parameter name cannot be empty");
            return None;
        }
        Some(text.to_owned())
    });
    let value = value_match(&map, node, diag, &["exact", "present"]);
    Some(QueryMatch {
        name: name?,
        value: value?,
    })
}

/// Exactly one of the `kinds` keys.
fn value_match(
    map: &super::node::Map<'_>,
    node: &Node<'_>,
    diag: &mut Diagnostics,
    kinds: &[&str],
) -> Option<ValueMatch> {
    let given: Vec<_> = kinds
        .iter()
        .filter_map(|&key| map.optional(key).map(|n| (key, n)))
        .collect();
    let names = kinds
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match given.as_slice() {
        [("exact", n)] => n.str(diag).map(|s| ValueMatch::Exact(s.to_owned())),
        [("prefix", n)] => n.str(diag).map(|s| ValueMatch::Prefix(s.to_owned())),
        [("regex", n)] => regex(n, diag).map(ValueMatch::Regex),
        [(_, n)] => match n.peek_bool() {
            Some(b) => Some(ValueMatch::Present(b)),
            None => {
                n.wrong_type(diag, "`true` or `false`");
                None
            }
        },
        [] => {
            node.error(diag, format!("a condition needs one of {names}"));
            None
        }
        _ => {
            node.error(
                diag,
                format!("a condition has exactly one of {names}, not several"),
            );
            None
        }
    }
}

/// `client_certificate: {presented: bool, subject_alt_names: [...]}`: the verified client
/// certificate of a TLS connection (names as in `tls.client_certificate`).
fn client_certificate(
    node: &Node<'_>,
    diag: &mut Diagnostics,
) -> Option<super::model::ClientCertMatch> {
    let map = node.map(diag, &["presented", "subject_alt_names"])?;
    let presented = match map.optional("presented") {
        Some(n) => {
            let value = n.peek_bool();
            if value.is_none() {
                n.wrong_type(diag, "true or false");
            }
            Some(value?)
        }
        None => None,
    };
    let subject_alt_names = match map.optional("subject_alt_names") {
        Some(n) => super::decode_tls::san_matches(&n, diag)?,
        None => Vec::new(),
    };
    if presented == Some(false) && !subject_alt_names.is_empty() {
        map.error(
            diag,
            "`presented: false` cannot also ask for subject alt names",
        );
        return None;
    }
    Some(super::model::ClientCertMatch {
        presented,
        validated: None,
        subject_alt_names,
    })
}
