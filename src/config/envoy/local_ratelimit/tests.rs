//! The local_ratelimit filters on byte strings: the corpus example, Envoy's defaults,
//! every field, per-route and per-host configs with their bucket ids, descriptor rules,
//! the network filter, and each refusal with its position.

use std::time::Duration;

use crate::config::model::*;
use crate::config::ratelimit::*;
use crate::config::Config;

use crate::config::envoy::tests::{errors, load};

const TYPE: &str =
    "\"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

/// One listener `listener_0`: `network` (network filters before the HCM, items indented
/// by 6), a local_ratelimit filter with `filter` (its fields indented by 14; `None`: no
/// such filter), a virtual host `local` with `vhost` (indented by 14) and `routes` (items
/// indented by 14); `extra` is appended to the bootstrap (a `node`, ...).
fn bootstrap(
    network: &str,
    filter: Option<&str>,
    vhost: &str,
    routes: &str,
    extra: &str,
) -> String {
    let filter = filter.map_or_else(String::new, |fields| {
        format!(
            "          - name: envoy.filters.http.local_ratelimit\n            typed_config:\n              {TYPE}\n{fields}"
        )
    });
    format!(
        r#"static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: {{ address: 127.0.0.1, port_value: 10000 }}
    filter_chains:
    - filters:
{network}      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: local
              domains: ["*"]
{vhost}              routes:
{routes}          http_filters:
{filter}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    load_assignment: {{ cluster_name: app, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8080 }} }} }} }}] }}] }}
{extra}"#
    )
}

const ROUTE: &str =
    "              - match: { prefix: / }\n                route: { cluster: app }\n";

const BUCKET: &str = "              stat_prefix: rl\n              token_bucket: { max_tokens: 10, tokens_per_fill: 5, fill_interval: 2s }\n";

/// The filter with `fields` and one route: its policy.
fn policy(fields: &str) -> Option<RateLimitPolicy> {
    let config = load(&bootstrap("", Some(fields), "", ROUTE, ""));
    config.listeners[0].virtual_hosts[0].routes[0]
        .rate_limit
        .clone()
}

fn bucket(tokens: u64, per_ms: u64, burst: u64) -> Bucket {
    Bucket {
        tokens,
        per: Duration::from_millis(per_ms),
        burst,
    }
}

fn default_limit(id: &str, bucket: Bucket) -> Limit {
    Limit {
        name: "default".into(),
        id: id.into(),
        bucket,
        key: LimitKey::EnvoyDefault,
        plans: vec![],
        shadow: false,
        per_connection: false,
        max_keys: 1,
    }
}

fn add(name: &str, value: &str, append: bool) -> HeaderAdd {
    HeaderAdd {
        name: name.into(),
        value: value.into(),
        append,
        only_if: crate::config::model::AddOnlyIf::Always,
    }
}

const FILTER_ID: &str = "listener_0/envoy.filters.http.local_ratelimit";

#[test]
fn the_corpus_example_maps_onto_a_shared_bucket_per_listener() {
    // envoyproxy/examples:local_ratelimit/envoy.yaml @ bc4dd4a2 (tests/envoy/corpus): two
    // unnamed listeners, each with a 2-per-5s bucket enabled and enforced for everyone.
    let config = load(include_str!(
        "../../../../tests/envoy/corpus/local_ratelimit_envoy.yaml"
    ));
    for (listener, name) in config
        .listeners
        .iter()
        .zip(["listener_0_0.0.0.0_9902", "listener_1_0.0.0.0_10000"])
    {
        assert_eq!(listener.name, name);
        assert_eq!(listener.connection_rate, None);
        let route = &listener.virtual_hosts[0].routes[0];
        assert_eq!(
            route.rate_limit,
            Some(RateLimitPolicy {
                limits: vec![default_limit(
                    &format!("{name}/envoy.filters.http.local_ratelimit/default"),
                    bucket(2, 5000, 2)
                )],
                enabled: Fraction::ALL,
                enforced: Fraction::ALL,
                status: 429,
                response_headers: vec![add("x-local-rate-limit", "true", false)],
                retry_after: false,
                headers: LimitHeaders::None,
                envoy: Some(EnvoyOptions {
                    position: Default::default(),
                    stat_prefix: "http_local_rate_limiter".into(),
                    rules: vec![],
                    always_consume_default: true,
                    request_headers_when_not_enforced: vec![],
                }),
            })
        );
    }
}

#[test]
fn a_filter_with_only_a_bucket_gets_envoys_defaults() {
    let fields = "              stat_prefix: rl\n              token_bucket: { max_tokens: 10, fill_interval: 1s }\n";
    let p = policy(fields).expect("the filter's routes have a policy");
    // Enabled and enforced for 0 % (Envoy's defaults "for safety"): the policy is kept,
    // so its counters exist, and counts nothing.
    assert_eq!((p.enabled, p.enforced), (Fraction::NONE, Fraction::NONE));
    assert_eq!(
        p.limits,
        [default_limit(
            &format!("{FILTER_ID}/default"),
            bucket(1, 1000, 10)
        )]
    );
    assert_eq!(p.status, 429);
    assert!(p.response_headers.is_empty());
    assert!(!p.retry_after);
    assert_eq!(p.headers, LimitHeaders::None);
    let envoy = p.envoy.unwrap();
    assert_eq!(envoy.stat_prefix, "rl");
    assert!(envoy.always_consume_default);
    // Without the filter, no policy; a bucket-less filter still counts.
    let config = load(&bootstrap("", None, "", ROUTE, ""));
    assert_eq!(
        config.listeners[0].virtual_hosts[0].routes[0].rate_limit,
        None
    );
    let p = policy("              stat_prefix: rl\n").unwrap();
    assert!(p.limits.is_empty());
}

#[test]
fn every_filter_field_maps() {
    let fields = r#"              stat_prefix: edge
              status: { code: ServiceUnavailable }
              token_bucket: { max_tokens: 100, tokens_per_fill: 10, fill_interval: 1.0005s }
              filter_enabled: { runtime_key: rl_enabled, default_value: { numerator: 50, denominator: TEN_THOUSAND } }
              filter_enforced: { default_value: { numerator: 250000, denominator: MILLION } }
              response_headers_to_add:
              - header: { key: X-Limited, value: "yes" }
              request_headers_to_add_when_not_enforced:
              - header: { key: x-would-limit, value: "%DOWNSTREAM_REMOTE_ADDRESS%" }
                append_action: OVERWRITE_IF_EXISTS_OR_ADD
              descriptors:
              - entries: [{ key: client, value: mobile }, { key: user }]
                token_bucket: { max_tokens: 3, fill_interval: 60s }
                shadow_mode: true
              - entries: [{ key: path, value: /a }]
                token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: 0.05s }
              stage: 2
              local_rate_limit_per_downstream_connection: true
              enable_x_ratelimit_headers: DRAFT_VERSION_03
              vh_rate_limits: INCLUDE
              always_consume_default_token_bucket: false
              rate_limited_as_resource_exhausted: true
              max_dynamic_descriptors: 100
              enable_retry_after_header: true
"#;
    let p = policy(fields).unwrap();
    assert_eq!(p.status, 503);
    assert_eq!(p.enabled, Fraction { per_million: 5000 });
    assert_eq!(
        p.enforced,
        Fraction {
            per_million: 250_000
        }
    );
    assert_eq!(p.response_headers, [add("x-limited", "yes", true)]);
    assert_eq!(p.headers, LimitHeaders::XRateLimitDraft03);
    // Only with 429 (Envoy's rule).
    assert!(!p.retry_after);
    let mut default = default_limit(&format!("{FILTER_ID}/default"), bucket(10, 1000, 100));
    default.per_connection = true;
    assert_eq!(
        p.limits,
        [
            default,
            Limit {
                name: "client=mobile, user=*".into(),
                id: format!("{FILTER_ID}/descriptor/client=mobile,user=*"),
                bucket: bucket(1, 60_000, 3),
                key: LimitKey::Descriptor(vec![
                    ("client".into(), Some("mobile".into())),
                    ("user".into(), None)
                ]),
                plans: vec![],
                shadow: true,
                per_connection: true,
                max_keys: 100,
            },
            Limit {
                name: "path=/a".into(),
                id: format!("{FILTER_ID}/descriptor/path=%2Fa"),
                bucket: bucket(1, 50, 1),
                key: LimitKey::Descriptor(vec![("path".into(), Some("/a".into()))]),
                plans: vec![],
                shadow: false,
                per_connection: true,
                max_keys: 1,
            },
        ]
    );
    let envoy = p.envoy.unwrap();
    assert_eq!(envoy.stat_prefix, "edge");
    assert!(!envoy.always_consume_default);
    assert_eq!(
        envoy.request_headers_when_not_enforced,
        [add("x-would-limit", "%DOWNSTREAM_REMOTE_ADDRESS%", false)]
    );

    // A status under 400 means 429; a numerator over the denominator is everyone;
    // Retry-After with 429 unless `response_headers_to_add` sets one.
    let fields = format!(
        "{BUCKET}              status: {{ code: OK }}\n              filter_enabled: {{ default_value: {{ numerator: 200 }} }}\n              enable_retry_after_header: true\n"
    );
    let p = policy(&fields).unwrap();
    assert_eq!(
        (p.status, p.enabled, p.retry_after),
        (429, Fraction::ALL, true)
    );
    let fields = format!(
        "{BUCKET}              enable_retry_after_header: true\n              response_headers_to_add: [{{ header: {{ key: Retry-After, value: \"60\" }} }}]\n"
    );
    assert!(!policy(&fields).unwrap().retry_after);
    // Without `max_dynamic_descriptors`, a wildcard descriptor keeps ringway's default.
    let fields = format!(
        "{BUCKET}              descriptors: [{{ entries: [{{ key: user }}], token_bucket: {{ max_tokens: 1, fill_interval: 1s }} }}]\n"
    );
    assert_eq!(
        policy(&fields).unwrap().limits[1].max_keys,
        Limit::DEFAULT_MAX_KEYS
    );
}

#[test]
fn per_route_and_per_host_configs_replace_the_filters_with_their_own_buckets() {
    let per_filter = |prefix: &str, max: u32| {
        format!(
            "                typed_per_filter_config:\n                  envoy.filters.http.local_ratelimit:\n                    {TYPE}\n                    stat_prefix: {prefix}\n                    token_bucket: {{ max_tokens: {max}, fill_interval: 1s }}\n                    filter_enabled: {{ default_value: {{ numerator: 100 }} }}\n"
        )
    };
    let vhost = per_filter("host", 7).replace("                ", "              ");
    let routes = format!(
        "              - name: own\n                match: {{ prefix: /own }}\n                route: {{ cluster: app }}\n{}              - name: dup\n                match: {{ prefix: /a }}\n                route: {{ cluster: app }}\n              - name: dup\n                match: {{ prefix: /b }}\n                direct_response: {{ status: 200 }}\n{}              - match: {{ prefix: / }}\n                route: {{ cluster: app }}\n",
        per_filter("own", 3),
        per_filter("dup", 4),
    );
    let config = load(&bootstrap("", Some(BUCKET), &vhost, &routes, ""));
    let routes = &config.listeners[0].virtual_hosts[0].routes;
    let ids: Vec<Vec<&str>> = routes
        .iter()
        .map(|r| {
            r.rate_limit
                .as_ref()
                .unwrap()
                .limits
                .iter()
                .map(|l| l.id.as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        ids,
        [
            vec!["listener_0/envoy.filters.http.local_ratelimit/route/local/own/default"],
            // The host's config: one bucket for its routes without their own.
            vec!["listener_0/envoy.filters.http.local_ratelimit/vhost/local/default"],
            // Route names that are not unique get their index.
            vec!["listener_0/envoy.filters.http.local_ratelimit/route/local/dup#2/default"],
            vec!["listener_0/envoy.filters.http.local_ratelimit/vhost/local/default"],
        ]
    );
    let prefixes: Vec<&str> = routes
        .iter()
        .map(|r| {
            r.rate_limit
                .as_ref()
                .unwrap()
                .envoy
                .as_ref()
                .unwrap()
                .stat_prefix
                .as_str()
        })
        .collect();
    assert_eq!(prefixes, ["own", "host", "dup", "host"]);
    let p = routes[0].rate_limit.as_ref().unwrap();
    assert_eq!(p.limits[0].bucket, bucket(1, 1000, 3));
    assert_eq!(p.enabled, Fraction::ALL);
    assert_eq!(p.enforced, Fraction::NONE);
}

#[test]
fn bucket_ids_name_hosts_and_routes_uniquely() {
    use super::key;
    let names = [Some("a"), None, Some("b/c"), Some("a"), Some("")];
    let keys: Vec<String> = (0..names.len()).map(|i| key(&names, i)).collect();
    assert_eq!(keys, ["a#0", "#1", "b%2Fc", "a#3", "#4"]);
}

/// A route to `app` with `rate_limits` (items indented by 18).
fn route_with_rules(rules: &str, extra: &str) -> String {
    format!(
        "              - match: {{ prefix: / }}\n                route:\n                  cluster: app\n{extra}                  rate_limits:\n{rules}"
    )
}

fn rules_of(config: &Config, route: usize) -> Vec<DescriptorRule> {
    config.listeners[0].virtual_hosts[0].routes[route]
        .rate_limit
        .as_ref()
        .unwrap()
        .envoy
        .as_ref()
        .unwrap()
        .rules
        .clone()
}

fn fixed(key: &str, value: &str) -> Action {
    Action::Fixed {
        key: key.into(),
        value: value.into(),
    }
}

const DESCRIPTOR: &str = "              descriptors: [{ entries: [{ key: k, value: v }], token_bucket: { max_tokens: 1, fill_interval: 1s } }]\n";

#[test]
fn rate_limit_actions_map_with_envoys_default_keys() {
    let rules = r#"                  - actions:
                    - source_cluster: {}
                    - destination_cluster: {}
                    - request_headers: { header_name: X-User, descriptor_key: user, skip_if_absent: true }
                    - query_parameters: { query_parameter_name: plan, descriptor_key: plan }
                    - remote_address: {}
                    - generic_key: { descriptor_value: gold }
                    - generic_key: { descriptor_value: v, descriptor_key: k }
                    - header_value_match: { descriptor_value: get, headers: [{ name: ":method", exact_match: GET }] }
                    - header_value_match: { descriptor_value: nope, descriptor_key: h, expect_match: false, headers: [{ name: x-a }] }
                    - masked_remote_address: {}
                    - masked_remote_address: { v4_prefix_mask_len: 24, v6_prefix_mask_len: 64 }
"#;
    let text = bootstrap(
        "",
        Some(&format!("{BUCKET}{DESCRIPTOR}")),
        "",
        &route_with_rules(rules, ""),
        "node: { id: n1, cluster: front }\n",
    );
    let config = load(&text);
    assert_eq!(
        rules_of(&config, 0),
        [DescriptorRule {
            stage: 0,
            actions: vec![
                fixed("source_cluster", "front"),
                fixed("destination_cluster", "app"),
                Action::RequestHeader {
                    header: "x-user".into(),
                    key: "user".into(),
                    skip_if_absent: true
                },
                Action::QueryParameter {
                    name: "plan".into(),
                    key: "plan".into(),
                    skip_if_absent: false
                },
                Action::RemoteAddress,
                fixed("generic_key", "gold"),
                fixed("k", "v"),
                Action::HeaderValueMatch {
                    key: "header_match".into(),
                    value: "get".into(),
                    expect_match: true,
                    headers: vec![HeaderMatch {
                        name: ":method".into(),
                        value: ValueMatch::Exact("GET".into())
                    }]
                },
                Action::HeaderValueMatch {
                    key: "h".into(),
                    value: "nope".into(),
                    expect_match: false,
                    headers: vec![HeaderMatch {
                        name: "x-a".into(),
                        value: ValueMatch::Present(true)
                    }]
                },
                Action::MaskedRemoteAddress {
                    v4_prefix: 32,
                    v6_prefix: 128
                },
                Action::MaskedRemoteAddress {
                    v4_prefix: 24,
                    v6_prefix: 64
                },
            ]
        }]
    );
}

#[test]
fn route_and_host_rules_combine_by_stage_and_vh_rate_limits() {
    let rule = |value: &str, extra: &str| {
        format!("                  - {{ {extra}actions: [{{ generic_key: {{ descriptor_value: {value} }} }}] }}\n")
    };
    let host_rules =
        "              rate_limits: [{ actions: [{ generic_key: { descriptor_value: host } }] }]\n";
    let routes = format!(
        "{}{}{}              - match: {{ prefix: /none }}\n                route: {{ cluster: app }}\n              - match: {{ prefix: /direct }}\n                direct_response: {{ status: 200 }}\n",
        route_with_rules(
            &format!(
                "{}{}{}",
                rule("route", ""),
                rule("stage1", "stage: 1, "),
                rule("off", "disable_key: off, ")
            ),
            ""
        ),
        route_with_rules(&rule("include", ""), "                  include_vh_rate_limits: true\n"),
        route_with_rules(&rule("stage1", "stage: 1, "), ""),
    );
    let generic = |value: &str, stage: u32| DescriptorRule {
        stage,
        actions: vec![fixed("generic_key", value)],
    };
    let load_with = |fields: &str| {
        load(&bootstrap(
            "",
            Some(&format!("{BUCKET}{DESCRIPTOR}{fields}")),
            host_rules,
            &routes,
            "",
        ))
    };
    // OVERRIDE (default): the host's only for routes without rules of their own (of
    // any stage); rules of another stage and with a `disable_key` are left out; a
    // direct response generates nothing.
    let config = load_with("");
    let all: Vec<_> = (0..5).map(|i| rules_of(&config, i)).collect();
    assert_eq!(
        all,
        [
            vec![generic("route", 0)],
            vec![generic("include", 0), generic("host", 0)],
            vec![],
            vec![generic("host", 0)],
            vec![],
        ]
    );
    let config = load_with("              vh_rate_limits: INCLUDE\n");
    assert_eq!(
        rules_of(&config, 0),
        [generic("route", 0), generic("host", 0)]
    );
    assert_eq!(rules_of(&config, 2), [generic("host", 0)]);
    let config = load_with("              vh_rate_limits: IGNORE\n              stage: 1\n");
    assert_eq!(rules_of(&config, 0), [generic("stage1", 1)]);
    assert_eq!(rules_of(&config, 2), [generic("stage1", 1)]);
    assert_eq!(rules_of(&config, 3), []);
    // Without descriptors, no rule is kept (Envoy generates no descriptor).
    let config = load(&bootstrap("", Some(BUCKET), host_rules, &routes, ""));
    assert_eq!(rules_of(&config, 0), []);
    // The filter's own `rate_limits` replace the routes' and hosts', on every route;
    // a rule with `destination_cluster` generates nothing on a direct response.
    let own = "              rate_limits:\n              - actions: [{ generic_key: { descriptor_value: own } }]\n              - actions: [{ destination_cluster: {} }]\n";
    let config = load_with(own);
    assert_eq!(
        rules_of(&config, 0),
        [
            generic("own", 0),
            DescriptorRule {
                stage: 0,
                actions: vec![fixed("destination_cluster", "app")]
            }
        ]
    );
    assert_eq!(rules_of(&config, 4), [generic("own", 0)]);
}

#[test]
fn the_network_filter_limits_new_connections() {
    let network = |fields: &str| {
        format!(
            "      - name: envoy.filters.network.local_ratelimit\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit\n          stat_prefix: conns\n          token_bucket: {{ max_tokens: 100, tokens_per_fill: 10, fill_interval: 1s }}\n{fields}"
        )
    };
    let config = load(&bootstrap(&network(""), None, "", ROUTE, ""));
    assert_eq!(
        config.listeners[0].connection_rate,
        Some(ConnectionRate {
            bucket: bucket(10, 1000, 100),
            id: "listener_0".into(),
            envoy_stat_prefix: Some("conns".into()),
        })
    );
    // Envoy shares a bucket between filters with the same key and bucket.
    let config = load(&bootstrap(
        &network("          share_key: \"edge/all\"\n          runtime_enabled: { default_value: true, runtime_key: rl }\n"),
        None,
        "",
        ROUTE,
        "",
    ));
    assert_eq!(
        config.listeners[0].connection_rate.as_ref().unwrap().id,
        "share_key/edge%2Fall/100/10/1000"
    );
    let config = load(&bootstrap(
        &network("          runtime_enabled: { default_value: false, runtime_key: rl }\n"),
        None,
        "",
        ROUTE,
        "",
    ));
    assert_eq!(config.listeners[0].connection_rate, None);
}

#[test]
fn refusals_are_named_and_positioned() {
    let one = |fields: &str| errors(&bootstrap("", Some(fields), "", ROUTE, ""));
    assert_eq!(
        one("              stat_prefix: rl\n              local_cluster_rate_limit: {}\n"),
        ["envoy.yaml:24:41: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.local_cluster_rate_limit: local_cluster_rate_limit is set but no local cluster name is present"]
    );
    assert_eq!(
        one("              stat_prefix: rl\n              token_bucket: { max_tokens: 0, fill_interval: 1s }\n"),
        ["envoy.yaml:24:43: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.token_bucket.max_tokens: `max_tokens: 0` (a bucket that refuses every request) is not supported; a direct_response route answers without a bucket"]
    );
    assert_eq!(
        one("              stat_prefix: rl\n              token_bucket: { max_tokens: 1, fill_interval: 0.01s }\n"),
        ["envoy.yaml:24:61: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.token_bucket.fill_interval: local rate limit token bucket fill timer must be >= 50ms"]
    );
    assert_eq!(
        one(&format!("{BUCKET}              descriptors:\n              - {{ entries: [{{ key: a }}], token_bucket: {{ max_tokens: 1, fill_interval: 0.02s }} }}\n")),
        ["envoy.yaml:26:88: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.descriptors[0].token_bucket.fill_interval: local rate limit descriptor token bucket fill timer must be >= 50ms"]
    );
    assert_eq!(
        one(&format!("{BUCKET}              descriptors:\n              - {{ entries: [{{ key: a }}], token_bucket: {{ max_tokens: 1, fill_interval: 1s }} }}\n              - {{ entries: [{{ key: a }}], token_bucket: {{ max_tokens: 2, fill_interval: 1s }} }}\n")),
        ["envoy.yaml:27:28: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.descriptors[1].entries: duplicate descriptor in the local rate descriptor: a=*"]
    );
    assert_eq!(
        one(&format!("{BUCKET}              max_dynamic_descriptors: 20000000\n")),
        ["envoy.yaml:25:40: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.max_dynamic_descriptors: at most 16777216 is supported, found 20000000"]
    );
    assert_eq!(
        one(&format!("{BUCKET}              rate_limits: [{{ stage: 1, actions: [{{ remote_address: {{}} }}] }}]\n")),
        ["envoy.yaml:25:38: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.rate_limits[0].stage: 'stage' field and 'disable_key' field are not supported"]
    );
    // A second filter in the chain.
    let second = format!("{BUCKET}          - name: second\n            typed_config:\n              {TYPE}\n{BUCKET}");
    assert_eq!(
        one(&second),
        ["envoy.yaml:27:15: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1].typed_config: one local_ratelimit filter per connection manager is supported"]
    );

    // Route rules: actions ringway lacks are refused by name; `source_cluster` needs
    // `node.cluster`.
    let with_rules = |rules: &str| {
        errors(&bootstrap(
            "",
            Some(&format!("{BUCKET}{DESCRIPTOR}")),
            "",
            &route_with_rules(rules, ""),
            "",
        ))
    };
    assert_eq!(
        with_rules("                  - actions: [{ metadata: { descriptor_key: k, metadata_key: { key: m, path: [{ key: p }] } } }]\n"),
        ["envoy.yaml:21:43: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.rate_limits[0].actions[0].metadata: unsupported: ringway does not implement `metadata` of envoy.config.route.v3.RateLimit.Action (yet); remove it or see docs/envoy.md"]
    );
    assert_eq!(
        with_rules("                  - actions: [{ generic_key: { descriptor_value: v, default_value: d } }]\n"),
        ["envoy.yaml:21:84: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.rate_limits[0].actions[0].generic_key.default_value: unsupported: ringway does not implement `default_value` of envoy.config.route.v3.RateLimit.Action.GenericKey (yet); remove it or see docs/envoy.md"]
    );
    assert_eq!(
        with_rules("                  - actions: [{ remote_address: {} }]\n                    limit: { dynamic_metadata: { metadata_key: { key: m, path: [{ key: p }] } } }\n"),
        ["envoy.yaml:22:28: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.rate_limits[0].limit: unsupported: ringway does not implement `limit` of envoy.config.route.v3.RateLimit (yet); remove it or see docs/envoy.md"]
    );
    assert_eq!(
        with_rules("                  - actions: [{ source_cluster: {} }]\n"),
        ["envoy.yaml:21:49: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.rate_limits[0].actions[0].source_cluster: `source_cluster` is the local service cluster, and neither --service-cluster nor the bootstrap's `node.cluster` names one"]
    );
    // Without a local_ratelimit filter, the rules serve nothing and load.
    let config = load(&bootstrap(
        "",
        None,
        "",
        &route_with_rules(
            "                  - actions: [{ source_cluster: {} }]\n",
            "",
        ),
        "",
    ));
    assert_eq!(
        config.listeners[0].virtual_hosts[0].routes[0].rate_limit,
        None
    );

    // Per-filter configs: a bucket is required, and the filter of that name.
    let per_route = |name: &str, fields: &str| {
        format!(
            "              - match: {{ prefix: / }}\n                route: {{ cluster: app }}\n                typed_per_filter_config:\n                  {name}:\n                    {TYPE}\n                    stat_prefix: r\n{fields}"
        )
    };
    assert_eq!(
        errors(&bootstrap("", Some(BUCKET), "", &per_route("envoy.filters.http.local_ratelimit", ""), "")),
        ["envoy.yaml:21:21: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config[\"envoy.filters.http.local_ratelimit\"].token_bucket: local rate limit token bucket must be set for per filter configs"]
    );
    assert_eq!(
        errors(&bootstrap("", Some(BUCKET), "", &per_route("limiter", "                    token_bucket: { max_tokens: 1, fill_interval: 1s }\n"), "")),
        ["envoy.yaml:21:21: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config[\"limiter\"]: a LocalRateLimit under \"limiter\" needs a local_ratelimit filter of that name in http_filters (envoy.filters.http.local_ratelimit)"]
    );
}

#[test]
fn network_filter_refusals_are_positioned() {
    let filter = |bucket: &str| {
        format!(
            "      - name: envoy.filters.network.local_ratelimit\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit\n          stat_prefix: conns\n          token_bucket: {bucket}\n"
        )
    };
    let fast = filter("{ max_tokens: 1, fill_interval: 0.001s }");
    assert_eq!(
        errors(&bootstrap(&fast, None, "", ROUTE, "")),
        ["envoy.yaml:12:57: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.token_bucket.fill_interval: local rate limit token bucket fill timer must be >= 50ms"]
    );
    let ok = filter("{ max_tokens: 1, fill_interval: 1s }");
    assert_eq!(
        errors(&bootstrap(&format!("{ok}{ok}"), None, "", ROUTE, "")),
        ["envoy.yaml:15:11: static_resources.listeners[0].filter_chains[0].filters[1].typed_config: one envoy.filters.network.local_ratelimit per filter chain is supported"]
    );
    // Every filter chain has the same network filters.
    let text = bootstrap(&ok, None, "", ROUTE, "");
    let start = text.find("    - filters:\n").unwrap();
    let end = text.find("  clusters:\n").unwrap();
    let plain = text[start..end].replace(&ok, "");
    let text = format!("{}{plain}{}", &text[..end], &text[end..]);
    assert_eq!(
        errors(&text),
        ["envoy.yaml:31:11: static_resources.listeners[0].filter_chains[1].filters[0].typed_config: filter chains with different network filters are not supported: ringway's listener has one connection rate limit (filter_chains[1]'s envoy.filters.network.local_ratelimit differs from filter_chains[0]'s)"]
    );
    // After the connection manager.
    let text =
        bootstrap("", None, "", ROUTE, "").replace("  clusters:\n", &format!("{ok}  clusters:\n"));
    assert_eq!(
        errors(&text),
        [
            "envoy.yaml:10:11: static_resources.listeners[0].filter_chains[0].filters[0].typed_config: the http_connection_manager must be the last network filter",
            "envoy.yaml:25:11: static_resources.listeners[0].filter_chains[0].filters[1].typed_config: the last network filter must be the http_connection_manager",
        ]
    );
}
