//! The jwt_authn filter and its per-route config on byte strings: Envoy's defaults,
//! requirements, names merged over listeners, and each refusal with its position.

use std::path::Path;
use std::time::Duration;

use crate::config::auth::*;
use crate::config::model::*;

/// A P-256 public key (generated for these tests; no private key is kept).
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k1","x":"BHcwipFQ5R5yEg1ZVH5yd0mKQUXsxbQizLv6Btk52fw","y":"ANDHHqvfw_oWZIUeoOjITBH0ilYJinCwFTWBPyyQEPM"}]}"#;

use crate::config::envoy::tests::{errors, load};

const PER_ROUTE: &str =
    "\"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig";

/// A listener named `name` on `port` whose jwt_authn filter has `filter` (its fields,
/// indented by 14), whose virtual host has `vhost` (indented by 14) and `routes`
/// (items indented by 14).
fn listener(name: &str, port: u16, filter: &str, vhost: &str, routes: &str) -> String {
    format!(
        r#"  - name: {name}
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: local
              domains: ["*"]
{vhost}              routes:
{routes}          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
{filter}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

const CLUSTERS: &str = r#"  clusters:
  - name: app
    load_assignment: { cluster_name: app, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } } }] }] }
  - name: idp
    load_assignment: { cluster_name: idp, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8443 } } } }] }] }
"#;

const ROUTE: &str =
    "              - match: { prefix: / }\n                route: { cluster: app }\n";

fn bootstrap(listeners: &[String]) -> String {
    format!(
        "static_resources:\n  listeners:\n{}{CLUSTERS}",
        listeners.concat()
    )
}

/// One listener with the filter's `filter` fields and a route to `app`.
fn one(filter: &str) -> String {
    bootstrap(&[listener("listener_0", 10000, filter, "", ROUTE)])
}

fn local(name: &str) -> String {
    format!(
        "                {name}:\n                  local_jwks: {{ inline_string: '{JWKS}' }}\n"
    )
}

#[test]
fn the_corpus_firebase_config_loads_with_envoys_defaults() {
    // Its cluster asks for HTTP/2 (`auto_config`) and `auto_sni` beside `sni`, which
    // ringway refuses (tests/envoy.rs pins that); without them, the filter loads.
    let text = include_str!("../../../../tests/envoy/corpus/jwt_authn.yaml");
    let start = text.find("    typed_extension_protocol_options:").unwrap();
    let end = text
        .find("    load_assignment:\n      cluster_name: www")
        .unwrap();
    let config = load(&format!("{}{}", &text[..start], &text[end..]));
    assert_eq!(
        config.auth.jwt_providers,
        [JwtProvider {
            name: "firebase".into(),
            issuer: Some(
                "https://securetoken.google.com/example.com:example-project-1234567890".into()
            ),
            audiences: vec!["example.com:example-project-1234567890".into()],
            jwks: JwksSource::Remote(RemoteJwks {
                url: "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com".into(),
                cluster: Some("www.googleapis.com".into()),
                timeout: Duration::from_secs(1),
                cache_duration: Duration::from_secs(600),
                failed_refetch: Duration::from_secs(1),
                fast_listener: false,
                retries: 10,
                unknown_kid_refetch: Duration::from_secs(10),
                ready_after_failed_fetch: true,
            }),
            from: vec![
                TokenSource::Header {
                    name: "authorization".into(),
                    prefix: "Bearer ".into()
                },
                TokenSource::Query("access_token".into()),
            ],
            forward: true,
            forward_payload_header: None,
            pad_forward_payload_header: false,
            claim_to_headers: vec![
                ClaimToHeader {
                    claim: "user_id".into(),
                    header: "x-firebase-uid".into()
                },
                ClaimToHeader {
                    claim: "firebase.sign_in_provider".into(),
                    header: "x-firebase-provider".into()
                },
            ],
            clock_skew: Duration::from_secs(60),
            require_expiration: false,
            max_lifetime: None,
            required_claims: vec![],
            cache_size: 1024,
            payload_in_metadata: None,
        }]
    );
    assert_eq!(config.auth.api_keys, None);
    assert_eq!(
        config.listeners[0].auth,
        Some(ListenerAuth {
            rules: vec![AuthRule {
                matcher: RouteMatch::Prefix("/".into()),
                conditions: RouteConditions::default(),
                requires: Some(Requirement::Provider {
                    name: "firebase".into(),
                    audiences: None
                }),
            }],
            bypass_cors_preflight: false,
            stats: true,
        })
    );
    assert_eq!(config.listeners[0].virtual_hosts[0].routes[0].auth, None);
}

fn provider(name: &str) -> Requirement {
    Requirement::Provider {
        name: name.into(),
        audiences: None,
    }
}

#[test]
fn providers_rules_requirement_map_and_per_route_configs() {
    let filter = format!(
        r#"              providers:
                main:
                  issuer: https://id.example.com
                  audiences: [api]
                  local_jwks: {{ inline_string: '{JWKS}' }}
                  from_headers: [{{ name: X-Token, value_prefix: "Tok " }}]
                  from_params: [tok]
                  from_cookies: [session]
                  forward_payload_header: X-Jwt-Payload
                  pad_forward_payload_header: true
                  payload_in_metadata: jwt_payload
                  claim_to_headers: [{{ header_name: X-User, claim_name: sub }}]
                  clock_skew_seconds: 30
                  max_lifetime: 3600s
                  jwt_cache_config: {{ jwt_cache_size: 5 }}
                other:
                  remote_jwks:
                    http_uri: {{ uri: "https://idp.example.com/jwks", cluster: idp, timeout: 2s }}
                    cache_duration: 60s
                    async_fetch: {{ fast_listener: true, failed_refetch_duration: 3s }}
                    retry_policy: {{ retry_back_off: {{ base_interval: 0.1s }}, num_retries: 4 }}
                  forward: true
                  require_expiration: true
              rules:
              - match: {{ prefix: /health }}
              - match: {{ prefix: /any, headers: [{{ name: x-a, present_match: true }}] }}
                requires:
                  requires_any:
                    requirements:
                    - provider_name: main
                    - provider_and_audiences: {{ provider_name: other, audiences: [b] }}
                    - allow_missing: {{}}
              - match: {{ prefix: /all }}
                requires: {{ requires_all: {{ requirements: [{{ provider_name: main }}, {{ provider_name: other }}] }} }}
              - match: {{ path: /open }}
                requirement_name: open
              - match: {{ prefix: / }}
                requirement_name: default
              requirement_map:
                default: {{ provider_name: main }}
                open: {{}}
                relaxed: {{ allow_missing_or_failed: {{}} }}
              bypass_cors_preflight: true
"#
    );
    let vhost = format!(
        "              typed_per_filter_config:\n                envoy.filters.http.jwt_authn:\n                  {PER_ROUTE}\n                  requirement_name: relaxed\n"
    );
    let routes = format!(
        r#"              - match: {{ prefix: /public }}
                route: {{ cluster: app }}
                typed_per_filter_config:
                  envoy.filters.http.jwt_authn:
                    {PER_ROUTE}
                    disabled: true
              - match: {{ prefix: /open }}
                route: {{ cluster: app }}
                typed_per_filter_config:
                  envoy.filters.http.jwt_authn:
                    {PER_ROUTE}
                    requirement_name: open
              - match: {{ prefix: /orders }}
                route: {{ cluster: app }}
                typed_per_filter_config:
                  envoy.filters.http.jwt_authn:
                    {PER_ROUTE}
                    requirement_name: default
              - match: {{ prefix: / }}
                route: {{ cluster: app }}
"#
    );
    let config = load(&bootstrap(&[listener(
        "listener_0",
        10000,
        &filter,
        &vhost,
        &routes,
    )]));
    let [main, other] = config.auth.jwt_providers.as_slice() else {
        panic!("two providers: {:?}", config.auth.jwt_providers);
    };
    assert_eq!(main.name, "main");
    assert_eq!(main.issuer.as_deref(), Some("https://id.example.com"));
    assert_eq!(main.audiences, ["api"]);
    assert_eq!(main.jwks, JwksSource::Inline(JWKS.into()));
    assert_eq!(
        main.from,
        [
            TokenSource::Header {
                name: "x-token".into(),
                prefix: "Tok ".into()
            },
            TokenSource::Query("tok".into()),
            TokenSource::Cookie("session".into()),
        ]
    );
    assert!(!main.forward);
    assert_eq!(
        main.forward_payload_header.as_deref(),
        Some("x-jwt-payload")
    );
    assert!(main.pad_forward_payload_header);
    assert_eq!(main.payload_in_metadata.as_deref(), Some("jwt_payload"));
    assert_eq!(
        main.claim_to_headers,
        [ClaimToHeader {
            claim: "sub".into(),
            header: "x-user".into()
        }]
    );
    assert_eq!(main.clock_skew, Duration::from_secs(30));
    assert_eq!(main.max_lifetime, Some(Duration::from_secs(3600)));
    assert!(main.require_expiration, "max_lifetime implies it");
    assert_eq!(main.cache_size, 5);
    assert_eq!(other.name, "other");
    assert_eq!(other.issuer, None);
    assert!(other.forward);
    assert!(other.require_expiration);
    assert_eq!(other.cache_size, 100);
    assert_eq!(other.clock_skew, Duration::from_secs(60));
    assert_eq!(
        other.jwks,
        JwksSource::Remote(RemoteJwks {
            url: "https://idp.example.com/jwks".into(),
            cluster: Some("idp".into()),
            timeout: Duration::from_secs(2),
            cache_duration: Duration::from_secs(60),
            failed_refetch: Duration::from_secs(3),
            fast_listener: true,
            retries: 4,
            unknown_kid_refetch: Duration::from_secs(10),
            ready_after_failed_fetch: true,
        })
    );
    let auth = config.listeners[0].auth.as_ref().expect("listener auth");
    assert!(auth.bypass_cors_preflight);
    assert!(auth.stats);
    let rules: Vec<_> = auth
        .rules
        .iter()
        .map(|r| (r.matcher.clone(), r.requires.clone()))
        .collect();
    assert_eq!(
        rules,
        [
            (RouteMatch::Prefix("/health".into()), None),
            (
                RouteMatch::Prefix("/any".into()),
                Some(Requirement::Any(vec![
                    provider("main"),
                    Requirement::Provider {
                        name: "other".into(),
                        audiences: Some(vec!["b".into()])
                    },
                    Requirement::AllowMissing,
                ]))
            ),
            (
                RouteMatch::Prefix("/all".into()),
                Some(Requirement::All(vec![provider("main"), provider("other")]))
            ),
            (RouteMatch::Path("/open".into()), None),
            (RouteMatch::Prefix("/".into()), Some(provider("main"))),
        ]
    );
    assert_eq!(auth.rules[1].conditions.headers[0].name, "x-a");
    let routes: Vec<_> = config.listeners[0].virtual_hosts[0]
        .routes
        .iter()
        .map(|r| r.auth.clone())
        .collect();
    assert_eq!(
        routes,
        [
            Some(RouteAuth::Disabled),
            // An empty requirement requires nothing.
            Some(RouteAuth::Disabled),
            Some(RouteAuth::Requires(provider("main"))),
            // The virtual host's config, for a route without its own.
            Some(RouteAuth::Requires(Requirement::AllowMissingOrFailed)),
        ]
    );
}

#[test]
fn without_async_fetch_keys_are_fetched_in_the_background_at_once() {
    let filter = "              providers:\n                p:\n                  remote_jwks:\n                    http_uri: { uri: \"http://idp:8080/keys?x=1\", cluster: idp, timeout: 1s }\n                    retry_policy: {}\n";
    let config = load(&one(filter));
    let JwksSource::Remote(remote) = &config.auth.jwt_providers[0].jwks else {
        panic!("remote keys");
    };
    assert!(remote.fast_listener);
    assert_eq!(remote.failed_refetch, Duration::from_secs(1));
    assert_eq!(remote.cache_duration, Duration::from_secs(600));
    assert_eq!(remote.retries, 1, "a retry_policy without num_retries: one");
    // `async_fetch: {}`: Envoy's fast_listener default, false.
    let config = load(&one(&format!(
        "{filter}                    async_fetch: {{}}\n"
    )));
    let JwksSource::Remote(remote) = &config.auth.jwt_providers[0].jwks else {
        panic!("remote keys");
    };
    assert!(!remote.fast_listener);
    // A listener with the filter but no rules requires nothing by default.
    assert_eq!(config.listeners[0].auth.as_ref().unwrap().rules, []);
}

#[test]
fn a_local_jwks_file_is_read_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("jwks.json");
    std::fs::write(&good, JWKS).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"keys\": []}").unwrap();
    let filter = |path: &Path| {
        format!(
            "              providers:\n                p:\n                  local_jwks: {{ filename: {} }}\n",
            path.display()
        )
    };
    let config = load(&one(&filter(&good)));
    assert_eq!(
        config.auth.jwt_providers[0].jwks,
        JwksSource::File {
            path: good.clone(),
            text: JWKS.into()
        }
    );
    let errors = errors(&one(&filter(&bad)));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("local_jwks.filename: invalid JWKS: "),
        "{errors:?}"
    );
}

#[test]
fn a_provider_two_listeners_define_alike_is_one_and_otherwise_qualified() {
    let differs = |issuer: &str| {
        format!(
            "              providers:\n{}                  issuer: {issuer}\n              rules:\n              - match: {{ prefix: / }}\n                requires: {{ requires_any: {{ requirements: [{{ provider_name: firebase }}, {{ allow_missing: {{}} }}] }} }}\n",
            local("firebase")
        )
    };
    let per_route = format!(
        "              - match: {{ prefix: / }}\n                route: {{ cluster: app }}\n                typed_per_filter_config:\n                  envoy.filters.http.jwt_authn:\n                    {PER_ROUTE}\n                    requirement_name: r\n"
    );
    let with_map = |issuer: &str| {
        format!(
            "              providers:\n{}{}                  issuer: {issuer}\n              rules:\n              - match: {{ prefix: / }}\n                requires: {{ requires_any: {{ requirements: [{{ provider_name: firebase }}, {{ allow_missing: {{}} }}] }} }}\n              requirement_map:\n                r: {{ provider_name: firebase }}\n",
            local("shared"),
            local("firebase")
        )
    };
    let text = bootstrap(&[
        listener("listener_0", 10000, &with_map("a"), "", &per_route),
        listener("listener_1", 10001, &with_map("b"), "", &per_route),
    ]);
    let config = load(&text);
    let names: Vec<&str> = config
        .auth
        .jwt_providers
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["shared", "listener_0/firebase", "listener_1/firebase"]
    );
    for (i, l) in config.listeners.iter().enumerate() {
        let qualified = format!("listener_{i}/firebase");
        let rule = l.auth.as_ref().unwrap().rules[0].requires.clone();
        assert_eq!(
            rule,
            Some(Requirement::Any(vec![
                provider(&qualified),
                Requirement::AllowMissing
            ]))
        );
        assert_eq!(
            l.virtual_hosts[0].routes[0].auth,
            Some(RouteAuth::Requires(provider(&qualified)))
        );
    }
    // Alike in both: one provider, names kept.
    let text = bootstrap(&[
        listener("listener_0", 10000, &differs("a"), "", ROUTE),
        listener("listener_1", 10001, &differs("a"), "", ROUTE),
    ]);
    let config = load(&text);
    assert_eq!(config.auth.jwt_providers.len(), 1);
    assert_eq!(config.auth.jwt_providers[0].name, "firebase");
}

#[test]
fn jwt_authn_features_ringway_lacks_are_refused_by_name() {
    let cases: &[(&str, &str)] = &[
        (
            "                  subjects: { prefix: spiffe://x/ }\n",
            "envoy.yaml:26:29: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.providers[\"p\"].subjects: unsupported: ringway does not implement `subjects` of envoy.extensions.filters.http.jwt_authn.v3.JwtProvider (yet); remove it or see docs/envoy.md",
        ),
        (
            "                  header_in_metadata: h\n",
            "envoy.yaml:26:39: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.providers[\"p\"].header_in_metadata: unsupported: ringway does not implement `header_in_metadata` of envoy.extensions.filters.http.jwt_authn.v3.JwtProvider (yet); remove it or see docs/envoy.md",
        ),
        (
            "                  failed_status_in_metadata: f\n",
            "envoy.yaml:26:46: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.providers[\"p\"].failed_status_in_metadata: unsupported: ringway does not implement `failed_status_in_metadata` of envoy.extensions.filters.http.jwt_authn.v3.JwtProvider (yet); remove it or see docs/envoy.md",
        ),
        (
            "                  normalize_payload_in_metadata: { space_delimited_claims: [scope] }\n",
            "envoy.yaml:26:50: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.providers[\"p\"].normalize_payload_in_metadata: unsupported: ringway does not implement `normalize_payload_in_metadata` of envoy.extensions.filters.http.jwt_authn.v3.JwtProvider (yet); remove it or see docs/envoy.md",
        ),
        (
            "                  clear_route_cache: true\n",
            "envoy.yaml:26:38: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.providers[\"p\"].clear_route_cache: unsupported: ringway does not implement `clear_route_cache` of envoy.extensions.filters.http.jwt_authn.v3.JwtProvider (yet); remove it or see docs/envoy.md",
        ),
        (
            "              filter_state_rules: { name: f }\n",
            "envoy.yaml:26:35: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.filter_state_rules: unsupported: ringway does not implement `filter_state_rules` of envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication (yet); remove it or see docs/envoy.md",
        ),
        (
            "              strip_failure_response: true\n",
            "envoy.yaml:26:39: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.strip_failure_response: unsupported: ringway does not implement `strip_failure_response` of envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication (yet); remove it or see docs/envoy.md",
        ),
    ];
    let base = format!("              providers:\n{}", local("p"));
    for (extra, expected) in cases {
        assert_eq!(
            errors(&one(&format!("{base}{extra}"))),
            [*expected],
            "{extra}"
        );
    }
    // `local_jwks.environment_variable`, and jwt_cache_config fields beyond the size.
    let filter = "              providers:\n                p:\n                  local_jwks: { environment_variable: JWKS }\n";
    assert_eq!(
        errors(&one(filter)),
        ["envoy.yaml:25:55: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.providers[\"p\"].local_jwks.environment_variable: unsupported: ringway does not implement `environment_variable` of envoy.config.core.v3.DataSource (yet); remove it or see docs/envoy.md"]
    );
}

#[test]
fn names_urls_clusters_and_keys_are_checked_where_written() {
    let prefix = "envoy.yaml";
    let at = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";
    let rules = |requires: &str| {
        format!(
            "              providers:\n{}              rules:\n              - match: {{ prefix: / }}\n                {requires}\n",
            local("main")
        )
    };
    assert_eq!(
        errors(&one(&rules("requires: { provider_name: mian }"))),
        [format!("{prefix}:28:44: {at}.rules[0].requires.provider_name: Required provider ['mian'] is not configured.; did you mean `main`?")]
    );
    assert_eq!(
        errors(&one(&rules("requires: { provider_and_audiences: { provider_name: x, audiences: [a] } }"))),
        [format!("{prefix}:28:70: {at}.rules[0].requires.provider_and_audiences.provider_name: Required provider ['x'] is not configured.")]
    );
    assert_eq!(
        errors(&one(&rules("requirement_name: nope"))),
        [format!("{prefix}:28:35: {at}.rules[0].requirement_name: Wrong requirement_name: nope. It should be one of []")]
    );
    assert_eq!(
        errors(&one(&rules("requires: { requires_any: { requirements: [{ provider_name: main }, {}] } }"))),
        [format!("{prefix}:28:85: {at}.rules[0].requires.requires_any.requirements[1]: an empty requirement inside requires_any or requires_all is not supported (it would let every request through)")]
    );
    let remote = |uri: &str, cluster: &str, extra: &str| {
        one(&format!(
            "              providers:\n                p:\n                  remote_jwks:\n                    http_uri: {{ uri: \"{uri}\", cluster: {cluster}, timeout: 1s }}\n{extra}"
        ))
    };
    assert_eq!(
        errors(&remote("ftp://idp/keys", "idp", "")),
        [format!("{prefix}:26:38: {at}.providers[\"p\"].remote_jwks.http_uri.uri: Provider 'p' has an invalid URI: 'ftp://idp/keys' (\"ftp://idp/keys\" is not an http:// or https:// URL)")]
    );
    assert_eq!(
        errors(&remote("https:///keys", "idp", "")),
        [format!("{prefix}:26:38: {at}.providers[\"p\"].remote_jwks.http_uri.uri: Provider 'p' has an invalid URI: 'https:///keys' (\"https:///keys\" has no host)")]
    );
    assert_eq!(
        errors(&remote("https://idp/keys", "idpp", "")),
        [format!("{prefix}:26:67: {at}.providers[\"p\"].remote_jwks.http_uri.cluster: unknown cluster \"idpp\"; did you mean `idp`?")]
    );
    assert_eq!(
        errors(&remote(
            "https://idp/keys",
            "idp",
            "                    async_fetch: { failed_refetch_duration: 0s }\n"
        )),
        [format!("{prefix}:27:61: {at}.providers[\"p\"].remote_jwks.async_fetch.failed_refetch_duration: a refetch after a failure needs a pause greater than zero")]
    );
    assert_eq!(
        errors(&remote(
            "https://idp/keys",
            "idp",
            "                    retry_policy: { num_retries: 2, retry_on: 5xx }\n"
        )),
        [format!("{prefix}:27:63: {at}.providers[\"p\"].remote_jwks.retry_policy.retry_on: unsupported: ringway does not implement `retry_on` of envoy.config.core.v3.RetryPolicy (yet); remove it or see docs/envoy.md")]
    );
    let zero = one("              providers:\n                p:\n                  remote_jwks:\n                    http_uri: { uri: \"https://idp/k\", cluster: idp, timeout: 0s }\n");
    assert_eq!(
        errors(&zero),
        [format!("{prefix}:26:78: {at}.providers[\"p\"].remote_jwks.http_uri.timeout: a JWKS fetch needs a timeout greater than zero (ringway's fetches always have a deadline)")]
    );
    let bad_keys = "              providers:\n                p:\n                  local_jwks: { inline_string: '{\"keys\": 3}' }\n";
    assert_eq!(
        errors(&one(bad_keys)),
        [format!("{prefix}:25:48: {at}.providers[\"p\"].local_jwks.inline_string: invalid JWKS: [keys] in Jwks is not an array")]
    );
    let header = format!(
        "              providers:\n{}                  from_headers: [{{ name: host }}]\n",
        local("p")
    );
    assert_eq!(
        errors(&one(&header)),
        [format!("{prefix}:26:42: {at}.providers[\"p\"].from_headers[0].name: `host` cannot be edited: it carries the message's framing, connection or routing")]
    );
}

#[test]
fn per_route_configs_need_the_filter_and_a_known_name() {
    let filter = format!(
        "              providers:\n{}              requirement_map:\n                a: {{ provider_name: p }}\n                b: {{ provider_name: p }}\n",
        local("p")
    );
    let route = |key: &str, config: &str| {
        format!(
            "              - match: {{ prefix: / }}\n                route: {{ cluster: app }}\n                typed_per_filter_config:\n                  {key}:\n                    {PER_ROUTE}\n                    {config}\n"
        )
    };
    let at = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config";
    let text = bootstrap(&[listener(
        "listener_0",
        10000,
        &filter,
        "",
        &route("envoy.filters.http.jwt_authn", "requirement_name: c"),
    )]);
    assert_eq!(
        errors(&text),
        [format!("envoy.yaml:22:39: {at}[\"envoy.filters.http.jwt_authn\"].requirement_name: Wrong requirement_name: c. It should be one of [a,b]")]
    );
    let text = bootstrap(&[listener(
        "listener_0",
        10000,
        &filter,
        "",
        &route("jwt", "disabled: true"),
    )]);
    assert_eq!(
        errors(&text),
        [format!("envoy.yaml:21:21: {at}[\"jwt\"]: a PerRouteConfig under \"jwt\" needs a jwt_authn filter of that name in http_filters (envoy.filters.http.jwt_authn)")]
    );
    // Two jwt_authn filters in one chain.
    let text = one(&filter).replace(
        "          - name: envoy.filters.http.router\n",
        &format!(
            "          - name: second\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n{filter}          - name: envoy.filters.http.router\n"
        ),
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with("http_filters[1].typed_config: one jwt_authn filter per connection manager is supported"),
        "{errors:?}"
    );
}
