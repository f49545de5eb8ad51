//! Config loading through the public API: the documented example, the shipped files, and
//! the exact text of errors (file:line:column: path: message) for each class of mistake.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ringway::config::{
    Address, Cluster, Config, DirectResponse, DnsDiscovery, DnsKind, DnsName, DriverChoice,
    Endpoint, Endpoints, HostMatch, Http1Settings, LookupFamily, PathNormalization, PinWorkers,
    PoolSettings, Route, RouteAction, RouteMatch, ValueMatch, Workers,
};

const EXAMPLE: &str = r#"workers: auto
admin: 127.0.0.1:9901
listeners:
  - name: public
    address: 0.0.0.0:8080
    routes:
      - match: { prefix: /api/orders/ }
        cluster: orders
        timeout: 2s
      - match: { path: /healthz }
        direct_response: { status: 200, body: "ok\n" }
clusters:
  - name: orders
    endpoints: [127.0.0.1:9001, 127.0.0.1:9002]
"#;

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

/// Parses `text` as `ringway.yaml` and returns the errors, one string each.
fn errors(text: &str) -> Vec<String> {
    match Config::parse(text, Path::new("ringway.yaml")) {
        Ok(config) => panic!("expected errors, parsed {config:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// A valid config whose first route is replaced by `route` (indented as a list item at 6).
fn with_route(route: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n    routes:\n{route}\n\
         clusters:\n  - name: orders\n    endpoints: [127.0.0.1:9001]\n"
    )
}

#[test]
fn example_parses_to_expected_values() {
    let config = Config::parse(EXAMPLE, Path::new("<inline>")).expect("example parses");
    assert_eq!(config.source, Path::new("<inline>"));
    assert_eq!(config.workers, Workers::Auto);
    assert_eq!(config.pin_workers, PinWorkers::Auto);
    assert_eq!(config.driver, DriverChoice::Auto);
    assert_eq!(config.admin, Some(addr("127.0.0.1:9901")));
    assert_eq!(config.listeners.len(), 1);
    let listener = &config.listeners[0];
    assert_eq!(listener.name, "public");
    assert_eq!(listener.address, Address::Tcp(addr("0.0.0.0:8080")));
    assert_eq!(listener.http1, Http1Settings::default());
    assert_eq!(listener.http1.max_request_line, 8192);
    assert_eq!(listener.http1.max_request_head, 61440);
    assert_eq!(listener.http1.max_headers, 100);
    assert_eq!(listener.http1.max_chunk_extension, 16384);
    assert_eq!(listener.http1.max_trailer_section, 16384);
    assert_eq!(listener.header_read_timeout, Duration::from_secs(10));
    assert_eq!(listener.idle_timeout, Duration::from_secs(60));
    assert_eq!(
        listener.routes,
        vec![
            Route {
                observe: Default::default(),
                name: None,
                matcher: RouteMatch::Prefix("/api/orders/".into()),
                action: RouteAction::Cluster("orders".into()),
                timeout: Duration::from_secs(2),
                conditions: Default::default(),
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
            },
            Route {
                observe: Default::default(),
                name: None,
                matcher: RouteMatch::Path("/healthz".into()),
                action: RouteAction::DirectResponse(DirectResponse {
                    status: 200,
                    body: bytes::Bytes::from_static(b"ok\n"),
                    content_type: "text/plain".into(),
                }),
                timeout: Duration::from_secs(15),
                conditions: Default::default(),
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
            },
        ]
    );
    assert_eq!(
        config.clusters,
        vec![Cluster {
            per_endpoint_stats: false,
            name: "orders".into(),
            endpoints: Endpoints::Static(vec![
                Endpoint::new(Address::Tcp(addr("127.0.0.1:9001")), 1),
                Endpoint::new(Address::Tcp(addr("127.0.0.1:9002")), 1),
            ]),
            connect_timeout: Duration::from_secs(5),
            pool: PoolSettings::default(),
            proxy_protocol: None,
            tls: None,
            balancing: Default::default(),
            health_check: None,
            outlier_detection: None,
            circuit_breakers: Default::default(),
        }]
    );
    assert_eq!(config.cluster("orders"), Some(&config.clusters[0]));
}

#[test]
fn shipped_config_files_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let quickstart = Config::load(&root.join("config/quickstart.yaml")).expect("quickstart");
    assert_eq!(quickstart.admin, Some(addr("127.0.0.1:9901")));
    assert_eq!(quickstart.listeners.len(), 1);
    assert_eq!(quickstart.listeners[0].name, "public");
    assert_eq!(
        quickstart.listeners[0].address,
        Address::Tcp(addr("127.0.0.1:8080"))
    );
    // The quick start proxies to the bundled upstream the README starts beside it.
    assert_eq!(quickstart.clusters.len(), 1);
    assert_eq!(
        static_endpoints(&quickstart.clusters[0])[0].address,
        Address::Tcp(addr("127.0.0.1:9001"))
    );
    let routes: Vec<_> = quickstart.listeners[0]
        .routes
        .iter()
        .map(|r| (r.matcher.clone(), r.action.clone()))
        .collect();
    assert_eq!(routes[0].0, RouteMatch::Path("/healthz".into()));
    assert_eq!(
        routes[1],
        (
            RouteMatch::Prefix("/".into()),
            RouteAction::Cluster("backend".into())
        )
    );

    let reference = Config::load(&root.join("config/reference.yaml")).expect("reference");
    assert_eq!(reference.listeners.len(), 3);
    assert_eq!(reference.listeners[1].virtual_hosts.len(), 2);
    assert_eq!(
        reference.listeners[2].address,
        Address::Tcp(addr("[::1]:8081"))
    );
    // orders, web, accounts, and otel (the trace collector).
    assert_eq!(reference.clusters.len(), 4);
    assert_eq!(
        static_endpoints(&reference.clusters[1])[1].address,
        Address::Tcp(addr("[::1]:9102"))
    );
    // The reference file spells out the defaults: they must be the real ones.
    assert_eq!(reference.listeners[0].http1, Http1Settings::default());
    assert_eq!(
        reference.listeners[0].header_read_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(reference.listeners[0].idle_timeout, Duration::from_secs(60));
    assert_eq!(
        reference.listeners[0].routes[3].timeout,
        Duration::from_secs(15)
    );
    // Authentication: a provider, a consumer, and routes that name them.
    use ringway::config::auth::{Requirement, RouteAuth};
    assert_eq!(reference.auth.jwt_providers[0].name, "main");
    assert_eq!(
        reference
            .auth
            .api_keys
            .as_ref()
            .map(|k| k.consumers[0].name.as_str()),
        Some("acme")
    );
    assert_eq!(
        reference.listeners[0].routes[0].auth,
        Some(RouteAuth::Requires(Requirement::Any(vec![
            Requirement::Provider {
                name: "main".into(),
                audiences: None
            },
            Requirement::ApiKey
        ])))
    );
    assert_eq!(
        reference.listeners[0].routes[2].auth,
        Some(RouteAuth::Disabled)
    );
    assert!(reference.listeners[0].auth.is_some());
    // Rate limits: the listener's on every route (one id), the route's after it; the
    // defaults the file states.
    use ringway::config::ratelimit::{Bucket, KeyPart, Limit, LimitKey};
    let public = &reference.listeners[0];
    let limits = |i: usize| {
        public.routes[i]
            .rate_limit
            .as_ref()
            .map(|p| p.limits.clone())
            .unwrap_or_default()
    };
    let orders = limits(0);
    let ids: Vec<&str> = orders.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "public/listener",
            "public/per-consumer",
            "public/api_orders.1"
        ]
    );
    assert_eq!(limits(1)[0], orders[0]);
    assert!(limits(2).is_empty());
    assert_eq!(
        orders[2].bucket,
        Bucket {
            tokens: 100,
            per: Duration::from_secs(60),
            burst: 100
        }
    );
    assert_eq!(orders[2].key, LimitKey::Parts(vec![KeyPart::Client]));
    assert_eq!(orders[1].max_keys, Limit::DEFAULT_MAX_KEYS);
    assert!(!orders[1].shadow && !orders[1].per_connection);
    assert_eq!(
        public.connection_rate.as_ref().map(|c| c.id.as_str()),
        Some("public")
    );
    let api = &reference.listeners[1].virtual_hosts[0].routes[0];
    assert_eq!(
        api.rate_limit.as_ref().map(|p| p.limits[0].id.as_str()),
        Some("by-host/api.root")
    );
}

#[test]
fn extensions_are_decoded() {
    let text = "workers: 4\npin_workers: false\ndriver: epoll\n\
                listeners:\n  - name: a\n    address: \"[::1]:0\"\n    idle_timeout: 1m\n    \
                header_read_timeout: 500ms\n    http1: { max_request_line: 1KiB, max_request_head: 2KB, \
                max_headers: 7, max_chunk_extension: 512, max_trailer_section: 1MiB, headers_with_underscores: reject }\n    routes:\n      \
                - match: { prefix: / }\n        direct_response: { status: 503, content_type: application/json }\n";
    let config = Config::parse(text, Path::new("x.yaml")).expect("parses");
    assert_eq!(config.workers, Workers::Count(4));
    assert_eq!(config.pin_workers, PinWorkers::Off);
    assert_eq!(config.driver, DriverChoice::Epoll);
    assert_eq!(config.admin, None);
    let l = &config.listeners[0];
    assert_eq!(l.idle_timeout, Duration::from_secs(60));
    assert_eq!(l.header_read_timeout, Duration::from_millis(500));
    assert_eq!(
        l.http1,
        Http1Settings {
            max_request_line: 1024,
            max_request_head: 2000,
            max_headers: 7,
            max_chunk_extension: 512,
            max_trailer_section: 1 << 20,
            underscores: ringway::http1::Underscores::Reject,
        }
    );
    let RouteAction::DirectResponse(direct) = &l.routes[0].action else {
        panic!("direct response expected");
    };
    assert_eq!(direct.status, 503);
    assert!(direct.body.is_empty());
    assert_eq!(direct.content_type, "application/json");
}

#[test]
fn unknown_cluster_with_suggestion() {
    let text = with_route("      - match: { prefix: / }\n        cluster: orderz");
    assert_eq!(
        errors(&text),
        ["ringway.yaml:6:18: listeners[0].routes[0].cluster: unknown cluster \"orderz\"; did you mean `orders`?"]
    );
    let text = with_route("      - match: { prefix: / }\n        cluster: payments");
    assert_eq!(
        errors(&text),
        ["ringway.yaml:6:18: listeners[0].routes[0].cluster: unknown cluster \"payments\""]
    );
}

#[test]
fn unknown_key_with_and_without_suggestion() {
    let text = "listeners:\n  - name: public\n    adress: 127.0.0.1:8080\n    banana: 1\n";
    assert_eq!(
        errors(text),
        [
            "ringway.yaml:2:5: listeners[0]: missing required key `address`",
            "ringway.yaml:2:5: listeners[0]: a listener needs `routes` or `virtual_hosts`",
            "ringway.yaml:3:5: listeners[0].adress: unknown key `adress`; did you mean `address`?",
            "ringway.yaml:4:5: listeners[0].banana: unknown key `banana`",
        ]
    );
    assert_eq!(
        errors("listener: []\n"),
        [
            // Same position: kept in the order found (unknown keys first).
            "ringway.yaml:1:1: listener: unknown key `listener`; did you mean `listeners`?",
            "ringway.yaml:1:1: missing required key `listeners`",
        ]
    );
}

#[test]
fn duplicate_names_and_addresses() {
    let text = "\
listeners:
  - name: public
    address: 127.0.0.1:8080
    routes: [{ match: { prefix: / }, cluster: a }]
  - name: public
    address: 127.0.0.1:8080
    routes: [{ match: { prefix: / }, cluster: a }]
clusters:
  - { name: a, endpoints: [127.0.0.1:1] }
  - { name: a, endpoints: [127.0.0.1:2] }
";
    assert_eq!(
        errors(text),
        [
            "ringway.yaml:5:11: listeners[1].name: duplicate listener name \"public\" (first defined at 2:11: listeners[0].name)",
            "ringway.yaml:6:14: listeners[1].address: duplicate listener address \"127.0.0.1:8080\" (first defined at 3:14: listeners[0].address)",
            "ringway.yaml:10:13: clusters[1].name: duplicate cluster name \"a\" (first defined at 9:13: clusters[0].name)",
        ]
    );
}

#[test]
fn bad_durations_and_sizes() {
    let text = "\
listeners:
  - name: public
    address: 127.0.0.1:8080
    idle_timeout: 10
    header_read_timeout: -1s
    http1:
      max_request_line: 8kib
      max_request_head: 0
      max_trailer_section: 99999999999999999999GiB
      max_headers: 0
    routes:
      - match: { prefix: / }
        direct_response: { status: 200 }
";
    assert_eq!(
        errors(text),
        [
            "ringway.yaml:4:19: listeners[0].idle_timeout: duration `10` has no unit; write e.g. `10s` (units: `h`, `m`, `s`, `ms`, `us` or `ns`)",
            "ringway.yaml:5:26: listeners[0].header_read_timeout: duration cannot be negative: `-1s`",
            "ringway.yaml:7:25: listeners[0].http1.max_request_line: invalid size `8kib`: unknown unit `kib` (units: `B`, `KiB`, `MiB`, `GiB`, `KB`, `MB` or `GB`)",
            "ringway.yaml:8:25: listeners[0].http1.max_request_head: size must be at least 1 byte",
            "ringway.yaml:9:28: listeners[0].http1.max_trailer_section: size `99999999999999999999GiB` is too large",
            "ringway.yaml:10:20: listeners[0].http1.max_headers: expected a header count from 1 to 256, found 0",
        ]
    );
}

#[test]
fn limits_the_codec_or_buffer_cannot_honour_are_refused() {
    let text = "\
listeners:
  - name: public
    address: 127.0.0.1:8080
    buffer_limit: 32KiB
    http1:
      max_request_head: 64KiB
      max_headers: 257
    routes:
      - match: { prefix: / }
        direct_response: { status: 200 }
";
    assert_eq!(
        errors(text),
        [
            "ringway.yaml:7:20: listeners[0].http1.max_headers: expected a header count from 1 to 256, found 257",
        ]
    );
    let text = text.replace("      max_headers: 257\n", "");
    assert_eq!(
        errors(&text),
        [
            "ringway.yaml:6:25: listeners[0].http1.max_request_head: max_request_head (65536) is larger than buffer_limit (32768), which must hold the whole head",
        ]
    );
}

#[test]
fn header_edits_that_would_break_the_message_are_refused() {
    let text = "\
listeners:
  - name: public
    address: 127.0.0.1:8080
    request_headers_to_add:
      - { name: Host, value: x }
      - { name: \"bad name\", value: x }
      - { name: x-ok, value: \"a\\nb\" }
    routes:
      - match: { prefix: / }
        direct_response: { status: 200 }
        response_headers_to_remove: [transfer-encoding]
        response_headers_to_add:
          - { name: x-a, value: b, append: maybe, extra: 1 }
";
    assert_eq!(
        errors(text),
        [
            "ringway.yaml:5:17: listeners[0].request_headers_to_add[0].name: `host` cannot be edited: it carries the message's framing, connection or routing",
            "ringway.yaml:6:17: listeners[0].request_headers_to_add[1].name: \"bad name\" is not a header name (letters, digits and !#$%&'*+-.^_`|~)",
            "ringway.yaml:7:30: listeners[0].request_headers_to_add[2].value: a header value may not contain control characters (CR, LF, NUL...)",
            "ringway.yaml:11:38: listeners[0].routes[0].response_headers_to_remove[0]: `transfer-encoding` cannot be edited: it carries the message's framing, connection or routing",
            "ringway.yaml:13:44: listeners[0].routes[0].response_headers_to_add[0].append: expected `true` or `false`, found the string \"maybe\"",
            "ringway.yaml:13:51: listeners[0].routes[0].response_headers_to_add[0].extra: unknown key `extra`",
        ]
    );
}

#[test]
fn yaml_syntax_error_has_position() {
    let errs = errors("listeners:\n  - name: [unclosed\n    address: x\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("ringway.yaml:"), "{errs:?}");
    assert!(errs[0].contains("YAML syntax error"), "{errs:?}");

    assert_eq!(
        errors("workers: auto\n  admin: x: y\n"),
        ["ringway.yaml:2:8: YAML syntax error: mapping values are not allowed in this context"]
    );
    assert_eq!(
        errors("workers: 1\nworkers: 2\n"),
        ["ringway.yaml:2:1: YAML syntax error: duplicated key in mapping"]
    );
}

#[test]
fn wrong_types() {
    let text = "\
workers: many
pin_workers: yes
driver: iouring
admin: 9901
listeners:
  - name: public
    address: 127.0.0.1:8080
    http1: strict
    routes:
      - match: /api
        direct_response: { status: \"200\", body: 5 }
";
    assert_eq!(
        errors(text),
        [
            "ringway.yaml:1:10: workers: expected `auto` or a worker count from 1 to 1024, found the string \"many\"",
            "ringway.yaml:2:14: pin_workers: expected `auto`, `true` or `false`, found the string \"yes\"",
            "ringway.yaml:3:9: driver: unknown value \"iouring\": expected one of `auto`, `io_uring`, `epoll`; did you mean `io_uring`?",
            "ringway.yaml:4:8: admin: expected a string, found the integer `9901`",
            "ringway.yaml:8:12: listeners[0].http1: expected a mapping, found the string \"strict\"",
            "ringway.yaml:10:16: listeners[0].routes[0].match: expected a mapping, found the string \"/api\"",
            "ringway.yaml:11:36: listeners[0].routes[0].direct_response.status: expected a status code from 200 to 599, found the string \"200\"",
            "ringway.yaml:11:49: listeners[0].routes[0].direct_response.body: expected a string, or a mapping with `inline_string` or `filename`, found the integer `5`",
        ]
    );
    assert_eq!(
        errors("- a\n- b\n"),
        ["ringway.yaml:1:1: expected a mapping, found a list"]
    );
    assert_eq!(
        errors("listeners: {}\n"),
        ["ringway.yaml:1:12: listeners: expected a list, found a mapping"]
    );
}

#[test]
fn empty_files() {
    let empty = "ringway.yaml:1:1: the config is empty; it needs at least `listeners`, or the short form's `routes` (see config/reference.yaml and docs/configuration.md)";
    assert_eq!(errors(""), [empty]);
    assert_eq!(errors("# only a comment\n"), [empty]);
    assert_eq!(errors("---\n"), [empty]);
    assert_eq!(
        errors("listeners: []\n"),
        ["ringway.yaml:1:12: listeners: at least one listener is required"]
    );
}

#[test]
fn route_conditions_decode() {
    let text = with_route(
        "      - match:\n          regex: \"/users/[0-9]+\"\n          host: [API.example.com, \"*.Example.org\"]\n\
         \x20         headers:\n            - { name: X-Canary, exact: \"1\" }\n            - { name: x-off, present: false }\n\
         \x20         query: [{ name: debug, present: true }]\n        cluster: orders",
    );
    let config = Config::parse(&text, Path::new("<inline>")).expect("parses");
    let route = &config.listeners[0].routes[0];
    assert_eq!(route.matcher, RouteMatch::Regex("/users/[0-9]+".into()));
    let c = &route.conditions;
    assert_eq!(
        c.hosts,
        [
            HostMatch::Exact("api.example.com".into()),
            HostMatch::Suffix(".example.org".into())
        ]
    );
    assert_eq!(c.headers[0].name, "x-canary");
    assert_eq!(c.headers[0].value, ValueMatch::Exact("1".into()));
    assert_eq!(c.headers[1].value, ValueMatch::Present(false));
    assert_eq!(c.query[0].name, "debug");
    assert_eq!(c.query[0].value, ValueMatch::Present(true));
    assert_eq!(
        config.listeners[0].path_normalization,
        PathNormalization::default()
    );
}

#[test]
fn route_condition_errors() {
    let text = String::from(
        "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n\
         \x20   path_normalization: { merge_slashes: yes, escaped_slashes: unescap }\n    routes:\n\
         \x20     - match: { regex: \"/a(b\" }\n        cluster: orders\n\
         \x20     - match: { prefix: /, host: \"a.com:80\" }\n        cluster: orders\n\
         \x20     - match: { prefix: /, host: \"a.*.com\", headers: [{ name: \"x y\", exact: a }] }\n        cluster: orders\n\
         \x20     - match: { prefix: /, headers: [{ name: x, exact: a, prefix: b }, { name: y, regex: \"(\" }] }\n        cluster: orders\n\
         \x20     - match: { prefix: /, query: [{ name: q, prefix: a }, { name: r }], heders: [] }\n        cluster: orders\n\
         clusters:\n  - name: orders\n    endpoints: [127.0.0.1:9001]\n"
    );
    assert_eq!(
        errors(&text),
        [
            "ringway.yaml:4:42: listeners[0].path_normalization.merge_slashes: expected `true` or `false`, found the string \"yes\"",
            "ringway.yaml:4:64: listeners[0].path_normalization.escaped_slashes: unknown value \"unescap\": expected one of `keep`, `reject`, `unescape`; did you mean `unescape`?",
            "ringway.yaml:6:25: listeners[0].routes[0].match.regex: invalid regex \"/a(b\": unclosed group",
            "ringway.yaml:8:35: listeners[0].routes[1].match.host: invalid host \"a.com:80\": host patterns have no port (the request's port is ignored)",
            "ringway.yaml:10:35: listeners[0].routes[2].match.host: invalid host \"a.*.com\": the only wildcard is a leading `*.` (one or more labels)",
            "ringway.yaml:10:64: listeners[0].routes[2].match.headers[0].name: \"x y\" is not a valid header name (a token, or one of [\":method\", \":authority\", \":path\"])",
            "ringway.yaml:12:39: listeners[0].routes[3].match.headers[0]: a condition has exactly one of `exact`, `prefix`, `regex`, `present`, not several",
            "ringway.yaml:12:91: listeners[0].routes[3].match.headers[1].regex: invalid regex \"(\": unclosed group",
            "ringway.yaml:14:37: listeners[0].routes[4].match.query[0]: a condition needs one of `exact`, `present`",
            "ringway.yaml:14:48: listeners[0].routes[4].match.query[0].prefix: unknown key `prefix`",
            "ringway.yaml:14:61: listeners[0].routes[4].match.query[1]: a condition needs one of `exact`, `present`",
            "ringway.yaml:14:75: listeners[0].routes[4].match.heders: unknown key `heders`; did you mean `headers`?",
        ]
    );
}

#[test]
fn route_shape_rules() {
    let text = with_route(
        "      - match: { prefix: /a, path: /b }\n        cluster: orders\n        direct_response: { status: 200 }\n\
         \x20     - match: {}\n        timeout: 1s\n\
         \x20     - match: { prefix: api }\n        direct_response: { status: 700 }\n        timeout: 2s",
    );
    assert_eq!(
        errors(&text),
        [
            "ringway.yaml:5:16: listeners[0].routes[0].match: `match` has exactly one of `prefix`, `path`, `regex` or `template`, not several",
            "ringway.yaml:7:26: listeners[0].routes[0].direct_response: a route has exactly one of `cluster`, `weighted_clusters`, `direct_response` or `redirect`",
            "ringway.yaml:8:9: listeners[0].routes[1]: a route needs one of `cluster`, `weighted_clusters`, `direct_response` or `redirect`",
            "ringway.yaml:8:16: listeners[0].routes[1].match: `match` needs one of `prefix`, `path`, `regex` or `template`",
            "ringway.yaml:10:26: listeners[0].routes[2].match.prefix: \"api\" must start with `/`",
            "ringway.yaml:11:36: listeners[0].routes[2].direct_response.status: expected a status code from 200 to 599, found 700",
            "ringway.yaml:12:18: listeners[0].routes[2].timeout: `timeout` applies only to routes with a `cluster`",
        ]
    );
}

#[test]
fn names_addresses_and_endpoints() {
    let text = "\
admin: 127.0.0.1:8080
listeners:
  - name: my listener
    address: localhost:8080
    routes: [{ match: { prefix: / }, cluster: a }]
  - name: b
    address: 127.0.0.1:8080
    routes: [{ match: { prefix: / }, cluster: a }]
clusters:
  - name: a
    endpoints: [0.0.0.0:80, 127.0.0.1, unix:relative]
  - name: empty
    endpoints: []
";
    assert_eq!(
        errors(text),
        [
            "ringway.yaml:1:8: admin: admin address 127.0.0.1:8080 is also the address of listeners[1].address (at 7:14)",
            "ringway.yaml:3:11: listeners[0].name: invalid name \"my listener\": ' ' is not allowed; names may contain only letters, digits, `_`, `.` and `-`",
            "ringway.yaml:4:14: listeners[0].address: invalid address \"localhost:8080\": hostnames are not supported; use an IP address",
            "ringway.yaml:11:17: clusters[0].endpoints[0]: \"0.0.0.0:80\" cannot be connected to: an endpoint needs a real IP and a non-zero port",
            "ringway.yaml:11:29: clusters[0].endpoints[1]: invalid address \"127.0.0.1\": missing port, e.g. `127.0.0.1:8080`",
            "ringway.yaml:11:40: clusters[0].endpoints[2]: \"unix:relative\": a Unix socket path must be absolute, e.g. `unix:/run/app.sock`",
            "ringway.yaml:13:16: clusters[1].endpoints: at least one endpoint is required",
        ]
    );
}

#[test]
fn many_errors_are_collected_in_order_and_capped() {
    // Errors are found section by section (clusters after listeners here would be found
    // first if the file put them first); the report is ordered by position regardless.
    let text = "\
clusters:
  - name: c
    endpoints: [bad]
listeners:
  - name: l
    address: nowhere
    routes:
      - match: { prefix: / }
        cluster: d
workers: 0
";
    assert_eq!(
        errors(text),
        [
            "ringway.yaml:3:17: clusters[0].endpoints[0]: missing port in \"bad\", e.g. `bad:8080`",
            "ringway.yaml:6:14: listeners[0].address: invalid address \"nowhere\": hostnames are not supported; use an IP address",
            "ringway.yaml:9:18: listeners[0].routes[0].cluster: unknown cluster \"d\"",
            "ringway.yaml:10:10: workers: expected `auto` or a worker count from 1 to 1024, found 0",
        ]
    );

    let mut text = String::from("listeners:\n");
    for i in 0..30 {
        text.push_str(&format!(
            "  - {{ name: l{i}, address: 127.0.0.1:{i}, routes: [], bogus: 1 }}\n"
        ));
    }
    let errs = errors(&text);
    assert_eq!(errs.len(), 21);
    assert_eq!(
        errs[0],
        "ringway.yaml:2:47: listeners[0].routes: at least one route is required"
    );
    assert_eq!(
        errs[1],
        "ringway.yaml:2:51: listeners[0].bogus: unknown key `bogus`"
    );
    assert_eq!(errs[20], "ringway.yaml:12:49: 40 more errors not shown");
}

#[test]
fn load_reports_unreadable_files() {
    let errs = Config::load(Path::new("/nonexistent/ringway.yaml")).expect_err("missing file");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs.0[0].line, 0);
    assert!(
        errs.to_string()
            .starts_with("/nonexistent/ringway.yaml: cannot read config file: "),
        "{errs}"
    );
    let _: &dyn std::error::Error = &errs;
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Arbitrary text from a YAML-heavy alphabet: any result is fine, a panic is not.
        #[test]
        fn arbitrary_text(text in "[-:{}\\[\\],&*!|>'\"#%@ \n\tabz019./]{0,200}") {
            let _ = Config::parse(&text, Path::new("fuzz.yaml"));
        }

        /// The example with one character replaced: close to valid, so it reaches the
        /// decoder and validation rather than stopping at the YAML layer.
        #[test]
        fn example_with_one_edit(at in 0usize..EXAMPLE.len(), c in proptest::char::any()) {
            let mut text: String = EXAMPLE.chars().collect();
            if text.is_char_boundary(at) && text.is_char_boundary(at + 1) && at < text.len() {
                text.replace_range(at..at + 1, &c.to_string());
            }
            if let Err(errors) = Config::parse(&text, Path::new("fuzz.yaml")) {
                prop_assert!(!errors.is_empty());
                prop_assert!(errors.len() <= 21);
            }
        }
    }
}

fn static_endpoints(cluster: &Cluster) -> &[Endpoint] {
    match &cluster.endpoints {
        Endpoints::Static(endpoints) => endpoints,
        Endpoints::Dns(_) => panic!("cluster {} is not static", cluster.name),
    }
}

#[test]
fn dns_clusters_are_refused_where_they_do_not_fit_their_type() {
    let text = "\
listeners:
  - name: l
    address: 127.0.0.1:8080
    routes:
      - match: { prefix: / }
        cluster: a
clusters:
  - name: a
    discovery: static
    dns_refresh_rate: 1s
    endpoints: [orders.internal:80, 10.0.0.1:80]
  - name: b
    discovery: logical_dns
    endpoints: [a.internal:80, b.internal:80]
  - name: c
    dns_refresh_rate: 1ms
    dns_lookup_family: v5_only
    endpoints: [\"unix:/run/x.sock\", \"c_d.internal:8080\", -bad.internal:80]
  - name: d
    discovery: stict_dns
    endpoints: [d.internal:80]
";
    assert_eq!(
        errors(text),
        [
            "ringway.yaml:10:23: clusters[0].dns_refresh_rate: `dns_refresh_rate` applies only to `strict_dns` and `logical_dns` clusters",
            "ringway.yaml:11:17: clusters[0].endpoints[0]: \"orders.internal\" is a host name: `discovery: static` takes IP addresses (use `strict_dns` or `logical_dns`, or leave `discovery` out)",
            "ringway.yaml:14:16: clusters[1].endpoints: a `logical_dns` cluster has exactly one endpoint (this one has 2)",
            "ringway.yaml:16:23: clusters[2].dns_refresh_rate: dns_refresh_rate must be at least 10ms",
            "ringway.yaml:17:24: clusters[2].dns_lookup_family: unknown value \"v5_only\": expected one of `auto`, `v4_preferred`, `v4_only`, `v6_only`, `all`; did you mean `v4_only`?",
            "ringway.yaml:18:58: clusters[2].endpoints[2]: invalid host name in \"-bad.internal:80\": a label cannot start or end with `-`",
            "ringway.yaml:20:16: clusters[3].discovery: unknown value \"stict_dns\": expected one of `static`, `strict_dns`, `logical_dns`; did you mean `strict_dns`?",
        ]
    );
    let unix = errors(
        "listeners:\n  - name: l\n    address: 127.0.0.1:8080\n    routes:\n      - match: { prefix: / }\n        cluster: a\nclusters:\n  - name: a\n    endpoints: [\"unix:/run/x.sock\", e.internal:80]\n",
    );
    assert_eq!(
        unix,
        ["ringway.yaml:9:17: clusters[0].endpoints[0]: a Unix socket cannot be resolved: DNS clusters take `host:port`"]
    );
    // Inferred: any host name makes a strict DNS cluster, with the defaults.
    let config = Config::parse(
        "listeners:\n  - name: l\n    address: 127.0.0.1:8080\n    routes:\n      - match: { prefix: / }\n        cluster: a\nclusters:\n  - name: a\n    endpoints: [orders.internal:8080, { address: \"10.0.0.1:80\", weight: 3 }]\n",
        Path::new("ringway.yaml"),
    )
    .unwrap();
    assert_eq!(
        config.clusters[0].endpoints,
        Endpoints::Dns(DnsDiscovery {
            kind: DnsKind::Strict,
            refresh_rate: Duration::from_secs(5),
            family: LookupFamily::V4Preferred,
            names: vec![
                DnsName::new("orders.internal".into(), 8080, 1),
                DnsName::new("10.0.0.1".into(), 80, 3),
            ],
            respect_dns_ttl: false,
        })
    );
}

#[test]
fn a_body_file_that_is_not_a_regular_file_is_refused_at_once() {
    let started = std::time::Instant::now();
    let errors = errors(
        "listeners:\n  - name: l\n    address: 127.0.0.1:8080\n    routes:\n      - match: { prefix: / }\n        direct_response: { status: 200, body: { filename: /dev/zero } }\n",
    );
    assert_eq!(
        errors,
        ["ringway.yaml:6:59: listeners[0].routes[0].direct_response.body.filename: cannot read /dev/zero: not a regular file"]
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn weighted_clusters_are_decoded_and_their_mistakes_positioned() {
    let text = with_route(
        "      - match: { prefix: / }\n        weighted_clusters:\n          clusters: [{ name: orders, weight: 95 }, { name: orders, weight: 5 }]\n          sticky: true\n        hash_on: [{ header: x-user }]\n",
    );
    let config = Config::parse(&text, Path::new("ringway.yaml")).expect("parses");
    let route = &config.listeners[0].routes[0];
    assert_eq!(
        route.action,
        RouteAction::Weighted(ringway::config::WeightedClusters {
            clusters: vec![("orders".into(), 95), ("orders".into(), 5)],
            sticky: true,
        })
    );
    let unknown = errors(&with_route(
        "      - match: { prefix: / }\n        weighted_clusters:\n          clusters: [{ name: ordres, weight: 1 }]\n",
    ));
    assert!(
        unknown
            .iter()
            .any(|e| e.contains("ordres") && e.contains("orders")),
        "{unknown:?}"
    );
    let zero = errors(&with_route(
        "      - match: { prefix: / }\n        weighted_clusters:\n          clusters: [{ name: orders, weight: 0 }]\n",
    ));
    assert!(
        zero.iter().any(|e| e.contains("the weights add up to 0")),
        "{zero:?}"
    );
    let both = errors(&with_route(
        "      - match: { prefix: / }\n        cluster: orders\n        weighted_clusters:\n          clusters: [{ name: orders, weight: 1 }]\n",
    ));
    assert!(
        both.iter().any(|e| e.contains("exactly one of")),
        "{both:?}"
    );
}

#[test]
fn a_pools_request_cap_is_a_positive_count() {
    let cluster = |pool: &str| {
        format!(
            "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n    routes:\n      - match: {{ prefix: / }}\n        cluster: orders\n\
             clusters:\n  - name: orders\n    endpoints: [127.0.0.1:9001]\n    pool: {{ {pool} }}\n"
        )
    };
    let config = Config::parse(
        &cluster("max_requests_per_connection: 100"),
        Path::new("r.yaml"),
    )
    .expect("a cap parses");
    assert_eq!(
        config.clusters[0].pool.max_requests_per_connection,
        Some(100)
    );
    let config = Config::parse(&cluster(""), Path::new("r.yaml")).expect("no cap parses");
    assert_eq!(config.clusters[0].pool.max_requests_per_connection, None);
    assert_eq!(
        errors(&cluster("max_requests_per_connection: 0")),
        ["ringway.yaml:10:42: clusters[0].pool.max_requests_per_connection: expected a number of requests from 1 to 4294967295, found 0"]
    );
}

/// `match.case_sensitive: false` makes a prefix or a path match in any ASCII case; a
/// regex says its own case, so the two together are refused.
#[test]
fn case_insensitive_matches_take_a_prefix_or_a_path() {
    let text = |m: &str| {
        format!("listeners:\n  - name: a\n    address: 127.0.0.1:0\n    routes:\n      - match: {m}\n        direct_response: {{ status: 200 }}\n")
    };
    let config = Config::parse(
        &text("{ prefix: /API, case_sensitive: false }"),
        Path::new("x.yaml"),
    )
    .expect("parses");
    assert_eq!(
        config.listeners[0].routes[0].matcher,
        RouteMatch::PrefixAnyCase("/API".into())
    );
    let config = Config::parse(
        &text("{ path: /a, case_sensitive: true }"),
        Path::new("x.yaml"),
    )
    .expect("parses");
    assert_eq!(
        config.listeners[0].routes[0].matcher,
        RouteMatch::Path("/a".into())
    );
    let got = errors(&text("{ regex: \"/a.*\", case_sensitive: false }"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("`case_sensitive: false` goes with `prefix` or `path`"),
        "{got:?}"
    );
}
