//! Router tests: tables of first-match-wins cases, and a property test that the trie
//! router picks exactly the route a naive linear scan of the config picks.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::{HeaderMatch, HostMatch, QueryMatch, RouteConditions, RouteMatch, ValueMatch};

fn direct(status: u16) -> config::RouteAction {
    config::RouteAction::DirectResponse(config::DirectResponse {
        status,
        body: bytes::Bytes::new(),
        content_type: String::new(),
    })
}

fn route(matcher: RouteMatch, status: u16) -> config::Route {
    with(matcher, status, RouteConditions::default())
}

fn with(matcher: RouteMatch, status: u16, conditions: RouteConditions) -> config::Route {
    config::Route {
        observe: Default::default(),
        name: None,
        matcher,
        action: direct(status),
        timeout: Duration::from_secs(15),
        conditions,
        headers: Default::default(),
        max_request_body: None,
        rewrite: Default::default(),
        cors: None,
        upgrades: None,
        idle_timeout: None,
        auth: None,
        authorization: None,
        rate_limit: None,
        hash_policy: Vec::new(),
        retry: None,
        mirrors: Vec::new(),
        fault: None,
        max_stream_duration: None,
        priority: Default::default(),
        attempt_count: Default::default(),
    }
}

fn input<'a>(
    host: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(&'a str, &'a [u8])],
) -> RouteInput<'a, [(&'a str, &'a [u8])]> {
    RouteInput {
        host: host.as_bytes(),
        path: path.as_bytes(),
        query: query.as_bytes(),
        headers,
    }
}

fn status(router: &Router, input: &RouteInput<'_, [(&str, &[u8])]>) -> Option<u16> {
    let fast = router.route(input).map(|r| r.index);
    let slow = router.route_linear(input).map(|r| r.index);
    assert_eq!(fast, slow, "trie and linear scan disagree");
    match &router.route(input)?.action {
        Action::Direct(r) => Some(r.status()),
        Action::Cluster(i) => Some(1000 + *i as u16),
        Action::Redirect(r) => Some(r.reply.status()),
        Action::Weighted(_) => Some(2000),
    }
}

fn path_status(router: &Router, path: &str) -> Option<u16> {
    status(router, &input("", path, "", &[]))
}

#[test]
fn first_match_wins() {
    use RouteMatch::{Path, Prefix};
    let router = Router::build(
        &[
            route(Prefix("/api/".into()), 201),
            route(Path("/api/exact".into()), 202),
            route(Path("/healthz".into()), 200),
            config::Route {
                action: config::RouteAction::Cluster("c".into()),
                ..route(Prefix("/".into()), 0)
            },
        ],
        |name| (name == "c").then_some(7),
    );
    assert_eq!(path_status(&router, "/api/exact"), Some(201));
    assert_eq!(path_status(&router, "/healthz"), Some(200));
    assert_eq!(path_status(&router, "/healthzz"), Some(1007));
    assert_eq!(path_status(&router, "/"), Some(1007));
    assert_eq!(router.len(), 4);
}

#[test]
fn no_route_is_none() {
    let router = Router::build(&[route(RouteMatch::Path("/a".into()), 200)], |_| None);
    assert_eq!(path_status(&router, "/b"), None);
    assert_eq!(path_status(&router, ""), None);
    assert_eq!(path_status(&router, "/a/"), None);
}

#[test]
fn regexes_match_the_whole_path_in_order() {
    use RouteMatch::{Prefix, Regex};
    let router = Router::build(
        &[
            route(Regex(r"/users/\d+".into()), 201),
            route(Prefix("/users/".into()), 202),
            route(Regex(r"/.*\.png".into()), 203),
        ],
        |_| None,
    );
    assert_eq!(path_status(&router, "/users/42"), Some(201));
    assert_eq!(path_status(&router, "/users/42/x"), Some(202));
    assert_eq!(path_status(&router, "/a/b.png"), Some(203));
    assert_eq!(path_status(&router, "/users/a.png"), Some(202));
    assert_eq!(path_status(&router, "/a/b.png.txt"), None);
}

#[test]
fn methods_match_as_a_list_and_as_the_method_pseudo_header() {
    let only = |m: &[&str]| RouteConditions {
        methods: m.iter().map(|m| m.to_string()).collect(),
        ..Default::default()
    };
    let router = Router::build(
        &[
            with(RouteMatch::Prefix("/".into()), 201, only(&["GET", "HEAD"])),
            with(
                RouteMatch::Prefix("/".into()),
                202,
                RouteConditions {
                    headers: vec![HeaderMatch {
                        name: ":method".into(),
                        value: ValueMatch::Exact("DELETE".into()),
                    }],
                    ..Default::default()
                },
            ),
            route(RouteMatch::Prefix("/".into()), 203),
        ],
        |_| None,
    );
    let by = |method: &str| {
        let headers: [(&str, &[u8]); 1] = [(":method", method.as_bytes())];
        status(&router, &input("", "/x", "", &headers))
    };
    assert_eq!(by("GET"), Some(201));
    assert_eq!(by("HEAD"), Some(201));
    assert_eq!(by("get"), Some(203), "methods are case-sensitive");
    assert_eq!(by("DELETE"), Some(202));
    assert_eq!(by("POST"), Some(203));
}

#[test]
fn hosts_exact_and_wildcard() {
    let hosts = |h: Vec<HostMatch>| RouteConditions {
        hosts: h,
        ..Default::default()
    };
    let router = Router::build(
        &[
            with(
                RouteMatch::Prefix("/".into()),
                201,
                hosts(vec![HostMatch::Exact("api.example.com".into())]),
            ),
            with(
                RouteMatch::Prefix("/".into()),
                202,
                hosts(vec![
                    HostMatch::Suffix(".example.com".into()),
                    HostMatch::Exact("[::1]".into()),
                ]),
            ),
            route(RouteMatch::Prefix("/".into()), 203),
        ],
        |_| None,
    );
    let by_host = |h: &str| status(&router, &input(h, "/x", "", &[]));
    assert_eq!(by_host("api.example.com"), Some(201));
    assert_eq!(by_host("API.Example.COM:8443"), Some(201));
    assert_eq!(by_host("api.example.com."), Some(201));
    assert_eq!(by_host("www.example.com"), Some(202));
    assert_eq!(by_host("a.b.example.com"), Some(202));
    assert_eq!(by_host("[::1]:8080"), Some(202));
    assert_eq!(by_host("example.com"), Some(203));
    assert_eq!(by_host("badexample.com"), Some(203));
    assert_eq!(by_host(""), Some(203));
}

#[test]
fn headers_and_query_all_must_hold() {
    let conditions = RouteConditions {
        hosts: vec![],
        methods: vec![],
        headers: vec![
            HeaderMatch {
                name: "x-canary".into(),
                value: ValueMatch::Exact("1".into()),
            },
            HeaderMatch {
                name: "x-block".into(),
                value: ValueMatch::Present(false),
            },
        ],
        query: vec![QueryMatch {
            name: "debug".into(),
            value: ValueMatch::Exact("on".into()),
        }],
        client_certificate: None,
    };
    let router = Router::build(
        &[
            with(RouteMatch::Prefix("/".into()), 201, conditions),
            with(
                RouteMatch::Prefix("/".into()),
                202,
                RouteConditions {
                    headers: vec![HeaderMatch {
                        name: "user-agent".into(),
                        value: ValueMatch::Regex("curl/.*".into()),
                    }],
                    ..Default::default()
                },
            ),
            with(
                RouteMatch::Prefix("/".into()),
                203,
                RouteConditions {
                    headers: vec![HeaderMatch {
                        name: "x-v".into(),
                        value: ValueMatch::Prefix("v2".into()),
                    }],
                    query: vec![QueryMatch {
                        name: "t".into(),
                        value: ValueMatch::Present(true),
                    }],
                    ..Default::default()
                },
            ),
        ],
        |_| None,
    );
    let canary: &[(&str, &[u8])] = &[("X-Canary", b"1")];
    assert_eq!(
        status(&router, &input("", "/", "debug=on", canary)),
        Some(201)
    );
    assert_eq!(
        status(&router, &input("", "/", "a=b&d%65bug=o%6E", canary)),
        Some(201)
    );
    assert_eq!(status(&router, &input("", "/", "debug=off", canary)), None);
    let blocked: &[(&str, &[u8])] = &[("x-canary", b"1"), ("x-block", b"")];
    assert_eq!(status(&router, &input("", "/", "debug=on", blocked)), None);
    let curl: &[(&str, &[u8])] = &[("user-agent", b"curl/8.0")];
    assert_eq!(status(&router, &input("", "/", "", curl)), Some(202));
    let not_curl: &[(&str, &[u8])] = &[("user-agent", b"xcurl/8.0")];
    assert_eq!(status(&router, &input("", "/", "", not_curl)), None);
    let v2: &[(&str, &[u8])] = &[("x-v", b"v2.1")];
    assert_eq!(status(&router, &input("", "/", "t", v2)), Some(203));
    assert_eq!(status(&router, &input("", "/", "tt=1", v2)), None);
}

/// `case_sensitive: false`: a prefix or a path in any ASCII case, in the table's order
/// with the literal routes (a rewrite replaces what it matched, its length).
#[test]
fn routes_may_match_paths_in_any_case() {
    let router = Router::build(
        &[
            route(RouteMatch::PathAnyCase("/Health".into()), 201),
            route(RouteMatch::Prefix("/api/v1".into()), 202),
            route(RouteMatch::PrefixAnyCase("/API/".into()), 203),
            route(RouteMatch::Prefix("/".into()), 204),
        ],
        |_| None,
    );
    let at = |path: &str| status(&router, &input("", path, "", &[]));
    assert_eq!(at("/health"), Some(201));
    assert_eq!(at("/HEALTH"), Some(201));
    assert_eq!(at("/healthz"), Some(204));
    assert_eq!(at("/api/v1/x"), Some(202));
    assert_eq!(at("/Api/v1/x"), Some(203));
    assert_eq!(at("/api/v2"), Some(203));
    assert_eq!(at("/apix"), Some(204));
    let found = router.route(&input("", "/aPi/x", "", &[])).unwrap();
    assert_eq!(found.matched_len(b"/aPi/x"), 5);
}

/// The naive matcher, straight from the config: path test, then one header condition
/// (the only kind the generated tables use).
fn oracle(routes: &[config::Route], path: &str, header: bool) -> Option<usize> {
    routes.iter().position(|r| {
        let path_ok = match &r.matcher {
            RouteMatch::Prefix(p) => path.starts_with(p.as_str()),
            RouteMatch::Path(p) => path == p,
            RouteMatch::PrefixAnyCase(p) => path.to_lowercase().starts_with(&p.to_lowercase()),
            RouteMatch::PathAnyCase(p) => path.eq_ignore_ascii_case(p),
            RouteMatch::Regex(p) => ::regex::Regex::new(&format!("^(?:{p})$"))
                .unwrap()
                .is_match(path),
            RouteMatch::Template(t) => {
                let t = config::pattern::template(t).unwrap();
                ::regex::Regex::new(&t.regex).unwrap().is_match(path)
            }
        };
        path_ok && (r.conditions.headers.is_empty() || header)
    })
}

fn tables() -> impl Strategy<Value = Vec<config::Route>> {
    let literal = "/[abA]{0,3}";
    let matcher = prop_oneof![
        4 => literal.prop_map(RouteMatch::Prefix),
        3 => literal.prop_map(RouteMatch::Path),
        1 => literal.prop_map(RouteMatch::PrefixAnyCase),
        1 => literal.prop_map(RouteMatch::PathAnyCase),
        1 => prop_oneof![Just("/a.*"), Just("/[ab]b"), Just("/b*"), Just(".*a")]
            .prop_map(|s| RouteMatch::Regex(s.into())),
    ];
    let route = (matcher, any::<bool>()).prop_map(|(m, conditional)| {
        let conditions = if conditional {
            RouteConditions {
                headers: vec![HeaderMatch {
                    name: "x-h".into(),
                    value: ValueMatch::Present(true),
                }],
                ..Default::default()
            }
        } else {
            RouteConditions::default()
        };
        with(m, 200, conditions)
    });
    proptest::collection::vec(route, 0..24)
}

proptest! {
    #[test]
    fn trie_router_equals_a_linear_scan(
        routes in tables(),
        paths in proptest::collection::vec("/[abA]{0,4}", 1..16),
        header in any::<bool>(),
    ) {
        let router = Router::build(&routes, |_| None);
        let headers: &[(&str, &[u8])] = if header { &[("x-h", b"")] } else { &[] };
        for path in &paths {
            let got = router.route(&input("", path, "", headers)).map(|r| r.index);
            prop_assert_eq!(got, oracle(&routes, path, header), "{}", path);
        }
    }
}
