//! Rewrites and redirects, with Envoy's names: a cluster route's `prefix_rewrite`,
//! `regex_rewrite`, `host_rewrite_literal`, `host_rewrite_header` and
//! `auto_host_rewrite`, and a route's `redirect` (`https_redirect`, `scheme_redirect`,
//! `host_redirect`, `port_redirect`, `path_redirect`, `prefix_rewrite`, `regex_rewrite`,
//! `response_code`, `strip_query`).
//!
//! Everything a rewrite or a redirect writes into a request line or a `location` field
//! is checked here, so that no config can make ringway send a broken head: paths are
//! absolute and made of URI characters, hosts are authorities, regexes compile and
//! their substitutions name groups the pattern has. At most one path rewrite and one host
//! rewrite per route, as in Envoy.

use super::error::Diagnostics;
use super::fields::{optional_bool, token_byte};
use super::model::{HostRewrite, PathRewrite, Redirect, RedirectPath, Rewrite};
use super::node::{Map, Node};
use super::pattern::{path_byte, substitution, unanchored_regex};

/// The route keys this module decodes (besides `redirect` itself).
pub(super) const REWRITE_KEYS: &[&str] = &[
    "prefix_rewrite",
    "regex_rewrite",
    "template_rewrite",
    "host_rewrite_literal",
    "host_rewrite_header",
    "auto_host_rewrite",
];
const REGEX_REWRITE_KEYS: &[&str] = &["pattern", "substitution"];
/// A redirect's keys: Envoy's `RedirectAction` fields (the Envoy loader allows the
/// same ones).
pub(super) const REDIRECT_KEYS: &[&str] = &[
    "https_redirect",
    "scheme_redirect",
    "host_redirect",
    "port_redirect",
    "path_redirect",
    "prefix_rewrite",
    "regex_rewrite",
    "response_code",
    "strip_query",
];

/// A cluster route's rewrites (none when the keys are absent). `forwards` is false for a
/// route that does not go upstream, where any of these keys is an error.
/// `template` is the route's path template, when it matches with one.
pub(super) fn rewrite(
    map: &Map<'_>,
    (forwards, template): (bool, Option<&str>),
    diag: &mut Diagnostics,
) -> Option<Rewrite> {
    if !forwards {
        let mut ok = true;
        for key in REWRITE_KEYS {
            if let Some(n) = map.optional(key) {
                n.error(
                    diag,
                    format!("`{key}` applies only to routes with a `cluster`"),
                );
                ok = false;
            }
        }
        return ok.then(Rewrite::default);
    }
    let path = match map.optional("template_rewrite") {
        None => path_rewrite(map, diag)?,
        Some(n) if map.has("prefix_rewrite") || map.has("regex_rewrite") => {
            n.error(
                diag,
                "a route has at most one of `prefix_rewrite`, `regex_rewrite` or \
                 `template_rewrite`",
            );
            return None;
        }
        Some(n) => {
            let text = n.str(diag)?;
            let Some(template) = template else {
                n.error(
                    diag,
                    "`template_rewrite` needs a `match.template` on the route",
                );
                return None;
            };
            let names = match crate::config::pattern::template(template) {
                Ok(t) => t.names,
                // The matcher reported it.
                Err(_) => return None,
            };
            if let Err(message) = crate::config::pattern::template_rewrite(text, &names) {
                n.error(diag, message);
                return None;
            }
            Some(PathRewrite::Template {
                template: template.to_owned(),
                rewrite: text.to_owned(),
            })
        }
    };
    let host = host_rewrite(map, diag)?;
    Some(Rewrite { path, host })
}

/// `prefix_rewrite` or `regex_rewrite`, at most one.
fn path_rewrite(map: &Map<'_>, diag: &mut Diagnostics) -> Option<Option<PathRewrite>> {
    match (
        map.optional("prefix_rewrite"),
        map.optional("regex_rewrite"),
    ) {
        (None, None) => Some(None),
        (Some(n), None) => uri_path(&n, diag, true).map(|p| Some(PathRewrite::Prefix(p))),
        (None, Some(n)) => regex_rewrite(&n, diag).map(Some),
        (Some(_), Some(n)) => {
            n.error(
                diag,
                "a route has at most one of `prefix_rewrite` or `regex_rewrite`",
            );
            None
        }
    }
}

fn regex_rewrite(node: &Node<'_>, diag: &mut Diagnostics) -> Option<PathRewrite> {
    let map = node.map(diag, REGEX_REWRITE_KEYS)?;
    let pattern = map.field(diag, "pattern").and_then(|n| {
        let text = n.str(diag)?;
        match unanchored_regex(text) {
            Ok(regex) => Some((text.to_owned(), regex.captures_len())),
            Err(message) => {
                n.error(diag, format!("invalid regex {text:?}: {message}"));
                None
            }
        }
    });
    let text = map
        .field(diag, "substitution")
        .and_then(|n| n.str(diag).map(|t| (t, n)));
    let ((pattern, groups), (text, node)) = (pattern?, text?);
    if let Err(message) = check_substitution(text, groups) {
        node.error(diag, message);
        return None;
    }
    Some(PathRewrite::Regex {
        pattern,
        substitution: text.to_owned(),
    })
}

/// `host_rewrite_literal`, `host_rewrite_header` or `auto_host_rewrite`, at most one.
fn host_rewrite(map: &Map<'_>, diag: &mut Diagnostics) -> Option<Option<HostRewrite>> {
    let given: Vec<_> = [
        "host_rewrite_literal",
        "host_rewrite_header",
        "auto_host_rewrite",
    ]
    .into_iter()
    .filter_map(|k| map.optional(k).map(|n| (k, n)))
    .collect();
    let [(key, node)] = given.as_slice() else {
        if let Some((_, second)) = given.get(1) {
            second.error(
                diag,
                "a route has at most one of `host_rewrite_literal`, `host_rewrite_header` or \
                 `auto_host_rewrite`",
            );
            return None;
        }
        return Some(None);
    };
    match *key {
        "host_rewrite_literal" => authority(node, diag).map(|h| Some(HostRewrite::Literal(h))),
        "host_rewrite_header" => {
            let name = node.str(diag)?;
            if name.is_empty() || !name.bytes().all(token_byte) {
                node.error(diag, format!("{name:?} is not a header field name"));
                return None;
            }
            if name.eq_ignore_ascii_case("host") {
                node.error(diag, "`host_rewrite_header: host` would change nothing");
                return None;
            }
            Some(Some(HostRewrite::Header(name.to_ascii_lowercase())))
        }
        _ => match node.peek_bool() {
            Some(true) => Some(Some(HostRewrite::Endpoint)),
            Some(false) => Some(None),
            None => {
                node.wrong_type(diag, "true or false");
                None
            }
        },
    }
}

/// A route's `redirect`.
pub(super) fn redirect(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Redirect> {
    let map = node.map(diag, REDIRECT_KEYS)?;
    let scheme = match (
        map.optional("https_redirect"),
        map.optional("scheme_redirect"),
    ) {
        (None, None) => Some(None),
        (Some(n), None) => match n.peek_bool() {
            Some(https) => Some(https.then(|| "https".to_owned())),
            None => {
                n.wrong_type(diag, "true or false");
                None
            }
        },
        (None, Some(n)) => {
            let text = n.str(diag)?;
            match check_scheme(text) {
                Ok(scheme) => Some(Some(scheme)),
                Err(message) => {
                    n.error(diag, message);
                    None
                }
            }
        }
        (Some(_), Some(n)) => {
            n.error(
                diag,
                "a redirect has at most one of `https_redirect` or `scheme_redirect`",
            );
            None
        }
    };
    let host = match map.optional("host_redirect") {
        Some(n) => authority(&n, diag).map(Some),
        None => Some(None),
    };
    let port = match map.optional("port_redirect") {
        Some(n) => n
            .int_in(diag, "a port", 1..=65535)
            .and_then(|p| u16::try_from(p).ok())
            .map(Some),
        None => Some(None),
    };
    let path = match map.optional("path_redirect") {
        Some(n) if map.has("prefix_rewrite") || map.has("regex_rewrite") => {
            n.error(
                diag,
                "a redirect has at most one of `path_redirect`, `prefix_rewrite` or \
                 `regex_rewrite`",
            );
            None
        }
        Some(n) => uri_path(&n, diag, false).map(|p| Some(RedirectPath::Path(p))),
        None => path_rewrite(&map, diag).map(|r| r.map(RedirectPath::Rewrite)),
    };
    let status = match map.optional("response_code") {
        Some(n) => response_code(&n, diag),
        None => Some(301),
    };
    let strip_query = optional_bool(&map, "strip_query", false, diag);
    Some(Redirect {
        scheme: scheme?,
        host: host?,
        port: port?,
        path: path?,
        status: status?,
        strip_query: strip_query?,
    })
}

/// 301, 302, 303, 307 or 308, or Envoy's names for them.
fn response_code(node: &Node<'_>, diag: &mut Diagnostics) -> Option<u16> {
    const NAMES: &[(&str, u16)] = &[
        ("MOVED_PERMANENTLY", 301),
        ("FOUND", 302),
        ("SEE_OTHER", 303),
        ("TEMPORARY_REDIRECT", 307),
        ("PERMANENT_REDIRECT", 308),
    ];
    let code = match (node.peek_int(), node.peek_str()) {
        (Some(n), _) => u16::try_from(n).ok(),
        (None, Some(name)) => NAMES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c),
        _ => None,
    };
    match code {
        Some(c @ (301 | 302 | 303 | 307 | 308)) => Some(c),
        _ => {
            node.error(
                diag,
                "expected a redirect status: 301, 302, 303, 307 or 308 (or MOVED_PERMANENTLY, \
                 FOUND, SEE_OTHER, TEMPORARY_REDIRECT, PERMANENT_REDIRECT)",
            );
            None
        }
    }
}

/// An absolute path of URI characters; with `path_only`, without a query.
fn uri_path(node: &Node<'_>, diag: &mut Diagnostics, path_only: bool) -> Option<String> {
    let text = node.str(diag)?;
    match check_uri_path(text, path_only) {
        Ok(()) => Some(text.to_owned()),
        Err(message) => {
            node.error(diag, message);
            None
        }
    }
}

/// [`uri_path`]'s rule on text (the Envoy loader applies it too).
pub(super) fn check_uri_path(text: &str, path_only: bool) -> Result<(), String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must start with `/`"));
    }
    if let Some(bad) = text
        .bytes()
        .find(|&b| !uri_byte(b) || (path_only && b == b'?'))
    {
        return Err(format!(
            "{text:?}: {:?} cannot appear in a {}",
            char::from(bad),
            if path_only { "path" } else { "path and query" }
        ));
    }
    Ok(())
}

/// A host, with an optional port: what a Host field or a URI's authority holds.
fn authority(node: &Node<'_>, diag: &mut Diagnostics) -> Option<String> {
    let text = node.str(diag)?;
    match check_authority(text) {
        Ok(host) => Some(host),
        Err(message) => {
            node.error(diag, message);
            None
        }
    }
}

/// [`authority`]'s rule on text: the host, lower-cased.
pub(super) fn check_authority(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'[' | b']' | b'%')
        });
    if !valid {
        return Err(format!(
            "{text:?} is not a host (letters, digits, `-`, `.`, `:port`, `[v6]`)"
        ));
    }
    Ok(text.to_ascii_lowercase())
}

/// A URI scheme (`https`, `ws`...), lower-cased.
pub(super) fn check_scheme(text: &str) -> Result<String, String> {
    let valid = text.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if valid {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{text:?} is not a URI scheme"))
    }
}

/// A regex rewrite's substitution must name groups the pattern has and hold only what a
/// request path can carry.
pub(super) fn check_substitution(text: &str, groups: usize) -> Result<(), String> {
    substitution(text, groups)?;
    if text.bytes().any(|b| !uri_byte(b) && b != b'\\') {
        return Err(format!(
            "{text:?} has a character a request path cannot carry"
        ));
    }
    Ok(())
}

/// A byte a URI's path or query may carry as is (RFC 3986 `pchar`, `/`, `?`, `%`).
fn uri_byte(b: u8) -> bool {
    path_byte(b) || b"*/?".contains(&b)
}
