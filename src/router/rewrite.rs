//! Path rewrites and redirect targets, compiled: sans-IO functions from a matched
//! request (normalised path, query, authority) to the bytes the upstream or the client
//! is sent, written into a buffer the caller owns.
//!
//! Semantics are Envoy's (`RouteAction.prefix_rewrite`/`regex_rewrite`,
//! `RedirectAction`): a prefix rewrite replaces what the route's matcher matched (its
//! prefix; the whole path for `path` and `regex` matchers); a regex rewrite replaces
//! every match of its pattern in the path, `\N` in the substitution being group N; the
//! query is kept. A redirect's `location` is
//! `scheme://host[:port]path[?query]`: the scheme is the redirect's or the request's, the
//! host the redirect's or the request's authority (whose port is dropped when the
//! redirect sets one, or when the scheme changes and the port is the new scheme's
//! default: `http://a:443` → `https://a`, as Envoy does), the path the redirect's, the
//! request's rewritten, or the request's. A `path_redirect` with a query replaces the
//! request's query; `strip_query` drops it. A request without an authority gets a
//! relative `location` (the path), which RFC 9110 allows.
//!
//! Cost: no allocation per request. A regex rewrite runs the pattern once per match with
//! capture locations kept in the compiled rewrite (a per-worker snapshot, so a
//! `RefCell` is enough) and expands the substitution from parts parsed at build time.

use std::cell::RefCell;

use regex::bytes::{CaptureLocations, Regex};

use super::hosts::split_port;

use crate::config::{
    self,
    pattern::{anchored_regex, substitution, template, template_rewrite, unanchored_regex, Part},
};

/// A compiled path rewrite.
#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// Replaces the matched part.
    Prefix(Box<[u8]>),
    /// Replaces every match.
    Regex(RegexRewrite),
}

/// A compiled `regex_rewrite`.
#[derive(Debug, Clone)]
pub struct RegexRewrite {
    regex: Regex,
    parts: Box<[Part]>,
    locations: RefCell<CaptureLocations>,
}

impl PathRewrite {
    /// Compiles a validated rewrite; `None` only if validation was bypassed.
    pub fn compile(rewrite: &config::PathRewrite) -> Option<PathRewrite> {
        Some(match rewrite {
            config::PathRewrite::Prefix(p) => PathRewrite::Prefix(p.as_bytes().into()),
            config::PathRewrite::Regex {
                pattern,
                substitution: text,
            } => {
                let regex = unanchored_regex(pattern).ok()?;
                let parts = substitution(text, regex.captures_len()).ok()?;
                PathRewrite::Regex(RegexRewrite::new(regex, parts))
            }
            // The route's template as a regex matching the whole path, its variables as
            // groups: one match, replaced by the rewrite.
            config::PathRewrite::Template {
                template: text,
                rewrite,
            } => {
                let compiled = template(text).ok()?;
                let regex = anchored_regex(&compiled.regex).ok()?;
                let parts = template_rewrite(rewrite, &compiled.names).ok()?;
                PathRewrite::Regex(RegexRewrite::new(regex, parts))
            }
        })
    }

    /// Appends `path` rewritten to `out`; the matcher matched `path[..matched]`.
    pub fn apply(&self, path: &[u8], matched: usize, out: &mut Vec<u8>) {
        match self {
            PathRewrite::Prefix(replacement) => {
                out.extend_from_slice(replacement);
                out.extend_from_slice(&path[matched.min(path.len())..]);
            }
            PathRewrite::Regex(r) => r.apply(path, out),
        }
    }
}

impl RegexRewrite {
    fn new(regex: Regex, parts: Vec<Part>) -> RegexRewrite {
        RegexRewrite {
            locations: RefCell::new(regex.capture_locations()),
            regex,
            parts: parts.into(),
        }
    }

    fn apply(&self, path: &[u8], out: &mut Vec<u8>) {
        let mut locations = self.locations.borrow_mut();
        let (mut search, mut copied) = (0, 0);
        while search <= path.len() {
            let Some(found) = self.regex.captures_read_at(&mut locations, path, search) else {
                break;
            };
            out.extend_from_slice(&path[copied..found.start()]);
            for part in self.parts.iter() {
                match part {
                    Part::Literal(bytes) => out.extend_from_slice(bytes),
                    Part::Group(n) => {
                        if let Some((start, end)) = locations.get(*n) {
                            out.extend_from_slice(&path[start..end]);
                        }
                    }
                }
            }
            copied = found.end();
            // An empty match moves the search on by one byte (the byte is copied with
            // the text before the next match), so the loop always ends.
            search = if found.is_empty() {
                found.end() + 1
            } else {
                found.end()
            };
        }
        out.extend_from_slice(&path[copied.min(path.len())..]);
    }
}

/// A compiled redirect.
#[derive(Debug, Clone)]
pub struct Redirect {
    scheme: Option<Box<[u8]>>,
    host: Option<Box<[u8]>>,
    port: Option<Box<[u8]>>,
    path: Option<RedirectPath>,
    strip_query: bool,
}

#[derive(Debug, Clone)]
enum RedirectPath {
    /// A new path, and a new query when `query` is set.
    Path {
        path: Box<[u8]>,
        query: Option<Box<[u8]>>,
    },
    Rewrite(PathRewrite),
}

/// The request a redirect answers.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The request's scheme (`http`, or `https` behind TLS).
    pub scheme: &'a [u8],
    /// Its authority (Host), empty when it has none.
    pub authority: &'a [u8],
    /// Its normalised path.
    pub path: &'a [u8],
    /// How much of the path the route matched.
    pub matched: usize,
    /// Its query, without `?`.
    pub query: &'a [u8],
}

impl Redirect {
    /// Compiles a validated redirect.
    pub fn compile(redirect: &config::Redirect) -> Option<Redirect> {
        let path = match &redirect.path {
            None => None,
            Some(config::RedirectPath::Path(p)) => Some(match p.split_once('?') {
                Some((path, query)) => RedirectPath::Path {
                    path: path.as_bytes().into(),
                    query: Some(query.as_bytes().into()),
                },
                None => RedirectPath::Path {
                    path: p.as_bytes().into(),
                    query: None,
                },
            }),
            Some(config::RedirectPath::Rewrite(r)) => {
                Some(RedirectPath::Rewrite(PathRewrite::compile(r)?))
            }
        };
        Some(Redirect {
            scheme: redirect.scheme.as_ref().map(|s| s.as_bytes().into()),
            host: redirect.host.as_ref().map(|h| h.as_bytes().into()),
            port: redirect.port.map(|p| p.to_string().into_bytes().into()),
            path,
            strip_query: redirect.strip_query,
        })
    }

    /// Appends the `location` value for a request to `out`.
    pub fn location(&self, origin: &Origin<'_>, out: &mut Vec<u8>) {
        let scheme = self.scheme.as_deref().unwrap_or(origin.scheme);
        let host = match &self.host {
            Some(host) => host_of(host, self.port.is_some()),
            None => request_host(origin, scheme, self.port.is_some()),
        };
        if !host.is_empty() {
            out.extend_from_slice(scheme);
            out.extend_from_slice(b"://");
            out.extend_from_slice(host);
            if let Some(port) = &self.port {
                out.push(b':');
                out.extend_from_slice(port);
            }
        }
        let mut query = (!origin.query.is_empty()).then_some(origin.query);
        match &self.path {
            None => out.extend_from_slice(origin.path),
            Some(RedirectPath::Path { path, query: q }) => {
                out.extend_from_slice(path);
                if let Some(q) = q {
                    query = Some(q);
                }
            }
            Some(RedirectPath::Rewrite(r)) => r.apply(origin.path, origin.matched, out),
        }
        if let (Some(query), false) = (query, self.strip_query) {
            out.push(b'?');
            out.extend_from_slice(query);
        }
    }
}

/// The request's authority as the redirect's host: without its port when the redirect
/// sets one, or when the scheme changes and the port is the new scheme's default.
fn request_host<'a>(origin: &Origin<'a>, scheme: &[u8], new_port: bool) -> &'a [u8] {
    let authority = origin.authority;
    let Some((host, port)) = split_port(authority) else {
        return authority;
    };
    let default_of_new = match scheme {
        b"https" => &b"443"[..],
        b"http" => b"80",
        _ => b"",
    };
    let drop = new_port || (scheme != origin.scheme && port == default_of_new);
    if drop {
        host
    } else {
        authority
    }
}

/// A configured host: its port is dropped when the redirect sets one.
fn host_of(host: &[u8], new_port: bool) -> &[u8] {
    match split_port(host) {
        Some((bare, _)) if new_port => bare,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(r: config::PathRewrite, path: &str, matched: usize) -> String {
        let mut out = Vec::new();
        PathRewrite::compile(&r)
            .unwrap()
            .apply(path.as_bytes(), matched, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn regex(pattern: &str, substitution: &str) -> config::PathRewrite {
        config::PathRewrite::Regex {
            pattern: pattern.into(),
            substitution: substitution.into(),
        }
    }

    #[test]
    fn prefix_rewrites_replace_what_matched() {
        let p = || config::PathRewrite::Prefix("/v2/".into());
        assert_eq!(rewrite(p(), "/api/orders/7", 5), "/v2/orders/7");
        assert_eq!(rewrite(p(), "/api/", 5), "/v2/");
        // An exact or regex match matched the whole path.
        assert_eq!(rewrite(p(), "/health", 7), "/v2/");
    }

    #[test]
    fn template_rewrites_rebuild_the_path_from_its_variables() {
        let t = |template: &str, rewrite: &str| config::PathRewrite::Template {
            template: template.into(),
            rewrite: rewrite.into(),
        };
        assert_eq!(
            rewrite(
                t("/api/{id}/{rest=**}", "/v2/{rest}/by-id/{id}"),
                "/api/7/a/b",
                0
            ),
            "/v2/a/b/by-id/7"
        );
        assert_eq!(
            rewrite(
                t("/users/{user}/orders", "/orders/of-{user}"),
                "/users/ann/orders",
                0
            ),
            "/orders/of-ann"
        );
    }

    #[test]
    fn regex_rewrites_replace_every_match_with_groups() {
        // Envoy's documented examples.
        assert_eq!(
            rewrite(
                regex("^/service/([^/]+)(/.*)$", "\\2/instance/\\1"),
                "/service/foo/v1/api",
                0
            ),
            "/v1/api/instance/foo"
        );
        assert_eq!(
            rewrite(regex("one", "two"), "/xxx/one/yyy/one/zzz", 0),
            "/xxx/two/yyy/two/zzz"
        );
        // No match: unchanged.
        assert_eq!(rewrite(regex("nothing", "x"), "/a/b", 0), "/a/b");
        // Empty matches end and keep every byte.
        assert_eq!(rewrite(regex("x*", "-"), "/ab", 0), "-/-a-b-");
        assert_eq!(rewrite(regex("^", "/pre"), "/ab", 0), "/pre/ab");
    }

    fn location(redirect: config::Redirect, origin: Origin<'_>) -> String {
        let mut out = Vec::new();
        Redirect::compile(&redirect)
            .unwrap()
            .location(&origin, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn base() -> config::Redirect {
        config::Redirect {
            scheme: None,
            host: None,
            port: None,
            path: None,
            status: 301,
            strip_query: false,
        }
    }

    fn origin<'a>(authority: &'a str, path: &'a str, query: &'a str) -> Origin<'a> {
        Origin {
            scheme: b"http",
            authority: authority.as_bytes(),
            path: path.as_bytes(),
            matched: 0,
            query: query.as_bytes(),
        }
    }

    #[test]
    fn redirect_locations_follow_envoys_rules() {
        let https = config::Redirect {
            scheme: Some("https".into()),
            ..base()
        };
        assert_eq!(
            location(https.clone(), origin("a.com", "/x", "q=1")),
            "https://a.com/x?q=1"
        );
        // The old scheme's default port is kept, the new one's dropped.
        assert_eq!(
            location(https.clone(), origin("a.com:80", "/x", "")),
            "https://a.com:80/x"
        );
        assert_eq!(
            location(https.clone(), origin("a.com:443", "/x", "")),
            "https://a.com/x"
        );
        assert_eq!(
            location(https, origin("[::1]:443", "/x", "")),
            "https://[::1]/x"
        );
        let moved = config::Redirect {
            host: Some("b.org".into()),
            port: Some(8443),
            path: Some(config::RedirectPath::Path("/new?x=y".into())),
            ..base()
        };
        assert_eq!(
            location(moved, origin("a.com:8080", "/old", "q=1")),
            "http://b.org:8443/new?x=y"
        );
        let port_only = config::Redirect {
            port: Some(9000),
            strip_query: true,
            ..base()
        };
        assert_eq!(
            location(port_only, origin("a.com:8080", "/p", "q=1")),
            "http://a.com:9000/p"
        );
        let prefix = config::Redirect {
            path: Some(config::RedirectPath::Rewrite(config::PathRewrite::Prefix(
                "/new/".into(),
            ))),
            ..base()
        };
        let mut o = origin("a.com", "/old/page", "");
        o.matched = 5;
        assert_eq!(location(prefix, o), "http://a.com/new/page");
        // No authority: a relative location.
        assert_eq!(location(base(), origin("", "/p", "")), "/p");
    }
}
